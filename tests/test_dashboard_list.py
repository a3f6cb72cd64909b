"""The alert list: order, filters, keyset pagination, bad filter values and live updates."""
from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.core.cache import cache
from django.test import Client

from alerts.models import Alert, ClipStatus, ReviewStatus
from alerts.selectors import PAGE_SIZE, Cursor, alert_event_types_for
from cameras.models import Role
from tests.support.clips import World
from tests.support.factories import make_alert, make_camera, make_user, make_zone

T0 = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def _ids(response) -> list[int]:  # type: ignore[no-untyped-def]
    return [int(i) for i in re.findall(r'<tr class="alert-row[^"]*" data-id="(\d+)"', response.content.decode())]


def _client(world: World, persona: str = "manager") -> Client:
    client = Client()
    client.force_login(world.users[persona])  # type: ignore[arg-type]
    return client


def test_it_lists_newest_first_with_site_time_badges_and_repeat_count(world: World) -> None:
    older = make_alert(world.camera_a, at=T0 - timedelta(hours=1), clip_status=ClipStatus.BUILDING, suppressed_count=3)
    newest = make_alert(world.camera_a, at=T0 + timedelta(days=1), clip_status=ClipStatus.FAILED)

    response = _client(world).get("/")
    html = response.content.decode()

    assert response.status_code == 200
    assert _ids(response) == [newest.pk, world.alert_a.pk, older.pk]
    assert "+3 repeats" in html
    assert 'data-clip-status="building"' in html and 'data-clip-status="failed"' in html
    assert 'data-clip-status="ready"' in html
    # 13:00:05 UTC is 14:00:05 in London in June (BST).
    assert "14:00:05" in html
    assert f'src="/alerts/{world.alert_a.pk}/thumbnail/"' in html


def test_it_serves_the_thumbnail_only_through_the_permission_checked_view(world: World, test_clip) -> None:  # type: ignore[no-untyped-def]
    response = _client(world, "viewer").get(f"/alerts/{world.alert_a.pk}/thumbnail/")

    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"
    assert b"".join(response.streaming_content) == test_clip.thumbnail


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"event_type": "concealment"}, ["a"]),
        ({"review_status": "confirmed"}, ["confirmed"]),
        ({"clip_status": "failed"}, ["failed"]),
        ({"min_score": "0.95"}, ["high"]),
        ({"date_from": "2024-06-03", "date_to": "2024-06-03"}, ["later"]),
        ({"date_to": "2024-06-01"}, ["a", "confirmed", "failed", "high"]),
    ],
)
def test_it_filters_by_each_field(world: World, params: dict[str, str], expected: list[str]) -> None:
    named = {
        "a": world.alert_a,
        "confirmed": make_alert(world.camera_a, at=T0, review_status=ReviewStatus.CONFIRMED, score=0.6),
        "failed": make_alert(world.camera_a, at=T0, clip_status=ClipStatus.FAILED, score=0.6),
        "high": make_alert(world.camera_a, at=T0, score=0.97),
        "later": make_alert(world.camera_a, at=T0 + timedelta(days=2), score=0.6),
    }

    ids = _ids(_client(world).get("/", params))

    assert sorted(ids) == sorted(named[name].pk for name in expected)


def test_it_filters_by_site_camera_and_zone(world: World) -> None:
    other_camera = make_camera(world.site_a, "Tills")
    other_zone = make_zone(world.camera_a, "Door")
    on_other_camera = make_alert(other_camera, at=T0)
    in_other_zone = make_alert(world.camera_a, zone=other_zone, at=T0)
    client = _client(world, "superuser")

    by_site = _ids(client.get("/", {"site": world.site_b.pk}))
    by_camera = _ids(client.get("/", {"camera": other_camera.pk}))
    by_zone = _ids(client.get("/", {"zone": world.zone_a.pk}))

    assert by_site == [world.alert_b.pk]
    assert by_camera == [on_other_camera.pk]
    assert by_zone == [world.alert_a.pk]
    assert in_other_zone.pk not in by_zone


def test_it_reads_dates_as_days_in_the_sites_time_zone(world: World) -> None:
    # 2024-06-02 02:30 UTC is still 1 June in New York (22:30 EDT).
    late_evening = make_alert(world.camera_b, at=datetime(2024, 6, 2, 2, 30, tzinfo=UTC))

    ids = _ids(_client(world, "superuser").get("/", {"site": world.site_b.pk, "date_from": "2024-06-01",
                                                     "date_to": "2024-06-01"}))

    assert late_evening.pk in ids


@pytest.mark.parametrize(
    "params",
    [
        {"camera": "abc"},
        {"camera": "99999999"},
        {"camera": "99999999999999999999999"},
        {"site": "-1"},
        {"zone": "1.5"},
        {"event_type": "<script>alert(1)</script>"},
        {"review_status": "maybe"},
        {"clip_status": "ready'; DROP TABLE alerts_alert;--"},
        {"min_score": "high"},
        {"min_score": "2"},
        {"min_score": "nan"},
        {"min_score": "inf"},
        {"date_from": "2024-13-45"},
        {"date_from": "0001-01-01"},
        {"date_to": "9999-12-31"},
        {"date_from": "2024-06-05", "date_to": "2024-06-01"},
        {"before": "not-a-cursor"},
        {"before": "999999999999999999999-1"},
        {"before": "-99999999999999999-1"},
        {"before": "1717243205000000-99999999999999999999"},
    ],
)
def test_it_ignores_a_bad_filter_value_and_says_so(world: World, params: dict[str, str]) -> None:
    response = _client(world).get("/", params)

    assert response.status_code == 200
    assert "data-ignored-filters" in response.content.decode() or "before" in params
    if len(params) == 1 and ("before" not in params or params["before"] == "not-a-cursor"):
        assert world.alert_a.pk in _ids(response)


def test_it_ignores_a_camera_of_another_site_without_naming_it(world: World) -> None:
    response = _client(world).get("/", {"camera": world.camera_b.pk})
    html = response.content.decode()

    assert response.status_code == 200
    assert "Camera filter ignored" in html
    assert world.camera_b.name not in html
    assert _ids(response) == [world.alert_a.pk]


def test_it_keeps_the_good_filters_when_one_is_bad(world: World) -> None:
    make_alert(world.camera_a, at=T0, event_type="loitering")

    ids = _ids(_client(world).get("/", {"event_type": "concealment", "min_score": "lots"}))

    assert ids == [world.alert_a.pk]


def test_it_pages_by_keyset_without_gaps_or_repeats(world: World) -> None:
    # Several alerts share a timestamp: the id breaks the tie, so no row is skipped or shown twice.
    created = [make_alert(world.camera_a, at=T0 - timedelta(seconds=i // 3)) for i in range(PAGE_SIZE + 12)]
    expected = [a.pk for a in sorted([*created, world.alert_a], key=lambda a: (a.detected_at, a.pk), reverse=True)]
    client = _client(world)

    first = client.get("/")
    cursor = re.search(r'href="\?before=([^"&]+)" rel="next"', first.content.decode())
    assert cursor is not None
    second = client.get("/", {"before": cursor.group(1)})

    assert len(_ids(first)) == PAGE_SIZE
    assert _ids(first) + _ids(second) == expected
    assert 'rel="next"' not in second.content.decode()


def test_it_renders_a_page_in_a_constant_number_of_queries(world: World, django_assert_max_num_queries) -> None:  # type: ignore[no-untyped-def]
    tills = make_camera(world.site_a, "Tills")
    for i in range(PAGE_SIZE + 5):
        make_alert(world.camera_a if i % 2 else tills, zone=world.zone_a if i % 3 else None, at=T0 - timedelta(minutes=i))
    client = _client(world, "manager")

    with django_assert_max_num_queries(10):
        response = client.get("/", {"min_score": "0.1"})

    assert len(_ids(response)) == PAGE_SIZE


def test_it_polls_new_alerts_and_refreshes_pending_rows(world: World) -> None:
    building = make_alert(world.camera_a, at=T0, clip_status=ClipStatus.BUILDING)
    latest = Alert.objects.order_by("-id").values_list("id", flat=True)[0]
    client = _client(world, "viewer")
    new = make_alert(world.camera_a, at=T0 + timedelta(days=3))
    make_alert(world.camera_b, at=T0 + timedelta(days=3))  # another site: never shown
    Alert.objects.filter(pk=building.pk).update(clip_status=ClipStatus.READY)

    data = client.get("/alerts/poll/", {"after": latest, "pending": f"{building.pk},junk,{world.alert_b.pk}"}).json()

    assert re.findall(r'data-id="(\d+)"', data["new_html"]) == [str(new.pk)]
    assert data["latest_id"] == new.pk
    assert list(data["updated"]) == [str(building.pk)]
    assert 'data-clip-status="ready"' in data["updated"][str(building.pk)]


def test_it_polls_with_the_lists_filters(world: World) -> None:
    client = _client(world, "viewer")
    loitering = make_alert(world.camera_a, at=T0, event_type="loitering")
    make_alert(world.camera_a, at=T0, event_type="concealment")

    data = client.get("/alerts/poll/", {"after": world.alert_a.pk, "event_type": "loitering"}).json()

    assert re.findall(r'data-id="(\d+)"', data["new_html"]) == [str(loitering.pk)]


@pytest.mark.parametrize("after", ["", "x", "-5", "99999999999999999999999999"])
def test_it_answers_a_bad_poll_position_without_error(world: World, after: str) -> None:
    response = _client(world, "viewer").get("/alerts/poll/", {"after": after, "pending": "1,,x,-3"})

    assert response.status_code == 200
    assert "latest_id" in response.json()


def test_it_offers_only_the_users_sites_cameras_and_event_types(world: World) -> None:
    make_alert(world.camera_b, at=T0, event_type="sweethearting")
    html = _client(world, "viewer").get("/").content.decode()

    assert world.camera_a.name in html
    assert world.camera_b.name not in html and world.site_b.name not in html
    assert "Sweethearting" not in html


def test_the_event_types_on_offer_are_cached_for_a_minute_per_user(world: World, settings, django_assert_num_queries) -> None:  # type: ignore[no-untyped-def]
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "event-types"}}
    viewer = world.users["viewer"]
    first = alert_event_types_for(user=viewer)
    make_alert(world.camera_a, at=T0, event_type="sweethearting")
    with django_assert_num_queries(0):
        assert alert_event_types_for(user=viewer) == first  # within the minute: the cached answer
    cache.delete(f"alerts:event-types:{viewer.pk}")
    assert "sweethearting" in alert_event_types_for(user=viewer)
    assert "sweethearting" not in first


def test_it_shows_a_user_without_any_site_an_empty_list(world: World) -> None:
    client = Client()
    client.force_login(make_user("nobody"))
    make_user("stranger", site=world.site_b, role=Role.VIEWER)

    response = client.get("/")

    assert response.status_code == 200
    assert _ids(response) == []
    assert "No alerts" in response.content.decode()


def test_it_encodes_and_decodes_cursors_exactly() -> None:
    cursor = Cursor(detected_at=datetime(2024, 6, 1, 12, 0, 0, 123456, tzinfo=UTC), id=42)

    assert Cursor.decode(cursor.encode()) == cursor
    assert Cursor.decode("12-x") is None


def test_it_polls_in_a_few_queries_whatever_the_rows(world: World, django_assert_max_num_queries) -> None:  # type: ignore[no-untyped-def]
    client = _client(world, "manager")
    pending = [make_alert(world.camera_a, at=T0, clip_status=ClipStatus.BUILDING).pk for _ in range(10)]
    for _ in range(10):
        make_alert(world.camera_a, at=T0 + timedelta(days=5))

    with django_assert_max_num_queries(6):
        data = client.get("/alerts/poll/", {"after": pending[-1], "event_type": "zone_activity",
                                            "pending": ",".join(map(str, pending))}).json()

    assert data["new_html"].count("<tr") == 10 and len(data["updated"]) == 10


def test_a_poll_with_nothing_new_is_one_query_past_the_login_and_renders_nothing(world: World,  # type: ignore[no-untyped-def]
                                                                                 django_assert_num_queries) -> None:
    client = _client(world, "viewer")
    latest = Alert.objects.order_by("-pk").values_list("pk", flat=True).first()
    client.get("/alerts/poll/", {"after": latest})  # warm: the session and user are loaded per request

    with django_assert_num_queries(3):  # the session, the user, "any alert after this id?"
        data = client.get("/alerts/poll/", {"after": latest}).json()

    assert data == {"latest_id": latest, "new_html": "", "updated": {}}
