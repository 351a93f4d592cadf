"""A board farm on a local Ray instance against a real emulated agent: the actor holds the lease, jobs go to a
free board of the right kind, a hil sweep cell runs through the farm's board."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devices.errors import BadInputError
from testbed.agent.client import AgentClient, AgentRequestError
from testbed.agent.launch import LocalAgent, start_local_agent
from testbed.agent.pool import AgentEndpoint
from testbed.distributed.farm import BoardFarm, FarmTask, ProfileCellJob
from testbed.distributed.grid import build_grid
from testbed.distributed.sweep import run_sweep
from testbed.runstore.verify import verify_run
from traces.profile import load_profile_table

from .boards import artifact, hil_experiment

pytestmark = pytest.mark.usefixtures("local_ray")


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalAgent, Path]]:
    d = tmp_path_factory.mktemp("farm")
    agent = start_local_agent(d / "agent", "rpi4")
    with agent:  # a loopback agent loads by path from its models directory
        yield agent, artifact(agent.state_dir / "models" / "art")


def _lease_taken(agent: LocalAgent) -> bool:
    """Whether someone else holds the board: a second lease is refused with 409."""
    with AgentClient(agent.url, agent.token) as c:
        try:
            c.acquire("probe", 5.0)
        except AgentRequestError:
            return True
        c.release()
        return False


@pytest.mark.slow  # the profiling cell measures to steady state: about 30 s on 2 busy cores
def test_the_farm_holds_each_board_and_runs_jobs_on_its_kind(board: tuple[LocalAgent, Path], tmp_path: Path) -> None:
    agent, art = board
    with BoardFarm([AgentEndpoint(agent.url, agent.token)], holder="farm-test") as farm:
        assert farm.labels() == {"rpi4": 1}
        assert _lease_taken(agent)
        job = ProfileCellJob(str(art), str(tmp_path / "rpi4.csv"), levels=("f1500", "f600"), window_s=0.05)
        (result,) = farm.run([FarmTask("p", "rpi4", job)])
        assert result.error is None and result.board == agent.url
        table = load_profile_table(result.value)
        assert set(table.levels) == {"f1500", "f600"} and set(table.pattern_sets) == {"dense", "sparse"}
        with pytest.raises(BadInputError, match="no board of profile jetson-nano in the farm"):
            farm.run([FarmTask("x", "jetson-nano", job)])
    assert not _lease_taken(agent)  # closing the farm released the lease


def test_a_hil_sweep_cell_runs_on_the_farm_board(board: tuple[LocalAgent, Path], tmp_path: Path) -> None:
    agent, art = board
    exp = hil_experiment(tmp_path, [agent.url], agent.root.parent / "token", art)
    grid = build_grid(exp, ["requests.period_ms=25"])
    outcome = run_sweep(grid, tmp_path / "out", retries=0)
    (cell,) = outcome.cells
    assert cell.status == "done", cell.error
    assert set(cell.results) == {"dense-max", "rt3"} and all(r.life_s > 0 for r in cell.results.values())
    assert sum(r.inferences for r in cell.results.values()) > 0
    assert all(c.passed for c in verify_run(tmp_path / "out" / cell.name))
    assert not _lease_taken(agent)
