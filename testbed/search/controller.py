"""RT3's controller: an LSTM that emits the decisions of a candidate one after another.

At step *t* the LSTM cell reads an embedding of the option chosen at step *t−1* (a learned start vector at
t = 0), and decision *t*'s own linear head turns the hidden state into logits over its options (one categorical
head per decision, RT3/FNAS style; hidden size 35 as in RT3's configuration). The probability of a candidate is
the product of its decisions' probabilities, so REINFORCE can score any sequence with :meth:`log_prob`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from devices.errors import BadInputError


class _Policy(nn.Module):
    """What both policies share: ``sizes`` (options per decision), the action check and :meth:`log_prob`."""

    sizes: list[int]

    def __init__(self, sizes: Sequence[int]) -> None:
        super().__init__()
        if not sizes or any(n < 1 for n in sizes):
            raise BadInputError(f"the policy needs decisions with ≥ 1 option each, got {list(sizes)}")
        self.sizes = [int(n) for n in sizes]

    def check(self, actions: Sequence[int]) -> None:
        """BadInputError unless ``actions`` has one valid option index per decision."""
        if len(actions) != len(self.sizes):
            raise BadInputError(f"{len(actions)} actions for {len(self.sizes)} decisions")
        for a, n in zip(actions, self.sizes, strict=True):
            if not 0 <= a < n:
                raise BadInputError(f"action {a} outside 0…{n - 1}")

    def step_log_probs(self, actions: Sequence[int]) -> tuple[Tensor, Tensor]:
        """Per-decision log-probabilities of ``actions`` ([D]) and the summed entropy (differentiable)."""
        raise NotImplementedError

    def log_prob(self, actions: Sequence[int]) -> tuple[Tensor, Tensor]:
        """Log-probability of ``actions`` and the summed entropy of the decisions along it (differentiable)."""
        steps, entropy = self.step_log_probs(actions)
        return steps.sum(), entropy


class LSTMPolicy(_Policy):
    """Autoregressive policy over decisions with ``sizes[i]`` options each.

    Raises :class:`BadInputError` for an empty decision list or a decision with fewer than one option.
    """

    def __init__(self, sizes: Sequence[int], hidden: int = 35, embed: int | None = None) -> None:
        super().__init__(sizes)
        embed = embed or hidden
        self.hidden = hidden
        self.start = nn.Parameter(torch.zeros(1, embed))
        self.embeds = nn.ModuleList(nn.Embedding(n, embed) for n in self.sizes)
        self.cell = nn.LSTMCell(embed, hidden)
        self.heads = nn.ModuleList(nn.Linear(hidden, n) for n in self.sizes)
        for emb in self.embeds:
            assert isinstance(emb, nn.Embedding)
            nn.init.uniform_(emb.weight, -0.1, 0.1)

    def _steps(
        self, actions: Sequence[int] | None, generator: torch.Generator | None
    ) -> tuple[list[int], Tensor, Tensor]:
        h = torch.zeros(1, self.hidden)
        c = torch.zeros(1, self.hidden)
        x = self.start
        chosen: list[int] = []
        steps: list[Tensor] = []
        entropy = torch.zeros(())
        for i, head in enumerate(self.heads):
            h, c = self.cell(x, (h, c))
            logp = torch.log_softmax(head(h)[0], dim=-1)
            if actions is None:
                a = int(torch.multinomial(logp.detach().exp(), 1, generator=generator))
            else:
                a = int(actions[i])
            chosen.append(a)
            steps.append(logp[a])
            entropy = entropy - (logp.exp() * logp).sum()
            x = self.embeds[i](torch.tensor([a]))
        return chosen, torch.stack(steps), entropy

    @torch.no_grad()
    def sample(self, generator: torch.Generator | None = None) -> list[int]:
        """One candidate drawn from the policy (``generator`` makes the draw reproducible)."""
        return self._steps(None, generator)[0]

    def step_log_probs(self, actions: Sequence[int]) -> tuple[Tensor, Tensor]:
        """Per-decision log-probabilities of ``actions`` ([D]) and the summed entropy along it (differentiable)."""
        self.check(actions)
        _, lp, ent = self._steps(actions, None)
        return lp, ent

    @torch.no_grad()
    def greedy(self) -> list[int]:
        """The most likely option at every step (each conditioned on the previous greedy choices)."""
        h = torch.zeros(1, self.hidden)
        c = torch.zeros(1, self.hidden)
        x = self.start
        out = []
        for i, head in enumerate(self.heads):
            h, c = self.cell(x, (h, c))
            a = int(head(h)[0].argmax())
            out.append(a)
            x = self.embeds[i](torch.tensor([a]))
        return out


class FactorisedPolicy(_Policy):
    """Independent categorical decisions whose logits share the structure of the space.

    For decision *i* at frequency level ``k_i`` on layer ``g_i`` (its :class:`~testbed.search.space.Decision`'s
    ``level`` and ``layer``)::

        logits_i = θ_i + α[k_i] + β[g_i]

    ``θ_i`` is the decision's own vector, ``α[k]`` one vector per frequency level shared by all its layers
    ("level 3 sparser"), ``β[g]`` one per layer shared by all levels ("the decoder is costly to prune"); a shared
    vector exists only for decisions with the same number of options. So one sample teaches ten decisions
    something through ``α`` — what a layer-by-level space needs at a few hundred samples. Without levels and
    layers (``context`` None) it is a plain independent categorical per decision.
    """

    def __init__(self, sizes: Sequence[int], context: Sequence[tuple[int | None, str | None]] | None = None) -> None:
        super().__init__(sizes)
        if context is not None and len(context) != len(sizes):
            raise BadInputError(f"{len(context)} decision contexts for {len(sizes)} decisions")
        self.theta = nn.ParameterList(nn.Parameter(torch.zeros(n)) for n in self.sizes)
        self.keys: list[list[str]] = []
        shared: dict[str, int] = {}
        for i, n in enumerate(self.sizes):
            level, layer = context[i] if context is not None else (None, None)
            mine = []
            if level is not None:
                mine.append(f"level{level}_{n}")
            if layer is not None:
                mine.append(f"layer{layer}_{n}".replace(".", "_"))
            for key in mine:
                shared[key] = n
            self.keys.append(mine)
        self.shared = nn.ParameterDict({k: nn.Parameter(torch.zeros(n)) for k, n in shared.items()})

    def logits(self, i: int) -> Tensor:
        out = self.theta[i]
        for key in self.keys[i]:
            out = out + self.shared[key]
        return out

    @torch.no_grad()
    def sample(self, generator: torch.Generator | None = None) -> list[int]:
        return [
            int(torch.multinomial(torch.softmax(self.logits(i), -1), 1, generator=generator))
            for i in range(len(self.sizes))
        ]

    def step_log_probs(self, actions: Sequence[int]) -> tuple[Tensor, Tensor]:
        """Per-decision log-probabilities of ``actions`` ([D]) and the summed entropy (differentiable)."""
        self.check(actions)
        steps = []
        entropy = torch.zeros(())
        for i, a in enumerate(actions):
            logp = torch.log_softmax(self.logits(i), -1)
            steps.append(logp[int(a)])
            entropy = entropy - (logp.exp() * logp).sum()
        return torch.stack(steps), entropy

    @torch.no_grad()
    def greedy(self) -> list[int]:
        return [int(self.logits(i).argmax()) for i in range(len(self.sizes))]


class OrdinalPolicy(_Policy):
    """Independent decisions over ORDERED options (RT3's sparsity levels), each a discretised bell curve.

    For decision *i* with ``n`` options at frequency level ``k_i`` on layer ``g_i``, option *j* at position
    ``x_j = j / (n − 1)`` in [0, 1]::

        logits_i[j] = θ_i[j] − ½ · min(exp(ρ_i + r[k_i]), P) · (x_j − sigmoid(μ_i + m[k_i] + b[g_i]))²

    ``μ_i`` (init 0: the bell's centre at ½) is where the decision's mass sits, ``m[k]`` one shift per
    frequency level shared by its layers ("this level is sparser"), ``b[g]`` one per layer shared by the
    levels (the sigmoid keeps the centre inside the options); ``ρ_i + r[k]`` is the log
    precision (init 0: σ = 1, nearly uniform over [0, 1]), capped at ``P = 1 / σ_min²`` with ``σ_min`` =
    ``min_sd_steps`` option steps, so the policy never collapses onto one candidate; ``θ_i`` are free logits
    (``free_logits``) for what a bell cannot say. A sample near the mode is the mode moved by a step on a few
    decisions — the neighbourhood a local search walks — so one reward teaches the neighbours of an option
    too, which a categorical over unordered options cannot. Without ``context``: a bell per decision.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        context: Sequence[tuple[int | None, str | None]] | None = None,
        min_sd_steps: float = 0.5,
        free_logits: bool = True,
    ) -> None:
        super().__init__(sizes)
        if context is not None and len(context) != len(sizes):
            raise BadInputError(f"{len(context)} decision contexts for {len(sizes)} decisions")
        if min_sd_steps <= 0:
            raise BadInputError(f"the ordinal policy's minimum sd must be positive, got {min_sd_steps}")
        d, n_max = len(self.sizes), max(self.sizes)
        self.free_logits = free_logits
        self.theta = nn.Parameter(torch.zeros(d, n_max))
        self.loc = nn.Parameter(torch.zeros(d))
        self.log_prec = nn.Parameter(torch.zeros(d))
        ctx = list(context) if context is not None else [(None, None)] * d
        levels = sorted({lv for lv, _ in ctx if lv is not None})
        layers = sorted({g for _, g in ctx if g is not None})
        level_of = [levels.index(lv) if lv is not None else len(levels) for lv, _ in ctx]
        layer_of = [layers.index(g) if g is not None else len(layers) for _, g in ctx]
        # one spare slot (index len(...)) for decisions without a level/layer; it is masked to 0 below
        self.level_shift = nn.Parameter(torch.zeros(len(levels) + 1))
        self.level_prec = nn.Parameter(torch.zeros(len(levels) + 1))
        self.layer_shift = nn.Parameter(torch.zeros(len(layers) + 1))
        self.level_of = torch.tensor(level_of)
        self.layer_of = torch.tensor(layer_of)
        self.has_level = torch.tensor([float(lv is not None) for lv, _ in ctx])
        self.has_layer = torch.tensor([float(g is not None) for _, g in ctx])
        grid = torch.zeros(d, n_max)
        valid = torch.zeros(d, n_max, dtype=torch.bool)
        log_cap = torch.zeros(d)
        for i, n in enumerate(self.sizes):
            grid[i, :n] = torch.linspace(0.0, 1.0, n) if n > 1 else 0.0
            valid[i, :n] = True
            step = 1.0 / (n - 1) if n > 1 else 1.0
            log_cap[i] = -2.0 * torch.log(torch.tensor(min_sd_steps * step))
        self.grid = grid
        self.valid = valid
        self.log_cap = log_cap

    def all_logits(self) -> Tensor:
        """Logits of every decision ([D, max options]; −inf where a decision has fewer options)."""
        z = (
            self.loc
            + self.has_level * self.level_shift[self.level_of]
            + self.has_layer * self.layer_shift[self.layer_of]
        )
        mu = torch.sigmoid(z)
        log_prec = self.log_prec + self.has_level * self.level_prec[self.level_of]
        prec = torch.minimum(log_prec, self.log_cap).exp()
        logits = -0.5 * prec[:, None] * (self.grid - mu[:, None]) ** 2
        if self.free_logits:
            logits = logits + self.theta
        return logits.masked_fill(~self.valid, float("-inf"))

    @torch.no_grad()
    def sample(self, generator: torch.Generator | None = None) -> list[int]:
        probs = torch.softmax(self.all_logits(), -1)
        return [int(a) for a in torch.multinomial(probs, 1, generator=generator)[:, 0]]

    def step_log_probs(self, actions: Sequence[int]) -> tuple[Tensor, Tensor]:
        """Per-decision log-probabilities of ``actions`` ([D]) and the summed entropy (differentiable)."""
        self.check(actions)
        logp = torch.log_softmax(self.all_logits(), -1)
        idx = torch.tensor([int(a) for a in actions])
        steps = logp.gather(1, idx[:, None])[:, 0]
        p = logp.exp()
        entropy = -(p * logp.masked_fill(~self.valid, 0.0)).sum()
        return steps, entropy

    @torch.no_grad()
    def greedy(self) -> list[int]:
        return [int(a) for a in self.all_logits().argmax(-1)]
