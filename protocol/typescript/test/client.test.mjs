// gavel-client against a real `gavel serve`: exact resume across dropped connections and a
// server restart, retried commands applied once, `reset` past the server's replay limit, token
// refresh before 4001, and live views equal to the server's own snapshots.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import WebSocket from "ws";
import { connect, live } from "../dist/index.js";
import { Gavel, recorder, token, until } from "./harness.mjs";

let gavel;
before(async () => {
  gavel = await Gavel.start();
  for (const id of ["coach_a", "coach_b", "coach_c"]) assert.equal((await gavel.putCoach(id)).status, 200);
});
after(() => gavel?.stop());

const freshSnapshot = (sub, role, topic) => snapshotOf(gavel, sub, role, topic);
const post = (seeker, resume) => seeker.command("post_task", { resume_id: resume, urgency: "standard" });

/** A fresh snapshot of `topic` on `server`, as a new subscriber gets it. */
async function snapshotOf(server, sub, role, topic) {
  const client = server.client(sub, role);
  try {
    let snapshot;
    const unsubscribe = client.subscribe(topic, (m) => {
      if (m.type === "snapshot") snapshot = m.snapshot;
    });
    await unsubscribe.ready;
    return snapshot;
  } finally {
    client.close();
  }
}

test("a typed command answers with its result; a refusal rejects with its code and field", async () => {
  const seeker = gavel.client("sally", "seeker");
  const posted = await post(seeker, "r_typed");
  assert.match(posted.task_id, /^t_/);
  assert.deepEqual(posted.price_range, [2500, 5000]);
  await assert.rejects(seeker.command("post_task", { resume_id: "r", urgency: "urgent", base_price: 0 }), (e) => {
    assert.equal(e.code, "VALIDATION_ERROR");
    assert.equal(e.field, "base_price");
    return true;
  });
  const refused = recorder();
  const sub = seeker.subscribe("task:t_nobody_has", refused);
  await assert.rejects(sub.ready, (e) => e.code === "FORBIDDEN");
  assert.equal(refused.messages[0].type, "error");
  seeker.close();
});

test("subscribe takes its options after the handler or before it", async () => {
  const seeker = gavel.client("sid", "seeker");
  const { task_id: urgent } = await seeker.command("post_task", { resume_id: "r_urgent", urgency: "urgent" });
  const { task_id: flexible } = await seeker.command("post_task", { resume_id: "r_flexible", urgency: "flexible" });
  const filter = { urgency: ["urgent"] };
  const after = recorder();
  const before = recorder();
  const one = gavel.client("coach_a", "coach");
  const two = gavel.client("coach_b", "coach");
  await one.subscribe("feed", after, { filter }).ready;
  await two.subscribe("feed", { filter }, before).ready;
  for (const r of [after, before]) {
    const ids = r.snapshots()[0].snapshot.tasks.map((t) => t.task_id);
    assert.ok(ids.includes(urgent), "the urgent task is in the filtered feed");
    assert.ok(!ids.includes(flexible), "the flexible one is not");
  }
  assert.throws(() => one.subscribe("coach:coach_a", { filter }), /give a handler/);
  for (const c of [seeker, one, two]) c.close();
});

test("a topic resumed after dropped connections loses nothing and repeats nothing", async () => {
  const seeker = gavel.client("sam", "seeker");
  const { task_id } = await post(seeker, "r_resume");
  const watcher = recorder();
  await seeker.subscribe(`task:${task_id}`, watcher).ready;
  // An admin that stays connected sees the same topic: the reference.
  const admin = gavel.client("ops", "admin");
  const reference = recorder();
  await admin.subscribe(`task:${task_id}`, reference).ready;

  const coaches = ["coach_a", "coach_b", "coach_c"].map((c) => gavel.client(c, "coach"));
  for (let round = 0; round < 12; round++) {
    if (round % 3 === 0) seeker.dropConnection();
    const coach = coaches[round % 3];
    await coach.command("place_bid", { task_id, amount: 2600 + round * 10, eta_hours: 4 + round });
  }
  await until(() => reference.events().length >= 12, "the reference to see 12 bids");
  const trace = (r) => r.messages.map((m) => `${m.type} ${m.seq ?? ""} ${m.event?.kind ?? ""}${m.reset ? " reset" : ""}`);
  await until(() => watcher.events().length >= 12, "the resumed watcher to catch up", 15_000, () => trace(watcher));
  const seqs = (r) => r.events().map((m) => m.seq);
  assert.deepEqual(seqs(watcher), seqs(reference), "every event once, in order");
  assert.deepEqual(watcher.events().map((m) => m.event), reference.events().map((m) => m.event));
  assert.equal(watcher.snapshots().length, 1, "resumed, never reset");
  for (const c of [seeker, admin, ...coaches]) c.close();
});

test("after a server restart every topic resumes where it stood and commands go on", async () => {
  const seeker = gavel.client("sue", "seeker");
  const { task_id } = await post(seeker, "r_restart");
  const coach = gavel.client("coach_a", "coach");
  await coach.command("place_bid", { task_id, amount: 3000, eta_hours: 5 });
  const task = live(seeker, `task:${task_id}`);
  const seekerFeed = recorder();
  await seeker.subscribe("seeker:sue", seekerFeed).ready;
  await until(() => task.get().status === "live", "the live view");

  await gavel.restart();
  // The coach's next command is sent as soon as its client has reconnected.
  await coach.command("place_bid", { task_id, amount: 2900, eta_hours: 5 });
  await until(() => task.get().view?.bids[0]?.amount === 2900, "the updated bid after the restart");
  assert.equal(task.get().resets, 0);
  assert.deepEqual(task.get().view, await freshSnapshot("sue", "seeker", `task:${task_id}`));
  assert.ok(seekerFeed.events().some((m) => m.event.kind === "bid.updated"), "the seeker topic resumed too");
  assert.equal(seekerFeed.snapshots().length, 1);
  task.close();
  seeker.close();
  coach.close();
});

test("a command retried after a lost connection keeps its id and applies once", async () => {
  const seeker = gavel.client("sid", "seeker");
  await seeker.ping(); // connected: the command below is written at once
  // Sent, then the connection drops before the reply can arrive: the client sends it again.
  const first = seeker.command("post_task", { resume_id: "r_once", urgency: "urgent" }, { id: "post-r-once" });
  seeker.dropConnection();
  const posted = await first;
  // The same id again, later, on purpose: the original reply, nothing applied.
  const again = await seeker.command("post_task", { resume_id: "r_once", urgency: "urgent" }, { id: "post-r-once" });
  assert.deepEqual(again, posted);
  // And from another connection of the same user.
  const other = gavel.client("sid", "seeker");
  const third = await other.command("post_task", { resume_id: "r_once", urgency: "urgent" }, { id: "post-r-once" });
  assert.deepEqual(third, posted);
  const listed = await seeker.command("list_tasks", { limit: 100 });
  assert.equal(listed.tasks.filter((t) => t.resume_id === "r_once").length, 1, "one task");
  seeker.close();
  other.close();
});

test("a resume past the server's replay limit is a reset with a fresh snapshot", async (t) => {
  // The issue asks for a `reset` "after the journal's retention", but gavel never prunes its
  // journal: every event stays replayable. What makes a resume impossible is the replay limit
  // (`[limits] max_replay_events`, contract §13), so this server of its own replays at most 5
  // events of a topic (the others replay 100,000) and the client is left 9 behind.
  const gavel = await Gavel.start({ config: "max_replay_events = 5\n" });
  t.after(() => gavel.stop());
  for (const id of ["coach_a", "coach_b", "coach_c"]) assert.equal((await gavel.putCoach(id)).status, 200);
  const freshSnapshot = (sub, role, topic) => snapshotOf(gavel, sub, role, topic);
  const seeker = gavel.client("sky", "seeker");
  const { task_id } = await post(seeker, "r_reset");
  // A client whose reconnects wait at a gate: the topic moves on while it is away.
  let open = true;
  let gate = Promise.resolve();
  let release = () => {};
  const away = connect({
    url: gavel.url,
    WebSocket,
    backoff: { initialMs: 20, maxMs: 50 },
    getToken: async () => {
      if (!open) await gate;
      return token("sky", "seeker");
    },
  });
  const view = live(away, `task:${task_id}`);
  await until(() => view.get().status === "live", "the first snapshot");
  open = false;
  gate = new Promise((r) => (release = r));
  away.dropConnection();
  const coaches = ["coach_a", "coach_b", "coach_c"].map((c) => gavel.client(c, "coach"));
  for (let i = 0; i < 9; i++) await coaches[i % 3].command("place_bid", { task_id, amount: 3000 + i, eta_hours: 3 });
  release();
  await until(() => view.get().resets === 1, "a reset");
  assert.equal(view.get().view.bid_count, 3);
  assert.deepEqual(view.get().view, await freshSnapshot("sky", "seeker", `task:${task_id}`));
  view.close();
  for (const c of [seeker, away, ...coaches]) c.close();
});

test("a token about to expire is replaced before the server closes with 4001", async () => {
  const seeker = gavel.client("tia", "seeker");
  const { task_id } = await post(seeker, "r_refresh");
  let issued = 0;
  const closes = [];
  const errors = [];
  const client = connect({
    url: gavel.url,
    WebSocket,
    refreshMarginMs: 1500,
    getToken: () => {
      issued += 1;
      return token("tia", "seeker", 3);
    },
    onClose: (code) => closes.push(code),
    onError: (e) => errors.push(e.message),
  });
  const watcher = recorder();
  await client.subscribe(`task:${task_id}`, watcher).ready;
  await until(() => issued >= 3, "two refreshes", 10_000);
  const coach = gavel.client("coach_b", "coach");
  await coach.command("place_bid", { task_id, amount: 3100, eta_hours: 2 });
  await until(() => watcher.events().length === 1, "the bid after the refreshes");
  assert.ok(closes.length >= 2, `the connection was replaced (${closes})`);
  assert.deepEqual(closes.filter((c) => c !== 1000), [], "no 4001, no unexpected close");
  assert.deepEqual(errors, []);
  assert.equal(watcher.snapshots().length, 1);
  for (const c of [seeker, client, coach]) c.close();
});

test("live views stay equal to the server's snapshots through a whole task", async () => {
  const seeker = gavel.client("lea", "seeker");
  const admin = gavel.client("ops", "admin");
  const feed = live(admin, "feed");
  const mine = live(seeker, "seeker:lea");
  await until(() => feed.get().status === "live" && mine.get().status === "live", "the feed and dashboard");
  const { task_id } = await post(seeker, "r_live");
  const task = live(seeker, `task:${task_id}`);
  await until(() => task.get().status === "live", "the task view");
  const [a, b, c] = ["coach_a", "coach_b", "coach_c"].map((id) => gavel.client(id, "coach"));
  const { bid_id } = await a.command("place_bid", { task_id, amount: 3500, eta_hours: 8 });
  await b.command("place_bid", { task_id, amount: 2700, eta_hours: 20 });
  const withdrawn = await c.command("place_bid", { task_id, amount: 2500, eta_hours: 2 });
  await a.command("place_bid", { task_id, amount: 3300, eta_hours: 8 });
  await c.command("withdraw_bid", { bid_id: withdrawn.bid_id });

  const settled = async (what) => {
    const fresh = await freshSnapshot("lea", "seeker", `task:${task_id}`);
    await until(() => JSON.stringify(task.get().view) === JSON.stringify(fresh), `the live task view ${what}`);
    const dashboard = await freshSnapshot("lea", "seeker", "seeker:lea");
    await until(() => JSON.stringify(mine.get().view) === JSON.stringify(dashboard), `the live dashboard ${what}`);
  };
  await settled("after the bids");
  const byId = (v) => [...v.tasks].sort((x, y) => x.task_id.localeCompare(y.task_id));
  const feedNow = await freshSnapshot("ops", "admin", "feed");
  await until(() => JSON.stringify(byId(feed.get().view)) === JSON.stringify(byId(feedNow)), "the live feed");

  await seeker.command("accept_bid", { task_id, bid_id });
  await a.command("start_work", { task_id });
  for (let round = 0; round < 3; round++) {
    await a.command("submit_verification", { task_id, notes: `round ${round}` });
    await seeker.command("request_changes", { task_id, reason: "more" });
  }
  await settled("in dispute");
  assert.equal(task.get().view.status, "disputed");
  await admin.command("resolve_dispute", { task_id, outcome: "refund" });
  await settled("after the refund");
  assert.equal(task.get().view.status, "refunded");
  assert.deepEqual(task.get().view.escrow, { held: 3300, released: 0, refunded: 3300 });
  await until(() => !feed.get().view.tasks.some((t) => t.task_id === task_id), "the task to leave the feed");

  // A payment that fails reopens the task: the hold is undone, the bid rejected.
  const { task_id: failing } = await post(seeker, "r_failing");
  const other = live(seeker, `task:${failing}`);
  await until(() => other.get().status === "live", "the second task's view");
  const bid = await b.command("place_bid", { task_id: failing, amount: 2800, eta_hours: 6 });
  await seeker.command("accept_bid", { task_id: failing, bid_id: bid.bid_id });
  assert.equal((await gavel.api("POST", `/v1/tasks/${failing}/payment_failed`)).status, 200);
  const reopened = await freshSnapshot("lea", "seeker", `task:${failing}`);
  assert.equal(reopened.status, "open");
  await until(() => JSON.stringify(other.get().view) === JSON.stringify(reopened), "the live view after payment.failed", 15_000, () => other.get().view);
  other.close();
  for (const v of [feed, mine, task]) v.close();
  for (const cl of [seeker, admin, a, b, c]) cl.close();
});
