// What moderators see: "Remove" on others' messages, and Kick / Mute / Ban on members
// (docs/moderation.md). The server checks every action; these only offer them.
import { state } from "./state.js";
import { api } from "./session.js";
import { showNotice } from "./socket.js";

// The caller's role in the open room: "owner", "moderator" or "member".
export function myRole() {
  const room = state.rooms.get(state.current);
  return (room && room.role) || "member";
}

export function canModerate() {
  return myRole() === "owner" || myRole() === "moderator";
}

const ACTIONS = {
  kick: { path: "kick", label: "Kick", done: "was kicked", body: {} },
  mute: { path: "mutes", label: "Mute 10 min", done: "is muted for 10 minutes", body: { duration_s: 600 } },
  ban: { path: "bans", label: "Ban 1 h", done: "is banned for an hour", body: { duration_s: 3600 } },
};

export function memberActions(user) {
  const wrap = document.createElement("span");
  wrap.className = "mod-actions";
  for (const [name, a] of Object.entries(ACTIONS)) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "link";
    b.dataset.modAction = name;
    b.dataset.user = user.name;
    b.textContent = a.label;
    b.setAttribute("aria-label", a.label + " " + user.name);
    wrap.append(b);
  }
  return wrap;
}

// One listener on the member list.
export async function onMemberAction(ev) {
  const b = ev.target.closest("button[data-mod-action]");
  if (!b || !state.current) return;
  const a = ACTIONS[b.dataset.modAction];
  const user = b.dataset.user;
  if (!a || !window.confirm(a.label + " " + user + "?")) return;
  try {
    await api("POST", "/api/rooms/" + encodeURIComponent(state.current) + "/" + a.path, { username: user, ...a.body });
    showNotice(user + " " + a.done + ".");
  } catch (e) {
    showNotice(e.message);
  }
}

// Why we were taken out of a room, for the notice.
export function leftNotice(reason, label) {
  switch (reason) {
    case "kicked": return "A moderator removed you from " + label + ". You can join again.";
    case "banned": return "You are banned from " + label + ".";
    case "deleted": return label + " was deleted.";
    default: return "You are no longer a member of " + label + ".";
  }
}

function span(ms) {
  const s = Math.round(ms / 1000);
  if (s < 120) return s + " s";
  if (s < 7200) return Math.round(s / 60) + " min";
  return Math.round(s / 3600) + " h";
}

// A moderator's action on the room's stream, as members read it: "ann muted bob until 14:05".
export function describeNotice(m) {
  const n = m.notice || {};
  const me = state.session.user.name.toLowerCase();
  const who = n.user ? (n.user.toLowerCase() === me ? "you" : n.user) : "";
  const until = n.until ? " until " + new Date(n.until).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) : "";
  let text;
  switch (n.action) {
    case "kick": text = "removed " + who + " from the room"; break;
    case "ban": text = "banned " + who + until; break;
    case "unban": text = "lifted the ban on " + who; break;
    case "mute": text = "muted " + who + until; break;
    case "unmute": text = "unmuted " + who; break;
    case "slow_mode": text = n.interval_ms ? "turned on slow mode: one message every " + span(n.interval_ms) : "turned off slow mode"; break;
    case "freeze": text = "froze the room: only moderators can write"; break;
    case "unfreeze": text = "unfroze the room"; break;
    case "receipts_on": text = "turned read receipts on"; break;
    case "receipts_off": text = "turned read receipts off"; break;
    case "grant": text = "made " + who + " a moderator"; break;
    case "revoke": text = "took moderator rights from " + who; break;
    default: text = "moderated the room"; break;
  }
  return m.user.name + " " + text + (n.reason ? " (" + n.reason + ")" : "");
}
