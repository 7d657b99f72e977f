// Test doubles for the client's unit tests: a scripted WebSocket, and an
// EventSource for Node.js (which has none) built on fetch.

/** connectResult is what a server answers to connect. */
export const connectResult = (user = "u", ping = 25, pong = 10) => ({
  client: "1",
  user,
  ping_interval: ping,
  pong_timeout: pong,
  limits: { max_frame_bytes: 65536, ops_per_second: 50, ops_burst: 100, publish_per_second: 20, publish_burst: 40, max_subscriptions: 128 },
});

/**
 * scriptedWebSocket returns a WebSocket class whose instances open at once
 * and hand every frame the client sends to onFrame(socket, frame). Every
 * socket made is pushed on sockets.
 */
export function scriptedWebSocket(onFrame, sockets = []) {
  return class FakeWebSocket {
    constructor(url) {
      this.url = url;
      this.readyState = 0;
      this.sent = [];
      sockets.push(this);
      setTimeout(() => {
        if (this.readyState !== 0) return;
        this.readyState = 1;
        this.onopen?.();
      }, 0);
    }
    send(text) {
      const f = JSON.parse(text);
      this.sent.push(f);
      onFrame(this, f);
    }
    /** push delivers a server frame to the client. */
    push(frame) {
      if (this.readyState === 1) this.onmessage?.({ data: JSON.stringify(frame) });
    }
    /** reply answers the client frame f with result. */
    reply(f, result) {
      this.push({ type: "reply", id: f.id, ...(result === undefined ? {} : { result }) });
    }
    /** drop ends the connection from the server's side. */
    drop(code = 1006, reason = "") {
      if (this.readyState === 3) return;
      this.readyState = 3;
      this.onclose?.({ code, reason });
    }
    close() {
      if (this.readyState === 3) return;
      this.readyState = 3;
      setTimeout(() => this.onclose?.({ code: 1000, reason: "" }), 0);
    }
  };
}

/** FetchEventSource is a minimal EventSource over fetch, for Node.js. */
export class FetchEventSource {
  constructor(url) {
    this.url = url;
    this.listeners = new Map();
    this.abort = new AbortController();
    this.run().catch(() => this.fail());
  }
  addEventListener(type, fn) {
    this.listeners.set(type, fn);
  }
  async run() {
    const resp = await fetch(this.url, { signal: this.abort.signal, headers: { Accept: "text/event-stream" } });
    if (!resp.ok) return this.fail();
    const decoder = new TextDecoder();
    let buf = "";
    for await (const chunk of resp.body) {
      buf += decoder.decode(chunk, { stream: true });
      let i;
      while ((i = buf.indexOf("\n\n")) >= 0) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        let type = "message";
        let data = "";
        for (const line of block.split("\n")) {
          if (line.startsWith("event: ")) type = line.slice(7);
          else if (line.startsWith("data: ")) data += line.slice(6);
        }
        const ev = { data };
        if (type === "message") this.onmessage?.(ev);
        else this.listeners.get(type)?.(ev);
      }
    }
    this.fail();
  }
  fail() {
    if (this.closed) return;
    this.onerror?.();
  }
  close() {
    this.closed = true;
    this.abort.abort();
  }
}

/** until polls cond every 10 ms until it is true or ms pass. */
export async function until(cond, ms = 3000, what = "condition") {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
