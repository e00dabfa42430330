//! The dashboard and the alerts against a real Prometheus (`dev/services.sh up prometheus`):
//! after a short load through two gateways, the consumer and the operator, every PromQL
//! expression of `charts/aurora/dashboards/aurora.json` (template variables filled in)
//! returns data; every alert rule loads and its `promtool test rules` cases pass; each
//! binary's `/metrics` lists exactly the names docs/metrics.md gives it.

use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::chart::{repo, run};
use crate::cluster::Proc;
use crate::harness::webhooks::{Hook, HookFile, Receiver};
use crate::harness::{register_at, unique, Client};
use crate::kube_env::{until_reply, Ns};
use crate::lifecycle::room_name;

fn prometheus() -> String {
    std::env::var("AURORA_PROMETHEUS_URL")
        .expect("AURORA_PROMETHEUS_URL is not set: `eval \"$(dev/services.sh up prometheus)\"` or ./run.sh test")
}

/// Runs an instant query; returns the result vector.
async fn query(expr: &str) -> Vec<Value> {
    let v: Value = reqwest::Client::new()
        .get(format!("{}/api/v1/query", prometheus()))
        .query(&[("query", expr)])
        .send()
        .await
        .expect("query Prometheus")
        .json()
        .await
        .expect("JSON");
    assert_eq!(v["status"], "success", "{expr}: {v}");
    v["data"]["result"].as_array().cloned().unwrap_or_default()
}

/// Waits until the first sample of `expr` satisfies `ok` (a missing result reads 0).
pub async fn until_query(expr: &str, what: &str, ok: impl Fn(f64) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = query(expr).await;
        let v: f64 = r.first().and_then(|s| s["value"][1].as_str()?.parse().ok()).unwrap_or(0.0);
        if ok(v) {
            return;
        }
        assert!(Instant::now() < deadline, "Prometheus: no {what} within 60 s ({expr} = {v})");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Registers the processes as file-discovered targets labelled with the namespace and a pod name.
struct Targets(std::path::PathBuf);

impl Targets {
    fn write(ns: &str, procs: &[(&str, &Proc)]) -> Targets {
        let dir = std::env::var("AURORA_PROMETHEUS_TARGETS").expect("AURORA_PROMETHEUS_TARGETS");
        let groups: Vec<Value> = procs
            .iter()
            .map(|(pod, p)| json!({"targets": [p.addr.to_string()], "labels": {"namespace": ns, "pod": pod}}))
            .collect();
        let path = std::path::Path::new(&dir).join(format!("{ns}.json"));
        std::fs::write(&path, Value::Array(groups).to_string()).expect("write targets");
        Targets(path)
    }
}

impl Drop for Targets {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Every `expr` of the dashboard's panels, with its panel title.
fn dashboard_queries() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(repo().join("charts/aurora/dashboards/aurora.json")).expect("dashboard");
    let dashboard: Value = serde_json::from_str(&text).expect("dashboard JSON");
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            out.push((
                panel["title"].as_str().unwrap_or("").to_owned(),
                target["expr"].as_str().expect("expr").to_owned(),
            ));
        }
    }
    out
}

fn exported(text: &str) -> BTreeSet<String> {
    text.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.split(' ').next().map(str::to_owned)).collect()
}

/// The documented names of one `## Section` of docs/metrics.md.
fn documented(sections: &[&str]) -> BTreeSet<String> {
    let doc = std::fs::read_to_string(repo().join("docs/metrics.md")).expect("docs/metrics.md");
    let mut names = BTreeSet::new();
    for section in sections {
        let start = doc.find(&format!("## {section}\n")).unwrap_or_else(|| panic!("section {section}"));
        let body = &doc[start + 4..];
        let body = &body[..body.find("\n## ").unwrap_or(body.len())];
        names.extend(body.lines().filter_map(|l| l.strip_prefix("| `")?.split('`').next().map(str::to_owned)));
    }
    names
}

// Long by design: one observed deployment, then every dashboard query and alert against it.
#[tokio::test]
async fn every_dashboard_query_returns_data_and_every_alert_is_tested() {
    let _one = crate::cluster::exclusive().await;
    let promtool = std::env::var("AURORA_PROMTOOL").expect("AURORA_PROMTOOL");
    let checked = run(&promtool, &["check", "rules", "charts/aurora/rules/aurora.rules.yaml"]);
    assert!(checked.contains("SUCCESS: 7 rules found"), "promtool check rules: {checked}");
    run(&promtool, &["test", "rules", "charts/aurora/rules/aurora.rules.test.yaml"]);

    let ns = Ns::new().await;
    let operator = ns.operator("aurora-operator").await;
    // A webhook endpoint, so the webhook metrics and panels have data.
    let hook = Receiver::start().await;
    let endpoint = unique("observed").to_lowercase();
    let hooks = HookFile::new(&[Hook { name: &endpoint, url: hook.url(), rooms: "*", retry_for: "1m" }]);
    let (hk, hv) = hooks.env();
    let consumer = Proc::consumer_with(&[(hk, hv.as_str())]).await;
    let env = [("AURORA_RATE_LIMIT", "1000/1s")];
    let g1 = Proc::gateway(&env).await;
    let g2 = Proc::gateway(&env).await;
    let _targets = Targets::write(
        &ns.name,
        &[("gateway-1", &g1), ("gateway-2", &g2), ("consumer-1", &consumer), ("operator-1", &operator)],
    );

    // Prometheus scrapes all four before the load starts, so its rates cover the load.
    until_query(&format!("count(up{{namespace=\"{}\"}} == 1)", ns.name), "the four targets up", |n| n >= 4.0).await;

    // A short load: a ChatRoom with a tight limit, two users on two gateways, some refusals.
    let name = room_name();
    ns.apply(&name, json!({"title": "observed", "rateLimit": {"messages": 30, "period": "1m"}})).await;
    ns.condition(&name, "Ready", "True").await;
    let http = reqwest::Client::new();
    let alice = register_at(&http, &g1.base(), &unique("oa")).await;
    let bob = register_at(&http, &g2.base(), &unique("ob")).await;
    let mut a = Client::connect(g1.addr, &alice.token).await;
    let mut b = Client::connect(g2.addr, &bob.token).await;
    until_reply(&mut a, json!({"type":"join","room":name}), "the ChatRoom", |v| v["type"] == "joined").await;
    until_reply(&mut b, json!({"type":"join","room":name}), "the ChatRoom", |v| v["type"] == "joined").await;
    // The endpoint's group starts at the end of aurora.events once it holds its partitions:
    // bob leaves and joins again (member events) until one arrives.
    let deadline = Instant::now() + Duration::from_secs(60);
    while hook.delivered().is_empty() {
        assert!(Instant::now() < deadline, "no webhook delivered within 60 s");
        b.request(json!({"type":"leave","room":name})).await;
        until_reply(&mut b, json!({"type":"join","room":name}), "the ChatRoom", |v| v["type"] == "joined").await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut limited = 0;
    for i in 0..40 {
        let v = a.request(json!({"type":"send","room":name,"body":format!("observed {i}")})).await;
        if v["code"] == "rate_limited" {
            limited += 1;
        }
        b.send(json!({"type":"typing","room":name})).await;
    }
    assert!(limited > 0, "the room's limit refused some sends");
    let bad = http.get(format!("{}/api/rooms", g1.base())).bearer_auth("not-a-token").send().await.expect("GET");
    assert_eq!(bad.status(), 401);
    drop(b);

    // Prometheus has scraped the load once the stored count shows up there, and the slower
    // gauges (the consumer's partition lag and the operator's ChatRooms, every 5 s) too.
    let n = &ns.name;
    until_query(&format!("sum(aurora_consumer_messages_total{{namespace=\"{n}\"}})"), "the load stored", |v| v >= 30.0)
        .await;
    until_query(&format!("count(aurora_consumer_partition_lag{{namespace=\"{n}\"}})"), "partition lag", |v| v > 0.0)
        .await;
    until_query(&format!("count(aurora_operator_chatrooms{{namespace=\"{n}\"}})"), "ChatRoom gauges", |v| v > 0.0)
        .await;
    // Two more scrapes, so every rate() has two samples after the load.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let mut empty = Vec::new();
    for (title, expr) in dashboard_queries() {
        let filled = expr.replace("$namespace", &ns.name).replace("$pod", ".*");
        let result = query(&filled).await;
        let first = result.first().map(|s| s["value"][1].as_str().unwrap_or("").to_owned()).unwrap_or_default();
        println!("panel {title:?}: {filled} -> {} series, first {first}", result.len());
        if result.is_empty() {
            empty.push(format!("{title}: {filled}"));
        }
    }
    assert!(empty.is_empty(), "dashboard queries without data:\n{}", empty.join("\n"));

    // Each binary exports exactly what docs/metrics.md lists for it.
    for (section, base) in [("Gateway", g1.base()), ("Consumer", consumer.base()), ("Operator", operator.base())] {
        let text = reqwest::get(format!("{base}/metrics")).await.expect("/metrics").text().await.expect("text");
        let sections: &[&str] = match section {
            "Operator" => &[section],
            "Consumer" => &[section, "Shared", "Webhooks"],
            _ => &[section, "Shared"],
        };
        assert_eq!(exported(&text), documented(sections), "{section}: /metrics vs docs/metrics.md");
    }

    // The headline panels as pictures in docs/metrics.md, from this run's data.
    let out = repo().join("docs/metrics");
    let script = std::process::Command::new("python3")
        .arg(repo().join("dev/panels.py"))
        .args(["--prometheus", &prometheus(), "--namespace", &ns.name, "--minutes", "2", "--out"])
        .arg(&out)
        .output()
        .expect("python3");
    assert!(script.status.success(), "dev/panels.py: {}", String::from_utf8_lossy(&script.stderr));
}
