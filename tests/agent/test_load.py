"""A bounded load test of the real agent process: no errors, no memory growth once warm."""

from __future__ import annotations

import pytest

from testbed.agent.loadtest import agent_rss_mb, run_load


@pytest.mark.slow
def test_twenty_clients_thousands_of_requests(agent):
    warm = run_load(agent.url, agent.token, clients=20, per_client=50)
    rss_warm = agent_rss_mb(agent.pid)
    rounds = [run_load(agent.url, agent.token, clients=20, per_client=50) for _ in range(2)]
    growth_mb = agent_rss_mb(agent.pid) - rss_warm
    assert warm.errors == 0 and all(r.errors == 0 for r in rounds), [r.error_samples for r in rounds]
    assert sum(r.requests for r in rounds) + warm.requests == 3000
    assert growth_mb < 15, f"agent memory grew {growth_mb:.1f} MB over 2000 warm requests"


def test_small_concurrent_burst_has_no_errors(agent):
    result = run_load(agent.url, agent.token, clients=20, per_client=5, info_every=5)
    assert result.errors == 0, result.error_samples
    assert len(result.latencies_ms) == 100
