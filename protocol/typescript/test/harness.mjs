// A real `gavel serve` for the client's tests: its own data dir and port on 127.0.0.1, tokens
// signed with its secret, the HTTP API, and helpers that wait for what a test expects.

import { spawn } from "node:child_process";
import { createHmac } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";
import { connect } from "../dist/index.js";

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, "../../..");
export const GAVEL_BIN = process.env.GAVEL_BIN ?? join(repo, process.env.CARGO_TARGET_DIR ?? "target", "debug/gavel");
const SECRET = "gavel-client-tests-secret-0123456789";

/** The environment of a test server: SQLite in its own dir, whatever the caller's shell says. */
function serverEnv() {
  const env = { ...process.env, RUST_LOG: "info" };
  for (const name of ["GAVEL_DATABASE_URL", "GAVEL_REDIS_URL", "GAVEL_CONFIG", "GAVEL_LISTEN", "GAVEL_DATA_DIR"]) delete env[name];
  return env;
}

const base64url = (value) => Buffer.from(value).toString("base64url");

/** An HS256 token as `gavel token` makes it. */
export function token(sub, role, ttlSeconds = 3600) {
  const header = base64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const claims = base64url(JSON.stringify({ sub, role, exp: Math.floor(Date.now() / 1000) + ttlSeconds }));
  const signature = createHmac("sha256", SECRET).update(`${header}.${claims}`).digest("base64url");
  return `${header}.${claims}.${signature}`;
}

const DEFAULT_CONFIG = `
[limits]
commands_per_minute = 100000
command_burst = 10000
subscribes_per_minute = 100000
subscribe_burst = 10000
`;

/** A running gavel; `restart()` kills it (SIGKILL) and starts it again on the same port and data. */
export class Gavel {
  /** `config`: TOML appended to the defaults (after `[limits]`); `args`: more `serve` flags. */
  static async start({ config = "", args = [] } = {}) {
    const dir = mkdtempSync(join(tmpdir(), "gavel-ts-"));
    writeFileSync(join(dir, "gavel.toml"), DEFAULT_CONFIG + config);
    const gavel = new Gavel(dir, args);
    await gavel.#spawn("127.0.0.1:0");
    return gavel;
  }

  constructor(dir, args = []) {
    this.dir = dir;
    this.args = args;
    this.addr = null;
    this.child = null;
    this.logs = [];
  }

  get url() {
    return `ws://${this.addr}/v1/ws`;
  }

  get http() {
    return `http://${this.addr}`;
  }

  async #spawn(listen) {
    const child = spawn(
      GAVEL_BIN,
      ["serve", "--listen", listen, "--log-format", "json", "--data-dir", join(this.dir, "data"), "--jwt-secret", SECRET, "--config", join(this.dir, "gavel.toml"), ...this.args],
      { stdio: ["ignore", "ignore", "pipe"], env: serverEnv() },
    );
    this.child = child;
    const exited = new Promise((_, reject) => child.once("exit", (code) => reject(new Error(`gavel exited (${code}) before listening:\n${this.logs.join("\n")}`))));
    const listening = new Promise((resolveAddr) => {
      createInterface({ input: child.stderr }).on("line", (line) => {
        this.logs.push(line);
        try {
          const entry = JSON.parse(line);
          if (entry.message === "listening") resolveAddr(entry.addr);
        } catch {}
      });
    });
    this.addr = await Promise.race([listening, exited]);
  }

  /** SIGKILL, then the same command again on the same address: nothing acknowledged is lost. */
  async restart() {
    await this.kill();
    await this.#spawn(this.addr);
  }

  async kill() {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((r) => child.once("exit", r));
    child.kill("SIGKILL");
    await exited;
  }

  async stop() {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** The admin HTTP API (contract §6). */
  async api(method, path, body) {
    const response = await fetch(`${this.http}${path}`, {
      method,
      headers: { authorization: `Bearer ${token("ops", "admin")}`, "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : null };
  }

  putCoach(id, fields = {}) {
    return this.api("PUT", `/v1/coaches/${id}`, { display_name: id, rating: 4.5, verified: true, ...fields });
  }

  /** A client of this server (Node's `ws` as the WebSocket). */
  client(sub, role, options = {}) {
    return connect({ url: this.url, token: token(sub, role), WebSocket, backoff: { initialMs: 50, maxMs: 500 }, ...options });
  }
}

/**
 * Resolves when `predicate()` holds (checked every 10 ms), or rejects after `ms` with what
 * `describe()` says of the state then.
 */
export function until(predicate, what, ms = 15_000, describe = () => "") {
  return new Promise((resolvePromise, reject) => {
    const started = Date.now();
    const check = () => {
      let value;
      try {
        value = predicate();
      } catch (e) {
        reject(e);
        return;
      }
      if (value) resolvePromise(value);
      else if (Date.now() - started > ms) reject(new Error(`timed out waiting for ${what} ${JSON.stringify(describe())}`));
      else setTimeout(check, 10);
    };
    check();
  });
}

/** A handler that records every message a subscription gets. */
export function recorder() {
  const messages = [];
  const handler = (m) => messages.push(m);
  handler.messages = messages;
  handler.events = () => messages.filter((m) => m.type === "event" && m.event.kind !== "stats");
  handler.snapshots = () => messages.filter((m) => m.type === "snapshot");
  return handler;
}
