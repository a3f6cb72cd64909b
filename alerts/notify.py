"""Notifications: each alert, then its clip once ready, sent where staff and integrators are.

Who calls what:
  notify_plan(alert_id, ALERT)       alerts.emitter.alert_raise, once the alert row exists
  notify_plan(alert_id, CLIP_READY)  alerts.clip_jobs, once the alert's first clip is ready
  delivery_send(delivery_id)         the Celery task alerts.tasks.deliver_notification
  deliveries_sweep()                 alerts.emitter.alerts_sweep: deliveries whose task was lost
  notify_test(site)                  `manage.py notify_test`

Each message to each recipient is a NotificationDelivery row (the outbox) and a Celery task that
sends it, retried with backoff up to NOTIFY_MAX_ATTEMPTS; a dead endpoint costs its own task only,
never an alert or a clip. A recipient is a target (NotificationTarget) or one user's device
(WebPushSubscription, alerts.push). It picks alerts by event type and minimum score; inside
NOTIFY_COOLDOWN_SECONDS after a recipient's last alert message for the same camera and zone, an
alert sends it nothing (the row says "skipped"), nor its clip-ready follow-up.

Channels:
  webhook  a JSON POST, its body signed with HMAC-SHA256 in `X-Shoplift-Signature: sha256=<hex>`;
           the body's "sent_at" (epoch seconds) lets a receiver refuse replays
  email    Django's e-mail backend; the alert message carries the snapshot as an attachment
  mqtt     paho-mqtt, QoS 1: `shoplift/alerts` and `shoplift/<site>/<camera>/alert`; and, from the
           detectors' status writer, each camera's retained `shoplift/<site>/<camera>/online`
  webpush  the Web Push protocol (pywebpush) to each user's devices: the payload encrypted for the
           device (aes128gcm), signed with the VAPID key; a push service answering 404 or 410 has
           dropped the subscription, which is removed (that delivery fails at once, no retries)

Links point to the dashboard's permission-checked pages (DASHBOARD_URL); no clip or snapshot ever
travels by a public URL. Secrets and credentials are never logged.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import unquote, urlsplit

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.text import slugify

from alerts.models import (
    Alert,
    DeliveryStatus,
    NotificationDelivery,
    NotificationTarget,
    NotifyChannel,
    NotifyMessage,
    WebPushSubscription,
    clip_storage,
)
from alerts.push import push_endpoint_remove, push_subscriptions_for
from alerts.templatetags.dashboard import event_label
from cameras.models import Site
from cameras.selectors import role_at_site
from shoplift.masking import mask_text
from shoplift.storage import STORAGE_ERRORS

logger = logging.getLogger(__name__)

# The deployment's own targets, configured by the environment, by the name their row carries.
ENVIRONMENT_TARGETS = {
    NotifyChannel.WEBHOOK: ("NOTIFY_WEBHOOK_URL", "Deployment webhook (NOTIFY_WEBHOOK_URL)"),
    NotifyChannel.MQTT: ("NOTIFY_MQTT_URL", "Deployment MQTT broker (NOTIFY_MQTT_URL)"),
}
MAX_BACKOFF_SECONDS = 600.0
WEBPUSH_TTL_SECONDS = 3600  # a push service keeps a message this long for a device that is offline
STALE_SECONDS = 120.0  # a queued delivery this far past its due time lost its task: the sweeper sends it again


class DeliveryError(Exception):
    """The endpoint refused or could not be reached; the message says which and why."""


class DeliveryGone(DeliveryError):
    """The recipient is gone for good (a subscription the push service dropped): retrying cannot help."""


Recipient = NotificationTarget | WebPushSubscription


@dataclass(frozen=True)
class DeliveryOutcome:
    status: str  # a DeliveryStatus value, or "busy" when another attempt holds it
    retry_in: float | None = None
    detail: str = ""


# --- planning ---------------------------------------------------------------------------------------

def environment_targets() -> list[NotificationTarget]:
    """The targets the environment configures, as rows (created on first use)."""
    targets = []
    for channel, (setting, name) in ENVIRONMENT_TARGETS.items():
        if getattr(settings, setting):
            target, _ = NotificationTarget.objects.get_or_create(site=None, name=name, defaults={"channel": channel})
            targets.append(target)
    return targets


def notify_targets(site: Site) -> list[NotificationTarget]:
    own = list(NotificationTarget.objects.filter(site=site, enabled=True).order_by("pk"))
    return own + [t for t in environment_targets() if t.enabled]


def notify_plan(*, alert_id: int, message: str) -> int:
    """Create the deliveries of one message about an alert and send them once committed. Returns how
    many will be sent. Never raises for a recipient's sake: planning must not cost the caller its alert."""
    alert = Alert.objects.select_related("camera__site").filter(pk=alert_id).first()
    if alert is None:
        return 0
    site = alert.camera.site
    recipients: list[Recipient] = [*notify_targets(site), *push_subscriptions_for(site)]
    return sum(_plan(alert, message, recipient) for recipient in recipients)


def _to(recipient: Recipient) -> dict[str, Any]:
    """The delivery fields that name the recipient."""
    return {"subscription": recipient} if isinstance(recipient, WebPushSubscription) else {"target": recipient}


def _plan(alert: Alert, message: str, recipient: Recipient) -> int:
    if not recipient.wants(event_type=alert.event_type, score=alert.score):
        return 0
    status = DeliveryStatus.QUEUED
    if message == NotifyMessage.CLIP_READY:
        announced = NotificationDelivery.objects.filter(**_to(recipient), alert=alert, message=NotifyMessage.ALERT)
        if not announced.exclude(status=DeliveryStatus.SKIPPED).exists():
            return 0  # the follow-up only goes where the alert went
    elif _cooling_down(recipient, alert):
        status = DeliveryStatus.SKIPPED
    delivery, created = NotificationDelivery.objects.get_or_create(**_to(recipient), alert=alert, message=message,
                                                                  defaults={"status": status})
    if created and status == DeliveryStatus.QUEUED:
        delivery_enqueue(delivery_id=delivery.pk)
        return 1
    if created:
        logger.info("notification skipped (cooldown) alert=%s recipient=%s", alert.pk, delivery.recipient)
    return 0


def _cooling_down(recipient: Recipient, alert: Alert) -> bool:
    since = alert.detected_at - timedelta(seconds=settings.NOTIFY_COOLDOWN_SECONDS)
    return NotificationDelivery.objects.filter(
        Q(alert__zone_id=alert.zone_id) if alert.zone_id is not None else Q(alert__zone__isnull=True),
        **_to(recipient), message=NotifyMessage.ALERT, alert__camera_id=alert.camera_id, created_at__gte=since,
    ).exclude(status=DeliveryStatus.SKIPPED).exclude(alert=alert).exists()


def delivery_enqueue(*, delivery_id: int) -> None:
    """Send the delivery's task once the current transaction commits; a broker that is down loses
    nothing (the row stays queued and the sweeper sends it again)."""
    from alerts.tasks import deliver_notification, enqueue_now

    transaction.on_commit(lambda: enqueue_now(deliver_notification, delivery_id))


def deliveries_sweep(*, now: Any = None, limit: int = 200) -> int:
    """Send again the queued deliveries whose task was lost (Redis down, worker killed)."""
    now = now or timezone.now()
    stale = NotificationDelivery.objects.filter(status=DeliveryStatus.QUEUED,
                                                next_attempt_at__lt=now - timedelta(seconds=STALE_SECONDS))
    ids = list(stale.order_by("next_attempt_at").values_list("pk", flat=True)[:limit])
    for delivery_id in ids:
        NotificationDelivery.objects.filter(pk=delivery_id, status=DeliveryStatus.QUEUED).update(next_attempt_at=now)
        delivery_enqueue(delivery_id=delivery_id)
    if ids:
        logger.warning("notification sweeper re-enqueued count=%s", len(ids))
    return len(ids)


# --- sending ----------------------------------------------------------------------------------------

def delivery_send(*, delivery_id: int) -> DeliveryOutcome:
    """One attempt at one delivery. Owns its state: sent, queued again with a retry delay, or failed
    for good after NOTIFY_MAX_ATTEMPTS."""
    now = timezone.now()
    # Claim the attempt: a redelivered task and the sweeper cannot both send at the same moment.
    claimed = NotificationDelivery.objects.filter(pk=delivery_id, status=DeliveryStatus.QUEUED).update(
        attempts=F("attempts") + 1, next_attempt_at=now + timedelta(seconds=settings.NOTIFY_TIMEOUT_SECONDS * 3))
    if not claimed:
        return DeliveryOutcome("skipped", detail="not queued")
    delivery = NotificationDelivery.objects.select_related(
        "target", "subscription__user", "subscription__site", "alert__camera__site").get(pk=delivery_id)
    try:
        _send(delivery)
    except DeliveryError as exc:
        return _failed(delivery, str(exc), final=isinstance(exc, DeliveryGone))
    NotificationDelivery.objects.filter(pk=delivery_id).update(status=DeliveryStatus.SENT, sent_at=timezone.now(),
                                                               last_error="")
    channel = delivery.target.channel if delivery.target else NotifyChannel.WEBPUSH
    logger.info("notification sent alert=%s message=%s recipient=%s channel=%s attempt=%s", delivery.alert_id,
                delivery.message, delivery.recipient, channel, delivery.attempts)
    return DeliveryOutcome(DeliveryStatus.SENT)


def _failed(delivery: NotificationDelivery, error: str, *, final: bool = False) -> DeliveryOutcome:
    error = mask_text(error)
    attempts = delivery.attempts
    if final or attempts >= settings.NOTIFY_MAX_ATTEMPTS:
        NotificationDelivery.objects.filter(pk=delivery.pk).update(status=DeliveryStatus.FAILED, last_error=error)
        logger.error("notification failed alert=%s message=%s recipient=%s attempts=%s error=%s: gave up",
                     delivery.alert_id, delivery.message, delivery.recipient, attempts, error)
        return DeliveryOutcome(DeliveryStatus.FAILED, detail=error)
    retry_in = min(float(settings.NOTIFY_RETRY_BACKOFF_SECONDS) * 2.0 ** (attempts - 1), MAX_BACKOFF_SECONDS)
    NotificationDelivery.objects.filter(pk=delivery.pk).update(
        status=DeliveryStatus.QUEUED, last_error=error, next_attempt_at=timezone.now() + timedelta(seconds=retry_in))
    logger.warning("notification not sent alert=%s message=%s recipient=%s attempt=%s retry_in=%.0f error=%s",
                   delivery.alert_id, delivery.message, delivery.recipient, attempts, retry_in, error)
    return DeliveryOutcome(DeliveryStatus.QUEUED, retry_in=retry_in, detail=error)


def _send(delivery: NotificationDelivery) -> None:
    target = delivery.target
    if target is None:  # a user's device
        send_webpush(delivery)
        return
    body = payload(delivery)
    if target.channel == NotifyChannel.WEBHOOK:
        url = target.address or settings.NOTIFY_WEBHOOK_URL
        secret = target.secret or (settings.NOTIFY_WEBHOOK_SECRET if target.site_id is None else "")
        send_webhook(url, body, secret)
    elif target.channel == NotifyChannel.EMAIL:
        send_email(delivery, body)
    elif target.channel == NotifyChannel.MQTT:
        send_mqtt(target.address or settings.NOTIFY_MQTT_URL, mqtt_messages(delivery, body))
    else:
        raise DeliveryError(f"unknown channel {target.channel!r}")


def payload(delivery: NotificationDelivery) -> dict[str, Any]:
    """The JSON every channel carries (documented in README.md, "Notifications")."""
    base = settings.DASHBOARD_URL
    body: dict[str, Any] = {"type": delivery.message, "sent_at": int(time.time()), "delivery": delivery.pk}
    alert = delivery.alert
    if alert is None:
        site = delivery.target.site if delivery.target else None
        body["message"] = f"Test message from Shoplift for {site.name if site else 'every site'}."
        body["url"] = f"{base}/"
        return body
    camera = alert.camera
    body["alert"] = {
        "id": alert.pk, "site": camera.site.name, "camera": camera.name, "channel": camera.channel,
        "zone": alert.zone_name or None, "event_type": alert.event_type, "score": round(alert.score, 3),
        "event_start": alert.event_start.isoformat(), "detected_at": alert.detected_at.isoformat(),
        "url": f"{base}/alerts/{alert.pk}/", "snapshot_url": f"{base}/alerts/{alert.pk}/thumbnail/",
    }
    if delivery.message == NotifyMessage.CLIP_READY:
        body["alert"].update({"clip_sha256": alert.clip_sha256, "clip_seconds": alert.clip_duration})
    return body


def webhook_signature(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def send_webhook(url: str, body: dict[str, Any], secret: str) -> None:
    data = json.dumps(body, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "shoplift-notify/1",
               "X-Shoplift-Event": str(body["type"]), "X-Shoplift-Delivery": str(body["delivery"])}
    if secret:
        headers["X-Shoplift-Signature"] = webhook_signature(data, secret)
    request = urllib.request.Request(url, data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=settings.NOTIFY_TIMEOUT_SECONDS) as response:
            response.read(1024)
    except urllib.error.HTTPError as exc:
        raise DeliveryError(f"webhook {mask_text(url)} answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DeliveryError(f"webhook {mask_text(url)} unreachable: {reason}") from None


def send_email(delivery: NotificationDelivery, body: dict[str, Any]) -> None:
    recipients = [a.strip() for a in (delivery.target.address if delivery.target else "").split(",") if a.strip()]
    if not recipients:
        raise DeliveryError("the e-mail target has no address")
    alert = delivery.alert
    if alert is None:
        subject, text = "[Shoplift] Test message", f"{body['message']}\n\nDashboard: {body['url']}\n"
    else:
        facts = body["alert"]
        where = f"{facts['site']} / {facts['camera']}" + (f" / {facts['zone']}" if facts["zone"] else "")
        if delivery.message == NotifyMessage.CLIP_READY:
            subject = f"[Shoplift] Clip ready: {alert.event_type} at {where}"
            text = f"The evidence clip of alert #{alert.pk} is ready.\n\nWatch it: {facts['url']}\n"
        else:
            subject = f"[Shoplift] {alert.event_type} at {where} (score {alert.score:.2f})"
            text = (f"Alert #{alert.pk}: {alert.event_type} at {where}, score {alert.score:.2f}, at "
                    f"{facts['event_start']}.\n\nOpen it (sign-in required): {facts['url']}\n"
                    "The clip follows in a second message when it is ready.\n")
    email = EmailMessage(subject, text, settings.DEFAULT_FROM_EMAIL, recipients)
    if alert is not None and delivery.message == NotifyMessage.ALERT and alert.thumbnail.name:
        try:
            with clip_storage().open(alert.thumbnail.name, "rb") as fh:
                email.attach(f"alert-{alert.pk}.jpg", fh.read(), "image/jpeg")
        except STORAGE_ERRORS as exc:
            logger.warning("notification snapshot not attached alert=%s error=%s", alert.pk, exc)
    try:
        email.send(fail_silently=False)
    except OSError as exc:  # smtplib's errors are OSErrors too
        raise DeliveryError(f"e-mail to {len(recipients)} recipient(s) not sent: {exc}") from None


def mqtt_messages(delivery: NotificationDelivery, body: dict[str, Any]) -> list[tuple[str, str]]:
    data = json.dumps(body, separators=(",", ":"))
    alert = delivery.alert
    if alert is None:
        return [("shoplift/test", data)]
    topic = "alert" if delivery.message == NotifyMessage.ALERT else "clip_ready"
    return [(f"shoplift/{'alerts' if topic == 'alert' else 'clips'}", data), (f"{camera_topic(alert.camera)}/{topic}", data)]


def send_mqtt(url: str, messages: list[tuple[str, str]], *, retain: bool = False) -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    parts = urlsplit(url)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"shoplift-notify-{time.monotonic_ns()}")
    client.connect_timeout = settings.NOTIFY_TIMEOUT_SECONDS
    if parts.username:
        client.username_pw_set(unquote(parts.username), unquote(parts.password or ""))
    if parts.scheme == "mqtts":
        client.tls_set()
    try:
        client.connect(parts.hostname or "localhost", parts.port or (8883 if parts.scheme == "mqtts" else 1883))
        client.loop_start()
        try:
            infos = [client.publish(topic, data, qos=1, retain=retain) for topic, data in messages]
            for info in infos:
                info.wait_for_publish(timeout=settings.NOTIFY_TIMEOUT_SECONDS)
                if not info.is_published():
                    raise DeliveryError(f"MQTT broker {mask_text(url)} did not acknowledge the message")
        finally:
            client.disconnect()
            client.loop_stop()
    except (OSError, ValueError, RuntimeError) as exc:
        raise DeliveryError(f"MQTT broker {mask_text(url)} unreachable: {exc}") from None


def camera_topic(camera: Any) -> str:
    return f"shoplift/{slugify(camera.site.name) or camera.site_id}/{slugify(camera.name) or camera.pk}"


def camera_online_publish(*, camera_id: int, online: bool) -> None:
    """Publish a camera's state as the retained `shoplift/<site>/<camera>/online` message (payload
    `online` or `offline`), so a subscriber learns it at once, even one that connects later."""
    from cameras.models import Camera

    if not settings.NOTIFY_MQTT_URL:
        return
    camera = Camera.objects.select_related("site").filter(pk=camera_id).first()
    if camera is not None:
        send_mqtt(settings.NOTIFY_MQTT_URL, [(f"{camera_topic(camera)}/online", "online" if online else "offline")],
                  retain=True)


def webpush_payload(delivery: NotificationDelivery) -> dict[str, Any]:
    """payload() plus what the service worker shows (static/js/sw.js): a title, a body, the page a
    click opens and the snapshot, both permission-checked pages of the dashboard. Well under the 4 KB
    a push message may carry (site, camera and zone names are at most 100 characters each)."""
    body = payload(delivery)
    alert = delivery.alert
    if alert is None:
        body["notification"] = {"title": "Shoplift test message", "body": body["message"], "url": body["url"],
                                "tag": "test"}
        return body
    facts = body["alert"]
    what = f"{event_label(alert.event_type)} at {facts['site']} / {facts['camera']}"
    details = (f"Zone {facts['zone']}" if facts["zone"] else "Whole frame") + f" · score {alert.score:.2f}"
    clip_ready = delivery.message == NotifyMessage.CLIP_READY
    body["notification"] = {
        "title": f"Clip ready: {what}" if clip_ready else what,
        "body": f"{details} · open it to watch the clip" if clip_ready else details,
        "url": facts["url"], "image": facts["snapshot_url"], "tag": f"alert-{alert.pk}",
    }
    return body


def send_webpush(delivery: NotificationDelivery) -> None:
    """Encrypt the payload for the device and POST it to its push service, signed with the VAPID key."""
    import requests  # pywebpush's HTTP client
    from py_vapid import Vapid, VapidException  # type: ignore[import-untyped]
    from pywebpush import WebPushException, webpush  # type: ignore[import-untyped]

    subscription = delivery.subscription
    if subscription is None:
        raise DeliveryGone("the device's push subscription was removed before this message was sent")
    if not settings.VAPID_PRIVATE_KEY:
        raise DeliveryError("Web Push is off: VAPID_PUBLIC_KEY and VAPID_PRIVATE_KEY are not set")
    if not subscription.user.is_active or role_at_site(user=subscription.user, site_id=subscription.site_id) is None:
        raise DeliveryGone(f"{subscription.user} no longer holds a role at {subscription.site}: not sent")
    service = subscription.push_service  # the endpoint's path is a capability: never in a log or an error
    data = json.dumps(webpush_payload(delivery), separators=(",", ":"))
    try:
        webpush({"endpoint": subscription.endpoint, "keys": {"p256dh": subscription.p256dh, "auth": subscription.auth}},
                data=data, vapid_private_key=Vapid.from_raw(settings.VAPID_PRIVATE_KEY.encode()),
                vapid_claims={"sub": settings.VAPID_SUBJECT}, ttl=WEBPUSH_TTL_SECONDS,
                timeout=settings.NOTIFY_TIMEOUT_SECONDS,
                headers={"Urgency": "high" if delivery.message == NotifyMessage.ALERT else "normal"})
    except WebPushException as exc:
        code = exc.status_code
        if code in (404, 410):
            removed = push_endpoint_remove(endpoint=subscription.endpoint)
            raise DeliveryGone(f"push service {service} answered HTTP {code}: the browser's subscription has ended; "
                               f"{subscription} removed ({removed} subscription(s) of that device)") from None
        raise DeliveryError(f"push service {service} answered HTTP {code}" if code else
                            f"push to {service} failed: {exc.message}") from None
    except requests.RequestException as exc:
        path = urlsplit(subscription.endpoint).path
        reason = str(exc).replace(path, "/...") if path not in ("", "/") else str(exc)
        raise DeliveryError(f"push service {service} unreachable: {reason}") from None
    except (VapidException, ValueError) as exc:
        raise DeliveryError(f"push to {service} not signed or encrypted: {exc}") from None
    WebPushSubscription.objects.filter(pk=subscription.pk).update(last_success_at=timezone.now())


# --- the test command -------------------------------------------------------------------------------

def notify_test(site: Site) -> list[tuple[str, DeliveryOutcome]]:
    """Send a test message through every target and subscribed device of the site (and the
    environment's targets), now. Returns each recipient's name with how it went."""
    results = []
    recipients: list[Recipient] = [*notify_targets(site), *push_subscriptions_for(site)]
    for recipient in recipients:
        delivery = NotificationDelivery.objects.create(**_to(recipient), alert=None, message=NotifyMessage.TEST)
        outcome = delivery_send(delivery_id=delivery.pk)
        if outcome.status == DeliveryStatus.QUEUED:  # no retries for a test: say what went wrong now
            NotificationDelivery.objects.filter(pk=delivery.pk).update(status=DeliveryStatus.FAILED)
        label = (f"{recipient.name} ({recipient.get_channel_display()})" if isinstance(recipient, NotificationTarget)
                 else f"{recipient} (Web Push)")
        results.append((label, outcome))
    return results
