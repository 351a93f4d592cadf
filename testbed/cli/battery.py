"""`testbed battery …`: the battery models (by name, from the registry), RT3's accounting, cells, PyBaMM cross-check.

``rt3-accounting`` counts RT3's inference runs (``bucket`` is its old name, still accepted); ``simulate``
runs any registered model (``testbed battery models``) on a power trace.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from devices.errors import BadInputError
from testbed.cli.common import JsonOpt, console, print_json

if TYPE_CHECKING:
    from testbed.battery.simulate import SimResult
    from traces.power import PowerTrace

app = typer.Typer(
    help="Battery models: RT3's accounting, an energy bucket and a Thevenin equivalent-circuit model.",
    no_args_is_help=True,
)


def _floats(option: str, text: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise BadInputError(f"{option} must be comma-separated numbers, got {text!r}") from None
    if not values:
        raise BadInputError(f"{option} is empty")
    return values


@app.command("models")
def models(json_out: JsonOpt = False) -> None:
    """List the battery models that `simulate --model` and experiment files accept."""
    from testbed.battery import registry

    specs = [registry.spec(n) for n in registry.names()]
    aliases = {s.name: registry.MODELS.aliases_of(s.name) for s in specs}
    if json_out:
        print_json(
            [
                {"name": s.name, "aliases": aliases[s.name], "sized_by": list(s.sized_by), "voltage": s.voltage,
                 "summary": s.summary}
                for s in specs
            ]
        )  # fmt: skip
        return
    for s in specs:
        alias = f" (alias {', '.join(aliases[s.name])})" if aliases[s.name] else ""
        console.print(f"{s.name}{alias}: {s.summary}", highlight=False, soft_wrap=True)


@app.command("rt3-accounting")
@app.command("bucket", hidden=True, help="Deprecated name of `battery rt3-accounting` (RT3's accounting).")
def rt3_accounting(
    energy_j: Annotated[float, typer.Option("--energy-j", help="Battery energy in J (RT3: 37800).")],
    latency_ms: Annotated[str, typer.Option("--latency-ms", help="Inference latency per level, ms: L1,L2,L3.")],
    split: Annotated[str, typer.Option("--split", help="Energy share per level, high → low.")] = "0.5,0.3,0.2",
    freq_ghz: Annotated[str, typer.Option("--freq-ghz", help="Frequency per level, GHz.")] = "1.4,1.0,0.8",
    volt: Annotated[str, typer.Option("--volt", help="Voltage per level, V.")] = "1.24,1.06625,0.9925",
    json_out: JsonOpt = False,
) -> None:
    """RT3's accounting: inference runs an ideal energy bucket affords (runs = Σ ⌊usage_time / latency⌋)."""
    from testbed.battery.rt3_accounting import rt3_runs

    result = rt3_runs(
        energy_j,
        _floats("--split", split),
        _floats("--freq-ghz", freq_ghz),
        _floats("--volt", volt),
        _floats("--latency-ms", latency_ms),
    )
    if json_out:
        print_json(result.to_dict())
        return
    console.print(f"runs: {result.runs}", highlight=False, soft_wrap=True)
    console.print(f"runs_per_level: {','.join(str(r) for r in result.runs_per_level)}", highlight=False, soft_wrap=True)
    for k, (p, u) in enumerate(zip(result.power_w, result.usage_time_ms, strict=True)):
        console.print(f"  level {k}: power {p:.6g} W, usage time {u / 1000:.6g} s", highlight=False, soft_wrap=True)


CellOpt = Annotated[str, typer.Option("--cell", help="Bundled cell name (see `battery cells`) or a TOML file.")]
PowerTraceOpt = Annotated[
    Path | None, typer.Option("--power-trace", help="Power trace CSV (t_s,power_w), repeated until the end.")
]
ConstantOpt = Annotated[float | None, typer.Option("--constant-power-w", help="A constant load in W instead.")]


def _load(power_trace: Path | None, constant_power_w: float | None) -> PowerTrace:
    from traces.power import constant_power, read_power

    if (power_trace is None) == (constant_power_w is None):
        raise BadInputError("give exactly one of --power-trace FILE or --constant-power-w P")
    if power_trace is not None:
        return read_power(power_trace)
    assert constant_power_w is not None
    if not (math.isfinite(constant_power_w) and constant_power_w > 0):
        raise BadInputError(f"--constant-power-w must be a positive number of watts, got {constant_power_w}")
    return constant_power(constant_power_w)


@app.command("simulate")
def simulate_cmd(
    cell: CellOpt,
    power_trace: PowerTraceOpt = None,
    constant_power_w: ConstantOpt = None,
    model: Annotated[
        str, typer.Option("--model", help="A battery model (see `battery models`): ecm, energy-bucket, rt3-accounting.")
    ] = "ecm",
    soc0: Annotated[float, typer.Option("--soc0", help="Initial state of charge, 0–1.")] = 1.0,
    static_power_w: Annotated[float, typer.Option("--static-power-w", help="Extra constant draw, W.")] = 0.0,
    efficiency: Annotated[
        float, typer.Option("--efficiency", help="Converter efficiency between battery and load, 0–1.")
    ] = 1.0,
    max_step_s: Annotated[float, typer.Option("--max-step-s", help="Longest simulation step, s.")] = 1.0,
    trajectory_out: Annotated[
        Path | None, typer.Option("--trajectory-out", help="ecm: write the discharge as a battery trace CSV.")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Battery life of a cell under a power trace (repeated until the battery ends) or a constant load."""
    from testbed.battery import registry
    from testbed.battery.cell import load_cell
    from testbed.battery.simulate import simulate

    if not registry.is_known(model):
        raise BadInputError(f"unknown --model {model!r}; use one of {registry.known()}")
    spec = registry.spec(model)
    if trajectory_out is not None and not spec.voltage:
        raise BadInputError(f"--trajectory-out needs a model with a terminal voltage (ecm), not {model}")
    c = load_cell(cell)
    trace = _load(power_trace, constant_power_w)
    result = simulate(
        c,
        trace,
        model=model,
        soc0=soc0,
        static_power_w=static_power_w,
        efficiency=efficiency,
        max_step_s=max_step_s,
        record=trajectory_out is not None,
    )
    if trajectory_out is not None:
        _write_trajectory(result, spec.name, c.name, trajectory_out)
    data = {"cell": c.name, **result.to_dict()}
    if json_out:
        print_json(data)
        return
    console.print(
        f"{c.name} ({model}): life {result.life_s:.1f} s ({result.life_s / 3600:.3f} h), end: {result.end_reason}, "
        f"SoC at end {result.soc_end:.4f}, energy delivered {result.energy_delivered_j:.1f} J",
        highlight=False,
        soft_wrap=True,
    )


def _write_trajectory(result: SimResult, model: str, cell_name: str, path: Path) -> None:
    import numpy as np

    from traces.battery import BatteryTrace, write_battery

    traj = result.trajectory
    assert traj is not None
    t = np.array(traj["t_s"])
    v = np.array(traj["voltage_v"])
    i = np.array(traj["current_a"])
    write_battery(
        BatteryTrace(
            t_s=t,
            voltage_v=v,
            current_a=i,
            power_w=v * i,
            soc=np.clip(np.array(traj["soc"]), 0.0, 1.0),
            temp_c=np.full(len(t), np.nan),
            meta={
                "source": "sim",
                "label": "synthetic",
                "model": model,
                "cell": cell_name,
                "end_reason": result.end_reason,
            },
        ),
        path,
    )


@app.command("cells")
def cells(
    name: Annotated[str | None, typer.Argument(help="Show one cell (name or TOML path) with its sources.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """List the bundled cells, or show one with the source of each number."""
    from testbed.battery.cell import bundled_cells, load_cell

    loaded = [load_cell(n) for n in ([name] if name else bundled_cells())]
    if json_out:
        print_json([c.to_dict() for c in loaded] if name is None else loaded[0].to_dict())
        return
    for c in loaded:
        console.print(
            f"{c.name}: {c.capacity_ah} Ah, {c.energy_j() / 3600:.2f} Wh, cut-off {c.v_cutoff_v} V, "
            f"R0 {c.r0_ohm} Ω, {len(c.rc)} RC — {c.description}",
            highlight=False,
            soft_wrap=True,
        )
        if name:
            for key, src in c.sources.items():
                console.print(f"  {key}: {src}", highlight=False, soft_wrap=True)


@app.command("crosscheck")
def crosscheck_cmd(
    cell: CellOpt,
    power_trace: PowerTraceOpt = None,
    constant_power_w: ConstantOpt = None,
    soc0: Annotated[float, typer.Option("--soc0", help="Initial SoC (PyBaMM rejects 1.0).")] = 0.99,
    json_out: JsonOpt = False,
) -> None:
    """Compare the ECM's battery life with PyBaMM's Thevenin model (needs `pip install pybamm`)."""
    from testbed.battery.cell import load_cell
    from testbed.battery.crosscheck import crosscheck

    c = load_cell(cell)
    trace = _load(power_trace, constant_power_w)
    with console.status("solving with PyBaMM …"):
        result = crosscheck(c, trace, soc0=soc0)
    if json_out:
        print_json(result.to_dict())
        return
    console.print(
        f"ECM {result.ecm_life_s:.1f} s ({result.ecm_end_reason}), PyBaMM {result.pybamm_life_s:.1f} s: "
        f"difference {100 * result.relative_difference:+.3f} %",
        highlight=False,
        soft_wrap=True,
    )
