"""Web Push: each user's own devices get the alerts of the sites they pick, from the Notifications page.

Who calls what:
  push_page         GET  /notifications/                the user's devices, and the form that adds this one
  push_subscribe    POST /notifications/subscribe/      static/js/push.js, once pushManager.subscribe() answered
  push_unsubscribe  POST /notifications/<id>/delete/    the page's Remove buttons
  service_worker    GET  /sw.js                         push.js registers it; at the root so it controls every page
  vapid_keys_generate()                                 `manage.py generate_vapid_keys`
  push_subscriptions_for(site), push_endpoint_remove()  alerts.notify, which plans and sends the messages

A user subscribes only at a site where they hold a role, and a device gets only that site's alerts,
and only while its user still holds a role there (checked when each message is planned and sent).
"""
from __future__ import annotations

import base64
import binascii
import logging
import re
from typing import Any
from urllib.parse import urlsplit

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.contrib.staticfiles import finders
from django.contrib.staticfiles.storage import staticfiles_storage
from django.db import transaction
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from alerts.access import AuthenticatedHttpRequest
from alerts.models import WebPushSubscription
from alerts.selectors import alert_event_types_for
from alerts.templatetags.dashboard import event_label
from cameras.models import Site, SiteMembership
from cameras.selectors import AnyUser, role_at_site, site_list_for

logger = logging.getLogger(__name__)

# The event types the detectors raise (detection.behaviour.rules and detection.detectors.motion),
# offered on the page with those the user's alerts already show.
KNOWN_EVENT_TYPES = ("concealment", "exit_without_checkout", "person_dwell", "restricted_entry", "loitering",
                     "zone_activity")
EVENT_TYPE = re.compile(r"[a-z][a-z0-9_]{0,63}")


# --- keys -------------------------------------------------------------------------------------------

def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def vapid_keys_generate() -> tuple[str, str]:
    """A new VAPID key pair (public, private) in the form the settings read: the public key as the
    uncompressed P-256 point browsers take as applicationServerKey, the private key as its 32 bytes."""
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    return b64url_encode(public), b64url_encode(key.private_numbers().private_value.to_bytes(32, "big"))


# --- reads ------------------------------------------------------------------------------------------

def push_subscriptions_for(site: Site) -> list[WebPushSubscription]:
    """The devices that get this site's alerts: enabled, of active users who still hold a role there.
    None while Web Push is off (no VAPID keys)."""
    if not settings.VAPID_PRIVATE_KEY:
        return []
    members = SiteMembership.objects.filter(site=site).values("user_id")
    return list(WebPushSubscription.objects.filter(site=site, enabled=True, user__is_active=True)
                .filter(Q(user__is_superuser=True) | Q(user_id__in=members))
                .select_related("user", "site").order_by("pk"))


def push_subscription_list_for(*, user: User) -> list[WebPushSubscription]:
    return list(WebPushSubscription.objects.filter(user=user).select_related("site"))


def push_event_types_for(*, user: AnyUser) -> list[str]:
    return sorted(set(KNOWN_EVENT_TYPES) | set(alert_event_types_for(user=user)))


def access_push_site(request: HttpRequest, site_id: str) -> Site:
    """The site, if the user holds a role there; Http404 otherwise, the same whether it exists or not."""
    pk = int(site_id) if site_id.isdigit() and len(site_id) < 19 else 0
    site = Site.objects.filter(pk=pk).first()
    if site is None or role_at_site(user=request.user, site_id=site.pk) is None:
        raise Http404("No such site.")
    return site


def access_push_subscription(request: AuthenticatedHttpRequest, subscription_id: int) -> WebPushSubscription:
    """The user's own subscription; Http404 for anyone else's."""
    subscription = WebPushSubscription.objects.select_related("site").filter(pk=subscription_id,
                                                                            user=request.user).first()
    if subscription is None:
        raise Http404("No such device.")
    return subscription


# --- writes -----------------------------------------------------------------------------------------

@transaction.atomic
def push_subscription_save(*, user: User, site: Site, endpoint: str, p256dh: str, auth: str, event_types: list[str],
                           min_score: float, user_agent: str = "") -> WebPushSubscription:
    """Subscribe the device at the site, or change its filters there. A browser's endpoint belongs to
    whoever subscribed it last: another user's rows for it are removed, so a shared browser stops
    showing their alerts."""
    taken = WebPushSubscription.objects.filter(endpoint=endpoint).exclude(user=user)
    removed, _ = taken.delete()
    if removed:
        logger.info("push subscriptions of another user removed from a device user=%s count=%s",
                    user.get_username(), removed)
    subscription, created = WebPushSubscription.objects.update_or_create(
        user=user, site=site, endpoint=endpoint,
        defaults={"p256dh": p256dh, "auth": auth, "event_types": event_types, "min_score": min_score,
                  "user_agent": user_agent[:300], "enabled": True})
    logger.info("push subscription %s user=%s site=%s service=%s", "added" if created else "changed",
                user.get_username(), site.pk, subscription.push_service)
    return subscription


def push_subscription_delete(*, subscription: WebPushSubscription) -> None:
    logger.info("push subscription removed user=%s site=%s service=%s", subscription.user_id, subscription.site_id,
                subscription.push_service)
    subscription.delete()


def push_endpoint_remove(*, endpoint: str) -> int:
    """The push service says this endpoint is gone (404/410): remove every row of that device."""
    removed, _ = WebPushSubscription.objects.filter(endpoint=endpoint).delete()
    return removed


# --- the page and its endpoints ---------------------------------------------------------------------

def _b64url_key(size: int, what: str) -> Any:
    def validate(value: str) -> None:
        try:
            data = b64url_decode(value)
        except (binascii.Error, ValueError):
            raise forms.ValidationError(f"The browser's {what} is not base64url.") from None
        if len(data) != size:
            raise forms.ValidationError(f"The browser's {what} has {len(data)} bytes, not {size}.")

    return validate


def _p256_point(value: str) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b64url_decode(value))
    except (binascii.Error, ValueError):
        raise forms.ValidationError("The browser's public key is not a P-256 point.") from None


def _https(value: str) -> None:
    parts = urlsplit(value)
    # The Web Push protocol is HTTPS only (RFC 8030); refusing http:// also keeps the server from
    # being pointed at plain-HTTP services inside its network.
    if parts.scheme != "https" or not parts.hostname or parts.username or parts.password:
        raise forms.ValidationError("The push endpoint must be an https:// address.")


class PushSubscriptionForm(forms.Form):
    endpoint = forms.URLField(max_length=1000, assume_scheme="https", validators=[_https])
    p256dh = forms.CharField(max_length=100, validators=[_b64url_key(65, "public key"), _p256_point])
    auth = forms.CharField(max_length=50, validators=[_b64url_key(16, "auth secret")])
    event_types = forms.MultipleChoiceField(required=False, label="Event types",
                                            help_text="None ticked: every event type.")
    min_score = forms.FloatField(required=False, min_value=0.0, max_value=1.0, label="Minimum score",
                                 widget=forms.NumberInput(attrs={"step": "0.05", "placeholder": "0–1"}))

    def __init__(self, *args: Any, event_types: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["event_types"]
        assert isinstance(field, forms.MultipleChoiceField)
        field.choices = [(t, event_label(t)) for t in event_types if EVENT_TYPE.fullmatch(t)]
        field.widget = forms.CheckboxSelectMultiple(choices=field.choices)


@login_required
@require_GET
def push_page(request: AuthenticatedHttpRequest) -> HttpResponse:
    user = request.user
    return render(request, "alerts/push.html", {
        "nav": "notifications", "form": PushSubscriptionForm(event_types=push_event_types_for(user=user)),
        "sites": list(site_list_for(user=user).order_by("name")),
        "subscriptions": push_subscription_list_for(user=user),
        "configured": bool(settings.VAPID_PUBLIC_KEY),
        "push_config": {"vapid_public_key": settings.VAPID_PUBLIC_KEY, "subscribe_url": reverse("alerts:push_subscribe"),
                        "service_worker_url": reverse("service_worker")},
    })


@login_required
@require_POST
def push_subscribe(request: AuthenticatedHttpRequest) -> JsonResponse:
    site = access_push_site(request, request.POST.get("site", ""))
    if not settings.VAPID_PUBLIC_KEY:
        return JsonResponse({"error": "Web Push is not configured on this server (VAPID_PUBLIC_KEY)."}, status=409)
    form = PushSubscriptionForm(request.POST, event_types=push_event_types_for(user=request.user))
    if not form.is_valid():
        errors = [f"{name}: {message}" for name, found in form.errors.items() for message in found]
        return JsonResponse({"error": " ".join(errors)}, status=400)
    data = form.cleaned_data
    subscription = push_subscription_save(
        user=request.user, site=site, endpoint=data["endpoint"], p256dh=data["p256dh"], auth=data["auth"],
        event_types=list(data["event_types"]), min_score=data["min_score"] or 0.0,
        user_agent=request.headers.get("User-Agent", ""))
    messages.success(request, f"This device now gets alerts from {site.name}.")
    return JsonResponse({"id": subscription.pk, "site": site.name}, status=201)


@login_required
@require_POST
def push_unsubscribe(request: AuthenticatedHttpRequest, subscription_id: int) -> HttpResponse:
    subscription = access_push_subscription(request, subscription_id)
    push_subscription_delete(subscription=subscription)
    messages.success(request, f"That device no longer gets alerts from {subscription.site.name}.")
    return redirect("alerts:push")


@require_GET
def service_worker(request: HttpRequest) -> HttpResponseBase:
    """static/js/sw.js from the site's root: a service worker controls only the pages under its own path."""
    path = finders.find("js/sw.js")
    if isinstance(path, str):
        with open(path, "rb") as fh:
            source = fh.read()
    else:  # only the collected copy exists
        with staticfiles_storage.open("js/sw.js") as fh:
            source = fh.read()
    response = HttpResponse(source, content_type="application/javascript; charset=utf-8")
    response["Cache-Control"] = "no-cache"  # browsers check it for updates; never serve a stale worker
    return response
