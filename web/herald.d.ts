// Type declarations for herald.js, the Herald JavaScript client.

export declare const PROTOCOL_VERSION: 2;

/** An error from the server (a stable protocol code) or from the client. */
export declare class HeraldError extends Error {
  constructor(code: string, message: string);
  /** A protocol error code (docs/protocol.md), or the client's own: "timeout", "disconnected", "closed", "token", "transport", "invalid_option". */
  readonly code: string;
}

export type TransportName = "websocket" | "sse";

export interface ClientOptions {
  /** The server: http(s):// or ws(s):// origin, with or without /ws. Defaults to the server herald.js was loaded from. */
  url?: string;
  /** A signed connection token. */
  token?: string;
  /** Called before every connect and reconnect for a fresh token. */
  getToken?: () => string | Promise<string>;
  /** A declared user id: accepted only by an insecure (development) server. */
  user?: string;
  /** A stable id of this device, for durable direct messages: received ones are acknowledged. */
  device?: string;
  /** Transports to try, in order. Default ["websocket", "sse"]. */
  transports?: TransportName[];
  /** First reconnect wait in ms (default 500), doubling up to maxDelay (default 30000), each randomised by ±jitter (default 0.5). */
  minDelay?: number;
  maxDelay?: number;
  jitter?: number;
  /** ms to open a transport and connect (default 10000). */
  connectTimeout?: number;
  /** ms to wait for a reply (default 10000). */
  requestTimeout?: number;
  /** ms to gather inbox acknowledgements into one (default 100). */
  ackDelay?: number;
  /** Acknowledge a direct message once the message handlers have returned (default true). False: call ack(seq) yourself. */
  autoAck?: boolean;
  /** How many recent message ids are remembered to drop duplicates (default 1000). */
  seenIds?: number;
  /** Implementations to use instead of the globals (for Node.js or tests). */
  WebSocket?: typeof WebSocket;
  EventSource?: typeof EventSource;
  fetch?: typeof fetch;
}

export interface Limits {
  max_frame_bytes: number;
  ops_per_second: number;
  ops_burst: number;
  publish_per_second: number;
  publish_burst: number;
  max_subscriptions: number;
}

export interface InboxState {
  acked: number;
  pending: number;
  missed?: number;
  new?: boolean;
}

/** The connect result, and the transport it came over. */
export interface ConnectInfo {
  /** The server's protocol version (absent from version 1 servers). */
  protocol?: number;
  client: string;
  user: string;
  ping_interval: number;
  pong_timeout: number;
  limits: Limits;
  /** With a device: its name and its inbox. */
  device?: string;
  inbox?: InboxState;
  transport: TransportName;
}

export type JSONValue = string | number | boolean | JSONValue[] | { [key: string]: JSONValue };

export interface Message {
  type: "message";
  id: string;
  kind: "channel" | "direct" | "broadcast";
  channel?: string;
  to?: string;
  from?: string;
  ts: number;
  data: JSONValue;
  /** With channel history: the message's position in its channel. */
  offset?: number;
  epoch?: string;
  /** With durable direct messages: the position in the user's inbox. */
  seq?: number;
}

export interface Position {
  offset: number;
  epoch: string;
}

/** Options of one publish, send or broadcast. */
export interface PublishOptions {
  /** false: this connection does not receive the message (the user's other connections do). Default true. */
  echo?: boolean;
}

export interface SubscribeResult {
  offset?: number;
  epoch?: string;
  recovered?: boolean;
  missed?: number;
}

export interface Disconnect {
  code: number;
  reason: string;
  reconnect: boolean;
  message?: string;
}

export interface PresenceMember {
  user: string;
  connections: number;
  info?: JSONValue;
}

export interface Presence {
  channel: string;
  users: number;
  connections: number;
  members: PresenceMember[];
}

export type State = "idle" | "connecting" | "connected" | "reconnecting" | "closed";

export interface Events {
  state: State;
  connecting: { transport: TransportName; attempt: number };
  connected: ConnectInfo;
  disconnected: Disconnect;
  reconnecting: { delay: number; attempt: number };
  closed: Disconnect;
  message: Message;
  /** recovery: the client asked to recover from a position; recovered: everything missed follows. */
  subscribed: { channel: string; recovery: boolean; recovered: boolean; missed: number; offset?: number; epoch?: string };
  unsubscribed: { channel: string };
  error: HeraldError;
}

export declare class HeraldClient {
  constructor(options?: ClientOptions);
  readonly state: State;
  /** The connect result while connected, else null. */
  readonly info: ConnectInfo | null;
  on<K extends keyof Events>(type: K, fn: (value: Events[K]) => void): () => void;
  on(type: `message:${string}`, fn: (m: Message) => void): () => void;
  off(type: string, fn: (value: any) => void): void;
  connect(): Promise<ConnectInfo>;
  close(): void;
  subscribe(channel: string, handler?: (m: Message) => void, position?: Position): Promise<SubscribeResult | null>;
  unsubscribe(channel: string): Promise<null>;
  position(channel: string): Position | null;
  publish(channel: string, data: JSONValue, options?: PublishOptions): Promise<{ id: string }>;
  send(to: string, data: JSONValue, options?: PublishOptions): Promise<{ id: string }>;
  broadcast(data: JSONValue, options?: PublishOptions): Promise<{ id: string }>;
  presence(channel: string): Promise<Presence>;
  ping(): Promise<null>;
  /** Acknowledges the device's inbox up to seq (cumulative). */
  ack(seq: number): void;
}

/** Escapes text for HTML. */
export declare function escapeHTML(text: unknown): string;
