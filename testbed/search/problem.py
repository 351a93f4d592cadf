"""Everything a search run is configured with, and the problem (API, space, evaluator) built from a checkpoint.

:class:`SearchConfig` is plain data (JSON round-trip) so that ``--resume`` rebuilds exactly the same problem.
:func:`build_problem` loads nothing itself: it takes a BP (or PP) :class:`~testbed.rt3.checkpoint.Checkpoint`,
extracts RT3's shrunken pattern space from its BP masks (seeded), picks the latency model (RT3's op-count
PREDICTION, or a profile table), and — with ``runs_range``/``acc_range`` = ``auto`` — fits the reward's
normalisation to this model (see :func:`testbed.search.reward.calibrated`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from devices.errors import BadInputError
from testbed.agent.api import AgentAPI
from testbed.battery.rt3_accounting import RT3_FREQ_GHZ, RT3_VOLT_V
from testbed.experiment.deadline import TAILS
from testbed.rt3.checkpoint import Checkpoint
from testbed.rt3.pp import RT3_LEVELS, build_space
from testbed.rt3.search_api import PatternSearchAPI
from testbed.search.algorithms import SearcherOptions, check_algorithm
from testbed.search.algorithms import make_searcher as create_searcher
from testbed.search.evaluator import AccuracyConfig, CandidateEvaluator
from testbed.search.latency import LatencyModel, OpCountLatency, ProfileLatency
from testbed.search.layer_problem import CheckpointLayerEvaluator, TableLatency, layer_latency
from testbed.search.layerspace import LayerSparsitySpace
from testbed.search.reinforce import ReinforceConfig
from testbed.search.reward import RewardConfig, calibrated, config_runs
from testbed.search.searcher import Searcher
from testbed.search.space import SearchSpace


@dataclass
class SearchConfig:
    """One search run's settings (units in the names; lists are per frequency level, fastest first)."""

    algo: str = "rl"
    budget: int = 100
    seed: int = 0
    sparsity_levels: tuple[float, ...] = RT3_LEVELS
    allowed_levels: tuple[int, ...] | None = None
    pattern_cols: int = 8
    n_candidates: int = 4
    profile: str | None = None  # profile table path or bundled name; None: RT3's op-count model
    profile_levels: tuple[str, ...] | None = None
    agent: str | None = None  # agent URL: measure every new pattern set on the board (levels: profile_levels)
    agent_token_file: str | None = None
    agent_inferences: int = 20
    deadline_tail: str = "cell"  # with --profile: the cell's p99, or p50 x pooled p99/p50 (TailModel)
    pp_mode: str = "column"  # column strips (packable) | element (RT3's element-wise patterns, by mask)
    freq_ghz: tuple[float, ...] = RT3_FREQ_GHZ
    volt_v: tuple[float, ...] = RT3_VOLT_V
    tokens: int = 35
    opcount: str = "rt3"  # rt3 (the reference's counting) | per-token (tokens × kept weights, no embedding)
    deadlines_ms: tuple[float, ...] = (115.0,)
    runs_range: tuple[float, float] | None = None  # None: calibrated ("auto")
    acc_range: tuple[float, float] | None = None  # None: calibrated ("auto")
    reward: dict[str, Any] = field(default_factory=dict)  # RewardConfig overrides (weights, penalties)
    accuracy: dict[str, Any] = field(default_factory=dict)  # AccuracyConfig fields
    rl: dict[str, Any] = field(default_factory=dict)  # ReinforceConfig fields
    final_finetune_steps: int = 0
    space: str = "pattern"  # pattern (one pattern set per level) | layer (a sparsity per tensor per level)
    latency_table: str | None = None  # --space layer: per-layer (measured through --agent) or a table file
    latency_cache: str | None = None  # --space layer, per-layer: where the measured table is cached

    def __post_init__(self) -> None:
        if self.space not in ("pattern", "layer"):
            raise BadInputError(f"--space {self.space!r}: choose pattern or layer")
        if self.space == "pattern" and self.latency_table is not None:
            raise BadInputError("--latency-table belongs to --space layer")
        check_algorithm(self.algo)
        if self.budget < 1:
            raise BadInputError(f"--budget must be ≥ 1, got {self.budget}")
        if self.deadline_tail not in TAILS:
            raise BadInputError(f"--deadline-tail {self.deadline_tail!r}: choose {' or '.join(TAILS)}")
        self.accuracy_config()
        self.rl_config()

    def accuracy_config(self) -> AccuracyConfig:
        return AccuracyConfig(**{"seed": self.seed, **self.accuracy})

    def rl_config(self) -> ReinforceConfig:
        return ReinforceConfig(**self.rl)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SearchConfig:
        tuples = ("sparsity_levels", "allowed_levels", "profile_levels", "freq_ghz", "volt_v", "deadlines_ms")
        data = {**d}
        for k in (*tuples, "runs_range", "acc_range"):
            if data.get(k) is not None:
                data[k] = tuple(data[k])
        return cls(**data)


@dataclass
class Problem:
    """What a search runs on."""

    checkpoint: Checkpoint
    api: PatternSearchAPI
    space: SearchSpace | LayerSparsitySpace
    latency: LatencyModel | TableLatency
    evaluator: CandidateEvaluator | CheckpointLayerEvaluator
    reward: RewardConfig


def latency_model(
    cfg: SearchConfig, ckpt: Checkpoint | None = None, api: PatternSearchAPI | None = None
) -> LatencyModel:
    """The op-count PREDICTION, the profile table named by ``cfg.profile``, or measurements through
    ``cfg.agent`` (which needs the checkpoint; the agent's lease is taken here and held by the client)."""
    if cfg.agent is not None:
        from testbed.search.agent_latency import AgentLatency

        if ckpt is None:
            raise BadInputError("--agent needs the search's checkpoint")
        return AgentLatency(_agent_client(cfg), ckpt, cfg.profile_levels, cfg.agent_inferences)
    if cfg.profile is None:
        return OpCountLatency(cfg.freq_ghz, cfg.volt_v, cfg.tokens, cfg.opcount, api)
    from testbed.paths import profile_table_path
    from traces.profile import load_profile_table

    table = load_profile_table(profile_table_path(cfg.profile))
    return ProfileLatency(table, cfg.profile_levels, cfg.deadline_tail)


def _agent_client(cfg: SearchConfig) -> AgentAPI:
    """A client of ``cfg.agent`` holding the board's lease (given back by the latency model's ``close``)."""
    from testbed.agent.client import AgentClient, read_token

    assert cfg.agent is not None
    token = read_token(Path(cfg.agent_token_file) if cfg.agent_token_file else None)
    client = AgentClient(cfg.agent, token)
    client.acquire("testbed-search", ttl_s=600.0)
    return client


def _layer_problem(ckpt: Checkpoint, cfg: SearchConfig, api: PatternSearchAPI) -> Problem:
    """``--space layer``: a sparsity per tensor per level, latency from a per-layer table (see layer_problem)."""
    client = _agent_client(cfg) if cfg.latency_table == "per-layer" and cfg.agent is not None else None
    cache = Path(cfg.latency_cache) if cfg.latency_cache else None
    try:
        lat = layer_latency(ckpt, api, cfg.latency_table, client, cfg.profile_levels, cfg.agent_inferences, cache)
        k = len(lat.level_names)
        auto = cfg.runs_range is None or cfg.acc_range is None
        ev = CheckpointLayerEvaluator(
            api, lat.table, _deadlines(cfg, k), RewardConfig(**cfg.reward), cfg.accuracy_config().eval_batches, auto
        )
    except BaseException:
        if client is not None:
            client.release()
            client.close()
        raise
    if cfg.runs_range is not None:
        ev.reward_config = replace(ev.reward_config, runs_low=cfg.runs_range[0], runs_high=cfg.runs_range[1])
    if cfg.acc_range is not None:
        ev.reward_config = replace(ev.reward_config, acc_low=cfg.acc_range[0], acc_high=cfg.acc_range[1])
    return Problem(ckpt, api, ev.space, lat, ev, ev.reward_config)


def _deadlines(cfg: SearchConfig, k: int) -> list[float]:
    d = list(cfg.deadlines_ms)
    if len(d) == 1:
        return d * k
    if len(d) != k:
        raise BadInputError(f"--deadline-ms has {len(d)} values for {k} frequency levels (give 1 or {k})")
    return d


def build_problem(ckpt: Checkpoint, cfg: SearchConfig) -> Problem:
    """The search problem of a checkpoint with BP masks; :class:`BadInputError` if it has none."""
    from testbed.rt3.pp import uniform_choices
    from testbed.rt3.tasks import build_task

    if ckpt.bp_masks is None or ckpt.bp_config is None:
        raise BadInputError("the checkpoint has no BP masks; run `testbed rt3 prune bp` first")
    spec = ckpt.description.get("spec") or {}
    tokenizer = spec.get("path") if ckpt.description.get("family") == "hf" else None
    task, _ = build_task(ckpt.data, vocab=ckpt.vocab, tokenizer_dir=tokenizer)
    ckpt.model.eval()
    row_block = int(ckpt.bp_config.get("row_block", 32))
    pspace = build_space(
        ckpt.model,
        ckpt.bp_masks,
        row_block,
        cfg.pattern_cols,
        cfg.sparsity_levels,
        cfg.n_candidates,
        seed=cfg.seed,
        mode=cfg.pp_mode,
    )
    api = PatternSearchAPI(ckpt.model, ckpt.bp_masks, pspace, task)
    if cfg.space == "layer":
        return _layer_problem(ckpt, cfg, api)
    lat = latency_model(cfg, ckpt, api)
    k = len(lat.level_names)
    space = SearchSpace(pspace, k, cfg.allowed_levels)
    reward = RewardConfig(**cfg.reward)
    acc_cfg = cfg.accuracy_config()
    if cfg.runs_range is None or cfg.acc_range is None:
        levels = sorted({lv for combo in space.assignments for lv in combo})
        dense = api.build(uniform_choices(pspace, levels[0]), "densest")
        sparse = api.build(uniform_choices(pspace, levels[-1]), "sparsest")

        def runs(ps: Any) -> float:
            costs = [lat.cost(ps, i) for i in range(k)]
            return float(sum(config_runs(reward, k, [c.power_w for c in costs], [c.latency_ms for c in costs])))

        dense_acc = api.accuracy(dense, max_batches=acc_cfg.eval_batches) if cfg.acc_range is None else None
        reward = calibrated(
            reward,
            runs(dense) if cfg.runs_range is None else None,
            runs(sparse) if cfg.runs_range is None else None,
            dense_acc,
        )
    if cfg.runs_range is not None:
        reward = replace(reward, runs_low=cfg.runs_range[0], runs_high=cfg.runs_range[1])
    if cfg.acc_range is not None:
        reward = replace(reward, acc_low=cfg.acc_range[0], acc_high=cfg.acc_range[1])
    evaluator = CandidateEvaluator(api, space, lat, _deadlines(cfg, k), reward, acc_cfg)
    return Problem(ckpt, api, space, lat, evaluator, reward)


def make_searcher(cfg: SearchConfig, space: SearchSpace | LayerSparsitySpace) -> Searcher:
    """The searcher of ``cfg.algo`` (from the algorithm registry) over ``space``'s decisions, seeded."""
    return create_searcher(cfg.algo, space, SearcherOptions(seed=cfg.seed, rl=cfg.rl_config()))
