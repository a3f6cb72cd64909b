/* Zone editor for the camera admin: draw each zone's polygon on the camera's latest snapshot.
 *
 * Plain JavaScript, no build step. The polygon fields stay ordinary form fields holding JSON
 * ([[x, y], ...] as fractions of the picture's width and height); this script only reads and
 * writes them, so saving, validation and error messages are the admin form's own.
 */
(function () {
  "use strict";

  var COLOURS = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#9a6324"];
  // A zone's kind decides its colour (as in analyze_video's annotated copies); no kind: by position.
  var KIND_COLOURS = { shelf: "#ffc800", checkout: "#00c800", exit: "#00a0ff", restricted: "#ff0000", ignore: "#808080" };
  var HANDLE_PX = 7; // how close (in screen pixels) a click must be to grab a corner

  function clamp01(v) { return Math.min(1, Math.max(0, v)); }
  function round4(v) { return Math.round(clamp01(v) * 10000) / 10000; }

  function isTemplate(el) {
    return !!el.closest(".empty-form") || /__prefix__/.test(el.name || "");
  }

  // The points of a polygon field, [] when empty, null when the text is not a list of [x, y].
  function readPoints(textarea) {
    var text = (textarea.value || "").trim();
    if (text === "" || text === "null") { return []; }
    var value;
    try { value = JSON.parse(text); } catch (e) { return null; }
    if (!Array.isArray(value)) { return null; }
    var points = [];
    for (var i = 0; i < value.length; i++) {
      var p = value[i];
      if (!Array.isArray(p) || p.length !== 2 || typeof p[0] !== "number" || typeof p[1] !== "number") { return null; }
      points.push([p[0], p[1]]);
    }
    return points;
  }

  function writePoints(textarea, points) {
    textarea.value = JSON.stringify(points.map(function (p) { return [round4(p[0]), round4(p[1])]; }));
    textarea.dispatchEvent(new Event("change", { bubbles: true }));
  }

  function rowOf(textarea) { return textarea.closest("tr") || textarea.closest(".inline-related"); }

  function zoneName(textarea, index) {
    var row = rowOf(textarea);
    var input = row && row.querySelector('input[name$="-name"]');
    return (input && input.value.trim()) || "Zone " + (index + 1);
  }

  function zoneKind(textarea) {
    var row = rowOf(textarea);
    var select = row && row.querySelector('select[name$="-kind"]');
    return select ? select.value : "";
  }

  function markedForDeletion(textarea) {
    var row = rowOf(textarea);
    var box = row && row.querySelector('input[name$="-DELETE"]');
    return !!(box && box.checked);
  }

  function insidePolygon(x, y, points) {
    var inside = false;
    for (var i = 0, j = points.length - 1; i < points.length; j = i++) {
      var xi = points[i][0], yi = points[i][1], xj = points[j][0], yj = points[j][1];
      if ((yi > y) !== (yj > y) && x < xi + (y - yi) * (xj - xi) / (yj - yi)) { inside = !inside; }
    }
    return inside;
  }

  function ZoneEditor(panel) {
    this.panel = panel;
    this.prefix = panel.getAttribute("data-formset-prefix");
    this.canvas = panel.querySelector("canvas.zone-editor-canvas");
    this.context = this.canvas.getContext("2d");
    this.snapshot = panel.querySelector("img.zone-editor-snapshot");
    this.status = panel.querySelector(".zone-editor-status");
    this.active = null;
    this.dragging = -1;
    this.bind();
  }

  ZoneEditor.prototype.fields = function () {
    var selector = 'textarea[data-zone-polygon][name^="' + this.prefix + '-"]';
    return Array.prototype.filter.call(document.querySelectorAll(selector), function (t) { return !isTemplate(t); });
  };

  ZoneEditor.prototype.decorate = function (textarea) {
    if (isTemplate(textarea) || textarea.getAttribute("data-zone-decorated")) { return; }
    textarea.setAttribute("data-zone-decorated", "1");
    var wrapper = document.createElement("div");
    wrapper.className = "zone-polygon-field";
    textarea.parentNode.insertBefore(wrapper, textarea);
    wrapper.appendChild(textarea);
    var button = document.createElement("button");
    button.type = "button";
    button.className = "button";
    button.textContent = "Draw on picture";
    button.setAttribute("data-zone-edit", "");
    var self = this;
    button.addEventListener("click", function () { self.select(textarea); });
    wrapper.appendChild(button);
  };

  ZoneEditor.prototype.select = function (textarea) {
    if (this.active) { this.active.classList.remove("zone-editing"); }
    this.active = textarea;
    if (textarea) {
      textarea.classList.add("zone-editing");
      this.canvas.scrollIntoView({ block: "nearest" });
    }
    var disabled = !textarea;
    ["data-zone-undo", "data-zone-clear", "data-zone-done"].forEach(function (attr) {
      this.panel.querySelector("[" + attr + "]").disabled = disabled;
    }, this);
    this.draw();
  };

  ZoneEditor.prototype.say = function (text) { this.status.textContent = text; };

  // The status line follows the zone being edited (its name can change while drawing).
  ZoneEditor.prototype.describe = function () {
    var textarea = this.active;
    if (!textarea) { return "No zone selected."; }
    var name = zoneName(textarea, this.fields().indexOf(textarea));
    var points = readPoints(textarea);
    if (points === null) { return "Editing “" + name + "”: its text is not a list of points; clicking starts a new outline."; }
    var count = points.length + (points.length === 1 ? " corner" : " corners");
    return "Editing “" + name + "” (" + count + "): click the corners in order; drag a corner to move it.";
  };

  // The click position as fractions of the picture, whatever size the canvas is shown at.
  ZoneEditor.prototype.position = function (event) {
    var rect = this.canvas.getBoundingClientRect();
    return [clamp01((event.clientX - rect.left) / rect.width), clamp01((event.clientY - rect.top) / rect.height)];
  };

  ZoneEditor.prototype.cornerNear = function (event, points) {
    var rect = this.canvas.getBoundingClientRect();
    for (var i = points.length - 1; i >= 0; i--) {
      var dx = points[i][0] * rect.width - (event.clientX - rect.left);
      var dy = points[i][1] * rect.height - (event.clientY - rect.top);
      if (dx * dx + dy * dy <= HANDLE_PX * HANDLE_PX) { return i; }
    }
    return -1;
  };

  ZoneEditor.prototype.bind = function () {
    var self = this;
    this.canvas.addEventListener("pointerdown", function (event) {
      event.preventDefault();
      var at = self.position(event);
      if (!self.active) {
        // No zone being edited: a click inside a zone picks it.
        var fields = self.fields();
        for (var i = fields.length - 1; i >= 0; i--) {
          var pts = readPoints(fields[i]);
          if (pts && pts.length >= 3 && !markedForDeletion(fields[i]) && insidePolygon(at[0], at[1], pts)) {
            self.select(fields[i]);
            return;
          }
        }
        self.say("Press “Draw on picture” beside a zone first, or click inside a zone to pick it.");
        return;
      }
      var points = readPoints(self.active) || [];
      var corner = self.cornerNear(event, points);
      if (corner >= 0) {
        self.dragging = corner;
        if (self.canvas.setPointerCapture) { self.canvas.setPointerCapture(event.pointerId); }
        return;
      }
      points.push(at);
      writePoints(self.active, points);
    });
    this.canvas.addEventListener("pointermove", function (event) {
      if (self.dragging < 0 || !self.active) { return; }
      var points = readPoints(self.active) || [];
      if (self.dragging < points.length) {
        points[self.dragging] = self.position(event);
        writePoints(self.active, points);
      }
    });
    var stop = function () { self.dragging = -1; };
    this.canvas.addEventListener("pointerup", stop);
    this.canvas.addEventListener("pointercancel", stop);

    this.panel.querySelector("[data-zone-undo]").addEventListener("click", function () {
      if (!self.active) { return; }
      var points = readPoints(self.active) || [];
      points.pop();
      writePoints(self.active, points);
    });
    this.panel.querySelector("[data-zone-clear]").addEventListener("click", function () {
      if (self.active) { writePoints(self.active, []); }
    });
    this.panel.querySelector("[data-zone-done]").addEventListener("click", function () { self.select(null); });

    // Redraw when a zone is renamed, marked for deletion, or added with "Add another Zone".
    document.addEventListener("input", function (event) {
      if (event.target.name && event.target.name.indexOf(self.prefix + "-") === 0) { self.draw(); }
    });
    document.addEventListener("change", function (event) {
      if (event.target.name && event.target.name.indexOf(self.prefix + "-") === 0) { self.draw(); }
    });
    document.addEventListener("formset:added", function (event) {
      if (event.detail && event.detail.formsetName !== self.prefix) { return; }
      var textarea = event.target.querySelector("textarea[data-zone-polygon]");
      if (textarea) {
        self.decorate(textarea);
        self.select(textarea);
      }
    });
    document.addEventListener("formset:removed", function () { self.draw(); });

    this.fields().forEach(function (t) { self.decorate(t); });
    if (this.snapshot && !this.snapshot.complete) {
      this.snapshot.addEventListener("load", function () { self.draw(); });
    }
    this.draw();
  };

  ZoneEditor.prototype.draw = function () {
    this.say(this.describe());
    var canvas = this.canvas, ctx = this.context;
    var image = this.snapshot && this.snapshot.complete && this.snapshot.naturalWidth ? this.snapshot : null;
    if (image && (canvas.width !== image.naturalWidth || canvas.height !== image.naturalHeight)) {
      canvas.width = image.naturalWidth;
      canvas.height = image.naturalHeight;
    }
    var w = canvas.width, h = canvas.height;
    var scale = Math.max(1, w / 640);
    ctx.clearRect(0, 0, w, h);
    if (image) {
      ctx.drawImage(image, 0, 0, w, h);
    } else {
      ctx.fillStyle = "#8a8a8a";
      ctx.fillRect(0, 0, w, h);
      ctx.fillStyle = "#d8d8d8";
      ctx.font = Math.round(18 * scale) + "px sans-serif";
      ctx.textAlign = "center";
      ctx.fillText("No snapshot yet", w / 2, h / 2);
      ctx.textAlign = "start";
    }
    var fields = this.fields();
    for (var i = 0; i < fields.length; i++) {
      var points = readPoints(fields[i]);
      if (!points || points.length === 0 || markedForDeletion(fields[i])) { continue; }
      var active = fields[i] === this.active;
      var kind = zoneKind(fields[i]);
      var colour = KIND_COLOURS[kind] || COLOURS[i % COLOURS.length];
      ctx.beginPath();
      points.forEach(function (p, k) {
        if (k === 0) { ctx.moveTo(p[0] * w, p[1] * h); } else { ctx.lineTo(p[0] * w, p[1] * h); }
      });
      if (points.length >= 3) { ctx.closePath(); }
      ctx.globalAlpha = active ? 0.3 : 0.18;
      ctx.fillStyle = colour;
      if (points.length >= 3) { ctx.fill(); }
      ctx.globalAlpha = 1;
      ctx.lineWidth = (active ? 3 : 2) * scale;
      ctx.strokeStyle = colour;
      ctx.stroke();
      if (active) {
        points.forEach(function (p) {
          ctx.beginPath();
          ctx.arc(p[0] * w, p[1] * h, 5 * scale, 0, 2 * Math.PI);
          ctx.fillStyle = "#fff";
          ctx.fill();
          ctx.stroke();
        });
      }
      ctx.font = "bold " + Math.round(13 * scale) + "px sans-serif";
      ctx.fillStyle = "#fff";
      ctx.strokeStyle = "#000";
      ctx.lineWidth = 3 * scale;
      var label = zoneName(fields[i], i) + (kind ? " (" + kind + ")" : "");
      ctx.strokeText(label, points[0][0] * w + 6 * scale, points[0][1] * h - 6 * scale);
      ctx.fillText(label, points[0][0] * w + 6 * scale, points[0][1] * h - 6 * scale);
    }
  };

  function start() {
    Array.prototype.forEach.call(document.querySelectorAll("[data-zone-editor]"), function (panel) {
      if (!panel.zoneEditor) { panel.zoneEditor = new ZoneEditor(panel); }
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
