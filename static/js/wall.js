/* The Cameras page's live wall: plain JavaScript, no build step.
 *
 * Each tile fetches its camera's latest picture (/cameras/<id>/live.jpg) about every
 * LIVE_FRAME_SECONDS, one request at a time, only while the tile is on screen and the tab is
 * visible; 204 means no fresh picture (the tile says so and keeps the last one greyed). Zones
 * are drawn over the picture from their polygons (normalized points, from the json_script
 * block). /cameras/poll/ says every DASHBOARD_POLL_SECONDS which cameras are online and which
 * have an alert newer than the page: those tiles flash, and a click opens the alert.
 * Wall mode hides the page around the tiles and asks for the full screen. */
(function () {
  "use strict";

  var wall = document.getElementById("camera-wall");
  var dataBlock = document.getElementById("camera-wall-data");
  if (!wall || !dataBlock) { return; }
  var data = JSON.parse(dataBlock.textContent);
  var SVG = "http://www.w3.org/2000/svg";
  // As the zone editor draws them (static/cameras/zone_editor.js).
  var KIND_COLOURS = { shelf: "#ffc800", checkout: "#00c800", exit: "#00a0ff", restricted: "#ff0000", ignore: "#808080" };
  var tiles = Array.prototype.slice.call(wall.querySelectorAll(".tile[data-camera]"));

  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function clock(seconds) {
    var d = new Date(seconds * 1000);
    return pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
  }

  // --- Zones -----------------------------------------------------------------------------------
  tiles.forEach(function (tile) {
    var svg = tile.querySelector(".tile-zones");
    (data.zones[tile.dataset.camera] || []).forEach(function (zone) {
      var polygon = document.createElementNS(SVG, "polygon");
      polygon.setAttribute("points", zone.points.map(function (p) { return p[0] + "," + p[1]; }).join(" "));
      polygon.setAttribute("class", "zone zone-" + zone.kind);
      polygon.setAttribute("stroke", KIND_COLOURS[zone.kind] || "#ffffff");
      polygon.setAttribute("fill", KIND_COLOURS[zone.kind] || "#ffffff");
      polygon.setAttribute("vector-effect", "non-scaling-stroke");
      var title = document.createElementNS(SVG, "title");
      title.textContent = zone.name + " (" + zone.kind + ")";
      polygon.appendChild(title);
      svg.appendChild(polygon);
    });
  });

  // --- Live pictures ---------------------------------------------------------------------------
  var visible = new Map();
  var observer = "IntersectionObserver" in window ? new IntersectionObserver(function (entries) {
    entries.forEach(function (entry) { visible.set(entry.target, entry.isIntersecting); });
  }) : null;

  function showPicture(tile, blob, capturedAt) {
    var img = tile.querySelector("[data-tile-image]");
    var url = URL.createObjectURL(blob);
    return new Promise(function (resolve) {
      img.onload = function () {
        if (img.dataset.objectUrl) { URL.revokeObjectURL(img.dataset.objectUrl); }
        img.dataset.objectUrl = url;
        // The frame takes the picture's own shape, so the zones (drawn in 0..1) lie exactly over it.
        tile.querySelector(".tile-frame").style.aspectRatio = img.naturalWidth + " / " + img.naturalHeight;
        tile.classList.add("has-picture");
        tile.classList.remove("is-stale");
        if (capturedAt) { tile.querySelector("[data-tile-time]").textContent = clock(capturedAt); }
        resolve();
      };
      img.onerror = function () { URL.revokeObjectURL(url); resolve(); };
      img.src = url;
    });
  }

  function noPicture(tile, text) {
    tile.classList.add("is-stale");
    tile.querySelector("[data-tile-empty]").textContent = text;
  }

  function follow(tile) {
    var url = tile.dataset.liveUrl;
    var delay = Math.max(0.25, data.frame_seconds) * 1000;
    if (observer) { observer.observe(tile); }
    function tick() {
      if (document.hidden || visible.get(tile) === false) { return schedule(); }
      fetch(url, { credentials: "same-origin", cache: "no-store" }).then(function (r) {
        if (r.redirected || r.status === 404) {  // signed out, or no longer this user's camera: stop
          noPicture(tile, "No live picture");
          return;
        }
        if (r.status === 200) {
          var at = parseFloat(r.headers.get("X-Captured-At") || "0");
          return r.blob().then(function (blob) { return showPicture(tile, blob, at); }).then(schedule);
        }
        noPicture(tile, r.status === 204 ? "No live picture" : "Live pictures unavailable");
        schedule();
      }).catch(function () {  // the server is restarting or the network is down: try again
        noPicture(tile, "Live pictures unavailable");
        schedule();
      });
    }
    function schedule() { setTimeout(tick, delay); }
    tick();
  }
  tiles.filter(function (tile) { return tile.dataset.liveUrl; }).forEach(follow);

  // --- Camera states and new alerts ------------------------------------------------------------
  var byCamera = {};
  tiles.forEach(function (tile) { byCamera[tile.dataset.camera] = tile; });

  function poll() {
    var url = wall.dataset.pollUrl + "?after=" + encodeURIComponent(String(data.after));
    return fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" }, cache: "no-store" })
      .then(function (r) {
        if (r.redirected || !r.ok) { throw new Error("HTTP " + r.status); }
        return r.json();
      })
      .then(function (body) {
        Object.keys(body.cameras).forEach(function (id) {
          var tile = byCamera[id];
          if (!tile) { return; }
          var state = body.cameras[id];
          var badge = tile.querySelector("[data-tile-state]");
          badge.className = state.badge;
          badge.textContent = state.label;
          tile.className = tile.className.replace(/\btile-(online|stale|offline|disabled)\b/, "tile-" + state.state);
        });
        Object.keys(body.alerts).forEach(function (id) {
          var tile = byCamera[id];
          if (!tile) { return; }
          var alert = body.alerts[id];
          var link = tile.querySelector("[data-tile-alert]");
          link.href = alert.url;
          link.textContent = "New alert: " + alert.event + " (open)";
          link.hidden = false;
          tile.dataset.alertUrl = alert.url;
          tile.classList.add("is-alerting");
        });
      }, function () { /* the status table's own refresh shows the page offline */ });
  }
  (function loop() {
    var delay = Math.max(0.5, data.poll_seconds) * 1000;  // a new alert flashes within about a second
    poll().then(function () { setTimeout(loop, document.hidden ? delay * 4 : delay); });
  })();

  wall.addEventListener("click", function (event) {
    var tile = event.target.closest(".tile.is-alerting");
    if (!tile || event.target.closest("a")) { return; }  // the link inside opens it by itself
    window.location.href = tile.dataset.alertUrl;
  });

  // --- Wall mode -------------------------------------------------------------------------------
  var toggle = document.querySelector("[data-wall-toggle]");

  // As many columns as it takes for every tile to fit the screen without scrolling.
  function fit() {
    var width = window.innerWidth, height = window.innerHeight, gap = 6, caption = 26, n = tiles.length;
    var columns = 1;
    for (; columns < n; columns++) {
      var tileHeight = (width - gap * (columns + 1)) / columns * 9 / 16 + caption + gap;
      if (Math.ceil(n / columns) * tileHeight <= height) { break; }
    }
    wall.style.setProperty("--wall-columns", String(Math.max(1, columns)));
  }

  function setWall(on) {
    document.body.classList.toggle("wall-mode", on);
    toggle.setAttribute("aria-pressed", on ? "true" : "false");
    toggle.textContent = on ? "Exit wall mode" : "Wall mode";
    if (on) { fit(); }
  }

  toggle.addEventListener("click", function () {
    var on = !document.body.classList.contains("wall-mode");
    setWall(on);
    var root = document.documentElement;
    if (on && root.requestFullscreen && !document.fullscreenElement) {
      // A kiosk browser may refuse (or already be full screen): the page is a wall either way.
      root.requestFullscreen().catch(function () {});
    } else if (!on && document.fullscreenElement) {
      document.exitFullscreen().catch(function () {});
    }
  });
  document.addEventListener("fullscreenchange", function () {
    if (!document.fullscreenElement) { setWall(false); }  // Esc left the full screen: leave the wall too
  });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && document.body.classList.contains("wall-mode") && !document.fullscreenElement) {
      setWall(false);
    }
  });
  window.addEventListener("resize", function () {
    if (document.body.classList.contains("wall-mode")) { fit(); }
  });
  // /cameras/?wall=1 opens as a wall, for a screen that shows nothing else.
  if (/[?&]wall=1\b/.test(window.location.search)) { setWall(true); }
})();
