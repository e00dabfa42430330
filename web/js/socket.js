// The WebSocket: a ticket to connect, reconnects with backoff, and every server frame.
import { $, state, roomState } from "./state.js";
import { api, refreshSession, loadRooms, joinConversations } from "./session.js";
import { pump } from "./compose.js";
import { addMessage, applyEvent, applyRecord } from "./records.js";
import { leftNotice } from "./moderation.js";
import { applyRead, applyReceipts, countArrival, markRead, placeDivider, recount } from "./reads.js";
import { renderRooms, renderRoom, renderMembers, renderTyping, updateComposer, roomLabel } from "./render.js";

// ---------- WebSocket ----------
export function setStatus(text, cls) {
  const el = $("conn-status");
  el.textContent = text;
  el.className = "status " + cls;
}

// Opens the socket with a single-use ticket: no token ever appears in a URL.
export async function connect() {
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

export function scheduleReconnect(windowMs) {
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

export function send(frame) {
  if (!state.ws || state.ws.readyState !== WebSocket.OPEN) return false;
  state.ws.send(JSON.stringify(frame));
  return true;
}

export function nextRef() { state.refs += 1; return "r" + state.refs; }

export function joinRoom(name) {
  const r = roomState(name);
  // Resume with `since` when we already hold messages of this room.
  const frame = { type: "join", room: name, ref: nextRef() };
  if (r.lastSeq > 0) frame.since = r.lastSeq;
  send(frame);
}

export function handle(f) {
  switch (f.type) {
    case "hello":
      state.connected = true;
      state.backoff = 0;
      setStatus("online", "online");
      for (const name of state.joined.keys()) joinRoom(name);
      if (state.current && !state.joined.has(state.current)) joinRoom(state.current);
      joinConversations();
      break;
    case "joined": onJoined(f); break;
    case "message": onMessage(f); break;
    case "event": if (f.kind === "moderation") onMessage(f); else onEvent(f); break;
    case "ack": onAck(f); break;
    case "history": onHistory(f); break;
    case "presence": onPresence(f); break;
    case "typing": onTyping(f); break;
    case "error": onError(f); break;
    case "left": onLeft(f); break;
    // A conversation was opened with us, or someone left one: the list is re-read.
    case "rooms_changed": loadRooms(); break;
    case "read": onRead(f); break;
    case "receipts": onReceipts(f); break;
    default: break;
  }
}

export function onJoined(f) {
  const r = roomState(f.room);
  r.members = new Map(f.members.map((m) => [m.id, m]));
  for (const m of f.history) applyRecord(r, m);
  if (r.oldestSeq === null && f.history.length === 0) r.noOlder = true;
  r.lastSeq = Math.max(r.lastSeq, f.last_seq);
  const firstJoin = !r.joined;
  applyReceipts(r, f.receipts);
  r.read = Math.max(r.read, f.read || 0);
  // Every message after the pointer is held: count them here from now on.
  if (r.oldestSeq === null || r.oldestSeq <= r.read + 1) recount(r);
  if (firstJoin && state.current === f.room) placeDivider(r);
  // The outbox resumes in typed order; a re-sent nonce is deduplicated by the server.
  for (const p of r.pending.values()) p.inflight = false;
  pump(r);
  r.joined = true;
  const room = state.rooms.get(f.room);
  if (room) room.online = r.members.size;
  renderRooms();
  if (state.current === f.room) renderRoom();
  updateComposer();
  markRead(r);
}

export function onMessage(m) {
  const r = roomState(m.room);
  if (!addMessage(r, m)) return;
  r.typing.delete(m.user.id);
  if (state.current === m.room) renderRoom(true);
  countArrival(r, m);
  renderRooms();
  markRead(r);
}

export function onReceipts(f) {
  const r = state.joined.get(f.room);
  if (!r) return;
  applyReceipts(r, f.readers);
  if (state.current === f.room) renderRoom();
}

// The read pointer rose, here or on another device: badges follow.
export function onRead(f) {
  const r = state.joined.get(f.room);
  if (!r || !r.joined) { loadRooms(); return; }
  if (applyRead(r, f.seq)) renderRooms();
}

export function onEvent(e) {
  const r = roomState(e.room);
  if (!applyEvent(r, e)) return;
  if (state.current === e.room) renderRoom();
}

export function onAck(f) {
  if (f.ref) state.eventRefs.delete(f.ref);
  const r = roomState(f.room);
  const p = f.nonce && r.pending.get(f.nonce);
  if (p) { p.acked = true; p.inflight = false; p.id = f.id; }
  pump(r);
  if (state.current === f.room) renderRoom();
}

export function onHistory(f) {
  const r = roomState(f.room);
  if (f.messages.length === 0) r.noOlder = true;
  for (const m of f.messages) addMessage(r, m);
  if (state.current === f.room) renderRoom(false, true);
}

export function onPresence(f) {
  const r = roomState(f.room);
  for (const u of f.joins) r.members.set(u.id, u);
  for (const u of f.leaves) { r.members.delete(u.id); r.typing.delete(u.id); }
  const room = state.rooms.get(f.room);
  if (room) room.online = r.members.size;
  renderRooms();
  if (state.current === f.room) renderMembers();
}

export function onTyping(f) {
  const r = roomState(f.room);
  r.typing.set(f.user.id, { name: f.user.name, until: Date.now() + 3000 });
  if (state.current === f.room) renderTyping();
  setTimeout(() => { if (state.current === f.room) renderTyping(); }, 3100);
}

// A `left` push with a reason: removed from a private room, or the room was deleted.
export function onLeft(f) {
  if (!f.reason) return;
  state.joined.delete(f.room);
  const room = state.rooms.get(f.room);
  const label = room ? roomLabel(room) : f.room;
  if (f.reason === "deleted") state.rooms.delete(f.room);
  if (state.leaving !== f.room) showNotice(leftNotice(f.reason, label));
  if (state.current === f.room) state.current = null;
  loadRooms();
}

export function onError(f) {
  // An edit, delete or reaction was refused: it changed nothing; say why.
  if (f.ref && state.eventRefs.delete(f.ref)) { showNotice(f.message || f.code); return; }
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
  } else if (sending && ["too_large", "bad_request", "not_joined", "not_found", "forbidden"].includes(f.code)) {
    // Refused for good: show it failed and let the rest go.
    sending.inflight = false;
    sending.failed = true;
    r.pending.delete(sending.nonce);
    r.rejected.push(sending);
    pump(r);
    if (state.current === r.name) renderRoom();
  }
  showNotice(f.message || f.code);
}

export function pause(r, ms) {
  for (const p of r.pending.values()) p.inflight = false;
  r.pausedUntil = Date.now() + ms;
  clearTimeout(r.resumeTimer);
  r.resumeTimer = setTimeout(() => { r.pausedUntil = 0; pump(r); }, ms);
  if (state.current === r.name) renderRoom();
}

export function showNotice(text) {
  const el = $("notice");
  el.textContent = text;
  el.hidden = false;
  clearTimeout(el.timer);
  el.timer = setTimeout(() => { el.hidden = true; }, 4000);
}

export function showRateLimit(ms) {
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
