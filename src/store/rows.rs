//! Rows as the store reads and writes them.

use crate::clock::Millis;
use crate::domain::session::EventStatus;

#[derive(Clone)]
pub struct User {
    pub id: String,
    pub name: String,
    pub password_hash: String,
    pub is_admin: bool,
}

/// A user as both databases hold it (flags are integers).
#[derive(sqlx::FromRow)]
pub(crate) struct UserRow {
    id: String,
    name: String,
    password_hash: String,
    is_admin: i64,
}

impl From<UserRow> for User {
    fn from(r: UserRow) -> Self {
        User { id: r.id, name: r.name, password_hash: r.password_hash, is_admin: r.is_admin != 0 }
    }
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User").field("name", &self.name).field("is_admin", &self.is_admin).finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Access,
    Refresh,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Access => "access",
            TokenKind::Refresh => "refresh",
        }
    }
}

pub(crate) const ORG_COLUMNS: &str = "id, name, region, tenant, application_id, public_json, secrets_sealed, created_at";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OrganizationRow {
    pub id: String,
    pub name: String,
    pub region: String,
    pub tenant: String,
    pub application_id: String,
    pub public_json: String,
    pub secrets_sealed: String,
    pub created_at: Millis,
}

pub(crate) const SESSION_COLUMNS: &str = "id, name, organization_id, organization_name, type AS session_type, creation_time,
    end_time, state, result, initiated_by, initiated_by_id, details";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionRow {
    pub id: String,
    pub name: String,
    pub organization_id: String,
    pub organization_name: String,
    pub session_type: String,
    pub creation_time: Millis,
    pub end_time: Option<Millis>,
    pub state: String,
    pub result: String,
    pub initiated_by: String,
    pub initiated_by_id: String,
    pub details: String,
}

#[derive(Debug, Clone)]
pub struct NewEvent {
    pub status: EventStatus,
    pub title: String,
    pub message: String,
    pub start_time: Millis,
    pub end_time: Option<Millis>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EventRow {
    pub id: String,
    pub ord: i64,
    pub status: String,
    pub title: String,
    pub message: String,
    pub start_time: Millis,
    pub end_time: Option<Millis>,
}

pub(crate) const DEVICE_COLUMNS: &str = "id, session_id, user_id, user_code, authority, tenant, client_id, token_endpoint,
    device_code_sealed, interval_ms, expires_at, next_poll_at, transient_failures, created_at";

#[derive(Clone, sqlx::FromRow)]
pub struct DeviceAuthorizationRow {
    pub id: String,
    pub session_id: String,
    pub user_id: String,
    pub user_code: String,
    pub authority: String,
    pub tenant: String,
    pub client_id: String,
    pub token_endpoint: String,
    pub device_code_sealed: String,
    pub interval_ms: i64,
    pub expires_at: Millis,
    pub next_poll_at: Millis,
    pub transient_failures: i64,
    pub created_at: Millis,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInState {
    SignedIn,
    Declined,
    Expired,
    Failed,
}

impl SignInState {
    pub fn as_str(self) -> &'static str {
        match self {
            SignInState::SignedIn => "signed_in",
            SignInState::Declined => "declined",
            SignInState::Expired => "expired",
            SignInState::Failed => "failed",
        }
    }
}

pub struct Finish<'a> {
    pub id: &'a str,
    pub session_id: &'a str,
    pub state: SignInState,
    pub account: Option<&'a str>,
    pub tokens_sealed: Option<&'a str>,
    /// Polls made, the last included.
    pub polls: u32,
}

/// A claim on pending authorizations: which instance follows them, and until when.
#[derive(Debug, Clone)]
pub struct Lease {
    pub owner: String,
    pub until: Millis,
}
