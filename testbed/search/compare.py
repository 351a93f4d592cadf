"""Searchers at equal evaluation budget: best reward against evaluations, several seeds each.

Two problems:

* ``--space layer`` (the default): RT3's per-layer sparsity per frequency level, scored from tables
  (:mod:`testbed.search.layerspace`): latency per tensor and level from RT3's op-count model for RT3's LM shape
  (or a table file), accuracy from a per-layer sensitivity table measured on a real model (the bundled one:
  the reference LM trained on the BSD fortune corpus), deadlines 115/104/94 ms (RT3's). Reproduces the
  comparison of the README in a few minutes:
  ``python -m testbed.search.compare --budget 300 --seeds 0,1,2,3,4 [--out J] [--figure PNG] [--table MD]``;
  ``--memory-weight W`` adds the resident-memory term of :mod:`testbed.search.memory`. Algorithms: the
  registered ones, ``rl`` with :data:`TUNED_RL` (``--rl-*`` override it), ``rl-factorised`` and ``rl-lstm``
  (RT3's LSTM controller as configured by default) of :data:`RL_VARIANTS`; ``--why-figure PNG`` and the
  ``--table`` add the diagnosis of :mod:`testbed.search.diagnose` (exact optimum, gap by level, feasibility);
* ``--space pattern CKPT`` (the default when a checkpoint is given): the pattern-set space of a BP
  checkpoint, evaluated on the model itself.

Every run gets a fresh evaluator (empty memo), so its wall time is its own; the seed changes only the
searcher. Prints one JSON object: per algorithm the mean ± sd of the best reward at a few evaluation counts,
the share of seeds whose best meets every deadline, and the wall time; ``--out`` also stores every curve.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from devices.errors import BadInputError
from testbed.search.algorithms import SearcherOptions, searcher_names
from testbed.search.algorithms import make_searcher as create_searcher
from testbed.search.compare_report import diagnosis_table, markdown_table, write_diagnosis_figure, write_figure
from testbed.search.diagnose import best_level_values, diagnose_space, first_feasible, run_gaps
from testbed.search.evaluator import CandidateEvaluator
from testbed.search.layerspace import (
    RT3_DEADLINES_MS,
    LayerAccuracyTable,
    LayerCostTable,
    TableEvaluator,
    load_accuracy_table,
    load_cost_table,
    opcount_cost_table,
)
from testbed.search.memory import MemoryTerm, packed_memory_term
from testbed.search.problem import SearchConfig, build_problem, make_searcher
from testbed.search.reinforce import ReinforceConfig
from testbed.search.runner import SearchResult, run_search
from testbed.search.space import SearchSpace

#: RL as tuned on the layer space (README "Where decisions interact"): the ordinal policy (a bell over the ordered
#: sparsity levels per decision, shared per-level and per-layer shifts, sd ≥ 0.35 option steps), batches of 5
#: with per-level credit, a soft deadline (slope 1), Adam lr 0.2.
TUNED_RL = ReinforceConfig(
    policy="ordinal",
    batch=5,
    lr=0.2,
    soft_deadline=1.0,
    entropy_weight=0.0,
    credit="per-level",
    min_sd_steps=0.35,
)
#: The previous tuning: the factorised policy (categorical logits per decision + shared per level and layer).
FACTORISED_RL = ReinforceConfig(
    policy="factorised", batch=5, lr=0.1, soft_deadline=3.0, entropy_weight=0.0, credit="per-level"
)
#: Comparison-only labels: the RL searcher with a fixed configuration (RT3's LSTM controller, one child per step,
#: the faithful form; the factorised tuning).
RL_VARIANTS = {"rl-lstm": ReinforceConfig(), "rl-factorised": FACTORISED_RL}
#: What ``python -m testbed.search.compare`` runs on the layer space by default.
LAYER_ALGOS = ("structured", "random", "tpe", "rl", "rl-factorised", "rl-lstm")

#: The sensitivity table shipped with the package (measured by ``python -m testbed.search.experiments``).
BUNDLED_ACCURACY_TABLE = Path(__file__).parent / "tables" / "fortune-lm-sensitivity.json"


def compare(ckpt: Path, cfg: SearchConfig, algos: list[str], seeds: list[int]) -> dict[str, Any]:
    """Run every algorithm with every seed on the problem of ``ckpt`` (budget and settings from ``cfg``)."""
    from testbed.rt3.checkpoint import Checkpoint

    problem = build_problem(Checkpoint.load(ckpt), replace(cfg, seed=0))
    base, space = problem.evaluator, problem.space
    if not isinstance(base, CandidateEvaluator) or not isinstance(space, SearchSpace):
        raise BadInputError("this comparison is of the pattern-set space (use --space layer for the layer tables)")
    runs: list[dict[str, Any]] = []
    for algo in algos:
        for seed in seeds:
            run_cfg = replace(cfg, algo=algo, seed=seed)
            evaluator = CandidateEvaluator(
                base.api, space, base.latency, base.deadlines_ms, base.reward_config, base.accuracy_config
            )
            searcher = make_searcher(run_cfg, space)
            res = run_search(searcher, evaluator, cfg.budget)
            runs.append(_run_row(algo, seed, res))
            sys.stderr.write(f"{algo} seed {seed}: best {res.best.reward:+.4f} in {res.wall_s:.1f} s\n")
    summary = _summary(runs, algos, cfg.budget)
    return {
        "checkpoint": str(ckpt),
        "config": cfg.to_dict(),
        "latency_source": problem.latency.source,
        "level_names": problem.latency.level_names,
        "deadlines_ms": base.deadlines_ms,
        "reward": base.reward_config.to_dict(),
        "space": {"decisions": len(problem.space.decisions), "log10_sequences": problem.space.log10_size()},
        "summary": summary,
        "runs": runs,
    }


def _summary(runs: list[dict[str, Any]], algos: list[str], budget: int) -> dict[str, Any]:
    marks = sorted({m for m in (10, 25, 50, 100, 120, 200, 300, 500, budget) if m <= budget})
    summary: dict[str, Any] = {}
    for algo in algos:
        mine = [r for r in runs if r["algo"] == algo]
        summary[algo] = {
            f"best_at_{m}": _mean_sd([r["curve"][min(m, len(r["curve"])) - 1] for r in mine]) for m in marks
        }
        summary[algo]["wall_s_mean"] = statistics.fmean(r["wall_s"] for r in mine)
        summary[algo]["all_deadlines_met"] = [r["best_all_deadlines_met"] for r in mine]
    return summary


def _run_row(algo: str, seed: int, res: SearchResult) -> dict[str, Any]:
    return {
        "algo": algo,
        "seed": seed,
        "curve": res.curve,
        "best_reward": res.best.reward,
        "best_all_deadlines_met": res.best.terms.all_deadlines_met,
        "best_deadline_met": res.best.terms.deadline_met,
        "best_sparsity": res.best.sparsity,
        "best_accuracy": res.best.accuracy,
        "best_latency_ms": res.best.deadline_latency_ms,
        "best_candidate": res.best.description,
        "best_memory_term": res.best.terms.memory_term,
        "best_resident_mb": res.best.terms.resident_mb,
        "evaluations": res.evaluations,
        "proposals": res.proposals,
        "memo_hits": res.memo_hits,
        "wall_s": res.wall_s,
        "stopped": res.stopped,
    }


def compare_tables(
    cost: LayerCostTable,
    accuracy: LayerAccuracyTable,
    algos: list[str],
    seeds: list[int],
    budget: int = 300,
    deadlines_ms: tuple[float, ...] = RT3_DEADLINES_MS,
    rl: ReinforceConfig | None = None,
    max_proposals_per_eval: int = 5,
    memory: MemoryTerm | None = None,
    diagnose: bool = True,
) -> dict[str, Any]:
    """Every algorithm with every seed on the layer-sparsity problem of two tables (see the module text).

    ``memory``: add the resident-memory term of :mod:`testbed.search.memory` to every reward. A searcher that
    keeps proposing candidates it has seen (a collapsed policy) is stopped after
    ``max_proposals_per_eval × budget`` proposals; its curve then ends early and its best stays where it was.
    ``diagnose`` (without a memory term): add ``diagnosis`` (:func:`testbed.search.diagnose.diagnose_space`:
    the exact optimum, feasibility of random candidates, reward variance by decision, the level fronts) and,
    per algorithm in ``summary``, ``gap_to_optimum`` (:func:`~testbed.search.diagnose.run_gaps`).
    """
    runs: list[dict[str, Any]] = []
    probe = TableEvaluator(cost, accuracy, deadlines_ms, memory=memory)
    for algo in algos:
        for seed in seeds:
            evaluator = TableEvaluator(cost, accuracy, deadlines_ms, memory=memory)
            name, rl_cfg = ("rl", RL_VARIANTS[algo]) if algo in RL_VARIANTS else (algo, rl or TUNED_RL)
            searcher = create_searcher(name, evaluator.space, SearcherOptions(seed=seed, rl=rl_cfg))
            res = run_search(searcher, evaluator, budget, max_proposals=max_proposals_per_eval * budget)
            row = _run_row(algo, seed, res)
            row["best_level_values"] = best_level_values(evaluator, res.best)
            row["best_runs_per_level"] = res.best.terms.runs_per_level
            row["first_feasible_evaluation"] = first_feasible(list(evaluator.memo.values()))
            runs.append(row)
            sys.stderr.write(f"{algo} seed {seed}: best {res.best.reward:+.4f} in {res.wall_s:.1f} s\n")
    summary = _summary(runs, algos, budget)
    diagnosis = diagnose_space(probe).to_dict() if diagnose and memory is None else None
    if diagnosis is not None:
        for algo in algos:
            summary[algo]["gap_to_optimum"] = run_gaps(diagnosis, runs, algo)
    return {
        "space": {
            "kind": "layer sparsity per frequency level",
            "decisions": len(probe.space.decisions),
            "log10_candidates": probe.space.log10_size(),
        },
        "source": probe.source,
        "level_names": list(cost.level_names),
        "deadlines_ms": probe.deadlines_ms,
        "reward": probe.reward_config.to_dict(),
        "budget": budget,
        "seeds": seeds,
        "rl": (rl or TUNED_RL).to_dict(),
        "rl_variants": {k: v.to_dict() for k, v in RL_VARIANTS.items() if k in algos},
        "memory": memory.to_dict() if memory is not None else None,
        "summary": summary,
        "diagnosis": diagnosis,
        "runs": runs,
    }


def _mean_sd(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values), "sd": statistics.stdev(values) if len(values) > 1 else 0.0}


def main(argv: list[str] | None = None) -> int:
    import torch

    from devices.errors import TestbedError

    p = argparse.ArgumentParser(prog="python -m testbed.search.compare")
    p.add_argument("checkpoint", type=Path, nargs="?", help="BP checkpoint (--space pattern only)")
    p.add_argument("--space", choices=("layer", "pattern"), default=None, help="default: pattern with CKPT, else layer")
    p.add_argument("--accuracy-table", type=Path, default=BUNDLED_ACCURACY_TABLE)
    p.add_argument("--latency-table", default="opcount", help="opcount (RT3's model, RT3's LM shape) or a file")
    p.add_argument("--budget", type=int, default=300)
    p.add_argument("--seeds", default="0,1,2,3,4")
    p.add_argument("--algos", default=None, help=f"default: {','.join(LAYER_ALGOS)} (layer), all registered (pattern)")
    p.add_argument("--deadline-ms", default=",".join(f"{d:g}" for d in RT3_DEADLINES_MS))
    p.add_argument("--rl-lr", type=float, default=None)
    p.add_argument("--rl-optimizer", default=None)
    p.add_argument("--rl-policy", choices=("lstm", "factorised", "ordinal"), default=None)
    p.add_argument("--rl-batch", type=int, default=None)
    p.add_argument("--rl-entropy", type=float, default=None)
    p.add_argument("--rl-shaped", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument(
        "--memory-weight", type=float, default=0.0,
        help="layer space: add −W · resident/dense memory of the union of the levels' packed tensors (0 = off)",
    )  # fmt: skip
    p.add_argument("--figure", type=Path, help="layer space: best reward vs evaluations as a PNG")
    p.add_argument("--table", type=Path, help="layer space: the Markdown tables of the README (with the diagnosis)")
    p.add_argument(
        "--why-figure", type=Path,
        help="layer space: per-seed curves against the exact optimum, the level landscape, the gap by level (PNG)",
    )  # fmt: skip
    p.add_argument("--eval-batches", type=int, default=4)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    seeds = [int(s) for s in a.seeds.split(",")]
    space = a.space or ("pattern" if a.checkpoint is not None else "layer")
    algos = (a.algos or ",".join(LAYER_ALGOS if space == "layer" else searcher_names())).split(",")
    deadlines = tuple(float(x) for x in a.deadline_ms.split(","))
    rl_over: dict[str, Any] = {}
    if a.rl_lr is not None:
        rl_over["lr"] = a.rl_lr
    if a.rl_optimizer is not None:
        rl_over["optimizer"] = a.rl_optimizer
    for key, val in (("policy", a.rl_policy), ("batch", a.rl_batch), ("entropy_weight", a.rl_entropy)):
        if val is not None:
            rl_over[key] = val
    if a.rl_shaped is not None:
        rl_over["shaped"] = a.rl_shaped
    try:
        if a.why_figure is not None and (space != "layer" or a.memory_weight > 0):
            raise BadInputError("--why-figure needs the layer space's exact optimum, which a memory term rules out")
        if space == "layer":
            acc = load_accuracy_table(a.accuracy_table)
            cost = opcount_cost_table() if a.latency_table == "opcount" else load_cost_table(Path(a.latency_table))
            memory = packed_memory_term(a.memory_weight) if a.memory_weight > 0 else None
            rl_cfg = replace(TUNED_RL, **rl_over)
            result = compare_tables(cost, acc, algos, seeds, a.budget, deadlines, rl_cfg, memory=memory)
            if a.figure is not None:
                write_figure(result, a.figure)
            if a.table is not None:
                why = diagnosis_table(result) if result.get("diagnosis") else ""
                a.table.write_text(markdown_table(result) + ("\n" + why if why else ""))
            if a.why_figure is not None:
                write_diagnosis_figure(result, a.why_figure)
        else:
            if a.checkpoint is None:
                p.error("--space pattern needs a checkpoint")
            cfg = SearchConfig(
                budget=a.budget, deadlines_ms=deadlines, accuracy={"eval_batches": a.eval_batches}, rl=rl_over
            )
            result = compare(a.checkpoint, cfg, algos, seeds)
    except TestbedError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return exc.exit_code
    text = json.dumps(result, indent=2)
    if a.out is not None:
        a.out.write_text(text)
    sys.stdout.write(json.dumps(result["summary"], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
