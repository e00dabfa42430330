//! The webhooks file (`AURORA_WEBHOOKS_FILE`): the endpoints and what each subscribes to.

use serde::Deserialize;
use std::path::Path;
use std::time::Duration;

use super::EventType;

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("AURORA_WEBHOOKS_FILE: cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("AURORA_WEBHOOKS_FILE: {0}")]
    Parse(#[from] serde_yaml::Error),
    #[error("AURORA_WEBHOOKS_FILE: endpoint {name:?}: {problem}")]
    Invalid { name: String, problem: String },
}

/// The file's shape:
///
/// ```yaml
/// endpoints:
///   - name: indexer                 # [a-z0-9-], unique; metrics and the consumer group use it
///     url: https://search.internal/hooks/aurora
///     secrets: [whsec_…]            # each signs every request (two during a rotation)
///     rooms: ["*"]                  # room name patterns, `*` matches any run of characters
///     events: [message.created]     # empty or absent: every type
///     timeout: 10s                  # per request
///     retry_for: 1h                 # then the delivery goes to the dead-letter topic
/// ```
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookFile {
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    pub name: String,
    pub url: String,
    pub secrets: Vec<String>,
    #[serde(default = "every_room")]
    pub rooms: Vec<String>,
    #[serde(default)]
    pub events: Vec<EventType>,
    #[serde(default = "default_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    #[serde(default = "default_retry_for", deserialize_with = "duration")]
    pub retry_for: Duration,
}

fn every_room() -> Vec<String> {
    vec!["*".into()]
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_retry_for() -> Duration {
    Duration::from_secs(3600)
}

fn duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text).map_err(serde::de::Error::custom)
}

/// Shortest secret accepted: a signature is only as strong as its key.
const MIN_SECRET: usize = 16;

impl WebhookFile {
    pub fn load(path: &Path) -> Result<Self, WebhookError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| WebhookError::Read { path: path.display().to_string(), source })?;
        Self::parse(&text)
    }

    pub fn parse(text: &str) -> Result<Self, WebhookError> {
        let file: WebhookFile = serde_yaml::from_str(text)?;
        let mut names = std::collections::HashSet::new();
        for e in &file.endpoints {
            let invalid = |problem: &str| WebhookError::Invalid { name: e.name.clone(), problem: problem.into() };
            let name_ok = (1..=63).contains(&e.name.len())
                && e.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !name_ok {
                return Err(invalid("the name must be 1-63 characters of a-z, 0-9 and -"));
            }
            if !names.insert(e.name.as_str()) {
                return Err(invalid("two endpoints have this name"));
            }
            if !(e.url.starts_with("http://") || e.url.starts_with("https://")) {
                return Err(invalid("url must start with http:// or https://"));
            }
            if e.secrets.is_empty() || e.secrets.iter().any(|s| s.len() < MIN_SECRET) {
                return Err(invalid("give at least one secret, each of at least 16 characters"));
            }
            if e.rooms.is_empty() {
                return Err(invalid("rooms is empty: it would receive nothing (\"*\" is every room)"));
            }
            if e.timeout.is_zero() {
                return Err(invalid("timeout must be more than 0"));
            }
        }
        Ok(file)
    }
}

impl Endpoint {
    /// Whether this endpoint receives an event of `kind` in `room`.
    pub fn wants(&self, kind: EventType, room: &str) -> bool {
        (self.events.is_empty() || self.events.contains(&kind)) && self.rooms.iter().any(|p| glob_match(p, room))
    }

    /// The Kafka consumer group reading [`super::EVENTS_TOPIC`] for this endpoint.
    pub fn group(&self) -> String {
        format!("aurora-webhook-{}", self.name)
    }

    /// The group replaying this endpoint's dead letters.
    pub fn replay_group(&self) -> String {
        format!("aurora-webhook-replay-{}", self.name)
    }
}

/// `*` matches any run of characters (none included); everything else matches itself.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else { return false };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else { return rest.is_empty() };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        for (p, t, want) in [
            ("*", "general", true),
            ("support-*", "support-eu", true),
            ("support-*", "sales", false),
            ("*-eu", "support-eu", true),
            ("a*b*c", "abc", true),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "acb", false),
            ("ab*ba", "aba", false),
            ("general", "general", true),
            ("general", "general2", false),
        ] {
            assert_eq!(glob_match(p, t), want, "{p} vs {t}");
        }
    }

    #[test]
    fn a_file_parses_with_defaults_and_bad_entries_are_named() {
        let f = WebhookFile::parse(
            "endpoints:\n  - name: indexer\n    url: http://127.0.0.1:1/h\n    secrets: [0123456789abcdef]\n    events: [message.created, moderation]\n    retry_for: 30s\n",
        )
        .unwrap();
        let e = &f.endpoints[0];
        assert_eq!((e.timeout, e.retry_for), (Duration::from_secs(10), Duration::from_secs(30)));
        assert!(e.wants(EventType::MessageCreated, "any"));
        assert!(!e.wants(EventType::MessageEdited, "any"));
        assert_eq!(e.group(), "aurora-webhook-indexer");
        for (bad, says) in [
            ("endpoints:\n  - {name: Bad, url: http://x, secrets: [0123456789abcdef]}", "a-z"),
            ("endpoints:\n  - {name: a, url: ftp://x, secrets: [0123456789abcdef]}", "url"),
            ("endpoints:\n  - {name: a, url: http://x, secrets: [short]}", "16 characters"),
            ("endpoints:\n  - {name: a, url: http://x, secrets: [0123456789abcdef], events: [nope]}", "unknown variant"),
            ("endpoints:\n  - {name: a, url: http://x, secrets: [0123456789abcdef], colour: red}", "unknown field"),
            (
                "endpoints:\n  - {name: a, url: http://x, secrets: [0123456789abcdef]}\n  - {name: a, url: http://y, secrets: [0123456789abcdef]}",
                "two endpoints",
            ),
        ] {
            let e = WebhookFile::parse(bad).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
