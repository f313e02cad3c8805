// Builds the console into dist/: one bundled script, its style sheet and page. The server
// crate embeds dist/ into the flowhost binary (crates/server/build.rs).
import * as esbuild from "esbuild";
import { copyFileSync, mkdirSync } from "node:fs";

const out = new URL("./dist/", import.meta.url);
mkdirSync(out, { recursive: true });
await esbuild.build({
  entryPoints: [new URL("./src/main.js", import.meta.url).pathname],
  bundle: true,
  minify: true,
  sourcemap: false,
  format: "esm",
  target: "es2022",
  outfile: new URL("./console.js", out).pathname,
  logLevel: "warning",
  legalComments: "linked",
});
for (const file of ["index.html", "console.css"]) {
  copyFileSync(new URL(`./src/${file}`, import.meta.url), new URL(file, out));
}
