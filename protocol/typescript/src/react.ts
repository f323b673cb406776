// The React binding: `useTopic(client, topic)` is the live view of a topic, re-rendered on
// every change. Components using the same topic on the same client share one subscription.

import { useEffect, useState, useSyncExternalStore } from "react";
import type { GavelClient, SubscribeOptions } from "./client.js";
import { type LiveState, LiveTopic } from "./live.js";
import type { Topic } from "./protocol.js";
import type { TopicSnapshot } from "./topic.js";

interface Shared {
  live: LiveTopic<unknown>;
  users: number;
}

const shared = new WeakMap<GavelClient, Map<string, Shared>>();

function acquire(client: GavelClient, topic: Topic, options?: SubscribeOptions): Shared {
  let topics = shared.get(client);
  if (!topics) shared.set(client, (topics = new Map()));
  let entry = topics.get(topic);
  if (!entry) topics.set(topic, (entry = { live: new LiveTopic(client, topic, options), users: 0 }));
  entry.users += 1;
  return entry;
}

function release(client: GavelClient, topic: Topic): void {
  const topics = shared.get(client);
  const entry = topics?.get(topic);
  if (!topics || !entry) return;
  entry.users -= 1;
  if (entry.users === 0) {
    topics.delete(topic);
    entry.live.close();
  }
}

const loading: LiveState<never> = { status: "loading", view: null, seq: null, resets: 0, error: null };
const noop = () => () => {};

/**
 * The live view of `topic`: `{status, view, seq, resets, error}` — `view` is the topic's
 * snapshot with every event since applied (see `live`). `topic` null subscribes to nothing.
 * `options` are read when the subscription starts.
 */
export function useTopic<T extends Topic>(
  client: GavelClient,
  topic: T | null,
  options?: SubscribeOptions,
): LiveState<TopicSnapshot<T>> {
  const [entry, setEntry] = useState<Shared | null>(null);
  useEffect(() => {
    if (topic === null) return undefined;
    const acquired = acquire(client, topic, options);
    setEntry(acquired);
    return () => {
      setEntry(null);
      release(client, topic);
    };
    // `options` are deliberately read once per (client, topic).
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [client, topic]);
  const live = entry?.live.topic === topic ? entry.live : null;
  return useSyncExternalStore(
    live ? (listener) => live.onChange(listener) : noop,
    () => (live ? live.get() : loading),
  ) as LiveState<TopicSnapshot<T>>;
}
