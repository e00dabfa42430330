//! The client's address behind proxies (docs/operations.md, "Behind an ingress"): the TCP peer, unless the peer is in
//! `AURORA_TRUSTED_PROXIES`; then the right-most `X-Forwarded-For` (or `Forwarded: for=`)
//! address that is not itself a trusted proxy. Headers from an untrusted peer are ignored,
//! so a client cannot pick its own address.

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use aurora_core::config::{canonical, TrustedProxies};

use super::error::ApiError;
use crate::state::AppState;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const FORWARDED: HeaderName = HeaderName::from_static("forwarded");

/// An address from a forwarding header: `1.2.3.4`, `1.2.3.4:80`, `[::1]:80`, `"[::1]"`.
fn parse_node(raw: &str) -> Option<IpAddr> {
    let s = raw.trim().trim_matches('"');
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Some(rest) = s.strip_prefix('[') {
        return rest.split_once(']').and_then(|(ip, _)| ip.parse().ok()).map(canonical);
    }
    s.parse::<SocketAddr>().ok().map(|a| canonical(a.ip()))
}

/// The hops a header lists, client first; `None` for a hop that is not an address.
fn hops(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let xff: Vec<Option<IpAddr>> = headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(parse_node)
        .collect();
    if !xff.is_empty() {
        return xff;
    }
    headers
        .get_all(FORWARDED)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|element| {
            element.split(';').find_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                k.trim().eq_ignore_ascii_case("for").then(|| parse_node(v))
            })
        })
        .collect()
}

/// The client's address for a request from `peer` with `headers`.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> IpAddr {
    let peer = canonical(peer);
    if !trusted.contains(peer) {
        return peer;
    }
    let hops = hops(headers);
    let mut last_trusted = peer;
    for hop in hops.iter().rev() {
        match hop {
            Some(ip) if trusted.contains(*ip) => last_trusted = *ip,
            Some(ip) => return *ip,
            // A hop a trusted proxy could not name: the chain is not believable past it.
            None => return last_trusted,
        }
    }
    last_trusted
}

/// Whether the browser reached a trusted proxy over TLS (`X-Forwarded-Proto: https` or
/// `Forwarded: proto=https`); the gateway itself serves plain HTTP.
pub fn via_tls(peer: IpAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> bool {
    if !trusted.contains(peer) {
        return false;
    }
    let first = |name: HeaderName| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    if let Some(proto) = first(X_FORWARDED_PROTO) {
        return proto.split(',').next().is_some_and(|p| p.trim().eq_ignore_ascii_case("https"));
    }
    first(FORWARDED).is_some_and(|f| {
        f.split([';', ',']).any(|pair| {
            pair.split_once('=').is_some_and(|(k, v)| {
                k.trim().eq_ignore_ascii_case("proto") && v.trim().trim_matches('"').eq_ignore_ascii_case("https")
            })
        })
    })
}

/// The TCP peer a request came from (set by the accept loop; tests without one get loopback).
pub fn peer_of(parts_extensions: &axum::http::Extensions) -> SocketAddr {
    parts_extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(SocketAddr::from(([127, 0, 0, 1], 0)), |ConnectInfo(peer)| *peer)
}

/// The request's client address and whether it arrived over TLS.
pub struct Client {
    pub ip: IpAddr,
    pub tls: bool,
}

impl FromRequestParts<Arc<AppState>> for Client {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let peer = peer_of(&parts.extensions).ip();
        let trusted = &state.config.trusted_proxies;
        Ok(Client { ip: client_ip(peer, &parts.headers, trusted), tls: via_tls(peer, &parts.headers, trusted) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let trusted: TrustedProxies = "10.0.0.0/8".parse().unwrap();
        let h = headers(&[("x-forwarded-for", "1.2.3.4")]);
        assert_eq!(client_ip(ip("192.0.2.9"), &h, &trusted), ip("192.0.2.9"));
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &TrustedProxies::default()), ip("10.0.0.1"));
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        let trusted: TrustedProxies = "10.0.0.0/8".parse().unwrap();
        // The client forged the first entry; the ingress appended what it saw.
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.7"), ("x-forwarded-for", "10.1.1.1")]);
        assert_eq!(client_ip(ip("10.0.0.2"), &h, &trusted), ip("198.51.100.7"));
        let only_proxies = headers(&[("x-forwarded-for", "10.3.3.3, 10.1.1.1")]);
        assert_eq!(client_ip(ip("10.0.0.2"), &only_proxies, &trusted), ip("10.3.3.3"));
        let garbage = headers(&[("x-forwarded-for", "unknown, 10.1.1.1")]);
        assert_eq!(client_ip(ip("10.0.0.2"), &garbage, &trusted), ip("10.1.1.1"));
        assert_eq!(client_ip(ip("10.0.0.2"), &HeaderMap::new(), &trusted), ip("10.0.0.2"));
    }

    #[test]
    fn forwarded_is_read_when_there_is_no_x_forwarded_for() {
        let trusted: TrustedProxies = "127.0.0.1".parse().unwrap();
        let h = headers(&[("forwarded", r#"for="[2001:db8::17]:4711";proto=https, for=127.0.0.1"#)]);
        assert_eq!(client_ip(ip("127.0.0.1"), &h, &trusted), ip("2001:db8::17"));
        assert!(via_tls(ip("127.0.0.1"), &h, &trusted));
        let h = headers(&[("forwarded", "for=192.0.2.60:1234;proto=http")]);
        assert_eq!(client_ip(ip("::ffff:127.0.0.1"), &h, &trusted), ip("192.0.2.60"));
        assert!(!via_tls(ip("127.0.0.1"), &h, &trusted));
    }

    #[test]
    fn tls_is_believed_from_trusted_proxies_only() {
        let trusted: TrustedProxies = "127.0.0.1".parse().unwrap();
        let h = headers(&[("x-forwarded-proto", "https")]);
        assert!(via_tls(ip("127.0.0.1"), &h, &trusted));
        assert!(!via_tls(ip("192.0.2.1"), &h, &trusted));
    }
}
