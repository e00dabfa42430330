//! Moderation in embedded mode (docs/moderation.md).

use crate::harness::moderation::{a_member_can_do_none_of_it, cast, every_action_reaches_the_other_gateway};
use crate::harness::reads::Gateway;
use crate::harness::Server;

#[tokio::test]
async fn moderators_act_and_members_cannot() {
    let s = Server::start_with(|c| c.rate_limit = "1000/1s".parse().expect("rate")).await;
    let g = Gateway { base: s.url(""), addr: s.addr };
    let c = cast(&g).await;
    a_member_can_do_none_of_it(&g, &c).await;
    every_action_reaches_the_other_gateway(&g, &g, &c).await;
    assert_eq!(s.metric("aurora_moderation_actions_total{action=\"ban\"}").await, 1.0);
    s.stop().await;
}
