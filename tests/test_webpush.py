"""Web Push: real encryption and signatures, checked by a push service on 127.0.0.1 that speaks the
receiving side of the protocol (RFC 8030 over HTTPS, VAPID RFC 8292, aes128gcm RFC 8291) and
decrypts each message with the keys a browser would hold; who may subscribe where; the keys'
settings; the service worker and the Notifications page."""
from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import os
import secrets
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import http_ece
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import NameOID
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.test import Client

from alerts.models import (
    DeliveryStatus,
    NotificationDelivery,
    NotificationTarget,
    NotifyChannel,
    NotifyMessage,
    WebPushSubscription,
)
from alerts.notify import delivery_send, notify_plan
from alerts.push import vapid_keys_generate
from cameras.models import Role, SiteMembership
from tests.support.factories import PASSWORD, make_alert, make_camera, make_site, make_user, make_zone

ROOT = Path(__file__).resolve().parent.parent
SUBJECT = "mailto:ops@example.com"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Device:
    """What a browser keeps for one push subscription: its P-256 key pair and 16-byte auth secret."""

    endpoint: str
    key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    auth_secret: bytes = field(default_factory=lambda: secrets.token_bytes(16))

    @property
    def p256dh(self) -> str:
        return b64url(self.key.public_key().public_bytes(serialization.Encoding.X962,
                                                         serialization.PublicFormat.UncompressedPoint))

    @property
    def auth(self) -> str:
        return b64url(self.auth_secret)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    vapid_key: str
    claims: dict[str, Any]
    message: dict[str, Any]


class PushService:
    """A push service on https://127.0.0.1: checks each message's VAPID signature (ES256 with the key
    in the header), then decrypts the body with the device's private key and auth secret. Answers
    `codes` in turn, then 201 Created."""

    def __init__(self, tmp_path: Path) -> None:
        self.devices: dict[str, Device] = {}
        self.received: list[Received] = []
        self.refused: list[str] = []
        self.codes: list[int] = []
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                try:
                    service.received.append(service.receive(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                except Exception as exc:  # the test reads what was refused and why
                    service.refused.append(f"{type(exc).__name__}: {exc}")
                    self.send_response(400)
                else:
                    self.send_response(service.codes.pop(0) if service.codes else 201)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.ca_file = self._tls(tmp_path)
        self.origin = f"https://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _tls(self, tmp_path: Path) -> Path:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test push service")])
        now = dt.datetime.now(dt.UTC)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(hours=1))
                .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                               critical=False)
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
                .sign(key, hashes.SHA256()))
        cert_file, key_file = tmp_path / "push-cert.pem", tmp_path / "push-key.pem"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        return cert_file

    def device(self) -> Device:
        device = Device(f"{self.origin}/wpush/v2/{secrets.token_urlsafe(24)}")
        self.devices[device.endpoint.removeprefix(self.origin)] = device
        return device

    def receive(self, path: str, headers: dict[str, str], body: bytes) -> Received:
        device = self.devices[path]
        scheme, _, params = headers["authorization"].partition(" ")
        assert scheme == "vapid", headers["authorization"]
        fields = dict(part.split("=", 1) for part in params.split(","))
        token, vapid_key = fields["t"], fields["k"]
        signed, _, signature = token.rpartition(".")
        header = json.loads(unb64url(signed.split(".")[0]))
        assert header["alg"] == "ES256", header
        raw = unb64url(signature)
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(vapid_key))
        public.verify(encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")),
                      signed.encode(), ec.ECDSA(hashes.SHA256()))  # raises InvalidSignature
        claims = json.loads(unb64url(signed.split(".")[1]))
        assert headers["content-encoding"] == "aes128gcm", headers
        plain = http_ece.decrypt(body, private_key=device.key, auth_secret=device.auth_secret, version="aes128gcm")
        return Received(path=path, headers=headers, vapid_key=vapid_key, claims=claims, message=json.loads(plain))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def vapid(settings: Any) -> tuple[str, str]:
    public, private = vapid_keys_generate()
    settings.VAPID_PUBLIC_KEY, settings.VAPID_PRIVATE_KEY, settings.VAPID_SUBJECT = public, private, SUBJECT
    return public, private


@pytest.fixture
def push_service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[PushService]:
    service = PushService(tmp_path)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(service.ca_file))  # requests trusts the test service's certificate
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    yield service
    service.close()


@pytest.fixture
def store() -> dict[str, Any]:
    site = make_site("Main St")
    camera = make_camera(site, "Aisle 3")
    return {"site": site, "camera": camera, "zone": make_zone(camera, "Spirits shelf"),
            "viewer": make_user("vera", site=site, role=Role.VIEWER)}


def signed_in(user: Any, **client_options: Any) -> Client:
    client = Client(**client_options)
    client.force_login(user)
    return client


def subscribe(client: Client, site: Any, device: Device, **fields: Any) -> Any:
    data = {"site": str(site.pk), "endpoint": device.endpoint, "p256dh": device.p256dh, "auth": device.auth, **fields}
    return client.post("/notifications/subscribe/", data, HTTP_USER_AGENT="Mozilla/5.0 (Android 15) Chrome/140")


def send_all(message: str) -> list[Any]:
    return [delivery_send(delivery_id=pk) for pk in
            NotificationDelivery.objects.filter(message=message, status=DeliveryStatus.QUEUED).values_list("pk", flat=True)]


# --- sending ----------------------------------------------------------------------------------------

@pytest.mark.django_db
def test_a_subscribed_device_gets_the_alert_then_clip_ready_encrypted_for_it_and_signed_with_vapid(
        vapid: tuple[str, str], push_service: PushService, store: dict[str, Any], settings: Any) -> None:
    device = push_service.device()
    response = subscribe(signed_in(store["viewer"]), store["site"], device, event_types=["concealment"],
                         min_score="0.5")
    assert response.status_code == 201, response.content
    subscription = WebPushSubscription.objects.get()
    assert (subscription.user, subscription.site, subscription.event_types) == (store["viewer"], store["site"],
                                                                                 ["concealment"])
    alert = make_alert(store["camera"], zone=store["zone"], event_type="concealment", score=0.87)

    assert notify_plan(alert_id=alert.pk, message=NotifyMessage.ALERT) == 1
    assert [o.status for o in send_all(NotifyMessage.ALERT)] == [DeliveryStatus.SENT], push_service.refused
    assert notify_plan(alert_id=alert.pk, message=NotifyMessage.CLIP_READY) == 1
    assert [o.status for o in send_all(NotifyMessage.CLIP_READY)] == [DeliveryStatus.SENT], push_service.refused

    first, second = push_service.received
    assert first.vapid_key == vapid[0]  # signed with the configured key, which verified the JWT
    assert first.claims["aud"] == push_service.origin and first.claims["sub"] == SUBJECT
    assert time.time() < first.claims["exp"] <= time.time() + 24 * 3600
    assert first.headers["ttl"] == "3600" and first.headers["urgency"] == "high"
    detail = f"{settings.DASHBOARD_URL}/alerts/{alert.pk}/"
    assert first.message["type"] == "alert" and first.message["alert"]["id"] == alert.pk
    assert first.message["notification"] == {
        "title": "Concealment at Main St / Aisle 3", "body": "Zone Spirits shelf · score 0.87", "url": detail,
        "image": f"{settings.DASHBOARD_URL}/alerts/{alert.pk}/thumbnail/", "tag": f"alert-{alert.pk}"}
    assert second.message["type"] == "clip_ready" and second.message["alert"]["id"] == alert.pk
    assert second.message["notification"]["title"] == "Clip ready: Concealment at Main St / Aisle 3"
    assert second.message["notification"]["url"] == detail
    subscription.refresh_from_db()
    assert subscription.last_success_at is not None
    assert NotificationDelivery.objects.filter(subscription=subscription, status=DeliveryStatus.SENT).count() == 2


@pytest.mark.django_db
def test_a_device_gets_only_its_sites_alerts_that_pass_its_filters_and_cooldown(
        vapid: tuple[str, str], push_service: PushService, store: dict[str, Any], settings: Any) -> None:
    settings.NOTIFY_COOLDOWN_SECONDS = 60
    subscribe(signed_in(store["viewer"]), store["site"], push_service.device(), event_types=["concealment"],
              min_score="0.5")
    other_camera = make_camera(make_site("Riverside"), "Door")
    now = dt.datetime.now(dt.UTC)
    elsewhere = make_alert(other_camera, event_type="concealment", score=0.99, at=now)
    weak = make_alert(store["camera"], zone=store["zone"], event_type="concealment", score=0.3, at=now)
    other_type = make_alert(store["camera"], zone=store["zone"], event_type="loitering", score=0.9, at=now)
    first = make_alert(store["camera"], zone=store["zone"], event_type="concealment", score=0.9, at=now)
    again = make_alert(store["camera"], zone=store["zone"], event_type="concealment", score=0.9,
                       at=now + dt.timedelta(seconds=20))

    counts = [notify_plan(alert_id=a.pk, message=NotifyMessage.ALERT) for a in (elsewhere, weak, other_type, first, again)]

    assert counts == [0, 0, 0, 1, 0]
    assert dict(NotificationDelivery.objects.values_list("alert_id", "status")) == {
        first.pk: DeliveryStatus.QUEUED, again.pk: DeliveryStatus.SKIPPED}
    assert notify_plan(alert_id=again.pk, message=NotifyMessage.CLIP_READY) == 0  # only where the alert went


@pytest.mark.django_db
def test_a_user_who_lost_their_role_at_the_site_gets_nothing_more(
        vapid: tuple[str, str], push_service: PushService, store: dict[str, Any]) -> None:
    subscribe(signed_in(store["viewer"]), store["site"], push_service.device())
    queued = make_alert(store["camera"], event_type="concealment")
    assert notify_plan(alert_id=queued.pk, message=NotifyMessage.ALERT) == 1

    SiteMembership.objects.filter(user=store["viewer"]).delete()

    [outcome] = send_all(NotifyMessage.ALERT)  # planned before: refused when sent, for good
    assert outcome.status == DeliveryStatus.FAILED and "no longer holds a role at Main St" in outcome.detail
    assert push_service.received == []
    later = make_alert(store["camera"], event_type="concealment", at=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
    assert notify_plan(alert_id=later.pk, message=NotifyMessage.ALERT) == 0


@pytest.mark.django_db
@pytest.mark.parametrize("code", [404, 410])
def test_a_subscription_the_push_service_dropped_is_removed_and_its_delivery_failed_without_retry(
        code: int, vapid: tuple[str, str], push_service: PushService, store: dict[str, Any]) -> None:
    device = push_service.device()
    client = signed_in(store["viewer"])
    riverside = make_site("Riverside")
    SiteMembership.objects.create(user=store["viewer"], site=riverside, role=Role.VIEWER)
    subscribe(client, store["site"], device)
    subscribe(client, riverside, device)  # the same phone follows two stores
    kept = push_service.device()
    subscribe(client, store["site"], kept)
    notify_plan(alert_id=make_alert(store["camera"], event_type="concealment").pk, message=NotifyMessage.ALERT)
    gone = NotificationDelivery.objects.get(subscription__endpoint=device.endpoint)
    push_service.codes = [code]

    outcome = delivery_send(delivery_id=gone.pk)

    assert outcome.status == DeliveryStatus.FAILED and outcome.retry_in is None
    gone.refresh_from_db()
    assert gone.status == DeliveryStatus.FAILED and gone.attempts == 1 and gone.subscription is None
    assert f"answered HTTP {code}" in gone.last_error and "vera's device at Main St" in gone.last_error
    assert device.endpoint.removeprefix(push_service.origin) not in gone.last_error  # the capability is not logged
    assert list(WebPushSubscription.objects.values_list("endpoint", flat=True)) == [kept.endpoint]
    assert delivery_send(delivery_id=gone.pk).status == "skipped"  # not queued: nothing sends it again


@pytest.mark.django_db
def test_a_push_service_error_is_retried_like_any_channel_and_keeps_the_subscription(
        vapid: tuple[str, str], push_service: PushService, store: dict[str, Any], settings: Any) -> None:
    subscribe(signed_in(store["viewer"]), store["site"], push_service.device())
    notify_plan(alert_id=make_alert(store["camera"]).pk, message=NotifyMessage.ALERT)
    delivery = NotificationDelivery.objects.get()
    push_service.codes = [500]

    first = delivery_send(delivery_id=delivery.pk)
    second = delivery_send(delivery_id=delivery.pk)

    assert first.status == DeliveryStatus.QUEUED and first.retry_in == settings.NOTIFY_RETRY_BACKOFF_SECONDS
    assert f"push service {push_service.origin} answered HTTP 500" == first.detail
    assert second.status == DeliveryStatus.SENT and len(push_service.received) == 2
    assert WebPushSubscription.objects.count() == 1


@pytest.mark.django_db
def test_nothing_is_planned_for_devices_while_web_push_is_off(push_service: PushService, store: dict[str, Any],
                                                              settings: Any) -> None:
    device = push_service.device()
    WebPushSubscription.objects.create(user=store["viewer"], site=store["site"], endpoint=device.endpoint,
                                       p256dh=device.p256dh, auth=device.auth)
    settings.VAPID_PUBLIC_KEY = settings.VAPID_PRIVATE_KEY = ""
    assert notify_plan(alert_id=make_alert(store["camera"]).pk, message=NotifyMessage.ALERT) == 0


# --- who may subscribe where ------------------------------------------------------------------------

@pytest.mark.django_db
def test_a_user_cannot_subscribe_at_a_site_where_they_hold_no_role(vapid: tuple[str, str], push_service: PushService,
                                                                   store: dict[str, Any]) -> None:
    elsewhere = make_site("Riverside")
    response = subscribe(signed_in(store["viewer"]), elsewhere, push_service.device())
    assert response.status_code == 404
    assert subscribe(signed_in(store["viewer"]), SimpleNamespace(pk=999999), push_service.device()).status_code == 404
    assert not WebPushSubscription.objects.exists()
    # A superuser holds every site.
    assert subscribe(signed_in(make_user("root", superuser=True)), elsewhere, push_service.device()).status_code == 201


@pytest.mark.django_db
def test_subscribing_and_removing_need_a_signed_in_user_and_the_csrf_token(
        vapid: tuple[str, str], push_service: PushService, store: dict[str, Any]) -> None:
    device = push_service.device()
    anonymous = subscribe(Client(), store["site"], device)
    assert anonymous.status_code == 302 and anonymous.url.startswith("/login/")
    assert subscribe(signed_in(store["viewer"], enforce_csrf_checks=True), store["site"], device).status_code == 403
    assert not WebPushSubscription.objects.exists()

    page = Client(enforce_csrf_checks=True)
    assert page.login(username="vera", password=PASSWORD)
    token = page.get("/notifications/").context["csrf_token"]
    assert subscribe(page, store["site"], device, csrfmiddlewaretoken=str(token)).status_code == 201
    subscription = WebPushSubscription.objects.get()

    remove = f"/notifications/{subscription.pk}/delete/"
    assert Client().post(remove).status_code == 302  # to the login page
    assert page.post(remove).status_code == 403  # no token
    assert page.get(remove).status_code == 405
    assert WebPushSubscription.objects.exists()
    assert page.post(remove, {"csrfmiddlewaretoken": str(token)}).status_code == 302
    assert not WebPushSubscription.objects.exists()


@pytest.mark.django_db
def test_a_user_can_remove_only_their_own_devices(vapid: tuple[str, str], push_service: PushService,
                                                  store: dict[str, Any]) -> None:
    subscribe(signed_in(store["viewer"]), store["site"], push_service.device(), event_types=["concealment"])
    subscription = WebPushSubscription.objects.get()
    own = signed_in(store["viewer"]).get("/notifications/").content.decode()
    assert f'action="/notifications/{subscription.pk}/delete/"' in own and "Concealment" in own and "Chrome/140" in own
    colleague = make_user("colin", site=store["site"], role=Role.MANAGER)
    assert f"/notifications/{subscription.pk}/delete/" not in signed_in(colleague).get("/notifications/").content.decode()
    assert signed_in(colleague).post(f"/notifications/{subscription.pk}/delete/").status_code == 404
    assert WebPushSubscription.objects.filter(pk=subscription.pk).exists()


@pytest.mark.django_db
def test_a_shared_browser_belongs_to_whoever_subscribed_it_last(vapid: tuple[str, str], push_service: PushService,
                                                                store: dict[str, Any]) -> None:
    kiosk = push_service.device()
    subscribe(signed_in(store["viewer"]), store["site"], kiosk)
    colleague = make_user("colin", site=store["site"], role=Role.REVIEWER)
    assert subscribe(signed_in(colleague), store["site"], kiosk, event_types=["loitering"]).status_code == 201
    assert list(WebPushSubscription.objects.values_list("user__username", "event_types")) == [("colin", ["loitering"])]


@pytest.mark.django_db
@pytest.mark.parametrize(("change", "refused"), [
    ({"endpoint": "http://127.0.0.1:9/wpush/abc"}, "https://"),
    ({"p256dh": b64url(b"\x04" + b"\x01" * 64)}, "not a P-256 point"),
    ({"auth": b64url(b"short")}, "not 16"),
    ({"min_score": "1.5"}, "min_score"),
    ({"event_types": ["DROP TABLE"]}, "event_types"),
])
def test_a_subscription_with_a_bad_endpoint_key_or_filter_is_refused_with_the_reason(
        change: dict[str, Any], refused: str, vapid: tuple[str, str], push_service: PushService,
        store: dict[str, Any]) -> None:
    response = subscribe(signed_in(store["viewer"]), store["site"], push_service.device(), **change)
    assert response.status_code == 400
    assert refused in response.json()["error"]
    assert not WebPushSubscription.objects.exists()


@pytest.mark.django_db
def test_web_push_is_no_target_a_manager_can_add() -> None:
    target = NotificationTarget(site=make_site("Main St"), name="x", channel=NotifyChannel.WEBPUSH)
    with pytest.raises(ValidationError, match="Notifications page"):
        target.full_clean()


@pytest.mark.django_db
def test_the_admin_shows_a_manager_the_devices_and_deliveries_of_their_sites_only(
        vapid: tuple[str, str], push_service: PushService, store: dict[str, Any]) -> None:
    other = make_site("Riverside")
    outsider = make_user("otto", site=other, role=Role.VIEWER)
    subscribe(signed_in(store["viewer"]), store["site"], push_service.device())
    subscribe(signed_in(outsider), other, push_service.device())
    notify_plan(alert_id=make_alert(store["camera"]).pk, message=NotifyMessage.ALERT)
    notify_plan(alert_id=make_alert(make_camera(other, "Door")).pk, message=NotifyMessage.ALERT)
    theirs = WebPushSubscription.objects.get(site=other)
    manager = signed_in(make_user("mona", site=store["site"], role=Role.MANAGER))

    devices = manager.get("/admin/alerts/webpushsubscription/").content.decode()
    deliveries = manager.get("/admin/alerts/notificationdelivery/").content.decode()

    assert "vera" in devices and "otto" not in devices and store["viewer"].push_subscriptions.get().endpoint not in devices
    assert "vera&#x27;s device at Main St" in deliveries and "Riverside" not in deliveries
    assert manager.get(f"/admin/alerts/webpushsubscription/{theirs.pk}/change/").status_code == 302


# --- settings ---------------------------------------------------------------------------------------

def check(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO", "DATABASE_URL", "VAPID_"))}
    base.update(SECRET_KEY="k" * 50, DEBUG="false", DJANGO_SETTINGS_MODULE="shoplift.settings", **env)
    return subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=base, capture_output=True, text=True,
                          timeout=60)


def generated() -> dict[str, str]:
    out, err = StringIO(), StringIO()
    call_command("generate_vapid_keys", stdout=out, stderr=err)
    lines = out.getvalue().splitlines()
    assert [line.split("=", 1)[0] for line in lines] == ["VAPID_PUBLIC_KEY", "VAPID_PRIVATE_KEY"]
    assert "VAPID_SUBJECT" in err.getvalue()
    return dict(line.split("=", 1) for line in lines)


def test_the_keys_generate_vapid_keys_prints_are_accepted_by_the_settings() -> None:
    keys = generated()
    result = check({**keys, "VAPID_SUBJECT": SUBJECT})
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(("change", "expected"), [
    ({"VAPID_PRIVATE_KEY": ""}, "VAPID_PRIVATE_KEY is not set: set VAPID_PUBLIC_KEY and VAPID_PRIVATE_KEY together"),
    ({"VAPID_PUBLIC_KEY": ""}, "VAPID_PUBLIC_KEY is not set"),
    ({"VAPID_PUBLIC_KEY": "not-a-key"}, "VAPID_PUBLIC_KEY='not-a-key' is invalid: expected the public key"),
    ({"VAPID_PRIVATE_KEY": "c2VjcmV0LWJ1dC1zaG9ydA"}, "VAPID_PRIVATE_KEY is invalid: expected the private key"),
    ({"VAPID_PUBLIC_KEY": "other"}, "VAPID_PUBLIC_KEY is not the public key of VAPID_PRIVATE_KEY"),
    ({"VAPID_SUBJECT": ""}, "VAPID_SUBJECT is not set"),
    ({"VAPID_SUBJECT": "ops@example.com"}, "VAPID_SUBJECT='ops@example.com' is invalid: expected a contact"),
])
def test_it_refuses_to_start_with_half_a_key_pair_or_a_malformed_key_naming_the_variable(
        change: dict[str, str], expected: str) -> None:
    keys = {**generated(), "VAPID_SUBJECT": SUBJECT}
    if change.get("VAPID_PUBLIC_KEY") == "other":
        change = {"VAPID_PUBLIC_KEY": vapid_keys_generate()[0]}
    result = check({**keys, **change})
    assert result.returncode != 0
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert keys["VAPID_PRIVATE_KEY"] not in result.stderr and "c2VjcmV0LWJ1dC1zaG9ydA" not in result.stderr


# --- the service worker and the page ----------------------------------------------------------------

@pytest.mark.django_db
def test_the_service_worker_is_served_from_the_root_as_javascript() -> None:
    response = Client().get("/sw.js")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/javascript")
    assert response["Cache-Control"] == "no-cache"
    source = response.content.decode()
    assert 'addEventListener("push"' in source and 'addEventListener("notificationclick"' in source
    assert "script-src 'self'" in response["Content-Security-Policy"]


@pytest.mark.django_db
def test_the_notifications_page_offers_the_users_sites_and_has_no_inline_script(
        vapid: tuple[str, str], store: dict[str, Any]) -> None:
    make_site("Riverside")
    response = signed_in(store["viewer"]).get("/notifications/")
    assert response.status_code == 200
    page = response.content.decode()
    assert f'<option value="{store["site"].pk}">Main St</option>' in page and "Riverside" not in page
    assert 'href="/notifications/"' in page  # the user menu's link
    assert 'value="concealment"' in page and 'value="exit_without_checkout"' in page
    config = json.loads(page.split('<script id="push-config" type="application/json">')[1].split("</script>")[0])
    assert config == {"vapid_public_key": vapid[0], "subscribe_url": "/notifications/subscribe/",
                      "service_worker_url": "/sw.js"}
    scripts = [tag for tag in page.split("<script")[1:]]
    assert all(' src="' in tag.split(">")[0] or 'type="application/json"' in tag.split(">")[0] for tag in scripts)
    assert Client().get("/notifications/").status_code == 302


@pytest.mark.django_db
def test_the_notifications_page_says_when_web_push_is_off(store: dict[str, Any], settings: Any) -> None:
    settings.VAPID_PUBLIC_KEY = settings.VAPID_PRIVATE_KEY = ""
    page = signed_in(store["viewer"]).get("/notifications/").content.decode()
    assert "data-push-off" in page and "<form method=\"post\" action=\"/notifications/subscribe/\"" not in page


@pytest.mark.django_db
def test_notify_test_reaches_the_sites_subscribed_devices_too(vapid: tuple[str, str], push_service: PushService,
                                                              store: dict[str, Any], capsys: Any) -> None:
    from django.core.management import call_command

    device = push_service.device()
    assert subscribe(signed_in(store["viewer"]), store["site"], device).status_code == 201

    call_command("notify_test", "--site", "Main St")

    assert "vera's device at Main St" in capsys.readouterr().out
    [received] = push_service.received
    assert received.message["type"] == "test" and received.message["notification"]["tag"] == "test"
