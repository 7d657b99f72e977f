// Tests of herald.js against a real server, started by web/node_test.go
// (go test ./web), which passes its address in HERALD_URL and a token for
// user "tok" in HERALD_TOKEN. Without them these tests are skipped.
import { test } from "node:test";
import assert from "node:assert/strict";

import { HeraldClient } from "../herald.js";
import { FetchEventSource, until } from "./fakes.mjs";

const url = process.env.HERALD_URL;
const skip = url ? false : "HERALD_URL is not set: run go test ./web";

async function api(path, body) {
  const resp = await fetch(url + path, { method: body === undefined ? "GET" : "POST", body: body === undefined ? undefined : JSON.stringify(body) });
  return resp.json();
}

const opts = { url, minDelay: 50, maxDelay: 200, EventSource: FetchEventSource };

for (const transport of ["websocket", "sse"]) {
  test(`over ${transport}: subscribe, publish, send, presence, unsubscribe`, { skip }, async () => {
    const a = new HeraldClient({ ...opts, user: `a-${transport}`, transports: [transport] });
    const b = new HeraldClient({ ...opts, user: `b-${transport}`, transports: [transport] });
    const got = { a: [], b: [] };
    a.on("message", (m) => got.a.push(m));
    b.on("message", (m) => got.b.push(m));
    const info = await a.connect();
    assert.equal(info.transport, transport);
    assert.equal(info.user, `a-${transport}`);
    await b.connect();
    const room = `room:node-${transport}`;
    const roomMsgs = [];
    await a.subscribe(room, (m) => roomMsgs.push(m));
    await b.subscribe(room);

    const { id } = await b.publish(room, { text: "hi" });
    await until(() => got.a.length === 1 && got.b.length === 1, 3000, "the room message");
    assert.equal(got.a[0].id, id);
    assert.equal(got.a[0].from, `b-${transport}`);
    assert.deepEqual(roomMsgs.map((m) => m.id), [id]);

    await a.send(`b-${transport}`, "psst");
    await until(() => got.b.length === 2, 3000, "the direct message");
    assert.equal(got.b[1].kind, "direct");
    assert.equal(got.a.length, 1);

    const p = await a.presence(room);
    assert.equal(p.users, 2);
    await a.ping();

    await assert.rejects(a.subscribe("bad channel"), { code: "invalid_channel" });
    await assert.rejects(a.broadcast("x"), { code: "forbidden" });
    await a.unsubscribe(room);
    await b.publish(room, "after");
    await until(() => got.b.length === 3, 3000, "b's own message");
    assert.equal(got.a.length, 1, "no message after unsubscribe");
    a.close();
    b.close();
  });
}

for (const transport of ["websocket", "sse"]) {
  test(`over ${transport}: with {echo: false} the sending connection does not get its own message`, { skip }, async (t) => {
    const user = `echoer-${transport}`;
    const sender = new HeraldClient({ ...opts, user, transports: [transport] });
    const other = new HeraldClient({ ...opts, user, transports: [transport] });
    t.after(() => {
      sender.close();
      other.close();
    });
    const got = { sender: [], other: [] };
    sender.on("message", (m) => got.sender.push(m.id));
    other.on("message", (m) => got.other.push(m.id));
    await sender.connect();
    await other.connect();
    const room = `room:echo-${transport}`;
    await sender.subscribe(room);
    await other.subscribe(room);

    // The sender's messages come in order: were the first delivered to
    // it, it would come before the second, sent without the option.
    const quiet = await sender.publish(room, "quiet", { echo: false });
    const quietDirect = await sender.send(user, "quiet", { echo: false });
    const loud = await sender.publish(room, "loud");
    await until(() => got.other.length === 3 && got.sender.length >= 1, 3000, "the messages");
    assert.deepEqual(got.other, [quiet.id, quietDirect.id, loud.id]);
    assert.deepEqual(got.sender, [loud.id]);

    await assert.rejects(sender.publish(room, "x", { echo: "no" }), { code: "invalid_field" });
  });
}

test("reconnects and resubscribes when the server asks, stays away when kicked", { skip }, async () => {
  const c = new HeraldClient({ ...opts, user: "bouncer" });
  const got = [];
  c.on("message", (m) => got.push(m));
  await c.connect();
  await c.subscribe("room:bounce");
  await api("/v1/users/bouncer/disconnect", { reconnect: true });
  await until(() => c.state === "reconnecting", 3000, "reconnecting");
  await until(() => c.state === "connected", 3000, "connected again");
  for (let i = 0; i < 100; i++) {
    const p = await api("/v1/presence/channels/room:bounce");
    if (p.users === 1) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  await api("/v1/publish", { channel: "room:bounce", data: "back" });
  await until(() => got.length === 1, 3000, "a message after the reconnect");

  await api("/v1/users/bouncer/disconnect", { reason: "bye" });
  await until(() => c.state === "closed", 3000, "closed");
  await new Promise((r) => setTimeout(r, 300));
  assert.equal((await api("/v1/presence/users/bouncer")).online, false);
});

test("connects with a token from getToken, asked again on each reconnect", { skip: skip || (!process.env.HERALD_TOKEN && "no HERALD_TOKEN") }, async () => {
  let asked = 0;
  const c = new HeraldClient({
    ...opts,
    getToken: async () => {
      asked++;
      return process.env.HERALD_TOKEN;
    },
  });
  const info = await c.connect();
  assert.equal(info.user, "tok");
  await api("/v1/users/tok/disconnect", { reconnect: true });
  await until(() => asked === 2 && c.state === "connected", 3000, "a reconnect with a fresh token");
  c.close();
});

test("recovers a channel's history after a reconnect, without gaps or duplicates", { skip }, async () => {
  const c = new HeraldClient({ ...opts, user: "recoverer" });
  const got = [];
  const subscribed = [];
  c.on("subscribed", (s) => subscribed.push(s));
  await c.connect();
  await c.subscribe("chat:rec", (m) => got.push(m.data));
  await api("/v1/publish", { channel: "chat:rec", data: 1 });
  await until(() => got.length === 1, 3000, "the first message");
  const before = c.position("chat:rec");
  assert.equal(typeof before.offset, "number");
  assert.equal(typeof before.epoch, "string");

  // Kicked with reconnect, then two messages while it is away.
  await api("/v1/users/recoverer/disconnect", { reconnect: true });
  await until(() => c.state !== "connected", 3000, "disconnected");
  await api("/v1/publish", { channel: "chat:rec", data: 2 });
  await api("/v1/publish", { channel: "chat:rec", data: 3 });
  await until(() => got.length === 3, 5000, "the missed messages");
  assert.deepEqual(got, [1, 2, 3]);
  const last = subscribed.at(-1);
  assert.equal(last.recovery, true);
  assert.equal(last.recovered, true);
  assert.equal(c.position("chat:rec").offset, before.offset + 2);
  c.close();
});

test("with a device, gets direct messages sent while away, once, and acknowledges them", { skip }, async () => {
  const opts2 = { ...opts, user: "inboxer", device: "laptop", ackDelay: 10 };
  const first = new HeraldClient(opts2);
  await first.connect(); // the server now knows the device
  first.close();
  for (let i = 0; i < 50; i++) {
    if (!(await api("/v1/presence/users/inboxer")).online) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  await api("/v1/send", { to: "inboxer", data: "while away 1" });
  await api("/v1/send", { to: "inboxer", data: "while away 2" });

  const c = new HeraldClient(opts2);
  const got = [];
  c.on("message", (m) => got.push(m.data));
  const info = await c.connect();
  assert.equal(info.device, "laptop");
  await until(() => got.length === 2, 3000, "the inbox");
  assert.deepEqual(got, ["while away 1", "while away 2"]);
  await new Promise((r) => setTimeout(r, 100)); // the ack goes out
  c.close();

  // Acknowledged: a new connection of the device gets nothing again.
  const again = new HeraldClient(opts2);
  const info2 = await again.connect();
  assert.equal(info2.inbox.pending, 0);
  again.close();
});
