//! Server API keys (docs/server-api.md): what a platform's backend presents on
//! `/api/server/...`. Keys are declared with their scopes; only a SHA-256 of each key is
//! kept, so the file that declares them (a Kubernetes Secret, a file on a laptop) holds no
//! key. A key may list several hashes: rotate by adding the new one, moving the backend
//! over, then removing the old one.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use crate::ports::PortResult;
use crate::ratelimit::RateLimit;

/// Keys declared in Kubernetes (`ChatApiKey` resources, which the operator copies into the
/// store); gateways read them at start, on a `keys` announcement and periodically.
#[async_trait::async_trait]
pub trait ApiKeyStore: Send + Sync {
    async fn api_keys(&self) -> PortResult<Vec<KeySpec>>;
}

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Post messages as the key's bot.
    Publish,
    /// Create, change and delete rooms and their members; read presence.
    Rooms,
    /// Disconnect and deactivate users.
    Users,
    /// Kick, ban, mute and delete anyone's message.
    Moderate,
    /// Read rooms, history and the server API's audit log.
    Read,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Publish => "publish",
            Scope::Rooms => "rooms",
            Scope::Users => "users",
            Scope::Moderate => "moderate",
            Scope::Read => "read",
        }
    }
}

/// One key as declared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySpec {
    /// Who uses the key; in the audit log and the metrics. `[a-z0-9-]`, 1-40 characters.
    pub name: String,
    /// SHA-256 of each valid key, hex (`sha256:` prefix allowed); two during a rotation.
    pub hashes: Vec<String>,
    pub scopes: Vec<Scope>,
    /// The name the key's bot posts under (default: the key's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot: Option<String>,
    /// Requests per period (default 100/1s), as `AURORA_RATE_LIMIT` is written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<String>,
}

/// The file `AURORA_API_KEYS_FILE` names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFile {
    #[serde(default)]
    pub keys: Vec<KeySpec>,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path}: {source}")]
    Parse { path: String, source: serde_yaml::Error },
    #[error("key {name:?}: {why}")]
    Invalid { name: String, why: String },
}

/// A declared key, ready to check requests against.
#[derive(Debug)]
pub struct ApiKey {
    pub name: String,
    pub scopes: Vec<Scope>,
    /// The bot's display name.
    pub bot: String,
    pub rate_limit: RateLimit,
}

impl ApiKey {
    pub fn allows(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }

    /// The bot's user id: `bot:` and the key's name, so no account can hold it.
    pub fn bot_id(&self) -> String {
        format!("bot:{}", self.name)
    }
}

pub const DEFAULT_KEY_RATE: RateLimit = RateLimit { messages: 100, period: std::time::Duration::from_secs(1) };

/// Keys by the hash of the key.
#[derive(Debug, Default)]
pub struct Keyring {
    by_hash: HashMap<String, Arc<ApiKey>>,
}

impl Keyring {
    pub fn from_file(path: &Path) -> Result<Keyring, KeyError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read { path: shown.clone(), source })?;
        Keyring::parse(&text, &shown)
    }

    /// A key file's text; `path` names it in errors.
    pub fn parse(text: &str, path: &str) -> Result<Keyring, KeyError> {
        Keyring::from_specs(KeyFile::parse(text, path)?.keys)
    }

    /// The keys of a file (all valid, or an error) and of the store (an invalid entry, or
    /// one reusing a hash, is left out and reported).
    pub fn from_sources(file: Vec<KeySpec>, store: Vec<KeySpec>) -> Result<Keyring, KeyError> {
        let mut ring = Keyring::from_specs(file)?;
        for spec in store {
            let name = spec.name.clone();
            match Keyring::from_specs(vec![spec]) {
                Ok(one) if one.by_hash.keys().all(|h| !ring.by_hash.contains_key(h)) => {
                    ring.by_hash.extend(one.by_hash)
                }
                Ok(_) => tracing::warn!(key = %name, "a ChatApiKey reuses a declared hash; left out"),
                Err(e) => tracing::warn!(key = %name, error = %e, "invalid ChatApiKey left out"),
            }
        }
        Ok(ring)
    }

    pub fn from_specs(specs: Vec<KeySpec>) -> Result<Keyring, KeyError> {
        let mut by_hash = HashMap::new();
        for spec in specs {
            let invalid = |why: &str| KeyError::Invalid { name: spec.name.clone(), why: why.to_owned() };
            let name_ok = (1..=40).contains(&spec.name.len())
                && spec.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !name_ok {
                return Err(invalid("a name is 1-40 of a-z, 0-9 and -"));
            }
            if spec.hashes.is_empty() {
                return Err(invalid("no hashes: list the SHA-256 of the key"));
            }
            let rate_limit = match &spec.rate_limit {
                Some(r) => r.parse::<RateLimit>().map_err(|_| invalid("rate_limit is like 100/1s"))?,
                None => DEFAULT_KEY_RATE,
            };
            let key = Arc::new(ApiKey {
                name: spec.name.clone(),
                scopes: spec.scopes.clone(),
                bot: spec.bot.clone().filter(|b| !b.trim().is_empty()).unwrap_or_else(|| spec.name.clone()),
                rate_limit,
            });
            for h in &spec.hashes {
                let hex = h.strip_prefix("sha256:").unwrap_or(h).to_ascii_lowercase();
                if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(invalid("a hash is 64 hex digits (sha256sum of the key)"));
                }
                if by_hash.insert(hex, key.clone()).is_some() {
                    return Err(invalid("the same hash is declared twice"));
                }
            }
        }
        Ok(Keyring { by_hash })
    }

    /// The key `presented` is, if declared.
    pub fn find(&self, presented: &str) -> Option<Arc<ApiKey>> {
        self.by_hash.get(&hash(presented)).cloned()
    }

    /// The names of the declared keys.
    pub fn names(&self) -> std::collections::HashSet<String> {
        self.by_hash.values().map(|k| k.name.clone()).collect()
    }

    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }
}

impl KeyFile {
    /// A key file's text; `path` names it in errors. Empty: no keys.
    pub fn parse(text: &str, path: &str) -> Result<KeyFile, KeyError> {
        if text.trim().is_empty() {
            return Ok(KeyFile::default());
        }
        serde_yaml::from_str(text).map_err(|source| KeyError::Parse { path: path.to_owned(), source })
    }

    pub fn to_yaml(&self) -> String {
        serde_yaml::to_string(self).unwrap_or_default()
    }
}

/// The SHA-256 of a key, hex: what a key file declares.
pub fn hash(key: &str) -> String {
    Sha256::digest(key.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// How every key begins (how `/ws` tells a key from a JWT).
pub const PREFIX: &str = "ak_";

/// A new random key: `ak_` and 43 characters of base64url (256 bits).
pub fn generate() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::from(PREFIX);
    let mut acc = 0u32;
    let mut bits = 0;
    for b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 6 {
            bits -= 6;
            out.push(ALPHABET[((acc >> bits) & 63) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((acc << (6 - bits)) & 63) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, hashes: Vec<String>) -> KeySpec {
        KeySpec { name: name.into(), hashes, scopes: vec![Scope::Publish], bot: None, rate_limit: None }
    }

    #[test]
    fn a_key_is_found_by_any_of_its_hashes_and_nothing_else() {
        let (old, new) = (generate(), generate());
        assert_eq!(old.len(), 46);
        assert_ne!(old, new);
        let ring =
            Keyring::from_specs(vec![spec("deploy", vec![hash(&old), format!("sha256:{}", hash(&new))])]).unwrap();
        assert_eq!(ring.find(&old).map(|k| k.name.clone()).as_deref(), Some("deploy"));
        assert!(ring.find(&new).is_some_and(|k| k.allows(Scope::Publish) && !k.allows(Scope::Rooms)));
        assert!(ring.find(&generate()).is_none());
        assert!(ring.find(&hash(&old)).is_none(), "the hash is not the key");
    }

    #[test]
    fn bad_declarations_are_refused_with_the_key_named() {
        let e = Keyring::from_specs(vec![spec("Bad Name", vec![hash("k")])]).unwrap_err();
        assert!(e.to_string().contains("Bad Name"), "{e}");
        assert!(Keyring::from_specs(vec![spec("a", vec!["abc".into()])]).is_err());
        assert!(Keyring::from_specs(vec![spec("a", vec![])]).is_err());
        assert!(Keyring::from_specs(vec![spec("a", vec![hash("k")]), spec("b", vec![hash("k")])]).is_err());
        let file: Result<KeyFile, _> = serde_yaml::from_str("keys:\n- name: a\n  hashes: []\n  scopes: [write]\n");
        assert!(file.is_err(), "unknown scope");
    }
}
