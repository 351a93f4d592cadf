"""A bounded load test of one agent: concurrent async clients, error count, latency, agent memory.

Used by ``make bench`` (``bench_agent``) and by a slow test. Traffic goes only to the given URL
(loopback in both uses); the number of requests is fixed, so the run always ends.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from devices.stats import percentile
from testbed.agent.api import AsyncAgentAPI
from testbed.agent.client import AsyncAgentClient


@dataclass
class LoadResult:
    clients: int
    requests: int
    errors: int
    wall_s: float
    latencies_ms: list[float] = field(repr=False, default_factory=list)
    error_samples: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies_ms)

        def pct(q: float) -> float:
            return percentile(ordered, q) if ordered else float("nan")

        return {
            "clients": self.clients,
            "requests": self.requests,
            "errors": self.errors,
            "wall_s": round(self.wall_s, 3),
            "requests_per_s": round(self.requests / self.wall_s, 1) if self.wall_s else None,
            "p50_ms": round(pct(50), 3),
            "p99_ms": round(pct(99), 3),
            "error_samples": self.error_samples[:5],
        }


async def _worker(client: AsyncAgentAPI, n: int, info_every: int, out: LoadResult) -> None:
    for i in range(n):
        t0 = time.perf_counter()
        try:
            if info_every and i % info_every == 0:
                await client.info()
            else:
                await client.power_samples(limit=50)
        except Exception as exc:  # every failure counts, whatever its type
            out.errors += 1
            if len(out.error_samples) < 5:
                out.error_samples.append(f"{type(exc).__name__}: {exc}")
        out.latencies_ms.append((time.perf_counter() - t0) * 1000.0)


async def _run(url: str, token: str, clients: int, per_client: int, info_every: int) -> LoadResult:
    out = LoadResult(clients=clients, requests=clients * per_client, errors=0, wall_s=0.0)
    conns = [AsyncAgentClient(url, token, timeout_s=60.0, retries=0) for _ in range(clients)]
    t0 = time.perf_counter()
    try:
        await asyncio.gather(*(_worker(c, per_client, info_every, out) for c in conns))
    finally:
        out.wall_s = time.perf_counter() - t0
        for c in conns:
            await c.aclose()
    return out


def run_load(url: str, token: str, clients: int = 20, per_client: int = 100, info_every: int = 10) -> LoadResult:
    """``clients`` concurrent clients each sending ``per_client`` requests (every ``info_every``-th is
    ``GET /v1/info``, the rest ``GET /v1/power/samples``)."""
    return asyncio.run(_run(url, token, clients, per_client, info_every))


def agent_rss_mb(pid: int) -> float:
    import psutil

    return float(psutil.Process(pid).memory_info().rss) / 2**20
