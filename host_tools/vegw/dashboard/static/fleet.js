// vegw dashboard: the fleet table. One row per site; sort by any column,
// filter by text and "in trouble"; rows replaced live from the event stream.
"use strict";
(function () {
  const boot = V.boot;
  const D = boot.decimals;
  const rows = new Map(); // site id -> row
  const rank = s => { const i = V.STATES.indexOf(s); return i < 0 ? 9 : i; };
  // most alarms (severity "alarm" weighing most) first
  const alarmWeight = r => r.alarms.reduce((n, a) => n + (a[1] === "alarm" ? 100 : 1), 0);
  const COLS = [
    {key: "id", label: "Site", sort: r => r.id},
    {key: "state", label: "State", sort: r => rank(r.state)},
    {key: "soc", label: "SoC %", num: true, dec: D.soc},
    {key: "v", label: "Battery V", num: true, dec: D.v},
    {key: "i", label: "Battery A", num: true, dec: D.i},
    {key: "pv_w", label: "PV W", num: true, dec: D.pv_w},
    {key: "pv_kwh", label: "Yield today kWh", num: true, dec: D.pv_kwh},
    {key: "load_w", label: "Load W", num: true, dec: D.load_w},
    {key: "link", label: "Link", sort: r => r.link},
    {key: "rssi", label: "RSSI dBm", num: true, dec: D.rssi},
    {key: "seen", label: "Last seen", sort: r => V.age(r.seen)},
    {key: "alarms", label: "Alarms", sort: r => -alarmWeight(r)},
  ];
  // the view lives in the URL's fragment: a reload or a shared link keeps it
  const view = {sort: "state", dir: 1, q: "", trouble: false};
  const h = new URLSearchParams(location.hash.slice(1));
  if (COLS.some(c => c.key === h.get("sort"))) view.sort = h.get("sort");
  if (h.get("dir") === "-1") view.dir = -1;
  view.q = h.get("q") || "";
  view.trouble = h.get("trouble") === "1";

  const $ = id => document.getElementById(id);
  const head = $("head"), body = $("rows"), filter = $("filter"), trouble = $("trouble");
  filter.value = view.q;
  trouble.checked = view.trouble;

  function saveView() {
    const p = new URLSearchParams({sort: view.sort, dir: String(view.dir)});
    if (view.q) p.set("q", view.q);
    if (view.trouble) p.set("trouble", "1");
    history.replaceState(null, "", "#" + p.toString());
  }

  function drawHead() {
    head.innerHTML = COLS.map(c => {
      const on = c.key === view.sort;
      const arrow = on ? (view.dir > 0 ? " \u25b2" : " \u25bc") : "";
      return '<th data-key="' + c.key + '" class="' + (c.num ? "num" : "") + (on ? " sorted" : "") +
        '" aria-sort="' + (on ? (view.dir > 0 ? "ascending" : "descending") : "none") + '">' + V.esc(c.label) + arrow + "</th>";
    }).join("");
  }
  head.addEventListener("click", ev => {
    const th = ev.target.closest("th");
    if (!th) return;
    const key = th.dataset.key;
    if (view.sort === key) view.dir = -view.dir; else { view.sort = key; view.dir = 1; }
    saveView();
    drawHead();
    render();
  });
  filter.addEventListener("input", () => { view.q = filter.value.trim(); saveView(); schedule(); });
  trouble.addEventListener("change", () => { view.trouble = trouble.checked; saveView(); render(); });

  function sortValue(c, r) { return c.sort ? c.sort(r) : r[c.key]; }

  function matches(r, q) {
    if (!q) return true;
    const hay = (r.id + " " + r.state + " " + (r.link || "") + " " + r.alarms.map(a => a[0]).join(" ")).toLowerCase();
    return q.toLowerCase().split(/\s+/).every(w => hay.includes(w));
  }

  function cell(c, r) {
    if (c.key === "id") return '<td><a href="/site/' + encodeURIComponent(r.id) + '">' + V.esc(r.id) + "</a></td>";
    if (c.key === "state") {
      let t = r.state.toUpperCase();
      if (r.state === "stale" && r.nstale && r.ndev) t += " " + r.nstale + "/" + r.ndev;
      return '<td><span class="badge ' + r.state + '">' + t + "</span></td>";
    }
    if (c.key === "link") return "<td>" + V.esc(r.link || "-") + "</td>";
    if (c.key === "seen") return '<td class="num">' + V.ageText(V.age(r.seen)) + "</td>";
    if (c.key === "alarms") {
      const a = r.alarms.slice(0, 3).map(x => '<span class="tag ' + V.esc(x[1]) + '" title="' + V.esc(x[1]) +
        (x[2] ? " since " + V.time(x[2]) : "") + '">' + V.esc(x[0]) + "</span>").join(" ");
      return "<td>" + a + (r.alarms.length > 3 ? " +" + (r.alarms.length - 3) : "") + "</td>";
    }
    return '<td class="num">' + V.fmt(r[c.key], c.dec) + "</td>";
  }

  function render() {
    timer = null;
    const col = COLS.find(c => c.key === view.sort);
    let list = Array.from(rows.values());
    const total = list.length;
    const counts = {offline: 0, alarm: 0, stale: 0, warning: 0, ok: 0};
    for (const r of list) counts[r.state] = (counts[r.state] || 0) + 1;
    if (view.trouble) list = list.filter(r => r.state !== "ok");
    if (view.q) list = list.filter(r => matches(r, view.q));
    const dir = view.dir;
    list.sort((a, b) => {
      const x = sortValue(col, a), y = sortValue(col, b);
      const xn = x === null || x === undefined, yn = y === null || y === undefined;
      if (xn !== yn) return xn ? 1 : -1; // nulls last either way
      if (!xn && x !== y) return (x < y ? -1 : 1) * dir;
      // ties: trouble first, then the weakest battery, then the name
      const t = rank(a.state) - rank(b.state);
      if (t) return t;
      const s = (a.soc === null ? 999 : a.soc) - (b.soc === null ? 999 : b.soc);
      return s || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
    });
    const out = [];
    for (const r of list) out.push('<tr data-id="' + V.esc(r.id) + '" class="' + r.state + '">' + COLS.map(c => cell(c, r)).join("") + "</tr>");
    body.innerHTML = out.join("");
    $("empty").hidden = list.length > 0;
    const trouble = total - counts.ok;
    $("summary").innerHTML = "<b>" + total + "</b> sites &middot; <b>" + trouble + "</b> in trouble: " +
      ["offline", "alarm", "stale", "warning"].map(s => '<span class="badge ' + s + '">' + counts[s] + " " + s + "</span>").join(" ") +
      (list.length !== total ? " &middot; " + list.length + " shown" : "");
    document.title = (trouble ? "(" + trouble + ") " : "") + boot.title;
    window.vegwRendered = (window.vegwRendered || 0) + 1;
  }

  let timer = null;
  function schedule() { if (timer === null) timer = setTimeout(render, 150); }

  for (const r of boot.snapshot.rows) rows.set(r.id, r);
  drawHead();
  render();
  if (window.performance && performance.mark) performance.mark("vegw-first-paint");
  V.live("/events?since=" + boot.snapshot.seq, list => { for (const r of list) rows.set(r.id, r); schedule(); });
  setInterval(schedule, 5000); // ages move on
})();
