/* The alert detail page's "what the system saw": the tracked person's box and skeleton drawn over
 * the clip, in step with playback. Plain JavaScript, no build step.
 * The data comes from the page (json_script #track-overlay-data): {clip_start (epoch seconds),
 * skeleton [[i, j], ...], track {track_id, points [{t, box, score, keypoints}]}}, all normalized. */
(function () {
  "use strict";

  var MAX_GAP = 0.4;        // seconds between the frame shown and the nearest sample before nothing is drawn
  var MIN_CONFIDENCE = 0.3; // keypoints below this (and bones touching them) are not drawn
  var STORAGE_KEY = "shoplift.trackOverlay";
  var BOX_COLOR = "#facc15";
  var BONE_COLOR = "#22d3ee";

  var source = document.getElementById("track-overlay-data");
  var container = document.getElementById("player");
  if (!source || !container) { return; }
  var data;
  try { data = JSON.parse(source.textContent); } catch (e) { return; }
  if (!data || !data.track || !Array.isArray(data.track.points) || typeof data.clip_start !== "number") { return; }

  function isNumber(v) { return typeof v === "number" && isFinite(v); }

  // Samples in clip time (seconds from the clip's first frame), oldest first; malformed ones dropped.
  var samples = data.track.points.filter(function (p) {
    return p && isNumber(p.t) && Array.isArray(p.box) && p.box.length === 4 && p.box.every(isNumber);
  }).map(function (p) {
    return { time: p.t - data.clip_start, box: p.box, keypoints: Array.isArray(p.keypoints) ? p.keypoints : null };
  }).sort(function (a, b) { return a.time - b.time; });
  var bones = (Array.isArray(data.skeleton) ? data.skeleton : []).filter(function (pair) {
    return Array.isArray(pair) && pair.length === 2 && pair.every(isNumber);
  });
  var label = "#" + String(data.track.track_id);
  if (!samples.length) { return; }

  var toggle = document.querySelector("[data-track-toggle]");
  var checkbox = toggle ? toggle.querySelector("input[type=checkbox]") : null;

  function enabled() { return !checkbox || checkbox.checked; }

  function remembered() {
    try { return window.localStorage.getItem(STORAGE_KEY) !== "off"; } catch (e) { return true; }
  }

  function remember(on) {
    try { window.localStorage.setItem(STORAGE_KEY, on ? "on" : "off"); } catch (e) { /* private mode: not kept */ }
  }

  function nearest(time) {
    var lo = 0, hi = samples.length - 1;
    while (lo < hi) {
      var mid = (lo + hi) >> 1;
      if (samples[mid].time < time) { lo = mid + 1; } else { hi = mid; }
    }
    var best = samples[lo];
    if (lo > 0 && Math.abs(samples[lo - 1].time - time) <= Math.abs(best.time - time)) { best = samples[lo - 1]; }
    return Math.abs(best.time - time) <= MAX_GAP ? best : null;
  }

  // Where the picture sits inside the video element: object-fit contain leaves bars on two sides.
  function contentRect(video, width, height) {
    if (!video.videoWidth || !video.videoHeight) { return null; }
    var scale = Math.min(width / video.videoWidth, height / video.videoHeight);
    var w = video.videoWidth * scale, h = video.videoHeight * scale;
    return { x: (width - w) / 2, y: (height - h) / 2, w: w, h: h };
  }

  function drawSample(ctx, sample, rect) {
    function px(x) { return rect.x + x * rect.w; }
    function py(y) { return rect.y + y * rect.h; }
    var b = sample.box;
    var x1 = px(b[0]), y1 = py(b[1]), x2 = px(b[2]), y2 = py(b[3]);

    ctx.lineJoin = "round";
    ctx.lineCap = "round";
    // A dark halo under each stroke keeps it visible on bright and dark scenes alike.
    ctx.strokeStyle = "rgba(0, 0, 0, .55)";
    ctx.lineWidth = 4;
    ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
    ctx.strokeStyle = BOX_COLOR;
    ctx.lineWidth = 2;
    ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);

    ctx.font = "600 12px system-ui, sans-serif";
    var tagW = ctx.measureText(label).width + 8, tagH = 16;
    var tagY = y1 - tagH >= rect.y ? y1 - tagH : y1;  // above the box, or just inside it at the top edge
    ctx.fillStyle = BOX_COLOR;
    ctx.fillRect(x1 - 1, tagY, tagW, tagH);
    ctx.fillStyle = "#0f172a";
    ctx.textBaseline = "middle";
    ctx.fillText(label, x1 + 3, tagY + tagH / 2 + 1);

    var kp = sample.keypoints;
    if (!kp) { return; }
    function seen(i) {
      var k = kp[i];
      return Array.isArray(k) && k.length >= 3 && isNumber(k[0]) && isNumber(k[1]) && isNumber(k[2]) &&
        k[2] >= MIN_CONFIDENCE;
    }
    [["rgba(0, 0, 0, .55)", 5], [BONE_COLOR, 3]].forEach(function (pass) {
      ctx.strokeStyle = pass[0];
      ctx.lineWidth = pass[1];
      ctx.beginPath();
      bones.forEach(function (pair) {
        if (!seen(pair[0]) || !seen(pair[1])) { return; }
        ctx.moveTo(px(kp[pair[0]][0]), py(kp[pair[0]][1]));
        ctx.lineTo(px(kp[pair[1]][0]), py(kp[pair[1]][1]));
      });
      ctx.stroke();
    });
    ctx.fillStyle = "#fff";
    ctx.strokeStyle = "rgba(0, 0, 0, .7)";
    ctx.lineWidth = 1.5;
    for (var i = 0; i < kp.length; i++) {
      if (!seen(i)) { continue; }
      ctx.beginPath();
      ctx.arc(px(kp[i][0]), py(kp[i][1]), 3, 0, 2 * Math.PI);
      ctx.fill();
      ctx.stroke();
    }
  }

  function attach(video) {
    video.setAttribute("data-track-overlay", "");
    var canvas = document.createElement("canvas");
    canvas.className = "track-overlay";
    canvas.setAttribute("aria-hidden", "true");
    video.parentNode.classList.add("has-track-overlay");
    video.after(canvas);

    // Lay the canvas over the video element and give it one backing pixel per device pixel.
    function fit() {
      var ratio = window.devicePixelRatio || 1;
      var w = video.clientWidth, h = video.clientHeight;
      canvas.style.left = video.offsetLeft + "px";
      canvas.style.top = video.offsetTop + "px";
      canvas.style.width = w + "px";
      canvas.style.height = h + "px";
      var bw = Math.round(w * ratio), bh = Math.round(h * ratio);
      if (canvas.width !== bw || canvas.height !== bh) { canvas.width = bw; canvas.height = bh; }
      return { w: w, h: h, ratio: ratio };
    }

    function draw(time) {
      var size = fit();
      var ctx = canvas.getContext("2d");
      ctx.setTransform(1, 0, 0, 1, 0, 0);
      ctx.clearRect(0, 0, canvas.width, canvas.height);
      if (!enabled()) { return; }
      var rect = contentRect(video, size.w, size.h);
      var sample = rect && nearest(isNumber(time) ? time : video.currentTime);
      if (!sample) { return; }
      ctx.setTransform(size.ratio, 0, 0, size.ratio, 0, 0);
      drawSample(ctx, sample, rect);
    }
    function drawNow() { draw(video.currentTime); }

    if (typeof video.requestVideoFrameCallback === "function") {
      // Called as each frame is presented, with that frame's own media time.
      var onFrame = function (now, meta) {
        draw(meta && isNumber(meta.mediaTime) ? meta.mediaTime : video.currentTime);
        video.requestVideoFrameCallback(onFrame);
      };
      video.requestVideoFrameCallback(onFrame);
    } else {
      // timeupdate alone fires about 4 times a second; animation frames fill in while playing.
      var frame = 0;
      var loop = function () {
        drawNow();
        frame = video.paused || video.ended ? 0 : window.requestAnimationFrame(loop);
      };
      video.addEventListener("play", function () { if (!frame) { frame = window.requestAnimationFrame(loop); } });
      video.addEventListener("timeupdate", drawNow);
    }
    ["loadedmetadata", "seeked", "pause", "ended"].forEach(function (name) {
      video.addEventListener(name, drawNow);
    });
    if (window.ResizeObserver) { new ResizeObserver(drawNow).observe(video); }
    window.addEventListener("resize", drawNow);
    if (checkbox) { checkbox.addEventListener("change", drawNow); }
    drawNow();
  }

  function attachNew() {
    var video = container.querySelector("video#clip-player:not([data-track-overlay])");
    if (!video) { return false; }
    attach(video);
    if (toggle) { toggle.hidden = false; }
    return true;
  }

  if (checkbox) {
    checkbox.checked = remembered();
    checkbox.addEventListener("change", function () { remember(checkbox.checked); });
  }
  if (!attachNew()) {
    // The clip is still being built: dashboard.js swaps the player in when it is ready.
    var observer = new MutationObserver(function () { if (attachNew()) { observer.disconnect(); } });
    observer.observe(container, { childList: true, subtree: true });
  }
})();
