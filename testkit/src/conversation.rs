//! Conversations: a reference model of a room built from its records (live `message` and
//! `event` pushes, or the lists in `joined` and `history`), members that keep every record
//! they see while they act, and a script of mixed events (sends, replies, edits, deletes,
//! reactions) for the tests of both modes.

use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

use crate::{unique, Client};

/// One message as a client shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shown {
    pub body: String,
    pub deleted: bool,
    pub edited: bool,
    pub reply_to: Option<String>,
    /// Emoji → ids of the users who reacted.
    pub reactions: BTreeMap<String, BTreeSet<String>>,
}

/// A room as a client shows it: message id → its state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoomView(pub BTreeMap<String, Shown>);

fn users(reaction: &Value) -> BTreeSet<String> {
    let users = reaction["users"].as_array().map(Vec::as_slice).unwrap_or_default();
    users.iter().filter_map(|u| u["id"].as_str().map(str::to_owned)).collect()
}

impl RoomView {
    /// Applies one record: a message (in its current state) or an event on one.
    pub fn apply(&mut self, r: &Value) {
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        let target = text(&r["target"]);
        match r["kind"].as_str() {
            None | Some("message") => {
                let reactions = r["reactions"].as_array().map(Vec::as_slice).unwrap_or_default();
                let shown = Shown {
                    body: text(&r["body"]),
                    deleted: r["deleted"] == true,
                    edited: r["edited_at"].is_i64(),
                    reply_to: r["reply_to"]["id"].as_str().map(str::to_owned),
                    reactions: reactions.iter().map(|x| (text(&x["emoji"]), users(x))).collect(),
                };
                self.0.insert(text(&r["id"]), shown);
            }
            Some(kind) => {
                let Some(m) = self.0.get_mut(&target) else { return };
                match kind {
                    // An edit replayed after its message was deleted says so; a delete wins.
                    "edit" if r["deleted"] != true && !m.deleted => {
                        m.body = text(&r["body"]);
                        m.edited = true;
                    }
                    "delete" => *m = Shown { deleted: true, reply_to: m.reply_to.take(), ..Shown::default() },
                    "react" | "unreact" => {
                        for x in r["reactions"].as_array().map(Vec::as_slice).unwrap_or_default() {
                            let who = users(x);
                            if who.is_empty() {
                                m.reactions.remove(&text(&x["emoji"]));
                            } else {
                                m.reactions.insert(text(&x["emoji"]), who);
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    pub fn apply_all(&mut self, records: &[Value]) {
        records.iter().for_each(|r| self.apply(r));
    }

    pub fn from_records(records: &[Value]) -> RoomView {
        let mut view = RoomView::default();
        view.apply_all(records);
        view
    }
}

/// A connection that keeps every record (`message` or `event` push) it reads.
pub struct Member {
    pub client: Client,
    pub records: Vec<Value>,
}

impl Member {
    pub fn new(client: Client) -> Member {
        Member { client, records: Vec::new() }
    }

    fn keep(&mut self, v: &Value) {
        if v["type"] == "message" || v["type"] == "event" {
            self.records.push(v.clone());
        }
    }

    /// Sends `frame` with a fresh `ref` and returns the reply, keeping records read meanwhile.
    pub async fn act(&mut self, mut frame: Value) -> Value {
        let r = unique("ref");
        frame["ref"] = Value::String(r.clone());
        self.client.send(frame).await;
        loop {
            let v = self.client.recv().await;
            if v["ref"] == r.as_str() {
                return v;
            }
            self.keep(&v);
        }
    }

    /// Acts and expects an `ack`; returns the acked id.
    pub async fn acked(&mut self, frame: Value) -> String {
        let what = frame.to_string();
        let v = self.act(frame).await;
        assert_eq!(v["type"], "ack", "{what}: {v}");
        v["id"].as_str().unwrap_or_default().to_owned()
    }

    /// Reads until `n` records are kept.
    pub async fn records_until(&mut self, n: usize) {
        while self.records.len() < n {
            let v = self.client.recv().await;
            self.keep(&v);
        }
    }
}

/// `(seq, type, id)` of each record: what must be the same, in the same order, everywhere.
pub fn order(records: &[Value]) -> Vec<(u64, String, String)> {
    records.iter().map(|r| (r["seq"].as_u64().unwrap_or(0), r["type"].to_string(), r["id"].to_string())).collect()
}

/// Twenty mixed records by `a` and `b` on messages sent before (`old`, at least three of
/// `a`'s) and new ones: sends, replies, edits, deletes, reactions added and taken back.
/// Each is acked; every one changes the room, so each gets a `seq`.
pub async fn mixed_events(a: &mut Member, b: &mut Member, room: &str, old: &[String]) {
    let (m1, m2, m3) = (&old[0], &old[1], &old[2]);
    let send = |body: &str, reply_to: Option<&String>| match reply_to {
        Some(id) => json!({"type":"send","room":room,"body":body,"reply_to":id}),
        None => json!({"type":"send","room":room,"body":body}),
    };
    let react = |kind: &str, id: &String, emoji: &str| json!({"type":kind,"room":room,"id":id,"emoji":emoji});
    let edit = |id: &String, body: &str| json!({"type":"edit","room":room,"id":id,"body":body});
    let delete = |id: &String| json!({"type":"delete","room":room,"id":id});

    let m4 = a.acked(send("four, replying to one", Some(m1))).await; // 1
    a.acked(react("react", m1, "👍")).await; // 2
    b.acked(react("react", m1, "👍")).await; // 3
    a.acked(edit(m2, "two, edited")).await; // 4
    b.acked(react("react", &m4, ":tada:")).await; // 5
    a.acked(react("unreact", m1, "👍")).await; // 6
    let m5 = b.acked(send("five", None)).await; // 7
    a.acked(delete(m3)).await; // 8
    a.acked(edit(&m4, "four, edited")).await; // 9
    let m6 = b.acked(send("six, replying to two", Some(m2))).await; // 10
    a.acked(react("react", m2, "❤️")).await; // 11
    a.acked(edit(m2, "two, edited twice")).await; // 12
    b.acked(delete(&m5)).await; // 13
    b.acked(react("react", &m6, "👍")).await; // 14
    let m7 = a.acked(send("seven", None)).await; // 15
    b.acked(react("unreact", &m4, ":tada:")).await; // 16
    a.acked(edit(&m7, "seven, edited")).await; // 17
    a.acked(react("react", &m7, "✅")).await; // 18
    a.acked(delete(m2)).await; // 19
    a.acked(send("eight, replying to seven", Some(&m7))).await; // 20
}
