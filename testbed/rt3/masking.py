"""Weight masks: the common currency of block pruning, pattern pruning and packing.

A *mask set* maps a parameter name (e.g. ``decoder.weight``) to a boolean tensor of the parameter's shape;
True keeps a weight. Masks are applied without touching the module tree: :func:`masked_call` runs the model
with ``weight * mask`` substituted through ``torch.func.functional_call``, so gradients flow to the shared
backbone only through kept weights and several mask sets can share one backbone (RT3's joint training).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from devices.errors import BadInputError

Masks = dict[str, Tensor]


def check_masks(model: nn.Module, masks: Mapping[str, Tensor]) -> None:
    """Raise BadInputError unless every mask names a parameter of ``model`` and has its shape."""
    params = dict(model.named_parameters())
    for name, mask in masks.items():
        if name not in params:
            raise BadInputError(f"mask for unknown parameter {name!r}")
        if tuple(mask.shape) != tuple(params[name].shape):
            raise BadInputError(f"mask {name!r} has shape {tuple(mask.shape)}, weight {tuple(params[name].shape)}")


def masked_params(model: nn.Module, masks: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The masked replacements ``{name: weight * mask}`` (differentiable in the weight)."""
    params = dict(model.named_parameters())
    return {name: params[name] * mask.to(params[name].dtype) for name, mask in masks.items()}


def masked_call(model: nn.Module, masks: Mapping[str, Tensor] | None, *args: Any, **kwargs: Any) -> Any:
    """``model(*args, **kwargs)`` with every masked weight multiplied by its mask (RT3's mask-multiply)."""
    if not masks:
        return model(*args, **kwargs)
    return torch.func.functional_call(model, masked_params(model, masks), args, kwargs, strict=False)


@torch.no_grad()
def apply_masks_(model: nn.Module, masks: Mapping[str, Tensor]) -> None:
    """Zero the masked-out weights in place (RT3 re-imposes the BP zeros after every optimizer step)."""
    params = dict(model.named_parameters())
    for name, mask in masks.items():
        params[name].mul_(mask.to(params[name].dtype))


def density(masks: Mapping[str, Tensor]) -> float:
    """Fraction of kept weights over all masked tensors (1.0 for an empty mask set)."""
    total = sum(m.numel() for m in masks.values())
    if total == 0:
        return 1.0
    return float(sum(int(m.sum()) for m in masks.values())) / total


def sparsity(masks: Mapping[str, Tensor]) -> float:
    """Fraction of removed weights over all masked tensors."""
    return 1.0 - density(masks)
