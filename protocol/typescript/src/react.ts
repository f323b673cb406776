// The React binding: `useTopic(client, topic)` — or `useTopic(topic)` under a
// `<GavelProvider client={client}>` — is the live view of a topic, re-rendered on every
// change. Components using the same topic (with the same options) on the same client share
// one subscription.

import { createContext, createElement, type ReactNode, useCallback, useContext, useEffect, useState, useSyncExternalStore } from "react";
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

const ClientContext = createContext<GavelClient | null>(null);

/** Gives `useTopic(topic)` below it its client: `createElement(GavelProvider, {client}, app)`. */
export function GavelProvider({ client, children }: { client: GavelClient; children?: ReactNode }): ReactNode {
  return createElement(ClientContext.Provider, { value: client }, children);
}

/**
 * The live view of `topic`: `{status, view, seq, resets, error}` — `view` is the topic's
 * snapshot with every event since applied (see `live`). `topic` null subscribes to nothing.
 * `options` (`filter`, `limit` on `feed`) are read when the subscription starts; components
 * sharing a topic share the first one's. A topic used here must not also be subscribed with
 * `client.subscribe` on the same client.
 */
export function useTopic<T extends Topic>(client: GavelClient, topic: T | null, options?: LiveOptions): LiveState<TopicSnapshot<T>>;
/** The same with the client of the nearest `GavelProvider`. */
export function useTopic<T extends Topic>(topic: T | null, options?: LiveOptions): LiveState<TopicSnapshot<T>>;
export function useTopic<T extends Topic>(
  first: GavelClient | T | null,
  second?: T | null | LiveOptions,
  third?: LiveOptions,
): LiveState<TopicSnapshot<T>> {
  const provided = useContext(ClientContext);
  const fromContext = first === null || typeof first === "string";
  const client = fromContext ? provided : first;
  if (!client) throw new Error("useTopic(topic) needs a <GavelProvider client={…}> above it");
  const topic = (fromContext ? first : second) as T | null;
  const options = (fromContext ? second : third) as LiveOptions | undefined;
  return useLive(client, topic, options);
}

function useLive<T extends Topic>(client: GavelClient, topic: T | null, options: LiveOptions | undefined): LiveState<TopicSnapshot<T>> {
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
