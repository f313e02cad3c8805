// One flow, drawn: its elements as boxes and its exits as labelled arrows, laid out by dagre.
// Each box shows entered, waiting now and per-exit counts, refreshed while the page is open;
// hovering or focusing a box shows the element's full analytics.

import dagre from "@dagrejs/dagre";
import { api, path } from "../api.js";
import { count, every, fill, h, routeParams, s } from "../dom.js";

const WIDTH = 236;
const LINE = 18;
const PAD = 10;
const REFRESH_MS = 2000;

export function flowPage(main, id) {
  const asked = Number(routeParams().get("version")) || undefined;
  const heading = h("h1", {}, id);
  const versions = h("select", { id: "flow-version" });
  const meta = h("p", { class: "meta" });
  const wrap = h("div", { class: "graph", id: "graph" });
  const tip = h("div", { id: "element-tip", role: "tooltip", hidden: true });
  main.append(
    h("p", { class: "crumbs" }, h("a", { href: "#/flows" }, "Flows"), " / ", id),
    heading,
    h("div", { class: "bar" }, h("label", { for: "flow-version" }, "Version "), versions, meta),
    h(
      "p",
      { class: "help" },
      "Hover over an element, or move to it with Tab, for its full analytics. Counts refresh every two seconds.",
    ),
    wrap,
  );
  let stop = () => {};
  let stopped = false;
  (async () => {
    const summary = (await api("/v1/flows")).flows.find((f) => f.id === id);
    if (!summary) {
      fill(wrap, h("p", { role: "alert" }, `There is no flow ${JSON.stringify(id)}.`));
      return;
    }
    const version = asked ?? summary.version;
    const def = await api(`${path("/v1/flows/{id}", { id })}?version=${version}`);
    heading.textContent = def.name || id;
    fill(
      versions,
      Array.from({ length: summary.version }, (_, i) => summary.version - i).map((v) =>
        h("option", { value: v, selected: v === version }, v === summary.version ? `${v} (current)` : v),
      ),
    );
    versions.addEventListener("change", () => {
      location.hash = `#/flows/${encodeURIComponent(id)}?version=${versions.value}`;
    });
    fill(meta, h("span", { class: `badge ${def.status}` }, def.status), ` ${def.elements.length} elements`);
    if (stopped) return;
    const graph = draw(def, wrap, tip);
    stop = every(REFRESH_MS, async () => {
      const analytics = await api(`${path("/v1/flows/{id}/analytics", { id })}?version=${version}`);
      graph.update(analytics.elements);
    });
  })().catch((e) => fill(wrap, h("p", { role: "alert" }, `Could not load the flow: ${e.message}`)));
  return () => {
    stopped = true;
    stop();
  };
}

/** `plugin:order-status@1.0.0` as `order-status@1.0.0`, with whether it is a plugin. */
function typeLabel(type) {
  return type.startsWith("plugin:") ? { plugin: true, text: type.slice(7) } : { plugin: false, text: type };
}

/** Draws `def` into `wrap`; `update` puts new analytics into the boxes and the open tip. */
function draw(def, wrap, tip) {
  const g = new dagre.graphlib.Graph({ multigraph: true });
  g.setGraph({ rankdir: "TB", nodesep: 36, ranksep: 56, edgesep: 16, marginx: 16, marginy: 16 });
  g.setDefaultEdgeLabel(() => ({}));
  const known = new Set(def.elements.map((e) => e.id));
  for (const el of def.elements) {
    const exits = Object.keys(el.exits ?? {});
    g.setNode(el.id, { width: WIDTH, height: PAD * 2 + LINE * (3 + exits.length), el, exits });
  }
  (def.entry_points ?? []).forEach((entry, i) => {
    const name = `entry:${i}`;
    g.setNode(name, { width: 180, height: 34, entry });
    if (known.has(entry.start)) g.setEdge(name, entry.start, { width: 0, height: 0 }, name);
  });
  for (const el of def.elements) {
    for (const [exit, target] of Object.entries(el.exits ?? {})) {
      if (known.has(target)) {
        g.setEdge(el.id, target, { label: exit, width: exit.length * 7 + 8, height: 16, labelpos: "c" }, exit);
      }
    }
  }
  dagre.layout(g);

  const { width, height } = g.graph();
  const svg = s("svg", {
    width: Math.ceil(width),
    height: Math.ceil(height),
    viewBox: `0 0 ${Math.ceil(width)} ${Math.ceil(height)}`,
    role: "group",
    "aria-label": `Flow ${def.id}: ${def.elements.length} elements`,
  });
  svg.append(
    s(
      "defs",
      {},
      s(
        "marker",
        { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
        s("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrowhead" }),
      ),
    ),
  );
  const edges = s("g", { class: "edges" });
  for (const e of g.edges()) {
    const edge = g.edge(e);
    const d = edge.points.map((p, i) => `${i ? "L" : "M"} ${p.x.toFixed(1)} ${p.y.toFixed(1)}`).join(" ");
    edges.append(s("path", { d, class: "edge", "marker-end": "url(#arrow)" }));
    if (edge.label) {
      edges.append(
        s("rect", {
          class: "edge-label-bg",
          x: edge.x - edge.width / 2,
          y: edge.y - 9,
          width: edge.width,
          height: 16,
          rx: 3,
        }),
        s("text", { class: "edge-label", x: edge.x, y: edge.y + 3, "text-anchor": "middle" }, edge.label),
      );
    }
  }
  svg.append(edges);

  const views = new Map();
  const nodes = s("g", { class: "nodes" });
  for (const name of g.nodes()) {
    const n = g.node(name);
    const x = n.x - n.width / 2;
    const y = n.y - n.height / 2;
    if (n.entry) {
      const label = `start: ${n.entry.type}${n.entry.channel ? ` (${n.entry.channel})` : ""}`;
      nodes.append(
        s(
          "g",
          { class: "entry" },
          s("rect", { x, y, width: n.width, height: n.height, rx: 17 }),
          s("text", { x: n.x, y: n.y + 4, "text-anchor": "middle" }, label),
        ),
      );
      continue;
    }
    const type = typeLabel(n.el.type);
    const entered = s("tspan", { class: "n" }, "0");
    const waiting = s("tspan", { class: "n" }, "0");
    const exitCounts = new Map();
    const typeText = s("text", { class: "type", x: x + PAD, y: y + PAD + 13 + LINE }, type.plugin ? `plugin ${type.text}` : type.text);
    const group = s(
      "g",
      {
        class: `node${type.plugin ? " plugin" : ""}`,
        tabindex: 0,
        role: "button",
        "aria-label": `${n.el.id}, ${type.plugin ? "plugin " : ""}${type.text}`,
        dataset: { element: n.el.id },
      },
      s("rect", { x, y, width: n.width, height: n.height, rx: 6 }),
      s("text", { class: "title", x: x + PAD, y: y + PAD + 13 }, n.el.id),
      typeText,
      s(
        "text",
        { class: "counts", x: x + PAD, y: y + PAD + 13 + LINE * 2 },
        "entered ",
        entered,
        " · waiting ",
        waiting,
      ),
    );
    n.exits.forEach((exit, i) => {
      const c = s("tspan", { class: "n" }, "0");
      exitCounts.set(exit, c);
      group.append(
        s("text", { class: "exit", x: x + PAD, y: y + PAD + 13 + LINE * (3 + i), dataset: { exit } }, `→ ${exit}: `, c),
      );
    });
    const view = { node: n, group, typeText, entered, waiting, exitCounts, analytics: null };
    views.set(n.el.id, view);
    const open = () => showTip(view);
    group.addEventListener("mouseenter", open);
    group.addEventListener("focus", open);
    group.addEventListener("mouseleave", () => hideTip(view));
    group.addEventListener("blur", () => hideTip(view));
    group.addEventListener("keydown", (e) => {
      if (e.key === "Escape") hideTip(view);
    });
    nodes.append(group);
  }
  svg.append(nodes);
  fill(wrap, svg, tip);

  let shown = null;
  function showTip(view) {
    shown = view;
    renderTip(view);
    const n = view.node;
    const left = n.x + n.width / 2 + 12;
    tip.style.left = `${Math.min(left, Math.max(0, wrap.scrollWidth - 300))}px`;
    tip.style.top = `${Math.max(0, n.y - n.height / 2)}px`;
    tip.hidden = false;
    view.group.setAttribute("aria-describedby", "element-tip");
  }
  function hideTip(view) {
    if (shown !== view) return;
    shown = null;
    tip.hidden = true;
    view.group.removeAttribute("aria-describedby");
  }
  function renderTip(view) {
    const { el } = view.node;
    const a = view.analytics ?? { entered: 0, waiting: 0, exits: {}, details: {} };
    const type = typeLabel(a.element_type ?? el.type);
    const exits = [...new Set([...view.node.exits, ...Object.keys(a.exits ?? {})])];
    const left = Object.values(a.exits ?? {}).reduce((x, y) => x + y, 0);
    const details = Object.entries(a.details ?? {});
    fill(
      tip,
      h("h2", {}, el.id),
      h("p", { class: "type" }, type.plugin ? `plugin ${type.text}` : type.text),
      h(
        "dl",
        {},
        h("dt", {}, "Entered"),
        h("dd", { dataset: { stat: "entered" } }, count(a.entered)),
        h("dt", {}, "Waiting now"),
        h("dd", { dataset: { stat: "waiting" } }, count(a.waiting)),
        h("dt", {}, "Left"),
        h("dd", { dataset: { stat: "left" } }, count(left)),
      ),
      h(
        "table",
        {},
        h("caption", {}, "Left by exit"),
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Exit"), h("th", { scope: "col" }, "To"), h("th", { scope: "col" }, "Count"))),
        h(
          "tbody",
          {},
          exits.map((exit) =>
            h(
              "tr",
              { dataset: { exit } },
              h("th", { scope: "row" }, exit),
              h("td", {}, el.exits?.[exit] ?? "end"),
              h("td", { class: "num" }, count(a.exits?.[exit])),
            ),
          ),
        ),
      ),
      details.length
        ? h(
            "table",
            { class: "details" },
            h("caption", {}, "Also counted"),
            h(
              "tbody",
              {},
              details.map(([name, n]) =>
                h("tr", { dataset: { detail: name } }, h("th", { scope: "row" }, name), h("td", { class: "num" }, count(n))),
              ),
            ),
          )
        : null,
    );
  }

  return {
    update(elements) {
      for (const a of elements) {
        const view = views.get(a.element_id);
        if (!view) continue;
        view.analytics = a;
        // The analytics name the plugin version this flow version runs (`id@version`).
        const type = typeLabel(a.element_type);
        view.typeText.textContent = type.plugin ? `plugin ${type.text}` : type.text;
        view.entered.textContent = count(a.entered);
        view.waiting.textContent = count(a.waiting);
        for (const [exit, el] of view.exitCounts) el.textContent = count(a.exits?.[exit]);
        view.group.setAttribute(
          "aria-label",
          `${a.element_id}, ${typeLabel(a.element_type).text}: entered ${a.entered}, waiting ${a.waiting}`,
        );
      }
      if (shown) renderTip(shown);
    },
  };
}
