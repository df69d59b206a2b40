// vegw dashboard: helpers shared by the fleet and site pages (no libraries).
"use strict";
const V = {
  boot: JSON.parse(document.getElementById("boot").textContent),
  offset: 0, // server clock - this browser's clock, seconds

  esc(s) {
    return String(s).replace(/[&<>"']/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
  },
  // a number with the decimals its field carries; "-" for nothing
  fmt(v, dec) {
    if (v === null || v === undefined || typeof v !== "number" || !isFinite(v)) return "-";
    return v.toFixed(dec === undefined ? 2 : dec);
  },
  now() { return Date.now() / 1000 + V.offset; },
  syncClock(serverNow) { if (typeof serverNow === "number") V.offset = serverNow - Date.now() / 1000; },
  age(seen) {
    if (seen === null || seen === undefined) return null;
    return Math.max(0, V.now() - seen);
  },
  ageText(s) {
    if (s === null) return "never";
    if (s < 100) return Math.round(s) + " s";
    if (s < 6000) return Math.round(s / 60) + " min";
    if (s < 172800) return Math.round(s / 3600) + " h";
    return Math.round(s / 86400) + " d";
  },
  time(t, withDate) {
    if (t === null || t === undefined) return "-";
    const d = new Date(t * 1000);
    const p = n => String(n).padStart(2, "0");
    const hm = p(d.getHours()) + ":" + p(d.getMinutes());
    return withDate === false ? hm : d.getFullYear() + "-" + p(d.getMonth() + 1) + "-" + p(d.getDate()) + " " + hm;
  },
  // Server-sent events with a live/reconnecting indicator; onRows(rows) per message.
  live(url, onRows) {
    const el = document.getElementById("live");
    const es = new EventSource(url);
    const say = (cls, text) => { el.className = "live " + cls; el.textContent = text; };
    es.onopen = () => say("on", "live");
    es.onerror = () => say("off", "reconnecting");
    es.addEventListener("sites", ev => {
      const m = JSON.parse(ev.data);
      V.syncClock(m.now);
      say("on", "live");
      onRows(m.rows);
    });
    es.addEventListener("ping", ev => V.syncClock(JSON.parse(ev.data).now));
    return es;
  },
  STATES: ["offline", "alarm", "stale", "warning", "ok"],
};
V.syncClock(V.boot.now !== undefined ? V.boot.now : (V.boot.snapshot || {}).now);
