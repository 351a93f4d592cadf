"""``testbed report``: every figure and table of one or more runs, written into one directory.

Layout of the output directory::

    figures/<name>.{pdf,png,svg}   battery_life, soc_voltage-<run>, power_trace-<run>,
                                   latency_vs_frequency, accuracy_vs_sparsity, profile_heatmap,
                                   search_reward (when a search log is given or stored in a run)
    tables/<name>.{md,tex,csv}     battery_life, profile_summary
    report.md                      the tables inline and links to every figure
    report.json                    the index: for every figure and table its files, the runs it was drawn
                                   from (run id, content SHA-256 of the run store, fidelity) and other inputs

The profile table is taken from ``profile`` (a path; the CLI resolves bundled names) or from the first run's
configuration. Runs are read through :class:`testbed.runstore.reader.RunReader` only.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from analysis import figures, tables
from analysis.provenance import InputFile, RunRef, Source
from analysis.runs import RunData, load_run
from analysis.style import save
from analysis.sweep import expand, sweep_figure
from devices.errors import BadInputError
from testbed.runstore.reader import RunReader
from traces.profile import ProfileTable, load_profile_table

#: Version of the ``report.json`` layout.
INDEX_VERSION = 1

CAPTIONS = {
    "battery_life": "Battery life per strategy, in hours and in inferences; labels give the ratio to dense-max.",
    "life_vs_accuracy": "Battery life against time-weighted accuracy per strategy (up and right is better).",
    "soc_voltage": "State of charge and terminal voltage during the discharge, per strategy.",
    "power_trace": "Power over the discharge (frequency changes dotted, pattern-set switches solid) and "
    "a zoom on the first switch with the individual inference windows.",
    "latency_vs_frequency": "Latency against CPU frequency per pattern set (p50, bar to p99); the deadline dashed.",
    "accuracy_vs_sparsity": "Accuracy of each pattern set against its sparsity.",
    "profile_heatmap": "Energy per inference for every pattern set and frequency level.",
    "search_reward": "Best reward found against the number of evaluations (mean over seeds, band = min to max).",
    "sweep": "Battery life per strategy against a swept key (mean over the other keys and seeds, band = min to max).",
}


@dataclass
class Report:
    out_dir: Path
    figures: dict[str, list[Path]] = field(default_factory=dict)
    tables: dict[str, list[Path]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    figure_sources: dict[str, Source] = field(default_factory=dict)
    table_sources: dict[str, Source] = field(default_factory=dict)

    def add_figure(self, name: str, files: list[Path], source: Source) -> None:
        self.figures[name] = files
        self.figure_sources[name] = source

    def add_table(self, name: str, files: list[Path], source: Source) -> None:
        self.tables[name] = files
        self.table_sources[name] = source

    def to_dict(self) -> dict[str, Any]:
        return {
            "out_dir": str(self.out_dir),
            "figures": {k: [str(p) for p in v] for k, v in self.figures.items()},
            "tables": {k: [str(p) for p in v] for k, v in self.tables.items()},
            "skipped": self.skipped,
            "index": str(self.out_dir / "report.json"),
        }

    def index(self, runs: Sequence[RunData]) -> dict[str, Any]:
        """The machine-readable index written as ``report.json`` (file paths relative to :attr:`out_dir`)."""

        def entry(files: list[Path], source: Source, caption: str | None) -> dict[str, Any]:
            d = {"files": [str(p.relative_to(self.out_dir)) for p in files], **source.to_dict()}
            return {**d, "caption": caption} if caption else d

        return {
            "index_version": INDEX_VERSION,
            "created_wall": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "runs": [
                {**asdict(RunRef.of(r.reader)), "name": r.name, "mode": r.mode, "battery_model": r.battery_model}
                for r in runs
            ],
            "figures": {
                k: entry(v, self.figure_sources[k], CAPTIONS.get(k.split("-")[0])) for k, v in self.figures.items()
            },
            "tables": {k: entry(v, self.table_sources[k], None) for k, v in self.tables.items()},
            "skipped": dict(self.skipped),
        }


def profile_of(run: RunData) -> ProfileTable:
    """The profile table named in a run's configuration (:meth:`RunReader.profile_table_path`)."""
    path = run.reader.profile_table_path()
    if path is None:
        raise BadInputError(f"{run.path}: the run names no profile table; pass --profile")
    return load_profile_table(path)


def search_log_of(runs: Sequence[RunData], path: Path | None) -> tuple[pd.DataFrame | None, Source]:
    """Search evaluations as a table with columns algo, seed, evaluation, reward, and what it was read from.

    ``path`` is a search run written by ``testbed search`` (its directory or ``run.sqlite``), or a CSV /
    JSON-lines file with those columns; without it, the runs' own ``log`` tables are searched.
    Memo hits (re-proposals of an evaluated candidate) are not evaluations and are left out.
    """
    if path is not None:
        if path.is_dir() or path.suffix == ".sqlite":
            with RunReader.open(path) as reader:
                return _search_rows(reader.frame("log"), reader.manifest), Source(runs=(RunRef.of(reader),))
        if not path.is_file():
            raise BadInputError(f"{path}: search log not found")
        source = Source(inputs=(InputFile.of(path),))
        if path.suffix == ".csv":
            return pd.read_csv(path), source
        try:
            return pd.DataFrame([json.loads(line) for line in path.read_text().splitlines() if line.strip()]), source
        except json.JSONDecodeError as exc:
            raise BadInputError(f"{path}:{exc.lineno}: not JSON lines: {exc.msg}") from None
    found = [(run, f) for run in runs if (f := _search_rows(run.table("log"), run.reader.manifest)) is not None]
    if not found:
        return None, Source()
    return pd.concat([f for _, f in found], ignore_index=True), _from_runs(run for run, _ in found)


def _search_rows(log: pd.DataFrame, manifest: dict[str, Any]) -> pd.DataFrame | None:
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


def _from_runs(runs: Iterable[RunData], inputs: tuple[InputFile, ...] = ()) -> Source:
    return Source(tuple(RunRef.of(r.reader) for r in runs), inputs)


def build_report(
    run_paths: Sequence[str | Path],
    out_dir: str | Path,
    formats: Sequence[str] = ("pdf", "png"),
    profile: Path | None = None,
    search_log: Path | None = None,
    baseline: str = "dense-max",
    *,
    headline: str | None = None,
    warning: str | None = None,
    notes: Sequence[str] = (),
) -> Report:
    """Write every figure and table that the given runs support, and the index; see the module docstring.

    ``profile`` is a profile table CSV (default: the one the first run's configuration names). ``warning`` (a
    modelled or flagged profile) becomes the first line of ``report.md``; ``headline`` (the answer in one
    sentence) and ``notes`` (such as the oracle's accuracy rule) follow it and go into ``report.json``.
    """
    if not run_paths:
        raise BadInputError("give at least one run")
    paths, sweeps = expand(run_paths)  # a `testbed sweep` directory stands for its finished cells
    runs = [load_run(p) for p in paths]
    out = Path(out_dir)
    rep = Report(out)
    fig_dir, tab_dir = out / "figures", out / "tables"

    def figure(name: str, fig: Figure, source: Source) -> None:
        rep.add_figure(name, save(fig, fig_dir, name, formats), source)

    def table(name: str, df: pd.DataFrame, caption: str, source: Source, narrow: Sequence[str] | None = None) -> None:
        rep.add_table(name, tables.write_table(df, tab_dir, name, caption, latex_columns=narrow), source)

    try:
        every = _from_runs(runs)
        figure("battery_life", figures.battery_life(runs, baseline), every)
        figure("life_vs_accuracy", figures.life_vs_accuracy(runs, baseline), every)
        for sw in sweeps:
            cells = {c.run_dir.resolve() for c in sw.cells}
            of_sweep = _from_runs(r for r in runs if r.path.parent.resolve() in cells)
            for key in sw.keys:
                figure(f"sweep-{_slug(key)}", sweep_figure(sw, key), of_sweep)
        for i, run in enumerate(runs):
            tag = _slug(run.name) if len({r.name for r in runs}) == len(runs) else f"{_slug(run.name)}-{i}"
            figure(f"soc_voltage-{tag}", figures.soc_voltage(run), _from_runs([run]))
            strategy = "rt3" if "rt3" in run.results else next(iter(run.results))
            figure(f"power_trace-{tag}", figures.power_trace(run, strategy), _from_runs([run]))
        life_caption = f"Battery life, deadline misses and accuracy per strategy (ratios against {baseline})."
        narrow = [c.replace("dense_max", baseline.replace("-", "_")) for c in tables.LIFE_LATEX_COLUMNS]
        table("battery_life", tables.battery_life_table(runs, baseline), life_caption, every, narrow)
        try:
            prof = load_profile_table(profile) if profile is not None else profile_of(runs[0])
        except BadInputError as exc:
            if profile is not None:
                raise
            rep.skipped["profile figures"] = str(exc)
            prof = None
        if prof is not None:
            table_file = (InputFile.of(Path(prof.path)),)
            first = _from_runs([runs[0]], table_file)  # its deadline is drawn; without --profile it named the table
            named = first if profile is None else Source(inputs=table_file)
            figure("latency_vs_frequency", figures.latency_vs_frequency(prof, runs[0].deadline_ms), first)
            figure("accuracy_vs_sparsity", figures.accuracy_vs_sparsity(prof), named)
            figure("profile_heatmap", figures.profile_heatmap(prof), named)
            summary_caption = "Latency, energy per inference, power and accuracy per pattern set and frequency."
            table("profile_summary", tables.profile_summary_table(prof), summary_caption, named)
        log, log_source = search_log_of(runs, search_log)
        if log is not None and len(log):
            figure("search_reward", figures.search_reward(log), log_source)
        else:
            rep.skipped["search_reward"] = "no search log (pass --search-log, or run `testbed search` into the run)"
        _write_markdown(rep, runs, [*(x for x in (warning, headline) if x), *(n for n in notes if n)])
        index = {**rep.index(runs), "headline": headline, "warning": warning, "notes": [n for n in notes if n]}
        (out / "report.json").write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    finally:
        for run in runs:
            run.close()
    return rep


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in text).strip("-") or "run"


def _write_markdown(rep: Report, runs: Sequence[RunData], preface: Sequence[str] = ()) -> None:
    """``report.md``: ``preface`` lines first (a modelled/flagged-profile warning is the very first line)."""
    fidelity = ", ".join(dict.fromkeys(run.fidelity for run in runs))
    lines = [*(line for p in preface for line in (p, "")), f"# RT3 testbed report ({fidelity})", ""]
    for run in runs:
        lines.append(
            f"- run `{run.name}`: {run.mode} mode, {run.battery_model} battery, `{run.path}` "
            f"(run id {run.run_id}, content sha256 {run.reader.content_sha256[:16]})"
        )
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
    lines.append("")
    lines.append("Where every figure and table came from (runs, their content digests, inputs): `report.json`.")
    (rep.out_dir / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
