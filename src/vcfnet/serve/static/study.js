"use strict";
// Reader-study reading page: keys 1/2/3 pick the class of the next unanswered box, Enter submits;
// the time on the case goes with the read. Confidence sliders of a box keep their sum at 100.
(function () {
  const form = document.getElementById("study-read");
  if (!form) return;
  const started = performance.now();
  const boxes = Array.from(form.querySelectorAll("fieldset.box-read"));
  const classRadios = (box) => box.querySelectorAll("input[type=radio][name^=label_]");

  function show(slider) {
    slider.setAttribute("aria-valuetext", slider.value + " %");
    const out = form.querySelector(`output[for="${slider.id}"]`);
    if (out) out.value = slider.value;
  }

  // Moving one slider shares the rest of 100 among the others in proportion to their values.
  function rebalance(group, moved) {
    const others = Array.from(group.querySelectorAll("input[type=range]")).filter((s) => s !== moved);
    const rest = 100 - Number(moved.value);
    const total = others.reduce((sum, s) => sum + Number(s.value), 0);
    let left = rest;
    others.forEach((s, k) => {
      const share = k === others.length - 1 ? left
        : Math.round(total > 0 ? rest * Number(s.value) / total : rest / others.length);
      s.value = String(Math.max(0, Math.min(left, share)));
      left -= Number(s.value);
      show(s);
    });
    show(moved);
  }

  form.querySelectorAll("fieldset.sliders").forEach((group) => {
    group.addEventListener("input", (event) => {
      if (event.target instanceof HTMLInputElement && event.target.type === "range") {
        rebalance(group, event.target);
      }
    });
  });

  // The crops follow the viewer's window, level and invert (the same mapping as viewer.js).
  const viewer = document.querySelector(".viewer");
  const crops = [];
  form.querySelectorAll("img.crop").forEach((img) => {
    const canvas = document.createElement("canvas");
    canvas.className = "crop";
    canvas.setAttribute("role", "img");
    canvas.setAttribute("aria-label", img.alt);
    const item = { img, canvas, raw: null };
    const load = () => {
      canvas.width = img.naturalWidth;
      canvas.height = img.naturalHeight;
      const ctx = canvas.getContext("2d", { willReadFrequently: true });
      ctx.drawImage(img, 0, 0);
      item.raw = ctx.getImageData(0, 0, canvas.width, canvas.height);
      img.replaceWith(canvas);
      item.shown = "";
      paintCrops();
    };
    crops.push(item);
    if (img.complete && img.naturalWidth) load(); else img.addEventListener("load", load);
  });
  function windowState() {
    if (!viewer) return "255,128,false";
    const value = (name) => viewer.querySelector(`[data-control="${name}"]`).value;
    const invert = viewer.querySelector('[data-action="invert"]').getAttribute("aria-pressed");
    return `${value("window")},${value("level")},${invert === "true"}`;
  }
  function paintCrops() {
    const state = windowState();
    crops.forEach((item) => {
      if (!item.raw || item.shown === state) return;
      const [win, level, invert] = state.split(",");
      const lo = Number(level) - Number(win) / 2;
      const lut = new Uint8ClampedArray(256);
      for (let v = 0; v < 256; v++) {
        const out = ((v - lo) / Math.max(1, Number(win))) * 255;
        lut[v] = invert === "true" ? 255 - out : out;
      }
      const out = new ImageData(item.raw.width, item.raw.height);
      for (let i = 0; i < out.data.length; i += 4) {
        const g = lut[item.raw.data[i]];
        out.data[i] = out.data[i + 1] = out.data[i + 2] = g;
        out.data[i + 3] = 255;
      }
      item.canvas.getContext("2d").putImageData(out, 0, 0);
      item.shown = item.canvas.dataset.window = state;
    });
  }
  if (crops.length) setInterval(paintCrops, 150);

  // Time on the case survives a reload or a logout in this browser (stored per case and
  // session until the read is submitted; only the seconds, nothing of the read).
  const key = `vcfnet-study-time:${form.action}:${form.elements.study_case.value}:${form.dataset.session}`;
  let before = 0;
  try { before = Number(localStorage.getItem(key)) || 0; } catch (e) { before = 0; }
  const elapsed = () => before + (performance.now() - started) / 1000;
  window.addEventListener("pagehide", () => {
    try { if (!form.dataset.sent) localStorage.setItem(key, elapsed().toFixed(1)); } catch (e) { /* private mode */ }
  });
  form.addEventListener("submit", () => {
    form.elements.seconds.value = elapsed().toFixed(1);
    form.dataset.sent = "1";
    try { localStorage.removeItem(key); } catch (e) { /* private mode */ }
  });
  document.addEventListener("keydown", (event) => {
    const target = event.target;
    if (target instanceof HTMLInputElement && target.type === "range" && event.key === "Enter") {
      event.preventDefault();
      form.requestSubmit();
      return;
    }
    if (target instanceof HTMLInputElement && target.type !== "radio") return;
    if (target instanceof HTMLInputElement && target.name.startsWith("conf_")) return;
    if (target instanceof HTMLSelectElement || target instanceof HTMLTextAreaElement) return;
    if (target instanceof HTMLAnchorElement || event.ctrlKey || event.metaKey || event.altKey) return;
    if (["1", "2", "3"].includes(event.key)) {
      const box = boxes.find((b) => !b.querySelector("input[name^=label_]:checked")) || boxes[boxes.length - 1];
      if (!box) return;
      const choice = classRadios(box)[Number(event.key) - 1];
      if (!choice) return;
      choice.checked = true;
      event.preventDefault();
      const status = document.querySelector(".viewer .status"); // a live region: say the choice
      if (status) status.textContent = `${box.querySelector("legend").textContent}: ${choice.value}`;
    } else if (event.key === "Enter" && !(target instanceof HTMLButtonElement)) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
})();
