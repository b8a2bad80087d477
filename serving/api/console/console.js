// winback retention console: plain JavaScript, no framework, no external assets.
//
// Every data call goes to the same service with the API key from sessionStorage in an
// "Authorization: Bearer" header (never in a URL). Data is put on the page with
// textContent only, so list contents can never run as markup.
"use strict";

(() => {
  const KEY_STORAGE = "winback.apiKey";
  const SVG_NS = "http://www.w3.org/2000/svg";

  /** Columns of the list table: field, header, how to show it. */
  const COLUMNS = [
    { key: "rank", label: "Rank", type: "int" },
    { key: "customer_id", label: "Customer id", type: "text" },
    { key: "tier", label: "Tier", type: "text" },
    { key: "churn_risk", label: "Churn risk", type: "score" },
    { key: "vip_potential", label: "VIP potential", type: "score" },
    { key: "reactivation_probability", label: "Reactivation prob.", type: "score" },
    {
      key: "expected_value",
      label: "Expected value",
      unit: "margin, shop currency",
      title: "Expected gross margin over the list horizon, in the shop's currency",
      type: "money",
    },
    {
      key: "predicted_value",
      label: "Predicted value",
      unit: "margin, shop currency",
      title: "Predicted gross margin over the value model's horizon, in the shop's currency",
      type: "money",
    },
    { key: "reasons", label: "Top reasons", type: "reasons" },
    { key: "action", label: "Suggested action", type: "text" },
    { key: "group", label: "Group", type: "group" },
  ];
  /** The score each list is about (score distribution chart). */
  const MAIN_SCORE = {
    "at-risk": ["churn_risk", "churn risk"],
    winback: ["reactivation_probability", "reactivation probability"],
    "vip-potential": ["vip_potential", "VIP potential"],
    "near-vip": ["vip_potential", "VIP potential"],
  };
  const KIND_TITLES = {
    "at-risk": "At-risk list",
    winback: "Win-back list",
    "vip-potential": "VIP-potential list",
    "near-vip": "Near-VIP list",
  };

  /** Names of the measured metrics (POST /lists/measurement). */
  const METRIC_LABELS = {
    reactivation_rate: "Reactivation rate",
    retention_rate: "Retention rate",
    purchase_rate: "Purchase rate",
    revenue_per_customer: "Revenue per customer",
    margin_per_customer: "Margin per customer",
  };
  /** Metrics in the model panel's baseline table, in this order, when the runs have them. */
  const BASELINE_METRICS = [
    "roc_auc",
    "pr_auc",
    "lift_at_10",
    "capture_at_10",
    "brier",
    "log_loss",
    "expected_maximum_profit",
    "normalized_gini",
    "spearman",
    "top_decile_capture",
    "decile_calibration_error",
    "mae",
    "rmse",
  ];
  const LOWER_IS_BETTER = new Set([
    "brier", "log_loss", "ece", "decile_calibration_error", "mae", "rmse",
  ]);

  const state = {
    measurement: null, // the last POST /lists/measurement answer for the shown list
    list: null, // {manifest, rows}
    sortKey: "rank",
    sortDir: 1,
    page: 0,
    pageSize: 25,
    explainLimit: 25, // rows one POST /scores may explain; /models says the served limit
    askedReasons: new Map(), // "target:customer_id" -> reasons asked from POST /scores ("" if none)
  };

  const $ = (id) => document.getElementById(id);

  class ConsoleError extends Error {}

  // ------------------------------------------------------------------ key and calls

  function storedKey() {
    return window.sessionStorage.getItem(KEY_STORAGE);
  }

  function showKeyState() {
    const el = $("key-state");
    const has = Boolean(storedKey());
    el.textContent = has ? "key set for this tab" : "no key";
    el.classList.toggle("ok", has);
  }

  function showMessage(text, kind = "error") {
    const el = $("message");
    el.textContent = text;
    el.className = kind === "error" ? "message" : "message info";
    el.hidden = false;
  }

  function clearMessage() {
    $("message").hidden = true;
    $("message").textContent = "";
  }

  /** POST ``body`` to ``path`` with the key; throws ConsoleError with a message a person can act on. */
  async function api(path, body) {
    const key = storedKey();
    if (!key) {
      throw new ConsoleError(
        "Enter the API key first (top right): every list and model call needs it."
      );
    }
    const init = {
      method: "POST",
      headers: { Authorization: `Bearer ${key}` },
      cache: "no-store",
    };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (err) {
      throw new ConsoleError(
        `Cannot reach the winback service (${err.message}): is 'winback serve' still running?`
      );
    }
    if (response.status === 401) {
      window.sessionStorage.removeItem(KEY_STORAGE);
      showKeyState();
      throw new ConsoleError(
        "The service refused this API key (401 Unauthorized). Check the key with whoever " +
          "runs the service and enter it again."
      );
    }
    if (!response.ok) {
      let detail = await response.text();
      try {
        const parsed = JSON.parse(detail);
        detail = parsed.error || JSON.stringify(parsed);
      } catch (_) {
        /* not JSON: keep the text */
      }
      throw new ConsoleError(`${path} answered ${response.status}: ${detail}`);
    }
    return response;
  }

  async function guarded(task) {
    try {
      await task();
    } catch (err) {
      showMessage(err instanceof ConsoleError ? err.message : `Unexpected error: ${err}`);
    }
  }

  // ------------------------------------------------------------------ lists

  function numberOrNull(id) {
    const raw = $(id).value.trim();
    if (raw === "") return null;
    const value = Number(raw);
    return Number.isFinite(value) ? value : null;
  }

  /** The body of POST /lists from the form: a budget, when given, replaces top N. */
  function listRequest() {
    const body = { kind: $("kind").value, format: "json" };
    const budget = numberOrNull("budget");
    const top = numberOrNull("top");
    if (budget !== null) body.budget = budget;
    else if (top !== null) body.top = Math.trunc(top);
    const cost = numberOrNull("contact-cost");
    if (cost !== null) body.contact_cost = cost;
    const share = numberOrNull("control-share");
    if (share !== null) body.control_share = share;
    return body;
  }

  async function pullList(event) {
    event.preventDefault();
    const button = $("pull");
    button.disabled = true;
    showMessage("Pulling the list…", "info");
    await guarded(async () => {
      const response = await api("/lists", listRequest());
      setList(await response.json());
      clearMessage();
    });
    button.disabled = false;
  }

  async function openSaved(event) {
    event.preventDefault();
    const listId = $("saved-id").value.trim();
    if (!listId) {
      showMessage("Enter a list id to open, e.g. winback-20251231T090000Z-3fa2c1.");
      return;
    }
    await guarded(async () => {
      const response = await api("/lists/saved", { list_id: listId, format: "json" });
      setList(await response.json());
      clearMessage();
    });
  }

  async function downloadCsv() {
    if (!state.list) return;
    const listId = state.list.manifest.list_id;
    await guarded(async () => {
      const response = await api("/lists/saved", { list_id: listId, format: "csv" });
      const blob = await response.blob();
      const url = URL.createObjectURL(blob);
      const link = document.createElement("a");
      link.href = url;
      link.download = `${listId}.csv`;
      document.body.appendChild(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    });
  }

  function setList(body) {
    state.list = { manifest: body.manifest, rows: body.rows };
    state.measurement = null;
    $("measure-panel").hidden = true;
    state.sortKey = "rank";
    state.sortDir = 1;
    state.page = 0;
    fillFilter("filter-tier", body.rows.map((r) => r.tier));
    fillFilter("filter-action", body.rows.map((r) => r.action));
    $("filter-group").value = "";
    const m = body.manifest;
    $("list-title").textContent = `${KIND_TITLES[m.kind] || m.kind} · ${m.list_id}`;
    $("list-summary").textContent =
      `${m.rows} customers (${m.treatment_rows} treatment, ${m.control_rows} control hold-out) ` +
      `from scores as of ${m.as_of}; made ${String(m.generated_at).replace("T", " ").slice(0, 16)} UTC.`;
    $("list-panel").hidden = false;
    $("chart-panel").hidden = false;
    render();
  }

  function fillFilter(id, values) {
    const select = $(id);
    while (select.options.length > 1) select.remove(1);
    const distinct = [...new Set(values.filter((v) => v !== null && v !== ""))].sort();
    for (const value of distinct) {
      const option = document.createElement("option");
      option.value = value;
      option.textContent = value;
      select.appendChild(option);
    }
    select.value = "";
  }

  function filteredRows() {
    if (!state.list) return [];
    const tier = $("filter-tier").value;
    const action = $("filter-action").value;
    const group = $("filter-group").value;
    return state.list.rows.filter(
      (r) =>
        (!tier || r.tier === tier) && (!action || r.action === action) && (!group || r.group === group)
    );
  }

  function compareValues(a, b) {
    const aMissing = a === null || a === undefined || a === "";
    const bMissing = b === null || b === undefined || b === "";
    if (aMissing || bMissing) return aMissing === bMissing ? 0 : aMissing ? 1 : -1;
    if (typeof a === "number" && typeof b === "number") return a - b;
    return String(a).localeCompare(String(b));
  }

  function sortedRows(rows) {
    const { sortKey, sortDir } = state;
    return [...rows].sort((x, y) => {
      const a = x[sortKey];
      const b = y[sortKey];
      const missing = (v) => v === null || v === undefined || v === "";
      if (missing(a) || missing(b)) return compareValues(a, b); // missing values always last
      return sortDir * compareValues(a, b) || x.rank - y.rank;
    });
  }

  function formatCell(column, value) {
    if (value === null || value === undefined || value === "") return "–";
    switch (column.type) {
      case "score":
        return Number(value).toFixed(3);
      case "money":
        return Number(value).toFixed(2);
      default:
        return String(value);
    }
  }

  function renderHead() {
    const row = $("list-head-row");
    row.replaceChildren();
    for (const column of COLUMNS) {
      const th = document.createElement("th");
      th.textContent = column.label;
      if (column.unit) {
        const unit = document.createElement("span");
        unit.className = "unit";
        unit.textContent = column.unit;
        th.appendChild(unit);
        th.title = column.title;
      }
      th.dataset.column = column.key;
      th.className = "sortable";
      th.setAttribute("aria-sort", "none");
      if (column.key === state.sortKey) {
        th.setAttribute("aria-sort", state.sortDir > 0 ? "ascending" : "descending");
      }
      th.addEventListener("click", () => {
        if (state.sortKey === column.key) state.sortDir = -state.sortDir;
        else {
          state.sortKey = column.key;
          const numeric = ["int", "score", "money"].includes(column.type);
          state.sortDir = numeric && column.key !== "rank" ? -1 : 1;
        }
        state.page = 0;
        render();
      });
      row.appendChild(th);
    }
  }

  function renderTable(rows) {
    const body = $("list-body");
    body.replaceChildren();
    const pages = Math.max(1, Math.ceil(rows.length / state.pageSize));
    state.page = Math.min(state.page, pages - 1);
    const start = state.page * state.pageSize;
    const shown = rows.slice(start, start + state.pageSize);
    for (const record of shown) {
      const tr = document.createElement("tr");
      tr.dataset.customerId = record.customer_id;
      for (const column of COLUMNS) {
        const td = document.createElement("td");
        td.dataset.column = column.key;
        const value =
          column.type === "reasons" ? record.reasons || askedReasons(record) : record[column.key];
        const text = formatCell(column, value);
        if (column.type === "group" && record.group) {
          const badge = document.createElement("span");
          badge.className = `group ${record.group}`;
          badge.textContent = text;
          td.appendChild(badge);
        } else {
          td.textContent = text;
        }
        if (["int", "score", "money"].includes(column.type)) td.classList.add("num");
        if (column.type === "reasons") td.classList.add("reasons");
        if (column.key === "action" && record.action_rule) td.title = record.action_rule;
        tr.appendChild(td);
      }
      body.appendChild(tr);
    }
    fillReasons(shown);
    const end = start + shown.length;
    $("page-info").textContent = rows.length
      ? `rows ${start + 1}–${end} of ${rows.length} · page ${state.page + 1} of ${pages}`
      : "no rows match the filters";
    $("page-prev").disabled = state.page === 0;
    $("page-next").disabled = state.page >= pages - 1;
  }

  /** The target whose reasons each list kind shows (what POST /scores explains on request). */
  const REASON_TARGETS = {
    "at-risk": "churn",
    winback: "reactivation",
    "vip-potential": "vip",
    "near-vip": "vip",
  };

  /**
   * Reasons for the shown rows that came without (a list explains its best ranks only):
   * asked once per row from POST /scores, which explains on request, then shown.
   */
  function reasonKey(record) {
    const target = state.list && REASON_TARGETS[state.list.manifest.kind];
    return target ? `${target}:${record.customer_id}` : null;
  }

  function askedReasons(record) {
    const key = reasonKey(record);
    return key ? state.askedReasons.get(key) || null : null;
  }

  async function fillReasons(shown) {
    const list = state.list;
    const target = list && REASON_TARGETS[list.manifest.kind];
    const missing = shown.filter((r) => !r.reasons && !state.askedReasons.has(reasonKey(r)));
    if (!target || !missing.length) return;
    for (const record of missing) state.askedReasons.set(reasonKey(record), "");
    const step = Math.max(1, state.explainLimit);
    for (let start = 0; start < missing.length; start += step) {
      const ids = missing.slice(start, start + step).map((r) => r.customer_id);
      try {
        const body = await (await api("/scores", { customer_ids: ids, explain: true })).json();
        for (const score of body.scores || []) {
          const reasons = (score.reasons || {})[target];
          if (reasons && reasons.length) {
            state.askedReasons.set(`${target}:${score.customer_id}`, reasons.join("; "));
          }
        }
      } catch (err) {
        break; // the rows keep "–": the list itself is shown either way
      }
    }
    if (state.list === list) render();
  }

  function render() {
    if (!state.list) return;
    const rows = sortedRows(filteredRows());
    renderHead();
    renderTable(rows);
    renderCharts(rows);
  }

  // ------------------------------------------------------------------ charts (inline SVG)

  function svgEl(name, attrs = {}, text = null) {
    const el = document.createElementNS(SVG_NS, name);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
    if (text !== null) el.textContent = text;
    return el;
  }

  function newSvg(width, height, label) {
    return svgEl("svg", {
      viewBox: `0 0 ${width} ${height}`,
      role: "img",
      "aria-label": label,
    });
  }

  /** Cumulative share of ``values`` over the rows in list order: [[x share, y share], ...]. */
  function gainsCurve(values) {
    const clean = values.map((v) => (Number.isFinite(v) && v > 0 ? v : 0));
    const total = clean.reduce((a, b) => a + b, 0);
    const points = [[0, 0]];
    let running = 0;
    clean.forEach((v, i) => {
      running += v;
      points.push([(i + 1) / clean.length, total > 0 ? running / total : (i + 1) / clean.length]);
    });
    return points;
  }

  function drawGains(rows, kind) {
    const box = $("chart-gains");
    const W = 360, H = 240, L = 42, R = 20, T = 12, B = 36;
    const svg = newSvg(W, H, "gains chart");
    const x = (v) => L + v * (W - L - R);
    const y = (v) => H - B - v * (H - T - B);
    for (const t of [0, 0.25, 0.5, 0.75, 1]) {
      svg.appendChild(svgEl("line", { x1: x(0), x2: x(1), y1: y(t), y2: y(t), class: "grid" }));
      svg.appendChild(svgEl("text", { x: L - 6, y: y(t) + 4, "text-anchor": "end" }, `${t * 100}%`));
      svg.appendChild(svgEl("text", { x: x(t), y: H - B + 14, "text-anchor": "middle" }, `${t * 100}%`));
    }
    svg.appendChild(svgEl("line", { x1: x(0), y1: y(0), x2: x(1), y2: y(0), class: "axis" }));
    svg.appendChild(svgEl("line", { x1: x(0), y1: y(0), x2: x(0), y2: y(1), class: "axis" }));
    svg.appendChild(svgEl("path", { d: `M${x(0)},${y(0)} L${x(1)},${y(1)}`, class: "diagonal" }));
    const ranked = [...rows].sort((a, b) => a.rank - b.rank);
    const series = [["expected_value", "line-value", "legend-value", "expected value"]];
    if (kind === "winback") {
      series.push(["reactivation_probability", "line-second", "legend-second", "reactivations"]);
    }
    series.forEach(([field, lineClass, legendClass, label], i) => {
      const points = gainsCurve(ranked.map((r) => Number(r[field])));
      const d = points.map(([px, py], j) => `${j ? "L" : "M"}${x(px).toFixed(1)},${y(py).toFixed(1)}`);
      svg.appendChild(svgEl("path", { d: d.join(" "), class: lineClass }));
      svg.appendChild(svgEl("rect", { x: L + 8, y: T + 4 + i * 16, width: 10, height: 10, class: legendClass }));
      svg.appendChild(svgEl("text", { x: L + 22, y: T + 13 + i * 16 }, `share of ${label} captured`));
    });
    svg.appendChild(
      svgEl("text", { x: (L + W - R) / 2, y: H - 4, "text-anchor": "middle" }, "share of the list contacted (in rank order)")
    );
    $("gains-caption").textContent =
      kind === "winback" ? "Gains: expected value and reactivations captured" : "Gains: expected value captured";
    box.replaceChildren(svg);
  }

  function drawStackedBars(box, labels, treatment, control, label, horizontal) {
    const W = 360, H = 240, L = horizontal ? 90 : 42, R = 12, T = 22, B = 36;
    const svg = newSvg(W, H, label);
    const totals = labels.map((_, i) => treatment[i] + control[i]);
    const max = Math.max(1, ...totals);
    const n = Math.max(1, labels.length);
    if (horizontal) {
      const band = (H - T - B) / n;
      labels.forEach((name, i) => {
        const y0 = T + i * band + band * 0.15;
        const h = band * 0.7;
        const wt = (treatment[i] / max) * (W - L - R - 30);
        const wc = (control[i] / max) * (W - L - R - 30);
        svg.appendChild(svgEl("text", { x: L - 6, y: y0 + h / 2 + 4, "text-anchor": "end" }, name));
        svg.appendChild(svgEl("rect", { x: L, y: y0, width: wt, height: h, class: "bar" }));
        svg.appendChild(svgEl("rect", { x: L + wt, y: y0, width: wc, height: h, class: "bar-control" }));
        svg.appendChild(svgEl("text", { x: L + wt + wc + 4, y: y0 + h / 2 + 4 }, String(totals[i])));
      });
    } else {
      const band = (W - L - R) / n;
      const y = (v) => H - B - (v / max) * (H - T - B);
      for (const t of [0, 0.5, 1]) {
        const v = Math.round(t * max);
        svg.appendChild(svgEl("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "grid" }));
        svg.appendChild(svgEl("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end" }, String(v)));
      }
      labels.forEach((name, i) => {
        const x0 = L + i * band + band * 0.1;
        const w = band * 0.8;
        svg.appendChild(svgEl("rect", { x: x0, y: y(treatment[i]), width: w, height: y(0) - y(treatment[i]), class: "bar" }));
        svg.appendChild(
          svgEl("rect", { x: x0, y: y(totals[i]), width: w, height: y(treatment[i]) - y(totals[i]), class: "bar-control" })
        );
        if (i % 2 === 0 || n <= 6) {
          svg.appendChild(svgEl("text", { x: x0 + w / 2, y: H - B + 14, "text-anchor": "middle" }, name));
        }
      });
      svg.appendChild(svgEl("line", { x1: L, y1: y(0), x2: W - R, y2: y(0), class: "axis" }));
    }
    svg.appendChild(svgEl("rect", { x: W - 150, y: 4, width: 10, height: 10, class: "legend-value" }));
    svg.appendChild(svgEl("text", { x: W - 136, y: 13 }, "treatment"));
    svg.appendChild(svgEl("rect", { x: W - 76, y: 4, width: 10, height: 10, class: "legend-second" }));
    svg.appendChild(svgEl("text", { x: W - 62, y: 13 }, "control"));
    box.replaceChildren(svg);
    return svg;
  }

  function drawTiers(rows) {
    const tiers = [...new Set(rows.map((r) => r.tier ?? "unknown"))].sort();
    const count = (tier, group) => rows.filter((r) => (r.tier ?? "unknown") === tier && r.group === group).length;
    drawStackedBars(
      $("chart-tiers"),
      tiers,
      tiers.map((t) => count(t, "treatment")),
      tiers.map((t) => count(t, "control")),
      "tier mix",
      true
    );
  }

  function drawScores(rows, kind) {
    const [field, label] = MAIN_SCORE[kind] || ["churn_risk", "churn risk"];
    const bins = 10;
    const treatment = new Array(bins).fill(0);
    const control = new Array(bins).fill(0);
    for (const r of rows) {
      const v = r[field];
      if (v === null || v === undefined || !Number.isFinite(Number(v))) continue;
      const b = Math.min(bins - 1, Math.max(0, Math.floor(Number(v) * bins)));
      (r.group === "control" ? control : treatment)[b] += 1;
    }
    const labels = Array.from({ length: bins }, (_, i) => (i / bins).toFixed(1));
    const svg = drawStackedBars($("chart-scores"), labels, treatment, control, `${label} distribution`, false);
    svg.appendChild(svgEl("text", { x: 200, y: 236, "text-anchor": "middle" }, `${label} (bins of 0.1)`));
    $("scores-caption").textContent = `Score distribution: ${label}`;
  }

  function renderCharts(rows) {
    const kind = state.list.manifest.kind;
    drawGains(rows, kind);
    drawTiers(rows);
    drawScores(rows, kind);
  }

  // ------------------------------------------------------------------ measurement

  function formatMeasured(kind, value) {
    if (value === null || value === undefined) return "–";
    return kind === "rate" ? `${(100 * value).toFixed(1)}%` : Number(value).toFixed(2);
  }

  function formatDifference(kind, value) {
    if (value === null || value === undefined) return "–";
    const sign = value > 0 ? "+" : "";
    return kind === "rate" ? `${sign}${(100 * value).toFixed(1)} pp` : `${sign}${value.toFixed(2)}`;
  }

  async function measureList(event) {
    event.preventDefault();
    if (!state.list) return;
    const body = { list_id: state.list.manifest.list_id };
    const asOf = $("measure-as-of").value;
    if (asOf) body.as_of = asOf;
    const button = $("measure");
    button.disabled = true;
    showMessage("Measuring the list against the service's transactions…", "info");
    await guarded(async () => {
      const response = await api("/lists/measurement", body);
      setMeasurement(await response.json());
      clearMessage();
    });
    button.disabled = false;
  }

  function setMeasurement(body) {
    state.measurement = body;
    const level = Math.round(100 * body.confidence);
    const first = body.metrics[0] || {};
    $("measure-title").textContent = `Treated vs control · ${body.list_id}`;
    $("measure-summary").textContent =
      `${first.n_treatment ?? "–"} treated and ${first.n_control ?? "–"} control customers: ` +
      `what they did after the list date ${body.list_date} up to ${body.as_of} ` +
      `(data until ${body.data_until}). Whiskers and intervals: ${level}% confidence.`;
    drawMeasurement(body);
    const tbody = $("measure-body");
    tbody.replaceChildren();
    for (const m of body.metrics) {
      const tr = document.createElement("tr");
      tr.dataset.metric = m.metric;
      const interval =
        m.ci_low === null || m.ci_high === null
          ? "–"
          : `${formatDifference(m.kind, m.ci_low)} to ${formatDifference(m.kind, m.ci_high)}`;
      const cells = [
        METRIC_LABELS[m.metric] || m.metric,
        formatMeasured(m.kind, m.treatment),
        formatMeasured(m.kind, m.control),
        formatDifference(m.kind, m.difference),
        interval,
        m.p_value === null ? "–" : Number(m.p_value).toFixed(3),
        `${m.n_treatment} / ${m.n_control}`,
      ];
      cells.forEach((text, i) => {
        const td = document.createElement("td");
        td.textContent = text;
        if (i > 0) td.classList.add("num");
        tr.appendChild(td);
      });
      tbody.appendChild(tr);
    }
    $("measure-panel").hidden = false;
  }

  /** Treated and control bars per metric, each with its own scale and CI whiskers. */
  function drawMeasurement(body) {
    const metrics = body.metrics.map((m) => m.metric);
    const W = 560, H = 250, T = 34, B = 40, gap = 18;
    const n = Math.max(1, metrics.length);
    const width = (W - gap * (n - 1)) / n;
    const svg = newSvg(W, H, "treated vs control with confidence intervals");
    metrics.forEach((metric, k) => {
      const left = k * (width + gap);
      const groups = ["treatment", "control"].map(
        (g) => body.groups.find((row) => row.group === g && row.metric === metric) || null
      );
      const numbers = groups.flatMap((g) => (g ? [g.value, g.ci_low, g.ci_high] : []))
        .filter((v) => v !== null && Number.isFinite(v));
      let lo = Math.min(0, ...numbers);
      let hi = Math.max(0, ...numbers);
      if (hi - lo < 1e-12) hi = lo + 1;
      const y = (v) => H - B - ((v - lo) / (hi - lo)) * (H - T - B);
      const kind = (body.metrics.find((m) => m.metric === metric) || {}).kind;
      svg.appendChild(
        svgEl("text", { x: left + width / 2, y: 12, "text-anchor": "middle", class: "title" },
          METRIC_LABELS[metric] || metric)
      );
      svg.appendChild(svgEl("line", { x1: left, x2: left + width, y1: y(0), y2: y(0), class: "zero" }));
      groups.forEach((g, i) => {
        const name = i === 0 ? "treatment" : "control";
        const slot = width / 2;
        const x0 = left + i * slot + slot * 0.2;
        const w = slot * 0.6;
        svg.appendChild(
          svgEl("text", { x: x0 + w / 2, y: H - B + 14, "text-anchor": "middle" }, name)
        );
        if (!g || g.value === null) return;
        const top = Math.min(y(g.value), y(0));
        const rect = svgEl("rect", {
          x: x0, y: top, width: w, height: Math.max(1, Math.abs(y(g.value) - y(0))),
          class: i === 0 ? "bar" : "bar-control",
          "data-group": name,
          "data-metric": metric,
        });
        rect.appendChild(svgEl("title", {}, `${name}: ${formatMeasured(kind, g.value)}`));
        svg.appendChild(rect);
        if (g.ci_low !== null && g.ci_high !== null) {
          const cx = x0 + w / 2;
          const attrs = { class: "whisker", "data-group": name, "data-metric": metric };
          svg.appendChild(svgEl("line", { x1: cx, x2: cx, y1: y(g.ci_low), y2: y(g.ci_high), ...attrs }));
          for (const v of [g.ci_low, g.ci_high]) {
            svg.appendChild(svgEl("line", { x1: cx - 6, x2: cx + 6, y1: y(v), y2: y(v), class: "whisker" }));
          }
        }
        svg.appendChild(
          svgEl("text", { x: x0 + w / 2, y: H - B + 28, "text-anchor": "middle" }, formatMeasured(kind, g.value))
        );
      });
    });
    $("chart-measure").replaceChildren(svg);
  }

  // ------------------------------------------------------------------ model status

  /** A model's test metrics as a small two-column table (metric, value), one row each. */
  function metricsTable(metrics) {
    const entries = Object.entries(metrics || {}).sort(([a], [b]) => a.localeCompare(b));
    if (!entries.length) return document.createTextNode("–");
    const table = document.createElement("table");
    table.className = "metrics-table";
    for (const [name, value] of entries) {
      const tr = document.createElement("tr");
      const th = document.createElement("th");
      th.scope = "row";
      th.textContent = name.replaceAll("_", " ");
      const td = document.createElement("td");
      td.textContent = Number(value).toFixed(3);
      tr.append(th, td);
      table.appendChild(tr);
    }
    return table;
  }

  async function driftByTarget() {
    try {
      const response = await api("/drift", {});
      const report = await response.json();
      const out = {};
      for (const row of report.summary || []) out[row.target] = row;
      return { ok: true, rows: out, as_of: report.as_of };
    } catch (err) {
      return { ok: false, reason: err.message };
    }
  }

  async function loadStatus() {
    await guarded(async () => {
      const response = await api("/models");
      const body = await response.json();
      const table = body.score_table;
      if (body.limits) {
        state.explainLimit = Math.min(body.limits.max_explain_rows, body.limits.max_customer_ids);
      }
      const stale = table.stale_targets.length
        ? ` Stale scores for ${table.stale_targets.join(", ")}: rerun 'winback score'.`
        : "";
      $("score-table-info").textContent =
        `Scores as of ${table.as_of} for ${table.rows} customers.${stale}`;
      const drift = await driftByTarget();
      const tbody = $("models-body");
      tbody.replaceChildren();
      for (const model of body.models) {
        const tr = document.createElement("tr");
        tr.dataset.target = model.target;
        const cells = [
          model.target,
          model.name,
          `v${model.version}`,
          model.trained_at ? model.trained_at.replace("T", " ").slice(0, 19) : "–",
        ];
        for (const text of cells) {
          const td = document.createElement("td");
          td.textContent = text;
          tr.appendChild(td);
        }
        const metrics = document.createElement("td");
        metrics.className = "metrics";
        metrics.appendChild(metricsTable(model.metrics));
        tr.appendChild(metrics);
        const verdict = document.createElement("td");
        verdict.className = "verdict";
        verdict.textContent = model.verdict || "–";
        if (model.loses_to && model.loses_to.length) {
          verdict.classList.add("flag-alert");
          const named = (model.verdict || "").startsWith("loses to"); // already names them
          verdict.textContent = named
            ? model.verdict
            : `${model.verdict || ""} (loses to ${model.loses_to.join(", ")})`.trim();
        }
        tr.appendChild(verdict);
        const flag = document.createElement("td");
        if (drift.ok && drift.rows[model.target]) {
          const row = drift.rows[model.target];
          const psi = row.score_psi === null ? "–" : Number(row.score_psi).toFixed(3);
          flag.textContent = `${row.status} (score PSI ${psi})`;
          flag.className = `flag-${row.status}`;
        } else {
          flag.textContent = "not checked";
          flag.title = drift.ok ? "no drift reference for this target" : drift.reason;
        }
        tr.appendChild(flag);
        tbody.appendChild(tr);
      }
      renderBaselines(body.models);
      clearMessage();
    });
  }

  /** One row per scorer (model, each baseline, oracle) and target, metrics as columns. */
  function renderBaselines(models) {
    const present = new Set(models.flatMap((m) => Object.keys(m.test_metrics || {})));
    const columns = BASELINE_METRICS.filter((c) => present.has(c));
    const head = $("baselines-head");
    head.replaceChildren();
    for (const label of ["Target", "Scorer", ...columns.map((c) => c.replaceAll("_", " "))]) {
      const th = document.createElement("th");
      th.textContent = label;
      head.appendChild(th);
    }
    const tbody = $("baselines-body");
    tbody.replaceChildren();
    if (!columns.length) {
      const tr = document.createElement("tr");
      const td = document.createElement("td");
      td.colSpan = 2;
      td.textContent = "The models' MLflow runs hold no test metrics or baselines.";
      tr.appendChild(td);
      tbody.appendChild(tr);
      return;
    }
    for (const model of models) {
      const scorers = [[`model v${model.version}`, "model", model.test_metrics || {}]];
      for (const [name, values] of Object.entries(model.baselines || {})) {
        scorers.push([`baseline: ${name}`, "baseline", values]);
      }
      if (model.oracle) scorers.push(["oracle (true probabilities)", "oracle", model.oracle]);
      if (model.ceiling) scorers.push(["ceiling (best achievable)", "oracle", model.ceiling]);
      const best = {};
      for (const column of columns) {
        const values = scorers
          .filter(([, role]) => role !== "oracle")
          .map(([, , v]) => v[column])
          .filter((v) => v !== undefined && v !== null);
        if (values.length) {
          best[column] = LOWER_IS_BETTER.has(column) ? Math.min(...values) : Math.max(...values);
        }
      }
      scorers.forEach(([label, role, values], i) => {
        const tr = document.createElement("tr");
        tr.dataset.target = model.target;
        tr.dataset.scorer = role === "baseline" ? label.slice("baseline: ".length) : role;
        tr.className = `scorer-${role}${i === 0 ? " target-first" : ""}`;
        const cells = [i === 0 ? model.target : "", label];
        for (const text of cells) {
          const td = document.createElement("td");
          td.textContent = text;
          tr.appendChild(td);
        }
        for (const column of columns) {
          const td = document.createElement("td");
          const v = values[column];
          td.dataset.column = column;
          td.className = "num";
          td.textContent = v === undefined || v === null ? "–" : Number(v).toFixed(3);
          if (role !== "oracle" && v !== undefined && v === best[column]) td.classList.add("best");
          tr.appendChild(td);
        }
        tbody.appendChild(tr);
      });
    }
  }

  // ------------------------------------------------------------------ wiring

  function saveKey(event) {
    event.preventDefault();
    const input = $("api-key");
    const key = input.value.trim();
    if (!key) {
      showMessage("Paste the API key you were given into the key field.");
      return;
    }
    window.sessionStorage.setItem(KEY_STORAGE, key);
    input.value = "";
    showKeyState();
    clearMessage();
    loadStatus();
  }

  function forgetKey() {
    window.sessionStorage.removeItem(KEY_STORAGE);
    showKeyState();
    showMessage("Key forgotten for this tab.", "info");
  }

  function start() {
    $("key-form").addEventListener("submit", saveKey);
    $("key-forget").addEventListener("click", forgetKey);
    $("list-form").addEventListener("submit", pullList);
    $("saved-form").addEventListener("submit", openSaved);
    $("download").addEventListener("click", downloadCsv);
    $("measure-form").addEventListener("submit", measureList);
    $("refresh-status").addEventListener("click", loadStatus);
    for (const id of ["filter-tier", "filter-action", "filter-group"]) {
      $(id).addEventListener("change", () => {
        state.page = 0;
        render();
      });
    }
    $("page-size").addEventListener("change", () => {
      state.pageSize = Number($("page-size").value);
      state.page = 0;
      render();
    });
    $("page-prev").addEventListener("click", () => {
      state.page = Math.max(0, state.page - 1);
      render();
    });
    $("page-next").addEventListener("click", () => {
      state.page += 1;
      render();
    });
    showKeyState();
    if (storedKey()) loadStatus();
    document.body.dataset.ready = "true";
  }

  // Read-only view for people debugging in the browser's console (and the browser test).
  window.winbackConsole = {
    currentList: () => (state.list ? JSON.parse(JSON.stringify(state.list)) : null),
    currentMeasurement: () =>
      state.measurement ? JSON.parse(JSON.stringify(state.measurement)) : null,
  };

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
