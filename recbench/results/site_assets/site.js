/* recbench leaderboard site: sorting, filtering and the charts of a page. Plain JavaScript, no
   network: the page's data is the JSON in #page-data, the charts are drawn by the bundled plotly.js. */
"use strict";

function pageData() {
  const node = document.getElementById("page-data");
  return node ? JSON.parse(node.textContent) : null;
}

/* Click a header to sort by its column (numbers by value, best first; text A to Z); again to reverse. */
function sortable(table) {
  const heads = table.tHead.rows[0].cells;
  Array.from(heads).forEach((th, column) => th.addEventListener("click", () => {
    const descending = !th.classList.contains("desc") && (th.classList.contains("asc") || !isText(table, column));
    Array.from(heads).forEach(h => h.classList.remove("asc", "desc"));
    th.classList.add(descending ? "desc" : "asc");
    const body = table.tBodies[0];
    const rows = Array.from(body.rows);
    rows.sort((a, b) => {
      const x = JSON.parse(a.dataset.sort)[column], y = JSON.parse(b.dataset.sort)[column];
      const order = x < y ? -1 : x > y ? 1 : 0;
      return descending ? -order : order;
    });
    rows.forEach(r => body.appendChild(r));
  }));
}

function isText(table, column) {
  const first = table.tBodies[0].rows[0];
  return first && typeof JSON.parse(first.dataset.sort)[column] === "string";
}

/* The selects keep a row where every chosen value is its cell's; published rows only while shown and no filter is set. */
function filterable(table, form) {
  const apply = () => {
    const chosen = Array.from(form.querySelectorAll("select")).filter(s => s.value);
    const toggle = document.getElementById("show-references");
    const showReferences = (!toggle || toggle.checked) && chosen.length === 0;
    document.querySelectorAll("tr.reference").forEach(r => { r.hidden = !showReferences; });
    Array.from(table.tBodies[0].rows).filter(r => r.classList.contains("measured")).forEach(r => {
      r.hidden = !chosen.every(s => r.cells[Number(s.dataset.column)].textContent === s.value);
    });
  };
  form.addEventListener("change", apply);
  apply();
}

const LAYOUT = { margin: { l: 60, r: 20, t: 40, b: 50 }, hovermode: "closest" };
const CONFIG = { displaylogo: false, responsive: true, showLink: false, showSendToCloud: false, showEditInChartStudio: false };

/* A chart into the element `id`; titles are given as { text } (plotly.js 3 dropped plain strings). */
function draw(id, traces, layout) {
  const node = document.getElementById(id);
  if (node) Plotly.newPlot(node, traces, Object.assign({}, LAYOUT, layout), CONFIG);
  return node;
}

function linkPoints(node, hrefs) {
  if (node) node.on("plotly_click", event => { window.location.href = hrefs[event.points[0].pointIndex]; });
}

function datasetCharts(d) {
  const error = { type: "data", array: d.std, visible: true };
  const text = d.labels.map((l, i) => `${l} (${d.seeds[i]} seed${d.seeds[i] > 1 ? "s" : ""})`);
  linkPoints(draw("chart-ndcg", [{ type: "bar", orientation: "h", x: d.mean, y: d.labels, error_x: error, hovertext: text }],
    { title: { text: `test ${d.metric} per row (mean ± std over seeds)` }, height: 120 + 28 * d.labels.length,
      yaxis: { autorange: "reversed", automargin: true }, xaxis: { title: { text: d.metric } } }), d.href);
  const scatter = x => [{ type: "scatter", mode: "markers", x: x, y: d.mean, error_y: error, text: text,
    hovertemplate: "%{text}<br>%{x:.3g}, %{y:.4f}<extra></extra>", marker: { size: 10 } }];
  linkPoints(draw("chart-speed", scatter(d.users_per_s), { title: { text: "quality against inference speed (up and right is better)" },
    xaxis: { type: "log", title: { text: "test users/s (log)" } }, yaxis: { title: { text: d.metric } } }), d.href);
  linkPoints(draw("chart-train", scatter(d.train_seconds), { title: { text: "quality against training time (up and left is better)" },
    xaxis: { type: "log", title: { text: "training seconds (log)" } }, yaxis: { title: { text: d.metric } } }), d.href);
}

function rowCharts(d) {
  if (d.curves.seeds.length) {
    const traces = [];
    d.curves.seeds.forEach(s => {
      traces.push({ type: "scatter", mode: "lines+markers", name: `seed ${s.seed}: valid ${d.curves.metric}`, x: s.valid_epoch, y: s.valid });
      traces.push({ type: "scatter", mode: "lines", name: `seed ${s.seed}: training loss`, x: s.loss_epoch, y: s.loss, yaxis: "y2", line: { dash: "dot" } });
    });
    draw("chart-curves", traces, { title: { text: "per-epoch validation and training loss" }, xaxis: { title: { text: "epoch" } },
      yaxis: { title: { text: `valid ${d.curves.metric}` } }, yaxis2: { title: { text: "loss" }, overlaying: "y", side: "right" } });
  }
  draw("chart-ranks", d.ranks.seeds.map(s => ({ type: "bar", name: `seed ${s.seed}`, x: d.ranks.labels, y: s.counts })),
    { title: { text: "users per test rank of their item" }, barmode: "group", xaxis: { title: { text: "rank (doubling bins)" }, type: "category" },
      yaxis: { title: { text: "users" } } });
}

document.addEventListener("DOMContentLoaded", () => {
  const board = document.getElementById("board");
  if (board) { sortable(board); filterable(board, document.getElementById("filters")); }
  const data = pageData();
  if (data && data.kind === "dataset") datasetCharts(data.charts);
  if (data && data.kind === "row") rowCharts(data);
});
