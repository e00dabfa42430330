// Rendering the room list, the open room, its members and the composer.
import { $, state, roomState } from "./state.js";
import { joinRoom } from "./socket.js";
import { messageItem, pendingItem } from "./message-view.js";
import { renderRoomActions } from "./conversation.js";
import { markRead, placeDivider, seenBy } from "./reads.js";
import { canModerate, memberActions } from "./moderation.js";

// ---------- rendering ----------
export function selectRoom(name) {
  state.current = name;
  const r = roomState(name);
  placeDivider(r);
  markRead(r);
  if (!r.joined) joinRoom(name);
  renderRooms();
  renderRoom(true);
  updateComposer();
}

// "# general" for a room, "@ bob, cat" for a conversation (titled by its other members).
export function roomLabel(room) {
  return (room.dm ? "@ " : "# ") + room.title;
}

export function renderRooms() {
  const list = $("room-list");
  list.replaceChildren();
  // Rooms by name, then conversations by who is in them.
  const order = (a, b) => (a.dm === b.dm ? (a.dm ? a.title : a.name).localeCompare(b.dm ? b.title : b.name) : a.dm ? 1 : -1);
  for (const room of [...state.rooms.values()].sort(order)) {
    const li = document.createElement("li");
    const btn = document.createElement("button");
    btn.type = "button";
    btn.dataset.room = room.name;
    if (room.name === state.current) btn.classList.add("active");
    const label = document.createElement("span");
    label.textContent = roomLabel(room);
    const count = document.createElement("span");
    count.className = "count";
    count.textContent = room.online + " online";
    if (room.unread && room.name !== state.current) {
      const unread = document.createElement("span");
      unread.className = room.mentions ? "unread mention" : "unread";
      const n = room.unread > 999 ? "999+" : String(room.unread);
      unread.textContent = room.mentions ? " @" + n : " " + n;
      unread.setAttribute("aria-label", n + " unread" + (room.mentions ? ", " + room.mentions + " mentioning you" : ""));
      label.append(unread);
    }
    btn.append(label, count);
    btn.addEventListener("click", () => selectRoom(room.name));
    li.append(btn);
    list.append(li);
  }
}

// The open room's title and what its member can do to it.
export function renderHeader() {
  const room = state.rooms.get(state.current);
  $("room-title").textContent = room ? roomLabel(room) : "Pick a room";
  renderRoomActions();
}

export function renderRoom(scrollToEnd, keepPosition) {
  const r = state.current && state.joined.get(state.current);
  renderHeader();
  const box = $("messages");
  const fromBottom = box.scrollHeight - box.scrollTop;
  const atEnd = fromBottom - box.clientHeight < 40;
  const list = $("message-list");
  list.replaceChildren();
  if (!r) return;
  const seen = seenBy(r);
  for (const m of r.messages) {
    if (m.seq === r.divider) {
      const line = document.createElement("li");
      line.className = "divider";
      line.setAttribute("role", "separator");
      line.textContent = "New messages";
      list.append(line);
    }
    list.append(messageItem(m));
    const names = seen.get(m.seq);
    if (names) {
      const line = document.createElement("li");
      line.className = "seen";
      names.sort((a, b) => a.localeCompare(b));
      const shown = names.slice(0, 5).join(", ");
      line.textContent = "Seen by " + shown + (names.length > 5 ? " and " + (names.length - 5) + " more" : "");
      list.append(line);
    }
  }
  for (const p of [...r.rejected, ...r.pending.values()]) {
    list.append(pendingItem(p, p.failed ? "failed" : (p.acked ? "" : "pending")));
  }
  $("load-older").hidden = r.noOlder || r.messages.length === 0;
  if (keepPosition) box.scrollTop = box.scrollHeight - fromBottom;
  else if (scrollToEnd || atEnd) box.scrollTop = box.scrollHeight;
  renderMembers();
  renderTyping();
}

export function renderMembers() {
  const list = $("member-list");
  list.replaceChildren();
  const r = state.current && state.joined.get(state.current);
  if (!r) return;
  for (const m of [...r.members.values()].sort((a, b) => a.name.localeCompare(b.name))) {
    const li = document.createElement("li");
    li.textContent = m.name;
    li.dataset.user = m.id;
    if (canModerate() && m.id !== state.session.user.id) li.append(memberActions(m));
    list.append(li);
  }
}

export function renderTyping() {
  const r = state.current && state.joined.get(state.current);
  const now = Date.now();
  const names = r ? [...r.typing.values()].filter((t) => t.until > now).map((t) => t.name) : [];
  $("typing").textContent = names.length ? names.join(", ") + (names.length > 1 ? " are" : " is") + " typing…" : "";
}

export function updateComposer() {
  const r = state.current && state.joined.get(state.current);
  const enabled = Boolean(state.connected && r && r.joined);
  $("composer-input").disabled = !enabled;
  $("send-btn").disabled = !enabled;
  const banner = $("compose-banner");
  const target = state.editing || state.replyTo;
  banner.hidden = !target;
  if (target) {
    $("compose-banner-text").textContent = state.editing
      ? "Editing your message (Esc to cancel)"
      : "Replying to " + target.user.name + ": " + [...target.body].slice(0, 100).join("");
  }
  $("send-btn").textContent = state.editing ? "Save" : "Send";
}
