// The demo chat: rooms, who is online in each, private messages. It uses
// nothing but herald.js, the Herald JavaScript client, and shows every
// message as text (textContent), never as HTML.
import { HeraldClient } from "/herald.js";

const $ = (id) => document.getElementById(id);
const PRESENCE_EVERY = 5000; // ms between presence refreshes of the open room

// What this browser remembers between visits (localStorage): its device
// id, so that private messages sent while it was away wait in its inbox;
// the rooms it was in; and where each room's history stood, so that on a
// server that keeps the rooms' history the messages missed come back.
const saved = {
  get(key, fallback) {
    try {
      return JSON.parse(localStorage.getItem("herald-demo." + key)) ?? fallback;
    } catch {
      return fallback;
    }
  },
  set(key, value) {
    try {
      localStorage.setItem("herald-demo." + key, JSON.stringify(value));
    } catch {
      // storage full or refused: the demo works without it
    }
  },
};

function deviceID() {
  let id = saved.get("device", "");
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(id)) {
    id = "browser-" + Math.random().toString(36).slice(2, 12);
    saved.set("device", id);
  }
  return id;
}

function rememberRooms() {
  saved.set(
    "rooms." + chat.me,
    [...chat.convs.keys()].filter((k) => !k.startsWith("@")),
  );
}

function rememberPosition(channel) {
  const p = chat.client?.position(channel);
  if (p) saved.set(`position.${chat.me}.${channel}`, p);
}

const chat = {
  client: null,
  me: "",
  convs: new Map(), // key ("room:NAME" or "@user") -> conversation
  current: null, // the key shown
  connectedOnce: false,
};

function conversation(key) {
  let c = chat.convs.get(key);
  if (!c) {
    const dm = key.startsWith("@");
    c = { key, dm, title: dm ? "private: " + key.slice(1) : "#" + key.slice("room:".length), lines: [], unread: 0 };
    chat.convs.set(key, c);
    renderRooms();
  }
  return c;
}

function timeOf(ts) {
  const d = ts ? new Date(ts) : new Date();
  return d.toTimeString().slice(0, 5);
}

function textOf(data) {
  if (data && typeof data === "object" && typeof data.text === "string") return data.text;
  return JSON.stringify(data);
}

function addLine(key, line) {
  const c = conversation(key);
  c.lines.push(line);
  if (c.lines.length > 500) c.lines.shift();
  if (chat.current === key) appendLine(line);
  else {
    c.unread++;
    renderRooms();
  }
}

function appendLine(line) {
  const list = $("messages");
  const li = document.createElement("li");
  const time = document.createElement("span");
  time.className = "time";
  time.textContent = timeOf(line.ts);
  li.append(time);
  if (line.notice) {
    const n = document.createElement("span");
    n.className = "notice";
    n.textContent = line.notice;
    li.append(n);
  } else {
    const from = document.createElement("span");
    from.className = "from";
    from.textContent = line.from || "server";
    const text = document.createElement("span");
    text.className = "text";
    text.textContent = line.text;
    li.append(from, text);
  }
  list.append(li);
  list.scrollTop = list.scrollHeight;
}

function show(key) {
  chat.current = key;
  const c = conversation(key);
  c.unread = 0;
  $("title").textContent = c.title;
  $("messages").replaceChildren();
  c.lines.forEach(appendLine);
  renderRooms();
  refreshPresence();
  $("message-input").focus();
}

function renderRooms() {
  const ul = $("rooms");
  ul.replaceChildren();
  for (const c of chat.convs.values()) {
    const li = document.createElement("li");
    li.dataset.key = c.key;
    if (c.key === chat.current) li.className = "active";
    const name = document.createElement("span");
    name.textContent = c.title;
    li.append(name);
    if (c.unread > 0) {
      const badge = document.createElement("span");
      badge.className = "unread";
      badge.textContent = String(c.unread);
      li.append(badge);
    }
    li.addEventListener("click", () => show(c.key));
    ul.append(li);
  }
}

function renderMembers(members) {
  const ul = $("members");
  ul.replaceChildren();
  for (const m of members) {
    const li = document.createElement("li");
    li.textContent = m.user + (m.connections > 1 ? ` (${m.connections})` : "");
    li.dataset.user = m.user;
    if (m.user === chat.me) li.className = "me";
    else li.addEventListener("click", () => show("@" + m.user));
    ul.append(li);
  }
}

async function refreshPresence() {
  const key = chat.current;
  if (!key || key.startsWith("@") || chat.client?.state !== "connected") {
    if (key?.startsWith("@")) renderMembers([]);
    return;
  }
  try {
    const p = await chat.client.presence(key);
    if (chat.current === key) renderMembers(p.members);
  } catch {
    // shown again on the next refresh
  }
}

function onMessage(m) {
  if (m.kind === "channel") {
    if (!chat.convs.has(m.channel)) return;
    const d = m.data || {};
    if (d.type === "join" || d.type === "leave") {
      rememberPosition(m.channel);
      if (m.from !== chat.me) addLine(m.channel, { ts: m.ts, notice: `${m.from} ${d.type === "join" ? "joined" : "left"}` });
      if (chat.current === m.channel) refreshPresence();
      return;
    }
    addLine(m.channel, { ts: m.ts, from: m.from, text: textOf(m.data) });
    rememberPosition(m.channel);
  } else if (m.kind === "direct") {
    const peer = m.from || "server";
    addLine("@" + peer, { ts: m.ts, from: peer, text: textOf(m.data) });
  } else {
    addLine(chat.current || "@server", { ts: m.ts, from: m.from || "server", text: "(to everyone) " + textOf(m.data) });
  }
}

async function join(room) {
  const key = "room:" + room;
  conversation(key);
  rememberRooms();
  show(key);
  try {
    await chat.client.subscribe(key, null, saved.get(`position.${chat.me}.${key}`, undefined));
    rememberPosition(key);
    await chat.client.publish(key, { type: "join" });
  } catch (err) {
    addLine(key, { notice: "could not join: " + err.message });
  }
  refreshPresence();
}

async function leave() {
  const key = chat.current;
  if (!key) return;
  chat.convs.delete(key);
  rememberRooms();
  if (!key.startsWith("@")) {
    try {
      await chat.client.publish(key, { type: "leave" });
      await chat.client.unsubscribe(key);
    } catch {
      // the server forgets subscriptions with the connection anyway
    }
  }
  chat.current = null;
  const next = chat.convs.keys().next().value;
  if (next) show(next);
  else {
    $("title").textContent = "";
    $("messages").replaceChildren();
    renderMembers([]);
    renderRooms();
  }
}

async function say(text) {
  const key = chat.current;
  if (!key) return;
  try {
    if (key.startsWith("@")) {
      await chat.client.send(key.slice(1), { type: "chat", text });
      addLine(key, { from: chat.me, text });
    } else {
      await chat.client.publish(key, { type: "chat", text });
    }
  } catch (err) {
    addLine(key, { notice: "not sent: " + err.message });
  }
}

function setStatus(text, state) {
  const s = $("status");
  s.textContent = text;
  s.dataset.state = state;
}

function start(name, token) {
  const options = token ? { token } : { user: name };
  options.device = deviceID();
  saved.set("name", name);
  const client = new HeraldClient(options);
  chat.client = client;
  client.on("state", (s) => setStatus(s === "connected" ? `${chat.me} · ${client.info.transport}` : s, s));
  client.on("connected", (info) => {
    chat.me = info.user;
    setStatus(`${info.user} · ${info.transport}`, "connected");
    if (chat.connectedOnce && chat.current) addLine(chat.current, { notice: "reconnected" });
    chat.connectedOnce = true;
    refreshPresence();
  });
  client.on("disconnected", (d) => {
    if (chat.current) addLine(chat.current, { notice: `disconnected (${d.reason || d.code})${d.reconnect ? ", reconnecting" : ""}` });
  });
  client.on("message", onMessage);
  client.on("subscribed", (s) => {
    if (!chat.convs.has(s.channel)) return;
    if (s.recovery && s.recovered && s.missed > 0) {
      addLine(s.channel, { notice: `${s.missed} message${s.missed === 1 ? "" : "s"} you missed while away:` });
    } else if (s.recovery && !s.recovered) {
      addLine(s.channel, { notice: "some messages of this room were missed and are no longer kept" });
    }
  });
  client.connect().then(
    () => {
      $("login").classList.add("hidden");
      $("chat").classList.remove("hidden");
      const rooms = saved.get("rooms." + chat.me, []);
      if (rooms.length === 0) join("lobby");
      else for (const key of rooms) join(key.slice("room:".length));
    },
    (err) => setStatus("refused: " + err.message, "closed"),
  );
  setInterval(refreshPresence, PRESENCE_EVERY);
}

$("name").value = saved.get("name", "");
$("login-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  start($("name").value.trim(), $("token").value.trim());
});
$("join-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const room = $("room-input").value.trim();
  if (room) join(room);
  $("room-input").value = "";
});
$("send-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const text = $("message-input").value;
  if (text.trim()) say(text);
  $("message-input").value = "";
});
$("leave-button").addEventListener("click", leave);
addEventListener("pagehide", () => chat.client?.close());
// A page restored from the back-forward cache has a closed client: start
// afresh (the browser remembers the name and the rooms).
addEventListener("pageshow", (ev) => {
  if (ev.persisted) location.reload();
});
