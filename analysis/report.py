"""``testbed report``: every figure and table of one or more runs, written into one directory.

Layout of the output directory::

    figures/<name>.{pdf,png,svg}   battery_life, soc_voltage-<run>, power_trace-<run>,
                                   latency_vs_frequency, accuracy_vs_sparsity, profile_heatmap,
                                   search_reward (when a search log is given or stored in a run)
    tables/<name>.{md,tex,csv}     battery_life, profile_summary
    report.md                      the tables inline and links to every figure

The profile table is taken from ``--profile`` or from the first run's configuration.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from analysis import figures, tables
from analysis.runs import RunData, load_run, run_path
from analysis.style import save
from devices.errors import BadInputError

CAPTIONS = {
    "battery_life": "Battery life per strategy, in hours and in inferences; labels give the ratio to dense-max.",
    "soc_voltage": "State of charge and terminal voltage during the discharge, per strategy.",
    "power_trace": "Power over the discharge (frequency changes dotted, pattern-set switches solid) and "
    "a zoom on the first switch with the individual inference windows.",
    "latency_vs_frequency": "Latency against CPU frequency per pattern set (p50, bar to p99); the deadline dashed.",
    "accuracy_vs_sparsity": "Accuracy of each pattern set against its sparsity.",
    "profile_heatmap": "Energy per inference for every pattern set and frequency level.",
    "search_reward": "Best reward found against the number of evaluations (mean over seeds, band = min to max).",
}


@dataclass
class Report:
    out_dir: Path
    figures: dict[str, list[Path]] = field(default_factory=dict)
    tables: dict[str, list[Path]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "out_dir": str(self.out_dir),
            "figures": {k: [str(p) for p in v] for k, v in self.figures.items()},
            "tables": {k: [str(p) for p in v] for k, v in self.tables.items()},
            "skipped": self.skipped,
        }


def profile_of(run: RunData) -> Any:
    """The profile table named in a run's configuration (relative paths from the experiment file)."""
    from testbed.experiment.profile_table import load_profile_table

    cfg = run.manifest.get("config") or {}
    name = (cfg.get("profile") or {}).get("table")
    if not name:
        raise BadInputError(f"{run.path}: the run names no profile table; pass --profile")
    p = Path(str(name))
    if not p.is_absolute() and cfg.get("base_dir") and (Path(cfg["base_dir"]) / p).is_file():
        p = Path(cfg["base_dir"]) / p
    return load_profile_table(p if p.is_file() else str(name))


def search_log_of(runs: Sequence[RunData], path: Path | None) -> pd.DataFrame | None:
    """Search evaluations as a table with columns algo, seed, evaluation, reward.

    ``path`` is a search run written by ``testbed search`` (its directory or ``run.sqlite``), or a CSV /
    JSON-lines file with those columns; without it, the runs' own ``log`` tables are searched.
    Memo hits (re-proposals of an evaluated candidate) are not evaluations and are left out.
    """
    if path is not None:
        if path.is_dir() or path.suffix == ".sqlite":
            return _search_rows(_read_log(run_path(path)))
        if not path.is_file():
            raise BadInputError(f"{path}: search log not found")
        if path.suffix == ".csv":
            return pd.read_csv(path)
        try:
            return pd.DataFrame([json.loads(line) for line in path.read_text().splitlines() if line.strip()])
        except json.JSONDecodeError as exc:
            raise BadInputError(f"{path}:{exc.lineno}: not JSON lines: {exc.msg}") from None
    frames = [_search_rows((run.table("log"), run.manifest)) for run in runs]
    found = [f for f in frames if f is not None]
    return pd.concat(found, ignore_index=True) if found else None


def _read_log(db: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            log = pd.read_sql_query("SELECT * FROM log ORDER BY rowid", conn)
            manifest = {k: json.loads(v) for k, v in conn.execute("SELECT key, value FROM manifest")}
        finally:
            conn.close()
    except (sqlite3.Error, pd.errors.DatabaseError) as exc:
        raise BadInputError(f"{db}: not a search run: {exc}") from None
    return log, manifest


def _search_rows(log_and_manifest: tuple[pd.DataFrame, dict[str, Any]]) -> pd.DataFrame | None:
    log, manifest = log_and_manifest
    rows = log[log["source"].str.startswith("search:") & (log["kind"] == "candidate")]
    out = []
    seed = manifest.get("seed", 0)
    for source, data in zip(rows["source"], rows["data"], strict=True):
        d = json.loads(data)
        if d.get("memo_hit"):
            continue
        out.append({"algo": source.split(":", 1)[1], "seed": seed, "evaluation": int(d["evaluation"]) + 1,
                    "reward": float(d["reward"])})  # fmt: skip
    return pd.DataFrame(out) if out else None


def build_report(
    run_paths: Sequence[str | Path],
    out_dir: str | Path,
    formats: Sequence[str] = ("pdf", "png"),
    profile: str | Path | None = None,
    search_log: Path | None = None,
    baseline: str = "dense-max",
) -> Report:
    """Write every figure and table that the given runs support; see the module docstring."""
    if not run_paths:
        raise BadInputError("give at least one run")
    runs = [load_run(p) for p in run_paths]
    out = Path(out_dir)
    rep = Report(out)
    fig_dir, tab_dir = out / "figures", out / "tables"
    try:
        rep.figures["battery_life"] = save(figures.battery_life(runs, baseline), fig_dir, "battery_life", formats)
        for i, run in enumerate(runs):
            tag = _slug(run.name) if len({r.name for r in runs}) == len(runs) else f"{_slug(run.name)}-{i}"
            rep.figures[f"soc_voltage-{tag}"] = save(figures.soc_voltage(run), fig_dir, f"soc_voltage-{tag}", formats)
            strategy = "rt3" if "rt3" in run.results else next(iter(run.results))
            rep.figures[f"power_trace-{tag}"] = save(
                figures.power_trace(run, strategy), fig_dir, f"power_trace-{tag}", formats
            )
        rep.tables["battery_life"] = tables.write_table(
            tables.battery_life_table(runs, baseline), tab_dir, "battery_life",
            f"Battery life, deadline misses and accuracy per strategy (ratios against {baseline}).",
        )  # fmt: skip
        try:
            prof = load_profile_any(profile) if profile is not None else profile_of(runs[0])
        except BadInputError as exc:
            if profile is not None:
                raise
            rep.skipped["profile figures"] = str(exc)
            prof = None
        if prof is not None:
            rep.figures["latency_vs_frequency"] = save(
                figures.latency_vs_frequency(prof, runs[0].deadline_ms), fig_dir, "latency_vs_frequency", formats
            )
            rep.figures["accuracy_vs_sparsity"] = save(
                figures.accuracy_vs_sparsity(prof), fig_dir, "accuracy_vs_sparsity", formats
            )
            rep.figures["profile_heatmap"] = save(figures.profile_heatmap(prof), fig_dir, "profile_heatmap", formats)
            rep.tables["profile_summary"] = tables.write_table(
                tables.profile_summary_table(prof), tab_dir, "profile_summary",
                "Latency, energy per inference, power and accuracy per pattern set and frequency.",
            )  # fmt: skip
        log = search_log_of(runs, search_log)
        if log is not None and len(log):
            rep.figures["search_reward"] = save(figures.search_reward(log), fig_dir, "search_reward", formats)
        else:
            rep.skipped["search_reward"] = "no search log (pass --search-log, or run `testbed search` into the run)"
        _write_index(rep, runs)
    finally:
        for run in runs:
            run.close()
    return rep


def load_profile_any(profile: str | Path) -> Any:
    from testbed.experiment.profile_table import load_profile_table

    return load_profile_table(profile)


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in text).strip("-") or "run"


def _write_index(rep: Report, runs: Sequence[RunData]) -> None:
    lines = ["# RT3 testbed report", ""]
    for run in runs:
        lines.append(f"- run `{run.name}`: {run.mode} mode, {run.battery_model} battery, `{run.path}`")
    lines.append("")
    for name, paths in rep.tables.items():
        md = next(p for p in paths if p.suffix == ".md")
        lines += [f"## Table: {name}", "", md.read_text(encoding="utf-8"), ""]
    for name, paths in rep.figures.items():
        shown = next((p for p in paths if p.suffix == ".png"), paths[0])
        caption = CAPTIONS.get(name.split("-")[0], name)
        lines += [f"## Figure: {name}", "", f"![{caption}]({shown.relative_to(rep.out_dir)})", "", caption, ""]
    for name, why in rep.skipped.items():
        lines.append(f"- skipped {name}: {why}")
    (rep.out_dir / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
