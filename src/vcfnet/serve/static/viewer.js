"use strict";
// Radiograph viewer: zoom, pan, invert, window/level, reset; draw, move, resize, delete and label
// boxes with the mouse or the keyboard; the Grad-CAM overlay with an opacity slider.
(function () {
  const dataNode = document.getElementById("viewer-data");
  if (!dataNode) return;
  const data = JSON.parse(dataNode.textContent);
  const root = document.querySelector(".viewer");
  const editable = root.dataset.editable === "true";
  const canvas = root.querySelector("canvas.stage");
  const ctx = canvas.getContext("2d");
  const statusLine = root.querySelector(".status");
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const control = (name) => root.querySelector(`[data-control="${name}"]`);
  const HANDLE = 8; // px on screen
  const MIN_SIZE = 4; // px on the image

  const view = { scale: 1, ox: 0, oy: 0, invert: false, window: 255, level: 128, opacity: 0.6, heatmap: true };
  const boxes = data.boxes.map((b) => ({ ...b }));
  let selected = boxes.length ? 0 : -1;
  let mode = editable ? "select" : "pan";
  let dirty = false;
  let drag = null;

  const display = document.createElement("canvas");
  display.width = data.width;
  display.height = data.height;
  const displayCtx = display.getContext("2d");
  let raw = null;
  const image = new Image();
  const heatmap = data.heatmap_url ? new Image() : null;

  function say(text) { statusLine.textContent = text; }

  function applyWindow() {
    if (!raw) return;
    const lo = view.level - view.window / 2;
    const lut = new Uint8ClampedArray(256);
    for (let v = 0; v < 256; v++) {
      const out = ((v - lo) / Math.max(1, view.window)) * 255;
      lut[v] = view.invert ? 255 - out : out;
    }
    const out = displayCtx.createImageData(raw.width, raw.height);
    for (let i = 0; i < raw.data.length; i += 4) {
      const g = lut[raw.data[i]];
      out.data[i] = g; out.data[i + 1] = g; out.data[i + 2] = g; out.data[i + 3] = 255;
    }
    displayCtx.putImageData(out, 0, 0);
  }

  function fit() {
    const rect = canvas.getBoundingClientRect();
    canvas.width = Math.max(200, Math.round(rect.width));
    canvas.height = Math.max(200, Math.round(rect.height));
    view.scale = Math.min(canvas.width / data.width, canvas.height / data.height);
    view.ox = (canvas.width - data.width * view.scale) / 2;
    view.oy = (canvas.height - data.height * view.scale) / 2;
  }

  function draw() {
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.setTransform(view.scale, 0, 0, view.scale, view.ox, view.oy);
    ctx.imageSmoothingEnabled = view.scale < 1;
    ctx.drawImage(display, 0, 0);
    if (view.heatmap && heatmap && heatmap.complete && heatmap.naturalWidth) {
      ctx.globalAlpha = view.opacity;
      ctx.drawImage(heatmap, 0, 0, data.width, data.height);
      ctx.globalAlpha = 1;
    }
    const line = 2 / view.scale;
    ctx.font = `${14 / view.scale}px sans-serif`;
    boxes.forEach((b, i) => {
      ctx.lineWidth = i === selected ? 2 * line : line;
      ctx.strokeStyle = i === selected ? "#ffd400" : "#00e0ff";
      ctx.strokeRect(b.x1, b.y1, b.x2 - b.x1, b.y2 - b.y1);
      // the label inside the box's top-left corner, on a dark patch (the heatmap writes above it)
      const grade = b.grade === undefined || b.grade === null ? "" : ` G${b.grade}`; // suggested
      const label = `${i + 1} ${b.level}${grade}`;
      const pad = 3 / view.scale;
      ctx.fillStyle = "rgba(0, 0, 0, 0.6)";
      ctx.fillRect(b.x1, b.y1, ctx.measureText(label).width + 2 * pad, 18 / view.scale);
      ctx.fillStyle = ctx.strokeStyle;
      ctx.fillText(label, b.x1 + pad, b.y1 + 14 / view.scale);
      if (i === selected && editable) {
        const h = HANDLE / view.scale;
        corners(b).forEach(([x, y]) => ctx.fillRect(x - h / 2, y - h / 2, h, h));
      }
    });
  }

  function corners(b) { return [[b.x1, b.y1], [b.x2, b.y1], [b.x1, b.y2], [b.x2, b.y2]]; }

  function toImage(event) {
    const rect = canvas.getBoundingClientRect();
    const x = ((event.clientX - rect.left) * canvas.width) / rect.width;
    const y = ((event.clientY - rect.top) * canvas.height) / rect.height;
    return { x: (x - view.ox) / view.scale, y: (y - view.oy) / view.scale, sx: x, sy: y };
  }

  function clampBox(b) {
    const x1 = Math.min(b.x1, b.x2), x2 = Math.max(b.x1, b.x2);
    const y1 = Math.min(b.y1, b.y2), y2 = Math.max(b.y1, b.y2);
    b.x1 = Math.max(0, Math.round(x1)); b.y1 = Math.max(0, Math.round(y1));
    b.x2 = Math.min(data.width, Math.round(x2)); b.y2 = Math.min(data.height, Math.round(y2));
    return b.x2 - b.x1 >= MIN_SIZE && b.y2 - b.y1 >= MIN_SIZE;
  }

  function hitCorner(p) {
    if (selected < 0) return -1;
    const h = HANDLE / view.scale;
    return corners(boxes[selected]).findIndex(([x, y]) => Math.abs(p.x - x) <= h && Math.abs(p.y - y) <= h);
  }

  function hitBox(p) {
    for (let i = boxes.length - 1; i >= 0; i--) {
      const b = boxes[i];
      if (p.x >= b.x1 && p.x <= b.x2 && p.y >= b.y1 && p.y <= b.y2) return i;
    }
    return -1;
  }

  function changed() { dirty = true; renderTable(); draw(); }

  canvas.addEventListener("mousedown", (event) => {
    const p = toImage(event);
    canvas.focus();
    if (editable && mode === "draw") {
      boxes.push({ level: control("new-level").value, x1: p.x, y1: p.y, x2: p.x, y2: p.y });
      selected = boxes.length - 1;
      drag = { kind: "draw" };
    } else if (editable && mode === "select" && hitCorner(p) >= 0) {
      drag = { kind: "resize", corner: hitCorner(p) };
    } else if (editable && mode === "select" && hitBox(p) >= 0) {
      selected = hitBox(p);
      drag = { kind: "move", last: p };
    } else {
      drag = { kind: "pan", sx: p.sx, sy: p.sy, ox: view.ox, oy: view.oy };
    }
    draw();
  });

  window.addEventListener("mousemove", (event) => {
    if (!drag) return;
    const p = toImage(event);
    const b = boxes[selected];
    if (drag.kind === "pan") {
      view.ox = drag.ox + p.sx - drag.sx; view.oy = drag.oy + p.sy - drag.sy;
    } else if (drag.kind === "draw") {
      b.x2 = p.x; b.y2 = p.y;
    } else if (drag.kind === "resize") {
      if (drag.corner % 2 === 0) b.x1 = p.x; else b.x2 = p.x;
      if (drag.corner < 2) b.y1 = p.y; else b.y2 = p.y;
    } else if (drag.kind === "move") {
      const dx = p.x - drag.last.x, dy = p.y - drag.last.y;
      b.x1 += dx; b.x2 += dx; b.y1 += dy; b.y2 += dy;
      drag.last = p;
    }
    draw();
  });

  window.addEventListener("mouseup", () => {
    if (!drag) return;
    if (drag.kind !== "pan") {
      if (!clampBox(boxes[selected])) {
        boxes.splice(selected, 1);
        selected = boxes.length - 1;
        say("Box too small: drag to draw a larger one.");
      }
      changed();
    }
    drag = null;
    draw();
  });

  function zoom(factor, sx, sy) {
    const cx = sx ?? canvas.width / 2, cy = sy ?? canvas.height / 2;
    view.ox = cx - (cx - view.ox) * factor;
    view.oy = cy - (cy - view.oy) * factor;
    view.scale *= factor;
    draw();
  }

  canvas.addEventListener("wheel", (event) => {
    event.preventDefault();
    const p = toImage(event);
    zoom(event.deltaY < 0 ? 1.2 : 1 / 1.2, p.sx, p.sy);
  }, { passive: false });

  function reset() {
    view.invert = false; view.window = 255; view.level = 128;
    syncControls(); applyWindow(); fit(); draw();
  }

  function syncControls() {
    control("window").value = view.window;
    control("level").value = view.level;
    root.querySelector('[data-action="invert"]').setAttribute("aria-pressed", String(view.invert));
  }

  function setMode(value) {
    if (!editable && value !== "pan") return;
    mode = value;
    control("mode").value = value;
    say(`Mode: ${value}`);
  }

  // what the status line (a live region) says about box i after a keyboard action
  function describe(i, what) {
    const b = boxes[i];
    return `Box ${i + 1} (${b.level}) ${what}, at x ${b.x1}, y ${b.y1} to x ${b.x2}, y ${b.y2}`;
  }

  function nudge(event) {
    const b = boxes[selected];
    const step = event.altKey ? 1 : 5;
    const d = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] }[event.key];
    if (event.shiftKey) { b.x2 += d[0]; b.y2 += d[1]; } else { b.x1 += d[0]; b.x2 += d[0]; b.y1 += d[1]; b.y2 += d[1]; }
    clampBox(b);
    changed();
    say(describe(selected, event.shiftKey ? "resized" : "moved"));
  }

  // the keyboard's way to draw: a box of the "New box level" in the middle of the visible image
  // (a tenth of the image's width, a fifteenth of its height), selected for the arrow keys
  function addBox() {
    const cx = (canvas.width / 2 - view.ox) / view.scale, cy = (canvas.height / 2 - view.oy) / view.scale;
    const w = data.width / 10, h = data.height / 15;
    const b = { level: control("new-level").value, x1: cx - w / 2, y1: cy - h / 2, x2: cx + w / 2, y2: cy + h / 2 };
    if (!clampBox(b)) { say("The middle of the view is outside the image: reset the view (0) first."); return; }
    boxes.push(b);
    selected = boxes.length - 1;
    changed();
    say(`${describe(selected, "added")}. Arrows move it, Shift+arrows resize it.`);
  }

  canvas.addEventListener("keydown", (event) => {
    const key = event.key;
    if (key === "+" || key === "=") zoom(1.2);
    else if (key === "-") zoom(1 / 1.2);
    else if (key === "0") reset();
    else if (key === "i") { view.invert = !view.invert; syncControls(); applyWindow(); draw(); }
    else if (editable && key === "a") addBox();
    else if (editable && key === "d") setMode("draw");
    else if (editable && key === "s") setMode("select");
    else if (key === "p") setMode("pan");
    else if (key === "h" && heatmap) toggleHeatmap(!view.heatmap);
    else if (editable && (key === "n" || key === "N") && boxes.length) {
      // not Tab: Tab must leave the canvas (no keyboard trap)
      selected = (selected + (key === "N" ? boxes.length - 1 : 1)) % boxes.length;
      say(describe(selected, "selected"));
      draw();
    } else if (editable && key.startsWith("Arrow") && selected >= 0) nudge(event);
    else if (editable && (key === "Delete" || key === "Backspace") && selected >= 0) deleteSelected();
    else return;
    event.preventDefault();
  });

  function toggleHeatmap(on) {
    view.heatmap = on;
    const box = control("heatmap");
    if (box) box.checked = on;
    draw();
  }

  function deleteSelected() {
    if (selected < 0) return;
    const gone = `Box ${selected + 1} (${boxes[selected].level}) deleted`;
    boxes.splice(selected, 1);
    selected = Math.min(selected, boxes.length - 1);
    changed();
    say(`${gone}; ${boxes.length} box(es) left, not saved yet.`);
  }

  function renderTable() {
    const body = root.querySelector("table.boxes tbody");
    if (!body) return;
    body.replaceChildren();
    boxes.forEach((b, i) => {
      const row = document.createElement("tr");
      const cell = (text) => { const td = document.createElement("td"); td.textContent = text; return td; };
      row.append(cell(String(i + 1)));
      const select = document.createElement("select");
      select.setAttribute("aria-label", `Level of box ${i + 1}`);
      data.levels.forEach((level) => select.append(new Option(level, level, false, level === b.level)));
      select.addEventListener("change", () => { b.level = select.value; changed(); });
      const td = document.createElement("td");
      td.append(select);
      row.append(td, cell(b.x1), cell(b.y1), cell(b.x2), cell(b.y2));
      row.addEventListener("click", () => { selected = i; draw(); });
      body.append(row);
    });
  }

  async function save() {
    const response = await fetch(`/api/v1/cases/${data.id}/boxes`, {
      method: "PUT",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify({ boxes: boxes.map(({ level, x1, y1, x2, y2 }) => ({ level, x1, y1, x2, y2 })) }),
      credentials: "same-origin",
    });
    if (response.ok) {
      dirty = false; say(`Saved ${boxes.length} box(es).`);
      root.dispatchEvent(new CustomEvent("vcfnet:saved"));
      return;
    }
    const detail = await response.json().catch(() => ({}));
    say(`Not saved: ${typeof detail.detail === "string" ? detail.detail : response.statusText}`);
  }

  // another script (static/suggest.js) replaces the boxes: {detail: {boxes, message}}
  root.addEventListener("vcfnet:set-boxes", (event) => {
    boxes.splice(0, boxes.length, ...event.detail.boxes.map((b) => ({ ...b })));
    selected = boxes.length ? 0 : -1;
    changed();
    if (event.detail.message) say(event.detail.message);
  });

  root.addEventListener("click", (event) => {
    const action = event.target.closest("[data-action]")?.dataset.action;
    if (action === "zoom-in") zoom(1.2);
    else if (action === "zoom-out") zoom(1 / 1.2);
    else if (action === "reset") reset();
    else if (action === "invert") { view.invert = !view.invert; syncControls(); applyWindow(); draw(); }
    else if (action === "delete") deleteSelected();
    else if (action === "add") addBox();
    else if (action === "save") save();
  });

  root.addEventListener("input", (event) => {
    const name = event.target.dataset.control;
    if (name === "window") view.window = Number(event.target.value);
    else if (name === "level") view.level = Number(event.target.value);
    else if (name === "opacity") { view.opacity = Number(event.target.value) / 100; draw(); return; }
    else if (name === "heatmap") { toggleHeatmap(event.target.checked); return; }
    else return;
    applyWindow(); draw();
  });

  root.addEventListener("change", (event) => {
    const name = event.target.dataset.control;
    if (name === "mode") setMode(event.target.value);
    if (name === "preset") {
      [view.window, view.level] = event.target.value.split(",").map(Number);
      syncControls(); applyWindow(); draw();
    }
  });

  document.querySelectorAll("[data-requires-saved]").forEach((button) => {
    button.addEventListener("click", (event) => {
      if (dirty) { event.preventDefault(); say("Save the boxes before analysing."); }
    });
  });

  window.addEventListener("beforeunload", (event) => { if (dirty) event.preventDefault(); });
  window.addEventListener("resize", () => { fit(); draw(); });

  image.addEventListener("load", () => {
    displayCtx.drawImage(image, 0, 0);
    raw = displayCtx.getImageData(0, 0, data.width, data.height);
    applyWindow(); fit(); renderTable(); draw();
    root.dataset.ready = "true";
    say(editable ? "a adds a box; draw mode: d, select: s, pan: p. n selects the next box; arrows move it; Shift+arrows resize." : "");
  });
  if (heatmap) {
    heatmap.addEventListener("load", () => { root.dataset.heatmap = "loaded"; draw(); });
    heatmap.src = data.heatmap_url;
  }
  image.src = data.image_url;
})();
