//! Integration tests: the gateway on 127.0.0.1:0, spoken to over HTTP and WebSocket.

use aurora_testkit as harness;

mod abuse;
mod chat;
mod conversations;
mod dms;
mod errors;
mod http_api;
mod lifecycle;
mod limits;
mod metrics_doc;
mod moderation;
mod outage;
mod presence;
mod proxies;
mod reads;
mod receipts;
mod resend;
mod rfc6455;
mod server_api;
mod sessions;
mod throttles;
mod tokens;
