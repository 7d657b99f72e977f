// Compiled, never run, by tsc --noEmit (go test ./web runs it when tsc is
// installed): the declarations in herald.d.ts describe herald.js as an
// application uses it.
import { HeraldClient, HeraldError, escapeHTML, type Message, type Presence } from "../herald.js";

async function example(): Promise<void> {
  const c = new HeraldClient({ url: "http://127.0.0.1:7600", getToken: async () => "token", device: "phone-1" });
  const off = c.on("message", (m: Message) => {
    if (m.kind === "channel" && m.channel !== undefined) console.log(m.channel, m.offset);
  });
  c.on("disconnected", (d) => console.log(d.code, d.reason, d.reconnect));
  c.on("state", (s) => console.log(s === "connected"));
  const info = await c.connect();
  console.log(info.user, info.transport, info.limits.max_frame_bytes);
  await c.subscribe("room:1", (m) => console.log(m.data), { offset: 3, epoch: "e" });
  const pos = c.position("room:1");
  if (pos) console.log(pos.offset + 1, pos.epoch);
  const { id } = await c.publish("room:1", { text: "hi", n: [1, 2] });
  await c.publish("room:1", "mine", { echo: false });
  await c.send("bob", "psst", { echo: true });
  await c.broadcast(true, {});
  const p: Presence = await c.presence("room:1");
  console.log(id, p.members.map((m) => m.user), escapeHTML("<b>"));
  try {
    await c.ping();
  } catch (err) {
    if (err instanceof HeraldError) console.log(err.code);
  }
  off();
  c.close();
}
void example;
