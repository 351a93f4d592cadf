"""RL vs random vs TPE at equal evaluation budget: best reward against evaluations, several seeds each.

``python -m testbed.search.compare CKPT --budget 100 --seeds 0,1,2 --deadline-ms 2 [--out compare.json]``

Every run gets a fresh evaluator (empty memo and set cache), so its wall time is its own. The pattern space is
built once with seed 0 and shared by all runs, so algorithms and seeds search the same space; the seed changes
only the searcher. Prints one JSON object: per algorithm and seed the best-so-far curve, the final best with its
per-level deadline check, and the wall time; per algorithm the mean best reward at a few evaluation counts.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from testbed.search.algorithms import searcher_names
from testbed.search.evaluator import CandidateEvaluator
from testbed.search.problem import SearchConfig, build_problem, make_searcher
from testbed.search.runner import run_search


def compare(ckpt: Path, cfg: SearchConfig, algos: list[str], seeds: list[int]) -> dict[str, Any]:
    """Run every algorithm with every seed on the problem of ``ckpt`` (budget and settings from ``cfg``)."""
    from testbed.rt3.checkpoint import Checkpoint

    problem = build_problem(Checkpoint.load(ckpt), replace(cfg, seed=0))
    base = problem.evaluator
    runs: list[dict[str, Any]] = []
    for algo in algos:
        for seed in seeds:
            run_cfg = replace(cfg, algo=algo, seed=seed)
            evaluator = CandidateEvaluator(
                base.api, base.space, base.latency, base.deadlines_ms, base.reward_config, base.accuracy_config
            )
            searcher = make_searcher(run_cfg, problem.space)
            res = run_search(searcher, evaluator, cfg.budget)
            runs.append(
                {
                    "algo": algo,
                    "seed": seed,
                    "curve": res.curve,
                    "best_reward": res.best.reward,
                    "best_all_deadlines_met": res.best.terms.all_deadlines_met,
                    "best_deadline_met": res.best.terms.deadline_met,
                    "best_sparsity": res.best.sparsity,
                    "best_accuracy": res.best.accuracy,
                    "best_latency_ms": res.best.deadline_latency_ms,
                    "evaluations": res.evaluations,
                    "proposals": res.proposals,
                    "memo_hits": res.memo_hits,
                    "wall_s": res.wall_s,
                    "stopped": res.stopped,
                }
            )
            sys.stderr.write(f"{algo} seed {seed}: best {res.best.reward:+.4f} in {res.wall_s:.1f} s\n")
    marks = sorted({m for m in (10, 25, 50, 100, 200, 300, cfg.budget) if m <= cfg.budget})
    summary: dict[str, Any] = {}
    for algo in algos:
        mine = [r for r in runs if r["algo"] == algo]
        summary[algo] = {
            f"best_at_{m}": _mean_sd([r["curve"][min(m, len(r["curve"])) - 1] for r in mine]) for m in marks
        }
        summary[algo]["wall_s_mean"] = statistics.fmean(r["wall_s"] for r in mine)
        summary[algo]["all_deadlines_met"] = [r["best_all_deadlines_met"] for r in mine]
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


def _mean_sd(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values), "sd": statistics.stdev(values) if len(values) > 1 else 0.0}


def main(argv: list[str] | None = None) -> int:
    import torch

    p = argparse.ArgumentParser(prog="python -m testbed.search.compare")
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--budget", type=int, default=100)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--algos", default=",".join(searcher_names()))
    p.add_argument("--deadline-ms", default="115")
    p.add_argument("--eval-batches", type=int, default=4)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    cfg = SearchConfig(
        budget=a.budget,
        deadlines_ms=tuple(float(x) for x in a.deadline_ms.split(",")),
        accuracy={"eval_batches": a.eval_batches},
    )
    result = compare(a.checkpoint, cfg, a.algos.split(","), [int(s) for s in a.seeds.split(",")])
    text = json.dumps(result, indent=2)
    if a.out is not None:
        a.out.write_text(text)
    sys.stdout.write(json.dumps(result["summary"], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
