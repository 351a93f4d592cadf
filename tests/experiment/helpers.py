"""Helpers for the experiment tests: small profiles and experiment files written to tmp_path."""

from __future__ import annotations

from pathlib import Path

from traces.profile import ProfileRow, build_table


def flat_profile(
    path: Path,
    levels: dict[str, tuple[int, float, float]],
    sets: dict[str, tuple[float, float, dict[str, float]]],
) -> Path:
    """Write a profile with deterministic latency (p50 = p90 = p99).

    ``levels[name] = (freq_khz, active_w, idle_w)``; ``sets[name] = (sparsity, accuracy, {level: latency_ms})``.
    """
    rows = []
    for ps, (sparsity, acc, lat) in sets.items():
        for lv, (f, active_w, idle_w) in levels.items():
            ms = lat[lv]
            rows.append(
                ProfileRow(ps, lv, f, sparsity, acc, ms, ms, ms, active_w * ms / 1e3, active_w, active_w, idle_w, 0, 1)
            )
    path.write_text(build_table(rows, {"source": "test"}).to_csv())
    return path


def write_experiment(path: Path, body: str) -> Path:
    path.write_text(body)
    return path
