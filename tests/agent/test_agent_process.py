"""The real agent process on loopback: auth, leases, frequency, measurement, restore after signals and kill."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time

import httpx
import pytest

from devices.fake.kernel import FakeKernel
from testbed.agent.client import AgentClient, AgentRequestError, AsyncAgentClient
from tests.agent.conftest import start_agent

P0 = "sys/devices/system/cpu/cpufreq/policy0"


def governor(root) -> str:
    return (root / P0 / "scaling_governor").read_text().strip()


def test_token_is_required_except_for_the_schema(agent):
    assert httpx.get(f"{agent.url}/openapi.json").status_code == 200
    assert httpx.get(f"{agent.url}/v1/info").status_code == 401
    r = httpx.get(f"{agent.url}/v1/info", headers={"Authorization": "Bearer wrong-token-000000"})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    with AgentClient(agent.url, agent.token) as c:
        info = c.info()
    assert info["profile"] == "rpi4" and info["emulated"] is True and info["meter"]["uri"] == "model://rpi4"
    assert [lv["name"] for lv in info["levels"]] == ["f1500", "f1000", "f750", "f600"]


def test_lease_conflicts_and_lease_required(agent):
    with AgentClient(agent.url, agent.token) as a, AgentClient(agent.url, agent.token) as b:
        with pytest.raises(AgentRequestError) as e:
            b.set_frequency(level="f600")
        assert e.value.status == 423
        a.acquire("alice", 30)
        with pytest.raises(AgentRequestError, match="leased to 'alice'") as e:
            b.acquire("bob", 30)
        assert e.value.status == 409
        with pytest.raises(AgentRequestError):
            b.set_frequency(level="f600")  # no lease id
        a.set_frequency(level="f600")
        assert governor(agent.root) == "userspace"
        a.release()
        assert governor(agent.root) == "ondemand"  # releasing restores the board
        b.acquire("bob", 30)


def test_measure_window_reports_latency_energy_and_state(agent, mlp_onnx):
    with AgentClient(agent.url, agent.token) as c, c.lease("test"):
        model = c.load_model(str(mlp_onnx))
        fast = c.measure(model["model_id"], inferences=30, warmup=2, level="f1500", deadline_ms=1000)
        slow = c.measure(model["model_id"], inferences=30, warmup=2, level="f600", period_ms=5)
        assert (agent.root / P0 / "scaling_cur_freq").read_text().strip() == "600000"
    assert fast["latency"]["count"] == 30 and fast["latency"]["deadline_misses"] == 0
    assert fast["latency"]["p50_ms"] <= fast["latency"]["p99_ms"] <= fast["latency"]["max_ms"]
    assert slow["emulated_slowdown"] == pytest.approx(1500000 / 600000)
    assert slow["before"]["frequencies"]["policy0"]["cur_khz"] == 600000
    assert slow["wall_s"] >= 29 * 0.005  # requests were released every 5 ms
    for r in (fast, slow):
        assert r["energy"]["energy_j"] > 0 and r["energy_per_inference_j"] > 0
        assert not r["throttled_during"] and not r["frequency_changed_during"]
    assert governor(agent.root) == "ondemand"  # the lease context released and restored


def test_upload_and_switch(agent, mlp_onnx):
    with AgentClient(agent.url, agent.token) as c, c.lease("test"):
        model = c.upload_model(mlp_onnx)
        assert model["pattern_sets"][0]["name"] == "default"
        sw = c.switch(model["model_id"], "default")
        assert 0 <= sw["switch_ms"] < 45
        with pytest.raises(AgentRequestError) as e:
            c.switch("m999", "default")
        assert e.value.status == 404
        r = httpx.put(
            f"{agent.url}/v1/models/upload",
            params={"sha256": "0" * 64},
            content=b"abc",
            headers={"Authorization": f"Bearer {agent.token}", "X-Testbed-Lease": c.lease_id or ""},
        )
        assert r.status_code == 400 and "sha256" in r.json()["detail"]


def test_bad_input_is_4xx(agent):
    headers = {"Authorization": f"Bearer {agent.token}"}
    r = httpx.post(f"{agent.url}/v1/lease", json={"holder": "", "ttl_s": -1}, headers=headers)
    assert r.status_code == 422
    r = httpx.post(f"{agent.url}/v1/lease", content=b"x" * 100_000, headers=headers)
    assert r.status_code == 413
    with AgentClient(agent.url, agent.token) as c, c.lease("t"):
        with pytest.raises(AgentRequestError, match="not an available frequency") as e:
            c.set_frequency(policy="policy0", freq_khz=123)
        assert e.value.status == 400
        with pytest.raises(AgentRequestError, match="unknown policy"):
            c.set_frequency(policy="policy7", freq_khz=600000)
        with pytest.raises(AgentRequestError, match="model artifact not found"):
            c.load_model("nonexistent/model.onnx")  # inside the models directory, but missing
        with pytest.raises(AgentRequestError, match="inside the agent's models directory") as e:
            c.load_model("/nonexistent/model.onnx")  # outside: refused whether it exists or not
        assert e.value.status == 403


def test_lease_expiry_restores_the_board(agent):
    with AgentClient(agent.url, agent.token) as c:
        c.acquire("forgetful", ttl_s=1)
        c.set_frequency(level="f750")
        assert governor(agent.root) == "userspace"
        deadline = time.monotonic() + 10
        while governor(agent.root) != "ondemand" and time.monotonic() < deadline:
            time.sleep(0.1)
    assert governor(agent.root) == "ondemand"
    assert (agent.root / P0 / "scaling_cur_freq").read_text().strip() == "1500000"


def test_sigterm_restores_the_board(tmp_path):
    a = start_agent(tmp_path)
    with AgentClient(a.url, a.token) as c:
        c.acquire("t", 60)
        c.set_frequency(level="f600")
    # uvicorn shuts down gracefully (lifespan: restore), then re-raises the signal, as a service should
    assert a.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
    assert governor(a.root) == "ondemand"


def test_kill_then_restart_recovers_the_board(tmp_path):
    a = start_agent(tmp_path)
    with AgentClient(a.url, a.token) as c:
        c.acquire("t", 60)
        c.set_frequency(level="f600")
    a.stop(signal.SIGKILL)
    assert governor(a.root) == "userspace"  # nobody could restore it
    b = start_agent(tmp_path)  # the next start restores from the state file
    try:
        assert governor(b.root) == "ondemand"
    finally:
        b.stop()


def test_concurrent_async_clients(agent):
    async def main() -> list[dict]:
        clients = [AsyncAgentClient(agent.url, agent.token) for _ in range(10)]
        try:
            return await asyncio.gather(*(c.info() for c in clients for _ in range(3)))
        finally:
            for c in clients:
                await c.__aexit__()

    results = asyncio.run(main())
    assert len(results) == 30 and all(r["profile"] == "rpi4" for r in results)


def test_non_loopback_bind_needs_a_token_file(tmp_path):
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "testbed",
            "agent",
            "serve",
            "--host",
            "0.0.0.0",
            "--emulate",
            "rpi4",
            "--state-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 2 and "--token-file FILE is required" in res.stderr


def test_cli_info_and_measure(agent, mlp_onnx):
    env_cmd = [sys.executable, "-m", "testbed", "agent"]
    tok = agent.root.parent / "token"
    res = subprocess.run(
        [*env_cmd, "info", agent.url, "--token-file", str(tok), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["profile"] == "rpi4"
    res = subprocess.run(
        [
            *env_cmd,
            "measure",
            agent.url,
            "--token-file",
            str(tok),
            "--model",
            str(mlp_onnx),
            "--inferences",
            "10",
            "--level",
            "f1000",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["latency"]["count"] == 10 and out["before"]["frequencies"]["policy0"]["cur_khz"] == 1000000
    res = subprocess.run(
        [*env_cmd, "info", agent.url, "--token-file", str(mlp_onnx)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 2 and "not a token file" in res.stderr
    wrong = agent.root.parent / "wrong-token"
    wrong.write_text("x" * 32 + "\n")
    res = subprocess.run(
        [*env_cmd, "info", agent.url, "--token-file", str(wrong)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 2 and "agent answered 401" in res.stderr


def test_emulated_tree_is_a_real_fake_kernel(agent):
    assert FakeKernel.load(agent.root).profile.name == "rpi4"
