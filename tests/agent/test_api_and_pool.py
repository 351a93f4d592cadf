"""The typed agent seam: both clients implement their protocol (and really talk to an agent), and the pool
takes one lease per board and gives every lease back — on success, on an error in the block, and when a
board cannot be leased."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from devices.errors import BadInputError, HardwareError
from testbed.agent.api import AgentAPI, AsyncAgentAPI
from testbed.agent.client import AgentClient, AgentRequestError, AsyncAgentClient
from testbed.agent.launch import LocalAgent, start_local_agent
from testbed.agent.loading import load_on_agent
from testbed.agent.pool import AgentEndpoint, AgentPool, is_loopback
from tests.agent.conftest import write_mlp_onnx


@pytest.fixture(scope="module")
def two_agents(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[LocalAgent]]:
    agents = [start_local_agent(tmp_path_factory.mktemp(f"agent{i}")) for i in range(2)]
    try:
        yield agents
    finally:
        for a in agents:
            a.stop()


def _lease_holder(agent: LocalAgent) -> str | None:
    with AgentClient(agent.url, agent.token) as c:
        lease = c.info()["lease"]
    return lease["holder"] if lease else None


def test_both_clients_implement_their_protocol(two_agents: list[LocalAgent], tmp_path: Path) -> None:
    a = two_agents[0]
    model = write_mlp_onnx(a.state_dir / "models" / "m.onnx", width=8)  # loads by path only from there
    with AgentClient(a.url, a.token) as sync:
        assert isinstance(sync, AgentAPI)
        api: AgentAPI = sync
        with api.lease("proto-sync"):
            loaded = api.load_model(str(model))
            m = api.measure(loaded["model_id"], inferences=3, warmup=0)
            assert m["latency"]["count"] == 3 and len(m["latencies_ms"]) == 3
            assert api.unload_model(loaded["model_id"]) == {"unloaded": loaded["model_id"]}
            assert api.info()["models"] == []

    async def through_async() -> tuple[str, str]:
        client = AsyncAgentClient(a.url, a.token)
        assert isinstance(client, AsyncAgentAPI)
        aapi: AsyncAgentAPI = client
        try:
            await aapi.acquire("proto-async", 30)
            loaded = await aapi.upload_model(model)
            unloaded = await aapi.unload_model(loaded["model_id"])
            info = await aapi.info()
            await aapi.release()
            return unloaded["unloaded"], info["lease"]["holder"] if info["lease"] else ""
        finally:
            await aapi.aclose()

    unloaded, holder = asyncio.run(through_async())
    assert unloaded.startswith("m") and holder == "proto-async"
    assert _lease_holder(a) is None


def test_pool_leases_every_board_and_releases_them_after(two_agents: list[LocalAgent], tmp_path: Path) -> None:
    endpoints = [AgentEndpoint(a.url, a.token) for a in two_agents]
    model = write_mlp_onnx(tmp_path / "m.onnx", width=8)
    with AgentPool(endpoints, holder="pool-test") as pool:
        assert len(pool) == 2 and [pa.url for pa in pool] == [a.url for a in two_agents]
        assert all(_lease_holder(a) == "pool-test" for a in two_agents)
        assert pool.first().local and all(isinstance(pa.agent, AgentAPI) for pa in pool)
        dealt = pool.deal(["s1", "s2", "s3"])
        assert [(pa.index, items) for pa, items in dealt] == [(0, ["s1", "s3"]), (1, ["s2"])]
        assert [pa.index for pa, _ in pool.deal(["only"])] == [0]
        loaded = load_on_agent(pool.first().agent, model, pool.first().local)
        assert [ps["name"] for ps in loaded["pattern_sets"]] == ["default"]

        seen: list[int] = []

        def worker() -> None:
            with pool.checkout(timeout_s=30) as pa:
                pa.agent.info()
                seen.append(pa.index)

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(seen) == 4 and set(seen) <= {0, 1}
    assert [_lease_holder(a) for a in two_agents] == [None, None]
    assert pool.agents == []


def test_pool_releases_every_lease_on_an_error(two_agents: list[LocalAgent]) -> None:
    endpoints = [AgentEndpoint(a.url, a.token) for a in two_agents]
    with pytest.raises(RuntimeError, match="boom"), AgentPool(endpoints, holder="pool-err"):
        assert all(_lease_holder(a) == "pool-err" for a in two_agents)
        raise RuntimeError("boom")
    assert [_lease_holder(a) for a in two_agents] == [None, None]


def test_a_board_that_cannot_be_leased_releases_the_others(two_agents: list[LocalAgent]) -> None:
    first, second = two_agents
    with AgentClient(second.url, second.token) as other, other.lease("someone-else"):
        pool = AgentPool([AgentEndpoint(a.url, a.token) for a in two_agents], holder="pool-busy")
        with pytest.raises(AgentRequestError) as err, pool:
            pass
        assert err.value.status == 409
        assert _lease_holder(first) is None  # the lease taken before the failure was given back
        assert _lease_holder(second) == "someone-else"
    assert pool.agents == []


def test_pool_checkout_times_out_and_bad_pools_are_refused(two_agents: list[LocalAgent]) -> None:
    a = two_agents[0]
    with pytest.raises(BadInputError, match="at least one"):
        AgentPool([], holder="x")
    with pytest.raises(BadInputError, match="listed twice"):
        AgentPool([AgentEndpoint(a.url, a.token), AgentEndpoint(a.url + "/", a.token)], holder="x")
    pool = AgentPool.from_urls([a.url], a.token, holder="pool-one")
    with pytest.raises(BadInputError, match="not open"):
        pool.first()
    with pool, pool.checkout() as busy:
        assert busy.index == 0
        with pytest.raises(HardwareError, match="no free agent"), pool.checkout(timeout_s=0.05):
            pass
    assert is_loopback("http://127.0.0.1:1") and not is_loopback("http://10.0.0.2:8765")
