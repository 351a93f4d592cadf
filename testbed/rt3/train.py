"""Training and evaluation of RT3 models, with optional masks, group-lasso penalties and joint pattern sets.

One loop serves every stage of the method: dense training, block pruning with a reweighted group-lasso
penalty, retraining with a fixed mask, and RT3's joint fine-tuning of K pattern sets on one backbone
(loss = Σ w_k · loss(backbone ⊙ mask_k), one optimizer step per batch, the BP zeros re-imposed after it).

Metrics: language modelling reports next-token top-1 ``accuracy``, mean token ``loss`` (nats) and
``perplexity`` = exp(loss); classification reports sentence ``accuracy`` and ``loss``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch import Tensor, nn

from devices.errors import BadInputError
from testbed.rt3.data import ClassificationData, LMCorpus, Vocab, encode_words, lm_batches
from testbed.rt3.masking import Masks, apply_masks_, masked_call

Batch = tuple[dict[str, Tensor], Tensor]


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and torch so that a run repeats exactly on the same machine."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class Task(Protocol):
    """What the loop needs from a task: batches, logits from a (masked) model, and the kind of metric."""

    source: str
    is_lm: bool

    def batches(self, split: str, shuffle_seed: int | None = None) -> Iterator[Batch]: ...

    def n_batches(self, split: str) -> int: ...

    def logits(self, model: nn.Module, inputs: Mapping[str, Tensor], masks: Masks | None) -> Tensor: ...


class LMTask:
    """Next-token prediction on an :class:`LMCorpus` with RT3's batch size and bptt (20 and 35 by default)."""

    is_lm = True

    def __init__(self, corpus: LMCorpus, batch_size: int = 20, bptt: int = 35) -> None:
        self.corpus = corpus
        self.batch_size = batch_size
        self.bptt = bptt
        self.source = corpus.source

    def _stream(self, split: str) -> np.ndarray:
        if split not in ("train", "valid", "test"):
            raise BadInputError(f"unknown split {split!r}")
        stream: np.ndarray = getattr(self.corpus, split)
        return stream

    def batches(self, split: str, shuffle_seed: int | None = None) -> Iterator[Batch]:
        items = list(lm_batches(self._stream(split), self.batch_size, self.bptt))
        if shuffle_seed is not None:
            random.Random(shuffle_seed).shuffle(items)
        for x, y in items:
            yield (
                {"tokens": torch.from_numpy(np.ascontiguousarray(x))},
                torch.from_numpy(np.ascontiguousarray(y)),
            )

    def n_batches(self, split: str) -> int:
        n = len(self._stream(split)) // self.batch_size
        return max(0, math.ceil((n - 1) / self.bptt))

    def logits(self, model: nn.Module, inputs: Mapping[str, Tensor], masks: Masks | None) -> Tensor:
        out: Tensor = masked_call(model, masks, inputs["tokens"])
        return out


class ClassificationTask:
    """Sentence classification; sentences are encoded once with a word vocabulary or an HF tokenizer."""

    is_lm = False

    def __init__(
        self,
        data: ClassificationData,
        vocab: Vocab | None = None,
        tokenizer_dir: str | None = None,
        max_len: int = 32,
        batch_size: int = 32,
    ) -> None:
        self.data = data
        self.batch_size = batch_size
        self.source = data.source
        self.encoded: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        for split in ("train", "dev"):
            part = getattr(data, split)
            if tokenizer_dir is not None:
                from transformers import AutoTokenizer

                tok = AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)
                enc = tok(
                    part.sentences,
                    padding="max_length",
                    truncation=True,
                    max_length=max_len,
                    return_tensors="np",
                )
                ids, mask = enc["input_ids"].astype(np.int64), enc["attention_mask"].astype(np.int64)
            elif vocab is not None:
                ids, mask = encode_words(part.sentences, vocab, max_len)
            else:
                raise BadInputError("classification needs a word vocabulary or a tokenizer directory")
            self.encoded[split] = (ids, mask, part.labels)

    def batches(self, split: str, shuffle_seed: int | None = None) -> Iterator[Batch]:
        split = "dev" if split in ("valid", "test") else split
        ids, mask, labels = self.encoded[split]
        order = np.arange(len(labels))
        if shuffle_seed is not None:
            np.random.default_rng(shuffle_seed).shuffle(order)
        for i in range(0, len(order), self.batch_size):
            sel = order[i : i + self.batch_size]
            yield (
                {"input_ids": torch.from_numpy(ids[sel]), "attention_mask": torch.from_numpy(mask[sel])},
                torch.from_numpy(labels[sel]),
            )

    def n_batches(self, split: str) -> int:
        split = "dev" if split in ("valid", "test") else split
        return math.ceil(len(self.encoded[split][2]) / self.batch_size)

    def logits(self, model: nn.Module, inputs: Mapping[str, Tensor], masks: Masks | None) -> Tensor:
        out = masked_call(model, masks, **inputs)
        logits: Tensor = out.logits if hasattr(out, "logits") else out
        return logits


@dataclass
class TrainConfig:
    """Optimisation settings. ``max_steps`` caps the optimizer steps per epoch (None: the whole split).

    ``total_steps`` caps the steps over all epochs (one optimizer and one lr schedule across epochs);
    ``warmup_steps``: the lr rises linearly from 0 over these steps, then stays at ``lr``; ``head_lr``: the
    learning rate of the classification head (parameters under ``classifier.``/``pre_classifier.``; None: ``lr``);
    ``distill_alpha`` > 0 with a teacher passed to :func:`train`: the loss is (1 − α)·CE + α·T²·KL(teacher ‖
    student) at temperature ``distill_temp`` (knowledge distillation from the dense model).
    """

    epochs: int = 1
    lr: float = 1e-3
    weight_decay: float = 0.0
    clip_norm: float = 0.5
    seed: int = 0
    max_steps: int | None = None
    progress: bool = True
    label: str = "train"
    total_steps: int | None = None
    warmup_steps: int = 0
    head_lr: float | None = None
    distill_alpha: float = 0.0
    distill_temp: float = 2.0

    def steps_per_epoch(self, n_batches: int) -> int:
        """Optimizer steps one epoch runs over ``n_batches`` training batches (``max_steps`` applied)."""
        return n_batches if self.max_steps is None else min(n_batches, self.max_steps)

    def planned_steps(self, n_batches: int) -> int:
        """Optimizer steps :func:`train` will run in all (epochs × per-epoch steps, capped by ``total_steps``)."""
        steps = self.epochs * self.steps_per_epoch(n_batches)
        return steps if self.total_steps is None else min(steps, self.total_steps)


HEAD_PREFIXES = ("classifier.", "pre_classifier.")


def steps_config(steps: int, n_batches: int, **kw: object) -> TrainConfig:
    """A TrainConfig that runs exactly ``steps`` optimizer steps over as many epochs as that needs."""
    epochs = math.ceil(steps / n_batches) if steps > 0 and n_batches > 0 else 0
    return TrainConfig(epochs=epochs, total_steps=steps, **kw)  # type: ignore[arg-type]


@dataclass
class EvalResult:
    """Evaluation of one model/mask: accuracy in [0, 1], mean loss in nats, perplexity (LM only)."""

    accuracy: float
    loss: float
    perplexity: float | None
    n: int

    def to_dict(self) -> dict[str, float | int | None]:
        return {"accuracy": self.accuracy, "loss": self.loss, "perplexity": self.perplexity, "n": self.n}


def _progress(enabled: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        transient=True,
        disable=not enabled,
    )


def _loss(logits: Tensor, target: Tensor) -> Tensor:
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1))


def _distill_loss(logits: Tensor, target: Tensor, teacher: Tensor, alpha: float, temp: float) -> Tensor:
    """(1 − α)·CE(student, target) + α·T²·KL(softmax(teacher/T) ‖ softmax(student/T))."""
    s = logits.reshape(-1, logits.shape[-1])
    t = teacher.reshape(-1, teacher.shape[-1])
    kl = F.kl_div(F.log_softmax(s / temp, -1), F.log_softmax(t / temp, -1), log_target=True, reduction="batchmean")
    return (1 - alpha) * F.cross_entropy(s, target.reshape(-1)) + alpha * temp * temp * kl


def _optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    if config.head_lr is None:
        return torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    head = [p for n, p in model.named_parameters() if n.startswith(HEAD_PREFIXES)]
    body = [p for n, p in model.named_parameters() if not n.startswith(HEAD_PREFIXES)]
    if not head:
        raise BadInputError(f"head_lr given but the model has no parameters under {', '.join(HEAD_PREFIXES)}")
    groups = [{"params": body, "lr": config.lr}, {"params": head, "lr": config.head_lr}]
    return torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)


def train(
    model: nn.Module,
    task: Task,
    config: TrainConfig,
    mask_sets: Sequence[Masks] | None = None,
    loss_weights: Sequence[float] | None = None,
    fixed_mask: Masks | None = None,
    penalty: Callable[[nn.Module], Tensor] | None = None,
    after_step: Callable[[int], None] | None = None,
    teacher: nn.Module | None = None,
) -> list[float]:
    """Train ``model`` in place; return the mean training loss of every epoch.

    ``mask_sets``/``loss_weights``: forward the model once per mask set and sum the weighted losses (RT3's
    joint training; one set = masked retraining). ``fixed_mask``: zeros re-imposed after every step.
    ``penalty``: a regulariser added to the loss (the group lasso). ``after_step(step)``: called after every
    optimizer step (the reweighting schedule). ``teacher``: a frozen model whose logits the loss distils from
    when ``config.distill_alpha`` > 0. Raises BadInputError for mismatched sets and weights.
    """
    sets: list[Masks | None] = list(mask_sets) if mask_sets else [None]
    weights = list(loss_weights) if loss_weights is not None else [1.0 / len(sets)] * len(sets)
    if len(weights) != len(sets):
        raise BadInputError(f"{len(sets)} mask sets but {len(weights)} loss weights")
    distil = teacher is not None and config.distill_alpha > 0
    set_seed(config.seed)
    optimizer = _optimizer(model, config)
    base_lrs = [g["lr"] for g in optimizer.param_groups]
    if fixed_mask:
        apply_masks_(model, fixed_mask)
    if distil and teacher is not None:
        teacher.eval()
    history = []
    step = 0
    per_epoch = config.steps_per_epoch(task.n_batches("train"))
    planned = config.planned_steps(task.n_batches("train"))
    with _progress(config.progress) as bar:
        for epoch in range(config.epochs):
            if config.total_steps is not None and step >= planned:
                break
            model.train()
            total = min(per_epoch, planned - step)
            job = bar.add_task(f"{config.label} epoch {epoch + 1}/{config.epochs}", total=total, info="")
            losses = []
            for i, (inputs, target) in enumerate(task.batches("train", shuffle_seed=config.seed + epoch)):
                if i >= total:
                    break
                if config.warmup_steps > 0:
                    scale = min(1.0, (step + 1) / config.warmup_steps)
                    for g, base in zip(optimizer.param_groups, base_lrs, strict=True):
                        g["lr"] = base * scale
                optimizer.zero_grad(set_to_none=True)
                if distil and teacher is not None:
                    with torch.no_grad():
                        t_logits = task.logits(teacher, inputs, None)
                    a, temp = config.distill_alpha, config.distill_temp
                    terms = (
                        w * _distill_loss(task.logits(model, inputs, m), target, t_logits, a, temp)
                        for w, m in zip(weights, sets, strict=True)
                    )
                else:
                    terms = (
                        w * _loss(task.logits(model, inputs, m), target) for w, m in zip(weights, sets, strict=True)
                    )
                loss = sum(terms, start=torch.zeros(()))
                objective = loss + penalty(model) if penalty is not None else loss
                objective.backward()
                if config.clip_norm > 0:
                    nn.utils.clip_grad_norm_(model.parameters(), config.clip_norm)
                optimizer.step()
                if fixed_mask:
                    apply_masks_(model, fixed_mask)
                step += 1
                if after_step is not None:
                    after_step(step)
                losses.append(float(loss.detach()))
                bar.update(job, advance=1, info=f"loss {losses[-1]:.3f}")
            bar.remove_task(job)
            history.append(float(np.mean(losses)) if losses else float("nan"))
    return history


@torch.no_grad()
def evaluate(
    model: nn.Module,
    task: Task,
    split: str = "test",
    masks: Masks | None = None,
    max_batches: int | None = None,
) -> EvalResult:
    """Accuracy and loss of ``model`` (optionally masked) on a split; perplexity for language models."""
    model.eval()
    correct = 0
    count = 0
    loss_sum = 0.0
    for i, (inputs, target) in enumerate(task.batches(split)):
        if max_batches is not None and i >= max_batches:
            break
        logits = task.logits(model, inputs, masks)
        flat = logits.reshape(-1, logits.shape[-1])
        tgt = target.reshape(-1)
        loss_sum += float(F.cross_entropy(flat, tgt, reduction="sum"))
        correct += int((flat.argmax(-1) == tgt).sum())
        count += tgt.numel()
    if count == 0:
        raise BadInputError(f"split {split!r} has no batches to evaluate")
    loss = loss_sum / count
    ppl = math.exp(min(loss, 50.0)) if task.is_lm else None
    return EvalResult(correct / count, loss, ppl, count)
