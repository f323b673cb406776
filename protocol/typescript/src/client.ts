// The connection: commands with ids and promises, topics with exact resume, reconnect with
// backoff and jitter, token refresh before the server's 4001.

import type {
  ClientFrame,
  CommandResults,
  ErrorCode,
  EventFrame,
  FeedFilter,
  ServerFrame,
  SubscribeResult,
  Topic,
} from "./protocol.js";
import { GavelError, closedError } from "./errors.js";
import { Backoff, type BackoffOptions } from "./backoff.js";
import { type TopicMessage, type TopicSnapshot, TopicStream } from "./topic.js";
import { newId, tokenExpiry } from "./util.js";

/** The part of a WebSocket the client uses: the browser's `WebSocket` and Node's `ws` both fit. */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
}

export type WebSocketConstructor = new (url: string) => WebSocketLike;

export type ConnectionState = "connecting" | "open" | "reconnecting" | "closed";

export interface ConnectOptions {
  /** The WebSocket endpoint, e.g. `wss://gavel.example.com/v1/ws`. */
  url: string;
  /** A fixed token (see `gavel token`). */
  token?: string;
  /**
   * Called for every connection attempt and before the token expires: return a fresh token.
   * With it the client reconnects (resuming every topic) before the server would close 4001.
   */
  getToken?: () => string | Promise<string>;
  /** The WebSocket implementation: the global one in browsers; in Node pass `ws`'s. */
  WebSocket?: WebSocketConstructor;
  /** Reconnect delays: `initialMs` (default 250) doubling to `maxMs` (default 10 s), with jitter. */
  backoff?: BackoffOptions;
  /** A command unanswered this long (across reconnects and retries) rejects with `TIMEOUT`. Default 30 s. */
  commandTimeoutMs?: number;
  /** Refresh the token this long before it expires (with `getToken`). Default 60 s. */
  refreshMarginMs?: number;
  /** Told of every change of the connection's state. */
  onStateChange?: (state: ConnectionState) => void;
  /** Told of errors the server sent for frames without an id, and of connection failures. */
  onError?: (error: GavelError) => void;
  /** Told of every close of the socket (the client's own refreshes say `code` 1000). */
  onClose?: (code: number, reason: string) => void;
}

/** Commands other than the subscription frames, with their fields. */
export type CommandType = Exclude<keyof CommandResults, "subscribe" | "unsubscribe">;
export type CommandFields<T extends CommandType> = Omit<Extract<ClientFrame, { type: T }>, "type" | "id">;

export interface CommandOptions {
  /** The request id (and idempotency key); a fresh random one when absent. */
  id?: string;
  timeoutMs?: number;
}

export interface SubscribeOptions {
  /** Only on `feed`. */
  filter?: FeedFilter;
  /** Only on `feed`: the snapshot holds the `limit` newest matching open tasks. */
  limit?: number;
  /** Resume after this `seq` (seen in `epoch`) instead of starting with a snapshot. */
  since?: number;
  epoch?: string;
}

/** What `subscribe` calls with each message of a topic. */
export type TopicHandler<T extends Topic> = (message: TopicMessage<TopicSnapshot<T>>) => void;

/** A subscription's handle: call it to unsubscribe; `ready` settles with the first answer. */
export type Subscription = (() => void) & { ready: Promise<SubscribeResult> };

interface PendingCommand {
  id: string;
  frame: string;
  resolve: (result: unknown) => void;
  reject: (error: GavelError) => void;
  timer: ReturnType<typeof setTimeout>;
  retry: ReturnType<typeof setTimeout> | null;
  attempts: number;
}

const OPEN = 1;
const TOKEN_EXPIRED = 4001;
/** The client left the socket itself (token refresh, `dropConnection`): reconnect at once. */
const REFRESHING = -1;

/** Opens a connection (and keeps it open) to a gavel server. */
export function connect(options: ConnectOptions): GavelClient {
  return new GavelClient(options);
}

export class GavelClient {
  #options: ConnectOptions;
  #ws: WebSocketLike | null = null;
  #state: ConnectionState = "connecting";
  #backoff: Backoff;
  #pending = new Map<string, PendingCommand>();
  #topics = new Map<Topic, TopicStream>();
  #subscribeIds = new Map<string, TopicStream>();
  #reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  #refreshTimer: ReturnType<typeof setTimeout> | null = null;
  #closedByUser = false;

  constructor(options: ConnectOptions) {
    if (!options.token && !options.getToken) throw new Error("connect: give `token` or `getToken`");
    this.#options = options;
    this.#backoff = new Backoff(options.backoff);
    void this.#open();
  }

  get state(): ConnectionState {
    return this.#state;
  }

  /** Sends a command; resolves with its `result`, rejects with a `GavelError`. */
  command<T extends CommandType>(
    type: T,
    fields: CommandFields<T>,
    options: CommandOptions = {},
  ): Promise<CommandResults[T]> {
    if (this.#closedByUser) return Promise.reject(closedError());
    const id = options.id ?? newId("c");
    if (this.#pending.has(id)) return Promise.reject(new Error(`command id ${id} is already in flight`));
    const frame = JSON.stringify({ ...fields, type, id });
    return new Promise<CommandResults[T]>((resolve, reject) => {
      const timeoutMs = options.timeoutMs ?? this.#options.commandTimeoutMs ?? 30_000;
      const pending: PendingCommand = {
        id,
        frame,
        resolve: resolve as (result: unknown) => void,
        reject,
        attempts: 0,
        retry: null,
        timer: setTimeout(() => {
          this.#settle(id);
          reject(new GavelError("TIMEOUT", `no answer to ${type} ${id} within ${timeoutMs} ms`));
        }, timeoutMs),
      };
      this.#pending.set(id, pending);
      this.#sendCommand(pending);
    });
  }

  /** `ping`: a round trip (not rate-limited). */
  ping(): Promise<CommandResults["ping"]> {
    return this.command("ping", {});
  }

  /**
   * Subscribes to `topic`. `handler` gets the snapshot (again, with `reset: true`, whenever
   * the server could not resume), every event once and in order across reconnects, and a
   * final `error` if the server refuses the topic. One subscription per topic per client.
   * The options may come before the handler too: `subscribe("feed", {filter}, handler)`.
   */
  subscribe<T extends Topic>(topic: T, handler: TopicHandler<T>, options?: SubscribeOptions): Subscription;
  subscribe<T extends Topic>(topic: T, options: SubscribeOptions, handler: TopicHandler<T>): Subscription;
  subscribe<T extends Topic>(topic: T, first: TopicHandler<T> | SubscribeOptions, second?: TopicHandler<T> | SubscribeOptions): Subscription {
    const [handler, options] = typeof first === "function" ? [first, (second ?? {}) as SubscribeOptions] : [second, first];
    if (typeof handler !== "function") throw new TypeError("subscribe: give a handler");
    if (this.#topics.has(topic)) throw new Error(`already subscribed to ${topic} on this client`);
    const stream = new TopicStream(topic, options, handler as (message: TopicMessage<unknown>) => void);
    this.#topics.set(topic, stream);
    this.#sendSubscribe(stream);
    const unsubscribe = () => this.#unsubscribe(stream);
    return Object.assign(unsubscribe, { ready: stream.ready });
  }

  /** Asks for a fresh snapshot of a subscribed topic (its handler gets it as a `snapshot`). */
  resync(topic: Topic): void {
    const stream = this.#topics.get(topic);
    if (!stream) return;
    stream.forget();
    this.#sendSubscribe(stream);
  }

  /** Where a topic stands: the last `seq` handed to its handler and its `epoch`. */
  position(topic: Topic): { seq: number | null; epoch: string | null } | null {
    const stream = this.#topics.get(topic);
    return stream ? { seq: stream.seq, epoch: stream.epoch } : null;
  }

  /** Drops the connection (as a network failure would): the client reconnects and resumes. */
  dropConnection(): void {
    this.#reconnectNow("dropped by the client");
  }

  /** Closes for good: pending commands reject with `CLOSED`. */
  close(): void {
    this.#closedByUser = true;
    this.#clearTimers();
    for (const pending of [...this.#pending.values()]) {
      this.#settle(pending.id);
      pending.reject(closedError());
    }
    for (const stream of this.#topics.values()) stream.close();
    this.#topics.clear();
    this.#subscribeIds.clear();
    this.#ws?.close(1000, "client closed");
    this.#setState("closed");
  }

  // ---------------------------------------------------------------- connection

  /** Connects with `fresh` (a token just obtained) or one from `getToken` / `token`. */
  async #open(fresh?: string): Promise<void> {
    this.#reconnectTimer = null;
    if (this.#closedByUser) return;
    let token: string;
    try {
      token = fresh ?? (this.#options.getToken ? await this.#options.getToken() : (this.#options.token as string));
    } catch (e) {
      this.#options.onError?.(new GavelError("UNAUTHORIZED", `getToken failed: ${String(e)}`));
      this.#scheduleReconnect();
      return;
    }
    if (this.#closedByUser) return;
    const Ctor = this.#options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!Ctor) throw new Error("connect: no WebSocket implementation (pass options.WebSocket, e.g. `ws` in Node)");
    const url = new URL(this.#options.url);
    url.searchParams.set("token", token);
    const ws = new Ctor(url.toString());
    this.#ws = ws;
    ws.onopen = () => this.#onOpen(ws, token);
    ws.onmessage = (m) => {
      if (ws === this.#ws) this.#onFrame(String(m.data));
    };
    ws.onerror = () => {};
    ws.onclose = (e) => {
      if (ws !== this.#ws) return;
      this.#options.onClose?.(e.code, e.reason);
      this.#onClose(e.code, e.reason);
    };
  }

  #onOpen(ws: WebSocketLike, token: string): void {
    if (ws !== this.#ws) return;
    this.#backoff.reset();
    this.#setState("open");
    this.#scheduleRefresh(token);
    for (const stream of this.#topics.values()) this.#sendSubscribe(stream);
    for (const pending of this.#pending.values()) {
      if (!pending.retry) this.#sendCommand(pending);
    }
  }

  #onClose(code: number, reason: string, fresh?: string): void {
    this.#ws = null;
    if (this.#refreshTimer) clearTimeout(this.#refreshTimer);
    if (this.#closedByUser) return;
    for (const stream of this.#topics.values()) stream.disconnected();
    this.#subscribeIds.clear();
    if (code === TOKEN_EXPIRED && !this.#options.getToken) {
      this.#options.onError?.(new GavelError("UNAUTHORIZED", "the token expired (4001) and there is no getToken"));
      this.close();
      return;
    }
    if (code !== REFRESHING && code !== TOKEN_EXPIRED) {
      this.#options.onError?.(new GavelError("CLOSED", `connection closed (${code}${reason ? `: ${reason}` : ""})`));
    }
    this.#setState("reconnecting");
    if (code === REFRESHING || code === TOKEN_EXPIRED) void this.#open(fresh);
    else this.#scheduleReconnect();
  }

  /**
   * Leaves the current socket (its late frames and close are ignored) and connects again at
   * once, with `fresh` when given.
   */
  #reconnectNow(reason: string, fresh?: string): void {
    const ws = this.#ws;
    if (!ws) return;
    this.#ws = null;
    ws.close(1000, reason);
    this.#options.onClose?.(1000, reason);
    this.#onClose(REFRESHING, reason, fresh);
  }

  #scheduleReconnect(): void {
    if (this.#closedByUser || this.#reconnectTimer) return;
    this.#setState("reconnecting");
    this.#reconnectTimer = setTimeout(() => void this.#open(), this.#backoff.next());
  }

  /**
   * Replaces `token` before it expires: `refreshMarginMs` ahead, or halfway through what is
   * left for a token that lives less than twice the margin. A `getToken` that hands back the
   * same token is asked again later; the connection is replaced only for a new one.
   */
  #scheduleRefresh(token: string): void {
    if (!this.#options.getToken) return;
    const expiry = tokenExpiry(token);
    if (expiry === null) return;
    const margin = this.#options.refreshMarginMs ?? 60_000;
    const left = expiry - Date.now();
    const delay = Math.max(1_000, left > 2 * margin ? left - margin : left / 2);
    // setTimeout holds at most 2^31-1 ms; a longer-lived token is refreshed a little early.
    const ws = this.#ws;
    this.#refreshTimer = setTimeout(() => void this.#refresh(token, ws), Math.min(delay, 2 ** 31 - 1));
  }

  /** Replaces the token of socket `ws` (nothing, if another socket has replaced it since). */
  async #refresh(current: string, ws: WebSocketLike | null): Promise<void> {
    this.#refreshTimer = null;
    let fresh: string;
    try {
      fresh = await (this.#options.getToken as () => string | Promise<string>)();
    } catch (e) {
      this.#options.onError?.(new GavelError("UNAUTHORIZED", `getToken failed: ${String(e)}`));
      fresh = current;
    }
    if (this.#closedByUser || this.#ws === null || this.#ws !== ws) return;
    if (fresh === current) this.#scheduleRefresh(current);
    else this.#reconnectNow("token refresh", fresh);
  }

  #setState(state: ConnectionState): void {
    if (this.#state === state) return;
    this.#state = state;
    this.#options.onStateChange?.(state);
  }

  #clearTimers(): void {
    if (this.#reconnectTimer) clearTimeout(this.#reconnectTimer);
    if (this.#refreshTimer) clearTimeout(this.#refreshTimer);
    this.#reconnectTimer = null;
    this.#refreshTimer = null;
  }

  #write(frame: string): boolean {
    const ws = this.#ws;
    if (!ws || ws.readyState !== OPEN) return false;
    ws.send(frame);
    return true;
  }

  // ------------------------------------------------------------------ commands

  #sendCommand(pending: PendingCommand): void {
    pending.retry = null;
    if (this.#write(pending.frame)) pending.attempts += 1;
  }

  #settle(id: string): PendingCommand | undefined {
    const pending = this.#pending.get(id);
    if (!pending) return undefined;
    this.#pending.delete(id);
    clearTimeout(pending.timer);
    if (pending.retry) clearTimeout(pending.retry);
    return pending;
  }

  #onReply(frame: Extract<ServerFrame, { type: "ok" | "error" }>): void {
    const id = frame.id ?? null;
    const stream = id === null ? undefined : this.#subscribeIds.get(id);
    if (stream && id !== null) {
      this.#subscribeIds.delete(id);
      // An answer to a subscribe this stream has since replaced (a resync) is not its state.
      if (stream.pendingId !== id) return;
      if (frame.type === "ok") this.#onSubscribed(stream, frame.result as SubscribeResult);
      else this.#onSubscribeRefused(stream, errorOf(frame));
      return;
    }
    const pending = id === null ? undefined : this.#pending.get(id);
    if (!pending) {
      if (frame.type === "error") this.#options.onError?.(errorOf(frame));
      return;
    }
    if (frame.type === "ok") {
      this.#settle(pending.id)?.resolve(frame.result);
      return;
    }
    const error = errorOf(frame);
    if (error.retryable) {
      // Nothing was applied: send it again, with the same id, after a pause.
      const delay = error.retryAfterMs ?? Backoff.delay(pending.attempts, this.#options.backoff);
      pending.retry = setTimeout(() => this.#sendCommand(pending), delay);
      return;
    }
    this.#settle(pending.id)?.reject(error);
  }

  // -------------------------------------------------------------------- topics

  #sendSubscribe(stream: TopicStream): void {
    stream.cancelRetry();
    const id = newId("s");
    const frame = JSON.stringify({ type: "subscribe", id, topic: stream.topic, ...stream.request() });
    if (this.#write(frame)) {
      stream.subscribing(id);
      this.#subscribeIds.set(id, stream);
    }
  }

  #onSubscribed(stream: TopicStream, result: SubscribeResult): void {
    if (this.#topics.get(stream.topic) !== stream) return;
    stream.subscribed(result);
  }

  #onSubscribeRefused(stream: TopicStream, error: GavelError): void {
    if (this.#topics.get(stream.topic) !== stream) return;
    if (error.retryable || error.code === "RATE_LIMITED") {
      const delay = error.retryAfterMs ?? Backoff.delay(stream.refusals, this.#options.backoff);
      stream.retrying();
      stream.cancelRetry();
      stream.retry = setTimeout(() => {
        stream.retry = null;
        if (this.#topics.get(stream.topic) === stream) this.#sendSubscribe(stream);
      }, delay);
      return;
    }
    this.#topics.delete(stream.topic);
    stream.refused(error);
  }

  #unsubscribe(stream: TopicStream): void {
    if (this.#topics.get(stream.topic) !== stream) return;
    this.#topics.delete(stream.topic);
    stream.close();
    this.#write(JSON.stringify({ type: "unsubscribe", id: newId("u"), topic: stream.topic }));
  }

  #onFrame(text: string): void {
    let frame: ServerFrame;
    try {
      frame = JSON.parse(text) as ServerFrame;
    } catch {
      this.#options.onError?.(new GavelError("BAD_REQUEST", "the server sent a frame that is not JSON"));
      return;
    }
    if (frame.type === "event") {
      this.#topics.get((frame as EventFrame).topic)?.event(frame as EventFrame);
    } else {
      this.#onReply(frame);
    }
  }
}

function errorOf(frame: { code: ErrorCode; message: string; field?: string | null; retry_after_ms?: number | null }): GavelError {
  return new GavelError(frame.code, frame.message, frame.field ?? null, frame.retry_after_ms ?? null);
}
