"use strict";
// The demo's animation. Every number drawn after stage 1 comes from the server, which runs
// the project's model (/api/trace, /api/window, /api/compression); this file only draws.

(function () {
  const canvas = document.getElementById("stage-canvas");
  const C = {
    speed: "#1f5fa8", hr: "#c0392b", rr: "#2b8a3e", ve: "#7b4bb7",
    measured: "#4a4f57", pred: "#e06c00", grid: "#e3e7ec", axis: "#8a93a0",
    text: "#1d232b", muted: "#4f5966", win: "#1f5fa8", win2: "#2b8a3e",
    threshold: "#c0392b", spike: "#1d232b", pruned: "#eceef1",
    sim: "#8a5a00", simBg: "#fff3d6", real: "#1d6b34", realBg: "#dcf3e3",
    neurons: ["#e06c00", "#1f5fa8", "#7b4bb7", "#2b8a3e"],
  };
  const SIGNALS = [
    { key: "speed", label: "Speed", unit: "km/h", color: C.speed },
    { key: "hr", label: "Heart rate", unit: "bpm", color: C.hr },
    { key: "rr", label: "Breathing rate", unit: "breaths/min", color: C.rr },
    { key: "ve", label: "Ventilation", unit: "L/min", color: C.ve },
  ];
  const STAGES = [
    { title: "Raw signals scroll in", duration: 6 },
    { title: "60 s windows, 50% overlap", duration: 6 },
    { title: "The TCN scans each window", duration: 8 },
    { title: "Two LIF layers emit sparse spikes", duration: 8 },
    { title: "Spike rates → VO2 and VO2max", duration: 7 },
    { title: "Compression: pruning and 8-bit weights", duration: 8 },
  ];

  const state = {
    workouts: [], workoutId: null, person: null, trace: null, key: "", loadingKey: "",
    windows: new Map(), pending: new Set(), compression: null, compressionError: null,
    stage: 1, progress: 1, playing: false, speed: 1, win: 0, last: null,
    W: 600, H: 400, narrow: false, ctx: null, error: null,
  };

  // ---------------------------------------------------------------- data
  function query(extra) {
    const p = new URLSearchParams({ workout: state.workoutId });
    for (const [k, v] of Object.entries(state.person || {})) p.set(k, String(v));
    for (const [k, v] of Object.entries(extra || {})) p.set(k, String(v));
    return p.toString();
  }

  async function init() {
    bindControls();
    resize();
    new ResizeObserver(() => resize()).observe(canvas.parentElement);
    let data;
    try {
      data = await VO2.fetchJSON("/api/workouts");
    } catch (e) {
      fail(`The workouts could not be loaded: ${e.message}`);
      return;
    }
    if (data.model_error) {
      VO2.showModelError(data.model_error);
      fail("The model could not be loaded: see the message above.");
      return;
    }
    state.workouts = data.workouts;
    const sel = document.getElementById("workout");
    for (const w of data.workouts) {
      const o = document.createElement("option");
      o.value = w.id;
      o.textContent = `${w.label} (${w.kind === "real" ? "REAL" : "SIMULATED"})`;
      sel.appendChild(o);
    }
    selectWorkout(data.workouts[0].id);
    requestAnimationFrame(tick);
  }

  function fail(message) {
    state.error = message;
    document.body.dataset.state = "error";
    document.getElementById("stage-text").textContent = message;
    draw();
  }

  function selectWorkout(id) {
    const w = state.workouts.find((x) => x.id === id);
    state.workoutId = id;
    state.person = { ...w.person };
    document.getElementById("workout").value = id;
    fillPerson();
    const badge = document.getElementById("workout-kind");
    badge.textContent = w.kind === "real" ? "REAL recording" : "SIMULATED";
    badge.className = `badge ${w.kind}`;
    document.getElementById("person-note").textContent = w.person_note;
    loadTrace();
  }

  function fillPerson() {
    for (const k of ["age", "weight", "height", "sex"]) {
      document.getElementById(k).value = state.person[k];
    }
  }

  async function loadTrace() {
    const key = query();
    state.loadingKey = key;
    document.body.dataset.state = "loading";
    const personError = document.getElementById("person-error");
    personError.hidden = true;
    let trace;
    try {
      trace = await VO2.fetchJSON(`/api/trace?${key}`);
    } catch (e) {
      if (state.loadingKey !== key) return;
      if (e.kind === "parameter") {
        personError.hidden = false;
        personError.textContent = e.message;
        document.body.dataset.state = state.trace ? "ready" : "error";
      } else {
        fail(e.message);
      }
      return;
    }
    if (state.loadingKey !== key) return;
    state.trace = trace;
    state.key = key;
    state.error = null;
    state.windows = new Map();
    state.pending = new Set();
    const n = trace.summary.n_windows;
    state.win = defaultWindow(trace);
    const slider = document.getElementById("window");
    slider.max = String(n - 1);
    slider.value = String(state.win);
    document.getElementById("source").textContent =
      `Data: ${trace.workout.source}. ${trace.workout.description}`;
    updateReadout();
    updateStageText();
    await ensureWindow(state.win);
    if (!state.compression && !state.compressionError) loadCompression();
    document.body.dataset.state = "ready";
    document.body.dataset.traceKey = key;
    draw();
  }

  /** The window with the highest measured VO2: the most active part of the workout. */
  function defaultWindow(trace) {
    const m = trace.windows.vo2_measured;
    let best = 0;
    for (let i = 0; i < m.length; i++) if (m[i] > m[best]) best = i;
    return best;
  }

  async function ensureWindow(i) {
    const key = state.key;
    if (state.windows.has(i) || state.pending.has(i)) return;
    state.pending.add(i);
    try {
      const d = await VO2.fetchJSON(`/api/window?${query({ index: i })}`);
      if (state.key === key) state.windows.set(i, d);
    } catch (e) {
      if (state.key === key) state.windows.set(i, { error: e.message });
    } finally {
      state.pending.delete(i);
    }
    draw();
  }

  async function loadCompression() {
    try {
      state.compression = await VO2.fetchJSON("/api/compression");
    } catch (e) {
      state.compressionError = `The weights could not be loaded: ${e.message}`;
    }
    document.body.dataset.compression = state.compression ? "ready" : "error";
    updateStageText();
    updateReadout();
    draw();
  }

  // ---------------------------------------------------------------- controls
  function bindControls() {
    document.getElementById("workout").addEventListener("change", (e) => selectWorkout(e.target.value));
    document.getElementById("play").addEventListener("click", togglePlay);
    document.getElementById("next").addEventListener("click", () => step(1));
    document.getElementById("prev").addEventListener("click", () => step(-1));
    document.getElementById("speed").addEventListener("change", (e) => {
      state.speed = Number(e.target.value);
    });
    document.getElementById("window").addEventListener("input", (e) => {
      state.win = Number(e.target.value);
      ensureWindow(state.win);
      updateReadout();
      updateStageText();
      draw();
    });
    for (const b of document.querySelectorAll("#stage-tabs button")) {
      b.addEventListener("click", () => goTo(Number(b.dataset.stage)));
    }
    document.getElementById("person").addEventListener("submit", (e) => {
      e.preventDefault();
      const form = e.target;
      if (!form.reportValidity()) return;
      state.person = {
        age: Number(document.getElementById("age").value),
        weight: Number(document.getElementById("weight").value),
        height: Number(document.getElementById("height").value),
        sex: Number(document.getElementById("sex").value),
      };
      loadTrace();
    });
    document.getElementById("reset-person").addEventListener("click", () => selectWorkout(state.workoutId));
    document.addEventListener("keydown", (e) => {
      const tag = e.target.tagName;
      if (["INPUT", "SELECT", "TEXTAREA"].includes(tag) || e.altKey || e.ctrlKey || e.metaKey) return;
      if (e.key === " ") {
        if (["BUTTON", "A", "SUMMARY"].includes(tag)) return; // Space clicks the focused button
        e.preventDefault();
        togglePlay();
      } else if (e.key === "ArrowRight") {
        e.preventDefault();
        step(1);
      } else if (e.key === "ArrowLeft") {
        e.preventDefault();
        step(-1);
      }
    });
  }

  function togglePlay() {
    state.playing = !state.playing;
    if (state.playing && state.progress >= 1) {
      state.progress = 0;
      if (state.stage === 6) state.stage = 1;
    }
    const b = document.getElementById("play");
    b.setAttribute("aria-pressed", String(state.playing));
    b.textContent = state.playing ? "❚❚ Pause" : "▶ Play";
    draw();
  }

  /** Next / previous stage: shown whole when paused, animated from its start when playing. */
  function step(delta) {
    goTo(((state.stage - 1 + delta + 6) % 6) + 1);
  }

  function goTo(stage) {
    state.stage = stage;
    state.progress = state.playing ? 0 : 1;
    updateStageText();
    draw();
  }

  function tick(ts) {
    if (state.last === null) state.last = ts;
    const dt = Math.min(0.1, (ts - state.last) / 1000);
    state.last = ts;
    if (state.playing && state.trace) {
      state.progress += (dt * state.speed) / STAGES[state.stage - 1].duration;
      if (state.progress >= 1) {
        state.progress = 0;
        state.stage = (state.stage % 6) + 1;
        updateStageText();
      }
      draw();
    }
    requestAnimationFrame(tick);
  }

  // ---------------------------------------------------------------- text outside the canvas
  function updateStageText() {
    const t = state.trace;
    const s = state.stage;
    document.getElementById("stage-title").textContent = `Stage ${s} of 6: ${STAGES[s - 1].title}`;
    document.getElementById("stage-canvas").setAttribute("aria-label",
      `Stage ${s} of 6: ${STAGES[s - 1].title}. The numbers are listed below the animation.`);
    for (const b of document.querySelectorAll("#stage-tabs button")) {
      if (Number(b.dataset.stage) === s) b.setAttribute("aria-current", "step");
      else b.removeAttribute("aria-current");
    }
    if (!t) return;
    const m = t.model;
    const sum = t.summary;
    const removed = Object.entries(sum.cleaning).filter(([k]) => !k.startsWith("windows"))
      .filter(([k]) => k !== "rows_dropped_missing").reduce((a, [, v]) => a + v, 0);
    const k = state.win + 1;
    const texts = [
      `The watch records speed (km/h), heart rate (bpm), breathing rate (breaths/min) and ` +
      `ventilation (L/min), breath by breath. Shown after the command line's own cleaning ` +
      `(${removed} artefact values removed in this workout) and resampling to 1 Hz; speed is ` +
      `smoothed over 5 s. Gaps of more than 30 s without a breath are left empty.`,
      `The signals are cut into ${m.window_s} s windows every ${m.stride_s} s (50% overlap): ` +
      `${sum.n_windows} windows in this workout (windows touching a gap are dropped). Each ` +
      `window is one input to the model: 8 channels × ${m.window_s} s (the 4 signals, plus ` +
      `age, weight, height and sex repeated over time).`,
      `A causal temporal convolution network: ${m.dilations.length} blocks of ` +
      `${m.kernel_size}-tap convolutions with dilations ${m.dilations.join(", ")} (BatchNorm, ` +
      `ReLU, residual). Each output second sees the last ${m.receptive_field} s of its window ` +
      `and never the future (before the window's start it sees zeros). The lines show which ` +
      `inputs feed the output second being computed; the heatmap is the ${m.channels} real ` +
      `TCN output channels of window ${k}.`,
      `Two layers of ${m.hidden} leaky integrate-and-fire neurons. Every second each neuron's ` +
      `membrane potential U leaks (U ← ${m.beta}·U) and adds its input; when U crosses the ` +
      `threshold θ = ${m.threshold} it emits a spike and drops by θ. Each dot of the raster is ` +
      `one real spike of window ${k}; the curves are the membrane potentials of four neurons.`,
      `The ${m.hidden} spike trains of the second layer are averaged over the ${m.window_s} s ` +
      `(the bars: each neuron's spike rate in window ${k}), and two linear heads read these ` +
      `rates: window VO2 and VO2max (mL/min). The workout's VO2max estimate is the mean of its ` +
      `window estimates; mL/kg/min divides it by the weight.`,
      compressionText(),
    ];
    document.getElementById("stage-text").textContent = texts[s - 1];
  }

  function compressionText() {
    const v = state.compression;
    if (!v) return state.compressionError || "Loading the weights…";
    const pct = (100 * v.removed_in_layer) / (v.shape[0] * v.shape[1]);
    const steps = v.prune_steps.length > 1
      ? ` It goes in steps, ${pruneSteps(v)}: each time the smallest weights left go, and the ` +
        `rest are fine-tuned before the next step.`
      : "";
    const base = `To fit a watch, ${Math.round(v.prune_amount * 100)}% of all ` +
      `${VO2.int(v.weights_total)} convolution and linear weights with the smallest magnitude are ` +
      `removed (global magnitude pruning).${steps} In the layer drawn, the ${v.shape[0]} × ${v.shape[1]} ` +
      `synapses from LIF1 to LIF2, that is ${VO2.int(v.removed_in_layer)} weights ` +
      `(${pct.toFixed(0)}%). The rest snap to 8-bit levels: per row s = max|w| / 127, ` +
      `q = round(w / s) in −127…127. `;
    return base + (v.compressed_model
      ? `The grid shows the simulation-only weights that pruning started from; the survivors ` +
        `were fine-tuned (masks kept), and their 8-bit levels are those of the int8 engine in ` +
        `${v.source}. ${runFigures(state.trace && state.trace.compression.run_figures)}`
      : "No compressed model exists yet for this model folder: the pruning shown is " +
        "computed here from the float model, and no accuracy after compression is shown.");
  }

  /** "40% → 60% → 70%": the sparsities the model was pruned to in turn. */
  function pruneSteps(v) {
    return v.prune_steps.map((p) => `${Math.round(p * 100)}%`).join(" → ");
  }

  /** The run's own before/after figures (compression.json), said with their data. */
  function runFigures(f) {
    if (!f) return "";
    const pair = (b, a) => `VO2 R² ${VO2.fmt(b.vo2_r2, 3)} → ${VO2.fmt(a.vo2_r2, 3)}, ` +
      `VO2max RMSE ${VO2.int(b.vo2max_rmse)} → ${VO2.int(a.vo2max_rmse)} mL/min`;
    let out = `Whole run, float → pruned + int8: ${f.data_kind.toUpperCase()} test split ` +
      `${pair(f.before, f.after)}`;
    if (f.real_before) {
      out += `; REAL recordings held out by person (${f.real_people} people) ` +
        `${pair(f.real_before, f.real_after)}`;
    }
    return out + ".";
  }

  function updateReadout() {
    const t = state.trace;
    if (!t) return;
    const i = state.win;
    const w = t.windows;
    const s = t.summary;
    const n = s.n_windows;
    const label = `window ${i + 1} of ${n} (${VO2.clock(w.t_start[i])}–${VO2.clock(w.t_end[i])})`;
    document.getElementById("window-label").textContent = label;
    document.getElementById("win-label").textContent = label;
    VO2.setNum("vo2-pred", w.vo2_pred[i]);
    VO2.setNum("vo2-meas", w.vo2_measured[i]);
    VO2.setNum("vo2max-pred", s.vo2max_pred_ml_min);
    VO2.setNum("vo2max-pred-kg", s.vo2max_pred_ml_kg_min, 1);
    VO2.setNum("vo2max-meas", s.vo2max_measured_ml_min);
    VO2.setNum("r2", s.r2, 3);
    VO2.setNum("rmse", s.rmse);
    VO2.setNum("n-windows", n);
    VO2.setNum("rate-lif1", s.spike_rates.lif1, 3);
    VO2.setNum("rate-lif2", s.spike_rates.lif2, 3);
    const c = t.compression;
    let acc = c.before ? `float model on this workout: R² ${VO2.fmt(c.before.r2, 3)}, RMSE ` +
      `${VO2.int(c.before.rmse)} mL/min. ` : "";
    if (c.after) {
      acc += `Pruned + int8 engine: R² ${VO2.fmt(c.after.r2, 3)}, RMSE ${VO2.int(c.after.rmse)} mL/min.`;
    } else if (c.compressed_error) {
      acc += `The compressed model could not be read: ${c.compressed_error}`;
    } else {
      acc += "No compressed model exists yet: accuracy after compression is not shown.";
    }
    document.getElementById("comp-acc").textContent = acc;
  }

  // ---------------------------------------------------------------- canvas basics
  function resize() {
    const w = canvas.parentElement.clientWidth;
    state.narrow = w < 640;
    const h = state.narrow ? Math.round(Math.min(w * 1.6, 660)) : Math.round(Math.max(440, Math.min(w * 0.52, 620)));
    const fit = VO2.fitCanvas(canvas, h);
    state.ctx = fit.ctx;
    state.W = fit.w;
    state.H = fit.h;
    draw();
  }

  function font(size, weight = "normal") {
    return `${weight} ${size}px system-ui, -apple-system, "Segoe UI", Roboto, sans-serif`;
  }
  const F = () => (state.narrow ? 12 : 13);

  function text(str, x, y, opt = {}) {
    const ctx = state.ctx;
    ctx.font = font(opt.size || F(), opt.weight || "normal");
    ctx.fillStyle = opt.color || C.text;
    ctx.textAlign = opt.align || "left";
    ctx.textBaseline = opt.baseline || "alphabetic";
    ctx.fillText(str, x, y);
    return ctx.measureText(str).width;
  }

  /** Word-wrapped text; returns the y below the last line. */
  function wrap(str, x, y, maxW, opt = {}) {
    const ctx = state.ctx;
    const size = opt.size || F();
    ctx.font = font(size, opt.weight || "normal");
    const lineH = size * 1.35;
    let line = "";
    for (const word of str.split(" ")) {
      const test = line ? `${line} ${word}` : word;
      if (ctx.measureText(test).width > maxW && line) {
        text(line, x, y, opt);
        y += lineH;
        line = word;
      } else {
        line = test;
      }
    }
    if (line) { text(line, x, y, opt); y += lineH; }
    return y;
  }

  const sx = (r, xr, v) => r.x + ((v - xr[0]) / (xr[1] - xr[0])) * r.w;
  const sy = (r, yr, v) => r.y + r.h - ((v - yr[0]) / (yr[1] - yr[0])) * r.h;

  /** Frame, grid and y tick labels of a plot rectangle. */
  function frame(r, yr, opt = {}) {
    const ctx = state.ctx;
    ctx.strokeStyle = C.grid;
    ctx.lineWidth = 1;
    const ticks = opt.yticks || VO2.ticks(yr[0], yr[1], opt.nTicks || 3);
    for (const v of ticks) {
      const y = Math.round(sy(r, yr, v)) + 0.5;
      if (y < r.y - 0.5 || y > r.y + r.h + 0.5) continue;
      ctx.beginPath(); ctx.moveTo(r.x, y); ctx.lineTo(r.x + r.w, y); ctx.stroke();
      text(opt.fmt ? opt.fmt(v) : VO2.fmt(v, Math.abs(ticks[1] - ticks[0]) < 1 ? 1 : 0),
        r.x - 4, y, { align: "right", baseline: "middle", size: F() - 1, color: C.muted });
    }
    ctx.strokeStyle = C.axis;
    ctx.strokeRect(r.x + 0.5, r.y + 0.5, r.w - 1, r.h - 1);
  }

  function xAxis(r, xr, ticks, fmt, label) {
    for (const v of ticks) {
      const x = sx(r, xr, v);
      if (x < r.x - 1 || x > r.x + r.w + 1) continue;
      state.ctx.strokeStyle = C.axis;
      state.ctx.beginPath(); state.ctx.moveTo(x, r.y + r.h); state.ctx.lineTo(x, r.y + r.h + 4); state.ctx.stroke();
      text(fmt(v), x, r.y + r.h + 5, { align: "center", baseline: "top", size: F() - 1, color: C.muted });
    }
    if (label) text(label, r.x + r.w, r.y + r.h + 6 + F(), { align: "right", baseline: "top", size: F() - 1, color: C.muted });
  }

  /** Polyline through (xs[i], ys[i]) for xs[i] <= upto, broken at nulls. */
  function line(r, xr, yr, xs, ys, color, width = 1.6, upto = Infinity, dash = []) {
    const ctx = state.ctx;
    ctx.save();
    ctx.beginPath();
    ctx.rect(r.x, r.y, r.w, r.h);
    ctx.clip();
    ctx.strokeStyle = color;
    ctx.lineWidth = width;
    ctx.setLineDash(dash);
    ctx.beginPath();
    let pen = false;
    for (let i = 0; i < xs.length; i++) {
      if (xs[i] > upto) break;
      if (ys[i] === null || ys[i] === undefined) { pen = false; continue; }
      const x = sx(r, xr, xs[i]);
      const y = sy(r, yr, ys[i]);
      if (pen) ctx.lineTo(x, y); else ctx.moveTo(x, y);
      pen = true;
    }
    ctx.stroke();
    ctx.restore();
  }

  function minuteTicks(T) {
    const step = T > 2400 ? 600 : T > 1200 ? 300 : T > 400 ? 120 : 60;
    const out = [];
    for (let v = 0; v <= T; v += step) out.push(v);
    return out;
  }

  /** Badge, workout and stage line at the top; returns its height. */
  function header() {
    const t = state.trace;
    const real = t.workout.kind === "real";
    const ctx = state.ctx;
    const size = F();
    const badge = real ? "REAL" : "SIMULATED";
    ctx.font = font(size, "bold");
    const bw = ctx.measureText(badge).width + 12;
    ctx.fillStyle = real ? C.realBg : C.simBg;
    ctx.fillRect(6, 6, bw, size + 8);
    ctx.strokeStyle = real ? C.real : C.sim;
    ctx.strokeRect(6.5, 6.5, bw - 1, size + 7);
    text(badge, 12, 10 + size * 0.85, { weight: "bold", color: real ? C.real : C.sim });
    const p = t.person;
    const who = `${p.age} y, ${p.weight} kg, ${p.height} cm, ${p.sex ? "female" : "male"}`;
    if (state.narrow) {
      // The stage's title is right below the canvas on a phone: keep the header short.
      text(t.workout.label, bw + 14, 10 + size * 0.85, { weight: "bold" });
      text(who, 6, 34 + size * 0.4, { size: size - 1, color: C.muted });
      text(`stage ${state.stage}/6`, state.W - 6, 34 + size * 0.4, { align: "right", weight: "bold" });
      return 46;
    }
    text(`${t.workout.label} · ${who}`, bw + 16, 10 + size * 0.85);
    text(`Stage ${state.stage}/6: ${STAGES[state.stage - 1].title}`, state.W - 8, 10 + size * 0.85,
      { align: "right", weight: "bold" });
    return 32;
  }

  function message(str) {
    const ctx = state.ctx;
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, state.W, state.H);
    wrap(str, 16, 40, state.W - 32, { size: 15 });
  }

  function draw() {
    const ctx = state.ctx;
    if (!ctx) return;
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, state.W, state.H);
    if (state.error) { message(state.error); return; }
    if (!state.trace) { message("Loading the workout and running the model…"); return; }
    const top = header();
    const p = Math.max(0, Math.min(1, state.progress));
    const area = { x: 0, y: top, w: state.W, h: state.H - top };
    [drawSignals, drawWindows, drawTCN, drawLIF, drawReadout, drawCompression][state.stage - 1](area, p);
  }

  /** Height of a legend drawn across the canvas's width. */
  function legendHeight(items) {
    return VO2.legend(state.ctx, items, 8, 0, state.W - 16, F() - 1, false) + 4;
  }

  /** Draw a legend across the bottom of the area (height from legendHeight). */
  function bottomLegend(area, items, h) {
    VO2.legend(state.ctx, items, 8, area.y + area.h - h + 2, state.W - 16, F() - 1);
  }

  // ---------------------------------------------------------------- stages 1 and 2
  function signalPanels(area, legendH) {
    const left = state.narrow ? 40 : 52;
    const axisH = 2 * F() + 10;
    const gap = F() + 8; // each panel's title sits above it, never over the data
    const r0 = { x: left, y: area.y + gap, w: area.w - left - 10, h: area.h - gap - axisH - legendH };
    const h = (r0.h - gap * 3) / 4;
    return SIGNALS.map((s, i) => ({ x: r0.x, y: r0.y + i * (h + gap), w: r0.w, h }));
  }

  function drawSignalPlots(rects, upto) {
    const t = state.trace;
    const ts = t.signals.t;
    const T = ts[ts.length - 1];
    const xr = [0, T];
    SIGNALS.forEach((s, i) => {
      const r = rects[i];
      const yr = VO2.range([t.signals[s.key]], 0.08);
      frame(r, yr, { nTicks: 2 });
      line(r, xr, yr, ts, t.signals[s.key], s.color, 1.5, upto);
      text(`${s.label} (${s.unit})`, r.x, r.y - 4, { weight: "bold", color: s.color });
    });
    const last = rects[3];
    xAxis(last, xr, minuteTicks(T), (v) => `${Math.round(v / 60)}`, "time (min)");
    return xr;
  }

  function drawSignals(area, p) {
    const t = state.trace;
    const ts = t.signals.t;
    const T = ts[ts.length - 1];
    const rects = signalPanels(area, 0);
    const upto = p * T;
    const xr = drawSignalPlots(rects, upto);
    if (p < 1) {
      const x = sx(rects[0], xr, upto);
      const ctx = state.ctx;
      ctx.strokeStyle = C.text;
      ctx.setLineDash([3, 3]);
      ctx.beginPath(); ctx.moveTo(x, rects[0].y); ctx.lineTo(x, rects[3].y + rects[3].h); ctx.stroke();
      ctx.setLineDash([]);
      text(VO2.clock(upto), Math.min(x + 4, state.W - 40), rects[0].y + 2 * F() + 6, { size: F() - 1 });
    }
  }

  function drawWindows(area, p) {
    const t = state.trace;
    const w = t.windows;
    const n = w.t_start.length;
    const laneH = 7;
    const legendItems = [
      { label: "a 60 s window", color: C.win, kind: "box", alpha: 0.2 },
      { label: "the next one, 30 s later", color: C.win2, kind: "box", alpha: 0.2 },
    ];
    const bottomH = state.narrow ? legendHeight(legendItems) + F() + 6 : F() + 12;
    const inner = { x: area.x, y: area.y + 2 * laneH + 6, w: area.w, h: area.h - 2 * laneH - 6 - bottomH };
    const rects = signalPanels(inner, 0);
    const xr = drawSignalPlots(rects, Infinity);
    const shown = p >= 1 ? n : Math.floor(p * n) + 1;
    const ctx = state.ctx;
    const yTop = rects[0].y;
    const yBot = rects[3].y + rects[3].h;
    const current = p >= 1 ? state.win : shown - 1;
    for (let i = 0; i < shown && i < n; i++) {
      const x0 = sx(rects[0], xr, w.t_start[i]);
      const x1 = sx(rects[0], xr, w.t_end[i]);
      const color = i % 2 ? C.win2 : C.win;
      ctx.fillStyle = color;
      ctx.globalAlpha = i === current ? 0.18 : 0.05;
      ctx.fillRect(x0, yTop, x1 - x0, yBot - yTop);
      ctx.globalAlpha = 1;
      const ly = area.y + 4 + (i % 2) * laneH;
      ctx.strokeStyle = color;
      ctx.lineWidth = i === current ? 3 : 1.5;
      ctx.beginPath(); ctx.moveTo(x0 + 1, ly + 4); ctx.lineTo(x0 + 1, ly); ctx.lineTo(x1 - 1, ly); ctx.lineTo(x1 - 1, ly + 4); ctx.stroke();
      if (i === current) ctx.strokeRect(x0, yTop, x1 - x0, yBot - yTop);
    }
    ctx.lineWidth = 1;
    const cur = Math.min(current, n - 1);
    const info = `window ${cur + 1} of ${n}: ${VO2.clock(w.t_start[cur])}–${VO2.clock(w.t_end[cur])}`;
    const yLegend = area.y + area.h - bottomH + 2;
    VO2.legend(ctx, legendItems, 8, yLegend, state.narrow ? state.W - 16 : state.W * 0.6, F() - 1);
    if (state.narrow) text(info, 8, area.y + area.h - 6, { size: F() - 1, weight: "bold" });
    else text(info, state.W - 10, yLegend + F() - 2, { align: "right", size: F() - 1, weight: "bold" });
  }

  // ---------------------------------------------------------------- stage 3: TCN
  function windowDetail() {
    const d = state.windows.get(state.win);
    if (!d) { ensureWindow(state.win); return null; }
    return d;
  }

  function drawTCN(area, p) {
    const d = windowDetail();
    if (!d) { text("Loading the window's activations…", 12, area.y + 30); return; }
    if (d.error) { wrap(d.error, 12, area.y + 30, state.W - 24); return; }
    const m = state.trace.model;
    const T = state.trace.model.window_s;
    const ctx = state.ctx;
    const left = state.narrow ? 64 : 118;
    const act = d.tcn;
    let amax = 1e-6;
    for (const row of act) for (const v of row) amax = Math.max(amax, Math.abs(v));
    const legendItems = [
      ...SIGNALS.map((sg) => ({ label: sg.label, color: sg.color, kind: "line" })),
      { label: "activation < 0", color: VO2.diverging(-0.9), kind: "box" },
      { label: `> 0 (colour ∝ √|a|, max ${amax.toFixed(1)})`, color: VO2.diverging(0.9), kind: "box" },
    ];
    const legendH = legendHeight(legendItems);
    const avail = area.h - legendH - 2 * F() - 10;
    const hIn = avail * 0.3;
    const hTree = avail * 0.34;
    const hMap = avail - hIn - hTree - 16;
    const rIn = { x: left, y: area.y + 6, w: state.W - left - 12, h: hIn };
    const rTree = { x: left, y: rIn.y + hIn + 8, w: rIn.w, h: hTree };
    const rMap = { x: left, y: rTree.y + hTree + 8, w: rIn.w, h: hMap };
    const xr = [-0.5, T - 0.5];
    const tStar = p >= 1 ? T - 1 : Math.min(T - 1, Math.floor(p * T));
    const rf = m.receptive_field;

    // Inputs (standardised), with the receptive field of the output step shaded.
    const xs = Array.from({ length: T }, (_, i) => i);
    const std = d.inputs.standardised;
    const yr = VO2.range(std.slice(0, 4), 0.1);
    const a = Math.max(-0.5, tStar - rf + 0.5);
    ctx.fillStyle = "rgba(224,108,0,0.13)";
    ctx.fillRect(sx(rIn, xr, a), rIn.y, sx(rIn, xr, tStar + 0.5) - sx(rIn, xr, a), rIn.h);
    frame(rIn, yr, { nTicks: 2 });
    SIGNALS.forEach((s, i) => line(rIn, xr, yr, xs, std[i], s.color, 1.4));
    text("inputs", 6, rIn.y + rIn.h / 2 - 2, { size: F() - 1, weight: "bold" });
    text("(z-score)", 6, rIn.y + rIn.h / 2 + F(), { size: F() - 2, color: C.muted });
    text(`receptive field: ${rf} s`, Math.max(rIn.x + 4, sx(rIn, xr, a) + 3), rIn.y + F() + 2,
      { size: F() - 1, color: C.pred, weight: "bold" });

    // The dilated tree feeding output step tStar.
    const L = m.dilations.length;
    const rowY = (l) => rTree.y + (l / L) * rTree.h;
    const levels = [];
    levels[L] = [tStar];
    const edges = [];
    for (let l = L; l >= 1; l--) {
      const dl = m.dilations[l - 1];
      const set = new Set();
      for (const node of levels[l]) {
        for (let j = 0; j < m.kernel_size; j++) {
          set.add(node - j * dl);
          edges.push([l, node, node - j * dl]);
        }
      }
      levels[l - 1] = [...set];
    }
    ctx.lineWidth = 1;
    for (let l = 0; l <= L; l++) {
      const y = rowY(l);
      ctx.fillStyle = "#c9ced6";
      for (let i = 0; i < T; i++) ctx.fillRect(sx(rTree, xr, i) - 1, y - 1, 2, 2);
      const lab = l === 0 ? "input" : state.narrow ? `d=${m.dilations[l - 1]}` : `block ${l} · d=${m.dilations[l - 1]}`;
      text(lab, 6, y, { baseline: "middle", size: F() - 1 });
    }
    ctx.strokeStyle = "rgba(224,108,0,0.55)";
    for (const [l, from, to] of edges) {
      if (to < 0) continue;
      ctx.beginPath();
      ctx.moveTo(sx(rTree, xr, from), rowY(l));
      ctx.lineTo(sx(rTree, xr, to), rowY(l - 1));
      ctx.stroke();
    }
    for (let l = 0; l <= L; l++) {
      for (const node of levels[l]) {
        if (node < 0) continue;
        ctx.fillStyle = l === L ? C.pred : "#b5560a";
        ctx.beginPath(); ctx.arc(sx(rTree, xr, node), rowY(l), l === L ? 4.5 : 2.6, 0, 2 * Math.PI); ctx.fill();
      }
    }

    // TCN output activations up to tStar.
    const ch = act.length;
    const cw = rMap.w / T;
    const rh = rMap.h / ch;
    for (let c = 0; c < ch; c++) {
      for (let i = 0; i <= tStar; i++) {
        const a = act[c][i] / amax;
        ctx.fillStyle = VO2.diverging(Math.sign(a) * Math.sqrt(Math.abs(a)));
        ctx.fillRect(rMap.x + i * cw, rMap.y + c * rh, Math.ceil(cw), Math.ceil(rh));
      }
    }
    ctx.strokeStyle = C.axis;
    ctx.strokeRect(rMap.x + 0.5, rMap.y + 0.5, rMap.w - 1, rMap.h - 1);
    const tx = sx(rMap, xr, tStar);
    ctx.strokeStyle = C.pred;
    ctx.lineWidth = 2;
    ctx.beginPath(); ctx.moveTo(tx, rTree.y + rTree.h); ctx.lineTo(tx, rMap.y + rMap.h); ctx.stroke();
    ctx.lineWidth = 1;
    wrap(`TCN output: ${ch} channels`, 6, rMap.y + F(), left - 10, { size: F() - 1, weight: "bold" });
    xAxis(rMap, xr, [0, 10, 20, 30, 40, 50, 59], (v) => String(v), `second in window ${state.win + 1}`);

    bottomLegend(area, legendItems, legendH);
  }

  // ---------------------------------------------------------------- stage 4: LIF
  function drawLIF(area, p) {
    const d = windowDetail();
    if (!d) { text("Loading the window's spikes…", 12, area.y + 30); return; }
    if (d.error) { wrap(d.error, 12, area.y + 30, state.W - 24); return; }
    const m = state.trace.model;
    const T = m.window_s;
    const upto = p >= 1 ? T - 1 : Math.floor(p * T);
    const ctx = state.ctx;
    const narrow = state.narrow;
    const legendItems = [
      { label: "spike", color: C.spike, kind: "dot" },
      { label: "U (before reset)", color: C.neurons[0], kind: "line" },
      { label: `threshold θ = ${m.threshold}`, color: C.threshold, kind: "dash" },
      { label: "neurons plotted", color: C.neurons[1], kind: "box", alpha: 0.3 },
    ];
    const legendH = legendHeight(legendItems);
    const axisH = 2 * F() + 8;
    const neurons = [
      ...d.membrane.lif1.neurons.slice(0, 2).map((n, j) => ({ layer: "lif1", n, u: d.membrane.lif1.potential[j] })),
      ...d.membrane.lif2.neurons.slice(0, 2).map((n, j) => ({ layer: "lif2", n, u: d.membrane.lif2.potential[j] })),
    ];
    neurons.forEach((x, i) => { x.color = C.neurons[i]; });
    const titleH = F() + 8;
    const h = area.h - legendH;
    let rasters;
    let memBox;
    if (narrow) {
      const rh = h * 0.2;
      rasters = [0, 1].map((li) => ({ x: 16, y: area.y + titleH + li * (rh + titleH + 4), w: state.W - 26, h: rh }));
      const y0 = rasters[1].y + rh + titleH + 6;
      memBox = { x: 30, y: y0, w: state.W - 40, h: area.y + h - y0 - axisH };
    } else {
      const wr = state.W * 0.5;
      const rh = (h - axisH - 2 * titleH - 8) / 2;
      rasters = [0, 1].map((li) => ({ x: 20, y: area.y + titleH + li * (rh + titleH + 8), w: wr - 36, h: rh }));
      memBox = { x: wr + 30, y: area.y + titleH, w: state.W - wr - 42, h: h - titleH - axisH };
    }
    const xr = [-0.5, T - 0.5];
    const layers = [
      { key: "lif1", label: "LIF1" },
      { key: "lif2", label: "LIF2" },
    ];
    layers.forEach((layer, li) => {
      const r = rasters[li];
      const trains = d.spikes[layer.key];
      const nN = trains.length;
      const cellH = r.h / nN;
      const cellW = r.w / T;
      ctx.strokeStyle = C.axis;
      ctx.strokeRect(r.x + 0.5, r.y + 0.5, r.w - 1, r.h - 1);
      let count = 0;
      for (let j = 0; j < nN; j++) {
        const hi = neurons.find((x) => x.layer === layer.key && x.n === j);
        if (hi) {
          ctx.fillStyle = hi.color;
          ctx.globalAlpha = 0.18;
          ctx.fillRect(r.x, r.y + j * cellH, r.w, cellH);
          ctx.globalAlpha = 1;
          ctx.fillRect(r.x - 9, r.y + j * cellH - 1, 7, Math.max(3, cellH + 2));
        }
        ctx.fillStyle = hi ? hi.color : C.spike;
        for (const sp of trains[j]) {
          if (sp > upto) break;
          count++;
          ctx.fillRect(r.x + sp * cellW + cellW * 0.15, r.y + j * cellH, Math.max(1.2, cellW * 0.7), Math.max(1.2, cellH * 0.8));
        }
      }
      const rate = count / (nN * (upto + 1));
      const label = narrow
        ? `${layer.label}: ${nN} neurons (rows) · rate ${rate.toFixed(2)}`
        : `${layer.label}: ${nN} neurons (rows) · ${VO2.int(count)} spikes · rate ${rate.toFixed(2)}`;
      text(label, r.x, r.y - 5, { size: F() - 1, weight: "bold" });
      if (!narrow && li === 1) xAxis(r, xr, [0, 15, 30, 45, 59], String, `second in window ${state.win + 1}`);
    });
    // Membrane potentials: U before the reset, the reset drop, the threshold and the spikes.
    text("membrane potential U of four neurons", memBox.x - (narrow ? 14 : 0), memBox.y - 5,
      { size: F() - 1, weight: "bold" });
    const n = neurons.length;
    const mg = 5;
    const mh = (memBox.h - mg * (n - 1)) / n;
    neurons.forEach((nr, i) => {
      const r = { x: memBox.x, y: memBox.y + i * (mh + mg), w: memBox.w, h: mh };
      const u = nr.u;
      const yr = [Math.min(-0.2, ...u), Math.max(m.threshold * 1.3, ...u)];
      const apart = Math.abs(sy(r, yr, 0) - sy(r, yr, m.threshold)) > F() + 2;
      frame(r, yr, { yticks: apart ? [0, m.threshold] : [m.threshold], fmt: (v) => (v === 0 ? "0" : "θ") });
      ctx.strokeStyle = C.threshold;
      ctx.setLineDash([5, 4]);
      ctx.beginPath(); ctx.moveTo(r.x, sy(r, yr, m.threshold)); ctx.lineTo(r.x + r.w, sy(r, yr, m.threshold)); ctx.stroke();
      ctx.setLineDash([]);
      ctx.save();
      ctx.beginPath(); ctx.rect(r.x, r.y, r.w, r.h); ctx.clip();
      ctx.strokeStyle = nr.color;
      ctx.lineWidth = 1.6;
      ctx.beginPath();
      for (let k = 0; k <= upto; k++) {
        const x = sx(r, xr, k);
        const y = sy(r, yr, u[k]);
        if (k === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
        if (u[k] > m.threshold) ctx.lineTo(x, sy(r, yr, u[k] - m.threshold));
      }
      ctx.stroke();
      ctx.fillStyle = C.spike;
      for (let k = 0; k <= upto; k++) {
        if (u[k] > m.threshold) {
          ctx.beginPath(); ctx.arc(sx(r, xr, k), r.y + 5, 2.6, 0, 2 * Math.PI); ctx.fill();
        }
      }
      ctx.restore();
      const lab = `${nr.layer === "lif1" ? "LIF1" : "LIF2"} neuron ${nr.n + 1}`;
      const lw = state.ctx.measureText(lab).width;
      ctx.fillStyle = "rgba(255,255,255,0.85)";
      ctx.fillRect(r.x + r.w - lw - 20, r.y + r.h - F() - 8, lw + 16, F() + 6);
      text(lab, r.x + r.w - 6, r.y + r.h - 6, { align: "right", size: F() - 1, weight: "bold", color: nr.color });
      if (i === n - 1) xAxis(r, xr, [0, 15, 30, 45, 59], String, `second in window ${state.win + 1}`);
    });
    bottomLegend(area, legendItems, legendH);
  }

  // ---------------------------------------------------------------- stage 5: read-out
  function drawReadout(area, p) {
    const t = state.trace;
    const w = t.windows;
    const s = t.summary;
    const n = w.t_start.length;
    const i = state.win;
    const ctx = state.ctx;
    const narrow = state.narrow;
    const legendItems = [
      { label: "measured VO2 (1 Hz)", color: "#9aa1ab", kind: "line" },
      { label: "measured, window mean", color: C.measured, kind: "ring" },
      { label: "predicted", color: C.pred, kind: "dot" },
      { label: "window shown", color: "rgba(31,95,168,0.3)", kind: "box" },
    ];
    const legendH = legendHeight(legendItems);
    const rates = w.rates_lif2[i];
    const hTop = narrow ? area.h * 0.3 : area.h * 0.38;
    const barW = narrow ? state.W - 56 : state.W * 0.5 - 60;
    const rBar = { x: 44, y: area.y + F() + 10, w: barW, h: hTop - F() - 34 };
    frame(rBar, [0, 1], { yticks: [0, 0.5, 1], fmt: (v) => v.toFixed(1) });
    const bw = rBar.w / rates.length;
    ctx.fillStyle = C.speed;
    rates.forEach((v, j) => {
      ctx.fillRect(rBar.x + j * bw + 0.5, sy(rBar, [0, 1], v), Math.max(1, bw - 1), rBar.y + rBar.h - sy(rBar, [0, 1], v));
    });
    text(narrow ? `LIF2 spike rates, window ${i + 1}` : `LIF2 spike rate per neuron, window ${i + 1} (spikes / ${t.model.window_s} s)`,
      rBar.x - (narrow ? 36 : 0), rBar.y - 6, { size: F() - 1, weight: "bold" });
    text(`neuron 1…${rates.length}`, rBar.x + rBar.w, rBar.y + rBar.h + 4, { align: "right", baseline: "top", size: F() - 1, color: C.muted });

    // The two heads.
    const boxX = narrow ? 10 : rBar.x + rBar.w + 40;
    const boxY = narrow ? rBar.y + rBar.h + F() + 10 : rBar.y;
    const boxW = narrow ? state.W - 20 : state.W - boxX - 12;
    const lines = [
      [`VO2 head → ${VO2.int(w.vo2_pred[i])} mL/min`,
        `measured in this window: ${VO2.int(w.vo2_measured[i])} mL/min`],
      [`VO2max head → ${VO2.int(w.vo2max_pred[i])} mL/min`,
        narrow ? `workout: ${VO2.int(s.vo2max_pred_ml_min)} mL/min = ${VO2.fmt(s.vo2max_pred_ml_kg_min, 1)} mL/kg/min`
          : `workout estimate (mean of ${n}): ${VO2.int(s.vo2max_pred_ml_min)} mL/min = ${VO2.fmt(s.vo2max_pred_ml_kg_min, 1)} mL/kg/min`],
    ];
    const bh = narrow ? 2 * F() + 12 : 2 * F() + 22;
    lines.forEach((ls, j) => {
      const y = boxY + j * (bh + 6);
      ctx.fillStyle = "#fff4e8";
      ctx.fillRect(boxX, y, boxW, bh);
      ctx.strokeStyle = C.pred;
      ctx.strokeRect(boxX + 0.5, y + 0.5, boxW - 1, bh - 1);
      text(ls[0], boxX + 8, y + F() + 3, { weight: "bold" });
      text(ls[1], boxX + 8, y + 2 * F() + (narrow ? 6 : 12), { size: F() - 1, color: C.muted });
    });
    if (!narrow) {
      const yArrow = rBar.y + rBar.h / 2;
      ctx.strokeStyle = C.pred;
      ctx.fillStyle = C.pred;
      ctx.lineWidth = 2;
      ctx.beginPath(); ctx.moveTo(rBar.x + rBar.w + 6, yArrow); ctx.lineTo(boxX - 6, yArrow); ctx.stroke();
      ctx.beginPath(); ctx.moveTo(boxX - 4, yArrow); ctx.lineTo(boxX - 13, yArrow - 5); ctx.lineTo(boxX - 13, yArrow + 5); ctx.fill();
      ctx.lineWidth = 1;
      const extra = `Highest 30 s VO2 measured in this workout: ${VO2.int(s.vo2max_measured_ml_min)} mL/min ` +
        `(${VO2.fmt(s.vo2max_measured_ml_kg_min, 1)} mL/kg/min), a VO2max label only when the workout reaches maximal effort.`;
      wrap(extra, boxX, boxY + 2 * (bh + 6) + F(), boxW, { size: F() - 1, color: C.muted });
    }

    // Whole workout: measured vs predicted.
    const yTop = narrow ? boxY + 2 * (bh + 6) + 4 : area.y + hTop + 8;
    const rPlot = { x: 48, y: yTop + F() + 6, w: state.W - 58, h: 0 };
    rPlot.h = area.y + area.h - legendH - 2 * F() - 12 - rPlot.y;
    const T = t.signals.t[t.signals.t.length - 1];
    const xr = [0, T];
    const centres = w.t_start.map((a, j) => (a + w.t_end[j]) / 2);
    const yr = VO2.range([t.signals.vo2, w.vo2_pred], 0.06);
    frame(rPlot, yr, { nTicks: 3 });
    const shown = p >= 1 ? n : Math.floor(p * n) + 1;
    const x0 = sx(rPlot, xr, w.t_start[i]);
    const x1 = sx(rPlot, xr, w.t_end[i]);
    ctx.fillStyle = "rgba(31,95,168,0.12)";
    ctx.fillRect(x0, rPlot.y, x1 - x0, rPlot.h);
    line(rPlot, xr, yr, t.signals.t, t.signals.vo2, "#9aa1ab", 1.1);
    const upto = centres[Math.min(shown, n) - 1];
    // No line across dropped windows (gaps in the recording).
    const gx = [];
    const gy = [];
    centres.forEach((c, j) => {
      if (j > 0 && c - centres[j - 1] > t.model.stride_s) { gx.push(c - 1); gy.push(null); }
      gx.push(c);
      gy.push(w.vo2_pred[j]);
    });
    line(rPlot, xr, yr, gx, gy, C.pred, 2, upto);
    for (let j = 0; j < Math.min(shown, n); j++) {
      ctx.strokeStyle = C.measured;
      ctx.lineWidth = 1.2;
      ctx.beginPath(); ctx.arc(sx(rPlot, xr, centres[j]), sy(rPlot, yr, w.vo2_measured[j]), 3.2, 0, 2 * Math.PI); ctx.stroke();
      ctx.fillStyle = C.pred;
      ctx.beginPath(); ctx.arc(sx(rPlot, xr, centres[j]), sy(rPlot, yr, w.vo2_pred[j]), 3, 0, 2 * Math.PI); ctx.fill();
    }
    ctx.lineWidth = 1;
    const title = narrow ? `VO2 (mL/min) · R² ${VO2.fmt(s.r2, 2)}, RMSE ${VO2.int(s.rmse)}`
      : `VO2 (mL/min), whole workout · R² ${VO2.fmt(s.r2, 2)}, RMSE ${VO2.int(s.rmse)} mL/min over ${n} windows`;
    text(title, rPlot.x - (narrow ? 40 : 0), rPlot.y - 6, { size: F() - 1, weight: "bold" });
    xAxis(rPlot, xr, minuteTicks(T), (v) => `${Math.round(v / 60)}`, "time (min)");
    bottomLegend(area, legendItems, legendH);
  }

  // ---------------------------------------------------------------- stage 6: compression
  function drawCompression(area, p) {
    const v = state.compression;
    const ctx = state.ctx;
    if (!v) {
      wrap(state.compressionError || "Loading the weights…", 12, area.y + 30, state.W - 24);
      return;
    }
    const [rows, cols] = v.shape;
    const legendItems = [
      { label: "weight > 0", color: VO2.diverging(0.9), kind: "box" },
      { label: "weight < 0", color: VO2.diverging(-0.9), kind: "box" },
      { label: "pruned (removed)", color: C.pruned, kind: "box" },
      { label: "8-bit level", color: C.axis, kind: "tick" },
    ];
    const legendH = legendHeight(legendItems);
    const side = state.narrow
      ? Math.min(state.W - 20, (area.h - legendH) * 0.42)
      : Math.min(area.h - legendH - 2 * F() - 16, state.W * 0.42);
    const g = { x: state.narrow ? (state.W - side) / 2 : 16, y: area.y + F() + 10, w: side, h: side };
    const cell = side / cols;
    let wmax = 1e-9;
    for (const x of v.weights) wmax = Math.max(wmax, Math.abs(x));
    const fade = Math.max(0, Math.min(1, (p - 0.25) / 0.35));
    const snap = Math.max(0, Math.min(1, (p - 0.6) / 0.3));
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) {
        const k = r * cols + c;
        const w = v.weights[k];
        const val = Math.sign(w) * Math.sqrt(Math.abs(w) / wmax);
        if (v.pruned[k] === "1") {
          ctx.fillStyle = C.pruned;
          ctx.fillRect(g.x + c * cell, g.y + r * cell, Math.ceil(cell), Math.ceil(cell));
          ctx.fillStyle = VO2.diverging(val, 1 - fade);
        } else {
          ctx.fillStyle = VO2.diverging(val);
        }
        ctx.fillRect(g.x + c * cell, g.y + r * cell, Math.ceil(cell), Math.ceil(cell));
      }
    }
    ctx.strokeStyle = C.axis;
    ctx.strokeRect(g.x - 0.5, g.y - 0.5, side + 1, side + 1);
    text(`${v.layer}: ${rows} × ${cols} synapses, LIF1 → LIF2`, state.narrow ? 10 : g.x, g.y - 6,
      { size: F() - 1, weight: "bold" });

    // Text and the snapping of a few weights of one row.
    const tx = state.narrow ? 10 : g.x + side + 28;
    const tw = state.narrow ? state.W - 20 : state.W - tx - 12;
    let y = state.narrow ? g.y + side + F() + 10 : g.y + F();
    const pct = (100 * v.removed_in_layer) / (rows * cols);
    y = wrap(`Pruning: ${Math.round(v.prune_amount * 100)}% of all ${VO2.int(v.weights_total)} weights removed` +
      `${v.prune_steps.length > 1 ? ` (${pruneSteps(v)})` : ""}, ` +
      `${VO2.int(v.removed_in_layer)} of these ${VO2.int(rows * cols)} (${pct.toFixed(0)}%).`, tx, y, tw, { weight: fade > 0 ? "bold" : "normal" });
    y = wrap((v.compressed_model ? "Survivors fine-tuned, then 8-bit: " : "8-bit: ") +
      "s = max|w| / 127 per row, q = round(w / s) ∈ −127…127.", tx, y + 2, tw, { weight: snap > 0 ? "bold" : "normal" });
    // Pick the row with the largest weight and its first 3 survivors.
    let row = 0;
    let best = -1;
    for (let r = 0; r < rows; r++) {
      if (v.scales[r] > best) { best = v.scales[r]; row = r; }
    }
    const picks = [];
    for (let c = 0; c < cols && picks.length < (state.narrow ? 2 : 3); c++) if (v.pruned[row * cols + c] === "0") picks.push(c);
    const s = v.scales[row];
    const rulerH = state.narrow ? 28 : 38;
    y += 4;
    text(`row ${row + 1}: s = ${s.toExponential(2)}`, tx, y + F() * 0.3, { size: F() - 1, color: C.muted });
    y += F() * 0.6;
    for (const c of picks) {
      const k = row * cols + c;
      const w = (v.pruned_weights || v.weights)[k];
      const q = v.levels[k];
      const r = { x: tx + 10, y: y + 8, w: Math.min(tw - 20, 300), h: rulerH - 14 };
      const xr = [(q - 3.5) * s, (q + 3.5) * s];
      ctx.strokeStyle = C.axis;
      ctx.beginPath(); ctx.moveTo(r.x, r.y + r.h / 2); ctx.lineTo(r.x + r.w, r.y + r.h / 2); ctx.stroke();
      for (let j = q - 3; j <= q + 3; j++) {
        const x = sx(r, xr, j * s);
        ctx.beginPath(); ctx.moveTo(x, r.y + r.h / 2 - 5); ctx.lineTo(x, r.y + r.h / 2 + 5); ctx.stroke();
      }
      const pos = w + (q * s - w) * snap;
      ctx.fillStyle = C.pred;
      ctx.beginPath(); ctx.arc(sx(r, xr, pos), r.y + r.h / 2, 4.5, 0, 2 * Math.PI); ctx.fill();
      text(`w = ${w.toFixed(4)} → q = ${q}${snap >= 1 ? ` (q·s = ${(q * s).toFixed(4)})` : ""}`, r.x, r.y + r.h + F() - 2, { size: F() - 2 });
      y += rulerH + F() - 4;
    }
    y += 6;
    const c = state.trace.compression;
    const acc = c.before ? `Accuracy on this workout: float model R² ${VO2.fmt(c.before.r2, 3)}, RMSE ${VO2.int(c.before.rmse)} mL/min. ` : "";
    const after = c.after
      ? `Pruned + int8 engine: R² ${VO2.fmt(c.after.r2, 3)}, RMSE ${VO2.int(c.after.rmse)} mL/min.`
      : "No compressed model exists yet: no accuracy after compression to show.";
    y = wrap(acc + after, tx, y + F(), tw, { size: F() - 1, weight: "bold", color: c.after ? C.text : C.sim });
    if (c.after && c.run_figures && !state.narrow) y = wrap(runFigures(c.run_figures), tx, y + 2, tw, { size: F() - 2, color: C.muted });
    const bottom = area.y + area.h - legendH - 2 * F() - 10;
    if (!state.narrow && bottom - y > 90) {
      histogram(v.histogram, { x: tx + 30, y: y + F() + 14, w: tw - 40, h: Math.min(170, bottom - y - F() - 14) }, fade);
    }
    bottomLegend(area, legendItems, legendH);
  }

  /** Histogram of log10 |w| over every prunable weight; the removed ones fade out. */
  function histogram(hg, r, fade) {
    const ctx = state.ctx;
    const edges = hg.log10_edges;
    const n = hg.kept.length;
    const top = Math.max(...hg.kept.map((k, i) => k + hg.removed[i]), 1);
    const xr = [edges[0], edges[n]];
    const bw = r.w / n;
    for (let i = 0; i < n; i++) {
      const x = r.x + i * bw;
      const hk = (hg.kept[i] / top) * r.h;
      const hr = (hg.removed[i] / top) * r.h;
      ctx.fillStyle = C.pruned;
      ctx.fillRect(x, r.y + r.h - hk - hr, bw - 1, hr);
      ctx.fillStyle = `rgba(120,128,140,${1 - fade})`;
      ctx.fillRect(x, r.y + r.h - hk - hr, bw - 1, hr);
      ctx.fillStyle = C.speed;
      ctx.fillRect(x, r.y + r.h - hk, bw - 1, hk);
    }
    ctx.strokeStyle = C.axis;
    ctx.strokeRect(r.x + 0.5, r.y + 0.5, r.w - 1, r.h - 1);
    if (hg.threshold) {
      const tx = sx(r, xr, Math.log10(hg.threshold));
      ctx.strokeStyle = C.threshold;
      ctx.setLineDash([5, 4]);
      ctx.beginPath(); ctx.moveTo(tx, r.y); ctx.lineTo(tx, r.y + r.h); ctx.stroke();
      ctx.setLineDash([]);
      const left = tx > r.x + r.w * 0.6;
      text(`pruning threshold |w| = ${hg.threshold.toPrecision(2)}`, left ? tx - 4 : tx + 4, r.y + F(),
        { size: F() - 2, color: C.threshold, align: left ? "right" : "left" });
    }
    const ticks = [];
    for (let k = Math.ceil(xr[0]); k <= Math.floor(xr[1]); k++) ticks.push(k);
    xAxis(r, xr, ticks, (k) => `1e${k}`, "|w| (log scale)");
    text("all weights by magnitude: kept (blue), removed (grey)", r.x, r.y - 5, { size: F() - 1, weight: "bold" });
    if (!hg.threshold) {
      // Gradual pruning ranks the fine-tuned weights at each step: no single cut in these.
      text("pruned in steps: no single threshold on these starting weights", r.x + 6, r.y + F(),
        { size: F() - 2, color: C.muted });
    }
  }

  window.addEventListener("DOMContentLoaded", init);
})();
