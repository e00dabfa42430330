//! The test cluster: a namespace per test, ChatRoom helpers, operator processes.

use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::ApiResource;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::process::Command;

use aurora_operator::crd::ChatRoom;
use aurora_operator::topics::{TopicState, Topics};

use crate::cluster::{services, Proc};
use crate::harness::sibling_binary;
use crate::harness::{eventually, unique};

pub async fn client() -> kube::Client {
    assert!(
        std::env::var("KUBECONFIG").is_ok(),
        "KUBECONFIG is not set: start the control plane with `eval \"$(dev/cluster.sh up)\"` or use ./run.sh test"
    );
    kube::Client::try_default().await.expect("a Kubernetes client from KUBECONFIG")
}

/// A fresh namespace; its objects are what this test made.
pub struct Ns {
    pub name: String,
    pub client: kube::Client,
}

impl Ns {
    pub async fn new() -> Ns {
        let client = client().await;
        let name = unique("op").to_lowercase();
        let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
        let ns = serde_json::from_value(json!({"metadata": {"name": name}})).expect("namespace");
        api.create(&PostParams::default(), &ns).await.expect("create namespace");
        Ns { name, client }
    }

    pub fn rooms(&self) -> Api<ChatRoom> {
        Api::namespaced(self.client.clone(), &self.name)
    }

    /// Applies a ChatRoom given as JSON (`spec` only); panics when the apiserver refuses it.
    pub async fn apply(&self, name: &str, spec: Value) -> ChatRoom {
        self.try_apply(name, spec).await.unwrap_or_else(|e| panic!("apply {name}: {e}"))
    }

    /// Applies (server-side) a ChatRoom; `Err` carries the apiserver's message.
    pub async fn try_apply(&self, name: &str, spec: Value) -> Result<ChatRoom, String> {
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), &self.name, &ApiResource::erase::<ChatRoom>(&()));
        let object = json!({
            "apiVersion": "aurorachat.dev/v1alpha1",
            "kind": "ChatRoom",
            "metadata": {"name": name},
            "spec": spec,
        });
        let params = PatchParams::apply("aurora-tests").force();
        match api.patch(name, &params, &Patch::Apply(&object)).await {
            Ok(_) => Ok(self.rooms().get(name).await.expect("get after apply")),
            Err(kube::Error::Api(status)) => Err(status.message),
            Err(e) => Err(e.to_string()),
        }
    }

    pub async fn merge_spec(&self, name: &str, spec: Value) {
        let patch = json!({"spec": spec});
        self.rooms().patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await.expect("patch spec");
    }

    pub async fn delete(&self, name: &str) {
        self.rooms().delete(name, &DeleteParams::default()).await.expect("delete ChatRoom");
    }

    /// Waits until the ChatRoom's condition `type_` has `status` for its current generation.
    pub async fn condition(&self, name: &str, type_: &str, status: &str) -> ChatRoom {
        let api = self.rooms();
        eventually(&format!("{name}: {type_}={status}"), || {
            let api = api.clone();
            async move {
                let room = api.get(name).await.ok()?;
                let current = room.status.as_ref()?.observed_generation == room.metadata.generation;
                let c = room.condition(type_)?;
                (current && c.status == status).then_some(room)
            }
        })
        .await
    }

    /// Waits until the ChatRoom is gone (its finalizer removed).
    pub async fn gone(&self, name: &str) {
        let api = self.rooms();
        eventually(&format!("{name} deleted"), || {
            let api = api.clone();
            async move { api.get_opt(name).await.ok()?.is_none().then_some(()) }
        })
        .await
    }

    /// Reasons of the Events about `name`.
    pub async fn events(&self, name: &str) -> Vec<String> {
        let api: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(self.client.clone(), &self.name);
        let list = api.list(&ListParams::default()).await.expect("list events");
        list.items
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            .filter_map(|e| e.reason)
            .collect()
    }

    /// Starts an operator watching this namespace, with its Lease here too.
    pub async fn operator(&self, lease: &str) -> Proc {
        let mut cmd = Command::new(sibling_binary("aurora-operator"));
        cmd.env("AURORA_OPERATOR_LISTEN", "127.0.0.1:0")
            .env("AURORA_OPERATOR_WATCH_NAMESPACE", &self.name)
            .env("AURORA_OPERATOR_LEASE_NAMESPACE", &self.name)
            .env("AURORA_OPERATOR_LEASE_NAME", lease)
            .env("AURORA_OPERATOR_LEASE_DURATION", format!("{}s", LEASE.as_secs()))
            .env("AURORA_OPERATOR_LEASE_GRACE", "1s");
        Proc::spawn(cmd, &[]).await
    }

    /// The holder of a Lease in this namespace.
    pub async fn lease_holder(&self, lease: &str) -> Option<String> {
        let api: Api<k8s_openapi::api::coordination::v1::Lease> = Api::namespaced(self.client.clone(), &self.name);
        api.get(lease).await.ok()?.spec?.holder_identity
    }
}

/// The operators' Lease duration in these tests.
pub const LEASE: Duration = Duration::from_secs(4);

pub fn topics() -> Topics {
    let brokers = services().into_iter().find(|(k, _)| *k == "AURORA_KAFKA_BROKERS").expect("brokers").1;
    Topics::new(&brokers).expect("kafka admin client")
}

pub async fn topic(name: &str) -> Option<TopicState> {
    topics().describe(&format!("aurora.room.{name}")).await.expect("describe topic")
}

/// A Prometheus sample of `metric` from a process's `/metrics` (0 when absent).
pub async fn metric(base: &str, metric: &str) -> Option<f64> {
    let text = reqwest::get(format!("{base}/metrics")).await.ok()?.text().await.ok()?;
    Some(
        text.lines()
            .find(|l| l.split([' ', '{']).next() == Some(metric))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0.0),
    )
}

/// The room as `GET /api/rooms` lists it to `token`'s user.
pub async fn listed(base: &str, token: &str, room: &str) -> Option<Value> {
    let v: Value = reqwest::Client::new()
        .get(format!("{base}/api/rooms"))
        .bearer_auth(token)
        .send()
        .await
        .expect("list rooms")
        .json()
        .await
        .expect("JSON");
    v["rooms"].as_array()?.iter().find(|r| r["name"] == room).cloned()
}

/// Repeats a request until its reply satisfies `ok`, up to the harness deadline.
pub async fn until_reply(
    client: &mut crate::harness::Client,
    frame: Value,
    what: &str,
    ok: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + crate::harness::DEADLINE;
    loop {
        let v = client.request(frame.clone()).await;
        if ok(&v) {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}; last reply {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The upper bound of the histogram bucket holding quantile `q` of `name` (`None` if empty).
pub async fn bucket_quantile(base: &str, name: &str, q: f64) -> Option<f64> {
    let text = reqwest::get(format!("{base}/metrics")).await.ok()?.text().await.ok()?;
    let prefix = format!("{name}_bucket{{le=\"");
    let buckets: Vec<(f64, f64)> = text
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .filter_map(|rest| {
            let (le, count) = rest.split_once("\"} ")?;
            Some((le.parse().unwrap_or(f64::INFINITY), count.parse().ok()?))
        })
        .collect();
    let total = buckets.last()?.1;
    (total > 0.0).then(|| buckets.iter().find(|(_, c)| *c >= q * total).map(|(le, _)| *le))?
}
