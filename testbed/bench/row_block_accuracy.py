"""What a taller BP row block costs in accuracy: BP (+ retrain) of a dense reference-LM checkpoint at several
row blocks, ratios and seeds, with the accuracy study's recipe (``testbed.rt3.study``: the proximal λ schedule
with prune-set reweighting, ``reg_steps`` regularised + ``retrain_steps`` masked steps, lr 1e-3, λmax 300).

``python -m testbed.bench.row_block_accuracy CKPT --out FILE [--row-blocks 128,768] [--ratios 0.75,0.9]
[--seeds 0,1] [--eval-tokens 14000]``

Every run starts from the same checkpoint; a seed changes the batch order and dropout of both phases (as in
the study). The JSON (rewritten after every run, so an interrupted sweep keeps what finished) has one row per
run and the mean ± sd over seeds per (row block, ratio). Progress on stderr.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any


def _ints(text: str) -> list[int]:
    """A comma-separated list of integers (argparse type: a bad value is a one-line usage error, exit 2)."""
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of integers: {text!r}") from None


def _floats(text: str) -> list[float]:
    """A comma-separated list of numbers (argparse type, as :func:`_ints`)."""
    try:
        return [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of numbers: {text!r}") from None


def _summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for key in sorted({(r["row_block"], r["ratio"]) for r in rows}):
        runs = [r for r in rows if (r["row_block"], r["ratio"]) == key]
        acc = [r["after_retrain"]["accuracy"] for r in runs]
        ppl = [r["after_retrain"]["perplexity"] for r in runs]
        out.append(
            {
                "row_block": key[0],
                "ratio": key[1],
                "sparsity": runs[0]["sparsity"],
                "seeds": [r["seed"] for r in runs],
                "accuracy_mean": statistics.fmean(acc),
                "accuracy_sd": statistics.stdev(acc) if len(acc) > 1 else 0.0,
                "perplexity_mean": statistics.fmean(ppl),
                "perplexity_sd": statistics.stdev(ppl) if len(ppl) > 1 else 0.0,
            }
        )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m testbed.bench.row_block_accuracy")
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--row-blocks", type=_ints, default=_ints("128,768"))
    ap.add_argument("--ratios", type=_floats, default=_floats("0.75,0.9"))
    ap.add_argument("--seeds", type=_ints, default=_ints("0,1"))
    ap.add_argument("--reg-steps", type=int, default=80)
    ap.add_argument("--retrain-steps", type=int, default=80)
    ap.add_argument("--eval-tokens", type=int, default=14000)
    args = ap.parse_args(argv)

    import torch

    from devices.errors import TestbedError
    from testbed.rt3.bp import BPConfig, block_prune
    from testbed.rt3.checkpoint import Checkpoint
    from testbed.rt3.models import prunable_names
    from testbed.rt3.study import StudyConfig, _tc, _variant  # the study's recipe, reused as is
    from testbed.rt3.tasks import build_task
    from testbed.rt3.train import LMTask, evaluate

    torch.set_num_threads(1)
    try:
        ck = Checkpoint.load(args.checkpoint)
        task, _ = build_task(ck.data, vocab=ck.vocab)
        if not isinstance(task, LMTask):
            raise TestbedError(f"{args.checkpoint}: not a language-model checkpoint")
        task.corpus.test = task.corpus.test[: args.eval_tokens]
        cfg = StudyConfig(reg_steps=args.reg_steps, retrain_steps=args.retrain_steps, variants=("bp_schedule",))
        start = evaluate(ck.model, task, "test")
        names = prunable_names(ck.model)
        rows: list[dict[str, Any]] = []
        for seed in args.seeds:
            for ratio in args.ratios:
                for rb in args.row_blocks:
                    t0 = time.perf_counter()
                    m = copy.deepcopy(ck.model)
                    bp = BPConfig(
                        row_block=rb,
                        ratio=ratio,
                        reg_train=_tc(task, cfg.reg_steps, cfg, seed, "bp reg"),
                        retrain=_tc(task, cfg.retrain_steps, cfg, seed + 1000, "bp retrain"),
                        **_variant("bp_schedule", cfg),
                    )
                    res = block_prune(m, task, list(names), bp, "test")
                    row = {
                        "row_block": rb,
                        "ratio": ratio,
                        "seed": seed,
                        "sparsity": 1 - res.density,
                        "before_retrain": {"accuracy": res.pruned_before_retrain.accuracy},
                        "after_retrain": {
                            "accuracy": res.pruned.accuracy,
                            "perplexity": res.pruned.perplexity,
                        },
                        "pruned_mass_fraction": res.norm_stats.get("pruned_mass_fraction"),
                        "wall_s": round(time.perf_counter() - t0, 1),
                    }
                    rows.append(row)
                    sys.stderr.write(f"row block {rb} ratio {ratio} seed {seed}: {row['after_retrain']}\n")
                    out = {
                        "checkpoint": str(args.checkpoint),
                        "data": task.source,
                        "model": ck.description.get("config"),
                        "eval_tokens": args.eval_tokens,
                        "recipe": {
                            "reg_steps": cfg.reg_steps,
                            "retrain_steps": cfg.retrain_steps,
                            "lr": cfg.lr,
                            "lam_max": cfg.lam_max,
                            "variant": "bp_schedule",
                        },
                        "start": {"accuracy": start.accuracy, "perplexity": start.perplexity},
                        "runs": rows,
                        "summary": _summary(rows),
                    }
                    args.out.write_text(json.dumps(out, indent=1) + "\n")
    except TestbedError as e:
        sys.stderr.write(f"error: {e}\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
