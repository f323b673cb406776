// The admin console: log in with an admin token, then watch and act on the marketplace live.
// Everything goes through gavel-client (the `admin` topic, commands) and the HTTP API.

import { connect, type ConnectionState, type GavelClient } from "gavel-client";
import { Api } from "./api.js";
import { Board } from "./board.js";
import { ClusterPanel } from "./cluster.js";
import { Coaches } from "./coaches.js";
import { Detail } from "./detail.js";
import { type Outcome, renderDisputes } from "./disputes.js";
import { fill, h, scheduler } from "./dom.js";
import { StatsPanel } from "./stats.js";

const TOKEN_KEY = "gavel-admin-token";
/** Events that change a coach's load or reputation: the coach list is fetched again. */
const COACH_EVENTS = new Set(["task.assigned", "task.reassigned", "task.completed", "task.canceled", "payment.refunded", "payment.failed"]);

function start(token: string): void {
  const api = new Api(token);
  const stats = new StatsPanel();
  let state: ConnectionState = "connecting";
  let notice = "";
  const redraw = scheduler({
    state: () => fill("state", h("span", { class: `state ${state}`, "data-state": state }, state)),
    notice: () => fill("notice", notice),
    stats: () => fill("stats", ...stats.render()),
    board: () => {
      fill("board", ...board.render(open));
      fill("disputes", renderDisputes(board.byStatus(["disputed"]), open, resolve));
    },
    detail: () => {
      const panel = detail.render(resolve);
      fill("detail", panel);
      document.getElementById("detail")!.hidden = panel === null;
    },
    coaches: () => fill("coach-list", ...coaches.list()),
    cluster: () => cluster.draw(),
  });
  const say = (text: string) => {
    notice = text;
    redraw("notice");
  };
  const client: GavelClient = connect({
    url: `${location.origin.replace(/^http/, "ws")}/v1/ws`,
    token,
    onStateChange: (s) => {
      state = s;
      redraw("state");
    },
    onError: (e) => say(e.message),
  });
  const board = new Board(api, () => redraw("board"));
  const closeDetail = () => {
    const id = detail.taskId;
    detail.close();
    // Back to the task's card, or to the board when it has gone.
    requestAnimationFrame(() => {
      const card = id ? (document.querySelector(`[data-key="card:${CSS.escape(id)}"]`) as HTMLElement | null) : null;
      (card ?? document.getElementById("board-section"))?.focus();
    });
  };
  const detail = new Detail(client, api, () => redraw("detail"), closeDetail);
  const coaches = new Coaches(api, () => redraw("coaches"));
  const cluster = new ClusterPanel(api, () => redraw("cluster"));

  client.subscribe("admin", (m) => {
    if (m.type === "event" && m.event.kind === "stats") {
      stats.push(m.event);
      redraw("stats");
    } else if (m.type === "event") {
      board.apply(m.event);
      if (m.event.task_id === detail.taskId) redraw("detail");
      if (COACH_EVENTS.has(m.event.kind)) coaches.reloadSoon();
    } else if (m.type === "snapshot" && m.reset) {
      // Too far behind to replay what was missed (contract §4): start the board afresh.
      board.reload(client);
    } else if (m.type === "error") {
      say(`admin topic: ${m.error.message}`);
      sessionStorage.removeItem(TOKEN_KEY);
    }
  });
  board.reload(client);
  void coaches.load();

  const resolve = (taskId: string, outcome: Outcome) => {
    client.command("resolve_dispute", { task_id: taskId, outcome }).then(
      () => {
        say(`${taskId}: ${outcome === "release" ? "released to the coach" : "refunded to the seeker"}`);
        // The buttons are gone with the dispute: focus the list it was in.
        requestAnimationFrame(() => document.getElementById("disputes-title")?.focus());
      },
      (e) => say(`${taskId}: ${e.message}`),
    );
  };
  const open = (id: string) => {
    detail.open(id);
    // After the redraw that shows the panel (callbacks run in the order they were asked for).
    requestAnimationFrame(() => document.getElementById("detail-title")?.focus());
  };
  cluster.poll();

  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && detail.taskId) closeDetail();
  });
  document.getElementById("logout")?.addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    client.close();
    location.reload();
  });
  fill("coaches", coaches.form(), h("div", { id: "coach-list" }));
  document.body.classList.add("connected");
  for (const part of ["state", "stats", "board", "coaches"] as const) redraw(part);
}

/**
 * Checks the token with the HTTP API first: a bad one would only ever be refused at the
 * WebSocket's upgrade, which a browser reports as a bare close (and the client would retry).
 */
async function tryToken(token: string): Promise<boolean> {
  try {
    await new Api(token).coaches();
    return true;
  } catch (e) {
    const why = String(e).replace(/^Error: /, "");
    // Only a refusal is the token's fault; a server that is down or restarting is retried.
    if (/^(UNAUTHORIZED|FORBIDDEN)|HTTP 40[13]/.test(why)) {
      fill("notice", `This token is refused: ${why}`);
      return false;
    }
    return true;
  }
}

function login(): void {
  const form = document.getElementById("login") as HTMLFormElement;
  const begin = async (token: string) => {
    if (!(await tryToken(token))) {
      sessionStorage.removeItem(TOKEN_KEY);
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, token);
    start(token);
  };
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const token = (new FormData(form).get("token") as string).trim();
    if (token) void begin(token);
  });
  const saved = sessionStorage.getItem(TOKEN_KEY);
  if (saved) void begin(saved);
  else (form.querySelector("input") as HTMLInputElement).focus();
}

login();
