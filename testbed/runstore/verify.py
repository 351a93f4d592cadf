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
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from testbed.runstore.schema import REQUIRED_MANIFEST, TABLES
from testbed.runstore.store import RunStore

ENERGY_TOLERANCE = 0.01


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_manifest(store: RunStore) -> Check:
    m = store.manifest()
    missing = [k for k in REQUIRED_MANIFEST if m.get(k) is None]
    if missing:
        return Check("manifest_complete", False, f"missing or null: {', '.join(missing)}")
    return Check("manifest_complete", True, f"{len(REQUIRED_MANIFEST)} required keys present")


def check_phases(store: RunStore) -> Check:
    phases = sorted(store.phases(), key=lambda p: p["mono_start_s"])  # concurrent writers may interleave rows
    if not phases:
        return Check("phases_monotonic", False, "no phases recorded")
    prev_wall = float("-inf")
    for p in phases:
        if p["wall_start_s"] < prev_wall:
            return Check("phases_monotonic", False, f"phase {p['name']!r}: wall clock went back against monotonic")
        ended = p["mono_end_s"] is not None and p["wall_end_s"] is not None
        if ended and (p["mono_end_s"] < p["mono_start_s"] or p["wall_end_s"] < p["wall_start_s"]):
            return Check("phases_monotonic", False, f"phase {p['name']!r} ends before it starts")
        prev_wall = p["wall_start_s"]
    open_ = [p["name"] for p in phases if p["mono_end_s"] is None and not p["name"].endswith("(interrupted)")]
    if open_:
        return Check("phases_monotonic", False, f"phases never ended: {', '.join(open_)}")
    return Check("phases_monotonic", True, f"{len(phases)} phases in order")


def check_time(store: RunStore) -> Check:
    rows = 0
    for name, cols in TABLES.items():
        if cols[0][0] != "strategy":
            continue
        bad = store.conn.execute(
            f"SELECT strategy, t_s, prev FROM (SELECT strategy, t_s, LAG(t_s) OVER "
            f"(PARTITION BY strategy ORDER BY rowid) AS prev FROM {name}) WHERE t_s < prev LIMIT 1"
        ).fetchone()
        if bad:
            return Check(
                "time_monotonic", False, f"{name}: strategy {bad[0]} goes back from t={bad[2]} s to {bad[1]} s"
            )
        rows += store.count(name)
    return Check("time_monotonic", True, f"{rows} rows in time order")


def check_energy(store: RunStore) -> Check:
    battery = dict(
        store.conn.execute(
            "SELECT strategy, load_energy_j FROM battery_state WHERE rowid IN "
            "(SELECT max(rowid) FROM battery_state GROUP BY strategy)"
        ).fetchall()
    )
    measured = dict(
        store.conn.execute("SELECT strategy, sum(power_w * duration_s) FROM power_samples GROUP BY strategy").fetchall()
    )
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


def check_throttle(store: RunStore) -> Check:
    unflagged = store.conn.execute(
        "SELECT strategy, t_s FROM power_samples WHERE throttled = 1 AND flagged = 0 LIMIT 1"
    ).fetchone()
    if unflagged:
        return Check("throttle_flagged", False, f"{unflagged[0]}: throttled window at t={unflagged[1]} s not flagged")
    inside = store.conn.execute(
        "SELECT i.strategy, i.t_s FROM inferences i JOIN power_samples p ON p.strategy = i.strategy "
        "AND p.throttled = 1 AND i.t_s >= p.t_s AND i.t_s < p.t_s + p.duration_s WHERE i.throttled = 0 LIMIT 1"
    ).fetchone()
    if inside:
        return Check("throttle_flagged", False, f"{inside[0]}: inference at t={inside[1]} s in a throttled window")
    n = store.conn.execute("SELECT count(*) FROM power_samples WHERE throttled = 1").fetchone()[0]
    return Check("throttle_flagged", True, f"{n} throttled windows, all flagged")


def check_results(store: RunStore) -> Check:
    config = store.manifest().get("config") or {}
    wanted = list(config.get("strategies", [])) if isinstance(config, dict) else []
    have = store.results()
    missing = [s for s in wanted if s not in have]
    if missing:
        return Check("results_complete", False, f"no final result for: {', '.join(missing)} (resume the run)")
    return Check("results_complete", True, f"{len(have)} strategies finished")


CHECKS = (check_manifest, check_phases, check_time, check_energy, check_throttle, check_results)


def verify(store: RunStore) -> list[Check]:
    """Run every named check on ``store``."""
    return [check(store) for check in CHECKS]
