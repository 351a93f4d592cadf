"""Checkpoints between the stages of the method (train → BP → PP → export) and model reconstruction.

A checkpoint is a directory::

    checkpoint.json        model family and config, data spec, vocabulary, stage, results so far
    model.safetensors      the (shared) backbone weights
    bp_masks.safetensors   BP masks (stage ≥ "bp")
    space.json             the pattern space (stage "pp")
    sets/<k>.safetensors   pattern set k's masks (stage "pp"); their metadata is in checkpoint.json

Loading a missing or malformed checkpoint raises BadInputError.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file
from torch import nn

from devices.errors import BadInputError
from testbed.rt3.masking import Masks
from testbed.rt3.models import HFSpec, LMConfig, TransformerLM
from testbed.rt3.pp import LayerChoice, PatternSet, PatternSpace

STAGES = ("dense", "bp", "pp")


def model_description(model: nn.Module, spec: HFSpec | None = None) -> dict[str, Any]:
    """JSON description from which :func:`build_model` rebuilds the architecture (weights not included)."""
    if isinstance(model, TransformerLM):
        return {"family": "lm", "config": model.config.to_dict()}
    cfg = getattr(model, "config", None)
    if cfg is None:
        raise BadInputError("cannot describe a model without a config")
    return {"family": "hf", "spec": (spec or HFSpec("bert")).to_dict(), "hf_config": cfg.to_dict()}


def build_model(desc: dict[str, Any]) -> nn.Module:
    """The architecture of a description, with fresh weights (load a state dict into it)."""
    if desc.get("family") == "lm":
        return TransformerLM(LMConfig(**desc["config"]))
    if desc.get("family") == "hf":
        from transformers import AutoConfig, AutoModelForSequenceClassification

        hf = dict(desc["hf_config"])
        config = AutoConfig.for_model(hf.pop("model_type"), **hf)
        model: nn.Module = AutoModelForSequenceClassification.from_config(config)
        return model
    raise BadInputError(f"unknown model family {desc.get('family')!r}")


@dataclass
class Checkpoint:
    """Everything one stage hands to the next."""

    model: nn.Module
    description: dict[str, Any]
    data: dict[str, Any]
    vocab: list[str] | None = None
    stage: str = "dense"
    results: dict[str, Any] = field(default_factory=dict)
    bp_masks: Masks | None = None
    bp_config: dict[str, Any] | None = None
    space: PatternSpace | None = None
    sets: list[PatternSet] = field(default_factory=list)

    def save(self, root: Path) -> Path:
        root = Path(root)
        (root / "sets").mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.model.state_dict().items()}, str(root / "model.safetensors"))
        if self.bp_masks is not None:
            save_file(dict(self.bp_masks), str(root / "bp_masks.safetensors"))
        if self.space is not None:
            (root / "space.json").write_text(json.dumps(self.space.to_dict()))
        for i, s in enumerate(self.sets):
            save_file(dict(s.masks), str(root / "sets" / f"{i}.safetensors"))
        meta = {
            "stage": self.stage,
            "model": self.description,
            "data": self.data,
            "vocab": self.vocab,
            "results": self.results,
            "bp": self.bp_config,
            "pattern_sets": [s.meta() for s in self.sets],
        }
        (root / "checkpoint.json").write_text(json.dumps(meta, indent=2))
        return root

    @classmethod
    def load(cls, root: Path) -> Checkpoint:
        root = Path(root)
        meta_path = root / "checkpoint.json"
        if not meta_path.is_file():
            raise BadInputError(f"{root}: not a checkpoint directory (no checkpoint.json)")
        try:
            meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError as exc:
            raise BadInputError(f"{meta_path}:{exc.lineno}: {exc.msg}") from exc
        model = build_model(meta["model"])
        state = load_file(str(root / "model.safetensors"))
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected or [m for m in missing if not m.endswith("pe")]:
            raise BadInputError(f"{root}: weights do not match the model (missing {missing}, extra {unexpected})")
        bp = load_file(str(root / "bp_masks.safetensors")) if (root / "bp_masks.safetensors").is_file() else None
        space = None
        if (root / "space.json").is_file():
            space = PatternSpace.from_dict(json.loads((root / "space.json").read_text()))
        sets = []
        for i, sm in enumerate(meta.get("pattern_sets") or []):
            masks = {k: v.bool() for k, v in load_file(str(root / "sets" / f"{i}.safetensors")).items()}
            choices = {
                n: LayerChoice(int(c[0]), tuple(c[1]) if c[1] is not None else None)
                for n, c in sm.get("choices", {}).items()
            }
            extra = {
                k: v
                for k, v in sm.items()
                if k not in ("name", "sparsity", "level", "accuracy", "freq_level", "choices")
            }
            sets.append(
                PatternSet(sm["name"], masks, choices, sm.get("level"), sm.get("accuracy"), sm.get("freq_level"), extra)
            )
        return cls(
            model=model,
            description=meta["model"],
            data=meta["data"],
            vocab=meta.get("vocab"),
            stage=meta.get("stage", "dense"),
            results=meta.get("results", {}),
            bp_masks={k: v.bool() for k, v in bp.items()} if bp is not None else None,
            bp_config=meta.get("bp"),
            space=space,
            sets=sets,
        )
