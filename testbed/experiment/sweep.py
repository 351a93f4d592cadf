"""Design-space sweep (ProTran-style): Latin-hypercube model configurations measured through an agent,
and a latency / energy / peak-power predictor with an uncertainty estimate and a held-out error.

Design space: ``layers`` × ``hidden`` × ``heads`` × ``ffn`` × frequency level, sampled with a Latin
hypercube (each dimension cut into N strata, one sample per stratum, strata paired by random
permutations). Each sample is built as a real ONNX Transformer encoder (multi-head self-attention +
ReLU FFN, residuals; sequence length ``SEQ_LEN``), loaded on the agent and measured at its level.

Predictor: a bootstrap ensemble of ridge regressions on physically motivated features
(``log FLOPs``, ``log f``, ``log params``, ``layers``, ``log heads``); log-latency and log-energy
are predicted, peak power linearly. The uncertainty is the ensemble spread combined with the residual
spread; the held-out report gives the mean absolute percentage error and how often the measured
value fell inside the 90 % interval, on a split the predictor never saw.

Outputs: ``OUT`` (CSV: one row per measured configuration) and ``OUT.predictor.json``.
"""

from __future__ import annotations

import csv
import json
import math
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from devices.errors import BadInputError
from testbed.agent.api import AgentAPI
from testbed.agent.loading import load_on_agent

LAYERS = (1, 2, 3, 4)
HIDDEN = (64, 128, 192, 256)
HEADS = (1, 2, 4, 8)
FFN = (128, 256, 512, 1024)
SEQ_LEN = 32
FEATURES = ("bias", "log_flops", "log_freq", "log_params", "layers", "log_heads")
TARGETS = ("latency_ms", "energy_j", "peak_power_w")
Z90 = 1.645


@dataclass(frozen=True)
class ModelConfig:
    layers: int
    hidden: int
    heads: int
    ffn: int

    def flops(self) -> float:
        """Multiply-accumulates ×2 of one forward pass at ``SEQ_LEN`` tokens."""
        s, h, f = SEQ_LEN, self.hidden, self.ffn
        per_layer = 4 * s * h * h + 2 * s * s * h + 2 * s * h * f
        return 2.0 * self.layers * per_layer

    def params(self) -> float:
        return float(self.layers * (4 * self.hidden * self.hidden + 2 * self.hidden * self.ffn))


def latin_hypercube(n: int, dims: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` points in [0, 1)^dims, one per stratum in every dimension."""
    if n < 1:
        raise BadInputError(f"--sweep needs at least one sample, got {n}")
    u = (rng.random((n, dims)) + np.arange(n)[:, None]) / n
    for d in range(dims):
        u[:, d] = u[rng.permutation(n), d]
    return u


def sample_configs(n: int, levels: list[str], seed: int) -> list[tuple[ModelConfig, str]]:
    """``n`` (configuration, level) pairs by Latin hypercube; heads are clipped to divide ``hidden``."""
    u = latin_hypercube(n, 5, np.random.default_rng(seed))
    out = []
    for row in u:
        layers = LAYERS[int(row[0] * len(LAYERS))]
        hidden = HIDDEN[int(row[1] * len(HIDDEN))]
        heads = HEADS[int(row[2] * len(HEADS))]
        while hidden % heads:
            heads //= 2
        ffn = FFN[int(row[3] * len(FFN))]
        out.append((ModelConfig(layers, hidden, heads, ffn), levels[int(row[4] * len(levels))]))
    return out


def write_encoder_onnx(cfg: ModelConfig, path: Path, seed: int = 0) -> Path:
    """A real ONNX Transformer encoder of ``cfg`` (float32, input ``x`` [SEQ_LEN, hidden])."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    h, nh, s = cfg.hidden, cfg.heads, SEQ_LEN
    d = h // nh
    nodes: list[Any] = []
    inits: list[Any] = []

    def weight(name: str, shape: tuple[int, ...]) -> str:
        inits.append(
            numpy_helper.from_array((rng.standard_normal(shape) / math.sqrt(shape[0])).astype(np.float32), name)
        )
        return name

    def const(name: str, values: list[int]) -> str:
        inits.append(numpy_helper.from_array(np.array(values, dtype=np.int64), name))
        return name

    heads_shape = const("heads_shape", [s, nh, d])
    flat_shape = const("flat_shape", [s, h])
    inits.append(numpy_helper.from_array(np.array(1.0 / math.sqrt(d), dtype=np.float32), "scale"))
    x = "x"
    for i in range(cfg.layers):
        p = f"l{i}_"
        heads_out = {}
        for n in ("q", "k", "v"):
            nodes.append(helper.make_node("MatMul", [x, weight(p + "w" + n, (h, h))], [p + n]))
            nodes.append(helper.make_node("Reshape", [p + n, heads_shape], [p + n + "_r"]))
            perm = [1, 2, 0] if n == "k" else [1, 0, 2]
            nodes.append(helper.make_node("Transpose", [p + n + "_r"], [p + n + "_t"], perm=perm))
            heads_out[n] = p + n + "_t"
        nodes += [
            helper.make_node("MatMul", [heads_out["q"], heads_out["k"]], [p + "scores"]),
            helper.make_node("Mul", [p + "scores", "scale"], [p + "scaled"]),
            helper.make_node("Softmax", [p + "scaled"], [p + "attn"], axis=-1),
            helper.make_node("MatMul", [p + "attn", heads_out["v"]], [p + "ctx"]),
            helper.make_node("Transpose", [p + "ctx"], [p + "ctx_t"], perm=[1, 0, 2]),
            helper.make_node("Reshape", [p + "ctx_t", flat_shape], [p + "ctx_f"]),
            helper.make_node("MatMul", [p + "ctx_f", weight(p + "wo", (h, h))], [p + "o"]),
            helper.make_node("Add", [x, p + "o"], [p + "res1"]),
            helper.make_node("MatMul", [p + "res1", weight(p + "w1", (h, cfg.ffn))], [p + "f1"]),
            helper.make_node("Relu", [p + "f1"], [p + "f1r"]),
            helper.make_node("MatMul", [p + "f1r", weight(p + "w2", (cfg.ffn, h))], [p + "f2"]),
            helper.make_node("Add", [p + "res1", p + "f2"], [p + "out"]),
        ]
        x = p + "out"
    graph = helper.make_graph(
        nodes, "encoder",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [s, h])],
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, [s, h])],
        inits,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def features(cfg: ModelConfig, freq_khz: float) -> list[float]:
    """The predictor's feature vector (see :data:`FEATURES`)."""
    return [1.0, math.log(cfg.flops()), math.log(freq_khz), math.log(cfg.params()), float(cfg.layers),
            math.log(cfg.heads)]  # fmt: skip


@dataclass
class Predictor:
    """Bootstrap ridge ensemble per target: ``coefs[target]`` is (members × features)."""

    coefs: dict[str, list[list[float]]]
    resid_std: dict[str, float]
    log_target: dict[str, bool]
    ridge: float = 1e-3

    @classmethod
    def fit(cls, x: np.ndarray, ys: dict[str, np.ndarray], members: int = 50, seed: int = 0) -> Predictor:
        """Fit every target on ``x`` (rows × FEATURES); needs at least as many rows as features."""
        if len(x) < x.shape[1]:
            raise BadInputError(f"the predictor needs at least {x.shape[1]} measurements, got {len(x)}")
        rng = np.random.default_rng(seed)
        coefs: dict[str, list[list[float]]] = {}
        resid: dict[str, float] = {}
        logs = {t: t != "peak_power_w" for t in ys}
        for t, y in ys.items():
            yt = np.log(y) if logs[t] else y
            ms = []
            for _ in range(members):
                idx = rng.integers(0, len(x), len(x))
                ms.append(_ridge(x[idx], yt[idx], 1e-3))
            coefs[t] = [m.tolist() for m in ms]
            full = _ridge(x, yt, 1e-3)
            dof = max(len(x) - x.shape[1], 1)
            resid[t] = float(np.sqrt(np.sum((x @ full - yt) ** 2) / dof))
        return cls(coefs, resid, logs)

    def predict(self, x: np.ndarray, target: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(mean, low, high) of the 90 % interval for rows of ``x``, in the target's units."""
        c = np.asarray(self.coefs[target])
        preds = x @ c.T  # rows × members
        mu = preds.mean(axis=1)
        sd = np.sqrt(preds.var(axis=1) + self.resid_std[target] ** 2)
        lo, hi = mu - Z90 * sd, mu + Z90 * sd
        if self.log_target[target]:
            return np.exp(mu), np.exp(lo), np.exp(hi)
        return mu, lo, hi

    def to_json(self) -> dict[str, Any]:
        return {"features": list(FEATURES), "seq_len": SEQ_LEN, **asdict(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Predictor:
        return cls(data["coefs"], data["resid_std"], data["log_target"], data.get("ridge", 1e-3))


def _ridge(x: np.ndarray, y: np.ndarray, lam: float) -> np.ndarray:
    reg = lam * np.eye(x.shape[1])
    reg[0, 0] = 0.0
    return np.linalg.solve(x.T @ x + reg, x.T @ y)


def held_out_error(pred: Predictor, x: np.ndarray, ys: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """MAPE and 90 %-interval coverage per target on rows the predictor was not fitted on."""
    out = {}
    for t, y in ys.items():
        mu, lo, hi = pred.predict(x, t)
        out[t] = {
            "mape": float(np.mean(np.abs(mu - y) / np.abs(y))),
            "coverage": float(np.mean((y >= lo) & (y <= hi))),
            "n": len(y),
        }
    return out


def run_sweep(
    client: AgentAPI,
    n: int,
    out: Path,
    *,
    seed: int = 0,
    window_s: float = 0.5,
    local: bool = True,
    test_fraction: float = 0.25,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Measure ``n`` sampled configurations through ``client``, fit and evaluate the predictor."""
    if n < 2 * len(FEATURES):
        raise BadInputError(f"--sweep needs at least {2 * len(FEATURES)} samples to fit and hold out, got {n}")
    info = client.info()
    levels = {lv["name"]: int(next(iter(lv["freq_khz"].values()))) for lv in info.get("levels", [])}
    if not levels:
        raise BadInputError("the agent reports no frequency levels")
    samples = sample_configs(n, list(levels), seed)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="testbed-sweep-") as d:
        for k, (cfg, level) in enumerate(samples):
            if progress is not None:
                progress(f"[{k + 1}/{n}] {cfg} at {level}")
            path = write_encoder_onnx(cfg, Path(d) / f"m{k}.onnx", seed=k)
            loaded = load_on_agent(client, path, local)  # by path, or uploaded when outside the models directory
            pilot = client.measure(loaded["model_id"], inferences=3, warmup=2, level=level)
            count = max(5, min(10_000, math.ceil(window_s * 1000.0 / max(pilot["latency"]["mean_ms"], 1e-3))))
            m = client.measure(loaded["model_id"], inferences=count, warmup=2, level=level)
            client.unload_model(loaded["model_id"])
            e = m.get("energy") or {}
            if m.get("energy_per_inference_j") is None:
                raise BadInputError("the agent has no power meter: cannot sweep energy")
            throttled = int(bool(m.get("throttled_during") or m.get("frequency_changed_during")))
            rows.append({**asdict(cfg), "level": level, "freq_khz": levels[level], "flops": cfg.flops(),
                         "latency_ms": m["latency"]["mean_ms"], "energy_j": m["energy_per_inference_j"],
                         "peak_power_w": e["peak_power_w"], "throttled": throttled})  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    x = np.array([features(ModelConfig(r["layers"], r["hidden"], r["heads"], r["ffn"]), r["freq_khz"]) for r in rows])
    ys = {t: np.array([float(r[t]) for r in rows]) for t in TARGETS}
    order = np.random.default_rng(seed + 1).permutation(n)
    n_test = max(1, round(test_fraction * n))
    test, train = order[:n_test], order[n_test:]
    pred = Predictor.fit(x[train], {t: y[train] for t, y in ys.items()}, seed=seed)
    report = held_out_error(pred, x[test], {t: y[test] for t, y in ys.items()})
    final = Predictor.fit(x, ys, seed=seed)  # what the search uses: every measurement
    pred_path = out.with_name(out.name + ".predictor.json")
    pred_path.write_text(json.dumps({**final.to_json(), "held_out": report, "board": info.get("profile")}, indent=1))
    return {"out": str(out), "predictor": str(pred_path), "measurements": n, "held_out": report}
