// A participant's journey, found by participant id or by a person's contact: a timeline of
// its steps with element, exit, duration, variables changed, requests, logs and errors.

import { api, path } from "../api.js";
import { count, fill, h, json, micros, routeParams, time } from "../dom.js";

export function journeysPage(main) {
  const params = routeParams();
  const input = h("input", {
    id: "find",
    name: "find",
    type: "search",
    value: params.get("participant") ?? params.get("contact") ?? "",
    placeholder: "p-… or +385911234567 or ana@example.com",
    autocomplete: "off",
  });
  const result = h("section", { id: "journey", "aria-live": "polite" });
  main.append(
    h("h1", {}, "Journeys"),
    h(
      "form",
      {
        class: "find",
        role: "search",
        onsubmit: (e) => {
          e.preventDefault();
          const v = input.value.trim();
          if (!v) return;
          const kind = v.startsWith("p-") ? "participant" : "contact";
          location.hash = `#/journeys?${kind}=${encodeURIComponent(v)}`;
        },
      },
      h("label", { for: "find" }, "Participant id or a person's contact"),
      input,
      h("button", { type: "submit" }, "Find"),
    ),
    result,
  );
  const failed = (e) => fill(result, h("p", { role: "alert" }, e.message));
  if (params.get("participant")) showParticipant(result, params.get("participant")).catch(failed);
  else if (params.get("contact")) showPerson(result, params.get("contact")).catch(failed);
  else input.focus();
}

async function showPerson(result, contact) {
  const found = await api(`/v1/participants?contact=${encodeURIComponent(contact)}`);
  if (found.participants.length === 0) {
    fill(result, h("p", {}, `Person ${found.person} has no participants.`));
    return;
  }
  fill(
    result,
    h("h2", {}, `Participants of ${found.person}`),
    h(
      "table",
      { class: "participants" },
      h("thead", {}, h("tr", {}, ["Participant", "Flow", "Version", "Status", "At", "Steps"].map((t) => h("th", { scope: "col" }, t)))),
      h(
        "tbody",
        {},
        found.participants.map((p) =>
          h(
            "tr",
            {},
            h("td", {}, h("a", { href: `#/journeys?participant=${encodeURIComponent(p.id)}` }, p.id)),
            h("td", {}, h("a", { href: `#/flows/${encodeURIComponent(p.flow)}` }, p.flow)),
            h("td", { class: "num" }, p.version),
            h("td", {}, h("span", { class: `badge ${p.status}` }, p.status)),
            h("td", {}, p.current ?? ""),
            h("td", { class: "num" }, p.steps),
          ),
        ),
      ),
    ),
  );
}

async function showParticipant(result, id) {
  const [p, { journey }] = await Promise.all([
    api(path("/v1/participants/{id}", { id })),
    api(path("/v1/participants/{id}/journey", { id })),
  ]);
  const contacts = [...(p.person.phones ?? []), ...(p.person.emails ?? [])];
  fill(
    result,
    h("h2", {}, id),
    h(
      "dl",
      { class: "facts" },
      h("dt", {}, "Flow"),
      h("dd", {}, h("a", { href: `#/flows/${encodeURIComponent(p.flow)}?version=${p.version}` }, `${p.flow} v${p.version}`)),
      h("dt", {}, "Status"),
      h("dd", {}, h("span", { class: `badge ${p.status}` }, p.status), p.current ? ` at ${p.current}` : ""),
      p.waiting_until ? [h("dt", {}, "Waiting until"), h("dd", {}, time(p.waiting_until))] : null,
      h("dt", {}, "Person"),
      h(
        "dd",
        {},
        p.person.id,
        contacts.length ? ` (${contacts.join(", ")})` : "",
        contacts.length
          ? [" ", h("a", { href: `#/journeys?contact=${encodeURIComponent(contacts[0])}` }, "all of their participants")]
          : null,
      ),
      h("dt", {}, "Variables"),
      h("dd", {}, h("code", {}, json(p.variables))),
    ),
    h("h3", {}, `${count(journey.length)} steps`),
    h("ol", { class: "timeline" }, journey.map(step)),
  );
}

function step(e) {
  const type = e.element_type.startsWith("plugin:") ? `plugin ${e.element_type.slice(7)}` : e.element_type;
  const vars = Object.entries(e.variables_changed ?? {});
  return h(
    "li",
    { class: `step${e.error ? " failed" : ""}`, dataset: { seq: e.seq, element: e.element_id } },
    h(
      "div",
      { class: "step-head" },
      h("span", { class: "seq" }, `#${e.seq}`),
      h("strong", { class: "element" }, e.element_id),
      h("span", { class: "type" }, type),
      h(
        "span",
        { class: "exit" },
        e.exit ? `→ ${e.exit}${e.next ? ` → ${e.next}` : " (end)"}` : e.waiting_until ? "waits" : "ends here",
      ),
      h("span", { class: "duration" }, micros(e.duration_us)),
      h("time", { class: "at" }, time(e.at_ms)),
    ),
    e.retried
      ? h("p", { class: "warn" }, `Ran again after ${e.retried} takeover(s): its requests may have gone out before, with the same idempotency keys.`)
      : null,
    e.error ? h("p", { class: "error" }, e.error) : null,
    vars.length
      ? h("ul", { class: "vars" }, vars.map(([k, v]) => h("li", {}, h("code", {}, k), " = ", h("code", {}, json(v)))))
      : null,
    e.requests?.length
      ? h(
          "table",
          { class: "requests" },
          h("caption", {}, "HTTP requests"),
          h(
            "tbody",
            {},
            e.requests.map((r) =>
              h(
                "tr",
                {},
                h("td", {}, r.method),
                h("td", { class: "url" }, r.url),
                h("td", { class: r.status >= 400 || !r.status ? "bad" : "" }, r.status ?? r.error ?? "no answer"),
                h("td", { class: "num" }, `${r.duration_ms.toFixed(1)} ms`),
              ),
            ),
          ),
        )
      : null,
    e.logs?.length
      ? h("ul", { class: "logs" }, e.logs.map((l) => h("li", { class: `log ${String(l.level).toLowerCase()}` }, h("span", { class: "level" }, l.level), " ", l.message)))
      : null,
    e.waiting_until ? h("p", { class: "waits" }, `Waits until ${time(e.waiting_until)}`) : null,
  );
}
