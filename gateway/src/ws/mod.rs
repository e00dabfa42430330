//! `GET /ws`: authenticate (Bearer token or single-use ticket) and check Origin before
//! upgrading, then run a session.

mod commands;
pub(crate) use commands::check_target;
mod control;
mod delivery;
mod moderation;
mod reads;
mod rooms;
mod session;
mod sources;
mod wire;

pub(crate) use wire::text_frame;

use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use hyper::upgrade::OnUpgrade;
use serde::Deserialize;
use std::sync::Arc;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;

use aurora_core::auth::{Claims, AUDIENCE, ISSUER};
use aurora_core::protocol::MAX_FRAME_BYTES;
use aurora_core::sessions::{self, Ticket};

use crate::http::client;
use crate::http::error::{bearer, known_user, ApiError};
use crate::server::Seat;
use crate::state::AppState;

/// Read chunk and initial read buffer per connection (zero-filled, so resident). Client frames
/// are small (a `send` with a 100 B body is ~150 B); a larger one takes more reads. Per idle
/// joined connection (`./run.sh bench compare`, idle scenario): tokio-tungstenite's default
/// 128 KiB cost ~136 KiB, 4 KiB 13.1 KiB; with writes keeping no buffer ([`wire::Writer`]),
/// 1 KiB cost 8.39 KiB and 512 B 7.93 KiB (10,000 connections).
const READ_BUFFER: usize = 512;

#[derive(Deserialize)]
pub struct WsQuery {
    ticket: Option<String>,
    token: Option<String>,
}

/// The subprotocol a browser offers with its ticket (`new WebSocket(url, [PROTOCOL,
/// TICKET_PREFIX + ticket])`), so the ticket is in no URL; the server selects [`PROTOCOL`].
pub const PROTOCOL: &str = "aurora";
const TICKET_PREFIX: &str = "aurora.ticket.";

/// A ticket offered as a subprotocol, and whether the client offered [`PROTOCOL`].
fn subprotocols(headers: &HeaderMap) -> (Option<String>, bool) {
    let offered = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim);
    let (mut ticket, mut aurora) = (None, false);
    for p in offered {
        if p == PROTOCOL {
            aurora = true;
        } else if let Some(t) = p.strip_prefix(TICKET_PREFIX) {
            ticket = Some(t.to_owned());
        }
    }
    (ticket, aurora)
}

/// How the upgrade request authenticates.
enum Credential {
    /// A JWT: `Authorization: Bearer`, or `?token=` where allowed.
    Token(String),
    /// A single-use ticket from `POST /api/ws-ticket`.
    Ticket(String),
}

fn unauthorized(state: &AppState, reason: &'static str, message: &str) -> Response {
    state.metrics.auth_failed(reason);
    ApiError::unauthorized(message).into_response()
}

pub async fn upgrade(
    State(state): State<Arc<AppState>>,
    Query(query): Query<WsQuery>,
    mut request: Request,
) -> Response {
    // Before anything else (no ticket spent): a reconnect storm waits, the connected do not.
    if let Err(retry_after) = state.admit_upgrade() {
        state.metrics.connections_refused.with_label_values(&["upgrade_rate"]).inc();
        let mut refusal =
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "too many connections opening; retry");
        refusal.retry_after = Some(retry_after);
        return refusal.into_response();
    }
    let headers = request.headers();
    let (offered_ticket, speaks_aurora) = subprotocols(headers);
    let credential = match credential(&state, headers, offered_ticket.or(query.ticket), query.token) {
        Ok(c) => c,
        Err(refused) => return refused,
    };
    let claims = match authenticate(&state, headers, credential).await {
        Ok(c) => c,
        Err(refused) => return refused,
    };
    let forwarded_seat = match forwarded_seat(&state, &request) {
        Ok(seat) => seat,
        Err(refused) => return refused,
    };
    if state.shutdown.is_cancelled() {
        return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "shutting down").into_response();
    }
    let (mut response, on_upgrade) = match accept(&mut request) {
        Ok(accepted) => accepted,
        Err(e) => return e.into_response(),
    };
    if speaks_aurora {
        // A browser that offered subprotocols fails the connection unless one is selected.
        response.headers_mut().insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(PROTOCOL));
    }
    let guard = state.sessions.token();
    tokio::spawn(async move {
        // Held for the session's life: its seat among the forwarded client's connections,
        // and its place among the sessions a shutdown waits for.
        let _held = (forwarded_seat, guard);
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(error = %e, "WebSocket upgrade failed");
                return;
            }
        };
        let Some((read, write)) = wire::halves(upgraded) else {
            tracing::error!("upgraded connection is not the served TCP socket; closing it");
            return;
        };
        let config = WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER)
            .max_message_size(Some(MAX_FRAME_BYTES))
            .max_frame_size(Some(MAX_FRAME_BYTES));
        let stream = WebSocketStream::from_raw_socket(read, Role::Server, Some(config)).await;
        session::run(state, stream, wire::Writer::new(write), claims).await;
    });
    response
}

/// The credential the client presented: `Authorization: Bearer`, else a ticket (subprotocol
/// or `?ticket=`), else `?token=` where allowed.
#[allow(clippy::result_large_err, reason = "the refusal is the handler's response, returned at once")]
fn credential(
    state: &AppState,
    headers: &HeaderMap,
    ticket: Option<String>,
    url_token: Option<String>,
) -> Result<Credential, Response> {
    match (bearer(headers), ticket, url_token) {
        (Some(token), _, _) => Ok(Credential::Token(token.to_owned())),
        (None, Some(ticket), _) => Ok(Credential::Ticket(ticket)),
        (None, None, Some(token)) if state.config.allow_token_in_url => Ok(Credential::Token(token)),
        (None, None, Some(_)) => {
            let msg = "tokens in the URL are refused: get a ticket from POST /api/ws-ticket and use ?ticket=";
            Err(unauthorized(state, "token_in_url", msg))
        }
        (None, None, None) => Err(unauthorized(state, "missing_token", "missing token")),
    }
}

/// The claims of a valid credential from an allowed Origin. The Origin is checked before a
/// ticket is spent on a request that will be refused.
#[allow(clippy::result_large_err, reason = "the refusal is the handler's response, returned at once")]
async fn authenticate(state: &AppState, headers: &HeaderMap, credential: Credential) -> Result<Claims, Response> {
    let origin_allowed = headers.get(header::ORIGIN).is_none_or(|origin| {
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        origin.to_str().is_ok_and(|o| state.config.allowed_origins.allows(o, host))
    });
    let refuse_origin = || {
        tracing::info!(origin = ?headers.get(header::ORIGIN), "refused WebSocket from a disallowed Origin");
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", "origin not allowed").into_response()
    };
    let claims = match credential {
        Credential::Token(token) if token.starts_with(aurora_core::apikeys::PREFIX) => bot_claims(state, &token)?,
        Credential::Token(token) => match state.jwt.verify(&token) {
            Ok(c) => {
                known_user(state, &c).await.map_err(IntoResponse::into_response)?;
                c
            }
            Err(e) => {
                state.metrics.token_failed(&e);
                return Err(ApiError::unauthorized("invalid or expired token").into_response());
            }
        },
        Credential::Ticket(_) if !origin_allowed => return Err(refuse_origin()),
        Credential::Ticket(ticket) => match state.backend.tickets.redeem_ticket(&sessions::digest(&ticket)).await {
            Ok(Some(grant)) => ticket_claims(grant),
            Ok(None) => return Err(unauthorized(state, "invalid_ticket", "invalid, used or expired ticket")),
            Err(e) => return Err(ApiError::from(e).into_response()),
        },
    };
    if claims.exp <= aurora_core::now_ms().max(0) as u64 / 1000 {
        return Err(unauthorized(state, "expired_token", "the ticket's token has expired"));
    }
    if !origin_allowed {
        return Err(refuse_origin());
    }
    Ok(claims)
}

/// Behind a trusted proxy the socket is the proxy's: the WebSocket counts against the
/// forwarded client, which may hold at most `AURORA_MAX_CONNECTIONS_PER_ADDRESS`.
#[allow(clippy::result_large_err, reason = "the refusal is the handler's response, returned at once")]
fn forwarded_seat(state: &AppState, request: &Request) -> Result<Option<Seat>, Response> {
    let peer = client::peer_of(request.extensions()).ip();
    let trusted = &state.config.trusted_proxies;
    if !trusted.contains(aurora_core::config::canonical(peer)) {
        return Ok(None);
    }
    let ip = client::client_ip(peer, request.headers(), trusted);
    match state.census.admit_forwarded(ip, state.config.max_connections_per_address) {
        Some(seat) => Ok(Some(seat)),
        None => {
            state.metrics.connections_refused.with_label_values(&["per_address"]).inc();
            let msg = "too many open connections from this address";
            Err(ApiError::rate_limited(msg, std::time::Duration::from_secs(1)).into_response())
        }
    }
}

/// A bot connection (docs/server-api.md): a server API key with the `read` and `publish`
/// scopes connects as its bot, for as long as the key is declared.
#[allow(clippy::result_large_err, reason = "the refusal is the handler's response, returned at once")]
fn bot_claims(state: &AppState, presented: &str) -> Result<Claims, Response> {
    use aurora_core::apikeys::Scope;
    let Some(key) = state.keys.find(presented) else {
        return Err(unauthorized(state, "unknown_api_key", "unknown or revoked API key"));
    };
    if !(key.allows(Scope::Read) && key.allows(Scope::Publish)) {
        let msg = "a bot connection needs a key with the read and publish scopes";
        return Err(ApiError::forbidden(msg).into_response());
    }
    let now = aurora_core::now_ms().max(0) as u64 / 1000;
    Ok(Claims {
        sub: key.bot_id(),
        name: key.bot.clone(),
        iat: now,
        // A bot does not renew: after a day it gets `token_expired` (4001) and connects again.
        exp: now + 24 * 3600,
        iss: ISSUER.into(),
        aud: AUDIENCE.into(),
        sid: None,
    })
}

/// The claims a redeemed ticket stands for: its user's, expiring with the access token it
/// was issued for (the connection renews with `auth` as with any token).
fn ticket_claims(grant: Ticket) -> Claims {
    let now = aurora_core::now_ms().max(0) as u64 / 1000;
    Claims {
        sub: grant.user.id.to_string(),
        name: grant.user.name.to_string(),
        iat: now,
        exp: grant.exp,
        iss: ISSUER.into(),
        aud: AUDIENCE.into(),
        sid: grant.sid,
    }
}

/// The RFC 6455 §4.2 opening handshake over HTTP/1.1: the request's checks and the 101 answer.
fn accept(request: &mut Request) -> Result<(Response, OnUpgrade), ApiError> {
    let headers = request.headers();
    if !header_has_token(headers, header::CONNECTION, "upgrade") {
        return Err(ApiError::bad_request("Connection header did not include 'upgrade'"));
    }
    if !header_is(headers, header::UPGRADE, "websocket") {
        return Err(ApiError::bad_request("`Upgrade` header did not include 'websocket'"));
    }
    if !header_is(headers, header::SEC_WEBSOCKET_VERSION, "13") {
        return Err(ApiError::bad_request("`Sec-WebSocket-Version` header did not include '13'"));
    }
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) else {
        return Err(ApiError::bad_request("`Sec-WebSocket-Key` header missing"));
    };
    let accept_key = derive_accept_key(key.as_bytes());
    let Some(on_upgrade) = request.extensions_mut().remove::<OnUpgrade>() else {
        let msg = "WebSocket request couldn't be upgraded since no upgrade state was present";
        return Err(ApiError::new(StatusCode::UPGRADE_REQUIRED, "bad_request", msg));
    };
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = response.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(v) = HeaderValue::from_str(&accept_key) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    Ok((response, on_upgrade))
}

fn header_is(headers: &HeaderMap, name: HeaderName, value: &str) -> bool {
    headers.get(name).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(value.as_bytes()))
}

/// Whether a comma-separated header lists `token` (case-insensitive).
fn header_has_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}
