//! The server API across two gateways: keys from one file both watch, publishing through
//! Kafka, membership and disconnects through MongoDB and announcements on Redis.

use crate::cluster::Proc;
use crate::harness::reads::Gateway;
use crate::harness::server_api::{
    manage_rooms_members_and_users, new_key, publish_reaches_members_in_order,
    rotation_loses_nothing_and_revocation_stops_the_key, the_platform_moderates, Declared, KeyFile,
};

const ALL: &[&str] = &["publish", "rooms", "users", "moderate", "read"];

#[tokio::test]
async fn a_backend_publishes_and_manages_through_either_gateway() {
    let _one_at_a_time = crate::cluster::exclusive().await;
    let key = new_key();
    let file = KeyFile::new(&[Declared { bot: Some("Support Bot"), ..Declared::new("support", ALL, &key) }]);
    let (k, v) = file.env();
    let env = [(k, v.as_str()), ("AURORA_RATE_LIMIT", "1000/1s")];
    let _c = Proc::consumer().await;
    let (p1, p2) = (Proc::gateway(&env).await, Proc::gateway(&env).await);
    let g1 = Gateway { base: p1.base(), addr: p1.addr };
    let g2 = Gateway { base: p2.base(), addr: p2.addr };
    publish_reaches_members_in_order(&g1, &g2, &key, ("support", "Support Bot")).await;
    manage_rooms_members_and_users(&g1, &g2, &key).await;
    the_platform_moderates(&g1, &g2, &key, "bot:support").await;
    rotation_loses_nothing_and_revocation_stops_the_key(&[&g1, &g2], &file).await;
}
