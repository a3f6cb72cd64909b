/* The dashboard's service worker, served at /sw.js (alerts.push_views.service_worker) so that it controls
 * every page. It only shows Web Push messages (alerts.notify.webpush_payload) and opens the alert
 * when one is clicked; it caches nothing.
 *
 * The snapshot is the permission-checked thumbnail view: fetched here with the user's session
 * cookie (same origin only) and shown as a data: URL. When it cannot be had (signed out, another
 * origin, slow), the notification shows text only. */
"use strict";

var SNAPSHOT_TIMEOUT_MS = 4000;

self.addEventListener("install", function () { self.skipWaiting(); });
self.addEventListener("activate", function (event) { event.waitUntil(self.clients.claim()); });

function dataUrl(type, buffer) {
  var bytes = new Uint8Array(buffer), raw = "";
  for (var i = 0; i < bytes.length; i += 0x8000) {
    raw += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return "data:" + type + ";base64," + btoa(raw);
}

function snapshot(url) {
  var target;
  try { target = new URL(url); } catch (e) { return Promise.resolve(null); }
  if (target.origin !== self.location.origin) { return Promise.resolve(null); }
  // redirect "error": a signed-out user is sent to the login page, which is no picture.
  var load = fetch(target.href, { credentials: "include", redirect: "error" }).then(function (response) {
    var type = (response.headers.get("Content-Type") || "").split(";")[0];
    if (!response.ok || type.indexOf("image/") !== 0) { return null; }
    return response.arrayBuffer().then(function (buffer) { return dataUrl(type, buffer); });
  }).catch(function () { return null; });
  var late = new Promise(function (resolve) { setTimeout(resolve, SNAPSHOT_TIMEOUT_MS, null); });
  return Promise.race([load, late]);
}

self.addEventListener("push", function (event) {
  var message = {};
  try { message = event.data ? event.data.json() : {}; } catch (e) { message = {}; }
  var note = message.notification || {};
  var options = {
    body: note.body || "",
    tag: note.tag || undefined,
    renotify: Boolean(note.tag) && message.type === "alert",  // "clip ready" quietly replaces its alert
    data: { url: note.url || self.registration.scope, alertId: message.alert ? message.alert.id : null },
    timestamp: (message.sent_at || 0) * 1000 || Date.now()
  };
  event.waitUntil(
    (note.image ? snapshot(note.image) : Promise.resolve(null)).then(function (image) {
      if (image) { options.image = image; }
      return self.registration.showNotification(note.title || "Shoplift alert", options);
    })
  );
});

self.addEventListener("notificationclick", function (event) {
  event.notification.close();
  var url = (event.notification.data && event.notification.data.url) || self.registration.scope;
  event.waitUntil(self.clients.matchAll({ type: "window", includeUncontrolled: true }).then(function (windows) {
    for (var i = 0; i < windows.length; i++) {
      if (windows[i].url === url && "focus" in windows[i]) { return windows[i].focus(); }
    }
    return self.clients.openWindow(url);
  }));
});
