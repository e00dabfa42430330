//! `dev/images.py` (what `./run.sh images` runs) writes image archives whose root
//! filesystem alone runs each binary as the non-root user.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).expect("JSON")
}

#[test]
fn image_archives_run_their_binary_as_the_non_root_user() {
    // target/<profile>/deps/images-… → target/<profile>
    let exe = std::env::current_exe().expect("test binary");
    let bin_dir = exe.parent().and_then(|d| d.parent()).expect("profile dir");
    let out = tempfile::tempdir().expect("temp dir");
    let listed = ok(Command::new("python3").arg(repo().join("dev/images.py")).args([
        "--bin-dir",
        bin_dir.to_str().unwrap(),
        "--version",
        "9.9.9",
        "--out",
        out.path().to_str().unwrap(),
    ]));
    for (component, args) in [("gateway", ["--help"]), ("consumer", ["--help"]), ("operator", ["crd"])] {
        assert!(listed.contains(&format!("aurorachat/{component}:9.9.9")), "{listed}");
        let dir = out.path().join(component);
        std::fs::create_dir(&dir).unwrap();
        ok(Command::new("tar").arg("xf").arg(out.path().join(format!("{component}-9.9.9.tar"))).arg("-C").arg(&dir));
        let manifest = json(&dir.join("manifest.json"));
        assert_eq!(manifest[0]["RepoTags"][0], format!("aurorachat/{component}:9.9.9"));
        let config = json(&dir.join(manifest[0]["Config"].as_str().unwrap()));
        assert_eq!(config["config"]["User"], "65532:65532", "non-root");
        let binary = format!("/usr/local/bin/aurora-{component}");
        assert_eq!(config["config"]["Entrypoint"][0], binary.as_str());
        let root = dir.join("rootfs");
        std::fs::create_dir(&root).unwrap();
        ok(Command::new("tar")
            .arg("xf")
            .arg(dir.join(manifest[0]["Layers"][0].as_str().unwrap()))
            .arg("-C")
            .arg(&root));
        assert!(std::fs::read_to_string(root.join("etc/passwd")).unwrap().contains(":65532:65532:"));
        assert!(root.join("etc/ssl/certs/ca-certificates.crt").exists(), "CA certificates");
        let data = std::fs::metadata(root.join("data")).expect("/data for the embedded store");
        assert_eq!(std::os::unix::fs::MetadataExt::uid(&data), 65532, "/data belongs to the image's user");
        // Nothing but the image's own files: chroot into it as the image's user.
        let ran = ok(Command::new("chroot").arg("--userspec=65532:65532").arg(&root).arg(&binary).args(args));
        assert!(ran.contains(if component == "operator" { "CustomResourceDefinition" } else { "AURORA" }), "{ran}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
