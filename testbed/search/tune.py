"""Searches on Ray Tune: ``testbed search … --parallel N [--address ADDR]``; every candidate evaluation a Tune trial.

The search has the same budget, memo, log and results as :func:`testbed.search.runner.search_run`; only where
the evaluations run differs. A Tune :class:`~ray.tune.search.Searcher`, :class:`BatchSearcher`, drives one of
three proposers:

- ``tpe``: Tune's :class:`~ray.tune.search.optuna.OptunaSearch` with Optuna's seeded TPE sampler, one categorical
  parameter per decision;
- ``random``: Tune's random search — the ``tune.choice`` domains its variant generator samples, drawn from a
  seeded generator;
- ``rl`` (and any other algorithm of :mod:`testbed.search.algorithms`): the registry's
  :class:`~testbed.search.searcher.Searcher` (RT3's LSTM controller trained with REINFORCE), asked for a batch.

Proposals come in **batches** of up to ``parallel`` new candidates: the batch's new candidates run as concurrent
trials (:func:`evaluate_trial` in a Ray worker, which builds the search problem from the checkpoint once per
worker), a proposal the memo holds (or that repeats one in flight) costs no evaluation, and only when the whole
batch has come back are its rewards told to the proposer and its rows logged, in proposal order. So a search's
proposals and results depend on its seed and ``parallel``, not on which trial finishes first; with
``parallel=1`` the ``rl`` and ``random`` searches propose what the sequential runner does. Budget, proposal cap
and "space exhausted" are counted as there.

Log rows (one per proposal, the runner's format) go to the run store from the driver; the searcher's state is
saved by Tune with its experiment (``DIR/tune/``) and by this module after every batch (``DIR/tune_state.pkl``).
``--resume`` restores the Tune experiment (:meth:`ray.tune.Tuner.restore`); the searcher continues from the
newer of its two saved states, log rows newer than that state are dropped, and evaluations that were in
flight are proposed to new trials again. A resume that grows the budget of a search Tune had finished goes on
in a new experiment (``DIR/tune.1``, ``tune.2`` …) with the restored searcher. Batches are cut at the budget, so
a search grown from 3 to 6 evaluations batches differently from one run with 6 from the start.

Failure modes: :class:`~devices.errors.BadInputError` for ``parallel`` < 1 or a resume of a search that was not
run on Tune; :class:`~devices.errors.TestbedError` when a trial fails after its retries (``max_failures``).
"""

from __future__ import annotations

import json
import os
import pickle
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devices.errors import BadInputError, TestbedError
from testbed.runstore.executor import RunExecutor, UnitContext
from testbed.runstore.results import SearchSummary
from testbed.runstore.store import RunStore
from testbed.search.evaluator import Evaluation
from testbed.search.problem import Problem, SearchConfig, build_problem, make_searcher
from testbed.search.runner import (
    CONFIG_FILE,
    SearchResult,
    SearchRunOutput,
    _row,
    _same_search,
    _search_config_json,
    describe_search,
    summarize,
)
from testbed.search.searcher import Searcher
from testbed.search.space import Candidate, SearchSpace

TUNE_DIR = "tune"
STATE_FILE = "tune_state.pkl"
METRIC = "reward"

# -- the trial ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProblemSpec:
    """What a worker builds the problem from: the checkpoint directory and the search settings (JSON)."""

    checkpoint: str
    config: dict[str, Any]

    def key(self) -> str:
        return json.dumps({"ckpt": self.checkpoint, "cfg": self.config}, sort_keys=True)


_PROBLEMS: dict[str, Problem] = {}


def worker_problem(spec: ProblemSpec) -> Problem:
    """The problem of ``spec``, built once per worker process (its evaluator's memo and set cache stay warm)."""
    key = spec.key()
    if key not in _PROBLEMS:
        import torch

        from testbed.rt3.checkpoint import Checkpoint

        torch.set_num_threads(1)
        _PROBLEMS[key] = build_problem(Checkpoint.load(Path(spec.checkpoint)), SearchConfig.from_dict(spec.config))
    return _PROBLEMS[key]


def evaluate_trial(config: dict[str, Any], spec: ProblemSpec) -> None:
    """One Tune trial: evaluate ``config["candidate"]`` and report its reward and the whole evaluation."""
    from ray import tune

    ev, _ = worker_problem(spec).evaluator.evaluate(tuple(int(c) for c in config["candidate"]))
    tune.report({METRIC: ev.reward, "evaluation": json.dumps(ev.to_dict())})


# -- proposers ----------------------------------------------------------------------------------------------


class RegistryProposer:
    """A registry :class:`Searcher` (``rl`` …): propose = ask, report = tell."""

    def __init__(self, searcher: Searcher) -> None:
        self.searcher = searcher
        self.name = searcher.name

    def propose(self, token: str) -> Candidate:
        return tuple(int(c) for c in self.searcher.ask())

    def report(self, token: str, candidate: Candidate, reward: float) -> None:
        self.searcher.tell(candidate, reward)

    def state(self) -> Any:
        return self.searcher.state_dict()

    def load(self, state: Any) -> None:
        self.searcher.load_state_dict(state)


class TuneRandomProposer:
    """Tune's random search: a ``tune.choice`` domain per decision, sampled from a seeded generator."""

    name = "random"

    def __init__(self, space: SearchSpace, seed: int) -> None:
        import numpy as np
        from ray import tune

        self.domains = [tune.choice(list(range(n))) for n in space.sizes]
        self.rng = np.random.RandomState(seed)

    def propose(self, token: str) -> Candidate:
        return tuple(int(d.sample(random_state=self.rng)) for d in self.domains)

    def report(self, token: str, candidate: Candidate, reward: float) -> None:
        """Random search learns nothing."""

    def state(self) -> Any:
        return self.rng.get_state()

    def load(self, state: Any) -> None:
        self.rng.set_state(state)


class OptunaProposer:
    """Tune's :class:`OptunaSearch` with a seeded TPE sampler over one categorical parameter per decision."""

    name = "tpe"

    def __init__(self, space: SearchSpace, seed: int) -> None:
        import optuna
        from ray.tune.search.optuna import OptunaSearch

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.n = len(space.sizes)
        dist = optuna.distributions
        domains: dict[str, dist.BaseDistribution] = {
            f"d{i}": dist.CategoricalDistribution(list(range(n))) for i, n in enumerate(space.sizes)
        }
        self.inner = OptunaSearch(domains, metric=METRIC, mode="max", sampler=optuna.samplers.TPESampler(seed=seed))

    def propose(self, token: str) -> Candidate:
        cfg = self.inner.suggest(token)
        if not isinstance(cfg, dict):
            raise TestbedError(f"Optuna proposed no candidate ({cfg!r})")
        return tuple(int(cfg[f"d{i}"]) for i in range(self.n))

    def report(self, token: str, candidate: Candidate, reward: float) -> None:
        self.inner.on_trial_complete(token, {METRIC: reward})

    def state(self) -> Any:
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "optuna.pkl")
            self.inner.save(path)
            return Path(path).read_bytes()

    def load(self, state: Any) -> None:
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "optuna.pkl")
            Path(path).write_bytes(state)
            self.inner.restore(path)


def make_proposer(cfg: SearchConfig, space: SearchSpace) -> RegistryProposer | TuneRandomProposer | OptunaProposer:
    """Tune's searchers for ``tpe`` and ``random``; the registry's searcher for every other algorithm."""
    if cfg.algo == "tpe":
        return OptunaProposer(space, cfg.seed)
    if cfg.algo == "random":
        return TuneRandomProposer(space, cfg.seed)
    return RegistryProposer(make_searcher(cfg, space))


# -- the Tune searcher --------------------------------------------------------------------------------------


@dataclass
class Proposal:
    """One proposal of the current batch: its number, token, candidate; ``trial`` and ``evaluation`` once known."""

    number: int
    token: str
    candidate: Candidate
    new: bool
    trial: str | None = None
    evaluation: Evaluation | None = None


@dataclass
class SearchState:
    """Everything that decides later proposals, and the counters (saved after every batch)."""

    proposer: Any = None
    memo: list[dict[str, Any]] = field(default_factory=list)
    proposals: int = 0
    hits: int = 0
    curve: list[float] = field(default_factory=list)
    t_s: float = 0.0
    stopped: str = ""
    batch: list[Proposal] = field(default_factory=list)


def _tune_searcher_base() -> type:
    from ray.tune.search import Searcher as TuneSearcher

    return TuneSearcher


class BatchSearcher(_tune_searcher_base()):  # type: ignore[misc]
    """The Tune searcher of a search run (see the module text); lives in the driver."""

    def __init__(
        self, proposer: Any, space: SearchSpace, deadlines_ms: list[float], budget: int, parallel: int,
        run_dir: Path, max_proposals: int | None = None,
    ) -> None:  # fmt: skip
        super().__init__(metric=METRIC, mode="max")
        self.proposer = proposer
        self.space = space
        self.deadlines_ms = deadlines_ms
        self.budget = budget
        self.parallel = parallel
        self.cap = max_proposals if max_proposals is not None else 20 * budget
        self.run_dir = Path(run_dir)
        self.memo: dict[Any, Evaluation] = {}
        self.st = SearchState()
        self._t0 = time.monotonic()
        self._t_offset = 0.0
        self._store: RunStore | None = None
        self._finished = False
        self.on_batch: Callable[[BatchSearcher], None] | None = None

    # pickling (Tune keeps the searcher in its experiment): no open connection, no callback
    def __getstate__(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["_store"] = None
        d["on_batch"] = None
        return d

    @property
    def evaluations(self) -> int:
        return len(self.memo)

    def best(self) -> Evaluation | None:
        return max(self.memo.values(), key=lambda e: (e.reward, -e.index), default=None)

    # -- Tune's interface ---------------------------------------------------------------------------------
    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        if self._finished:
            return self.FINISHED
        if not self.st.batch:
            self._fill()
            if not any(p.new for p in self.st.batch):
                self._flush()
                self._finished = True
                return self.FINISHED
        for p in self.st.batch:
            if p.new and p.trial is None:
                p.trial = trial_id
                return {"candidate": list(p.candidate)}
        return None  # the batch's trials are running

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        p = next((p for p in self.st.batch if p.trial == trial_id and p.evaluation is None), None)
        if p is None:
            return  # a trial of an earlier session that was proposed again
        if error or result is None or "evaluation" not in result:
            raise TestbedError(f"trial {trial_id} (candidate {list(p.candidate)}) failed after its retries")
        ev = Evaluation.from_dict(json.loads(result["evaluation"]))
        ev.index = len(self.memo) + sum(1 for q in self.st.batch if q.new and q.number < p.number)
        p.evaluation = ev
        if all(q.evaluation is not None for q in self.st.batch if q.new):
            self._flush()

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as fh:
            pickle.dump(self._state(), fh)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as fh:
            state: SearchState = pickle.load(fh)
        own = self.run_dir / STATE_FILE
        if own.is_file():  # the state saved after the last batch is at least as new as Tune's
            with own.open("rb") as fh:
                mine: SearchState = pickle.load(fh)
            if mine.proposals >= state.proposals:
                state = mine
        self._load(state)

    # -- batches ------------------------------------------------------------------------------------------
    def _fill(self) -> None:
        """Propose until the batch holds ``parallel`` new candidates (or the budget, the cap or the space ends)."""
        keys_new: set[Any] = set()
        size = self.space.cardinality()
        n_new = 0
        number = self.st.proposals
        while n_new < self.parallel:
            if self.evaluations + n_new >= self.budget:
                self.st.stopped = "budget"
                break
            if number >= self.cap:
                self.st.stopped = "proposal cap"
                break
            if self.evaluations + n_new >= size:
                self.st.stopped = "space exhausted"
                break
            token = f"p{number}"
            cand = self.space.validate(self.proposer.propose(token))
            key = self.space.key(cand)
            new = key not in self.memo and key not in keys_new
            keys_new.add(key)
            self.st.batch.append(Proposal(number, token, tuple(cand), new))
            n_new += new
            number += 1

    def _flush(self) -> None:
        """Tell the proposer every reward of the batch and log its rows, in proposal order; save the state."""
        store = self._connection()
        best = self.best()
        for p in self.st.batch:
            key = self.space.key(p.candidate)
            if p.new:
                assert p.evaluation is not None
                self.memo[key] = p.evaluation
                ev, hit = p.evaluation, False
            else:
                ev, hit = self.memo[key], True
                self.st.hits += 1
            self.proposer.report(p.token, p.candidate, ev.reward)
            if best is None or ev.reward > best.reward:
                best = ev
            if not hit:
                self.st.curve.append(best.reward)
            self.st.t_s = self._t_offset + time.monotonic() - self._t0
            store.log(f"search:{self.proposer.name}", "candidate",
                      _row(p.number, ev, hit, self.deadlines_ms, best.reward), self.st.t_s)  # fmt: skip
            self.st.proposals = p.number + 1
        store.commit()
        self.st.batch = []
        state = self._state()
        tmp = self.run_dir / (STATE_FILE + ".tmp")
        with tmp.open("wb") as fh:
            pickle.dump(state, fh)
        os.replace(tmp, self.run_dir / STATE_FILE)
        if self.on_batch is not None:
            self.on_batch(self)

    def _state(self) -> SearchState:
        return SearchState(
            proposer=self.proposer.state(), memo=[e.to_dict() for e in self.memo.values()],
            proposals=self.st.proposals, hits=self.st.hits, curve=list(self.st.curve), t_s=self.st.t_s,
            stopped=self.st.stopped, batch=[Proposal(p.number, p.token, p.candidate, p.new, p.trial, p.evaluation)
                                           for p in self.st.batch],
        )  # fmt: skip

    def _load(self, state: SearchState) -> None:
        self.proposer.load(state.proposer)
        evs = sorted((Evaluation.from_dict(e) for e in state.memo), key=lambda e: e.index)
        self.memo = {self.space.key(e.candidate): e for e in evs}
        self.st = state
        for p in self.st.batch:  # evaluations in flight when the search stopped are proposed to new trials
            if p.evaluation is None:
                p.trial = None
        self._t_offset = state.t_s
        self._t0 = time.monotonic()
        self._finished = False
        self.cap = max(self.cap, 20 * self.budget)
        store = self._connection()
        store.conn.execute("DELETE FROM log WHERE source = ? AND t_s > ?", (f"search:{self.proposer.name}", state.t_s))

    def done(self) -> bool:
        """Whether the search has ended: budget spent, proposal cap reached or space exhausted."""
        if self.st.batch:
            return False
        size = self.space.cardinality()
        return self.evaluations >= min(self.budget, size) or self.st.proposals >= self.cap

    def reopen(self) -> None:
        """Continue after Tune finished an experiment (a grown budget): propose again in the next one."""
        self._finished = False
        self.st.stopped = ""
        self.cap = max(self.cap, 20 * self.budget)

    def _connection(self) -> RunStore:
        if self._store is None:
            self._store = RunStore.open(self.run_dir)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def result(self) -> SearchResult:
        best = self.best()
        if best is None:
            raise BadInputError("the search made no proposal (budget already spent?)")
        wall = self._t_offset + time.monotonic() - self._t0
        return SearchResult(self.proposer.name, best, self.st.proposals, self.evaluations, self.st.hits, wall,
                            self.st.stopped or "budget", list(self.st.curve))  # fmt: skip


# -- the run ------------------------------------------------------------------------------------------------


def experiment_dirs(out: Path) -> list[Path]:
    """The Tune experiments of a search in order: ``tune``, then ``tune.1``, ``tune.2`` … (one per budget grown)."""
    found = [p for p in out.glob(f"{TUNE_DIR}*") if p.is_dir() and (p.name == TUNE_DIR or p.name[5:].isdigit())]
    return sorted(found, key=lambda p: 0 if p.name == TUNE_DIR else int(p.name[5:]))


def _tuner(trainable: Any, searcher: BatchSearcher | None, out: Path, name: str, retries: int) -> Any:
    from ray import tune

    run_config = tune.RunConfig(
        name=name, storage_path=str(out.resolve()), verbose=0,
        failure_config=tune.FailureConfig(max_failures=retries),
    )  # fmt: skip
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(search_alg=searcher, num_samples=-1, reuse_actors=True),
        run_config=run_config,
    )


def tune_search_run(
    out: Path,
    *,
    ckpt: Path | None = None,
    cfg: SearchConfig | None = None,
    resume: bool = False,
    budget: int | None = None,
    parallel: int = 2,
    address: str | None = None,
    retries: int = 2,
    progress: bool = False,
    artifact: bool = True,
    num_cpus: int | None = None,
) -> SearchRunOutput:
    """A search as :func:`~testbed.search.runner.search_run` makes it, its evaluations Tune trials (module text)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from testbed.distributed.cluster import ray_session
    from testbed.rt3.checkpoint import Checkpoint
    from testbed.search.artifact import write_best_artifact

    if parallel < 1:
        raise BadInputError(f"--parallel must be ≥ 1, got {parallel}")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # verbose=0 silences the classic reporter only
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "1")  # the experiment (and searcher) saved about every second
    cfg_path = out / CONFIG_FILE
    tune_dir = out / TUNE_DIR
    if resume:
        if not cfg_path.is_file():
            raise BadInputError(f"{cfg_path}: nothing to resume (no search configuration in --out)")
        stored = json.loads(cfg_path.read_text())
        if "tune" not in stored or not tune_dir.is_dir():
            raise BadInputError(f"{out}: this search did not run on Tune; resume it without --parallel")
        cfg = SearchConfig.from_dict({**stored["config"], "budget": budget or stored["config"]["budget"]})
        ckpt = Path(stored["checkpoint"])
        parallel = int(stored["tune"]["parallel"])
    elif cfg_path.exists():
        raise BadInputError(f"{cfg_path} exists; use --resume or another --out directory")
    if cfg is None or ckpt is None:
        raise BadInputError("a new search needs a checkpoint and a configuration")
    if getattr(cfg, "agent", None) is not None:  # every trial worker would take the one board's lease
        raise BadInputError("--parallel cannot measure through --agent (one board, one lease); drop one of them")
    conf, source = cfg, ckpt.resolve()
    problem = build_problem(Checkpoint.load(source), conf)
    space = problem.space
    if not isinstance(space, SearchSpace):  # --space layer scores from tables: nothing to spread over Ray
        raise BadInputError("--parallel searches the pattern-set space only; drop --space layer")
    run = RunExecutor.open(
        _search_config_json(conf, source), lambda: describe_search(conf, source, problem),
        None if resume else out, out if resume else None, kind="search", comparable=_same_search,
    )  # fmt: skip
    unit = f"search:{conf.algo}"
    outcome: list[SearchResult] = []
    spec = ProblemSpec(str(source), conf.to_dict())

    def search(ctx: UnitContext) -> SearchSummary:
        from ray import tune

        searcher = BatchSearcher(make_proposer(conf, space), space, problem.evaluator.deadlines_ms,
                                 conf.budget, parallel, out)  # fmt: skip
        trainable = tune.with_resources(tune.with_parameters(evaluate_trial, spec=spec), {"cpu": 1})
        bar = Progress(TextColumn(f"search {conf.algo} on Tune ×{parallel}"), BarColumn(), MofNCompleteColumn(),
                       TimeElapsedColumn(), TextColumn("{task.fields[info]}"), console=Console(stderr=True),
                       disable=not progress)  # fmt: skip
        with ray_session(address, num_cpus) as _, bar:
            job = bar.add_task("search", total=conf.budget, info="")

            def on_batch(s: BatchSearcher) -> None:
                best = s.best()
                info = "" if best is None else f"best {best.reward:+.3f}  proposals {s.st.proposals}"
                bar.update(job, completed=s.evaluations, info=info)

            last = experiment_dirs(out)[-1] if resume and experiment_dirs(out) else None
            if last is not None and tune.Tuner.can_restore(str(last.resolve())):
                tuner = tune.Tuner.restore(str(last.resolve()), trainable, resume_unfinished=True,
                                           resume_errored=True)  # fmt: skip
                live = _restored_searcher(tuner)
                live.budget = conf.budget
                live.on_batch = on_batch
                errors = list(tuner.fit().errors)
                searcher = live
                if not live.done() and not errors:  # Tune had finished this experiment: grow it in the next one
                    name = f"{TUNE_DIR}.{len(experiment_dirs(out))}"
                    live.reopen()
                    errors = list(_tuner(trainable, live, out, name, retries).fit().errors)
            else:
                searcher.on_batch = on_batch
                errors = list(_tuner(trainable, searcher, out, TUNE_DIR, retries).fit().errors)
            searcher.close()
        if searcher.evaluations < min(conf.budget, problem.space.cardinality()) and errors:
            raise TestbedError(f"the Tune search failed: {type(errors[0]).__name__}: {errors[0]}")
        result = searcher.result()
        outcome.append(result)
        return summarize(result, problem)

    with run:
        if not resume:
            cfg_path.write_text(json.dumps({"checkpoint": str(source), "config": conf.to_dict(),
                                            "tune": {"parallel": parallel}}, indent=2))  # fmt: skip
        run.run_unit(unit, search, phase=f"search {conf.algo} (tune x{parallel})")
        summary = run.finish([unit], SearchSummary)[unit]
    (out / "best.json").write_text(json.dumps(summary.to_dict(), indent=2))
    path = None
    if artifact:
        path = write_best_artifact(problem, outcome[0].best, out / "best.rt3", conf.final_finetune_steps, conf.seed)
    return SearchRunOutput(summary, path)


def _restored_searcher(tuner: Any) -> BatchSearcher:
    """The :class:`BatchSearcher` inside a restored :class:`~ray.tune.Tuner` (Tune unpickled it)."""
    local = getattr(tuner, "_local_tuner", None)
    inner = getattr(getattr(local, "_tune_config", None), "search_alg", None)
    for _ in range(3):  # SearchGenerator (and ConcurrencyLimiter) wrap the searcher
        if isinstance(inner, BatchSearcher):
            break
        inner = getattr(inner, "searcher", None)
    if not isinstance(inner, BatchSearcher):
        raise TestbedError("the restored Tune experiment has no RT3 batch searcher")
    return inner
