"""The best candidate of a search as a runtime artifact (``.rt3``, the format the agent and ``testbed rt3 run`` load).

Pattern set *k* of the artifact is the one found for frequency level *k* (fastest first, ``freq_level = k``);
its metadata carries the level's name, the latency (and its source: an op-count prediction or a profile), the
deadline and the accuracy measured during the search. With ``finetune_steps`` > 0 the shared backbone is first
fine-tuned jointly on the K sets (RT3's 0.5/0.3/0.2 loss weights) and the accuracies are re-measured.
"""

from __future__ import annotations

import copy
from pathlib import Path

from testbed.rt3.checkpoint import Checkpoint
from testbed.rt3.export import build_artifact
from testbed.rt3.pp import joint_finetune
from testbed.rt3.train import TrainConfig
from testbed.search.evaluator import Evaluation
from testbed.search.problem import Problem


def write_best_artifact(problem: Problem, best: Evaluation, path: Path, finetune_steps: int = 0, seed: int = 0) -> Path:
    """Export ``best``'s K pattern sets on the problem's backbone to ``path``; returns the path."""
    ev = problem.evaluator
    cand = tuple(best.candidate)
    names = problem.latency.level_names
    sets = []
    for k in range(problem.space.n_freq_levels):
        ps = copy.copy(ev.pattern_set(cand, k))
        ps.name = f"L{k}-{names[k]}"
        ps.freq_level = k
        ps.accuracy = best.accuracy[k]
        ps.extra = {
            "level_name": names[k],
            "latency_ms": best.latency_ms[k],
            "deadline_latency_ms": best.deadline_latency_ms[k],
            "deadline_ms": ev.deadlines_ms[k],
            "latency_source": problem.latency.source,
            "search_accuracy": best.accuracy[k],
        }
        sets.append(ps)
    ck = problem.checkpoint
    model = ck.model
    results = dict(ck.results)
    if finetune_steps > 0:
        model = copy.deepcopy(model)
        out = joint_finetune(
            model,
            problem.api.task,
            sets,
            problem.api.bp_masks,
            TrainConfig(1, 1e-3, seed=seed, max_steps=finetune_steps, progress=False, label="joint fine-tune"),
            eval_split=problem.api.eval_split,
        )
        results["search_finetune"] = [r.to_dict() for r in out]
    results["search"] = {"reward": best.reward, "terms": best.terms.to_dict(), "latency_source": problem.latency.source}
    art_ckpt = Checkpoint(
        model=model,
        description=ck.description,
        data=ck.data,
        vocab=ck.vocab,
        stage="pp",
        results=results,
        bp_masks=ck.bp_masks,
        bp_config=ck.bp_config,
        space=problem.api.space,
        sets=sets,
    )
    return build_artifact(art_ckpt, path)
