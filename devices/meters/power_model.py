"""The modelled power of a board profile, as features linear in the coefficients (shared with calibration).

For each policy *p* at frequency *f* with per-CPU utilisations *u* (0..1)::

    P = idle_w + Σ_p [ cluster_active_w_p(f) · max(u_cpu in p) + core_active_w_p(f) · Σ(u_cpu in p) ]

``max(u)`` stands for the fraction of time the cluster is awake (at least one core busy). Coefficients
are given per listed frequency step; a frequency between two steps (drivers without a table, e.g.
``intel_pstate``) interpolates linearly, outside the list clamps. Because P is linear in the
coefficients, :func:`features` returns the weights each coefficient gets, and both the meter and the
least-squares calibration use them. Units: W, kHz, utilisation as a fraction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from devices.board_profile import BoardProfile


def step_weights(freqs_khz: Sequence[int], f_khz: float) -> list[float]:
    """Interpolation weights of ``f_khz`` over the ascending steps ``freqs_khz`` (sum to 1)."""
    n = len(freqs_khz)
    w = [0.0] * n
    if f_khz <= freqs_khz[0]:
        w[0] = 1.0
    elif f_khz >= freqs_khz[-1]:
        w[-1] = 1.0
    else:
        for i in range(n - 1):
            lo, hi = freqs_khz[i], freqs_khz[i + 1]
            if lo <= f_khz <= hi:
                frac = (f_khz - lo) / (hi - lo)
                w[i], w[i + 1] = 1.0 - frac, frac
                break
    return w


def coefficient_names(profile: BoardProfile) -> list[str]:
    """Names of the model's coefficients in feature order: ``idle_w``, then per policy and step."""
    names = ["idle_w"]
    for pm in profile.power_model.cpu:
        freqs = profile.policy(pm.policy).frequencies_khz
        names += [f"{pm.policy}.cluster_active_w[{f}]" for f in freqs]
        names += [f"{pm.policy}.core_active_w[{f}]" for f in freqs]
    return names


def features(profile: BoardProfile, freq_khz: Mapping[str, float], util: Mapping[int, float]) -> list[float]:
    """Feature vector (same order as :func:`coefficient_names`) for one operating point.

    ``freq_khz`` maps policy name → frequency (a missing policy runs at its highest step); ``util`` maps
    CPU number → utilisation 0..1 (a missing CPU counts as idle).
    """
    row = [1.0]
    for pm in profile.power_model.cpu:
        pol = profile.policy(pm.policy)
        f = freq_khz.get(pm.policy, pol.frequencies_khz[-1])
        w = step_weights(pol.frequencies_khz, f)
        us = [min(1.0, max(0.0, util.get(c, 0.0))) for c in pol.cpus]
        busy = max(us) if us else 0.0
        total = sum(us)
        row += [busy * x for x in w]
        row += [total * x for x in w]
    return row


def coefficients(profile: BoardProfile) -> list[float]:
    """The profile's coefficients in feature order."""
    out = [profile.power_model.idle_w]
    for pm in profile.power_model.cpu:
        out += list(pm.cluster_active_w) + list(pm.core_active_w)
    return out


def model_power_w(profile: BoardProfile, freq_khz: Mapping[str, float], util: Mapping[int, float]) -> float:
    """Modelled board power (W) at one operating point."""
    return sum(c * x for c, x in zip(coefficients(profile), features(profile, freq_khz, util), strict=True))
