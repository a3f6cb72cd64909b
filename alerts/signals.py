"""Sign-ins, failed sign-ins and sign-outs go to the audit log (alerts.audit).

From Django's auth signals rather than the login view, so every way in is recorded: the dashboard's
login form, the admin, `Client.login` in tests. They have no site (site_id None); a manager sees
those of their sites' members on the audit page.
"""
from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.http import HttpRequest

from alerts.audit import audit_record
from alerts.auth import client_ip
from alerts.models import AuditAction


def _ip(request: HttpRequest | None) -> str | None:
    return client_ip(request) if request is not None else None


def on_logged_in(sender: object, request: HttpRequest | None, user: AbstractBaseUser, **kwargs: Any) -> None:
    audit_record(action=AuditAction.LOGIN, user=user, object_type="user", object_id=user.pk,
                 summary=f"{user.get_username()} signed in", ip_address=_ip(request))


def on_login_failed(sender: object, credentials: dict[str, Any], request: HttpRequest | None = None,
                    **kwargs: Any) -> None:
    # Django has already replaced the password (and anything else sensitive) in `credentials`.
    typed = str(credentials.get(get_user_model().USERNAME_FIELD) or credentials.get("username") or "")
    audit_record(action=AuditAction.LOGIN_FAILED, username=typed, object_type="user",
                 summary=f"Failed sign-in as '{typed[:150]}'", ip_address=_ip(request))


def on_logged_out(sender: object, request: HttpRequest | None, user: AbstractBaseUser | None,
                  **kwargs: Any) -> None:
    if user is None or not user.is_authenticated:
        return  # a sign-out without a session signs nobody out
    audit_record(action=AuditAction.LOGOUT, user=user, object_type="user", object_id=user.pk,
                 summary=f"{user.get_username()} signed out", ip_address=_ip(request))


def connect() -> None:
    user_logged_in.connect(on_logged_in, dispatch_uid="alerts.audit.login")
    user_login_failed.connect(on_login_failed, dispatch_uid="alerts.audit.login_failed")
    user_logged_out.connect(on_logged_out, dispatch_uid="alerts.audit.logout")
