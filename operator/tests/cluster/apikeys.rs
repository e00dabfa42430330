//! ChatApiKey resources: a key declared with kubectl works on every gateway within seconds,
//! and deleting the resource revokes it everywhere as fast (the operator copies keys into
//! MongoDB and announces the change on Redis).

use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::core::ApiResource;
use serde_json::json;

use aurora_core::apikeys;
use aurora_operator::apikey::ChatApiKey;

use crate::cluster::{exclusive, Proc};
use crate::harness::reads::Gateway;
use crate::harness::server_api::key_answers;
use crate::harness::unique;
use crate::kube_env::Ns;

#[tokio::test]
async fn a_chatapikey_applies_on_every_gateway_and_deleting_it_revokes_it() {
    let _one = exclusive().await;
    let ns = Ns::new().await;
    let _operator = ns.operator("aurora-operator").await;
    let (p1, p2) = (Proc::gateway(&[]).await, Proc::gateway(&[]).await);
    let gateways = [Gateway { base: p1.base(), addr: p1.addr }, Gateway { base: p2.base(), addr: p2.addr }];
    let key = apikeys::generate();
    let name = unique("ops").to_lowercase();
    let api: Api<DynamicObject> =
        Api::namespaced_with(ns.client.clone(), &ns.name, &ApiResource::erase::<ChatApiKey>(&()));
    let object = json!({
        "apiVersion": "aurorachat.dev/v1alpha1",
        "kind": "ChatApiKey",
        "metadata": {"name": name},
        "spec": {"scopes": ["read", "publish"], "hashes": [apikeys::hash(&key)], "bot": "Ops Bot"},
    });
    api.patch(&name, &PatchParams::apply("aurora-tests").force(), &Patch::Apply(&object)).await.expect("apply");
    for g in &gateways {
        key_answers(g, &key, 200).await;
    }
    let (status, posted) = crate::harness::moderation::call(
        &gateways[1],
        reqwest::Method::POST,
        "/api/server/rooms/general/messages",
        &key,
        Some(json!({"body": "from kubectl"})),
    )
    .await;
    assert_eq!(status, 201, "{posted}");

    // The schema refuses a malformed hash before the operator sees it.
    let bad_name = unique("bad").to_lowercase();
    let bad = json!({
        "apiVersion": "aurorachat.dev/v1alpha1",
        "kind": "ChatApiKey",
        "metadata": {"name": bad_name},
        "spec": {"scopes": ["read"], "hashes": ["not-a-hash"]},
    });
    let refused = api.patch(&bad_name, &PatchParams::apply("aurora-tests").force(), &Patch::Apply(&bad)).await;
    assert!(refused.is_err(), "a malformed hash is refused by the apiserver");

    api.delete(&name, &DeleteParams::default()).await.expect("delete");
    for g in &gateways {
        key_answers(g, &key, 401).await;
    }
}
