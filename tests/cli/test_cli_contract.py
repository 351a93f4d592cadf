"""The CLI contract on the defects a new user hit: one line, exit 2, nothing created; runtime failures exit 1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import CliResult


def one_line(res: CliResult, code: int, fragment: str) -> None:
    assert res.code == code, (res.out, res.err)
    lines = res.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], res.err
    assert "Usage:" not in res.err + res.out and "Traceback" not in res.err


def test_version(cli: Callable[..., CliResult]) -> None:
    from testbed import __version__

    res = cli("--version")
    assert res.code == 0 and res.out.strip() == f"testbed {__version__}"


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["board", "info", "--bogus"], "No such option: --bogus"),
        (["board", "emulate", "rpi4", "--root", "{tmp}/x", "--hw-cap-khz", "-100"], "--hw-cap-khz"),
        (["rt3", "train", "--out", "{tmp}/lm", "--epochs", "-1"], "--epochs"),
        (["agent", "serve", "--port", "99999"], "--port"),
        (["nosuch"], "No such command"),
    ],
)
def test_usage_errors_are_one_line(
    args: list[str], fragment: str, tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    res = cli(*[a.replace("{tmp}", str(tmp_path)) for a in args])
    one_line(res, 2, fragment)
    assert list(tmp_path.iterdir()) == []  # nothing created


def test_bool_flags_show_no_type(tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, "-m", "testbed", "board", "info", "--help"], capture_output=True,
                         text=True, env={**os.environ, "COLUMNS": "120"}, check=True)  # fmt: skip
    assert "--json" in res.stdout and "<bool>" not in res.stdout


def test_agent_bad_url_and_missing_upload(tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    one_line(cli("agent", "info", "ftp://example.org"), 2, "expected http://HOST:PORT")
    one_line(
        cli("agent", "measure", "http://127.0.0.1:9", "--model", tmp_path / "nosuch.onnx", "--upload"),
        2,
        "no such file",
    )


def test_agent_serve_bad_profile_creates_no_token(tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    token = tmp_path / "token"
    one_line(cli("agent", "serve", "--emulate", "nosuch", "--token-file", token), 2, "nosuch")
    one_line(cli("agent", "serve", "--board", "rpi9", "--token-file", token), 2, "rpi9")
    assert not token.exists()


def test_unknown_board_profile_in_an_experiment(tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    exp = tmp_path / "e.toml"
    exp.write_text(
        'name = "x"\n[board]\nprofile = "rpi9"\n[requests]\nperiod_ms = 200.0\ndeadline_ms = 115.0\n'
        '[battery]\nmodel = "bucket"\nenergy_j = 100.0\n'
    )
    one_line(cli("run", exp, "--out", tmp_path / "run"), 2, "board.profile: unknown board profile 'rpi9'")
    assert not (tmp_path / "run").exists()


def test_cell_whose_ocv_never_reaches_the_cutoff(tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    cell = tmp_path / "cell.toml"
    cell.write_text(
        "capacity_ah = 2.0\nv_cutoff_v = 3.0\nv_max_v = 4.2\nr0_ohm = 0.05\nocv = [[0.0, 2.5], [1.0, 2.9]]\n"
    )
    one_line(cli("battery", "simulate", "--cell", cell, "--constant-power-w", "2"), 2, "not above v_cutoff_v")


def test_report_unknown_baseline_writes_nothing(tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    from tests.cli.test_watch import _rows, _writer

    run = tmp_path / "run"
    store = _writer(run)
    _rows(store, "dense-max", 1.0, 0.5, 3)
    store.close()
    one_line(cli("report", run, "--out", tmp_path / "paper", "--baseline", "nosuch"), 2, "--baseline 'nosuch'")
    assert not (tmp_path / "paper").exists()


def test_runs_list_has_a_header(tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    from tests.cli.test_watch import _writer

    _writer(tmp_path / "r1").close()
    out = cli("runs", "list", tmp_path).out.splitlines()
    assert out[0].split()[:3] == ["run", "created", "(UTC)"] and str(tmp_path / "r1") in out[1]


def test_step_progress_counts_and_estimates() -> None:
    from testbed.cli.common import StepProgress, plural

    now = [0.0]
    p = StepProgress(4, quiet=True, clock=lambda: now[0])
    assert p.line("a") == "[1/4] a (elapsed 0:00)"
    now[0] = 10.0
    assert p.line("b") == "[2/4] b (elapsed 0:10, ETA 0:30)"
    p.done = 4
    assert p.line("again").startswith("[+1] again")
    assert plural(1, "row") == "1 row" and plural(2, "row") == "2 rows"


def test_cli_releases_its_lease_when_the_agent_fails(tmp_path: Path) -> None:
    """A model that fails at run time (a reshape its input cannot take): the next command is not refused."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from tests.agent.conftest import start_agent

    shape = numpy_helper.from_array(np.array([-1, 7], dtype=np.int64), "shape")
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["y"])], "bad",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["rows", 7])], [shape],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "bad.onnx")
    agent = start_agent(tmp_path)
    try:
        env = {**os.environ, "TESTBED_AGENT_TOKEN": agent.token}
        cmd = [sys.executable, "-m", "testbed", "agent", "measure", agent.url, "--model", str(tmp_path / "bad.onnx"),
               "--upload", "--inferences", "3"]  # fmt: skip
        first = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False, timeout=120)
        assert first.returncode in (1, 2) and first.stderr.startswith("error: "), first.stderr
        t0 = time.monotonic()
        info = subprocess.run([sys.executable, "-m", "testbed", "agent", "info", agent.url, "--json"],
                              capture_output=True, text=True, env=env, check=True, timeout=60)  # fmt: skip
        assert json.loads(info.stdout)["lease"] is None, "the failed command kept the board's lease"
        assert time.monotonic() - t0 < 30
    finally:
        agent.stop()
