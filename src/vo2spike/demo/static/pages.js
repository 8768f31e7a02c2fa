"use strict";
// "How it works" and "Data & methods": fill the pages with this model folder's facts and
// metrics from /api/model. Every figure says which data (SIMULATED or REAL) it comes from.

(function () {
  const page = document.body.dataset.page;

  function el(tag, attrs = {}, children = []) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    for (const c of children) e.append(c);
    return e;
  }

  function dataLabel(kind) {
    if (!kind) return "data of unknown kind";
    const what = /simul/i.test(kind) ? "SIMULATED data" : "REAL data";
    return /^(simulated|real)$/i.test(kind.trim()) ? what : `${what} (${kind})`;
  }

  /** A table: caption, header row, body rows (cells as text). */
  function table(caption, head, rows) {
    const t = el("table", {}, [el("caption", {}, [caption])]);
    t.append(el("thead", {}, [el("tr", {}, head.map((h) => el("th", { scope: "col" }, [h])))]));
    t.append(el("tbody", {}, rows.map((r) => el("tr", {}, r.map((c, i) => (i === 0
      ? el("th", { scope: "row" }, [c]) : el("td", {}, [c])))))));
    return el("div", { class: "table-wrap" }, [t]);
  }

  const get = (o, path) => path.split(".").reduce((a, k) => (a && a[k] !== undefined ? a[k] : null), o);
  const f = (v, d) => (v === null || v === undefined ? "–" : VO2.fmt(v, d));
  const pct = (v) => (v === null || v === undefined ? "–" : `${VO2.fmt(v, 1)}%`);

  // ------------------------------------------------------------------ how it works
  function fillHow(info) {
    const cfg = info.config;
    if (cfg) {
      const m = cfg.model;
      const set = (key, value) => document.querySelectorAll(`[data-fill=${key}]`)
        .forEach((e) => { e.textContent = value; });
      set("tcn", `${m.dilations.length} blocks of ${m.channels} channels, kernel ${m.kernel_size}, ` +
        `dilations ${m.dilations.join(", ")}`);
      set("rf", String(cfg.receptive_field));
      set("hidden", String(m.hidden));
      set("lifparams", `β = ${m.beta}, θ = ${m.threshold}, γ = ${m.gamma}`);
      document.getElementById("params").textContent =
        `${info.parameters ? `${VO2.int(info.parameters)} parameters. ` : ""}Trained on ` +
        `${dataLabel(cfg.data_kind)}` + (cfg.fine_tune ? `, then fine-tuned on ` +
        `${dataLabel(cfg.fine_tune.data_kind)}: ${cfg.fine_tune.n_windows} windows of ` +
        `${cfg.fine_tune.people} people.` : ".");
      const g = m.gamma;
      document.getElementById("surrogate-numbers").textContent =
        `Here θ = ${m.threshold} and γ = ${g}: the backward slope peaks at 1/γ = ${VO2.fmt(1 / g, 1)} ` +
        `at the threshold and is zero for |U − θ| ≥ ${g}; inside, ∂S/∂U = ${VO2.fmt(1 / g, 1)} − ` +
        `${VO2.fmt(1 / (g * g), 1)}·|U − ${m.threshold}|.`;
      drawSurrogate(m.threshold, g);
      new ResizeObserver(() => drawSurrogate(m.threshold, g))
        .observe(document.getElementById("surrogate-canvas").parentElement);
      energy(info);
    } else {
      document.getElementById("params").textContent =
        `This model folder's configuration could not be read (${info.config_error || "unknown"}): ` +
        "the numbers on this page are the architecture's defaults.";
    }
  }

  function drawSurrogate(theta, gamma) {
    const canvas = document.getElementById("surrogate-canvas");
    const narrow = canvas.parentElement.clientWidth < 640;
    const { ctx, w, h } = VO2.fitCanvas(canvas, narrow ? 380 : 230);
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, w, h);
    const panels = narrow
      ? [{ x: 46, y: 30, w: w - 60, h: 120 }, { x: 46, y: 220, w: w - 60, h: 120 }]
      : [{ x: 46, y: 30, w: w / 2 - 70, h: h - 80 }, { x: w / 2 + 40, y: 30, w: w / 2 - 56, h: h - 80 }];
    const xr = [theta - 2.2 * gamma, theta + 2.2 * gamma];
    const plots = [
      { title: "forward: spike S = H(U − θ)", yr: [-0.1, 1.15], fn: (u) => (u > theta ? 1 : 0), ticks: [0, 1] },
      { title: "backward: ∂S/∂U ≈ triangle", yr: [-0.1 / gamma, 1.15 / gamma],
        fn: (u) => Math.max(0, 1 - Math.abs(u - theta) / gamma) / gamma, ticks: [0, 1 / gamma] },
    ];
    plots.forEach((pl, i) => {
      const r = panels[i];
      const X = (u) => r.x + ((u - xr[0]) / (xr[1] - xr[0])) * r.w;
      const Y = (v) => r.y + r.h - ((v - pl.yr[0]) / (pl.yr[1] - pl.yr[0])) * r.h;
      ctx.strokeStyle = "#8a93a0";
      ctx.strokeRect(r.x + 0.5, r.y + 0.5, r.w - 1, r.h - 1);
      ctx.font = "12px system-ui, sans-serif";
      ctx.fillStyle = "#4f5966";
      ctx.textAlign = "right";
      ctx.textBaseline = "middle";
      for (const v of pl.ticks) ctx.fillText(VO2.fmt(v, v % 1 ? 1 : 0), r.x - 4, Y(v));
      ctx.textAlign = "center";
      ctx.textBaseline = "top";
      for (const u of [theta - gamma, theta, theta + gamma]) {
        ctx.fillText(u === theta ? "θ" : u < theta ? "θ−γ" : "θ+γ", X(u), r.y + r.h + 4);
        ctx.strokeStyle = "#e3e7ec";
        ctx.beginPath(); ctx.moveTo(X(u), r.y); ctx.lineTo(X(u), r.y + r.h); ctx.stroke();
      }
      ctx.fillText("membrane potential U", r.x + r.w / 2, r.y + r.h + 20);
      ctx.textAlign = "left";
      ctx.textBaseline = "alphabetic";
      ctx.fillStyle = "#1d232b";
      ctx.font = "bold 13px system-ui, sans-serif";
      ctx.fillText(pl.title, r.x, r.y - 8);
      ctx.strokeStyle = i ? "#e06c00" : "#1f5fa8";
      ctx.lineWidth = 2.2;
      ctx.beginPath();
      for (let k = 0; k <= 400; k++) {
        const u = xr[0] + ((xr[1] - xr[0]) * k) / 400;
        const x = X(u);
        const y = Y(pl.fn(u));
        if (k === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
      }
      ctx.stroke();
      ctx.lineWidth = 1;
    });
  }

  function energy(info) {
    const box = document.getElementById("energy");
    const m = info.config.model;
    const ev = info.metrics.evaluation;
    const rates = ev && ev.spike_rates;
    const T = info.config.window_s;
    const tcn = m.dilations.reduce((acc, _, i) => acc + (i === 0 ? m.n_inputs : m.channels) * m.channels * m.kernel_size, 0) +
      (m.n_inputs !== m.channels ? m.n_inputs * m.channels : 0);
    const lif1 = m.channels * m.hidden;
    const lif2 = m.hidden * m.hidden;
    const rows = [
      ["TCN (4 causal convolutions)", VO2.int(tcn * T), `${VO2.int(tcn * T)} MACs (dense inputs)`],
      ["layer 1 synapses (TCN → LIF1)", VO2.int(lif1 * T), `${VO2.int(lif1 * T)} MACs (its input is not spikes)`],
    ];
    if (rates) {
      rows.push(["layer 2 synapses (LIF1 → LIF2)", VO2.int(lif2 * T),
        `${VO2.int(rates.lif1 * lif2 * T)} additions (only when an LIF1 neuron fired: ${VO2.fmt(rates.lif1 * 100, 1)}% of neuron-steps)`]);
    } else {
      rows.push(["layer 2 synapses (LIF1 → LIF2)", VO2.int(lif2 * T), "spike rate not measured (no evaluation/metrics.json)"]);
    }
    rows.push(["heads (on the 64 rates)", VO2.int(2 * m.hidden), `${VO2.int(2 * m.hidden)} MACs`]);
    box.append(table(`Operations per 60 s window, ANN twin vs spiking model` +
      (rates ? `; spike rates measured on ${dataLabel(ev.data_kind)}, test split: LIF1 ` +
        `${VO2.fmt(rates.lif1, 3)}, LIF2 ${VO2.fmt(rates.lif2, 3)}` : ""),
      ["part", "ANN twin (MACs)", "spiking model"], rows));
    const p = document.createElement("p");
    const weights = tcn + lif1 + lif2 + 2 * m.hidden;
    p.textContent = `Pruning 70% of the ${VO2.int(weights)} convolution and linear weights ` +
      `leaves ${VO2.int(Math.round(weights * 0.3))}; at 8 bits each they take ` +
      `${VO2.fmt((weights * 0.3) / 1024, 1)} KiB instead of ${VO2.fmt((weights * 4) / 1024, 1)} KiB ` +
      `as 32-bit floats (plus the positions of the kept weights). ` +
      (info.compression ? "The compressed model's measured accuracy is on the demo's stage 6." :
        "No compressed model exists yet in this model folder, so no accuracy after compression is shown.");
    box.append(p);
    const PRECISIONS = { float: "float32", int8: "int8 (as the engines run it)",
      int8_mult_leak: "int8, leak by multiply (the earlier engine)" };
    const en = info.compression && info.compression.energy;
    if (en) {
      const names = { snn: "spiking model", twin_dense: "ANN twin, dense",
        twin_skip_zeros: "ANN twin, zero activations skipped" };
      const precs = Object.keys(en.nj);
      const rows = Object.keys(names).filter((k) => en.nj[precs[0]][k]).map((k) =>
        [names[k], ...precs.map((pr) => `${VO2.fmt(en.nj[pr][k].spiking_layers, 1)} / ${VO2.fmt(en.nj[pr][k].total, 1)}`)]);
      box.append(table(`Estimated for the compressed model (70% pruned; operations counted on the SIMULATED test split; mean spike ` +
        `rate ${VO2.fmt(en.spike_rates.mean * 100, 1)}%): energy per window in nJ, spiking layers / ` +
        `whole network, arithmetic only (45 nm per-operation energies, Horowitz 2014)`,
        ["model", ...precs.map((pr) => PRECISIONS[pr] || pr)], rows));
    }
  }

  // ------------------------------------------------------------------ data & methods
  function fillData(info) {
    const out = document.getElementById("results");
    const labels = info.labels || {};
    const ev = info.metrics.evaluation;
    const cv = info.metrics.real_cv;
    document.getElementById("results-source").textContent =
      `Read from ${info.model_dir}: evaluation/metrics.json and real_cv/metrics.json.`;
    if (ev && ev.models) {
      const rows = Object.entries(ev.models).map(([k, r]) => [labels[k] || k,
        f(get(r, "vo2_ml_min.r2"), 3), f(get(r, "vo2_ml_min.rmse"), 0), f(get(r, "vo2_ml_min.mae"), 0),
        f(get(r, "vo2max_ml_min.r2"), 3), f(get(r, "vo2max_ml_min.rmse"), 0),
        f(get(r, "vo2max_ml_kg_min.rmse"), 2), pct(get(r, "vo2max_ml_min.mape"))]);
      out.append(el("h3", {}, ["Person-disjoint test split"]));
      out.append(table(`${dataLabel(ev.data_kind)}; ${ev.split || ""}`,
        ["model", "VO2 R²", "VO2 RMSE (mL/min)", "VO2 MAE (mL/min)", "VO2max R²",
          "VO2max RMSE (mL/min)", "VO2max RMSE (mL/kg/min)", "VO2max MAPE"], rows));
      if (ev.spike_rates) {
        out.append(el("p", {}, [`Spike rates (fraction of neuron-steps that fire), ${dataLabel(ev.data_kind)}: ` +
          Object.entries(ev.spike_rates).map(([k, v]) => `${k.toUpperCase()} ${VO2.fmt(v, 3)}`).join(", ")]));
      }
    } else {
      out.append(el("p", {}, ["This model folder has no evaluation/metrics.json: run " +
        "`vo2spike evaluate --model DIR --data DIR` (or `vo2spike run`) to create it."]));
    }
    if (cv && cv.models) {
      const rows = Object.entries(cv.models).map(([k, r]) => [labels[k] || k,
        f(get(r, "vo2_ml_min.r2"), 3), f(get(r, "vo2_ml_min.rmse"), 0), f(get(r, "vo2_ml_min.mae"), 0),
        pct(get(r, "vo2max_ml_min.mape")), f(get(r, "vo2max_ml_kg_min.rmse"), 2), pct(get(r, "peak_window_vo2_mape"))]);
      out.append(el("h3", {}, ["Real recordings: leave-one-person-out"]));
      out.append(table(`${dataLabel(cv.data_kind)}; ${cv.n_people} people, ${cv.n_sessions} sessions, ` +
        `${cv.n_windows} windows, each person held out in turn`,
        ["model", "VO2 R²", "VO2 RMSE (mL/min)", "VO2 MAE (mL/min)", "VO2max MAPE",
          "VO2max RMSE (mL/kg/min)", "peak-window VO2 MAPE"], rows));
      document.getElementById("real-summary").textContent =
        `In this model folder: ${cv.n_people} people, ${cv.n_sessions} sessions, ${cv.n_windows} windows ` +
        `(REAL data; results below).`;
    } else {
      out.append(el("p", {}, ["This model folder has no real_cv/metrics.json: no leave-one-person-out " +
        "results on real recordings (`vo2spike run` or `vo2spike crossval` writes them)."]));
    }
    const c = info.compression;
    out.append(el("h3", {}, ["Compression: float → pruned + int8"]));
    if (c) {
      const row = (what, kind, b, a) => [what, kind, `${f(b.vo2_r2, 3)} → ${f(a.vo2_r2, 3)}`,
        `${f(b.vo2_rmse, 0)} → ${f(a.vo2_rmse, 0)}`, `${f(b.vo2max_r2, 3)} → ${f(a.vo2max_r2, 3)}`,
        `${f(b.vo2max_rmse, 0)} → ${f(a.vo2max_rmse, 0)}`];
      const rows = [row("person-disjoint test split", dataLabel(c.data_kind), c.before, c.after)];
      if (c.real_before) {
        rows.push(row(`held out by person (${c.real_people} people)`, dataLabel(c.real_data_kind),
          c.real_before, c.real_after));
      }
      const sp = c.sparsity == null ? "" : `${Math.round(c.sparsity * 100)}% of the weights pruned, `;
      out.append(table(`${sp}integer-only int8; read from ${c.file}`,
        ["split", "data", "VO2 R²", "VO2 RMSE (mL/min)", "VO2max R²", "VO2max RMSE (mL/min)"], rows));
    } else {
      out.append(el("p", {}, [info.compression_error || "This model folder has no compressed model " +
        "(compressed/compression.json): `vo2spike compress` (or `vo2spike run`) writes it."]));
    }
  }

  async function init() {
    let info;
    try {
      info = await VO2.fetchJSON("/api/model");
    } catch (e) {
      VO2.showModelError(e.message);
      document.body.dataset.state = "error";
      return;
    }
    if (info.model_error) VO2.showModelError(info.model_error);
    if (page === "how") fillHow(info);
    else fillData(info);
    document.body.dataset.state = "ready";
  }

  window.addEventListener("DOMContentLoaded", init);
})();
