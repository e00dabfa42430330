//! Crashes and leader election.

use serde_json::json;
use std::time::{Duration, Instant};

use crate::cluster::exclusive;
use crate::harness::eventually;
use crate::kube_env::{bucket_quantile, metric, topic, until_reply, Ns, LEASE};
use crate::lifecycle::{room_name, Stack};

#[tokio::test]
async fn an_operator_killed_mid_reconcile_converges_after_restart_without_duplicates() {
    let _one = exclusive().await;
    let ns = Ns::new().await;
    let names: Vec<String> = (0..12).map(|_| room_name()).collect();
    for (i, n) in names.iter().enumerate() {
        ns.apply(n, json!({"topic": {"partitions": 1 + (i % 3)}})).await;
    }
    let mut first = ns.operator("aurora-operator").await;
    let rooms = ns.rooms();
    eventually("some rooms reconciled", || {
        let rooms = rooms.clone();
        async move {
            let list = rooms.list(&Default::default()).await.ok()?;
            list.items.iter().any(|r| r.status.is_some()).then_some(())
        }
    })
    .await;
    first.kill9().await;
    let _second = ns.operator("aurora-operator").await;
    for (i, n) in names.iter().enumerate() {
        let room = ns.condition(n, "Ready", "True").await;
        assert_eq!(room.finalizers(), ["aurorachat.dev/cleanup"], "one finalizer");
        assert_eq!(topic(n).await.expect("topic").partitions, 1 + (i % 3));
        let created = ns.events(n).await.iter().filter(|r| *r == "Created").count();
        assert!(created <= 1, "{n}: {created} Created events");
    }
}

use kube::ResourceExt;

async fn leader_of<'a>(ops: &'a [&'a crate::cluster::Proc]) -> Vec<f64> {
    let mut out = Vec::new();
    for op in ops {
        out.push(metric(&op.base(), "aurora_operator_leader").await.unwrap_or(-1.0));
    }
    out
}

#[tokio::test]
async fn exactly_one_replica_leads_and_a_standby_takes_over_within_the_lease() {
    let _one = exclusive().await;
    let s = Stack::start().await; // its operator leads Lease "aurora-operator"
    let ns = &s.ns;
    let a = ns.operator("pair").await;
    let b = ns.operator("pair").await;
    let (a_leads, b_leads) = eventually("one leader", || async {
        let l = leader_of(&[&a, &b]).await;
        (l.iter().sum::<f64>() == 1.0).then_some((l[0] == 1.0, l[1] == 1.0))
    })
    .await;
    // Still exactly one a lease period later.
    let l = eventually("a stable leader", || async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let l = leader_of(&[&a, &b]).await;
        (l.iter().sum::<f64>() == 1.0).then_some(l)
    })
    .await;
    assert_eq!((l[0] == 1.0, l[1] == 1.0), (a_leads, b_leads));
    for op in [&a, &b] {
        let r = reqwest::get(format!("{}/readyz", op.base())).await.expect("readyz");
        assert_eq!(r.status(), 200, "leader and standby are both ready");
    }

    let (mut leader, standby) = if a_leads { (a, b) } else { (b, a) };
    let before = ns.lease_holder("pair").await.expect("holder");
    leader.kill9().await;
    let killed = Instant::now();
    eventually("the standby leads", || async {
        (metric(&standby.base(), "aurora_operator_leader").await == Some(1.0)).then_some(())
    })
    .await;
    let took = killed.elapsed();
    assert!(took <= LEASE + Duration::from_secs(3), "takeover after {took:?} (lease {LEASE:?})");
    assert_ne!(ns.lease_holder("pair").await.expect("holder"), before);

    // SIGTERM releases the Lease on the way out, and another replica takes it.
    let c = ns.operator("pair").await;
    let holder = ns.lease_holder("pair").await.expect("holder");
    standby.terminate().await;
    let stopped = Instant::now();
    assert_ne!(ns.lease_holder("pair").await, Some(holder), "the stopped leader released the Lease");
    eventually("the new replica leads", || async {
        (metric(&c.base(), "aurora_operator_leader").await == Some(1.0)).then_some(())
    })
    .await;
    assert!(stopped.elapsed() <= LEASE + Duration::from_secs(3), "lease taken after {:?}", stopped.elapsed());
}

#[tokio::test]
async fn twenty_rooms_become_usable_through_a_gateway() {
    let _one = exclusive().await;
    let s = Stack::start().await;
    let (user, mut client) = s.user("timer").await;
    let mut took = Vec::new();
    for _ in 0..20 {
        let name = room_name();
        let applied = Instant::now();
        s.ns.apply(&name, json!({"title": "timed"})).await;
        until_reply(&mut client, json!({"type":"join","room":name}), "a joinable room", |v| v["type"] == "joined")
            .await;
        took.push(applied.elapsed());
        client.say(&name, "hi").await;
    }
    took.sort();
    let base = s.operator.base();
    let reconciles = metric(&base, "aurora_operator_reconcile_seconds_count").await.unwrap_or(0.0);
    assert!(reconciles >= 20.0, "every room reconciled at least once ({reconciles})");
    let p99 = bucket_quantile(&base, "aurora_operator_reconcile_seconds", 0.99).await.expect("reconcile histogram");
    println!(
        "{}: apply -> joinable over 20 rooms: p50 {:?}, max {:?}; reconcile p99 <= {p99}s",
        user.name, took[9], took[19]
    );
}
