//! The CRD copies users install (`manifests/`, the chart's `crds/`) are what the code generates.

use std::path::PathBuf;

#[test]
fn committed_crd_copies_equal_the_generated_crd() {
    let generated = aurora_operator::crd::crd_yaml().expect("CRD serializes");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    for copy in ["manifests/crds/chatroom.yaml", "charts/aurora/crds/chatroom.yaml"] {
        let committed = std::fs::read_to_string(root.join(copy)).unwrap_or_else(|e| panic!("{copy}: {e}"));
        assert!(
            committed == generated,
            "{copy} differs from `aurora-operator crd`: regenerate it with `cargo run -p aurora-operator -- crd > {copy}`"
        );
    }
}

#[test]
fn committed_chatapikey_crd_copies_equal_the_generated_crd() {
    let generated = aurora_operator::crd::apikey_crd_yaml().expect("CRD serializes");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    for copy in ["manifests/crds/chatapikey.yaml", "charts/aurora/crds/chatapikey.yaml"] {
        let committed = std::fs::read_to_string(root.join(copy)).unwrap_or_else(|e| panic!("{copy}: {e}"));
        assert!(
            committed == generated,
            "{copy} differs from `aurora-operator api-key-crd`: regenerate it with `cargo run -p aurora-operator -- api-key-crd > {copy}`"
        );
    }
}

#[test]
fn the_crd_has_the_columns_and_short_name_users_see() {
    let yaml = aurora_operator::crd::crd_yaml().expect("CRD serializes");
    let crd: serde_json::Value = serde_yaml::from_str(&yaml).expect("YAML");
    assert_eq!(crd["spec"]["names"]["shortNames"][0], "room");
    let columns: Vec<&str> = crd["spec"]["versions"][0]["additionalPrinterColumns"]
        .as_array()
        .expect("columns")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(columns, ["Title", "Visibility", "Ready", "Age"]);
    assert!(crd["spec"]["versions"][0]["subresources"]["status"].is_object());
}
