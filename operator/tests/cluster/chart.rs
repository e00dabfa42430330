//! The Helm chart against the real apiserver: it lints, renders with every option and the
//! API server accepts every object (dry run), the schema refuses bad values, its pods are
//! locked down, and the operator's RBAC is enough: an operator running with the chart's
//! ServiceAccount token reconciles a ChatRoom. (`node.rs` runs it on the kubelet node.)

use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Command;

use crate::cluster::{services, Proc};
use crate::harness::sibling_binary;
use crate::kube_env::Ns;
use crate::lifecycle::room_name;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn run(program: &str, args: &[&str]) -> String {
    let out =
        Command::new(program).args(args).current_dir(repo()).output().unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn service(name: &str) -> String {
    services().into_iter().find(|(k, _)| *k == name).expect(name).1
}

/// Runs a command and returns its exit status and stderr.
fn attempt(program: &str, args: &[&str]) -> (bool, String) {
    let out =
        Command::new(program).args(args).current_dir(repo()).output().unwrap_or_else(|e| panic!("{program}: {e}"));
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// A minimal CRD of the Prometheus operator's group (schema left open), so the API server
/// can dry-run the chart's PodMonitors and PrometheusRule.
fn monitoring_crd(kind: &str, plural: &str) -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.monitoring.coreos.com")},
        "spec": {
            "group": "monitoring.coreos.com", "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural, "singular": kind.to_lowercase(), "listKind": format!("{kind}List")},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]
        }
    })
}

#[tokio::test]
async fn the_chart_renders_objects_the_api_server_accepts_and_refuses_bad_values() {
    let _one = crate::cluster::exclusive().await;
    let full = "charts/aurora/ci/full-values.yaml";
    run("helm", &["lint", "charts/aurora", "--strict"]);
    run("helm", &["lint", "charts/aurora", "--strict", "-f", full]);
    run("helm", &["lint", "charts/aurora", "--strict", "-f", "manifests/dev-values.yaml"]);

    for (kind, plural) in [("PodMonitor", "podmonitors"), ("PrometheusRule", "prometheusrules")] {
        let crd = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(crd.path(), monitoring_crd(kind, plural).to_string()).expect("write CRD");
        run("kubectl", &["apply", "--server-side", "-f", crd.path().to_str().unwrap()]);
        let name = format!("crd/{plural}.monitoring.coreos.com");
        run("kubectl", &["wait", "--for", "condition=Established", "--timeout", "30s", &name]);
    }

    // The JWT key is made at install, never rendered: two renders are identical, so a
    // `helm template | kubectl apply` upgrade keeps every token valid.
    let twice = [run("helm", &["template", "t", "charts/aurora"]), run("helm", &["template", "t", "charts/aurora"])];
    assert_eq!(twice[0], twice[1], "helm template renders the same objects every time");
    assert!(!twice[0].contains("kind: Secret"), "no Secret (and no key) in the rendered chart");
    assert!(twice[0].contains("- jwt-secret"), "the install Job creates it");

    let ns = Ns::new().await;
    for (what, extra) in [("default values", None), ("every option", Some(full))] {
        let mut args = vec!["template", "t", "charts/aurora", "-n", &ns.name];
        if let Some(f) = extra {
            args.extend(["-f", f]);
        }
        let rendered = run("helm", &args);
        let file = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(file.path(), &rendered).expect("write manifest");
        let accepted = run(
            "kubectl",
            &["apply", "--server-side", "--dry-run=server", "-n", &ns.name, "-f", file.path().to_str().unwrap()],
        );
        let objects = rendered.matches("\nkind: ").count();
        assert_eq!(accepted.lines().count(), objects, "{what}: every object accepted:\n{accepted}");
        if extra.is_some() {
            for kind in [
                "PodMonitor",
                "PrometheusRule",
                "Ingress",
                "HorizontalPodAutoscaler",
                "PodDisruptionBudget",
                "NetworkPolicy",
            ] {
                assert!(accepted.contains(&kind.to_lowercase()), "{kind} accepted:\n{accepted}");
            }
            assert!(
                rendered.contains("secretKeyRef: {name: \"aurora-connections\", key: redis-url}"),
                "connections from the Secret"
            );
            assert!(rendered.contains("aurora_ws_connections"), "HPA on connections per pod");
            // An existing JWT Secret is used, none generated; the one Secret holds the
            // webhook endpoints, in the file the consumer reads.
            let secrets: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&rendered)
                .filter_map(|doc| serde::Deserialize::deserialize(doc).ok())
                .filter(|doc: &serde_yaml::Value| doc["kind"] == "Secret")
                .collect();
            assert_eq!(secrets.len(), 1, "only the webhooks Secret");
            let hooks = secrets[0]["stringData"]["webhooks.yaml"].as_str().expect("webhooks.yaml");
            let parsed = aurora_core::webhooks::WebhookFile::parse(hooks).expect("the consumer reads it");
            assert_eq!(parsed.endpoints[0].rooms, ["support-*"]);
            assert!(rendered.contains("AURORA_MEMBER_EVENTS"), "gateways write member events");
            assert!(rendered.contains("alert: AuroraOperatorNoLeader"), "the alerts are in the PrometheusRule");
            assert!(
                rendered.contains("grafana_dashboard: \"1\""),
                "the dashboard ConfigMap is labelled for the sidecar"
            );
        }
    }

    for (bad, says) in
        [("gateway.replicas=two", "replicas"), ("gateway.colour=blue", "colour"), ("redis.url=localhost:6379", "url")]
    {
        let (ok, err) = attempt("helm", &["template", "t", "charts/aurora", "--set", bad]);
        assert!(!ok, "{bad} must be refused");
        assert!(
            err.contains("values don't meet the specifications of the schema") && err.contains(says),
            "{bad}: {err}"
        );
    }
    let (ok, err) = attempt("helm", &["template", "t", "charts/aurora", "--set", "consumer.replicas=13"]);
    assert!(!ok && err.contains("must not exceed kafka.partitions"), "more consumers than partitions: {err}");
}

// Long by design: one install checked object by object, in the order a reviewer reads them.
#[tokio::test]
async fn the_chart_installs_locked_down_and_its_rbac_runs_the_operator() {
    let _one = crate::cluster::exclusive().await;
    run("helm", &["lint", "charts/aurora", "--strict"]);
    let all_options = run(
        "helm",
        &[
            "template",
            "t",
            "charts/aurora",
            "--set",
            "podMonitor.enabled=true",
            "--set",
            "ingress.enabled=true",
            "--set",
            "hostNetwork=true",
        ],
    );
    for kind in ["PodMonitor", "Ingress", "HorizontalPodAutoscaler", "PodDisruptionBudget"] {
        assert!(all_options.contains(&format!("kind: {kind}")), "{kind} renders");
    }
    assert!(
        !all_options.contains("containerPort"),
        "hostNetwork containers list no ports (they would become hostPorts)"
    );

    let ns = Ns::new().await;
    let release = "chat";
    // The JWT key Job needs a pod network; this namespace's pods never run (no hostNetwork).
    let jwt = format!("jwt.existingSecret={release}-jwt");
    let brokers = format!("kafka.brokers={}", service("AURORA_KAFKA_BROKERS"));
    let redis = format!("redis.url={}", service("AURORA_REDIS_URL"));
    let mongo = format!("mongodb.uri={}", service("AURORA_MONGODB_URI"));
    let watch = format!("operator.watchNamespace={}", ns.name);
    run(
        "helm",
        &[
            "install",
            release,
            "charts/aurora",
            "-n",
            &ns.name,
            "--set",
            &brokers,
            "--set",
            &redis,
            "--set",
            &mongo,
            "--set",
            &watch,
            "--set",
            &jwt,
        ],
    );

    let deployments: Value =
        serde_json::from_str(&run("kubectl", &["get", "deployments", "-n", &ns.name, "-o", "json"])).expect("JSON");
    let items = deployments["items"].as_array().expect("items");
    assert_eq!(items.len(), 3, "gateway, consumer, operator");
    for d in items {
        let pod = &d["spec"]["template"]["spec"];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{}", d["metadata"]["name"]);
        for c in pod["containers"].as_array().unwrap() {
            let sc = &c["securityContext"];
            assert_eq!(sc["readOnlyRootFilesystem"], true);
            assert_eq!(sc["allowPrivilegeEscalation"], false);
            assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
        }
    }

    // The operator with exactly the chart's ServiceAccount.
    let account = format!("{release}-aurora-operator");
    let token = run("kubectl", &["create", "token", &account, "-n", &ns.name]);
    let kubeconfig = tempfile::NamedTempFile::new().expect("temp file");
    let admin = std::env::var("KUBECONFIG").expect("KUBECONFIG");
    let server = run("kubectl", &["config", "view", "--raw", "-o", "jsonpath={.clusters[0].cluster.server}"]);
    let ca = run(
        "kubectl",
        &["config", "view", "--raw", "-o", "jsonpath={.clusters[0].cluster.certificate-authority-data}"],
    );
    let config = json!({
        "apiVersion": "v1", "kind": "Config", "current-context": "sa",
        "clusters": [{"name": "c", "cluster": {"server": server, "certificate-authority-data": ca}}],
        "users": [{"name": "sa", "user": {"token": token.trim()}}],
        "contexts": [{"name": "sa", "context": {"cluster": "c", "user": "sa", "namespace": ns.name}}],
    });
    std::fs::write(kubeconfig.path(), config.to_string()).expect("write kubeconfig");
    let can = |verb: &str, what: &str| {
        let out = Command::new("kubectl")
            .args([
                "auth",
                "can-i",
                verb,
                what,
                "-n",
                &ns.name,
                "--as",
                &format!("system:serviceaccount:{}:{account}", ns.name),
            ])
            .env("KUBECONFIG", &admin)
            .output()
            .expect("kubectl auth can-i");
        String::from_utf8_lossy(&out.stdout).trim() == "yes"
    };
    assert!(can("watch", "chatrooms.aurorachat.dev") && can("patch", "chatrooms.aurorachat.dev/status"));
    assert!(
        !can("get", "secrets") && !can("create", "deployments") && !can("delete", "chatrooms.aurorachat.dev"),
        "least privilege"
    );

    let mut cmd = tokio::process::Command::new(sibling_binary("aurora-operator"));
    cmd.env("KUBECONFIG", kubeconfig.path())
        .env("AURORA_OPERATOR_LISTEN", "127.0.0.1:0")
        .env("AURORA_OPERATOR_WATCH_NAMESPACE", &ns.name)
        .env("AURORA_OPERATOR_LEASE_NAMESPACE", &ns.name)
        .env("AURORA_OPERATOR_LEASE_NAME", &account);
    let operator = Proc::spawn(cmd, &[]).await;
    let name = room_name();
    ns.apply(&name, json!({"title": "via the chart's RBAC"})).await;
    ns.condition(&name, "Ready", "True").await;
    operator.terminate().await;
    assert_eq!(ns.lease_holder(&account).await, None, "the Lease was released with the chart's RBAC");
    run("helm", &["uninstall", release, "-n", &ns.name]);
}
