// Unit tests of herald.js against a scripted WebSocket: what a real
// server cannot easily be made to do (go silent, refuse for ever, replay
// history).
import { test } from "node:test";
import assert from "node:assert/strict";

import { HeraldClient, HeraldError, escapeHTML } from "../herald.js";
import { connectResult, scriptedWebSocket, until } from "./fakes.mjs";

const fast = { url: "http://herald.test", minDelay: 20, maxDelay: 80, jitter: 0 };

/** A server that accepts connect and subscribe, answers ping. */
function friendly(extra = () => false) {
  return (ws, f) => {
    if (extra(ws, f)) return;
    if (f.op === "connect") ws.reply(f, connectResult(f.user));
    else if (f.op === "subscribe" || f.op === "ping") ws.reply(f);
  };
}

/** subscribeAnswered is a client whose server answers every subscribe with result. */
function subscribeAnswered(result, sockets) {
  const answer = (s, f) => {
    if (f.op !== "subscribe") return false;
    s.reply(f, result);
    return true;
  };
  return new HeraldClient({ ...fast, user: "u", WebSocket: scriptedWebSocket(friendly(answer), sockets) });
}

test("answers server pings with pong", async () => {
  const sockets = [];
  const c = new HeraldClient({ ...fast, user: "u", WebSocket: scriptedWebSocket(friendly(), sockets) });
  await c.connect();
  sockets[0].push({ type: "ping" });
  assert.deepEqual(sockets[0].sent.at(-1), { op: "pong" });
  c.close();
});

test("a silent connection is presumed dead after ping_interval + pong_timeout, then replaced", async () => {
  const sockets = [];
  const ws = scriptedWebSocket((s, f) => {
    if (f.op === "connect") s.reply(f, connectResult("u", 0.1, 0.1)); // 200 ms of silence allowed
  }, sockets);
  const c = new HeraldClient({ ...fast, user: "u", WebSocket: ws });
  const lost = [];
  c.on("disconnected", (d) => lost.push(d));
  await c.connect();
  await until(() => sockets.length >= 2 && c.state === "connected", 2000, "a second connection");
  assert.equal(sockets[0].readyState, 3, "the silent socket was closed");
  assert.equal(lost[0].reconnect, true);
  c.close();
});

test("reconnects with growing, bounded backoff and jitter, asking for a fresh token each time", async () => {
  const sockets = [];
  let tokens = 0;
  const ws = scriptedWebSocket((s) => s.drop(1006), sockets); // every attempt fails
  const c = new HeraldClient({ url: "http://herald.test", minDelay: 10, maxDelay: 40, jitter: 0.5, getToken: async () => `t${++tokens}`, WebSocket: ws, transports: ["websocket"] });
  const delays = [];
  c.on("reconnecting", (r) => delays.push(r.delay));
  c.connect();
  await until(() => delays.length >= 5, 3000, "five reconnects");
  c.close();
  // 10, 20, 40, 40, 40 ms, each within ±50 %.
  const base = [10, 20, 40, 40, 40];
  delays.slice(0, 5).forEach((d, i) => assert.ok(d >= base[i] * 0.5 && d <= base[i] * 1.5, `delay ${i} = ${d}`));
  assert.ok(tokens >= 5, "a token per attempt");
  assert.equal(sockets[1].sent[0].token, "t2");
});

test("does not reconnect after a 35xx disconnect, and says why", async () => {
  const sockets = [];
  const ws = scriptedWebSocket((s, f) => {
    s.push({ type: "reply", id: f.id, error: { code: "unauthorized", message: "token has expired" } });
    s.push({ type: "disconnect", code: 3502, reason: "unauthorized", reconnect: false });
    s.drop(3502, "unauthorized");
  }, sockets);
  const c = new HeraldClient({ ...fast, token: "old", WebSocket: ws });
  const closed = [];
  c.on("closed", (d) => closed.push(d));
  await assert.rejects(c.connect(), (err) => err instanceof HeraldError && err.code === "unauthorized");
  await new Promise((r) => setTimeout(r, 150));
  assert.equal(sockets.length, 1, "no second attempt");
  assert.equal(c.state, "closed");
  assert.equal(closed[0].code, 3502);
});

test("resubscribes after a reconnect, with the channel's offset and epoch", async () => {
  const sockets = [];
  const ws = scriptedWebSocket(friendly(), sockets);
  const c = new HeraldClient({ ...fast, user: "u", WebSocket: ws });
  const got = [];
  await c.connect();
  await c.subscribe("room:1", (m) => got.push(m));
  sockets[0].push({ type: "message", id: "m1", kind: "channel", channel: "room:1", ts: 1, data: 1, offset: 7, epoch: "e1" });
  assert.deepEqual(c.position("room:1"), { offset: 7, epoch: "e1" });
  sockets[0].drop(1006);
  await until(() => sockets.length === 2 && sockets[1].sent.some((f) => f.op === "subscribe"), 2000, "a resubscribe");
  const sub = sockets[1].sent.find((f) => f.op === "subscribe");
  assert.equal(sub.channel, "room:1");
  assert.equal(sub.offset, 7);
  assert.equal(sub.epoch, "e1");
  // A recovered message the client already has is dropped by id.
  sockets[1].push({ type: "message", id: "m1", kind: "channel", channel: "room:1", ts: 1, data: 1, offset: 7, epoch: "e1" });
  sockets[1].push({ type: "message", id: "m2", kind: "channel", channel: "room:1", ts: 2, data: 2, offset: 8, epoch: "e1" });
  assert.deepEqual(got.map((m) => m.id), ["m1", "m2"]);
  assert.equal(c.position("room:1").offset, 8);
  c.close();
});

test("a new epoch replaces the position", async () => {
  const sockets = [];
  const c = subscribeAnswered({ offset: 3, epoch: "e2", recovered: false }, sockets);
  await c.connect();
  const subscribed = [];
  c.on("subscribed", (s) => subscribed.push(s));
  await c.subscribe("room:1", null, { offset: 40, epoch: "e1" });
  assert.equal(sockets[0].sent.find((f) => f.op === "subscribe").offset, 40);
  assert.deepEqual(c.position("room:1"), { offset: 3, epoch: "e2" });
  assert.equal(subscribed[0].recovered, false);
  c.close();
});

test("with a device, acknowledges the inbox cumulatively and drops duplicates", async () => {
  const sockets = [];
  const c = new HeraldClient({ ...fast, user: "u", device: "phone-1", ackDelay: 10, WebSocket: scriptedWebSocket(friendly(), sockets) });
  const got = [];
  c.on("message", (m) => got.push(m.id));
  await c.connect();
  assert.equal(sockets[0].sent[0].device, "phone-1");
  for (const [id, seq] of [["d1", 1], ["d2", 2], ["d2", 2], ["d3", 3]]) {
    sockets[0].push({ type: "message", id, kind: "direct", to: "u", ts: 1, data: "x", seq });
  }
  await until(() => sockets[0].sent.some((f) => f.op === "ack"), 1000, "an ack");
  assert.deepEqual(got, ["d1", "d2", "d3"]);
  const acks = sockets[0].sent.filter((f) => f.op === "ack");
  assert.deepEqual(acks, [{ op: "ack", seq: 3 }]);
  c.close();
});

test("falls back to SSE when the WebSocket cannot open", async () => {
  const never = class {
    constructor() {
      setTimeout(() => this.onclose?.({ code: 1006, reason: "" }), 0);
    }
    close() {}
  };
  let opened = 0;
  const ES = class {
    constructor(url) {
      opened++;
      this.url = url;
    }
    addEventListener() {}
    close() {}
  };
  const c = new HeraldClient({ ...fast, user: "u", WebSocket: never, EventSource: ES, fetch: async () => ({ ok: true, status: 204 }) });
  const tried = [];
  c.on("connecting", (e) => tried.push(e.transport));
  c.connect();
  await until(() => opened === 1, 1000, "an event stream");
  assert.deepEqual(tried, ["websocket", "sse"]);
  c.close();
});

test("operations fail fast while disconnected; replies map to HeraldError", async () => {
  const c = new HeraldClient({ ...fast, user: "u", WebSocket: scriptedWebSocket((s, f) => {
    if (f.op === "connect") s.reply(f, connectResult());
    else s.push({ type: "reply", id: f.id, error: { code: "forbidden", message: "no" } });
  }) });
  await assert.rejects(c.publish("room:1", 1), { code: "disconnected" });
  await c.connect();
  await assert.rejects(c.publish("room:1", 1), (e) => e instanceof HeraldError && e.code === "forbidden");
  c.close();
  await assert.rejects(c.connect(), { code: "closed" });
});

test("escapeHTML escapes markup", () => {
  assert.equal(escapeHTML(`<img src=x onerror="a('b')">&`), "&lt;img src=x onerror=&quot;a(&#39;b&#39;)&quot;&gt;&amp;");
});

test("after a recovery the position moves with the recovered messages, not the reply", async () => {
  const sockets = [];
  const c = subscribeAnswered({ offset: 12, epoch: "e1", recovered: true, missed: 2 }, sockets);
  await c.connect();
  await c.subscribe("chat:1", null, { offset: 10, epoch: "e1" });
  assert.deepEqual(c.position("chat:1"), { offset: 10, epoch: "e1" }, "not yet moved: the missed messages follow");
  sockets[0].push({ type: "message", id: "r11", kind: "channel", channel: "chat:1", ts: 1, data: 11, offset: 11, epoch: "e1" });
  assert.equal(c.position("chat:1").offset, 11);
  c.close();
});

test("acknowledges again what comes again, and after a reconnect what the server did not get", async () => {
  const sockets = [];
  const c = new HeraldClient({
    ...fast,
    user: "u",
    device: "d",
    ackDelay: 5,
    WebSocket: scriptedWebSocket((s, f) => {
      if (f.op === "connect") s.reply(f, { ...connectResult(), device: "d", inbox: { acked: sockets.length === 1 ? 0 : 1, pending: 0 } });
    }, sockets),
  });
  await c.connect();
  sockets[0].push({ type: "message", id: "a", kind: "direct", to: "u", ts: 1, data: 1, seq: 1 });
  sockets[0].push({ type: "message", id: "b", kind: "direct", to: "u", ts: 1, data: 2, seq: 2 });
  sockets[0].drop(1006); // before the ack went out
  await until(() => sockets.length === 2 && sockets[1].sent.some((f) => f.op === "ack"), 2000, "the ack on the new connection");
  assert.deepEqual(sockets[1].sent.filter((f) => f.op === "ack"), [{ op: "ack", seq: 2 }]);
  c.close();
});

test("a transport that throws is skipped; none at all closes the client", async () => {
  const throwing = class {
    constructor() {
      throw new Error("bad URL");
    }
  };
  const errors = [];
  const c = new HeraldClient({ ...fast, user: "u", WebSocket: throwing, transports: ["websocket"] });
  c.on("error", (e) => errors.push(e.code));
  const reconnects = [];
  c.on("reconnecting", (r) => reconnects.push(r));
  c.connect();
  await until(() => reconnects.length >= 1, 1000, "a reconnect");
  assert.equal(errors[0], "transport");
  c.close();

  const none = new HeraldClient({ ...fast, user: "u", WebSocket: null, transports: ["websocket"] });
  none.WebSocket = undefined;
  await assert.rejects(none.connect(), { code: "invalid_option" });
  assert.equal(none.state, "closed");
});
