"""``testbed search``: RT3's search of one pattern set per DVFS frequency level (RL, random or TPE).

Form relied on by scripts and docs::

    testbed search CKPT --out DIR [--algo rl|random|tpe|structured] [--budget N] [--seed S] [--resume]
                   [--space layer --latency-table per-layer|FILE [--latency-cache FILE]] [--rl-tuned]
                   [--profile TABLE [--levels f1500,f1000,f600]] [--freq-ghz 1.4,1.0,0.8 --volt 1.24,1.06625,0.9925]
                   [--deadline-ms 115 | 115,104,94] [--sparsity 0.01,0.13,…] [--accuracy mask|finetune]
                   [--eval-batches N] [--runs-range auto|LO,HI] [--acc-range auto|LO,HI] [--no-artifact] [--json]
                   [--parallel N [--address auto|ray://HOST:PORT]]   (on Ray Tune: testbed.search.tune)

CKPT is a checkpoint with BP masks (``testbed rt3 prune bp``). DIR receives ``run.sqlite`` (the search log in the
run store's ``log`` table), ``search_state.pt`` (checkpoint for ``--resume``), ``search_config.json``,
``summary.json``, ``best.json`` and ``best.rt3`` (the best pattern sets as a runtime artifact); the run itself is
:func:`testbed.search.runner.search_run`. Without ``--profile`` latency is RT3's op-count PREDICTION, not a
measurement. torch is imported inside the command only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from devices.errors import BadInputError
from testbed.cli.common import JsonOpt, console, print_json


def _floats(text: str, what: str) -> tuple[float, ...]:
    try:
        vals = tuple(float(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise BadInputError(f"{what}: expected comma-separated numbers, got {text!r}") from None
    if not vals:
        raise BadInputError(f"{what}: no values given")
    return vals


def _tuned_rl() -> dict[str, Any]:
    """The RL settings of ``python -m testbed.search.compare`` (ordinal policy, batches, per-level credit)."""
    from testbed.search.compare import TUNED_RL

    return TUNED_RL.to_dict()


def _range(text: str, what: str) -> tuple[float, float] | None:
    if text == "auto":
        return None
    vals = _floats(text, what)
    if len(vals) != 2 or not vals[1] > vals[0]:
        raise BadInputError(f"{what}: expected auto or LOW,HIGH with HIGH > LOW, got {text!r}")
    return vals[0], vals[1]


def search(
    ckpt: Annotated[Path, typer.Argument(help="Checkpoint directory with BP masks (testbed rt3 prune bp).")],
    out: Annotated[Path, typer.Option("--out", help="Output directory (run store, checkpoint, artifact).")],
    algo: Annotated[str, typer.Option(help="rl (LSTM + REINFORCE), random, tpe (Optuna) or structured.")] = "rl",
    budget: Annotated[int | None, typer.Option(help="Distinct candidate evaluations (default 100).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the searcher and the pattern space.")] = 0,
    resume: Annotated[bool, typer.Option(help="Continue the search in --out (stored settings; --budget may grow).")] = (
        False
    ),
    profile: Annotated[
        str | None, typer.Option(help="Profile table (CSV path or bundled name) for latency and power.")
    ] = None,
    levels: Annotated[str | None, typer.Option(help="Profile levels to use, fastest first (default all).")] = None,
    agent: Annotated[
        str | None, typer.Option("--agent", help="Agent URL: measure each new pattern set on the board per level.")
    ] = None,
    token_file: Annotated[Path | None, typer.Option("--token-file", help="With --agent: the agent's token.")] = None,
    agent_inferences: Annotated[int, typer.Option(help="With --agent: timed inferences per set and level.")] = 20,
    deadline_tail: Annotated[
        str, typer.Option(help="With --profile: a cell's latency vs the deadline, p99 (cell) or p50 x pooled p99/p50.")
    ] = "cell",
    space: Annotated[
        str,
        typer.Option("--space", help="pattern (one pattern set per level) or layer (a sparsity per tensor per level)."),
    ] = "pattern",
    latency_table: Annotated[
        str | None,
        typer.Option(
            "--latency-table",
            help="--space layer: per-layer (measure every tensor × sparsity × level through --agent) or a table FILE.",
        ),
    ] = None,
    latency_cache: Annotated[
        Path | None,
        typer.Option(
            "--latency-cache", help="With --latency-table per-layer: cache file (default DIR/layer_latency.json)."
        ),
    ] = None,
    battery_term: Annotated[
        str, typer.Option("--battery-term", help="Battery term: rt3-accounting (ideal bucket) or ecm.")
    ] = "rt3-accounting",
    cell: Annotated[str, typer.Option(help="With --battery-term ecm: bundled cell name or TOML path.")] = "phone-lco",
    pp_mode: Annotated[str, typer.Option("--pp-mode", help="column (strips, packable) or element (RT3's).")] = (
        "column"
    ),
    freq_ghz: Annotated[str, typer.Option(help="Op-count model: frequencies, fastest first (RT3).")] = "1.4,1.0,0.8",
    volt: Annotated[str, typer.Option(help="Op-count model: voltage per frequency (RT3).")] = "1.24,1.06625,0.9925",
    deadline_ms: Annotated[str, typer.Option(help="Deadline: one for every level, or one per level.")] = "115",
    sparsity: Annotated[str, typer.Option(help="Candidate sparsity levels (RT3's ten).")] = (
        "0.01,0.13,0.25,0.37,0.5,0.62,0.75,0.87,0.93,0.99"
    ),
    pattern_cols: Annotated[int, typer.Option(help="Columns per pattern tile.")] = 8,
    candidates: Annotated[int, typer.Option(help="Candidate patterns per layer and sparsity level.")] = 4,
    accuracy: Annotated[str, typer.Option(help="mask (frozen backbone) or finetune (short joint fine-tune).")] = (
        "mask"
    ),
    eval_batches: Annotated[int, typer.Option(help="Evaluation batches per accuracy.")] = 4,
    finetune_steps: Annotated[int, typer.Option(help="Steps of the per-candidate fine-tune.")] = 20,
    runs_range: Annotated[str, typer.Option(help="Battery term normalisation: auto or LOW,HIGH (RT3 2.3e6,4.5e6).")] = (
        "auto"
    ),
    acc_range: Annotated[str, typer.Option(help="Accuracy normalisation: auto or LOW,HIGH (RT3 0.85,0.9745).")] = (
        "auto"
    ),
    w_battery: Annotated[float, typer.Option(help="Weight of the battery term (RT3 1).")] = 1.0,
    deadline_reward: Annotated[float, typer.Option(help="Accuracy term when a deadline is missed (RT3 −1).")] = -1.0,
    monotonic_penalty: Annotated[float, typer.Option(help="Penalty when accuracy rises as frequency falls.")] = 0.5,
    lr: Annotated[float, typer.Option(help="RL controller learning rate (Adam).")] = 0.003,
    entropy: Annotated[float, typer.Option(help="RL entropy bonus weight.")] = 0.01,
    rl_tuned: Annotated[
        bool, typer.Option("--rl-tuned", help="RL with the settings tuned on the layer space (overrides --lr).")
    ] = False,
    final_finetune_steps: Annotated[int, typer.Option(help="Joint fine-tune steps before exporting the best.")] = 0,
    threads: Annotated[int, typer.Option(help="torch intra-op threads (1 is fastest for small models).")] = 1,
    artifact: Annotated[bool, typer.Option(help="Write best.rt3.")] = True,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Progress bar on stderr.")] = True,
    parallel: Annotated[
        int | None, typer.Option("--parallel", help="Evaluate N candidates at once as Ray Tune trials.")
    ] = None,
    address: Annotated[
        str | None, typer.Option("--address", help="With --parallel: Ray cluster (auto or ray://HOST:PORT).")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Search one pattern set per DVFS level that meets its deadline, keeps accuracy and maximises battery life."""
    import torch

    from testbed.search.problem import SearchConfig
    from testbed.search.runner import search_run

    if threads < 1:
        raise BadInputError(f"--threads must be ≥ 1, got {threads}")
    torch.set_num_threads(threads)
    cfg = None
    if not resume:
        cfg = SearchConfig(
            algo=algo,
            budget=budget or 100,
            seed=seed,
            sparsity_levels=_floats(sparsity, "--sparsity"),
            pattern_cols=pattern_cols,
            n_candidates=candidates,
            profile=profile,
            profile_levels=tuple(s.strip() for s in levels.split(",")) if levels else None,
            agent=agent,
            agent_token_file=str(token_file) if token_file is not None else None,
            agent_inferences=agent_inferences,
            deadline_tail=deadline_tail,
            pp_mode=pp_mode,
            freq_ghz=_floats(freq_ghz, "--freq-ghz"),
            volt_v=_floats(volt, "--volt"),
            deadlines_ms=_floats(deadline_ms, "--deadline-ms"),
            runs_range=_range(runs_range, "--runs-range"),
            acc_range=_range(acc_range, "--acc-range"),
            reward={
                "w_battery": w_battery,
                "deadline_reward": deadline_reward,
                "monotonic_penalty": monotonic_penalty,
                "battery_model": battery_term,
                "cell": cell,
            },
            accuracy={"mode": accuracy, "eval_batches": eval_batches, "finetune_steps": finetune_steps},
            rl=_tuned_rl() if rl_tuned else {"lr": lr, "entropy_weight": entropy},
            final_finetune_steps=final_finetune_steps,
            space=space,
            latency_table=latency_table,
            latency_cache=(
                str((latency_cache or out / "layer_latency.json").resolve()) if latency_table == "per-layer" else None
            ),
        )
    if parallel is None and resume and (out / "tune").is_dir():
        parallel = 1  # a search that ran on Tune resumes there (with its stored --parallel)
    if address is not None and parallel is None:
        raise BadInputError("--address needs --parallel N (a search on Ray Tune)")
    if parallel is not None:
        from testbed.distributed.cluster import check_address
        from testbed.search.tune import tune_search_run

        check_address(address)
        done = tune_search_run(out, ckpt=ckpt, cfg=cfg, resume=resume, budget=budget, parallel=parallel,
                               address=address, progress=progress, artifact=artifact)  # fmt: skip
    else:
        done = search_run(
            out, ckpt=ckpt, cfg=cfg, resume=resume, budget=budget, progress=progress, artifact=artifact
        )  # fmt: skip
    summary = done.summary.to_dict()
    if done.artifact is not None:
        summary["artifact"] = str(done.artifact)
    _print(summary, json_out)


def _print(summary: dict[str, Any], json_out: bool) -> None:
    if json_out:
        print_json(summary)
        return
    console.print(
        f"{summary['algo']}: best reward {summary['reward']:+.4f} after {summary['evaluations']} evaluations "
        f"({summary['proposals']} proposals, {summary['memo_hits']} memo hits, {summary['wall_s']:.1f} s)",
        highlight=False,
    )
    console.print(f"latency: {summary['latency_source']}", highlight=False)
    for r in summary["levels"]:
        ok = "meets" if r["deadline_met"] else "MISSES"
        console.print(
            f"  {r['level']}: sparsity {r['sparsity']:.3f}, accuracy {r['accuracy']:.4f}, "
            f"latency {r['deadline_latency_ms']:.3f} ms {ok} {r['deadline_ms']:g} ms, runs {r['runs']}",
            highlight=False,
        )
    if "artifact" in summary:
        console.print(f"artifact: {summary['artifact']}", highlight=False)
