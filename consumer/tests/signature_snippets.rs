//! The signature-verification snippets of docs/server-api.md, run as a receiver would run
//! them (bash + openssl, python3, node) against signatures the consumer makes.

use std::path::PathBuf;
use std::process::Command;

use aurora_core::webhooks::signature_header;

fn snippets() -> Vec<(String, String)> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/server-api.md");
    let doc = std::fs::read_to_string(path).expect("docs/server-api.md");
    doc.split("<!-- snippet: ")
        .skip(1)
        .map(|part| {
            let (lang, rest) = part.split_once(" -->").expect("marker");
            let code = rest.split("```").nth(1).expect("a fenced block after the marker");
            let code = code.split_once('\n').expect("fence line").1;
            (lang.to_owned(), code.to_owned())
        })
        .collect()
}

fn run(lang: &str, code: &str, secret: &str, timestamp: i64, signature: &str, body: &[u8]) -> (bool, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let body_file = dir.path().join("body.json");
    std::fs::write(&body_file, body).expect("write body");
    let mut cmd = match lang {
        "sh" => {
            let mut c = Command::new("bash");
            c.args(["-c", code]);
            c
        }
        "python" => {
            let mut c = Command::new("python3");
            c.args(["-c", code]);
            c
        }
        "js" => {
            let mut c = Command::new("node");
            c.args(["-e", code]);
            c
        }
        other => panic!("unknown snippet language {other}"),
    };
    let out = cmd
        .env("SECRET", secret)
        .env("TIMESTAMP", timestamp.to_string())
        .env("SIGNATURE", signature)
        .env("BODY_FILE", &body_file)
        .output()
        .unwrap_or_else(|e| panic!("run the {lang} snippet: {e}"));
    let said = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(said == "valid" || said == "invalid", "{lang}: printed {said:?}, stderr {err}");
    (out.status.success() && said == "valid", said)
}

#[test]
fn each_documented_snippet_accepts_a_real_signature_and_refuses_forgeries() {
    let snippets = snippets();
    let langs: Vec<&str> = snippets.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(langs, ["sh", "python", "js"]);
    let body = br#"{"id":"0193f2c4","type":"message.created","room":"support-eu","seq":42,"data":{"body":"h\u00e9llo \"quoted\" $HOME `x`"}}"#;
    let (old, new) = ("whsec_old_0123456789abcdef", "whsec_new_0123456789abcdef");
    let now = aurora_core::now_ms() / 1000;
    // During a rotation the header carries both signatures; a receiver knows either secret.
    let header = signature_header(&[new.to_owned(), old.to_owned()], now, body);
    for (lang, code) in &snippets {
        for secret in [old, new] {
            assert!(run(lang, code, secret, now, &header, body).0, "{lang}: a real signature with {secret}");
        }
        let tampered = String::from_utf8_lossy(body).replace("42", "43");
        assert!(!run(lang, code, new, now, &header, tampered.as_bytes()).0, "{lang}: another body");
        assert!(!run(lang, code, "whsec_wrong_0123456789abcdef", now, &header, body).0, "{lang}: another secret");
        let stale = now - 600;
        let old_header = signature_header(&[new.to_owned()], stale, body);
        assert!(!run(lang, code, new, stale, &old_header, body).0, "{lang}: a request signed 10 minutes ago");
        assert!(!run(lang, code, new, now + 1, &header, body).0, "{lang}: another timestamp than the signed one");
    }
}
