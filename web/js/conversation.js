// What a member can do to a direct conversation: block the other person of a conversation
// of two (their sends to every conversation shared with us are refused), or leave one
// opened by three or more people.
import { $, state } from "./state.js";
import { api, loadRooms } from "./session.js";
import { showNotice } from "./socket.js";

const lower = (s) => s.toLowerCase();

export async function loadBlocks() {
  try {
    const data = await api("GET", "/api/blocks");
    state.blocked = new Set(data.blocked.map(lower));
  } catch {
    // The list stays as it was; the buttons say what the server said last.
  }
  renderRoomActions();
}

// The other person of the open conversation of two, or null.
function otherOfTwo(room) {
  return room && room.dm && !room.group ? room.title : null;
}

export function renderRoomActions() {
  const room = state.rooms.get(state.current);
  const other = otherOfTwo(room);
  const block = $("block-btn");
  block.hidden = !other;
  if (other) {
    const blocked = state.blocked.has(lower(other));
    block.textContent = blocked ? "Unblock " + other : "Block " + other;
    block.setAttribute("aria-pressed", String(blocked));
  }
  $("leave-btn").hidden = !(room && room.dm && room.group);
  $("room-actions").hidden = block.hidden && $("leave-btn").hidden;
}

export async function toggleBlock() {
  const other = otherOfTwo(state.rooms.get(state.current));
  if (!other) return;
  try {
    if (state.blocked.has(lower(other))) {
      await api("DELETE", "/api/blocks/" + encodeURIComponent(other));
      state.blocked.delete(lower(other));
      showNotice(other + " can write to you again.");
    } else {
      if (!window.confirm("Block " + other + "? They will not be able to write to you.")) return;
      await api("POST", "/api/blocks", { username: other });
      state.blocked.add(lower(other));
      showNotice(other + " is blocked.");
    }
  } catch (e) {
    showNotice(e.message);
  }
  renderRoomActions();
}

export async function leaveConversation() {
  const room = state.rooms.get(state.current);
  if (!room || !room.group || !window.confirm("Leave the conversation with " + room.title + "?")) return;
  try {
    await api("POST", "/api/dms/" + encodeURIComponent(room.name) + "/leave");
    state.leaving = room.name;
    state.rooms.delete(room.name);
    state.joined.delete(room.name);
    state.current = null;
    loadRooms();
  } catch (e) {
    showNotice(e.message);
  }
}
