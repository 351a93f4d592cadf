"""Fitting a board profile's power model to a run measured with a real meter (``testbed meter calibrate``).

Input: a sample CSV from a real meter and an activity CSV recorded alongside
(``testbed meter read URI --seconds S --csv samples.csv --activity-csv activity.csv`` while a varied
workload runs at several DVFS levels). For each activity interval the mean measured power
(exact window integration) is paired with the model's features (:mod:`devices.meters.power_model`);
the coefficients are fitted by least squares with non-negativity (coefficients driven below zero are
fixed at 0 and the rest re-fitted). Coefficients of frequency steps the run never visited keep their
old values. The result reports the fit error before and after (RMSE in W, mean absolute percentage
error) so the user can judge it.

Failure modes: too few intervals or no overlap between the two files →
:class:`~devices.errors.BadInputError` saying what to record. A fit whose R² is below :data:`MIN_R2` is
refused by :func:`check_fit` (the recording does not explain the power: too little variation, or the meter
and activity files are from different runs); below :data:`WARN_R2` it comes with a warning.
"""

from __future__ import annotations

import datetime as _dt
import itertools
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from devices.board_profile import BoardProfile, PowerModel
from devices.errors import BadInputError
from devices.meters.activity import ActivityRow
from devices.meters.energy import integrate
from devices.meters.power_model import coefficient_names, coefficients, features
from devices.meters.samples import Sample

MIN_INTERVALS = 8
#: Below this R² the fitted model explains too little of the measured power to be written (``--min-r2``).
MIN_R2 = 0.5
#: Below this R² the fit is written with a warning: record a more varied workload at more levels.
WARN_R2 = 0.8


@dataclass
class CalibrationReport:
    """Fit quality and what changed. Errors in W and percent."""

    intervals: int
    fitted: list[str]
    kept: list[str]
    rmse_before_w: float
    rmse_after_w: float
    mape_before_pct: float
    mape_after_pct: float
    r2_after: float
    coefficients: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_dataset(
    profile: BoardProfile, samples: list[Sample], activity: list[ActivityRow]
) -> tuple[np.ndarray, np.ndarray]:
    """Feature matrix X (one row per activity interval) and measured mean power y (W)."""
    if not samples:
        raise BadInputError("calibration: the sample file has no samples")
    rows: list[list[float]] = []
    ys: list[float] = []
    for a, b in itertools.pairwise(activity):
        if a.t_ns < samples[0].t_ns or b.t_ns > samples[-1].t_ns:
            continue
        res = integrate(samples, a.t_ns, b.t_ns)
        if res.samples == 0 and res.coverage < 1.0:
            continue
        rows.append(features(profile, b.freq_khz, b.util))
        if res.mean_power_w is None:  # only a meter that measures nothing has none
            continue
        ys.append(res.mean_power_w)
    if len(rows) < MIN_INTERVALS:
        raise BadInputError(
            f"calibration: only {len(rows)} activity intervals overlap the power samples (need {MIN_INTERVALS}); "
            "record both files in the same `testbed meter read --csv … --activity-csv …` run, for a minute or more"
        )
    return np.asarray(rows, dtype=float), np.asarray(ys, dtype=float)


def _nnls_subset(X: np.ndarray, y: np.ndarray, cols: list[int]) -> dict[int, float]:
    active = list(cols)
    while active:
        coef, *_ = np.linalg.lstsq(X[:, active], y, rcond=None)
        negative = [c for c, v in zip(active, coef, strict=True) if v < 0]
        if not negative:
            return {c: float(v) for c, v in zip(active, coef, strict=True)}
        active = [c for c in active if c not in negative]
    return {}


def fit(profile: BoardProfile, X: np.ndarray, y: np.ndarray) -> tuple[list[float], CalibrationReport]:
    """Fit the coefficients; returns them (feature order) and the report."""
    names = coefficient_names(profile)
    old = np.asarray(coefficients(profile), dtype=float)
    mass = np.abs(X).sum(axis=0)
    free = [i for i in range(X.shape[1]) if mass[i] > 1e-9]
    fixed = [i for i in range(X.shape[1]) if i not in free]
    y_free = y - X[:, fixed] @ old[fixed] if fixed else y
    solved = _nnls_subset(X, y_free, free)
    new = old.copy()
    for i in free:
        new[i] = solved.get(i, 0.0)
    pred_old, pred_new = X @ old, X @ new
    denom = np.where(np.abs(y) > 1e-9, np.abs(y), 1.0)
    ss_tot = float(((y - y.mean()) ** 2).sum())
    report = CalibrationReport(
        intervals=len(y),
        fitted=[names[i] for i in free],
        kept=[names[i] for i in fixed],
        rmse_before_w=float(np.sqrt(((pred_old - y) ** 2).mean())),
        rmse_after_w=float(np.sqrt(((pred_new - y) ** 2).mean())),
        mape_before_pct=float((np.abs(pred_old - y) / denom).mean() * 100),
        mape_after_pct=float((np.abs(pred_new - y) / denom).mean() * 100),
        r2_after=1.0 - float(((pred_new - y) ** 2).sum()) / ss_tot if ss_tot > 0 else 1.0,
        coefficients={n: round(float(v), 6) for n, v in zip(names, new, strict=True)},
    )
    return [float(v) for v in new], report


def apply(profile: BoardProfile, coefs: list[float], source: str) -> BoardProfile:
    """A copy of ``profile`` with the fitted coefficients and ``calibrated_from`` set."""
    pm = profile.power_model.model_dump()
    pm["idle_w"] = round(coefs[0], 6)
    i = 1
    for cpu in pm["cpu"]:
        n = len(cpu["cluster_active_w"])
        cpu["cluster_active_w"] = [round(v, 6) for v in coefs[i : i + n]]
        cpu["core_active_w"] = [round(v, 6) for v in coefs[i + n : i + 2 * n]]
        i += 2 * n
    pm["calibrated_from"] = f"{source} ({_dt.date.today().isoformat()})"
    return profile.model_copy(update={"power_model": PowerModel.model_validate(pm)})


def calibrate(
    profile: BoardProfile, samples: list[Sample], activity: list[ActivityRow], source: str
) -> tuple[BoardProfile, CalibrationReport]:
    """Fit ``profile`` to the run; returns the updated profile and the report."""
    X, y = build_dataset(profile, samples, activity)
    coefs, report = fit(profile, X, y)
    return apply(profile, coefs, source), report


def calibrate_files(
    profile: BoardProfile, samples_path: Path, activity_path: Path
) -> tuple[BoardProfile, CalibrationReport]:
    """:func:`calibrate` from a sample CSV and an activity CSV."""
    from devices.meters.activity import read_activity_csv
    from devices.meters.samples import read_samples_csv

    samples, meta = read_samples_csv(samples_path)
    activity = read_activity_csv(activity_path)
    meter = meta.get("meter", "unknown meter")
    return calibrate(profile, samples, activity, f"{samples_path.name} measured with {meter}")


def check_fit(report: CalibrationReport, min_r2: float = MIN_R2) -> str | None:
    """Refuse a fit below ``min_r2`` (:class:`BadInputError`); a warning line below :data:`WARN_R2`, else None."""
    if report.r2_after < min_r2:
        raise BadInputError(
            f"the fitted power model explains too little of the measured power (R² {report.r2_after:.2f} < "
            f"{min_r2:g}): record a longer, more varied workload at several DVFS levels (or lower --min-r2)"
        )
    if report.r2_after < WARN_R2:
        return (
            f"weak fit (R² {report.r2_after:.2f} < {WARN_R2:g}): the calibrated model is rough; record a more "
            "varied workload at more levels"
        )
    return None
