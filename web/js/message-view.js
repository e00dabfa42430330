// One message in the list: its reply quote, body or tombstone, "(edited)", reactions and
// actions. Buttons carry data-action; app.js handles them in one listener on the list.
import { state } from "./state.js";
import { mentionsMe } from "./reads.js";
import { canModerate, describeNotice } from "./moderation.js";

export const QUICK_EMOJI = ["👍", "❤️", "😂", "🎉", "😮", "👀"];

export function formatTime(ts) {
  return new Date(ts).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function action(name, label, text, extra = {}) {
  const b = el("button", "act", text);
  b.type = "button";
  b.dataset.action = name;
  b.setAttribute("aria-label", label);
  for (const [k, v] of Object.entries(extra)) b.dataset[k] = v;
  return b;
}

function quote(reply) {
  const q = el("div", "quote");
  const who = reply.user ? reply.user.name : "a message";
  q.textContent = reply.deleted ? "↪ " + who + ": message deleted" : "↪ " + who + ": " + (reply.excerpt || "");
  return q;
}

function reactionsRow(m, me) {
  const row = el("div", "reactions");
  for (const x of m.reactions || []) {
    const mine = x.users.some((u) => u.id === me);
    const names = x.users.map((u) => u.name).join(", ");
    const b = action("toggle-reaction", x.emoji + " " + x.users.length + ": " + names, x.emoji + " " + x.users.length,
      { emoji: x.emoji });
    b.classList.add("reaction");
    b.title = names;
    b.setAttribute("aria-pressed", String(mine));
    row.append(b);
  }
  if (state.picker === m.id) {
    const picker = el("div", "picker");
    picker.setAttribute("role", "group");
    picker.setAttribute("aria-label", "Pick a reaction");
    for (const e of QUICK_EMOJI) picker.append(action("pick", "React with " + e, e, { emoji: e }));
    row.append(picker);
  }
  return row;
}

// A stored or live message `m`.
export function messageItem(m) {
  const me = state.session.user.id;
  const li = el("li");
  li.dataset.seq = m.seq;
  li.dataset.id = m.id;
  if (m.kind === "moderation") {
    li.className = "notice-line";
    li.setAttribute("role", "note");
    li.append(el("span", "body", describeNotice(m)), el("time", "", formatTime(m.ts)));
    return li;
  }
  if (m.user.id === me) li.classList.add("mine");
  else if (!m.deleted && mentionsMe(m.body)) li.classList.add("mention");
  if (m.reply_to) li.append(quote(m.reply_to));
  li.append(el("span", "author", m.user.name));
  // Posted through the server API by a platform's backend (docs/server-api.md).
  if (m.user.id.startsWith("bot:")) {
    li.classList.add("from-bot");
    li.append(el("span", "bot-tag", "bot"));
  }
  if (m.deleted) {
    li.classList.add("deleted");
    const removed = m.removed_by ? "message removed by " + m.removed_by.name : "message removed by a moderator";
    li.append(el("span", "body tombstone", m.removed_by || m.moderator ? removed : "message deleted"));
  } else {
    li.append(el("span", "body", m.body));
    if (m.edited_at) li.append(el("span", "edited", "(edited)"));
  }
  const t = el("time", "", formatTime(m.ts));
  li.append(t);
  if (m.deleted) return li;
  li.append(reactionsRow(m, me));
  const acts = el("div", "actions");
  acts.append(action("reply", "Reply to " + m.user.name, "Reply"), action("react", "Add a reaction", "React"));
  if (m.user.id === me) acts.append(action("edit", "Edit your message", "Edit"), action("delete", "Delete your message", "Delete"));
  else if (canModerate()) acts.append(action("remove", "Remove " + m.user.name + "'s message", "Remove"));
  li.append(acts);
  return li;
}

// A message of ours not yet stored (pending, or refused).
export function pendingItem(p, cls) {
  const li = el("li", "mine");
  if (cls) li.classList.add(cls);
  li.dataset.nonce = p.nonce;
  li.append(el("span", "author", state.session.user.name), el("span", "body", p.body), el("time", "", formatTime(p.ts)));
  return li;
}
