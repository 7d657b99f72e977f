// Herald JavaScript client: one ES module, no dependencies, no build step.
// It speaks the protocol of docs/protocol.md over WebSocket, and over
// Server-Sent Events when no WebSocket can be opened. docs/javascript.md
// shows how to use it; herald.d.ts declares its types.

/** The protocol version this client speaks; it talks to version 1 servers too. */
export const PROTOCOL_VERSION = 2;

/** An error from the server (its stable code) or from the client. */
export class HeraldError extends Error {
  /**
   * @param {string} code a stable code: a protocol error code, or one of
   *   the client's own: "timeout", "disconnected", "closed"
   * @param {string} message
   */
  constructor(code, message) {
    super(message);
    this.name = "HeraldError";
    this.code = code;
  }
}

const DEFAULTS = {
  transports: ["websocket", "sse"],
  minDelay: 500, // ms, the first reconnect wait
  maxDelay: 30000, // ms, the longest
  jitter: 0.5, // each wait randomised by ±50 %
  connectTimeout: 10000, // ms to open a transport and connect
  requestTimeout: 10000, // ms for a reply
  ackDelay: 100, // ms to gather inbox acknowledgements into one
  autoAck: true, // acknowledge a direct message once the handlers have returned
  seenIds: 1000, // message ids remembered to drop duplicates
};

// Disconnect codes 3500-3999 mean the same attempt would fail again.
const isTerminal = (code) => code >= 3500 && code <= 3999;

/** The default server: the one this module was loaded from, if any. */
function defaultURL() {
  try {
    const u = new URL(import.meta.url);
    if (u.protocol === "http:" || u.protocol === "https:") return u.origin;
  } catch {
    // not loaded from a URL
  }
  if (typeof location !== "undefined") return location.origin;
  throw new HeraldError("invalid_option", "give the server's URL: new HeraldClient({url: 'http://host:7600'})");
}

/** httpBase turns the url option into the server's http(s) origin. */
function httpBase(url) {
  const u = new URL(url, typeof location !== "undefined" ? location.href : undefined);
  if (u.protocol === "ws:") u.protocol = "http:";
  if (u.protocol === "wss:") u.protocol = "https:";
  // A url naming the WebSocket endpoint is the server too.
  const path = u.pathname.replace(/\/(ws|sse)\/?$/, "").replace(/\/$/, "");
  return u.origin + path;
}

/**
 * WebSocketTransport carries frames over one WebSocket.
 * Callbacks: onopen(), onframe(obj), onclose({code, reason, opened}).
 */
class WebSocketTransport {
  constructor(base, Impl) {
    this.name = "websocket";
    this.opened = false;
    const url = base.replace(/^http/, "ws") + "/ws";
    this.ws = new Impl(url);
    this.ws.onopen = () => {
      this.opened = true;
      this.onopen();
    };
    this.ws.onmessage = (ev) => {
      if (typeof ev.data === "string") this.frame(ev.data);
    };
    this.ws.onclose = (ev) => this.closed(ev.code, ev.reason);
    this.ws.onerror = () => {}; // a close event follows
  }
  frame(text) {
    let f;
    try {
      f = JSON.parse(text);
    } catch {
      return;
    }
    if (f && typeof f === "object") this.onframe(f);
  }
  closed(code, reason) {
    if (this.done) return;
    this.done = true;
    this.onclose({ code, reason, opened: this.opened });
  }
  send(frame) {
    if (this.ws.readyState === 1) this.ws.send(JSON.stringify(frame));
  }
  close() {
    this.closed(1000, "closed by client");
    try {
      this.ws.close();
    } catch {
      // already closed
    }
  }
}

const encoder = new TextEncoder();
const utf8Length = (text) => encoder.encode(text).length;

/**
 * SSETransport receives frames on an EventSource stream and sends them in
 * POSTs naming the stream's session, one POST at a time, in order.
 */
class SSETransport {
  constructor(base, ES, fetchImpl) {
    this.name = "sse";
    this.base = base;
    this.fetch = fetchImpl;
    this.opened = false;
    this.pending = []; // frames waiting for the POST in flight
    this.posting = false;
    this.maxBody = 0; // bytes one POST may carry, once connected
    this.es = new ES(base + "/sse");
    this.es.addEventListener("session", (ev) => {
      try {
        this.key = JSON.parse(ev.data).session;
      } catch {
        return this.closed(0, "bad session event");
      }
      this.opened = true;
      this.onopen();
    });
    this.es.onmessage = (ev) => {
      let f;
      try {
        f = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (f && typeof f === "object") this.onframe(f);
    };
    // An EventSource would reconnect on its own, as a new connection the
    // client knows nothing of: the client reconnects itself instead.
    this.es.onerror = () => this.closed(0, "stream ended");
  }
  closed(code, reason) {
    if (this.done) return;
    this.done = true;
    this.es.close();
    this.onclose({ code, reason, opened: this.opened });
  }
  send(frame) {
    if (this.done) return;
    this.pending.push(JSON.stringify(frame));
    this.flush();
  }
  async flush() {
    if (this.posting || this.pending.length === 0 || this.done) return;
    this.posting = true;
    // Everything waiting goes in one POST, up to 4 frames' worth of bytes
    // (docs/protocol.md); before connect, the connect frame alone.
    let n = 1;
    let bytes = utf8Length(this.pending[0]) + 1;
    while (n < this.pending.length && bytes + utf8Length(this.pending[n]) + 1 <= this.maxBody) {
      bytes += utf8Length(this.pending[n]) + 1;
      n++;
    }
    const batch = this.pending.splice(0, n);
    try {
      const resp = await this.fetch(this.base + "/sse", {
        method: "POST",
        headers: { "Content-Type": "text/plain", "Herald-Session": this.key },
        body: batch.join("\n") + "\n",
      });
      if (resp.status === 404 || resp.status === 413) {
        // The stream has ended, or is ending; its close comes down it.
        if (resp.status === 404) this.closed(0, "stream ended");
      } else if (!resp.ok) {
        this.closed(0, "POST failed: " + resp.status);
      }
    } catch {
      this.closed(0, "POST failed");
    }
    this.posting = false;
    this.flush();
  }
  close() {
    this.closed(1000, "closed by client");
  }
}

/** Small event emitter: on(type, fn) returns a function that removes fn. */
class Emitter {
  constructor() {
    this.handlers = new Map();
  }
  on(type, fn) {
    if (!this.handlers.has(type)) this.handlers.set(type, new Set());
    this.handlers.get(type).add(fn);
    return () => this.off(type, fn);
  }
  off(type, fn) {
    this.handlers.get(type)?.delete(fn);
  }
  emit(type, value) {
    for (const fn of [...(this.handlers.get(type) || [])]) {
      try {
        fn(value);
      } catch (err) {
        // An application handler's error must not break the client.
        setTimeout(() => {
          throw err;
        });
      }
    }
  }
}

/**
 * HeraldClient holds one connection to a Herald server, reconnecting with
 * backoff until closed. See docs/javascript.md.
 */
export class HeraldClient extends Emitter {
  /** @param {import("./herald").ClientOptions} [options] */
  constructor(options = {}) {
    super();
    this.opts = { ...DEFAULTS, ...options };
    this.base = httpBase(this.opts.url || defaultURL());
    this.WebSocket = this.opts.WebSocket || globalThis.WebSocket;
    this.EventSource = this.opts.EventSource || globalThis.EventSource;
    this.fetch = this.opts.fetch || globalThis.fetch?.bind(globalThis);
    /** "idle" | "connecting" | "connected" | "reconnecting" | "closed" */
    this.state = "idle";
    this.transport = null; // the transport of the current connection
    this.info = null; // the connect result
    this.nextId = 1;
    this.inflight = new Map(); // id -> {resolve, reject, timer}
    // channel -> {offset, epoch}: subscribed (or to subscribe) channels,
    // and where each one's history stands, for recovery on reconnect.
    this.channels = new Map();
    this.attempt = 0;
    this.preferSSE = false; // the WebSocket could not open: stay on SSE
    this.seen = new Set(); // recent message ids, to drop duplicates
    this.inboxSeq = 0; // highest inbox seq to acknowledge (with device)
    this.ackedSeq = 0; // highest acknowledged
  }

  /**
   * connect starts the client. It resolves with the connect result once
   * connected, and rejects if the server refuses for good (35xx) or close
   * is called first; otherwise it keeps trying.
   */
  connect() {
    if (this.state === "closed") return Promise.reject(new HeraldError("closed", "the client is closed"));
    if (this.state === "connected") return Promise.resolve(this.info);
    if (!this.ready) {
      this.ready = new Promise((resolve, reject) => {
        this.readyResolve = resolve;
        this.readyReject = reject;
      });
      this.ready.catch(() => {}); // a caller that does not wait is not an unhandled rejection
    }
    if (this.state === "idle") this.open();
    return this.ready;
  }

  /** close ends the connection and stops reconnecting. */
  close() {
    if (this.state === "closed") return;
    clearTimeout(this.retryTimer);
    this.setState("closed");
    const t = this.transport;
    this.transport = null;
    if (t) t.close();
    this.teardown(new HeraldError("closed", "the client was closed"));
    this.readyReject?.(new HeraldError("closed", "the client was closed"));
    this.ready = null;
  }

  setState(s) {
    if (this.state === s) return;
    this.state = s;
    this.emit("state", s);
  }

  async open() {
    this.setState(this.attempt === 0 ? "connecting" : "reconnecting");
    let creds;
    try {
      creds = await this.credentials();
    } catch (err) {
      this.emit("error", new HeraldError("token", "getToken failed: " + (err?.message || err)));
      return this.scheduleReconnect(0);
    }
    if (this.state === "closed") return;
    const names = this.opts.transports.filter((n) => (n === "websocket" ? this.WebSocket : this.EventSource && this.fetch));
    if (names.length === 0) {
      const err = new HeraldError("invalid_option", "none of the transports " + this.opts.transports.join(", ") + " is available here");
      this.emit("error", err);
      this.setState("closed");
      this.readyReject?.(err);
      this.ready = null;
      return;
    }
    const order = this.preferSSE && names.includes("sse") ? ["sse", ...names.filter((n) => n !== "sse")] : names;
    this.tryTransport(order, 0, creds);
  }

  /** credentials asks the application for a fresh token before each connect. */
  async credentials() {
    const frame = { op: "connect" };
    if (this.opts.getToken) frame.token = await this.opts.getToken();
    else if (this.opts.token) frame.token = this.opts.token;
    if (this.opts.user) frame.user = this.opts.user;
    if (this.opts.device) frame.device = this.opts.device;
    return frame;
  }

  tryTransport(order, i, creds) {
    const name = order[i];
    let t;
    try {
      t = name === "sse" ? new SSETransport(this.base, this.EventSource, this.fetch) : new WebSocketTransport(this.base, this.WebSocket);
    } catch (err) {
      // The constructor refused (a malformed URL, say): as if it could not open.
      this.emit("error", new HeraldError("transport", `${name}: ${err?.message || err}`));
      if (i + 1 < order.length) return this.tryTransport(order, i + 1, creds);
      return this.lost({ code: 0, reason: "transport_failed", reconnect: true });
    }
    this.transport = t;
    this.emit("connecting", { transport: name, attempt: this.attempt });
    const openTimer = setTimeout(() => t.close(), this.opts.connectTimeout);
    let disconnect = null; // the server's disconnect frame, if one came
    t.onopen = () => {
      this.request(creds, t).then(
        (result) => {
          clearTimeout(openTimer);
          this.connected(t, result);
        },
        (err) => {
          clearTimeout(openTimer);
          // A refused connect is followed by the server's disconnect;
          // the refusal says more than it does.
          this.refusal = err;
          this.emit("error", err);
        },
      );
    };
    t.onframe = (f) => {
      if (f.type === "disconnect") disconnect = f;
      this.frame(t, f);
    };
    t.onclose = ({ code, reason, opened }) => {
      clearTimeout(openTimer);
      if (this.transport !== t) return; // closed by close(), or replaced
      this.transport = null;
      if (!opened && i + 1 < order.length && this.state !== "closed") {
        // This transport could not even open: try the next at once.
        if (order[i + 1] === "sse") this.preferSSE = true;
        return this.tryTransport(order, i + 1, creds);
      }
      if (!opened && name === "sse") this.preferSSE = false; // try WebSocket again next time
      this.lost(disconnect || { code, reason, reconnect: !isTerminal(code) });
    };
  }

  connected(t, result) {
    if (this.transport !== t) return;
    this.refusal = null;
    this.info = { ...result, transport: t.name };
    if (t.name === "sse") t.maxBody = 4 * ((result?.limits?.max_frame_bytes || 65536) + 1);
    this.attempt = 0;
    // The server's position of this device's inbox: what it has of our
    // acknowledgements, whatever was lost with the last connection.
    this.ackedSeq = result?.inbox?.acked ?? 0;
    if (this.inboxSeq > this.ackedSeq) this.scheduleAck();
    this.setState("connected");
    this.watchdog(t);
    this.emit("connected", this.info);
    this.readyResolve?.(this.info);
    this.resubscribe();
  }

  /** resubscribe subscribes again to every channel, from where it stood. */
  resubscribe() {
    for (const [channel, pos] of this.channels) {
      this.subscribeNow(channel, pos).catch((err) => this.emit("error", err));
    }
  }

  /** lost handles the end of a connection: reconnect, or stop for good. */
  lost(d) {
    if (this.state === "closed") return;
    this.info = null;
    this.teardown(new HeraldError("disconnected", "the connection was lost"));
    const terminal = d.reconnect === false || isTerminal(d.code);
    this.emit("disconnected", { code: d.code, reason: d.reason, reconnect: !terminal, message: d.message });
    if (terminal) {
      this.setState("closed");
      const err =
        this.refusal || new HeraldError(d.reason || "disconnected", d.message || "the server ended the connection: " + d.reason);
      this.readyReject?.(err);
      this.ready = null;
      this.emit("closed", d);
      return;
    }
    this.scheduleReconnect(d.code === 3006 ? 1000 : 0);
  }

  scheduleReconnect(atLeast) {
    this.setState("reconnecting");
    const o = this.opts;
    const base = Math.min(o.maxDelay, o.minDelay * 2 ** this.attempt);
    const delay = Math.max(atLeast, base * (1 + o.jitter * (2 * Math.random() - 1)));
    this.attempt++;
    this.emit("reconnecting", { delay, attempt: this.attempt });
    this.retryTimer = setTimeout(() => this.open(), delay);
  }

  /** teardown fails every request in flight. */
  teardown(err) {
    clearTimeout(this.deadTimer);
    clearTimeout(this.ackTimer);
    this.ackTimer = null;
    for (const { reject, timer } of this.inflight.values()) {
      clearTimeout(timer);
      reject(err);
    }
    this.inflight.clear();
  }

  /**
   * watchdog closes a connection from which nothing, not even a ping, has
   * come for ping_interval + pong_timeout: it is dead.
   */
  watchdog(t) {
    clearTimeout(this.deadTimer);
    const i = this.info;
    if (!i || this.transport !== t) return;
    const ms = (i.ping_interval + i.pong_timeout) * 1000;
    this.deadTimer = setTimeout(() => {
      if (this.transport === t) t.close();
    }, ms);
  }

  frame(t, f) {
    if (this.transport !== t) return;
    if (this.info) this.watchdog(t);
    switch (f.type) {
      case "reply": {
        const p = this.inflight.get(f.id);
        if (p) {
          this.inflight.delete(f.id);
          clearTimeout(p.timer);
          if (f.error) p.reject(new HeraldError(f.error.code, f.error.message));
          else p.resolve(f.result ?? null);
        } else if (f.error) {
          this.emit("error", new HeraldError(f.error.code, f.error.message));
        }
        break;
      }
      case "ping":
        t.send({ op: "pong" });
        break;
      case "message":
        this.message(f);
        break;
      case "unsubscribed":
        this.channels.delete(f.channel);
        this.emit("unsubscribed", { channel: f.channel });
        break;
      case "disconnect":
        break; // the transport's close follows; onclose reads it
      default:
      // newer frame types are ignored
    }
  }

  message(m) {
    const inbox = m.kind === "direct" && typeof m.seq === "number" && this.opts.device && this.opts.autoAck;
    if (m.id) {
      if (this.seen.has(m.id)) {
        // A duplicate: a message delivered again before its ack reached
        // the server, or a recovery overlapping live delivery.
        if (inbox) this.ack(m.seq);
        return;
      }
      this.seen.add(m.id);
      if (this.seen.size > this.opts.seenIds) this.seen.delete(this.seen.values().next().value);
    }
    if (m.kind === "channel" && typeof m.offset === "number") {
      const pos = this.channels.get(m.channel);
      if (pos) {
        if (pos.epoch !== m.epoch) {
          pos.epoch = m.epoch;
          pos.offset = m.offset;
        } else pos.offset = Math.max(pos.offset ?? 0, m.offset);
      }
    }
    this.emit("message", m);
    if (m.kind === "channel") this.emit("message:" + m.channel, m);
    if (inbox) this.ack(m.seq);
  }

  /**
   * ack acknowledges the device's inbox up to seq (cumulative), gathering
   * acknowledgements for ackDelay ms into one. With autoAck (the default)
   * the client calls it once the message handlers have returned; with
   * autoAck false, call it once the application has kept the message.
   */
  ack(seq) {
    this.inboxSeq = Math.max(this.inboxSeq, seq);
    this.scheduleAck();
  }

  /** scheduleAck acknowledges the inbox up to the highest seq received, once per ackDelay. */
  scheduleAck() {
    if (this.ackTimer) return;
    this.ackTimer = setTimeout(() => {
      this.ackTimer = null;
      const t = this.transport;
      if (!t || this.state !== "connected" || this.inboxSeq <= this.ackedSeq) return;
      this.ackedSeq = this.inboxSeq;
      t.send({ op: "ack", seq: this.inboxSeq });
    }, this.opts.ackDelay);
  }

  /** request sends a frame with a fresh id and resolves with its reply's result. */
  request(frame, t = this.transport) {
    if (!t || (this.state !== "connected" && frame.op !== "connect")) {
      return Promise.reject(new HeraldError("disconnected", "not connected"));
    }
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.inflight.delete(id);
        reject(new HeraldError("timeout", `no reply to ${frame.op} in ${this.opts.requestTimeout} ms`));
      }, this.opts.requestTimeout);
      this.inflight.set(id, { resolve, reject, timer });
      t.send({ ...frame, id });
    });
  }

  subscribeNow(channel, pos) {
    const frame = { op: "subscribe", channel };
    const recovery = Boolean(pos && typeof pos.offset === "number" && pos.epoch);
    if (recovery) {
      frame.offset = pos.offset;
      frame.epoch = pos.epoch;
    }
    return this.request(frame).then((result) => {
      const r = result || {};
      // The reply gives the channel's position when the subscription took
      // effect. After a recovery the missed messages follow it and move
      // the position themselves; otherwise the channel goes on from here.
      if (this.channels.get(channel) === pos && typeof r.offset === "number" && !(recovery && r.recovered === true)) {
        pos.offset = r.offset;
        pos.epoch = r.epoch;
      }
      this.emit("subscribed", { channel, recovery, recovered: r.recovered === true, missed: r.missed ?? 0, offset: r.offset, epoch: r.epoch });
      return r;
    });
  }

  /**
   * subscribe adds a channel, now if connected and again after every
   * reconnect. With a handler, it is called with each message of the
   * channel. position ({offset, epoch}) recovers history from there.
   */
  subscribe(channel, handler, position) {
    if (handler) this.on("message:" + channel, handler);
    let pos = this.channels.get(channel);
    if (!pos) {
      pos = { offset: position?.offset, epoch: position?.epoch };
      this.channels.set(channel, pos);
    }
    if (this.state !== "connected") return Promise.resolve(null);
    return this.subscribeNow(channel, pos).catch((err) => {
      if (err.code !== "disconnected" && err.code !== "timeout") this.channels.delete(channel);
      throw err;
    });
  }

  /** unsubscribe removes a channel and every handler of its messages. */
  unsubscribe(channel) {
    const had = this.channels.delete(channel);
    this.handlers.delete("message:" + channel);
    if (!had || this.state !== "connected") return Promise.resolve(null);
    return this.request({ op: "unsubscribe", channel });
  }

  /** position returns where a channel's history stands, for recovery. */
  position(channel) {
    const p = this.channels.get(channel);
    return p && typeof p.offset === "number" ? { offset: p.offset, epoch: p.epoch } : null;
  }

  /**
   * publish sends data to a channel's subscribers; resolves with {id}.
   * options.echo false leaves this connection out of the delivery (as for
   * send and broadcast).
   */
  publish(channel, data, options) {
    return this.request(withEcho({ op: "publish", channel, data }, options));
  }

  /** send sends data to every connection of one user; resolves with {id}. */
  send(to, data, options) {
    return this.request(withEcho({ op: "send", to, data }, options));
  }

  /** broadcast sends data to every client (if the server allows it). */
  broadcast(data, options) {
    return this.request(withEcho({ op: "broadcast", data }, options));
  }

  /** presence lists who subscribes to a channel. */
  presence(channel) {
    return this.request({ op: "presence", channel });
  }

  /** ping asks the server for an empty reply: a round trip. */
  ping() {
    return this.request({ op: "ping" });
  }
}

/**
 * withEcho adds options.echo to a publish, send or broadcast frame; the
 * server checks its value (invalid_field unless true or false).
 */
function withEcho(frame, options) {
  if (options?.echo !== undefined) frame.echo = options.echo;
  return frame;
}

/**
 * escapeHTML makes text safe to put in HTML; pages that show messages use
 * it (or textContent) for everything a message carries.
 */
export function escapeHTML(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}
