// Sending: each room's outbox (in typed order, one in flight), typing, older history.
import { $, state, roomState } from "./state.js";
import { send, nextRef } from "./socket.js";
import { renderRoom } from "./render.js";

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
  const r = roomState(state.current);
  const p = { nonce: newNonce(), body, ts: Date.now(), acked: false, failed: false, inflight: false };
  r.pending.set(p.nonce, p);
  pump(r);
  input.value = "";
  renderRoom(true);
}

// Each room's outbox: messages leave one at a time in typed order; the next goes when the
// previous is acked. A rate limit or an outage pauses it, a reconnect resumes it.
export function pump(r) {
  if (!r.joined || !state.connected || (r.pausedUntil && Date.now() < r.pausedUntil)) return;
  const next = [...r.pending.values()].find((p) => !p.acked);
  if (!next || next.inflight) return;
  next.inflight = send({ type: "send", room: r.name, body: next.body, nonce: next.nonce, ref: nextRef() });
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
