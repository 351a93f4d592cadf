"""Profiling through a real emulated agent process: rows, repetition to a CI target, throttle flags."""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from devices.agent.runner import sha256_file
from devices.fake.kernel import FakeKernel
from testbed.agent.client import AgentClient
from testbed.agent.launch import start_local_agent
from testbed.agent.loading import load_on_agent
from testbed.experiment.profiler import ProfileOptions, artifact_metadata, profile_through_agent, rel_half_width, t95
from tests.agent.conftest import write_mlp_onnx
from traces.profile import load_profile_table


def _artifact(d: Path, prefix: str = "ps", sets: tuple[tuple[float, float], ...] = ((0.0, 0.91), (0.5, 0.9))) -> Path:
    d.mkdir()
    entries = []
    for i, (sp, acc) in enumerate(sets):
        f = write_mlp_onnx(d / f"{prefix}{i}.onnx", width=96, seed=i)
        entries.append(
            {"name": f"{prefix}{i}", "file": f.name, "sha256": sha256_file(f), "sparsity": sp, "accuracy": acc}
        )
    (d / "manifest.json").write_text(json.dumps({"format": "rt3-onnx/1", "pattern_sets": entries}))
    return d


def test_rel_half_width_is_the_t_interval() -> None:
    xs = [1.0, 1.1, 0.9, 1.05, 0.95]
    expected = t95(4) * np.std(xs, ddof=1) / math.sqrt(5) / np.mean(xs)
    assert rel_half_width(xs) == pytest.approx(expected)
    assert rel_half_width([1.0]) == math.inf
    assert t95(1) > t95(5) > t95(30) > t95(1000) == 1.96


def test_profile_through_emulated_agent(tmp_path: Path) -> None:
    art = _artifact(tmp_path / "art")
    meta = artifact_metadata(art)
    assert meta == {"ps0": {"sparsity": 0.0, "accuracy": 0.91}, "ps1": {"sparsity": 0.5, "accuracy": 0.9}}
    opts = ProfileOptions(window_s=0.2, warmup=2, min_reps=2, max_reps=3, rel_ci=0.5, levels=("f1500", "f600"))
    agent = start_local_agent(tmp_path / "agent", "rpi4")
    with agent, AgentClient(agent.url, agent.token) as c, c.lease("test"):
        loaded = load_on_agent(c, art, local=True)  # the agent loads only from its models directory
        names = [p["name"] for p in loaded["pattern_sets"]]
        table = profile_through_agent(c, loaded["model_id"], names, meta, opts)
        assert table.levels == ["f1500", "f600"] and table.pattern_sets == ["ps0", "ps1"]
        again_at = table.meta["remeasured"].split(",")  # levels measured again (not monotone), with repeats
        for row in table.rows.values():
            # a level measured again pools up to max_reps more windows per round (profiler module doc)
            assert 2 <= row.repetitions <= opts.max_reps * (1 + again_at.count(row.level))
            assert row.throttled == 0
            assert row.latency_p50_ms <= row.latency_p90_ms <= row.latency_p99_ms
            assert row.mean_power_w <= row.peak_power_w
        for ps in names:
            hi, lo = table.get(ps, "f1500"), table.get(ps, "f600")
            assert lo.latency_p50_ms > hi.latency_p50_ms  # the emulated clock is slower
            assert lo.mean_power_w < hi.mean_power_w  # and the modelled meter draws less
        # the round trip through CSV keeps every number
        out = tmp_path / "p.csv"
        out.write_text(table.to_csv())
        again = load_profile_table(out)
        assert again.get("ps1", "f600").accuracy == 0.9 and again.meta["board"] == "rpi4"

        # throttling on the board: every row measured from now on is flagged
        kernel = FakeKernel.load(agent.root)
        kernel.set_throttled_flags(0x50005)
        kernel.set_temperature("cpu-thermal", 83.5)
        one = ProfileOptions(window_s=0.2, warmup=1, min_reps=2, max_reps=2, levels=("f1000",), pattern_sets=("ps1",))
        flagged = profile_through_agent(c, loaded["model_id"], names, meta, one)
        assert [r.throttled for r in flagged.rows.values()] == [1]
        assert [r.temp_c_max for r in flagged.rows.values()] == [83.5]
        assert all(0 < r.temp_c_max < 83.5 for r in table.rows.values())  # the emulated idle temperature


def test_profile_cli_bad_input(tmp_path: Path) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "testbed", "profile", *args], capture_output=True, text=True)

    r = cli("--out", str(tmp_path / "p.csv"), "--artifact", str(tmp_path / "none.onnx"))
    assert r.returncode == 2 and r.stderr == f"error: {tmp_path / 'none.onnx'}: no such artifact\n"
    art = _artifact(tmp_path / "art")
    r = cli("--out", str(tmp_path / "p.csv"), "--artifact", str(art))
    assert r.returncode == 2 and "exactly one of --agent URL and --emulate" in r.stderr
    assert not (tmp_path / "p.csv").exists()
    r = cli("--out", str(tmp_path / "p.csv"), "--emulate", "rpi4", "--rel-ci", "2")
    assert r.returncode == 2 and r.stderr.startswith("error:") and r.stderr.count("\n") == 1


def test_statistics_helpers_agree_with_stdlib() -> None:
    from testbed.experiment.profiler import percentile

    xs = sorted([3.0, 1.0, 2.0, 10.0, 4.0])
    assert percentile(xs, 50) == statistics.median(xs)
    assert percentile(xs, 100) == 10.0 and percentile(xs, 0) == 1.0


PROFILE_ARGS = [
    "--window-s",
    "0.1",
    "--min-reps",
    "2",
    "--max-reps",
    "2",
    "--levels",
    "f1500,f600",
    "--emulate",
    "rpi4",
]


def _profile_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "testbed", "profile", *args, *PROFILE_ARGS], capture_output=True, text=True
    )


@pytest.mark.slow
def test_profile_cli_profiles_two_artifacts_in_one_table(tmp_path: Path) -> None:
    """Changed with issue 15: the demo profiles the search's sets beside the pattern sets in one session."""
    a = _artifact(tmp_path / "a")
    b = _artifact(tmp_path / "b", prefix="L", sets=((0.25, 0.88),))
    out = tmp_path / "p.csv"
    r = _profile_cli("--artifact", str(a), "--artifact", str(b), "--out", str(out))
    assert r.returncode == 0, r.stderr
    table = load_profile_table(out)
    assert table.pattern_sets == ["ps0", "L0", "ps1"] and table.levels == ["f1500", "f600"]
    assert table.get("L0", "f600").accuracy == 0.88 and table.get("ps1", "f1500").sparsity == 0.5


def test_profile_cli_refuses_two_artifacts_with_the_same_set_names(tmp_path: Path) -> None:
    a = _artifact(tmp_path / "a")
    clash = tmp_path / "q.csv"
    r = _profile_cli("--artifact", str(a), "--artifact", str(a), "--out", str(clash))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "also in an earlier --artifact" in r.stderr
    assert not clash.exists()
