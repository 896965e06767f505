"""Reading the page's charts as a person does, in a real browser: every Vega-Lite chart (drawn as SVG) and every
Plotly chart, panel by panel: a y axis long enough to read (MIN_AXIS px) with at least two tick labels, no text
over other text (tick labels, legend entries, titles, labels on the marks), no text cut ("…" or drawn outside the
chart), no Vega mark drawn past its plot area unless clipped to it, Plotly's buttons clear of its slider. `settle`
waits until Streamlit is idle and the layout stops moving, instead of waiting a fixed time. Used by
tests/test_browser.py; docs/charts.md describes the checks."""

import time

MIN_AXIS = 100          # pixels: the shortest y axis a reader can read values from
MIN_TICKS = 2           # labelled ticks on every y axis

READ_CHARTS = """minAxis => {
  const problems = [];
  const heading = el => {
    const top = el.getBoundingClientRect().top;
    const h = [...document.querySelectorAll("h1, h2, h3")].filter(h => h.getBoundingClientRect().top <= top + 1).pop();
    return h ? h.innerText.split("\\n")[0].slice(0, 40) : "top";
  };
  const shown = t => {
    if (!t.textContent.trim()) return false;
    for (let e = t; e && e.tagName !== "svg"; e = e.parentElement) {
      const s = getComputedStyle(e);
      if (s.display === "none" || s.visibility === "hidden" || s.opacity === "0" || e.getAttribute("opacity") === "0"
          || e.getAttribute("fill-opacity") === "0") return false;
    }
    const r = t.getBoundingClientRect();
    return r.width > 0 && r.height > 0;
  };
  const hit = (a, b) => Math.min(a.right, b.right) - Math.max(a.left, b.left) > 1.5
                        && Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top) > 1.5;
  const texts = (root, sel) => [...root.querySelectorAll(sel)].filter(shown);
  const collide = (name, items) => {            // items: [label, text element]; report each overlapping pair once
    const boxes = items.map(([k, t]) => [k, t.textContent.trim(), t.getBoundingClientRect()]);
    for (let i = 0; i < boxes.length; i++)
      for (let j = i + 1; j < boxes.length; j++)
        if (hit(boxes[i][2], boxes[j][2]))
          problems.push(`${name}: ${boxes[i][0]} "${boxes[i][1]}" overlaps ${boxes[j][0]} "${boxes[j][1]}"`);
  };
  const inside = (name, svg, items) => {
    const s = svg.getBoundingClientRect();
    for (const [k, t] of items) {
      const r = t.getBoundingClientRect(), text = t.textContent.trim();
      if (text.includes("…")) problems.push(`${name}: ${k} cut: "${text}"`);
      else if (Math.max(s.left - r.left, r.right - s.right, s.top - r.top, r.bottom - s.bottom)
               > Math.max(1, Math.min(r.width, r.height) / 4))    // a glyph box is taller than its ink
        problems.push(`${name}: ${k} "${text}" drawn outside the chart`);
    }
  };
  let n = 0;
  for (const chart of document.querySelectorAll("[data-testid=stVegaLiteChart]")) {
    if (!chart.checkVisibility()) continue;
    n++;
    const svg = chart.querySelector(".vega-embed svg");
    const title = svg && texts(svg, "g.role-title-text text").map(t => t.textContent).join(" ");
    const name = `chart ${n} "${(title || "").slice(0, 40)}" under "${heading(chart)}"`;
    if (!svg) { problems.push(`${name}: not drawn as SVG (a canvas hides its axes from the reader)`); continue; }
    const items = [];
    const yAxes = [...svg.querySelectorAll("g.role-axis")].filter(a => /^Y-axis/.test(a.getAttribute("aria-label") || ""));
    if (!yAxes.length) problems.push(`${name}: no y axis`);
    yAxes.forEach((axis, i) => {
      const labels = texts(axis, "g.role-axis-label text");
      const cell = axis.parentElement.closest("g.role-scope, g.role-frame");     // the axis's view
      const area = cell && cell.querySelector(":scope > g > path.background");
      const ticks = [...axis.querySelectorAll("g.role-axis-label text")].filter(t => t.textContent.trim())
        .map(t => { const r = t.getBoundingClientRect(); return (r.top + r.bottom) / 2; });
      const length = area ? area.getBoundingClientRect().height
                          : ticks.length ? Math.max(...ticks) - Math.min(...ticks) : 0;
      const label = `y axis ${i + 1} ("${(texts(axis, "g.role-axis-title text").map(t => t.textContent).join(" ")).slice(0, 30)}")`;
      if (length < minAxis) problems.push(`${name}: ${label} is ${Math.round(length)} px long (< ${minAxis})`);
      if (labels.length < 2) problems.push(`${name}: ${label} has ${labels.length} tick label(s): `
                                           + labels.map(t => t.textContent).join(", "));
    });
    for (const axis of svg.querySelectorAll("g.role-axis")) {
      const side = (axis.getAttribute("aria-label") || "axis").split(" ")[0];
      for (const t of texts(axis, "g.role-axis-label text")) items.push([`${side} tick label`, t]);
      for (const t of texts(axis, "g.role-axis-title text")) items.push([`${side} title`, t]);
    }
    for (const t of texts(svg, "g.role-legend-label text, g.role-legend-title text")) items.push(["legend entry", t]);
    for (const t of texts(svg, "g.role-title-text text, g.role-title-subtitle text")) items.push(["title", t]);
    for (const t of texts(svg, "g.role-mark.mark-text text")) items.push(["label", t]);
    collide(name, items);
    inside(name, svg, items);
    for (const mark of svg.querySelectorAll("g.role-mark:not(.mark-text)")) {    // no mark past its plot's frame
      const cell = mark.parentElement.closest("g.role-scope, g.role-frame");      // the mark's view (or line group)
      const area = cell && cell.querySelector(":scope > g > path.background");
      if (!area || mark.closest("[clip-path]") || !mark.checkVisibility()) continue;   // clipped: cut at the frame
      const f = area.getBoundingClientRect(), r = mark.getBoundingClientRect();
      if (r.width > 0 && f.width > 0
          && Math.max(f.left - r.left, r.right - f.right, f.top - r.top, r.bottom - f.bottom) > 1.5)
        problems.push(`${name}: a ${mark.classList[0].replace("mark-", "")} mark is drawn outside its plot area `
                      + `(x ${Math.round(r.left)}-${Math.round(r.right)}, y ${Math.round(r.top)}-`
                      + `${Math.round(r.bottom)} past x ${Math.round(f.left)}-${Math.round(f.right)}, `
                      + `y ${Math.round(f.top)}-${Math.round(f.bottom)})`);
    }
    for (const legend of svg.querySelectorAll("g.role-legend")) {     // a legend never sits on a tick label
      const r = legend.getBoundingClientRect();
      if (r.width === 0) continue;
      for (const [k, t] of items.filter(([k]) => k.endsWith("tick label")))
        if (hit(r, t.getBoundingClientRect())) problems.push(`${name}: the legend covers ${k} "${t.textContent}"`);
    }
  }
  for (const chart of document.querySelectorAll(".js-plotly-plot")) {
    if (!chart.checkVisibility()) continue;
    n++;
    const svg = chart.querySelector("svg.main-svg");
    const title = texts(chart, "text.gtitle").map(t => t.textContent).join(" ");
    const name = `chart ${n} "${title.slice(0, 40)}" under "${heading(chart)}"`;
    const items = [];
    for (const drag of chart.querySelectorAll("g.draglayer > g")) {          // one per subplot (xy, x2y2, ...)
      const id = [...drag.classList][0], area = drag.querySelector("rect.nsewdrag");
      const sub = chart.querySelector(`g.cartesianlayer g.subplot.${id}`);
      if (!area || !sub) continue;
      const height = area.getBoundingClientRect().height;
      const labels = texts(sub, "g.yaxislayer-above text");
      if (height < minAxis) problems.push(`${name}: panel ${id}'s y axis is ${Math.round(height)} px long (< ${minAxis})`);
      if (labels.length < 2) problems.push(`${name}: panel ${id}'s y axis has ${labels.length} tick label(s)`);
    }
    for (const t of texts(chart, "g.xaxislayer-above text, g.yaxislayer-above text")) items.push(["tick label", t]);
    for (const t of texts(chart, "g.g-xtitle text, g.g-ytitle text, g.g-x2title text, g.g-y2title text"))
      items.push(["axis title", t]);
    for (const t of texts(chart, "g.legend text")) items.push(["legend entry", t]);
    for (const t of texts(chart, "text.gtitle")) items.push(["title", t]);
    for (const t of texts(chart, "g.annotation text")) items.push(["label", t]);
    for (const t of texts(chart, "g.slider-container text, g.updatemenu-container text")) items.push(["control", t]);
    collide(name, items);
    inside(name, svg, items);
    for (const legend of chart.querySelectorAll("g.legend")) {
      const r = legend.getBoundingClientRect();
      if (r.width === 0) continue;
      for (const [k, t] of items.filter(([k]) => k === "tick label" || k === "control"))
        if (hit(r, t.getBoundingClientRect())) problems.push(`${name}: the legend covers ${k} "${t.textContent}"`);
    }
    const rail = chart.querySelector("g.slider-container rect.slider-rail");
    for (const button of chart.querySelectorAll("g.updatemenu-button")) {
      if (rail && hit(button.getBoundingClientRect(), rail.getBoundingClientRect()))
        problems.push(`${name}: the "${button.textContent}" button overlaps the slider`);
    }
  }
  return problems;
}"""

LAYOUT_SIGNATURE = """sel => {
  const running = document.querySelector("[data-testid=stStatusWidget]") ? 1 : 0;
  const stale = document.querySelectorAll("[data-stale=true]").length;
  const boxes = [...document.querySelectorAll(sel)].map(e => {
    const r = e.getBoundingClientRect();
    return [Math.round(r.left), Math.round(r.top), Math.round(r.width), Math.round(r.height),
            e.querySelectorAll("text").length];
  });
  return JSON.stringify([running, stale, boxes]);
}"""
SETTLED = ("[data-testid=stMainBlockContainer] [data-testid=stElementContainer], .js-plotly-plot, "
           ".vega-embed svg, [data-testid=stDataFrame] canvas")


def settle(pg, timeout: float = 60, quiet: float = 0.75) -> None:
    """Wait until Streamlit runs no script and every element and chart keeps its place and size (and every chart
    its number of texts) for `quiet` seconds; a page that never settles fails after `timeout` seconds."""
    deadline, last, since = time.monotonic() + timeout, None, time.monotonic()
    while True:
        now = pg.evaluate(LAYOUT_SIGNATURE, SETTLED)
        if now != last or now.startswith("[1") or not now.startswith("[0,0"):
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"the page did not settle within {timeout} s")
        pg.wait_for_timeout(150)


def chart_problems(pg) -> list[str]:
    """Everything READ_CHARTS finds wrong with the charts in view of the DOM (every visible chart)."""
    return pg.evaluate(READ_CHARTS, MIN_AXIS)
