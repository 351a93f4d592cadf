"""Data for the RT3 models: WikiText-2 token files, GLUE SST-2 TSV files, and generated proxy corpora.

Real data is read from local paths only (nothing is downloaded). The proxy corpora are generated
deterministically from a seed by small grammars; they exist so that tests and the demo can train in seconds,
and every object built from them says ``source="proxy …"`` — numbers measured on them are not WikiText-2 or
SST-2 numbers.

Failure modes: a missing file or directory raises BadInputError; a malformed SST-2 row raises ParseError
naming the file, the line and the problem.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from devices.errors import BadInputError, ParseError

UNK = "<unk>"
PAD = "<pad>"
CLS = "<cls>"

_TOKEN_RE = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[^\sa-z0-9]")


def basic_english(line: str) -> list[str]:
    """Lower-case and split words from punctuation, like torchtext's ``basic_english`` used by RT3."""
    return _TOKEN_RE.findall(line.lower())


@dataclass
class Vocab:
    """Token ↔ id mapping; id 0 is ``<unk>`` (LM) or ``<pad>`` (classification, then 1 = ``<unk>``)."""

    itos: list[str]

    def __post_init__(self) -> None:
        self.stoi = {t: i for i, t in enumerate(self.itos)}
        self.unk_id = self.stoi.get(UNK, 0)

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, tokens: Iterable[str]) -> list[int]:
        return [self.stoi.get(t, self.unk_id) for t in tokens]

    @classmethod
    def build(cls, token_lists: Iterable[Sequence[str]], specials: Sequence[str], min_freq: int = 1) -> Vocab:
        counts: Counter[str] = Counter()
        for toks in token_lists:
            counts.update(toks)
        words = sorted(
            (w for w, c in counts.items() if c >= min_freq and w not in specials),
            key=lambda w: (-counts[w], w),
        )
        return cls(list(specials) + words)


# --------------------------------------------------------------------------- language modelling


@dataclass
class LMCorpus:
    """Token-id streams of the train/valid/test splits and their vocabulary."""

    vocab: Vocab
    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray
    source: str


_WIKI_NAMES = {
    "train": ("wiki.train.tokens", "wiki.train.raw"),
    "valid": ("wiki.valid.tokens", "wiki.valid.raw"),
    "test": ("wiki.test.tokens", "wiki.test.raw"),
}


def _find_split(root: Path, split: str) -> Path:
    for name in _WIKI_NAMES[split]:
        if (root / name).is_file():
            return root / name
    raise BadInputError(f"{root}: no {' or '.join(_WIKI_NAMES[split])} (WikiText-2 layout expected)")


def _read_lines(path: Path) -> list[list[str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ParseError(path, None, f"not UTF-8 text ({exc.reason})") from exc
    return [toks for toks in (basic_english(line) for line in text.splitlines()) if toks]


def load_wikitext2(root: Path, source: str | None = None) -> LMCorpus:
    """WikiText-2 from a directory with ``wiki.{train,valid,test}.tokens`` (or ``.raw``).

    Tokenised with :func:`basic_english`, empty lines skipped, vocabulary from the training split; tokens
    not in it map to ``<unk>``.
    """
    root = Path(root)
    if not root.is_dir():
        raise BadInputError(f"{root}: not a directory")
    lines = {s: _read_lines(_find_split(root, s)) for s in _WIKI_NAMES}
    vocab = Vocab.build(lines["train"], specials=[UNK])

    def ids(split: str) -> np.ndarray:
        return np.asarray([i for toks in lines[split] for i in vocab.encode(toks)], dtype=np.int64)

    if len(ids("train")) < 2:
        raise BadInputError(f"{root}: the training split has fewer than 2 tokens")
    return LMCorpus(vocab, ids("train"), ids("valid"), ids("test"), source or f"wikitext-2 ({root})")


_NOUNS = [
    ("cat", "cats"),
    ("dog", "dogs"),
    ("bird", "birds"),
    ("child", "children"),
    ("farmer", "farmers"),
    ("river", "rivers"),
    ("king", "kings"),
    ("teacher", "teachers"),
    ("horse", "horses"),
    ("city", "cities"),
    ("ship", "ships"),
    ("tree", "trees"),
]
_VERBS = [
    ("sees", "see"),
    ("likes", "like"),
    ("follows", "follow"),
    ("finds", "find"),
    ("helps", "help"),
    ("watches", "watch"),
    ("carries", "carry"),
    ("visits", "visit"),
]
_ADJS = ["old", "young", "small", "large", "quiet", "brave", "green", "dark"]
_PREPS = ["near", "behind", "under", "beside"]


def _np(rng: random.Random) -> tuple[list[str], bool]:
    plural = rng.random() < 0.4
    det = rng.choice(["the", "some"]) if plural else rng.choice(["the", "a", "every"])
    words = [det]
    if rng.random() < 0.5:
        words.append(rng.choice(_ADJS))
    noun = rng.choice(_NOUNS)
    words.append(noun[1] if plural else noun[0])
    return words, plural


def proxy_lm_sentences(n_sentences: int, seed: int) -> list[str]:
    """Deterministic sentences of a small agreement grammar (a PROXY for WikiText-2, not real text)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n_sentences):
        subj, plural = _np(rng)
        verb = rng.choice(_VERBS)
        obj, _ = _np(rng)
        words = [*subj, verb[1] if plural else verb[0], *obj]
        if rng.random() < 0.35:
            pp, _ = _np(rng)
            words += [rng.choice(_PREPS), *pp]
        out.append(" ".join(words) + " .")
    return out


def write_proxy_wikitext(root: Path, seed: int = 0, n_train: int = 4000, n_eval: int = 400) -> Path:
    """Write a generated PROXY corpus in the WikiText-2 file layout (so the real loader reads it)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / "PROXY.txt").write_text(
        "Generated by testbed.rt3.data.write_proxy_wikitext: a small agreement grammar, NOT WikiText-2.\n"
    )
    for split, n, s in (("train", n_train, seed), ("valid", n_eval, seed + 1), ("test", n_eval, seed + 2)):
        sentences = proxy_lm_sentences(n, s)
        lines = [" ".join(sentences[i : i + 4]) for i in range(0, len(sentences), 4)]
        (root / f"wiki.{split}.tokens").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def proxy_lm_corpus(seed: int = 0, n_train: int = 4000, n_eval: int = 400) -> LMCorpus:
    """The generated PROXY language-modelling corpus, in memory."""
    splits = {
        "train": proxy_lm_sentences(n_train, seed),
        "valid": proxy_lm_sentences(n_eval, seed + 1),
        "test": proxy_lm_sentences(n_eval, seed + 2),
    }
    toks = {k: [basic_english(s) for s in v] for k, v in splits.items()}
    vocab = Vocab.build(toks["train"], specials=[UNK])

    def ids(split: str) -> np.ndarray:
        return np.asarray([i for t in toks[split] for i in vocab.encode(t)], dtype=np.int64)

    return LMCorpus(vocab, ids("train"), ids("valid"), ids("test"), f"proxy grammar corpus (seed {seed})")


def lm_batches(stream: np.ndarray, batch_size: int, bptt: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (input, target) arrays of shape [batch_size, ≤bptt], the tutorial's batchify + get_batch.

    The stream is cut into ``batch_size`` contiguous columns; target is the input shifted by one token.
    Raises BadInputError if the stream is too short for one batch.
    """
    n = len(stream) // batch_size
    if n < 2:
        raise BadInputError(f"{len(stream)} tokens are too few for batch size {batch_size}")
    data = stream[: n * batch_size].reshape(batch_size, n)
    for i in range(0, n - 1, bptt):
        seq = min(bptt, n - 1 - i)
        yield data[:, i : i + seq], data[:, i + 1 : i + 1 + seq]


# --------------------------------------------------------------------------- classification


@dataclass
class ClassificationSplit:
    sentences: list[str]
    labels: np.ndarray


@dataclass
class ClassificationData:
    """Train and evaluation splits of a binary sentence-classification task."""

    train: ClassificationSplit
    dev: ClassificationSplit
    source: str


def read_sst2_tsv(path: Path) -> ClassificationSplit:
    """One GLUE SST-2 TSV file: a header with ``sentence`` and ``label`` columns, then one row per line.

    Raises ParseError (file, line, problem) for a missing column, a wrong field count or a label other than
    0/1; BadInputError if the file is missing.
    """
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"{path}: no such file")
    sentences: list[str] = []
    labels: list[int] = []
    with path.open(encoding="utf-8") as fh:
        header = fh.readline().rstrip("\n").split("\t")
        if "sentence" not in header or "label" not in header:
            raise ParseError(path, 1, f"header must name 'sentence' and 'label' columns, got {header}")
        si, li = header.index("sentence"), header.index("label")
        for lineno, line in enumerate(fh, start=2):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            fields = line.split("\t")
            if len(fields) != len(header):
                raise ParseError(path, lineno, f"expected {len(header)} tab-separated fields, got {len(fields)}")
            if fields[li] not in ("0", "1"):
                raise ParseError(path, lineno, f"label must be 0 or 1, got {fields[li]!r}")
            sentences.append(fields[si])
            labels.append(int(fields[li]))
    if not sentences:
        raise ParseError(path, None, "no data rows")
    return ClassificationSplit(sentences, np.asarray(labels, dtype=np.int64))


def load_sst2(root: Path) -> ClassificationData:
    """GLUE SST-2 from a directory with ``train.tsv`` and ``dev.tsv``."""
    root = Path(root)
    return ClassificationData(
        read_sst2_tsv(root / "train.tsv"), read_sst2_tsv(root / "dev.tsv"), f"glue sst-2 ({root})"
    )


_POS = ["good", "great", "wonderful", "charming", "moving", "funny", "brilliant", "delightful"]
_NEG = ["bad", "dull", "boring", "awful", "clumsy", "tedious", "weak", "messy"]
_SUBJ = [
    "the film",
    "the movie",
    "this story",
    "the acting",
    "the script",
    "the ending",
    "the music",
    "the cast",
    "the plot",
    "the direction",
]
_INTENS = ["", "", "very ", "really ", "quite ", "rather "]


def proxy_sst2_sentences(n: int, seed: int) -> tuple[list[str], list[int]]:
    """Deterministic template sentences with sentiment labels (a PROXY for SST-2, including negation)."""
    rng = random.Random(seed)
    sentences, labels = [], []
    for _ in range(n):
        positive = rng.random() < 0.5
        negated = rng.random() < 0.3
        adj = rng.choice(_POS if positive != negated else _NEG)
        verb = rng.choice(["is", "was", "seems", "felt"])
        neg = " not" if negated else ""
        tail = rng.choice(["", " overall", " at times", " to me", ""])
        sentences.append(f"{rng.choice(_SUBJ)} {verb}{neg} {rng.choice(_INTENS)}{adj}{tail} .")
        labels.append(int(positive))
    return sentences, labels


def write_proxy_sst2(root: Path, seed: int = 0, n_train: int = 2000, n_dev: int = 400) -> Path:
    """Write a generated PROXY sentiment set in the SST-2 TSV layout (``train.tsv``, ``dev.tsv``)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / "PROXY.txt").write_text("Generated by testbed.rt3.data.write_proxy_sst2: templates, NOT SST-2.\n")
    for name, n, s in (("train.tsv", n_train, seed), ("dev.tsv", n_dev, seed + 1)):
        sents, labels = proxy_sst2_sentences(n, s)
        rows = ["sentence\tlabel"] + [f"{t}\t{y}" for t, y in zip(sents, labels, strict=True)]
        (root / name).write_text("\n".join(rows) + "\n", encoding="utf-8")
    return root


def proxy_sst2(seed: int = 0, n_train: int = 2000, n_dev: int = 400) -> ClassificationData:
    """The generated PROXY sentiment data, in memory."""
    tr = proxy_sst2_sentences(n_train, seed)
    dv = proxy_sst2_sentences(n_dev, seed + 1)
    return ClassificationData(
        ClassificationSplit(tr[0], np.asarray(tr[1])),
        ClassificationSplit(dv[0], np.asarray(dv[1])),
        f"proxy sentiment templates (seed {seed})",
    )


def word_vocab_for(data: ClassificationData) -> Vocab:
    """A whitespace vocabulary (``<pad>`` = 0, ``<unk>`` = 1, ``<cls>`` = 2) for random-weight encoders."""
    return Vocab.build((basic_english(s) for s in data.train.sentences), specials=[PAD, UNK, CLS])


def encode_words(sentences: Sequence[str], vocab: Vocab, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """(input_ids, attention_mask) of shape [n, max_len]: ``<cls>`` first, truncated and padded with 0."""
    ids = np.zeros((len(sentences), max_len), dtype=np.int64)
    mask = np.zeros((len(sentences), max_len), dtype=np.int64)
    cls = vocab.stoi[CLS]
    for i, s in enumerate(sentences):
        toks = [cls, *vocab.encode(basic_english(s))][:max_len]
        ids[i, : len(toks)] = toks
        mask[i, : len(toks)] = 1
    return ids, mask
