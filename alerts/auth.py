"""Log in, log out, change password, and the failed-login rate limit.

Failed attempts are rows in the database (alerts.LoginFailure), counted per user name and per
client address over a sliding window, so the limit holds across every gunicorn worker. A refused
attempt is not checked against the password at all and is not counted again, so the lock lifts
on its own once the window has passed.
"""
from __future__ import annotations

import logging
import math
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login, logout, update_session_auth_hash
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import AuthenticationForm, PasswordChangeForm
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST

from alerts.audit import audit_record
from alerts.models import AuditAction, LoginFailure, LoginThrottleKey

logger = logging.getLogger("alerts.auth")


@dataclass(frozen=True)
class Lockout:
    key: str  # "username" or "address": which limit was reached
    retry_after: int  # seconds until one more attempt is allowed


def client_ip(request: HttpRequest) -> str | None:
    """The client's address; behind a trusted proxy, the last one it appended to X-Forwarded-For."""
    if settings.LOGIN_TRUST_X_FORWARDED_FOR:
        header: str = request.META.get("HTTP_X_FORWARDED_FOR", "")
        forwarded = [part.strip() for part in header.split(",") if part.strip()]
        if forwarded:
            return forwarded[-1]
    remote: str | None = request.META.get("REMOTE_ADDR")
    return remote or None


def _normalize(username: str) -> str:
    """The key the per-user lock counts: NFKC first, as Django's login form does before it
    authenticates (so fullwidth or mathematical look-alikes of a name share its lock), then
    case-folded and trimmed."""
    return unicodedata.normalize("NFKC", username).strip().casefold()[:150]


def _retry_after(timestamps: list[datetime], limit: int, now: datetime) -> int | None:
    """Seconds until fewer than `limit` failures remain in the window; None when not locked."""
    if len(timestamps) < limit:
        return None
    window = timedelta(seconds=settings.LOGIN_FAILURE_WINDOW_SECONDS)
    # Newest first: the limit-th newest failure is the one whose expiry unlocks the next attempt.
    unlock_at = timestamps[limit - 1] + window
    return max(1, math.ceil((unlock_at - now).total_seconds()))


def login_lockout(*, username: str, ip_address: str | None, before_id: int | None = None) -> Lockout | None:
    """The lock that refuses this attempt, or None when it may go ahead. With `before_id`, only
    failures recorded before that row count (the attempt's own claim, see `login_attempt_claim`)."""
    now = timezone.now()
    since = now - timedelta(seconds=settings.LOGIN_FAILURE_WINDOW_SECONDS)
    recent = LoginFailure.objects.filter(at__gt=since).order_by("-at")
    if before_id is not None:
        recent = recent.filter(pk__lt=before_id)
    checks = [("username", recent.filter(username=_normalize(username)), settings.LOGIN_FAILURE_LIMIT)]
    if ip_address:
        checks.append(("address", recent.filter(ip_address=ip_address), settings.LOGIN_FAILURE_IP_LIMIT))
    for key, queryset, limit in checks:
        timestamps = list(queryset.values_list("at", flat=True)[:limit])
        retry_after = _retry_after(timestamps, limit, now)
        if retry_after is not None:
            return Lockout(key=key, retry_after=retry_after)
    return None


def login_attempt_claim(*, username: str, ip_address: str | None) -> tuple[int, Lockout | None]:
    """Record the attempt as a failure first, then count only what came before it.

    Attempts on the same user name or address take that key's row lock, so they record and count
    one at a time and no more than the limit of them get through: a check-then-record lock let a
    burst of parallel requests all pass the check. The caller removes the row when the attempt succeeds or is
    refused (a refused attempt is not counted), and keeps it when it fails.
    """
    keys = sorted({f"user:{_normalize(username)}", *([f"ip:{ip_address}"] if ip_address else [])})
    for key in keys:
        LoginThrottleKey.objects.get_or_create(key=key)
    with transaction.atomic():
        # Attempts on the same user name or address queue here, in key order (no deadlock), while
        # they count and record; the row ids then order them for login_lockout.
        list(LoginThrottleKey.objects.select_for_update().filter(key__in=keys).order_by("key"))
        now = timezone.now()
        claim = LoginFailure.objects.create(username=_normalize(username), ip_address=ip_address, at=now)
        lockout = login_lockout(username=username, ip_address=ip_address, before_id=claim.pk)
    # Rows past the window count for nothing: drop them so the table stays small.
    LoginFailure.objects.filter(at__lte=now - timedelta(seconds=settings.LOGIN_FAILURE_WINDOW_SECONDS)).delete()
    return claim.pk, lockout


def login_attempt_release(claim_id: int) -> None:
    LoginFailure.objects.filter(pk=claim_id).delete()


def login_failures_clear(*, username: str) -> None:
    LoginFailure.objects.filter(username=_normalize(username)).delete()


def _locked(request: HttpRequest, template: str, context: dict[str, Any], lockout: Lockout) -> HttpResponse:
    response = render(request, template, context, status=429)
    response["Retry-After"] = str(lockout.retry_after)
    return response


def _safe_next(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return target
    return settings.LOGIN_REDIRECT_URL


def _minutes(seconds: int) -> str:
    minutes = math.ceil(seconds / 60)
    return "1 minute" if minutes == 1 else f"{minutes} minutes"


@sensitive_post_parameters("password")
@csrf_protect
@never_cache
@require_http_methods(["GET", "POST"])
def login_view(request: HttpRequest) -> HttpResponse:
    form = AuthenticationForm(request, data=request.POST if request.method == "POST" else None)
    next_url = _safe_next(request)
    context: dict[str, Any] = {"form": form, "next": next_url}
    if request.method != "POST":
        return render(request, "registration/login.html", context)
    username, ip_address = request.POST.get("username", ""), client_ip(request)
    claim, lockout = login_attempt_claim(username=username, ip_address=ip_address)
    if lockout is not None:
        login_attempt_release(claim)
        logger.warning("login refused: too many failures username=%s ip=%s limit=%s retry_after=%ss",
                       _normalize(username), ip_address, lockout.key, lockout.retry_after)
        # Refused before authentication, so no user_login_failed signal records it (alerts.signals).
        audit_record(action=AuditAction.LOGIN_FAILED, username=username, object_type="user",
                     summary=f"Sign-in as '{username[:150]}' refused: too many failures (per {lockout.key})",
                     detail={"refused": "too many failures", "limit": lockout.key,
                             "retry_after_seconds": lockout.retry_after}, ip_address=ip_address)
        context.update(form=AuthenticationForm(request), locked_for=_minutes(lockout.retry_after))
        return _locked(request, "registration/login.html", context, lockout)
    if not form.is_valid():  # the claimed row stays: it is this failure
        logger.warning("login failed username=%s ip=%s", _normalize(username), ip_address)
        return render(request, "registration/login.html", context, status=200)
    user = form.get_user()
    login(request, user)
    login_failures_clear(username=username)
    logger.info("login username=%s ip=%s", user.get_username(), ip_address)
    return HttpResponseRedirect(next_url)


def admin_login_redirect(request: HttpRequest) -> HttpResponse:
    """The admin signs in through the same rate-limited form as the dashboard."""
    next_url = request.GET.get("next", "")
    if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}):
        next_url = reverse("admin:index")
    return redirect(f"{reverse('login')}?{urlencode({'next': next_url})}")


@require_POST
def logout_view(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        logger.info("logout username=%s", request.user.get_username())
    logout(request)
    return redirect(settings.LOGOUT_REDIRECT_URL)


@sensitive_post_parameters("old_password", "new_password1", "new_password2")
@csrf_protect
@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def password_change_view(request: HttpRequest) -> HttpResponse:
    """Asks for the current password, so a wrong one counts against the same per-user and
    per-address limits as a failed login: a stolen session cannot guess it without limit."""
    form = PasswordChangeForm(request.user, data=request.POST if request.method == "POST" else None)
    if request.method == "POST":
        username, ip_address = request.user.get_username(), client_ip(request)
        claim, lockout = login_attempt_claim(username=username, ip_address=ip_address)
        if lockout is not None:
            login_attempt_release(claim)
            logger.warning("password change refused: too many failures username=%s ip=%s", username, ip_address)
            return _locked(request, "registration/password_change.html",
                           {"form": PasswordChangeForm(request.user), "locked_for": _minutes(lockout.retry_after)},
                           lockout)
        if not form.is_valid():
            if "old_password" in form.errors:  # the claimed row stays: a wrong guess of the password
                logger.warning("password change: wrong current password username=%s ip=%s", username, ip_address)
            else:
                login_attempt_release(claim)  # a too-weak new password is no guess
            return render(request, "registration/password_change.html", {"form": form})
        login_attempt_release(claim)
        user = form.save()
        update_session_auth_hash(request, user)  # stay signed in on this device
        logger.info("password changed username=%s", user.get_username())
        messages.success(request, "Your password has been changed.")
        return redirect("alerts:list")
    return render(request, "registration/password_change.html", {"form": form})
