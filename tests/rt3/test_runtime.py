from __future__ import annotations

import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from devices.errors import BadInputError
from devices.ort_runtime import OrtReconfigurableModel
from testbed.rt3.artifact import Artifact
from testbed.rt3.checkpoint import Checkpoint, model_description
from testbed.rt3.export import build_artifact, load_torch
from testbed.rt3.masking import masked_call
from testbed.rt3.runtime import ReconfigurableModel

from .conftest import DATA, Pipeline


@pytest.fixture(scope="module")
def runtime(pipeline: Pipeline) -> ReconfigurableModel:
    return ReconfigurableModel.from_backbone(pipeline.model, [s.masks for s in pipeline.sets])


@pytest.fixture(scope="module")
def artifact(pipeline: Pipeline, tmp_path_factory: pytest.TempPathFactory) -> Path:
    ck = Checkpoint(
        pipeline.model,
        model_description(pipeline.model),
        DATA,
        pipeline.vocab,
        "pp",
        {"note": "test"},
        pipeline.bp.masks,
        {"ratio": 0.5},
        pipeline.space,
        pipeline.sets,
    )
    return build_artifact(ck, tmp_path_factory.mktemp("art") / "model.rt3", share_tables=True)


@pytest.fixture(scope="module")
def plain_artifact(pipeline: Pipeline, tmp_path_factory: pytest.TempPathFactory) -> Path:
    ck = Checkpoint(
        pipeline.model,
        model_description(pipeline.model),
        DATA,
        pipeline.vocab,
        "pp",
        {},
        pipeline.bp.masks,
        {"ratio": 0.5},
        pipeline.space,
        pipeline.sets,
    )
    return build_artifact(ck, tmp_path_factory.mktemp("plain") / "model.rt3", seq=11)


def test_switch_is_a_reference_swap(runtime: ReconfigurableModel, pipeline: Pipeline) -> None:
    ptrs = [[b.data_ptr() for b in v.buffers()] for v in runtime.variants]
    x = torch.randint(0, len(pipeline.vocab), (1, 12))
    outs = []
    for k in (2, 0, 1, 2):
        runtime.switch(k)
        assert runtime.active is runtime.variants[k] and runtime.active_index == k
        outs.append(runtime(x))
    assert torch.equal(outs[0], outs[3])
    assert not torch.allclose(outs[0], outs[1])
    assert ptrs == [[b.data_ptr() for b in v.buffers()] for v in runtime.variants]  # nothing re-packed/copied
    with pytest.raises(BadInputError):
        runtime.switch(3)


def test_each_set_matches_its_masked_dense_model(runtime: ReconfigurableModel, pipeline: Pipeline) -> None:
    x = torch.randint(0, len(pipeline.vocab), (2, 17))
    for k, s in enumerate(pipeline.sets):
        runtime.switch(k)
        with torch.no_grad():
            assert torch.allclose(runtime(x), masked_call(pipeline.model, s.masks, x), atol=1e-4)


def test_concurrent_switching_never_mixes_sets(runtime: ReconfigurableModel, pipeline: Pipeline) -> None:
    x = torch.randint(0, len(pipeline.vocab), (1, 16))
    expected = []
    for k in range(runtime.k):
        runtime.switch(k)
        expected.append(runtime(x))
    stop = threading.Event()
    bad: list[int] = []

    def switcher() -> None:
        i = 0
        while not stop.is_set():
            runtime.switch(i % runtime.k)
            i += 1

    t = threading.Thread(target=switcher)
    t.start()
    try:
        for _ in range(60):
            y = runtime(x)
            if not any(torch.allclose(y, e, atol=1e-5) for e in expected):
                bad.append(1)
    finally:
        stop.set()
        t.join()
    assert not bad


def test_memory_per_set_falls_with_sparsity(runtime: ReconfigurableModel) -> None:
    mem = runtime.memory_per_set_bytes()
    assert mem == sorted(mem, reverse=True) and mem[-1] < mem[0]


def test_onnxruntime_matches_torch(artifact: Path, pipeline: Pipeline) -> None:
    ort_model = OrtReconfigurableModel.from_artifact(artifact)
    assert ort_model.k == 3 and ort_model.input_names == ["tokens"]
    x = torch.randint(0, len(pipeline.vocab), (2, 23))  # other shape than the export example
    for k, s in enumerate(pipeline.sets):
        ort_model.switch(k)
        with torch.no_grad():
            ref = masked_call(pipeline.model, s.masks, x).numpy()
        np.testing.assert_allclose(ort_model.run({"tokens": x.numpy()}), ref, atol=1e-4)
    with pytest.raises(BadInputError):
        ort_model.switch(-1)
    with pytest.raises(BadInputError, match="missing model inputs"):
        ort_model.run({})


def test_artifact_manifest_and_torch_roundtrip(artifact: Path, pipeline: Pipeline) -> None:
    art = Artifact.open(artifact)
    sets = art.pattern_sets
    assert [s["name"] for s in sets] == [s.name for s in pipeline.sets]
    assert sets[0]["sparsity"] == pytest.approx(pipeline.sets[0].sparsity)
    assert art.manifest["model"]["family"] == "lm" and art.manifest["results"] == {"note": "test"}
    assert set(art.manifest["files"]) >= {"sets/0.onnx", "backbone.safetensors", "masks/2.safetensors"}
    model, masks, _ = load_torch(art)
    x = torch.randint(0, len(pipeline.vocab), (1, 9))
    with torch.no_grad():
        assert torch.allclose(masked_call(model, masks[1], x), masked_call(pipeline.model, pipeline.sets[1].masks, x))


def test_shared_initializers_are_stored_once_and_not_in_the_graphs(artifact: Path) -> None:
    import onnx
    from onnx import TensorProto

    from devices.ort_runtime import create_session

    art = Artifact.open(artifact)
    shared = art.manifest["shared_initializers"]
    assert art.manifest["shared_inputs"] == []
    assert [5000, 64] in [s["shape"] for s in shared]  # the position table (≥ 64 kB) every set repeats
    names = {s["name"] for s in shared}
    arrays = art.shared_initializers()
    assert set(arrays) == names and all(list(arrays[s["name"]].shape) == s["shape"] for s in shared)
    for s in art.pattern_sets:
        graph = onnx.load_from_string(art.read(s["onnx"])).graph
        placeholders = {t.name: t for t in graph.initializer if t.name in names}
        assert set(placeholders) == names  # still initializers (folding, pre-packing), not graph inputs
        assert all(t.data_location == TensorProto.EXTERNAL and not t.raw_data for t in placeholders.values())
        assert not names & {i.name for i in graph.input}
        assert len(art.read(s["onnx"])) < 1 << 20  # the 1.3 MB table is not inside any graph
        with pytest.raises(BadInputError, match="not a loadable ONNX model"):
            create_session(art.read(s["onnx"]))  # a rewritten graph needs its shared tensors


def test_one_copy_of_the_shared_tensors_serves_every_session(artifact: Path) -> None:
    model = OrtReconfigurableModel.from_artifact(artifact)
    art = Artifact.open(artifact)
    assert model.shared_bytes == sum(a.nbytes for a in art.shared_initializers().values()) > 0
    x = np.zeros((1, 7), dtype=np.int64)
    ref = [model.run({"tokens": x}) for _ in range(1)]
    cold = model.load_session(art.read(art.pattern_sets[0]["onnx"]))  # the cold path reuses the same tensors
    model.switch(0)
    np.testing.assert_array_equal(cold.run(None, {"tokens": x})[0], ref[0])


def test_default_artifact_graphs_are_self_contained(plain_artifact: Path, pipeline: Pipeline) -> None:
    from devices.ort_runtime import create_session

    art = Artifact.open(plain_artifact)
    assert art.manifest["shared_inputs"] == [] and art.manifest["model"]["seq_len"] == 11
    x = np.zeros((1, 11), dtype=np.int64)
    for k, s in enumerate(art.pattern_sets):
        session = create_session(art.read(s["onnx"]))
        assert [i.name for i in session.get_inputs()] == ["tokens"]  # token ids are the only input
        with torch.no_grad():
            ref = masked_call(pipeline.model, pipeline.sets[k].masks, torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(session.run(None, {"tokens": x})[0], ref, atol=1e-4)


def test_corrupt_artifact_is_rejected(artifact: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.rt3"
    with zipfile.ZipFile(artifact) as src, zipfile.ZipFile(bad, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "sets/1.onnx":
                data = data[:-1] + bytes([data[-1] ^ 0xFF])
            dst.writestr(item, data)
    with pytest.raises(BadInputError, match=r"checksum mismatch for sets/1\.onnx"):
        Artifact.open(bad)
    (tmp_path / "junk.rt3").write_bytes(b"not a zip")
    with pytest.raises(BadInputError, match="not an RT3 artifact"):
        Artifact.open(tmp_path / "junk.rt3")


def test_board_side_loads_and_runs_without_torch(artifact: Path) -> None:
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import numpy as np\n"
        "from devices.ort_runtime import OrtReconfigurableModel\n"
        f"m = OrtReconfigurableModel.from_artifact({str(artifact)!r})\n"
        "m.switch(2)\n"
        "out = m.run({'tokens': np.zeros((1, 5), dtype=np.int64)})\n"
        "print(out.shape)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "(1, 5," in res.stdout


def test_the_agent_loads_an_artifact_with_its_shared_tables(artifact: Path) -> None:
    from devices.agent.runner import load_artifact

    model = load_artifact(artifact, "m1", threads=1)
    assert [s.name for s in model.inputs] == ["tokens"]  # the shared table is fed by the runtime, not drawn
    ref = OrtReconfigurableModel.from_artifact(artifact)
    feeds = model.feeds()
    for k in range(ref.k):
        model.switch(k)
        ref.switch(k)
        np.testing.assert_array_equal(model.runtime.run(feeds), ref.run(feeds))
    assert model.infer() > 0
