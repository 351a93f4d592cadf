"""A pool of device agents: one client and one lease per board, taken together and given back together.

This is the seam for several boards (hil runs over many agents, profiling farms) and the one a
distributed (Ray) board farm plugs into: code that needs boards takes an :class:`AgentPool` and
works with :class:`PooledAgent` handles, whose ``agent`` is any :class:`~testbed.agent.api.AgentAPI`.

Usage::

    endpoints = [AgentEndpoint(url, token) for url in urls]
    with AgentPool(endpoints, holder="testbed-run-x") as pool:
        first = pool.first()                    # setup on one board
        first.agent.info()
        for pa, items in pool.deal(strategies):  # round-robin share of the work per board
            ...
        with pool.checkout() as pa:             # or: borrow whichever board is free (threads)
            pa.agent.measure(...)

Entering the pool connects to every board in order and takes its lease (renewed in the background,
see :meth:`AgentClient.lease`); leaving it, normally or by an exception, releases every lease taken
(each agent restores its board) and closes every client. When one board cannot be leased, the
leases already taken are released before the error propagates.

Failure modes: :class:`~devices.errors.BadInputError` for an empty pool or a duplicate URL;
:class:`~testbed.agent.client.AgentRequestError` (e.g. 409, a board leased by someone else) and
:class:`~testbed.agent.client.AgentUnavailable` from the agents, after the pool has cleaned up;
:class:`~devices.errors.HardwareError` when :meth:`AgentPool.checkout` times out.
"""

from __future__ import annotations

import contextlib
import queue
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from devices.errors import BadInputError, HardwareError
from testbed.agent.api import AgentAPI

T = TypeVar("T")

LOOPBACK_PREFIXES = ("http://127.0.0.1", "http://localhost", "http://[::1]")


def is_loopback(url: str) -> bool:
    """Whether ``url`` names an agent on this machine (so it shares this file system: load by path)."""
    return url.startswith(LOOPBACK_PREFIXES)


@dataclass(frozen=True)
class AgentEndpoint:
    """Where one board's agent listens and its bearer token."""

    url: str
    token: str = field(repr=False)
    #: A secret of the run holding the board: a resumed run takes its own lease back with it.
    resume_key: str | None = field(default=None, repr=False)


def connect_http(endpoint: AgentEndpoint) -> AgentAPI:
    """The default connector: an HTTP :class:`~testbed.agent.client.AgentClient`."""
    from testbed.agent.client import AgentClient

    return AgentClient(endpoint.url, endpoint.token, resume_key=endpoint.resume_key)


@dataclass(frozen=True)
class PooledAgent:
    """One board of a pool: its endpoint and the leased client to it."""

    index: int
    endpoint: AgentEndpoint
    agent: AgentAPI

    @property
    def url(self) -> str:
        return self.endpoint.url

    @property
    def local(self) -> bool:
        """The agent runs on this machine (artifacts load by path, not by upload)."""
        return is_loopback(self.endpoint.url)


class AgentPool:
    """Leased agents, one per endpoint (see the module text); use as a context manager."""

    def __init__(
        self,
        endpoints: Sequence[AgentEndpoint],
        holder: str,
        ttl_s: float = 30.0,
        connect: Callable[[AgentEndpoint], AgentAPI] = connect_http,
    ) -> None:
        if not endpoints:
            raise BadInputError("an agent pool needs at least one agent URL")
        urls = [e.url.rstrip("/") for e in endpoints]
        dup = sorted({u for u in urls if urls.count(u) > 1})
        if dup:
            raise BadInputError(f"agent URL(s) listed twice: {', '.join(dup)}")
        self.endpoints = list(endpoints)
        self.holder = holder
        self.ttl_s = ttl_s
        self._connect = connect
        self._stack: contextlib.ExitStack | None = None
        self._agents: list[PooledAgent] = []
        self._free: queue.Queue[PooledAgent] = queue.Queue()

    @classmethod
    def from_urls(cls, urls: Sequence[str], token: str, holder: str, ttl_s: float = 30.0) -> AgentPool:
        """A pool of HTTP agents that share one token."""
        return cls([AgentEndpoint(u, token) for u in urls], holder, ttl_s)

    # ---- lifecycle -------------------------------------------------------------------------------
    def __enter__(self) -> AgentPool:
        if self._stack is not None:
            raise BadInputError("this agent pool is already open")
        with contextlib.ExitStack() as stack:
            agents = []
            for i, endpoint in enumerate(self.endpoints):
                client = self._connect(endpoint)
                stack.callback(client.close)
                stack.enter_context(client.lease(self.holder, self.ttl_s))
                agents.append(PooledAgent(i, endpoint, client))
            self._stack = stack.pop_all()  # every lease taken: keep them past this block
        self._agents = agents
        for pa in agents:
            self._free.put(pa)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release every lease (each board restored) and close every client; safe to call twice."""
        stack, self._stack = self._stack, None
        self._agents = []
        self._free = queue.Queue()
        if stack is not None:
            stack.close()

    # ---- handing out agents ---------------------------------------------------------------------
    @property
    def agents(self) -> list[PooledAgent]:
        """The leased agents in endpoint order (empty while the pool is not open)."""
        return list(self._agents)

    def __iter__(self) -> Iterator[PooledAgent]:
        return iter(self.agents)

    def __len__(self) -> int:
        return len(self._agents)

    def first(self) -> PooledAgent:
        """The first endpoint's agent (for setup work that needs one board)."""
        if not self._agents:
            raise BadInputError("the agent pool is not open (use it in a with block)")
        return self._agents[0]

    def deal(self, items: Sequence[T]) -> list[tuple[PooledAgent, list[T]]]:
        """``items`` dealt round-robin over the agents, in order; agents dealt nothing are left out."""
        if not self._agents:
            raise BadInputError("the agent pool is not open (use it in a with block)")
        shares: list[list[T]] = [[] for _ in self._agents]
        for k, item in enumerate(items):
            shares[k % len(shares)].append(item)
        return [(pa, share) for pa, share in zip(self._agents, shares, strict=True) if share]

    @contextlib.contextmanager
    def checkout(self, timeout_s: float | None = None) -> Iterator[PooledAgent]:
        """Borrow a free agent for a block (thread-safe); it returns to the pool after, even on error.

        Waits up to ``timeout_s`` seconds (None: forever) for one to be free; HardwareError after that.
        """
        if not self._agents:
            raise BadInputError("the agent pool is not open (use it in a with block)")
        free = self._free
        try:
            pa = free.get(timeout=timeout_s)
        except queue.Empty:
            raise HardwareError(f"no free agent within {timeout_s} s ({len(self._agents)} in the pool)") from None
        try:
            yield pa
        finally:
            free.put(pa)
