/* 搜索与区域卡片 on every map page (app/templates/_search.html).
 *
 * The search box asks /api/search (places, case and work-order numbers, addresses); a result
 * flies to its place and opens it: a street, community, grid or address its area card
 * (#bd-area, figures from /api/areas), a lane or landmark the card of the grid there (via
 * /api/reverse), a case its drawer (BD.openCase, on pages with the command post). A click on
 * the map (on its background or inside an area's shape, not on a point) at grid zoom opens
 * the card of the grid there.
 * `window.BDSearch.openArea(level, code)` opens the card from other scripts.
 * Every value from the server goes into the page as text (textContent), never as HTML.
 */
(function () {
  "use strict";
  const GRID_ZOOM = 15; // from here on a click on the map opens the grid's card
  const FLY_ZOOM = 17;
  const LEVEL_BY_LENGTH = { 9: "street", 12: "community", 15: "grid" };
  const KIND = {
    address: "地址",
    street: "街道",
    community: "社区",
    grid: "网格",
    lane: "街巷",
    landmark: "地标",
    case: "案件",
    request: "工单",
  };
  const $ = (id) => document.getElementById(id);
  const num = (v) => (v === null || v === undefined ? "—" : Number(v).toLocaleString("zh-CN"));
  const pct = (v) => (v === null || v === undefined ? "—" : (v * 100).toFixed(1) + "%");

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = text;
    if (className) node.className = className;
    return node;
  }
  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
    return node;
  }

  async function getJSON(url) {
    const response = await fetch(url, { headers: { Accept: "application/json" } });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      const error = new Error(body.message || response.statusText);
      error.status = response.status;
      throw error;
    }
    return body;
  }

  function start() {
    const BD = window.BD;
    const map = BD && BD.map;
    const box = $("bd-search");
    const card = $("bd-area");
    if (!map || !box || !card || !window.L) return;
    const shift = (lng, lat) => (BD.shift ? BD.shift(lng, lat) : [lng, lat]);
    /* A map point back to WGS84 (the inverse of BD.shift, by fixed-point iteration). */
    const unshift = (lng, lat) => {
      let x = lng, y = lat;
      for (let i = 0; i < 3; i++) {
        const [sx, sy] = shift(x, y);
        x += lng - sx;
        y += lat - sy;
      }
      return [x, y];
    };

    /* Both panels sit on the map, as Leaflet controls (clicks and wheel stay theirs). */
    const control = (node, position) => {
      const C = L.Control.extend({ onAdd: () => node, onRemove: () => {} });
      new C({ position: position }).addTo(map);
      L.DomEvent.disableClickPropagation(node);
      L.DomEvent.disableScrollPropagation(node);
    };
    control(box, "topleft");
    control(card, "bottomright");

    const input = $("bd-search-q");
    const list = $("bd-search-results");
    const note = $("bd-search-note");
    let picked = null;
    let asked = 0;

    function say(text) {
      note.textContent = text || "";
      note.hidden = !text;
    }

    function highlight(result) {
      if (picked) map.removeLayer(picked);
      picked = null;
      const style = { color: "#0d47a1", weight: 3, fill: false, interactive: false };
      if (result.bbox && result.kind !== "lane") {
        const [x0, y0, x1, y1] = result.bbox;
        const sw = shift(x0, y0), ne = shift(x1, y1);
        picked = L.rectangle([[sw[1], sw[0]], [ne[1], ne[0]]], style).addTo(map);
      } else if (result.lng !== null && result.lng !== undefined) {
        const [x, y] = shift(result.lng, result.lat);
        picked = L.circleMarker([y, x], Object.assign({ radius: 12 }, style)).addTo(map);
      }
    }

    function fly(result) {
      if (result.bbox) {
        const [x0, y0, x1, y1] = result.bbox;
        const sw = shift(x0, y0), ne = shift(x1, y1);
        map.fitBounds([[sw[1], sw[0]], [ne[1], ne[0]]], { maxZoom: FLY_ZOOM, animate: false });
      } else if (result.lng !== null && result.lng !== undefined) {
        const [x, y] = shift(result.lng, result.lat);
        map.setView([y, x], Math.max(map.getZoom(), FLY_ZOOM), { animate: false });
      }
      highlight(result);
    }

    /* ---------- the area card ---------- */
    function showCard(title, sub) {
      $("bd-area-title").textContent = title;
      $("bd-area-sub").textContent = sub || "";
      ["requests", "open", "overdue"].forEach((k) => ($("bd-area-" + k).textContent = "—"));
      $("bd-area-rates").textContent = "";
      clear($("bd-area-top"));
      $("bd-area-link").hidden = true;
      card.hidden = false;
    }

    async function openArea(level, code) {
      // the card's figures are the requests': a role that reads none (the planner) gets the
      // place outlined and no card
      if (BD.mayReadRequests === false) return;
      const ask = ++asked;
      showCard("加载中…");
      card.dataset.level = level;
      card.dataset.code = code;
      card.dataset.loaded = "";
      let a;
      try {
        a = await getJSON(`/api/areas/${encodeURIComponent(level)}/${encodeURIComponent(code)}`);
      } catch (e) {
        if (ask === asked) showCard("无法显示该区域", e.message);
        return;
      }
      if (ask !== asked) return;
      const street = a.street && a.street.name && level !== "street" ? a.street.name + " · " : "";
      showCard(a.label, `${street}${a.window.since} 至 ${a.window.until}`);
      $("bd-area-requests").textContent = num(a.requests);
      $("bd-area-open").textContent = num(a.open);
      $("bd-area-overdue").textContent = num(a.overdue);
      $("bd-area-rates").textContent = a.rates
        ? `响应率 ${pct(a.rates.response)} · 解决率 ${pct(a.rates.resolution)} · 满意率 ${pct(a.rates.satisfaction)}（有效回访 ${num(a.rates.callbacks)}）`
        : "无有效回访，不计三率";
      const top = $("bd-area-top");
      (a.top_categories || []).forEach((t) => {
        const li = el("li", t.category);
        li.appendChild(el("span", num(t.n)));
        top.appendChild(li);
      });
      card.dataset.loaded = "true";
    }

    async function openAt(lng, lat) {
      let place;
      try {
        place = await getJSON(`/api/reverse?lng=${lng.toFixed(6)}&lat=${lat.toFixed(6)}`);
      } catch (e) {
        if (e.status === 404) say("此处不在可查看的范围内");
        return;
      }
      if (place.grid && place.grid.code) openArea("grid", place.grid.code);
      else if (place.community && place.community.code) openArea("community", place.community.code);
      else if (place.street && place.street.code) openArea("street", place.street.code);
    }

    function openRecord(result) {
      if (result.case_id && typeof BD.openCase === "function") {
        BD.openCase(result.case_id);
        card.hidden = true;
        return;
      }
      showCard(result.label, result.case_id ? `案件 #${result.case_id}` : "");
      const link = $("bd-area-link");
      clear(link);
      if (result.street_code && BD.mayOpen && BD.mayOpen.command && BD.page !== "command") {
        const a = el("a", "在战区指挥页查看");
        a.href = "/command/" + encodeURIComponent(result.street_code);
        link.appendChild(a);
        link.hidden = false;
      }
    }

    function open(result) {
      fly(result);
      list.hidden = true;
      const level = LEVEL_BY_LENGTH[(result.code || "").length];
      if (["street", "community", "grid"].includes(result.kind)) openArea(result.kind, result.code);
      else if (result.kind === "address" && level) openArea(level, result.code);
      else if (result.kind === "case" || result.kind === "request") openRecord(result);
      else if (result.lng !== null && result.lng !== undefined) openAt(result.lng, result.lat);
    }

    /* ---------- the search box ---------- */
    let results = [];
    async function find(text, go) {
      const q = text.trim();
      if (!q) {
        list.hidden = true;
        say("");
        return;
      }
      let body;
      try {
        body = await getJSON(`/api/search?q=${encodeURIComponent(q)}&limit=8`);
      } catch (e) {
        say(e.message);
        return;
      }
      if (input.value.trim() !== q) return; // typed on meanwhile
      results = body.results || [];
      clear(list);
      say(results.length ? "" : "未找到匹配的地点或编号");
      results.forEach((r, i) => {
        const li = el("li");
        const button = el("button");
        button.type = "button";
        button.dataset.i = String(i);
        button.appendChild(el("span", r.label));
        button.appendChild(el("span", KIND[r.kind] || r.kind, "bd-search-kind"));
        button.addEventListener("click", () => open(results[i]));
        li.appendChild(button);
        list.appendChild(li);
      });
      list.hidden = !results.length;
      if (go && results.length) open(results[0]);
    }
    let timer = null;
    input.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(() => find(input.value, false), 250);
    });
    $("bd-search-form").addEventListener("submit", (e) => {
      e.preventDefault();
      clearTimeout(timer);
      find(input.value, true);
    });
    $("bd-area-close").addEventListener("click", () => {
      card.hidden = true;
      if (picked) map.removeLayer(picked);
      picked = null;
    });

    /* ---------- a click on the map at grid zoom ---------- */
    function clickedAt(latlng) {
      const [lng, lat] = unshift(latlng.lng, latlng.lat);
      openAt(lng, lat);
    }
    // A click inside a street, community or grid shape opens its popup (and Leaflet stops
    // the click there): at grid zoom the card of the grid under the click takes its place.
    map.on("popupopen", (e) => {
      const source = e.popup && e.popup._source;
      if (map.getZoom() < GRID_ZOOM || !(source instanceof L.Polygon)) return;
      const latlng = e.popup.getLatLng();
      setTimeout(() => map.closePopup(e.popup), 0);
      clickedAt(latlng);
    });
    map.on("click", (e) => {
      if (map.getZoom() < GRID_ZOOM) return;
      // Leaflet puts a click on a point feature (a marker, a small circle) at the point's
      // own position: such a click is the feature's, not the background's.
      const at = map.mouseEventToContainerPoint(e.originalEvent);
      if (at.distanceTo(e.containerPoint) > 0.5) return;
      const target = e.originalEvent && e.originalEvent.target;
      if (target && target.closest && target.closest(".leaflet-marker-icon")) return;
      clickedAt(e.latlng);
    });

    window.BDSearch = { openArea: openArea, openAt: openAt, find: (q) => find(q, true) };
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
