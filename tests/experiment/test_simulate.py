"""The event-driven simulator against closed forms, RT3's own accounting, and the profile's semantics."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from testbed.battery.rt3_accounting import RT3_FREQ_GHZ, RT3_SPLIT, RT3_VOLT_V, rt3_power_w, rt3_runs
from testbed.experiment.assemble import build_simulation
from testbed.experiment.config import load_experiment
from testbed.experiment.runner import run_experiment
from testbed.experiment.strategy import make_plan, period_energy_j
from testbed.paths import profile_table_path
from testbed.runstore.executor import FINISHED_MANIFEST
from testbed.runstore.store import RunStore
from tests.experiment.helpers import flat_profile, write_experiment
from traces.profile import load_profile_table


def _exp(tmp_path: Path, profile: Path | str, body: str) -> Path:
    return write_experiment(tmp_path / "e.toml", f'name = "t"\n{body}\n[profile]\ntable = "{profile}"\n')


def test_bucket_life_and_runs_match_closed_form(tmp_path: Path) -> None:
    prof = flat_profile(tmp_path / "p.csv", {"f1": (1_000_000, 4.0, 1.0)}, {"dense": (0.0, 0.9, {"f1": 50.0})})
    cfg = load_experiment(
        _exp(
            tmp_path,
            prof,
            'strategies = ["dvfs-dense"]\n[requests]\nperiod_ms = 200.0\ndeadline_ms = 100.0\n'
            '[battery]\nmodel = "bucket"\nenergy_j = 1000.0\n[policy]\nthresholds = [0.5]\nlevels = ["f1", "f1"]\n',
        )
    )
    r = build_simulation(cfg, "dvfs-dense").run()
    e_inf, e_period = 4.0 * 0.05, 4.0 * 0.05 + 1.0 * 0.15
    n = math.floor((1000.0 - e_inf) / e_period) + 1  # inference i completes at e_inf + i·e_period joules
    rest = 1000.0 - (e_inf + (n - 1) * e_period)
    t_last = (n - 1) * 0.2 + 0.05
    life = t_last + (rest / 1.0 if rest <= 0.15 else 0.15 + (rest - 0.15) / 4.0)
    assert r.inferences == n
    assert r.life_s == pytest.approx(life, rel=1e-9)
    assert r.deadline_misses == 0
    assert r.load_energy_j == pytest.approx(1000.0, rel=1e-9)


def test_back_to_back_bucket_reproduces_rt3_runs(tmp_path: Path) -> None:
    """No idle power, no switch cost, requests always waiting: RT3's runs accounting within one per level."""
    latency_ms = {"hi": 100.0, "mid": 95.0, "lo": 90.0}
    levels = {
        name: (int(f * 1e6), rt3_power_w(f, v), 0.0)
        for name, f, v in zip(("hi", "mid", "lo"), RT3_FREQ_GHZ, RT3_VOLT_V, strict=True)
    }
    sets = {ps: (sp, 0.9, {lv: latency_ms[lv] for lv in levels}) for ps, sp in (("a", 0.1), ("b", 0.5), ("c", 0.8))}
    prof = flat_profile(tmp_path / "p.csv", levels, sets)
    cfg = load_experiment(
        _exp(
            tmp_path,
            prof,
            'strategies = ["rt3"]\n[requests]\nperiod_ms = 0.001\ndeadline_ms = 1e9\n'
            '[battery]\nmodel = "bucket"\nenergy_j = 378.0\n'
            '[policy]\nthresholds = [0.5, 0.2]\nlevels = ["hi", "mid", "lo"]\n'
            '[strategy]\nswitch_ms = 0.0\nrt3_sets = { hi = "a", mid = "b", lo = "c" }\n',
        )
    )
    r = build_simulation(cfg, "rt3").run()
    ref = rt3_runs(378.0, RT3_SPLIT, RT3_FREQ_GHZ, RT3_VOLT_V, [latency_ms[k] for k in ("hi", "mid", "lo")])
    assert abs(r.inferences - ref.runs) <= 3
    for lv, runs_lv in zip(("hi", "mid", "lo"), ref.runs_per_level, strict=True):
        assert abs(r.time_at_level_s[lv] / (latency_ms[lv] / 1e3) - runs_lv) <= 2
    assert r.switches == 2


def test_strategy_choices_follow_the_profile() -> None:
    t = load_profile_table(profile_table_path("rpi4"))
    from testbed.experiment.config import StrategyCfg

    levels = ["f1500", "f1000", "f600"]
    cfg = StrategyCfg()
    rt3 = make_plan("rt3", t, levels, 115.0, 0.2, cfg)
    for lv in levels:
        got_lv, ps = rt3.choice[lv]
        assert got_lv == lv and t.get(ps, lv).latency_p99_ms <= 115.0
        k = t.pattern_sets.index(ps)
        assert k == 0 or t.get(t.pattern_sets[k - 1], lv).latency_p99_ms > 115.0  # nothing denser meets it
    assert set(make_plan("dense-max", t, levels, 115.0, 0.2, cfg).choice.values()) == {("f1500", "dense")}
    static = set(make_plan("static-sparse", t, levels, 115.0, 0.2, cfg).choice.values())
    assert len({ps for _, ps in static}) == 1
    oracle = make_plan("oracle", t, levels, 115.0, 0.2, cfg)
    for lv in levels:
        o_lv, o_ps = oracle.choice[lv]
        assert t.get(o_ps, o_lv).latency_p99_ms <= 115.0
        assert t.accuracy(o_ps) >= t.accuracy(rt3.choice[lv][1])
        assert period_energy_j(t, o_ps, o_lv, 0.2) <= period_energy_j(t, rt3.choice[lv][1], lv, 0.2) + 1e-12


def _rpi4(tmp_path: Path, strategies: str, battery: str, extra: str = "") -> Path:
    return _exp(
        tmp_path, "rpi4",
        f"strategies = {strategies}\nseed = 3\n[requests]\nperiod_ms = 200.0\ndeadline_ms = 115.0\n{battery}\n{extra}",
    )  # fmt: skip


def test_full_run_rows_agree_with_results(tmp_path: Path) -> None:
    exp = _rpi4(
        tmp_path, '["dense-max", "dvfs-dense", "static-sparse", "rt3", "oracle"]',
        '[battery]\nmodel = "bucket"\nenergy_j = 2000.0\nrecord_interval_s = 5.0',
        '[policy]\nthresholds = [0.5, 0.2]\nlevels = ["f1500", "f1000", "f600"]',
    )  # fmt: skip
    results = run_experiment(load_experiment(exp), tmp_path / "run")
    store = RunStore.open(tmp_path / "run")
    assert set(FINISHED_MANIFEST) <= set(store.manifest())  # the same keys as hil and search runs
    for s, r in results.items():
        rows = store.rows("inferences", s)
        assert len(rows) == r.inferences
        assert sum(row[7] for row in rows) == r.deadline_misses
        assert sum(1 for row in rows if row[5] > 115.0) == r.deadline_misses
        assert len(store.rows("switches", s)) == r.switches
        energy_rows = sum(row[6] for row in rows) + sum(row[5] for row in store.rows("switches", s))
        assert energy_rows < r.load_energy_j  # the rest is idle power
        assert sum(r.time_at_set_s.values()) == pytest.approx(r.life_s, rel=1e-9)
    # dense at the lower levels misses its deadline; the sparse strategies do not (beyond switch moments)
    assert results["dvfs-dense"].deadline_misses > 0.3 * results["dvfs-dense"].inferences
    assert results["dense-max"].deadline_misses == 0
    assert results["rt3"].deadline_misses <= results["rt3"].switches
    assert results["rt3"].life_s > results["dense-max"].life_s
    assert results["oracle"].life_s >= results["rt3"].life_s * 0.999
    store.close()


def test_governor_follows_load(tmp_path: Path) -> None:
    heavy = _rpi4(
        tmp_path, '["dvfs-dense"]', '[battery]\nmodel = "bucket"\nenergy_j = 500.0', '[policy]\nkind = "governor"'
    )
    r = build_simulation(load_experiment(heavy), "dvfs-dense").run()
    assert max(r.time_at_level_s, key=r.time_at_level_s.get) == "f1500"
    light = write_experiment(tmp_path / "l.toml", heavy.read_text().replace("period_ms = 200.0", "period_ms = 2000.0"))
    r = build_simulation(load_experiment(light), "dvfs-dense").run()
    assert max(r.time_at_level_s, key=r.time_at_level_s.get) == "f600"


def test_replayed_dvfs_trace(tmp_path: Path) -> None:
    trace = tmp_path / "dvfs.csv"
    trace.write_text("# dvfs_trace v1; duration_s=20\nt_s,domain,freq_khz\n0,policy0,1500000\n10,policy0,590000\n")
    exp = _rpi4(
        tmp_path, '["rt3"]', '[battery]\nmodel = "bucket"\nenergy_j = 800.0',
        f'[policy]\nkind = "trace"\ntrace = "{trace}"\n',
    )  # fmt: skip
    r = build_simulation(load_experiment(exp), "rt3").run()
    hi, lo = r.time_at_level_s["f1500"], r.time_at_level_s["f600"]
    assert set(r.time_at_level_s) == {"f1500", "f600"}
    assert hi == pytest.approx(lo, rel=0.1)  # 10 s each per 20-s loop
    assert r.level_changes >= 2 * math.floor(r.life_s / 20.0) - 1


def test_request_trace_arrivals(tmp_path: Path) -> None:
    (tmp_path / "req.csv").write_text("t_s\n0\n0.1\n0.15\n1.0\n")
    exp = _exp(
        tmp_path, "rpi4",
        'strategies = ["dense-max"]\n[requests]\ntrace = "req.csv"\ndeadline_ms = 115.0\n'
        '[battery]\nmodel = "bucket"\nenergy_j = 50.0\n',
    )  # fmt: skip
    sim = build_simulation(load_experiment(exp), "dense-max")
    assert [sim.arrivals.at(k) for k in range(5)] == pytest.approx([0, 0.1, 0.15, 1.0, 1.0 + 1.0 / 3])
    r = sim.run()
    assert r.deadline_misses > 0  # 0.1 and 0.15 queue behind 88-ms inferences
