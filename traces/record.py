"""Recorders: sample a device's sysfs at a fixed period into a DVFS or battery trace CSV.

Both read through :class:`devices.sysfs.Sysfs`, so ``--sysfs-root`` points them at an emulated board.
Rows are written and flushed as they are taken (an interrupted recording keeps what it has); the
trailing comment ``# duration_s=…`` closes the file. Samples are scheduled on absolute times
(``start + k·period``), so the period does not drift; a sample that runs late is taken at once.

Failure modes: :class:`~devices.errors.BadInputError` for a bad period/duration, an unknown supply or a
root without cpufreq (:class:`~devices.errors.UnsupportedError`); sysfs read errors propagate as the
project's errors.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TextIO

from devices.cpufreq import list_policies
from devices.devfreq import find_gpu
from devices.errors import BadInputError
from devices.sysfs import Sysfs
from traces.battery import battery_header, battery_row
from traces.csvio import format_number
from traces.domains import DomainMap
from traces.power_supply import ATTRIBUTES, POWER_SUPPLY_DIR, SIGN_RULES, convert_attributes

DVFS_SOURCES = ("scaling_cur_freq", "cpuinfo_cur_freq")


class Clock(Protocol):
    """Time source of a recorder (seconds); tests pass a simulated one."""

    def now(self) -> float: ...

    def sleep_until(self, t: float) -> None: ...


class MonotonicClock:
    """``time.monotonic`` and ``time.sleep``."""

    def now(self) -> float:
        return time.monotonic()

    def sleep_until(self, t: float) -> None:
        delay = t - time.monotonic()
        if delay > 0:
            time.sleep(delay)


@dataclass
class RecordResult:
    """What a recorder did: samples taken, rows written, seconds covered, and why it stopped."""

    path: str
    samples: int
    rows: int
    duration_s: float
    interrupted: bool

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


OnSample = Callable[[int, float], None]


def _check_schedule(period_s: float, duration_s: float | None, max_samples: int | None) -> None:
    if not (period_s > 0 and math.isfinite(period_s)):
        raise BadInputError(f"--period-s must be a positive number of seconds, got {period_s}")
    if duration_s is not None and not (duration_s >= 0 and math.isfinite(duration_s)):
        raise BadInputError(f"--duration-s must be ≥ 0 seconds, got {duration_s}")
    if max_samples is not None and max_samples < 1:
        raise BadInputError(f"--samples must be ≥ 1, got {max_samples}")
    if duration_s is None and max_samples is None:
        raise BadInputError("give --duration-s or --samples (or both)")


def _loop(
    clock: Clock,
    period_s: float,
    duration_s: float | None,
    max_samples: int | None,
    take: Callable[[float], None],
    on_sample: OnSample | None,
) -> tuple[int, float, bool]:
    """Call ``take(t)`` every period; return (samples, last t, interrupted)."""
    start = clock.now()
    k = 0
    t = 0.0
    try:
        while True:
            target = start + k * period_s
            if duration_s is not None and target - start > duration_s + 1e-9:
                break
            if max_samples is not None and k >= max_samples:
                break
            clock.sleep_until(target)
            t = clock.now() - start
            take(t)
            k += 1
            if on_sample is not None:
                on_sample(k, t)
    except KeyboardInterrupt:
        return k, t, True
    return k, t, False


def _open(out: str | os.PathLike[str]) -> TextIO:
    p = Path(out)
    if not p.parent.is_dir():
        raise BadInputError(f"{p.parent}: output directory does not exist")
    try:
        return open(p, "w", encoding="utf-8", newline="")
    except OSError as exc:
        raise BadInputError(f"{p}: cannot write: {exc.strerror or exc}") from None


def record_dvfs(
    sysfs: Sysfs,
    out: str | os.PathLike[str],
    period_s: float = 0.1,
    duration_s: float | None = None,
    max_samples: int | None = None,
    source: str = "scaling_cur_freq",
    clock: Clock | None = None,
    on_sample: OnSample | None = None,
    gpu: bool = False,
) -> RecordResult:
    """Poll every cpufreq policy's frequency and write a DVFS trace (one row per change).

    ``source`` is ``scaling_cur_freq`` (the kernel's last request, readable by anyone) or
    ``cpuinfo_cur_freq`` (the hardware clock; root-only on real kernels). With ``gpu``, the GPU's
    devfreq ``cur_freq`` (Hz) is recorded too, as domain ``gpu`` in kHz. A domain whose file cannot be
    read in a sample is skipped for that sample. Raises :class:`BadInputError` when ``gpu`` is asked
    for on a board without a GPU devfreq device.
    """
    _check_schedule(period_s, duration_s, max_samples)
    if source not in DVFS_SOURCES:
        raise BadInputError(f"unknown frequency source {source!r}; use one of {', '.join(DVFS_SOURCES)}")
    policies = list_policies(sysfs)
    if not policies:
        raise BadInputError(f"{sysfs.path('sys/devices/system/cpu/cpufreq')}: no cpufreq policies")
    reads: list[tuple[str, str, int]] = [(p.name, f"{p.dir}/{source}", 1) for p in policies]
    extra = ""
    spans = {p.name: tuple(p.cpus) for p in policies}
    if gpu:
        dev = find_gpu(sysfs)
        if dev is None:
            raise BadInputError(f"{sysfs.path('sys/class/devfreq')}: no GPU devfreq device on this board")
        reads.append(("gpu", f"{dev.dir}/cur_freq", 1000))
        spans["gpu"] = ()
        extra = f"; gpu_device={dev.name}"
    domains = DomainMap(spans)
    clock = clock or MonotonicClock()
    current: dict[str, int] = {}
    rows = 0
    with _open(out) as fh:
        fh.write(
            f"# dvfs_trace v1; semantics=zero_order_hold; domains: {domains.to_text()}; source=record-dvfs; "
            f"sampled={source}; period_s={format_number(period_s)}{extra}\n"
        )
        fh.write("t_s,domain,freq_khz\n")

        def take(t: float) -> None:
            nonlocal rows
            for name, path, divisor in reads:
                value = sysfs.read_int_optional(path)
                if value is None or value <= 0:
                    continue
                khz = round(value / divisor)
                if current.get(name) == khz:
                    continue
                current[name] = khz
                fh.write(f"{format_number(t)},{name},{khz}\n")
                rows += 1
            fh.flush()

        n, last_t, interrupted = _loop(clock, period_s, duration_s, max_samples, take, on_sample)
        fh.write(f"# duration_s={format_number(last_t)}\n")
    return RecordResult(str(out), n, rows, last_t, interrupted)


def find_battery(sysfs: Sysfs) -> str:
    """The first ``power_supply`` whose ``type`` is ``Battery``; :class:`BadInputError` if none."""
    names = sysfs.listdir(POWER_SUPPLY_DIR) if sysfs.is_dir(POWER_SUPPLY_DIR) else []
    for n in names:
        if (sysfs.read_optional(f"{POWER_SUPPLY_DIR}/{n}/type") or "").strip() == "Battery":
            return n
    listed = ", ".join(names) or "none"
    raise BadInputError(
        f"{sysfs.path(POWER_SUPPLY_DIR)}: no power_supply of type Battery (found: {listed}); pass --supply"
    )


def record_battery(
    sysfs: Sysfs,
    out: str | os.PathLike[str],
    supply: str | None = None,
    period_s: float = 1.0,
    duration_s: float | None = None,
    max_samples: int | None = None,
    sign: str = "status",
    clock: Clock | None = None,
    on_sample: OnSample | None = None,
) -> RecordResult:
    """Sample ``/sys/class/power_supply/<supply>`` into a canonical battery trace.

    ``sign`` is a rule of :data:`traces.power_supply.SIGN_RULES` (default ``status``: the magnitude,
    signed by ``status``). Raises :class:`BadInputError` for an unknown supply or rule, and when an
    attribute holds something that is not a number.
    """
    _check_schedule(period_s, duration_s, max_samples)
    if sign not in SIGN_RULES:
        raise BadInputError(f"unknown current sign rule {sign!r}; use one of {', '.join(SIGN_RULES)}")
    name = supply or find_battery(sysfs)
    base = f"{POWER_SUPPLY_DIR}/{name}"
    if not sysfs.is_dir(base):
        raise BadInputError(f"{sysfs.path(base)}: no such power_supply")
    present = [a for a in ATTRIBUTES if sysfs.exists(f"{base}/{a}")]
    if "voltage_now" not in present:
        raise BadInputError(f"{sysfs.path(base)}: no voltage_now; is {name} a battery?")
    clock = clock or MonotonicClock()
    cols = ["t_s", "voltage_v", "current_a", "power_w", "soc", "temp_c", "charge_ah", "energy_wh"]
    rows = 0
    with _open(out) as fh:
        meta = {"source": "record-battery", "supply": name, "sign_rule": sign, "charge_energy": "remaining"}
        fh.write(f"# {battery_header(meta)}; period_s={format_number(period_s)}\n")
        fh.write(",".join([*cols, "status"]) + "\n")

        def take(t: float) -> None:
            nonlocal rows
            attrs = {a: v for a in present if (v := sysfs.read_optional(f"{base}/{a}")) is not None}
            try:
                values, status = convert_attributes(attrs, sign)
            except ValueError as exc:
                raise BadInputError(f"{sysfs.path(base)}: {exc}") from None
            row = battery_row({"t_s": t, **values}, status)
            fh.write(",".join(row) + "\n")
            fh.flush()
            rows += 1

        n, last_t, interrupted = _loop(clock, period_s, duration_s, max_samples, take, on_sample)
        fh.write(f"# duration_s={format_number(last_t)}\n")
    return RecordResult(str(out), n, rows, last_t, interrupted)
