"""The Django admin: a manager of site A sees and edits only site A; evidence stays read-only."""
import pytest
from django.test import Client

from alerts.models import Alert, ClipAccess
from cameras.models import Camera, Role, Zone
from tests.support.factories import PASSWORD, SQUARE, make_alert, make_camera, make_site, make_user, make_zone

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    site_a, site_b = make_site("Site A"), make_site("Site B")
    cam_a, cam_b = make_camera(site_a, "Aisle A"), make_camera(site_b, "Aisle B")
    zone_a, zone_b = make_zone(cam_a, "Shelf A"), make_zone(cam_b, "Shelf B")
    alert_a, alert_b = make_alert(cam_a, zone=zone_a), make_alert(cam_b, zone=zone_b)
    manager = make_user("manager_a", site=site_a, role=Role.MANAGER)
    access_b = ClipAccess.objects.create(alert=alert_b, user=manager, username="x", action="view")
    return locals()


def login(username: str) -> Client:
    client = Client()
    assert client.login(username=username, password=PASSWORD)
    return client


def test_it_shows_a_manager_only_their_sites_objects(world):
    client = login("manager_a")
    for url, mine, theirs in [
        ("/admin/cameras/camera/", "Aisle A", "Aisle B"),
        ("/admin/cameras/site/", "Site A", "Site B"),
        ("/admin/alerts/alert/", f"/admin/alerts/alert/{world['alert_a'].pk}/", f"/admin/alerts/alert/{world['alert_b'].pk}/"),
    ]:
        page = client.get(url)
        assert page.status_code == 200, url
        assert mine in page.content.decode()
        assert theirs not in page.content.decode()


def test_it_hides_other_sites_objects_from_a_manager(world):
    client = login("manager_a")
    for url in [
        f"/admin/cameras/camera/{world['cam_b'].pk}/change/",
        f"/admin/cameras/site/{world['site_b'].pk}/change/",
        f"/admin/alerts/alert/{world['alert_b'].pk}/change/",
        f"/admin/alerts/clipaccess/{world['access_b'].pk}/change/",
    ]:
        response = client.get(url)
        # The admin redirects to its index with "doesn't exist" for objects outside the queryset.
        assert response.status_code == 302 and response.url == "/admin/", url


def test_it_refuses_a_manager_editing_or_moving_a_camera_into_another_site(world):
    client = login("manager_a")
    cam_b = world["cam_b"]
    response = client.post(f"/admin/cameras/camera/{cam_b.pk}/change/", {"name": "hijacked"})
    assert response.status_code == 302 and response.url == "/admin/"
    cam_b.refresh_from_db()
    assert cam_b.name == "Aisle B"

    response = client.post("/admin/cameras/camera/add/", camera_form(world["site_b"].pk, "Sneaky"))
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert not Camera.objects.filter(name="Sneaky").exists()


def camera_form(site_id: int, name: str, url: str = "rtsp://admin:s3cret@10.0.0.9/ch9", **extra: str) -> dict[str, str]:
    data = {
        "site": str(site_id), "name": name, "channel": "9", "stream_url": url, "detect_url": "", "enabled": "on",
        "detector": "", "detection_fps": "5", "threshold": "", "pre_seconds": "", "during_seconds": "",
        "post_seconds": "", "ring_seconds": "",
        "zones-TOTAL_FORMS": "0", "zones-INITIAL_FORMS": "0", "zones-MIN_NUM_FORMS": "0", "zones-MAX_NUM_FORMS": "1000",
    }
    data.update(extra)
    return data


def test_it_lets_a_manager_add_a_camera_with_a_zone_at_their_site(world):
    client = login("manager_a")
    data = camera_form(world["site_a"].pk, "Till", **{
        "zones-TOTAL_FORMS": "1", "zones-0-name": "Counter", "zones-0-kind": "checkout", "zones-0-enabled": "on",
        "zones-0-polygon": "[[0.1, 0.1], [0.5, 0.1], [0.5, 0.5]]", "zones-0-threshold": "0.7",
        "zones-0-event_types": "[]",
    })
    response = client.post("/admin/cameras/camera/add/", data)
    assert response.status_code == 302, response.content.decode()[:3000]
    camera = Camera.objects.get(name="Till")
    assert camera.site == world["site_a"]
    zone = Zone.objects.get(camera=camera)
    assert (zone.threshold, zone.kind) == (0.7, "checkout")


def test_it_rejects_an_unknown_zone_kind_in_the_admin_naming_the_choices(world):
    client = login("manager_a")
    data = camera_form(world["site_a"].pk, "Till", **{
        "zones-TOTAL_FORMS": "1", "zones-0-name": "Counter", "zones-0-kind": "cash_desk", "zones-0-enabled": "on",
        "zones-0-polygon": "[[0.1, 0.1], [0.5, 0.1], [0.5, 0.5]]", "zones-0-event_types": "[]",
    })
    response = client.post("/admin/cameras/camera/add/", data)
    assert response.status_code == 200
    assert "Select a valid choice. cash_desk is not one of the available choices." in response.content.decode()
    assert not Camera.objects.filter(name="Till").exists()


def test_it_rejects_a_malformed_zone_in_the_admin_with_the_reason(world):
    client = login("manager_a")
    data = camera_form(world["site_a"].pk, "Till", **{
        "zones-TOTAL_FORMS": "1", "zones-0-name": "Bow tie", "zones-0-kind": "shelf", "zones-0-enabled": "on",
        "zones-0-polygon": "[[0.1, 0.1], [0.9, 0.9], [0.9, 0.1], [0.1, 0.9]]", "zones-0-event_types": "[]",
    })
    response = client.post("/admin/cameras/camera/add/", data)
    assert response.status_code == 200
    assert "crosses itself" in response.content.decode()
    assert not Camera.objects.filter(name="Till").exists()


def test_it_never_shows_stream_passwords_and_keeps_them_when_the_mask_is_submitted(world):
    client = login("manager_a")
    cam_a = world["cam_a"]
    listing = client.get("/admin/cameras/camera/").content.decode()
    change = client.get(f"/admin/cameras/camera/{cam_a.pk}/change/").content.decode()
    for page in (listing, change):
        assert "s3cret" not in page
        assert "admin:****@10.0.0.5" in page
    expected = cam_a.stream_url.replace("/ch", "/main")
    masked = expected.replace("s3cret", "****")
    data = camera_form(cam_a.site_id, "Aisle A", url=masked, channel=str(cam_a.channel), **{
        "zones-TOTAL_FORMS": "1", "zones-INITIAL_FORMS": "1", "zones-0-id": str(world["zone_a"].pk),
        "zones-0-camera": str(cam_a.pk), "zones-0-name": "Shelf A", "zones-0-kind": "shelf", "zones-0-enabled": "on",
        "zones-0-polygon": str(SQUARE), "zones-0-event_types": "[]",
    })
    response = client.post(f"/admin/cameras/camera/{cam_a.pk}/change/", data)
    assert response.status_code == 302, response.content.decode()[:3000]
    cam_a.refresh_from_db()
    assert cam_a.stream_url == expected


def test_it_keeps_evidence_read_only_and_records_the_reviewer(world):
    client = login("manager_a")
    alert = world["alert_a"]
    page = client.get(f"/admin/alerts/alert/{alert.pk}/change/").content.decode()
    assert 'name="score"' not in page and 'name="clip_sha256"' not in page
    assert 'name="review_status"' in page
    response = client.post(f"/admin/alerts/alert/{alert.pk}/change/",
                           {"review_status": "confirmed", "review_note": "seen on tape", "score": "0.01"})
    assert response.status_code == 302
    alert.refresh_from_db()
    assert alert.review_status == "confirmed"
    assert alert.reviewed_by == world["manager"]
    assert alert.score == 0.9
    assert client.get("/admin/alerts/alert/add/").status_code == 403
    assert client.post(f"/admin/alerts/alert/{alert.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Alert.objects.filter(pk=alert.pk).exists()


def test_it_shows_the_access_log_read_only_and_scoped(world):
    ClipAccess.objects.create(alert=world["alert_a"], user=world["manager"], username="manager_a", action="download")
    client = login("manager_a")
    page = client.get("/admin/alerts/clipaccess/")
    assert page.status_code == 200
    assert page.content.decode().count("manager_a") >= 1
    assert f"/admin/alerts/clipaccess/{world['access_b'].pk}/" not in page.content.decode()
    mine = ClipAccess.objects.get(action="download")
    detail = client.get(f"/admin/alerts/clipaccess/{mine.pk}/change/").content.decode()
    assert 'name="username"' not in detail  # view-only
    assert client.post(f"/admin/alerts/clipaccess/{mine.pk}/delete/", {"post": "yes"}).status_code == 403


@pytest.mark.parametrize("role", [Role.VIEWER, Role.REVIEWER])
def test_it_keeps_viewers_and_reviewers_out_of_the_admin(world, role):
    make_user("staff_x", site=world["site_a"], role=role)
    client = login("staff_x")
    response = client.get("/admin/cameras/camera/")
    assert response.status_code == 302 and response.url.startswith("/admin/login/")


def test_it_shows_a_superuser_every_site(world):
    make_user("root", superuser=True)
    page = login("root").get("/admin/cameras/camera/").content.decode()
    assert "Aisle A" in page and "Aisle B" in page


def test_it_keeps_memberships_for_superusers(world):
    assert login("manager_a").get("/admin/cameras/sitemembership/").status_code in (302, 403)


def test_it_lets_a_manager_retry_a_failed_clip_build(world, django_capture_on_commit_callbacks):
    from alerts.models import ClipStatus

    Alert.objects.filter(pk=world["alert_a"].pk).update(clip_status=ClipStatus.FAILED, clip_error="disk full")
    Alert.objects.filter(pk=world["alert_b"].pk).update(clip_status=ClipStatus.FAILED, clip_error="disk full")
    client = login("manager_a")
    with django_capture_on_commit_callbacks() as callbacks:  # the send itself is tested with a real worker
        response = client.post("/admin/alerts/alert/", {
            "action": "retry_clip_build", "_selected_action": [world["alert_a"].pk, world["alert_b"].pk]})
    assert response.status_code == 302
    assert len(callbacks) == 1
    assert Alert.objects.get(pk=world["alert_a"].pk).clip_status == ClipStatus.QUEUED
    assert Alert.objects.get(pk=world["alert_b"].pk).clip_status == ClipStatus.FAILED  # not theirs


def test_a_manager_sets_up_notifications_for_their_site_only(world):
    from alerts.models import NotificationTarget, NotifyChannel

    theirs = NotificationTarget.objects.create(site=world["site_b"], name="B desk", channel=NotifyChannel.EMAIL,
                                               address="b@example.com")
    everyone = NotificationTarget.objects.create(site=None, name="Deployment webhook (NOTIFY_WEBHOOK_URL)",
                                                 channel=NotifyChannel.WEBHOOK)
    client = login("manager_a")
    form = {"name": "A desk", "channel": "email", "address": "a@example.com", "secret": "", "event_types": "[]",
            "min_score": "0", "enabled": "on"}

    assert client.post("/admin/alerts/notificationtarget/add/", {**form, "site": world["site_b"].pk}).status_code == 200
    assert client.post("/admin/alerts/notificationtarget/add/", {**form, "site": ""}).status_code == 200  # required
    assert client.post("/admin/alerts/notificationtarget/add/", {**form, "site": world["site_a"].pk}).status_code == 302
    listing = client.get("/admin/alerts/notificationtarget/").content.decode()
    assert "A desk" in listing and "B desk" not in listing and "Deployment webhook" not in listing
    for target in (theirs, everyone):
        response = client.get(f"/admin/alerts/notificationtarget/{target.pk}/change/")
        assert response.status_code == 302 and response.url == "/admin/"
    assert NotificationTarget.objects.filter(site=world["site_a"], name="A desk").exists()
