"""Calibrated scores: a temperature and a prior shift folded into the classifier head, and a stated threshold.

A network trained with cross-entropy is usually overconfident: a score of 0.99 is right far less
than 99% of the time. Temperature scaling (Guo et al., 2017) divides the logits by one scalar T
fitted on the validation split; it never changes the ranking (ROC-AUC). A temperature alone cannot
fix a shifted class prior, and training changes the prior whenever it relabels images (self-made
fakes turn a share of the training reals into `ai`, so the network learns P(ai) under class odds that
validation does not have). So the logit gap ai - real is fitted as `gap / T + bias` (Platt scaling,
two parameters, still monotone: ranking unchanged). Because the head is linear both fold into it:
weight and bias divided by T, then +bias/2 on the `ai` row and -bias/2 on the `real` row, so
`pipeline("image-classification")` returns calibrated scores with no extra code.

The fit cannot saturate on a validation split the network separates perfectly: it minimises the
cross-entropy against Platt's smoothed targets ((N+ + 1) / (N+ + 2) for the ai images, 1 / (N- + 2) for
the reals: what N observations justify, never exactly 0 or 1), the temperature may sharpen the network's
scores at most TEMPERATURE_BOUNDS[0]-fold and the shift is bounded. A validation split that holds processed
reals (`camera_validation`) is not separable in the first place. So the stored threshold stays a
probability a person can read, and small backend differences cannot flip a verdict.

The decision threshold (P(ai) >= threshold -> "ai") is chosen on validation, on the calibrated
scores, by a stated rule, and stored in the model config as `decision_threshold` together with
`decision_threshold_rule`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from scipy.optimize import minimize, minimize_scalar
from scipy.stats import beta

from modeling.labels import AI_LABEL_ID, DEFAULT_THRESHOLD, DEFAULT_THRESHOLD_RULE
from modeling.metrics import ai_scores, brier_score, expected_calibration_error, negative_log_likelihood

logger = logging.getLogger(__name__)

DEFAULT_RULE = DEFAULT_THRESHOLD_RULE
TEMPERATURE_BOUNDS = (0.25, 20.0)  # at most 4x sharper than the network's own scores
BIAS_BOUND = 8.0  # |prior shift| on the logit gap: odds moved at most e^8-fold
SCORE_RESOLUTION = 1e-6  # P(ai) differences below this are float32 noise, not a ranking
# a kind's validation rate is an estimate from its own few reals (80 in the demo): the threshold also keeps the
# one-sided upper confidence bound of every kind's false-positive rate at most `kind_fpr_bound`, at this confidence
KIND_BOUND_CONFIDENCE = 0.95


# --------------------------------------------------------------------------- temperature


def platt_targets(labels: np.ndarray) -> np.ndarray:
    """Platt's smoothed targets: (N+ + 1) / (N+ + 2) for ai images, 1 / (N- + 2) for reals."""
    labels = np.asarray(labels, dtype=int)
    positives, negatives = int((labels == AI_LABEL_ID).sum()), int((labels != AI_LABEL_ID).sum())
    return np.where(labels == AI_LABEL_ID, (positives + 1) / (positives + 2), 1 / (negatives + 2))


def soft_nll(logits: np.ndarray, targets: np.ndarray) -> float:
    """Mean cross-entropy of P(ai) = softmax(logits)[ai] against soft targets (numerically stable)."""
    logits = np.asarray(logits, dtype=np.float64)
    gap = logits[:, AI_LABEL_ID] - logits[:, 1 - AI_LABEL_ID]
    return float(np.mean(targets * np.logaddexp(0.0, -gap) + (1 - targets) * np.logaddexp(0.0, gap)))


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The T in TEMPERATURE_BOUNDS minimising the smoothed-target NLL of logits / T (1-D, convex in log T)."""
    logits = np.asarray(logits, dtype=np.float64)
    targets = platt_targets(labels)
    lo, hi = (math.log(b) for b in TEMPERATURE_BOUNDS)
    result = minimize_scalar(
        lambda log_t: soft_nll(logits / math.exp(log_t), targets),
        bounds=(lo, hi),
        method="bounded",
        options={"xatol": 1e-6},
    )
    temperature = float(math.exp(result.x))
    if min(abs(result.x - lo), abs(result.x - hi)) < 1e-3:
        logger.warning("fitted temperature %.3g sits at its bound %s: validation set too small or one-sided?",
                       temperature, TEMPERATURE_BOUNDS)
    return temperature


def shift_logits(logits: np.ndarray, bias: float) -> np.ndarray:
    """Two-column logits with the gap ai - real moved by `bias` (+bias/2 on ai, -bias/2 on real)."""
    shift = np.full(2, -bias / 2)
    shift[AI_LABEL_ID] = bias / 2
    return np.asarray(logits, dtype=np.float64) + shift


def apply_scaling(logits: np.ndarray, temperature: float, bias: float = 0.0) -> np.ndarray:
    """What the folded head gives for the raw logits: logits / T, then the prior shift."""
    return shift_logits(np.asarray(logits, dtype=np.float64) / temperature, bias)


def undo_scaling(logits: np.ndarray, temperature: float, bias: float = 0.0) -> np.ndarray:
    """The raw logits behind a folded head's logits (for the P(ai) the model gave before calibration)."""
    return shift_logits(logits, -bias) * temperature


def fit_scaling(logits: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(T, bias) minimising the smoothed-target NLL of `apply_scaling` within the bounds; starts from the
    temperature-only fit."""
    logits = np.asarray(logits, dtype=np.float64)
    targets = platt_targets(labels)
    start = math.log(fit_temperature(logits, labels))
    bounds = [tuple(math.log(b) for b in TEMPERATURE_BOUNDS), (-BIAS_BOUND, BIAS_BOUND)]
    result = minimize(lambda p: soft_nll(apply_scaling(logits, math.exp(p[0]), p[1]), targets),
                      x0=np.array([start, 0.0]), bounds=bounds, method="L-BFGS-B")
    return float(math.exp(result.x[0])), float(result.x[1])


def classifier_head(model: torch.nn.Module) -> torch.nn.Linear:
    """The final linear layer whose output is the logits (`model.classifier` in transformers)."""
    head = getattr(model, "classifier", None)
    if not isinstance(head, torch.nn.Linear):
        raise TypeError(f"{type(model).__name__} has no linear `classifier` head to fold a temperature into")
    return head


def fold_temperature(model: torch.nn.Module, temperature: float, bias: float = 0.0) -> None:
    """Fold `apply_scaling` into the head in place: weight and bias / T, then the prior shift on the bias."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    head = classifier_head(model)
    if bias and (head.bias is None or head.out_features != 2):
        raise TypeError("a prior shift needs a two-way classifier head with a bias")
    with torch.no_grad():
        head.weight.div_(temperature)
        if head.bias is not None:
            head.bias.div_(temperature)
            head.bias.add_(torch.from_numpy(shift_logits(np.zeros(2), bias)).to(head.bias))
    # cumulative: calibrating an already calibrated model composes the maps (gap / T0 + b0) / T + b
    previous_t = float(getattr(model.config, "calibration_temperature", None) or 1.0)
    previous_b = float(getattr(model.config, "calibration_bias", None) or 0.0)
    model.config.calibration_temperature = previous_t * temperature
    model.config.calibration_bias = previous_b / temperature + bias


# --------------------------------------------------------------------------- threshold


def parse_rule(rule: str) -> tuple[str, float | None]:
    """'max_accuracy' or 'target_fpr=0.05' -> (name, value); anything else is a ValueError."""
    if rule == "max_accuracy":
        return rule, None
    name, _, value = rule.partition("=")
    if name == "target_fpr":
        try:
            target = float(value)
        except ValueError:
            target = -1.0
        if 0.0 <= target < 1.0:
            return name, target
    raise ValueError(f"unknown threshold rule {rule!r}; use 'max_accuracy' or 'target_fpr=<rate in [0, 1)>'")


def _candidate_thresholds(scores: np.ndarray) -> np.ndarray:
    """Midpoints between consecutive distinct scores (margin on both sides), the ends, and 0.5.

    Scores closer than SCORE_RESOLUTION count as tied: a threshold between them would be decided by
    float32 rounding (batch size, process count, machine) rather than by the model."""
    unique = np.unique(scores)
    apart = np.diff(unique) > SCORE_RESOLUTION
    mids = ((unique[:-1] + unique[1:]) / 2)[apart]
    below_all, above_all = max(0.0, unique[0] - SCORE_RESOLUTION), unique[-1] + SCORE_RESOLUTION
    return np.unique(np.concatenate([mids, [below_all, above_all, DEFAULT_THRESHOLD]]))


def rate_upper_bound(called: np.ndarray, n: int, confidence: float = KIND_BOUND_CONFIDENCE) -> np.ndarray:
    """One-sided Clopper-Pearson upper bound of a rate from `called` of `n` (1 where every one was called):
    the highest true rate that shows `called` or fewer of `n` at least (1 - confidence) of the time."""
    called = np.asarray(called)
    safe = np.minimum(called, n - 1)  # beta's second parameter must stay positive; k == n is set to 1 below
    return np.where(called >= n, 1.0, beta.ppf(confidence, safe + 1, n - safe))


def choose_threshold(
    labels: np.ndarray, scores: np.ndarray, rule: str = DEFAULT_RULE, groups: Sequence[str] | None = None,
    group_bound: float | None = None,
) -> float:
    """Threshold on P(ai) chosen on validation by the rule.

    - max_accuracy: the highest accuracy; ties go to the threshold closest to 0.5.
    - target_fpr=r: the lowest threshold whose false-positive rate (real called ai) is <= r, which gives the
      highest detection rate allowed by that budget. With `groups` (a name per row, e.g. the processing each
      validation copy went through), the rate must hold in every group of reals, not only pooled: a kind of
      real photo the network finds hard cannot hide behind the easy ones. With `group_bound` too, each group's
      upper confidence bound (`rate_upper_bound`) must be <= group_bound: 4 of 80 meets a 5% rate, yet a true
      rate of 11% shows 4 or fewer of 80 one time in twenty. A group too small to bound even with none called (fewer
      than 29 reals for 10% at 95%) is held to the rate alone.
    """
    name, target = parse_rule(rule)
    labels = np.asarray(labels, dtype=int)
    scores = np.asarray(scores, dtype=np.float64)
    real = np.sort(scores[labels == 0])
    ai = np.sort(scores[labels == 1])
    if len(real) == 0 or len(ai) == 0:
        raise ValueError("choosing a threshold needs both real and ai images")
    t = _candidate_thresholds(scores)
    # score >= t is called ai: count by binary search instead of an N x T matrix
    fp = len(real) - np.searchsorted(real, t, side="left")
    tp = len(ai) - np.searchsorted(ai, t, side="left")
    if name == "max_accuracy":
        accuracy = (tp + len(real) - fp) / len(scores)
        best = np.flatnonzero(np.isclose(accuracy, accuracy.max(), rtol=0, atol=1e-12))
        return float(t[best[np.argmin(np.abs(t[best] - DEFAULT_THRESHOLD))]])
    allowed = fp / len(real) <= target + 1e-12
    if groups is not None:
        groups = np.asarray(groups)
        for group in np.unique(groups[labels == 0]):
            members = np.sort(scores[(labels == 0) & (groups == group)])
            called = len(members) - np.searchsorted(members, t, side="left")
            allowed &= called / len(members) <= target + 1e-12
            if group_bound is not None and rate_upper_bound(0, len(members)) <= group_bound:  # else too few to bound
                allowed &= rate_upper_bound(called, len(members)) <= group_bound + 1e-12
    return float(t[np.flatnonzero(allowed)].min())


def false_positive_rates(labels: np.ndarray, scores: np.ndarray, threshold: float,
                         groups: Sequence[str]) -> dict[str, float]:
    """Per group of real rows, the share called ai at `threshold` (what the group rule of `choose_threshold` holds)."""
    labels, scores, groups = np.asarray(labels), np.asarray(scores), np.asarray(groups)
    return {str(g) or "none": float(np.mean(scores[(labels == 0) & (groups == g)] >= threshold))
            for g in np.unique(groups[labels == 0])}


# --------------------------------------------------------------------------- the whole step


@dataclass
class CalibrationReport:
    """What calibration did, measured on the validation split it was fitted on."""

    temperature: float
    bias: float
    decision_threshold: float
    decision_threshold_rule: str
    n_images: int
    ece_before: float
    ece_after: float
    brier_before: float
    brier_after: float
    nll_before: float
    nll_after: float
    fitted_on: str = "validation"
    false_positive_rate_by_group: dict[str, float] | None = None  # validation reals per processing kind
    kind_fpr_bound: float | None = None  # what each kind's upper confidence bound was held to (None: not held)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def calibrate_model(
    model: torch.nn.Module, logits: np.ndarray, labels: np.ndarray, rule: str = DEFAULT_RULE,
    groups: Sequence[str] | None = None, group_bound: float | None = None,
) -> CalibrationReport | None:
    """Fit T and the prior shift on (logits, labels), fold them into `model`, pick and store the threshold
    (with `groups`, per group of reals, and `group_bound`, their confidence bound: see `choose_threshold`).

    Returns None (model unchanged) when the labels hold a single class: neither a temperature nor a
    threshold means anything then.
    """
    parse_rule(rule)  # fail on a typo before touching the model
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=int)
    if len(np.unique(labels)) < 2:
        logger.warning("calibration skipped: the validation split needs both real and ai images (got %d images)",
                       len(labels))
        return None
    temperature, bias = fit_scaling(logits, labels)
    calibrated = apply_scaling(logits, temperature, bias)
    before, after = ai_scores(logits), ai_scores(calibrated)
    group_bound = group_bound if groups is not None else None
    threshold = choose_threshold(labels, after, rule, groups, group_bound)
    fold_temperature(model, temperature, bias)
    model.config.decision_threshold = threshold
    model.config.decision_threshold_rule = rule
    report = CalibrationReport(
        temperature=temperature,
        bias=bias,
        decision_threshold=threshold,
        decision_threshold_rule=rule,
        n_images=len(labels),
        ece_before=expected_calibration_error(labels, before),
        ece_after=expected_calibration_error(labels, after),
        brier_before=brier_score(labels, before),
        brier_after=brier_score(labels, after),
        nll_before=negative_log_likelihood(logits, labels),
        nll_after=negative_log_likelihood(calibrated, labels),
        false_positive_rate_by_group=None if groups is None else false_positive_rates(labels, after, threshold, groups),
        kind_fpr_bound=group_bound,
    )
    logger.info(
        "calibration on %d validation images: T=%.3f, prior shift %+.3f, ECE %.4f -> %.4f, threshold %.4f (%s)",
        report.n_images, temperature, bias, report.ece_before, report.ece_after, threshold, rule,
    )
    return report
