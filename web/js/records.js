// A room's records (docs/protocol.md §4.1): messages, and events that change them. Applied
// in seq order; each event names its target and carries absolute state, so applying one
// twice (a live push, then a `since` replay) changes nothing.
import { state } from "./state.js";

function byId(r, id) {
  return r.messages.find((m) => m.id === id);
}

// Adds or replaces a message (a `since` replay sends messages in their current state).
export function addMessage(r, m) {
  const known = byId(r, m.id);
  if (known) Object.assign(known, m);
  else if (r.messages.some((x) => x.seq === m.seq)) return false;
  else {
    r.messages.push({ ...m, reactions: m.reactions || [] });
    r.messages.sort((a, b) => a.seq - b.seq);
  }
  r.lastSeq = Math.max(r.lastSeq, m.seq);
  r.oldestSeq = r.messages[0].seq;
  if (r.oldestSeq <= 1) r.noOlder = true;
  if (m.nonce && m.user.id === state.session.user.id) r.pending.delete(m.nonce);
  return !known;
}

// Applies an event to the message it targets; returns whether the view changed.
export function applyEvent(r, e) {
  r.lastSeq = Math.max(r.lastSeq, e.seq);
  const m = byId(r, e.target);
  if (!m) return false;
  switch (e.kind) {
    case "edit":
      if (e.deleted || m.deleted) return false;
      m.body = e.body;
      m.edited_at = e.edited_at;
      break;
    case "delete":
      m.deleted = true;
      if (e.moderator) m.removed_by = e.user;
      m.body = "";
      m.reactions = [];
      delete m.edited_at;
      break;
    case "react":
    case "unreact":
      for (const x of e.reactions || []) {
        const at = m.reactions.findIndex((y) => y.emoji === x.emoji);
        if (x.users.length === 0) { if (at >= 0) m.reactions.splice(at, 1); }
        else if (at >= 0) m.reactions[at] = x;
        else m.reactions.push(x);
      }
      break;
    default:
      return false;
  }
  // Replies show their target's summary: keep them in step.
  for (const reply of r.messages) {
    if (reply.reply_to && reply.reply_to.id === m.id) {
      reply.reply_to = m.deleted
        ? { id: m.id, user: m.user, deleted: true }
        : { id: m.id, user: m.user, excerpt: [...m.body].slice(0, 100).join("") };
    }
  }
  return true;
}

// A record from a list (joined, history) or a push. A moderator's notice is shown in the
// list like a message.
export function applyRecord(r, rec) {
  return rec.kind && rec.kind !== "moderation" ? applyEvent(r, rec) : addMessage(r, rec);
}
