// The dashboard page: registry table, activate / roll back (staff), a
// prediction form, and live metrics from the /ws/metrics/ websocket drawn
// with the vendored Chart.js. Talks only to this server's own API and to
// the websocket URL the page names; nothing else leaves the browser.
//
// For tests: window.dashboard = {charts, rollups, system, messages, ...};
// charts are keyed by canvas id ("chart-rps", ...), rollups is a Map keyed
// by (model, version, experiment, arm, minute), messages counts websocket
// messages received and messageTypes counts those handled by type
// ({snapshot: 1, rollups: 3, experiments: 2, ...}); experiments is the
// latest list of experiment statuses (one per model).
(function () {
  "use strict";
  const $ = (sel) => document.querySelector(sel);
  const staff = document.body.dataset.staff === "1";
  const hasCharts = typeof window.Chart === "function";
  const MINUTE = 60000;
  // Reconnect delays: exponential from 1 s, capped at 30 s, with +-25 %
  // jitter so that many tabs do not reconnect in step after a restart.
  const BACKOFF_MIN_S = 1;
  const BACKOFF_MAX_S = 30;
  // Minutes per x tick, the first that gives at most ~6 ticks.
  const TICK_STEPS = [1, 2, 3, 5, 10, 15, 30, 60, 120, 240];
  const PALETTE = ["#2563eb", "#d97706", "#059669", "#7c3aed", "#db2777",
    "#0891b2", "#65a30d", "#b45309", "#4f46e5", "#be123c"];
  const NO_VERSION = "#6b7280";

  let nFeatures = 10;

  const dashboard = {
    charts: {},
    rollups: new Map(),
    system: [],
    messages: 0,
    windowMinutes: 15,
    rollupInterval: null,
    // Server clock minus this browser's clock, ms (from the snapshot).
    clockSkew: 0,
    models: [],
    activeVersion: null,
    lastMessageAt: null,
    messageTypes: {},
    experiments: [],
    // "http" (GET /ab-test/status at load) or "ws" (snapshot, broadcast).
    experimentsSource: null,
  };
  window.dashboard = dashboard;

  // --- formatting -----------------------------------------------------------

  const pad2 = (n) => String(n).padStart(2, "0");

  function fmtTime(ms, seconds) {
    const d = new Date(ms);
    const hm = `${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
    return seconds ? `${hm}:${pad2(d.getSeconds())}` : hm;
  }

  function fmtNum(value, digits) {
    if (value == null || !Number.isFinite(value)) return "–";
    return value.toLocaleString(undefined, {
      minimumFractionDigits: digits, maximumFractionDigits: digits,
    });
  }

  function fmtRate(value) {
    if (value == null || !Number.isFinite(value)) return "–";
    return value >= 10 ? fmtNum(value, 0) : value >= 1 ? fmtNum(value, 1) : fmtNum(value, 2);
  }

  const fmtPct = (fraction, digits = 1) =>
    fraction == null || !Number.isFinite(fraction) ? "–" : `${fmtNum(fraction * 100, digits)} %`;

  function fmtBytes(n) {
    if (n == null || !Number.isFinite(n)) return "–";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return `${fmtNum(n, i === 0 ? 0 : 1)} ${units[i]}`;
  }

  const versionLabel = (v) => v || "(no version)";

  // --- HTTP API ---------------------------------------------------------------

  function csrfToken() {
    const input = document.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  async function api(method, url, body) {
    const init = { method, headers: { "Accept": "application/json" } };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    if (method !== "GET") init.headers["X-CSRFToken"] = csrfToken();
    try {
      const response = await fetch(url, init);
      const data = await response.json().catch(() => ({}));
      return { ok: response.ok, status: response.status, data };
    } catch (error) {
      return { ok: false, status: 0, data: { error: { code: "network", message: String(error.message || error) } } };
    }
  }

  function errorText(result) {
    const e = result.data && result.data.error;
    return e ? `${result.status} ${e.code}: ${e.message}` : `HTTP ${result.status}`;
  }

  async function loadHealth() {
    const result = await api("GET", "/health");
    const h = result.data || {};
    const el = $("#health");
    if (!h.status) { el.className = "bad"; el.textContent = `unreachable (${errorText(result)})`; return; }
    el.className = h.status === "healthy" ? "ok" : h.status === "degraded" ? "warn" : "bad";
    el.textContent = `${h.status}; database ${h.database && h.database.ok ? "up" : "down"}; ` +
      `Redis ${h.redis && h.redis.ok ? "up" : "down (not needed for predictions)"}; ` +
      `active version ${h.active_version || "none"}` +
      (h.problems && h.problems.length ? `; ${h.problems.join("; ")}` : "");
  }

  function cell(row, text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    row.appendChild(td);
    return td;
  }

  async function loadModels() {
    const result = await api("GET", "/models");
    const tbody = $("#versions tbody");
    tbody.textContent = "";
    if (!result.ok) { $("#action-result").textContent = errorText(result); return; }
    const data = result.data;
    dashboard.models = data.models || [];
    dashboard.activeVersion = data.active_version || null;
    $("#model-name").textContent = `(${data.model})`;
    const select = $("#predict-version");
    const chosen = select.value;
    select.length = 1;
    for (const v of dashboard.models) {
      const row = document.createElement("tr");
      row.dataset.version = v.version;
      const name = cell(row, "");
      name.append(swatch(v.version), v.version);
      cell(row, v.name || "");
      cell(row, v.model_type);
      cell(row, v.accuracy == null ? "–" : v.accuracy.toFixed(4));
      cell(row, v.status, v.status === "ready" ? "ok" : "bad");
      cell(row, v.is_active ? "active" : "");
      cell(row, v.loaded ? "yes" : "");
      const actions = cell(row, "");
      if (staff && !v.is_active && v.status === "ready") {
        const button = document.createElement("button");
        button.type = "button";
        button.textContent = "Activate";
        button.className = "activate";
        button.addEventListener("click", () => activate(v.version));
        actions.appendChild(button);
      }
      tbody.appendChild(row);
      select.add(new Option(v.version, v.version));
      if (v.is_active && v.n_features) nFeatures = v.n_features;
    }
    if ([...select.options].some((o) => o.value === chosen)) select.value = chosen;
    $("#rollback-row").hidden = !staff;
    buildInputs();
    scheduleRender();
  }

  async function activate(version) {
    if (!confirm(`Activate ${version}?`)) return;
    const result = await api("POST", `/models/${encodeURIComponent(version)}/activate`, {});
    $("#action-result").textContent = result.ok
      ? `${result.data.status}: ${result.data.previous_version || "-"} -> ${result.data.active_version}`
      : errorText(result);
    await Promise.all([loadModels(), loadHealth()]);
  }

  async function rollback() {
    if (!confirm("Roll back to the previous version?")) return;
    const result = await api("POST", "/models/rollback", {});
    $("#action-result").textContent = result.ok
      ? `rolled back: ${result.data.previous_version} -> ${result.data.active_version}`
      : errorText(result);
    await Promise.all([loadModels(), loadHealth()]);
  }

  function buildInputs() {
    const box = $("#feature-inputs");
    if (box.children.length === nFeatures) return;
    box.textContent = "";
    for (let i = 0; i < nFeatures; i++) {
      const input = document.createElement("input");
      input.type = "number";
      input.step = "any";
      input.required = true;
      input.name = `f${i}`;
      input.setAttribute("aria-label", `feature ${i}`);
      input.value = ((i + 1) / 10).toFixed(1);
      box.appendChild(input);
    }
  }

  function randomize() {
    for (const input of document.querySelectorAll("#feature-inputs input")) {
      input.value = (Math.random() * 4 - 2).toFixed(3);
    }
  }

  async function predict(event) {
    event.preventDefault();
    const features = [...document.querySelectorAll("#feature-inputs input")].map((i) => Number(i.value));
    const body = { features };
    const version = $("#predict-version").value;
    if (version) body.model_version = version;
    const submit = $("#predict-submit");
    submit.disabled = true;
    const result = await api("POST", "/predict", body);
    submit.disabled = false;
    const out = $("#predict-result");
    if (!result.ok) { out.className = "bad"; out.textContent = errorText(result); return; }
    const r = result.data;
    out.className = "ok";
    const probs = r.probabilities
      ? Object.entries(r.probabilities).map(([k, p]) => `${k}: ${p.toFixed(4)}`).join(", ")
      : "n/a";
    const routing = r.routing ? r.routing.reason : "?";
    out.textContent = `prediction ${r.prediction} (confidence ${r.confidence == null ? "n/a" : r.confidence.toFixed(4)})\n` +
      `probabilities ${probs}\nserved by ${r.model}:${r.model_version} (${routing}) in ${r.processing_time_ms} ms\n` +
      `request id ${r.request_id}`;
    loadModels();
  }

  // --- live data ----------------------------------------------------------------

  const serverNow = () => Date.now() + dashboard.clockSkew;
  const rollupKey = (r) => [r.model, r.version, r.experiment || "", r.arm || "", r.t].join("\u0001");

  // The x range: the window's first minute to the current minute's start,
  // so the newest bucket sits on the right edge.
  function xRange() {
    const max = Math.floor(serverNow() / MINUTE) * MINUTE;
    return { min: max - dashboard.windowMinutes * MINUTE, max };
  }

  function prune() {
    const { min } = xRange();
    for (const [key, r] of dashboard.rollups) if (r.t < min) dashboard.rollups.delete(key);
    const system = dashboard.system.filter((s) => s.t >= min);
    dashboard.system.length = 0;
    dashboard.system.push(...system);
  }

  function addRollups(rows) {
    for (const r of rows || []) {
      if (typeof r.t !== "number") r.t = Date.parse(r.minute);
      dashboard.rollups.set(rollupKey(r), r);
    }
  }

  function addSystem(rows) {
    const seen = new Set(dashboard.system.map((s) => `${s.host}@${s.t}`));
    for (const s of rows || []) {
      if (typeof s.t !== "number") s.t = Date.parse(s.sampled_at);
      if (!seen.has(`${s.host}@${s.t}`)) { dashboard.system.push(s); seen.add(`${s.host}@${s.t}`); }
    }
    dashboard.system.sort((a, b) => a.t - b.t);
  }

  function handleMessage(msg) {
    if (msg.type === "snapshot") {
      if (msg.window_minutes) dashboard.windowMinutes = msg.window_minutes;
      if (typeof msg.server_time === "number") dashboard.clockSkew = msg.server_time * 1000 - Date.now();
      if (msg.rollup_interval) dashboard.rollupInterval = msg.rollup_interval;
      // A snapshot is the whole window: forget what came before it.
      dashboard.rollups.clear();
      dashboard.system.length = 0;
      addRollups(msg.rollups);
      addSystem(msg.system);
      if (Array.isArray(msg.experiments)) setExperiments(msg.experiments, "ws");
    } else if (msg.type === "rollups") {
      addRollups(msg.rollups);
    } else if (msg.type === "system") {
      addSystem(msg.system);
    } else if (msg.type === "experiments") {
      setExperiments(msg.experiments, "ws");
    } else if (msg.type === "error" && msg.error) {
      $("#ws-status").title = `${msg.error.code}: ${msg.error.message}`;
      return;
    } else {
      return;
    }
    dashboard.messageTypes[msg.type] = (dashboard.messageTypes[msg.type] || 0) + 1;
    dashboard.lastMessageAt = Date.now();
    scheduleRender();
  }

  // Requests/s of one minute: the current minute has lasted only so long.
  function perSecond(count, t, now) {
    const elapsed = t + MINUTE > now ? Math.min(60, Math.max(1, (now - t) / 1000)) : 60;
    return count / elapsed;
  }

  // Sums of rollups by a key, latency percentiles weighted by request count
  // (an approximation good enough for display; /metrics merges histograms).
  function accumulate(into, r) {
    const a = into || {
      count: 0, ok: 0, errors: 0, latW: 0, p50: 0, p99: 0,
      labels: 0, correct: 0, confN: 0, confSum: 0,
    };
    const count = r.count || 0;
    a.count += count;
    a.ok += r.ok != null ? r.ok : count - (r.errors || 0);
    a.errors += r.errors || 0;
    const lat = r.latency_ms || {};
    if (count > 0 && lat.p50 != null) {
      a.latW += count;
      a.p50 += lat.p50 * count;
      a.p99 += (lat.p99 != null ? lat.p99 : lat.p50) * count;
    }
    if (r.labels > 0 && r.accuracy != null) {
      a.labels += r.labels;
      a.correct += r.accuracy * r.labels;
    }
    if (r.mean_confidence != null) {
      const n = r.ok != null ? r.ok : count;
      a.confN += n;
      a.confSum += r.mean_confidence * n;
    }
    return a;
  }

  function finish(a) {
    return {
      ...a,
      p50: a.latW ? a.p50 / a.latW : null,
      p99: a.latW ? a.p99 / a.latW : null,
      errorRate: a.count ? a.errors / a.count : null,
      feedbackAccuracy: a.labels ? a.correct / a.labels : null,
      meanConfidence: a.confN ? a.confSum / a.confN : null,
    };
  }

  // Versions in a stable order: the registry's, then any others seen.
  function versionOrder(extra) {
    const order = dashboard.models.map((m) => m.version);
    for (const v of [...extra].sort()) if (!order.includes(v)) order.push(v);
    return order;
  }

  const colors = new Map();
  function colorOf(version) {
    if (!version) return NO_VERSION;
    if (!colors.has(version)) colors.set(version, PALETTE[colors.size % PALETTE.length]);
    return colors.get(version);
  }

  function swatch(version) {
    const span = document.createElement("span");
    span.className = "swatch";
    span.style.background = colorOf(version);
    return span;
  }

  function collect() {
    const now = serverNow();
    const { min, max } = xRange();
    const perVersion = new Map(); // version -> Map(t -> acc)
    const totals = new Map(); // version -> acc over the window
    const shares = new Map(); // "version\u0001experiment\u0001arm" -> count
    const minuteTotals = new Map(); // t -> requests of all versions
    let all = null;
    let recent = 0;
    for (const r of dashboard.rollups.values()) {
      if (r.t < min || r.t > max) continue;
      // Shadow answers are copies, not requests anyone made: they show in
      // the Experiments panel, not in the traffic figures.
      if (r.shadow || r.arm === "shadow") continue;
      const v = r.version || "";
      if (!perVersion.has(v)) perVersion.set(v, new Map());
      const minutes = perVersion.get(v);
      minutes.set(r.t, accumulate(minutes.get(r.t), r));
      totals.set(v, accumulate(totals.get(v), r));
      all = accumulate(all, r);
      minuteTotals.set(r.t, (minuteTotals.get(r.t) || 0) + (r.count || 0));
      // The A/B split is of the requests a version served.
      if (v) {
        const shareKey = [v, r.experiment || "", r.arm || ""].join("\u0001");
        shares.set(shareKey, (shares.get(shareKey) || 0) + (r.count || 0));
      }
      if (r.t >= max - MINUTE) recent += r.count || 0;
    }
    // The summary rate: the previous minute and the current one so far.
    const recentSeconds = 60 + Math.min(60, Math.max(0, (now - max) / 1000));
    return {
      now, min, max, perVersion, totals, shares, minuteTotals,
      all: all && finish(all), recentRate: recent / recentSeconds,
    };
  }

  // --- charts -------------------------------------------------------------------

  function timeAxis(min, max) {
    const minutes = (max - min) / MINUTE;
    const step = TICK_STEPS.find((s) => minutes / s <= 6) || 240;
    return {
      type: "linear",
      min,
      max,
      ticks: {
        stepSize: step * MINUTE,
        includeBounds: false,
        maxRotation: 0,
        callback: (value) => fmtTime(value),
      },
      grid: { color: "#eef0f3" },
    };
  }

  function lineOptions(yTitle, yTicks) {
    return {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      parsing: false,
      normalized: true,
      interaction: { mode: "nearest", axis: "x", intersect: false },
      scales: {
        x: timeAxis(0, MINUTE),
        y: { beginAtZero: true, title: { display: !!yTitle, text: yTitle }, ticks: yTicks || {}, grid: { color: "#eef0f3" } },
      },
      plugins: {
        legend: { position: "bottom", labels: { boxWidth: 12, boxHeight: 2 } },
        tooltip: {
          callbacks: {
            title: (items) => items.length ? `${fmtTime(items[0].parsed.x)}–${fmtTime(items[0].parsed.x + MINUTE)}` : "",
          },
        },
      },
    };
  }

  function makeChart(id, config) {
    const canvas = document.getElementById(id);
    if (!canvas) return null;
    const chart = new window.Chart(canvas, config);
    dashboard.charts[id] = chart;
    return chart;
  }

  function createCharts() {
    if (!hasCharts) {
      for (const box of document.querySelectorAll(".chart-box")) {
        box.textContent = "Charts unavailable: static/vendor/chartjs/chart.umd.min.js did not load.";
        box.classList.add("missing");
      }
      return;
    }
    window.Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
    window.Chart.defaults.color = "#4b5563";
    const rpsOptions = lineOptions("req/s");
    rpsOptions.plugins.tooltip.callbacks.label = (c) => `${c.dataset.label}: ${fmtRate(c.parsed.y)} req/s`;
    makeChart("chart-rps", { type: "line", data: { datasets: [] }, options: rpsOptions });

    const latencyOptions = lineOptions("ms");
    latencyOptions.plugins.tooltip.callbacks.label = (c) => `${c.dataset.label}: ${fmtNum(c.parsed.y, 1)} ms`;
    makeChart("chart-latency", { type: "line", data: { datasets: [] }, options: latencyOptions });

    const errorOptions = lineOptions("%", { callback: (v) => `${v} %` });
    errorOptions.scales.y.suggestedMax = 5;
    errorOptions.plugins.tooltip.callbacks.label = (c) => `${c.dataset.label}: ${fmtNum(c.parsed.y, 2)} %`;
    makeChart("chart-errors", { type: "line", data: { datasets: [] }, options: errorOptions });

    const systemOptions = lineOptions("%", { callback: (v) => `${v} %` });
    systemOptions.scales.y.max = 100;
    systemOptions.plugins.tooltip.callbacks.title = (items) => items.length ? fmtTime(items[0].parsed.x, true) : "";
    systemOptions.plugins.tooltip.callbacks.label = (c) => `${c.dataset.label}: ${fmtNum(c.parsed.y, 1)} %`;
    makeChart("chart-system", { type: "line", data: { datasets: [] }, options: systemOptions });

    makeChart("chart-ab", {
      type: "bar",
      data: { labels: [], datasets: [{ label: "share of requests", data: [], backgroundColor: [] }] },
      options: {
        indexAxis: "y",
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        scales: {
          x: { min: 0, max: 100, ticks: { callback: (v) => `${v} %` }, grid: { color: "#eef0f3" } },
          y: { grid: { display: false } },
        },
        plugins: {
          legend: { display: false },
          tooltip: { callbacks: { label: (c) => `${fmtNum(c.parsed.x, 1)} % of requests` } },
        },
      },
    });
  }

  function lineDataset(label, color, data, extra) {
    return {
      label, data,
      borderColor: color, backgroundColor: color,
      borderWidth: 2, pointRadius: 2.5, pointHoverRadius: 4, tension: 0, spanGaps: false,
      // The newest minute sits on the right edge: draw its point whole.
      clip: 6,
      ...extra,
    };
  }

  function setDatasets(id, datasets, min, max) {
    const chart = dashboard.charts[id];
    if (!chart) return;
    chart.data.datasets = datasets;
    if (min != null) {
      chart.options.scales.x.min = min;
      chart.options.scales.x.max = max;
      chart.options.scales.x.ticks.stepSize = timeAxis(min, max).ticks.stepSize;
    }
    chart.update("none");
  }

  function renderCharts(c) {
    const versions = versionOrder(c.perVersion.keys()).filter((v) => c.perVersion.has(v));
    const rps = [];
    const latency = [];
    const errors = [];
    for (const v of versions) {
      const minutes = c.perVersion.get(v);
      const color = colorOf(v);
      const rpsPoints = [];
      // No rollup for a minute means no request in it: 0 req/s, not a gap.
      for (let t = c.min; t <= c.max; t += MINUTE) {
        const a = minutes.get(t);
        rpsPoints.push({ x: t, y: a ? perSecond(a.count, t, c.now) : 0 });
      }
      rps.push(lineDataset(versionLabel(v), color, rpsPoints));
      const ts = [...minutes.keys()].sort((a, b) => a - b);
      const p50 = [];
      const p99 = [];
      const rate = [];
      for (const t of ts) {
        const a = finish(minutes.get(t));
        if (a.p50 != null) { p50.push({ x: t, y: a.p50 }); p99.push({ x: t, y: a.p99 }); }
        // Requests that failed before a version was chosen are all errors:
        // show them as a share of all requests of the minute instead.
        const denominator = v ? a.count : c.minuteTotals.get(t);
        if (denominator) rate.push({ x: t, y: (a.errors / denominator) * 100 });
      }
      // Latency is about serving a model: not drawn for "(no version)".
      if (v) {
        latency.push(lineDataset(`${versionLabel(v)} p50`, color, p50));
        latency.push(lineDataset(`${versionLabel(v)} p99`, color, p99, { borderDash: [5, 4], pointStyle: "rectRot" }));
      }
      errors.push(lineDataset(v ? v : "(no version, % of all)", color, rate));
    }
    setDatasets("chart-rps", rps, c.min, c.max);
    setDatasets("chart-latency", latency, c.min, c.max);
    setDatasets("chart-errors", errors, c.min, c.max);
  }

  function renderSummary(c) {
    const a = c.all;
    $("#window-minutes").textContent = dashboard.windowMinutes;
    $("#sum-rps").textContent = fmtRate(a ? c.recentRate : 0);
    $("#sum-latency").textContent = a && a.p50 != null ? `${fmtNum(a.p50, 1)} / ${fmtNum(a.p99, 1)} ms` : "–";
    $("#sum-errors").textContent = a ? fmtPct(a.errorRate, 2) : "–";
    $("#sum-count").textContent = a ? fmtNum(a.count, 0) : "0";
    const interval = dashboard.rollupInterval;
    $("#window-note").lastChild.textContent = interval
      ? ` minutes, per minute; recomputed every ${fmtNum(interval, interval < 10 ? 1 : 0)} s.`
      : " minutes, per minute.";
  }

  function renderComparison(c) {
    const tbody = $("#comparison tbody");
    tbody.textContent = "";
    const total = c.all ? c.all.count : 0;
    const registered = new Map(dashboard.models.map((m) => [m.version, m]));
    const versions = versionOrder(c.totals.keys());
    if (!versions.length) {
      const row = document.createElement("tr");
      row.className = "empty";
      cell(row, "No versions registered.").colSpan = 9;
      tbody.appendChild(row);
      return;
    }
    for (const v of versions) {
      const a = c.totals.has(v) ? finish(c.totals.get(v)) : null;
      const m = registered.get(v);
      const row = document.createElement("tr");
      row.dataset.version = v;
      const name = cell(row, "");
      name.append(swatch(v), versionLabel(v));
      if (m && m.version === dashboard.activeVersion) {
        const badge = document.createElement("span");
        badge.className = "badge";
        badge.textContent = "active";
        name.append(" ", badge);
      }
      cell(row, fmtNum(a ? a.count : 0, 0), "num");
      cell(row, total ? fmtPct((a ? a.count : 0) / total) : "–", "num");
      cell(row, a ? fmtNum(a.p50, 1) : "–", "num");
      cell(row, a ? fmtNum(a.p99, 1) : "–", "num");
      const err = cell(row, a ? fmtPct(a.errorRate, 2) : "–", "num");
      if (a && a.errorRate > 0.05) err.classList.add("bad");
      cell(row, m && m.accuracy != null ? fmtNum(m.accuracy, 3) : "–", "num");
      cell(row, a && a.feedbackAccuracy != null ? `${fmtNum(a.feedbackAccuracy, 3)} (${fmtNum(a.labels, 0)})` : "–", "num");
      cell(row, a && a.meanConfidence != null ? fmtNum(a.meanConfidence, 3) : "–", "num");
      tbody.appendChild(row);
    }
  }

  function renderAb(c) {
    const entries = [...c.shares.entries()].map(([key, count]) => {
      const [version, experiment, arm] = key.split("\u0001");
      return { version, experiment, arm, count };
    });
    const total = entries.reduce((s, e) => s + e.count, 0);
    const experiments = new Set(entries.filter((e) => e.arm).map((e) => e.experiment));
    const byArm = experiments.size > 0;
    // Without an experiment, arms are "": the share per version.
    const groups = new Map();
    for (const e of entries) {
      const key = byArm
        ? `${versionLabel(e.version)} · ${e.arm ? (experiments.size > 1 ? `${e.experiment}/${e.arm}` : e.arm) : "no arm"}`
        : versionLabel(e.version);
      const g = groups.get(key) || { version: e.version, count: 0 };
      g.count += e.count;
      groups.set(key, g);
    }
    const order = versionOrder(new Set(entries.map((e) => e.version)));
    const rows = [...groups.entries()].sort((a, b) =>
      order.indexOf(a[1].version) - order.indexOf(b[1].version) || a[0].localeCompare(b[0]));
    $("#ab-note").textContent = !total
      ? "No requests in the window yet."
      : byArm
        ? `Experiment${experiments.size > 1 ? "s" : ""} ${[...experiments].join(", ")}: share of ${fmtNum(total, 0)} requests per version and arm.`
        : `No experiment running: share of ${fmtNum(total, 0)} requests per version.`;
    const tbody = $("#ab-table tbody");
    tbody.textContent = "";
    for (const [label, g] of rows) {
      const row = document.createElement("tr");
      const name = cell(row, "");
      name.append(swatch(g.version), label);
      cell(row, fmtNum(g.count, 0), "num");
      cell(row, fmtPct(g.count / total), "num");
      tbody.appendChild(row);
    }
    const chart = dashboard.charts["chart-ab"];
    if (!chart) return;
    chart.data.labels = rows.map(([label]) => label);
    chart.data.datasets[0].data = rows.map(([, g]) => (total ? (g.count / total) * 100 : 0));
    chart.data.datasets[0].backgroundColor = rows.map(([, g]) => colorOf(g.version));
    chart.update("none");
  }

  // --- experiments ----------------------------------------------------------------

  // Each model's experiment status, replaced whole by the snapshot and by
  // the "experiments" message sent after every rollup. The figures are
  // cumulative since the experiment started, unlike the rollup window.
  let experimentsDirty = true;

  function setExperiments(list, source) {
    dashboard.experiments = (Array.isArray(list) ? list : []).filter((e) => e && e.experiment);
    dashboard.experimentsSource = source;
    experimentsDirty = true;
  }

  // Fills the section before the socket's snapshot arrives (the default
  // model only); the socket's list, when it came first, is newer.
  async function loadExperiments() {
    const result = await api("GET", "/ab-test/status");
    if (!result.ok || dashboard.experimentsSource === "ws") return;
    setExperiments([result.data], "http");
    scheduleRender();
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text != null) node.textContent = text;
    return node;
  }

  function fmtP(p) {
    if (p == null || !Number.isFinite(p)) return "–";
    return p < 0.001 ? "< 0.001" : fmtNum(p, 3);
  }

  const pRelation = (p) => {
    const text = fmtP(p);
    return text.startsWith("<") ? text : `= ${text}`;
  };

  function fmtWhen(iso) {
    const t = iso ? Date.parse(iso) : NaN;
    if (!Number.isFinite(t)) return "–";
    const d = new Date(t);
    if (d.toDateString() === new Date().toDateString()) return fmtTime(t, true);
    return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ${fmtTime(t)}`;
  }

  // A difference of rates in percentage points, signed.
  const fmtPoints = (d) =>
    d == null || !Number.isFinite(d) ? "–" : `${d > 0 ? "+" : ""}${fmtNum(d * 100, 1)} pts`;

  // The upper end of the interval bars' common scale: the smallest of
  // these at or above every arm's upper bound, so small rates stay legible.
  const SCALE_STEPS = [0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1];

  // null while no arm has a conversion trial.
  function intervalScale(statArms) {
    let high = null;
    for (const a of statArms) {
      if (a.conversion_trials > 0 && a.conversion_interval) high = Math.max(high || 0, a.conversion_interval[1] || 0);
    }
    return high == null ? null : SCALE_STEPS.find((s) => s >= high) || 1;
  }

  // The 95 % interval of a conversion rate as a small bar on a scale of
  // 0..scale, with a tick at the estimate and one at the control's rate.
  function intervalBar(stat, scale, controlRate, color, confidence) {
    const at = (x) => `${Math.max(0, Math.min(100, (x / scale) * 100))}%`;
    const [low, high] = stat.conversion_interval;
    const bar = el("span", "ci-bar");
    bar.title = `${Math.round(confidence * 100)} % interval ` +
      `${fmtPct(low)} – ${fmtPct(high)} (scale 0–${fmtPct(scale, 0)})`;
    const range = el("span", "ci-range");
    range.style.left = at(low);
    range.style.width = `${Math.max(0.5, ((Math.min(high, scale) - low) / scale) * 100)}%`;
    range.style.background = color;
    bar.appendChild(range);
    if (controlRate != null) {
      const ref = el("span", "ci-ref");
      ref.style.left = at(controlRate);
      bar.appendChild(ref);
    }
    if (stat.conversion_rate != null) {
      const point = el("span", "ci-point");
      point.style.left = at(stat.conversion_rate);
      bar.appendChild(point);
    }
    return bar;
  }

  function armsTable(e, stats) {
    const statArms = stats.arms || [];
    const statOf = new Map(statArms.map((a) => [a.name, a]));
    const control = statOf.get(stats.control);
    const controlRate = control && control.conversion_trials > 0 ? control.conversion_rate : null;
    const scale = intervalScale(statArms);
    const confidence = stats.confidence || 0.95;
    const alpha = 1 - confidence;
    const weighted = e.strategy === "weighted";
    const table = el("table", "arms");
    const head = el("tr");
    const headings = [
      ["Arm", ""], ["Share", "num"], [weighted ? "Allocation" : "Expected", "num"],
      ["Requests", "num"], ["Error rate", "num"], ["p99 ms", "num"], ["Conversion", "num"],
      [`${Math.round(confidence * 100)} % interval${scale ? ` (0–${fmtPct(scale, 0)})` : ""}`, "ci"],
      ["z-test p", "num"], ["mSPRT p", "num"],
    ];
    for (const [text, className] of headings) head.appendChild(el("th", className, text));
    table.appendChild(el("thead")).appendChild(head);
    const tbody = table.appendChild(el("tbody"));
    for (const arm of e.arms || []) {
      const stat = statOf.get(arm.arm);
      const row = el("tr", arm.paused ? "paused" : "");
      row.dataset.arm = arm.arm;
      const name = cell(row, "");
      name.append(swatch(arm.version), arm.arm);
      if (arm.control) name.append(" ", el("span", "badge control", "control"));
      if (arm.paused) {
        const badge = el("span", "badge paused", "paused");
        badge.title = arm.paused_reason || "paused by a guardrail";
        name.append(" ", badge);
      }
      cell(row, fmtPct(arm.share), "num");
      let expected = stat ? stat.expected_share : null;
      if (expected == null && !arm.paused) expected = weighted && arm.allocation != null ? arm.allocation : arm.weight;
      const exp = cell(row, arm.paused ? "0 % (paused)" : fmtPct(expected), "num");
      if (arm.paused) exp.title = "Its traffic goes to the control.";
      cell(row, fmtNum(arm.requests || 0, 0), "num requests");
      const err = cell(row, fmtPct(arm.error_rate, 2), "num");
      const maxError = e.guardrails && e.guardrails.max_error_rate;
      if (arm.error_rate != null && maxError != null && arm.error_rate > maxError) err.classList.add("bad");
      cell(row, fmtNum(arm.latency_p99_ms, 1), "num");
      const conv = cell(row, fmtPct(arm.conversion_rate), "num");
      conv.title = `${fmtNum(arm.conversions || 0, 0)} conversions`;
      const ci = cell(row, "", "ci");
      if (stat && stat.conversion_trials > 0 && Array.isArray(stat.conversion_interval)) {
        const reference = arm.control ? null : controlRate;
        ci.append(intervalBar(stat, scale, reference, colorOf(arm.version), confidence),
          el("span", "ci-text", `${fmtNum(stat.conversion_interval[0] * 100, 1)}–${fmtNum(stat.conversion_interval[1] * 100, 1)} %`));
      } else {
        ci.textContent = "–";
      }
      const versus = stat && stat.versus_control;
      const z = cell(row, versus ? fmtP(versus.z_p_value) : "–", "num z-p");
      const msprt = cell(row, versus ? fmtP(versus.msprt_p_value) : "–", "num msprt-p");
      if (versus) {
        const diff = versus.conversion_difference_interval || [];
        z.title = `conversion ${fmtPoints(versus.conversion_difference)} vs control ` +
          `(${fmtPoints(diff[0])} to ${fmtPoints(diff[1])}), z = ${fmtNum(versus.z, 2)}`;
        const always = versus.msprt_interval || [];
        msprt.title = `always-valid interval ${fmtPoints(always[0])} to ${fmtPoints(always[1])}`;
        if (versus.z_p_value != null && versus.z_p_value < alpha) z.classList.add("sig");
        if (versus.msprt_p_value != null && versus.msprt_p_value < alpha) msprt.classList.add("sig");
      }
      tbody.appendChild(row);
    }
    if (!tbody.children.length) {
      const row = el("tr", "empty");
      cell(row, "No arms.").colSpan = headings.length;
      tbody.appendChild(row);
    }
    return table;
  }

  function guardrailsText(g) {
    if (!g) return "";
    const parts = [];
    if (g.max_error_rate != null) parts.push(`error rate ≤ ${fmtPct(g.max_error_rate)}`);
    if (g.max_p99_latency_ms != null) parts.push(`p99 ≤ ${fmtNum(g.max_p99_latency_ms, 0)} ms`);
    if (g.min_accuracy != null) parts.push(`accuracy ≥ ${fmtPct(g.min_accuracy)} over ${fmtNum(g.min_labels, 0)}+ labels`);
    if (!parts.length) return "Guardrails: none.";
    const after = g.min_requests != null ? `, once an arm has ${fmtNum(g.min_requests, 0)} requests` : "";
    return `Guardrails: ${parts.join(", ")}${after}; auto-promote ${g.auto_promote ? "on" : "off"}.`;
  }

  function shadowsTable(shadows) {
    const table = el("table", "shadows");
    const head = el("tr");
    for (const [text, className] of [
      ["Shadow", ""], ["Mirrored", "num"], ["Requests", "num"], ["Errors", "num"],
      ["Compared", "num"], ["Agreement", "num"], ["Latency shadow / primary ms", "num"], ["Shadow p99 ms", "num"],
    ]) head.appendChild(el("th", className, text));
    table.appendChild(el("thead")).appendChild(head);
    const tbody = table.appendChild(el("tbody"));
    for (const s of shadows) {
      const row = el("tr");
      row.dataset.shadow = s.version;
      const name = cell(row, "");
      name.append(swatch(s.version), s.version);
      cell(row, s.mirror_percent == null ? "–" : `${fmtNum(s.mirror_percent, 0)} %`, "num");
      cell(row, fmtNum(s.requests || 0, 0), "num");
      cell(row, fmtNum(s.errors || 0, 0), s.errors ? "num bad" : "num");
      cell(row, fmtNum(s.compared_rows || 0, 0), "num");
      cell(row, fmtPct(s.agreement_rate), "num agreement");
      cell(row, `${fmtNum(s.latency_avg_ms, 1)} / ${fmtNum(s.primary_latency_avg_ms, 1)}`, "num");
      cell(row, fmtNum(s.latency_p99_ms, 1), "num");
      tbody.appendChild(row);
    }
    return table;
  }

  function experimentElement(e) {
    const box = el("article", "experiment");
    box.dataset.experiment = e.experiment;
    const title = el("h3", "", e.experiment);
    title.append(" ", el("span", `badge status ${e.status || ""}`, e.status || "?"));
    box.appendChild(title);
    const facts = [`model ${e.model}`, `strategy ${e.strategy || "?"}`];
    if (e.strategy === "hash-based" && e.subject_key) facts.push(`by ${e.subject_key}`);
    if (e.started_at) facts.push(`started ${fmtWhen(e.started_at)}`);
    if (e.stopped_at) facts.push(`stopped ${fmtWhen(e.stopped_at)}`);
    facts.push(`${fmtNum(e.total_requests || 0, 0)} requests since the start`);
    box.appendChild(el("p", "note facts", facts.join(" · ")));

    const stats = e.statistics || {};
    const srm = stats.sample_ratio_mismatch;
    if (srm && srm.flagged) {
      const warning = el("p", "srm-warning",
        `Sample ratio mismatch: the observed split differs from the expected one ` +
        `(χ² test p ${pRelation(srm.p_value)}, alarm below ${srm.threshold}). ` +
        "Assignment may be broken: do not trust the comparison until it is explained.");
      warning.setAttribute("role", "alert");
      box.appendChild(warning);
    }
    box.appendChild(armsTable(e, stats));

    const notes = [guardrailsText(e.guardrails)];
    if (srm && !srm.flagged && srm.p_value != null) notes.push(`Sample ratio check p ${pRelation(srm.p_value)}.`);
    box.appendChild(el("p", "note", notes.filter(Boolean).join(" ")));

    if (e.strategy === "weighted") {
      const latest = (e.allocations || [])[0];
      const allocation = el("p", "allocation");
      if (latest && latest.shares) {
        const shares = Object.entries(latest.shares).map(([arm, share]) => `${arm} ${fmtPct(share)}`);
        allocation.textContent = `Latest allocation (${fmtWhen(latest.at)}): ${shares.join(", ")}.`;
      } else {
        allocation.textContent = "No allocation computed yet: traffic follows the configured weights.";
      }
      box.appendChild(allocation);
    }

    if (e.shadows && e.shadows.length) box.appendChild(shadowsTable(e.shadows));

    const alerts = e.alerts || [];
    if (alerts.length) {
      box.appendChild(el("h4", "", `Guardrail alerts (${alerts.length})`));
      const list = box.appendChild(el("ul", "guardrail-alerts"));
      for (const a of alerts) {
        const item = el("li", "guardrail-alert");
        if (a.arm) item.dataset.arm = a.arm;
        item.append(el("time", "", fmtWhen(a.at)), ` ${a.message}`);
        list.appendChild(item);
      }
    }
    return box;
  }

  function renderExperiments() {
    if (!experimentsDirty) return;
    experimentsDirty = false;
    const list = dashboard.experiments;
    const box = $("#experiments");
    box.textContent = "";
    for (const e of list) box.appendChild(experimentElement(e));
    $("#experiments-note").textContent = list.length
      ? "Per arm since each experiment started; updated after every rollup."
      : "No experiment. POST /ab-test/configure starts one.";
  }

  const SYSTEM_SERIES = [
    ["cpu_percent", "CPU", "#2563eb"],
    ["memory_percent", "memory", "#d97706"],
    ["disk_percent", "disk", "#059669"],
  ];
  const ROLES = ["web", "ws", "ingest", "worker", "beat", "redis"];

  function renderSystem(c) {
    const hosts = [...new Set(dashboard.system.map((s) => s.host))].sort();
    const datasets = [];
    hosts.forEach((host, i) => {
      const samples = dashboard.system.filter((s) => s.host === host);
      for (const [field, name, color] of SYSTEM_SERIES) {
        const label = hosts.length > 1 ? `${name} ${host}` : name;
        datasets.push(lineDataset(label, color, samples.map((s) => ({ x: s.t, y: s[field] })), {
          pointRadius: samples.length < 3 ? 2.5 : 0, borderDash: i ? [4, 3] : [],
        }));
      }
    });
    setDatasets("chart-system", datasets, c.min, Math.max(c.max, c.now));

    const latest = dashboard.system[dashboard.system.length - 1];
    const tbody = $("#processes tbody");
    tbody.textContent = "";
    if (!latest) { $("#system-now").textContent = "No sample yet."; $("#system-host").textContent = ""; return; }
    $("#system-host").textContent = hosts.length > 1 ? `(${hosts.length} hosts; latest ${latest.host})` : `(${latest.host})`;
    $("#system-now").textContent =
      `At ${fmtTime(latest.t, true)}: CPU ${fmtNum(latest.cpu_percent, 1)} %, ` +
      `memory ${fmtBytes(latest.memory_used_bytes)} of ${fmtBytes(latest.memory_total_bytes)} (${fmtNum(latest.memory_percent, 1)} %), ` +
      `disk ${fmtBytes(latest.disk_used_bytes)} of ${fmtBytes(latest.disk_total_bytes)} (${fmtNum(latest.disk_percent, 1)} %).`;
    const processes = latest.processes || {};
    const roles = [...ROLES.filter((r) => r in processes), ...Object.keys(processes).filter((r) => !ROLES.includes(r)).sort()];
    for (const role of roles) {
      const p = processes[role] || {};
      const row = document.createElement("tr");
      cell(row, role);
      cell(row, fmtNum(p.count || 0, 0), p.count ? "num" : "num bad");
      cell(row, p.count ? fmtBytes(p.rss_bytes) : "–", "num");
      tbody.appendChild(row);
    }
  }

  let renderPending = false;
  function render() {
    renderPending = false;
    prune();
    const c = collect();
    if (hasCharts) renderCharts(c);
    renderSummary(c);
    renderComparison(c);
    renderAb(c);
    renderExperiments();
    renderSystem(c);
  }

  // Many messages may arrive together (a snapshot, then increments):
  // draw once for them all.
  function scheduleRender() {
    if (renderPending) return;
    renderPending = true;
    setTimeout(render, 50);
  }

  // --- websocket ----------------------------------------------------------------

  const ws = { socket: null, attempt: 0, timer: null, ticker: null, retryAt: 0, reason: "" };

  function wsUrl() {
    const configured = document.body.dataset.wsUrl;
    if (configured) return configured;
    return `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/ws/metrics/`;
  }

  function setStatus(state, text, title) {
    const el = $("#ws-status");
    el.className = `conn ${state}`;
    el.textContent = text;
    el.title = title || "Live metrics connection";
    document.body.classList.toggle("stale", state !== "live");
    $("#ws-retry").hidden = state === "live" || state === "connecting";
  }

  function clearTimers() {
    clearTimeout(ws.timer);
    clearInterval(ws.ticker);
    ws.timer = ws.ticker = null;
  }

  function connect() {
    clearTimers();
    if (ws.socket) return;
    if (navigator.onLine === false) {
      setStatus("disconnected", "disconnected (offline)", "Waiting for the network to come back");
      return;
    }
    setStatus("connecting", "connecting…");
    let socket;
    try {
      socket = new WebSocket(wsUrl());
    } catch (error) {
      setStatus("disconnected", "disconnected", `Cannot open ${wsUrl()}: ${error.message}`);
      return;
    }
    ws.socket = socket;
    socket.addEventListener("open", () => {
      ws.attempt = 0;
      ws.reason = "";
      setStatus("live", "live", `Connected to ${wsUrl()}`);
    });
    socket.addEventListener("message", (event) => {
      dashboard.messages += 1;
      let msg;
      try { msg = JSON.parse(event.data); } catch (error) { return; }
      handleMessage(msg);
    });
    socket.addEventListener("close", (event) => {
      if (ws.socket !== socket) return;
      ws.socket = null;
      // 4401/4403 and 1008: the server refused this session (staff only).
      const refused = event.code === 4401 || event.code === 4403 || event.code === 1008;
      ws.reason = refused ? "refused (staff only)" : `closed (code ${event.code})`;
      scheduleReconnect(refused);
    });
  }

  function scheduleReconnect(slow) {
    clearTimers();
    const base = slow ? BACKOFF_MAX_S : Math.min(BACKOFF_MAX_S, BACKOFF_MIN_S * 2 ** ws.attempt);
    const jittered = base * (0.75 + Math.random() * 0.5);
    const delay = Math.min(BACKOFF_MAX_S, Math.max(BACKOFF_MIN_S, jittered));
    ws.attempt += 1;
    ws.retryAt = Date.now() + delay * 1000;
    const since = dashboard.lastMessageAt ? `; data as of ${fmtTime(dashboard.lastMessageAt, true)}` : "";
    const tick = () => {
      const left = Math.max(1, Math.ceil((ws.retryAt - Date.now()) / 1000));
      setStatus("reconnecting", `reconnecting in ${left} s…`, `Connection ${ws.reason}${since}`);
    };
    tick();
    ws.ticker = setInterval(tick, 500);
    ws.timer = setTimeout(connect, delay * 1000);
  }

  function reconnectNow() {
    if (ws.socket) return;
    connect();
  }

  // --- start ----------------------------------------------------------------------

  $("#predict-form").addEventListener("submit", predict);
  $("#randomize").addEventListener("click", randomize);
  $("#rollback").addEventListener("click", rollback);
  $("#ws-retry").addEventListener("click", reconnectNow);
  window.addEventListener("online", reconnectNow);
  window.addEventListener("offline", () => {
    if (!ws.socket) { clearTimers(); setStatus("disconnected", "disconnected (offline)"); }
  });
  createCharts();
  loadHealth();
  loadModels();
  loadExperiments();
  render();
  connect();
  // The x axis follows the clock and the current minute's rate decays even
  // when no message arrives; health is cheap to poll.
  setInterval(render, 5000);
  setInterval(loadHealth, 30000);
})();
