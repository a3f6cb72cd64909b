"""The Notifications page and its service worker in Debian's chromium (Playwright, live_server): the
worker registers at the root under the Content-Security-Policy, and a push message delivered to it
(through the DevTools protocol, since no real push service is reachable here) becomes a notification
with the snapshot fetched with the user's session, whose click target is the alert's page.

Subscribing itself needs the browser vendor's push service, so it is covered by tests/test_webpush.py
with a local push service instead."""
from __future__ import annotations

import json
from typing import Any

import pytest

from alerts.push import vapid_keys_generate
from tests.support.browser import DESKTOP, log_in, screenshot
from tests.support.clips import World, attach_clip
from tests.support.factories import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_service_worker_registers_and_shows_a_pushed_alert_with_its_snapshot(
        world: World, live_server: Any, browser: Any, settings: Any, test_clip: Any) -> None:
    public, private = vapid_keys_generate()
    settings.VAPID_PUBLIC_KEY, settings.VAPID_PRIVATE_KEY, settings.VAPID_SUBJECT = public, private, "mailto:ops@example.com"
    attach_clip(world.alert_a, test_clip)
    context = browser.new_context(viewport=DESKTOP)
    context.grant_permissions(["notifications"], origin=live_server.url)
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error"
            and not message.location.get("url", "").endswith("/favicon.ico") else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))

    log_in(page, live_server.url, "viewer", PASSWORD)
    page.click("summary")  # the user menu
    page.click("text=Notifications")
    page.wait_for_url(f"{live_server.url}/notifications/")
    scope = page.evaluate("() => navigator.serviceWorker.ready.then(r => r.scope)")
    assert scope == f"{live_server.url}/"
    page.locator("[data-push-enable]:not([disabled])").wait_for()  # the browser can subscribe
    screenshot(page, "notifications-desktop")

    cdp = context.new_cdp_session(page)
    registrations: list[dict[str, Any]] = []
    cdp.on("ServiceWorker.workerRegistrationUpdated", lambda event: registrations.extend(event["registrations"]))
    cdp.send("ServiceWorker.enable")
    page.wait_for_timeout(300)
    [registration] = [r for r in registrations if r["scopeURL"] == scope and not r["isDeleted"]][:1]
    alert_url = f"{live_server.url}/alerts/{world.alert_a.pk}/"
    message = {"type": "alert", "alert": {"id": world.alert_a.pk},
               "notification": {"title": "Concealment at Riverside / Aisle 1", "body": "Whole frame · score 0.90",
                                "url": alert_url, "image": f"{alert_url}thumbnail/", "tag": f"alert-{world.alert_a.pk}"}}
    cdp.send("ServiceWorker.deliverPushMessage", {"origin": live_server.url, "registrationId": registration["registrationId"],
                                                  "data": json.dumps(message)})

    shown = page.wait_for_function("""() => navigator.serviceWorker.ready.then(r => r.getNotifications()).then(ns =>
        ns.length ? {title: ns[0].title, body: ns[0].body, url: ns[0].data.url, image: ns[0].image, tag: ns[0].tag} : null)""",
                                   timeout=10000).json_value()
    assert shown["title"] == "Concealment at Riverside / Aisle 1" and shown["body"] == "Whole frame · score 0.90"
    assert shown["url"] == alert_url and shown["tag"] == f"alert-{world.alert_a.pk}"
    assert shown["image"].startswith("data:image/jpeg;base64,")  # fetched with the session cookie
    assert problems == []
