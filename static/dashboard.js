// The dashboard page: registry table, activate / roll back (staff), and a
// prediction form. Talks only to this server's own API.
(function () {
  "use strict";
  const $ = (sel) => document.querySelector(sel);
  const staff = document.body.dataset.staff === "1";
  let nFeatures = 10;

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
    const response = await fetch(url, init);
    const data = await response.json().catch(() => ({}));
    return { ok: response.ok, status: response.status, data };
  }

  function errorText(result) {
    const e = result.data && result.data.error;
    return e ? `${result.status} ${e.code}: ${e.message}` : `HTTP ${result.status}`;
  }

  async function loadHealth() {
    const result = await api("GET", "/health");
    const h = result.data;
    const el = $("#health");
    el.className = h.status === "healthy" ? "ok" : h.status === "degraded" ? "warn" : "bad";
    el.textContent = `${h.status}; database ${h.database && h.database.ok ? "up" : "down"}; ` +
      `Redis ${h.redis && h.redis.ok ? "up" : "down (not needed for predictions)"}; ` +
      `active version ${h.active_version || "none"}` +
      (h.problems && h.problems.length ? `; ${h.problems.join("; ")}` : "");
  }

  function cell(row, text) {
    const td = document.createElement("td");
    td.textContent = text;
    row.appendChild(td);
    return td;
  }

  async function loadModels() {
    const result = await api("GET", "/models");
    const tbody = $("#versions tbody");
    tbody.textContent = "";
    if (!result.ok) { $("#action-result").textContent = errorText(result); return; }
    const data = result.data;
    $("#model-name").textContent = `(${data.model})`;
    const select = $("#predict-version");
    select.length = 1;
    for (const v of data.models) {
      const row = document.createElement("tr");
      row.dataset.version = v.version;
      cell(row, v.version);
      cell(row, v.name || "");
      cell(row, v.model_type);
      cell(row, v.accuracy == null ? "-" : v.accuracy.toFixed(4));
      cell(row, v.status).className = v.status === "ready" ? "ok" : "bad";
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
    $("#rollback-row").hidden = !staff;
    buildInputs();
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
    const result = await api("POST", "/predict", body);
    const out = $("#predict-result");
    if (!result.ok) { out.className = "bad"; out.textContent = errorText(result); return; }
    const r = result.data;
    out.className = "ok";
    const probs = r.probabilities
      ? Object.entries(r.probabilities).map(([k, p]) => `${k}: ${p.toFixed(4)}`).join(", ")
      : "n/a";
    out.textContent = `prediction ${r.prediction} (confidence ${r.confidence == null ? "n/a" : r.confidence.toFixed(4)})\n` +
      `probabilities ${probs}\nserved by ${r.model}:${r.model_version} (${r.routing.reason}) in ${r.processing_time_ms} ms\n` +
      `request id ${r.request_id}`;
    loadModels();
  }

  $("#predict-form").addEventListener("submit", predict);
  $("#randomize").addEventListener("click", randomize);
  $("#rollback").addEventListener("click", rollback);
  loadHealth();
  loadModels();
})();
