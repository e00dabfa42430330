//! The Helm chart against the real apiserver: it lints, renders with every option, installs
//! (objects accepted; no node runs the pods yet), its pods are locked down, and the
//! operator's RBAC is enough: an operator running with the chart's ServiceAccount token
//! reconciles a ChatRoom.

use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Command;

use crate::cluster::{services, sibling_binary, Proc};
use crate::kube_env::Ns;
use crate::lifecycle::room_name;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run(program: &str, args: &[&str]) -> String {
    let out =
        Command::new(program).args(args).current_dir(repo()).output().unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn service(name: &str) -> String {
    services().into_iter().find(|(k, _)| *k == name).expect(name).1
}

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
            "serviceMonitor.enabled=true",
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

/// The chart with `values-dev.yaml` on the node of `./run.sh cluster up`: the pods run
/// (images from `./run.sh images`), the operator pod reconciles a ChatRoom in-cluster, and
/// two users chat through the gateway pod and the consumer pod.
#[tokio::test]
async fn the_chart_runs_on_the_node_and_serves_chat() {
    let _one = crate::cluster::exclusive().await;
    let ns = Ns::new().await;
    let release = "dev";
    let watch = format!("operator.watchNamespace={}", ns.name);
    let brokers = format!("kafka.brokers={}", service("AURORA_KAFKA_BROKERS"));
    let redis = format!("redis.url={}", service("AURORA_REDIS_URL"));
    let mongo = format!("mongodb.uri={}", service("AURORA_MONGODB_URI"));
    let values =
        ["-f", "charts/aurora/values-dev.yaml", "--set", &watch, "--set", &brokers, "--set", &redis, "--set", &mongo];
    run("helm", &[&["install", release, "charts/aurora", "-n", &ns.name][..], &values[..]].concat());
    for component in ["gateway", "consumer", "operator"] {
        let deployment = format!("deployment/{release}-aurora-{component}");
        run("kubectl", &["rollout", "status", &deployment, "-n", &ns.name, "--timeout", "120s"]);
    }
    let base = "http://127.0.0.1:18080";
    assert_eq!(crate::cluster::status(&format!("{base}/readyz")).await, 200);

    let name = room_name();
    ns.apply(&name, json!({"title": "served by pods"})).await;
    ns.condition(&name, "Ready", "True").await;
    let http = reqwest::Client::new();
    let alice = crate::harness::register_at(&http, base, &crate::harness::unique("pa")).await;
    let bob = crate::harness::register_at(&http, base, &crate::harness::unique("pb")).await;
    let addr = "127.0.0.1:18080".parse().unwrap();
    let mut a = crate::harness::Client::connect(addr, &alice.token).await;
    let mut b = crate::harness::Client::connect(addr, &bob.token).await;
    crate::kube_env::until_reply(&mut a, json!({"type":"join","room":name}), "the room on the pod", |v| {
        v["type"] == "joined"
    })
    .await;
    b.join(&name).await;
    a.say(&name, "hello from a pod").await;
    assert_eq!(b.recv_type("message").await["body"], "hello from a pod");

    run("helm", &["uninstall", release, "-n", &ns.name, "--wait"]);
    // Pods stop on SIGTERM (the apps are PID 1) and free their host ports.
    let selector = format!("app.kubernetes.io/instance={release}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !run("kubectl", &["get", "pods", "-l", &selector, "-n", &ns.name, "-o", "name"]).trim().is_empty() {
        assert!(std::time::Instant::now() < deadline, "pods still there a minute after uninstall");
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}
