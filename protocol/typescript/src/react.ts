// The React binding: `useTopic(client, topic)` is the live view of a topic, re-rendered on
// every change. Components using the same topic (with the same options) on the same client
// share one subscription.

import { useCallback, useEffect, useState, useSyncExternalStore } from "react";
import type { GavelClient } from "./client.js";
import { type LiveOptions, type LiveState, LiveTopic } from "./live.js";
import type { Topic } from "./protocol.js";
import type { TopicSnapshot } from "./topic.js";

interface Shared {
  live: LiveTopic<unknown>;
  users: number;
}

const shared = new WeakMap<GavelClient, Map<string, Shared>>();

/** One subscription per topic and client (the server allows no second one on a connection). */
function acquire(client: GavelClient, topic: Topic, options: LiveOptions | undefined): Shared {
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
const nothing = () => () => {};

/**
 * The live view of `topic`: `{status, view, seq, resets, error}` — `view` is the topic's
 * snapshot with every event since applied (see `live`). `topic` null subscribes to nothing.
 * `options` (`filter`, `limit` on `feed`) are read when the subscription starts; components
 * sharing a topic share the first one's. A topic used here must not also be subscribed with
 * `client.subscribe` on the same client.
 */
export function useTopic<T extends Topic>(
  client: GavelClient,
  topic: T | null,
  options?: LiveOptions,
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
  const subscribe = useCallback((listener: () => void) => (live ? live.onChange(listener) : nothing()), [live]);
  const snapshot = useCallback(() => (live ? live.get() : loading), [live]);
  return useSyncExternalStore(subscribe, snapshot) as LiveState<TopicSnapshot<T>>;
}
