// gavel-client: the TypeScript binding of gavel's wire protocol (docs/protocol.md).

export * from "./protocol.js";
export { connect, GavelClient } from "./client.js";
export type {
  CommandFields,
  CommandOptions,
  CommandType,
  ConnectOptions,
  ConnectionState,
  SubscribeOptions,
  Subscription,
  TopicHandler,
  WebSocketConstructor,
  WebSocketLike,
} from "./client.js";
export { GavelError } from "./errors.js";
export type { ClientErrorCode } from "./errors.js";
export type { TopicMessage, TopicSnapshot } from "./topic.js";
export { live, LiveTopic, rankBids, reduceAdmin, reduceCoach, reduceFeed, reduceSeeker, reduceTask, reducerFor } from "./live.js";
export type { LiveOptions, LiveState, Reducer } from "./live.js";
export type { BackoffOptions } from "./backoff.js";
