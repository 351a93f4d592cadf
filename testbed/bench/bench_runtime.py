"""RT3 runtime benchmark: does pattern sparsity buy real CPU speed, and how fast is a switch?

Model: a DistilBERT-sized encoder with random weights (6 layers, hidden 768, FFN 3072, 12 heads; latency does
not depend on training). Masks come from the project's own BP and PP code: block-column BP removing 50 % of
the columns of every row-block (balanced; row-blocks of 128 and 256 rows, quick run: 128 only), then PP with
16-column pattern tiles at levels 0 / 0.5 / 0.8 → overall sparsity ≈ 0.5, 0.75 and 0.9. Input: batch 1 ×
128 tokens, 1 intra-op thread.

Every ratio compares timings taken in the same run, interleaved (one call of each variant per round, median
over rounds), on this machine:

* ``speedup``        dense encoder / packed encoder (torch)
* ``layer_speedup``  dense FFN-1 (768→3072) / packed FFN-1, same masks
* ``ideal``          1 / (1 − sparsity)
* ``vs_mask_multiply`` RT3's public runtime (weights × masks, then dense) / packed encoder
* ``layer_vs_csr``, ``layer_vs_bsr`` torch CSR / BSR ``sparse.mm`` layer / packed layer
* ``encoder_vs_csr`` CSR linears in the whole encoder / packed encoder
* ``ort_speedup``    onnxruntime dense export / onnxruntime packed export
* ``extra_set_mb``   memory one extra pattern set costs (its packed linears)

Switch: ``switch(k)`` cycled over 3 pattern sets many times; p50/p99/max in ms against the paper's 45 ms.
"""

from __future__ import annotations

import statistics
import time
import warnings
from collections.abc import Callable
from typing import Any

PAPER_SWITCH_MS = 45.0
SEQ = 128
ROW_BLOCK = 128
#: Row-block heights compared in the full run (bigger blocks: bigger GEMMs, coarser pruning structure).
ROW_BLOCK_SWEEP = (128, 256)
PATTERN_COLS = 16
BP_RATIO = 0.5
PP_LEVELS = (0.0, 0.5, 0.8)
BSR_BLOCK = 32


def _distilbert() -> Any:
    import torch

    from testbed.rt3.models import HFSpec, build_hf_classifier

    torch.manual_seed(0)
    spec = HFSpec("distilbert", overrides={"dim": 768, "hidden_dim": 3072, "n_layers": 6, "n_heads": 12})
    return build_hf_classifier(spec).eval()


def _mask_sets(model: Any, row_block: int = ROW_BLOCK) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    from testbed.rt3.bp import BPConfig, hard_prune
    from testbed.rt3.models import hf_prunable_names
    from testbed.rt3.pp import build_pattern_set, build_space, uniform_choices

    names = hf_prunable_names(model)
    bp = hard_prune(model, names, BPConfig(row_block=row_block, ratio=BP_RATIO))
    space = build_space(model, bp, row_block, PATTERN_COLS, PP_LEVELS, n_candidates=4)
    sets = [build_pattern_set(model, bp, space, uniform_choices(space, i)).masks for i in range(len(PP_LEVELS))]
    return bp, sets


def _interleaved_ms(fns: dict[str, Callable[[], object]], rounds: int, warmup: int = 1) -> dict[str, float]:
    """Median wall time (ms) of every function, calling each once per round in turn."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for r in range(warmup + rounds):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            if r >= warmup:
                times[k].append((time.perf_counter() - t0) * 1e3)
    return {k: statistics.median(v) for k, v in times.items()}


class _SparseLinear:
    """y = (W_sparse @ xᵀ)ᵀ + b with a CSR or BSR weight (the fast form of torch sparse on CPU)."""

    def __init__(self, weight: Any, bias: Any, layout: str) -> None:
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        if layout == "csr":
            self.w = weight.to_sparse_csr()
        else:
            self.w = weight.to_sparse_bsr((BSR_BLOCK, BSR_BLOCK))  # MKL BSR needs square blocks
        self.b = bias

    def __call__(self, x: Any) -> Any:
        import torch

        x2 = x.reshape(-1, x.shape[-1])
        y = torch.sparse.mm(self.w, x2.t()).t()
        if self.b is not None:
            y = y + self.b
        return y.reshape(*x.shape[:-1], -1)


def _csr_model(model: Any, masks: dict[str, Any]) -> Any:
    import copy

    import torch

    shared = {id(t): t for t in list(model.parameters()) + list(model.buffers())}
    clone = copy.deepcopy(model, memo=shared)
    modules = dict(clone.named_modules())
    for name, m in masks.items():
        mod_name = name.removesuffix(".weight")
        lin = modules[mod_name]
        parent_name, _, attr = mod_name.rpartition(".")

        class _Wrap(torch.nn.Module):
            def __init__(self, f: _SparseLinear) -> None:
                super().__init__()
                self.f = f

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                out: torch.Tensor = self.f(x)
                return out

        with torch.no_grad():
            setattr(modules[parent_name], attr, _Wrap(_SparseLinear(lin.weight * m, lin.bias, "csr")))
    return clone


def sparse_benchmark(quick: bool = False) -> dict[str, Any]:
    """Latency of packed pattern sets against dense, mask-multiply, CSR/BSR and onnxruntime (see module doc)."""
    import torch

    torch.set_num_threads(1)
    rounds = 3 if quick else 9
    model = _distilbert()
    results = []
    for row_block in (ROW_BLOCK,) if quick else ROW_BLOCK_SWEEP:
        results += _sparse_rows(model, row_block, rounds, quick)
    return {
        "model": "distilbert-sized encoder (6×768, FFN 3072), random weights",
        "tokens": SEQ,
        "threads": 1,
        "rounds": rounds,
        "bp": {"structure": "block-column", "ratio": BP_RATIO},
        "pattern_cols": PATTERN_COLS,
        "dense_linears_mb": sum(int(p.numel()) * 4 for n, p in model.named_parameters() if n in _mask_names(model))
        / 1e6,
        "results": results,
    }


def _mask_names(model: Any) -> set[str]:
    from testbed.rt3.models import hf_prunable_names

    return set(hf_prunable_names(model))


def _sparse_rows(model: Any, row_block: int, rounds: int, quick: bool) -> list[dict[str, Any]]:
    """One result row per pattern set of a BP backbone with ``row_block``-row blocks."""
    import torch
    import torch.nn.functional as F

    from testbed.rt3.masking import masked_call
    from testbed.rt3.packed_model import LogitsOnly, pack_model, packed_nbytes
    from testbed.rt3.packing import PackedLinear

    _, sets = _mask_sets(model, row_block)
    dense = LogitsOnly(model).eval()
    ids = torch.randint(0, 30000, (1, SEQ))
    att = torch.ones(1, SEQ, dtype=torch.long)
    layer_name = "distilbert.transformer.layer.0.ffn.lin1"
    lin = dict(model.named_modules())[layer_name]
    x_layer = torch.randn(SEQ, lin.in_features)
    results = []
    ort_rows = _ort_latencies(model, sets, rounds, quick)
    with torch.inference_mode():
        for k, masks in enumerate(sets):
            sparsity = 1.0 - sum(int(m.sum()) for m in masks.values()) / sum(m.numel() for m in masks.values())
            packed = pack_model(model, masks)
            csr = _csr_model(model, masks)
            wl = lin.weight * masks[f"{layer_name}.weight"]
            p_layer = PackedLinear(lin.weight, masks[f"{layer_name}.weight"], lin.bias)
            csr_layer = _SparseLinear(wl, lin.bias, "csr")
            bsr_layer = _SparseLinear(wl, lin.bias, "bsr")
            enc = _interleaved_ms(
                {
                    "dense": lambda: dense(ids, att),
                    "packed": lambda p=packed: p(ids, att),  # type: ignore[misc]
                    "mask_multiply": lambda m=masks: masked_call(model, m, input_ids=ids, attention_mask=att),  # type: ignore[misc]
                    "csr": lambda c=csr: c(input_ids=ids, attention_mask=att),  # type: ignore[misc]
                },
                rounds,
            )
            lay = _interleaved_ms(
                {
                    "dense": lambda: F.linear(x_layer, lin.weight, lin.bias),
                    "packed": lambda p=p_layer: p(x_layer),  # type: ignore[misc]
                    "mask_multiply": lambda w=masks[f"{layer_name}.weight"]: F.linear(
                        x_layer, lin.weight * w, lin.bias
                    ),  # type: ignore[misc]
                    "csr": lambda c=csr_layer: c(x_layer),  # type: ignore[misc]
                    "bsr": lambda b=bsr_layer: b(x_layer),  # type: ignore[misc]
                },
                rounds * 3,
            )
            row: dict[str, Any] = {
                "sparsity": round(sparsity, 4),
                "row_block": row_block,
                "speedup": enc["dense"] / enc["packed"],
                "layer_speedup": lay["dense"] / lay["packed"],
                "ideal": 1.0 / (1.0 - sparsity),
                "vs_mask_multiply": enc["mask_multiply"] / enc["packed"],
                "encoder_vs_csr": enc["csr"] / enc["packed"],
                "layer_vs_mask_multiply": lay["mask_multiply"] / lay["packed"],
                "layer_vs_csr": lay["csr"] / lay["packed"],
                "layer_vs_bsr": lay["bsr"] / lay["packed"],
                "encoder_ms": {k2: round(v, 3) for k2, v in enc.items()},
                "layer_ms": {k2: round(v, 4) for k2, v in lay.items()},
                "extra_set_mb": packed_nbytes(packed) / 1e6,
            }
            if ort_rows:
                row["ort_speedup"] = ort_rows["dense"] / ort_rows[f"set{k}"]
                row["ort_ms"] = {"dense": round(ort_rows["dense"], 3), "packed": round(ort_rows[f"set{k}"], 3)}
            results.append(row)
    return results


def _ort_latencies(model: Any, sets: list[dict[str, Any]], rounds: int, quick: bool) -> dict[str, float]:
    """Median onnxruntime latency (ms) of the dense export and of each packed set's export."""
    try:
        import numpy as np
        import onnxruntime as ort  # noqa: F401
    except ImportError:
        return {}
    from devices.ort_runtime import OrtReconfigurableModel
    from testbed.rt3.export import export_onnx
    from testbed.rt3.packed_model import LogitsOnly, pack_model

    desc = {"family": "hf"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graphs = [export_onnx(LogitsOnly(model).eval(), desc, seq=SEQ)]
        graphs += [export_onnx(pack_model(model, m), desc, seq=SEQ) for m in sets]
    rt = OrtReconfigurableModel(graphs, threads=1)
    feeds = {"input_ids": np.ones((1, SEQ), dtype=np.int64), "attention_mask": np.ones((1, SEQ), dtype=np.int64)}
    names = ["dense"] + [f"set{i}" for i in range(len(sets))]

    def runner(i: int) -> Callable[[], object]:
        def f() -> object:
            rt.switch(i)
            return rt.run(feeds)

        return f

    return _interleaved_ms({n: runner(i) for i, n in enumerate(names)}, rounds)


def switch_benchmark(quick: bool = False) -> dict[str, Any]:
    """Time of ``switch(k)`` cycling over 3 packed sets of a DistilBERT-sized backbone (ms)."""
    import numpy as np
    import torch

    from testbed.rt3.runtime import ReconfigurableModel

    model = _distilbert()
    _, sets = _mask_sets(model)
    t0 = time.perf_counter()
    rm = ReconfigurableModel.from_backbone(model, sets[1:] + sets[:1])
    build_s = time.perf_counter() - t0
    n = 2000 if quick else 20000
    times = np.empty(n)
    for i in range(n):
        t = time.perf_counter_ns()
        rm.switch(i % rm.k)
        times[i] = (time.perf_counter_ns() - t) / 1e6
    # first inference after a switch vs steady state: a switch must not leave a warm-up cost behind
    torch.set_num_threads(1)
    ids = torch.randint(0, 30000, (1, 35))
    att = torch.ones(1, 35, dtype=torch.long)
    after: list[float] = []
    steady: list[float] = []
    for i in range(3 if quick else 6):
        rm.switch(i % rm.k)
        t1 = time.perf_counter()
        rm(ids, att)
        after.append((time.perf_counter() - t1) * 1e3)
        t1 = time.perf_counter()
        rm(ids, att)
        steady.append((time.perf_counter() - t1) * 1e3)
    p50 = float(np.percentile(times, 50))
    return {
        "pattern_sets": rm.k,
        "switches": n,
        "p50_ms": p50,
        "p99_ms": float(np.percentile(times, 99)),
        "max_ms": float(times.max()),
        "paper_ms": PAPER_SWITCH_MS,
        "paper_over_p50": PAPER_SWITCH_MS / p50 if p50 > 0 else None,
        "pack_all_sets_s": build_s,
        "first_inference_after_switch_over_steady": statistics.median(after) / statistics.median(steady),
        "memory_per_set_mb": [b / 1e6 for b in rm.memory_per_set_bytes()],
    }


def reference_lm_benchmark(quick: bool = False) -> dict[str, Any]:
    """RT3's own workload: the reference LM (emsize 800, nhid 200, 2 layers, 4 heads, WikiText-2-sized vocabulary
    of 33 278) on one bptt window of 35 tokens; dense ``nn.TransformerEncoder`` vs packed pattern sets."""
    import torch

    from testbed.rt3.bp import BPConfig, hard_prune
    from testbed.rt3.models import LMConfig, TransformerLM, lm_prunable_names
    from testbed.rt3.packed_model import pack_model
    from testbed.rt3.pp import build_pattern_set, build_space, uniform_choices

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = TransformerLM(LMConfig(33278, 800, 200, 2, 4, 0.2)).eval()
    names = lm_prunable_names(model)
    row_block = 100  # RT3's pattern block size
    bp = hard_prune(model, names, BPConfig(row_block=row_block, ratio=BP_RATIO))
    space = build_space(model, bp, row_block, PATTERN_COLS, PP_LEVELS, n_candidates=4)
    sets = [build_pattern_set(model, bp, space, uniform_choices(space, i)) for i in range(len(PP_LEVELS))]
    tokens = torch.randint(0, 33278, (1, 35))
    fns: dict[str, Callable[[], object]] = {"dense": lambda: model(tokens)}
    for i, s in enumerate(sets):
        packed = pack_model(model, s.masks)
        fns[f"set{i}"] = lambda p=packed: p(tokens)  # type: ignore[misc]
    with torch.inference_mode():
        ms = _interleaved_ms(fns, 3 if quick else 15)
    return {
        "model": "RT3 reference LM (800/200/2/4, vocab 33278), random weights",
        "tokens": 35,
        "row_block": row_block,
        "dense_ms": ms["dense"],
        "results": [
            {
                "sparsity": round(s.sparsity, 4),
                "speedup": ms["dense"] / ms[f"set{i}"],
                "ideal": 1 / (1 - s.sparsity),
                "latency_ms": ms[f"set{i}"],
            }
            for i, s in enumerate(sets)
        ],
    }


def run(quick: bool) -> dict[str, Any]:
    return {
        "switch": switch_benchmark(quick),
        "sparse": sparse_benchmark(quick),
        "reference_lm": reference_lm_benchmark(quick),
    }
