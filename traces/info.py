"""Recognise a trace file's format and summarise it (``testbed trace info``).

The format comes from the header comment (``# dvfs_trace v1`` …) or, without one, from the columns.
Loading goes through the format's validating reader, so ``info`` doubles as a validator.
"""

from __future__ import annotations

import os

import numpy as np

from devices.errors import ParseError
from traces.battery import read_battery
from traces.csvio import read_table
from traces.dvfs import read_dvfs
from traces.power import read_power

KINDS = ("dvfs_trace", "battery_trace", "power_trace")


def detect_kind(path: str | os.PathLike[str]) -> str:
    """``dvfs_trace``, ``battery_trace`` or ``power_trace``; :class:`ParseError` if none fits."""
    table = read_table(path)
    if table.kind in KINDS:
        return table.kind
    if table.kind is not None:
        raise ParseError(table.path, 1, f"unknown trace format {table.kind!r}; known: {', '.join(KINDS)}")
    cols = {c.lower().partition("_")[0] for c in table.columns}
    if "domain" in cols and "freq" in cols:
        return "dvfs_trace"
    if "voltage" in cols:
        return "battery_trace"
    if "power" in cols and "t" in cols:
        return "power_trace"
    raise ParseError(
        table.path,
        table.header_line,
        f"cannot tell the trace format from the columns {table.columns}; add a '# <format> v1' header",
    )


def _r(x: float, digits: int = 6) -> float | None:
    return None if not np.isfinite(x) else round(float(x), digits)


def trace_info(path: str | os.PathLike[str]) -> dict[str, object]:
    """A JSON-ready summary of a trace file (validated while loading)."""
    kind = detect_kind(path)
    info: dict[str, object] = {"path": str(path), "format": kind}
    if kind == "dvfs_trace":
        d = read_dvfs(path)
        res = d.residency_s()
        info.update(
            rows=len(d.events),
            duration_s=_r(d.end_s),
            domains={
                dom: {
                    "transitions": sum(1 for e in d.events if e.domain == dom) - 1,
                    "freqs_khz": sorted(res.get(dom, {})),
                    "residency_s": {str(f): _r(s) for f, s in sorted(res.get(dom, {}).items())},
                }
                for dom in d.domain_names()
            },
        )
    elif kind == "power_trace":
        p = read_power(path)
        info.update(
            rows=len(p.t_s),
            period_s=_r(p.period_s),
            mean_power_w=_r(p.mean_power_w()),
            peak_power_w=_r(float(np.max(p.power_w))),
            energy_per_pass_j=_r(p.energy_j()),
        )
    else:
        b = read_battery(path)

        def rng(a: np.ndarray) -> list[float | None] | None:
            ok = a[~np.isnan(a)]
            return [_r(float(ok.min())), _r(float(ok.max()))] if len(ok) else None

        info.update(
            rows=len(b),
            duration_s=_r(float(b.t_s[-1] - b.t_s[0])) if len(b) else 0.0,
            current_sign="discharge_positive",
            source_current_sign=b.meta.get("source_current_sign", "discharge_positive"),
            voltage_v=rng(b.voltage_v),
            current_a=rng(b.current_a),
            power_w=rng(b.power_w),
            soc=rng(b.soc),
            temp_c=rng(b.temp_c),
            delivered_energy_j=_r(b.delivered_energy_j()),
        )
    return info
