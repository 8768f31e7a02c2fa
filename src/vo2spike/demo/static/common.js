"use strict";
// Helpers shared by the three pages: JSON requests to this server, number formatting,
// and small canvas drawing helpers. No external libraries.

const VO2 = {};

/** GET or POST JSON from this server; throws Error(message) with the server's message. */
VO2.fetchJSON = async function (url, options) {
  const resp = await fetch(url, options);
  let data = null;
  try {
    data = await resp.json();
  } catch (e) {
    throw new Error(`the server answered ${resp.status} without JSON`);
  }
  if (!resp.ok) {
    const err = new Error(data && data.error ? data.error : `request failed (${resp.status})`);
    err.kind = data && data.kind;
    err.status = resp.status;
    throw err;
  }
  return data;
};

const NUM = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });

/** A number with `digits` decimals and thousands separators; "–" when missing. */
VO2.fmt = function (v, digits = 0) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  return new Intl.NumberFormat("en-US", {
    minimumFractionDigits: digits, maximumFractionDigits: digits,
  }).format(v);
};
VO2.int = (v) => (v === null || v === undefined ? "–" : NUM.format(v));

/** Set a text element and keep the exact value in data-value (for tests and tools). */
VO2.setNum = function (id, value, digits = 0) {
  const el = document.getElementById(id);
  if (!el) return;
  el.textContent = VO2.fmt(value, digits);
  el.dataset.value = value === null || value === undefined ? "" : String(value);
};

/** "m:ss" of seconds. */
VO2.clock = function (s) {
  const m = Math.floor(s / 60);
  const r = Math.round(s - m * 60);
  return `${m}:${String(r).padStart(2, "0")}`;
};

/** About n "nice" ticks covering [lo, hi]. */
VO2.ticks = function (lo, hi, n = 4) {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / n;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map((k) => k * mag).find((s) => s >= raw) || raw;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) {
    out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  }
  return out;
};

/** Range [min, max] of the finite values of arrays, padded by `pad` of the span. */
VO2.range = function (arrays, pad = 0.05) {
  let lo = Infinity;
  let hi = -Infinity;
  for (const a of arrays) {
    for (const v of a) {
      if (v === null || !Number.isFinite(v)) continue;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
  }
  if (!Number.isFinite(lo)) return [0, 1];
  if (hi === lo) { hi += 1; lo -= 1; }
  const p = (hi - lo) * pad;
  return [lo - p, hi + p];
};

/** Size a canvas to its box (CSS px x devicePixelRatio); returns {ctx, w, h}. */
VO2.fitCanvas = function (canvas, height) {
  const w = Math.max(200, Math.floor(canvas.parentElement.clientWidth));
  const dpr = window.devicePixelRatio || 1;
  canvas.style.height = `${height}px`;
  canvas.width = Math.round(w * dpr);
  canvas.height = Math.round(height * dpr);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  return { ctx, w, h: height };
};

/** Draw a legend (items: {label, color, kind: line|dash|dot|ring|box|tick}) in rows within
 *  maxW, starting at (x, y). Returns the height used; with draw = false only measures it. */
VO2.legend = function (ctx, items, x, y, maxW, font = 12, draw = true) {
  ctx.save();
  ctx.font = `${font}px system-ui, sans-serif`;
  ctx.textBaseline = "middle";
  ctx.textAlign = "left";
  let cx = x;
  let cy = y + font * 0.7;
  const rowH = font + 6;
  for (const it of items) {
    const wText = ctx.measureText(it.label).width;
    const wItem = 22 + wText + 14;
    if (cx + wItem > x + maxW && cx > x) { cx = x; cy += rowH; }
    if (!draw) { cx += wItem; continue; }
    ctx.strokeStyle = it.color;
    ctx.fillStyle = it.color;
    ctx.lineWidth = 2;
    if (it.kind === "box") {
      ctx.globalAlpha = it.alpha || 1;
      ctx.fillRect(cx, cy - 5, 16, 10);
      ctx.globalAlpha = 1;
      ctx.strokeRect(cx, cy - 5, 16, 10);
    } else if (it.kind === "dot") {
      ctx.beginPath(); ctx.arc(cx + 8, cy, 3.5, 0, 2 * Math.PI); ctx.fill();
    } else if (it.kind === "ring") {
      ctx.beginPath(); ctx.arc(cx + 8, cy, 3.5, 0, 2 * Math.PI); ctx.stroke();
    } else if (it.kind === "tick") {
      ctx.beginPath(); ctx.moveTo(cx + 8, cy - 6); ctx.lineTo(cx + 8, cy + 6); ctx.stroke();
    } else {
      ctx.setLineDash(it.kind === "dash" ? [5, 4] : []);
      ctx.beginPath(); ctx.moveTo(cx, cy); ctx.lineTo(cx + 16, cy); ctx.stroke();
      ctx.setLineDash([]);
    }
    ctx.fillStyle = "#1d232b";
    ctx.fillText(it.label, cx + 22, cy);
    cx += wItem;
  }
  ctx.restore();
  return cy - y + rowH / 2 + 2;
};

/** Diverging colour for v in [-1, 1]: blue (negative), white, orange-red (positive). */
VO2.diverging = function (v, alpha = 1) {
  const t = Math.max(-1, Math.min(1, v));
  const a = Math.abs(t);
  const [r, g, b] = t >= 0 ? [200, 70, 20] : [30, 90, 180];
  const mix = (c) => Math.round(255 + (c - 255) * a);
  return `rgba(${mix(r)},${mix(g)},${mix(b)},${alpha})`;
};

/** Show the model-error banner when the model could not be loaded. */
VO2.showModelError = function (message) {
  const el = document.getElementById("model-error");
  if (!el || !message) return;
  el.hidden = false;
  el.textContent = `The model could not be loaded, so the demo cannot run it: ${message}. ` +
    "Start the demo with --model DIR, a folder written by `vo2spike train` or `vo2spike run`.";
};
