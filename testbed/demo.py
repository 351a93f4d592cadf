"""``testbed demo``: the whole testbed end to end on a laptop, on an emulated Raspberry Pi 4.

Stages (each a real ``testbed`` command run as a subprocess; a stage whose output exists is skipped, so
an interrupted demo resumes where it stopped):

1. ``rt3 train``     the RT3 reference language model on the bundled proxy corpus (generated, labelled proxy)
2. ``rt3 prune bp``  block-structured pruning (reweighted group lasso, block-column structure)
3. ``rt3 prune pp``  three pattern sets (BP only, and two of increasing sparsity) on the shared backbone,
                     jointly fine-tuned
4. ``rt3 export``    the runtime artifact (``model.rt3``: one ONNX graph per pattern set)
5. ``profile``       every pattern set × frequency level measured through a device agent on an emulated
                     Pi 4 (real onnxruntime inference, latency scaled by the emulated clock, modelled meter)
6. ``search``        the RL search of a pattern set per frequency level (small budget), its latency
                     interpolated from that measured profile (searching needs measured latencies, so it
                     runs after profiling)
7. ``run``           battery-life simulation of all five strategies from the profile, bucket and ECM
8. ``report``        figures and tables, including the search's reward curve

The deadline comes from the measured profile, because the demo model is far smaller than RT3's and
its absolute latency says nothing about a Pi: 1.1 x the p99 of the sparsest set at the lowest level,
so that a feasible choice exists at every level. The battery is small (a bucket of 600 J, and the
``phone-lco`` cell with its capacity scaled to 1/25) so that the discharge is minutes of device time.
``summary.json`` records the deadline and the rule.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from devices.errors import BadInputError, TestbedError

console = Console(stderr=True)

#: Demo model: the RT3 reference architecture at a laptop-friendly size.
MODEL_ARGS = ["--emsize", "128", "--nhid", "512", "--nlayers", "2", "--nhead", "4"]
TRAIN_ARGS = ["--epochs", "2", "--max-steps", "60"]
PP_LEVELS = "0,0.5,0.75"
SEARCH_BUDGET = 20
POLICY_LEVELS = ["f1500", "f1000", "f600"]


@dataclass
class Stage:
    name: str
    output: Path
    argv: list[str | Path]
    what: str


def _testbed(args: Sequence[str | Path], log: Path) -> None:
    """Run ``testbed ARGS`` with output going to the terminal and to ``log``; raise on failure."""
    cmd = [sys.executable, "-m", "testbed", *map(str, args)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(f"$ testbed {' '.join(map(str, args))}\n")
        fh.flush()
        proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.PIPE, text=True, env=env, check=False)
        fh.write(proc.stderr)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise TestbedError(
            f"demo stage `testbed {args[0]} {args[1] if len(args) > 1 else ''}` failed: {last} (log: {log})"
        )


def derive_deadline_ms(profile_csv: Path) -> tuple[float, str]:
    """The demo deadline (ms) and the rule that chose it: 1.1 x p99 of the sparsest set at the lowest level."""
    from traces.profile import load_profile_table

    prof = load_profile_table(profile_csv)
    sparsest, low = prof.pattern_sets[-1], prof.levels[-1]
    p99 = prof.get(sparsest, low).latency_p99_ms
    meets = [
        f"{ps}@{lv}" for ps in prof.pattern_sets for lv in prof.levels if prof.get(ps, lv).latency_p99_ms <= 1.1 * p99
    ]
    why = f"1.1 x the p99 of {sparsest} at {low} ({p99:.3f} ms); p99 within it: {', '.join(meets)}"
    return round(1.1 * p99, 4), why


def scaled_cell(out: Path, name: str = "phone-lco", factor: float = 25.0) -> Path:
    """A copy of a bundled cell with its capacity divided by ``factor`` (a demo-sized battery)."""
    import re

    from testbed.paths import CELLS

    bundled = CELLS.path(name)
    if bundled is None:
        raise BadInputError(f"no bundled cell {name!r}; bundled cells: {', '.join(CELLS.names())}")
    text = bundled.read_text(encoding="utf-8")
    m = re.search(r"^capacity_ah = ([0-9.]+)$", text, flags=re.M)
    if m is None:
        raise BadInputError(f"bundled cell {name} has no capacity_ah line")
    cap = float(m.group(1)) / factor
    text = text.replace(m.group(0), f"capacity_ah = {cap:.6g}  # demo: {name} capacity / {factor:g}")
    text = re.sub(r'^name = ".*"$', f'name = "{name}-demo"', text, count=1, flags=re.M)
    path = out / f"cell-{name}-demo.toml"
    path.write_text(f"# Written by `testbed demo`: {name} with its capacity scaled by 1/{factor:g}.\n" + text)
    return path


def experiment_toml(name: str, profile_csv: Path, deadline_ms: float, battery: str, cell: str = "phone-lco") -> str:
    """The demo's experiment file: a request every 1.2 x the deadline, SoC policy 50/20 over three levels."""
    period_ms = round(1.2 * deadline_ms, 4)  # busy enough that active power matters
    bucket = 'model = "bucket"\nenergy_j = 600.0'
    battery_lines = bucket if battery == "bucket" else f'model = "ecm"\ncell = "{cell}"'
    return f"""# Written by `testbed demo`: all five strategies on the emulated Pi 4 profile measured by the demo.
name = "{name}"
mode = "sim"
seed = 1
strategies = ["dense-max", "dvfs-dense", "static-sparse", "rt3", "oracle"]

[board]
profile = "rpi4"

[profile]
table = "{profile_csv}"

[requests]
period_ms = {period_ms}
deadline_ms = {deadline_ms}

[battery]
{battery_lines}
record_interval_s = 5.0

[policy]
kind = "soc"
thresholds = [0.5, 0.2]
levels = {json.dumps(POLICY_LEVELS)}
"""


def run_demo(out: Path, quick: bool = False) -> dict[str, Any]:
    """Run (or resume) the demo into ``out``; returns the summary that is also written to summary.json."""
    out = out.resolve()  # the experiment files name the profile by path, relative to themselves otherwise
    out.mkdir(parents=True, exist_ok=True)
    log = out / "demo.log"
    model = out / "model"
    t0 = time.perf_counter()
    stages = [
        Stage("train", model / "dense", ["rt3", "train", "--out", model / "dense", *MODEL_ARGS, *TRAIN_ARGS,
                                         "--no-progress"], "train the reference LM on the proxy corpus"),
        Stage("bp", model / "bp", ["rt3", "prune", "bp", model / "dense", "--out", model / "bp", "--no-progress"],
              "block-structured pruning"),
        Stage("pp", model / "pp", ["rt3", "prune", "pp", model / "bp", "--out", model / "pp", "--levels", PP_LEVELS,
                                   "--no-progress"], "pattern sets of increasing sparsity"),
        Stage("export", out / "model.rt3", ["rt3", "export", model / "pp", "--out", out / "model.rt3"],
              "runtime artifact"),
        Stage("profile", out / "profile.csv", ["profile", "--artifact", out / "model.rt3", "--emulate", "rpi4",
                                               "--out", out / "profile.csv", "--window-s", "0.5", "--max-reps", "4"],
              "measure every pattern set x level on an emulated Pi 4"),
    ]  # fmt: skip
    search_dir = out / "search"
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=console) as bar:
        task = bar.add_task("demo", total=len(stages) + 4)
        for st in stages:
            bar.update(task, description=f"{st.name}: {st.what}")
            if not st.output.exists():
                _testbed(st.argv, log)
            bar.advance(task)
        deadline_ms, why = derive_deadline_ms(out / "profile.csv")
        bar.update(task, description=f"search: RL over pattern sets per level, {SEARCH_BUDGET} evaluations")
        if not (search_dir / "best.json").exists():
            search: list[str | Path] = ["search", model / "bp", "--out", search_dir, "--algo", "rl"]
            search += ["--budget", str(SEARCH_BUDGET), "--profile", out / "profile.csv"]
            search += ["--levels", ",".join(POLICY_LEVELS), "--deadline-ms", str(deadline_ms)]
            if (search_dir / "run.sqlite").exists():
                search.append("--resume")
            _testbed(search, log)
        bar.advance(task)
        cell = scaled_cell(out)
        runs = []
        for battery in ("bucket", "ecm"):
            bar.update(task, description=f"run: battery life of five strategies ({battery})")
            toml = out / f"experiment-{battery}.toml"
            toml.write_text(
                experiment_toml(f"demo-rpi4-{battery}", out / "profile.csv", deadline_ms, battery, str(cell))
            )
            run_dir = out / f"run-{battery}"
            if not (run_dir / "summary.json").exists():
                args: list[str | Path] = ["run", toml, "--resume" if run_dir.exists() else "--out", run_dir]
                _testbed(args, log)
            runs.append(run_dir)
            bar.advance(task)
        bar.update(task, description="report: figures and tables")
        _testbed(["report", *runs, "--out", out, "--format", "pdf,png", "--search-log", search_dir], log)
        bar.advance(task)
    summary = _summary(out, runs, deadline_ms, why, time.perf_counter() - t0)
    best = json.loads((search_dir / "best.json").read_text(encoding="utf-8"))
    summary["search"] = {"algo": "rl", "budget": SEARCH_BUDGET, "best": best}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def _summary(out: Path, runs: list[Path], deadline_ms: float, why: str, wall_s: float) -> dict[str, Any]:
    from testbed.runstore.reader import RunReader
    from testbed.runstore.results import StrategyResult

    per_run: dict[str, Any] = {}
    for run_dir in runs:
        with RunReader.open(run_dir) as run:
            model = str((run.config.get("battery") or {}).get("model") or "?")
            per_run[model] = {
                s: {
                    "life_h": r.life_h,
                    "inferences": r.inferences,
                    "deadline_misses": r.deadline_misses,
                    "accuracy": r.accuracy_time_weighted,
                }
                for s, r in run.results().items()
                if isinstance(r, StrategyResult)
            }
    if "bucket" not in per_run:
        raise BadInputError(f"{out}: the bucket run is missing")
    return {
        "board": "rpi4 (emulated)",
        "deadline_ms": deadline_ms,
        "deadline_rule": why,
        "strategies": per_run["bucket"],
        "by_battery_model": per_run,
        "figures": str(out / "figures"),
        "tables": str(out / "tables"),
        "wall_s": round(wall_s, 1),
    }
