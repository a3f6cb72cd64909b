/* The Notifications page: subscribe this browser to Web Push for a site, and mark its own rows.
 * Plain JavaScript, no build step. The service worker (/sw.js, static/js/sw.js) shows the messages. */
(function () {
  "use strict";

  var config = JSON.parse(document.getElementById("push-config").textContent);
  var form = document.querySelector("form[data-push-form]");
  var statusLine = document.querySelector("[data-push-status]");
  var button = document.querySelector("[data-push-enable]");

  function say(text, kind) {
    if (!statusLine) { return; }
    statusLine.textContent = text;
    statusLine.className = kind ? "notice notice-" + kind : "muted";
  }

  // The VAPID public key as the bytes pushManager.subscribe() takes, and back, to compare.
  function keyBytes(base64url) {
    var base64 = (base64url + "===".slice((base64url.length + 3) % 4)).replace(/-/g, "+").replace(/_/g, "/");
    var raw = window.atob(base64);
    var bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) { bytes[i] = raw.charCodeAt(i); }
    return bytes;
  }
  function keyText(buffer) {
    if (!buffer) { return ""; }
    var bytes = new Uint8Array(buffer), raw = "";
    for (var i = 0; i < bytes.length; i++) { raw += String.fromCharCode(bytes[i]); }
    return window.btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function markThisDevice(subscription) {
    document.querySelectorAll("tr[data-endpoint]").forEach(function (row) {
      var mine = !!subscription && row.getAttribute("data-endpoint") === subscription.endpoint;
      row.toggleAttribute("data-mine", mine);
      var badge = row.querySelector("[data-this-device]");
      if (badge) { badge.hidden = !mine; }
    });
  }

  var supported = "serviceWorker" in navigator && "PushManager" in window && "Notification" in window;
  if (!supported || !window.isSecureContext) {
    say(window.isSecureContext ? "This browser cannot receive push notifications." :
        "Push notifications need the dashboard over https://.", "warning");
    return;
  }

  // Registered on every visit of this page, so a changed worker is picked up.
  var registration = navigator.serviceWorker.register(config.service_worker_url, { scope: "/" })
    .then(function () { return navigator.serviceWorker.ready; });

  registration.then(function (reg) { return reg.pushManager.getSubscription(); })
    .then(function (subscription) {
      markThisDevice(subscription);
      if (!form) { return; }
      if (Notification.permission === "denied") {
        say("Notifications are blocked for this site: allow them in the browser's site settings, then reload.", "warning");
        return;
      }
      button.disabled = false;
      say("");
    }, function (error) { say("The service worker could not start: " + error.message, "error"); });

  // The browser's push subscription, made again when the server's key changed since.
  function subscribe(reg) {
    return reg.pushManager.getSubscription().then(function (existing) {
      if (existing && keyText(existing.options.applicationServerKey) === config.vapid_public_key) { return existing; }
      return Promise.resolve(existing && existing.unsubscribe()).then(function () {
        return reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: keyBytes(config.vapid_public_key) });
      });
    });
  }

  if (form) {
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      button.disabled = true;
      say("Asking the browser for permission…");
      // Asked from the click itself: browsers refuse a permission prompt without one.
      Notification.requestPermission().then(function (permission) {
        if (permission !== "granted") {
          throw new Error("Notifications were not allowed. Allow them in the browser's site settings, then try again.");
        }
        return registration;
      }).then(subscribe).then(function (subscription) {
        var json = subscription.toJSON();
        var data = new FormData(form);  // the site, the filters and the CSRF token
        data.set("endpoint", json.endpoint);
        data.set("p256dh", json.keys.p256dh);
        data.set("auth", json.keys.auth);
        return fetch(config.subscribe_url, {
          method: "POST", body: data, credentials: "same-origin", headers: { "Accept": "application/json" }
        });
      }).then(function (response) {
        return response.json().catch(function () { return {}; }).then(function (body) {
          if (!response.ok) { throw new Error(body.error || "The server refused the subscription (HTTP " + response.status + ")."); }
          window.location.reload();  // the list and the message come from the server
        });
      }).catch(function (error) {
        say(error.message, "error");
        button.disabled = false;
      });
    });
  }

  // Removing this browser's last row also ends its push subscription.
  document.querySelectorAll("form[data-push-remove]").forEach(function (removeForm) {
    removeForm.addEventListener("submit", function (event) {
      var row = removeForm.closest("tr");
      if (!row || !row.hasAttribute("data-mine") || document.querySelectorAll("tr[data-mine]").length > 1) { return; }
      event.preventDefault();
      registration.then(function (reg) { return reg.pushManager.getSubscription(); })
        .then(function (subscription) { return subscription && subscription.unsubscribe(); })
        .catch(function () { return null; })
        .then(function () { removeForm.submit(); });
    });
  });
})();
