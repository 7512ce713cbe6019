//! restoregate: a REST server for restore sessions of Microsoft 365 backups, speaking the wire
//! format of the Veeam Backup for Microsoft 365 REST API v5.

pub mod api;
pub mod app;
pub mod cli;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod domain;
pub mod identity;
pub mod limit;
pub mod metrics;
pub mod sandbox;
pub mod signin;
pub mod store;
pub mod tls;
pub mod users;
