//! The chart as a user meets it, on the kubelet node of `./run.sh cluster up` with the
//! images of `./run.sh images` and `manifests/dev-values.yaml`: `helm install` until
//! every pod is Ready, `helm test`, a ChatRoom usable within 5 s through the gateway pods
//! (and the browser client they serve), a rolling upgrade and pod deletions under 50
//! sending clients with nothing lost, and an uninstall that leaves only the CRD and the
//! ChatRooms.

use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::chart::{repo, run, service};
use crate::harness::{register_at, unique, Client};
use crate::kube_env::{until_reply, Ns};
use crate::lifecycle::room_name;
use crate::load::{assert_nothing_lost, Load};

const RELEASE: &str = "dev";
const GATEWAY: &str = "127.0.0.1:18080";
const BASE: &str = "http://127.0.0.1:18080";

fn pods(ns: &str, component: &str) -> Vec<String> {
    let selector = format!("app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component={component}");
    run("kubectl", &["get", "pods", "-n", ns, "-l", &selector, "-o", "name"]).lines().map(str::to_owned).collect()
}

/// Waits until the old pods are gone and the Deployment is back to its replicas, Ready.
fn replaced(ns: &str, component: &str, old: &[String]) {
    let mut args = vec!["wait", "--for=delete", "--timeout=120s", "-n", ns];
    args.extend(old.iter().map(String::as_str));
    run("kubectl", &args);
    let deployment = format!("deployment/{RELEASE}-aurora-{component}");
    run("kubectl", &["rollout", "status", &deployment, "-n", ns, "--timeout", "120s"]);
}

/// Every stored message of each room, once the consumer has stored `expected` of them.
async fn stored_rooms(token: &str, expected: &HashMap<String, usize>) -> HashMap<String, Vec<Value>> {
    let mut all = HashMap::new();
    for (room, n) in expected {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let messages = crate::harness::stored(BASE, token, room).await;
            if messages.len() >= *n || Instant::now() > deadline {
                all.insert(room.clone(), messages);
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    all
}

/// The release under test: uninstalled when the test ends, passed or not, so a failure
/// leaves no pods on the shared ports or in the consumer group for the tests after it.
pub struct Installed {
    ns: String,
    done: bool,
}

/// `helm install dev charts/aurora -f manifests/dev-values.yaml --wait` into `ns`, on the
/// loopback services, watching `ns`, with `extra` `--set`s; and how long it took.
pub fn install_dev(ns: &str, extra: &[&str]) -> (Installed, Duration) {
    let mut sets = vec![
        format!("operator.watchNamespace={ns}"),
        format!("kafka.brokers={}", service("AURORA_KAFKA_BROKERS")),
        format!("redis.url={}", service("AURORA_REDIS_URL")),
        format!("mongodb.uri={}", service("AURORA_MONGODB_URI")),
    ];
    sets.extend(extra.iter().map(|s| (*s).to_owned()));
    let mut install = vec!["install", RELEASE, "charts/aurora", "-n", ns, "-f", "manifests/dev-values.yaml"];
    for s in &sets {
        install.extend(["--set", s.as_str()]);
    }
    install.extend(["--wait", "--timeout", "120s"]);
    let started = Instant::now();
    run("helm", &install);
    (Installed { ns: ns.to_owned(), done: false }, started.elapsed())
}

impl Drop for Installed {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::process::Command::new("helm")
                .args(["uninstall", RELEASE, "-n", &self.ns, "--wait", "--timeout", "60s"])
                .output();
        }
    }
}

fn kubectl_apply(ns: &str, yaml: &str) {
    use std::io::Write;
    let mut child = std::process::Command::new("kubectl")
        .args(["apply", "-n", ns, "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl");
    child.stdin.take().expect("stdin").write_all(yaml.as_bytes()).expect("write manifest");
    assert!(child.wait().expect("kubectl apply").success(), "kubectl apply:\n{yaml}");
}

// Long by design: one release's life (install, chat, upgrade, uninstall) read top to bottom.
#[tokio::test]
async fn the_chart_runs_on_the_node_survives_upgrades_and_uninstalls_cleanly() {
    let _one = crate::cluster::exclusive().await;
    let ns = Ns::new().await;
    let (mut installed, took) = install_dev(
        &ns.name,
        &[
            // Fifty users register and create rooms from one address, and send faster than 10/10s.
            "gateway.env.AURORA_REGISTER_RATE=100000/1s",
            "gateway.env.AURORA_ROOM_CREATE_RATE=100000/1s",
            "gateway.env.AURORA_RATE_LIMIT=100000/1s",
            // The load clients reconnect with their first access token throughout.
            "gateway.env.AURORA_JWT_TTL=1h",
        ],
    );
    println!("helm install --wait: every pod Ready after {took:?}");
    assert_eq!(pods(&ns.name, "gateway").len(), 2);
    assert_eq!(pods(&ns.name, "operator").len(), 2);
    let jwt_secret = format!("secret/{RELEASE}-aurora-jwt");
    let key_at_install = run("kubectl", &["get", &jwt_secret, "-n", &ns.name, "-o", "jsonpath={.data.jwt-secret}"]);
    assert!(key_at_install.len() >= 64, "the install Job created the JWT key");
    let tested = run("helm", &["test", RELEASE, "-n", &ns.name, "--timeout", "60s"]);
    assert!(tested.contains("Succeeded"), "helm test: {tested}");

    // Prometheus finds the pods through Kubernetes discovery and scrapes all five.
    let up = format!("count(up{{job=\"kubernetes-pods\", namespace=\"{}\"}} == 1)", ns.name);
    crate::observability::until_query(&up, "the 5 pods scraped", |n| n >= 5.0).await;

    // The example ChatRoom, usable through the pods within 5 s of the apply.
    let examples = std::fs::read_to_string(repo().join("manifests/examples/chatrooms.yaml")).expect("examples");
    let example = examples.split("\n---\n").find(|d| d.contains("name: announcements")).expect("the public example");
    let name = room_name();
    let example = example.replace("name: announcements", &format!("name: {name}"));
    // Idle pooled connections retire before the gateways' 10 s idle (header-read) timeout
    // closes them, so no request races a server-side close.
    let http = reqwest::Client::builder().pool_idle_timeout(Duration::from_secs(5)).build().expect("client");
    let alice = register_at(&http, BASE, &unique("na")).await;
    let bob = register_at(&http, BASE, &unique("nb")).await;
    let addr: SocketAddr = GATEWAY.parse().expect("address");
    let applied = Instant::now();
    kubectl_apply(&ns.name, &example);
    let mut a = Client::connect(addr, &alice.token).await;
    let mut b = Client::connect(addr, &bob.token).await;
    until_reply(&mut a, json!({"type":"join","room":name}), "the ChatRoom on the pods", |v| v["type"] == "joined")
        .await;
    b.join(&name).await;
    a.say(&name, "hello from a pod").await;
    assert_eq!(b.recv_type("message").await["body"], "hello from a pod");
    let usable = applied.elapsed();
    println!("kubectl apply -> two users chatted through the gateway pods: {usable:?}");
    assert!(usable < Duration::from_secs(5), "a ChatRoom is usable within 5 s of the apply, took {usable:?}");

    // The browser client, served by the gateway pods.
    let browser = std::process::Command::new("node")
        .args(["dev/e2e/installed.mjs", BASE, &name])
        .current_dir(repo())
        .output()
        .expect("node");
    assert!(
        browser.status.success(),
        "browser against the installed gateways: {}{}",
        String::from_utf8_lossy(&browser.stdout),
        String::from_utf8_lossy(&browser.stderr)
    );

    // Fifty clients in five rooms, sending throughout what follows.
    let mut sessions = Vec::new();
    for _ in 0..50 {
        sessions.push(register_at(&http, BASE, &unique("ld")).await);
    }
    let mut rooms = Vec::new();
    for _ in 0..5 {
        rooms.push(crate::cluster::room(BASE, &sessions[0].token).await);
    }
    // One message a second each, as people chat: FerretDB (the test's MongoDB) scans for
    // every history read on (re)join, so a much larger store slows reconnects here.
    let load = Load::start(addr, sessions, &rooms, Duration::from_secs(1));
    load.every_client_gets(3, "the load", Duration::from_secs(60)).await;

    // A rolling upgrade that restarts every gateway.
    let old = pods(&ns.name, "gateway");
    let mut upgrade = vec!["upgrade", RELEASE, "charts/aurora", "-n", &ns.name, "--reuse-values"];
    upgrade.extend(["--set-string", "gateway.env.AURORA_HISTORY_SIZE=60", "--wait", "--timeout", "120s"]);
    let rolling = Instant::now();
    run("helm", &upgrade);
    replaced(&ns.name, "gateway", &old);
    println!("rolling upgrade of the gateways: {:?}", rolling.elapsed());
    let key_now = run("kubectl", &["get", &jwt_secret, "-n", &ns.name, "-o", "jsonpath={.data.jwt-secret}"]);
    assert_eq!(key_now, key_at_install, "an upgrade keeps the JWT key");
    let me = http.get(format!("{BASE}/api/me")).bearer_auth(&alice.token).send().await.expect("GET /api/me");
    assert_eq!(me.status(), 200, "a token from before the upgrade still works");
    load.every_client_gets(3, "after the rolling upgrade", Duration::from_secs(90)).await;

    // A gateway pod and then the consumer pod deleted under the same load.
    for component in ["gateway", "consumer"] {
        let victim = pods(&ns.name, component).into_iter().take(1).collect::<Vec<_>>();
        run("kubectl", &["delete", "-n", &ns.name, "--wait=false", &victim[0]]);
        replaced(&ns.name, component, &victim);
        load.every_client_gets(3, &format!("after deleting the {component} pod"), Duration::from_secs(90)).await;
    }

    let logs = load.finish().await;
    let mut expected: HashMap<String, usize> = HashMap::new();
    for l in &logs {
        *expected.entry(l.room.clone()).or_default() += l.acked.len();
    }
    let stored = stored_rooms(&alice.token, &expected).await;
    assert_nothing_lost(&logs, &stored);
    let longest = logs.iter().map(|l| l.longest_gap).max().unwrap_or_default();
    let acked: usize = expected.values().sum();
    let reconnects: usize = logs.iter().map(|l| l.reconnects).sum();
    println!("load: {acked} acked messages from 50 clients, all stored once in order; {reconnects} reconnects; longest gap {longest:?}");

    // Uninstall: everything of the release goes; the CRD, the ChatRooms and the JWT key
    // Secret (made by the install Job, not by Helm: a reinstall keeps users signed in) stay.
    run("helm", &["uninstall", RELEASE, "-n", &ns.name, "--wait", "--timeout", "120s"]);
    installed.done = true;
    let selector = format!("app.kubernetes.io/instance={RELEASE}");
    let kinds =
        "deployments,replicasets,pods,services,secrets,serviceaccounts,roles,rolebindings,leases,poddisruptionbudgets";
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // Pods and ReplicaSets go by garbage collection, after helm returns.
        let left = run("kubectl", &["get", kinds, "-n", &ns.name, "-l", &selector, "-o", "name"]);
        let left: Vec<&str> = left.lines().filter(|l| *l != jwt_secret).collect();
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "left a minute after uninstall: {left:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    run("kubectl", &["get", "crd", "chatrooms.aurorachat.dev"]);
    run("kubectl", &["get", &jwt_secret, "-n", &ns.name]);
    assert!(ns.rooms().get_opt(&name).await.expect("get ChatRoom").is_some(), "ChatRooms stay");
    // No operator any more: drop the finalizer so the namespace can go.
    let patch = json!({"metadata": {"finalizers": null}});
    ns.rooms()
        .patch(&name, &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch))
        .await
        .expect("remove finalizer");
}
