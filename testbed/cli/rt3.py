"""``testbed rt3 …``: the RT3 method from the command line — train, prune, export, run, benchmark.

Forms relied on by scripts and docs::

    testbed rt3 train --out DIR [--model lm|bert|distilbert|minilm]
                      [--data proxy-lm|fortune-lm|wikitext2:DIR|proxy-sst2|fortune-topics|sst2:DIR]
                      [--emsize N --nhid N --nlayers N --nhead N] [--hf-dir DIR] [--epochs N --lr F --max-steps N]
    testbed rt3 prune bp CKPT --out DIR [--ratio F] [--structure block-column|head-ffn] [--row-block N|auto]
                      [--lambda F --lambda-max F --lam-schedule constant|linear|exp --reweight all|prune-set]
    testbed rt3 prune pp CKPT --out DIR [--levels 0.25,0.5,0.75] [--weights 0.5,0.3,0.2] [--freq-levels 2,1,0]
    testbed rt3 export CKPT --out FILE.rt3 [--seq N]
    testbed rt3 info FILE.rt3 [--json]
    testbed rt3 opcount --freq-ghz F [--model rt3-lm] [--sparsity S | S1,…,S10] [--json]
    testbed rt3 run FILE.rt3 [--backend torch|ort] [--batch N --seq N --repeats N --threads N] [--json]
    testbed rt3 bench switch [--json]
    testbed rt3 bench sparse [--json] [--quick]

Every stage reads the previous stage's checkpoint directory and writes a new one; data is never downloaded.
torch is imported inside the commands only (a board runs ``testbed`` without it; ``info`` and ``run --backend
ort`` work without torch).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from devices.errors import BadInputError
from testbed.cli.common import JsonOpt, console, print_json

app = typer.Typer(help="The RT3 method: train, block/pattern pruning, export, run, benchmark.", no_args_is_help=True)
prune_app = typer.Typer(help="Block pruning (bp) and pattern pruning (pp).", no_args_is_help=True)
bench_app = typer.Typer(help="Runtime benchmarks (one JSON object each).", no_args_is_help=True)
app.add_typer(prune_app, name="prune")
app.add_typer(bench_app, name="bench")

CkptArg = Annotated[Path, typer.Argument(help="Checkpoint directory written by the previous stage.")]
OutOpt = Annotated[Path, typer.Option("--out", help="Where to write the result.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed (data order, init, pattern sampling).")]
EpochsOpt = Annotated[int, typer.Option("--epochs", min=0, help="Training epochs.")]
LrOpt = Annotated[float, typer.Option("--lr", help="AdamW learning rate.")]
StepsOpt = Annotated[int | None, typer.Option("--max-steps", help="Cap on optimizer steps per epoch.")]
ProgressOpt = Annotated[bool, typer.Option("--progress/--no-progress", help="Progress bars on stderr.")]


def _floats(text: str, what: str) -> list[float]:
    try:
        return [float(t) for t in text.split(",") if t.strip()]
    except ValueError as exc:
        raise BadInputError(f"{what}: expected comma-separated numbers, got {text!r}") from exc


def _row_block(text: str) -> int | str:
    """``--row-block``: a positive integer or ``auto``."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        block = int(text)
    except ValueError:
        block = 0
    if block < 1:
        raise BadInputError(f"--row-block: expected a positive integer or auto, got {text!r}")
    return block


def _report(data: dict[str, Any], json_out: bool, lines: list[str]) -> None:
    if json_out:
        print_json(data)
    else:
        for line in lines:
            console.print(line, highlight=False)


def _fmt_eval(r: dict[str, Any]) -> str:
    ppl = f", perplexity {r['perplexity']:.2f}" if r.get("perplexity") is not None else ""
    return f"accuracy {r['accuracy']:.4f}{ppl}"


@app.command("train")
def train_cmd(
    out: OutOpt,
    model: Annotated[str, typer.Option("--model", help="lm (RT3 reference), bert, distilbert or minilm.")] = "lm",
    data: Annotated[
        str,
        typer.Option(
            "--data",
            help="proxy-lm, fortune-lm (real text), wikitext2:DIR, proxy-sst2, fortune-topics or sst2:DIR "
            "(proxy = generated).",
        ),
    ] = "proxy-lm",
    emsize: Annotated[int, typer.Option(help="LM embedding size (reference 800).")] = 64,
    nhid: Annotated[int, typer.Option(help="LM FFN width (reference 200).")] = 128,
    nlayers: Annotated[int, typer.Option(help="Layers (LM; random-weight HF models).")] = 2,
    nhead: Annotated[int, typer.Option(help="Attention heads (LM; random-weight HF models).")] = 4,
    dropout: Annotated[float, typer.Option(help="LM dropout (reference 0.2).")] = 0.1,
    hf_dir: Annotated[
        Path | None, typer.Option("--hf-dir", help="Local Hugging Face model directory (pretrained weights).")
    ] = None,
    epochs: EpochsOpt = 3,
    lr: LrOpt = 3e-3,
    max_steps: StepsOpt = None,
    batch_size: Annotated[int | None, typer.Option(help="Batch size (LM default 20, classifier 32).")] = None,
    seed: SeedOpt = 0,
    progress: ProgressOpt = True,
    json_out: JsonOpt = False,
) -> None:
    """Train a dense model and write checkpoint DIR (stage "dense")."""
    import torch

    from testbed.rt3.checkpoint import Checkpoint, model_description
    from testbed.rt3.models import HF_KINDS, HFSpec, LMConfig, TransformerLM, build_hf_classifier
    from testbed.rt3.tasks import CLS_KINDS, LM_KINDS, build_task, parse_data_arg
    from testbed.rt3.train import TrainConfig, evaluate, set_seed, train

    spec = parse_data_arg(data, seed)
    set_seed(seed)
    if model == "lm":
        if spec["kind"] not in LM_KINDS:
            raise BadInputError(f"--model lm needs language-modelling data ({', '.join(LM_KINDS)})")
        task, vocab = build_task(spec, batch_size=batch_size)
        assert vocab is not None
        net: torch.nn.Module = TransformerLM(LMConfig(len(vocab), emsize, nhid, nlayers, nhead, dropout))
        desc = model_description(net)
    elif model in HF_KINDS:
        if spec["kind"] not in CLS_KINDS:
            raise BadInputError(f"--model {model} needs classification data ({', '.join(CLS_KINDS)})")
        pretrained = str(hf_dir) if hf_dir is not None else None
        if pretrained is None and model == "minilm":
            from testbed.rt3.models import minilm_path

            pretrained = str(minilm_path())
        task, vocab = build_task(spec, tokenizer_dir=pretrained, batch_size=batch_size)
        overrides: dict[str, Any] = {}
        if pretrained is None:
            assert vocab is not None
            if model == "distilbert":
                overrides = {
                    "dim": emsize,
                    "hidden_dim": nhid,
                    "n_layers": nlayers,
                    "n_heads": nhead,
                    "vocab_size": len(vocab),
                }
            else:
                overrides = {
                    "hidden_size": emsize,
                    "intermediate_size": nhid,
                    "num_hidden_layers": nlayers,
                    "num_attention_heads": nhead,
                    "vocab_size": len(vocab),
                }
        hf_spec = HFSpec(model, pretrained, 2, overrides)
        net = build_hf_classifier(hf_spec)
        desc = model_description(net, hf_spec)
    else:
        raise BadInputError(f"unknown --model {model!r}; choose lm, {', '.join(HF_KINDS)}")
    history = train(
        net, task, TrainConfig(epochs, lr, seed=seed, max_steps=max_steps, progress=progress, label="train")
    )
    result = evaluate(net, task, "test").to_dict()
    ckpt = Checkpoint(net, desc, spec, vocab, "dense", {"dense": result, "train_loss": history})
    ckpt.save(out)
    _report(
        {"checkpoint": str(out), "data": task.source, "dense": result, "train_loss": history},
        json_out,
        [f"data: {task.source}", f"dense: {_fmt_eval(result)}", f"checkpoint: {out}"],
    )


@prune_app.command("bp")
def prune_bp(
    ckpt: CkptArg,
    out: OutOpt,
    ratio: Annotated[float, typer.Option(help="Fraction of groups removed per layer (RT3 ≈ 0.643).")] = 0.5,
    structure: Annotated[str, typer.Option(help="block-column (RT3) or head-ffn.")] = "block-column",
    row_block: Annotated[
        str,
        typer.Option(
            help="Rows per row-block (≥ 32 packs fastest), or auto: the smallest block whose measured packed "
            "speed-up reaches issue 17's targets (testbed/rt3/tables/row_block.json)."
        ),
    ] = "32",
    balanced: Annotated[bool, typer.Option(help="Equal kept columns per row-block.")] = True,
    lam: Annotated[float, typer.Option("--lambda", help="Group-lasso strength λ (the schedule's start).")] = 1e-4,
    lam_max: Annotated[float | None, typer.Option("--lambda-max", help="End of the λ schedule.")] = None,
    lam_schedule: Annotated[str, typer.Option(help="λ schedule: constant, linear or exp.")] = "constant",
    reweight: Annotated[str, typer.Option(help="Reweighting: all groups, or prune-set (only those to go).")] = "all",
    reweight_every: Annotated[int, typer.Option(help="Steps between re-estimating the penalty weights.")] = 20,
    lasso: Annotated[
        str, typer.Option(help="penalty (added to the loss) or proximal (group soft-threshold after each step).")
    ] = "penalty",
    lam_ramp: Annotated[
        float, typer.Option("--lambda-ramp", help="Fraction of the regularised steps λ ramps over, then holds.")
    ] = 1.0,
    reg_epochs: Annotated[int, typer.Option(help="Epochs with the group-lasso penalty.")] = 1,
    retrain_epochs: Annotated[int, typer.Option(help="Epochs of masked retraining.")] = 1,
    lr: LrOpt = 1e-3,
    max_steps: StepsOpt = None,
    seed: SeedOpt = 0,
    progress: ProgressOpt = True,
    json_out: JsonOpt = False,
) -> None:
    """Block pruning: reweighted group lasso, hard prune to RATIO, retrain with the mask fixed."""
    from testbed.rt3.bp import BPConfig, block_prune
    from testbed.rt3.checkpoint import Checkpoint
    from testbed.rt3.models import prunable_names
    from testbed.rt3.train import TrainConfig

    block = _row_block(row_block)
    ck = Checkpoint.load(ckpt)
    task, _ = _task_for(ck)
    cfg = BPConfig(
        structure=structure,
        row_block=block,
        ratio=ratio,
        balanced=balanced,
        lam=lam,
        lam_max=lam_max,
        lam_schedule=lam_schedule,
        reweight_mode=reweight,
        reweight_every=reweight_every,
        lasso=lasso,
        lam_ramp=lam_ramp,
        reg_train=TrainConfig(
            reg_epochs, lr, seed=seed, max_steps=max_steps, progress=progress, label="bp group-lasso"
        ),
        retrain=TrainConfig(
            retrain_epochs, lr, seed=seed + 1, max_steps=max_steps, progress=progress, label="bp retrain"
        ),
    )
    cfg = cfg.resolved(ck.model, prunable_names(ck.model))  # "auto" → the table's block, recorded in bp_config
    result = block_prune(ck.model, task, prunable_names(ck.model), cfg)
    ck.stage, ck.bp_masks, ck.bp_config = "bp", result.masks, cfg.to_dict()
    ck.results["bp"] = result.summary()
    ck.sets, ck.space = [], None
    ck.save(out)
    s = result.summary()
    _report(
        {"checkpoint": str(out), "row_block": cfg.row_block, **s},
        json_out,
        [
            f"row block: {cfg.row_block}" + (" (auto, from the measured table)" if cfg.row_block_choice else ""),
            f"dense:  {_fmt_eval(s['dense'])}",
            f"pruned before retraining: {_fmt_eval(s['pruned_before_retrain'])}",
            f"BP:     {_fmt_eval(s['pruned'])}  (compression {s['compression']:.2f}×, density {s['density']:.3f})",
            f"checkpoint: {out}",
        ],
    )


@prune_app.command("pp")
def prune_pp(
    ckpt: CkptArg,
    out: OutOpt,
    levels: Annotated[str, typer.Option(help="Pattern sparsity per set (fraction of a tile's columns removed).")] = (
        "0.25,0.5,0.75"
    ),
    weights: Annotated[str | None, typer.Option(help="Joint-loss weights (default 0.5,0.3,0.2 for 3 sets).")] = None,
    freq_levels: Annotated[
        str | None,
        typer.Option(
            help="DVFS level index per set in --levels order, 0 = the fastest level; sparser sets belong at slower "
            "(higher) levels, e.g. 0,1,2 for --levels 0.25,0.5,0.75."
        ),
    ] = None,
    pattern_cols: Annotated[int, typer.Option(help="Columns per pattern tile.")] = 8,
    candidates: Annotated[int, typer.Option(help="Candidate patterns per layer and level.")] = 4,
    epochs: EpochsOpt = 1,
    lr: LrOpt = 1e-3,
    max_steps: StepsOpt = None,
    seed: SeedOpt = 0,
    progress: ProgressOpt = True,
    json_out: JsonOpt = False,
) -> None:
    """Pattern pruning: candidate patterns from the BP model, K sets of diverse sparsity, joint fine-tuning."""
    from testbed.rt3.checkpoint import Checkpoint
    from testbed.rt3.pp import build_pattern_set, build_space, joint_finetune, uniform_choices
    from testbed.rt3.train import TrainConfig

    ck = Checkpoint.load(ckpt)
    if ck.bp_masks is None or ck.bp_config is None:
        raise BadInputError(f"{ckpt}: no BP masks; run `testbed rt3 prune bp` first")
    lv = _floats(levels, "--levels")
    if not lv or any(not 0.0 <= x < 1.0 for x in lv):
        raise BadInputError("--levels: each level must be in [0, 1)")
    w = _floats(weights, "--weights") if weights else None
    fl = [int(x) for x in _floats(freq_levels, "--freq-levels")] if freq_levels else None
    if fl is not None and len(fl) != len(lv):
        raise BadInputError(f"--freq-levels names {len(fl)} levels for {len(lv)} pattern sets")
    import itertools

    by_sparsity = [f for _, f in sorted(zip(lv, fl, strict=True))] if fl is not None else []
    if any(a > b for a, b in itertools.pairwise(by_sparsity)):
        from testbed.cli.common import warn

        warn("--freq-levels gives a sparser set a faster level (0 = fastest); RT3 runs sparser sets at slower levels")
    task, _ = _task_for(ck)
    row_block = int(ck.bp_config.get("row_block", 32))
    space = build_space(ck.model, ck.bp_masks, row_block, pattern_cols, tuple(lv), candidates, seed=seed)
    sets = [
        build_pattern_set(ck.model, ck.bp_masks, space, uniform_choices(space, i), f"pp{lv[i]:g}")
        for i in range(len(lv))
    ]
    for i, s in enumerate(sets):
        s.freq_level = fl[i] if fl is not None else None
    results = joint_finetune(
        ck.model,
        task,
        sets,
        ck.bp_masks,
        TrainConfig(epochs, lr, seed=seed, max_steps=max_steps, progress=progress, label="pp joint"),
        w,
    )
    ck.stage, ck.space, ck.sets = "pp", space, sets
    ck.results["pp"] = [
        {"name": s.name, "sparsity": s.sparsity, **r.to_dict()} for s, r in zip(sets, results, strict=True)
    ]
    ck.save(out)
    _report(
        {"checkpoint": str(out), "pattern_sets": ck.results["pp"]},
        json_out,
        [f"{s.name}: sparsity {s.sparsity:.3f}, {_fmt_eval(r.to_dict())}" for s, r in zip(sets, results, strict=True)]
        + [f"checkpoint: {out}"],
    )


@app.command("export")
def export_cmd(
    ckpt: CkptArg,
    out: OutOpt,
    seq: Annotated[int, typer.Option(help="Sequence length of the export example (axes stay dynamic).")] = 35,
    share_tables: Annotated[
        bool,
        typer.Option(help="Store embedding/position tables once, fed as graph inputs (loader must support it)."),
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Pack every pattern set, export it to ONNX, write one artifact file (manifest + checksums)."""
    from testbed.rt3.artifact import Artifact
    from testbed.rt3.checkpoint import Checkpoint
    from testbed.rt3.export import build_artifact

    path = build_artifact(Checkpoint.load(ckpt), out, seq=seq, share_tables=share_tables)
    art = Artifact.open(path)
    _report(
        {"artifact": str(path), "bytes": path.stat().st_size, "pattern_sets": art.pattern_sets},
        json_out,
        [f"artifact: {path} ({path.stat().st_size / 1e6:.2f} MB, {len(art.pattern_sets)} pattern sets)"],
    )


@app.command("info")
def info_cmd(
    artifact: Annotated[Path, typer.Argument(help="An .rt3 artifact file.")], json_out: JsonOpt = False
) -> None:
    """Show an artifact's model, pattern sets (sparsity, accuracy, frequency level) after verifying checksums."""
    from testbed.rt3.artifact import Artifact

    art = Artifact.open(artifact)
    lines = [f"model: {art.manifest['model']['family']}  created {art.manifest.get('created_utc')}"]
    for s in art.pattern_sets:
        acc = f"{s['accuracy']:.4f}" if s.get("accuracy") is not None else "?"
        lines.append(
            f"  [{s['index']}] {s['name']}: sparsity {s['sparsity']:.3f}, accuracy {acc}, "
            f"freq level {s.get('freq_level')}"
        )
    _report(art.manifest, json_out, lines)


@app.command("opcount")
def opcount_cmd(
    freq_ghz: Annotated[float, typer.Option("--freq-ghz", help="CPU frequency in GHz (RT3: 1.4, 1.0, 0.8).")],
    model: Annotated[str, typer.Option("--model", help="rt3-lm: RT3's reference LM shape.")] = "rt3-lm",
    sparsity: Annotated[
        str, typer.Option("--sparsity", help="Fraction of zero weights: one value, or one per counted tensor.")
    ] = "0",
    json_out: JsonOpt = False,
) -> None:
    """PREDICTED latency of RT3's op-count model (utils/runs_number_reward.py of its code), not a measurement."""
    from dataclasses import asdict

    from testbed.rt3.opcount import RT3_LM, op_tensors, opcount_latency_ms, opcount_ops

    if model != "rt3-lm":
        raise BadInputError(f"--model: unknown model {model!r}; choose rt3-lm")
    values = _floats(sparsity, "--sparsity")
    spars: float | list[float] = values[0] if len(values) == 1 else values
    latency = opcount_latency_ms(RT3_LM, spars, freq_ghz)
    mults, adds = opcount_ops(RT3_LM, spars)
    data = {
        "model": model,
        "kind": "predicted: RT3 op-count model",
        "shape": asdict(RT3_LM),
        "tensors": [t.name for t in op_tensors(RT3_LM)],
        "sparsity": spars,
        "freq_ghz": freq_ghz,
        "mults": mults,
        "adds": adds,
        "latency_ms": latency,
    }
    _report(data, json_out, [f"{model} at {freq_ghz} GHz, sparsity {sparsity}: {latency:.3f} ms (predicted)"])


@app.command("run")
def run_cmd(
    artifact: Annotated[Path, typer.Argument(help="An .rt3 artifact file.")],
    backend: Annotated[str, typer.Option(help="ort (onnxruntime, what a board runs) or torch.")] = "ort",
    batch: Annotated[int, typer.Option(help="Sequences per inference.")] = 1,
    seq: Annotated[int, typer.Option(help="Tokens per sequence.")] = 35,
    repeats: Annotated[int, typer.Option(help="Timed inferences per pattern set.")] = 20,
    threads: Annotated[int, typer.Option(help="Intra-op threads.")] = 1,
    json_out: JsonOpt = False,
) -> None:
    """Load an artifact into the reconfigurable runtime, time every pattern set and the switches between them."""
    import statistics
    import time

    import numpy as np

    from testbed.rt3.artifact import Artifact

    art = Artifact.open(artifact)
    feeds = {i["name"]: np.ones((batch, seq), dtype=np.int64) for i in art.inputs}
    switch: Callable[[int], float]
    infer: Callable[[], object]
    if backend == "ort":
        from devices.ort_runtime import OrtReconfigurableModel

        ort_model = OrtReconfigurableModel.from_artifact(art, threads=threads)
        switch, infer = ort_model.switch, lambda: ort_model.run(feeds)
    elif backend == "torch":
        import torch

        from testbed.rt3.export import load_torch
        from testbed.rt3.runtime import ReconfigurableModel

        torch.set_num_threads(threads)
        model, masks, _ = load_torch(art)
        rm = ReconfigurableModel.from_backbone(model, masks)
        args = [torch.from_numpy(v) for v in feeds.values()]
        switch, infer = rm.switch, lambda: rm(*args)
    else:
        raise BadInputError(f"unknown --backend {backend!r}; choose ort or torch")
    rows = []
    switch_ms = []
    for s in art.pattern_sets:
        switch_ms.append(switch(int(s["index"])))
        infer()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            infer()
            times.append((time.perf_counter() - t0) * 1e3)
        rows.append(
            {
                "index": s["index"],
                "name": s["name"],
                "sparsity": s["sparsity"],
                "accuracy": s.get("accuracy"),
                "latency_ms_p50": statistics.median(times),
                "latency_ms_min": min(times),
            }
        )
    out = {
        "backend": backend,
        "batch": batch,
        "seq": seq,
        "threads": threads,
        "pattern_sets": rows,
        "switch_ms_max": max(switch_ms),
    }
    _report(
        out,
        json_out,
        [f"[{r['index']}] {r['name']}: sparsity {r['sparsity']:.3f}, p50 {r['latency_ms_p50']:.3f} ms" for r in rows]
        + [f"switch: max {max(switch_ms):.4f} ms"],
    )


@bench_app.command("switch")
def bench_switch(
    json_out: JsonOpt = False, quick: Annotated[bool, typer.Option(help="Fewer switches.")] = False
) -> None:
    """Switch time of a DistilBERT-sized backbone with 3 pattern sets (p50/p99 ms; RT3's paper: 45 ms)."""
    from testbed.bench.bench_runtime import switch_benchmark, switch_criteria

    res = switch_benchmark(quick=quick)
    res["criteria"] = switch_criteria(res)
    _report(
        res,
        json_out,
        [
            f"warm switch p50 {res['p50_ms']:.4f} ms, p99 {res['p99_ms']:.4f} ms over "
            f"{res['switches']} switches, {res['pattern_sets']} sets (paper: 45 ms)",
            f"cold switch (onnxruntime session) p50 {res['cold_switch_ms_p50']:.1f} ms, "
            f"torch packing p50 {res['torch']['cold_switch_ms_p50']:.1f} ms",
            f"first inference after a switch p50 {res['first_inference_after_switch_ms_p50']:.1f} ms "
            f"(steady {res['steady_inference_ms_p50']:.1f} ms)",
            f"DVFS transition (emulated board) p50 {res['dvfs_transition_ms_p50']:.2f} ms, "
            f"RT3 mask re-application p50 {res['mask_reapply_ms_p50']:.1f} ms",
            f"resident {res['resident_mb']:.0f} MB for {res['pattern_sets']} sets vs dense {res['dense_mb']:.0f} MB",
            *_verdicts(res["criteria"]),
        ],
    )


def _verdicts(criteria: list[dict[str, Any]]) -> list[str]:
    """One PASS/FAIL line per benchmark criterion (INVALID: the host could not give the measurement its cores)."""
    return [
        f"{'PASS' if c['passed'] else 'INVALID' if c.get('valid') is False else 'FAIL'} {c['criterion']}: "
        f"{c['value']} (needs {c['threshold']})"
        for c in criteria
    ]


@bench_app.command("sparse")
def bench_sparse(
    json_out: JsonOpt = False, quick: Annotated[bool, typer.Option(help="Fewer repetitions.")] = False
) -> None:
    """Latency of packed pattern sets vs dense, mask-multiply, CSR and BSR, measured in the same run
    (progress on stderr)."""
    from testbed.bench.bench_runtime import sparse_benchmark

    res = sparse_benchmark(quick=quick)
    lines = [
        f"row-block {r['row_block']}, sparsity {r['sparsity']:.2f}: encoder speedup {r['speedup']:.2f}×, "
        f"layer {r['layer_speedup']:.2f}× (ideal {r['ideal']:.2f}×; 2 threads {r['layer_speedup_2t']:.2f}×)"
        for r in res["results"]
    ]
    judged = f"criteria judged at row block {res['row_block']} (the measured table's choice; 128 reported beside it)"
    _report(res, json_out, [*lines, judged, *_verdicts(res["criteria"])])


def _task_for(ck: Any) -> tuple[Any, Any]:
    from testbed.rt3.tasks import build_task

    spec = ck.description.get("spec") or {}
    tokenizer = spec.get("path") if ck.description.get("family") == "hf" else None
    return build_task(ck.data, vocab=ck.vocab, tokenizer_dir=tokenizer)
