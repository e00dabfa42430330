//! Direct conversations (docs/protocol.md §1): one per set of people, private to them.

use serde_json::{json, Value};

use crate::harness::{unique, Server};

fn dms(list: &Value) -> Vec<Value> {
    list["rooms"].as_array().unwrap().iter().filter(|r| r["dm"] == true).cloned().collect()
}

#[tokio::test]
async fn a_conversation_is_one_per_set_of_people_private_and_titled_by_the_others() {
    let s = Server::start().await;
    let (ann, bob, cat, dan) = (
        s.register(&unique("ann")).await,
        s.register(&unique("Bob")).await,
        s.register(&unique("cat")).await,
        s.register(&unique("dan")).await,
    );
    let (status, one) = s.post("/api/dms", Some(&ann.token), json!({"users":[bob.name]})).await;
    assert_eq!(status, 201, "{one}");
    let name = one["name"].as_str().unwrap().to_owned();
    assert!(name.starts_with("dm-"));
    assert_eq!((one["title"].as_str(), one["dm"].as_bool()), (Some(bob.name.as_str()), Some(true)));
    let (status, again) = s.post("/api/dms", Some(&bob.token), json!({"users":[ann.name.to_uppercase()]})).await;
    assert_eq!((status, again["name"].as_str()), (200, Some(name.as_str())), "the same two: the same conversation");
    assert_eq!(again["title"], ann.name.as_str(), "each sees the other's name");

    let (_, listed) = s.get("/api/rooms", &ann.token).await;
    assert_eq!(dms(&listed).len(), 1);
    assert_eq!(dms(&listed)[0]["title"], bob.name.as_str());
    let (_, theirs) = s.get("/api/rooms", &dan.token).await;
    assert!(dms(&theirs).is_empty(), "others do not see it: {theirs}");
    let (status, _) = s.get(&format!("/api/rooms/{name}/messages"), &dan.token).await;
    assert_eq!(status, 403);
    let mut d = s.ws(&dan.token).await;
    d.recv_type("hello").await;
    let refused = d.request(json!({"type":"join","room":name})).await;
    assert_eq!(refused["code"], "forbidden", "{refused}");

    // The two talk in it.
    let mut a = s.ws(&ann.token).await;
    let mut b = s.ws(&bob.token).await;
    a.join(&name).await;
    b.join(&name).await;
    a.say(&name, "just between us").await;
    assert_eq!(b.recv_type("message").await["body"], "just between us");

    // A group conversation is another room; its members see the others' names.
    let (status, group) = s.post("/api/dms", Some(&ann.token), json!({"users":[bob.name, cat.name]})).await;
    assert_eq!(status, 201);
    assert_ne!(group["name"], name.as_str());
    let (_, cats) = s.get("/api/rooms", &cat.token).await;
    let title = dms(&cats)[0]["title"].as_str().unwrap().to_owned();
    let mut names: Vec<&str> = title.split(", ").collect();
    names.sort();
    let mut want = vec![ann.name.as_str(), bob.name.as_str()];
    want.sort();
    assert_eq!(names, want);
    s.stop().await;
}

#[tokio::test]
async fn bad_conversation_requests_get_a_clear_error() {
    let s = Server::start().await;
    let ann = s.register(&unique("ann")).await;
    let ten: Vec<String> = (0..10).map(|i| format!("user{i}")).collect();
    for (body, status) in [
        (json!({"users":[]}), 400),
        (json!({"users":[ann.name]}), 400),
        (json!({"users":["no such user here"]}), 400),
        (json!({"users":[unique("ghost")]}), 404),
        (json!({"users":ten}), 400),
        (json!({"people":["x"]}), 400),
    ] {
        let (got, err) = s.post("/api/dms", Some(&ann.token), body.clone()).await;
        assert_eq!(got, status, "{body}: {err}");
        assert!(err["error"]["message"].is_string(), "{err}");
    }
    let (status, _) = s.post("/api/rooms", Some(&ann.token), json!({"name":"dm-0123456789abcdef01234567"})).await;
    assert_eq!(status, 400, "dm- names are kept for conversations");
    let (status, _) = s.post("/api/dms", None, json!({"users":["x"]})).await;
    assert_eq!(status, 401);
    s.stop().await;
}

#[tokio::test]
async fn twenty_clients_opening_the_same_conversation_at_once_get_one() {
    let s = Server::start().await;
    let (ann, bob) = (s.register(&unique("ann")).await, s.register(&unique("bob")).await);
    let mut opening = tokio::task::JoinSet::new();
    for i in 0..20 {
        let (me, other) = if i % 2 == 0 { (ann.clone(), bob.name.clone()) } else { (bob.clone(), ann.name.clone()) };
        let (http, url) = (s.http.clone(), s.url("/api/dms"));
        opening.spawn(async move {
            let r = http.post(url).bearer_auth(&me.token).json(&json!({"users":[other]})).send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap()["name"].as_str().unwrap().to_owned())
        });
    }
    let answers = opening.join_all().await;
    let names: std::collections::HashSet<&str> = answers.iter().map(|(_, n)| n.as_str()).collect();
    assert_eq!(names.len(), 1, "{answers:?}");
    assert_eq!(answers.iter().filter(|(status, _)| *status == 201).count(), 1, "one created it: {answers:?}");
    let (_, listed) = s.get("/api/rooms", &ann.token).await;
    assert_eq!(dms(&listed).len(), 1);
    s.stop().await;
}

#[tokio::test]
async fn a_blocked_user_cannot_send_to_the_conversation_and_is_told_nothing_more() {
    let s = Server::start().await;
    let (ann, bob) = (s.register(&unique("ann")).await, s.register(&unique("bob")).await);
    let (_, dm) = s.post("/api/dms", Some(&ann.token), json!({"users":[bob.name]})).await;
    let name = dm["name"].as_str().unwrap().to_owned();
    let mut a = s.ws(&ann.token).await;
    let mut b = s.ws(&bob.token).await;
    a.join(&name).await;
    b.join(&name).await;
    a.join("general").await;
    let first = a.say(&name, "hi bob").await["id"].as_str().unwrap().to_owned();

    let (status, _) = s.post("/api/blocks", Some(&bob.token), json!({"username": ann.name})).await;
    assert_eq!(status, 204);
    let (_, listed) = s.get("/api/blocks", &bob.token).await;
    assert_eq!(listed["blocked"], json!([ann.name]));
    for frame in [
        json!({"type":"send","room":name,"body":"are you there?"}),
        json!({"type":"react","room":name,"id":first,"emoji":"👍"}),
        json!({"type":"edit","room":name,"id":first,"body":"hi?"}),
    ] {
        let refused = a.request(frame.clone()).await;
        assert_eq!(refused["code"], "forbidden", "{frame}: {refused}");
        assert_eq!(refused["message"], "you cannot send to this conversation");
    }
    a.say("general", "rooms are not affected").await;
    // Bob still writes to Ann; after unblocking, Ann writes again.
    b.say(&name, "I can still write").await;
    let r = s.http.delete(s.url(&format!("/api/blocks/{}", ann.name))).bearer_auth(&bob.token).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 204);
    a.say(&name, "thanks").await;
    let (_, page) = s.get(&format!("/api/rooms/{name}/messages"), &bob.token).await;
    let bodies: Vec<&str> = page["messages"].as_array().unwrap().iter().map(|m| m["body"].as_str().unwrap()).collect();
    assert_eq!(bodies, ["hi bob", "I can still write", "thanks"], "nothing refused was stored");

    let (status, _) = s.post("/api/blocks", Some(&bob.token), json!({"username": bob.name})).await;
    assert_eq!(status, 400);
    let (status, _) = s.post("/api/blocks", Some(&bob.token), json!({"username": unique("ghost")})).await;
    assert_eq!(status, 404);
    s.stop().await;
}

#[tokio::test]
async fn a_member_leaves_a_group_conversation_and_every_list_follows_live() {
    let s = Server::start().await;
    let (ann, bob, cat) =
        (s.register(&unique("ann")).await, s.register(&unique("bob")).await, s.register(&unique("cat")).await);
    let mut b = s.ws(&bob.token).await;
    b.recv_type("hello").await;
    let mut c = s.ws(&cat.token).await;
    c.recv_type("hello").await;

    // Opening a conversation tells the others' connections to re-read their room lists.
    let (status, group) = s.post("/api/dms", Some(&ann.token), json!({"users":[bob.name, cat.name]})).await;
    assert_eq!(status, 201);
    let name = group["name"].as_str().unwrap().to_owned();
    b.recv_type("rooms_changed").await;
    c.recv_type("rooms_changed").await;
    let (_, listed) = s.get("/api/rooms", &bob.token).await;
    assert_eq!(dms(&listed).len(), 1, "{listed}");

    c.join(&name).await;
    b.join(&name).await;
    let (status, _) = s.post(&format!("/api/dms/{name}/leave"), Some(&cat.token), json!({})).await;
    assert_eq!(status, 204);
    let left = c.recv_type("left").await;
    assert_eq!((left["room"].as_str(), left["reason"].as_str()), (Some(name.as_str()), Some("removed")));
    b.recv_type("rooms_changed").await;
    let (_, listed) = s.get("/api/rooms", &bob.token).await;
    assert_eq!(dms(&listed)[0]["title"], ann.name.as_str(), "titled without the one who left");
    let (_, theirs) = s.get("/api/rooms", &cat.token).await;
    assert!(dms(&theirs).is_empty(), "{theirs}");

    // Gone for good: no join, no history, no way back by opening it again.
    let refused = c.request(json!({"type":"join","room":name})).await;
    assert_eq!(refused["code"], "forbidden", "{refused}");
    let (status, _) = s.get(&format!("/api/rooms/{name}/messages"), &cat.token).await;
    assert_eq!(status, 403);
    let (status, again) = s.post("/api/dms", Some(&cat.token), json!({"users":[ann.name, bob.name]})).await;
    assert_eq!((status, again["error"]["message"].as_str()), (403, Some("you left this conversation")));
    let (status, _) = s.post(&format!("/api/dms/{name}/leave"), Some(&cat.token), json!({})).await;
    assert_eq!(status, 404, "leaving twice");

    // The others go on talking.
    let mut a = s.ws(&ann.token).await;
    a.join(&name).await;
    a.say(&name, "just us now").await;
    assert_eq!(b.recv_type("message").await["body"], "just us now");

    // A conversation of two cannot be left; other rooms are not conversations.
    let (_, two) = s.post("/api/dms", Some(&ann.token), json!({"users":[bob.name]})).await;
    let (status, err) =
        s.post(&format!("/api/dms/{}/leave", two["name"].as_str().unwrap()), Some(&ann.token), json!({})).await;
    assert_eq!(status, 409, "{err}");
    let (status, _) = s.post("/api/dms/general/leave", Some(&ann.token), json!({})).await;
    assert_eq!(status, 404);
    s.stop().await;
}
