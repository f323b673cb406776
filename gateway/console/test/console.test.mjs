// The admin console in a real browser (Debian's chromium, driven by playwright-core) against a
// real gavel: log in with a token, watch a task posted by another client appear, resolve a
// dispute by clicking, register and suspend a coach, all checked through the API; keyboard
// use; no horizontal scrolling at 320 px; screenshots at 1200 and 320 px in a temp dir.

import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { chromium } from "playwright-core";
import { Gavel, token } from "../../../protocol/typescript/test/harness.mjs";

const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const shots = process.env.GAVEL_SCREENSHOTS ?? mkdtempSync(join(tmpdir(), "gavel-console-"));

let gavel;
let browser;
before(async () => {
  gavel = await Gavel.start();
  for (const id of ["coach_x", "coach_y"]) assert.equal((await gavel.putCoach(id, { display_name: `Coach ${id}` })).status, 200);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--disable-gpu"] });
});
after(async () => {
  await browser?.close();
  await gavel?.stop();
});

/** A page logged in as an admin, at `width` px; `setup(page)` runs before it loads. */
async function console_(width, server = gavel, setup = async () => {}) {
  const page = await browser.newPage({ viewport: { width, height: 900 } });
  await setup(page);
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  // A single node answers the console's one GET /v1/cluster with 404 (§12 is for clusters).
  const expected = (m) => m.location().url.endsWith("/v1/cluster") && m.text().includes("404");
  page.on("console", (m) => m.type() === "error" && !expected(m) && errors.push(m.text()));
  await page.goto(`${server.http}/admin`);
  await page.fill("#token", token("ops", "admin"));
  await page.keyboard.press("Enter");
  await page.waitForSelector('[data-state="open"]');
  return { page, errors };
}

/** Drives a task to `disputed`: a bid, accepted, started, three rounds of changes. */
async function disputedTask(seeker, coach, urgency = "urgent") {
  const { task_id } = await seeker.command("post_task", { resume_id: "r_dispute", urgency });
  const { bid_id } = await coach.command("place_bid", { task_id, amount: 4000, eta_hours: 2 });
  await seeker.command("accept_bid", { task_id, bid_id });
  await coach.command("start_work", { task_id });
  for (let i = 0; i < 3; i++) {
    await coach.command("submit_verification", { task_id, notes: `try ${i}` });
    await seeker.command("request_changes", { task_id, reason: "not yet" });
  }
  return task_id;
}

test("an admin sees tasks live, resolves a dispute by clicking, and manages coaches", async () => {
  const { page, errors } = await console_(1200);
  const seeker = gavel.client("sara", "seeker");
  const coach = gavel.client("coach_x", "coach");

  // A task posted by another client appears in the Open column, live.
  const { task_id: posted } = await seeker.command("post_task", { resume_id: "r_live", urgency: "standard" });
  await page.locator(`#col-open ~ ul [data-task="${posted}"]`).waitFor();
  await coach.command("place_bid", { task_id: posted, amount: 3000, eta_hours: 10 });
  await page.locator(`[data-task="${posted}"]`, { hasText: "1 bid" }).waitFor();

  // The drill-down: ranked bids with the coach's reputation, and the history from the start.
  await page.click(`[data-task="${posted}"]`);
  await page.locator(`[data-detail="${posted}"] .bids li`, { hasText: "Coach coach_x" }).waitFor();
  await page.locator(`[data-detail="${posted}"] .history li`, { hasText: "bid.placed" }).waitFor();
  assert.ok(await page.locator(`[data-detail="${posted}"] .history li`, { hasText: "task.opened" }).count());
  await page.keyboard.press("Escape");
  await page.locator("[data-detail]").waitFor({ state: "detached" }); // Escape closes it

  // A dispute, resolved with the Refund button; the API confirms.
  const disputed = await disputedTask(seeker, coach);
  const row = page.locator(`[data-dispute="${disputed}"]`);
  await row.waitFor();
  await page.screenshot({ path: join(shots, "console-1200.png"), fullPage: true });
  await row.getByRole("button", { name: "Refund" }).click();
  await page.locator(`#col-completed ~ ul [data-task="${disputed}"]`).waitFor();
  const after = await gavel.api("GET", `/v1/tasks/${disputed}`);
  assert.equal(after.body.status, "refunded");
  assert.deepEqual(after.body.escrow, { held: 4000, released: 0, refunded: 4000 });
  await page.getByRole("status").filter({ hasText: "refunded to the seeker" }).waitFor();

  // Another, released to the coach with the Release button after a look at its escrow.
  const released = await disputedTask(seeker, coach);
  await page.locator(`[data-dispute="${released}"]`).getByRole("button", { name: released }).click();
  const escrow = page.locator(`[data-detail="${released}"] .facts tr`, { hasText: "escrow" });
  await escrow.filter({ hasText: "held $40.00 · released $0.00 · refunded $0.00" }).waitFor();
  await page.locator(`[data-dispute="${released}"]`).getByRole("button", { name: "Release" }).click();
  await escrow.filter({ hasText: "held $40.00 · released $40.00 · refunded $0.00" }).waitFor();
  const paid = await gavel.api("GET", `/v1/tasks/${released}`);
  assert.equal(paid.body.status, "completed");
  assert.deepEqual(paid.body.escrow, { held: 4000, released: 4000, refunded: 0 });
  await page.getByRole("status").filter({ hasText: "released to the coach" }).waitFor();
  await page.keyboard.press("Escape");

  // The chart draws the `stats` the admin topic sends every second.
  await page.locator('#stats svg polyline.connections[points*=","]').waitFor({ state: "attached" });

  // Coaches: register one with the form, then suspend it.
  await page.fill('input[name="coach_id"]', "coach_new");
  await page.fill('input[name="display_name"]', "New Coach");
  await page.fill('input[name="rating"]', "4.2");
  await page.getByRole("button", { name: "Register coach" }).click();
  await page.locator('[data-coach="coach_new"]').waitFor();
  let registered = await gavel.api("GET", "/v1/coaches/coach_new");
  assert.equal(registered.body.display_name, "New Coach");
  assert.equal(registered.body.rating, 420);
  assert.equal(registered.body.verified, true);
  await page.locator('[data-coach="coach_new"]').getByRole("button", { name: "Suspend" }).click();
  await page.locator('[data-coach="coach_new"]').getByRole("button", { name: "Reinstate" }).waitFor();
  registered = await gavel.api("GET", "/v1/coaches/coach_new");
  assert.equal(registered.body.suspended, true);
  assert.equal(registered.body.rating, 420, "the rest of the profile is kept");

  assert.deepEqual(errors, [], "no script errors");
  seeker.close();
  coach.close();
  await page.close();
});

test("an archived task's drill-down shows its final view and its whole history", async (t) => {
  // Engine time 600× faster and one minute of retention: a finished task leaves memory at once.
  const fast = await Gavel.start({ config: "[retention]\nfinal_task_minutes = 1\n", args: ["--time-scale", "600"] });
  t.after(() => fast.stop());
  assert.equal((await fast.putCoach("coach_z")).status, 200);
  const seeker = fast.client("ari", "seeker");
  const coach = fast.client("coach_z", "coach");
  const { task_id } = await seeker.command("post_task", { resume_id: "r_old", urgency: "flexible" });
  const { bid_id } = await coach.command("place_bid", { task_id, amount: 2000, eta_hours: 5 });
  await seeker.command("accept_bid", { task_id, bid_id });
  await coach.command("start_work", { task_id });
  await coach.command("submit_verification", { task_id });
  await seeker.command("accept_verification", { task_id, rating: 5 });
  for (let i = 0; i < 200 && !(await fast.api("GET", `/v1/tasks/${task_id}`)).body.archived; i++) await new Promise((r) => setTimeout(r, 50));
  assert.equal((await fast.api("GET", `/v1/tasks/${task_id}`)).body.archived, true, "archived");

  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  await page.goto(`${fast.http}/admin`);
  await page.fill("#token", token("ops", "admin"));
  await page.keyboard.press("Enter");
  const card = page.locator(`[data-task="${task_id}"]`);
  await card.click();
  const detail = page.locator(`[data-detail="${task_id}"]`);
  await detail.locator(".note", { hasText: "Archived" }).waitFor();
  await detail.locator(".history li", { hasText: "task.completed" }).waitFor();
  const kinds = await detail.locator(".history li strong").allTextContents();
  assert.deepEqual(kinds, ["task.opened", "bid.placed", "bid.accepted", "task.assigned", "payment.held", "task.started", "task.submitted", "payment.released", "task.completed"]);
  seeker.close();
  coach.close();
  await page.close();
});

test("the board loads every live task, past the newest 200, and which found no coach", async (t) => {
  // Engine time 600× faster: an urgent task's bidding window (10 min) closes in a second.
  const fast = await Gavel.start({ args: ["--time-scale", "600"] });
  t.after(() => fast.stop());
  assert.equal((await fast.putCoach("coach_d")).status, 200);
  const seeker = fast.client("lee", "seeker");
  const coach = fast.client("coach_d", "coach");
  // Closed whatever happens: a client left open keeps reconnecting, and the test process alive.
  t.after(() => [seeker, coach].forEach((c) => c.close()));
  const watching = await console_(1200, fast);

  // No coach is on call: the window closes without a coach, and the card says so, live.
  const { task_id: lonely } = await seeker.command("post_task", { resume_id: "r_lonely", urgency: "urgent" });
  await watching.page.locator(`[data-task="${lonely}"] .flag`, { hasText: "no coach" }).waitFor();
  const disputed = await disputedTask(seeker, coach, "flexible");
  // 200 newer tasks, all finished: the live ones above are older than any of them.
  for (let i = 0; i < 200; i += 25) {
    const batch = Array.from({ length: 25 }, async (_, j) => {
      const { task_id } = await seeker.command("post_task", { resume_id: `r_${i + j}`, urgency: "flexible" });
      await seeker.command("cancel_task", { task_id, reason: "filler" });
    });
    await Promise.all(batch);
  }

  // A console opened now, that never sees a `task.unfilled` (they are dropped on the way):
  // the highlight can only come from what it loads.
  const dropUnfilled = (page) =>
    page.routeWebSocket(/\/v1\/ws/, (ws) => {
      const server = ws.connectToServer();
      server.onMessage((message) => {
        const frame = JSON.parse(String(message));
        if (!(frame.type === "event" && frame.event?.kind === "task.unfilled")) ws.send(message);
      });
    });
  const { page, errors } = await console_(1200, fast, dropUnfilled);
  await page.locator(`#col-open ~ ul [data-task="${lonely}"] .flag`, { hasText: "no coach" }).waitFor();
  await page.locator(`#disputes [data-dispute="${disputed}"]`).waitFor();
  await page.locator("#col-completed .count", { hasText: /^20$/ }).waitFor();

  // An on-call coach takes it at the next window's close: the highlight goes with the task.
  assert.equal((await fast.putCoach("coach_on_call", { on_call: true })).status, 200);
  const taken = page.locator(`#col-assigned ~ ul [data-task="${lonely}"]`);
  await taken.waitFor();
  assert.equal(await taken.locator(".flag").count(), 0, "no highlight once a coach has it");
  assert.deepEqual(errors, [], "no script errors");
  assert.deepEqual(watching.errors, [], "no script errors");
  await page.close();
  await watching.page.close();
});

test("the console works from the keyboard", async () => {
  const { page } = await console_(1200);
  const seeker = gavel.client("kim", "seeker");
  const { task_id } = await seeker.command("post_task", { resume_id: "r_keys", urgency: "flexible" });
  const card = page.locator(`[data-task="${task_id}"]`);
  await card.waitFor();
  // Tab moves through the page until the card has focus; Enter opens it.
  let focused = false;
  for (let i = 0; i < 200 && !focused; i++) {
    await page.keyboard.press("Tab");
    focused = await card.evaluate((el) => el === document.activeElement);
  }
  assert.ok(focused, "the task card is reachable with Tab");
  await page.keyboard.press("Enter");
  await page.locator(`[data-detail="${task_id}"]`).waitFor();
  // Focus moves into the drill-down, and back to the card on Escape.
  await page.waitForFunction(() => document.activeElement?.id === "detail-title");
  await page.keyboard.press("Escape");
  await page.waitForFunction((id) => document.activeElement?.getAttribute("data-task") === id, task_id);
  seeker.close();
  await page.close();
});

test("a token that is not an admin's is refused on the login form", async () => {
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  await page.goto(`${gavel.http}/admin`);
  await page.fill("#token", token("sally", "seeker"));
  await page.keyboard.press("Enter");
  await page.locator("#notice", { hasText: "This token is refused: FORBIDDEN" }).waitFor();
  assert.equal(await page.locator("#login").isVisible(), true, "still on the login form");
  await page.close();
});

test("at 320 px the console fits the screen", async () => {
  const { page, errors } = await console_(320);
  const seeker = gavel.client("noa", "seeker");
  const { task_id } = await seeker.command("post_task", { resume_id: "r_narrow", urgency: "urgent" });
  await page.locator(`[data-task="${task_id}"]`).waitFor();
  await page.locator('[data-counter="connections"] .value', { hasText: /\d/ }).waitFor();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(overflow <= 0, `no horizontal scrolling (${overflow} px too wide)`);
  await page.screenshot({ path: join(shots, "console-320.png"), fullPage: true });
  assert.deepEqual(errors, []);
  console.log(`screenshots in ${shots}`);
  seeker.close();
  await page.close();
});
