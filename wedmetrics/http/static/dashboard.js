// The hub's dashboard: live series, today's weddings, active alerts.
// Plain JavaScript, no dependencies.  It reads the hub's own API (relative to
// the page, so the hub can be mounted under any prefix) and follows the
// server-sent event stream.  The stream is read with fetch() rather than
// EventSource because EventSource cannot send an Authorization header.
"use strict";

(function () {
  const HISTORY = 120;                 // sparkline points kept per series (one per event)
  const $ = (id) => document.getElementById(id);
  const state = {
    series: new Map(),                 // key -> {name, labels, kind, last, history: [[rate, p95]]}
    alerts: [],
    controller: null,
    retry: 1000,
  };

  // -- token and identity --------------------------------------------------------
  function initialToken() {
    const m = /(?:^|[#&])token=([^&]+)/.exec(location.hash);
    if (m) {
      const token = decodeURIComponent(m[1]);
      sessionStorage.setItem("wedmetrics-token", token);
      history.replaceState(null, "", location.pathname + location.search);  // keep it off screen
      return token;
    }
    return sessionStorage.getItem("wedmetrics-token") || "";
  }

  function headers(extra) {
    const h = Object.assign({ Accept: "application/json" }, extra || {});
    const token = $("token").value.trim();
    if (token) h.Authorization = "Bearer " + token;
    return h;
  }

  async function api(path, options) {
    const opts = Object.assign({}, options || {});
    opts.headers = headers(opts.headers);
    const response = await fetch(path, opts);
    let body = null;
    try { body = await response.json(); } catch (e) { body = null; }
    if (!response.ok) {
      const why = body && body.error ? body.error.message : response.statusText;
      const err = new Error(why || ("HTTP " + response.status));
      err.status = response.status;
      throw err;
    }
    return body;
  }

  function setStatus(text, kind) {
    const el = $("status");
    el.textContent = text;
    el.dataset.state = kind;
  }

  // -- formatting --------------------------------------------------------------------
  function fmt(v) {
    if (v === null || v === undefined || !isFinite(v)) return "–";
    const a = Math.abs(v);
    if (a >= 1000) return v.toFixed(0);
    if (a >= 100) return v.toFixed(1);
    if (a >= 1) return v.toFixed(2);
    if (a === 0) return "0";
    return v.toPrecision(3);
  }

  function labelText(labels) {
    return Object.keys(labels).sort().map((k) => k + '="' + labels[k] + '"').join(", ");
  }

  function seriesKey(s) {
    return s.name + "\u0000" + JSON.stringify(Object.keys(s.labels).sort().map((k) => [k, s.labels[k]]));
  }

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v; else node.setAttribute(k, v);
    }
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // -- sparklines (inline SVG) -----------------------------------------------------------
  const SVG = "http://www.w3.org/2000/svg";

  function sparkline(kind) {
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("class", "spark " + kind);
    svg.setAttribute("viewBox", "0 0 130 26");
    svg.setAttribute("preserveAspectRatio", "none");
    svg.appendChild(document.createElementNS(SVG, "polyline"));
    return svg;
  }

  function drawSpark(svg, values) {
    const finite = values.filter((v) => v !== null && isFinite(v));
    const line = svg.firstChild;
    if (finite.length === 0) { line.setAttribute("points", ""); return; }
    let lo = Math.min.apply(null, finite), hi = Math.max.apply(null, finite);
    if (hi - lo < 1e-12) { lo -= 1; hi += 1; }
    // a short history is spread over a quarter of the history's width at least,
    // then the line grows leftwards to the full width
    const step = 130 / Math.max(1, Math.min(HISTORY, Math.max(values.length, HISTORY / 4)) - 1);
    const x0 = 130 - step * (values.length - 1);
    const pts = [];
    values.forEach((v, i) => {
      if (v === null || !isFinite(v)) return;
      const y = 24 - ((v - lo) / (hi - lo)) * 22;
      pts.push((x0 + i * step).toFixed(1) + "," + y.toFixed(1));
    });
    line.setAttribute("points", pts.join(" "));
  }

  // -- live series --------------------------------------------------------------------------
  function onRealtime(view) {
    const seen = new Set();
    for (const s of view.series) {
      const key = seriesKey(s);
      seen.add(key);
      let entry = state.series.get(key);
      if (!entry) {
        entry = { name: s.name, labels: s.labels, kind: s.kind, history: [], row: null };
        state.series.set(key, entry);
      }
      entry.last = s;
      entry.history.push([s.rate, s.p95]);
      if (entry.history.length > HISTORY) entry.history.shift();
    }
    for (const key of Array.from(state.series.keys())) {
      if (!seen.has(key)) {
        const gone = state.series.get(key);
        if (gone.row) gone.row.remove();
        state.series.delete(key);
      }
    }
    renderSeries();
    if (view.engine) {
      const dropped = Object.values(view.engine.dropped).reduce((a, b) => a + b, 0);
      $("engine-stats").textContent = view.engine.accepted.toLocaleString() + " points accepted, " +
        dropped.toLocaleString() + " dropped, " + view.engine.series + " series";
    }
    $("updated").textContent = new Date(view.now * 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC";
  }

  function renderSeries() {
    const body = document.querySelector("#series tbody");
    const entries = Array.from(state.series.values()).sort((a, b) =>
      a.name === b.name ? labelText(a.labels).localeCompare(labelText(b.labels)) : a.name.localeCompare(b.name));
    entries.forEach((e) => {
      if (!e.row) {
        const row = el("tr", { "data-series": e.name });
        const cell = el("td", { class: "label" });
        cell.appendChild(el("div", { class: "name" }, e.name));
        cell.appendChild(el("div", { class: "labels" }, labelText(e.labels)));
        row.appendChild(cell);
        for (const f of ["count", "rate", "p50", "p95", "p99"]) row.appendChild(el("td", { class: "num", "data-field": f }));
        const rateCell = el("td"), p95Cell = el("td");
        e.rateSpark = sparkline("rate");
        e.p95Spark = sparkline("p95");
        rateCell.appendChild(e.rateSpark);
        p95Cell.appendChild(e.p95Spark);
        row.appendChild(rateCell);
        row.appendChild(p95Cell);
        e.row = row;
      }
      body.appendChild(e.row);        // appending in order keeps the rows sorted
      const s = e.last;
      // a counter's points are increments: its rate says it all, percentiles would mislead
      const counter = e.kind === "counter";
      for (const f of ["count", "rate", "p50", "p95", "p99"]) {
        const text = f === "count" ? s.count.toLocaleString() : (counter && f[0] === "p") ? "" : fmt(s[f]);
        e.row.querySelector('[data-field="' + f + '"]').textContent = text;
      }
      drawSpark(e.rateSpark, e.history.map((h) => h[0]));
      drawSpark(e.p95Spark, counter ? [] : e.history.map((h) => h[1]));
    });
    $("series-count").textContent = String(entries.length);
  }

  // -- alerts -----------------------------------------------------------------------------------
  function matcherFor(k, v) {
    return k + '="' + String(v).replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n") + '"';
  }

  function onAlerts(list) {
    state.alerts = list.alerts;
    const ul = $("alerts");
    ul.replaceChildren();
    for (const a of list.alerts) {
      const li = el("li", { "data-alert": a.id, "data-severity": a.severity, "data-state": a.state });
      li.appendChild(el("span", { class: "badge " + a.state }, a.state));
      li.appendChild(el("span", { class: "badge " + a.severity }, a.severity));
      li.appendChild(el("span", { class: "rule" }, a.rule));
      if (a.value !== null) li.appendChild(el("span", { class: "value" }, "value " + fmt(a.value)));
      if (a.acked_by) li.appendChild(el("span", { class: "badge acked" }, "acked by " + a.acked_by));
      if (a.silenced_by.length) li.appendChild(el("span", { class: "badge silenced" }, "silenced"));
      const actions = el("span", { class: "actions" });
      const ack = el("button", { type: "button", "data-action": "ack" }, "Ack");
      ack.disabled = a.state !== "firing" || !!a.acked_by;
      ack.addEventListener("click", () => act(ack, () =>
        api("api/metrics/alerts/" + encodeURIComponent(a.id) + "/ack", {
          method: "POST", headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ by: $("who").value.trim() || "dashboard" }) })));
      const silence = el("button", { type: "button", "data-action": "silence" }, "Silence 2h");
      silence.disabled = a.silenced_by.length > 0;
      silence.addEventListener("click", () => act(silence, () =>
        api("api/metrics/silences", {
          method: "POST", headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ matchers: Object.keys(a.labels).sort().map((k) => matcherFor(k, a.labels[k])),
                                 duration: "2h", created_by: $("who").value.trim() || "dashboard",
                                 comment: "silenced from the dashboard: " + a.rule }) })));
      actions.appendChild(ack);
      actions.appendChild(silence);
      li.appendChild(actions);
      const what = a.annotations.summary || labelText(a.labels);
      li.appendChild(el("div", { class: "what" }, what));
      ul.appendChild(li);
    }
    $("alert-count").textContent = String(list.alerts.length);
    $("no-alerts").hidden = list.alerts.length > 0;
  }

  async function act(button, call) {
    button.disabled = true;
    try {
      await call();
      onAlerts(await api("api/metrics/alerts"));
    } catch (err) {
      button.disabled = false;
      setStatus(err.message, "error");
    }
  }

  // -- weddings --------------------------------------------------------------------------------
  async function loadWeddings() {
    let list = { weddings: [] };
    try {
      list = await api("api/metrics/weddings?day=today");
    } catch (err) {
      if (err.status !== 404) setStatus(err.message, "error");
    }
    const ul = $("weddings");
    ul.replaceChildren();
    for (const item of list.weddings) {
      const w = item.wedding, p = item.priority;
      const li = el("li", { "data-wedding": w.id, "data-priority": p.level });
      li.appendChild(el("span", { class: "badge " + p.level }, p.level.replace("_", " ")));
      li.appendChild(el("span", { class: "name" }, w.venue || w.id));
      const when = (w.start_time ? w.start_time.slice(0, 5) : "all day") + (w.end_time ? "–" + w.end_time.slice(0, 5) : "");
      li.appendChild(el("span", { class: "meta" }, w.guest_count + " guests · " + when + " " + w.timezone + " · " + w.org_id + " · " + w.id));
      ul.appendChild(li);
    }
    $("wedding-count").textContent = String(list.weddings.length);
    $("no-weddings").hidden = list.weddings.length > 0;
  }

  // -- the event stream --------------------------------------------------------------------------
  function dispatch(event, data) {
    let payload;
    try { payload = JSON.parse(data); } catch (e) { return; }
    if (event === "realtime") onRealtime(payload);
    else if (event === "alerts") onAlerts(payload);
  }

  async function follow() {
    if (state.controller) state.controller.abort();
    const controller = new AbortController();
    state.controller = controller;
    const url = "api/metrics/stream?window=" + encodeURIComponent($("window").value) + "&limit=200";
    try {
      const response = await fetch(url, { headers: headers({ Accept: "text/event-stream" }), signal: controller.signal });
      if (!response.ok) {
        let why = response.statusText;
        try { why = (await response.json()).error.message; } catch (e) { /* not JSON */ }
        setStatus(response.status === 401 ? "token needed" : why, "error");
        if (response.status === 401 || response.status === 403) return;  // wait for a token
        throw new Error(why);
      }
      setStatus("live", "live");
      state.retry = 1000;
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          let event = "message";
          const data = [];
          for (const line of block.split("\n")) {
            if (line.startsWith("event:")) event = line.slice(6).trim();
            else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
          }
          if (data.length) dispatch(event, data.join("\n"));
        }
      }
      throw new Error("stream ended");
    } catch (err) {
      if (controller.signal.aborted) return;
      setStatus("reconnecting", "error");
      setTimeout(follow, state.retry);
      state.retry = Math.min(state.retry * 2, 15000);
    }
  }

  function restart() {
    state.series.forEach((e) => { if (e.row) e.row.remove(); });
    state.series.clear();
    follow();
    loadWeddings();
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("token").value = initialToken();
    $("token").addEventListener("change", () => {
      sessionStorage.setItem("wedmetrics-token", $("token").value.trim());
      restart();
    });
    $("window").addEventListener("change", restart);
    follow();
    loadWeddings();
    setInterval(loadWeddings, 30000);
  });
})();
