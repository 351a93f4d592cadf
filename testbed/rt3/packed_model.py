"""Whole models in packed form: every masked linear becomes a :class:`PackedLinear`, everything else is shared.

:func:`pack_model` returns an inference-only module for one mask set. Modules without masks (embeddings,
layer norms, classifier heads) are *the same objects* as in the backbone, so K packed variants cost only their
packed weights. The reference LM gets its own packed forward (:class:`PackedLM`) because
``nn.MultiheadAttention`` keeps its input projection as a bare parameter; Hugging Face encoders keep their
own forward with the linears swapped.
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
from testbed.rt3.packing import PackedLinear


def _packed_or_dense(weight: Tensor, bias: Tensor | None, mask: Tensor | None) -> PackedLinear:
    m = mask if mask is not None else torch.ones_like(weight, dtype=torch.bool)
    return PackedLinear(weight, m, bias)


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
        self.linear1 = _packed_or_dense(layer.linear1.weight, layer.linear1.bias, masks.get(f"{prefix}.linear1.weight"))
        self.linear2 = _packed_or_dense(layer.linear2.weight, layer.linear2.bias, masks.get(f"{prefix}.linear2.weight"))
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
    for name, mask in masks.items():
        mod_name = name.removesuffix(".weight")
        lin = modules.get(mod_name)
        if not isinstance(lin, nn.Linear) or not name.endswith(".weight"):
            raise BadInputError(f"{name}: only nn.Linear weights can be packed")
        parent_name, _, attr = mod_name.rpartition(".")
        parent = modules[parent_name] if parent_name else clone
        setattr(parent, attr, PackedLinear(lin.weight, mask, lin.bias))
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
