"""The loss-prevention statistics page: its figures equal counts made here in plain Python over the
objects the test created; who may see which sites; the period and its site-local days."""
from __future__ import annotations

import csv
import io
import random
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from html.parser import HTMLParser
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import AbstractUser
from django.test import Client
from django.utils import timezone

from alerts.models import Alert, Case, CaseOutcome, CaseStatus, ReviewStatus
from cameras.models import Role, Site
from tests.support.factories import make_alert, make_camera, make_site, make_user, make_zone

FIRST, LAST = date(2024, 6, 1), date(2024, 6, 7)
PERIOD = {"date_from": FIRST.isoformat(), "date_to": LAST.isoformat()}
EVENT_TYPES = ("concealment", "loitering", "zone_activity")
# Seconds from detection to review, with the bucket edges themselves among them.
REVIEW_DELAYS = (30, 200, 299, 300, 900, 1799, 1800, 3600, 7199, 7200, 20000, 86399, 86400, 200000)
BUCKETS = (("lt5m", 0, 300), ("5m-30m", 300, 1800), ("30m-2h", 1800, 7200), ("2h-24h", 7200, 86400),
           ("gt1d", 86400, None))


@pytest.fixture(autouse=True)
def _fast_passwords(fast_passwords: None) -> None:
    pass


# --- Reading the page -------------------------------------------------------------------------------

class _Page(HTMLParser):
    """Every element's attributes by id, and every table row's by (table id, data-key/day/bucket)."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.by_id: dict[str, dict[str, str]] = {}
        self.rows: dict[str, dict[str, dict[str, str]]] = defaultdict(dict)
        self._table = ""
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {name: value or "" for name, value in attrs}
        if "id" in a:
            self.by_id[a["id"]] = a
        if tag == "table":
            self._table = a.get("id", "")
        if tag == "tr":
            key = a.get("data-key") or a.get("data-day") or a.get("data-bucket")
            if key is not None:
                self.rows[self._table][key] = a

    def value(self, element_id: str, attr: str = "data-value") -> str:
        return self.by_id[element_id][attr]

    def table(self, table_id: str) -> dict[str, tuple[int, int, int, int, str]]:
        return {key: (int(a["data-alerts"]), int(a["data-reviewed"]), int(a["data-confirmed"]),
                      int(a["data-dismissed"]), a["data-rate"]) for key, a in self.rows[table_id].items()}


def _get(user: AbstractUser, params: dict[str, Any] | None = None, path: str = "/stats/") -> Any:
    client = Client()
    client.force_login(user)
    return client.get(path, params or {})


def _page(user: AbstractUser, params: dict[str, Any] | None = None) -> _Page:
    response = _get(user, params)
    assert response.status_code == 200, response.content[:500]
    return _Page(response.content.decode())


# --- The data ----------------------------------------------------------------------------------------

@dataclass
class Store:
    site: Site
    zone_deleted_name: str


def _local(site: Site, day: date, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute, second), tzinfo=ZoneInfo(site.time_zone))


def _store(name: str, time_zone: str, *, seed: int, count: int = 120) -> Store:
    """Two cameras, three zones (one deleted after its alerts), alerts over the period and the days
    either side of it in every review state, some a minute either side of local midnight."""
    rng = random.Random(seed)
    site = make_site(name, time_zone=time_zone)
    aisle, door = make_camera(site, "Aisle 1"), make_camera(site, "Door")
    spirits, razors, exit_zone = make_zone(aisle, "Spirits"), make_zone(aisle, "Razors"), make_zone(door, "Exit")
    places = [(aisle, spirits), (aisle, razors), (aisle, None), (door, exit_zone), (door, None)]
    for _ in range(count):
        day = FIRST + timedelta(days=rng.randrange(-2, 9))  # two days either side of the period
        at = _local(site, day, rng.randrange(24), rng.randrange(60), rng.randrange(60))
        camera, zone = rng.choice(places)
        status = rng.choice([ReviewStatus.UNREVIEWED, ReviewStatus.CONFIRMED, ReviewStatus.DISMISSED])
        wait = rng.choice(REVIEW_DELAYS) if rng.random() < 0.5 else rng.uniform(1, 300_000)
        reviewed_at = None if status == ReviewStatus.UNREVIEWED else at + timedelta(seconds=wait)
        make_alert(camera, zone=zone, at=at, event_type=rng.choice(EVENT_TYPES), review_status=status,
                   reviewed_at=reviewed_at, score=rng.random())
    # Around local midnight, at the period's edges and inside it: only the site's own day decides.
    for day, hms in ((FIRST - timedelta(days=1), (23, 59, 59)), (FIRST, (0, 0, 0)), (date(2024, 6, 3), (23, 59, 0)),
                     (date(2024, 6, 4), (0, 1, 0)), (LAST, (23, 59, 59)), (LAST + timedelta(days=1), (0, 0, 0))):
        at = _local(site, day, *hms)
        make_alert(door, zone=exit_zone, at=at, event_type="loitering", review_status=ReviewStatus.CONFIRMED,
                   reviewed_at=at + timedelta(minutes=4))
    razors.delete()  # its alerts keep zone_name "Razors" with zone NULL
    return Store(site=site, zone_deleted_name="Razors")


def _cases(site: Site, *, seed: int) -> None:
    rng = random.Random(seed)
    outcomes = list(CaseOutcome.values)
    for i in range(40):
        created = _local(site, FIRST + timedelta(days=rng.randrange(-3, 10)), rng.randrange(24), rng.randrange(60))
        value = None if i % 7 == 0 else Decimal(rng.randrange(100, 50000)) / 100
        Case.objects.create(site=site, title=f"Case {i}", outcome=rng.choice(outcomes), estimated_value=value,
                            status=rng.choice(CaseStatus.values), created_at=created)
    # The period's first and last local instants, and the ones just outside.
    for created, value in ((_local(site, FIRST, 0), "10.00"), (_local(site, LAST, 23, 59, 59), "20.00"),
                           (_local(site, FIRST, 0) - timedelta(seconds=1), "1000.00"),
                           (_local(site, LAST + timedelta(days=1), 0), "2000.00")):
        Case.objects.create(site=site, title="edge", outcome=CaseOutcome.THEFT_PREVENTED,
                            estimated_value=Decimal(value), created_at=created)


# --- The same figures, counted here -------------------------------------------------------------------

def _local_day(alert: Alert) -> date:
    return alert.detected_at.astimezone(ZoneInfo(alert.camera.site.time_zone)).date()


def _in_period(sites: list[Site], first: date = FIRST, last: date = LAST) -> list[Alert]:
    every = Alert.objects.filter(camera__site__in=sites).select_related("camera__site")
    return [alert for alert in every if first <= _local_day(alert) <= last]


def _row(alerts: list[Alert]) -> tuple[int, int, int, int, str]:
    confirmed = sum(1 for a in alerts if a.review_status == ReviewStatus.CONFIRMED)
    dismissed = sum(1 for a in alerts if a.review_status == ReviewStatus.DISMISSED)
    reviewed = confirmed + dismissed
    return len(alerts), reviewed, confirmed, dismissed, repr(confirmed / reviewed) if reviewed else ""


def _grouped(alerts: list[Alert], key: Any) -> dict[str, tuple[int, int, int, int, str]]:
    groups: dict[str, list[Alert]] = defaultdict(list)
    for alert in alerts:
        groups[key(alert)].append(alert)
    return {name: _row(group) for name, group in groups.items()}


def _zone_key(alert: Alert) -> str:
    if alert.zone_id is not None:
        return f"{alert.camera_id}-{alert.zone_id}"
    if alert.zone_name:
        return f"{alert.camera_id}-deleted-{alert.zone_name}"
    return f"{alert.camera_id}-frame"


def _assert_figures(page: _Page, sites: list[Site]) -> None:
    alerts = _in_period(sites)
    assert alerts, "the test data should put alerts in the period"

    days = Counter(_local_day(a) for a in alerts)
    expected_days = {(FIRST + timedelta(days=i)).isoformat(): days[FIRST + timedelta(days=i)] for i in range(7)}
    assert {day: int(a["data-alerts"]) for day, a in page.rows["table-per-day"].items()} == expected_days

    total = _row(alerts)
    assert int(page.value("total-alerts")) == total[0]
    assert int(page.value("total-reviewed")) == total[1]
    assert int(page.value("total-confirmed")) == total[2]
    assert int(page.value("total-dismissed")) == total[3]
    assert page.value("total-rate") == total[4]
    assert int(page.value("total-unreviewed")) == total[0] - total[1]

    assert page.table("table-camera") == _grouped(alerts, lambda a: str(a.camera_id))
    assert page.table("table-zone") == _grouped(alerts, _zone_key)
    assert page.table("table-event_type") == _grouped(alerts, lambda a: a.event_type)

    cases = [c for c in Case.objects.filter(site__in=sites).select_related("site")
             if FIRST <= c.created_at.astimezone(ZoneInfo(c.site.time_zone)).date() <= LAST]
    prevented = [c for c in cases if c.outcome == CaseOutcome.THEFT_PREVENTED]
    thefts = [c for c in cases if c.outcome == CaseOutcome.THEFT_CONFIRMED]
    assert int(page.value("cases-total")) == len(cases)
    assert int(page.value("cases-prevented")) == len(prevented)
    assert Decimal(page.value("value-prevented")) == sum((c.estimated_value or Decimal(0) for c in prevented), Decimal(0))
    assert Decimal(page.value("value-prevented-table")) == Decimal(page.value("value-prevented"))
    assert int(page.value("cases-prevented-unvalued")) == sum(1 for c in prevented if c.estimated_value is None)
    assert int(page.value("cases-thefts")) == len(thefts)
    assert Decimal(page.value("value-thefts")) == sum((c.estimated_value or Decimal(0) for c in thefts), Decimal(0))
    assert int(page.value("cases-thefts-unvalued")) == sum(1 for c in thefts if c.estimated_value is None)
    assert int(page.value("cases-false-alarms")) == sum(1 for c in cases if c.outcome == CaseOutcome.FALSE_ALARM)
    assert int(page.value("cases-undecided")) == sum(1 for c in cases if c.outcome == CaseOutcome.UNDECIDED)

    waits = [(a.reviewed_at - a.detected_at).total_seconds() for a in alerts
             if a.review_status != ReviewStatus.UNREVIEWED and a.reviewed_at is not None]
    assert int(page.value("review-count")) == len(waits)
    assert float(page.value("review-median", "data-seconds")) == pytest.approx(statistics.median(waits))
    p90 = statistics.quantiles(waits, n=10, method="inclusive")[8]
    assert float(page.value("review-p90", "data-seconds")) == pytest.approx(p90)
    assert int(page.value("review-unreviewed")) == sum(1 for a in alerts if a.review_status == ReviewStatus.UNREVIEWED)
    buckets = {key: sum(1 for w in waits if low <= w and (high is None or w < high)) for key, low, high in BUCKETS}
    assert {key: int(a["data-alerts"]) for key, a in page.rows["table-review-times"].items()} == buckets


# --- The tests ---------------------------------------------------------------------------------------

@pytest.mark.django_db
def test_it_shows_figures_equal_to_counts_made_directly_for_one_site() -> None:
    harbour = _store("Harbour", "America/New_York", seed=1)
    _cases(harbour.site, seed=2)
    other = _store("Elsewhere", "UTC", seed=3)  # another manager's: never counted
    _cases(other.site, seed=4)
    manager = make_user("manager", site=harbour.site, role=Role.MANAGER)

    page = _page(manager, PERIOD)

    _assert_figures(page, [harbour.site])
    assert page.value("stats-scope", "data-sites") == str(harbour.site.pk)
    assert page.value("stats-scope", "data-first") == "2024-06-01" and page.value("stats-scope", "data-last") == "2024-06-07"


@pytest.mark.django_db
def test_it_counts_each_alert_on_its_own_sites_local_day() -> None:
    harbour = make_site("Harbour", time_zone="America/New_York")
    camera = make_camera(harbour)
    # 23:30 on 3 June in New York is 03:30 on 4 June in UTC.
    make_alert(camera, at=datetime(2024, 6, 4, 3, 30, tzinfo=UTC))
    make_alert(camera, at=datetime(2024, 6, 8, 3, 59, tzinfo=UTC))  # 7 June, 23:59 local: in
    make_alert(camera, at=datetime(2024, 6, 1, 3, 59, tzinfo=UTC))  # 31 May, 23:59 local: out
    manager = make_user(site=harbour, role=Role.MANAGER)

    page = _page(manager, PERIOD)

    per_day = {day: int(a["data-alerts"]) for day, a in page.rows["table-per-day"].items()}
    assert per_day["2024-06-03"] == 1 and per_day["2024-06-04"] == 0 and per_day["2024-06-07"] == 1
    assert sum(per_day.values()) == 2 and int(page.value("total-alerts")) == 2


@pytest.mark.django_db
def test_it_sums_both_sites_in_all_my_sites_each_on_its_local_days() -> None:
    harbour = _store("Harbour", "America/New_York", seed=5)
    riverside = _store("Riverside", "Asia/Tokyo", seed=6)
    other = _store("Elsewhere", "UTC", seed=7)
    for store, seed in ((harbour, 8), (riverside, 9), (other, 10)):
        _cases(store.site, seed=seed)
    manager = make_user("manager", site=harbour.site, role=Role.MANAGER)
    riverside.site.memberships.create(user=manager, role=Role.MANAGER)

    everything = _page(manager, PERIOD)
    one = _page(manager, {**PERIOD, "site": harbour.site.pk})

    _assert_figures(everything, [harbour.site, riverside.site])
    _assert_figures(one, [harbour.site])
    assert int(everything.value("total-alerts")) == (len(_in_period([harbour.site])) + len(_in_period([riverside.site])))
    assert sorted(everything.value("stats-scope", "data-sites").split(",")) == sorted(
        [str(harbour.site.pk), str(riverside.site.pk)])


@pytest.mark.django_db
def test_it_counts_the_last_30_local_days_by_default() -> None:
    harbour = make_site("Harbour", time_zone="America/New_York")
    camera = make_camera(harbour)
    today = timezone.now().astimezone(ZoneInfo(harbour.time_zone)).date()
    for days_ago in (0, 29, 30):
        make_alert(camera, at=_local(harbour, today - timedelta(days=days_ago), 0, 30))
    manager = make_user(site=harbour, role=Role.MANAGER)

    page = _page(manager)
    last_7 = _page(manager, {"period": "7"})

    assert int(page.value("total-alerts")) == 2
    assert len(page.rows["table-per-day"]) == 30
    assert page.value("stats-scope", "data-last") == today.isoformat()
    assert page.value("stats-scope", "data-first") == (today - timedelta(days=29)).isoformat()
    assert int(last_7.value("total-alerts")) == 1 and len(last_7.rows["table-per-day"]) == 7


@pytest.mark.django_db
def test_it_shows_the_period_it_counted_in_the_form() -> None:
    site = make_site()
    manager = make_user(site=site, role=Role.MANAGER)

    only_site = _get(manager, {"site": site.pk}).content.decode()
    dates = _get(manager, {**PERIOD, "period": "7"}).content.decode()

    assert '<option value="30" selected>' in only_site
    assert '<option value="custom" selected>' in dates  # the dates win over the preset
    assert _Page(dates).value("stats-scope", "data-first") == "2024-06-01"


@pytest.mark.django_db
def test_it_refuses_a_reviewer_with_403_and_a_site_not_theirs_with_404() -> None:
    harbour, riverside, elsewhere = make_site("Harbour"), make_site("Riverside"), make_site("Elsewhere")
    reviewer = make_user(site=harbour, role=Role.REVIEWER)
    manager = make_user(site=riverside, role=Role.MANAGER)
    harbour.memberships.create(user=manager, role=Role.VIEWER)

    assert _get(reviewer).status_code == 403
    assert _get(reviewer, path="/stats/csv/").status_code == 403
    assert _get(manager, {"site": elsewhere.pk}).status_code == 404
    assert _get(manager, {"site": 999999}).status_code == 404
    assert _get(manager, {"site": "x"}).status_code == 404
    assert _get(manager, {"site": harbour.pk}).status_code == 403  # only a viewer there
    assert _get(manager, {"site": riverside.pk}).status_code == 200
    anonymous = Client().get("/stats/")
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/login/")


@pytest.mark.django_db
def test_it_never_counts_another_sites_alerts() -> None:
    harbour, elsewhere = make_site("Harbour"), make_site("Elsewhere")
    mine, theirs = make_camera(harbour), make_camera(elsewhere)
    at = datetime(2024, 6, 2, 12, tzinfo=UTC)
    make_alert(mine, at=at, review_status=ReviewStatus.CONFIRMED, reviewed_at=at + timedelta(minutes=1))
    for _ in range(5):
        make_alert(theirs, at=at, event_type="concealment", review_status=ReviewStatus.DISMISSED, reviewed_at=at)
    Case.objects.create(site=elsewhere, title="not mine", outcome=CaseOutcome.THEFT_PREVENTED,
                        estimated_value=Decimal("99.00"), created_at=at)
    manager = make_user(site=harbour, role=Role.MANAGER)

    page = _page(manager, PERIOD)

    assert int(page.value("total-alerts")) == 1 and int(page.value("total-dismissed")) == 0
    assert set(page.rows["table-camera"]) == {str(mine.pk)}
    assert set(page.rows["table-event_type"]) == {"zone_activity"}
    assert Decimal(page.value("value-prevented")) == 0 and int(page.value("cases-total")) == 0
    assert int(page.value("review-count")) == 1


@pytest.mark.django_db
@pytest.mark.parametrize(("params", "message"), [
    ({"date_from": "2024-06-07", "date_to": "2024-06-01"}, "is before the start date"),
    ({"period": "custom", "date_from": "2024-06-01"}, "Enter both a start date and an end date"),
    ({"date_from": "2020-01-01", "date_to": "2024-01-01"}, "Pick at most 366 days"),
    ({"date_from": "2024-13-01", "date_to": "2024-06-07"}, "Enter a valid date"),
    ({"date_from": "2024-06-01", "date_to": "2999-01-01"}, "is after today"),
    ({"period": "365"}, "Select a valid choice"),
])
def test_it_explains_a_bad_period_and_shows_the_last_30_days(params: dict[str, str], message: str) -> None:
    site = make_site()
    manager = make_user(site=site, role=Role.MANAGER)

    response = _get(manager, params)
    html = response.content.decode()

    assert response.status_code == 200
    assert "data-stats-errors" in html and message in html
    assert "Showing the last 30 days instead" in html
    assert len(_Page(html).rows["table-per-day"]) == 30


@pytest.mark.django_db
def test_it_makes_the_same_few_queries_for_ten_alerts_and_for_a_thousand() -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    harbour = make_site("Harbour", time_zone="America/New_York")
    camera = make_camera(harbour)
    zones = [make_zone(camera, f"Zone {i}") for i in range(4)]
    manager = make_user(site=harbour, role=Role.MANAGER)

    def count_queries() -> int:
        client = Client()
        client.force_login(manager)
        with CaptureQueriesContext(connection) as queries:
            assert client.get("/stats/", PERIOD).status_code == 200
        return len(queries)

    at = datetime(2024, 6, 3, 12, tzinfo=UTC)
    Alert.objects.bulk_create([Alert(camera=camera, zone=zones[i % 4], event_type=EVENT_TYPES[i % 3], score=0.5,
                                     event_start=at, detected_at=at + timedelta(minutes=i),
                                     review_status=ReviewStatus.CONFIRMED, reviewed_at=at + timedelta(minutes=2 * i))
                               for i in range(10)])
    few = count_queries()
    Alert.objects.bulk_create([Alert(camera=camera, zone=zones[i % 4], event_type=f"type_{i % 20}", score=0.5,
                                     event_start=at, detected_at=at + timedelta(minutes=i),
                                     review_status=ReviewStatus.DISMISSED, reviewed_at=at + timedelta(minutes=2 * i))
                               for i in range(1000)])
    many = count_queries()

    assert few == many
    assert many <= 15


@pytest.mark.django_db
def test_it_downloads_the_same_figures_as_csv() -> None:
    harbour = _store("Harbour", "America/New_York", seed=11)
    _cases(harbour.site, seed=12)
    manager = make_user(site=harbour.site, role=Role.MANAGER)

    response = _get(manager, {**PERIOD, "site": harbour.site.pk}, path="/stats/csv/")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    page = _page(manager, {**PERIOD, "site": harbour.site.pk})

    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert 'filename="loss-prevention-Harbour-20240601-20240607.csv"' in response["Content-Disposition"]
    csv_cameras = {(r["key"], r["measure"]): r["value"] for r in rows if r["table"] == "camera"}
    for key, (alerts, reviewed, confirmed, dismissed, rate) in page.table("table-camera").items():
        assert [int(csv_cameras[(key, m)]) for m in ("alerts", "reviewed", "confirmed", "dismissed")] == [
            alerts, reviewed, confirmed, dismissed]
        csv_rate = csv_cameras[(key, "confirmation_rate")]
        assert (csv_rate == "" == rate) or float(csv_rate) == pytest.approx(float(rate), abs=5e-5)
    days = {r["key"]: int(r["value"]) for r in rows if r["table"] == "day"}
    assert days == {day: int(a["data-alerts"]) for day, a in page.rows["table-per-day"].items()}
    value = next(r["value"] for r in rows if r["measure"] == "theft_prevented_value")
    assert Decimal(value) == Decimal(page.value("value-prevented"))


@pytest.mark.django_db
def test_it_escapes_names_in_the_page_and_charts() -> None:
    site = make_site('<script>alert("site")</script>')
    camera = make_camera(site, "<b>Aisle</b>")
    make_alert(camera, at=datetime(2024, 6, 2, 12, tzinfo=UTC), event_type="concealment")
    manager = make_user(site=site, role=Role.MANAGER)

    html = _get(manager, PERIOD).content.decode()

    assert "<script>alert" not in html and "<b>Aisle</b>" not in html
    assert "&lt;b&gt;Aisle&lt;/b&gt;" in html


@pytest.mark.django_db
def test_it_shows_the_statistics_link_to_managers_only() -> None:
    site = make_site()
    manager = make_user(site=site, role=Role.MANAGER)
    reviewer = make_user(site=site, role=Role.REVIEWER)

    def nav(user: AbstractUser) -> str:
        client = Client()
        client.force_login(user)
        return client.get("/").content.decode()

    assert 'href="/stats/"' in nav(manager)
    assert 'href="/stats/"' not in nav(reviewer)
