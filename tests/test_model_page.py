"""The Model page: managers only (403 for weaker roles, 404 outside the user's sites); it shows the
training history with each run's report, the score histograms, the thresholds in force and what
the model suppressed this week."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from alerts.models import ReviewStatus
from cameras.models import Role
from detection.models import LearnedModel, SuppressedEvent
from tests.support.factories import PASSWORD, make_alert, make_camera, make_site, make_user, make_zone

pytestmark = pytest.mark.usefixtures("fast_passwords")


@pytest.fixture
def shop(db):
    site = make_site("Main St")
    camera = make_camera(site, "Aisle 3", threshold=0.65)
    shelf = make_zone(camera, "Shelf", kind="shelf", threshold=0.7)
    make_zone(camera, "Door", kind="exit")
    refused = LearnedModel.objects.create(
        site=site, version=1, examples=20, confirmed=8, dismissed=12, refused_reason="Main St has 20 reviewed alerts "
        "with a stored person track (8 confirmed, 12 dismissed); training needs at least 50.",
        report={"examples": 20, "confirmed": 8, "dismissed": 12})
    deployed = LearnedModel.objects.create(
        site=site, version=2, examples=300, confirmed=120, dismissed=180, file_name=f"site-{site.pk}/v2.pt",
        sha256="ab" * 32, threshold=0.123, deployed=True, suppressed_count=2,
        report={"examples": 300, "confirmed": 120, "dismissed": 180, "held_out": 150, "folds": [{}, {}, {}, {}],
                "rules": {"precision": 0.4, "recall": 1.0, "auc": 0.58, "best_threshold": 0.53,
                          "best": {"precision": 0.42, "recall": 1.0, "false_alarms": 90, "false_alarms_suppressed": 6}},
                "model": {"precision": 0.7, "recall": 1.0, "auc": 0.95, "threshold": 0.123, "false_alarms": 90,
                          "false_alarms_suppressed": 57, "confirmed_lost": 0},
                "gate": {"passed": True, "reasons": []}})
    now = timezone.now()
    for days, learned in ((1, 0.05), (8, 0.07)):  # one this week, one before
        SuppressedEvent.objects.create(model=deployed, camera=camera, zone_name="Shelf", event_type="concealment",
                                       rule_score=0.66, learned_score=learned, threshold=0.123,
                                       event_start=now - timedelta(days=days), suppressed_at=now - timedelta(days=days))
    for score, status in ((0.8, ReviewStatus.CONFIRMED), (0.55, ReviewStatus.DISMISSED)):
        make_alert(camera, zone=shelf, event_type="concealment", score=score, review_status=status)
    make_alert(camera, zone=shelf, event_type="concealment", score=0.9, rule_score=0.7, learned_score=0.9,
               learned_model_version="v2-abababababab", review_status=ReviewStatus.CONFIRMED)
    return site, refused, deployed


def client_for(username: str) -> Client:
    client = Client()
    assert client.login(username=username, password=PASSWORD)
    return client


def test_a_manager_sees_the_history_reports_histograms_thresholds_and_this_weeks_suppressions(shop):
    site, refused, deployed = shop
    make_user("mia", site=site, role=Role.MANAGER)
    client = client_for("mia")
    assert client.get("/model/")["Location"] == f"/model/{site.pk}/"
    response = client.get(f"/model/{site.pk}/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-suppressed-count="1"' in html  # the one 8 days ago is not this week's
    assert "0.050" in html and "0.070" not in html
    assert 'data-version="2"' in html and 'data-version="1"' in html
    assert "Not deployed. Main St has 20 reviewed alerts" in html
    assert "Learned model at its threshold 0.123" in html and "57 of 90 past false alarms suppressed" in html
    assert "Rule scores of reviewed alerts" in html and "Learned model scores" in html
    assert html.count('<svg xmlns="http://www.w3.org/2000/svg" class="chart chart-histogram"') == 2
    # Rule scores: 0.8, and 0.7 for the alert a model re-scored (its learned 0.9 is in the second chart).
    assert "Confirmed, 0.7–0.8: 1" in html and "Confirmed, 0.8–0.9: 1" in html and "Confirmed, 0.9–1: 0" in html
    assert "Confirmed, 0.9–1: 1" in html
    assert "Dismissed, 0.5–0.6: 1" in html
    # Thresholds in force: the shelf's own 0.70; the door has none, so the camera's 0.65.
    assert "<td>Shelf</td><td>shelf</td>" in html and "<td>Door</td><td>exit</td>" in html
    assert html.count('<td class="num">0.70</td>') == 1 + 4 and html.count('<td class="num">0.65</td>') == 4
    assert "an event it scores below <strong>0.123</strong> is suppressed" in html
    assert 'href="/model/"' in html  # the Model link in the navigation


@pytest.mark.parametrize("role", [Role.VIEWER, Role.REVIEWER])
def test_viewers_and_reviewers_get_403(shop, role):
    site, _, _ = shop
    make_user("vera", site=site, role=role)
    client = client_for("vera")
    assert client.get(f"/model/{site.pk}/").status_code == 403
    assert client.get("/model/").status_code == 403
    assert 'href="/model/"' not in client.get("/").content.decode()


def test_a_manager_of_another_site_gets_404_as_for_a_site_that_does_not_exist(shop):
    site, _, _ = shop
    other = make_site("High St")
    make_user("otto", site=other, role=Role.MANAGER)
    client = client_for("otto")
    assert client.get(f"/model/{site.pk}/").status_code == 404
    assert client.get("/model/999999/").status_code == 404
    response = client.get(f"/model/{other.pk}/")
    assert response.status_code == 200 and b"No model is deployed at High St" in response.content


def test_anonymous_users_are_sent_to_sign_in_and_superusers_see_every_site(shop):
    site, _, _ = shop
    assert Client().get(f"/model/{site.pk}/")["Location"].startswith("/login/")
    make_user("root", superuser=True)
    assert client_for("root").get(f"/model/{site.pk}/").status_code == 200
