//! The operator's errors; each has a short `reason` used in metrics and conditions.

use aurora_core::ports::PortError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kafka: {0}")]
    Kafka(String),
    #[error("store: {0}")]
    Store(#[from] PortError),
    #[error("redis: {0}")]
    Redis(String),
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("invalid spec: {0}")]
    InvalidSpec(String),
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
}

impl Error {
    /// A bounded label for the `reason` of `aurora_operator_errors_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Kafka(_) => "kafka",
            Error::Store(_) => "store",
            Error::Redis(_) => "redis",
            Error::Kube(_) => "kubernetes",
            Error::InvalidSpec(_) => "invalid_spec",
            Error::Finalizer(inner) => match inner.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(e) | kube::runtime::finalizer::Error::CleanupFailed(e) => {
                    e.reason()
                }
                _ => "finalizer",
            },
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
