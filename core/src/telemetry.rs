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

use crate::ports::{Dependency, FailureKind};

/// Registers the shared metrics in a binary's registry: `aurora_backend_errors_total`
/// with every `ports` × kind series created at 0, and `aurora_build_info{version,mode}` = 1.
pub fn register_shared(registry: &prometheus::Registry, mode: &str, ports: &[&str]) -> prometheus::Result<()> {
    registry.register(Box::new(BACKEND_ERRORS.clone()))?;
    for port in ports {
        for kind in FailureKind::ALL {
            BACKEND_ERRORS.with_label_values(&[port, kind.as_str()]);
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

/// Counts one failed call to `dependency` (the adapters call it through
/// [`crate::ports::PortError::unavailable`]).
pub fn backend_error(dependency: Dependency, kind: FailureKind) {
    BACKEND_ERRORS.with_label_values(&[dependency.port_label(), kind.as_str()]).inc();
}
