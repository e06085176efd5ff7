"""Does a fitted model's activity match the data?  Two-sample comparisons in which effect sizes, not
p-values, decide (spikenetopt.md 8; NetworkUnit's tests and scores).

For each measure (per cell or per sweep: the firing rate [Hz], the CV and the LV of the ISIs; and
the pooled ISIs [ms]) the report gives both samples' means, Welch's t-test (scipy's ``ttest_ind``
with unequal variances; NaN values, e.g. the CV of a cell with fewer than three spikes, are dropped)
and Cohen's d, signed (model minus data, over the pooled standard deviation)::

    s_pooled = sqrt(((n1 - 1) s1^2 + (n2 - 1) s2^2) / (n1 + n2 - 2))
    95 % CI = d ± 1.96 sqrt((n1 + n2) / (n1 n2) + d^2 / (2 (n1 + n2 - 2)))

A measure counts as matched when |d| < ``MATCHED_D`` (0.5, a "medium" effect).  With hundreds of
cells a p-value flags differences far too small to matter: SpikeNetOpt's own validation reported
p = 1.8e-25 for two networks whose rates both sat near 25-30 Hz.
"""

from __future__ import annotations

import csv
import io
from typing import NamedTuple

import numpy as np

from spikeforge.core import spikes

MATCHED_D = 0.5


class Comparison(NamedTuple):
    """One measure compared between data and model (a row of :func:`table`).

    ``n_data`` and ``n_model`` count the finite values on each side, ``mean_data`` and ``mean_model`` are
    their means; ``t`` and ``p`` are Welch's test, ``d`` Cohen's d (model minus data) with its 95 % CI
    ``d_low`` to ``d_high``.  ``t``, ``p`` and ``d`` are NaN where a side has fewer than two finite values."""

    measure: str
    n_data: int
    n_model: int
    mean_data: float
    mean_model: float
    t: float
    p: float
    d: float
    d_low: float
    d_high: float

    @property
    def matched(self) -> str:
        """"yes" if |d| < MATCHED_D, "no" if not, "n/a" without a d (fewer than two values on a side)."""
        return "n/a" if np.isnan(self.d) else ("yes" if abs(self.d) < MATCHED_D else "no")


def cohens_d(data, model) -> tuple[float, float, float]:
    """(d, 95 % CI low, high) of ``model`` against ``data`` (see the module docstring); NaN values dropped."""
    x = np.asarray(data, dtype=np.float64)
    y = np.asarray(model, dtype=np.float64)
    x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    n1, n2 = x.size, y.size
    if n1 < 2 or n2 < 2:
        return float("nan"), float("nan"), float("nan")
    pooled = np.sqrt(((n1 - 1) * x.var(ddof=1) + (n2 - 1) * y.var(ddof=1)) / (n1 + n2 - 2))
    difference = y.mean() - x.mean()
    if pooled == 0:
        d = 0.0 if difference == 0 else float(np.sign(difference) * np.inf)
    else:
        d = float(difference / pooled)
    half = 1.96 * np.sqrt((n1 + n2) / (n1 * n2) + d * d / (2 * (n1 + n2 - 2)))
    return d, d - half, d + half


def welch(data, model) -> tuple[float, float]:
    """(t, p) of Welch's two-sample t-test, NaN values dropped; t = 0, p = 1 for identical samples."""
    from scipy.stats import ttest_ind

    x = np.asarray(data, dtype=np.float64)
    y = np.asarray(model, dtype=np.float64)
    x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    if x.size < 2 or y.size < 2:
        return float("nan"), float("nan")
    if np.array_equal(np.sort(x), np.sort(y)):
        return 0.0, 1.0
    result = ttest_ind(y, x, equal_var=False)
    return float(result.statistic), float(result.pvalue)


def _mean(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")


def compare(measure: str, data, model) -> Comparison:
    """The :class:`Comparison` of samples ``data`` and ``model`` of ``measure`` (non-finite values dropped)."""
    x = np.asarray(data, dtype=np.float64)
    y = np.asarray(model, dtype=np.float64)
    t, p = welch(x, y)
    d, low, high = cohens_d(x, y)
    return Comparison(measure, int(np.isfinite(x).sum()), int(np.isfinite(y).sum()), _mean(x), _mean(y), t, p, d,
                      low, high)


def per_train_measures(trains, duration: float) -> dict[str, np.ndarray]:
    """Rate [Hz], CV and LV of every train, and the pooled ISIs [ms]."""
    return {"rate": np.array([spikes.firing_rate(t, duration) for t in trains]),
            "cv": np.array([spikes.cv(t) for t in trains]),
            "lv": np.array([spikes.lv(t) for t in trains]),
            "isi": np.concatenate([np.diff(t) for t in trains]) if len(trains) else np.zeros(0)}


def compare_trains(data_trains, model_trains, duration: float) -> list[Comparison]:
    """Every measure of :func:`per_train_measures`, data against model."""
    data = per_train_measures(data_trains, duration)
    model = per_train_measures(model_trains, duration)
    return [compare(name, data[name], model[name]) for name in data]


def table(comparisons: list[Comparison]) -> str:
    """CSV of the comparisons (one row per measure)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["measure", "n_data", "n_model", "mean_data", "mean_model", "welch_t", "p", "cohens_d",
                     "d_ci_low", "d_ci_high", "matched"])
    for c in comparisons:
        writer.writerow([c.measure, c.n_data, c.n_model, f"{c.mean_data:.4g}", f"{c.mean_model:.4g}", f"{c.t:.4g}",
                         f"{c.p:.3g}", f"{c.d:.3g}", f"{c.d_low:.3g}", f"{c.d_high:.3g}",
                         c.matched])
    return out.getvalue()
