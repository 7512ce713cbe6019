//! Tenants, applications and users of the sandbox provider: used by the provider itself (when
//! restoregate registers a new organization) and by the `restoregate sandbox` commands.

use super::db::{Application, Tenant};
use sqlx::SqlitePool;

pub async fn tenant(db: &SqlitePool, name_or_id: &str) -> anyhow::Result<Option<Tenant>> {
    let key = name_or_id.trim().to_ascii_lowercase();
    Ok(sqlx::query_as("SELECT id, name FROM tenants WHERE name = $1 OR id = $1").bind(key).fetch_optional(db).await?)
}

pub async fn require_tenant(db: &SqlitePool, name_or_id: &str) -> anyhow::Result<Tenant> {
    tenant(db, name_or_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no sandbox tenant '{name_or_id}': add it with `restoregate sandbox tenant add {name_or_id}`"))
}

pub async fn tenants(db: &SqlitePool) -> anyhow::Result<Vec<Tenant>> {
    Ok(sqlx::query_as("SELECT id, name FROM tenants ORDER BY name").fetch_all(db).await?)
}

/// Adds a tenant (or finds it by name); its id.
pub async fn add_tenant(db: &SqlitePool, name: &str) -> anyhow::Result<String> {
    let name = crate::domain::organization::TenantName::parse(name).map_err(|e| anyhow::anyhow!(e))?;
    sqlx::query("INSERT INTO tenants (id, name) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(name.as_str())
        .execute(db)
        .await?;
    Ok(require_tenant(db, name.as_str()).await?.id)
}

pub async fn remove_tenant(db: &SqlitePool, name_or_id: &str) -> anyhow::Result<()> {
    let t = require_tenant(db, name_or_id).await?;
    let mut tx = db.begin().await?;
    for table in ["applications", "users", "device_codes", "refresh_tokens"] {
        sqlx::query(&format!("DELETE FROM {table} WHERE tenant_id = $1")).bind(&t.id).execute(&mut *tx).await?;
    }
    sqlx::query("DELETE FROM tenants WHERE id = $1").bind(&t.id).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(())
}

pub async fn application(db: &SqlitePool, tenant_id: &str, client_id: &str) -> anyhow::Result<Option<Application>> {
    Ok(sqlx::query_as("SELECT client_id, name, public_client FROM applications WHERE tenant_id = $1 AND client_id = $2")
        .bind(tenant_id)
        .bind(client_id.trim().to_ascii_lowercase())
        .fetch_optional(db)
        .await?)
}

pub async fn applications(db: &SqlitePool, tenant_id: &str) -> anyhow::Result<Vec<Application>> {
    Ok(sqlx::query_as("SELECT client_id, name, public_client FROM applications WHERE tenant_id = $1 ORDER BY client_id")
        .bind(tenant_id)
        .fetch_all(db)
        .await?)
}

/// Adds an application, or updates its name and public-client switch.
pub async fn add_application(db: &SqlitePool, tenant_id: &str, client_id: &str, name: &str, public_client: bool) -> anyhow::Result<()> {
    let client_id = crate::domain::parse_guid(client_id)
        .ok_or_else(|| anyhow::anyhow!("application id '{client_id}' is not a GUID"))?
        .to_string();
    sqlx::query(
        "INSERT INTO applications (tenant_id, client_id, name, public_client) VALUES ($1, $2, $3, $4)
         ON CONFLICT (tenant_id, client_id) DO UPDATE SET name = excluded.name, public_client = excluded.public_client",
    )
    .bind(tenant_id)
    .bind(client_id)
    .bind(name)
    .bind(public_client)
    .execute(db)
    .await?;
    Ok(())
}

pub async fn remove_application(db: &SqlitePool, tenant_id: &str, client_id: &str) -> anyhow::Result<bool> {
    let r = sqlx::query("DELETE FROM applications WHERE tenant_id = $1 AND client_id = $2")
        .bind(tenant_id)
        .bind(client_id.trim().to_ascii_lowercase())
        .execute(db)
        .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn users(db: &SqlitePool, tenant_id: &str) -> anyhow::Result<Vec<String>> {
    let rows: Vec<(String,)> = sqlx::query_as("SELECT username FROM users WHERE tenant_id = $1 ORDER BY username")
        .bind(tenant_id)
        .fetch_all(db)
        .await?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}

pub async fn user_exists(db: &SqlitePool, tenant_id: &str, username: &str) -> anyhow::Result<bool> {
    let row: Option<(String,)> = sqlx::query_as("SELECT username FROM users WHERE tenant_id = $1 AND username = $2")
        .bind(tenant_id)
        .bind(username)
        .fetch_optional(db)
        .await?;
    Ok(row.is_some())
}

/// Adds a user, or sets its password. Hashing runs off the async threads.
pub async fn add_user(db: &SqlitePool, tenant_id: &str, username: &str, password: &str) -> anyhow::Result<()> {
    if !username.contains('@') || username.len() > 320 {
        anyhow::bail!("user name '{username}' must look like name@domain");
    }
    let password = password.to_string();
    let hash = tokio::task::spawn_blocking(move || crate::crypto::hash_password(&password)).await??;
    sqlx::query(
        "INSERT INTO users (tenant_id, username, password_hash) VALUES ($1, $2, $3)
         ON CONFLICT (tenant_id, username) DO UPDATE SET password_hash = excluded.password_hash",
    )
    .bind(tenant_id)
    .bind(username)
    .bind(hash)
    .execute(db)
    .await?;
    Ok(())
}

pub async fn remove_user(db: &SqlitePool, tenant_id: &str, username: &str) -> anyhow::Result<bool> {
    let r = sqlx::query("DELETE FROM users WHERE tenant_id = $1 AND username = $2").bind(tenant_id).bind(username).execute(db).await?;
    Ok(r.rows_affected() == 1)
}
