// useTopic against a real gavel: the component re-renders with the live view as events arrive,
// two components on one topic share one subscription, and a GavelProvider gives
// `useTopic(topic)` its client.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { createElement } from "react";
import TestRenderer from "react-test-renderer";
import { GavelProvider, useTopic } from "../dist/react.js";
import { Gavel, until } from "./harness.mjs";

globalThis.IS_REACT_ACT_ENVIRONMENT = false;

let gavel;
before(async () => {
  gavel = await Gavel.start();
  assert.equal((await gavel.putCoach("coach_r")).status, 200);
});
after(() => gavel?.stop());

function Bids({ client, taskId }) {
  const { status, view } = useTopic(client, `task:${taskId}`);
  if (status !== "live") return createElement("p", null, status);
  return createElement("ol", null, ...view.bids.map((b) => createElement("li", { key: b.bid_id }, `${b.coach.display_name} ${b.amount}`)));
}

test("useTopic renders the live view of a topic, shared by every component that uses it", async () => {
  const seeker = gavel.client("rae", "seeker");
  const coach = gavel.client("coach_r", "coach");
  const { task_id } = await seeker.command("post_task", { resume_id: "r_react", urgency: "urgent" });
  const text = (renderer) => JSON.stringify(renderer.toJSON());
  const one = TestRenderer.create(createElement(Bids, { client: seeker, taskId: task_id }));
  const two = TestRenderer.create(createElement(Bids, { client: seeker, taskId: task_id }));
  await until(() => text(one).includes('"ol"') && text(two).includes('"ol"'), "both to go live");
  await coach.command("place_bid", { task_id, amount: 4000, eta_hours: 1 });
  await until(() => text(one).includes("coach_r 4000"), "the bid to render");
  await coach.command("place_bid", { task_id, amount: 3800, eta_hours: 1 });
  await until(() => text(one).includes("coach_r 3800") && text(two).includes("coach_r 3800"), "the update in both");
  one.unmount();
  await coach.command("place_bid", { task_id, amount: 3900, eta_hours: 1 });
  await until(() => text(two).includes("coach_r 3900"), "the survivor to keep its subscription");
  two.unmount();
  seeker.close();
  coach.close();
});

function Count({ taskId }) {
  const { status, view } = useTopic(`task:${taskId}`);
  return createElement("p", null, status === "live" ? `${view.bid_count} bids` : status);
}

test("useTopic(topic) takes its client from a GavelProvider", async () => {
  const seeker = gavel.client("rio", "seeker");
  const coach = gavel.client("coach_r", "coach");
  const { task_id } = await seeker.command("post_task", { resume_id: "r_provider", urgency: "urgent" });
  const text = (renderer) => JSON.stringify(renderer.toJSON());
  const app = TestRenderer.create(createElement(GavelProvider, { client: seeker }, createElement(Count, { taskId: task_id })));
  await until(() => text(app).includes("0 bids"), "the view to go live");
  await coach.command("place_bid", { task_id, amount: 4000, eta_hours: 1 });
  await until(() => text(app).includes("1 bids"), "the bid to count");
  app.unmount();
  seeker.close();
  coach.close();
});
