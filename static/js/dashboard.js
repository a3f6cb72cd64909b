/* Live updates for the dashboard: plain JavaScript, no build step.
 * The server renders every row and fragment; this file only fetches them and swaps them in. */
(function () {
  "use strict";

  // Poll fn every `seconds`, waiting for each call to finish; slower while the tab is hidden.
  function every(seconds, fn) {
    var delay = Math.max(0.2, seconds) * 1000;
    function tick() {
      Promise.resolve()
        .then(fn)
        .then(function (keepGoing) { if (keepGoing !== false) schedule(); },
              function () { schedule(); });
    }
    // A hidden tab keeps polling (its desktop notifications are the point), at most once a second.
    function schedule() { setTimeout(tick, document.hidden ? Math.max(delay, 1000) : delay); }
    schedule();
  }

  function getJSON(url) {
    return fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) {
        if (r.redirected || !r.ok) { throw new Error("HTTP " + r.status); }
        return r.json();
      });
  }

  function setLive(ok) {
    document.querySelectorAll("[data-live-indicator]").forEach(function (el) {
      el.classList.toggle("is-offline", !ok);
      el.querySelector("span").textContent = ok ? "Live" : "Reconnecting…";
    });
  }

  function rowsFrom(html) {
    var t = document.createElement("template");
    t.innerHTML = html.trim();
    return Array.prototype.filter.call(t.content.children, function (el) { return el.tagName === "TR"; });
  }

  // Whole rows are links (the event name inside stays a real link for keyboards and new tabs).
  document.addEventListener("click", function (event) {
    var row = event.target.closest("tr[data-href]");
    if (!row || event.target.closest("a, button, input, select, textarea")) { return; }
    if (window.getSelection && String(window.getSelection())) { return; }
    window.location.href = row.getAttribute("data-href");
  });

  // Sound and desktop notifications for new alerts, while the list is open (the choice is kept per
  // browser). Web Push reaches a device with no page open; this needs no subscription.
  var alertButton = document.querySelector("[data-alert-me]");
  var alertsOn = false;
  function showAlertButton() {
    if (!alertButton) { return; }
    alertButton.setAttribute("aria-pressed", String(alertsOn));
    alertButton.textContent = "Sound & desktop alerts: " + (alertsOn ? "on" : "off");
  }
  if (alertButton) {
    try { alertsOn = window.localStorage.getItem("shoplift.alertMe") === "on"; } catch (e) { alertsOn = false; }
    showAlertButton();
    alertButton.addEventListener("click", function () {
      alertsOn = !alertsOn;
      try { window.localStorage.setItem("shoplift.alertMe", alertsOn ? "on" : "off"); } catch (e) { /* private mode */ }
      if (alertsOn && window.Notification && Notification.permission === "default") { Notification.requestPermission(); }
      if (alertsOn) { beep(); }  // also unlocks audio: browsers allow sound after a click
      showAlertButton();
    });
  }
  var audio = null;
  function beep() {
    var Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx) { return; }
    audio = audio || new Ctx();
    var osc = audio.createOscillator(), gain = audio.createGain();
    osc.type = "sine";
    osc.frequency.value = 880;
    gain.gain.setValueAtTime(0.2, audio.currentTime);
    gain.gain.exponentialRampToValueAtTime(0.001, audio.currentTime + 0.4);
    osc.connect(gain).connect(audio.destination);
    osc.start();
    osc.stop(audio.currentTime + 0.4);
  }
  function alertMe(rows) {
    if (!alertsOn) { return; }
    beep();
    if (!window.Notification || Notification.permission !== "granted") { return; }
    rows.forEach(function (tr) {
      var note = new Notification("New alert", { body: tr.dataset.summary || "", tag: "alert-" + tr.dataset.id });
      note.onclick = function () { window.focus(); window.location.href = tr.dataset.href; };
    });
  }

  // Alert list: new rows on top, pending rows refreshed.
  var tbody = document.querySelector("tbody[data-poll-url]");
  if (tbody) {
    var baseTitle = document.title;
    var unseen = 0;
    document.addEventListener("visibilitychange", function () {
      if (!document.hidden) { unseen = 0; document.title = baseTitle; }
    });
    every(parseFloat(tbody.dataset.pollSeconds || "5"), function () {
      var pending = Array.prototype.map.call(tbody.querySelectorAll("tr[data-pending]"), function (tr) {
        return tr.dataset.id;
      });
      var url = tbody.dataset.pollUrl + "&after=" + encodeURIComponent(tbody.dataset.latestId || "0") +
        "&pending=" + pending.join(",");
      return getJSON(url).then(function (data) {
        setLive(true);
        Object.keys(data.updated || {}).forEach(function (id) {
          var old = tbody.querySelector('tr[data-id="' + id + '"]');
          var fresh = rowsFrom(data.updated[id])[0];
          if (old && fresh) { old.replaceWith(fresh); }
        });
        var rows = rowsFrom(data.new_html || "");
        rows.reverse().forEach(function (tr) {
          if (!tbody.querySelector('tr[data-id="' + tr.dataset.id + '"]')) { tbody.prepend(tr); }
        });
        if (rows.length) {
          var empty = document.querySelector("[data-empty]");
          if (empty) { empty.remove(); }
          if (document.hidden) { unseen += rows.length; document.title = "(" + unseen + ") " + baseTitle; }
          alertMe(rows);
        }
        tbody.dataset.latestId = String(data.latest_id);
      }, function () { setLive(false); });
    });
  }

  // Alert detail: wait for the clip, then swap in the player.
  var player = document.querySelector("#player[data-status-url]");
  if (player) {
    every(parseFloat(player.dataset.pollSeconds || "5"), function () {
      return getJSON(player.dataset.statusUrl).then(function (data) {
        if (!data.final) { return true; }
        player.innerHTML = data.player_html;
        player.removeAttribute("data-status-url");
        document.querySelectorAll("[data-clip-badge]").forEach(function (b) {
          b.className = "badge badge-" + (data.clip_status === "ready" ? "green" : "red");
          b.textContent = data.clip_status === "ready" ? "Ready" : "Failed";
        });
        var download = document.querySelector("[data-download]");
        if (download && data.clip_status === "ready") { download.hidden = false; }
        return false;
      }, function () { return true; });
    });
  }

  // Any fragment that refreshes itself (the camera status page).
  document.querySelectorAll("[data-refresh-url]").forEach(function (box) {
    every(parseFloat(box.dataset.pollSeconds || "5"), function () {
      return fetch(box.dataset.refreshUrl, { credentials: "same-origin" }).then(function (r) {
        if (r.redirected || !r.ok) { throw new Error("HTTP " + r.status); }
        return r.text();
      }).then(function (html) { box.innerHTML = html; setLive(true); }, function () { setLive(false); });
    });
  });

  // Filters start folded on phones unless some are in use.
  var panel = document.querySelector("[data-filter-panel]");
  if (panel && !panel.hasAttribute("data-active") && window.matchMedia("(max-width: 760px)").matches) {
    panel.open = false;
  }
})();
