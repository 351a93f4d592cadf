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
