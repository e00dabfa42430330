use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::harness::{close_code, connect_small, eventually, unique, Server};

#[tokio::test]
async fn every_malformed_frame_gets_bad_request_and_the_connection_stays_usable() {
    let s = Server::start().await;
    let (_, mut c) = s.user("sam").await;
    c.join("general").await;
    let cases = [
        ("not json", "not json".to_string(), None),
        ("not an object", "[1,2,3]".to_string(), None),
        ("unknown type", json!({"type":"dance","ref":"r1"}).to_string(), Some("r1")),
        ("missing type", json!({"room":"general","ref":"r2"}).to_string(), Some("r2")),
        ("missing room", json!({"type":"join","ref":"r3"}).to_string(), Some("r3")),
        ("missing body", json!({"type":"send","room":"general","ref":"r4"}).to_string(), Some("r4")),
        ("empty body", json!({"type":"send","room":"general","body":"","ref":"r5"}).to_string(), Some("r5")),
        ("whitespace body", json!({"type":"send","room":"general","body":" \n\t ","ref":"r6"}).to_string(), Some("r6")),
        ("wrong type", json!({"type":"send","room":"general","body":42,"ref":"r7"}).to_string(), Some("r7")),
        ("long nonce", json!({"type":"send","room":"general","body":"x","nonce":"n".repeat(65)}).to_string(), None),
        ("long ref", json!({"type":"join","room":"general","ref":"r".repeat(65)}).to_string(), None),
        ("history without before", json!({"type":"history","room":"general","ref":"r8"}).to_string(), Some("r8")),
        ("auth without token", json!({"type":"auth","ref":"r9"}).to_string(), Some("r9")),
    ];
    for (what, frame, reference) in cases {
        c.send_raw(Message::Text(frame.into())).await;
        let e = c.recv_type("error").await;
        assert_eq!(e["code"], "bad_request", "{what}: {e}");
        assert!(!e["message"].as_str().unwrap().is_empty(), "{what}");
        assert_eq!(e["ref"].as_str(), reference, "{what}");
    }
    c.send_raw(Message::Binary(vec![1, 2, 3].into())).await;
    assert_eq!(c.recv_type("error").await["code"], "bad_request");
    // Still usable.
    c.say("general", "after all that").await;
    s.stop().await;
}

#[tokio::test]
async fn room_and_size_errors() {
    let s = Server::start_with(|c| c.max_message_bytes = 16).await;
    let (_, mut c) = s.user("tia").await;
    let e = c.request(json!({"type":"join","room":"nowhere"})).await;
    assert_eq!((e["code"].as_str(), e["room"].as_str()), (Some("not_found"), Some("nowhere")));
    let e = c.request(json!({"type":"send","room":"general","body":"x"})).await;
    assert_eq!(e["code"], "not_joined");
    let e = c.request(json!({"type":"typing","room":"general"})).await;
    assert_eq!(e["code"], "not_joined");
    let e = c.request(json!({"type":"history","room":"general","before":5})).await;
    assert_eq!(e["code"], "not_joined");
    let e = c.request(json!({"type":"send","room":"nowhere","body":"x"})).await;
    assert_eq!(e["code"], "not_found");
    c.join("general").await;
    let e = c.request(json!({"type":"send","room":"general","body":"x".repeat(17)})).await;
    assert_eq!(e["code"], "too_large");
    // Bytes, not characters: 6 three-byte characters are 18 bytes.
    let e = c.request(json!({"type":"send","room":"general","body":"€€€€€€"})).await;
    assert_eq!(e["code"], "too_large");
    let ok = c.request(json!({"type":"send","room":"general","body":"x".repeat(16)})).await;
    assert_eq!(ok["type"], "ack");
    let (_, v) = s.get("/api/rooms/general/messages", &s.register(&unique("u")).await.token).await;
    assert_eq!(v["messages"].as_array().unwrap().len(), 1, "rejected messages were not stored");
    s.stop().await;
}

#[tokio::test]
async fn the_101st_room_is_forbidden() {
    let s = Server::start().await;
    let (u, mut c) = s.user("uma").await;
    for i in 0..100 {
        let name = format!("r{i}");
        let (status, _) = s.post("/api/rooms", Some(&u.token), json!({"name": name})).await;
        assert_eq!(status, 201);
        c.join(&name).await;
    }
    let e = c.request(json!({"type":"join","room":"general"})).await;
    assert_eq!((e["type"].as_str(), e["code"].as_str()), (Some("error"), Some("forbidden")));
    c.request(json!({"type":"leave","room":"r0"})).await;
    c.join("general").await;
    s.stop().await;
}

#[tokio::test]
async fn rate_limit_triggers_and_recovers() {
    let s = Server::start_with(|c| {
        c.rate_limit = "3/1s".parse().unwrap();
        c.default_rooms = vec!["general".into(), "random".into()];
    })
    .await;
    let (u, mut c) = s.user("vic").await;
    let (_, mut other) = s.user("wes").await;
    c.join("general").await;
    c.join("random").await;
    other.join("general").await;
    for i in 0..3 {
        c.say("general", &format!("ok{i}")).await;
    }
    let e = c.request(json!({"type":"send","room":"general","body":"too many"})).await;
    assert_eq!((e["code"].as_str(), e["room"].as_str()), (Some("rate_limited"), Some("general")));
    let wait = e["retry_after_ms"].as_u64().expect("retry_after_ms");
    assert!(wait > 0 && wait <= 1000, "{wait}");
    // Per user per room: another room and another user are not limited.
    c.say("random", "elsewhere").await;
    other.say("general", "me too").await;
    // The refused message was dropped.
    let (_, v) = s.get("/api/rooms/general/messages", &u.token).await;
    let bodies: Vec<&str> = v["messages"].as_array().unwrap().iter().map(|m| m["body"].as_str().unwrap()).collect();
    assert!(!bodies.contains(&"too many"));
    // After the advertised wait, a token is back.
    tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
    c.say("general", "recovered").await;
    s.stop().await;
}

#[tokio::test]
async fn frames_over_64_kib_close_with_1009() {
    let s = Server::start().await;
    let (_, mut c) = s.user("xan").await;
    let huge = json!({"type":"send","room":"general","body":"x".repeat(70 * 1024)}).to_string();
    c.send_raw(Message::Text(huge.into())).await;
    assert_eq!(c.ended().await, close_code(1009));
    s.stop().await;
}

#[tokio::test]
async fn more_than_20_bad_frames_a_minute_close_with_4008() {
    let s = Server::start().await;
    let (_, mut c) = s.user("yul").await;
    for _ in 0..20 {
        c.send_raw(Message::Text("nope".into())).await;
        assert_eq!(c.recv_type("error").await["code"], "bad_request");
    }
    c.join("general").await;
    c.send_raw(Message::Text("nope".into())).await;
    assert_eq!(c.recv_type("error").await["code"], "bad_request");
    assert_eq!(c.ended().await, close_code(4008));
    s.stop().await;
}

#[tokio::test]
async fn a_slow_consumer_is_closed_with_4008_and_others_are_unaffected() {
    let s = Server::start_with(|c| {
        c.outbound_queue = 256;
        c.rate_limit = "1000000/1s".parse().unwrap();
        c.heartbeat_interval = std::time::Duration::from_secs(60);
        c.heartbeat_timeout = std::time::Duration::from_secs(30);
    })
    .await;
    let slow_user = s.register(&unique("zed")).await;
    let mut slow = connect_small(s.addr, &slow_user.token).await;
    {
        use futures_util::{SinkExt, StreamExt};
        slow.send(Message::Text(json!({"type":"join","room":"general"}).to_string().into())).await.unwrap();
        // Read up to the joined reply, then stop reading.
        loop {
            let Some(Ok(Message::Text(t))) = slow.next().await else { panic!("slow client lost") };
            if t.contains("\"joined\"") {
                break;
            }
        }
    }
    let (_, mut sender) = s.user("fast").await;
    sender.join("general").await;
    let body = "y".repeat(2000);
    let mut sent = 0;
    while s.metric("aurora_ws_outbound_overflows_total").await < 1.0 {
        assert!(sent < 200_000, "the slow consumer never overflowed");
        // Bursts well below the queue length, so only the slow client overflows.
        for _ in 0..50 {
            sender.send(json!({"type":"send","room":"general","body": body})).await;
        }
        sent += 50;
        let mut acks = 0;
        while acks < 50 {
            if sender.recv().await["type"] == "ack" {
                acks += 1;
            }
        }
    }
    // The slow client reads what was written, then the 4008 close.
    let ended = {
        use futures_util::StreamExt;
        loop {
            match tokio::time::timeout(crate::harness::DEADLINE, slow.next()).await.expect("close in time") {
                Some(Ok(Message::Close(f))) => break f.map(|f| u16::from(f.code)),
                Some(Ok(_)) => {}
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    };
    assert_eq!(ended, Some(4008));
    // The fast sender was never affected.
    sender.say("general", "still fine").await;
    eventually("disconnect counted", || async {
        (s.metric("aurora_ws_disconnects_total{reason=\"policy\"}").await >= 1.0).then_some(())
    })
    .await;
    s.stop().await;
}
