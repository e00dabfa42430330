// AuroraChat web client: REST for auth and rooms, one WebSocket for chat.
// User text is only ever set with textContent, never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
// The access token lives in memory only; the session survives a reload through the
// refresh cookie (HttpOnly: this script never sees it).

const state = {
  session: null,            // {token, user:{id,name}, expires_at}
  refreshing: null,         // the refresh in flight, shared by every caller
  refreshTimer: null,
  ws: null,
  connected: false,
  backoff: 0,               // reconnect attempt number
  reconnectTimer: null,
  rooms: new Map(),         // name -> {name,title,online,managed}
  joined: new Map(),        // name -> room view state, kept across reconnects
  current: null,
  refs: 0,
  rateTimer: null,
};

function roomState(name) {
  let r = state.joined.get(name);
  if (!r) {
    r = { name, messages: [], pending: new Map(), rejected: [], pausedUntil: 0, resumeTimer: null, members: new Map(), lastSeq: 0, oldestSeq: null,
          noOlder: false, typing: new Map(), unread: 0, joined: false };
    state.joined.set(name, r);
  }
  return r;
}

// ---------- REST ----------
async function request(method, path, body) {
  const headers = { "Content-Type": "application/json" };
  if (state.session) headers.Authorization = "Bearer " + state.session.token;
  const res = await fetch(path, { method, headers, body: body ? JSON.stringify(body) : undefined });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) {
    const err = new Error((data.error && data.error.message) || res.statusText);
    err.status = res.status;
    err.code = data.error && data.error.code;
    throw err;
  }
  return data;
}

// A call that needs the access token: on 401 it refreshes the session once and retries.
async function api(method, path, body) {
  try {
    return await request(method, path, body);
  } catch (e) {
    if (e.status !== 401 || !state.session) throw e;
    await refreshSession();
    return request(method, path, body);
  }
}

// ---------- session ----------
function signedIn(s) {
  state.session = s;
  clearTimeout(state.refreshTimer);
  // Renew a minute before expiry (or at 80% of a short lifetime), so nothing sees it lapse.
  const left = s.expires_at * 1000 - Date.now();
  const delay = Math.max(1000, left > 300000 ? left - 60000 : left * 0.8);
  state.refreshTimer = setTimeout(() => refreshSession().catch(() => {}), delay);
}

// Spends the refresh cookie for a new access token (one refresh at a time, in every tab of
// this browser where the Web Locks API exists: two tabs spending one cookie would look
// like a replay and end the session). A refused refresh ends the session here.
function refreshSession() {
  if (state.refreshing) return state.refreshing;
  const run = async () => {
    const res = await fetch("/api/auth/refresh", { method: "POST" });
    const data = await res.json().catch(() => ({}));
    if (res.status === 401) {
      const err = new Error("session ended");
      err.status = 401;
      throw err;
    }
    if (!res.ok) throw new Error((data.error && data.error.message) || res.statusText);
    signedIn(data);
    // A live socket takes the new token too (it would close with 4001 at the old expiry).
    send({ type: "auth", token: data.token, ref: nextRef() });
    return data;
  };
  const locked = navigator.locks ? () => navigator.locks.request("aurora-refresh", run) : run;
  state.refreshing = locked()
    .catch((e) => {
      if (e.status === 401 && state.session) endSession("Your session ended; please log in again.");
      throw e;
    })
    .finally(() => { state.refreshing = null; });
  return state.refreshing;
}

async function authenticate(kind) {
  $("auth-error").textContent = "";
  const username = $("username").value.trim();
  const password = $("password").value;
  try {
    const s = await request("POST", "/api/auth/" + kind, { username, password });
    signedIn(s);
    start();
  } catch (e) {
    $("auth-error").textContent = e.message;
  }
}

// Back to the login form, with nothing of the old session left running.
function endSession(message) {
  state.session = null;
  clearTimeout(state.refreshTimer);
  state.joined.clear();
  state.current = null;
  if (state.ws) { state.ws.onclose = null; state.ws.close(1000); state.ws = null; }
  clearTimeout(state.reconnectTimer);
  showAuth(message);
}

async function logout() {
  // Ends the session on the server (every gateway), and clears the cookie.
  await request("POST", "/api/auth/logout").catch(() => {});
  endSession();
}

function showAuth(message) {
  $("chat-view").hidden = true;
  $("auth-view").hidden = false;
  $("auth-error").textContent = message || "";
}

async function loadRooms() {
  try {
    // The list comes a page at a time; follow `next` (bounded, in case of a huge server).
    const rooms = [];
    let after = "";
    for (let page = 0; page < 20; page++) {
      const data = await api("GET", "/api/rooms?limit=500" + (after ? "&after=" + encodeURIComponent(after) : ""));
      rooms.push(...data.rooms);
      if (!data.next) break;
      after = data.next;
    }
    state.rooms = new Map(rooms.map((r) => [r.name, r]));
    renderRooms();
    if (!state.current && rooms.length) selectRoom(rooms[0].name);
  } catch (e) {
    if (e.status === 401 && state.session) endSession("Your session ended; please log in again.");
  }
}

async function createRoom(ev) {
  ev.preventDefault();
  $("room-error").textContent = "";
  const name = $("new-room-name").value.trim();
  if (!name) return;
  try {
    const room = await api("POST", "/api/rooms", { name });
    state.rooms.set(room.name, room);
    $("new-room-name").value = "";
    renderRooms();
    selectRoom(room.name);
  } catch (e) {
    $("room-error").textContent = e.message;
  }
}

// ---------- WebSocket ----------
function setStatus(text, cls) {
  const el = $("conn-status");
  el.textContent = text;
  el.className = "status " + cls;
}

// Opens the socket with a single-use ticket: no token ever appears in a URL.
async function connect() {
  clearTimeout(state.reconnectTimer);
  if (!state.session) return;
  setStatus("connecting", "connecting");
  let ticket;
  try {
    ticket = (await api("POST", "/api/ws-ticket")).ticket;
  } catch (e) {
    if (e.status === 401) return; // the session ended: refreshSession showed the login form
    scheduleReconnect();
    return;
  }
  if (!state.session || state.ws) return;
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  // The ticket travels as a subprotocol: it is in no URL, so in no access log.
  const ws = new WebSocket(proto + "//" + location.host + "/ws", ["aurora", "aurora.ticket." + ticket]);
  state.ws = ws;
  setStatus("connecting", "connecting");
  ws.onmessage = (ev) => {
    let frame;
    try { frame = JSON.parse(ev.data); } catch { return; }
    handle(frame);
  };
  ws.onclose = (ev) => {
    state.connected = false;
    state.ws = null;
    for (const r of state.joined.values()) r.joined = false;
    updateComposer();
    if (!state.session) return;
    if (ev.code === 4001) {
      // The access token lapsed (a sleeping laptop): renew it, then come straight back.
      refreshSession().then(connect, () => {});
      return;
    }
    // A draining gateway names a window; coming back at a random moment in it spreads
    // its clients over the remaining gateways instead of a burst.
    let hint = null;
    if (ev.code === 1001) {
      try { hint = JSON.parse(ev.reason).reconnect_within_ms; } catch { /* no hint */ }
    }
    scheduleReconnect(hint);
  };
}

function scheduleReconnect(windowMs) {
  // Within the server's drain window if it named one (uniform over it); else "equal
  // jitter": half of an exponentially growing cap (30 s at most) plus a random half.
  const cap = Math.min(30000, 500 * 2 ** state.backoff);
  const delay = typeof windowMs === "number" && windowMs > 0
    ? Math.round(Math.random() * windowMs)
    : Math.round(cap / 2 + Math.random() * cap / 2);
  state.backoff = Math.min(state.backoff + 1, 10);
  setStatus("reconnecting in " + Math.ceil(delay / 1000) + "s", "offline");
  state.reconnectTimer = setTimeout(connect, delay);
}

function send(frame) {
  if (!state.ws || state.ws.readyState !== WebSocket.OPEN) return false;
  state.ws.send(JSON.stringify(frame));
  return true;
}

function nextRef() { state.refs += 1; return "r" + state.refs; }

function joinRoom(name) {
  const r = roomState(name);
  // Resume with `since` when we already hold messages of this room.
  const frame = { type: "join", room: name, ref: nextRef() };
  if (r.lastSeq > 0) frame.since = r.lastSeq;
  send(frame);
}

function handle(f) {
  switch (f.type) {
    case "hello":
      state.connected = true;
      state.backoff = 0;
      setStatus("online", "online");
      for (const name of state.joined.keys()) joinRoom(name);
      if (state.current && !state.joined.has(state.current)) joinRoom(state.current);
      break;
    case "joined": onJoined(f); break;
    case "message": onMessage(f); break;
    case "ack": onAck(f); break;
    case "history": onHistory(f); break;
    case "presence": onPresence(f); break;
    case "typing": onTyping(f); break;
    case "error": onError(f); break;
    case "left": onLeft(f); break;
    default: break;
  }
}

function onJoined(f) {
  const r = roomState(f.room);
  r.joined = true;
  r.members = new Map(f.members.map((m) => [m.id, m]));
  for (const m of f.history) addMessage(r, m);
  if (r.oldestSeq === null && f.history.length === 0) r.noOlder = true;
  r.lastSeq = Math.max(r.lastSeq, f.last_seq);
  // The outbox resumes in typed order; a re-sent nonce is deduplicated by the server.
  for (const p of r.pending.values()) p.inflight = false;
  pump(r);
  const room = state.rooms.get(f.room);
  if (room) room.online = r.members.size;
  renderRooms();
  if (state.current === f.room) renderRoom();
  updateComposer();
}

function addMessage(r, m) {
  if (r.messages.some((x) => x.seq === m.seq)) return false;
  r.messages.push(m);
  r.messages.sort((a, b) => a.seq - b.seq);
  r.lastSeq = Math.max(r.lastSeq, m.seq);
  r.oldestSeq = r.messages[0].seq;
  if (r.oldestSeq <= 1) r.noOlder = true;
  if (m.nonce && m.user.id === state.session.user.id) r.pending.delete(m.nonce);
  return true;
}

function onMessage(m) {
  const r = roomState(m.room);
  if (!addMessage(r, m)) return;
  r.typing.delete(m.user.id);
  if (state.current === m.room) renderRoom(true);
  else { r.unread += 1; renderRooms(); }
}

function onAck(f) {
  const r = roomState(f.room);
  const p = f.nonce && r.pending.get(f.nonce);
  if (p) { p.acked = true; p.inflight = false; p.id = f.id; }
  pump(r);
  if (state.current === f.room) renderRoom();
}

function onHistory(f) {
  const r = roomState(f.room);
  if (f.messages.length === 0) r.noOlder = true;
  for (const m of f.messages) addMessage(r, m);
  if (state.current === f.room) renderRoom(false, true);
}

function onPresence(f) {
  const r = roomState(f.room);
  for (const u of f.joins) r.members.set(u.id, u);
  for (const u of f.leaves) { r.members.delete(u.id); r.typing.delete(u.id); }
  const room = state.rooms.get(f.room);
  if (room) room.online = r.members.size;
  renderRooms();
  if (state.current === f.room) renderMembers();
}

function onTyping(f) {
  const r = roomState(f.room);
  r.typing.set(f.user.id, { name: f.user.name, until: Date.now() + 3000 });
  if (state.current === f.room) renderTyping();
  setTimeout(() => { if (state.current === f.room) renderTyping(); }, 3100);
}

// A `left` push with a reason: removed from a private room, or the room was deleted.
function onLeft(f) {
  if (!f.reason) return;
  state.joined.delete(f.room);
  if (f.reason === "deleted") state.rooms.delete(f.room);
  showNotice(f.reason === "deleted" ? "Room " + f.room + " was deleted." : "You are no longer a member of " + f.room + ".");
  if (state.current === f.room) state.current = null;
  loadRooms();
}

function onError(f) {
  const r = f.room && state.joined.get(f.room);
  const sending = r && [...r.pending.values()].find((p) => p.inflight);
  if (f.code === "rate_limited" && sending) {
    // The outbox pauses and resumes in order: nothing behind the refused message overtakes it.
    pause(r, f.retry_after_ms || 1000);
    showRateLimit(f.retry_after_ms || 1000);
    return;
  }
  if (f.code === "token_expired") { refreshSession().catch(() => {}); return; }
  if (f.code === "unavailable" && sending) {
    pause(r, 1000);
  } else if (sending && (f.code === "too_large" || f.code === "bad_request" || f.code === "not_joined")) {
    // Refused for good: show it failed and let the rest go.
    sending.inflight = false;
    sending.failed = true;
    r.pending.delete(sending.nonce);
    r.rejected.push(sending);
    pump(r);
  }
  showNotice(f.message || f.code);
}

function pause(r, ms) {
  for (const p of r.pending.values()) p.inflight = false;
  r.pausedUntil = Date.now() + ms;
  clearTimeout(r.resumeTimer);
  r.resumeTimer = setTimeout(() => { r.pausedUntil = 0; pump(r); }, ms);
  if (state.current === r.name) renderRoom();
}

function showNotice(text) {
  const el = $("notice");
  el.textContent = text;
  el.hidden = false;
  clearTimeout(el.timer);
  el.timer = setTimeout(() => { el.hidden = true; }, 4000);
}

function showRateLimit(ms) {
  const el = $("notice");
  const until = Date.now() + ms;
  clearInterval(state.rateTimer);
  clearTimeout(el.timer);
  const tick = () => {
    const left = until - Date.now();
    if (left <= 0) { clearInterval(state.rateTimer); el.hidden = true; return; }
    el.textContent = "Slow down: you can send again in " + (left / 1000).toFixed(1) + " s";
    el.hidden = false;
  };
  tick();
  state.rateTimer = setInterval(tick, 100);
}

// ---------- sending ----------
function newNonce() {
  const b = new Uint8Array(12);
  crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

function sendMessage(ev) {
  ev.preventDefault();
  const input = $("composer-input");
  const body = input.value;
  if (!body.trim() || !state.current) return;
  const r = roomState(state.current);
  const p = { nonce: newNonce(), body, ts: Date.now(), acked: false, failed: false, inflight: false };
  r.pending.set(p.nonce, p);
  pump(r);
  input.value = "";
  renderRoom(true);
}

// Each room's outbox: messages leave one at a time in typed order; the next goes when the
// previous is acked. A rate limit or an outage pauses it, a reconnect resumes it.
function pump(r) {
  if (!r.joined || !state.connected || (r.pausedUntil && Date.now() < r.pausedUntil)) return;
  const next = [...r.pending.values()].find((p) => !p.acked);
  if (!next || next.inflight) return;
  next.inflight = send({ type: "send", room: r.name, body: next.body, nonce: next.nonce, ref: nextRef() });
}

let lastTyping = 0;
function typing() {
  if (!state.current || Date.now() - lastTyping < 2000) return;
  lastTyping = Date.now();
  send({ type: "typing", room: state.current });
}

function loadOlder() {
  const r = state.current && state.joined.get(state.current);
  if (!r || r.oldestSeq === null) return;
  send({ type: "history", room: r.name, before: r.oldestSeq, limit: 50, ref: nextRef() });
}

// ---------- rendering ----------
function selectRoom(name) {
  state.current = name;
  const r = roomState(name);
  r.unread = 0;
  if (!r.joined) joinRoom(name);
  renderRooms();
  renderRoom(true);
  updateComposer();
}

function renderRooms() {
  const list = $("room-list");
  list.replaceChildren();
  for (const room of [...state.rooms.values()].sort((a, b) => a.name.localeCompare(b.name))) {
    const li = document.createElement("li");
    const btn = document.createElement("button");
    btn.type = "button";
    btn.dataset.room = room.name;
    if (room.name === state.current) btn.classList.add("active");
    const label = document.createElement("span");
    label.textContent = "# " + room.title;
    const count = document.createElement("span");
    count.className = "count";
    const r = state.joined.get(room.name);
    count.textContent = room.online + " online";
    if (r && r.unread) {
      const unread = document.createElement("span");
      unread.className = "unread";
      unread.textContent = " " + r.unread;
      label.append(unread);
    }
    btn.append(label, count);
    btn.addEventListener("click", () => selectRoom(room.name));
    li.append(btn);
    list.append(li);
  }
}

function formatTime(ts) {
  return new Date(ts).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function messageItem(author, body, ts, mine, extraClass) {
  const li = document.createElement("li");
  if (mine) li.classList.add("mine");
  if (extraClass) li.classList.add(extraClass);
  const a = document.createElement("span");
  a.className = "author";
  a.textContent = author;
  const b = document.createElement("span");
  b.className = "body";
  b.textContent = body;
  const t = document.createElement("time");
  t.textContent = formatTime(ts);
  li.append(a, b, t);
  return li;
}

function renderRoom(scrollToEnd, keepPosition) {
  const r = state.current && state.joined.get(state.current);
  const room = state.rooms.get(state.current);
  $("room-title").textContent = room ? "# " + room.title : "Pick a room";
  const box = $("messages");
  const fromBottom = box.scrollHeight - box.scrollTop;
  const atEnd = fromBottom - box.clientHeight < 40;
  const list = $("message-list");
  list.replaceChildren();
  if (!r) return;
  const me = state.session.user.id;
  for (const m of r.messages) {
    const li = messageItem(m.user.name, m.body, m.ts, m.user.id === me);
    li.dataset.seq = m.seq;
    list.append(li);
  }
  for (const p of [...r.rejected, ...r.pending.values()]) {
    const li = messageItem(state.session.user.name, p.body, p.ts, true, p.failed ? "failed" : (p.acked ? "" : "pending"));
    li.dataset.nonce = p.nonce;
    list.append(li);
  }
  $("load-older").hidden = r.noOlder || r.messages.length === 0;
  if (keepPosition) box.scrollTop = box.scrollHeight - fromBottom;
  else if (scrollToEnd || atEnd) box.scrollTop = box.scrollHeight;
  renderMembers();
  renderTyping();
}

function renderMembers() {
  const list = $("member-list");
  list.replaceChildren();
  const r = state.current && state.joined.get(state.current);
  if (!r) return;
  for (const m of [...r.members.values()].sort((a, b) => a.name.localeCompare(b.name))) {
    const li = document.createElement("li");
    li.textContent = m.name;
    li.dataset.user = m.id;
    list.append(li);
  }
}

function renderTyping() {
  const r = state.current && state.joined.get(state.current);
  const now = Date.now();
  const names = r ? [...r.typing.values()].filter((t) => t.until > now).map((t) => t.name) : [];
  $("typing").textContent = names.length ? names.join(", ") + (names.length > 1 ? " are" : " is") + " typing…" : "";
}

function updateComposer() {
  const r = state.current && state.joined.get(state.current);
  const enabled = Boolean(state.connected && r && r.joined);
  $("composer-input").disabled = !enabled;
  $("send-btn").disabled = !enabled;
}

// ---------- start ----------
function start() {
  $("auth-view").hidden = true;
  $("chat-view").hidden = false;
  $("me-name").textContent = state.session.user.name;
  loadRooms();
  connect();
}

function init() {
  $("auth-form").addEventListener("submit", (e) => { e.preventDefault(); authenticate("login"); });
  $("register-btn").addEventListener("click", () => {
    if ($("auth-form").reportValidity()) authenticate("register");
  });
  $("logout-btn").addEventListener("click", logout);
  $("new-room-form").addEventListener("submit", createRoom);
  $("composer").addEventListener("submit", sendMessage);
  $("composer-input").addEventListener("input", typing);
  $("load-older").addEventListener("click", loadOlder);
  setInterval(() => { if (state.session && !$("chat-view").hidden) loadRooms(); }, 15000);
  // A reload keeps the user signed in while the session (refresh cookie) lives.
  refreshSession().then(start, () => showAuth());
}

init();
