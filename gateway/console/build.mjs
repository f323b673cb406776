#!/usr/bin/env node
// Bundles the console (src/ and gavel-client's src/) into assets/console.js, which the gavel
// binary embeds beside index.html and console.css (gateway/src/ingress/console.rs). The bundle
// is checked in so that `cargo build` needs no Node; `--check` fails when it is stale.

import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const assets = join(here, "assets");
const result = await build({
  entryPoints: [join(here, "src/main.ts")],
  bundle: true,
  format: "esm",
  target: "es2022",
  minify: true,
  legalComments: "none",
  tsconfig: join(here, "tsconfig.json"),
  write: false,
  logLevel: "warning",
});
const outputs = { "console.js": result.outputFiles[0].text };

if (process.argv.includes("--check")) {
  const stale = Object.entries(outputs).filter(([name, text]) => {
    try {
      return readFileSync(join(assets, name), "utf8") !== text;
    } catch {
      return true;
    }
  });
  if (stale.length > 0) {
    console.error(`gateway/console/assets is stale (${stale.map(([n]) => n).join(", ")}): run \`npm run build\` in gateway/console`);
    process.exit(1);
  }
  console.log("gateway/console/assets matches its sources");
} else {
  mkdirSync(assets, { recursive: true });
  for (const [name, text] of Object.entries(outputs)) writeFileSync(join(assets, name), text);
  console.log(`wrote ${Object.keys(outputs).join(", ")} to ${assets}`);
}
