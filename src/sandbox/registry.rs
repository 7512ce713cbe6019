//! Tenants, applications and users of the sandbox provider: used by the provider itself (when
//! restoregate registers a new organization) and by the `restoregate sandbox` commands.

use super::db::{Application, Db, Tenant};
use rusqlite::{params, Connection, OptionalExtension};

/// A tenant by domain name or GUID (lowercase), on the database thread.
pub fn find_tenant(c: &Connection, key: &str) -> rusqlite::Result<Option<Tenant>> {
    c.prepare_cached("SELECT id, name FROM tenants WHERE name = ?1 OR id = ?1")?
        .query_row([key], |r| Ok(Tenant { id: r.get(0)?, name: r.get(1)? }))
        .optional()
}

/// An application of a tenant by client id (lowercase), on the database thread.
pub fn find_application(c: &Connection, tenant_id: &str, client_id: &str) -> rusqlite::Result<Option<Application>> {
    c.prepare_cached("SELECT client_id, name, public_client FROM applications WHERE tenant_id = ?1 AND client_id = ?2")?
        .query_row([tenant_id, client_id], |r| Ok(Application { client_id: r.get(0)?, name: r.get(1)?, public_client: r.get(2)? }))
        .optional()
}

pub async fn tenant(db: &Db, name_or_id: &str) -> anyhow::Result<Option<Tenant>> {
    let key = name_or_id.trim().to_ascii_lowercase();
    db.call(move |c| find_tenant(c, &key)).await
}

pub async fn require_tenant(db: &Db, name_or_id: &str) -> anyhow::Result<Tenant> {
    tenant(db, name_or_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no sandbox tenant '{name_or_id}': add it with `restoregate sandbox tenant add {name_or_id}`"))
}

pub async fn tenants(db: &Db) -> anyhow::Result<Vec<Tenant>> {
    db.call(|c| {
        c.prepare("SELECT id, name FROM tenants ORDER BY name")?
            .query_map([], |r| Ok(Tenant { id: r.get(0)?, name: r.get(1)? }))?
            .collect()
    })
    .await
}

/// Adds a tenant (or finds it by name); its id.
pub async fn add_tenant(db: &Db, name: &str) -> anyhow::Result<String> {
    let name = crate::domain::organization::TenantName::parse(name).map_err(|e| anyhow::anyhow!(e))?;
    let name = name.as_str().to_string();
    let id = uuid::Uuid::new_v4().to_string();
    db.call(move |c| {
        c.execute("INSERT INTO tenants (id, name) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING", [&id, &name])?;
        c.query_row("SELECT id FROM tenants WHERE name = ?1", [&name], |r| r.get(0))
    })
    .await
}

pub async fn remove_tenant(db: &Db, name_or_id: &str) -> anyhow::Result<()> {
    let t = require_tenant(db, name_or_id).await?;
    db.call(move |c| {
        for table in ["applications", "users", "device_codes", "refresh_tokens"] {
            c.execute(&format!("DELETE FROM {table} WHERE tenant_id = ?1"), [&t.id])?;
        }
        c.execute("DELETE FROM tenants WHERE id = ?1", [&t.id])?;
        Ok(())
    })
    .await
}

pub async fn application(db: &Db, tenant_id: &str, client_id: &str) -> anyhow::Result<Option<Application>> {
    let (tenant_id, client_id) = (tenant_id.to_string(), client_id.trim().to_ascii_lowercase());
    db.call(move |c| find_application(c, &tenant_id, &client_id)).await
}

pub async fn applications(db: &Db, tenant_id: &str) -> anyhow::Result<Vec<Application>> {
    let tenant_id = tenant_id.to_string();
    db.call(move |c| {
        c.prepare("SELECT client_id, name, public_client FROM applications WHERE tenant_id = ?1 ORDER BY client_id")?
            .query_map([&tenant_id], |r| Ok(Application { client_id: r.get(0)?, name: r.get(1)?, public_client: r.get(2)? }))?
            .collect()
    })
    .await
}

/// Adds an application, or updates its name and public-client switch.
pub async fn add_application(db: &Db, tenant_id: &str, client_id: &str, name: &str, public_client: bool) -> anyhow::Result<()> {
    let client_id = crate::domain::parse_guid(client_id)
        .ok_or_else(|| anyhow::anyhow!("application id '{client_id}' is not a GUID"))?
        .to_string();
    let (tenant_id, name) = (tenant_id.to_string(), name.to_string());
    db.call(move |c| {
        c.execute(
            "INSERT INTO applications (tenant_id, client_id, name, public_client) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (tenant_id, client_id) DO UPDATE SET name = excluded.name, public_client = excluded.public_client",
            params![tenant_id, client_id, name, public_client],
        )?;
        Ok(())
    })
    .await
}

pub async fn remove_application(db: &Db, tenant_id: &str, client_id: &str) -> anyhow::Result<bool> {
    let (tenant_id, client_id) = (tenant_id.to_string(), client_id.trim().to_ascii_lowercase());
    db.call(move |c| Ok(c.execute("DELETE FROM applications WHERE tenant_id = ?1 AND client_id = ?2", [&tenant_id, &client_id])? == 1))
        .await
}

pub async fn users(db: &Db, tenant_id: &str) -> anyhow::Result<Vec<String>> {
    let tenant_id = tenant_id.to_string();
    db.call(move |c| c.prepare("SELECT username FROM users WHERE tenant_id = ?1 ORDER BY username")?.query_map([&tenant_id], |r| r.get(0))?.collect())
        .await
}

pub async fn user_exists(db: &Db, tenant_id: &str, username: &str) -> anyhow::Result<bool> {
    let (tenant_id, username) = (tenant_id.to_string(), username.to_string());
    db.call(move |c| {
        c.query_row("SELECT 1 FROM users WHERE tenant_id = ?1 AND username = ?2", [&tenant_id, &username], |_| Ok(()))
            .optional()
            .map(|row| row.is_some())
    })
    .await
}

/// Adds a user, or sets its password. Hashing runs off the async threads (and off the database's).
pub async fn add_user(db: &Db, tenant_id: &str, username: &str, password: &str) -> anyhow::Result<()> {
    if !username.contains('@') || username.len() > 320 {
        anyhow::bail!("user name '{username}' must look like name@domain");
    }
    let password = password.to_string();
    let hash = tokio::task::spawn_blocking(move || crate::crypto::hash_password(&password)).await??;
    let (tenant_id, username) = (tenant_id.to_string(), username.to_string());
    db.call(move |c| {
        c.execute(
            "INSERT INTO users (tenant_id, username, password_hash) VALUES (?1, ?2, ?3)
             ON CONFLICT (tenant_id, username) DO UPDATE SET password_hash = excluded.password_hash",
            [&tenant_id, &username, &hash],
        )?;
        Ok(())
    })
    .await
}

pub async fn remove_user(db: &Db, tenant_id: &str, username: &str) -> anyhow::Result<bool> {
    let (tenant_id, username) = (tenant_id.to_string(), username.to_string());
    db.call(move |c| Ok(c.execute("DELETE FROM users WHERE tenant_id = ?1 AND username = ?2", [&tenant_id, &username])? == 1)).await
}
