//! Metrics shared by the binaries: the adapters count their own failures
//! (`aurora_backend_errors_total`), and each binary registers them with
//! [`register_shared`] in its own registry, next to `aurora_build_info`.

use std::sync::LazyLock;

static BACKEND_ERRORS: LazyLock<prometheus::IntCounterVec> = LazyLock::new(|| {
    prometheus::IntCounterVec::new(
        prometheus::Opts::new("aurora_backend_errors_total", "Failed calls to a backing service, by port and kind"),
        &["port", "kind"],
    )
    .unwrap_or_else(|e| panic!("static metric definition is valid: {e}"))
});

/// The `kind` values of `aurora_backend_errors_total`.
pub const KINDS: [&str; 3] = ["connection", "timeout", "error"];

/// Registers the shared metrics in a binary's registry: `aurora_backend_errors_total`
/// with every `ports` × kind series created at 0, and `aurora_build_info{version,mode}` = 1.
pub fn register_shared(registry: &prometheus::Registry, mode: &str, ports: &[&str]) -> prometheus::Result<()> {
    registry.register(Box::new(BACKEND_ERRORS.clone()))?;
    for port in ports {
        for kind in KINDS {
            BACKEND_ERRORS.with_label_values(&[port, kind]);
        }
    }
    let info = prometheus::IntGaugeVec::new(
        prometheus::Opts::new("aurora_build_info", "Always 1: the running version and mode"),
        &["version", "mode"],
    )?;
    registry.register(Box::new(info.clone()))?;
    info.with_label_values(&[env!("CARGO_PKG_VERSION"), mode]).set(1);
    Ok(())
}

/// Counts one failed call to `port` (kafka, redis, mongodb, embedded); `message` is the
/// error's text, classified into a kind (connection, timeout, error).
pub fn backend_error(port: &'static str, message: &str) {
    let lower = message.to_ascii_lowercase();
    let kind = if lower.contains("timed out") || lower.contains("timeout") {
        "timeout"
    } else if ["connection", "broken pipe", "transport", "i/o error", "refused", "reset by peer"]
        .iter()
        .any(|s| lower.contains(s))
    {
        "connection"
    } else {
        "error"
    };
    BACKEND_ERRORS.with_label_values(&[port, kind]).inc();
}
