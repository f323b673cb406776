#!/usr/bin/env node
// Writes src/protocol.ts — the TypeScript types of every frame, view and event — from
// docs/protocol.schema.json (itself generated from the Rust types in protocol/src). The types
// are never written by hand: change the Rust types, regenerate the schema
// (`cargo run -p gavel-protocol --example write_schema`), then run this.
//
//   node scripts/generate.mjs           write src/protocol.ts
//   node scripts/generate.mjs --check   exit 1 when src/protocol.ts is not what it would write
//
// It understands the subset of JSON Schema (2020-12) that schemars emits for the protocol:
// $ref, const, type (also as a list), properties/required, items (fixed pairs become tuples),
// additionalProperties, oneOf/anyOf (with shared properties, as for `Event`), and `true`.

import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const schemaPath = join(here, "../../../docs/protocol.schema.json");
const outPath = join(here, "../src/protocol.ts");

const schema = JSON.parse(readFileSync(schemaPath, "utf8"));
const defs = schema.$defs;

const refName = (ref) => {
  const prefix = "#/$defs/";
  if (!ref.startsWith(prefix)) throw new Error(`unsupported $ref ${ref}`);
  const name = ref.slice(prefix.length);
  if (!(name in defs)) throw new Error(`$ref to a missing definition ${ref}`);
  return name;
};

const scalar = { integer: "number", number: "number", string: "string", boolean: "boolean", null: "null" };

const union = (parts) => {
  const unique = [...new Set(parts)];
  return unique.length === 1 ? unique[0] : unique.join(" | ");
};

const indent = (text, by) => text.replace(/\n/g, `\n${by}`);

function doc(description, pad) {
  if (!description) return "";
  const lines = description.replace(/\*\//g, "*\\/").split("\n");
  if (lines.length === 1) return `${pad}/** ${lines[0]} */\n`;
  return `${pad}/**\n${lines.map((l) => `${pad} * ${l}`.trimEnd()).join("\n")}\n${pad} */\n`;
}

const identifier = /^[A-Za-z_$][A-Za-z0-9_$]*$/;
const key = (name) => (identifier.test(name) ? name : JSON.stringify(name));

function objectType(s) {
  const required = new Set(s.required ?? []);
  const fields = Object.entries(s.properties ?? {}).map(([name, prop]) => {
    const optional = required.has(name) ? "" : "?";
    return `${doc(prop.description, "  ")}  ${key(name)}${optional}: ${indent(type(prop), "  ")};`;
  });
  if (s.additionalProperties && typeof s.additionalProperties === "object") {
    fields.push(`  [key: string]: ${type(s.additionalProperties)};`);
  }
  return fields.length === 0 ? "Record<string, never>" : `{\n${fields.join("\n")}\n}`;
}

function typeOfType(s) {
  const names = Array.isArray(s.type) ? s.type : [s.type];
  return union(
    names.map((t) => {
      if (t === "array") {
        const item = s.items === undefined ? "unknown" : type(s.items);
        if (s.minItems !== undefined && s.minItems === s.maxItems && s.minItems <= 4) {
          return `[${Array(s.minItems).fill(item).join(", ")}]`;
        }
        return /[ |&]/.test(item) ? `Array<${item}>` : `${item}[]`;
      }
      if (t === "object") return s.properties || s.additionalProperties ? objectType(s) : "Record<string, unknown>";
      if (t in scalar) return scalar[t];
      throw new Error(`unsupported type ${t}`);
    }),
  );
}

// Every keyword this generator understands; anything else is an error, never a silent `unknown`.
const KNOWN = new Set([
  "$ref", "const", "enum", "type", "properties", "required", "items", "minItems", "maxItems",
  "additionalProperties", "oneOf", "anyOf", "description", "title", "format", "minimum",
  "maximum", "minLength", "maxLength", "pattern", "default",
]);

/** The TypeScript type of schema `s`. */
function type(s) {
  if (s === true) return "unknown";
  const unknown = Object.keys(s).filter((k) => !KNOWN.has(k));
  if (unknown.length > 0) throw new Error(`unsupported JSON Schema keyword(s) ${unknown.join(", ")} in ${JSON.stringify(s).slice(0, 200)}`);
  if (s.enum !== undefined) return union(s.enum.map((v) => JSON.stringify(v)));
  if (s.$ref && !s.properties) return refName(s.$ref);
  if (s.const !== undefined) return JSON.stringify(s.const);
  const alternatives = s.oneOf ?? s.anyOf;
  if (alternatives) {
    const options = union(alternatives.map((alt) => indent(type(alt), "")));
    if (!s.properties) return options;
    const shared = objectType(s);
    return `${shared} & (\n  | ${alternatives.map((alt) => indent(type(alt), "    ")).join("\n  | ")}\n)`;
  }
  if (s.$ref && s.properties) {
    // A tagged variant: the tag's properties beside the referenced body (`ClientFrame`).
    return `${objectType({ ...s, $ref: undefined })} & ${refName(s.$ref)}`;
  }
  if (s.type === undefined) return "unknown";
  return typeOfType(s);
}

// The result of each command: `X` answers with `XResult` when the schema has one; commands
// without a result type (`unsubscribe`, `ping`, `start_work`, …) answer `{}`.
function commandResults() {
  const frames = defs.ClientFrame.oneOf.map((alt) => ({
    tag: alt.properties.type.const,
    body: alt.$ref ? refName(alt.$ref) : null,
  }));
  const rows = frames.map(({ tag, body }) => {
    const result = body && `${body}Result` in defs ? `${body}Result` : "Record<string, never>";
    return `  ${key(tag)}: ${result};`;
  });
  return `/** What each client frame type answers with in \`ok.result\`. */\nexport interface CommandResults {\n${rows.join("\n")}\n}\n`;
}

function render() {
  const out = [
    "// Generated from docs/protocol.schema.json by scripts/generate.mjs: do not edit.",
    "// Regenerate with `npm run generate` (CI checks that this file is up to date).",
    "/* eslint-disable */",
    "",
  ];
  for (const name of Object.keys(defs).sort()) {
    const s = defs[name];
    out.push(`${doc(s.description, "")}export type ${name} = ${type(s)};`, "");
  }
  out.push(`${doc(schema.description ?? schema.title, "")}export type Frame = ${type({ oneOf: schema.oneOf })};`, "");
  out.push(commandResults());
  return out.join("\n");
}

const text = render();
if (process.argv.includes("--check")) {
  let current = "";
  try {
    current = readFileSync(outPath, "utf8");
  } catch {}
  if (current !== text) {
    console.error("src/protocol.ts is stale: run `npm run generate` in protocol/typescript");
    process.exit(1);
  }
  console.log("src/protocol.ts matches docs/protocol.schema.json");
} else {
  writeFileSync(outPath, text);
  console.log(`wrote ${outPath}`);
}
