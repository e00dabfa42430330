//! The operator's errors; each has a short `reason` used in metrics and conditions.

use aurora_core::ports::PortError;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// A Kafka admin operation on one topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicOp {
    Describe,
    Create,
    AddPartitions,
    SetRetention,
    Delete,
}

impl std::fmt::Display for TopicOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TopicOp::Describe => "describe",
            TopicOp::Create => "create",
            TopicOp::AddPartitions => "raise the partitions of",
            TopicOp::SetRetention => "set the retention of",
            TopicOp::Delete => "delete",
        })
    }
}

/// A ChatRoom spec the schema admits but the operator cannot apply.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("{field}: {value:?} is not a duration ({source})")]
    NotADuration { field: &'static str, value: String, source: humantime::DurationError },
    #[error("{field} must be longer than zero")]
    ZeroDuration { field: &'static str },
    #[error("spec.rateLimit.messages must be at least 1")]
    NoMessages,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("kafka: cannot {op} topic {topic}: {code}")]
    Topic { op: TopicOp, topic: String, code: RDKafkaErrorCode },
    /// A blocking Kafka call's task panicked or was cancelled.
    #[error("kafka: {0}")]
    KafkaTask(#[from] tokio::task::JoinError),
    #[error("store: {0}")]
    Store(#[from] PortError),
    #[error("redis: {0}")]
    Redis(#[source] PortError),
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("invalid spec: {0}")]
    InvalidSpec(#[from] SpecError),
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
}

impl Error {
    pub fn topic(op: TopicOp, topic: &str, code: RDKafkaErrorCode) -> Error {
        Error::Topic { op, topic: topic.to_owned(), code }
    }

    /// A bounded label for the `reason` of `aurora_operator_errors_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Kafka(_) | Error::Topic { .. } | Error::KafkaTask(_) => "kafka",
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
