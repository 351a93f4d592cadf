"""The headline: the experiment's answer in one sentence, the same in ``testbed run``, ``report.md``,
``summary.json`` and the demo's last line.

    rt3 lasted 1.14× (bucket) / 1.10× (ECM) as long as dense-max, at accuracy 0.906 vs 0.913, with
    static-sparse 1.30× and oracle 1.20× beside it; measured on an emulated rpi4 under host load 0.95 per core.

Ratios are battery life (s) against the baseline in the same run; accuracy is each strategy's time-weighted
accuracy. Several runs of the same experiment with different battery models give one ratio each (the
"beside it" ratios come from the first). A run's ``summary.json`` gets ``headline``, ``profile_quality``
(the verdict of :mod:`testbed.experiment.quality`, with boolean ``monotone``) and ``oracle_rule`` added
beside the per-strategy results (:func:`annotate_summary`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from testbed.experiment.quality import ProfileQuality
from testbed.runstore.results import StrategyResult

#: How each battery model is named in the headline.
BATTERY_LABELS = {"bucket": "bucket", "energy-bucket": "bucket", "ecm": "ECM", "rt3-accounting": "RT3 accounting"}
#: Keys ``annotate_summary`` adds to a run's summary.json (never strategy names).
SUMMARY_KEYS = ("headline", "profile_quality", "oracle_rule")


def ratio(results: Mapping[str, StrategyResult], strategy: str, baseline: str) -> float:
    """Battery life of ``strategy`` over ``baseline`` (NaN when either is missing or the baseline lasted 0 s)."""
    a, b = results.get(strategy), results.get(baseline)
    if a is None or b is None or not b.life_s > 0:
        return math.nan
    return a.life_s / b.life_s


def _acc(r: StrategyResult | None) -> str:
    return "n/a" if r is None or math.isnan(r.accuracy_time_weighted) else f"{r.accuracy_time_weighted:.3f}"


def headline(
    runs: Sequence[tuple[str, Mapping[str, StrategyResult]]],
    quality: ProfileQuality | None,
    baseline: str = "dense-max",
    subject: str = "rt3",
) -> str:
    """The one-sentence answer for ``runs`` = [(battery model, results by strategy), …] (see the module text)."""
    if not runs:
        return "no results"
    parts = [f"{ratio(res, subject, baseline):.2f}× ({BATTERY_LABELS.get(m, m)})" for m, res in runs]
    first = runs[0][1]
    sentence = (
        f"{subject} lasted {' / '.join(parts)} as long as {baseline}, at accuracy {_acc(first.get(subject))} "
        f"vs {_acc(first.get(baseline))}"
    )
    beside = [f"{s} {ratio(first, s, baseline):.2f}×" for s in ("static-sparse", "oracle") if s in first]
    if beside:
        sentence += f", with {' and '.join(beside)} beside it"
    if quality is not None:
        sentence += f"; {quality.provenance()}"
        if quality.flagged:
            sentence += f" (profile flagged: {'; '.join(quality.reasons())})"
    return sentence + "."


def warning_line(quality: ProfileQuality | None) -> str | None:
    """The first line a report from a modelled or flagged profile must carry (None for a good measured one)."""
    if quality is None:
        return None
    if quality.flagged:
        return f"**Warning: the profile is flagged — {'; '.join(quality.reasons())}.** ({quality.provenance()})"
    if quality.origin == "modelled":
        return f"**Note: these numbers come from a modelled profile, not a measurement** ({quality.provenance()})."
    return None


def annotate_summary(run_dir: Path, extra: Mapping[str, Any]) -> Path:
    """Add ``extra`` (keys of :data:`SUMMARY_KEYS`) to ``run_dir/summary.json`` beside the strategies' results."""
    path = run_dir / "summary.json"
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    data.update({k: v for k, v in extra.items() if k in SUMMARY_KEYS})
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path
