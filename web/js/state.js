// Shared state of the web client: the session, the socket and every room's view.

export const $ = (id) => document.getElementById(id);
// The access token lives in memory only; the session survives a reload through the
// refresh cookie (HttpOnly: this script never sees it).

export const state = {
  session: null,            // {token, user:{id,name}, expires_at}
  refreshing: null,         // the refresh in flight, shared by every caller
  refreshTimer: null,
  ws: null,
  connected: false,
  backoff: 0,               // reconnect attempt number
  reconnectTimer: null,
  rooms: new Map(),         // name -> {name,title,online,managed,dm,read,unread,mentions}
  joined: new Map(),        // name -> room view state, kept across reconnects
  current: null,
  refs: 0,
  rateTimer: null,
  replyTo: null,            // the message the composer replies to
  editing: null,            // the message of ours the composer edits
  picker: null,             // id of the message whose reaction picker is open
  eventRefs: new Set(),     // refs of edits, deletes and reactions awaiting their reply
  blocked: new Set(),       // lower-cased names of the users we block
  leaving: null,            // the conversation we just left (its `left` push needs no notice)
};

export function roomState(name) {
  let r = state.joined.get(name);
  if (!r) {
    r = { name, messages: [], pending: new Map(), rejected: [], pausedUntil: 0, resumeTimer: null, members: new Map(), lastSeq: 0, oldestSeq: null,
          noOlder: false, typing: new Map(), joined: false,
          read: 0, readTimer: null, divider: null, receipts: new Map() };  // read pointer; seq the "new messages" line sits above
    state.joined.set(name, r);
  }
  return r;
}
