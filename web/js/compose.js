// Sending: each room's outbox (in typed order, one in flight), typing, older history.
import { $, state, roomState } from "./state.js";
import { send, nextRef } from "./socket.js";
import { renderRoom, updateComposer } from "./render.js";

// ---------- sending ----------
export function newNonce() {
  const b = new Uint8Array(12);
  crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

export function sendMessage(ev) {
  ev.preventDefault();
  const input = $("composer-input");
  const body = input.value;
  if (!body.trim() || !state.current) return;
  if (state.editing) {
    const m = state.editing;
    if (body !== m.body) act({ type: "edit", room: state.current, id: m.id, body });
    cancelCompose();
    input.value = "";
    return;
  }
  const r = roomState(state.current);
  const p = { nonce: newNonce(), body, ts: Date.now(), acked: false, failed: false, inflight: false };
  if (state.replyTo) p.reply_to = state.replyTo.id;
  r.pending.set(p.nonce, p);
  pump(r);
  input.value = "";
  cancelCompose();
  renderRoom(true);
}

// An edit, delete or reaction: sent at once with a nonce; its reply is matched by ref.
export function act(frame) {
  const ref = nextRef();
  if (send({ ...frame, nonce: newNonce(), ref })) state.eventRefs.add(ref);
}

export function cancelCompose() {
  state.replyTo = null;
  state.editing = null;
  updateComposer();
}

function messageById(id) {
  const r = state.current && state.joined.get(state.current);
  return r && r.messages.find((m) => m.id === id);
}

export function startReply(id) {
  const m = messageById(id);
  if (!m || m.deleted) return;
  state.editing = null;
  state.replyTo = m;
  updateComposer();
  $("composer-input").focus();
}

export function startEdit(id) {
  const m = messageById(id);
  if (!m || m.deleted || m.user.id !== state.session.user.id) return;
  state.replyTo = null;
  state.editing = m;
  $("composer-input").value = m.body;
  updateComposer();
  $("composer-input").focus();
}

export function deleteMessage(id) {
  const m = messageById(id);
  if (!m || !window.confirm("Delete this message for everyone?")) return;
  act({ type: "delete", room: state.current, id });
}

// A moderator removes someone else's message (everyone sees who removed it).
export function removeMessage(id) {
  const m = messageById(id);
  if (!m || !window.confirm("Remove " + m.user.name + "'s message for everyone?")) return;
  act({ type: "delete", room: state.current, id });
}

export function toggleReaction(id, emoji) {
  const m = messageById(id);
  if (!m) return;
  const x = (m.reactions || []).find((y) => y.emoji === emoji);
  const mine = x && x.users.some((u) => u.id === state.session.user.id);
  act({ type: mine ? "unreact" : "react", room: state.current, id, emoji });
  state.picker = null;
}

// Keys in the composer: Up in an empty composer edits your last message; Esc cancels.
export function composerKeys(ev) {
  if (ev.key === "Escape" && (state.editing || state.replyTo)) {
    if (state.editing) $("composer-input").value = "";
    cancelCompose();
  } else if (ev.key === "ArrowUp" && !$("composer-input").value && state.current) {
    const r = state.joined.get(state.current);
    const mine = r && [...r.messages].reverse().find((m) => m.user.id === state.session.user.id && !m.deleted);
    if (mine) { ev.preventDefault(); startEdit(mine.id); }
  }
}

// One listener for every message action (buttons carry data-action).
export function onMessageAction(ev) {
  const b = ev.target.closest("button[data-action]");
  const li = b && b.closest("li[data-id]");
  if (!li) return;
  const id = li.dataset.id;
  switch (b.dataset.action) {
    case "reply": startReply(id); break;
    case "edit": startEdit(id); break;
    case "delete": deleteMessage(id); break;
    case "remove": removeMessage(id); break;
    case "react": state.picker = state.picker === id ? null : id; renderRoom(); break;
    case "pick":
    case "toggle-reaction": toggleReaction(id, b.dataset.emoji); renderRoom(); break;
    default: break;
  }
}

// Each room's outbox: messages leave one at a time in typed order; the next goes when the
// previous is acked. A rate limit or an outage pauses it, a reconnect resumes it.
export function pump(r) {
  if (!r.joined || !state.connected || (r.pausedUntil && Date.now() < r.pausedUntil)) return;
  const next = [...r.pending.values()].find((p) => !p.acked);
  if (!next || next.inflight) return;
  const frame = { type: "send", room: r.name, body: next.body, nonce: next.nonce, ref: nextRef() };
  if (next.reply_to) frame.reply_to = next.reply_to;
  next.inflight = send(frame);
}

let lastTyping = 0;
export function typing() {
  if (!state.current || Date.now() - lastTyping < 2000) return;
  lastTyping = Date.now();
  send({ type: "typing", room: state.current });
}

export function loadOlder() {
  const r = state.current && state.joined.get(state.current);
  if (!r || r.oldestSeq === null) return;
  send({ type: "history", room: r.name, before: r.oldestSeq, limit: 50, ref: nextRef() });
}
