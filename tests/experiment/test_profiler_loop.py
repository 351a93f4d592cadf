"""The profiler's control loop on a scripted board: interleaved rounds, the CI stopping rule, the re-measure
of levels that break monotonicity, and several models in one table.

The board here is a small deterministic implementation of the two agent calls the profiler makes (``info``
and ``measure``): a real agent's latencies are noisy, so only a scripted one can make a level slower on
its first pass and normal on its second, which is what the re-measure loop exists for.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from devices.errors import BadInputError
from testbed.experiment.profiler import ProfiledModel, ProfileOptions, profile_models, profile_through_agent

LEVELS = {"f1500": 1_500_000, "f1000": 1_000_000, "f600": 600_000}


@dataclass
class ScriptedBoard:
    """Latency = base_ms[set] × 1.5 GHz / f, times ``slow_first[level]`` on that level's first pass (the
    first ``slow_windows`` windows there); power 2 W + 3 W × f / 1.5 GHz; idle 2 W. Records every call."""

    base_ms: dict[str, float]
    slow_first: dict[str, float] = field(default_factory=dict)
    slow_windows: int = 0
    jitter: float = 0.0  # relative spread of the window means (alternating ±)
    drift: float = 0.0  # relative slow-down per timed window measured so far (a host or board that drifts)
    calls: list[tuple[str, str, int]] = field(default_factory=list)  # (level, set, inferences)

    def info(self) -> dict[str, Any]:
        return {"profile": "scripted", "levels": [{"name": n, "freq_khz": {"policy0": f}} for n, f in LEVELS.items()]}

    def measure(self, model_id: str, inferences: int, warmup: int = 5, period_ms: float | None = None,
                deadline_ms: float | None = None, pattern_set: str | None = None, level: str | None = None,
                **_: Any) -> dict[str, Any]:  # fmt: skip
        assert level is not None and pattern_set is not None
        seen = sum(1 for lv, _, n in self.calls if lv == level and n > 5)
        self.calls.append((level, pattern_set, inferences))
        scale = 1.5e6 / LEVELS[level]
        lat = self.base_ms[pattern_set] * scale
        if inferences > 5 and seen < self.slow_windows:
            lat *= self.slow_first.get(level, 1.0)
        lat *= 1.0 + (self.jitter if len(self.calls) % 2 else -self.jitter)
        lat *= 1.0 + self.drift * sum(1 for _, _, n in self.calls[:-1] if n > 5)
        active_w = 2.0 + 3.0 / scale
        busy_s = inferences * lat / 1000.0
        if period_ms is not None:  # the idle window
            duration_s = inferences * period_ms / 1000.0
            energy_j = busy_s * active_w + (duration_s - busy_s) * 2.0
        else:
            duration_s, energy_j = busy_s, busy_s * active_w
        lats = [lat * (1.0 + 0.01 * (i % 3)) for i in range(inferences)]
        return {
            "latency": {"mean_ms": sum(lats) / len(lats), "count": inferences},
            "latencies_ms": lats,
            "energy": {
                "energy_j": energy_j,
                "duration_s": duration_s,
                "mean_power_w": energy_j / duration_s,
                "peak_power_w": active_w,
            },
            "energy_per_inference_j": energy_j / inferences,
            "emulated_slowdown": None,
        }


def _opts(**kw: Any) -> ProfileOptions:
    return ProfileOptions(**{"window_s": 0.2, "warmup": 0, "min_reps": 2, "max_reps": 4, "rel_ci": 0.05, **kw})


def test_sets_of_a_level_are_measured_in_interleaved_rounds() -> None:
    board = ScriptedBoard({"a": 10.0, "b": 5.0, "c": 2.0}, jitter=0.2)
    table = profile_through_agent(board, "m", ["a", "b", "c"], {}, _opts(rel_ci=0.01, remeasure_rounds=0))  # type: ignore[arg-type]
    windows = [ps for lv, ps, n in board.calls if lv == "f1500" and n > 5]
    # a 20 % jitter never meets a 1 % target: every set gets max_reps windows, one per round (in reverse
    # order on even rounds), then idle
    assert windows[:12] == ["a", "b", "c", "c", "b", "a"] * 2
    assert all(r.repetitions == 4 for r in table.rows.values())


def test_a_set_stops_after_min_reps_once_its_ci_is_met() -> None:
    board = ScriptedBoard({"a": 10.0, "b": 5.0})
    table = profile_through_agent(board, "m", ["a", "b"], {}, _opts(remeasure_rounds=0))  # type: ignore[arg-type]
    assert {r.repetitions for r in table.rows.values()} == {2}  # identical windows: CI 0 after two


def test_a_level_that_breaks_monotonicity_is_measured_again_and_pooled() -> None:
    # f1000's first pass is 1.8x slow, so its median (27 ms) is above f600's (25 ms): the loop re-measures
    # f1000 and f600 and pools; two normal windows more bring f1000's median back below f600's
    board = ScriptedBoard({"a": 10.0}, slow_first={"f1000": 1.8}, slow_windows=2)
    table = profile_through_agent(board, "m", ["a"], {}, _opts(min_reps=2, max_reps=2))  # type: ignore[arg-type]
    assert table.meta["remeasured"] == "f1000,f600"
    row = table.get("a", "f1000")
    assert row.repetitions == 4  # two windows, then two more pooled with them
    assert table.get("a", "f1500").repetitions == 2
    assert table.get("a", "f600").latency_p50_ms > row.latency_p50_ms  # monotone after pooling


def test_remeasure_gives_up_after_its_rounds() -> None:
    board = ScriptedBoard({"a": 10.0}, slow_first={"f1000": 3.0}, slow_windows=100)  # slow for good
    table = profile_through_agent(board, "m", ["a"], {}, _opts(max_reps=2, remeasure_rounds=2))  # type: ignore[arg-type]
    assert table.meta["remeasured"] == "f1000,f600,f1000,f600"
    assert table.get("a", "f1000").repetitions == 6


def test_two_models_profile_into_one_table_interleaved() -> None:
    board = ScriptedBoard({"a": 10.0, "b": 5.0, "L0": 7.0}, jitter=0.2)
    models = [ProfiledModel("m1", ["a", "b"], {"a": {"sparsity": 0.0}, "b": {"sparsity": 0.5}}),
              ProfiledModel("m2", ["L0"], {"L0": {"sparsity": 0.3}})]  # fmt: skip
    table = profile_models(board, models, _opts(rel_ci=0.01, max_reps=2, remeasure_rounds=0))  # type: ignore[arg-type]
    assert table.pattern_sets == ["a", "L0", "b"]  # by sparsity
    windows = [ps for lv, ps, n in board.calls if lv == "f600" and n > 5]
    assert windows[:6] == ["a", "b", "L0", "L0", "b", "a"]


def test_two_models_with_the_same_set_name_are_refused() -> None:
    board = ScriptedBoard({"a": 10.0})
    with pytest.raises(BadInputError, match="'a' is in two of the models"):
        profile_models(board, [ProfiledModel("m1", ["a"], {}), ProfiledModel("m2", ["a"], {})], _opts())  # type: ignore[arg-type]
    assert board.calls == []


def test_a_round_visits_every_level_so_a_drift_falls_on_all_of_them() -> None:
    """Each round takes one window of every cell, level after level, in reverse on every second round; the
    ratio of a set's medians at two levels then survives a host that slows down steadily as the profile runs.
    Level by level (``interleave="sets"``) the last level measured takes the whole drift: f600 reads over
    25 % slower than its 2.5 x f1500."""
    opts = _opts(min_reps=4, max_reps=4, remeasure_rounds=0)
    board = ScriptedBoard({"a": 10.0, "b": 4.0}, drift=0.04)
    table = profile_through_agent(board, "m", ["a", "b"], {}, opts)  # type: ignore[arg-type]
    windows = [(lv, ps) for lv, ps, n in board.calls if n > 5][:6]
    first_round = [(lv, ps) for lv in LEVELS for ps in ("a", "b")]
    assert windows == first_round
    assert [(lv, ps) for lv, ps, n in board.calls if n > 5][6:12] == first_round[::-1]  # serpentine
    for ps in ("a", "b"):
        ratio = table.get(ps, "f600").latency_p50_ms / table.get(ps, "f1500").latency_p50_ms
        assert ratio == pytest.approx(2.5, rel=0.03)
    by_level = ScriptedBoard({"a": 10.0, "b": 4.0}, drift=0.04)
    table = profile_through_agent(by_level, "m", ["a", "b"], {}, replace(opts, interleave="sets"))  # type: ignore[arg-type]
    assert table.get("a", "f600").latency_p50_ms / table.get("a", "f1500").latency_p50_ms > 2.5 * 1.25


def test_an_unknown_interleave_is_refused() -> None:
    with pytest.raises(BadInputError, match="interleave must be levels or sets"):
        _opts(interleave="cells")
