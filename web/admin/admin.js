// The operator dashboard. It reads the server API under /v1 with the API
// key the operator enters, which it keeps in this tab's sessionStorage
// (never in a URL), and shows everything as text (textContent).

const STORE = "herald.apiKey";
const POLL = 1000; // ms between readings
const POINTS = 60; // readings each chart shows
const $ = (id) => document.getElementById(id);

let key = sessionStorage.getItem(STORE);
let timer = null;
let last = null; // the previous overview, for rates
const series = { in: [], out: [] };

class APIError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(path, body) {
  const init = { headers: { Authorization: "Bearer " + key }, cache: "no-store" };
  if (body !== undefined) {
    init.method = "POST";
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(path, init);
  let out = null;
  try {
    out = await resp.json();
  } catch {
    // not JSON: the status says enough
  }
  if (!resp.ok) throw new APIError(resp.status, out?.error?.code || "http_" + resp.status, out?.error?.message || resp.statusText);
  return out;
}

function text(id, value) {
  $(id).textContent = value;
}

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return (i === 0 ? n : n.toFixed(1)) + " " + units[i];
}

function duration(s) {
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d) return `${d}d ${h}h`;
  if (h) return `${h}h ${m}m`;
  return `${m}m ${Math.floor(s % 60)}s`;
}

function rows(tbodyId, items, cells, onClick) {
  const tb = $(tbodyId);
  tb.replaceChildren();
  for (const item of items) {
    const tr = document.createElement("tr");
    for (const [value, cls] of cells(item)) {
      const td = document.createElement("td");
      td.textContent = value;
      if (cls) td.className = cls;
      tr.append(td);
    }
    if (onClick) {
      tr.className = "link";
      tr.addEventListener("click", () => onClick(item));
    }
    tb.append(tr);
  }
}

// draw plots values as a filled line on a canvas, scaled to its largest.
function draw(canvas, values, color) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || canvas.width;
  const h = canvas.clientHeight || canvas.height;
  canvas.width = w * dpr;
  canvas.height = h * dpr;
  const g = canvas.getContext("2d");
  g.scale(dpr, dpr);
  g.clearRect(0, 0, w, h);
  const top = Math.max(1, ...values);
  const pad = 18;
  g.strokeStyle = "#e4e7eb";
  g.fillStyle = "#677380";
  g.font = "11px system-ui, sans-serif";
  for (const f of [0, 0.5, 1]) {
    const y = pad + (h - 2 * pad) * (1 - f);
    g.beginPath();
    g.moveTo(0, y);
    g.lineTo(w, y);
    g.stroke();
    g.fillText(String(Math.round(top * f)), 2, y - 2);
  }
  if (values.length < 2) return;
  const x = (i) => (w * i) / (POINTS - 1);
  const y = (v) => pad + (h - 2 * pad) * (1 - v / top);
  const first = POINTS - values.length;
  g.beginPath();
  values.forEach((v, i) => (i === 0 ? g.moveTo(x(first + i), y(v)) : g.lineTo(x(first + i), y(v))));
  g.strokeStyle = color;
  g.lineWidth = 2;
  g.stroke();
  g.lineTo(x(first + values.length - 1), h - pad);
  g.lineTo(x(first), h - pad);
  g.closePath();
  g.globalAlpha = 0.15;
  g.fillStyle = color;
  g.fill();
  g.globalAlpha = 1;
}

function push(list, v) {
  list.push(v);
  if (list.length > POINTS) list.shift();
}

function showOverview(o) {
  text("connections", String(o.connections));
  text(
    "transports",
    Object.entries(o.transports)
      .filter(([, n]) => n > 0)
      .map(([t, n]) => `${t} ${n}`)
      .join(" · ") || "none",
  );
  text("users", String(o.users));
  text("channels", String(o.channels));
  text("subscriptions", `${o.subscriptions} subscription${o.subscriptions === 1 ? "" : "s"}`);
  text("memory", bytes(o.memory.heap));
  text("memory-total", `heap; ${bytes(o.memory.total)} mapped`);
  text("goroutines", String(o.goroutines));
  text("uptime", duration(o.uptime_seconds));
  let nodes = o.nodes.length === 1 ? `1 node: ${o.nodes[0].id}` : `${o.nodes.length} nodes`;
  if (o.redis) {
    // A node of a cluster: its link to Redis.
    nodes += o.redis.up ? ` · Redis up, ${o.redis.rtt_ms.toFixed(1)} ms` : ` · Redis DOWN (${o.redis.lost} subscriptions lost)`;
  }
  text("nodes", nodes);
  text("node", o.nodes.find((n) => n.self)?.id || "");
  text("updated", "updated " + new Date(o.time).toLocaleTimeString());
  if (last) {
    const dt = (o.time - last.time) / 1000;
    if (dt > 0) {
      push(series.in, Math.max(0, (o.messages - last.messages) / dt));
      push(series.out, Math.max(0, (o.deliveries - last.deliveries) / dt));
    }
  }
  last = o;
  const fmt = (l) => (l.length ? l[l.length - 1].toFixed(l[l.length - 1] < 10 ? 1 : 0) + "/s" : "");
  text("rate-in", fmt(series.in));
  text("rate-out", fmt(series.out));
  draw($("chart-in"), series.in, "#2f6fde");
  draw($("chart-out"), series.out, "#16a085");
  const reasons = Object.entries(o.disconnects)
    .filter(([, n]) => n > 0)
    .sort((a, b) => b[1] - a[1]);
  rows("disconnects", reasons, ([r, n]) => [[r], [String(n), "num"]]);
  showHooks(o.hooks);
}

// showHooks lists each hook, its counters when configured, "off" when not.
function showHooks(h) {
  const cells = (name, hook, fields) => {
    if (!hook.configured) return [[name], ["off", "num muted"], ...fields.slice(1).map(() => [""])];
    return [[name], ...fields.map((f) => [String(hook[f]), f === "dropped" && hook[f] > 0 ? "num error" : "num"])];
  };
  const webhooks = ["queued", "posted", "failed", "retried", "dropped"];
  rows("webhooks", [["events", h.events], ["receipts", h.receipts]], ([name, hook]) => cells(name, hook, webhooks));
  const auth = ["admitted", "refused", "failed", "busy", "in_flight"];
  rows("authhooks", [["connect", h.connect], ["subscribe", h.subscribe]], ([name, hook]) => cells(name, hook, auth));
}

async function poll() {
  try {
    const [o, ch, us] = await Promise.all([api("/v1/overview"), api("/v1/channels?limit=10"), api("/v1/users?limit=50")]);
    showOverview(o);
    rows("busiest", ch.busiest, (c) => [[c.channel], [String(c.connections), "num"]]);
    rows("online", us.list, (u) => [[u.user], [String(u.connections), "num"]], (u) => lookup(u.user));
    text("online-more", us.users > us.list.length ? `and ${us.users - us.list.length} more` : "");
  } catch (err) {
    if (err.status === 401) return logout("The key is no longer valid: " + err.message);
    text("updated", "cannot reach the server: " + err.message);
  }
}

async function lookup(user) {
  $("lookup-user").value = user;
  text("lookup-note", "");
  try {
    const u = await api("/v1/users/" + encodeURIComponent(user));
    $("lookup-result").classList.remove("hidden");
    $("lookup-result").dataset.user = u.user;
    text("lookup-name", u.user);
    text("lookup-online", u.online ? `online on ${u.connections.length} connection${u.connections.length === 1 ? "" : "s"}` : "offline");
    const info = $("lookup-info");
    info.classList.toggle("hidden", u.info === undefined);
    info.textContent = u.info === undefined ? "" : JSON.stringify(u.info, null, 2);
    rows("lookup-conns", u.connections, (c) => [
      [c.client],
      [c.transport],
      [c.remote],
      [new Date(c.connected_at).toLocaleString()],
      [c.channels.join(", ") || "none"],
    ]);
  } catch (err) {
    $("lookup-result").classList.add("hidden");
    text("lookup-note", err.message);
  }
}

async function sendTest(ev) {
  ev.preventDefault();
  const user = $("lookup-result").dataset.user;
  try {
    const r = await api("/v1/send", { to: user, data: { text: $("test-text").value } });
    text("lookup-note", `sent to ${user}: message ${r.id}`);
  } catch (err) {
    text("lookup-note", "not sent: " + err.message);
  }
}

let kickArmed = null;
async function kick() {
  const user = $("lookup-result").dataset.user;
  const button = $("kick-button");
  if (kickArmed !== user) {
    // Two clicks: a disconnect is not undone.
    kickArmed = user;
    button.textContent = `Click again to disconnect ${user}`;
    setTimeout(() => {
      kickArmed = null;
      button.textContent = "Disconnect user";
    }, 4000);
    return;
  }
  kickArmed = null;
  button.textContent = "Disconnect user";
  try {
    const r = await api(`/v1/users/${encodeURIComponent(user)}/disconnect`, { reason: "disconnected by an operator" });
    text("lookup-note", `disconnected ${r.disconnected} connection${r.disconnected === 1 ? "" : "s"} of ${user}`);
    const note = $("lookup-note").textContent;
    await lookup(user);
    text("lookup-note", note);
  } catch (err) {
    text("lookup-note", "not disconnected: " + err.message);
  }
}

function showBoard() {
  $("login").classList.add("hidden");
  $("board").classList.remove("hidden");
  $("logout").classList.remove("hidden");
  poll();
  timer = setInterval(poll, POLL);
}

function logout(message) {
  clearInterval(timer);
  timer = null;
  key = null;
  last = null;
  series.in.length = series.out.length = 0;
  sessionStorage.removeItem(STORE);
  $("board").classList.add("hidden");
  $("logout").classList.add("hidden");
  $("login").classList.remove("hidden");
  text("login-error", typeof message === "string" ? message : "");
}

$("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  key = $("key").value;
  text("login-error", "");
  try {
    await api("/v1/overview");
  } catch (err) {
    key = null;
    text("login-error", err.status === 401 ? "That key is not valid." : "Cannot reach the server: " + err.message);
    return;
  }
  sessionStorage.setItem(STORE, key);
  $("key").value = "";
  showBoard();
});
$("logout").addEventListener("click", () => logout());
$("lookup-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const u = $("lookup-user").value.trim();
  if (u) lookup(u);
});
$("test-form").addEventListener("submit", sendTest);
$("kick-button").addEventListener("click", kick);

if (key) showBoard();
