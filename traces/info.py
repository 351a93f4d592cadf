"""Recognise a trace file's format and summarise it (``testbed trace info``).

Canonical trace CSVs are recognised by their header comment (``# dvfs_trace v1`` …) or their columns;
every raw source of :mod:`traces.sources` (ftrace, tegrastats, power_supply logs, meter exports, …) is
detected from its content, parsed and summarised as the trace it converts to. Loading goes through the
validating readers and parsers, so ``info`` doubles as a validator.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from devices.errors import ParseError
from traces.battery import BatteryTrace
from traces.csvio import read_table
from traces.discharge import summarize_discharge
from traces.dvfs import DvfsTrace
from traces.power import PowerTrace
from traces.sources import ParseOptions, Trace, detect, load

KINDS = ("dvfs_trace", "battery_trace", "power_trace")


def detect_kind(path: str | os.PathLike[str]) -> str:
    """``dvfs_trace``, ``battery_trace`` or ``power_trace`` of a canonical trace CSV.

    Raises :class:`ParseError` if none fits.
    """
    table = read_table(path)
    if table.kind in KINDS:
        return table.kind
    if table.kind is not None:
        raise ParseError(table.path, 1, f"unknown trace format {table.kind!r}; known: {', '.join(KINDS)}")
    fmt = detect(path)
    if fmt.produces in KINDS and fmt.name.endswith("-trace"):
        return fmt.produces
    raise ParseError(
        table.path,
        table.header_line,
        f"cannot tell the trace format from the columns {table.columns}; it reads as {fmt.name} "
        f"(convert it with --from {fmt.name}) or add a '# <format> v1' header",
    )


def _r(x: float | None, digits: int = 6) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), digits)


def summarize(trace: Trace) -> dict[str, object]:
    """The JSON-ready summary of a trace object (the keys ``trace info`` prints)."""
    if isinstance(trace, DvfsTrace):
        res = trace.residency_s()
        return {
            "format": "dvfs_trace",
            "rows": len(trace.events),
            "duration_s": _r(trace.end_s),
            "domains": {
                dom: {
                    "transitions": sum(1 for e in trace.events if e.domain == dom) - 1,
                    "freqs_khz": sorted(res.get(dom, {})),
                    "residency_s": {str(f): _r(s) for f, s in sorted(res.get(dom, {}).items())},
                }
                for dom in trace.domain_names()
            },
        }
    if isinstance(trace, PowerTrace):
        return {
            "format": "power_trace",
            "rows": len(trace.t_s),
            "period_s": _r(trace.period_s),
            "mean_power_w": _r(trace.mean_power_w()),
            "peak_power_w": _r(float(np.max(trace.power_w))),
            "energy_per_pass_j": _r(trace.energy_j()),
        }
    return _battery_summary(trace)


def _battery_summary(b: BatteryTrace) -> dict[str, object]:
    def rng(a: np.ndarray | None) -> list[float | None] | None:
        if a is None:
            return None
        ok = a[~np.isnan(a)]
        return [_r(float(ok.min())), _r(float(ok.max()))] if len(ok) else None

    d = summarize_discharge(b)
    out: dict[str, object] = {
        "format": "battery_trace",
        "rows": len(b),
        "duration_s": _r(float(b.t_s[-1] - b.t_s[0])) if len(b) else 0.0,
        "current_sign": "discharge_positive",
        "source_current_sign": b.meta.get("source_current_sign", "discharge_positive"),
        "voltage_v": rng(b.voltage_v),
        "current_a": rng(b.current_a),
        "power_w": rng(b.power_w),
        "soc": rng(b.soc),
        "temp_c": rng(b.temp_c),
        "energy_wh": rng(b.energy_wh),
        "charge_ah": rng(b.charge_ah),
        "discharging_s": _r(d.discharging_s),
        "delivered_energy_j": _r(d.delivered_energy_j),
        "energy_method": d.method,
    }
    if d.reason is not None:
        out["energy_note"] = d.reason
    if d.gaps:
        out["warnings"] = [
            f"gap of {length:g} s at t_s={start:g} (sampling period {d.period_s:g} s)" for start, length in d.gaps[:10]
        ] + ([f"… and {len(d.gaps) - 10} more gaps"] if len(d.gaps) > 10 else [])
    return out


def trace_info(
    path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    source: str | None = None,
    options: ParseOptions | None = None,
) -> dict[str, object]:
    """A JSON-ready summary of a trace file or raw source file(s), validated while loading.

    ``source`` names the format (detected from the content when ``None``). Raises :class:`ParseError`
    for a file no format matches and for everything the format's reader rejects.
    """
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    fmt, trace = load(paths, source, options)
    info: dict[str, object] = {"path": str(paths[0]), "source_format": fmt.name}
    info.update(summarize(trace))
    return info
