// 考评录入: the assessor's items × streets (points + evidence), the template and its import,
// the tasks, the survey. Every value from the server is set as text (textContent / value),
// never as HTML.
(function () {
  "use strict";
  const config = JSON.parse(document.getElementById("bd-config").textContent);
  const API = "/api/evaluation";
  const $ = (id) => document.getElementById(id);
  let period = config.period;
  let grid = null;

  function el(tag, text, attrs) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    return node;
  }

  function say(text, bad) {
    const box = $("bd-message");
    box.textContent = text;
    box.className = bad ? "bd-error" : "";
  }

  async function call(url, options) {
    const response = await fetch(url, Object.assign({ headers: { Accept: "application/json" } }, options || {}));
    let body = null;
    try { body = await response.json(); } catch (e) { body = null; }
    if (!response.ok) {
      const error = new Error((body && body.message) || ("请求失败 " + response.status));
      error.body = body;
      throw error;
    }
    return body;
  }

  function showRejected(error) {
    const list = $("bd-rejected");
    list.replaceChildren();
    const rows = (error && error.body && error.body.rejected) || [];
    for (const r of rows) {
      const where = (r.row ? "第 " + r.row + " 行" : "") + (r.column ? " · " + r.column : "");
      list.appendChild(el("li", (where ? where + "：" : "") + r.reason));
    }
  }

  function q(extra) {
    return new URLSearchParams(Object.assign({ period: period }, extra || {})).toString();
  }

  // --- scores ---------------------------------------------------------------------------

  function drawScores() {
    const table = $("bd-scores");
    const head = el("tr");
    head.appendChild(el("th", "街道"));
    for (const item of grid.items) {
      head.appendChild(el("th", item.name + "（" + item.min + "～" + item.max + "）", { "data-item": item.code }));
    }
    table.tHead.replaceChildren(head);
    const stored = new Map(grid.scores.map((s) => [s.item + "|" + s.street, s]));
    const body = table.tBodies[0];
    body.replaceChildren();
    for (const street of grid.streets) {
      const tr = el("tr", null, { "data-street": street.code });
      tr.appendChild(el("td", street.name));
      for (const item of grid.items) {
        const td = el("td", null, { "data-item": item.code });
        const s = stored.get(item.code + "|" + street.code);
        if (config.mayScore) {
          const points = el("input", null, {
            type: "number", step: "0.01", min: item.min, max: item.max,
            class: "bd-points", "aria-label": street.name + " " + item.name + " 得分",
          });
          points.value = s ? s.points : "";
          const evidence = el("input", null, {
            type: "text", class: "bd-evidence", maxlength: "2000", placeholder: "依据说明",
            "aria-label": street.name + " " + item.name + " 依据说明",
          });
          evidence.value = s && s.evidence ? s.evidence : "";
          const save = el("button", "保存", { type: "button", class: "bd-save" });
          save.addEventListener("click", () => saveCells([td]));
          td.append(points, evidence, save);
          td.dataset.street = street.code;
          td.dataset.was = s ? String(s.points) + "|" + (s.evidence || "") : "|";
        } else {
          td.textContent = s ? String(s.points) : "—";
          if (s && s.evidence) td.title = s.evidence;
        }
        tr.appendChild(td);
      }
      body.appendChild(tr);
    }
    $("bd-published").hidden = !(grid.published_versions && grid.published_versions.length);
  }

  function cellScore(td) {
    const points = td.querySelector(".bd-points").value.trim();
    const evidence = td.querySelector(".bd-evidence").value;
    return { item: td.dataset.item, street: td.dataset.street, points: points, evidence: evidence };
  }

  async function saveCells(cells) {
    const scores = cells.map(cellScore).filter((s) => s.points !== "");
    if (!scores.length) { say("没有要保存的得分"); return; }
    $("bd-rejected").replaceChildren();
    try {
      const answer = await call(API + "/scores", {
        method: "PUT",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify({ period: period, scores: scores, source: "form" }),
      });
      let text = "已保存 " + answer.written.length + " 项";
      if (answer.published_versions.length) text += "（本周期已发布，已发布的结果不变）";
      say(text);
      await loadScores();
    } catch (error) {
      say(error.message, true);
      showRejected(error);
    }
  }

  async function loadScores() {
    grid = await call(API + "/scores?" + q());
    drawScores();
    const template = $("bd-template");
    if (template) template.href = API + "/scores/template.xlsx?" + q();
    const select = $("bd-task-streets");
    if (select && !select.options.length) {
      for (const s of grid.streets) select.appendChild(el("option", s.name, { value: s.code }));
    }
  }

  async function importFile(input, url) {
    const file = input.files[0];
    if (!file) { say("请选择文件", true); return null; }
    const form = new FormData();
    form.append("file", file);
    $("bd-rejected").replaceChildren();
    try {
      const answer = await call(url, { method: "POST", body: form });
      return answer;
    } catch (error) {
      say(error.message, true);
      showRejected(error);
      return null;
    }
  }

  // --- tasks ----------------------------------------------------------------------------

  function local(iso) {
    if (!iso) return "—";
    return new Date(iso).toLocaleString("zh-CN", { timeZone: config.tz, hour12: false });
  }

  async function loadTasks() {
    // An assessor lists the tasks its unit handed out; the district and the analyst all.
    const answer = await call(API + "/tasks?" + q(config.mayScore && config.unit ? { owner: config.unit } : {}));
    const body = $("bd-tasks").tBodies[0];
    body.replaceChildren();
    for (const t of answer.tasks) {
      const tr = el("tr", null, { "data-task": t.id });
      for (const v of [t.kind_name, t.title, t.street, t.item || "—", local(t.deadline), local(t.done_at), t.state_name]) {
        tr.appendChild(el("td", v));
      }
      const td = el("td");
      if (config.mayScore && !t.done_at && t.owner === config.unit) {
        const done = el("button", "标记完成", { type: "button" });
        done.addEventListener("click", async () => {
          try {
            await call(API + "/tasks/" + t.id, {
              method: "PATCH",
              headers: { "Content-Type": "application/json", Accept: "application/json" },
              body: "{}",
            });
            await loadTasks();
          } catch (error) { say(error.message, true); }
        });
        td.appendChild(done);
      }
      tr.appendChild(td);
      body.appendChild(tr);
    }
  }

  // --- survey ---------------------------------------------------------------------------

  async function loadSurvey() {
    const answer = await call(API + "/survey?" + q());
    const body = $("bd-survey").tBodies[0];
    body.replaceChildren();
    for (const s of answer.streets) {
      const tr = el("tr");
      for (const v of [s.street, s.name, s.sample, s.score === null ? "—" : s.score, s.margin === null ? "—" : "±" + s.margin]) {
        tr.appendChild(el("td", v));
      }
      body.appendChild(tr);
    }
  }

  async function loadAll() {
    say("");
    if (!config.hasScheme) {
      say("尚无考评方案：请先载入（blockdata evaluation scheme load FILE）", true);
      document.body.dataset.ready = "1";
      return;
    }
    try {
      await Promise.all([loadScores(), loadTasks(), loadSurvey()]);
      $("bd-status").textContent = "周期 " + period;
    } catch (error) {
      say(error.message, true);
    }
    document.body.dataset.ready = "1";
  }

  $("bd-period-form").addEventListener("submit", (event) => {
    event.preventDefault();
    period = $("bd-period").value.trim();
    loadAll();
  });
  if (config.mayScore) {
    $("bd-save-all").addEventListener("click", () => {
      const cells = Array.from(document.querySelectorAll("#bd-scores td[data-street]")).filter((td) => {
        const s = cellScore(td);
        return s.points + "|" + s.evidence !== td.dataset.was && s.points !== "";
      });
      saveCells(cells);
    });
    $("bd-import-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const answer = await importFile($("bd-import-file"), API + "/scores/import?" + q());
      if (answer) { say("已导入 " + answer.written.length + " 项"); await loadScores(); }
    });
    $("bd-task-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const streets = Array.from($("bd-task-streets").selectedOptions).map((o) => o.value);
      try {
        await call(API + "/tasks", {
          method: "POST",
          headers: { "Content-Type": "application/json", Accept: "application/json" },
          body: JSON.stringify({
            kind: $("bd-task-kind").value,
            title: $("bd-task-title").value,
            streets: streets,
            item: $("bd-task-item").value || null,
            deadline: $("bd-task-deadline").value,
          }),
        });
        say("已下达 " + streets.length + " 项任务");
        await loadTasks();
      } catch (error) { say(error.message, true); showRejected(error); }
    });
  }
  if (config.maySurvey) {
    $("bd-survey-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const answer = await importFile($("bd-survey-file"), API + "/survey/import?" + q());
      if (answer) { say("已导入 " + answer.rows + " 行"); await loadSurvey(); }
    });
  }
  loadAll();
})();
