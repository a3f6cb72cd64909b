"""Time-ordered cross-validation of the learned model against the rule scores, the final model, and
the deploy gate.

Called by detection.learning.train (and the tests and benchmark, on simulated examples). Pure
apart from the training itself: examples in, a report and the model to deploy out.

Held out by time: the examples, oldest first, are cut in two; the newer half is cut into `folds`
test blocks, and each fold trains on everything before its test block, so a model is only ever
judged on alerts reviewed after everything it learned from (as it will be once deployed). The
held-out scores of all folds are pooled and compared with the rule scores of the same alerts:

  the rules' operating point   every alert was raised: precision is the share confirmed, recall 1
  the rules at best            the rule threshold raised to the lowest held-out confirmed score:
                               the false alarms a higher rule threshold alone would have removed
  the model's operating point  the learned threshold: THRESHOLD_SAFETY times the lowest confirmed
                               score, held-out or given by the final model (trained on every
                               example, the one deployed), so it keeps every confirmed theft, with room

The gate lets a model through only when, on held-out alerts, (1) it ranks confirmed above
dismissed alerts better than the rule score does by AUC_MARGIN, (2) better than chance with
confidence (the AUC less 1.96 standard errors above 0.5), (3) better than the rule score in at
least three quarters of the folds, not thanks to one lucky period, and (4) at its threshold it
removes more false alarms than the rules at best, and at least MIN_SUPPRESSED_SHARE of them.
"""
from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from detection.learning.features import Features
from detection.learning.model import LearnedScorer, TrainConfig, fit, predict

DEFAULT_FOLDS = 4
MIN_PER_CLASS = 10
AUC_MARGIN = 0.05
MIN_SUPPRESSED_SHARE = 0.1
THRESHOLD_SAFETY = 0.9


@dataclass(frozen=True)
class Example:
    """One reviewed alert (or a simulated one). `at` is the event start, epoch seconds."""

    key: int
    at: float
    confirmed: bool
    rule_score: float
    features: Features


@dataclass
class Evaluation:
    report: dict[str, Any]
    passed: bool
    reasons: list[str] = field(default_factory=list)  # why the gate refused, in plain words
    threshold: float | None = None  # set when the gate passed
    net: LearnedScorer | None = None  # the final model, trained on every example (None: none could be)


def too_few(*, examples: int, confirmed: int, min_examples: int, where: str) -> str | None:
    """The refusal for too few examples, or None when there are enough."""
    dismissed = examples - confirmed
    if examples >= min_examples and confirmed >= MIN_PER_CLASS and dismissed >= MIN_PER_CLASS:
        return None
    return (f"{where} has {examples} reviewed alert{'s' if examples != 1 else ''} with a stored person track "
            f"({confirmed} confirmed, {dismissed} dismissed); training needs at least {min_examples}, with at least "
            f"{MIN_PER_CLASS} confirmed and {MIN_PER_CLASS} dismissed. Review more alerts on the dashboard and run "
            "train_detector again.")


def stack(examples: Sequence[Example]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    sequences = np.stack([e.features.sequence for e in examples]).astype(np.float32)
    tabular = np.stack([e.features.tabular for e in examples]).astype(np.float32)
    labels = np.array([e.confirmed for e in examples], dtype=np.float32)
    return sequences, tabular, labels


def evaluate(examples: Sequence[Example], *, folds: int = DEFAULT_FOLDS, config: TrainConfig | None = None) -> Evaluation:
    """Cross-validate by time and apply the gate. The examples need not be sorted."""
    config = config or TrainConfig()
    ordered = sorted(examples, key=lambda e: (e.at, e.key))
    first_test = len(ordered) // 2
    tests = np.array_split(np.arange(first_test, len(ordered)), folds)
    sequences, tabular, labels = stack(ordered)
    rules = np.array([e.rule_score for e in ordered])
    held_out: list[int] = []
    scores: list[float] = []
    fold_reports = []
    started = time.perf_counter()
    for test_idx in tests:
        train_idx = np.arange(int(test_idx[0])) if len(test_idx) else np.arange(0)
        if len(test_idx) == 0 or len(set(labels[train_idx])) < 2:
            continue  # a fold without both kinds to learn from says nothing
        fold_net = fit(sequences[train_idx], tabular[train_idx], labels[train_idx], config)
        fold_scores = predict(fold_net, sequences[test_idx], tabular[test_idx])
        held_out.extend(int(i) for i in test_idx)
        scores.extend(float(s) for s in fold_scores)
        fold_reports.append({
            "train": len(train_idx), "test": len(test_idx),
            "test_from": ordered[int(test_idx[0])].at, "test_to": ordered[int(test_idx[-1])].at,
            "confirmed": int(labels[test_idx].sum()),
            "model_auc": _round(auc(fold_scores, labels[test_idx])), "rules_auc": _round(auc(rules[test_idx],
                                                                                              labels[test_idx])),
        })
    seconds = time.perf_counter() - started
    net = fit(sequences, tabular, labels, config) if len(set(labels)) == 2 else None
    final_seconds = time.perf_counter() - started - seconds
    y = labels[held_out].astype(bool)
    model_scores = np.array(scores)
    rule_scores = rules[held_out]
    report: dict[str, Any] = {
        "examples": len(ordered), "confirmed": int(labels.sum()), "dismissed": int(len(labels) - labels.sum()),
        "first_event": ordered[0].at if ordered else None, "last_event": ordered[-1].at if ordered else None,
        "folds": fold_reports, "held_out": len(held_out), "cross_validation_seconds": round(seconds, 2),
        "final_training_seconds": round(final_seconds, 2), "config": {"folds": folds, **asdict(config)},
    }
    if len(held_out) == 0 or y.all() or not y.any():
        reason = ("the held-out alerts do not include both confirmed and dismissed ones, so the model cannot be "
                  "compared with the rules; review more alerts and train again.")
        report["gate"] = {"passed": False, "reasons": [reason]}
        return Evaluation(report=report, passed=False, reasons=[reason], net=net)
    assert net is not None  # both kinds are held out, so both are among the examples

    model_auc, model_se = auc(model_scores, y), auc_standard_error(model_scores, y)
    rules_auc = auc(rule_scores, y)
    final_scores = predict(net, sequences, tabular)
    lowest_held_out, lowest_final = float(model_scores[y].min()), float(final_scores[labels == 1].min())
    threshold = round(THRESHOLD_SAFETY * min(lowest_held_out, lowest_final), 4)
    rules_best = float(rule_scores[y].min())
    model_point = operating_point(model_scores, y, threshold)
    rules_point = operating_point(rule_scores, y, -math.inf)  # every alert raised
    rules_best_point = operating_point(rule_scores, y, rules_best)
    report.update({
        "rules": {**rules_point, "auc": _round(rules_auc), "best_threshold": _round(rules_best),
                  "best": rules_best_point},
        "model": {**model_point, "auc": _round(model_auc), "auc_standard_error": _round(model_se),
                  "threshold": _round(threshold), "lowest_confirmed_held_out": _round(lowest_held_out),
                  "lowest_confirmed_final_model": _round(lowest_final)},
    })
    reasons = []
    if not model_auc >= rules_auc + AUC_MARGIN:
        reasons.append(f"on held-out alerts the model tells confirmed thefts from false alarms no better than the rule "
                       f"scores do (AUC {model_auc:.2f} against {rules_auc:.2f}; it must be at least {AUC_MARGIN:.2f} "
                       "higher).")
    if not model_auc - 1.96 * model_se > 0.5:
        reasons.append(f"on held-out alerts the model is not clearly better than chance (AUC {model_auc:.2f} ± "
                       f"{1.96 * model_se:.2f}).")
    won = sum(1 for f in fold_reports if f["model_auc"] is not None and f["rules_auc"] is not None
              and f["model_auc"] > f["rules_auc"])
    if not won * 4 >= len(fold_reports) * 3:
        reasons.append(f"the model ranked alerts better than the rule scores in only {won} of {len(fold_reports)} "
                       "periods held out; it must in at least three quarters of them.")
    removed, false_alarms = model_point["false_alarms_suppressed"], model_point["false_alarms"]
    needed = max(rules_best_point["false_alarms_suppressed"] + 1, math.ceil(MIN_SUPPRESSED_SHARE * false_alarms))
    if removed < needed:
        reasons.append(f"keeping every held-out confirmed theft, the model would have removed {removed} of "
                       f"{false_alarms} false alarms; it must remove at least {needed} ({MIN_SUPPRESSED_SHARE:.0%} of "
                       f"them, and more than the {rules_best_point['false_alarms_suppressed']} that raising the rule "
                       f"threshold to {rules_best:.2f} would).")
    passed = not reasons
    report["gate"] = {"passed": passed, "reasons": reasons}
    return Evaluation(report=report, passed=passed, reasons=reasons, threshold=threshold if passed else None,
                      net=net)


def operating_point(scores: np.ndarray, confirmed: np.ndarray, threshold: float) -> dict[str, Any]:
    """What raising alerts only at `scores >= threshold` would have done to these alerts."""
    kept = scores >= threshold
    kept_confirmed = int((kept & confirmed).sum())
    return {
        "precision": _round(kept_confirmed / kept.sum()) if kept.any() else None,
        "recall": _round(kept_confirmed / confirmed.sum()) if confirmed.any() else None,
        "alerts_kept": int(kept.sum()),
        "confirmed_lost": int((~kept & confirmed).sum()),
        "false_alarms": int((~confirmed).sum()),
        "false_alarms_suppressed": int((~kept & ~confirmed).sum()),
    }


def auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """The probability that a random positive scores above a random negative (ties count half)."""
    positive = np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = _average_ranks(np.asarray(scores, dtype=float))
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def auc_standard_error(scores: np.ndarray, positive: np.ndarray) -> float:
    """Hanley and McNeil's standard error of the AUC."""
    positive = np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    a = auc(scores, positive)
    if math.isnan(a):
        return math.nan
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    variance = (a * (1 - a) + (n_pos - 1) * (q1 - a * a) + (n_neg - 1) * (q2 - a * a)) / (n_pos * n_neg)
    return math.sqrt(max(variance, 0.0))


def _average_ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values))
    sorted_values = values[order]
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and sorted_values[j + 1] == sorted_values[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def _round(value: float) -> float | None:
    return None if value is None or math.isnan(value) else round(float(value), 4)
