// Builds the front end into the Python package: ../src/libertem/web/static/.
// The bundle starts with a hash of the sources, which the test suite compares
// with the sources in web/src so that a stale build is noticed without Node.
import { createHash } from "node:crypto";
import { copyFileSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import * as esbuild from "esbuild";

const src = "src";
const out = "../src/libertem/web/static";
const hash = createHash("sha256");
for (const name of readdirSync(src).sort()) {
  hash.update(name + "\n");
  hash.update(readFileSync(join(src, name)));
}
const digest = hash.digest("hex");

await esbuild.build({
  entryPoints: [join(src, "main.ts")],
  bundle: true,
  format: "iife",
  target: "es2020",
  outfile: join(out, "app.js"),
  banner: { js: `// sources-sha256: ${digest}\n// Built from web/src by web/build.mjs; do not edit.` },
  logLevel: "warning",
});
for (const name of ["index.html", "style.css"]) {
  copyFileSync(join("static", name), join(out, name));
}
console.log(`built ${out}/app.js (sources ${digest.slice(0, 12)})`);
