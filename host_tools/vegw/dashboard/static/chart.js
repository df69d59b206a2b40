// vegw dashboard: line charts as SVG, written for this page (no library).
// VChart.line(el, {title, unit, decimals, from, to, series: [{name, t: [], v: []}]})
"use strict";
const VChart = (function () {
  const NS = "http://www.w3.org/2000/svg";
  const NCOLORS = 8; // classes c0..c7 in dashboard.css (the page allows no inline style)
  const cls = k => "c" + (k % NCOLORS);
  const W = 640, H = 200, L = 56, R = 12, T = 12, B = 28;

  function el(name, attrs, text) {
    const e = document.createElementNS(NS, name);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // about n round steps covering lo..hi
  function ticks(lo, hi, n) {
    if (hi === lo) { hi = lo + 1; lo = lo - 1; }
    const raw = (hi - lo) / n;
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map(m => m * mag).find(s => s >= raw) || 10 * mag;
    const out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(v);
    return {step, values: out};
  }

  function timeTicks(from, to) {
    const span = to - from;
    const step = span <= 86400 * 1.5 ? 3 * 3600 : span <= 8 * 86400 ? 86400 : 5 * 86400;
    const tz = new Date().getTimezoneOffset() * 60; // ticks on local midnights and hours
    const out = [];
    for (let t = Math.ceil((from - tz) / step) * step + tz; t <= to; t += step) out.push(t);
    return {values: out, withDate: step >= 86400};
  }

  function line(container, spec) {
    const all = [];
    for (const s of spec.series) for (const v of s.v) if (v !== null) all.push(v);
    const box = document.createElement("figure");
    box.className = "chart";
    const cap = document.createElement("figcaption");
    cap.textContent = spec.title + (spec.unit ? " (" + spec.unit + ")" : "");
    box.appendChild(cap);
    container.appendChild(box);
    if (!all.length) {
      const p = document.createElement("p");
      p.className = "note";
      p.textContent = "no data in this span";
      box.appendChild(p);
      return box;
    }
    let lo = Math.min.apply(null, all), hi = Math.max.apply(null, all);
    const pad = (hi - lo) * 0.05 || Math.abs(hi) * 0.05 || 1;
    const yt = ticks(lo - pad, hi + pad, 4);
    lo = Math.min(lo - pad, yt.values[0]);
    hi = Math.max(hi + pad, yt.values[yt.values.length - 1]);
    const x = t => L + (t - spec.from) / (spec.to - spec.from) * (W - L - R);
    const y = v => T + (hi - v) / (hi - lo) * (H - T - B);
    const svg = el("svg", {viewBox: "0 0 " + W + " " + H, class: "plot", role: "img",
                           "aria-label": spec.title});
    const dec = spec.decimals;
    const tickDec = Math.max(0, Math.min(dec, -Math.floor(Math.log10(yt.step) + 1e-9)));
    for (const v of yt.values) {
      if (v < lo || v > hi) continue;
      svg.appendChild(el("line", {x1: L, x2: W - R, y1: y(v), y2: y(v), class: "grid"}));
      svg.appendChild(el("text", {x: L - 6, y: y(v) + 4, class: "ylab"}, v.toFixed(tickDec)));
    }
    const tt = timeTicks(spec.from, spec.to);
    for (const t of tt.values) {
      svg.appendChild(el("line", {x1: x(t), x2: x(t), y1: T, y2: H - B, class: "grid"}));
      const label = tt.withDate ? V.time(t).slice(5, 10) : V.time(t, false);
      svg.appendChild(el("text", {x: x(t), y: H - B + 16, class: "xlab"}, label));
    }
    svg.appendChild(el("rect", {x: L, y: T, width: W - L - R, height: H - T - B, class: "frame"}));
    spec.series.forEach((s, k) => {
      // a gap in the data (null) breaks the line instead of bridging it
      let d = "", pen = false;
      for (let i = 0; i < s.t.length; i++) {
        if (s.v[i] === null) { pen = false; continue; }
        d += (pen ? "L" : "M") + x(s.t[i]).toFixed(1) + "," + y(s.v[i]).toFixed(1);
        pen = true;
      }
      svg.appendChild(el("path", {d, class: "series " + cls(k)}));
    });
    // hover: a cursor line and the values at that time, with the field's decimals
    const cursor = el("line", {x1: 0, x2: 0, y1: T, y2: H - B, class: "cursor", visibility: "hidden"});
    svg.appendChild(cursor);
    const tip = document.createElement("div");
    tip.className = "tip";
    tip.hidden = true;
    svg.addEventListener("mousemove", ev => {
      const r = svg.getBoundingClientRect();
      const px = (ev.clientX - r.left) / r.width * W;
      if (px < L || px > W - R) { tip.hidden = true; cursor.setAttribute("visibility", "hidden"); return; }
      const t = spec.from + (px - L) / (W - L - R) * (spec.to - spec.from);
      const parts = [V.time(t)];
      spec.series.forEach((s, k) => {
        let best = -1, bd = Infinity;
        for (let i = 0; i < s.t.length; i++) { const dd = Math.abs(s.t[i] - t); if (dd < bd) { bd = dd; best = i; } }
        if (best >= 0) parts.push('<span class="' + cls(k) + '">' + V.esc(s.name) + "</span> " +
          V.fmt(s.v[best], dec) + (spec.unit ? " " + V.esc(spec.unit) : ""));
      });
      tip.innerHTML = parts.join("<br>");
      tip.hidden = false;
      tip.style.left = Math.min(r.width - 160, ev.clientX - r.left + 12) + "px";
      cursor.setAttribute("x1", px); cursor.setAttribute("x2", px); cursor.setAttribute("visibility", "visible");
    });
    svg.addEventListener("mouseleave", () => { tip.hidden = true; cursor.setAttribute("visibility", "hidden"); });
    box.appendChild(svg);
    box.appendChild(tip);
    const legend = document.createElement("div");
    legend.className = "legend";
    legend.innerHTML = spec.series.map((s, k) => '<span><i class="' + cls(k) + '"></i>' +
      V.esc(s.name) + "</span>").join(" ");
    box.appendChild(legend);
    return box;
  }

  return {line};
})();
