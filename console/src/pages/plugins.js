// Loaded plugins, the files that did not load, and hot-reload events as they happen.

import { api } from "../api.js";
import { every, fill, h, time } from "../dom.js";

export function pluginsPage(main) {
  const loaded = h("tbody");
  const failed = h("ul", { class: "failed", id: "failed-files" });
  const events = h("ol", { class: "reloads", id: "reloads", "aria-live": "polite" });
  main.append(
    h("h1", {}, "Plugins"),
    h(
      "table",
      { class: "plugins" },
      h(
        "thead",
        {},
        h("tr", {}, ["Plugin", "Version", "WIT", "Exits", "Hosts granted", "Cache", "Notes"].map((t) => h("th", { scope: "col" }, t))),
      ),
      loaded,
    ),
    h("h2", {}, "Files that did not load"),
    failed,
    h("h2", {}, "Reloads"),
    h("p", { class: "help" }, "The plugins folder is watched; each reload that changed something is listed, newest first."),
    events,
  );
  return every(2000, async () => {
    const data = await api("/v1/plugins");
    fill(
      loaded,
      data.plugins.map((p) =>
        h(
          "tr",
          { dataset: { plugin: p.id } },
          h("th", { scope: "row" }, p.id, p.name && p.name !== p.id ? h("div", { class: "sub" }, p.name) : null),
          h("td", {}, p.version),
          h("td", {}, p.wit_version),
          h("td", { class: "exits" }, (p.exits ?? []).map((e) => h("span", { class: "exit", title: e.label }, e.id)).flatMap((x, i) => (i ? [", ", x] : [x]))),
          h("td", {}, (p.granted_hosts ?? []).join(", ") || "none"),
          h("td", { class: "cache" }, cacheText(p.cache)),
          h(
            "td",
            {},
            p.missing_secrets?.length ? h("div", { class: "warn" }, `missing secrets: ${p.missing_secrets.join(", ")}`) : null,
            p.kept_for ? h("div", { class: "warn" }, `file removed; kept for ${p.kept_for.join(", ")}`) : null,
          ),
        ),
      ),
    );
    fill(failed, data.failed.length ? data.failed.map((f) => h("li", { class: "error" }, f)) : h("li", {}, "None."));
    fill(
      events,
      data.reloads.length
        ? [...data.reloads].reverse().map((r) =>
            h(
              "li",
              { dataset: { at: r.at } },
              h("time", {}, time(r.at)),
              r.loaded.length ? h("div", {}, `loaded ${r.loaded.join(", ")}`) : null,
              r.unloaded.length ? h("div", {}, `unloaded ${r.unloaded.join(", ")}`) : null,
              r.kept.length ? h("div", { class: "warn" }, r.kept.map((k) => `kept ${k.plugin} for ${k.flows.join(", ")}`).join("; ")) : null,
              r.failed.length ? h("ul", {}, r.failed.map((f) => h("li", { class: "error" }, f))) : null,
              r.rebuilt.length ? h("div", {}, `flows rebuilt: ${r.rebuilt.join(", ")}`) : null,
              r.not_rebuilt.length ? h("div", { class: "warn" }, `not rebuilt: ${r.not_rebuilt.join("; ")}`) : null,
            ),
          )
        : h("li", {}, "No reload since the service started."),
    );
  });
}

/** `{"status": "rebuilt", "reason": "..."}` as `rebuilt: ...`. */
function cacheText(cache) {
  if (!cache) return "";
  const names = { hit: "from the cache", compiled: "compiled, cached", rebuilt: "cache entry unusable, rebuilt", uncached: "compiled, not cached" };
  const name = names[cache.status] ?? cache.status;
  return cache.reason ? `${name}: ${cache.reason}` : name;
}
