"""Login, logout, password change, the failed-login rate limit, CSRF and cookie settings."""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from alerts.models import LoginFailure
from cameras.models import Role
from tests.support.factories import PASSWORD, make_site, make_user

pytestmark = pytest.mark.usefixtures("fast_passwords")


@pytest.fixture
def alice(db: None):  # type: ignore[no-untyped-def]
    return make_user("alice", site=make_site(), role=Role.VIEWER)


def _login(client: Client, username: str, password: str, ip: str = "10.0.0.7", **extra: str):  # type: ignore[no-untyped-def]
    return client.post("/login/", {"username": username, "password": password}, REMOTE_ADDR=ip, **extra)


def test_it_logs_in_and_goes_to_the_alerts(alice) -> None:  # type: ignore[no-untyped-def]
    client = Client()

    response = _login(client, "alice", PASSWORD)

    assert response.status_code == 302
    assert response["Location"] == "/"
    assert client.get("/").status_code == 200


def test_it_follows_a_safe_next_and_refuses_an_offsite_one(alice) -> None:  # type: ignore[no-untyped-def]
    inside = Client().post("/login/?next=/cameras/", {"username": "alice", "password": PASSWORD})
    outside = Client().post("/login/", {"username": "alice", "password": PASSWORD, "next": "https://evil.example/"})

    assert inside["Location"] == "/cameras/"
    assert outside["Location"] == "/"


def test_it_sends_the_admin_login_to_the_rate_limited_form(db: None) -> None:
    response = Client().get("/admin/login/", {"next": "/admin/alerts/alert/"})

    assert response.status_code == 302
    assert response["Location"] == "/login/?next=%2Fadmin%2Falerts%2Falert%2F"


def test_it_lets_a_manager_into_the_admin_through_the_login_form(db: None) -> None:
    make_user("boss", site=make_site(), role=Role.MANAGER)
    client = Client()

    response = client.post("/login/", {"username": "boss", "password": PASSWORD, "next": "/admin/"})

    assert response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200


def test_it_shows_an_error_for_a_wrong_password(alice) -> None:  # type: ignore[no-untyped-def]
    response = _login(Client(), "alice", "wrong-password")

    assert response.status_code == 200
    assert "enter a correct username and password" in response.content.decode()
    assert LoginFailure.objects.filter(username="alice", ip_address="10.0.0.7").count() == 1


def test_it_refuses_further_attempts_after_repeated_failures_and_logs_them(alice, caplog) -> None:  # type: ignore[no-untyped-def]
    client = Client()
    for _ in range(settings.LOGIN_FAILURE_LIMIT):
        _login(client, "alice", "guess-1234567")

    with caplog.at_level(logging.INFO, logger="alerts.auth"):
        refused = _login(client, "alice", PASSWORD)  # even the right password is not tried

    assert refused.status_code == 429
    assert int(refused["Retry-After"]) > 0
    assert "Too many failed sign-in attempts" in refused.content.decode()
    assert "_auth_user_id" not in client.session
    records = [r for r in caplog.records if r.name == "alerts.auth"]
    assert any("login refused" in r.getMessage() and "username=alice" in r.getMessage()
               and "ip=10.0.0.7" in r.getMessage() for r in records)
    assert all(PASSWORD not in r.getMessage() and "guess-1234567" not in r.getMessage() for r in records)
    # Refused attempts are not counted: the lock lifts when the window has passed.
    assert LoginFailure.objects.count() == settings.LOGIN_FAILURE_LIMIT


def test_it_logs_failed_attempts_without_the_password(alice, caplog) -> None:  # type: ignore[no-untyped-def]
    with caplog.at_level(logging.INFO, logger="alerts.auth"):
        _login(Client(), "Alice", "hunter2-secret")

    messages = [r.getMessage() for r in caplog.records if r.name == "alerts.auth"]
    assert messages == ["login failed username=alice ip=10.0.0.7"]


def test_it_locks_the_user_name_from_every_address(alice) -> None:  # type: ignore[no-untyped-def]
    for i in range(settings.LOGIN_FAILURE_LIMIT):
        _login(Client(), "ALICE", "nope-nope-nope", ip=f"10.9.0.{i}")

    assert _login(Client(), "alice", PASSWORD, ip="10.9.9.9").status_code == 429


def test_it_locks_an_address_that_tries_many_user_names(alice) -> None:  # type: ignore[no-untyped-def]
    for i in range(settings.LOGIN_FAILURE_IP_LIMIT):
        _login(Client(), f"user{i}", "nope-nope-nope", ip="192.0.2.66")

    assert _login(Client(), "alice", PASSWORD, ip="192.0.2.66").status_code == 429
    assert _login(Client(), "alice", PASSWORD, ip="192.0.2.67").status_code == 302


def test_it_lets_the_user_in_again_once_the_window_has_passed(alice) -> None:  # type: ignore[no-untyped-def]
    for _ in range(settings.LOGIN_FAILURE_LIMIT):
        _login(Client(), "alice", "nope-nope-nope")
    assert _login(Client(), "alice", PASSWORD).status_code == 429

    LoginFailure.objects.update(at=timezone.now() - timedelta(seconds=settings.LOGIN_FAILURE_WINDOW_SECONDS + 1))

    assert _login(Client(), "alice", PASSWORD).status_code == 302
    assert not LoginFailure.objects.filter(username="alice").exists()  # a success clears the name's failures


def test_it_keeps_counting_across_workers_in_the_database(alice, settings) -> None:  # type: ignore[no-untyped-def]
    # Two clients stand for two gunicorn workers: the only shared state is the database.
    settings.LOGIN_FAILURE_LIMIT = 2
    _login(Client(), "alice", "nope-nope-nope")
    _login(Client(), "alice", "nope-nope-nope")

    assert _login(Client(), "alice", PASSWORD).status_code == 429


def test_it_takes_the_client_address_from_the_proxy_only_when_told(alice, settings) -> None:  # type: ignore[no-untyped-def]
    _login(Client(), "x", "nope-nope-nope", ip="127.0.0.1", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.9")
    settings.LOGIN_TRUST_X_FORWARDED_FOR = True
    _login(Client(), "y", "nope-nope-nope", ip="127.0.0.1", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.9")

    assert list(LoginFailure.objects.order_by("username").values_list("ip_address", flat=True)) == [
        "127.0.0.1", "203.0.113.9"]


def test_it_requires_a_csrf_token_on_every_form(alice) -> None:  # type: ignore[no-untyped-def]
    client = Client(enforce_csrf_checks=True)

    login = client.post("/login/", {"username": "alice", "password": PASSWORD})
    client.force_login(alice)
    logout = client.post("/logout/")
    change = client.post("/password/", {"old_password": PASSWORD, "new_password1": "x" * 12,
                                        "new_password2": "x" * 12})

    assert login.status_code == logout.status_code == change.status_code == 403


def test_it_logs_out_on_post_only(alice) -> None:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(alice)

    assert client.get("/logout/").status_code == 405
    response = client.post("/logout/")

    assert response["Location"] == "/login/"
    assert client.get("/")["Location"].startswith("/login/")


def test_it_changes_the_password_and_keeps_the_session(alice) -> None:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(alice)
    new = "a-much-better-passphrase-42"

    wrong = client.post("/password/", {"old_password": "not-it", "new_password1": new, "new_password2": new})
    weak = client.post("/password/", {"old_password": PASSWORD, "new_password1": "12345678",
                                      "new_password2": "12345678"})
    done = client.post("/password/", {"old_password": PASSWORD, "new_password1": new, "new_password2": new})

    assert wrong.status_code == weak.status_code == 200
    assert done.status_code == 302
    assert client.get("/").status_code == 200
    assert get_user_model().objects.get(username="alice").check_password(new)


def test_it_needs_login_for_the_password_change(db: None) -> None:
    assert Client().get("/password/")["Location"].startswith("/login/")


def _security_settings(debug: str) -> dict[str, object]:
    """The settings module as a deployment loads it (a fresh process, DEBUG from the environment)."""
    code = ("import json, django; from django.conf import settings as s; django.setup(); print(json.dumps({n: getattr(s, n) "
            "for n in ['SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE', 'SESSION_COOKIE_HTTPONLY', 'CSRF_COOKIE_HTTPONLY', "
            "'SESSION_COOKIE_SAMESITE']}))")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "shoplift.settings", "DEBUG": debug,
           "SECRET_KEY": "k" * 50}
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=settings.BASE_DIR, capture_output=True,
                         text=True, check=True, timeout=60)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_it_uses_secure_cookies_when_not_in_debug() -> None:
    production, development = _security_settings("false"), _security_settings("true")

    assert production == {"SESSION_COOKIE_SECURE": True, "CSRF_COOKIE_SECURE": True, "SESSION_COOKIE_HTTPONLY": True,
                          "CSRF_COOKIE_HTTPONLY": True, "SESSION_COOKIE_SAMESITE": "Lax"}
    assert development["SESSION_COOKIE_SECURE"] is False  # plain http://localhost works while developing


def test_it_sets_the_cookies_with_those_flags(alice, settings) -> None:  # type: ignore[no-untyped-def]
    # The test run may load a developer's .env with DEBUG=true: apply the production values.
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = True
    client = Client()
    page = client.get("/login/")
    response = _login(client, "alice", PASSWORD)

    session, csrf = response.cookies["sessionid"], page.cookies["csrftoken"]
    assert session["secure"] and session["httponly"] and session["samesite"] == "Lax"
    assert csrf["secure"] and csrf["httponly"]
