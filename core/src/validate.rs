//! Input rules (docs/protocol.md §1 and §3).

use regex::Regex;
use std::sync::LazyLock;

static USERNAME: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[A-Za-z0-9_.-]{3,32}$").expect("valid regex"));
static ROOM: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$").expect("valid regex"));

pub const MAX_REF_CHARS: usize = 64;
pub const MAX_NONCE_CHARS: usize = 64;
pub const MAX_TITLE_CHARS: usize = 200;

pub fn username(name: &str) -> Result<(), &'static str> {
    if USERNAME.is_match(name) {
        Ok(())
    } else {
        Err("username must be 3-32 characters of letters, digits, '_', '.' or '-'")
    }
}

pub fn password(pw: &str) -> Result<(), &'static str> {
    let n = pw.chars().count();
    if (8..=128).contains(&n) {
        Ok(())
    } else {
        Err("password must be 8-128 characters")
    }
}

pub fn room_name(name: &str) -> Result<(), &'static str> {
    if ROOM.is_match(name) {
        Ok(())
    } else {
        Err("room name must be 1-63 lower-case letters, digits or '-', starting and ending with a letter or digit")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert!(username("ann").is_ok());
        assert!(username("a.b-c_D9").is_ok());
        assert!(username("ab").is_err());
        assert!(username("has space").is_err());
        assert!(username(&"x".repeat(33)).is_err());
    }

    #[test]
    fn room_names() {
        assert!(room_name("general").is_ok());
        assert!(room_name("a").is_ok());
        assert!(room_name("team-42").is_ok());
        assert!(room_name("-bad").is_err());
        assert!(room_name("bad-").is_err());
        assert!(room_name("Upper").is_err());
        assert!(room_name(&"a".repeat(64)).is_err());
    }

    #[test]
    fn passwords() {
        assert!(password("12345678").is_ok());
        assert!(password("1234567").is_err());
        assert!(password(&"p".repeat(129)).is_err());
    }
}
