"""Threshold suggestions: the suggestion is the threshold computed here by hand from the same scores;
the command shows what it would have changed; a manager applies it in the admin, audited."""
from __future__ import annotations

import math

import pytest
from django.core.management import call_command
from django.test import Client

from alerts.models import AuditAction, AuditEntry, ReviewStatus
from cameras.models import Role, Zone
from detection.learning.thresholds import suggest_threshold
from detection.learning.tuning import threshold_suggestions
from tests.support.factories import PASSWORD, make_alert, make_camera, make_site, make_user, make_zone

CONFIRMED = [0.62, 0.71, 0.55, 0.9, 0.83, 0.77, 0.68, 0.95, 0.58, 0.74]
DISMISSED = [0.51, 0.52, 0.56, 0.6, 0.66, 0.53, 0.57, 0.8]
RESCORED_DISMISSED = 0.54  # a dismissed alert a learned model raised: its rule score is what counts


def by_hand(confirmed: list[float], dismissed: list[float], recall: float) -> tuple[float, int, int]:
    """The highest threshold keeping ceil(recall x n) confirmed alerts, in hundredths, and its effect."""
    keep = math.ceil(recall * len(confirmed))
    kth_highest = sorted(confirmed, reverse=True)[keep - 1]
    threshold = math.floor(round(kth_highest * 100, 6)) / 100
    return threshold, sum(s < threshold for s in confirmed), sum(s < threshold for s in dismissed)


@pytest.fixture
def shop(db):
    site = make_site("Main St")
    camera = make_camera(site, "Aisle 3")
    shelf = make_zone(camera, "Shelf", kind="shelf")
    make_zone(camera, "Door", kind="exit", polygon=[[0, 0], [0.1, 0], [0.1, 0.1], [0, 0.1]])
    for score in CONFIRMED:
        make_alert(camera, zone=shelf, event_type="concealment", score=score, review_status=ReviewStatus.CONFIRMED)
    for score in DISMISSED:
        make_alert(camera, zone=shelf, event_type="concealment", score=score, review_status=ReviewStatus.DISMISSED)
    make_alert(camera, zone=shelf, event_type="concealment", score=0.2, rule_score=RESCORED_DISMISSED,
               learned_score=0.2, learned_model_version="v1-abc", review_status=ReviewStatus.DISMISSED)
    make_alert(camera, zone=shelf, event_type="concealment", score=0.3)  # not reviewed: not counted
    for score, status in ((0.7, ReviewStatus.CONFIRMED), (0.52, ReviewStatus.DISMISSED), (0.55, ReviewStatus.DISMISSED)):
        make_alert(camera, zone=shelf, event_type="person_dwell", score=score, review_status=status)
    return site, camera, shelf


def test_the_suggestion_is_the_threshold_computed_by_hand_from_the_same_scores(shop):
    site, camera, shelf = shop
    threshold, lost, removed = by_hand(CONFIRMED, DISMISSED + [RESCORED_DISMISSED], recall=0.9)
    assert (threshold, lost, removed) == (0.58, 1, 6)
    groups = {g.event_type: g for g in threshold_suggestions(site=site, recall=0.9)}
    suggestion = groups["concealment"].suggestion
    assert suggestion.suggested == threshold and suggestion.current == 0.5
    assert (suggestion.confirmed, suggestion.dismissed) == (10, 9)
    assert (suggestion.confirmed_lost, suggestion.false_alarms_removed) == (lost, removed)
    [other] = groups["concealment"].others  # the zone's threshold holds for its other event type too
    assert (other.event_type, other.confirmed_lost, other.false_alarms_removed) == ("person_dwell", 0, 2)
    assert groups["person_dwell"].suggestion.suggested is None  # 1 confirmed: too few to suggest
    for recall in (1.0, 0.8, 0.5):
        expected, _, _ = by_hand(CONFIRMED, DISMISSED + [RESCORED_DISMISSED], recall)
        assert threshold_suggestions(site=site, recall=recall)[0].suggestion.suggested == expected


def test_it_suggests_nothing_that_would_lower_a_threshold_or_remove_no_false_alarm():
    kept = suggest_threshold(confirmed=CONFIRMED, dismissed=DISMISSED, current=0.6, recall=0.9)
    assert kept.suggested is None and "0.58, and it is 0.60 already" in kept.reason
    useless = suggest_threshold(confirmed=CONFIRMED, dismissed=[0.9, 0.95], current=0.5, recall=0.9)
    assert useless.suggested is None and "would have removed no false alarm" in useless.reason
    few = suggest_threshold(confirmed=[0.9, 0.8], dismissed=[0.5], current=0.5, recall=0.9)
    assert few.suggested is None and few.reason == "only 2 confirmed alerts; a suggestion needs at least 5"


def test_the_command_prints_each_suggestion_and_what_it_would_have_changed(shop, capsys):
    call_command("tune_thresholds", "--site", "Main St", "--recall", "0.9")
    out = capsys.readouterr().out
    assert "Main St: keeping 90% of confirmed alerts" in out
    assert ("Aisle 3 / Shelf / concealment (10 confirmed, 9 dismissed): raise 0.50 -> 0.58: would have removed 6 of 9 "
            "false alarms and kept 9 of 10 confirmed (1 lost). Also applies to person_dwell in this zone: 2 false "
            "alarms removed, 0 confirmed lost.") in out
    assert "Aisle 3 / Shelf / person_dwell (1 confirmed, 2 dismissed): keep 0.50: only 1 confirmed alert" in out
    assert Zone.objects.get(name="Shelf").threshold is None  # the command changes nothing


def test_a_manager_applies_a_suggestion_in_the_admin_and_it_is_audited(shop, fast_passwords):
    site, camera, shelf = shop
    make_user("mia", site=site, role=Role.MANAGER)
    client = Client()
    assert client.login(username="mia", password=PASSWORD)
    url = "/admin/detection/learnedmodel/thresholds/"
    page = client.get(url, {"site": site.pk, "recall": "0.9"})
    assert page.status_code == 200 and b"Apply to the zone" in page.content and b"0.58" in page.content
    key = f"{camera.pk}:{shelf.pk}:concealment"

    stale = client.post(f"{url}?site={site.pk}", {"key": key, "value": "0.61", "recall": "0.9"}, follow=True)
    assert b"is now 0.58, not 0.61" in stale.content
    assert Zone.objects.get(pk=shelf.pk).threshold is None

    client.post(f"{url}?site={site.pk}", {"key": key, "value": "0.58", "recall": "0.9"})
    assert Zone.objects.get(pk=shelf.pk).threshold == 0.58
    [entry] = AuditEntry.objects.filter(action=AuditAction.ADMIN_CHANGE, object_type="zone")
    assert entry.username == "mia" and entry.site_id == site.pk and entry.object_id == str(shelf.pk)
    assert "for concealment" in entry.summary and "default -> 0.58" in entry.summary
    assert entry.detail["changes"] == {"threshold": {"old": None, "new": 0.58}}
    assert entry.detail["suggestion"]["false_alarms_removed"] == 6 and entry.detail["suggestion"]["confirmed_lost"] == 1


def test_only_a_manager_of_the_site_can_apply(shop, fast_passwords):
    site, camera, shelf = shop
    make_user("rita", site=site, role=Role.REVIEWER)
    make_user("otto", site=make_site("High St"), role=Role.MANAGER)
    key = f"{camera.pk}:{shelf.pk}:concealment"
    url = f"/admin/detection/learnedmodel/thresholds/?site={site.pk}"
    for username in ("rita", "otto"):
        client = Client()
        assert client.login(username=username, password=PASSWORD)
        response = client.post(url, {"key": key, "value": "0.58", "recall": "0.9"})
        assert response.status_code in (302, 403)
        if username == "otto":  # his own site is shown instead; this site's suggestion is not his to apply
            assert b"0.58" not in client.get(url).content
    assert Zone.objects.get(pk=shelf.pk).threshold is None
    assert not AuditEntry.objects.filter(action=AuditAction.ADMIN_CHANGE).exists()
