"""ONNX export of packed pattern sets and writing/reading the RT3 artifact (torch side).

Each pattern set is exported as its own ONNX graph of the *packed* model (gathers and batched MatMuls of the
packed weights), with dynamic batch and sequence axes; optionally the tensors common to all sets
(embeddings, norms, unpruned linears) are stored once and shared by every set's onnxruntime session
(:mod:`testbed.rt3.onnx_share`).
The legacy TorchScript exporter is used (opset 17) because the dynamo exporter needs onnxscript; the graph of
a packed linear is fixed at export for the token count of the example input (≥ 8 tokens → the
transposed-gather path).
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import Tensor, nn

from devices.errors import BadInputError
from testbed import __version__
from testbed.rt3.artifact import Artifact, write_artifact
from testbed.rt3.checkpoint import Checkpoint, build_model
from testbed.rt3.masking import Masks
from testbed.rt3.onnx_share import share_initializers, shared_member
from testbed.rt3.packed_model import pack_model, packed_nbytes

OPSET = 17


def example_inputs(description: dict[str, Any], batch: int = 1, seq: int = 16) -> tuple[list[str], tuple[Tensor, ...]]:
    """Input names and example tensors for a model family (token ids are zeros)."""
    if description["family"] == "lm":
        return ["tokens"], (torch.zeros(batch, seq, dtype=torch.long),)
    return ["input_ids", "attention_mask"], (
        torch.zeros(batch, seq, dtype=torch.long),
        torch.ones(batch, seq, dtype=torch.long),
    )


def export_onnx(packed: nn.Module, description: dict[str, Any], seq: int = 16) -> bytes:
    """ONNX bytes of a packed (or any inference) module; dynamic ``batch`` and ``seq`` axes."""
    names, args = example_inputs(description, seq=seq)
    axes: dict[str, dict[int, str]] = {n: {0: "batch", 1: "seq"} for n in names}
    axes["logits"] = {0: "batch"} if description["family"] == "hf" else {0: "batch", 1: "seq"}
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            packed,
            args,
            buf,  # type: ignore[arg-type]
            dynamo=False,
            opset_version=OPSET,
            input_names=names,
            output_names=["logits"],
            dynamic_axes=axes,
        )
    return buf.getvalue()


def build_artifact(
    ckpt: Checkpoint, path: Path, seq: int = 16, include_backbone: bool = True, share_tables: bool = False
) -> Path:
    """Write the artifact of a PP checkpoint: every pattern set packed and exported, plus metadata.

    ``share_tables``: store the tensors common to all sets once (``shared_initializers``, members
    ``shared/<j>.npy``); every graph then keeps a data-less external reference in their place and a loader
    must supply them (:class:`~devices.ort_runtime.OrtReconfigurableModel` does, one copy for all sessions).
    Off by default so that every ``sets/<k>.onnx`` stays self-contained for loaders that open one graph.
    """
    if not ckpt.sets:
        raise BadInputError("the checkpoint has no pattern sets; run `testbed rt3 prune pp` first")
    model = ckpt.model.eval()
    members: dict[str, bytes] = {}
    sets_meta = []
    packed_sets = [pack_model(model, s.masks) for s in ckpt.sets]
    graphs = [export_onnx(p, ckpt.description, seq=seq) for p in packed_sets]
    shared: dict[str, np.ndarray] = {}
    if share_tables:
        graphs, shared = share_initializers(graphs)
    shared_meta = []
    for j, (name, arr) in enumerate(shared.items()):
        buf = io.BytesIO()
        np.save(buf, arr, allow_pickle=False)
        members[shared_member(j)] = buf.getvalue()
        shared_meta.append({"name": name, "file": shared_member(j), "shape": list(arr.shape), "dtype": str(arr.dtype)})
    for i, (s, packed) in enumerate(zip(ckpt.sets, packed_sets, strict=True)):
        members[f"sets/{i}.onnx"] = graphs[i]
        members[f"masks/{i}.safetensors"] = st_save({k: v.contiguous() for k, v in s.masks.items()})
        meta = s.meta()
        meta.pop("choices", None)
        sets_meta.append(
            {
                **meta,
                "index": i,
                "onnx": f"sets/{i}.onnx",
                "masks": f"masks/{i}.safetensors",
                "packed_bytes": packed_nbytes(packed),
            }
        )
    if include_backbone:
        members["backbone.safetensors"] = st_save({k: v.contiguous() for k, v in model.state_dict().items()})
    if ckpt.vocab is not None:
        members["extra/vocab.json"] = json.dumps(ckpt.vocab).encode()
    names, _ = example_inputs(ckpt.description)
    manifest = {
        "testbed_version": __version__,
        "model": {
            **ckpt.description,
            "inputs": [{"name": n, "dtype": "int64"} for n in names],
            "seq_len": seq,
            "outputs": ["logits"],
        },
        "data": ckpt.data,
        "results": ckpt.results,
        "bp": ckpt.bp_config,
        "pattern_sets": sets_meta,
        "shared_inputs": [],  # the older way (tables fed as graph inputs), still read by the runtime
        "shared_initializers": shared_meta,
    }
    return write_artifact(path, manifest, members)


def load_torch(artifact: Path | Artifact) -> tuple[nn.Module, list[Masks], list[dict[str, Any]]]:
    """Backbone and mask sets of an artifact, back in torch (to repack or fine-tune)."""
    art = artifact if isinstance(artifact, Artifact) else Artifact.open(Path(artifact))
    if "backbone.safetensors" not in art.manifest["files"]:
        raise BadInputError(f"{art.path}: artifact has no backbone (written with include_backbone=False)")
    model = build_model(art.manifest["model"])
    model.load_state_dict(st_load(art.read("backbone.safetensors")), strict=False)
    model.eval()
    masks = [{k: v.bool() for k, v in st_load(art.read(s["masks"])).items()} for s in art.pattern_sets]
    return model, masks, art.pattern_sets
