"""``testbed profile``: measure a profile table through a device agent, or sweep a design space.

Light at import time; the agent client and the profiler are imported inside the command.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from devices.errors import BadInputError
from testbed.cli.common import JsonOpt, StepProgress, console, plural, print_json

if TYPE_CHECKING:
    from testbed.agent.pool import PooledAgent


@contextlib.contextmanager
def agent_session(agent: str | None, token_file: Path | None, emulate: str | None) -> Iterator[PooledAgent]:
    """A leased agent at ``agent``, or at a fresh emulated agent (``emulate`` names its board profile)."""
    from testbed.agent.client import read_token
    from testbed.agent.pool import AgentEndpoint, AgentPool

    if (agent is None) == (emulate is None):
        raise BadInputError("give exactly one of --agent URL and --emulate PROFILE")
    if agent is not None:
        with AgentPool([AgentEndpoint(agent, read_token(token_file))], "testbed-profile") as pool:
            yield pool.first()
        return
    from testbed.agent.launch import start_local_agent

    assert emulate is not None
    with tempfile.TemporaryDirectory(prefix="testbed-profile-") as d:
        local = start_local_agent(Path(d), emulate)
        try:
            with AgentPool([AgentEndpoint(local.url, local.token)], "testbed-profile") as pool:
                yield pool.first()
        finally:
            local.stop()


def profile_cmd(
    out: Annotated[Path, typer.Option("--out", help="Profile CSV to write (or the sweep CSV with --sweep).")],
    artifact: Annotated[
        list[Path] | None,
        typer.Option("--artifact", help="Model artifact (.rt3, .onnx, dir); repeat to profile several together."),
    ] = None,
    agent: Annotated[str | None, typer.Option("--agent", help="Agent URL, e.g. http://127.0.0.1:8765.")] = None,
    token_file: Annotated[Path | None, typer.Option("--token-file", help="The agent's token file.")] = None,
    emulate: Annotated[str | None, typer.Option("--emulate", help="Start an emulated agent for this board.")] = None,
    window_s: Annotated[float, typer.Option("--window-s", help="Seconds per measurement window.")] = 1.0,
    rel_ci: Annotated[float, typer.Option("--rel-ci", help="Target 95% CI half-width, relative.")] = 0.05,
    min_reps: Annotated[int, typer.Option("--min-reps", help="Repetitions at least.")] = 3,
    max_reps: Annotated[int, typer.Option("--max-reps", help="Repetition cap.")] = 10,
    levels: Annotated[str | None, typer.Option("--levels", help="Comma-separated levels (default all).")] = None,
    sets: Annotated[str | None, typer.Option("--sets", help="Comma-separated pattern sets (default all).")] = None,
    interleave: Annotated[
        str, typer.Option("--interleave", help="levels: each round visits every level; sets: level by level.")
    ] = "levels",
    sweep: Annotated[int, typer.Option("--sweep", help="Sweep N Latin-hypercube model configurations.")] = 0,
    seed: Annotated[int, typer.Option("--seed", help="Sweep sampling seed.")] = 0,
    json_out: JsonOpt = False,
) -> None:
    """Profile every pattern set × frequency level through an agent (or, with --sweep, a design space)."""
    if not (window_s > 0 and 0 < rel_ci < 1 and 2 <= min_reps <= max_reps):
        raise BadInputError("need --window-s > 0, 0 < --rel-ci < 1 and 2 ≤ --min-reps ≤ --max-reps")
    if sweep:
        from testbed.experiment.sweep import run_sweep

        if artifact:
            raise BadInputError("--sweep builds its own models; do not pass --artifact")
        with agent_session(agent, token_file, emulate) as board:
            report = run_sweep(
                board.agent, sweep, out, seed=seed, window_s=window_s, local=board.local, progress=_say(json_out)
            )
        if json_out:
            print_json(report)
        else:
            console.print(f"wrote {out} ({report['measurements']} measurements) and {report['predictor']}")
            for target, err in report["held_out"].items():
                console.print(
                    f"  held-out {target}: MAPE {err['mape']:.1%}, 90% interval coverage {err['coverage']:.0%}"
                )
        return
    if not artifact:
        raise BadInputError("give --artifact FILE (or --sweep N)")
    for path in artifact:
        if not path.exists():
            raise BadInputError(f"{path}: no such artifact")
    from testbed.experiment.profiler import ProfiledModel, ProfileOptions, artifact_metadata, profile_models

    opts = ProfileOptions(
        window_s=window_s, min_reps=min_reps, max_reps=max_reps, rel_ci=rel_ci,
        levels=tuple(levels.split(",")) if levels else None, pattern_sets=tuple(sets.split(",")) if sets else None,
        interleave=interleave,
    )  # fmt: skip
    from testbed.agent.loading import load_on_agent

    say = _say(json_out)
    if emulate is not None:
        say(f"starting an emulated {emulate} agent …")
    with agent_session(agent, token_file, emulate) as board:
        models: list[ProfiledModel] = []
        for path in artifact:
            say(f"loading {path} on the agent …")
            loaded = load_on_agent(board.agent, path, board.local)
            names = [ps["name"] for ps in loaded["pattern_sets"]]
            clash = sorted(set(names) & {n for m in models for n in m.pattern_sets})
            if clash:
                raise BadInputError(f"{path}: pattern set(s) {', '.join(clash)} also in an earlier --artifact")
            models.append(ProfiledModel(loaded["model_id"], names, artifact_metadata(path)))
        all_names = [n for m in models for n in m.pattern_sets]
        n_levels = len(opts.levels) if opts.levels else len(board.agent.info().get("levels", []))
        steps = StepProgress(n_levels * len(opts.pattern_sets or all_names), quiet=json_out)
        table = profile_models(board.agent, models, opts, progress=lambda lv, ps: steps.step(f"{ps} at {lv}"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(table.to_csv())
    from testbed.experiment.quality import assess

    rows = [r.__dict__ for r in table.rows.values()]
    quality = assess(table)
    if json_out:
        print_json({"out": str(out), "meta": table.meta, "quality": quality.to_dict(), "rows": rows})
    else:
        flagged = sum(r["throttled"] for r in rows)
        console.print(f"wrote {out}: {plural(len(rows), 'row')}, {flagged} flagged throttled")
        console.print(f"profile quality: {quality.verdict()} ({quality.provenance()})", highlight=False)


def _say(quiet: bool) -> Callable[[str], None]:
    def say(msg: str) -> None:
        if not quiet:
            console.print(msg, highlight=False)

    return say
