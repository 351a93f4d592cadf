"""An artifact, a planning profile and a hil experiment for board-farm tests against emulated agents."""

from __future__ import annotations

import json
from pathlib import Path

from devices.agent.runner import sha256_file
from testbed.experiment.sweep import ModelConfig, write_encoder_onnx
from traces.profile import ProfileRow, build_table


def artifact(d: Path) -> Path:
    """Two pattern sets of one interface: a wide FFN ("dense") and a narrow one ("sparse")."""
    d.mkdir(parents=True)
    entries = []
    for name, ffn, sp, acc in (("dense", 256, 0.0, 0.91), ("sparse", 64, 0.75, 0.89)):
        f = write_encoder_onnx(ModelConfig(1, 64, 2, ffn), d / f"{name}.onnx")
        entries.append({"name": name, "file": f.name, "sha256": sha256_file(f), "sparsity": sp, "accuracy": acc})
    (d / "manifest.json").write_text(json.dumps({"format": "rt3-onnx/1", "pattern_sets": entries}))
    return d


def planning_table(path: Path) -> Path:
    """A planning profile (rpi4 levels) with the artifact's set names."""
    rows = []
    for lv, f in (("f1500", 1_500_000), ("f1000", 1_000_000), ("f750", 750_000), ("f600", 600_000)):
        for ps, sp, acc, ms in (("dense", 0.0, 0.91, 6.0e6 / f), ("sparse", 0.75, 0.89, 2.0e6 / f)):
            rows.append(ProfileRow(ps, lv, f, sp, acc, ms, ms, ms, 0.01, 4.0, 4.0, 3.0))
    path.write_text(build_table(rows, {"source": "test planning table"}).to_csv())
    return path


def hil_experiment(tmp_path: Path, urls: list[str], token: Path, art: Path) -> Path:
    """A real-time hil experiment on rpi4 boards with a 3-J battery (a few windows per strategy)."""
    exp = tmp_path / "hil.toml"
    exp.write_text(f"""
name = "farm"
mode = "hil"
strategies = ["dense-max", "rt3"]
[board]
profile = "rpi4"
agents = {json.dumps(urls)}
token_file = "{token}"
[profile]
table = "{planning_table(tmp_path / "plan.csv")}"
[artifact]
path = "{art}"
[requests]
period_ms = 25.0
deadline_ms = 5.0
[battery]
model = "bucket"
energy_j = 3.0
record_interval_s = 1.0
[policy]
thresholds = [0.5, 0.2]
levels = ["f1500", "f1000", "f600"]
[strategy]
switch_ms = 1.0
[hil]
compress = false
inferences_per_level = 4
warmup = 1
""")
    return exp
