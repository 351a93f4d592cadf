"""Write live recordings as trace files: a DVFS trace from frequency events, a battery trace from supply readings.

The sampling itself is board-side (:mod:`devices.record`: :class:`~devices.record.DvfsRecorder`,
:class:`~devices.record.SupplyRecorder`, :func:`~devices.record.run_schedule`); this module only turns
what they deliver into the canonical formats (:mod:`traces.dvfs`, :mod:`traces.battery`). Rows are
written and flushed as they arrive (an interrupted recording keeps what it has); the trailing comment
``# duration_s=…`` closes the file.

Failure modes: :class:`~devices.errors.BadInputError` for an output directory that does not exist or a
file that cannot be written, an unknown current sign rule, or a supply attribute that is not a number.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from devices.errors import BadInputError
from devices.record import Clock, DvfsRecorder, OnSample, Schedule, SupplyRecorder, run_schedule
from traces.battery import battery_header, battery_row
from traces.csvio import format_number
from traces.domains import DomainMap
from traces.power_supply import SIGN_RULES, convert_attributes


@dataclass
class RecordResult:
    """What a recording wrote: samples taken, rows written, seconds covered, and whether Ctrl-C ended it."""

    path: str
    samples: int
    rows: int
    duration_s: float
    interrupted: bool

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def check_sign_rule(sign: str) -> None:
    """:class:`BadInputError` unless ``sign`` is a rule of :data:`traces.power_supply.SIGN_RULES`."""
    if sign not in SIGN_RULES:
        raise BadInputError(f"unknown current sign rule {sign!r}; use one of {', '.join(SIGN_RULES)}")


def _open(out: str | os.PathLike[str]) -> TextIO:
    p = Path(out)
    if not p.parent.is_dir():
        raise BadInputError(f"{p.parent}: output directory does not exist")
    try:
        return open(p, "w", encoding="utf-8", newline="")
    except OSError as exc:
        raise BadInputError(f"{p}: cannot write: {exc.strerror or exc}") from None


def record_dvfs(
    recorder: DvfsRecorder,
    out: str | os.PathLike[str],
    schedule: Schedule,
    clock: Clock | None = None,
    on_sample: OnSample | None = None,
) -> RecordResult:
    """Run ``recorder`` on ``schedule`` and write its frequency events as a DVFS trace (one row per change)."""
    domains = DomainMap(recorder.domains)
    extra = f"; gpu_device={recorder.gpu_device}" if recorder.gpu_device is not None else ""
    rows = 0
    with _open(out) as fh:
        fh.write(
            f"# dvfs_trace v1; semantics=zero_order_hold; domains: {domains.to_text()}; source=record-dvfs; "
            f"sampled={recorder.source}; period_s={format_number(schedule.period_s)}{extra}\n"
        )
        fh.write("t_s,domain,freq_khz\n")

        def take(t: float) -> None:
            nonlocal rows
            for event in recorder.sample(t):
                fh.write(f"{format_number(event.time_s)},{event.domain},{event.freq_khz}\n")
                rows += 1
            fh.flush()

        stats = run_schedule(schedule, take, clock, on_sample)
        fh.write(f"# duration_s={format_number(stats.duration_s)}\n")
    return RecordResult(str(out), stats.samples, rows, stats.duration_s, stats.interrupted)


def record_battery(
    recorder: SupplyRecorder,
    out: str | os.PathLike[str],
    schedule: Schedule,
    sign: str = "status",
    clock: Clock | None = None,
    on_sample: OnSample | None = None,
) -> RecordResult:
    """Run ``recorder`` on ``schedule`` and write its readings as a canonical battery trace.

    ``sign`` is a rule of :data:`traces.power_supply.SIGN_RULES` (default ``status``: the magnitude,
    signed by ``status``).
    """
    check_sign_rule(sign)
    cols = ["t_s", "voltage_v", "current_a", "power_w", "soc", "temp_c", "charge_ah", "energy_wh"]
    rows = 0
    with _open(out) as fh:
        meta = {"source": "record-battery", "supply": recorder.name, "sign_rule": sign, "charge_energy": "remaining"}
        fh.write(f"# {battery_header(meta)}; period_s={format_number(schedule.period_s)}\n")
        fh.write(",".join([*cols, "status"]) + "\n")

        def take(t: float) -> None:
            nonlocal rows
            reading = recorder.sample(t)
            try:
                values, status = convert_attributes(reading.attrs, sign)
            except ValueError as exc:
                raise BadInputError(f"{recorder.where()}: {exc}") from None
            fh.write(",".join(battery_row({"t_s": reading.time_s, **values}, status)) + "\n")
            fh.flush()
            rows += 1

        stats = run_schedule(schedule, take, clock, on_sample)
        fh.write(f"# duration_s={format_number(stats.duration_s)}\n")
    return RecordResult(str(out), stats.samples, rows, stats.duration_s, stats.interrupted)
