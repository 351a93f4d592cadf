"""Lease rules and ONNX artifact loading, without HTTP."""

from __future__ import annotations

import json

import pytest

from devices.agent.leases import LeaseConflict, LeaseManager, LeaseRequired
from devices.agent.runner import load_artifact, sha256_file
from devices.errors import BadInputError
from tests.agent.conftest import write_mlp_onnx


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_one_holder_at_a_time_and_expiry_runs_the_callback():
    clock = FakeClock()
    expired = []
    leases = LeaseManager(on_expire=expired.append, clock=clock)
    lease = leases.acquire("alice", 10)
    with pytest.raises(LeaseConflict, match="leased to 'alice'"):
        leases.acquire("bob", 10)
    with pytest.raises(LeaseRequired):
        leases.check("not-the-id")
    assert leases.check(lease.lease_id) is lease
    clock.t += 9
    leases.renew(lease.lease_id)
    clock.t += 9.5
    assert leases.expire() is None  # renewed: still valid
    clock.t += 1
    assert leases.expire() is lease and expired == [lease]
    assert leases.acquire("bob", 5).holder == "bob"


def test_ttl_bounds():
    with pytest.raises(BadInputError, match="ttl_s"):
        LeaseManager().acquire("x", 0.1)


def test_single_file_artifact(tmp_path):
    path = write_mlp_onnx(tmp_path / "m.onnx", width=16)
    model = load_artifact(path, "m1", expected_sha256=sha256_file(path))
    assert model.names() == ["default"]
    assert model.inputs[0].shape == [1, 16]
    assert model.infer() > 0


def test_manifest_with_pattern_sets_and_switch(tmp_path):
    d = tmp_path / "artifact"
    d.mkdir()
    entries = []
    for i in range(3):
        f = write_mlp_onnx(d / f"ps{i}.onnx", width=16, seed=i)
        entries.append({"name": f"ps{i}", "file": f.name, "sha256": sha256_file(f)})
    (d / "manifest.json").write_text(
        json.dumps({"format": "rt3-onnx/1", "pattern_sets": entries, "inputs": {"x": {"shape": [4, 16]}}})
    )
    model = load_artifact(d, "m2")
    assert model.names() == ["ps0", "ps1", "ps2"] and model.inputs[0].shape == [4, 16]
    sessions = [p.session for p in model.pattern_sets]
    assert model.switch("ps2") >= 0 and model.active == 2
    assert model.pattern_sets[2].session is sessions[2]  # a reference swap: nothing reloaded
    with pytest.raises(BadInputError, match="no pattern set 'ps9'"):
        model.switch("ps9")


def test_checksum_mismatch_and_bad_manifests(tmp_path):
    path = write_mlp_onnx(tmp_path / "m.onnx", width=8)
    with pytest.raises(BadInputError, match="does not match"):
        load_artifact(path, "x", expected_sha256="0" * 64)
    d = tmp_path / "dir"
    d.mkdir()
    with pytest.raises(BadInputError, match=r"needs manifest\.json"):
        load_artifact(d, "x")
    (d / "manifest.json").write_text("{\n  bad")
    with pytest.raises(BadInputError, match=r"manifest.json:2: invalid JSON"):
        load_artifact(d, "x")
    (d / "manifest.json").write_text(json.dumps({"pattern_sets": [{"file": "missing.onnx"}]}))
    with pytest.raises(BadInputError, match=r"pattern_sets\.0\.file"):
        load_artifact(d, "x")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(BadInputError, match="not a loadable ONNX model"):
        load_artifact(tmp_path / "junk.onnx", "x")


def _rt3_zip(tmp_path, tamper: bool = False):
    import hashlib
    import zipfile

    members = {f"sets/{i}.onnx": write_mlp_onnx(tmp_path / f"s{i}.onnx", width=8, seed=i).read_bytes() for i in (0, 1)}
    manifest = {
        "format": "rt3-artifact",
        "format_version": 1,
        "model": {"family": "lm", "config": {"vocab_size": 50}, "inputs": [{"name": "x", "dtype": "float32"}]},
        "pattern_sets": [
            {"index": 1, "name": "sparse", "sparsity": 0.8, "onnx": "sets/1.onnx"},
            {"index": 0, "name": "dense", "sparsity": 0.0, "onnx": "sets/0.onnx"},
        ],
        "files": {m: {"sha256": hashlib.sha256(b).hexdigest(), "bytes": len(b)} for m, b in members.items()},
    }
    path = tmp_path / "model.rt3"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("manifest.json", json.dumps(manifest))
        for m, b in members.items():
            zf.writestr(m, b[:-1] + b"\x00" if tamper and m.endswith("1.onnx") else b)
    return path


def test_rt3_artifact_layout_is_loaded_in_index_order(tmp_path):
    model = load_artifact(_rt3_zip(tmp_path), "m3")
    assert model.names() == ["dense", "sparse"]
    assert model.switch("sparse") >= 0 and model.infer() > 0


def test_rt3_artifact_with_a_tampered_member_is_refused(tmp_path):
    with pytest.raises(BadInputError, match=r"checksum mismatch for sets/1\.onnx"):
        load_artifact(_rt3_zip(tmp_path, tamper=True), "m4")


def test_unopenable_paths_are_bad_input(tmp_path):
    """Found by schemathesis: a 4096-character path used to raise ENAMETOOLONG (HTTP 500)."""
    with pytest.raises(BadInputError, match="cannot open the model artifact: File name too long"):
        load_artifact("0" * 4096, "x")
