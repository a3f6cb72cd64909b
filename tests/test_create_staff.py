from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from cameras.models import SiteMembership
from tests.support.factories import make_site

pytestmark = pytest.mark.django_db
GOOD_PASSWORD = "violet-Ladder-92-crane"


def run(*args: str) -> str:
    out = StringIO()
    call_command("create_staff", *args, stdout=out)
    return out.getvalue()


def test_it_creates_a_user_with_a_role_and_a_password_from_the_environment(monkeypatch):
    site = make_site("Main St")
    monkeypatch.setenv("STAFF_PW", GOOD_PASSWORD)
    output = run("alice", "--role", "reviewer", "--site", "Main St", "--password-env", "STAFF_PW")
    user = get_user_model().objects.get(username="alice")
    assert user.check_password(GOOD_PASSWORD)
    assert not user.is_staff  # reviewers use the dashboard, not the admin
    assert SiteMembership.objects.get(user=user, site=site).role == "reviewer"
    assert "Created 'alice': reviewer at Main St" in output


def test_it_updates_the_role_on_a_re_run_and_makes_managers_staff(monkeypatch):
    make_site("Main St")
    monkeypatch.setenv("STAFF_PW", GOOD_PASSWORD)
    run("bob", "--role", "viewer", "--site", "Main St", "--password-env", "STAFF_PW")
    output = run("bob", "--role", "manager", "--site", "Main St")  # no tty: keeps the password
    user = get_user_model().objects.get(username="bob")
    assert "Updated 'bob'" in output
    assert user.is_staff
    assert user.check_password(GOOD_PASSWORD)
    assert SiteMembership.objects.filter(user=user).count() == 1
    run("bob", "--role", "viewer", "--site", "Main St")
    user.refresh_from_db()
    assert not user.is_staff


def test_it_refuses_an_unknown_site():
    make_site("Main St")
    with pytest.raises(CommandError, match=r"No site named 'Elm St' \(known sites: Main St\)"):
        run("carol", "--role", "viewer", "--site", "Elm St")


def test_it_refuses_an_unset_password_variable(monkeypatch):
    make_site("Main St")
    monkeypatch.delenv("NOPE", raising=False)
    with pytest.raises(CommandError, match="environment variable NOPE is not set"):
        run("carol", "--role", "viewer", "--site", "Main St", "--password-env", "NOPE")


def test_it_refuses_a_new_user_without_a_password():
    make_site("Main St")
    with pytest.raises(CommandError, match="--password-env"):
        run("carol", "--role", "viewer", "--site", "Main St")
    assert not get_user_model().objects.filter(username="carol").exists()


def test_it_refuses_a_weak_password(monkeypatch):
    make_site("Main St")
    monkeypatch.setenv("STAFF_PW", "password")
    with pytest.raises(CommandError, match="too common|too short"):
        run("dave", "--role", "viewer", "--site", "Main St", "--password-env", "STAFF_PW")
    assert not get_user_model().objects.filter(username="dave").exists()


def test_it_rejects_an_unknown_role():
    make_site("Main St")
    with pytest.raises(CommandError, match="invalid choice"):
        run("erin", "--role", "boss", "--site", "Main St")
