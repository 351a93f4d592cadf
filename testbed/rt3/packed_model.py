"""Whole models in packed form: every masked linear becomes a :class:`PackedLinear`, everything else is shared.

:func:`pack_model` returns an inference-only module for one mask set. Modules without masks (embeddings,
layer norms, classifier heads) are *the same objects* as in the backbone, so K packed variants cost only their
packed weights. The reference LM gets its own packed forward (:class:`PackedLM`) because
``nn.MultiheadAttention`` keeps its input projection as a bare parameter; Hugging Face encoders keep their
own forward with the linears swapped.

Feed-forward pairs (``lin1 → activation → lin2``, :data:`FFN_PAIRS`) are packed together with dead-row
elimination (:func:`pack_ffn_pair`), exact for any masks. Measured on the DistilBERT-sized encoder of the
bench (BP + PP masks, 128 tokens, 1 thread, CPU time, interleaved rounds): at 768-row blocks, where
``lin2`` is one block and so keeps one column set, ``lin1`` keeps 1536 / 768 / 288 of its 3072 rows at
50 / 75 / 90.6 % and the encoder ran 1.10× / 1.20× / 1.27× faster than with the pair packed separately
(86 / 44 / 17 MB of packed weights per set → 73 / 33 / 12 MB); at 128-row blocks 3028 / 2529 / 1366 rows,
1.03× / 1.04× / 1.15×. onnxruntime gains more, since ``lin2``'s column gather (a Gather on axis 1, slow
there) disappears: its packed encoder went from 0.82 / 0.85 / 0.91 of torch's speed to 1.06 / 1.09 / 1.26.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from devices.errors import BadInputError
from testbed.rt3.masking import check_masks
from testbed.rt3.models import TransformerLM
from testbed.rt3.packing import PackedLinear, plan

#: Feed-forward pairs by module name (producer, consumer) in one layer: the producer's output reaches the
#: consumer only through an elementwise activation, so an input column the consumer's mask prunes in every
#: row makes the producer's row of that index dead.
FFN_PAIRS = (("ffn.lin1", "ffn.lin2"), ("intermediate.dense", "output.dense"), ("linear1", "linear2"))


def _packed_or_dense(weight: Tensor, bias: Tensor | None, mask: Tensor | None) -> PackedLinear:
    m = mask if mask is not None else torch.ones_like(weight, dtype=torch.bool)
    return PackedLinear(weight, m, bias)


def pack_ffn_pair(
    w1: Tensor, b1: Tensor | None, m1: Tensor | None, w2: Tensor, b2: Tensor | None, m2: Tensor | None
) -> tuple[PackedLinear, PackedLinear]:
    """``lin2(act(lin1(x)))`` with masks ``m1``, ``m2`` (None: unpruned) as two packed linears, exactly.

    Dead-row elimination: rows of ``lin1`` whose output column ``lin2`` prunes in every row are never read,
    so ``lin1`` computes only the others and hands them over compact, in its packed order (no scatter into
    a full-width output); ``lin2`` takes its input columns in that order (zero columns where ``lin1`` pads).
    At 768-row blocks in a DistilBERT-sized FFN, ``lin2`` is one block, so at 75 % sparsity only a quarter
    of ``lin1``'s rows are live and ``lin2`` becomes one dense GEMM with no gather. When ``lin2`` reads
    every column, both are packed as usual. Raises BadInputError when the shapes do not chain."""
    if w1.shape[0] != w2.shape[1]:
        raise BadInputError(f"FFN pair does not chain: lin1 out {w1.shape[0]} != lin2 in {w2.shape[1]}")
    read = m2.bool().any(0) if m2 is not None else torch.ones(w2.shape[1], dtype=torch.bool)
    if bool(read.all()):
        return _packed_or_dense(w1, b1, m1), _packed_or_dense(w2, b2, m2)
    m1 = m1 if m1 is not None else torch.ones_like(w1, dtype=torch.bool)
    m2 = m2 if m2 is not None else torch.ones_like(w2, dtype=torch.bool)
    lin1 = PackedLinear(w1, m1, b1, live_rows=read.nonzero().flatten())
    if lin1.plan.macs_per_token > plan(m1)[0].macs_per_token:  # the live rows group worse than all rows
        return PackedLinear(w1, m1, b1), _packed_or_dense(w2, b2, m2)
    order = lin1.out_rows
    valid = (order >= 0).unsqueeze(0)
    src = order.clamp(min=0)
    lin2 = PackedLinear(w2.detach()[:, src] * valid, m2.bool()[:, src] & valid, b2)
    return lin1, lin2


class PackedEncoderLayer(nn.Module):
    """Post-norm Transformer encoder layer (ReLU FFN) with packed linears and shared layer norms."""

    def __init__(self, layer: nn.TransformerEncoderLayer, prefix: str, masks: Mapping[str, Tensor], nhead: int):
        super().__init__()
        if getattr(layer, "norm_first", False):
            raise BadInputError("packing supports post-norm encoder layers only (norm_first=False)")
        attn = layer.self_attn
        self.nhead = nhead
        self.in_proj = _packed_or_dense(
            attn.in_proj_weight, attn.in_proj_bias, masks.get(f"{prefix}.self_attn.in_proj_weight")
        )
        self.out_proj = _packed_or_dense(
            attn.out_proj.weight, attn.out_proj.bias, masks.get(f"{prefix}.self_attn.out_proj.weight")
        )
        self.linear1, self.linear2 = pack_ffn_pair(
            layer.linear1.weight,
            layer.linear1.bias,
            masks.get(f"{prefix}.linear1.weight"),
            layer.linear2.weight,
            layer.linear2.bias,
            masks.get(f"{prefix}.linear2.weight"),
        )
        self.norm1 = layer.norm1  # shared with the backbone
        self.norm2 = layer.norm2

    def forward(self, x: Tensor) -> Tensor:
        b, t, e = x.shape
        d = e // self.nhead
        qkv = self.in_proj(x).view(b, t, 3, self.nhead, d).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], is_causal=True)
        x = self.norm1(x + self.out_proj(a.transpose(1, 2).reshape(b, t, e)))
        return self.norm2(x + self.linear2(F.relu(self.linear1(x))))


class PackedLM(nn.Module):
    """The reference LM for inference in packed form: tokens [batch, seq] → logits [batch, seq, vocab]."""

    pe: Tensor

    def __init__(self, model: TransformerLM, masks: Mapping[str, Tensor]) -> None:
        super().__init__()
        check_masks(model, masks)
        cfg = model.config
        self.config = cfg
        self.scale = math.sqrt(cfg.emsize)
        self.encoder = model.encoder  # shared embedding
        pe: Tensor = model.pe  # type: ignore[assignment]
        self.register_buffer("pe", pe, persistent=False)
        layers = model.transformer_encoder.layers
        self.layers = nn.ModuleList(
            PackedEncoderLayer(layer, f"transformer_encoder.layers.{i}", masks, cfg.nhead)
            for i, layer in enumerate(layers)
        )
        self.decoder = _packed_or_dense(model.decoder.weight, model.decoder.bias, masks.get("decoder.weight"))

    def forward(self, tokens: Tensor) -> Tensor:
        x = self.encoder(tokens) * self.scale + self.pe[: tokens.shape[1]]
        for layer in self.layers:
            x = layer(x)
        out: Tensor = self.decoder(x)
        return out


class LogitsOnly(nn.Module):
    """Wraps a Hugging Face classifier so that it returns the logits tensor (for ONNX export and timing)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        logits: Tensor = self.model(input_ids=input_ids, attention_mask=attention_mask).logits
        return logits


def _pack_hf(model: nn.Module, masks: Mapping[str, Tensor]) -> nn.Module:
    shared: dict[int, object] = {id(t): t for t in list(model.parameters()) + list(model.buffers())}
    clone = copy.deepcopy(model, memo=shared)
    modules = dict(clone.named_modules())

    def replace(mod_name: str, new: nn.Module) -> None:
        parent_name, _, attr = mod_name.rpartition(".")
        setattr(modules[parent_name] if parent_name else clone, attr, new)

    for name in masks:
        lin = modules.get(name.removesuffix(".weight"))
        if not isinstance(lin, nn.Linear) or not name.endswith(".weight"):
            raise BadInputError(f"{name}: only nn.Linear weights can be packed")
    done: set[str] = set()
    for name, first in modules.items():
        for a, b in FFN_PAIRS:
            if not (name == a or name.endswith("." + a)):
                continue
            second_name = name[: len(name) - len(a)] + b
            second = modules.get(second_name)
            m2 = masks.get(f"{second_name}.weight")
            if not (isinstance(first, nn.Linear) and isinstance(second, nn.Linear)) or m2 is None:
                continue
            p1, p2 = pack_ffn_pair(
                first.weight, first.bias, masks.get(f"{name}.weight"), second.weight, second.bias, m2
            )
            replace(name, p1)
            replace(second_name, p2)
            done |= {f"{name}.weight", f"{second_name}.weight"}
    for name, mask in masks.items():
        if name not in done:
            lin = modules[name.removesuffix(".weight")]
            assert isinstance(lin, nn.Linear)
            replace(name.removesuffix(".weight"), PackedLinear(lin.weight, mask, lin.bias))
    clone.eval()
    return LogitsOnly(clone)


@torch.no_grad()
def pack_model(model: nn.Module, masks: Mapping[str, Tensor]) -> nn.Module:
    """An inference module computing ``model`` with ``masks`` applied, in packed form (exact up to rounding).

    Reference LM: ``forward(tokens)``; Hugging Face classifiers: ``forward(input_ids, attention_mask)`` → logits.
    Raises BadInputError for masks that do not fit the model.
    """
    check_masks(model, masks)
    was_training = model.training
    model.eval()
    try:
        packed = PackedLM(model, masks) if isinstance(model, TransformerLM) else _pack_hf(model, masks)
    finally:
        model.train(was_training)
    packed.eval()
    return packed


def packed_nbytes(packed: nn.Module) -> int:
    """Bytes of the packed linears only (the memory one extra pattern set costs)."""
    return sum(m.nbytes for m in packed.modules() if isinstance(m, PackedLinear))
