from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from devices.errors import BadInputError, ParseError
from testbed.rt3 import data as d


def test_proxy_corpora_are_deterministic_and_seeded() -> None:
    assert d.proxy_lm_sentences(50, 3) == d.proxy_lm_sentences(50, 3)
    assert d.proxy_lm_sentences(50, 3) != d.proxy_lm_sentences(50, 4)
    a, b = d.proxy_sst2(1, 100, 20), d.proxy_sst2(1, 100, 20)
    assert a.train.sentences == b.train.sentences
    assert np.array_equal(a.train.labels, b.train.labels)
    assert "proxy" in a.source and "proxy" in d.proxy_lm_corpus(0, 100, 10).source


def test_proxy_wikitext_files_load_through_the_real_loader(tmp_path: Path) -> None:
    root = d.write_proxy_wikitext(tmp_path / "wt", seed=5, n_train=200, n_eval=40)
    on_disk = d.load_wikitext2(root)
    in_memory = d.proxy_lm_corpus(5, 200, 40)
    assert on_disk.vocab.itos == in_memory.vocab.itos
    assert np.array_equal(on_disk.train, in_memory.train)
    assert np.array_equal(on_disk.test, in_memory.test)


def test_wikitext_missing_split_is_bad_input(tmp_path: Path) -> None:
    (tmp_path / "wiki.train.tokens").write_text("a b c\n")
    with pytest.raises(BadInputError, match=r"wiki\.valid"):
        d.load_wikitext2(tmp_path)
    with pytest.raises(BadInputError, match="not a directory"):
        d.load_wikitext2(tmp_path / "nope")


def test_unknown_words_map_to_unk(tmp_path: Path) -> None:
    for split, text in (("train", "the cat sat\n"), ("valid", "the dog sat\n"), ("test", "a cat\n")):
        (tmp_path / f"wiki.{split}.tokens").write_text(text)
    c = d.load_wikitext2(tmp_path)
    unk = c.vocab.stoi[d.UNK]
    assert list(c.valid) == [c.vocab.stoi["the"], unk, c.vocab.stoi["sat"]]


def test_basic_english_splits_punctuation() -> None:
    assert d.basic_english("The cat's hat, RED!") == ["the", "cat's", "hat", ",", "red", "!"]


def test_lm_batches_shift_targets_by_one() -> None:
    stream = np.arange(103)
    batches = list(d.lm_batches(stream, batch_size=4, bptt=7))
    x, y = batches[0]
    assert x.shape == (4, 7)
    assert np.array_equal(y, x + 1)
    assert sum(b[0].shape[1] for b in batches) == 103 // 4 - 1
    with pytest.raises(BadInputError):
        list(d.lm_batches(np.arange(5), batch_size=4, bptt=2))


def test_sst2_roundtrip_and_errors(tmp_path: Path) -> None:
    root = d.write_proxy_sst2(tmp_path / "sst", seed=2, n_train=30, n_dev=10)
    loaded = d.load_sst2(root)
    mem = d.proxy_sst2(2, 30, 10)
    assert loaded.train.sentences == mem.train.sentences
    assert np.array_equal(loaded.dev.labels, mem.dev.labels)

    bad = tmp_path / "bad.tsv"
    bad.write_text("sentence\tlabel\ngood film\t1\nbad film\t7\n")
    with pytest.raises(ParseError) as info:
        d.read_sst2_tsv(bad)
    assert info.value.line == 3 and "label must be 0 or 1" in str(info.value)
    bad.write_text("sentence\tlabel\ngood\tfilm\t1\n")
    with pytest.raises(ParseError, match=r"bad.tsv:2: expected 2"):
        d.read_sst2_tsv(bad)
    bad.write_text("text\ty\nx\t1\n")
    with pytest.raises(ParseError, match=r"bad.tsv:1: header"):
        d.read_sst2_tsv(bad)


def test_encode_words_pads_and_truncates() -> None:
    data = d.proxy_sst2(0, 20, 5)
    vocab = d.word_vocab_for(data)
    ids, mask = d.encode_words(["the film was good .", "x " * 40], vocab, max_len=8)
    assert ids.shape == (2, 8)
    assert ids[0, 0] == vocab.stoi[d.CLS]
    assert mask[0].sum() == 6 and mask[1].sum() == 8
    assert ids[1, 1] == vocab.stoi[d.UNK]
