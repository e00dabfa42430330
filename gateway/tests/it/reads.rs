//! Read state in embedded mode (docs/protocol.md §1 `unread`, §3 `read`).

use serde_json::json;

use crate::harness::reads::{badge, read_on_one_gateway_clears_the_other, Gateway};
use crate::harness::{data_dir, register_at, unique, Binary, Client};

#[tokio::test]
async fn a_read_on_one_connection_clears_the_other_and_survives_a_restart() {
    let (_keep, dir) = data_dir();
    let env = [("AURORA_RATE_LIMIT", "1000/1s")];
    let gw = Binary::start(&dir, &env).await;
    let g = Gateway { base: gw.base(), addr: gw.addr };
    let (bob, room) = read_on_one_gateway_clears_the_other(&g, &g).await;
    assert!(gw.terminate().await.success());

    let gw = Binary::start(&dir, &env).await;
    let g = Gateway { base: gw.base(), addr: gw.addr };
    assert_eq!(badge(&g, &bob.token, &room).await, (55, 0, 0), "the pointer outlives the restart");
    let mut c = Client::connect(gw.addr, &bob.token).await;
    assert_eq!(c.join(&room).await["read"], 55);
    assert!(gw.terminate().await.success());
}

#[tokio::test]
async fn a_conversation_counts_from_its_start_and_a_public_room_from_the_first_join() {
    let (_keep, dir) = data_dir();
    let gw = Binary::start(&dir, &[]).await;
    let g = Gateway { base: gw.base(), addr: gw.addr };
    let http = reqwest::Client::new();
    let ann = register_at(&http, &g.base, &unique("ann")).await;
    let bob = register_at(&http, &g.base, &unique("bob")).await;
    let r = http.post(format!("{}/api/dms", g.base)).bearer_auth(&ann.token).json(&json!({"users":[bob.name]}));
    let dm = r.send().await.expect("open").json::<serde_json::Value>().await.expect("JSON");
    let dm = dm["name"].as_str().expect("name").to_owned();
    let mut a = Client::connect(gw.addr, &ann.token).await;
    a.join(&dm).await;
    a.join("general").await;
    a.say(&dm, &format!("@{} are you there?", bob.name)).await;
    a.say(&dm, "hello?").await;
    a.say("general", "before bob ever came").await;
    // Bob never opened either: the conversation is all unread, the public room nothing.
    assert_eq!(badge(&g, &bob.token, &dm).await, (0, 2, 1));
    assert_eq!(badge(&g, &bob.token, "general").await, (0, 0, 0));
    let mut b = Client::connect(gw.addr, &bob.token).await;
    let joined = b.join("general").await;
    assert_eq!(joined["read"], joined["last_seq"], "joining a public room starts its pointer at the end");
    a.say("general", "now he is here").await;
    let read = joined["read"].as_u64().expect("read");
    assert_eq!(badge(&g, &bob.token, "general").await, (read, 1, 0));
    assert!(gw.terminate().await.success());
}
