/* 网格员上报: the point picked on a small map or taken from the device, up to 3 photos, the
 * form posted with its CSRF token; the answer (the case number) or the error shown as text.
 * Nothing is written as HTML: every value goes in with textContent. No outside host. */
(function () {
  "use strict";
  const BD = JSON.parse(document.getElementById("bd-config").textContent);
  const $ = (id) => document.getElementById(id);
  const form = $("bd-report-form");
  const lat = $("bd-lat");
  const lng = $("bd-long");
  const point = $("bd-point");
  const locateMessage = $("bd-locate-message");
  const errorBox = $("bd-report-error");
  const result = $("bd-report-result");
  const photos = $("bd-photos");
  const photoList = $("bd-photo-list");
  const submit = $("bd-submit");
  const TYPES = ["image/jpeg", "image/png", "image/webp"];

  const map = L.map("bd-report-map", { zoomControl: true, attributionControl: !!BD.basemap })
    .setView([39.912, 116.366], 14);
  if (BD.basemap) {
    L.tileLayer(BD.basemap, { attribution: BD.basemapAttribution || "底图", maxZoom: 19 }).addTo(map);
  }
  let marker = null;

  function setPoint(latitude, longitude, how) {
    lat.value = latitude.toFixed(6);
    lng.value = longitude.toFixed(6);
    point.textContent = `${how}：${lat.value}, ${lng.value}`;
    if (marker) marker.setLatLng([latitude, longitude]);
    else {
      marker = L.circleMarker([latitude, longitude], {
        radius: 9, color: "#b71c1c", weight: 3, fillColor: "#ff5252", fillOpacity: 0.8,
      }).addTo(map);
    }
    document.body.dataset.point = "1";
  }

  map.on("click", (e) => setPoint(e.latlng.lat, e.latlng.lng, "地图选点"));

  function outline(url, style) {
    return fetch(url, { headers: { Accept: "application/geo+json" }, credentials: "same-origin" })
      .then((r) => (r.ok ? r.json() : null))
      .then((fc) => {
        if (!fc || !fc.features || !fc.features.length) return null;
        return L.geoJSON(fc, { style, interactive: false }).addTo(map);
      })
      .catch(() => null);
  }

  const street = BD.street ? `?street=${encodeURIComponent(BD.street)}` : "";
  const drawn = Promise.all([
    outline(`/api/layers/grids/geojson${street}`, { color: "#757575", weight: 1, fillOpacity: 0 }),
    outline(`/api/layers/streets/geojson${street}`, { color: "#b71c1c", weight: 2, fillOpacity: 0.04 }),
  ]).then(([grids, streets]) => {
    const layer = streets || grids;
    if (layer && layer.getBounds().isValid()) map.fitBounds(layer.getBounds());
  });

  $("bd-locate").addEventListener("click", () => {
    locateMessage.textContent = "";
    if (!("geolocation" in navigator)) {
      locateMessage.textContent = "此设备或浏览器不支持定位，请在地图上点选位置。";
      return;
    }
    locateMessage.textContent = "正在获取当前位置…";
    navigator.geolocation.getCurrentPosition(
      (pos) => {
        setPoint(pos.coords.latitude, pos.coords.longitude, "当前位置");
        map.setView([pos.coords.latitude, pos.coords.longitude], Math.max(map.getZoom(), 16));
        locateMessage.textContent = `已获取当前位置（精度约 ${Math.round(pos.coords.accuracy)} 米）。`;
      },
      (err) => {
        const why = {
          1: "您拒绝了定位权限",
          2: "无法确定位置",
          3: "定位超时",
        }[err.code] || "定位失败";
        locateMessage.textContent = `${why}，请在地图上点选位置。`;
      },
      { enableHighAccuracy: true, timeout: 15000, maximumAge: 60000 },
    );
  });

  function chosenPhotos() {
    return Array.from(photos.files || []);
  }

  function checkPhotos() {
    const files = chosenPhotos();
    photoList.replaceChildren(
      ...files.map((f) => {
        const li = document.createElement("li");
        li.textContent = `${f.name}（${(f.size / 1024 / 1024).toFixed(2)} MB）`;
        return li;
      }),
    );
    if (files.length > BD.maxPhotos) return `照片最多 ${BD.maxPhotos} 张，已选 ${files.length} 张。`;
    const big = files.find((f) => f.size > BD.maxBytes);
    if (big) return `照片「${big.name}」超过 ${(BD.maxBytes / 1024 / 1024).toFixed(1)} MB。`;
    const odd = files.find((f) => f.type && !TYPES.includes(f.type));
    if (odd) return `照片「${odd.name}」不是 JPEG、PNG 或 WebP 图片。`;
    return "";
  }

  photos.addEventListener("change", () => {
    errorBox.textContent = checkPhotos();
  });

  function mine() {
    const list = $("bd-mine");
    return fetch("/api/reports", { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then((r) => (r.ok ? r.json() : Promise.reject(r.status)))
      .then((body) => {
        const items = body.reports.map((c) => {
          const li = document.createElement("li");
          li.dataset.case = String(c.case_id);
          const id = document.createElement("span");
          id.className = "bd-case";
          id.textContent = `#${c.case_id}`;
          const text = document.createElement("span");
          const when = c.received_at.slice(0, 16).replace("T", " ");
          const pics = c.photos ? ` · 照片 ${c.photos} 张` : "";
          text.textContent = `${c.category || ""} · ${c.state_label} · ${when}${pics}`;
          li.append(id, text);
          return li;
        });
        if (!items.length) {
          const li = document.createElement("li");
          li.className = "bd-note";
          li.textContent = "还没有上报。";
          items.push(li);
        }
        list.replaceChildren(...items);
      })
      .catch(() => {
        list.textContent = "我的上报加载失败。";
      });
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    errorBox.textContent = "";
    result.textContent = "";
    const missing = !form.category.value
      ? "请选择问题类别。"
      : !form.description.value.trim()
        ? "请填写问题描述。"
        : !lat.value
          ? "请在地图上点选位置，或使用当前位置。"
          : checkPhotos();
    if (missing) {
      errorBox.textContent = missing;
      return;
    }
    submit.disabled = true;
    submit.textContent = "提交中…";
    fetch(form.action, {
      method: "POST",
      body: new FormData(form),
      headers: { Accept: "application/json" },
      credentials: "same-origin",
    })
      .then((r) => r.json().catch(() => ({})).then((body) => ({ ok: r.ok, status: r.status, body })))
      .then(({ ok, status, body }) => {
        if (!ok) {
          errorBox.textContent = `提交失败：${(body && body.message) || `服务器返回 ${status}`}`;
          return;
        }
        result.dataset.case = String(body.case_id);
        result.textContent = `已受理，案件编号 ${body.case_id}` +
          (body.photos ? `（照片 ${body.photos} 张）` : "") + (body.notice ? `。${body.notice}` : "");
        form.description.value = "";
        photos.value = "";
        photoList.replaceChildren();
        return mine();
      })
      .catch(() => {
        errorBox.textContent = "提交失败：网络错误，请稍后重试。";
      })
      .finally(() => {
        submit.disabled = false;
        submit.textContent = "提交上报";
      });
  });

  Promise.all([drawn, mine()]).finally(() => {
    document.body.dataset.ready = "1";
  });
})();
