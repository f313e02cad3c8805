// The agent desk: conversations by tag and status, the thread of one (customer, bot and
// agent messages with where their sending stands), and assign, reply and close.

import { api, path } from "../api.js";
import { every, fill, h, routeParams, time } from "../dom.js";

const AGENT = "flowhost.agent";

export function deskPage(main) {
  const params = routeParams();
  const tag = h("input", { id: "desk-tag", name: "tag", value: params.get("tag") ?? "", placeholder: "any tag" });
  const status = h(
    "select",
    { id: "desk-status", name: "status" },
    ["open", "assigned", "closed", ""].map((v) =>
      h("option", { value: v, selected: (params.get("status") ?? "open") === v }, v || "any status"),
    ),
  );
  const list = h("ul", { class: "conversations", "aria-label": "Conversations" });
  const thread = h("section", { class: "thread", id: "thread", "aria-live": "polite" });
  const selected = params.get("c");
  const go = (changes) => {
    const next = new URLSearchParams({ tag: tag.value.trim(), status: status.value, c: selected ?? "" });
    for (const [k, v] of Object.entries(changes)) next.set(k, v);
    for (const [k, v] of [...next]) if (!v) next.delete(k);
    location.hash = `#/desk?${next}`;
  };
  main.append(
    h("h1", {}, "Agent desk"),
    h(
      "form",
      {
        class: "bar",
        onsubmit: (e) => {
          e.preventDefault();
          go({ c: "" });
        },
      },
      h("label", { for: "desk-tag" }, "Tag "),
      tag,
      h("label", { for: "desk-status" }, " Status "),
      status,
      h("button", { type: "submit" }, "Show"),
    ),
    h("div", { class: "desk" }, list, thread),
  );
  status.addEventListener("change", () => go({ c: "" }));

  const query = new URLSearchParams();
  if (tag.value.trim()) query.set("tag", tag.value.trim());
  if (status.value) query.set("status", status.value);
  const stopList = every(3000, async () => {
    const { conversations } = await api(`/v1/conversations?${query}`);
    if (conversations.length === 0) {
      fill(list, h("li", { class: "empty" }, "No conversation here."));
      return;
    }
    fill(
      list,
      conversations.map((c) => {
        const last = c.messages?.[c.messages.length - 1];
        return h(
          "li",
          { class: c.id === selected ? "selected" : "", dataset: { conversation: c.id } },
          h(
            "a",
            { href: "#", onclick: (e) => (e.preventDefault(), go({ c: c.id })), "aria-current": c.id === selected ? "true" : null },
            h("strong", {}, c.contact),
            " ",
            h("span", { class: `badge ${c.status}` }, c.status),
            h("div", { class: "sub" }, `${c.tag} · ${c.channel}${c.agent ? ` · ${c.agent}` : ""}`),
            last ? h("div", { class: "last" }, last.text) : null,
          ),
        );
      }),
    );
  });
  const stopThread = selected ? every(2000, () => showThread(thread, selected)) : () => {};
  if (!selected) fill(thread, h("p", { class: "help" }, "Pick a conversation."));
  return () => {
    stopList();
    stopThread();
  };
}

let drafting = false;

async function showThread(thread, id) {
  // Leave the form alone while the agent is typing in it.
  if (drafting && thread.childElementCount) return;
  const c = await api(path("/v1/conversations/{id}", { id }));
  const agent = h("input", { id: "agent", name: "agent", value: localStorage.getItem(AGENT) ?? c.agent ?? "", required: true });
  const text = h("textarea", { id: "reply", name: "reply", rows: 3, required: true });
  text.addEventListener("input", () => (drafting = text.value.length > 0));
  const message = h("p", { role: "alert", class: "error" });
  const act = async (what, body) => {
    try {
      await api(`${path("/v1/conversations/{id}", { id })}/${what}`, { method: "POST", body });
      drafting = false;
      await showThread(thread, id);
    } catch (e) {
      message.textContent = e.message;
    }
  };
  const open = c.status !== "closed";
  fill(
    thread,
    h("h2", {}, `${c.contact} on ${c.channel}`),
    h(
      "p",
      { class: "meta" },
      h("span", { class: `badge ${c.status}` }, c.status),
      ` tag ${c.tag} · opened ${time(c.createdAt)}`,
      c.agent ? ` · assigned to ${c.agent}` : "",
      " · ",
      h("a", { href: `#/journeys?participant=${encodeURIComponent(c.participantId)}` }, "journey"),
    ),
    h(
      "ol",
      { class: "messages" },
      c.messages.map((m) =>
        h(
          "li",
          { class: `message ${m.author}`, dataset: { message: m.id } },
          h("div", { class: "who" }, m.by ? `${m.author} ${m.by}` : m.author, " · ", h("time", {}, time(m.at))),
          h("div", { class: "text" }, m.text),
          m.sending
            ? h(
                "div",
                { class: `sending ${m.sending.state}` },
                m.sending.state,
                m.sending.providerId ? ` as ${m.sending.providerId}` : "",
                m.sending.lastError ? `: ${m.sending.lastError}` : "",
              )
            : null,
        ),
      ),
    ),
    open
      ? h(
          "form",
          {
            class: "assign",
            onsubmit: (e) => {
              e.preventDefault();
              localStorage.setItem(AGENT, agent.value.trim());
              act("assign", { agent: agent.value.trim() });
            },
          },
          h("label", { for: "agent" }, "Agent "),
          agent,
          h("button", { type: "submit" }, c.agent ? "Reassign" : "Assign"),
        )
      : null,
    open && c.agent
      ? h(
          "form",
          {
            class: "reply",
            onsubmit: (e) => {
              e.preventDefault();
              act("replies", { text: text.value });
            },
          },
          h("label", { for: "reply" }, `Reply as ${c.agent}`),
          text,
          h("button", { type: "submit" }, "Send"),
        )
      : null,
    open
      ? h("button", { type: "button", id: "close-conversation", onclick: () => act("close", {}) }, "Close conversation")
      : null,
    message,
  );
}
