"""A real two-node Ray cluster on loopback (``ray start --head`` + a second node with its own resource): a sweep
whose cells land on both nodes, then a board farm of two emulated agents (rpi4, rpi5) scheduled by profile.

The nodes listen on 127.0.0.2 and 127.0.0.3 (loopback; Ray rewrites 127.0.0.1 to the host's address), use token
authentication, and are stopped by their process groups at the end.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from testbed.agent.launch import start_local_agent
from testbed.agent.pool import AgentEndpoint
from testbed.distributed.cluster import ray_session
from testbed.distributed.farm import BoardFarm, FarmTask, ProfileCellJob
from testbed.distributed.grid import build_grid
from testbed.distributed.sweep import run_sweep
from testbed.runstore.verify import verify_run

from .boards import artifact, hil_experiment
from .test_sweep import EXP

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow

HEAD_IP, WORKER_IP = "127.0.0.2", "127.0.0.3"


def _free_port(ip: str) -> int:
    with socket.socket() as s:
        s.bind((ip, 0))
        return int(s.getsockname()[1])


def _ray_start(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    ray_bin = str(Path(sys.executable).with_name("ray"))
    with log.open("wb") as fh:
        return subprocess.Popen([ray_bin, "start", "--block", *args], stdout=fh, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)  # fmt: skip


def _wait_for(log: Path, text: str, proc: subprocess.Popen[bytes], timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if text in log.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            raise AssertionError(f"ray start exited: {log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.5)
    raise AssertionError(f"ray start did not come up: {log.read_text(errors='replace')[-2000:]}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """End one node: its process group (the node's own processes only), TERM then KILL."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            continue
        time.sleep(1.0)  # let the group's children exit too


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``HEAD_IP:port`` of a running two-node cluster (1 CPU and a ``node_a``/``node_b`` resource each)."""
    if ray.is_initialized():
        ray.shutdown()
    logs = tmp_path_factory.mktemp("ray-cluster")
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)
    port = _free_port(HEAD_IP)
    head = _ray_start([
        "--head", f"--node-ip-address={HEAD_IP}", f"--port={port}", "--num-cpus=1", '--resources={"node_a": 1}',
        "--include-dashboard=false", "--disable-usage-stats",
    ], logs / "head.log", env)  # fmt: skip
    nodes = [head]
    try:
        _wait_for(logs / "head.log", "Ray runtime started", head)
        worker = _ray_start([
            f"--address={HEAD_IP}:{port}", f"--node-ip-address={WORKER_IP}", "--num-cpus=1",
            '--resources={"node_b": 1}', "--disable-usage-stats",
        ], logs / "worker.log", env)  # fmt: skip
        nodes.append(worker)
        _wait_for(logs / "worker.log", "Ray runtime started", worker)
        yield f"{HEAD_IP}:{port}"  # the driver joins with the machine's token (testbed.distributed.cluster)
    finally:
        for proc in reversed(nodes):
            _stop(proc)


def test_a_sweep_on_two_nodes_lands_cells_on_both(cluster: str, tmp_path: Path) -> None:
    exp = tmp_path / "exp.toml"
    exp.write_text(EXP.format(energy_j=3000.0))
    grid = build_grid(exp, ["requests.period_ms=100,150,200,250"])
    outcome = run_sweep(grid, tmp_path / "out", address=cluster)
    assert outcome.cluster is not None and outcome.cluster.nodes == 2 and outcome.cluster.cpus == 2
    assert [c.status for c in outcome.cells] == ["done"] * 4
    assert len({c.node_id for c in outcome.cells}) == 2  # both nodes ran cells
    for c in outcome.cells:
        assert all(check.passed for check in verify_run(tmp_path / "out" / c.name))


def test_a_board_farm_on_the_cluster_schedules_by_profile(cluster: str, tmp_path: Path) -> None:
    rpi4 = start_local_agent(tmp_path / "a4", "rpi4")
    (tmp_path / "a5").mkdir()
    (tmp_path / "a5" / "token").write_text(rpi4.token + "\n")  # one token for the farm
    (tmp_path / "a5" / "token").chmod(0o600)
    rpi5 = start_local_agent(tmp_path / "a5", "rpi5")
    with rpi4, rpi5:
        art4 = artifact(rpi4.state_dir / "models" / "art")
        art5 = artifact(rpi5.state_dir / "models" / "art")
        # hil cells: the rpi4 experiment names both boards; every cell must run on the rpi4 one
        exp = hil_experiment(tmp_path, [rpi4.url, rpi5.url], tmp_path / "a4" / "token", art4)
        grid = build_grid(exp, ["requests.period_ms=25,30"])
        outcome = run_sweep(grid, tmp_path / "hil", address=cluster, retries=0)
        assert [c.status for c in outcome.cells] == ["done", "done"], [c.error for c in outcome.cells]
        for c in outcome.cells:
            assert all(check.passed for check in verify_run(tmp_path / "hil" / c.name))
        # profiling cells of both kinds, each on its own board
        with ray_session(cluster), BoardFarm([AgentEndpoint(a.url, rpi4.token) for a in (rpi4, rpi5)]) as farm:
            assert farm.labels() == {"rpi4": 1, "rpi5": 1}
            jobs = [
                FarmTask("rpi5", "rpi5", ProfileCellJob(str(art5), str(tmp_path / "p5.csv"), levels=("f2400",),
                                                        window_s=0.05, max_reps=2)),
                FarmTask("rpi4", "rpi4", ProfileCellJob(str(art4), str(tmp_path / "p4.csv"), levels=("f1500",),
                                                        window_s=0.05, max_reps=2)),
            ]  # fmt: skip
            done = {r.key: r for r in farm.run(jobs)}
        assert done["rpi4"].error is None and done["rpi4"].board == rpi4.url
        assert done["rpi5"].error is None and done["rpi5"].board == rpi5.url
