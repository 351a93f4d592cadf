"""Property tests of the sampler's keyed windows, and the profiles' meter URIs."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.board_profile import available_profiles, load_profile
from devices.meters import Sampler, open_meter, parse_uri
from devices.meters.clock import ManualClock

ops = st.lists(
    st.tuples(st.sampled_from(["begin", "end", "cancel", "step", "wait"]), st.integers(0, 3), st.floats(0, 0.05)),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(ops=ops, power=st.floats(0.1, 50))
def test_any_interleaving_of_windows_measures_constant_power_exactly(
    ops: list[tuple[str, int, float]], power: float
) -> None:
    clock = ManualClock()
    sampler = Sampler(open_meter(f"wave://const?power_w={power}&rate_hz=100", clock=clock), sleep=clock.sleep)
    sampler.step()
    open_keys: set[str] = set()
    for op, k, dt in ops:
        key = f"w{k}"
        if op == "begin" and key not in open_keys:
            sampler.begin_window(key)
            open_keys.add(key)
        elif op == "end" and key in open_keys:
            r = sampler.end_window(key)
            open_keys.discard(key)
            assert r is not None
            assert r.energy_j == pytest.approx(power * r.duration_s, rel=1e-9, abs=1e-12)
            # Waits without samples longer than the gap threshold are real gaps; nothing else is.
            assert r.coverage == pytest.approx(1 - r.gap_s / r.duration_s if r.duration_s else 1.0)
            assert r.complete == (r.gap_s == 0)
            assert r.peak_power_w == pytest.approx(power)
        elif op == "cancel" and key in open_keys:
            sampler.cancel_window(key)
            open_keys.discard(key)
        elif op == "step":
            clock.sleep(0.01)
            sampler.step()
        else:
            clock.advance(dt)
        assert set(sampler.open_windows()) == open_keys


@pytest.mark.parametrize("name", available_profiles())
def test_every_profile_lists_meter_uris_the_registry_accepts(name: str) -> None:
    for uri in load_profile(name).meters:
        assert parse_uri(uri).scheme
