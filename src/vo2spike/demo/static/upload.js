"use strict";
// "Bring your own test": send a recording to /api/upload and plot the model's VO2 against
// the measured one. The server reads, validates and cleans the files (the CLI's code).

(function () {
  const MAX_BYTES = 10 * 1024 * 1024;
  const form = document.getElementById("upload-form");
  const errorBox = document.getElementById("upload-error");
  const resultBox = document.getElementById("upload-result");
  const canvas = document.getElementById("upload-canvas");
  const testSelect = document.getElementById("upload-test");
  let result = null;
  // What each input set (the signals the model was given; age, weight, height and sex are
  // in every one) means, as the page says it.
  const INPUT_SETS = {
    "speed,hr": "speed, heart rate (a watch)",
    "speed,hr,rr": "speed, heart rate, breathing rate (a watch with a breathing-rate estimate)",
    "speed,hr,rr,ve": "speed, heart rate, breathing rate, ventilation (the lab: a mask)",
  };
  // The file inputs of each kind: [form field, input id, what to ask for].
  const FILES = {
    physionet: [["subject_info", "file-subject", "subject-info.csv"], ["test_measure", "file-measure", "test_measure.csv"]],
    k5: [["k5", "file-k5", "a COSMED K5 export"]],
    fit: [["fit", "file-fit", "a FIT activity file"]],
  };

  function kind() {
    return form.querySelector("input[name=kind]:checked").value;
  }

  function showKind() {
    const k = kind();
    form.querySelector(".k5-only").hidden = k !== "k5";
    form.querySelector(".fit-only").hidden = k !== "fit";
    form.querySelector(".pn-only").hidden = k !== "physionet";
  }

  function showError(message) {
    errorBox.hidden = false;
    errorBox.textContent = message;
    resultBox.hidden = true;
    document.body.dataset.upload = "error";
  }

  function setFile(input, file) {
    const dt = new DataTransfer();
    dt.items.add(file);
    input.files = dt.files;
  }

  // Dropped files go to the matching input: by name for the PhysioNet pair.
  const zone = document.getElementById("drop-zone");
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    const files = [...e.dataTransfer.files];
    if (files[0] && /\.fit$/i.test(files[0].name) && kind() !== "fit") {
      form.querySelector("input[name=kind][value=fit]").checked = true;  // a watch file
      showKind();
    }
    if (kind() === "k5" || kind() === "fit") {
      if (files[0]) setFile(document.getElementById(`file-${kind()}`), files[0]);
      const what = kind() === "k5" ? "K5 export" : "FIT activity file";
      zone.textContent = files[0] ? `${what}: ${files[0].name}` : zone.textContent;
      return;
    }
    const names = [];
    for (const f of files) {
      const isSubject = /subject/i.test(f.name);
      setFile(document.getElementById(isSubject ? "file-subject" : "file-measure"), f);
      names.push(`${isSubject ? "subject info" : "measurements"}: ${f.name}`);
    }
    zone.textContent = names.join(" · ") || zone.textContent;
  });

  for (const r of form.querySelectorAll("input[name=kind]")) r.addEventListener("change", showKind);

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    errorBox.hidden = true;
    const body = new FormData();
    body.set("kind", kind());
    let total = 0;
    for (const [name, id, what] of FILES[kind()]) {
      const f = document.getElementById(id).files[0];
      if (!f) { showError(`Choose ${what} first.`); return; }
      total += f.size;
      body.set(name, f, f.name);
    }
    if (total > MAX_BYTES) {
      showError(`The files are ${(total / 1e6).toFixed(1)} MB: the limit is 10 MB.`);
      return;
    }
    if (kind() === "k5") {
      for (const k of ["age", "weight", "height", "sex"]) {
        const input = document.getElementById(`k5-${k}`);
        if (input.value === "") { showError(`Type the person's ${k} for a K5 export.`); input.focus(); return; }
        body.set(k, input.value);
      }
    }
    if (kind() === "fit") {  // optional: the watch file's user profile gives the rest
      for (const k of ["age", "weight", "height", "sex"]) {
        const input = document.getElementById(`fit-${k}`);
        if (input.value !== "") body.set(k, input.value);
      }
    }
    document.body.dataset.upload = "busy";
    const button = document.getElementById("upload-submit");
    button.disabled = true;
    try {
      result = await VO2.fetchJSON("/api/upload", { method: "POST", body });
    } catch (err) {
      showError(err.message);
      return;
    } finally {
      button.disabled = false;
    }
    testSelect.innerHTML = "";
    result.tests.forEach((t, i) => {
      const o = document.createElement("option");
      o.value = String(i);
      o.textContent = t.id_test;
      testSelect.appendChild(o);
    });
    document.getElementById("upload-test-label").hidden = result.tests.length < 2;
    const warnings = document.getElementById("upload-warnings");
    warnings.innerHTML = "";
    for (const w of result.warnings) {
      const li = document.createElement("li");
      li.textContent = w;
      warnings.appendChild(li);
    }
    document.getElementById("upload-warnings-box").hidden = result.warnings.length === 0;
    resultBox.hidden = false;
    show(0);
    document.body.dataset.upload = "done";
  });

  testSelect.addEventListener("change", () => show(Number(testSelect.value)));
  new ResizeObserver(() => { if (result && !resultBox.hidden) show(Number(testSelect.value || 0)); })
    .observe(resultBox);

  function show(i) {
    const t = result.tests[i];
    const m = t.metrics;
    const summary = document.getElementById("upload-summary");
    const parts = [`${t.id_test}: ${t.vo2_pred.length} windows.`];
    if (m) parts.push(`Window VO2: R² ${VO2.fmt(m.r2, 3)}, RMSE ${VO2.int(m.rmse)} mL/min.`);
    else if (!result.labels) {
      parts.push(result.kind === "fit"
        ? "A watch measures no VO2: predictions only, no R² or RMSE."
        : "The recording has no VO2 column: predictions only, no R² or RMSE.");
    }
    const range = t.vo2max_low != null && t.vo2max_high != null
      ? ` (90% interval ${VO2.int(t.vo2max_low)}–${VO2.int(t.vo2max_high)})` : "";
    parts.push(`VO2max estimate ${VO2.int(t.vo2max_pred)} mL/min${range}, ${VO2.fmt(t.vo2max_pred_ml_kg_min, 1)} mL/kg/min` +
      (t.vo2max_measured ? `; highest 30 s VO2 measured ${VO2.int(t.vo2max_measured)} mL/min.` : "."));
    if (result.tests.length > 1 && result.overall) {
      parts.push(`All ${result.n_windows} windows: R² ${VO2.fmt(result.overall.r2, 3)}, RMSE ${VO2.int(result.overall.rmse)} mL/min.`);
    }
    summary.textContent = parts.join(" ");
    const inputs = document.getElementById("upload-inputs");
    inputs.dataset.inputSet = t.input_set || "";
    inputs.textContent = "";
    const head = document.createElement("strong");
    head.textContent = "Inputs: ";
    inputs.append(head, INPUT_SETS[t.input_set] || t.input_set || "unknown",
      " + the person's age, weight, height and sex.");
    summary.dataset.r2 = m ? String(m.r2) : "";
    summary.dataset.rmse = m ? String(m.rmse) : "";
    plot(t);
  }

  function plot(t) {
    const narrow = canvas.parentElement.clientWidth < 640;
    const { ctx, w, h } = VO2.fitCanvas(canvas, narrow ? 300 : 320);
    const f = narrow ? 12 : 13;
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, w, h);
    const legendH = narrow ? 40 : 24;
    const r = { x: 56, y: 24, w: w - 70, h: h - 24 - legendH - 2 * f - 10 };
    const centres = t.t_start.map((a, j) => (a + t.t_end[j]) / 2);
    const t0 = t.t_start[0];
    const xs = centres.map((c) => c - t0);
    const T = Math.max(60, xs[xs.length - 1] + 30);
    const yr = VO2.range([t.vo2_pred, t.vo2_measured], 0.08);
    const sx = (v) => r.x + (v / T) * r.w;
    const sy = (v) => r.y + r.h - ((v - yr[0]) / (yr[1] - yr[0])) * r.h;
    ctx.font = `${f - 1}px system-ui, sans-serif`;
    ctx.fillStyle = "#4f5966";
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    ctx.strokeStyle = "#e3e7ec";
    for (const v of VO2.ticks(yr[0], yr[1], 3)) {
      ctx.beginPath(); ctx.moveTo(r.x, sy(v)); ctx.lineTo(r.x + r.w, sy(v)); ctx.stroke();
      ctx.fillText(VO2.int(v), r.x - 4, sy(v));
    }
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    const step = T > 1200 ? 300 : T > 400 ? 120 : 60;
    for (let v = 0; v <= T; v += step) ctx.fillText(String(Math.round(v / 60)), sx(v), r.y + r.h + 4);
    ctx.textAlign = "right";
    ctx.fillText("time from the first window (min)", r.x + r.w, r.y + r.h + 6 + f);
    ctx.strokeStyle = "#8a93a0";
    ctx.strokeRect(r.x + 0.5, r.y + 0.5, r.w - 1, r.h - 1);
    ctx.textAlign = "left";
    ctx.textBaseline = "alphabetic";
    ctx.fillStyle = "#1d232b";
    ctx.font = `bold ${f - 1}px system-ui, sans-serif`;
    ctx.fillText("VO2 per 60 s window (mL/min), your recording", r.x, r.y - 8);
    ctx.strokeStyle = "#e06c00";
    ctx.lineWidth = 2;
    ctx.beginPath();
    xs.forEach((x, j) => (j ? ctx.lineTo(sx(x), sy(t.vo2_pred[j])) : ctx.moveTo(sx(x), sy(t.vo2_pred[j]))));
    ctx.stroke();
    ctx.lineWidth = 1.2;
    xs.forEach((x, j) => {
      if (t.vo2_measured[j] !== null) {
        ctx.strokeStyle = "#4a4f57";
        ctx.beginPath(); ctx.arc(sx(x), sy(t.vo2_measured[j]), 3.2, 0, 2 * Math.PI); ctx.stroke();
      }
      ctx.fillStyle = "#e06c00";
      ctx.beginPath(); ctx.arc(sx(x), sy(t.vo2_pred[j]), 3, 0, 2 * Math.PI); ctx.fill();
    });
    const measured = t.vo2_measured.some((v) => v !== null);  // a watch measures no VO2
    VO2.legend(ctx, [
      ...(measured ? [{ label: "measured (window mean)", color: "#4a4f57", kind: "ring" }] : []),
      { label: "predicted by the model", color: "#e06c00", kind: "dot" },
    ], 8, h - legendH + 2, w - 16, f - 1);
  }

  showKind();
})();
