//! `aurora-operator jwt-secret`: creates the gateways' HS256 key Secret once, at install
//! (the chart runs it as a Job). A Secret that exists is never touched, so re-rendering the
//! chart (`helm template | kubectl apply`, GitOps tools, upgrades) keeps every token valid.

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;
use kube::api::{Api, PostParams};
use std::collections::BTreeMap;

/// The Secret's key holding the HS256 key.
pub const KEY: &str = "jwt-secret";

/// Whether the Secret was created now (`false`: it already existed and was left alone).
pub async fn ensure(
    client: kube::Client,
    namespace: &str,
    name: &str,
    labels: BTreeMap<String, String>,
) -> Result<bool, kube::Error> {
    let api: Api<Secret> = Api::namespaced(client, namespace);
    let key = aurora_core::sessions::new_secret();
    let secret = Secret {
        metadata: ObjectMeta { name: Some(name.to_owned()), labels: Some(labels), ..ObjectMeta::default() },
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(KEY.to_owned(), ByteString(key.into_bytes()))])),
        ..Secret::default()
    };
    match api.create(&PostParams::default(), &secret).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.is_already_exists() => Ok(false),
        Err(e) => Err(e),
    }
}

/// `key=value` pairs, as the CLI takes labels.
pub fn parse_labels(raw: &[String]) -> Result<BTreeMap<String, String>, String> {
    raw.iter()
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
            _ => Err(format!("--label {pair:?}: expected key=value")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_parse() {
        let l = parse_labels(&["a=b".into(), "app.kubernetes.io/name=aurora".into()]).unwrap();
        assert_eq!(l.get("app.kubernetes.io/name").map(String::as_str), Some("aurora"));
        assert!(parse_labels(&["nope".into()]).is_err());
    }
}
