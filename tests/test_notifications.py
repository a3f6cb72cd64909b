"""Notifications: signed webhooks retried by a real worker, e-mail to a local SMTP server with the
snapshot attached, MQTT to the local broker, and the filters, cooldown and follow-up rules."""
from __future__ import annotations

import base64
import email
import hashlib
import hmac
import json
import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from alerts.models import (
    Alert,
    DeliveryStatus,
    NotificationDelivery,
    NotificationTarget,
    NotifyChannel,
    NotifyMessage,
)
from alerts.notify import deliveries_sweep, delivery_send, notify_plan, webhook_signature
from tests.support.factories import make_alert, make_camera, make_site, make_zone
from tests.support.processes import start_worker
from tests.support.rtsp import free_port, wait_until

SECRET = "a-webhook-secret-of-32-characters"


class Receiver:
    """A webhook endpoint on 127.0.0.1 that checks each body's signature and answers `codes` in turn
    (then 200)."""

    def __init__(self, codes: list[int]) -> None:
        self.codes, self.bodies, self.valid = list(codes), [], []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                data = self.rfile.read(int(self.headers["Content-Length"]))
                expected = "sha256=" + hmac.new(SECRET.encode(), data, hashlib.sha256).hexdigest()
                receiver.valid.append(hmac.compare_digest(expected, self.headers.get("X-Shoplift-Signature", "")))
                receiver.bodies.append(json.loads(data))
                self.send_response(receiver.codes.pop(0) if receiver.codes else 200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class SmtpServer:
    """The smallest SMTP server Django's backend talks to: every message it accepts, as bytes."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []
        outer = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                self.wfile.write(b"220 test ESMTP\r\n")
                while line := self.rfile.readline():
                    verb = line.split(b" ", 1)[0].strip().upper()
                    if verb in (b"EHLO", b"HELO"):
                        self.wfile.write(b"250 test\r\n")
                    elif verb == b"DATA":
                        self.wfile.write(b"354 go on\r\n")
                        data = b""
                        while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                            data += chunk
                        outer.messages.append(data)
                        self.wfile.write(b"250 queued\r\n")
                    elif verb == b"QUIT":
                        self.wfile.write(b"221 bye\r\n")
                        return
                    else:
                        self.wfile.write(b"250 ok\r\n")

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver([500, 500])
    yield server
    server.close()


def webhook(site: Any, url: str, **fields: Any) -> NotificationTarget:
    return NotificationTarget.objects.create(site=site, name=fields.pop("name", "POS"), channel=NotifyChannel.WEBHOOK,
                                             address=url, secret=SECRET, **fields)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)  # the worker has its own connection
def test_a_webhook_that_fails_twice_gets_the_signed_message_on_the_third_try_from_the_worker(
        redis_server, receiver: Receiver, tmp_path, clip_settings, settings) -> None:
    settings.NOTIFY_RETRY_BACKOFF_SECONDS = 0.2
    camera = make_camera(make_site("Main St"), "Aisle 3")
    webhook(camera.site, receiver.url)
    alert = make_alert(camera, event_type="concealment", score=0.91)
    worker = start_worker(tmp_path, CLIP_STORAGE_DIR=str(clip_settings), NOTIFY_RETRY_BACKOFF_SECONDS="0.2")
    try:
        assert notify_plan(alert_id=alert.pk, message=NotifyMessage.ALERT) == 1
        delivery = NotificationDelivery.objects.get()
        wait_until(lambda: NotificationDelivery.objects.get(pk=delivery.pk).status == DeliveryStatus.SENT, 60,
                   message=f"delivered\n{worker.log()}")
    finally:
        worker.stop()
    delivery.refresh_from_db()
    assert delivery.attempts == 3 and delivery.last_error == ""
    assert len(receiver.bodies) == 3 and receiver.valid == [True, True, True]
    body = receiver.bodies[-1]
    assert body["type"] == "alert" and abs(body["sent_at"] - time.time()) < 60
    assert body["alert"]["id"] == alert.pk
    assert body["alert"]["event_type"] == "concealment" and body["alert"]["camera"] == "Aisle 3"
    assert body["alert"]["url"] == f"{settings.DASHBOARD_URL}/alerts/{alert.pk}/"  # a permission-checked page
    assert SECRET not in worker.log()


@pytest.mark.django_db
def test_a_webhook_that_keeps_failing_is_failed_with_the_reason_after_the_attempts(settings) -> None:
    settings.NOTIFY_MAX_ATTEMPTS = 2
    dead = f"http://127.0.0.1:{free_port()}/hook"
    camera = make_camera(make_site("Main St"), "Aisle 3")
    webhook(camera.site, dead)
    notify_plan(alert_id=make_alert(camera).pk, message=NotifyMessage.ALERT)
    delivery = NotificationDelivery.objects.get()

    first = delivery_send(delivery_id=delivery.pk)
    second = delivery_send(delivery_id=delivery.pk)

    assert first.status == DeliveryStatus.QUEUED and first.retry_in == settings.NOTIFY_RETRY_BACKOFF_SECONDS
    assert second.status == DeliveryStatus.FAILED and second.retry_in is None
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED and delivery.attempts == 2
    assert delivery.last_error.startswith(f"webhook {dead} unreachable")


@pytest.mark.django_db
def test_it_signs_the_exact_body_with_hmac_sha256() -> None:
    body = b'{"type":"alert"}'
    assert webhook_signature(body, SECRET) == "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()


@pytest.mark.django_db
def test_an_email_carries_the_alert_with_its_snapshot_then_the_clip_ready_follow_up(clip_settings, settings) -> None:
    from django.core.files.base import ContentFile

    from alerts.models import clip_storage

    smtp = SmtpServer()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", smtp.port
    try:
        camera = make_camera(make_site("Main St"), "Aisle 3")
        NotificationTarget.objects.create(site=camera.site, name="Security desk", channel=NotifyChannel.EMAIL,
                                          address="desk@example.com, manager@example.com")
        alert = make_alert(camera, event_type="concealment", score=0.8)
        jpeg = b"\xff\xd8\xff\xe0 a snapshot \xff\xd9"
        Alert.objects.filter(pk=alert.pk).update(thumbnail=clip_storage().save("thumbnails/1.jpg", ContentFile(jpeg)))

        notify_plan(alert_id=alert.pk, message=NotifyMessage.ALERT)
        assert delivery_send(delivery_id=NotificationDelivery.objects.get().pk).status == DeliveryStatus.SENT
        notify_plan(alert_id=alert.pk, message=NotifyMessage.CLIP_READY)
        follow_up = NotificationDelivery.objects.get(message=NotifyMessage.CLIP_READY)
        assert delivery_send(delivery_id=follow_up.pk).status == DeliveryStatus.SENT
    finally:
        smtp.close()

    first, second = (email.message_from_bytes(m) for m in smtp.messages)
    assert first["Subject"] == "[Shoplift] concealment at Main St / Aisle 3 (score 0.80)"
    assert first["To"] == "desk@example.com, manager@example.com"
    [attachment] = [part for part in first.walk() if part.get_filename()]
    assert attachment.get_filename() == f"alert-{alert.pk}.jpg" and attachment.get_content_type() == "image/jpeg"
    assert base64.b64decode(attachment.get_payload()) == jpeg
    assert second["Subject"].startswith("[Shoplift] Clip ready: concealment")
    assert f"/alerts/{alert.pk}/" in second.get_payload()


@pytest.mark.django_db
def test_mqtt_subscribers_get_the_alert_on_the_shared_and_the_camera_topic(settings) -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    try:
        socket.create_connection(("127.0.0.1", 1883), timeout=2).close()
    except OSError:
        pytest.fail("no MQTT broker on 127.0.0.1:1883: start mosquitto (Debian package mosquitto; .ci/run starts it)")
    settings.NOTIFY_MQTT_URL = "mqtt://127.0.0.1:1883"
    received: list[tuple[str, dict[str, Any]]] = []
    subscriber = mqtt.Client(CallbackAPIVersion.VERSION2)
    subscriber.on_message = lambda client, userdata, msg: received.append((msg.topic, json.loads(msg.payload)))
    subscriber.connect("127.0.0.1", 1883)
    subscriber.subscribe([("shoplift/alerts", 1), ("shoplift/+/+/alert", 1)])
    subscriber.loop_start()
    try:
        time.sleep(0.3)  # the subscription is in place
        camera = make_camera(make_site("Main St"), "Aisle 3")
        alert = make_alert(camera, event_type="concealment")
        notify_plan(alert_id=alert.pk, message=NotifyMessage.ALERT)
        delivery = NotificationDelivery.objects.get()
        assert delivery.target.site is None  # the environment's broker
        assert delivery_send(delivery_id=delivery.pk).status == DeliveryStatus.SENT
        wait_until(lambda: len(received) >= 2, 10, message="both topics received")
    finally:
        subscriber.loop_stop()
        subscriber.disconnect()
    topics = {topic: body for topic, body in received if body.get("alert", {}).get("id") == alert.pk}
    assert set(topics) == {"shoplift/alerts", "shoplift/main-st/aisle-3/alert"}
    assert topics["shoplift/alerts"]["alert"]["event_type"] == "concealment"


@pytest.mark.django_db
def test_filters_and_the_cooldown_decide_what_is_sent(settings, django_capture_on_commit_callbacks) -> None:
    settings.NOTIFY_COOLDOWN_SECONDS = 60
    camera = make_camera(make_site("Main St"), "Aisle 3")
    shelf, exit_zone = make_zone(camera, "Shelf"), make_zone(camera, "Exit")
    everything = webhook(camera.site, "http://127.0.0.1:9/a", name="All")
    picky = webhook(camera.site, "http://127.0.0.1:9/b", name="Concealment only", event_types=["concealment"],
                    min_score=0.9)
    now = timezone.now()
    first = make_alert(camera, zone=shelf, at=now, event_type="concealment", score=0.95)
    again = make_alert(camera, zone=shelf, at=now + timedelta(seconds=20), event_type="concealment", score=0.95)
    elsewhere = make_alert(camera, zone=exit_zone, at=now + timedelta(seconds=25), event_type="loitering", score=0.7)
    later = make_alert(camera, zone=shelf, at=now + timedelta(seconds=90), event_type="concealment", score=0.95)

    with django_capture_on_commit_callbacks() as sends:
        counts = [notify_plan(alert_id=a.pk, message=NotifyMessage.ALERT) for a in (first, again, elsewhere, later)]

    assert counts == [2, 0, 1, 2]  # again: inside both targets' cooldown; elsewhere: picky does not want it
    assert len(sends) == 5
    rows = {(d.alert_id, d.target_id): d.status for d in NotificationDelivery.objects.all()}
    assert rows == {
        (first.pk, everything.pk): DeliveryStatus.QUEUED, (first.pk, picky.pk): DeliveryStatus.QUEUED,
        (again.pk, everything.pk): DeliveryStatus.SKIPPED, (again.pk, picky.pk): DeliveryStatus.SKIPPED,
        (elsewhere.pk, everything.pk): DeliveryStatus.QUEUED,
        (later.pk, everything.pk): DeliveryStatus.QUEUED, (later.pk, picky.pk): DeliveryStatus.QUEUED,
    }
    # The clip-ready follow-up goes only where the alert went.
    assert notify_plan(alert_id=again.pk, message=NotifyMessage.CLIP_READY) == 0
    assert notify_plan(alert_id=first.pk, message=NotifyMessage.CLIP_READY) == 2


@pytest.mark.django_db
def test_the_sweeper_sends_a_delivery_whose_task_was_lost_again(django_capture_on_commit_callbacks) -> None:
    camera = make_camera(make_site("Main St"), "Aisle 3")
    webhook(camera.site, "http://127.0.0.1:9/a")
    notify_plan(alert_id=make_alert(camera).pk, message=NotifyMessage.ALERT)
    NotificationDelivery.objects.update(next_attempt_at=timezone.now() - timedelta(minutes=10))

    with django_capture_on_commit_callbacks() as sends:
        assert deliveries_sweep() == 1
        assert deliveries_sweep() == 0  # not again while it is due
    assert len(sends) == 1


@pytest.mark.django_db
def test_notify_test_reports_each_channel_and_fails_when_one_fails(receiver: Receiver, capsys) -> None:
    site = make_site("Main St")
    receiver.codes = []
    webhook(site, receiver.url, name="POS")
    webhook(site, f"http://127.0.0.1:{free_port()}/gone", name="Radio gateway")

    with pytest.raises(CommandError, match="1 of 2 deliveries failed"):
        call_command("notify_test", "--site", "Main St")

    out = capsys.readouterr().out
    assert "POS (Webhook (signed JSON POST)): sent" in out
    assert "Radio gateway (Webhook (signed JSON POST)): FAILED: webhook http://127.0.0.1:" in out
    assert receiver.bodies[0]["type"] == "test" and receiver.valid == [True]
    with pytest.raises(CommandError, match="No site named 'Nowhere'"):
        call_command("notify_test", "--site", "Nowhere")


@pytest.mark.django_db
def test_a_dead_endpoint_and_a_dead_broker_cost_an_alert_nothing(settings) -> None:
    from alerts.emitter import alert_raise
    from detection.inference.events import Event, EventPhase

    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    camera = make_camera(make_site("Main St"), "Aisle 3")
    webhook(camera.site, f"http://127.0.0.1:{free_port()}/gone")
    start = time.time()
    event = Event(phase=EventPhase.STARTED, camera_id=camera.pk, camera_name="Aisle 3", zone_id=None, zone_name="",
                  event_type="concealment", score=0.9, threshold=0.5, start=start, last_high=start, end=None,
                  clip_start=start - 2, clip_end=start + 4, clip_final=False, trigger_at=start)

    began = time.monotonic()
    result = alert_raise(event)
    took = time.monotonic() - began

    assert result.created and Alert.objects.filter(pk=result.alert_id).exists()
    assert took < 2.0, f"raising the alert took {took:.1f} s"  # the send is a task; the broker refusal is not waited on
    assert NotificationDelivery.objects.get().status == DeliveryStatus.QUEUED  # kept for the sweeper


@pytest.mark.django_db
@pytest.mark.parametrize(("fields", "field", "message"), [
    ({"channel": NotifyChannel.WEBHOOK, "address": "pos.example.com", "secret": SECRET}, "address", "http:// or https://"),
    ({"channel": NotifyChannel.WEBHOOK, "address": "https://pos.example.com", "secret": "short"}, "secret", "16"),
    ({"channel": NotifyChannel.EMAIL, "address": "desk@example.com, not-an-address"}, "address",
     "'not-an-address' is not an e-mail address"),
    ({"channel": NotifyChannel.MQTT, "address": "tcp://broker"}, "address", "mqtt://"),
    ({"channel": NotifyChannel.EMAIL, "address": "desk@example.com", "event_types": "concealment"}, "event_types",
     "list of event type names"),
])
def test_a_target_with_a_bad_address_secret_or_filter_is_refused_with_what_to_enter(fields, field, message) -> None:
    from django.core.exceptions import ValidationError

    target = NotificationTarget(site=make_site("Main St"), name="x", **fields)
    with pytest.raises(ValidationError) as refused:
        target.full_clean()
    assert message in " ".join(refused.value.message_dict[field])


@pytest.mark.django_db(transaction=True)  # the writer thread has its own connection
def test_the_status_writer_publishes_each_cameras_online_state_retained_once_per_change(settings) -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from detection.capture.stream import CameraStatus
    from detection.status_writer import Writer

    def subscribe(topic: str, into: list[tuple[bytes, bool]]) -> Any:
        client = mqtt.Client(CallbackAPIVersion.VERSION2)
        client.on_message = lambda c, userdata, msg: into.append((msg.payload, msg.retain))
        client.connect("127.0.0.1", 1883)
        client.subscribe(topic, qos=1)
        client.loop_start()
        time.sleep(0.3)  # the subscription is in place
        return client

    settings.NOTIFY_MQTT_URL = "mqtt://127.0.0.1:1883"
    camera = make_camera(make_site(f"Store {free_port()}"), "Door")
    topic = f"shoplift/{camera.site.name.lower().replace(' ', '-')}/door/online"
    live: list[tuple[bytes, bool]] = []
    early = subscribe(topic, live)
    stop = threading.Event()
    writer = Writer(stop=stop, name="test").start()
    try:
        for online in (True, True, False):
            writer.submit_status(CameraStatus(camera_id=camera.pk, online=online, last_error="", last_frame_at=None))
            time.sleep(0.5)  # each is written before the next (the writer keeps only a camera's latest)
        wait_until(lambda: len(live) >= 2, 10, message="the state changes")
        time.sleep(0.3)
        # A subscriber that connects afterwards learns the state at once: the message is retained.
        late: list[tuple[bytes, bool]] = []
        later = subscribe(topic, late)
        wait_until(lambda: late, 10, message="the retained state")
        later.loop_stop()
        later.disconnect()
    finally:
        stop.set()
        assert writer.join(5)
        early.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)  # leave the broker as it was
        early.loop_stop()
        early.disconnect()
    # The repeated "online" is not sent again (b"" is this test clearing the retained message).
    assert [payload for payload, _ in live if payload] == [b"online", b"offline"]
    assert late == [(b"offline", True)]
