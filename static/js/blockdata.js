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

  function popup(layerName, props) {
    const labels = (BD.layers[layerName] || {}).labels || {};
    const rows = Object.keys(labels)
      .filter((k) => props[k] !== undefined && props[k] !== null && k !== "id")
      .map((k) => `<tr><th>${esc(labels[k])}</th><td>${esc(props[k])}</td></tr>`);
    return `<div class="bd-popup"><b>${esc(BD.layers[layerName].title)}</b><table>${rows.join("")}</table></div>`;
  }

  function styleFor(layerName, props) {
    const s = BD.layers[layerName].style;
    let color = s.color;
    if (s.by && props && s.palette && s.palette[props[s.by]]) color = s.palette[props[s.by]];
    return { color: color, fillColor: s.by ? color : s.fillColor, weight: s.weight, fillOpacity: s.fillOpacity, radius: s.radius };
  }

  function addOverlay(title, layer, visible) {
    overlays[title] = layer;
    if (visible !== false) layer.addTo(map);
    if (!layerControl) {
      layerControl = L.control.layers(null, {}, { collapsed: false, position: "topright" }).addTo(map);
    }
    layerControl.addOverlay(layer, title);
    return layer;
  }

  function geoLayer(layerName, fc, options) {
    options = options || {};
    return L.geoJSON(shiftGeoJSON(fc), {
      style: (f) => Object.assign(styleFor(layerName, f.properties), options.style ? options.style(f) : {}),
      pointToLayer: (f, latlng) => L.circleMarker(latlng, styleFor(layerName, f.properties)),
      onEachFeature: (f, l) => {
        l.bindPopup(popup(layerName, f.properties));
        if (options.tooltip) l.bindTooltip(esc(options.tooltip(f.properties)));
        if (options.each) options.each(f, l);
      },
    });
  }

  function legend(items, title) {
    const control = L.control({ position: "bottomleft" });
    control.onAdd = function () {
      const div = L.DomUtil.create("div", "bd-legend");
      div.innerHTML = `<b>${esc(title)}</b>` + items.map((i) => `<div><i></i>${esc(i.label)}</div>`).join("");
      div.querySelectorAll("i").forEach((swatch, n) => (swatch.style.background = items[n].color));
      return div;
    };
    control.addTo(map);
    return control;
  }
  BD.legend = legend;

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
    let chorolegend = null;
    const shapes = geoLayer("streets", streets, {
      each: (f, l) => {
        l.bindTooltip(esc(f.properties.name), { permanent: true, direction: "center", className: "bd-street-label" });
        if (BD.mayOpen.command) l.on("click", () => (window.location.href = commandUrl(f.properties.code)));
      },
    });
    addOverlay("街道", shapes);
    map.fitBounds(shapes.getBounds());
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
        l.setTooltipContent(`${esc(l.feature.properties.name.replace(/街道$/, ""))}<br><b>${num(key === "per_km2" ? Math.round(v) : v)}</b>`);
      });
      if (chorolegend) chorolegend.remove();
      const label = metric.options[metric.selectedIndex].text;
      chorolegend = legend(
        palette.map((c, i) => ({ color: c, label: `${num(Math.round((max * i) / palette.length))} – ${num(Math.round((max * (i + 1)) / palette.length))}` })),
        label
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
    const heat = window[BD.heat];
    addOverlay("诉求热力", heat);
    const categories = $("bd-category");
    const windowSel = $("bd-window");
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
    addOverlay("街道边界", geoLayer("streets", boundary));
    addOverlay("社区", geoLayer("communities", communities, { tooltip: (p) => p.name }));
    const gridLayer = addOverlay("网格", geoLayer("grids", grids, { tooltip: (p) => p.code }));
    addOverlay("街巷（街巷长）", geoLayer("lanes", lanes, { tooltip: (p) => `${p.name} · 街巷长 ${p.lane_chief || "—"}` }));
    addOverlay("服务大厅", geoLayer("service_halls", halls, { tooltip: (p) => p.name }));
    addOverlay(
      "执法案件（未结/超期）",
      geoLayer("enforcement_cases", cases, {
        style: (f) => (f.properties.overdue ? { color: "#d50000" } : {}),
        tooltip: (p) => `${p.case_type} · ${p.status}${p.overdue ? " · 超期" : ""}`,
      })
    );
    addOverlay("疏解目标", geoLayer("relocation_targets", targets, { tooltip: (p) => `${p.name} · ${p.status}` }));
    addOverlay(
      "整治提升项目",
      geoLayer("renovation_projects", projects, {
        style: (f) => ({ color: progressColor(f.properties.progress), fillColor: progressColor(f.properties.progress) }),
        tooltip: (p) => `${p.name} · ${p.phase} · ${p.progress ?? "—"}%`,
      })
    );
    if (BD.realtime && window[BD.realtime]) layerControl.addOverlay(window[BD.realtime], "最新诉求（实时）");
    map.fitBounds(BD.bounds);
    legend(
      Object.entries(BD.layers.relocation_targets.style.palette).map(([k, v]) => ({ color: v, label: "疏解：" + k })).concat([
        { color: progressColor(10), label: "整治进度 < 50%" },
        { color: progressColor(60), label: "整治进度 50–99%" },
        { color: progressColor(100), label: "整治完成" },
        { color: "#d50000", label: "超期执法案件" },
      ]),
      "图例"
    );

    /* 今日 = the local day so far; 近7天 = 7 local days, today included; 近30天 = 30. */
    function range() {
      if (windowSel.value === "custom") return [$("bd-since").value || daysAgo(29), $("bd-until").value || BD.today];
      const n = Number(windowSel.value);
      return [daysAgo(n - 1), BD.today];
    }

    let heatAsked = 0; // the newest request: an older answer arriving later is dropped
    async function loadHeat() {
      const asked = ++heatAsked;
      const [since, until] = range();
      const params = new URLSearchParams({ level: "grid", street: street, since: since, until: until });
      if (categories.value) params.set("category", categories.value);
      const data = await BD.fetchJSON("/api/heat/service_requests?" + params.toString());
      if (asked !== heatAsked) return; // the window changed meanwhile: never draw a stale one
      const max = Math.max(1, data.max || 1);
      heat.setOptions({ max: max });
      heat.setLatLngs(
        data.items.map((i) => {
          const [lng, lat] = gcj(i.lng, i.lat);
          return [lat, lng, i.n];
        })
      );
      heat.redraw();
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
      $("bd-hot-grids").innerHTML = (data.hot_grids || [])
        .map((g, i) => `<li><a href="#" data-i="${i}">${esc(g.code)}</a><b>${num(g.n)}</b></li>`)
        .join("");
      $("bd-hot-grids").querySelectorAll("a").forEach((a) =>
        a.addEventListener("click", (e) => {
          e.preventDefault();
          const b = data.hot_grids[Number(a.dataset.i)].bbox;
          const sw = gcj(b[0], b[1]);
          const ne = gcj(b[2], b[3]);
          map.fitBounds([[sw[1], sw[0]], [ne[1], ne[0]]]);
          gridLayer.eachLayer((l) => {
            if (l.feature.properties.code === data.hot_grids[Number(a.dataset.i)].code) l.openPopup();
          });
        })
      );
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
    await Promise.all([loadSummary(), loadHeat()]);
    document.body.dataset.ready = "1";
    setInterval(async () => {
      if (await loadSummary()) await loadHeat();
    }, BD.liveSeconds * 1000);
  };

  function progressColor(p) {
    if (p === null || p === undefined) return "#9e9e9e";
    if (p >= 100) return "#2e7d32";
    if (p >= 50) return "#f9a825";
    return "#e65100";
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
    addOverlay("街道", outline);
    map.fitBounds(outline.getBounds());
    let projectLayer = null;
    let targetLayer = null;
    const kinds = new Set();
    legend(
      [
        { color: progressColor(0), label: "未开始 / 进度 < 50%" },
        { color: progressColor(60), label: "进度 50–99%" },
        { color: progressColor(100), label: "已完成" },
      ],
      "进度"
    );

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
      const colour = (f) => {
        const c = progressColor(f.properties.progress);
        return { color: c, fillColor: c };
      };
      projectLayer = addOverlay("整治提升项目", geoLayer("renovation_projects", data.projects, { style: colour, tooltip: (p) => `${p.name} · ${p.state}` }));
      targetLayer = addOverlay("疏解目标", geoLayer("relocation_targets", data.targets, { style: colour, tooltip: (p) => `${p.name} · ${p.state}` }));
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
