//! Private ChatRooms: members only, changes apply to open connections.

use serde_json::json;

use crate::cluster::exclusive;
use crate::kube_env::{listed, until_reply};
use crate::lifecycle::{get, room_name, Stack};

#[tokio::test]
async fn private_rooms_admit_members_only_and_membership_changes_apply_at_once() {
    let _one = exclusive().await;
    let s = Stack::start().await;
    let base = s.gateway.base();
    let (alice, mut a) = s.user("alice").await;
    let (bob, mut b) = s.user("bob").await;
    let name = room_name();
    s.ns.apply(&name, json!({"visibility": "private", "members": [alice.name.to_uppercase()]})).await;
    s.ns.condition(&name, "Ready", "True").await;

    a.join(&name).await;
    let refused = b.request(json!({"type":"join","room":name})).await;
    assert_eq!(refused["code"], "forbidden", "{refused}");
    assert!(listed(&base, &bob.token, &name).await.is_none(), "hidden from non-members");
    assert_eq!(listed(&base, &alice.token, &name).await.expect("listed to members")["managed"], true);
    let (status, _) = get(&format!("{base}/api/rooms/{name}/messages"), &bob.token).await;
    assert_eq!(status, 403, "non-members cannot read history");
    // The name belongs to the ChatRoom.
    let r = s.http.post(format!("{base}/api/rooms")).bearer_auth(&bob.token).json(&json!({"name": name})).send().await;
    assert_eq!(r.expect("POST").status(), 409);

    // Added to the spec: in, on the same connection.
    s.ns.merge_spec(&name, json!({"members": [alice.name, bob.name]})).await;
    until_reply(&mut b, json!({"type":"join","room":name}), "bob may join", |v| v["type"] == "joined").await;
    a.say(&name, "welcome bob").await;
    assert_eq!(b.recv_type("message").await["body"], "welcome bob");

    // Removed from the spec: out at once, with a `left` push, and nothing more arrives.
    s.ns.merge_spec(&name, json!({"members": [alice.name]})).await;
    let left = b.recv_type("left").await;
    assert_eq!((left["room"].as_str(), left["reason"].as_str()), (Some(name.as_str()), Some("removed")));
    assert!(left.get("ref").is_none(), "a push, not a reply");
    a.say(&name, "bob is gone").await;
    let again = b.request(json!({"type":"join","room":name})).await;
    assert_eq!(again["code"], "forbidden", "{again}");
    let probe = b.request(json!({"type":"leave","room":"general"})).await;
    assert_eq!(probe["type"], "left", "no room traffic reached bob before this reply: {probe}");
    assert!(listed(&base, &bob.token, &name).await.is_none());
}

/// Announcements are hints: a gateway that missed one still applies the change at
/// its next periodic re-read (`AURORA_ROOM_REFRESH`).
#[tokio::test]
async fn a_missed_announcement_heals_at_the_next_refresh() {
    use aurora_core::distributed::MongoStore;
    use aurora_core::model::{Room, RoomSource, Visibility};

    let _one = exclusive().await;
    let uri = crate::cluster::services().into_iter().find(|(k, _)| *k == "AURORA_MONGODB_URI").expect("uri").1;
    let store = MongoStore::connect(&uri).await.expect("mongodb");
    let gateway = crate::cluster::Proc::gateway(&[("AURORA_ROOM_REFRESH", "1s")]).await;
    let http = reqwest::Client::new();
    let base = gateway.base();
    let alice = crate::harness::register_at(&http, &base, &crate::harness::unique("alice")).await;
    let bob = crate::harness::register_at(&http, &base, &crate::harness::unique("bob")).await;
    let mut room = Room::new_api(&room_name(), Some("quiet"));
    room.source = RoomSource::Operator;
    room.visibility = Visibility::Private;
    room.members = vec![alice.name.to_lowercase(), bob.name.to_lowercase()];
    store.put_room(&room).await.expect("register");
    let mut b = crate::harness::Client::connect(gateway.addr, &bob.token).await;
    b.join(&room.name).await;

    // Changed in the store with no announcement on aurora:control.
    room.members.retain(|m| *m != bob.name.to_lowercase());
    store.put_room(&room).await.expect("update");
    let left = b.recv_type("left").await;
    assert_eq!(left["reason"], "removed", "{left}");
    store.delete_room(&room.name).await.expect("clean up");
}

/// `spec.moderators` applied with the API server: those users moderate the room on the
/// running gateway, without a restart.
#[tokio::test]
async fn chatroom_moderators_get_their_rights_without_a_restart() {
    let _one = exclusive().await;
    let s = Stack::start().await;
    let base = s.gateway.base();
    let (alice, mut a) = s.user("alice").await;
    let (bob, mut b) = s.user("bob").await;
    let name = room_name();
    s.ns.apply(&name, json!({})).await;
    s.ns.condition(&name, "Ready", "True").await;
    a.join(&name).await;
    b.join(&name).await;
    let id = a.say(&name, "mine").await["id"].as_str().expect("id").to_owned();
    let mute = |token: &str| {
        let url = format!("{base}/api/rooms/{name}/mutes");
        s.http.post(url).bearer_auth(token.to_owned()).json(&json!({"username": alice.name, "duration_s": 60}))
    };
    assert_eq!(mute(&bob.token).send().await.expect("POST").status(), 403, "not a moderator yet");
    let refused = b.request(json!({"type":"delete","room":name,"id":id})).await;
    assert_eq!(refused["code"], "forbidden", "{refused}");

    s.ns.merge_spec(&name, json!({"moderators": [bob.name.to_uppercase()]})).await;
    until_reply(&mut b, json!({"type":"delete","room":name,"id":id}), "bob may delete alice's message", |v| {
        v["type"] == "ack"
    })
    .await;
    assert_eq!(a.recv_type("event").await["moderator"], true);
    assert_eq!(mute(&bob.token).send().await.expect("POST").status(), 204);
    let muted = until_reply(&mut a, json!({"type":"send","room":name,"body":"hi"}), "alice is muted", |v| {
        v["code"] == "forbidden"
    })
    .await;
    assert!(muted["retry_after_ms"].as_u64().is_some(), "{muted}");
}
