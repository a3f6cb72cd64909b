"""Loss-prevention statistics for a set of sites over a period of site-local days: what the
statistics page shows managers to tune zones and to justify the system.

Every figure is counted by the database (GROUP BY, COUNT/SUM with FILTER), in a fixed number of
queries whatever the number of alerts: the sites' cameras, one per distinct time zone for the
days, one each for the camera, zone (and the zones' names) and event-type tables, one for cases,
three for the review times (the median and 90th percentile are read from the database's sort,
not from a list of every wait). Portable ORM only (SQLite and PostgreSQL), no raw SQL. On SQLite
the date arithmetic runs as Django's Python functions, row by row, so the same page is several
times slower there than on PostgreSQL (bench/stats_page.py).

A day is a day of the alert's own site: 23:30 in New York on 1 June is 1 June there, though it is
2 June in UTC. A period is a range of dates; each site's share of it runs from local midnight of
its first day to local midnight after its last.
"""
from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.db.models import Case as CaseWhen  # alerts.models.Case is the incident
from django.db.models import (
    Count,
    DecimalField,
    DurationField,
    ExpressionWrapper,
    F,
    IntegerField,
    Q,
    QuerySet,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from alerts.models import Alert, Case, CaseOutcome, ReviewStatus
from cameras.models import Camera, Site, Zone

DEFAULT_DAYS = 30
PRESET_DAYS = (7, 30, 90)
MAX_DAYS = 366

# Time from alert to review, in these buckets: (key, label, upper bound or None for no bound).
REVIEW_BUCKETS: tuple[tuple[str, str, timedelta | None], ...] = (
    ("lt5m", "< 5 min", timedelta(minutes=5)),
    ("5m-30m", "5–30 min", timedelta(minutes=30)),
    ("30m-2h", "30 min – 2 h", timedelta(hours=2)),
    ("2h-24h", "2–24 h", timedelta(days=1)),
    ("gt1d", "> 1 day", None),
)


@dataclass(frozen=True)
class Period:
    """Dates, both included, each a local day of the site it is applied to."""

    first: date
    last: date

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    def dates(self) -> list[date]:
        return [self.first + timedelta(days=i) for i in range(self.days)]


def site_today(*, sites: Iterable[Site], now: datetime | None = None) -> date:
    """Today at the sites: the latest of their local dates, so that no site's today is left out."""
    now = now or timezone.now()
    return max((now.astimezone(ZoneInfo(site.time_zone)).date() for site in sites), default=now.date())


def period_ending_today(*, days: int, sites: Sequence[Site], now: datetime | None = None) -> Period:
    """The last `days` days at the sites, today included."""
    today = site_today(sites=sites, now=now)
    return Period(first=today - timedelta(days=days - 1), last=today)


@dataclass(frozen=True)
class ReviewCounts:
    alerts: int
    confirmed: int
    dismissed: int

    @property
    def reviewed(self) -> int:
        return self.confirmed + self.dismissed

    @property
    def unreviewed(self) -> int:
        return self.alerts - self.reviewed

    @property
    def confirmation_rate(self) -> float | None:
        """Confirmed out of reviewed; None when nothing was reviewed (no rate, rather than 0 %)."""
        return self.confirmed / self.reviewed if self.reviewed else None


@dataclass(frozen=True)
class StatsRow:
    key: str  # stable across renders: tests and the CSV name rows by it
    label: str
    counts: ReviewCounts


@dataclass(frozen=True)
class CaseFigures:
    """Cases opened in the period (by created_at), and the value of the goods they name."""

    cases: int
    prevented: int
    prevented_value: Decimal
    prevented_unvalued: int  # theft-prevented cases with no estimated value: the value is at least the sum
    thefts: int
    theft_value: Decimal
    thefts_unvalued: int
    false_alarms: int
    undecided: int


@dataclass(frozen=True)
class ReviewTimes:
    """Time from detection to review of the period's reviewed alerts."""

    count: int
    median: timedelta | None
    p90: timedelta | None
    buckets: list[tuple[str, str, int]]  # (key, label, alerts)
    unreviewed: int  # the period's alerts nobody has reviewed yet

    @property
    def median_text(self) -> str:
        return duration_text(self.median)

    @property
    def p90_text(self) -> str:
        return duration_text(self.p90)


@dataclass(frozen=True)
class LossPreventionStats:
    sites: list[Site]
    period: Period
    per_day: list[tuple[date, int]]  # every day of the period, zeros included
    totals: ReviewCounts
    by_camera: list[StatsRow]
    by_zone: list[StatsRow]
    by_event_type: list[StatsRow]
    cases: CaseFigures
    review_times: ReviewTimes


def duration_text(value: timedelta | None) -> str:
    """45 s, 12 min, 3 h 05 min, 2 d 4 h."""
    if value is None:
        return "—"
    seconds = round(value.total_seconds())
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def _in_local_days(*, groups: dict[str, list[int]], key: str, field: str, period: Period) -> Q:
    """Rows whose `field` falls in the period's local days, where `groups` maps each time zone to
    the ids (`key`: camera or site) whose days are that zone's."""
    q = Q(pk__in=[])  # no ids at all: nothing (an empty Q would match everything)
    for zone_name, ids in groups.items():
        tz = ZoneInfo(zone_name)
        q |= Q(**{
            f"{key}__in": ids,
            f"{field}__gte": datetime.combine(period.first, time.min, tzinfo=tz),
            f"{field}__lt": datetime.combine(period.last + timedelta(days=1), time.min, tzinfo=tz),
        })
    return q


@dataclass(frozen=True)
class _Scope:
    """The sites and their cameras, read once: the alert queries filter on camera ids (one table,
    the (camera, detected_at) index, no join) and the tables take their names from here."""

    sites: list[Site]
    cameras: dict[int, Camera]  # each with .site set from `sites`

    @classmethod
    def of(cls, sites: Sequence[Site]) -> _Scope:
        by_id = {site.pk: site for site in sites}
        cameras = {}
        for camera in Camera.objects.filter(site_id__in=list(by_id)).order_by():
            camera.site = by_id[camera.site_id]
            cameras[camera.pk] = camera
        return cls(sites=list(sites), cameras=cameras)

    def cameras_by_time_zone(self) -> dict[str, list[int]]:
        groups: dict[str, list[int]] = defaultdict(list)
        for camera in self.cameras.values():
            groups[camera.site.time_zone].append(camera.pk)
        return groups

    def sites_by_time_zone(self) -> dict[str, list[int]]:
        groups: dict[str, list[int]] = defaultdict(list)
        for site in self.sites:
            groups[site.time_zone].append(site.pk)
        return groups

    def camera_label(self, camera_id: int) -> str:
        camera = self.cameras[camera_id]
        return f"{camera.site.name} / {camera.name}" if len(self.sites) > 1 else camera.name

    def alerts_in(self, period: Period, groups: dict[str, list[int]] | None = None) -> QuerySet[Alert]:
        q = _in_local_days(groups=self.cameras_by_time_zone() if groups is None else groups, key="camera_id",
                           field="detected_at", period=period)
        # order_by(): the model's default ordering would otherwise join every GROUP BY below.
        return Alert.objects.filter(q).order_by()


_REVIEW_COUNTS: dict[str, Any] = {
    "n_alerts": Count("id"),
    "n_confirmed": Count("id", filter=Q(review_status=ReviewStatus.CONFIRMED)),
    "n_dismissed": Count("id", filter=Q(review_status=ReviewStatus.DISMISSED)),
}


def _counts(row: dict[str, Any]) -> ReviewCounts:
    return ReviewCounts(alerts=row["n_alerts"], confirmed=row["n_confirmed"], dismissed=row["n_dismissed"])


def _busiest_first(rows: list[StatsRow]) -> list[StatsRow]:
    return sorted(rows, key=lambda row: (-row.counts.alerts, row.label.casefold(), row.key))


def alerts_per_day(*, scope: _Scope, period: Period) -> list[tuple[date, int]]:
    """Alerts per local day, every day of the period: one query per time zone among the sites."""
    per_day = dict.fromkeys(period.dates(), 0)
    for zone_name, camera_ids in scope.cameras_by_time_zone().items():
        rows = (scope.alerts_in(period, {zone_name: camera_ids})
                .annotate(day=TruncDate("detected_at", tzinfo=ZoneInfo(zone_name)))
                .values("day").annotate(n=Count("id")))
        for row in rows:
            if row["day"] in per_day:  # a local midnight that a DST change skips can shift an edge
                per_day[row["day"]] += row["n"]
    return sorted(per_day.items())


def alerts_by_camera(*, alerts: QuerySet[Alert], scope: _Scope) -> list[StatsRow]:
    rows = alerts.values("camera_id").annotate(**_REVIEW_COUNTS)
    return _busiest_first([StatsRow(key=str(row["camera_id"]), label=scope.camera_label(row["camera_id"]),
                                    counts=_counts(row)) for row in rows])


def alerts_by_zone(*, alerts: QuerySet[Alert], scope: _Scope) -> list[StatsRow]:
    """Per camera and zone, under the zone's name now. A zone deleted since (zone set to NULL)
    keeps the name it had when the alert was raised; an alert of no zone is the whole frame."""
    deleted_name = CaseWhen(When(zone_id__isnull=True, then="zone_name"), default=Value(""))
    rows = alerts.values("camera_id", "zone_id", deleted=deleted_name).annotate(**_REVIEW_COUNTS)
    zone_ids = {row["zone_id"] for row in rows if row["zone_id"] is not None}
    names = dict(Zone.objects.filter(id__in=zone_ids).order_by().values_list("id", "name")) if zone_ids else {}
    result = []
    for row in rows:
        camera_id, zone_id, deleted = row["camera_id"], row["zone_id"], row["deleted"]
        if zone_id is not None:
            zone, key = names.get(zone_id, "?"), f"{camera_id}-{zone_id}"
        elif deleted:
            zone, key = f"{deleted} (deleted zone)", f"{camera_id}-deleted-{deleted}"
        else:
            zone, key = "whole frame", f"{camera_id}-frame"
        result.append(StatsRow(key=key, label=f"{scope.camera_label(camera_id)} / {zone}", counts=_counts(row)))
    return _busiest_first(result)


def event_type_label(event_type: str) -> str:
    return event_type.replace("_", " ").capitalize()


def alerts_by_event_type(*, alerts: QuerySet[Alert]) -> list[StatsRow]:
    rows = alerts.values("event_type").annotate(**_REVIEW_COUNTS)
    return _busiest_first([StatsRow(key=row["event_type"], label=event_type_label(row["event_type"]),
                                    counts=_counts(row)) for row in rows])


def case_figures(*, scope: _Scope, period: Period) -> CaseFigures:
    """Cases opened in the period at these sites, and the value prevented and lost (one query)."""
    zero = Value(Decimal("0.00"), output_field=DecimalField(max_digits=14, decimal_places=2))
    prevented, theft = Q(outcome=CaseOutcome.THEFT_PREVENTED), Q(outcome=CaseOutcome.THEFT_CONFIRMED)
    no_value = Q(estimated_value__isnull=True)
    in_period = _in_local_days(groups=scope.sites_by_time_zone(), key="site_id", field="created_at", period=period)
    figures = (Case.objects.filter(in_period)
               .order_by().aggregate(
                   cases=Count("id"),
                   prevented=Count("id", filter=prevented),
                   prevented_value=Coalesce(Sum("estimated_value", filter=prevented), zero),
                   prevented_unvalued=Count("id", filter=prevented & no_value),
                   thefts=Count("id", filter=theft),
                   theft_value=Coalesce(Sum("estimated_value", filter=theft), zero),
                   thefts_unvalued=Count("id", filter=theft & no_value),
                   false_alarms=Count("id", filter=Q(outcome=CaseOutcome.FALSE_ALARM)),
                   undecided=Count("id", filter=Q(outcome=CaseOutcome.UNDECIDED)),
               ))
    return CaseFigures(**figures)


def _quantile(durations: QuerySet[Alert, timedelta], *, count: int, fraction: float) -> timedelta | None:
    """The `fraction` quantile, interpolated between the two nearest ranks (statistics.quantiles'
    "inclusive" method): the database sorts, and hands back those two rows only."""
    if count < 1:
        return None
    position = fraction * (count - 1)
    rank = math.floor(position)
    pair = list(durations[rank: rank + 2])
    if not pair:  # rows gone between the count and this read
        return None
    low = pair[0]
    high = pair[1] if len(pair) > 1 else low
    return low + (high - low) * (position - rank)


def review_times(*, alerts: QuerySet[Alert], unreviewed: int) -> ReviewTimes:
    """The bucket counts in one GROUP BY (each alert's bucket by a CASE on its wait); the median
    and 90th percentile by sorting in the database and reading the rows at their ranks (LIMIT 2
    OFFSET k), so no list of durations comes back to Python however many alerts were reviewed."""
    reviewed = (alerts.filter(review_status__in=[ReviewStatus.CONFIRMED, ReviewStatus.DISMISSED],
                              reviewed_at__isnull=False)
                .annotate(took=ExpressionWrapper(F("reviewed_at") - F("detected_at"), output_field=DurationField())))
    # One CASE over the wait, rather than a FILTER per bucket: on SQLite every date sum or
    # difference is a Python function call per row, and this makes half as many.
    bucket = CaseWhen(*[When(took__lt=upper, then=Value(i)) for i, (_, _, upper) in enumerate(REVIEW_BUCKETS)
                    if upper is not None], default=Value(len(REVIEW_BUCKETS) - 1), output_field=IntegerField())
    per_bucket = dict(reviewed.annotate(bucket=bucket).values("bucket").annotate(n=Count("id"))
                      .values_list("bucket", "n"))
    n = sum(per_bucket.values())
    durations = reviewed.order_by("took", "id").values_list("took", flat=True)
    return ReviewTimes(
        count=n,
        median=_quantile(durations, count=n, fraction=0.5),
        p90=_quantile(durations, count=n, fraction=0.9),
        buckets=[(key, label, per_bucket.get(i, 0)) for i, (key, label, _) in enumerate(REVIEW_BUCKETS)],
        unreviewed=unreviewed,
    )


def loss_prevention_stats(*, sites: Sequence[Site], period: Period) -> LossPreventionStats:
    """Every figure of the statistics page for these sites (the caller has checked the user
    manages them) over the period."""
    scope = _Scope.of(sites)
    alerts = scope.alerts_in(period)
    by_event_type = alerts_by_event_type(alerts=alerts)
    # Every alert has one event type, so the event-type rows add up to the totals.
    totals = ReviewCounts(alerts=sum(row.counts.alerts for row in by_event_type),
                          confirmed=sum(row.counts.confirmed for row in by_event_type),
                          dismissed=sum(row.counts.dismissed for row in by_event_type))
    return LossPreventionStats(
        sites=scope.sites,
        period=period,
        per_day=alerts_per_day(scope=scope, period=period),
        totals=totals,
        by_camera=alerts_by_camera(alerts=alerts, scope=scope),
        by_zone=alerts_by_zone(alerts=alerts, scope=scope),
        by_event_type=by_event_type,
        cases=case_figures(scope=scope, period=period),
        review_times=review_times(alerts=alerts, unreviewed=totals.unreviewed),
    )
