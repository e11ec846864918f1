// The PnL chart: grouped bars per key (one per series: expected, realized, ...) with a zero line,
// drawn as an inline SVG. Heights are plotted from floats; every number written as text (tooltips)
// comes from BigInt.

import { formatEth, weiToPlot } from "./format.js";

const SVG = "http://www.w3.org/2000/svg";

function el(name, attrs = {}, text) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

/** Round tick values covering [min, max] (at most ~5 of them). */
export function niceTicks(min, max, count = 5) {
  if (min === max) {
    const pad = Math.abs(min) || 1;
    return niceTicks(min - pad, max + pad, count);
  }
  const raw = (max - min) / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= raw) ?? 10 * power;
  const ticks = [];
  for (let v = Math.floor(min / step) * step; v <= max + step * 1e-9; v += step) {
    ticks.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  }
  if (ticks[ticks.length - 1] < max) ticks.push(ticks[ticks.length - 1] + step);
  return ticks;
}

/** Decimals that tell the ticks apart: enough for the step between them, at most 6. */
function tickDecimals(ticks) {
  const step = ticks.length > 1 ? Math.abs(ticks[1] - ticks[0]) : 1;
  return Math.min(6, Math.max(0, Math.ceil(-Math.log10(step) + 1e-9)));
}

/**
 * Draw `rows` ({key, values: [wei strings, one per series], note}) into `container` as grouped
 * bars; `series` is [[class, legend label], ...]. The SVG scales to the container's width.
 */
export function drawPnlChart(container, rows, { series, empty, label, height = 240 }) {
  container.replaceChildren();
  if (!rows.length) {
    const message = document.createElement("p");
    message.className = "empty";
    message.textContent = empty;
    container.append(message);
    return;
  }
  const width = Math.max(container.clientWidth || 640, 320);
  const margin = { top: 12, right: 12, bottom: 44, left: 72 };
  const plotW = width - margin.left - margin.right;
  const plotH = height - margin.top - margin.bottom;
  const values = rows.flatMap((r) => r.values.map(weiToPlot));
  const ticks = niceTicks(Math.min(0, ...values), Math.max(0, ...values));
  const lo = ticks[0];
  const hi = ticks[ticks.length - 1];
  const y = (v) => margin.top + plotH - ((v - lo) / (hi - lo)) * plotH;
  const decimals = tickDecimals(ticks);

  const svg = el("svg", {
    viewBox: `0 0 ${width} ${height}`,
    width: "100%",
    height,
    role: "img",
    "aria-label": label,
    class: "chart",
  });
  for (const tick of ticks) {
    svg.append(
      el("line", { x1: margin.left, x2: width - margin.right, y1: y(tick), y2: y(tick), class: tick === 0 ? "axis zero" : "grid" }),
      el("text", { x: margin.left - 8, y: y(tick) + 4, class: "tick", "text-anchor": "end" }, tick.toFixed(decimals)),
    );
  }
  const mid = margin.top + plotH / 2;
  svg.append(el("text", { x: 14, y: mid, class: "unit", transform: `rotate(-90 14 ${mid})`, "text-anchor": "middle" }, "ETH"));

  const band = plotW / rows.length;
  const barW = Math.max(2, Math.min(32, (band * 0.7) / series.length));
  const labelEvery = Math.ceil(rows.length / Math.max(1, Math.floor(plotW / 84)));
  rows.forEach((row, i) => {
    const center = margin.left + band * i + band / 2;
    const left = center - (barW * series.length) / 2;
    const group = el("g", { class: "bar-group", "data-key": row.key });
    series.forEach(([name, legend], j) => {
      const value = weiToPlot(row.values[j]);
      const top = y(Math.max(0, value));
      const bottom = y(Math.min(0, value));
      const rect = el("rect", {
        x: left + j * barW,
        y: top,
        width: Math.max(1, barW - 2),
        height: Math.max(1, bottom - top),
        rx: 2,
        class: `bar ${name}${value < 0 ? " negative" : ""}`,
        "data-series": name,
      });
      const note = row.note ? ` (${row.note})` : "";
      rect.append(el("title", {}, `${row.key} — ${legend}: ${formatEth(row.values[j])}${note}`));
      group.append(rect);
    });
    if (i % labelEvery === 0) {
      group.append(el("text", { x: center, y: margin.top + plotH + 16, class: "tick", "text-anchor": "middle" }, row.key));
    }
    svg.append(group);
  });

  const legend = el("g", { class: "legend", transform: `translate(${margin.left}, ${height - 8})` });
  let x = 0;
  for (const [name, text] of series) {
    legend.append(
      el("rect", { x, y: -9, width: 10, height: 10, rx: 2, class: `bar ${name}` }),
      el("text", { x: x + 16, y: 0, class: "tick" }, text),
    );
    x += 24 + text.length * 6.2;
  }
  svg.append(legend);
  container.append(svg);
}
