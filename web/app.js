// AuroraChat web client: REST for auth and rooms, one WebSocket for chat; ES modules by
// concern under /js/, no build step. User text is only ever set with textContent, never as HTML.
import { $, state } from "./js/state.js";
import { refreshSession, authenticate, logout, showAuth, loadRooms, createRoom, openDm, start } from "./js/session.js";
import { sendMessage, typing, loadOlder, composerKeys, onMessageAction, cancelCompose } from "./js/compose.js";
import { toggleBlock, leaveConversation } from "./js/conversation.js";
import { markRead } from "./js/reads.js";
import { onMemberAction } from "./js/moderation.js";

function init() {
  $("auth-form").addEventListener("submit", (e) => { e.preventDefault(); authenticate("login"); });
  $("register-btn").addEventListener("click", () => {
    if ($("auth-form").reportValidity()) authenticate("register");
  });
  $("logout-btn").addEventListener("click", logout);
  $("new-room-form").addEventListener("submit", createRoom);
  $("new-dm-form").addEventListener("submit", openDm);
  $("composer").addEventListener("submit", sendMessage);
  $("composer-input").addEventListener("input", typing);
  $("composer-input").addEventListener("keydown", composerKeys);
  $("compose-cancel").addEventListener("click", () => {
    if (state.editing) $("composer-input").value = "";
    cancelCompose();
  });
  $("message-list").addEventListener("click", onMessageAction);
  $("member-list").addEventListener("click", onMemberAction);
  $("load-older").addEventListener("click", loadOlder);
  $("block-btn").addEventListener("click", toggleBlock);
  $("leave-btn").addEventListener("click", leaveConversation);
  // Coming back to the tab reads what arrived meanwhile.
  document.addEventListener("visibilitychange", () => markRead(state.joined.get(state.current)));
  setInterval(() => { if (state.session && !$("chat-view").hidden) loadRooms(); }, 15000);
  // A reload keeps the user signed in while the session (refresh cookie) lives.
  refreshSession().then(start, () => showAuth());
}

init();
