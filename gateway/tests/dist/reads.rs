//! Read state across two gateways, stored in MongoDB and announced over Redis.

use crate::cluster::Proc;
use crate::harness::reads::{badge, read_on_one_gateway_clears_the_other, Gateway};
use crate::harness::Client;

fn gateway(p: &Proc) -> Gateway {
    Gateway { base: p.base(), addr: p.addr }
}

#[tokio::test]
async fn a_read_on_one_gateway_clears_the_badge_on_the_other_and_survives_their_restart() {
    let _one_at_a_time = crate::cluster::exclusive().await;
    let _c = Proc::consumer().await;
    let env = [("AURORA_RATE_LIMIT", "1000/1s")];
    let (g1, g2) = (Proc::gateway(&env).await, Proc::gateway(&env).await);
    let (bob, room) = read_on_one_gateway_clears_the_other(&gateway(&g1), &gateway(&g2)).await;
    g1.terminate().await;
    g2.terminate().await;

    let g = Proc::gateway(&env).await;
    assert_eq!(badge(&gateway(&g), &bob.token, &room).await, (55, 0, 0), "the pointer outlives the gateways");
    let mut c = Client::connect(g.addr, &bob.token).await;
    assert_eq!(c.join(&room).await["read"], 55);
}
