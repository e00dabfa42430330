//! docs/metrics.md lists exactly the metrics the binaries define, and the gateway's
//! `/metrics` output carries the documented gateway names it has samples for.

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::harness::Server;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `aurora_*` names quoted in a source file.
fn names_in_code(path: &str) -> BTreeSet<String> {
    let text = std::fs::read_to_string(repo().join(path)).expect(path);
    text.split('"')
        .skip(1)
        .step_by(2)
        .filter(|s| s.starts_with("aurora_") && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        .map(str::to_owned)
        .collect()
}

/// The documented names of one `## Section` of docs/metrics.md.
fn documented(section: &str) -> BTreeSet<String> {
    let doc = std::fs::read_to_string(repo().join("docs/metrics.md")).expect("docs/metrics.md");
    let start = doc.find(&format!("## {section}\n")).unwrap_or_else(|| panic!("section {section}"));
    let body = &doc[start + 4..];
    let body = &body[..body.find("\n## ").unwrap_or(body.len())];
    body.lines().filter_map(|l| l.strip_prefix("| `")?.split('`').next().map(str::to_owned)).collect()
}

fn documented_shared() -> BTreeSet<String> {
    documented("Shared")
}

#[test]
fn the_metrics_docs_and_the_code_list_the_same_names() {
    for (section, file) in [
        ("Gateway", "gateway/src/metrics.rs"),
        ("Consumer", "consumer/src/metrics.rs"),
        ("Webhooks", "consumer/src/webhooks/metrics.rs"),
        ("Operator", "operator/src/metrics.rs"),
        ("Shared", "core/src/telemetry.rs"),
    ] {
        assert_eq!(documented(section), names_in_code(file), "docs/metrics.md `{section}` vs {file}");
    }
}

#[tokio::test]
async fn the_gateway_exports_what_the_docs_list() {
    let s = Server::start().await;
    let (_, mut c) = s.user("met").await;
    c.join("general").await;
    c.say("general", "counted").await;
    let text = s.http.get(s.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let exported: BTreeSet<String> =
        text.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.split(' ').next().map(str::to_owned)).collect();
    let mut documented = documented("Gateway");
    documented.extend(documented_shared());
    assert!(exported.is_subset(&documented), "exported but not documented: {:?}", exported.difference(&documented));
    for name in ["aurora_ws_connections", "aurora_messages_accepted_total", "aurora_send_ack_seconds"] {
        assert!(exported.contains(name), "{name} missing from /metrics");
    }
    s.stop().await;
}
