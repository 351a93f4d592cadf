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
- ``results_complete`` — every strategy of the configuration has a final result;
- ``results_recomputed`` — every strategy's stored result agrees with the rows it summarises (inference,
  miss, switch and level-change counts; life, final state of charge and load energy from the last battery
  state; ``life_h`` and ``miss_rate`` from their parts); time-compressed hil results only in their parts;
- ``sqlite_integrity`` — SQLite's ``PRAGMA integrity_check`` finds the file sound;
- ``content_digest`` — the chained content digest recorded as the run was written
  (:mod:`testbed.runstore.chain`) replays over the rows as they are now.

Phases are compared on the monotonic clock only within one boot (each phase records its boot id); across
boots, a later boot's phases must begin after the earlier boot's on the wall clock.

Every problem is a named FAIL: a file SQLite cannot read (damaged pages, a flipped header bit) fails
``sqlite_integrity`` (and the checks that could not read), never an internal error.

The checks read the run through :class:`~testbed.runstore.reader.RunReader`, so verifying never writes to
the run store (a run has one writer) and works on a run that is still being written or lies on a read-only
disk.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from devices.errors import TestbedError
from testbed.runstore.reader import Phase, RunReader, StrategyResult
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


def _boots(phases: list[Phase]) -> list[list[Phase]]:
    """Phases grouped by boot (``None`` = unknown: one group), groups in wall-clock order of their first start."""
    groups: dict[str | None, list[Phase]] = {}
    for p in phases:
        groups.setdefault(p.boot_id, []).append(p)
    return sorted(groups.values(), key=lambda g: min(p.wall_start_s for p in g))


def check_phases(run: RunReader) -> Check:
    phases = run.phases()
    if not phases:
        return Check("phases_monotonic", False, "no phases recorded")
    boots = _boots(phases)
    prev_boot_last_wall = float("-inf")
    for group in boots:
        ordered = sorted(group, key=lambda p: p.mono_start_s)  # concurrent writers may interleave rows
        if ordered[0].wall_start_s < prev_boot_last_wall:
            return Check("phases_monotonic", False, f"phase {ordered[0].name!r}: a later boot starts before an earlier")
        prev_wall = float("-inf")
        for p in ordered:
            if p.wall_start_s < prev_wall:
                return Check("phases_monotonic", False, f"phase {p.name!r}: wall clock went back against monotonic")
            if p.ends_before_it_starts:
                return Check("phases_monotonic", False, f"phase {p.name!r} ends before it starts")
            prev_wall = p.wall_start_s
        prev_boot_last_wall = max(p.wall_start_s for p in group)
    open_ = [p.name for p in phases if p.mono_end_s is None and not p.name.endswith("(interrupted)")]
    if open_:
        return Check("phases_monotonic", False, f"phases never ended: {', '.join(open_)}")
    return Check("phases_monotonic", True, f"{len(phases)} phases in order ({len(boots)} boot(s))")


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


#: Relative tolerance when a stored float is compared with the value recomputed from rows.
RECOMPUTE_REL_TOL = 1e-9


def _close(a: float, b: float) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return math.isclose(a, b, rel_tol=RECOMPUTE_REL_TOL, abs_tol=1e-12)


def _recompute(run: RunReader, r: StrategyResult) -> list[str]:
    """What in ``r`` disagrees with the rows of its strategy (empty when everything agrees)."""
    bad: list[str] = []
    s = r.strategy
    if not _close(r.life_h, r.life_s / 3600.0):
        bad.append(f"life_h {r.life_h:g} ≠ life_s/3600 = {r.life_s / 3600.0:g}")
    if r.inferences and not _close(r.miss_rate, r.deadline_misses / r.inferences):
        bad.append(f"miss_rate {r.miss_rate:g} ≠ deadline_misses/inferences")
    if r.compressed:  # a time-compressed hil result is extrapolated: only its parts can be checked
        return bad
    n, misses = run.query_one("SELECT count(*), coalesce(sum(deadline_miss), 0) FROM inferences WHERE strategy = ?",
                              (s,)) or (0, 0)  # fmt: skip
    if r.inferences != n:
        bad.append(f"inferences {r.inferences} but {n} inference rows")
    if r.deadline_misses != misses:
        bad.append(f"deadline_misses {r.deadline_misses} but {misses} rows miss their deadline")
    sw = run.query_one("SELECT count(*) FROM switches WHERE strategy = ?", (s,))
    if sw is not None and r.switches != sw[0]:
        bad.append(f"switches {r.switches} but {sw[0]} switch rows")
    lc = run.query_one("SELECT count(*) FROM level_changes WHERE strategy = ? AND from_level IS NOT NULL", (s,))
    if lc is not None and r.level_changes != lc[0]:
        bad.append(f"level_changes {r.level_changes} but {lc[0]} level-change rows")
    last = run.query_one(
        "SELECT t_s, soc, load_energy_j FROM battery_state WHERE strategy = ? ORDER BY rowid DESC LIMIT 1", (s,)
    )
    if last is None:
        if r.inferences:
            bad.append("no battery state rows")
        return bad
    t_s, soc, e_j = last
    if not _close(r.life_s, t_s):
        bad.append(f"life_s {r.life_s:g} but the battery's last state is at {t_s:g} s")
    if not _close(r.soc_end, soc):
        bad.append(f"soc_end {r.soc_end:g} but the last battery state has {soc:g}")
    if not _close(r.load_energy_j, e_j):
        bad.append(f"load_energy_j {r.load_energy_j:g} but the last battery state has {e_j:g} J")
    return bad


def check_recomputed(run: RunReader) -> Check:
    results = [r for r in run.results().values() if isinstance(r, StrategyResult)]
    for r in results:
        bad = _recompute(run, r)
        if bad:
            return Check("results_recomputed", False, f"{r.strategy}: {'; '.join(bad[:3])}")
    return Check("results_recomputed", True, f"{len(results)} strategy results agree with their rows")


def check_integrity(run: RunReader) -> Check:
    problems = run.integrity_problems()
    if problems:
        return Check("sqlite_integrity", False, f"SQLite integrity check: {'; '.join(problems)[:300]}")
    return Check("sqlite_integrity", True, "SQLite integrity check ok")


def check_digest(run: RunReader) -> Check:
    rep = run.replay_chain()
    return Check("content_digest", rep.ok, rep.detail)


CHECKS: tuple[Callable[[RunReader], Check], ...] = (
    check_manifest,
    check_phases,
    check_time,
    check_energy,
    check_throttle,
    check_results,
    check_recomputed,
    check_integrity,
    check_digest,
)
CHECK_NAMES = (
    "manifest_complete", "phases_monotonic", "time_monotonic", "energy_balance", "throttle_flagged",
    "results_complete", "results_recomputed", "sqlite_integrity", "content_digest",
)  # fmt: skip


def _safe(check: Callable[[RunReader], Check], name: str, run: RunReader) -> Check:
    try:
        return check(run)
    except (TestbedError, sqlite3.Error, ValueError, KeyError, TypeError, OverflowError) as exc:
        return Check(name, False, f"cannot read what this check needs: {str(exc)[:200]}")


def verify(run: RunReader) -> list[Check]:
    """Run every named check on ``run``; a check that cannot read its rows is a FAIL of that check."""
    return [_safe(check, name, run) for check, name in zip(CHECKS, CHECK_NAMES, strict=True)]


def verify_run(path: str | Path) -> list[Check]:
    """Open the run at ``path`` read-only and run every check; :class:`BadInputError` if there is no run file.

    A run file SQLite cannot open or read (damaged) gives failing checks, not an error."""
    from testbed.runstore.reader import _run_file

    _run_file(path)  # no run.sqlite at all: bad input (exit 2)
    try:
        run = RunReader.open(path)
    except TestbedError as exc:
        return [Check(name, False, f"cannot open the run store: {exc}") for name in CHECK_NAMES]
    with run:
        return verify(run)
