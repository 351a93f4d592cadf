"""The real-text corpus: fortune files parsed, split without leaks, labelled honestly."""

from __future__ import annotations

from pathlib import Path

import pytest

from devices.errors import BadInputError, ParseError
from testbed.rt3.corpus import (
    fortune_dir,
    fortune_entries,
    fortune_lm_corpus,
    fortune_topic_data,
    read_fortune_file,
)
from testbed.rt3.tasks import build_task, parse_data_arg


def _write(root: Path, name: str, entries: list[str]) -> None:
    root.mkdir(exist_ok=True)
    (root / name).write_text("\n%\n".join(entries) + "\n%\n", encoding="utf-8")


def test_entries_are_split_on_percent_lines(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("One line.\n%\nTwo\n   lines here.\n%\n%\nLast -- Someone\n", encoding="utf-8")
    assert read_fortune_file(tmp_path / "f") == ["One line.", "Two lines here.", "Last -- Someone"]
    (tmp_path / "bin").write_bytes(b"\xff\xfe%\n")
    with pytest.raises(ParseError, match="bin: not UTF-8"):
        read_fortune_file(tmp_path / "bin")


def test_lm_splits_hold_whole_entries_and_say_what_they_are(tmp_path: Path) -> None:
    words = ["the", "cat", "sat", "on", "a", "mat", "and", "the", "dog", "ran", "far", "away"]
    entries = [" ".join([*words[i % 5 :], f"w{i % 7}"]) for i in range(60)]
    _write(tmp_path, "people", entries)
    _write(tmp_path, "art", ["@@@@ ####"] * 5)  # a picture file is left out
    c = fortune_lm_corpus(tmp_path, seed=1, min_freq=1)
    assert "not WikiText-2" in c.source and "fortune" in c.source
    assert "@" not in c.vocab.stoi
    eos = c.vocab.stoi["<eos>"]
    n_entries = sum(int((s == eos).sum()) for s in (c.train, c.valid, c.test))
    assert n_entries == 60  # every entry ends with <eos> in exactly one split
    assert fortune_lm_corpus(tmp_path, seed=1, min_freq=1).train.tolist() == c.train.tolist()


def test_topic_task_labels_come_from_the_file(tmp_path: Path) -> None:
    _write(tmp_path, "science", [f"atoms and energy number {i}" for i in range(20)])
    _write(tmp_path, "politics", [f"votes and power number {i}" for i in range(30)])
    d = fortune_topic_data(tmp_path, ("science", "politics"))
    assert len(d.train.sentences) + len(d.dev.sentences) == 50
    for s, y in zip(d.train.sentences + d.dev.sentences, [*d.train.labels, *d.dev.labels], strict=True):
        assert ("atoms" in s) == (y == 0)
    with pytest.raises(BadInputError, match="no fortune file"):
        fortune_topic_data(tmp_path, ("science", "sports"))


def test_the_installed_wheel_is_real_english_text() -> None:
    pytest.importorskip("fortune")
    entries = fortune_entries(fortune_dir())
    assert sum(len(v) for v in entries.values()) > 10_000
    assert "people" in entries and "literature" in entries
    spec = parse_data_arg("fortune-lm")
    assert spec["kind"] == "fortune-lm"
    task, vocab = build_task({"kind": "fortune-lm", "seed": 0, "max_entries": 300})
    assert vocab is not None and "not WikiText-2" in task.source
