"""The agent must not be a way in, and a window can be stopped: bombs, manifests, paths, leases, readers."""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from starlette.testclient import TestClient

from devices.agent.app import create_app
from devices.agent.leases import LeaseConflict, LeaseManager
from devices.agent.manifests import ArtifactLimits
from devices.agent.runner import load_artifact
from devices.agent.serve import load_or_create_token
from devices.agent.service import AgentService
from devices.board import Board
from devices.commands import CommandResult, CommandRunner
from devices.cpufreq import get_policy
from devices.errors import BadInputError
from devices.fake.kernel import FakeKernel
from devices.sysroot import open_sysfs
from testbed.agent.client import AgentClient, run_lease_key
from tests.agent.conftest import start_agent, write_mlp_onnx

TOKEN = "t" * 8 + "0123456789abcdefXYZ_-"


def _onnx_gather(path: Path, rows: int = 58) -> Path:
    """A real ONNX graph that looks token ids up in an embedding of ``rows`` rows (Gather)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    table = np.random.default_rng(0).standard_normal((rows, 8)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Gather", ["E", "tokens"], ["y"])],
        "embed",
        [helper.make_tensor_value_info("tokens", TensorProto.INT64, [1, "seq"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, "seq", 8])],
        [numpy_helper.from_array(table, "E")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def _rt3(path: Path, members: dict[str, bytes], manifest: dict | None = None, raw_manifest: bytes | None = None,
         compression: int = zipfile.ZIP_STORED) -> Path:  # fmt: skip
    body = manifest if manifest is not None else {
        "format": "rt3-artifact", "format_version": 1,
        "model": {"family": "lm", "config": {}, "inputs": [{"name": "tokens", "dtype": "int64"}], "seq_len": 16},
        "pattern_sets": [{"index": i, "name": f"s{i}", "sparsity": 0.0, "onnx": m}
                         for i, m in enumerate(k for k in members if k.endswith(".onnx"))],
        "files": {m: {"sha256": hashlib.sha256(b).hexdigest(), "bytes": len(b)} for m, b in members.items()},
    }  # fmt: skip
    with zipfile.ZipFile(path, "w", compression) as zf:
        zf.writestr("manifest.json", raw_manifest if raw_manifest is not None else json.dumps(body))
        for m, b in members.items():
            zf.writestr(m, b)
    return path


# ---- archives and manifests ------------------------------------------------------------------------------------


def test_a_member_that_inflates_is_refused_before_it_is_read(tmp_path: Path) -> None:
    bomb = _rt3(tmp_path / "bomb.rt3", {"sets/0.onnx": b"\0" * (64 << 20)}, compression=zipfile.ZIP_DEFLATED)
    assert bomb.stat().st_size < 1 << 20  # a small upload …
    with pytest.raises(BadInputError, match="compressed"):  # … that would inflate to 64 MiB
        load_artifact(bomb, "x")


def test_member_and_total_sizes_are_bounded(tmp_path: Path) -> None:
    art = _rt3(tmp_path / "big.rt3", {"sets/0.onnx": b"\1" * 5000, "sets/1.onnx": b"\2" * 5000})
    with pytest.raises(BadInputError, match="over the limit of 4096"):
        load_artifact(art, "x", limits=ArtifactLimits(max_member_bytes=4096))
    with pytest.raises(BadInputError, match="members total"):
        load_artifact(art, "x", limits=ArtifactLimits(max_total_bytes=8000))


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda m: m["files"].update({"sets/0.onnx": "nope"}), "files.sets/0.onnx"),
        (lambda m: m.update(pattern_sets=7), "pattern_sets"),
        (lambda m: m["model"].update(seq_len=2**40), "model.seq_len"),
        (lambda m: m["model"]["config"].update(vocab_size=-3), "vocab_size"),
        (lambda m: m.update(format_version="1"), "format_version"),
        (lambda m: m["pattern_sets"][0].update(onnx="sets/9.onnx"), "not in files"),
    ],
)
def test_malformed_rt3_manifests_are_bad_input(tmp_path: Path, mutate, fragment: str) -> None:
    onnx_bytes = write_mlp_onnx(tmp_path / "m.onnx", width=8).read_bytes()
    members = {"sets/0.onnx": onnx_bytes}
    manifest = {
        "format": "rt3-artifact", "format_version": 1, "model": {"config": {}, "seq_len": 4},
        "pattern_sets": [{"index": 0, "name": "s0", "sparsity": 0.0, "onnx": "sets/0.onnx"}],
        "files": {"sets/0.onnx": {"sha256": hashlib.sha256(onnx_bytes).hexdigest(), "bytes": len(onnx_bytes)}},
    }  # fmt: skip
    mutate(manifest)
    with pytest.raises(BadInputError, match=fragment.replace(".", r"\.")):
        load_artifact(_rt3(tmp_path / "a.rt3", members, manifest), "x")


def test_deeply_nested_manifest_is_bad_input(tmp_path: Path) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(BadInputError, match=r"nested too deeply|invalid JSON"):
        load_artifact(_rt3(tmp_path / "deep.rt3", {"sets/0.onnx": b"x"}, raw_manifest=deep), "x")
    d = tmp_path / "dir"
    d.mkdir()
    (d / "manifest.json").write_text('{"pattern_sets": ' + "[" * 50 + "]" * 50 + "}")
    with pytest.raises(BadInputError, match="nested too deeply"):
        load_artifact(d, "x")


def test_directory_manifest_cannot_leave_its_directory_or_ask_for_huge_inputs(tmp_path: Path) -> None:
    write_mlp_onnx(tmp_path / "outside.onnx", width=8)
    d = tmp_path / "dir"
    d.mkdir()
    (d / "manifest.json").write_text(json.dumps({"pattern_sets": [{"file": "../outside.onnx"}]}))
    with pytest.raises(BadInputError, match="leaves the model directory"):
        load_artifact(d, "x")
    write_mlp_onnx(d / "m.onnx", width=8)
    (d / "manifest.json").write_text(json.dumps({"pattern_sets": [{"file": "m.onnx"}],
                                                 "inputs": {"x": {"shape": [2**20, 2**20]}}}))  # fmt: skip
    with pytest.raises(BadInputError, match="over the limit"):
        load_artifact(d, "x")


@pytest.mark.parametrize("declared", [None, 100])
def test_token_ids_stay_inside_the_models_lookup_table(tmp_path: Path, declared: int | None) -> None:
    """An exported set whose embedding has 58 rows: ids are drawn below 58 whatever the manifest says."""
    raw = _onnx_gather(tmp_path / "g.onnx", rows=58).read_bytes()
    art = _rt3(tmp_path / "g.rt3", {"sets/0.onnx": raw})
    if declared is not None:
        with zipfile.ZipFile(art) as zf:
            m = json.loads(zf.read("manifest.json"))
        m["model"]["config"]["vocab_size"] = declared
        art = _rt3(tmp_path / "g2.rt3", {"sets/0.onnx": raw}, m)
    model = load_artifact(art, "x")
    assert model.inputs[0].high <= 58
    assert int(model.feeds()["tokens"].max()) < 58
    for _ in range(5):
        assert model.infer() >= 0


def test_checksum_mismatch_never_states_the_real_digest(tmp_path: Path) -> None:
    f = write_mlp_onnx(tmp_path / "m.onnx", width=8)
    real = hashlib.sha256(f.read_bytes()).hexdigest()
    with pytest.raises(BadInputError) as e:
        load_artifact(f, "x", expected_sha256="0" * 64)
    assert real not in str(e.value)


# ---- leases --------------------------------------------------------------------------------------------------


def test_a_holder_takes_its_own_lease_back_with_its_resume_key() -> None:
    lm = LeaseManager()
    first = lm.acquire("testbed-run-x", 10, resume_key="k" * 32)
    with pytest.raises(LeaseConflict):
        lm.acquire("testbed-run-x", 10)  # no key: someone else
    with pytest.raises(LeaseConflict):
        lm.acquire("testbed-run-x", 10, resume_key="j" * 32)  # wrong key
    with pytest.raises(LeaseConflict):
        lm.acquire("other", 10, resume_key="k" * 32)  # another holder
    again = lm.acquire("testbed-run-x", 10, resume_key="k" * 32)
    assert again.resumed_from == first.lease_id and again.lease_id != first.lease_id


# ---- the service over HTTP, in process ------------------------------------------------------------------------


class CountingRunner(CommandRunner):
    """The real command runner, counting the tools it spawns."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.calls = 0

    def run(self, tool: str, *args: str) -> CommandResult | None:
        self.calls += 1
        return super().run(tool, *args)


@pytest.fixture
def app_client(tmp_path: Path) -> Iterator[tuple[TestClient, AgentService, FakeKernel]]:
    kernel = FakeKernel.create(tmp_path / "board", "rpi4")
    board = Board(kernel.sysfs(), commands=CountingRunner(kernel.root), board="rpi4")
    service = AgentService(board, state_dir=tmp_path / "state", models_dir=tmp_path / "models", max_window_s=30)
    (tmp_path / "models").mkdir()
    with TestClient(create_app(service, TOKEN)) as client:
        client.headers["Authorization"] = f"Bearer {TOKEN}"
        yield client, service, kernel


def _lease(client: TestClient, holder: str = "h", ttl_s: float = 30) -> str:
    r = client.post("/v1/lease", json={"holder": holder, "ttl_s": ttl_s})
    assert r.status_code == 201, r.text
    lease_id = str(r.json()["lease_id"])
    client.headers["X-Testbed-Lease"] = lease_id
    return lease_id


def test_paths_outside_the_models_dir_are_refused_alike(app_client, tmp_path: Path) -> None:
    client, service, _ = app_client
    _lease(client)
    token_file = tmp_path / "secret-token"
    token_file.write_text(TOKEN)
    answers = [client.post("/v1/models", json={"path": p, "sha256": "0" * 64})
               for p in (str(token_file), str(tmp_path / "missing"), "../secret-token", "/etc/passwd")]  # fmt: skip
    assert {r.status_code for r in answers} == {403}
    assert len({r.json()["detail"] for r in answers}) == 1  # "exists" and "missing" look the same
    real = hashlib.sha256(TOKEN.encode()).hexdigest()
    assert all(real not in r.text for r in answers)
    write_mlp_onnx(service.models_dir.root / "m.onnx", width=8)
    r = client.post("/v1/models", json={"path": "m.onnx", "sha256": "0" * 64})
    assert r.status_code == 400 and hashlib.sha256((service.models_dir.root / "m.onnx").read_bytes()).hexdigest() \
        not in r.text  # fmt: skip


def test_uploads_land_in_the_models_dir_and_bad_ones_are_4xx(app_client, tmp_path: Path) -> None:
    client, service, _ = app_client
    _lease(client)
    raw = write_mlp_onnx(tmp_path / "m.onnx", width=8).read_bytes()
    ok = client.put("/v1/models/upload", params={"sha256": hashlib.sha256(raw).hexdigest()}, content=raw)
    assert ok.status_code == 201, ok.text
    assert list(service.models_dir.uploads.iterdir()) == []  # loaded, then removed
    bombs = [
        _rt3(tmp_path / "b.rt3", {"sets/0.onnx": b"\0" * (32 << 20)}, compression=zipfile.ZIP_DEFLATED),
        _rt3(tmp_path / "c.rt3", {"sets/0.onnx": raw}, raw_manifest=b'{"format": "rt3-artifact", "files": [1]}'),
        _rt3(tmp_path / "d.rt3", {"sets/0.onnx": raw}, raw_manifest=b"[" * 10_000 + b"]" * 10_000),
    ]
    for b in bombs:
        data = b.read_bytes()
        r = client.put("/v1/models/upload", params={"sha256": hashlib.sha256(data).hexdigest()}, content=data)
        assert r.status_code == 400, r.text
    assert list(service.models_dir.uploads.iterdir()) == []


def test_models_are_unloaded_when_their_lease_ends_and_ids_are_unguessable(app_client, tmp_path: Path) -> None:
    client, service, _ = app_client
    _lease(client, "alice")
    write_mlp_onnx(service.models_dir.root / "m.onnx", width=8)
    loaded = client.post("/v1/models", json={"path": "m.onnx"}).json()
    model_id = loaded["model_id"]
    assert len(model_id) >= 16 and model_id not in ("m1", "m2")
    info = client.get("/v1/info").json()
    assert len(info["models"]) == 1 and "model_id" not in info["models"][0]  # ids are not listed to readers
    assert client.delete("/v1/lease").status_code == 200
    _lease(client, "bob")
    r = client.post("/v1/measure", json={"model_id": model_id, "inferences": 1, "warmup": 0})
    assert r.status_code == 404 and service.models == {}


def test_info_serves_static_facts_from_a_cache(app_client) -> None:
    client, service, _ = app_client
    runner = service.board.commands
    assert isinstance(runner, CountingRunner)
    client.get("/v1/info")
    before = runner.calls
    for _ in range(20):
        assert client.get("/v1/info").status_code == 200
    assert runner.calls - before <= 2 * 2  # at most one refresh of the changing facts per second (2 tools)
    assert client.get("/v1/info").json()["max_window_s"] == 30


def test_window_longer_than_the_limit_is_refused(app_client) -> None:
    client, service, _ = app_client
    _lease(client)
    write_mlp_onnx(service.models_dir.root / "m.onnx", width=8)
    mid = client.post("/v1/models", json={"path": "m.onnx"}).json()["model_id"]
    r = client.post("/v1/measure", json={"model_id": mid, "inferences": 100, "warmup": 0, "period_ms": 1000})
    assert r.status_code == 400 and "max_window_s" in r.json()["detail"]


def test_lease_expiry_aborts_the_window_and_restores_the_board(app_client) -> None:
    client, service, kernel = app_client
    _lease(client, ttl_s=1)
    write_mlp_onnx(service.models_dir.root / "m.onnx", width=8)
    mid = client.post("/v1/models", json={"path": "m.onnx"}).json()["model_id"]
    t0 = time.monotonic()
    body = {"model_id": mid, "inferences": 60, "warmup": 0, "period_ms": 100, "level": "f600"}
    r = client.post("/v1/measure", json=body)
    took = time.monotonic() - t0
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["aborted"] and "lease expired" in body["abort_reason"]
    assert body["latency"]["count"] < 60 and took < 5.5  # a 6 s window stopped early
    deadline = time.monotonic() + 5
    while get_policy(kernel.sysfs(), "policy0").governor != "ondemand" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert get_policy(kernel.sysfs(), "policy0").governor == "ondemand"


def test_readers_during_a_window_are_throttled_and_flag_it(app_client) -> None:
    client, service, _ = app_client
    _lease(client)
    write_mlp_onnx(service.models_dir.root / "m.onnx", width=8)
    mid = client.post("/v1/models", json={"path": "m.onnx"}).json()["model_id"]
    out: dict[str, object] = {}

    def window() -> None:
        out["r"] = client.post("/v1/measure", json={"model_id": mid, "inferences": 30, "warmup": 0, "period_ms": 40})

    t = threading.Thread(target=window)
    t.start()
    while service.window.running is None and t.is_alive():
        time.sleep(0.005)
    codes = [client.get("/v1/power/samples").status_code for _ in range(20)]
    t.join()
    body = out["r"].json()  # type: ignore[attr-defined]
    assert 429 in codes and 200 in codes
    assert body["disturbed"] and body["concurrent_requests"] >= 1 and body["readers_refused"] >= 1
    quiet = client.post("/v1/measure", json={"model_id": mid, "inferences": 3, "warmup": 0}).json()
    assert not quiet["disturbed"] and not quiet["aborted"]


# ---- the process ----------------------------------------------------------------------------------------------


def test_sigterm_aborts_a_long_window_and_restores_the_board(tmp_path: Path) -> None:
    a = start_agent(tmp_path)
    write_mlp_onnx(tmp_path / "m.onnx", width=8)
    result: dict[str, object] = {}
    with AgentClient(a.url, a.token) as c:
        c.acquire("t", 60)
        mid = c.load_model("m.onnx")["model_id"]

        def window() -> None:
            result["m"] = c.measure(mid, inferences=300, warmup=0, period_ms=100, level="f600")  # a 30 s window

        t = threading.Thread(target=window)
        t.start()
        time.sleep(0.7)
        t0 = time.monotonic()
        a.proc.send_signal(signal.SIGTERM)
        a.proc.wait(timeout=20)
        stopped_s = time.monotonic() - t0
        t.join(timeout=10)
    assert stopped_s < 10
    assert get_policy(open_sysfs(a.root), "policy0").governor == "ondemand"
    m = result.get("m")
    assert isinstance(m, dict) and m["aborted"] and "shutting down" in m["abort_reason"]


def test_token_files_others_can_read_are_refused_and_weak_tokens_warned(tmp_path: Path) -> None:
    f = tmp_path / "token"
    f.write_text("a" * 40 + "\n")
    f.chmod(0o644)
    with pytest.raises(BadInputError, match="chmod 600"):
        load_or_create_token(f, io.StringIO())
    f.chmod(0o600)
    out = io.StringIO()
    assert load_or_create_token(f, out) == "a" * 40
    assert "weak" in out.getvalue() and "secrets.token_urlsafe" in out.getvalue()
    strong = tmp_path / "new-token"
    out = io.StringIO()
    load_or_create_token(strong, out)
    assert "weak" not in out.getvalue() and (os.stat(strong).st_mode & 0o077) == 0
    out = io.StringIO()
    load_or_create_token(strong, out)
    assert "weak" not in out.getvalue()


def test_a_resumed_run_takes_its_lease_and_models_back(app_client, tmp_path: Path) -> None:
    client, service, _ = app_client
    key = run_lease_key(TOKEN, tmp_path / "run")
    assert key == run_lease_key(TOKEN, tmp_path / "x" / ".." / "run")  # --out DIR and --resume DIR agree
    r = client.post("/v1/lease", json={"holder": "testbed-run-e", "ttl_s": 10, "resume_key": key})
    client.headers["X-Testbed-Lease"] = r.json()["lease_id"]
    write_mlp_onnx(service.models_dir.root / "m.onnx", width=8)
    mid = client.post("/v1/models", json={"path": "m.onnx"}).json()["model_id"]
    # the controller is killed; its resume asks again while the old lease is still live
    assert client.post("/v1/lease", json={"holder": "testbed-run-e", "ttl_s": 10}).status_code == 409
    again = client.post("/v1/lease", json={"holder": "testbed-run-e", "ttl_s": 10, "resume_key": key})
    assert again.status_code == 201 and again.json()["resumed"]
    client.headers["X-Testbed-Lease"] = again.json()["lease_id"]
    r = client.post("/v1/measure", json={"model_id": mid, "inferences": 2, "warmup": 0})
    assert r.status_code == 200, r.text
