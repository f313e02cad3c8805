// Every flow with its status, version and participants, refreshed while the page is open.

import { api } from "../api.js";
import { count, every, fill, h } from "../dom.js";

export function flowsPage(main) {
  const body = h("tbody");
  const table = h(
    "table",
    { class: "flows", "aria-describedby": "flows-note" },
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        ["Flow", "Status", "Version", "Elements", "Active", "Waiting", "Completed", "Failed", "Failed, last hour"].map(
          (t) => h("th", { scope: "col" }, t),
        ),
      ),
    ),
    body,
  );
  main.append(
    h("h1", {}, "Flows"),
    h(
      "p",
      { id: "flows-note", class: "help" },
      "Participants of every version. Active: being run now or queued to start.",
    ),
    table,
  );
  return every(5000, async () => {
    const { flows } = await api("/v1/flows");
    if (flows.length === 0) {
      fill(body, h("tr", {}, h("td", { colspan: 9 }, "No flow is deployed yet: POST one to /v1/flows.")));
      return;
    }
    fill(
      body,
      flows.map((f) => {
        const p = f.participants ?? {};
        return h(
          "tr",
          { dataset: { flow: f.id } },
          h(
            "th",
            { scope: "row" },
            h("a", { href: `#/flows/${encodeURIComponent(f.id)}` }, f.name || f.id),
            h("div", { class: "id" }, f.id),
          ),
          h("td", {}, h("span", { class: `badge ${f.status}` }, f.status)),
          h("td", { class: "num" }, f.version),
          h("td", { class: "num" }, f.elements),
          h("td", { class: "num", dataset: { count: "active" } }, count((p.running ?? 0) + (p.queued ?? 0))),
          h("td", { class: "num", dataset: { count: "waiting" } }, count(p.waiting)),
          h("td", { class: "num", dataset: { count: "completed" } }, count(p.completed)),
          h("td", { class: "num", dataset: { count: "failed" } }, count(p.failed)),
          h(
            "td",
            { class: `num ${f.failed_last_hour ? "alert" : ""}`, dataset: { count: "failed-last-hour" } },
            count(f.failed_last_hour),
          ),
        );
      }),
    );
  });
}
