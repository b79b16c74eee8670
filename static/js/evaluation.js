/* 考评 (/evaluation): a period's ranking, its charts, the "what if" weighting, the published
 * versions and the drill-down from a street's three rates to its communities, grids and cases.
 *
 * Everything comes from the APIs: /api/evaluation/schemes, /periods/<label> (what the caller
 * may see: a commander gets every street's public row and its own street's detail only),
 * /periods/<label>/what-if, /versions, /publish, and /api/evaluation/drill. Every value is
 * put into the page as text (textContent): no HTML is built from data. The charts are
 * ECharts (vendored), their tooltips drawn on the canvas (no HTML either).
 * When the ranking and the chart are drawn, #ev-main gets data-ready="true". */
(function () {
  "use strict";
  const config = JSON.parse(document.getElementById("bd-config").textContent);
  const $ = (id) => document.getElementById(id);
  const API = "/api/evaluation";
  const PARTS = ["internal", "survey", "hotline"];
  const PART_NAMES = { internal: "内部评价", survey: "满意度测评", hotline: "接诉即办" };
  const ASPECTS = ["tasks", "law", "party", "work", "bonus"];
  const ASPECT_NAMES = {
    tasks: "任务完成",
    law: "依法行政及综合管理",
    party: "党群工作",
    work: "工作评价",
    bonus: "加扣分项",
  };
  const LEVEL_NAMES = { district: "全区", street: "街道", community: "社区", grid: "网格" };
  const DISTRICT = { level: "district", code: "*", name: "全区" };
  const state = { scheme: null, label: null, version: "", versions: [], result: null, selected: null, drill: [] };
  let compositeChart = null;
  let aspectsChart = null;
  let whatIfTimer = null;
  let whatIfAsked = 0;

  /* ---------- helpers ---------- */
  const { el, clear } = window.BD_DOM; // static/js/dom.js
  async function api(url, options) {
    const response = await fetch(
      url,
      Object.assign({ headers: { Accept: "application/json" }, credentials: "same-origin" }, options || {})
    );
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      const error = new Error(body.message || response.statusText || String(response.status));
      error.status = response.status;
      throw error;
    }
    return body;
  }
  function error(text) {
    $("ev-error").textContent = text || "";
  }
  const has = (v) => v !== null && v !== undefined;
  const fixed = (v, digits) => (has(v) && Number.isFinite(Number(v)) ? Number(v).toFixed(digits) : "—");
  const percent = (v) => (has(v) && Number.isFinite(Number(v)) ? (100 * Number(v)).toFixed(1) + "%" : "—");
  const streetName = (s) => s.name || s.code;
  /* Whether the answer carries the street's detail (a commander's: its own street only). */
  const detailed = (s) => Object.prototype.hasOwnProperty.call(s, "internal");

  /* ---------- periods ---------- */
  function pad(n) {
    return String(n).padStart(2, "0");
  }
  /* The labels of the last `count` periods of the scheme's kind, newest first, ending with
   * the one that holds `today` (labels as the evaluation API reads them: 2026-11, 2026Q4,
   * 2026; a window period — the 19th to the 18th — is labelled by the month it ends in). */
  function periodLabels(kind, startDay, today, count) {
    let [y, m, d] = today.split("-").map(Number);
    if (kind === "window" && startDay > 1 && d >= startDay) {
      // From the 19th on, today lies in the period that ends next month (and is named so).
      y += m === 12 ? 1 : 0;
      m = (m % 12) + 1;
    }
    const out = [];
    for (let i = 0; i < count; i++) {
      if (kind === "year") out.push(String(y - i));
      else if (kind === "quarter") {
        const q = Math.floor((m - 1) / 3) - i;
        const year = y + Math.floor(q / 4);
        out.push(year + "Q" + ((((q % 4) + 4) % 4) + 1));
      } else {
        const month = m - 1 - i;
        const year = y + Math.floor(month / 12);
        out.push(year + "-" + pad((((month % 12) + 12) % 12) + 1));
      }
    }
    return out;
  }
  async function loadScheme() {
    try {
      const body = await api(API + "/schemes");
      const list = Array.isArray(body) ? body : body.schemes || [];
      state.scheme = list.length ? list[0] : null;
      state.noScheme = !list.length;
      if (state.scheme && !state.scheme.body && state.scheme.code) {
        state.scheme = await api(API + "/schemes/" + encodeURIComponent(state.scheme.code)).catch(() => state.scheme);
      }
    } catch (e) {
      state.scheme = null; // a commander may read no scheme: months, and the API's answer
    }
    const body = (state.scheme && (state.scheme.body || state.scheme)) || {};
    const kind = (body.period && body.period.kind) || "month";
    const select = $("ev-period");
    clear(select);
    const startDay = (body.period && Number(body.period.start_day)) || 1;
    periodLabels(kind, startDay, config.today, kind === "year" ? 5 : 12).forEach((label) =>
      select.appendChild(el("option", { value: label, text: label }))
    );
    const params = new URLSearchParams(window.location.search);
    const wanted = params.get("period");
    if (wanted && ![...select.options].some((o) => o.value === wanted)) {
      select.insertBefore(el("option", { value: wanted, text: wanted }), select.firstChild);
    }
    select.value = wanted || select.options[0].value;
    state.label = select.value;
  }
  function schemeQuery(extra) {
    const q = new URLSearchParams(extra || {});
    if (state.scheme && state.scheme.code) q.set("scheme", state.scheme.code);
    const text = q.toString();
    return text ? "?" + text : "";
  }

  /* ---------- the ranking ---------- */
  function changeCell(change) {
    if (!has(change) || change === 0) return el("td", { class: "ev-change", text: has(change) ? "—" : "" });
    const up = change > 0;
    return el("td", { class: "ev-change " + (up ? "ev-up" : "ev-down"), text: (up ? "▲" : "▼") + Math.abs(change) });
  }
  function rateCell(street, name) {
    const td = el("td", { class: "ev-rate", "data-rate": name });
    const value = street.rates ? street.rates[name] : undefined;
    if (!street.rates) {
      td.textContent = "—";
      return td;
    }
    td.appendChild(
      el("button", {
        type: "button",
        class: "ev-link ev-drill",
        text: percent(value),
        title: "查看各社区的三率",
        onclick: () => openDrill([DISTRICT, { level: "street", code: street.code, name: streetName(street) }]),
      })
    );
    return td;
  }
  function drawRanking(result) {
    const tbody = $("ev-ranking").querySelector("tbody");
    clear(tbody);
    result.streets.forEach((s) => {
      const detail = detailed(s);
      const survey = has(s.survey) ? fixed(s.survey, 2) + (has(s.survey_margin) ? " ± " + fixed(s.survey_margin, 2) : "") : "—";
      const nameCell = el("td", { class: "ev-name" });
      if (s.aspects) {
        nameCell.appendChild(
          el("button", { type: "button", class: "ev-link", text: streetName(s), onclick: () => selectStreet(s.code) })
        );
      } else nameCell.textContent = streetName(s);
      const row = el(
        "tr",
        { "data-code": s.code, "data-detail": detail ? "true" : "false" },
        el("td", { class: "ev-rank", text: has(s.rank) ? String(s.rank) : "—" }),
        changeCell(s.rank_change),
        el("td", {}, s["class"] ? el("span", { class: "ev-class ev-class-" + s["class"], text: s["class"] }) : ""),
        nameCell,
        el("td", { class: "ev-composite", text: fixed(s.composite, 2) }),
        el("td", { class: "ev-internal", text: fixed(s.internal, 2) }),
        el("td", { class: "ev-survey", text: survey }),
        el("td", { class: "ev-hotline", text: fixed(s.hotline, 2) }),
        rateCell(s, "response_rate"),
        rateCell(s, "resolution_rate"),
        rateCell(s, "satisfaction_rate")
      );
      if (s.code === state.selected) row.classList.add("ev-selected");
      tbody.appendChild(row);
    });
  }

  /* ---------- charts ---------- */
  function chart(id, current) {
    if (current) return current;
    return window.echarts.init($(id), null, { renderer: "canvas" });
  }
  function drawComposite(result) {
    compositeChart = chart("ev-chart-composite", compositeChart);
    const streets = result.streets;
    const parts = result.parts || {};
    const names = streets.map(streetName);
    const series = PARTS.map((p) => ({
      name: PART_NAMES[p],
      type: "bar",
      stack: "composite",
      data: streets.map((s) => (has(s[p]) && has(parts[p]) ? Number(((s[p] * parts[p]) / 100).toFixed(2)) : null)),
    }));
    // Streets whose parts the caller may not see (a commander: the others): their composite.
    if (streets.some((s) => !detailed(s))) series.push({
      name: "综合得分",
      type: "bar",
      stack: "composite",
      data: streets.map((s) => (detailed(s) || !has(s.composite) ? null : s.composite)),
    });
    compositeChart.setOption(
      {
        animation: false,
        tooltip: { trigger: "axis", renderMode: "richText" },
        legend: { top: 0 },
        grid: { left: 48, right: 16, top: 32, bottom: 90 },
        xAxis: { type: "category", data: names, axisLabel: { rotate: 45, interval: 0 } },
        yAxis: { type: "value", name: "分" },
        series: series,
      },
      true
    );
  }
  function selectStreet(code) {
    state.selected = code;
    document.querySelectorAll("#ev-ranking tbody tr").forEach((tr) => tr.classList.toggle("ev-selected", tr.dataset.code === code));
    drawAspects(state.result);
  }
  function drawAspects(result) {
    const street = result.streets.find((s) => s.code === state.selected && s.aspects) || result.streets.find((s) => s.aspects);
    aspectsChart = chart("ev-chart-aspects", aspectsChart);
    if (!street) {
      aspectsChart.clear();
      $("ev-aspects-street").textContent = "";
      $("ev-aspects-note").textContent = "无可查看的街道明细。";
      return;
    }
    state.selected = street.code;
    $("ev-aspects-street").textContent = streetName(street);
    $("ev-aspects-note").textContent = street.missing && street.missing.length ? "缺少评分：" + street.missing.join("、") : "";
    aspectsChart.setOption(
      {
        animation: false,
        tooltip: { trigger: "axis", renderMode: "richText" },
        grid: { left: 130, right: 24, top: 16, bottom: 24 },
        xAxis: { type: "value", name: "分" },
        yAxis: { type: "category", inverse: true, data: ASPECTS.map((a) => ASPECT_NAMES[a]) },
        series: [{ type: "bar", name: "得分", label: { show: true, position: "right" }, data: ASPECTS.map((a) => (has(street.aspects[a]) ? street.aspects[a] : null)) }],
      },
      true
    );
  }

  /* ---------- versions and publishing ---------- */
  /* The badge: the version shown (a publication), or for the live result the period's
   * latest publication, if any (已发布 vN), else 未发布. */
  function drawPublished(result) {
    const badge = $("ev-published");
    const latest = state.versions.reduce((a, v) => (v.version > (a ? a.version : 0) ? v : a), null);
    const shown = result.published || latest;
    if (shown) {
      badge.textContent = "已发布 v" + shown.version;
      badge.classList.add("ev-published");
      badge.title =
        (result.published ? "" : "当前显示实时结果；") +
        "v" + shown.version + " 发布于 " + (shown.published_at || "") +
        (shown.published_by ? "，发布人 " + shown.published_by : "");
    } else {
      badge.textContent = "未发布";
      badge.classList.remove("ev-published");
      badge.title = "实时计算，尚未发布";
    }
  }
  async function loadVersions() {
    const select = $("ev-version");
    clear(select);
    select.appendChild(el("option", { value: "", text: config.role === "commander" ? "最新发布" : "实时结果" }));
    try {
      const body = await api(API + "/periods/" + encodeURIComponent(state.label) + "/versions" + schemeQuery());
      const list = Array.isArray(body) ? body : body.versions || body.publications || [];
      state.versions = list;
      list.forEach((v) =>
        select.appendChild(el("option", { value: String(v.version), text: "v" + v.version + (v.published_at ? " · " + v.published_at.slice(0, 10) : "") }))
      );
    } catch (e) {
      state.versions = []; // no versions for this caller: the live or latest answer only
    }
    select.value = state.version;
  }
  async function publish() {
    const button = $("ev-publish");
    button.disabled = true;
    error("");
    try {
      const body = await api(API + "/periods/" + encodeURIComponent(state.label) + "/publish" + schemeQuery(), { method: "POST" });
      state.version = "";
      await loadVersions();
      await loadPeriod();
      $("bd-status").textContent = "已发布" + (body && body.published ? " v" + body.published.version : "");
    } catch (e) {
      error("发布失败：" + e.message);
    } finally {
      button.disabled = false;
    }
  }

  /* ---------- what if ---------- */
  function weights() {
    const out = {};
    PARTS.forEach((p) => (out[p] = Number($("ev-w-" + p).value)));
    return out;
  }
  function setWeights(parts) {
    PARTS.forEach((p) => {
      const v = has(parts[p]) ? parts[p] : 0;
      $("ev-w-" + p).value = v;
      $("ev-w-" + p + "-range").value = v;
    });
    showSum();
  }
  function showSum() {
    const w = weights();
    const sum = PARTS.reduce((a, p) => a + (Number.isFinite(w[p]) ? w[p] : 0), 0);
    const node = $("ev-w-sum");
    node.textContent = "合计 " + sum + (sum === 100 ? "" : "（应为 100）");
    node.className = sum === 100 ? "" : "bd-error";
  }
  function scheduleWhatIf() {
    showSum();
    clearTimeout(whatIfTimer);
    whatIfTimer = setTimeout(loadWhatIf, 150);
  }
  async function loadWhatIf() {
    const asked = ++whatIfAsked;
    const q = {};
    Object.entries(weights()).forEach(([k, v]) => (q[k] = String(v)));
    const section = $("ev-whatif");
    try {
      const body = await api(API + "/periods/" + encodeURIComponent(state.label) + "/what-if" + schemeQuery(q));
      if (asked !== whatIfAsked) return; // a newer weighting was asked meanwhile
      drawWhatIf(body);
      section.dataset.weights = PARTS.map((p) => q[p]).join(",");
      section.dataset.ready = "true";
    } catch (e) {
      if (asked !== whatIfAsked) return;
      clear($("ev-what-if").querySelector("tbody"));
      $("ev-w-sum").textContent = "无法计算：" + e.message;
      $("ev-w-sum").className = "bd-error";
    }
  }
  function byRank(rows) {
    return rows.slice().sort((a, b) => (has(a.rank) ? a.rank : 1e9) - (has(b.rank) ? b.rank : 1e9) || String(a.code).localeCompare(String(b.code)));
  }
  function drawWhatIf(body) {
    const names = {};
    (state.result ? state.result.streets : []).forEach((s) => (names[s.code] = streetName(s)));
    const current = byRank(body.current || []);
    const whatIf = byRank(body.what_if || []);
    const before = {};
    current.forEach((s) => (before[s.code] = s.rank));
    const left = $("ev-current").querySelector("tbody");
    clear(left);
    current.forEach((s) =>
      left.appendChild(
        el("tr", { "data-code": s.code }, el("td", { text: has(s.rank) ? String(s.rank) : "—" }), el("td", { text: s.name || names[s.code] || s.code }), el("td", { text: fixed(s.composite, 2) }))
      )
    );
    const right = $("ev-what-if").querySelector("tbody");
    clear(right);
    whatIf.forEach((s) => {
      const move = has(before[s.code]) && has(s.rank) ? before[s.code] - s.rank : 0;
      const moveCell = el("td", { class: move > 0 ? "ev-up" : move < 0 ? "ev-down" : "", text: move > 0 ? "▲" + move : move < 0 ? "▼" + -move : "—" });
      const row = el("tr", { "data-code": s.code, "data-move": String(move) }, el("td", { text: has(s.rank) ? String(s.rank) : "—" }), el("td", { text: s.name || names[s.code] || s.code }), el("td", { text: fixed(s.composite, 2) }), moveCell);
      if (move !== 0) row.classList.add("ev-moved");
      right.appendChild(row);
    });
  }

  /* ---------- drill-down ---------- */
  async function openDrill(path) {
    state.drill = path;
    const here = path[path.length - 1];
    const section = $("ev-drill");
    section.hidden = false;
    section.dataset.ready = "false";
    const crumbs = $("ev-drill-path");
    clear(crumbs);
    path.forEach((step, i) => {
      if (i) crumbs.appendChild(document.createTextNode(" › "));
      if (i < path.length - 1) crumbs.appendChild(el("button", { type: "button", class: "ev-link", text: step.name || step.code, onclick: () => openDrill(path.slice(0, i + 1)) }));
      else crumbs.appendChild(el("span", { text: step.level === "district" ? "全区各街道" : (LEVEL_NAMES[step.level] || "") + " " + (step.name || step.code) }));
    });
    const q = new URLSearchParams({ level: here.level, code: here.code });
    const period = state.result && state.result.period;
    if (period && period.since) q.set("since", period.since);
    if (period && period.until) q.set("until", period.until);
    const tbody = $("ev-drill-table").querySelector("tbody");
    clear(tbody);
    try {
      const body = await api(API + "/drill?" + q.toString());
      const rows = body.children.length ? body.children : [Object.assign({ code: body.code, name: body.name, cases: body.cases }, body.total)];
      rows.forEach((c) => {
        const name = el("td", {});
        if (body.child_level && body.children.length) {
          name.appendChild(el("button", { type: "button", class: "ev-link", text: c.name || c.code, onclick: () => openDrill(path.concat([{ level: body.child_level, code: c.code, name: c.name || c.code }])) }));
        } else name.textContent = c.name || c.code;
        tbody.appendChild(
          el(
            "tr",
            { "data-code": c.code },
            name,
            el("td", { class: "ev-requests", text: String(c.requests) }),
            el("td", { class: "ev-callbacks", text: String(c.callbacks) }),
            el("td", { class: "ev-response", text: percent(c.response_rate) }),
            el("td", { class: "ev-resolution", text: percent(c.resolution_rate) }),
            el("td", { class: "ev-satisfaction", text: percent(c.satisfaction_rate) }),
            el("td", { text: fixed(c.composite, 2) }),
            el("td", {}, c.cases ? el("a", { href: c.cases, text: "案件", target: "_blank", rel: "noopener" }) : "")
          )
        );
      });
      section.dataset.level = body.level;
      section.dataset.ready = "true";
    } catch (e) {
      tbody.appendChild(el("tr", {}, el("td", { colSpan: 8, class: "bd-error", text: "无法下钻：" + e.message })));
      section.dataset.ready = "error";
    }
  }

  /* ---------- departments and data-quality guards (the period's window) ---------- */
  const GUARD_COLUMNS = [
    ["rate", "response_rate"],
    ["guard", "bounced"],
    ["rate", "resolution_rate"],
    ["guard", "quick_close"],
    ["guard", "repeat"],
    ["rate", "satisfaction_rate"],
    ["guard", "no_callback"],
  ];
  function windowQuery(extra) {
    const period = state.result && state.result.period;
    return new URLSearchParams(Object.assign({ since: period.since, until: period.until }, extra || {})).toString();
  }
  async function loadGuards() {
    $("ev-guards-section").dataset.ready = "false";
    const tbody = $("ev-guards").querySelector("tbody");
    const note = $("ev-guards-note");
    clear(tbody);
    note.textContent = "";
    try {
      const body = await api(API + "/guards?" + windowQuery());
      const names = {};
      (state.result ? state.result.streets : []).forEach((s) => (names[s.code] = streetName(s)));
      body.streets.forEach((s) => {
        const row = el("tr", { "data-code": s.code }, el("td", { text: s.name || names[s.code] || s.code }));
        GUARD_COLUMNS.forEach(([kind, name]) => {
          if (kind === "rate") {
            row.appendChild(el("td", { text: percent(s.rates ? s.rates[name] : null) }));
            return;
          }
          const n = s.counts ? s.counts[name] || 0 : 0;
          const td = el("td", { class: "ev-guard", "data-guard": name });
          if (n > 0) {
            const href = API + "/guards/" + encodeURIComponent(name) + "?" + windowQuery({ street: s.code });
            td.appendChild(el("a", { href: href, class: "ev-guard-hit", text: String(n), target: "_blank", rel: "noopener", title: (body.guards[name] || {}).name || name }));
          } else td.textContent = "0";
          row.appendChild(td);
        });
        tbody.appendChild(row);
      });
      $("ev-guards-section").dataset.ready = "true";
    } catch (e) {
      note.textContent = "无法读取数据质量提示：" + e.message;
      $("ev-guards-section").dataset.ready = "error";
    }
  }
  async function loadDepartments() {
    $("ev-departments-section").dataset.ready = "false";
    const tbody = $("ev-departments").querySelector("tbody");
    const note = $("ev-departments-note");
    clear(tbody);
    note.textContent = "";
    try {
      const body = await api(API + "/departments?" + windowQuery());
      body.departments.forEach((d) => {
        const w = d.whistles || {};
        tbody.appendChild(
          el(
            "tr",
            { "data-code": d.code },
            el("td", { text: has(d.rank) ? String(d.rank) : "—" }),
            el("td", { class: "ev-dept-score", text: fixed(d.score, 2) }),
            el("td", { text: d.title || d.name || d.code }),
            el("td", { text: percent(d.rating_rate) + (d.rated ? "（" + d.rated + " 次评价）" : "") }),
            el("td", { text: (w.arrived || 0) + "/" + (w.summoned || 0) }),
            el("td", { text: fixed(w.mean_delay_minutes, 1) }),
            el("td", { text: percent(d.on_time_rate) }),
            el("td", { text: percent(d.return_rate) }),
            el("td", { text: String(d.cases ? d.cases.dispatched : 0) })
          )
        );
      });
      if (!body.departments.length) note.textContent = "本期没有派单或吹哨记录。";
      $("ev-departments-section").dataset.ready = "true";
    } catch (e) {
      note.textContent = "无法读取部门评价：" + e.message;
      $("ev-departments-section").dataset.ready = "error";
    }
  }

  /* ---------- the period ---------- */
  async function loadPeriod() {
    const main = $("ev-main");
    main.dataset.ready = "false";
    error("");
    const q = state.version ? { version: state.version } : {};
    let result;
    try {
      result = await api(API + "/periods/" + encodeURIComponent(state.label) + schemeQuery(q));
    } catch (e) {
      state.result = null;
      clear($("ev-ranking").querySelector("tbody"));
      if (compositeChart) compositeChart.clear();
      if (aspectsChart) aspectsChart.clear();
      error(e.status === 404 ? "本期考评尚未发布或不存在（" + e.message + "）" : "无法读取考评：" + e.message);
      $("ev-whatif").hidden = true;
      main.dataset.ready = "empty";
      return;
    }
    state.result = result;
    $("ev-scheme").textContent = result.scheme ? result.scheme.name + " v" + result.scheme.version : "";
    $("ev-window").textContent = result.period ? result.period.since + " 至 " + result.period.until : "";
    drawPublished(result);
    drawRanking(result);
    drawComposite(result);
    drawAspects(result);
    // What if: over every street's parts, so only for a caller who sees them all.
    const hasDetail = result.streets.length > 0 && result.streets.every(detailed);
    $("ev-whatif").hidden = !hasDetail;
    if (hasDetail) {
      // Under the scheme's own weights the what-if is the ranking itself: drawn from the
      // answer; the API is asked only when a weight moves.
      setWeights(result.parts || {});
      const lines = result.streets.map((s) => ({ code: s.code, name: s.name, rank: s.rank, composite: s.composite }));
      drawWhatIf({ current: lines, what_if: lines });
      $("ev-whatif").dataset.weights = PARTS.map((p) => String((result.parts || {})[p])).join(",");
      $("ev-whatif").dataset.ready = "true";
    }
    $("bd-status").textContent = state.label + (result.published ? " · 已发布" : " · 实时");
    main.dataset.ready = "true";
    loadDepartments();
    $("ev-guards-load").hidden = false;
    $("ev-guards-section").dataset.ready = "false";
    clear($("ev-guards").querySelector("tbody"));
  }

  async function start() {
    await loadScheme();
    $("ev-period").addEventListener("change", async (e) => {
      state.label = e.target.value;
      state.version = "";
      $("ev-drill").hidden = true;
      await Promise.all([loadVersions(), loadPeriod()]);
      if (state.result) drawPublished(state.result);
    });
    $("ev-version").addEventListener("change", (e) => {
      state.version = e.target.value;
      loadPeriod();
    });
    PARTS.forEach((p) => {
      $("ev-w-" + p).addEventListener("input", (e) => {
        $("ev-w-" + p + "-range").value = e.target.value;
        scheduleWhatIf();
      });
      $("ev-w-" + p + "-range").addEventListener("input", (e) => {
        $("ev-w-" + p).value = e.target.value;
        scheduleWhatIf();
      });
    });
    $("ev-drill-close").addEventListener("click", () => ($("ev-drill").hidden = true));
    $("ev-drill-district").addEventListener("click", () => openDrill([DISTRICT]));
    $("ev-guards-load").addEventListener("click", () => {
      $("ev-guards-load").hidden = true;
      loadGuards();
    });
    if ($("ev-publish")) $("ev-publish").addEventListener("click", publish);
    window.addEventListener("resize", () => {
      if (compositeChart) compositeChart.resize();
      if (aspectsChart) aspectsChart.resize();
    });
    if (state.noScheme) {
      // Nothing to ask for: the district has stored no scheme yet.
      error("尚未加载考评方案（blockdata evaluation scheme load）");
      $("ev-main").dataset.ready = "empty";
      $("ev-whatif").hidden = true;
      document.body.dataset.ready = "1";
      return;
    }
    await Promise.all([loadVersions(), loadPeriod()]);
    if (!state.result && config.role === "commander" && !new URLSearchParams(window.location.search).get("period")) {
      // A commander reads published periods only: open on the newest one published.
      for (const option of [...$("ev-period").options].slice(1)) {
        state.label = option.value;
        await loadPeriod();
        if (state.result) {
          $("ev-period").value = option.value;
          await loadVersions();
          break;
        }
      }
    }
    if (state.result) drawPublished(state.result); // the versions may have come second
    document.body.dataset.ready = "1"; // the pages' common signal (tests, benches)
  }
  start();
})();
