"""The Notifications page: each user turns Web Push on for their own devices, per site (the
subscriptions' reads and writes are alerts.push).

  push_page         GET  /notifications/                the user's devices, and the form that adds this one
  push_subscribe    POST /notifications/subscribe/      static/js/push.js, once pushManager.subscribe() answered
  push_unsubscribe  POST /notifications/<id>/delete/    the page's Remove buttons
  service_worker    GET  /sw.js                         push.js registers it; at the root so it controls every page

A user subscribes only at a site where they hold a role (access_push_site), and removes only their
own devices (access_push_subscription).
"""
from __future__ import annotations

import binascii
import re
from typing import Any
from urllib.parse import urlsplit

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.staticfiles import finders
from django.contrib.staticfiles.storage import staticfiles_storage
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from alerts.access import AuthenticatedHttpRequest
from alerts.models import WebPushSubscription
from alerts.push import (
    b64url_decode,
    push_event_types_for,
    push_subscription_delete,
    push_subscription_list_for,
    push_subscription_save,
)
from alerts.templatetags.dashboard import event_label
from cameras.models import Site
from cameras.selectors import role_at_site, site_list_for

EVENT_TYPE = re.compile(r"[a-z][a-z0-9_]{0,63}")


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
