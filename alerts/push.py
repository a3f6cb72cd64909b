"""Web Push: each user's own devices get the alerts of the sites they pick, from the Notifications
page (its views are alerts.push_views). The reads and writes about subscriptions, and the VAPID keys:

  vapid_keys_generate()                                 `manage.py generate_vapid_keys`
  push_subscriptions_for(site), push_endpoint_remove()  alerts.notify, which plans and sends the messages
  push_subscription_save(), push_subscription_delete()  the Notifications page

A user subscribes only at a site where they hold a role, and a device gets only that site's alerts,
and only while its user still holds a role there (checked when each message is planned and sent).
"""
from __future__ import annotations

import base64
import logging

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Q

from alerts.models import WebPushSubscription
from alerts.selectors import alert_event_types_for
from cameras.models import Site, SiteMembership
from cameras.selectors import AnyUser

logger = logging.getLogger(__name__)

# The event types the detectors raise (detection.behaviour.rules and detection.detectors.motion),
# offered on the page with those the user's alerts already show.
KNOWN_EVENT_TYPES = ("concealment", "exit_without_checkout", "person_dwell", "restricted_entry", "loitering",
                     "zone_activity")


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
