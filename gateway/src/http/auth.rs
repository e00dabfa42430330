//! Sign-in (docs/protocol.md §1): register and login open a session; the short-lived access token
//! is renewed with the session's refresh cookie, which rotates on every use; logout ends
//! the session for every gateway; a WebSocket ticket lets a browser upgrade without
//! putting its token in a URL.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{extract::State, Json};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

use aurora_core::auth::{hash_password, verify_password};
use aurora_core::model::UserRecord;
use aurora_core::ports::PortError;
use aurora_core::sessions::{self, RefreshToken, Rotation, SessionRecord, Ticket, TICKET_TTL};
use aurora_core::validate;

use super::abuse;
use super::client::Client;
use super::error::{bearer, ApiError, AuthUser, JsonBody};
use crate::state::AppState;

/// The refresh cookie: `HttpOnly`, `SameSite=Strict`, scoped to the auth endpoints.
pub const REFRESH_COOKIE: &str = "aurora_refresh";
const COOKIE_PATH: &str = "/api/auth";

#[derive(Deserialize)]
pub struct Credentials {
    username: String,
    password: String,
}

fn cookie(value: &str, max_age: u64, tls: bool) -> Result<HeaderValue, ApiError> {
    let secure = if tls { "; Secure" } else { "" };
    let raw =
        format!("{REFRESH_COOKIE}={value}; Path={COOKIE_PATH}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}");
    HeaderValue::from_str(&raw).map_err(|_| ApiError::internal("cannot build the session cookie"))
}

fn clear_cookie(tls: bool) -> Result<HeaderValue, ApiError> {
    cookie("", 0, tls)
}

/// The refresh token of the request's cookie, if it has a well-formed one.
fn refresh_cookie(headers: &HeaderMap) -> Option<RefreshToken> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == REFRESH_COOKIE)
        .and_then(|(_, value)| RefreshToken::parse(value))
}

/// `{token, user, expires_at}` and the refresh cookie of `refresh`.
fn signed_in(
    state: &AppState,
    status: StatusCode,
    user: &UserRecord,
    refresh: &RefreshToken,
    tls: bool,
) -> Result<Response, ApiError> {
    let (token, expires_at) =
        state.jwt.issue(&user.user_ref(), Some(&refresh.sid)).map_err(|e| ApiError::internal(e.to_string()))?;
    let body = json!({ "token": token, "user": { "id": user.id, "name": user.name }, "expires_at": expires_at });
    let set = cookie(&refresh.encode(), state.config.refresh_ttl.as_secs(), tls)?;
    Ok((status, [(header::SET_COOKIE, set), (header::CACHE_CONTROL, HeaderValue::from_static("no-store"))], Json(body))
        .into_response())
}

/// A new session for `user`, and the refresh token that stands for it.
async fn open_session(state: &AppState, user: &UserRecord) -> Result<RefreshToken, ApiError> {
    let token = RefreshToken { sid: sessions::new_session_id(), secret: sessions::new_secret() };
    let now = aurora_core::now_ms();
    let ttl_ms = i64::try_from(state.config.refresh_ttl.as_millis()).unwrap_or(i64::MAX);
    state
        .backend
        .sessions
        .create_session(SessionRecord {
            id: token.sid.clone(),
            user_id: user.id.clone(),
            secret_hash: sessions::digest(&token.secret),
            created_at: now,
            expires_at: now.saturating_add(ttl_ms),
            revoked: false,
        })
        .await?;
    Ok(token)
}

/// Runs argon2 work on the blocking pool, at most one job per core at a time.
async fn argon2<T: Send + 'static>(state: &AppState, work: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
    let _permit = state.hashing.acquire().await.map_err(|e| ApiError::internal(e.to_string()))?;
    tokio::task::spawn_blocking(work).await.map_err(|e| ApiError::internal(e.to_string()))
}

pub async fn register(
    State(state): State<Arc<AppState>>,
    client: Client,
    JsonBody(c): JsonBody<Credentials>,
) -> Result<Response, ApiError> {
    let address = client.ip.to_string();
    abuse::take(&state, "register", &address, state.config.register_rate, "registrations from this address").await?;
    validate::username(&c.username).map_err(ApiError::bad_request)?;
    validate::password(&c.password).map_err(ApiError::bad_request)?;
    if state.backend.users.user_by_name(&c.username).await?.is_some() {
        return Err(ApiError::conflict("username is taken"));
    }
    let password = c.password;
    let hash =
        argon2(&state, move || hash_password(&password)).await?.map_err(|e| ApiError::internal(e.to_string()))?;
    let user = UserRecord {
        id: uuid::Uuid::now_v7().simple().to_string(),
        name: c.username,
        password_hash: hash,
        created_at: aurora_core::now_ms(),
        deactivated: false,
    };
    match state.backend.users.create_user(user.clone()).await {
        Ok(()) => {}
        Err(PortError::Conflict) => return Err(ApiError::conflict("username is taken")),
        Err(e) => return Err(e.into()),
    }
    tracing::info!(user_id = %user.id, username = %user.name, client = %client.ip, "registered");
    let refresh = open_session(&state, &user).await?;
    signed_in(&state, StatusCode::CREATED, &user, &refresh, client.tls)
}

pub async fn login(
    State(state): State<Arc<AppState>>,
    client: Client,
    JsonBody(c): JsonBody<Credentials>,
) -> Result<Response, ApiError> {
    let address = client.ip.to_string();
    abuse::take(&state, "login", &address, state.config.login_rate, "login attempts from this address").await?;
    // Failures per account and address: a guesser slows down, the owner elsewhere does not.
    let account = format!("{}@{address}", c.username.to_lowercase());
    let failures = state.config.login_failure_rate;
    abuse::take(&state, "login-failures", &account, failures, "failed logins for this account").await?;
    let found = if validate::username(&c.username).is_ok() {
        state.backend.users.user_by_name(&c.username).await?
    } else {
        None
    };
    let stored = found.as_ref().map(|u| u.password_hash.clone());
    let password = c.password;
    let ok = argon2(&state, move || verify_password(&password, stored.as_deref())).await?;
    match found {
        Some(user) if ok && user.deactivated => {
            state.metrics.auth_failed("deactivated");
            Err(super::error::deactivated())
        }
        Some(user) if ok => {
            abuse::give_back(&state, "login-failures", &account, failures).await;
            let refresh = open_session(&state, &user).await?;
            tracing::info!(user_id = %user.id, client = %client.ip, "signed in");
            signed_in(&state, StatusCode::OK, &user, &refresh, client.tls)
        }
        _ => {
            state.metrics.auth_failed("wrong_password");
            tracing::info!(client = %client.ip, "failed login");
            Err(ApiError::unauthorized("wrong username or password"))
        }
    }
}

/// A 401 that also clears the refresh cookie.
fn refused(message: &str, tls: bool) -> Response {
    let mut response = ApiError::unauthorized(message).into_response();
    if let Ok(clear) = clear_cookie(tls) {
        response.headers_mut().insert(header::SET_COOKIE, clear);
    }
    response
}

/// `POST /api/auth/refresh`: spends the cookie's refresh token for a new access token and
/// the next refresh token. A spent token presented again revokes the session.
pub async fn refresh(State(state): State<Arc<AppState>>, client: Client, headers: HeaderMap) -> Response {
    match try_refresh(&state, &client, &headers).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn try_refresh(state: &AppState, client: &Client, headers: &HeaderMap) -> Result<Response, ApiError> {
    let Some(presented) = refresh_cookie(headers) else {
        state.metrics.auth_failed("missing_token");
        return Ok(refused("missing or malformed refresh cookie", client.tls));
    };
    let next = RefreshToken { sid: presented.sid.clone(), secret: sessions::new_secret() };
    let rotation = state
        .backend
        .sessions
        .rotate_session(
            &presented.sid,
            &sessions::digest(&presented.secret),
            &sessions::digest(&next.secret),
            aurora_core::now_ms(),
        )
        .await?;
    let session = match rotation {
        Rotation::Rotated(session) => session,
        Rotation::Reused => {
            state.metrics.auth_failed("refresh_reused");
            tracing::warn!(session = %presented.sid, client = %client.ip, "spent refresh token presented again; session revoked");
            return Ok(refused("refresh token already used; the session is revoked", client.tls));
        }
        Rotation::Ended => {
            state.metrics.auth_failed("session_ended");
            return Ok(refused("the session has ended; log in again", client.tls));
        }
    };
    let Some(user) = state.backend.users.user_by_id(&session.user_id).await? else {
        state.metrics.auth_failed("unknown_user");
        return Ok(refused("unknown user", client.tls));
    };
    if user.deactivated {
        state.metrics.auth_failed("deactivated");
        return Ok(refused("this account is deactivated", client.tls));
    }
    signed_in(state, StatusCode::OK, &user, &next, client.tls)
}

/// `POST /api/auth/logout` with a Bearer token or the refresh cookie: ends the session.
pub async fn logout(State(state): State<Arc<AppState>>, client: Client, headers: HeaderMap) -> Response {
    let from_token = bearer(&headers).and_then(|t| state.jwt.verify(t).ok()).and_then(|c| c.sid);
    let Some(sid) = from_token.or_else(|| refresh_cookie(&headers).map(|t| t.sid)) else {
        state.metrics.auth_failed("missing_token");
        return refused("no session to end: send the Bearer token or the refresh cookie", client.tls);
    };
    if let Err(e) = state.backend.sessions.revoke_session(&sid).await {
        return ApiError::from(e).into_response();
    }
    tracing::info!(session = %sid, client = %client.ip, "signed out");
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Ok(clear) = clear_cookie(client.tls) {
        response.headers_mut().insert(header::SET_COOKIE, clear);
    }
    response
}

/// Refuses an access token whose session was ended (logout, reuse) before it expired.
pub async fn session_live(state: &AppState, sid: Option<&str>) -> Result<(), ApiError> {
    let Some(sid) = sid else { return Ok(()) };
    match state.backend.sessions.session(sid).await? {
        Some(s) if s.live(aurora_core::now_ms()) => Ok(()),
        _ => {
            state.metrics.auth_failed("session_ended");
            Err(ApiError::unauthorized("the session has ended; log in again"))
        }
    }
}

/// `POST /api/ws-ticket`: a single-use ticket for `GET /ws?ticket=`, valid 30 s.
pub async fn ws_ticket(State(state): State<Arc<AppState>>, AuthUser(claims): AuthUser) -> Result<Response, ApiError> {
    session_live(&state, claims.sid.as_deref()).await?;
    let ticket = sessions::new_secret();
    let grant = Ticket { user: claims.user(), sid: claims.sid.clone(), exp: claims.exp };
    state.backend.tickets.issue_ticket(&sessions::digest(&ticket), &grant, TICKET_TTL).await?;
    let body: Value = json!({ "ticket": ticket, "expires_in": TICKET_TTL.as_secs() });
    Ok((StatusCode::CREATED, [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))], Json(body))
        .into_response())
}
