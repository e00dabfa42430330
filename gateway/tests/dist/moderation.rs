//! Moderation across two gateways: applied through MongoDB and announcements on Redis.

use crate::cluster::Proc;
use crate::harness::moderation::{a_member_can_do_none_of_it, cast, every_action_reaches_the_other_gateway};
use crate::harness::reads::Gateway;

#[tokio::test]
async fn a_moderator_on_one_gateway_acts_on_a_member_on_the_other() {
    let _one_at_a_time = crate::cluster::exclusive().await;
    let _c = Proc::consumer().await;
    let env = [("AURORA_RATE_LIMIT", "1000/1s")];
    let (p1, p2) = (Proc::gateway(&env).await, Proc::gateway(&env).await);
    let g1 = Gateway { base: p1.base(), addr: p1.addr };
    let g2 = Gateway { base: p2.base(), addr: p2.addr };
    let c = cast(&g1).await;
    a_member_can_do_none_of_it(&g2, &c).await;
    every_action_reaches_the_other_gateway(&g1, &g2, &c).await;
}
