// REST calls, the sign-in session (access token in memory, refresh cookie), and the room list.
import { $, state } from "./state.js";
import { connect, send, nextRef, joinRoom } from "./socket.js";
import { selectRoom, renderRooms, renderHeader } from "./render.js";
import { loadBlocks } from "./conversation.js";

// ---------- REST ----------
export async function request(method, path, body) {
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
export async function api(method, path, body) {
  try {
    return await request(method, path, body);
  } catch (e) {
    if (e.status !== 401 || !state.session) throw e;
    await refreshSession();
    return request(method, path, body);
  }
}

// ---------- session ----------
export function signedIn(s) {
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
export function refreshSession() {
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

export async function authenticate(kind) {
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
export function endSession(message) {
  state.session = null;
  clearTimeout(state.refreshTimer);
  state.joined.clear();
  state.current = null;
  if (state.ws) { state.ws.onclose = null; state.ws.close(1000); state.ws = null; }
  clearTimeout(state.reconnectTimer);
  showAuth(message);
}

export async function logout() {
  // Ends the session on the server (every gateway), and clears the cookie.
  await request("POST", "/api/auth/logout").catch(() => {});
  endSession();
}

export function showAuth(message) {
  $("chat-view").hidden = true;
  $("auth-view").hidden = false;
  $("auth-error").textContent = message || "";
}

export async function loadRooms() {
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
    joinConversations();
    renderRooms();
    renderHeader();
    if (!state.current && rooms.length) selectRoom(rooms[0].name);
  } catch (e) {
    if (e.status === 401 && state.session) endSession("Your session ended; please log in again.");
  }
}

// Conversations are joined in the background, so their badges count live (a connection
// joins at most 100 rooms; keep room for the ones the user opens).
export function joinConversations() {
  if (!state.connected) return;
  const waiting = [...state.rooms.values()].filter((r) => r.dm && !state.joined.has(r.name));
  for (const room of waiting.slice(0, Math.max(0, 80 - state.joined.size))) joinRoom(room.name);
}

// Creates (or, for a conversation, finds) a room with POST `path`, then opens it; `input`
// is the form field to clear. Errors show under the room list.
async function openRoom(path, body, input) {
  try {
    const room = await api("POST", path, body);
    state.rooms.set(room.name, room);
    $(input).value = "";
    renderRooms();
    selectRoom(room.name);
  } catch (e) {
    $("room-error").textContent = e.message;
  }
}

export async function createRoom(ev) {
  ev.preventDefault();
  $("room-error").textContent = "";
  const name = $("new-room-name").value.trim();
  if (name) await openRoom("/api/rooms", { name }, "new-room-name");
}

// "New message to…": the conversation with those users (the same people always get the
// same one, so opening it again just selects it).
export async function openDm(ev) {
  ev.preventDefault();
  $("room-error").textContent = "";
  const users = $("new-dm-users").value.split(",").map((u) => u.trim()).filter(Boolean);
  if (users.length) await openRoom("/api/dms", { users }, "new-dm-users");
}

// Shows the chat of a signed-in user and connects.
export function start() {
  $("auth-view").hidden = true;
  $("chat-view").hidden = false;
  $("me-name").textContent = state.session.user.name;
  loadRooms();
  loadBlocks();
  connect();
}
