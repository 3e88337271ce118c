"""Sleepiness model: probability of high self-reported sleepiness (KSS >= 7) from daily, roster and TPM features.

Model: ``Pipeline(SimpleImputer(median, missing indicators) -> StandardScaler -> LogisticRegression)`` (or
``HistGradientBoostingClassifier`` with ``kind="gbm"``), wrapped in ``CalibratedClassifierCV`` (sigmoid/Platt)
whose internal folds are grouped by participant (``GroupKFold``) so calibration never sees a training
participant's own rows.  The baseline is the three-process model alone: its predicted KSS mapped to a probability
by a 1-D logistic calibration ``P = 1/(1 + exp(-(a + b·KSS_pred)))`` fitted on the same training folds.

Input frame columns (`DEFAULT_FEATURES`; names as in ``derived.daily_features`` / ``derived.duty_features``;
NaN = not computable, imputed by the median of the training data plus a missing indicator):

========================  ======  ==========================================================================
column                    unit    meaning
========================  ======  ==========================================================================
``kss_pred``              KSS     TPM-predicted KSS at the time of the self-report (models.three_process)
``tst_min``               min     total sleep time of the sleep day
``se_pct``                %       sleep efficiency of the main sleep
``debt_net_7d_h``         h       7-day net sleep debt (science.md §2.3)
``sri_14d``               –       sleep regularity index, 14-day window
``ln_rmssd``              ln ms   nightly lnRMSSD
``resting_hr_bpm``        bpm     resting heart rate
``length_h``              h       length of the duty on that day (0 on rest days)
``rest_gap_h``            h       rest before that duty
``night_duty``            0/1     night duty (science.md §5)
``quick_return``          0/1     rest gap < 11 h
``time_awake_end_h``      h       time awake at the end of the duty
========================  ======  ==========================================================================

References
----------
Åkerstedt T et al. (2014) J Sleep Res 23:240 (KSS >= 7); Platt J (1999) probabilistic outputs for SVMs;
Niculescu-Mizil A, Caruana R (2005) ICML (calibration); scikit-learn user guide §1.16 (probability calibration).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from sklearn.base import ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, roc_auc_score
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

MODEL_VERSION = "sleepiness-1"
TPM_COLUMN = "kss_pred"
DEFAULT_FEATURES: tuple[str, ...] = (
    TPM_COLUMN, "tst_min", "se_pct", "debt_net_7d_h", "sri_14d", "ln_rmssd", "resting_hr_bpm",
    "length_h", "rest_gap_h", "night_duty", "quick_return", "time_awake_end_h",
)
Kind = Literal["logistic", "gbm"]


def build_pipeline(kind: Kind = "logistic", seed: int = 0) -> Pipeline:
    """Imputer (median + missing indicators) -> scaler -> classifier (``logistic`` or ``gbm``)."""
    if kind == "logistic":
        clf: ClassifierMixin = LogisticRegression(C=1.0, max_iter=1000)
    elif kind == "gbm":
        clf = HistGradientBoostingClassifier(max_iter=100, learning_rate=0.05, max_leaf_nodes=15, random_state=seed)
    else:
        raise ValueError(f"kind must be 'logistic' or 'gbm', got {kind!r}")
    return Pipeline([("impute", SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True)),
                     ("scale", StandardScaler()), ("classify", clf)])


@dataclass(frozen=True)
class SleepinessModel:
    """A fitted, calibrated classifier and the feature columns it expects (in order)."""

    estimator: CalibratedClassifierCV
    features: tuple[str, ...]
    model_version: str = MODEL_VERSION

    def predict_proba(self, frame: pd.DataFrame) -> NDArray[np.float64]:
        """P(KSS >= 7) per row of ``frame`` (must hold every column of ``features``)."""
        return np.asarray(self.estimator.predict_proba(_matrix(frame, self.features))[:, 1], dtype=np.float64)


def _matrix(frame: pd.DataFrame, features: tuple[str, ...]) -> pd.DataFrame:
    missing = [c for c in features if c not in frame.columns]
    if missing:
        raise ValueError(f"frame lacks feature columns {missing}")
    return frame.loc[:, list(features)].astype(np.float64)


def _grouped_splits(y: NDArray[np.int_], groups: NDArray[np.generic], n_splits: int
                    ) -> list[tuple[NDArray[np.int_], NDArray[np.int_]]]:
    n = min(n_splits, len(np.unique(groups)))
    if n < 2:
        raise ValueError("need at least 2 participants (groups) for grouped cross-validation")
    return list(GroupKFold(n_splits=n).split(np.zeros((y.size, 1)), y, groups))


def fit(frame: pd.DataFrame, y: ArrayLike, groups: ArrayLike, *, features: tuple[str, ...] = DEFAULT_FEATURES,
        kind: Kind = "logistic", n_splits: int = 5, seed: int = 0) -> SleepinessModel:
    """Fit the calibrated model; calibration folds are grouped by participant (``groups``).

    Parameters
    ----------
    frame : DataFrame
        One row per self-report with the ``features`` columns.
    y : array_like of {0, 1}
        1 if the reported KSS >= 7.
    groups : array_like
        Participant of each row.
    """
    target = np.asarray(y, dtype=np.int_)
    splits = _grouped_splits(target, np.asarray(groups), n_splits)
    model = CalibratedClassifierCV(build_pipeline(kind, seed), method="sigmoid", cv=splits)
    model.fit(_matrix(frame, features), target)
    return SleepinessModel(model, tuple(features))


def fit_tpm_baseline(kss_pred: ArrayLike, y: ArrayLike) -> LogisticRegression:
    """1-D logistic calibration of TPM-predicted KSS to P(KSS >= 7) (unpenalised)."""
    x = np.asarray(kss_pred, dtype=np.float64).reshape(-1, 1)
    return LogisticRegression(C=np.inf).fit(np.nan_to_num(x, nan=float(np.nanmedian(x))), np.asarray(y))


@dataclass(frozen=True)
class Evaluation:
    """Held-out (grouped cross-validation) ROC AUC and Brier score of the model and of the TPM alone."""

    roc_auc: float
    brier: float
    tpm_roc_auc: float
    tpm_brier: float
    n_rows: int
    n_groups: int
    n_splits: int


def evaluate(frame: pd.DataFrame, y: ArrayLike, groups: ArrayLike, *,
             features: tuple[str, ...] = DEFAULT_FEATURES, kind: Kind = "logistic", n_splits: int = 5,
             seed: int = 0) -> Evaluation:
    """Outer ``GroupKFold``: fit on some participants, score on the others (model vs TPM-only baseline).

    ROC AUC (Hanley & McNeil 1982) and Brier score ``mean((p - y)²)`` (Brier 1950) over all held-out rows.
    """
    target = np.asarray(y, dtype=np.int_)
    g = np.asarray(groups)
    prob = np.empty(target.size)
    base = np.empty(target.size)
    splits = _grouped_splits(target, g, n_splits)
    for train, test in splits:
        model = fit(frame.iloc[train], target[train], g[train], features=features, kind=kind, n_splits=n_splits,
                    seed=seed)
        prob[test] = model.predict_proba(frame.iloc[test])
        kss = frame[TPM_COLUMN].to_numpy(dtype=np.float64)
        calib = fit_tpm_baseline(kss[train], target[train])
        test_kss = np.nan_to_num(kss[test], nan=float(np.nanmedian(kss[train])))
        base[test] = calib.predict_proba(test_kss.reshape(-1, 1))[:, 1]
    return Evaluation(float(roc_auc_score(target, prob)), float(brier_score_loss(target, prob)),
                      float(roc_auc_score(target, base)), float(brier_score_loss(target, base)),
                      int(target.size), int(np.unique(g).size), len(splits))
