//! The RFC 8628 client for Microsoft's identity platform (and any standard authority): discovery,
//! device authorization, one poll, and what its answer means. No server state lives here.

pub mod classify;
pub mod client;
pub mod parse;

pub use classify::PollOutcome;
pub use client::{AuthorityError, Endpoints, IdentityClient};
pub use parse::{AuthorityText, DeviceCodeGrant, TokenSet};
