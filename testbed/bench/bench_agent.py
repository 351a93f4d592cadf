"""Agent under load: 20 concurrent clients against an emulated agent on loopback.

Ratios from one run: p50 latency under load against the single-client p50, and the agent's memory
growth over a second identical round against the first (a leak shows as growth that does not stop).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from testbed.agent.launch import start_local_agent
from testbed.agent.loadtest import agent_rss_mb, run_load


def run(quick: bool) -> dict[str, Any]:
    per_client = 50 if quick else 150
    with tempfile.TemporaryDirectory(prefix="bench-agent-") as tmp, start_local_agent(Path(tmp)) as agent:
        single = run_load(agent.url, agent.token, clients=1, per_client=100).summary()  # same request mix
        rss_start = agent_rss_mb(agent.pid)
        round1 = run_load(agent.url, agent.token, clients=20, per_client=per_client).summary()
        rss_mid = agent_rss_mb(agent.pid)
        round2 = run_load(agent.url, agent.token, clients=20, per_client=per_client).summary()
        rss_end = agent_rss_mb(agent.pid)
    return {
        "single_client": single,
        "load_round1": round1,
        "load_round2": round2,
        "total_requests": single["requests"] + round1["requests"] + round2["requests"],
        "total_errors": single["errors"] + round1["errors"] + round2["errors"],
        "rss_mb": {"start": round(rss_start, 1), "after_round1": round(rss_mid, 1), "after_round2": round(rss_end, 1)},
        "rss_growth_round2_mb": round(rss_end - rss_mid, 2),
        "ratio_p50_load_vs_single": round(round2["p50_ms"] / single["p50_ms"], 2),
        "ratio_throughput_load_vs_single": round(round2["requests_per_s"] / single["requests_per_s"], 2),
    }
