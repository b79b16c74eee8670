/* The command post (全响应): the case queue, the case drawer, the unit load board and the
 * whistles in progress, on the command page (beside blockdata.js's map and panel) and on the
 * queue page (a department's or the street centre's clerk's; no map).
 *
 * Everything comes from /api/cases and /api/whistles; what a user may do on a case is the
 * API's answer (`actions`, from the state machine's rules), never decided here. Every value
 * from the APIs is put into the page as text (textContent): no HTML is built from data.
 * Live: every BD.liveSeconds the page asks for the queue's `stamp` (it moves with any new
 * case or transition in the filtered set) and redraws what changed, without a reload. */
(function () {
  "use strict";
  const config = JSON.parse(document.getElementById("bd-config").textContent);
  const BD = window.BD || Object.assign({}, config);
  window.BD = BD;
  const $ = (id) => document.getElementById(id);
  const map = BD.map && window.L ? BD.map : null;
  const PAGE_SIZE = 20;
  const DUE = { due_soon: "临期", overdue: "超期", resolved_late: "超期办结" };
  const ROLE_TITLES = { district: "区级指挥中心", commander: "战区司令", clerk: "街道中心", department: "承办单位", grid_officer: "网格员", etl: "数据导入" };
  const RATINGS = ["满意", "基本满意", "不满意"];
  const street = BD.page === "command" ? BD.street : null;

  /* ---------- helpers ---------- */
  const { el, clear } = window.BD_DOM; // static/js/dom.js
  function status(text, error) {
    const s = $("bd-status");
    if (s) {
      s.textContent = text;
      s.classList.toggle("bd-error", !!error);
    }
  }
  async function api(url, options) {
    const response = await fetch(url, Object.assign({ headers: { Accept: "application/json" } }, options || {}));
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      const error = new Error(body.message || response.statusText);
      error.status = response.status;
      throw error;
    }
    return body;
  }
  const when = (iso) =>
    iso
      ? new Date(iso).toLocaleString("zh-CN", { timeZone: BD.tz || "Asia/Shanghai", hour12: false })
      : "—";
  const clockNow = () => new Date().toLocaleTimeString("zh-CN", { timeZone: BD.tz || "Asia/Shanghai", hour12: false });
  function badge(dueState) {
    if (!dueState) return null;
    return el("span", { class: "bd-badge bd-badge-" + dueState, text: DUE[dueState] || dueState, "data-due": dueState });
  }
  /* The point on the map (shifted like every overlay on a GCJ-02 basemap). */
  function latLng(c) {
    if (c.lng === null || c.lng === undefined || c.lat === null || c.lat === undefined) return null;
    const [lng, lat] = BD.shift ? BD.shift(c.lng, c.lat) : [c.lng, c.lat];
    return [lat, lng];
  }

  /* ---------- the district overview: 超期 per street and per unit ---------- */
  if (BD.page === "overview") {
    const row = (name, href, r, key) => {
      const cell = el("td", {}, href ? el("a", { href: href, text: name }) : name);
      return el(
        "tr",
        { "data-code": key },
        cell,
        el("td", { text: String(r.open) }),
        el("td", { class: r.due_soon ? "bd-soon" : "", text: String(r.due_soon) }),
        el("td", { class: r.overdue ? "bd-down" : "", text: String(r.overdue) })
      );
    };
    const overdue = async () => {
      try {
        const data = await api("/api/cases/overdue");
        const streets = clear($("bd-overdue-streets").querySelector("tbody"));
        data.by_street.forEach((r) =>
          streets.appendChild(row(r.name || r.street, BD.mayOpen && BD.mayOpen.command ? "/command/" + encodeURIComponent(r.street) : null, r, r.street))
        );
        const units = clear($("bd-overdue-units").querySelector("tbody"));
        data.by_unit.filter((r) => r.overdue > 0).forEach((r) => units.appendChild(row(r.unit_name, null, r, r.unit)));
        document.body.dataset.overdueReady = "1";
      } catch (e) {
        status("错误：" + e.message, true);
      }
    };
    overdue();
    setInterval(overdue, (BD.liveSeconds || 15) * 1000);
    return;
  }

  /* ---------- the queue ---------- */
  const filters = $("bd-queue-filters");
  const queue = { cursors: [null], page: 0, next: null, stamp: null, rows: [], units: {}, openId: null };
  const markers = map ? L.layerGroup().addTo(map) : null;
  let picked = null;
  function query(extra) {
    const params = new URLSearchParams();
    if (street) params.set("street", street);
    new FormData(filters).forEach((v, k) => {
      if (String(v).trim()) params.set(k, String(v).trim());
    });
    Object.entries(extra || {}).forEach(([k, v]) => v !== null && v !== undefined && params.set(k, v));
    return params;
  }

  const STATE_LABELS = {};
  filters.querySelectorAll("select[name=state] option").forEach((o) => o.value && (STATE_LABELS[o.value] = o.textContent));
  const stateLabel = (state) => STATE_LABELS[state] || state;

  function unitName(code) {
    return (code && queue.units[code]) || code || "—";
  }

  function drawCounts(counts) {
    const box = clear($("bd-queue-counts"));
    Object.entries(counts.by_state || {}).forEach(([state, n]) => {
      box.appendChild(el("span", { class: "bd-count", "data-state": state, text: `${stateLabel(state)} ${n}` }));
    });
    $("bd-queue-total").textContent = `共 ${counts.total ?? 0} 件`;
    document.body.dataset.queueTotal = counts.total ?? 0;
  }

  function drawRows(rows) {
    const body = clear($("bd-queue").querySelector("tbody"));
    rows.forEach((c) => {
      const tr = el(
        "tr",
        { "data-id": c.id, "data-state": c.state, "data-due": c.due_state || "", class: c.id === queue.openId ? "bd-current" : "" },
        el("td", {}, el("a", { href: "#", text: "#" + c.id, "data-id": c.id })),
        el("td", { text: c.category || "—" }),
        el("td", { text: c.state_label }),
        el("td", { text: c.main_unit_name || c.main_unit || "—" }),
        el("td", { text: c.due_at ? when(c.due_at) : "—" }),
        el("td", {}, badge(c.due_state), c.supervised ? el("span", { class: "bd-badge bd-badge-supervised", text: "督办" }) : null)
      );
      tr.addEventListener("click", (e) => {
        e.preventDefault();
        openCase(c.id);
      });
      body.appendChild(tr);
    });
    if (markers) {
      markers.clearLayers();
      rows.forEach((c) => {
        const at = latLng(c);
        if (!at) return;
        const late = c.due_state === "overdue" || c.due_state === "due_soon";
        const marker = late
          ? L.marker(at, {
              icon: L.divIcon({ className: "bd-map-badge bd-badge-" + c.due_state, html: "", iconSize: [34, 18] }),
            })
          : L.circleMarker(at, { radius: 6, color: "#37474f", weight: 2, fillColor: "#90a4ae", fillOpacity: 0.9 });
        if (late) {
          marker.on("add", () => {
            const node = marker.getElement();
            if (node) node.textContent = DUE[c.due_state];
          });
        }
        marker.bindTooltip(() => el("span", { text: `#${c.id} ${c.category || ""} · ${c.state_label}${c.due_state ? " · " + DUE[c.due_state] : ""}` }));
        marker.on("click", () => openCase(c.id));
        markers.addLayer(marker);
      });
      document.body.dataset.queueMarkers = markers.getLayers().length;
    }
    /* Categories and sources seen so far, as choices. */
    const list = $("bd-queue-categories");
    const known = new Set([...list.options].map((o) => o.value));
    rows.forEach((c) => c.category && !known.has(c.category) && (known.add(c.category), list.appendChild(el("option", { value: c.category }))));
    const sources = filters.querySelector("select[name=source]");
    const seen = new Set([...sources.options].map((o) => o.value));
    rows.forEach((c) => c.source && !seen.has(c.source) && (seen.add(c.source), sources.appendChild(el("option", { value: c.source, text: c.source }))));
  }

  async function loadQueue() {
    const cursor = queue.cursors[queue.page];
    const data = await api("/api/cases?" + query({ limit: PAGE_SIZE, cursor: cursor }).toString());
    queue.rows = data.cases;
    queue.next = data.next;
    queue.stamp = data.stamp;
    drawCounts(data.counts);
    drawRows(data.cases);
    $("bd-queue-next").disabled = !data.next;
    $("bd-queue-first").disabled = queue.page === 0;
    $("bd-queue-page").textContent = `第 ${queue.page + 1} 页`;
    document.body.dataset.queueStamp = data.stamp;
  }

  function restart() {
    queue.cursors = [null];
    queue.page = 0;
    loadQueue().catch((e) => status("错误：" + e.message, true));
  }
  filters.addEventListener("change", restart);
  filters.addEventListener("submit", (e) => {
    e.preventDefault();
    restart();
  });
  $("bd-queue-next").addEventListener("click", () => {
    if (!queue.next) return;
    queue.cursors[queue.page + 1] = queue.next;
    queue.page += 1;
    loadQueue().catch((e) => status("错误：" + e.message, true));
  });
  $("bd-queue-first").addEventListener("click", restart);

  /* ---------- the load board ---------- */
  async function loadBoard() {
    const params = new URLSearchParams();
    if (street) params.set("street", street);
    const data = await api("/api/cases/load?" + params.toString());
    const body = clear($("bd-load").querySelector("tbody"));
    const select = filters.querySelector("select[name=unit]");
    const listed = new Set([...select.options].map((o) => o.value));
    data.units.forEach((u) => {
      queue.units[u.unit] = u.unit_name;
      body.appendChild(
        el(
          "tr",
          { "data-unit": u.unit },
          el("td", { text: u.unit_name, title: u.kind_label || "" }),
          el("td", { text: String(u.open) }),
          el("td", { class: u.due_soon ? "bd-soon" : "", text: String(u.due_soon) }),
          el("td", { class: u.overdue ? "bd-down" : "", text: String(u.overdue) })
        )
      );
      if (!listed.has(u.unit)) {
        listed.add(u.unit);
        select.appendChild(el("option", { value: u.unit, text: u.unit_name }));
      }
    });
    if (BD.unit && queue.units[BD.unit] && $("bd-unit")) $("bd-unit").textContent = queue.units[BD.unit];
  }

  /* ---------- whistles in progress ---------- */
  /* The whistles with a unit still to complete and, for the street's roles (the API's
   * `may_rate`), those with a completed unit still to rate (满意 / 基本满意 / 不满意). A
   * redraw keeps what is being typed into a rating form (`drafts`), and the list is redrawn
   * only when the answer changed. */
  const drafts = {};
  let lastWhistles = null;
  const JSON_POST = { Accept: "application/json", "Content-Type": "application/json" };

  function rateForm(w, u) {
    const key = `${w.id}/${u.unit_code}`;
    const draft = drafts[key] || (drafts[key] = { rating: "", comment: "" });
    const rating = el("select", { name: "rating", required: true }, el("option", { value: "", text: "请选择评价" }));
    RATINGS.forEach((r) => rating.appendChild(el("option", { value: r, text: r })));
    rating.value = draft.rating;
    const comment = el("input", { name: "comment", maxLength: 500, placeholder: "评价意见（可选）", value: draft.comment });
    rating.addEventListener("change", () => (draft.rating = rating.value));
    comment.addEventListener("input", () => (draft.comment = comment.value));
    const error = el("span", { class: "bd-error", role: "alert" });
    const form = el("form", { class: "bd-whistle-rate", "data-unit": u.unit_code }, rating, comment, el("button", { type: "submit", text: "评价" }), error);
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      if (!rating.value) {
        error.textContent = "请选择评价";
        return;
      }
      const body = { rating: rating.value };
      if (comment.value.trim()) body.comment = comment.value.trim();
      try {
        await api(`/api/whistles/${w.id}/units/${encodeURIComponent(u.unit_code)}/rating`, {
          method: "POST",
          headers: JSON_POST,
          body: JSON.stringify(body),
        });
        delete drafts[key];
        status(`已评价 · ${clockNow()}`);
        await loadWhistles();
      } catch (err) {
        error.textContent = err.message;
      }
    });
    return form;
  }

  async function loadWhistles() {
    const params = new URLSearchParams({ to_rate: "true" });
    if (street) params.set("street", street);
    const data = await api("/api/whistles?" + params.toString());
    const seen = JSON.stringify(data);
    if (seen === lastWhistles) return;
    lastWhistles = seen;
    const list = clear($("bd-whistles"));
    /* A unit's user (who does not rate) sees the whistles still in progress only. */
    const shown = data.whistles.filter((w) => data.may_rate || w.units.some((u) => !u.completed_at));
    if (!shown.length) list.appendChild(el("li", { class: "bd-note", text: "暂无进行中的吹哨" }));
    shown.forEach((w) => {
      const units = el("ul", { class: "bd-whistle-units" });
      w.units.forEach((u) => {
        const state = u.completed_at ? "已完成" : u.arrived_at ? "已报到" : "未报到";
        const item = el("li", { "data-unit": u.unit_code, "data-rating": u.rating || "" }, `${u.unit_name || u.unit_code}：${state}`);
        if (u.arrival_delay_minutes) item.appendChild(el("span", { class: "bd-down", text: ` 迟到 ${Math.round(u.arrival_delay_minutes)} 分钟` }));
        if (u.rating) {
          item.appendChild(el("span", { class: "bd-whistle-rating", text: ` 评价：${u.rating}${u.rating_comment ? "（" + u.rating_comment + "）" : ""}` }));
        }
        if (BD.unit && u.unit_code === BD.unit && !u.completed_at) {
          const step = u.arrived_at ? "completion" : "arrival";
          const button = el("button", { type: "button", text: u.arrived_at ? "完成" : "报到" });
          button.addEventListener("click", async () => {
            try {
              await api(`/api/whistles/${w.id}/units/${encodeURIComponent(u.unit_code)}/${step}`, { method: "POST" });
              await loadWhistles();
            } catch (e) {
              status("错误：" + e.message, true);
            }
          });
          item.appendChild(button);
        }
        if (data.may_rate && u.completed_at && !u.rating) item.appendChild(rateForm(w, u));
        units.appendChild(item);
      });
      const done = w.units.every((u) => u.completed_at);
      list.appendChild(
        el(
          "li",
          { "data-id": w.id, "data-case": w.case_id || "" },
          el("b", { text: w.reason }),
          done ? el("span", { class: "bd-badge bd-badge-torate", text: "待评价" }) : null,
          el("div", { class: "bd-note", text: `${w.meeting_point} · ${when(w.meet_at)}${w.case_id ? " · 案件 #" + w.case_id : ""}` }),
          units
        )
      );
    });
  }

  /* ---------- the case drawer ---------- */
  const drawer = $("bd-drawer");
  const form = $("bd-action-form");
  let current = null;
  let unitsList = null;

  async function streetUnits(code) {
    if (!unitsList) unitsList = (await api("/api/units")).units.filter((u) => u.active !== false);
    return unitsList.filter((u) => u.street_code === code || u.street_code === null);
  }

  function fact(label, value) {
    return [el("dt", { text: label }), el("dd", { text: value === null || value === undefined || value === "" ? "—" : String(value) })];
  }

  function drawCase(c) {
    current = c;
    queue.openId = c.id;
    drawer.hidden = false;
    drawer.dataset.id = c.id;
    drawer.dataset.state = c.state;
    drawer.dataset.version = c.version;
    drawer.dataset.due = c.due_state || "";
    $("bd-drawer-title").textContent = `案件 #${c.id} · ${c.category || "—"}`;
    const facts = clear($("bd-drawer-facts"));
    const head = el("dd", {}, el("span", { class: "bd-state", text: c.state_label }), " ", badge(c.due_state));
    [el("dt", { text: "状态" }), head].forEach((n) => facts.appendChild(n));
    [
      ...fact("来源", c.source === "enforcement" ? "执法案件" : c.source),
      ...fact("网格", c.grid),
      ...fact("地址", c.address),
      ...fact("内容", c.description),
      ...fact("主办单位", c.main_unit_name || c.main_unit),
      ...fact("协办单位", (c.assisting_units || []).map(unitName).join("、")),
      ...fact("受理时间", when(c.times.received_at)),
      ...fact("办理时限", when(c.due_at)),
      ...(c.extension_due_at ? fact("申请延期至", when(c.extension_due_at)) : []),
      ...(c.supervised ? fact("督办", c.supervise_note) : []),
      ...(c.result ? fact("办理结果", c.result) : []),
      ...(c.return_reason ? fact("退单理由", c.return_reason) : []),
      ...(c.rating ? fact("回访满意度", c.rating) : []),
    ].forEach((n) => facts.appendChild(n));
    /* Photos, when the case lists them (paths on this server only). */
    const photos = clear($("bd-drawer-photos"));
    const shown = (c.photos || [])
      .map((p) => (typeof p === "string" ? p : p && p.url))
      .filter((u) => typeof u === "string" && u.startsWith("/") && !u.startsWith("//"));
    shown.forEach((u) => photos.appendChild(el("a", { href: u, target: "_blank", rel: "noopener" }, el("img", { src: u, alt: "现场照片", loading: "lazy" }))));
    photos.hidden = shown.length === 0;
    /* The actions this user may take now: the API says which. */
    const actions = clear($("bd-drawer-actions"));
    (c.actions || []).forEach((a) => {
      const button = el("button", { type: "button", text: a.label, "data-action": a.action });
      button.addEventListener("click", () => showForm(a));
      actions.appendChild(button);
    });
    /* 吹哨报到: for a role that may blow a whistle on the case (the API's `may_whistle`). */
    if (!(c.actions || []).length) actions.appendChild(el("span", { class: "bd-note", text: "当前状态下无可办理的操作" }));
    /* 吹哨报到: for a role that may blow a whistle on the case (the API's `may_whistle`). */
    const whistle = clear($("bd-drawer-whistle"));
    whistle.hidden = !c.may_whistle;
    if (c.may_whistle) {
      const button = el("button", { type: "button", text: "吹哨报到", class: "bd-whistle-button", "data-action": "whistle" });
      button.addEventListener("click", () => showWhistleForm(c).catch((e) => ($("bd-drawer-error").textContent = e.message)));
      whistle.appendChild(button);
    }
    /* Every transition, oldest first. */
    const timeline = clear($("bd-timeline"));
    c.history.forEach((h) => {
      const who = [h.user, ROLE_TITLES[h.role] || h.role, h.unit ? unitName(h.unit) : null].filter(Boolean).join(" · ");
      const details = [];
      const f = h.fields || {};
      if (f.main_unit) details.push("主办：" + unitName(f.main_unit));
      if (f.result) details.push("结果：" + f.result);
      if (f.reason) details.push("理由：" + f.reason);
      if (f.rating) details.push("满意度：" + f.rating);
      if (f.due_at) details.push("时限：" + when(f.due_at));
      timeline.appendChild(
        el(
          "li",
          { "data-action": h.action },
          el("time", { text: when(h.at) }),
          el("b", { text: ` ${h.action_label} ` }),
          el("span", { class: "bd-note", text: `${stateLabel(h.from_state)} → ${stateLabel(h.to_state)}` }),
          el("div", { text: who }),
          details.length ? el("div", { text: details.join("；") }) : null,
          h.note ? el("div", { class: "bd-note", text: "备注：" + h.note }) : null
        )
      );
    });
    if (!c.history.length) timeline.appendChild(el("li", { class: "bd-note", text: "尚无流转（已受理，待派单）" }));
    document.querySelectorAll("#bd-queue tbody tr").forEach((tr) => tr.classList.toggle("bd-current", Number(tr.dataset.id) === c.id));
    /* The place on the map. */
    if (map) {
      if (picked) map.removeLayer(picked);
      picked = null;
      const at = latLng(c);
      if (at) {
        picked = L.circleMarker(at, { radius: 12, color: "#0d47a1", weight: 3, fillOpacity: 0.1 }).addTo(map);
        map.setView(at, Math.max(map.getZoom(), 16));
      }
    }
  }

  async function openCase(id) {
    form.hidden = true;
    clear(form);
    $("bd-drawer-error").textContent = "";
    try {
      drawCase(await api(`/api/cases/${id}`));
    } catch (e) {
      $("bd-drawer-error").textContent = e.message;
    }
  }
  BD.openCase = openCase; // the search box opens a case found by its number (search.js)

  function field(label, input) {
    return el("label", {}, label, input);
  }

  async function showForm(a) {
    const c = current;
    clear(form);
    $("bd-drawer-error").textContent = "";
    form.hidden = false;
    form.dataset.action = a.action;
    form.appendChild(el("h3", { text: a.label }));
    const collect = [];
    if (a.action === "dispatch" || a.action === "redispatch") {
      const choices = await streetUnits(c.street);
      const main = el("select", { name: "main_unit", required: true }, el("option", { value: "", text: "请选择主办单位" }));
      const assisting = el("select", { name: "assisting_units", multiple: true, size: 4 });
      choices.forEach((u) => {
        main.appendChild(el("option", { value: u.code, text: `${u.name}（${u.kind_label || u.kind}）` }));
        assisting.appendChild(el("option", { value: u.code, text: u.name }));
      });
      form.appendChild(field("主办单位", main));
      form.appendChild(field("协办单位（可多选）", assisting));
      collect.push((body) => {
        if (!main.value) throw new Error("请选择主办单位");
        body.main_unit = main.value;
        body.assisting_units = [...assisting.selectedOptions].map((o) => o.value).filter((v) => v !== main.value);
      });
    } else if (a.action === "resolve") {
      const result = el("textarea", { name: "result", rows: 3, maxLength: 500, required: true });
      form.appendChild(field("办理结果", result));
      collect.push((body) => (body.result = result.value));
    } else if (a.action === "return") {
      const reason = el("textarea", { name: "reason", rows: 2, maxLength: 500, required: true });
      form.appendChild(field("退单理由", reason));
      collect.push((body) => (body.reason = reason.value));
    } else if (a.action === "callback") {
      const boxes = [
        ["valid", "有效回访"],
        ["contacted", "已联系诉求人"],
        ["solved", "问题已解决"],
      ].map(([name, label]) => {
        const box = el("input", { type: "checkbox", name: name, checked: true });
        form.appendChild(el("label", { class: "bd-check" }, box, label));
        return [name, box];
      });
      const rating = el("select", { name: "rating" });
      RATINGS.forEach((r) => rating.appendChild(el("option", { value: r, text: r })));
      form.appendChild(field("满意度", rating));
      collect.push((body) => {
        boxes.forEach(([name, box]) => (body[name] = box.checked));
        body.rating = rating.value;
      });
    } else if (a.action === "extend") {
      const due = el("input", { type: "datetime-local", name: "due_at", required: true });
      form.appendChild(field("申请的新办理时限", due));
      collect.push((body) => {
        if (!due.value) throw new Error("请填写新的办理时限");
        body.due_at = due.value; /* local time in the district's zone (the API's rule) */
      });
    } else if (a.action === "approve_extension") {
      const due = el("input", { type: "datetime-local", name: "due_at" });
      form.appendChild(field("新的办理时限（留空：按申请）", due));
      collect.push((body) => due.value && (body.due_at = due.value));
    }
    const note = el("textarea", { name: "note", rows: 2, maxLength: 500, required: a.action === "supervise" });
    form.appendChild(field(a.action === "supervise" ? "督办意见" : "备注（可选）", note));
    collect.push((body) => note.value.trim() && (body.note = note.value.trim()));
    const cancel = el("button", { type: "button", text: "取消" });
    cancel.addEventListener("click", () => {
      form.hidden = true;
      clear(form);
    });
    form.appendChild(el("p", {}, el("button", { type: "submit", text: "确认" + a.label, class: "bd-primary" }), " ", cancel));
    form.onsubmit = async (e) => {
      e.preventDefault();
      const body = { action: a.action, version: c.version };
      try {
        collect.forEach((f) => f(body));
      } catch (err) {
        $("bd-drawer-error").textContent = err.message;
        return;
      }
      try {
        const after = await api(`/api/cases/${c.id}/transitions`, {
          method: "POST",
          headers: { Accept: "application/json", "Content-Type": "application/json" },
          body: JSON.stringify(body),
        });
        form.hidden = true;
        clear(form);
        drawCase(after);
        status(`已${a.label} · ${clockNow()}`);
        await Promise.all([loadQueue(), loadBoard()]);
      } catch (err) {
        /* 409 (the state or the version moved on) and 403 (not this role's or unit's) carry
         * the API's Chinese message: shown as it is, and the case is read again. */
        $("bd-drawer-error").textContent = err.message;
        if (err.status === 409) {
          try {
            const fresh = await api(`/api/cases/${c.id}`);
            const kept = $("bd-drawer-error").textContent;
            drawCase(fresh);
            $("bd-drawer-error").textContent = kept;
          } catch (ignored) {
            /* the message stays */
          }
        }
      }
    };
  }

  /* 吹哨报到 on the open case: the units to summon (the street's departments and stations,
   * the district departments), the meeting point (the case's address unless changed), the
   * meeting time (local time in the district's zone, as the API reads a time without an
   * offset) and the reason; posted to /api/whistles, the whistles panel then shows it. */
  async function showWhistleForm(c) {
    clear(form);
    $("bd-drawer-error").textContent = "";
    form.hidden = false;
    form.dataset.action = "whistle";
    form.appendChild(el("h3", { text: "吹哨报到" }));
    const choices = (await streetUnits(c.street)).filter((u) => u.kind !== "centre");
    const summon = el("select", { name: "units", multiple: true, size: Math.min(8, Math.max(3, choices.length)) });
    choices.forEach((u) => summon.appendChild(el("option", { value: u.code, text: `${u.name}（${u.kind_label || u.kind}）` })));
    form.appendChild(field("召集单位（可多选，至少一个）", summon));
    const point = el("input", { name: "meeting_point", maxLength: 500, required: true, value: c.address || "" });
    form.appendChild(field("集合地点", point));
    const meet = el("input", { type: "datetime-local", name: "meet_at", required: true });
    form.appendChild(field(`集合时间（${BD.tz || "Asia/Shanghai"} 当地时间）`, meet));
    const reason = el("textarea", { name: "reason", rows: 2, maxLength: 500, required: true, value: `${c.category || "案件"}（案件 #${c.id}）联合处置` });
    form.appendChild(field("事由与说明", reason));
    const cancel = el("button", { type: "button", text: "取消" });
    cancel.addEventListener("click", () => {
      form.hidden = true;
      clear(form);
    });
    form.appendChild(el("p", {}, el("button", { type: "submit", text: "确认吹哨", class: "bd-primary" }), " ", cancel));
    form.onsubmit = async (e) => {
      e.preventDefault();
      const picked = [...summon.selectedOptions].map((o) => o.value);
      const missing = !picked.length ? "请至少选择一个召集单位" : !point.value.trim() ? "请填写集合地点" : !meet.value ? "请填写集合时间" : !reason.value.trim() ? "请填写事由" : null;
      if (missing) {
        $("bd-drawer-error").textContent = missing;
        return;
      }
      const body = {
        street: c.street,
        target_kind: "case",
        case_id: c.id,
        units: picked,
        meeting_point: point.value.trim(),
        meet_at: meet.value /* local time in the district's zone (the API's rule) */,
        reason: reason.value.trim(),
      };
      if (typeof c.lng === "number" && typeof c.lat === "number") Object.assign(body, { lng: c.lng, lat: c.lat });
      try {
        const blown = await api("/api/whistles", { method: "POST", headers: JSON_POST, body: JSON.stringify(body) });
        form.hidden = true;
        clear(form);
        status(`已吹哨，召集 ${blown.units.length} 个单位 · ${clockNow()}`);
        await loadWhistles();
      } catch (err) {
        $("bd-drawer-error").textContent = err.message;
      }
    };
  }

  $("bd-drawer-close").addEventListener("click", () => {
    drawer.hidden = true;
    queue.openId = null;
    current = null;
    if (picked && map) map.removeLayer(picked);
    picked = null;
  });

  /* ---------- live ---------- */
  let polls = 0;
  async function poll() {
    try {
      const data = await api("/api/cases?" + query({ limit: 1 }).toString());
      /* A change (a new case, a transition) moves the stamp; time alone moves the due
       * states (临期 → 超期): every fourth poll redraws anyway. */
      if (data.stamp !== queue.stamp || ++polls % 4 === 0) {
        await Promise.all([loadQueue(), loadBoard(), loadWhistles()]);
        if (current && form.hidden) {
          const fresh = await api(`/api/cases/${current.id}`);
          if (fresh.version !== current.version || fresh.due_state !== current.due_state) drawCase(fresh);
        }
      }
      if (BD.page === "queue") status("更新于 " + clockNow());
    } catch (e) {
      status("错误：" + e.message, true);
    }
  }

  async function start() {
    await loadBoard();
    await Promise.all([loadQueue(), loadWhistles()]);
    document.body.dataset.postReady = "1";
    if (BD.page === "queue") {
      status("更新于 " + clockNow());
      document.body.dataset.ready = "1";
    }
    setInterval(poll, (BD.liveSeconds || 15) * 1000);
  }
  start().catch((e) => status("错误：" + e.message, true));
})();
