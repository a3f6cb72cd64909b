"""Threshold suggestions from the rule scores of confirmed and dismissed alerts. Pure: score lists in.

Called by detection.learning.tuning for each (camera, zone, event type) of a site. The suggestion
for a chosen recall r of the n confirmed alerts is the highest threshold that keeps ceil(r * n)
of them: the ceil(r * n)-th highest confirmed score, rounded down to the hundredth. It is only
suggested when it is above the current threshold and would have removed at least one false alarm
(a lower threshold would raise alerts nobody has seen, so their outcome is unknown).

What it would have changed is counted on the same alerts: the false alarms whose score stayed
below it (no alert would have been raised) and the confirmed alerts lost that way.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT_RECALL = 0.95
MIN_CONFIRMED = 5
STEP = 0.01


@dataclass(frozen=True)
class Suggestion:
    current: float
    suggested: float | None  # None: keep the current threshold (`reason` says why)
    recall: float
    confirmed: int
    dismissed: int
    confirmed_lost: int = 0
    false_alarms_removed: int = 0
    reason: str = ""

    @property
    def confirmed_kept(self) -> int:
        return self.confirmed - self.confirmed_lost


def suggest_threshold(*, confirmed: Sequence[float], dismissed: Sequence[float], current: float,
                      recall: float = DEFAULT_RECALL, min_confirmed: int = MIN_CONFIRMED) -> Suggestion:
    if not 0.0 < recall <= 1.0:
        raise ValueError(f"recall must be above 0 and at most 1, not {recall}")
    base = Suggestion(current=current, suggested=None, recall=recall, confirmed=len(confirmed),
                      dismissed=len(dismissed))
    if len(confirmed) < min_confirmed:
        return _keep(base, f"only {len(confirmed)} confirmed alert{'s' if len(confirmed) != 1 else ''}; a suggestion "
                           f"needs at least {min_confirmed}")
    keep = math.ceil(recall * len(confirmed) - 1e-9)
    kth = sorted(confirmed, reverse=True)[keep - 1]
    candidate = math.floor(round(kth / STEP, 6)) * STEP
    candidate = round(candidate, 2)
    removed = sum(score < candidate for score in dismissed)
    if candidate <= current:
        return _keep(base, f"keeping {recall:.0%} of the confirmed alerts needs a threshold no higher than "
                           f"{candidate:.2f}, and it is {current:.2f} already")
    if removed == 0:
        return _keep(base, f"raising it to {candidate:.2f} would have removed no false alarm")
    return Suggestion(current=current, suggested=candidate, recall=recall, confirmed=len(confirmed),
                      dismissed=len(dismissed), confirmed_lost=sum(score < candidate for score in confirmed),
                      false_alarms_removed=removed)


def effect(*, confirmed: Sequence[float], dismissed: Sequence[float], threshold: float) -> tuple[int, int]:
    """(confirmed lost, false alarms removed) had the threshold been `threshold`."""
    return sum(s < threshold for s in confirmed), sum(s < threshold for s in dismissed)


def _keep(base: Suggestion, reason: str) -> Suggestion:
    return Suggestion(current=base.current, suggested=None, recall=base.recall, confirmed=base.confirmed,
                      dismissed=base.dismissed, reason=reason)
