// The console's shell: sign-in with an API key, and a page per hash route. Each page
// renders into <main> and returns a function that stops its refreshing when the page is left.

import { api, key, setKey, whenRefused } from "./api.js";
import { fill, h, report } from "./dom.js";
import { flowsPage } from "./pages/flows.js";
import { flowPage } from "./pages/flow.js";
import { journeysPage } from "./pages/journeys.js";
import { deskPage } from "./pages/desk.js";
import { pluginsPage } from "./pages/plugins.js";

const app = () => document.getElementById("app");
let leave = () => {};

/** The page for the current route. */
function route() {
  const hash = location.hash.replace(/^#\/?/, "");
  const [where] = hash.split("?");
  const parts = where.split("/").map(decodeURIComponent);
  switch (parts[0]) {
    case "flows":
      return parts[1] ? ["flows", (el) => flowPage(el, parts[1])] : ["flows", flowsPage];
    case "journeys":
      return ["journeys", journeysPage];
    case "desk":
      return ["desk", deskPage];
    case "plugins":
      return ["plugins", pluginsPage];
    default:
      return ["flows", flowsPage];
  }
}

function show() {
  leave();
  leave = () => {};
  report(null);
  if (!key()) {
    signIn();
    return;
  }
  document.getElementById("sign-out").hidden = false;
  const [name, page] = route();
  for (const a of document.querySelectorAll("nav a")) {
    if (a.dataset.page === name) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const main = fill(app());
  leave = page(main) ?? (() => {});
}

/** The sign-in form: the key is checked against the API before it is kept. */
function signIn(refused) {
  document.getElementById("sign-out").hidden = true;
  const input = h("input", {
    id: "api-key",
    name: "api-key",
    type: "password",
    autocomplete: "off",
    required: true,
    "aria-describedby": "sign-in-help",
  });
  const message = h("p", { id: "sign-in-error", role: "alert" }, refused ?? "");
  const form = h(
    "form",
    {
      class: "sign-in",
      onsubmit: async (e) => {
        e.preventDefault();
        const candidate = input.value.trim();
        try {
          await api("/v1/flows", { withKey: candidate });
          setKey(candidate);
          show();
        } catch (err) {
          message.textContent =
            err.status === 401
              ? "The service refused this API key (401). Use a key from [server] api_keys of its flowhost.toml."
              : `The service did not answer: ${err.message}`;
          input.select();
        }
      },
    },
    h("h1", {}, "Sign in"),
    h("label", { for: "api-key" }, "API key"),
    input,
    h(
      "p",
      { id: "sign-in-help", class: "help" },
      "The same key as for the HTTP API. It is kept in this browser tab only, until you sign out or close it.",
    ),
    h("button", { type: "submit" }, "Sign in"),
    message,
  );
  fill(app(), form);
  input.focus();
}

whenRefused(() => {
  setKey(null);
  leave();
  leave = () => {};
  signIn("The service refused the API key (401); sign in again.");
});

document.getElementById("sign-out").addEventListener("click", () => {
  setKey(null);
  show();
});
window.addEventListener("hashchange", show);
show();
