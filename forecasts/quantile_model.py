"""Quantile regression with conformal calibration of the P10-P90 band, per lead time.

Three scikit-learn ``HistGradientBoostingRegressor(loss="quantile")`` models (P10, P50, P90)
on a feature matrix whose rows are (issue time, lead time) pairs. The band is then calibrated
on the most recent rows held out from training (conformalised quantile regression, Romano et
al. 2019): per lead-time bucket, P10 and P90 move out (or in) by the quantile of the
conformity score ``max(q10 - y, y - q90)`` that gives 80 % coverage on the held-out rows.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass, field

import numpy as np
from sklearn.ensemble import HistGradientBoostingRegressor
from threadpoolctl import ThreadpoolController

# Lead-time bucket edges in hours, shared with the backtest report.
LEAD_EDGES_H = (0.0, 1.0, 2.0, 4.0, 8.0, 12.0, 24.0, np.inf)
TARGET_COVERAGE = 0.8


@functools.cache
def _controller() -> ThreadpoolController:
    return ThreadpoolController()


def _threads(n: int | None):
    """Limit OpenMP threads to ``n`` (None: leave as is). A small prediction is faster on one
    thread, and on a busy machine OpenMP spin-waiting can make two threads several times
    slower than one."""
    if n is None:
        return contextlib.nullcontext()
    return _controller().limit(limits=n, user_api="openmp")


def sample_leads(rng: np.random.Generator, n: int, max_lead_steps: int) -> np.ndarray:
    """Lead times (steps) for ``n`` training rows: half uniform over the first four hours
    (at 15 min), half uniform over ``0..max_lead_steps-1``, so short leads, where recent
    measurements matter most, get enough rows."""
    short = rng.integers(0, min(16, max_lead_steps), size=n)
    long = rng.integers(0, max_lead_steps, size=n)
    return np.where(rng.random(n) < 0.5, short, long)


def lead_bucket(lead_h: np.ndarray) -> np.ndarray:
    """Index of the :data:`LEAD_EDGES_H` bucket each lead time (hours, >= 0) falls in."""
    return np.searchsorted(np.asarray(LEAD_EDGES_H[1:-1]), np.asarray(lead_h), side="right")


@dataclass
class QuantileModel:
    """P10/P50/P90 gradient-boosted models plus a per-lead-bucket band offset.

    Parameters
    ----------
    max_iter, learning_rate, max_leaf_nodes, min_samples_leaf : boosting settings
        (scikit-learn's meaning); large leaves regularise noisy targets such as PV.
    calib_frac : share of rows (the latest issue times) held out to calibrate the band.
    residual : the target is a correction to a base forecast; then, per lead bucket, the
        held-out rows also choose how much of the P50 correction to keep (0, 1/2 or 1), so
        that a correction that does not generalise falls back to the base.
    seed : random seed for the boosting's subsampling of bins.
    fit_threads, predict_threads : OpenMP threads (None: all cores).
    """

    max_iter: int = 150
    learning_rate: float = 0.1
    max_leaf_nodes: int = 31
    min_samples_leaf: int = 40
    calib_frac: float = 0.2
    seed: int = 0
    residual: bool = False
    fit_threads: int | None = None
    predict_threads: int | None = 1
    categorical: tuple[int, ...] = ()
    models: list[HistGradientBoostingRegressor] = field(default_factory=list)
    offsets: np.ndarray = field(default_factory=lambda: np.zeros(len(LEAD_EDGES_H) - 1))
    # Features that were all NaN in training (e.g. no temperature): ignored in predictions.
    dead_cols: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    p50_weights: np.ndarray = field(default_factory=lambda: np.ones(len(LEAD_EDGES_H) - 1))

    def _new(self, q: float) -> HistGradientBoostingRegressor:
        return HistGradientBoostingRegressor(
            loss="quantile",
            quantile=q,
            max_iter=self.max_iter,
            learning_rate=self.learning_rate,
            max_leaf_nodes=self.max_leaf_nodes,
            min_samples_leaf=self.min_samples_leaf,
            early_stopping=False,
            categorical_features=list(self.categorical) or None,
            random_state=self.seed,
        )

    def fit(
        self, X: np.ndarray, y: np.ndarray, lead_h: np.ndarray, order: np.ndarray
    ) -> QuantileModel:
        """Fit on rows ``X`` (features), ``y`` (target), ``lead_h`` (hours) and ``order``
        (issue time of the row, any monotone number: the largest ``calib_frac`` calibrate)."""
        n = len(y)
        self.dead_cols = ~np.any(np.isfinite(X), axis=0)
        X = self._mask(X)
        cut = np.quantile(order, 1.0 - self.calib_frac) if n >= 500 else np.inf
        train = order < cut
        if train.sum() < 200:
            train = np.ones(n, dtype=bool)
        with _threads(self.fit_threads):
            self.models = [self._new(q).fit(X[train], y[train]) for q in (0.1, 0.5, 0.9)]
        self.offsets = np.zeros(len(LEAD_EDGES_H) - 1)
        calib = ~train
        if calib.sum() >= 100:
            q10, q50, q90 = self._raw(X[calib])
            if self.residual:
                self._choose_p50_weights(q50, y[calib], lead_bucket(lead_h[calib]))
            score = np.maximum(q10 - y[calib], y[calib] - q90)
            buckets = lead_bucket(lead_h[calib])
            overall = _conformal_quantile(score)
            for b in range(len(self.offsets)):
                s = score[buckets == b]
                self.offsets[b] = _conformal_quantile(s) if len(s) >= 50 else overall
        return self

    def _choose_p50_weights(self, q50: np.ndarray, y: np.ndarray, buckets: np.ndarray) -> None:
        self.p50_weights = np.ones(len(LEAD_EDGES_H) - 1)
        for b in range(len(self.p50_weights)):
            sel = buckets == b
            if sel.sum() >= 50:
                errs = [np.mean(np.abs(a * q50[sel] - y[sel])) for a in (0.0, 0.5, 1.0)]
                self.p50_weights[b] = (0.0, 0.5, 1.0)[int(np.argmin(errs))]

    def _mask(self, X: np.ndarray) -> np.ndarray:
        if self.dead_cols.any():
            X = X.copy()
            X[:, self.dead_cols] = 0.0
        return X

    def _raw(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not self.models:
            raise RuntimeError("QuantileModel: fit before predict")
        with _threads(self.predict_threads):
            q10, q50, q90 = (m.predict(X) for m in self.models)
        return q10, q50, q90

    def predict(self, X: np.ndarray, lead_h: np.ndarray) -> np.ndarray:
        """Calibrated quantiles, shape (3, rows), ordered per row."""
        raw = np.sort(np.vstack(self._raw(self._mask(X))), axis=0)
        buckets = lead_bucket(lead_h)
        raw[1] = np.clip(raw[1] * self.p50_weights[buckets], raw[0], raw[2])
        off = self.offsets[buckets]
        low = np.minimum(raw[0] - off, raw[1])
        high = np.maximum(raw[2] + off, raw[1])
        return np.vstack([low, raw[1], high])


def _conformal_quantile(score: np.ndarray) -> float:
    n = len(score)
    if n == 0:
        return 0.0
    level = min(1.0, TARGET_COVERAGE * (n + 1) / n)
    return float(np.quantile(score, level))
