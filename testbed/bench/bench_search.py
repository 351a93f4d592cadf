"""Search benchmark: proposals per second through the evaluator with the memo and set cache vs without.

A tiny reference LM (emsize 32, 1 layer, generated proxy corpus, BP 50 %) is trained in-process; an RL search
records its proposals (memo hits included, as a real search makes them); the same proposal sequence is then
replayed through a fresh evaluator with the candidate memo and pattern-set cache, and through one with both
disabled. The ratio of the two rates comes from the same run on the same machine.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from testbed.rt3.bp import BPConfig, block_prune
from testbed.rt3.checkpoint import Checkpoint, model_description
from testbed.rt3.models import LMConfig, TransformerLM, prunable_names
from testbed.rt3.tasks import build_task
from testbed.rt3.train import TrainConfig, train
from testbed.search.evaluator import CandidateEvaluator
from testbed.search.problem import SearchConfig, build_problem
from testbed.search.reinforce import Reinforce
from testbed.search.runner import run_search

DATA = {"kind": "proxy-lm", "seed": 0, "n_train": 400, "n_eval": 80}


def _checkpoint() -> Checkpoint:
    task, vocab = build_task(DATA, batch_size=10)
    assert vocab is not None
    torch.manual_seed(0)
    model = TransformerLM(LMConfig(len(vocab), emsize=32, nhid=32, nlayers=1, nhead=2, dropout=0.0))
    quick = TrainConfig(epochs=1, lr=3e-3, max_steps=20, progress=False)
    train(model, task, quick)
    cfg = BPConfig(row_block=16, ratio=0.5, reg_train=quick, retrain=quick)
    bp = block_prune(model, task, prunable_names(model), cfg)
    return Checkpoint(model, model_description(model), DATA, vocab, "bp", {}, bp.masks, cfg.to_dict())


def _fresh(ev: object, cache: int) -> CandidateEvaluator:
    """A new evaluator like ``ev`` (the set space's: this benchmark times its memo) with ``cache`` entries."""
    if not isinstance(ev, CandidateEvaluator):
        raise TypeError(f"the memo benchmark needs the set space's CandidateEvaluator, got {type(ev).__name__}")
    return CandidateEvaluator(
        ev.api, ev.space, ev.latency, ev.deadlines_ms, ev.reward_config, ev.accuracy_config, set_cache_size=cache
    )


def run(quick: bool = False) -> dict[str, Any]:
    """Proposals/s with and without memo on one recorded RL proposal sequence."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = SearchConfig(
            sparsity_levels=(0.0, 0.25, 0.5, 0.75), n_candidates=2, deadlines_ms=(0.7,), accuracy={"eval_batches": 1}
        )
        problem = build_problem(_checkpoint(), cfg)
        budget = 15 if quick else 40
        recorder = _fresh(problem.evaluator, 256)
        searcher = Reinforce(problem.space.sizes, seed=0)
        proposals: list[tuple[int, ...]] = []
        ask = searcher.ask

        def recording_ask() -> tuple[int, ...]:
            c = ask()
            proposals.append(c)
            return c

        searcher.ask = recording_ask  # type: ignore[method-assign]
        run_search(searcher, recorder, budget)
        memo = _fresh(problem.evaluator, 256)
        t0 = time.perf_counter()
        for c in proposals:
            memo.evaluate(c)
        with_memo_s = time.perf_counter() - t0
        bare = _fresh(problem.evaluator, 0)
        t0 = time.perf_counter()
        for c in proposals:
            bare.memo.clear()
            bare.evaluate(c)
        without_s = time.perf_counter() - t0
    finally:
        torch.set_num_threads(threads)
    n = len(proposals)
    return {
        "proposals": n,
        "distinct_candidates": memo.n_evaluations,
        "memo_hits": memo.hits,
        "proposals_per_s_with_memo": n / with_memo_s,
        "proposals_per_s_without_memo": n / without_s,
        "speedup_memo": without_s / with_memo_s,
        "decisions": len(problem.space.decisions),
    }
