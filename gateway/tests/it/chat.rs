use serde_json::{json, Value};

use crate::harness::Server;

fn seqs(messages: &Value) -> Vec<u64> {
    messages.as_array().unwrap().iter().map(|m| m["seq"].as_u64().unwrap()).collect()
}

#[tokio::test]
async fn hello_then_join_with_members_and_empty_history() {
    let s = Server::start().await;
    let u = s.register(&crate::harness::unique("hal")).await;
    let mut c = s.ws(&u.token).await;
    let hello = c.recv().await;
    assert_eq!(hello["type"], "hello", "hello is the first frame");
    assert_eq!(hello["user"]["id"], u.id.as_str());
    assert_eq!(hello["heartbeat_ms"], 25_000);
    let j = c.request(json!({"type":"join","room":"general"})).await;
    assert_eq!(j["type"], "joined");
    assert_eq!(j["room"], "general");
    assert_eq!(j["last_seq"], 0);
    assert_eq!(j["history"], json!([]));
    assert_eq!(j["members"], json!([{"id": u.id, "name": u.name}]));
    // Joining again answers joined again.
    let again = c.request(json!({"type":"join","room":"general"})).await;
    assert_eq!(again["type"], "joined");
    s.stop().await;
}

#[tokio::test]
async fn two_users_see_the_same_messages_in_the_same_order() {
    let s = Server::start_with(|c| c.rate_limit = "1000/1s".parse().unwrap()).await;
    let (a, mut ca) = s.user("amy").await;
    let (_, mut cb) = s.user("ben").await;
    ca.join("general").await;
    cb.join("general").await;
    // Both send concurrently, without waiting for acks.
    for i in 0..50 {
        ca.send(json!({"type":"send","room":"general","body":format!("a{i}")})).await;
        cb.send(json!({"type":"send","room":"general","body":format!("b{i}")})).await;
    }
    let mut seen_a = Vec::new();
    let mut seen_b = Vec::new();
    while seen_a.len() < 100 {
        seen_a.push(ca.recv_type("message").await);
    }
    while seen_b.len() < 100 {
        seen_b.push(cb.recv_type("message").await);
    }
    let order = |v: &[Value]| v.iter().map(|m| (m["seq"].as_u64().unwrap(), m["body"].to_string())).collect::<Vec<_>>();
    assert_eq!(order(&seen_a), order(&seen_b), "same order at every member");
    let seq: Vec<u64> = seen_a.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
    assert_eq!(seq, (1..=100).collect::<Vec<_>>(), "gap-free from 1");
    // Each user's own messages keep their send order.
    let mine: Vec<String> = seen_a
        .iter()
        .filter(|m| m["user"]["id"] == a.id.as_str())
        .map(|m| m["body"].as_str().unwrap().into())
        .collect();
    assert_eq!(mine, (0..50).map(|i| format!("a{i}")).collect::<Vec<_>>());
    let m = &seen_b[0];
    assert!(m["id"].as_str().is_some() && m["ts"].as_i64().unwrap() > 1_700_000_000_000);
    s.stop().await;
}

#[tokio::test]
async fn ack_echoes_ref_and_nonce_and_recipients_get_the_nonce() {
    let s = Server::start().await;
    let (_, mut ca) = s.user("cat").await;
    let (_, mut cb) = s.user("dan").await;
    ca.join("general").await;
    cb.join("general").await;
    ca.send(json!({"type":"send","room":"general","body":"hi <b>there</b>","nonce":"n-1","ref":"r-1"})).await;
    let ack = ca.recv_type("ack").await;
    assert_eq!(ack["ref"], "r-1");
    assert_eq!(ack["nonce"], "n-1");
    assert_eq!(ack["room"], "general");
    let m = cb.recv_type("message").await;
    assert_eq!(m["id"], ack["id"]);
    assert_eq!(m["nonce"], "n-1");
    assert_eq!(m["body"], "hi <b>there</b>", "bodies are stored verbatim");
    s.stop().await;
}

#[tokio::test]
async fn nonce_retry_gets_the_same_id_and_one_stored_message() {
    let s = Server::start_with(|c| c.rate_limit = "2/1h".parse().unwrap()).await;
    let (u, mut c) = s.user("fay").await;
    c.join("general").await;
    let first = c.request(json!({"type":"send","room":"general","body":"once","nonce":"abc"})).await;
    assert_eq!(first["type"], "ack");
    // A reconnecting client retries on a new connection.
    let mut c2 = s.ws(&u.token).await;
    c2.join("general").await;
    for _ in 0..3 {
        let retry = c2.request(json!({"type":"send","room":"general","body":"once","nonce":"abc"})).await;
        assert_eq!(retry["type"], "ack");
        assert_eq!(retry["id"], first["id"]);
    }
    let (_, v) = s.get("/api/rooms/general/messages", &u.token).await;
    assert_eq!(v["messages"].as_array().unwrap().len(), 1);
    // Retries took no tokens: one more new message fits in the 2/1h bucket.
    let ok = c2.request(json!({"type":"send","room":"general","body":"second"})).await;
    assert_eq!(ok["type"], "ack");
    s.stop().await;
}

#[tokio::test]
async fn join_delivers_last_k_and_since_resumes_exactly_the_missed_messages() {
    let s = Server::start_with(|c| {
        c.history_size = 3;
        c.rate_limit = "1000/1s".parse().unwrap();
    })
    .await;
    let (u, mut writer) = s.user("gus").await;
    writer.join("general").await;
    for i in 1..=5 {
        writer.say("general", &format!("m{i}")).await;
    }
    let (_, mut reader) = s.user("hip").await;
    let j = reader.join("general").await;
    assert_eq!(seqs(&j["history"]), [3, 4, 5], "last K, oldest first");
    assert_eq!(j["last_seq"], 5);

    // The reader drops off; three messages arrive meanwhile.
    drop(reader);
    for i in 6..=8 {
        writer.say("general", &format!("m{i}")).await;
    }
    let mut back = s.ws(&u.token).await;
    let j = back.request(json!({"type":"join","room":"general","since":5})).await;
    assert_eq!(seqs(&j["history"]), [6, 7, 8], "exactly the missed messages");
    assert_eq!(j["last_seq"], 8);
    assert!(j.get("truncated").is_none());
    // Live traffic continues after the resume without duplicates.
    writer.say("general", "m9").await;
    let m = back.recv_type("message").await;
    assert_eq!(m["seq"], 9);

    // History paging over the socket.
    let h = back.request(json!({"type":"history","room":"general","before":6,"limit":2})).await;
    assert_eq!(h["type"], "history");
    assert_eq!(seqs(&h["messages"]), [4, 5]);
    let h = back.request(json!({"type":"history","room":"general","before":3})).await;
    assert_eq!(seqs(&h["messages"]), [1, 2]);
    s.stop().await;
}

#[tokio::test]
async fn since_with_more_than_500_missed_is_truncated() {
    let s = Server::start_with(|c| c.rate_limit = "100000/1s".parse().unwrap()).await;
    let (u, mut c) = s.user("ivy").await;
    c.join("general").await;
    for i in 0..510 {
        c.send(json!({"type":"send","room":"general","body":format!("x{i}")})).await;
    }
    let mut acks = 0;
    while acks < 510 {
        if c.recv().await["type"] == "ack" {
            acks += 1;
        }
    }
    let mut r = s.ws(&u.token).await;
    let j = r.request(json!({"type":"join","room":"general","since":0})).await;
    assert_eq!(j["truncated"], true);
    let got = seqs(&j["history"]);
    assert_eq!(got.len(), 500);
    assert_eq!((got[0], got[499]), (11, 510), "the newest 500");
    s.stop().await;
}

#[tokio::test]
async fn typing_reaches_others_but_not_the_typist() {
    let s = Server::start().await;
    let (a, mut ca) = s.user("jay").await;
    let (_, mut cb) = s.user("kim").await;
    ca.join("general").await;
    cb.join("general").await;
    ca.send(json!({"type":"typing","room":"general"})).await;
    let t = cb.recv_type("typing").await;
    assert_eq!(t["user"]["id"], a.id.as_str());
    assert_eq!(t["room"], "general");
    // The typist's next frame is the ack of a message, not its own typing.
    let ack = ca.say("general", "done typing").await;
    assert_eq!(ack["type"], "ack");
    s.stop().await;
}

#[tokio::test]
async fn leave_stops_delivery_and_send_needs_a_join() {
    let s = Server::start().await;
    let (_, mut ca) = s.user("lea").await;
    let (_, mut cb) = s.user("max").await;
    ca.join("general").await;
    cb.join("general").await;
    let l = cb.request(json!({"type":"leave","room":"general"})).await;
    assert_eq!(l, json!({"type":"left","room":"general","ref": l["ref"]}));
    let l = cb.request(json!({"type":"leave","room":"general"})).await;
    assert_eq!(l["type"], "left", "leaving a room not joined is fine");
    ca.say("general", "anyone?").await;
    let e = cb.request(json!({"type":"send","room":"general","body":"x"})).await;
    assert_eq!(
        (e["type"].as_str(), e["code"].as_str(), e["room"].as_str()),
        (Some("error"), Some("not_joined"), Some("general"))
    );
    // The next frame cb sees is its own join reply, not the message sent while away.
    let j = cb.request(json!({"type":"join","room":"general"})).await;
    assert_eq!(j["type"], "joined");
    assert_eq!(j["history"][0]["body"], "anyone?");
    s.stop().await;
}

#[tokio::test]
async fn dynamic_rooms_are_usable_at_once() {
    let s = Server::start().await;
    let (u, mut c) = s.user("ned").await;
    let (status, _) = s.post("/api/rooms", Some(&u.token), json!({"name":"fresh"})).await;
    assert_eq!(status, 201);
    c.join("fresh").await;
    let ack = c.say("fresh", "first!").await;
    let m = c.recv_type("message").await;
    assert_eq!((m["seq"].as_u64(), &m["id"]), (Some(1), &ack["id"]), "seq is per room");
    s.stop().await;
}
