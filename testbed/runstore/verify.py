"""Named checks of a run store, in the spirit of MLPerf power-dev's checker.

Each check returns a :class:`Check` (name, passed, detail). ``testbed verify RUN`` prints them and
exits 1 when any fails. The checks:

- ``manifest_complete`` — every required manifest key is present and not null;
- ``phases_monotonic`` — in monotonic order of their starts, phases also start in wall-clock order, end
  after they start, and every phase ended (or is marked interrupted by a resume);
- ``time_monotonic`` — in every table, each strategy's ``t_s`` never decreases;
- ``energy_balance`` — per strategy, the load energy the battery delivered equals the integral of the
  recorded power samples within ``ENERGY_TOLERANCE`` (relative);
- ``throttle_flagged`` — no throttled power window is unflagged, and every inference inside a
  throttled window is marked throttled;
- ``results_complete`` — every strategy of the configuration has a final result.

The checks read the run through :class:`~testbed.runstore.reader.RunReader`, so verifying never writes to
the run store (a run has one writer) and works on a run that is still being written or lies on a read-only
disk.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from testbed.runstore.reader import RunReader
from testbed.runstore.schema import REQUIRED_MANIFEST, TABLES

ENERGY_TOLERANCE = 0.01


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_manifest(run: RunReader) -> Check:
    m = run.manifest
    missing = [k for k in REQUIRED_MANIFEST if m.get(k) is None]
    if missing:
        return Check("manifest_complete", False, f"missing or null: {', '.join(missing)}")
    return Check("manifest_complete", True, f"{len(REQUIRED_MANIFEST)} required keys present")


def check_phases(run: RunReader) -> Check:
    phases = sorted(run.phases(), key=lambda p: p.mono_start_s)  # concurrent writers may interleave rows
    if not phases:
        return Check("phases_monotonic", False, "no phases recorded")
    prev_wall = float("-inf")
    for p in phases:
        if p.wall_start_s < prev_wall:
            return Check("phases_monotonic", False, f"phase {p.name!r}: wall clock went back against monotonic")
        if p.ends_before_it_starts:
            return Check("phases_monotonic", False, f"phase {p.name!r} ends before it starts")
        prev_wall = p.wall_start_s
    open_ = [p.name for p in phases if p.mono_end_s is None and not p.name.endswith("(interrupted)")]
    if open_:
        return Check("phases_monotonic", False, f"phases never ended: {', '.join(open_)}")
    return Check("phases_monotonic", True, f"{len(phases)} phases in order")


def check_time(run: RunReader) -> Check:
    rows = 0
    for name, cols in TABLES.items():
        if cols[0][0] != "strategy":
            continue
        bad = run.query_one(
            f"SELECT strategy, t_s, prev FROM (SELECT strategy, t_s, LAG(t_s) OVER "
            f"(PARTITION BY strategy ORDER BY rowid) AS prev FROM {name}) WHERE t_s < prev LIMIT 1"
        )
        if bad:
            return Check(
                "time_monotonic", False, f"{name}: strategy {bad[0]} goes back from t={bad[2]} s to {bad[1]} s"
            )
        rows += int(run.query(f"SELECT count(*) FROM {name}")[0][0])
    return Check("time_monotonic", True, f"{rows} rows in time order")


def check_energy(run: RunReader) -> Check:
    battery = dict(
        run.query(
            "SELECT strategy, load_energy_j FROM battery_state WHERE rowid IN "
            "(SELECT max(rowid) FROM battery_state GROUP BY strategy)"
        )
    )
    measured = dict(run.query("SELECT strategy, sum(power_w * duration_s) FROM power_samples GROUP BY strategy"))
    if not battery:
        return Check("energy_balance", False, "no battery state recorded")
    worst = 0.0
    for strategy, e_batt in battery.items():
        e_meas = measured.get(strategy)
        if e_meas is None:
            return Check("energy_balance", False, f"{strategy}: battery state but no power samples")
        rel = abs(e_batt - e_meas) / max(abs(e_batt), 1e-12)
        if rel > ENERGY_TOLERANCE:
            return Check(
                "energy_balance",
                False,
                f"{strategy}: battery delivered {e_batt:.6g} J but power samples integrate to {e_meas:.6g} J "
                f"({rel:.2%} > {ENERGY_TOLERANCE:.0%})",
            )
        worst = max(worst, rel)
    return Check("energy_balance", True, f"{len(battery)} strategies balance within {worst:.3%}")


def check_throttle(run: RunReader) -> Check:
    unflagged = run.query_one("SELECT strategy, t_s FROM power_samples WHERE throttled = 1 AND flagged = 0 LIMIT 1")
    if unflagged:
        return Check("throttle_flagged", False, f"{unflagged[0]}: throttled window at t={unflagged[1]} s not flagged")
    inside = run.query_one(
        "SELECT i.strategy, i.t_s FROM inferences i JOIN power_samples p ON p.strategy = i.strategy "
        "AND p.throttled = 1 AND i.t_s >= p.t_s AND i.t_s < p.t_s + p.duration_s WHERE i.throttled = 0 LIMIT 1"
    )
    if inside:
        return Check("throttle_flagged", False, f"{inside[0]}: inference at t={inside[1]} s in a throttled window")
    n = run.query("SELECT count(*) FROM power_samples WHERE throttled = 1")[0][0]
    return Check("throttle_flagged", True, f"{n} throttled windows, all flagged")


def check_results(run: RunReader) -> Check:
    wanted = list(run.config.get("strategies", []))
    have = run.results()
    missing = [s for s in wanted if s not in have]
    if missing:
        return Check("results_complete", False, f"no final result for: {', '.join(missing)} (resume the run)")
    return Check("results_complete", True, f"{len(have)} strategies finished")


CHECKS = (check_manifest, check_phases, check_time, check_energy, check_throttle, check_results)


def verify(run: RunReader) -> list[Check]:
    """Run every named check on ``run``."""
    return [check(run) for check in CHECKS]


def verify_run(path: str | Path) -> list[Check]:
    """Open the run at ``path`` read-only and run every check; :class:`BadInputError` if it is not a run."""
    with RunReader.open(path) as run:
        return verify(run)
