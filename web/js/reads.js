// Read state: how far the user has read each room (kept by the server, the same on every
// device), the unread and mention badges, and the "new messages" divider.
import { state } from "./state.js";
import { send, nextRef } from "./socket.js";

// Whether `body` names @me (the whole name; "@bob." ends a sentence).
export function mentionsMe(body) {
  const me = state.session.user.name.toLowerCase();
  const text = (body || "").toLowerCase();
  const nameChar = /[a-z0-9_.-]/;
  for (let at = text.indexOf("@"); at !== -1; at = text.indexOf("@", at + 1)) {
    if (at > 0 && nameChar.test(text[at - 1])) continue;
    if (!text.startsWith(me, at + 1)) continue;
    const next = text[at + 1 + me.length];
    const after = text[at + 2 + me.length];
    if (next === undefined || !nameChar.test(next) || (next === "." && (after === undefined || !nameChar.test(after)))) return true;
  }
  return false;
}

function counts(m, read) {
  return m.seq > read && !m.kind && !m.deleted && m.user.id !== state.session.user.id;
}

// Recounts a joined room's badge from the messages it holds (all of them since the join).
export function recount(r) {
  const room = state.rooms.get(r.name);
  if (!room) return;
  const unread = r.messages.filter((m) => counts(m, r.read));
  room.unread = unread.length;
  room.mentions = unread.filter((m) => mentionsMe(m.body)).length;
}

// A new message arrived in a room that is not being read.
export function countArrival(r, m) {
  const room = state.rooms.get(r.name);
  if (!room || !counts(m, r.read)) return;
  room.unread = (room.unread || 0) + 1;
  if (mentionsMe(m.body)) room.mentions = (room.mentions || 0) + 1;
}

// Whether the user is looking at `r` now.
export function reading(r) {
  return state.current === r.name && document.visibilityState === "visible";
}

// Reports that everything shown in the open room is read (at most every 300 ms).
export function markRead(r) {
  if (!r || !r.joined || !reading(r) || r.lastSeq <= r.read) return;
  clearTimeout(r.readTimer);
  r.readTimer = setTimeout(() => {
    if (!reading(r) || r.lastSeq <= r.read || !state.connected) return;
    r.read = r.lastSeq;
    recount(r);
    send({ type: "read", room: r.name, seq: r.lastSeq, ref: nextRef() });
  }, 300);
}

// The pointer rose (this or another device): `onRead` re-renders what changed.
export function applyRead(r, seq) {
  if (seq <= r.read) return false;
  r.read = seq;
  recount(r);
  return true;
}

// When a room is opened: the divider goes above its first unread message.
export function placeDivider(r) {
  const first = r.messages.find((m) => counts(m, r.read));
  r.divider = first ? first.seq : null;
}

// Read receipts: the furthest pointers from `joined`, then `receipts` pushes (at most one
// a second per room).
export function applyReceipts(r, readers) {
  for (const x of readers || []) {
    const known = r.receipts.get(x.user.id);
    if (!known || x.seq > known.seq) r.receipts.set(x.user.id, x);
  }
}

// message seq -> names of the others whose last read message it is ("Seen by …").
export function seenBy(r) {
  const out = new Map();
  const me = state.session.user.id;
  const shown = r.messages.filter((m) => !m.deleted && !m.kind);
  for (const x of r.receipts.values()) {
    if (x.user.id === me) continue;
    let last = null;
    for (const m of shown) { if (m.seq <= x.seq) last = m; else break; }
    // Nobody needs telling that the author saw their own message.
    if (last === null || last.user.id === x.user.id) continue;
    if (!out.has(last.seq)) out.set(last.seq, []);
    out.get(last.seq).push(x.user.name);
  }
  return out;
}
