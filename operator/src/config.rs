//! Operator configuration (env var or flag, parsed once at start-up).

use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "aurora-operator",
    version,
    about = "AuroraChat operator: ChatRoom resources to Kafka topics and rooms"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub config: OperatorConfig,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Print the ChatRoom CustomResourceDefinition as YAML.
    Crd,
    /// Print the ChatApiKey CustomResourceDefinition as YAML.
    ApiKeyCrd,
    /// Run the operator (the default).
    Run,
    /// Create the gateways' HS256 key Secret unless it exists (the chart's install Job).
    JwtSecret {
        /// The Secret's name.
        #[arg(long)]
        name: String,
        /// Its namespace.
        #[arg(long, env = "POD_NAMESPACE")]
        namespace: String,
        /// Labels of a created Secret, `key=value`, repeatable.
        #[arg(long = "label")]
        labels: Vec<String>,
    },
}

#[derive(Debug, Clone, clap::Args)]
pub struct OperatorConfig {
    #[command(flatten)]
    pub services: aurora_core::config::ServiceArgs,
    /// `/healthz`, `/readyz`, `/metrics`.
    #[arg(long, env = "AURORA_OPERATOR_LISTEN", default_value = "127.0.0.1:9200")]
    pub listen: SocketAddr,
    /// Watch ChatRooms in this namespace only; empty watches every namespace.
    #[arg(long, env = "AURORA_OPERATOR_WATCH_NAMESPACE", default_value = "")]
    pub watch_namespace: String,
    /// Namespace of the leader-election Lease; default: the pod's namespace, else `default`.
    #[arg(long, env = "AURORA_OPERATOR_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,
    #[arg(long, env = "AURORA_OPERATOR_LEASE_NAME", default_value = "aurora-operator")]
    pub lease_name: String,
    /// How long a leader's Lease is valid without renewal: a standby takes over within this.
    #[arg(long, env = "AURORA_OPERATOR_LEASE_DURATION", default_value = "15s", value_parser = humantime::parse_duration)]
    pub lease_duration: Duration,
    /// The leader renews this long before its Lease expires.
    #[arg(long, env = "AURORA_OPERATOR_LEASE_GRACE", default_value = "5s", value_parser = humantime::parse_duration)]
    pub lease_grace: Duration,
    /// This replica's identity in the Lease; default: the pod name (HOSTNAME) plus a random suffix.
    #[arg(long, env = "AURORA_OPERATOR_IDENTITY")]
    pub identity: Option<String>,
}

impl OperatorConfig {
    pub fn lease_namespace(&self) -> String {
        if let Some(ns) = &self.lease_namespace {
            return ns.clone();
        }
        let in_cluster = std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace");
        match in_cluster {
            Ok(ns) if !ns.trim().is_empty() => ns.trim().to_owned(),
            _ if !self.watch_namespace.is_empty() => self.watch_namespace.clone(),
            _ => "default".into(),
        }
    }

    pub fn identity(&self) -> String {
        self.identity.clone().unwrap_or_else(|| {
            let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "aurora-operator".into());
            format!("{host}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
        })
    }
}
