// vegw dashboard: one site. Devices, alarms with raise/clear times, charts
// of the last day/week/month from the gateway's flash log.
"use strict";
(function () {
  const boot = V.boot;
  const gw = boot.gw;
  const $ = id => document.getElementById(id);
  let detail = boot.detail;
  let span = "day";
  const ORDER = ["SOC", "V", "I", "P", "PPV", "VPV", "IL", "load_power", "AC_OUT_S", "ac_out_power", "T", "H20",
                 "pv_kwh_today", "CE", "TTG"];
  const TITLES = {SOC: "State of charge", V: "Battery voltage", I: "Battery current", P: "Battery power",
                  PPV: "PV power", VPV: "PV voltage", IL: "Load current", load_power: "Load power",
                  AC_OUT_S: "AC output", ac_out_power: "AC output power", T: "Temperature", H20: "Yield today",
                  pv_kwh_today: "PV yield today"};
  const order = f => { const i = ORDER.indexOf(f); return i < 0 ? 100 : i; };
  const meta = f => (detail.fields && detail.fields[f]) || {unit: "", decimals: 2};

  function value(f, v) {
    if (v === true) return "on";
    if (v === false) return "off";
    if (v === null || v === undefined) return "-";
    if (typeof v !== "number") return V.esc(typeof v === "object" ? JSON.stringify(v) : v);
    const m = meta(f);
    return V.fmt(v, m.decimals) + (m.unit ? " " + V.esc(m.unit) : "");
  }

  function drawHeader() {
    const s = detail.site, st = detail.status || {};
    $("gw").textContent = gw;
    const badge = $("state");
    badge.className = "badge " + s.state;
    badge.textContent = s.state.toUpperCase();
    document.title = gw + " - " + s.state + " - " + boot.title;
    const facts = [
      ["SoC", V.fmt(s.soc, boot.decimals.soc) + " %"], ["battery", V.fmt(s.v, boot.decimals.v) + " V " +
        V.fmt(s.i, boot.decimals.i) + " A"],
      ["PV", V.fmt(s.pv_w, 0) + " W, " + V.fmt(s.pv_kwh, boot.decimals.pv_kwh) + " kWh today"],
      ["load", V.fmt(s.load_w, 0) + " W"],
      ["link", (s.link || "-") + (s.rssi !== null ? " " + s.rssi + " dBm" : "")],
      ["last seen", V.ageText(V.age(s.seen)) + (s.seen ? " ago" : "")],
      ["availability", (s.avail || "?") + (s.avail_since ? " since " + V.time(s.avail_since) : "")],
      ["firmware", s.fw || "-"], ["uptime", st.uptime_s !== undefined ? V.ageText(st.uptime_s) : "-"],
      ["heartbeat", detail.heartbeat_s ? detail.heartbeat_s + " s" : "-"],
      ["log", st.log && st.log.history_days ? st.log.history_days + " days" : "-"],
    ];
    $("facts").innerHTML = facts.map(f => "<span><i>" + f[0] + "</i> " + V.esc(f[1]) + "</span>").join(" ");
  }

  function drawAlarms() {
    const s = detail.site;
    let h = "";
    if (s.alarms.length) {
      h += '<table class="grid"><thead><tr><th>active alarm</th><th>severity</th><th>since</th><th>acknowledged</th></tr></thead><tbody>' +
        s.alarms.map(a => '<tr><td>' + V.esc(a[0]) + '</td><td><span class="tag ' + V.esc(a[1]) + '">' + V.esc(a[1]) +
          "</span></td><td>" + V.time(a[2]) + "</td><td>" + (a[3] ? "yes" : "no") + "</td></tr>").join("") + "</tbody></table>";
    } else {
      h += '<p class="note">No active alarm.</p>';
    }
    const hist = detail.history.slice().reverse();
    if (hist.length) {
      h += '<table class="grid history"><thead><tr><th>alarm</th><th>severity</th><th>raised</th><th>cleared</th><th>lasted</th></tr></thead><tbody>' +
        hist.map(e => "<tr><td>" + V.esc(e[0]) + '</td><td><span class="tag ' + V.esc(e[1]) + '">' + V.esc(e[1]) + "</span></td><td>" +
          V.time(e[2]) + "</td><td>" + (e[3] ? V.time(e[3]) : e[2] ? "<b>active</b>" : "-") + "</td><td>" +
          (e[2] && e[3] ? V.ageText(e[3] - e[2]) : "") + "</td></tr>").join("") + "</tbody></table>";
    }
    $("alarms").innerHTML = h;
  }

  function drawDevices() {
    $("devices").innerHTML = detail.devices.map(d => {
      const fields = Object.keys(d.fields).filter(f => f !== "ts" && f !== "seq").sort((a, b) => order(a) - order(b) || (a < b ? -1 : 1));
      const fresh = d.never ? '<span class="badge stale">NEVER HEARD</span>' : (d.stale ? '<span class="badge stale">STALE</span> ' : "") +
        "seen " + V.ageText(V.age(d.seen)) + " ago";
      return '<div class="device"><h3>' + V.esc(d.name) + " <small>" + fresh + "</small></h3><table>" +
        fields.map(f => "<tr><th>" + V.esc(f) + '</th><td class="num">' + value(f, d.fields[f]) + "</td></tr>").join("") +
        "</table></div>";
    }).join("") || '<p class="note">No device reported yet.</p>';
  }

  function drawAll() { drawHeader(); drawAlarms(); drawDevices(); }

  // ---- charts
  let histReq = 0;
  function loadHistory() {
    const mine = ++histReq;
    $("histnote").textContent = "asking " + gw + " for its log ...";
    fetch("/api/site/" + encodeURIComponent(gw) + "/history?span=" + span, {credentials: "same-origin"})
      .then(r => r.ok ? r.json() : r.text().then(t => { throw new Error(t); }))
      .then(h => { if (mine === histReq) drawCharts(h); })
      .catch(e => { if (mine === histReq) $("histnote").textContent = "history unavailable: " + e.message; });
  }

  function drawCharts(h) {
    const box = $("charts");
    box.innerHTML = "";
    let note = h.history_off ? "History is off (--no-history)." :
      h.records + " log records" + (h.fetched_at ? ", fetched " + V.time(h.fetched_at) : "") +
      "; points are " + V.ageText(h.bucket_s) + " averages.";
    if (h.error) note += " Last fetch: " + h.error;
    $("histnote").textContent = note;
    const fields = Object.keys(h.fields).sort((a, b) => order(a) - order(b) || (a < b ? -1 : 1));
    for (const f of fields) {
      const series = [];
      for (const dev in h.devices) {
        const d = h.devices[dev];
        if (d[f]) series.push({name: dev, t: d.t, v: d[f]});
      }
      if (!series.length) continue;
      VChart.line(box, {title: TITLES[f] || f, field: f, unit: h.fields[f].unit, decimals: h.fields[f].decimals,
                        from: h.from, to: h.to, series});
    }
    if (!fields.length && !h.history_off) box.innerHTML = '<p class="note">No logged data in this span.</p>';
    box.dataset.span = h.span;
    box.dataset.ready = "1";
  }

  $("spans").innerHTML = boot.spans.map(s => '<button type="button" data-span="' + s + '"' +
    (s === span ? ' class="on"' : "") + ">" + s + "</button>").join("");
  $("spans").addEventListener("click", ev => {
    const b = ev.target.closest("button");
    if (!b) return;
    span = b.dataset.span;
    for (const x of $("spans").children) x.classList.toggle("on", x === b);
    $("charts").dataset.ready = "";
    loadHistory();
  });

  // ---- live: the row comes on the stream, then the details are fetched (at most once a second)
  let pending = null;
  function refetch() {
    pending = null;
    fetch("/api/site/" + encodeURIComponent(gw), {credentials: "same-origin"})
      .then(r => r.ok ? r.json() : null)
      .then(d => { if (d) { V.syncClock(d.now); detail = d; drawAll(); } });
  }
  V.live("/events?site=" + encodeURIComponent(gw) + "&since=" + boot.seq, rows => {
    if (!rows.length) return;
    detail.site = rows[rows.length - 1];
    drawHeader();
    if (pending === null) pending = setTimeout(refetch, 1000);
  });
  drawAll();
  loadHistory();
  setInterval(() => { drawHeader(); drawDevices(); }, 5000);
})();
