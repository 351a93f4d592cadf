"""A profile table's quality verdict: monotone in frequency, confidence target met, host load, throttling.

The verdict is computed from the table's rows and the metadata the profiler writes (``rel_ci`` target,
``max_rel_ci`` reached, ``host_load_max`` per core, ``source``), so it travels with the CSV into every run
(the run manifest keeps the table's metadata) and every report.

- *monotone*: for every pattern set, p50 and p99 latency do not rise when the frequency rises, and the
  level's active and idle power do not fall (within :data:`TOLERANCE`, :data:`P99_TOLERANCE` and
  :data:`IDLE_TOLERANCE`);
- *CI met*: every cell reached the profiler's confidence target (None when the table does not say: a
  modelled or hand-written table);
- *load*: the highest 1-minute load average per host core seen while measuring (None when not recorded);
- *throttled*: rows flagged throttled (or frequency-changed) while measured.

A profile is *flagged* when it is not monotone, missed its CI target, saw more than :data:`LOAD_LIMIT`
runnable tasks per core, or has a throttled row. Its *origin* is ``modelled`` (metadata source mentions a
model), ``emulated`` (measured through an emulated agent) or ``hardware`` (measured through an agent on a
board); anything else is ``unknown``.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass
from typing import Any

from traces.profile import ProfileTable

#: Relative slack allowed before a non-monotone step counts: the median and active power are tight (2 %); a
#: p99 is one tail sample in a hundred (10 %); idle power comes from one low-duty window of a 10 Hz meter (5 %).
TOLERANCE = 0.02
P99_TOLERANCE = 0.10
IDLE_TOLERANCE = 0.05
#: Host load average per core above which measurements are flagged.
LOAD_LIMIT = 1.5


@dataclass(frozen=True)
class ProfileQuality:
    """See the module text. ``violations`` names each non-monotone step in one short phrase."""

    origin: str
    board: str
    monotone: bool
    violations: tuple[str, ...]
    ci_met: bool | None
    max_rel_ci: float | None
    host_load_max: float | None
    throttled_rows: int

    @property
    def flagged(self) -> bool:
        loaded = self.host_load_max is not None and self.host_load_max > LOAD_LIMIT
        return not self.monotone or self.ci_met is False or loaded or self.throttled_rows > 0

    def reasons(self) -> list[str]:
        """Why the profile is flagged (empty when it is not)."""
        out = []
        if not self.monotone:
            out.append(f"not monotone in frequency ({'; '.join(self.violations[:3])})")
        if self.ci_met is False:
            out.append(f"confidence target missed (worst {self.max_rel_ci:.1%})" if self.max_rel_ci else "CI missed")
        if self.host_load_max is not None and self.host_load_max > LOAD_LIMIT:
            out.append(f"host load {self.host_load_max:.2f} per core")
        if self.throttled_rows:
            out.append(f"{self.throttled_rows} throttled rows")
        return out

    def provenance(self) -> str:
        """Where the numbers come from, in a few words (the headline's last part)."""
        if self.origin == "modelled":
            return f"modelled {self.board} profile (estimates, not measurements)"
        if self.origin == "emulated":
            load = f" under host load {self.host_load_max:.2f} per core" if self.host_load_max is not None else ""
            return f"measured on an emulated {self.board}{load}"
        if self.origin == "hardware":
            return f"measured on hardware ({self.board})"
        return f"profile of unknown origin ({self.board})"

    def verdict(self) -> str:
        """``good``, ``modelled`` or ``flagged: …`` (one line)."""
        if self.flagged:
            return "flagged: " + "; ".join(self.reasons())
        return "modelled" if self.origin == "modelled" else "good"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["violations"] = list(self.violations)
        d["flagged"] = self.flagged
        d["verdict"] = self.verdict()
        d["provenance"] = self.provenance()
        return d


def _origin(meta: dict[str, str]) -> str:
    source = meta.get("source", "").lower()
    if "model" in source and "measured" not in source:
        return "modelled"
    if "emulated" in source:
        return "emulated"
    if "measured" in source:
        return "hardware"
    return "unknown"


def _float(meta: dict[str, str], key: str) -> float | None:
    try:
        v = float(meta[key])
    except (KeyError, ValueError):
        return None
    return v if math.isfinite(v) else None


def monotonicity_violations(table: ProfileTable) -> list[tuple[str, str, str]]:
    """The steps where a faster level is worse (see the module text), each as (pattern set, level pair
    ``"slower→faster"``, one-phrase description)."""
    by_f = sorted(table.levels, key=table.freq_khz)
    out: list[tuple[str, str, str]] = []
    for ps in table.pattern_sets:
        for lo, hi in itertools.pairwise(by_f):
            a, b = table.get(ps, lo), table.get(ps, hi)
            for name, va, vb, worse in (
                ("p50", a.latency_p50_ms, b.latency_p50_ms, b.latency_p50_ms > a.latency_p50_ms * (1 + TOLERANCE)),
                ("p99", a.latency_p99_ms, b.latency_p99_ms, b.latency_p99_ms > a.latency_p99_ms * (1 + P99_TOLERANCE)),
                ("power", a.mean_power_w, b.mean_power_w, b.mean_power_w < a.mean_power_w * (1 - TOLERANCE)),
                ("idle power", a.idle_power_w, b.idle_power_w, b.idle_power_w < a.idle_power_w * (1 - IDLE_TOLERANCE)),
            ):
                if worse:
                    out.append((ps, f"{lo}→{hi}", f"{ps} {name} {va:.4g} at {lo} vs {vb:.4g} at {hi}"))
    return out


def assess(table: ProfileTable) -> ProfileQuality:
    """The quality verdict of ``table`` (see the module text)."""
    meta = table.meta
    violations = monotonicity_violations(table)
    max_ci, target = _float(meta, "max_rel_ci"), _float(meta, "rel_ci")
    ci_met: bool | None = None
    if "ci_met" in meta:
        ci_met = meta["ci_met"].lower() == "true"
    elif max_ci is not None and target is not None:
        ci_met = max_ci <= target
    return ProfileQuality(
        origin=_origin(meta),
        board=meta.get("board", "unknown"),
        monotone=not violations,
        violations=tuple(v[2] for v in violations),
        ci_met=ci_met,
        max_rel_ci=max_ci,
        host_load_max=_float(meta, "host_load_max"),
        throttled_rows=sum(1 for r in table.rows.values() if r.throttled),
    )
