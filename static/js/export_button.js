/* The export button of the map pages (app/templates/_export.html): the page's current filters
 * as links to /api/layers/<layer>/features in GeoJSON, CSV and GeoPackage. The server makes
 * the file with the export code of every other export and audits it; this script only builds
 * the query. Filters by page:
 *   overview — the chosen month (since / until);
 *   command  — the street, the heat window (今日 / 近7天 / 近30天 / 自定义) and the category;
 *   planner  — the chosen street and type (the as-of date only changes how progress is shown).
 * Dates are the district's local days, counted from the server's "today" (config.today),
 * never from the browser's clock. */
(function () {
  "use strict";
  const root = document.getElementById("bd-export");
  if (!root) return;
  const config = JSON.parse(document.getElementById("bd-config").textContent);
  const $ = (id) => document.getElementById(id);
  const value = (id) => ($(id) ? $(id).value : "");

  /* YYYY-MM-DD arithmetic on calendar days (UTC dates: no clock, no zone involved). */
  function shift(day, days) {
    const d = new Date(day + "T00:00:00Z");
    d.setUTCDate(d.getUTCDate() + days);
    return d.toISOString().slice(0, 10);
  }
  function monthBounds(month) {
    const [y, m] = month.split("-").map(Number);
    const last = new Date(Date.UTC(y, m, 0)).getUTCDate();
    return [`${month}-01`, `${month}-${String(last).padStart(2, "0")}`];
  }

  /* [params, words]: the query and how the note under the button says it. */
  function filters() {
    const params = new URLSearchParams();
    const words = [];
    if (config.page === "overview") {
      const month = value("bd-month");
      if (/^\d{4}-\d{2}$/.test(month)) {
        const [since, until] = monthBounds(month);
        params.set("since", since);
        params.set("until", until);
        words.push(`${since} 至 ${until}`);
      }
    } else if (config.page === "command") {
      params.set("street", config.street);
      const sel = $("bd-window");
      let since;
      let until = config.today;
      if (sel && sel.value === "custom") {
        since = value("bd-since") || shift(config.today, -29);
        until = value("bd-until") || config.today;
      } else {
        since = shift(config.today, 1 - Number(sel ? sel.value : 30));
      }
      params.set("since", since);
      params.set("until", until);
      words.push(`${since} 至 ${until}`);
      const category = value("bd-category");
      if (category) {
        params.set("category", category);
        words.push(`类别：${category}`);
      }
    } else if (config.page === "planner") {
      const street = $("bd-street-filter");
      if (street && street.value) {
        params.set("street", street.value);
        words.push(`街道：${street.options[street.selectedIndex].text}`);
      }
      const kind = value("bd-kind");
      if (kind) {
        params.set("kind", kind);
        words.push(`类型：${kind}`);
      }
    }
    return [params, words];
  }

  function update() {
    const layer = value("bd-export-layer");
    const [params, words] = filters();
    root.querySelectorAll("a[data-format]").forEach((a) => {
      const query = new URLSearchParams(params);
      query.set("f", a.dataset.format);
      if (a.dataset.format === "csv") query.set("header", "label");
      a.href = `/api/layers/${encodeURIComponent(layer)}/features?${query.toString()}`;
      a.download = `${layer}.${a.dataset.format}`;
    });
    $("bd-export-filters").textContent = "按当前筛选导出：" + (words.length ? words.join("，") : "全部");
  }

  /* Any control of the page may change the filters: follow them all. */
  document.addEventListener("change", update);
  document.addEventListener("input", update);
  root.addEventListener("toggle", update);
  root.querySelectorAll("a[data-format]").forEach((a) => a.addEventListener("click", update));
  update();
})();
