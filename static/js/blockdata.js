/* Blockdata pages: layers, panels and live updates on top of the folium map.
 * All data comes from the JSON APIs; nothing is loaded from outside this server.
 * The page's settings arrive as JSON in #bd-config (no inline script: the CSP forbids it).
 * Every value from the APIs goes into the page as text (textContent) or through BD.esc. */
(function () {
  "use strict";
  const BD = Object.assign(window.BD || {}, JSON.parse(document.getElementById("bd-config").textContent));
  window.BD = BD;
  BD.map = window[BD.map];
  const map = BD.map;
  const $ = (id) => document.getElementById(id);
  const overlays = {};
  let layerControl = null;

  /* ---------- helpers ---------- */
  BD.fetchJSON = async function (url) {
    const response = await fetch(url, { headers: { Accept: "application/json" } });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      const message = body.message || response.statusText;
      BD.status("错误：" + message, true);
      throw new Error(message);
    }
    return body;
  };
  BD.status = function (text, error) {
    const el = $("bd-status");
    if (el) {
      el.textContent = text;
      el.classList.toggle("bd-error", !!error);
    }
  };
  const pct = (v) => (v === null || v === undefined ? "—" : (v * 100).toFixed(1) + "%");
  /* The time now on the district's clock (BD.tz), whatever the browser's own time zone. */
  const clockNow = () =>
    new Date().toLocaleTimeString("zh-CN", { timeZone: BD.tz || "Asia/Shanghai", hour12: false });
  const num = (v) => (v === null || v === undefined ? "—" : Number(v).toLocaleString("zh-CN"));
  const score = (v) => (v === null || v === undefined ? "—" : Number(v).toFixed(1));
  const change = (v, scale) => {
    if (v === null || v === undefined) return "";
    const x = v * (scale || 1);
    const arrow = x > 0 ? "↑" : x < 0 ? "↓" : "→";
    return `<span class="${x > 0 ? "bd-up" : x < 0 ? "bd-down" : ""}">${arrow} ${Math.abs(x).toFixed(1)}</span>`;
  };
  const rankChange = (v) => {
    if (v === null || v === undefined) return "";
    const arrow = v > 0 ? "↑" : v < 0 ? "↓" : "→";
    return `<span class="${v > 0 ? "bd-up" : v < 0 ? "bd-down" : ""}" title="较上月名次变化">${arrow}${Math.abs(v)}</span>`;
  };
  /* The one escape for every string put into HTML (tooltips, popups, tables, lists). */
  const esc = (s) =>
    String(s === null || s === undefined ? "—" : s).replace(/[&<>"'`]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;", "`": "&#96;" })[c]);
  BD.esc = esc;
  const commandUrl = (code) => "/command/" + encodeURIComponent(code);
  /* Calendar days n before BD.today (the district's local date, from the server's clock):
   * pure date arithmetic in UTC, so that the browser's own clock and time zone play no part
   * (local midnight east of UTC is the previous day in toISOString). */
  const daysAgo = (n) => {
    const d = new Date(BD.today + "T00:00:00Z");
    d.setUTCDate(d.getUTCDate() - n);
    return d.toISOString().slice(0, 10);
  };

  /* GCJ-02 basemaps: shift every overlay the same way (WGS84 → GCJ-02). */
  function outOfChina(lng, lat) {
    return lng < 72.004 || lng > 137.8347 || lat < 0.8293 || lat > 55.8271;
  }
  function gcj(lng, lat) {
    if (BD.basemapCrs !== "gcj02" || outOfChina(lng, lat)) return [lng, lat];
    const a = 6378245.0, ee = 0.00669342162296594323, x = lng - 105.0, y = lat - 35.0;
    let dLat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * Math.sqrt(Math.abs(x));
    dLat += ((20.0 * Math.sin(6.0 * x * Math.PI) + 20.0 * Math.sin(2.0 * x * Math.PI)) * 2.0) / 3.0;
    dLat += ((20.0 * Math.sin(y * Math.PI) + 40.0 * Math.sin((y / 3.0) * Math.PI)) * 2.0) / 3.0;
    dLat += ((160.0 * Math.sin((y / 12.0) * Math.PI) + 320 * Math.sin((y * Math.PI) / 30.0)) * 2.0) / 3.0;
    let dLng = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * Math.sqrt(Math.abs(x));
    dLng += ((20.0 * Math.sin(6.0 * x * Math.PI) + 20.0 * Math.sin(2.0 * x * Math.PI)) * 2.0) / 3.0;
    dLng += ((20.0 * Math.sin(x * Math.PI) + 40.0 * Math.sin((x / 3.0) * Math.PI)) * 2.0) / 3.0;
    dLng += ((150.0 * Math.sin((x / 12.0) * Math.PI) + 300.0 * Math.sin((x / 30.0) * Math.PI)) * 2.0) / 3.0;
    const radLat = (lat / 180.0) * Math.PI;
    let magic = Math.sin(radLat);
    magic = 1 - ee * magic * magic;
    const sqrtMagic = Math.sqrt(magic);
    dLat = (dLat * 180.0) / (((a * (1 - ee)) / (magic * sqrtMagic)) * Math.PI);
    dLng = (dLng * 180.0) / ((a / sqrtMagic) * Math.cos(radLat) * Math.PI);
    return [lng + dLng, lat + dLat];
  }
  BD.shift = gcj;
  function shiftCoords(c) {
    return typeof c[0] === "number" ? gcj(c[0], c[1]) : c.map(shiftCoords);
  }
  function shiftGeoJSON(fc) {
    if (BD.basemapCrs !== "gcj02") return fc;
    (fc.features || []).forEach((f) => {
      if (f.geometry) f.geometry.coordinates = shiftCoords(f.geometry.coordinates);
    });
    return fc;
  }
  BD.shiftGeoJSON = shiftGeoJSON;

  /* An element with its text as textContent (never HTML made of data). */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => {
      if (v === null || v === undefined) return;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else node.setAttribute(k, v);
    });
    children.forEach((c) => c !== null && c !== undefined && node.appendChild(typeof c === "string" ? document.createTextNode(c) : c));
    return node;
  }
  BD.el = el;

  /* An instant as the district's local time (BD.tz), whatever the browser's zone: 2026-11-18 15:00. */
  const timeParts = new Intl.DateTimeFormat("en-CA", {
    timeZone: BD.tz || "Asia/Shanghai", year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", hourCycle: "h23",
  });
  function localTime(value) {
    const d = new Date(value);
    if (Number.isNaN(d.getTime())) return String(value);
    const p = {};
    timeParts.formatToParts(d).forEach((x) => (p[x.type] = x.value));
    return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}`;
  }
  BD.localTime = localTime;

  /* A unit's name (a grid: its label) in the page's scope, or null when the page has none. */
  const unitName = (level, code) => ((BD.names || {})[level] || {})[code] || null;
  /* A field's value in words: names for codes, local times, 是/否, sources and placements by
   * name; null when there is nothing to say. */
  function words(layerName, key, value) {
    if (value === null || value === undefined || value === "") return null;
    const kind = ((BD.layers[layerName] || {}).kinds || {})[key];
    if (kind === "street" || kind === "community" || kind === "grid" || kind === "lane") return unitName(kind, value);
    if (kind === "source") return (BD.sourceNames || {})[value] || String(value);
    if (kind === "quality") return (BD.qualityNames || {})[value] || String(value);
    if (kind === "time") return localTime(value);
    if (kind === "list") return Array.isArray(value) ? value.join("、") : String(value);
    if (kind === "bool" || typeof value === "boolean") return value ? "是" : "否";
    return String(value);
  }
  BD.words = words;
  /* What a feature is called: its name, a grid its label. */
  function featureName(layerName, props) {
    if (props.name) return props.name;
    const kind = ((BD.layers[layerName] || {}).kinds || {}).code;
    return kind ? unitName(kind, props.code) : null;
  }
  /* Extra properties the APIs add to a layer's fields, in words. */
  const EXTRA = { overdue: "超期", state: "截至所选日期", schedule: "进度安排" };

  function popup(layerName, props) {
    const layer = BD.layers[layerName] || { labels: {}, kinds: {} };
    const labels = layer.labels || {};
    const name = featureName(layerName, props);
    const rows = [];
    (layer.order || Object.keys(labels)).forEach((k) => {
      if (k === "id" || k === "name" || (k === "code" && (layer.kinds || {}).code)) return;
      const text = words(layerName, k, props[k]);
      if (text !== null) rows.push(el("tr", null, el("th", { text: labels[k] }), el("td", { text: text })));
    });
    Object.keys(EXTRA).forEach((k) => {
      if (props[k] !== undefined && props[k] !== null && labels[k] === undefined)
        rows.push(el("tr", null, el("th", { text: EXTRA[k] }), el("td", { text: typeof props[k] === "boolean" ? (props[k] ? "是" : "否") : String(props[k]) })));
    });
    return el("div", { class: "bd-popup" }, el("b", { text: layer.title + (name ? "：" + name : "") }), el("table", null, ...rows));
  }
  BD.popup = popup;

  function styleFor(layerName, props) {
    const s = BD.layers[layerName].style;
    let color = s.color;
    if (s.by && props && s.palette && s.palette[props[s.by]]) color = s.palette[props[s.by]];
    return { color: color, fillColor: s.by ? color : s.fillColor, weight: s.weight, fillOpacity: s.fillOpacity, radius: s.radius };
  }

  /* ---------- the legend: every drawn overlay with its colours, and the heat's scale ---------- */
  const legendGroups = []; // {layer: overlay title, entries: [{color, label}]}
  let legendScale = null; // {title, classes: [{color, lo, hi}]}
  let legendBox = null;
  function renderLegend() {
    if (!legendBox) return;
    const box = legendBox;
    while (box.firstChild) box.removeChild(box.firstChild);
    box.appendChild(el("b", { text: "图例" }));
    legendGroups.forEach((g) => {
      const group = el("div", { class: "bd-legend-layer", "data-layer": g.layer });
      const single = g.entries.length === 1 && g.entries[0].label === g.layer;
      if (!single) group.appendChild(el("div", { class: "bd-legend-title", text: g.heading || g.layer }));
      g.entries.forEach((e) => {
        const swatch = el("i", { class: "bd-swatch" + (e.shape ? " bd-" + e.shape : ""), "data-color": e.color });
        swatch.style.background = e.color;
        group.appendChild(el("div", { class: "bd-legend-entry" }, swatch, e.label));
      });
      box.appendChild(group);
      if (legendScale && legendScale.layer === g.layer) box.appendChild(scaleBox());
    });
    if (legendScale && !legendGroups.some((g) => g.layer === legendScale.layer)) box.appendChild(scaleBox());
  }
  /* The heat's colour scale: what a colour means, class by class. */
  function scaleBox() {
    const scale = el("div", { class: "bd-scale" }, el("div", { class: "bd-legend-title", text: legendScale.title }));
    legendScale.classes.forEach((c) => {
      const swatch = el("i", { class: "bd-swatch", "data-color": c.color });
      swatch.style.background = c.color;
      const label = c.lo === c.hi ? num(c.lo) : `${num(c.lo)}–${num(c.hi)}`;
      scale.appendChild(el("div", { class: "bd-scale-class", "data-lo": c.lo, "data-hi": c.hi }, swatch, label));
    });
    if (!legendScale.classes.length) scale.appendChild(el("div", { class: "bd-note", text: "所选时间内无诉求" }));
    return scale;
  }

  function legendControl() {
    if (legendBox) return;
    const control = L.control({ position: "bottomleft" });
    control.onAdd = function () {
      legendBox = L.DomUtil.create("div", "bd-legend");
      L.DomEvent.disableScrollPropagation(legendBox);
      renderLegend();
      return legendBox;
    };
    control.addTo(map);
    /* On a phone (≤ 600 px, blockdata.css) the layer switcher and the legend fold away; this
     * button opens them. */
    const fold = L.control({ position: "topright" });
    fold.onAdd = function () {
      const button = el("button", { type: "button", class: "bd-fold", "aria-expanded": "false", text: "图层与图例" });
      L.DomEvent.disableClickPropagation(button);
      button.addEventListener("click", () => {
        const open = map.getContainer().classList.toggle("bd-open");
        button.setAttribute("aria-expanded", String(open));
        button.textContent = open ? "收起图层与图例" : "图层与图例";
      });
      return button;
    };
    fold.addTo(map);
  }
  /* An overlay's legend entries (its colour, or its classes); replaces an earlier one. */
  function legendFor(title, entries, heading) {
    const at = legendGroups.findIndex((g) => g.layer === title);
    const group = { layer: title, entries: entries, heading: heading };
    if (at >= 0) legendGroups[at] = group;
    else legendGroups.push(group);
    legendControl();
    renderLegend();
  }
  function setScale(scale) {
    legendScale = scale;
    legendControl();
    renderLegend();
  }
  BD.legendFor = legendFor;

  function addOverlay(title, layer, visible, entries) {
    legendControl(); // first: the phone's fold button sits above the layer switcher
    overlays[title] = layer;
    if (visible !== false) layer.addTo(map);
    if (!layerControl) {
      layerControl = L.control.layers(null, {}, { collapsed: false, position: "topright" }).addTo(map);
    }
    layerControl.addOverlay(layer, title);
    if (entries) legendFor(title, entries);
    return layer;
  }
  /* A layer's one colour as its legend entry. */
  const plain = (layerName, title) => [{ color: BD.layers[layerName].style.color, label: title }];

  function geoLayer(layerName, fc, options) {
    options = options || {};
    return L.geoJSON(shiftGeoJSON(fc), {
      style: (f) => Object.assign(styleFor(layerName, f.properties), options.style ? options.style(f) : {}),
      pointToLayer: (f, latlng) => L.circleMarker(latlng, Object.assign(styleFor(layerName, f.properties), options.style ? options.style(f) : {})),
      onEachFeature: (f, l) => {
        l.bindPopup(() => popup(layerName, f.properties));
        if (options.tooltip) l.bindTooltip(esc(options.tooltip(f.properties)));
        if (options.each) options.each(f, l);
      },
    });
  }

  /* A status palette as legend entries: one entry per colour (待启动/未启动 share one). */
  function paletteEntries(palette, prefix) {
    const byColour = {};
    Object.entries(palette).forEach(([k, c]) => (byColour[c] = byColour[c] ? byColour[c] + "/" + k : k));
    return Object.entries(byColour).map(([c, label]) => ({ color: c, label: (prefix || "") + label }));
  }

  async function layerData(name, params) {
    const query = new URLSearchParams(params || {}).toString();
    return BD.fetchJSON(`/api/layers/${name}/geojson${query ? "?" + query : ""}`);
  }

  /* ---------- district overview ---------- */
  BD.overview = async function () {
    const month = $("bd-month");
    const metric = $("bd-metric");
    month.value = BD.today.slice(0, 7);
    const streets = await layerData("streets");
    let stats = {};
    const palette = ["#fff5eb", "#fdd0a2", "#fd8d3c", "#d94801", "#7f2704"];
    const shapes = geoLayer("streets", streets, {
      each: (f, l) => {
        l.bindTooltip(esc(f.properties.name), { permanent: true, direction: "center", className: "bd-street-label" });
        if (BD.mayOpen.command) l.on("click", () => (window.location.href = commandUrl(f.properties.code)));
      },
    });
    addOverlay("街道", shapes);
    map.fitBounds(shapes.getBounds());
    ownBasemap(null, {}, { streetLabels: false }); // the choropleth names the streets
    document.body.dataset.streets = shapes.getLayers().length;

    function paint() {
      const key = metric.value;
      const values = Object.values(stats).map((s) => s[key] || 0);
      const max = Math.max(1, ...values);
      shapes.eachLayer((l) => {
        const s = stats[l.feature.properties.code] || {};
        const v = s[key] || 0;
        const c = palette[Math.min(palette.length - 1, Math.floor((v / max) * (palette.length - 0.001)))];
        l.setStyle({ fillColor: c, fillOpacity: 0.75, color: "#7f0000", weight: 1.5 });
        l.setTooltipContent(el("span", null, l.feature.properties.name.replace(/街道$/, ""), el("br"), el("b", { text: num(key === "per_km2" ? Math.round(v) : v) })));
      });
      const label = metric.options[metric.selectedIndex].text;
      legendFor(
        "街道",
        palette.map((c, i) => ({ color: c, label: `${num(Math.round((max * i) / palette.length))} – ${num(Math.round((max * (i + 1)) / palette.length))}` })),
        "街道：" + label
      );
    }

    async function load() {
      const data = await BD.fetchJSON(`/api/streets?month=${encodeURIComponent(month.value)}`);
      stats = {};
      data.streets.forEach((s) => (stats[s.code] = s));
      const body = $("bd-ranking").querySelector("tbody");
      body.innerHTML = data.streets
        .slice()
        .sort((a, b) => (a.rank || 99) - (b.rank || 99))
        .map(
          (s) =>
            `<tr data-code="${esc(s.code)}"><td>${esc(s.rank)}</td>` +
            (BD.mayOpen.command
              ? `<td><a href="${esc(commandUrl(s.code))}">${esc((s.name || s.code).replace(/街道$/, ""))}</a></td>`
              : `<td>${esc((s.name || s.code).replace(/街道$/, ""))}</td>`) +
            `<td>${pct(s.response_rate)}</td><td>${pct(s.resolution_rate)}</td><td>${pct(s.satisfaction_rate)}</td>` +
            `<td>${score(s.composite)}</td><td>${num(s.requests)}</td><td>${rankChange(s.rank_change)}</td></tr>`
        )
        .join("");
      const t = data.district || {};
      $("bd-totals").innerHTML =
        `<div class="bd-card"><span class="bd-label">本月诉求</span><span class="bd-value" id="bd-total-requests">${num(t.requests)}</span></div>` +
        `<div class="bd-card"><span class="bd-label">未办结</span><span class="bd-value" id="bd-total-open">${num(t.open)}</span></div>` +
        `<div class="bd-card bd-warn"><span class="bd-label">超期</span><span class="bd-value" id="bd-total-overdue">${num(t.overdue)}</span></div>`;
      const w = data.weights || {};
      $("bd-weights").textContent = `综合得分 = (${w.response_rate ?? "—"}×响应率 + ${w.resolution_rate ?? "—"}×解决率 + ${w.satisfaction_rate ?? "—"}×满意率)×100；满意率中“基本满意”按 ${data.k ?? "—"} 计；无有效回访显示“—”。`;
      paint();
      BD.status("更新于 " + clockNow());
      document.body.dataset.ready = "1";
    }
    month.addEventListener("change", load);
    metric.addEventListener("change", paint);
    await load();
    setInterval(load, BD.liveSeconds * 4000);
  };

  /* ---------- commander view ---------- */
  BD.command = async function () {
    const street = BD.street;
    const C = BD.colours;
    /* 诉求热力: drawn from /api/heat, by 100 m cell (default) or as a choropleth of the
     * street, its communities or its grids (#bd-heat-level). */
    const heat = L.featureGroup();
    addOverlay("诉求热力", heat, true, [{ color: BD.heatColours[BD.heatColours.length - 1], label: "诉求热力" }]);
    const categories = $("bd-category");
    const windowSel = $("bd-window");
    const levelSel = $("bd-heat-level");
    let lastUpdate = null;

    const [boundary, communities, grids, lanes, halls, cases, targets, projects] = await Promise.all([
      layerData("streets", { street: street }),
      layerData("communities", { street: street }),
      layerData("grids", { street: street }),
      layerData("lanes", { street: street }),
      layerData("service_halls", { street: street }),
      layerData("enforcement_cases", { street: street }),
      layerData("relocation_targets", { street: street }),
      layerData("renovation_projects", { street: street }),
    ]);
    ownBasemap(street, { streets: boundary, communities: communities, lanes: lanes, service_halls: halls });
    BD.names = BD.names || {};
    BD.names.lane = Object.fromEntries(lanes.features.map((f) => [f.properties.code, f.properties.name]));
    addOverlay("街道边界", geoLayer("streets", boundary), true, plain("streets", "街道边界"));
    addOverlay("社区", geoLayer("communities", communities, { tooltip: (p) => p.name }), true, plain("communities", "社区"));
    const gridLayer = addOverlay(
      "网格",
      geoLayer("grids", grids, { tooltip: (p) => unitName("grid", p.code) || p.code }),
      true,
      plain("grids", "网格")
    );
    addOverlay(
      "街巷（街巷长）",
      geoLayer("lanes", lanes, { tooltip: (p) => `${p.name} · 街巷长 ${p.lane_chief || "—"}` }),
      true,
      plain("lanes", "街巷（街巷长）")
    );
    addOverlay("服务大厅", geoLayer("service_halls", halls, { tooltip: (p) => p.name }), true, plain("service_halls", "服务大厅"));
    addOverlay(
      "执法案件（未结/超期）",
      geoLayer("enforcement_cases", cases, {
        style: (f) => (f.properties.overdue ? { color: C.overdue_case, fillColor: C.overdue_case } : {}),
        tooltip: (p) => `${p.case_type} · ${p.status}${p.overdue ? " · 超期" : ""}`,
      }),
      true,
      [
        { color: BD.layers.enforcement_cases.style.color, label: "未结案件" },
        { color: C.overdue_case, label: "超期案件" },
      ]
    );
    addOverlay(
      "疏解目标",
      geoLayer("relocation_targets", targets, { tooltip: (p) => `${p.name} · ${p.status}` }),
      true,
      paletteEntries(BD.layers.relocation_targets.style.palette)
    );
    addOverlay(
      "整治提升项目",
      geoLayer("renovation_projects", projects, {
        style: (f) => ({ color: progressColor(f.properties.progress), fillColor: progressColor(f.properties.progress) }),
        tooltip: (p) => `${p.name} · ${p.phase} · ${p.progress ?? "—"}%`,
      }),
      true,
      progressEntries()
    );
    if (BD.realtime && window[BD.realtime]) {
      layerControl.addOverlay(window[BD.realtime], "最新诉求（实时）");
      legendFor("最新诉求（实时）", [{ color: C.latest_request, label: "最新诉求（实时）" }]);
    }
    map.fitBounds(BD.bounds);

    /* 今日 = the local day so far; 近7天 = 7 local days, today included; 近30天 = 30. */
    function range() {
      if (windowSel.value === "custom") return [$("bd-since").value || daysAgo(29), $("bd-until").value || BD.today];
      const n = Number(windowSel.value);
      return [daysAgo(n - 1), BD.today];
    }
    function windowLabel(since, until) {
      return windowSel.value === "custom" ? `${since} 至 ${until}` : windowSel.options[windowSel.selectedIndex].text;
    }
    const UNIT = { cell: "每100米格", grid: "每网格", community: "每社区", street: "全街道" };
    const shapesOf = { street: boundary, community: communities, grid: grids };

    /* The heat's classes from the server's breaks (quantiles of the counts): class i holds
     * the counts above the previous break up to its own; light to dark. */
    function heatClasses(data) {
      const uppers = [...new Set((data.breaks || []).map(Number))].sort((a, b) => a - b);
      const k = uppers.length;
      return uppers.map((hi, i) => ({
        lo: i === 0 ? Math.min(Number(data.min || 1), hi) : uppers[i - 1] + 1,
        hi: hi,
        color: BD.heatColours[k === 1 ? BD.heatColours.length - 1 : Math.round((i * (BD.heatColours.length - 1)) / (k - 1))],
      }));
    }
    const classOf = (classes, n) => classes.find((c) => n <= c.hi) || classes[classes.length - 1];

    let heatAsked = 0; // the newest request: an older answer arriving later is dropped
    async function loadHeat() {
      const asked = ++heatAsked;
      const [since, until] = range();
      const level = levelSel.value;
      const params = new URLSearchParams({ level: level, street: street, since: since, until: until });
      if (categories.value) params.set("category", categories.value);
      const data = await BD.fetchJSON("/api/heat/service_requests?" + params.toString());
      if (asked !== heatAsked) return; // the window changed meanwhile: never draw a stale one
      const classes = heatClasses(data);
      heat.clearLayers();
      const drawn = [];
      if (level === "cell") {
        const [dlng, dlat] = BD.cell;
        data.items.forEach((i) => {
          const c = classOf(classes, i.n);
          const sw = gcj(i.lng - dlng / 2, i.lat - dlat / 2);
          const ne = gcj(i.lng + dlng / 2, i.lat + dlat / 2);
          L.rectangle([[sw[1], sw[0]], [ne[1], ne[0]]], { stroke: false, fillColor: c.color, fillOpacity: 0.8, interactive: true })
            .bindTooltip(`${i.n} 件`)
            .addTo(heat);
          drawn.push({ code: i.code, n: i.n, color: c.color });
        });
      } else {
        const counts = {};
        data.items.forEach((i) => (counts[i.code] = i.n));
        (shapesOf[level].features || []).forEach((f) => {
          const code = f.properties.code;
          const n = counts[code];
          if (!n) return;
          const c = classOf(classes, n);
          const name = level === "grid" ? unitName("grid", code) || code : f.properties.name;
          L.geoJSON(f, { style: { stroke: true, color: "#ffffff", weight: 1, fillColor: c.color, fillOpacity: 0.7 } })
            .bindTooltip(el("span", { text: `${name}：${n} 件` }))
            .addTo(heat);
          drawn.push({ code: code, n: n, color: c.color });
        });
      }
      heat.bringToBack();
      BD.heatDrawn = drawn;
      setScale({ layer: "诉求热力", title: `${UNIT[level]}诉求数（${windowLabel(since, until)}）`, classes: classes });
      document.body.dataset.heatLevel = level;
      document.body.dataset.heatTotal = data.total;
      document.body.dataset.heatSince = data.since;
      document.body.dataset.heatUntil = data.until;
    }

    async function loadSummary() {
      const data = await BD.fetchJSON(`/api/command/${street}/summary`);
      $("bd-new-today").textContent = num(data.new_today);
      $("bd-open").textContent = num(data.open);
      $("bd-overdue").textContent = num(data.overdue);
      const m = (data.rates || {}).month || {};
      const c = (data.rates || {}).change || {};
      $("bd-response").textContent = pct(m.response_rate);
      $("bd-resolution").textContent = pct(m.resolution_rate);
      $("bd-satisfaction").textContent = pct(m.satisfaction_rate);
      $("bd-score").textContent = score(m.composite);
      $("bd-response-change").innerHTML = change(c.response_rate, 100);
      $("bd-resolution-change").innerHTML = change(c.resolution_rate, 100);
      $("bd-satisfaction-change").innerHTML = change(c.satisfaction_rate, 100);
      $("bd-score-change").innerHTML = change(c.composite);
      $("bd-rank").innerHTML = data.rank ? `全区第 ${esc(data.rank)} 名 ${rankChange(c.rank)}` : "";
      $("bd-top-categories").innerHTML = (data.top_categories || [])
        .map((t) => `<li><span>${esc(t.category)}</span><b>${num(t.n)}</b></li>`)
        .join("");
      /* 热点网格 by label (百万庄社区 第4网格); a click flies there and opens the grid. */
      const hot = $("bd-hot-grids");
      while (hot.firstChild) hot.removeChild(hot.firstChild);
      (data.hot_grids || []).forEach((g) => {
        const a = el("a", { href: "#", "data-code": g.code, title: g.code, text: g.label || g.code });
        a.addEventListener("click", (e) => {
          e.preventDefault();
          const b = g.bbox;
          if (b) {
            const sw = gcj(b[0], b[1]);
            const ne = gcj(b[2], b[3]);
            map.fitBounds([[sw[1], sw[0]], [ne[1], ne[0]]]);
          }
          gridLayer.eachLayer((l) => {
            if (l.feature.properties.code === g.code) l.openPopup();
          });
        });
        hot.appendChild(el("li", null, a, el("b", { text: num(g.n) })));
      });
      const hall = data.service_hall;
      $("bd-hall").textContent = hall ? `${hall.name}（${hall.address || "—"}）` : "—";
      if (categories.options.length <= 1) {
        (data.categories || (data.top_categories || []).map((t) => t.category)).forEach((name) => {
          const o = document.createElement("option");
          o.value = o.textContent = name;
          categories.appendChild(o);
        });
      }
      const changed = lastUpdate !== null && data.updated_at !== lastUpdate;
      lastUpdate = data.updated_at;
      BD.status("更新于 " + clockNow());
      document.body.dataset.updatedAt = data.updated_at || "";
      return changed;
    }

    windowSel.addEventListener("change", () => {
      $("bd-custom").hidden = windowSel.value !== "custom";
      loadHeat();
    });
    $("bd-since").addEventListener("change", loadHeat);
    $("bd-until").addEventListener("change", loadHeat);
    categories.addEventListener("change", loadHeat);
    levelSel.addEventListener("change", loadHeat);
    await Promise.all([loadSummary(), loadHeat()]);
    document.body.dataset.ready = "1";
    setInterval(async () => {
      if (await loadSummary()) await loadHeat();
    }, BD.liveSeconds * 1000);
  };

  function progressColor(p) {
    const C = BD.colours;
    if (p === null || p === undefined) return C.progress_unknown;
    if (p >= 100) return C.progress_done;
    if (p >= 50) return C.progress_mid;
    return C.progress_low;
  }
  function progressEntries() {
    return [
      { color: progressColor(0), label: "进度 < 50%" },
      { color: progressColor(60), label: "进度 50–99%" },
      { color: progressColor(100), label: "整治完成" },
      { color: progressColor(null), label: "进度不详" },
    ];
  }

  /* ---------- the built-in basemap: the district's own layers, when no tiles are set ----------
   * Streets as land, lanes as white roads, halls and landmarks as dots, and place names as
   * labels at fitting zooms: street names up to zoom 14, community names 14–16, lane,
   * hall and landmark names from 16. One street's (a commander's view) or the district's
   * (the lanes only once zoomed in to 14). Drawn in panes below the overlays. */
  async function ownBasemap(street, given, options) {
    if (!BD.ownBasemap) return;
    const copy = (fc) => JSON.parse(JSON.stringify(fc)); // before the overlays shift theirs
    given = Object.fromEntries(Object.entries(given || {}).map(([k, fc]) => [k, copy(fc)]));
    const base = map.createPane("bd-base");
    base.style.zIndex = 150;
    base.style.pointerEvents = "none";
    const labelPane = map.createPane("bd-base-labels");
    labelPane.style.zIndex = 350;
    labelPane.style.pointerEvents = "none";
    map.getContainer().classList.add("bd-own-basemap");
    const renderer = L.canvas({ pane: "bd-base" });
    const scope = street ? { street: street } : {};
    const get = (name) => (given[name] ? Promise.resolve(given[name]) : layerData(name, scope));
    const labels = { street: L.layerGroup(), community: L.layerGroup(), near: L.layerGroup() };
    const label = (group, latlng, text, kind) =>
      L.tooltip({ permanent: true, direction: "center", className: "bd-place bd-place-" + kind, pane: "bd-base-labels", interactive: false })
        .setLatLng(latlng)
        .setContent(el("span", { text: text }))
        .addTo(labels[group]);
    const at = (lng, lat) => {
      const [x, y] = gcj(lng, lat);
      return L.latLng(y, x);
    };
    const middle = (coords) => coords[Math.floor(coords.length / 2)];

    const [streets, halls] = await Promise.all([get("streets"), get("service_halls")]);
    const land = L.geoJSON(shiftGeoJSON(streets), {
      renderer: renderer, pane: "bd-base", interactive: false,
      style: { color: "#cfc6b8", weight: 1.2, fillColor: "#f4f1ea", fillOpacity: 1 },
    }).addTo(map);
    if (!options || options.streetLabels !== false)
      land.eachLayer((l) => label("street", l.getBounds().getCenter(), l.feature.properties.name, "street"));
    /* Communities and lanes: the district's only once zoomed in to 14 (a lighter first load). */
    let partsDrawn = false;
    async function drawCommunities() {
      if (partsDrawn) return;
      partsDrawn = true;
      const parts = L.geoJSON(shiftGeoJSON(await get("communities")), {
        renderer: renderer, pane: "bd-base", interactive: false,
        style: { color: "#e3dbcf", weight: 0.8, dashArray: "3 3", fill: false },
      }).addTo(map);
      parts.eachLayer((l) => label("community", l.getBounds().getCenter(), l.feature.properties.name, "community"));
    }
    (halls.features || []).forEach((f) => {
      const p = at(...f.geometry.coordinates);
      L.circleMarker(p, { renderer: renderer, pane: "bd-base", interactive: false, radius: 3, color: "#90a4ae", weight: 1, fillColor: "#eceff1", fillOpacity: 1 }).addTo(map);
      label("near", p, f.properties.name, "hall");
    });
    (BD.landmarks || []).forEach((m) => {
      const p = at(m.lng, m.lat);
      L.circleMarker(p, { renderer: renderer, pane: "bd-base", interactive: false, radius: 2.5, color: "#bcaaa4", weight: 1, fillColor: "#d7ccc8", fillOpacity: 1 }).addTo(map);
      label("near", p, m.name, "landmark");
    });
    let lanesDrawn = false;
    async function drawLanes() {
      if (lanesDrawn) return;
      lanesDrawn = true;
      const lanes = await get("lanes");
      const style = (w, c) => ({ renderer: renderer, pane: "bd-base", interactive: false, style: { color: c, weight: w, lineCap: "round" } });
      const shifted = shiftGeoJSON(lanes);
      L.geoJSON(shifted, style(4.5, "#d6d0c4")).addTo(map); // casing
      const roads = L.geoJSON(shifted, style(2.5, "#ffffff")).addTo(map);
      roads.eachLayer((l) => {
        const c = l.feature.geometry.type === "MultiLineString" ? l.feature.geometry.coordinates[0] : l.feature.geometry.coordinates;
        label("near", L.latLng(middle(c)[1], middle(c)[0]), l.feature.properties.name, "lane");
      });
      document.body.dataset.basemapLanes = roads.getLayers().length;
    }
    function byZoom() {
      const z = map.getZoom();
      const show = { street: z <= 14, community: z >= 14 && z <= 16, near: z >= 16 };
      Object.entries(show).forEach(([k, on]) => (on ? labels[k].addTo(map) : labels[k].remove()));
      if (z >= 14 || street) {
        drawCommunities();
        drawLanes();
      }
    }
    map.on("zoomend", byZoom);
    byZoom();
    document.body.dataset.basemap = "own";
  }

  /* ---------- planners' overlay ---------- */
  BD.planner = async function () {
    const asof = $("bd-asof");
    const kind = $("bd-kind");
    const streetSel = $("bd-street-filter");
    asof.value = BD.today;
    const streets = await layerData("streets");
    streets.features
      .map((f) => f.properties)
      .sort((a, b) => (a.code < b.code ? -1 : 1))
      .forEach((p) => {
        const o = document.createElement("option");
        o.value = p.code;
        o.textContent = p.name;
        streetSel.appendChild(o);
      });
    const outline = geoLayer("streets", streets, { style: () => ({ fillOpacity: 0, weight: 1 }) });
    addOverlay("街道", outline, true, plain("streets", "街道"));
    map.fitBounds(outline.getBounds());
    ownBasemap(null, { streets: streets });
    let projectLayer = null;
    let targetLayer = null;
    const kinds = new Set();

    /* Against the planned end, as of the chosen day: 延期 N 天 (late, or open past due),
     * 提前 N 天 (finished early), 按期; — without a planned end. */
    function schedule(p) {
      return p.schedule || "—";
    }
    /* Progress on a past day is estimated from the dates (no history of it is kept). */
    function progress(p) {
      if (p.progress === null || p.progress === undefined) return "—";
      const value = Math.round(p.progress) + "%";
      return p.progress_basis === "estimated" ? `<span title="按开始与完成日期估算">约 ${value}</span>` : value;
    }

    async function load() {
      const params = new URLSearchParams({ as_of: asof.value || BD.today });
      if (kind.value) params.set("kind", kind.value);
      if (streetSel.value) params.set("street", streetSel.value);
      const data = await BD.fetchJSON("/api/planner?" + params.toString());
      [data.projects, data.targets].forEach((fc) => fc.features.forEach((f) => kinds.add(f.properties.kind)));
      if (kind.options.length <= 1) {
        [...kinds].sort().forEach((k) => {
          const o = document.createElement("option");
          o.value = o.textContent = k;
          kind.appendChild(o);
        });
      }
      if (projectLayer) { map.removeLayer(projectLayer); layerControl.removeLayer(projectLayer); }
      if (targetLayer) { map.removeLayer(targetLayer); layerControl.removeLayer(targetLayer); }
      /* Projects by progress, targets by their state on the day (the targets' palette). */
      const colour = (f) => {
        const c = progressColor(f.properties.progress);
        return { color: c, fillColor: c };
      };
      const palette = BD.layers.relocation_targets.style.palette;
      const stateColour = (f) => {
        const c = palette[f.properties.state] || palette["未启动"];
        return { color: c, fillColor: c };
      };
      projectLayer = addOverlay("整治提升项目", geoLayer("renovation_projects", data.projects, { style: colour, tooltip: (p) => `${p.name} · ${p.state}` }), true, progressEntries());
      targetLayer = addOverlay("疏解目标", geoLayer("relocation_targets", data.targets, { style: stateColour, tooltip: (p) => `${p.name} · ${p.state}` }), true, paletteEntries(palette));
      const row = (p, state) =>
        `<tr data-id="${esc(p.source_id)}"><td>${esc(p.name)}</td><td>${esc(state)}</td><td>${progress(p)}</td>` +
        `<td>${esc(p.planned_end)}</td><td>${esc(p.actual_end)}</td><td class="${p.delayed ? "bd-down" : p.early_days ? "bd-up" : ""}">${esc(schedule(p))}</td></tr>`;
      $("bd-projects").querySelector("tbody").innerHTML = data.projects.features.map((f) => row(f.properties, f.properties.state)).join("");
      $("bd-targets").querySelector("tbody").innerHTML = data.targets.features.map((f) => row(f.properties, f.properties.state)).join("");
      $("bd-planner-totals").innerHTML =
        `<div class="bd-card"><span class="bd-label">整治项目</span><span class="bd-value" id="bd-project-count">${num(data.projects.features.length)}</span></div>` +
        `<div class="bd-card"><span class="bd-label">疏解目标</span><span class="bd-value" id="bd-target-count">${num(data.targets.features.length)}</span></div>`;
      BD.status(`截至 ${asof.value}`);
      document.body.dataset.ready = "1";
    }
    [asof, kind, streetSel].forEach((el) => el.addEventListener("change", load));
    await load();
  };

  const pages = { overview: BD.overview, command: BD.command, planner: BD.planner };
  if (pages[BD.page]) pages[BD.page]();
})();
