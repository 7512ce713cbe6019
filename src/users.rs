//! `restoregate user …`: the server's own accounts (the ones `/v5/Token` signs in). An
//! administrator sees and acts on every restore session and code; other users on their own.

use crate::config::Settings;
use crate::crypto::hash_password;
use crate::store::{Store, User};
use clap::Subcommand;
use std::io::Read;

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add an account; its password is read from standard input (never from the command line,
    /// where other users of the machine could see it)
    Add {
        /// User name (any case; matched without regard to case)
        name: String,
        /// An administrator: sees and acts on every user's restore sessions and codes
        #[arg(long)]
        admin: bool,
        /// Read the password from standard input (required)
        #[arg(long)]
        password_stdin: bool,
    },
    /// List the accounts
    List,
    /// Remove an account and its tokens (its restore sessions stay, for the record)
    Remove { name: String },
}

pub const MIN_PASSWORD_CHARS: usize = 8;

/// A user name people can type and logs can show: 1 to 64 characters, no spaces or control
/// characters.
pub fn check_name(name: &str) -> anyhow::Result<()> {
    if name.is_empty() || name.chars().count() > 64 {
        anyhow::bail!("a user name has 1 to 64 characters");
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        anyhow::bail!("a user name has no spaces or control characters");
    }
    Ok(())
}

pub async fn run(settings: &Settings, command: UserCommand) -> anyhow::Result<()> {
    let store = open(settings).await?;
    let result = match command {
        UserCommand::Add { name, admin, password_stdin } => {
            check_name(&name)?;
            if !password_stdin {
                anyhow::bail!("give the password on standard input with --password-stdin, e.g. echo 'a password' | restoregate user add {name} --password-stdin");
            }
            let mut password = String::new();
            std::io::stdin().read_to_string(&mut password)?;
            let password = password.trim_end_matches(['\r', '\n']).to_string();
            add(&store, &name, &password, admin).await?;
            println!("added user {} ({})", name.to_lowercase(), if admin { "administrator" } else { "user" });
            Ok(())
        }
        UserCommand::List => {
            for u in store.users().await? {
                println!("{}\t{}", u.name, if u.is_admin { "administrator" } else { "user" });
            }
            Ok(())
        }
        UserCommand::Remove { name } => remove(&store, &name).await.map(|()| println!("removed user {}", name.to_lowercase())),
    };
    store.close().await;
    result
}

/// Adds an account; fails when the name is taken or the password too short.
pub async fn add(store: &Store, name: &str, password: &str, admin: bool) -> anyhow::Result<()> {
    check_name(name)?;
    if password.chars().count() < MIN_PASSWORD_CHARS {
        anyhow::bail!("the password must have at least {MIN_PASSWORD_CHARS} characters");
    }
    let password = password.to_string();
    let hash = tokio::task::spawn_blocking(move || hash_password(&password)).await??;
    let user = User { id: uuid::Uuid::new_v4().to_string(), name: name.to_lowercase(), password_hash: hash, is_admin: admin };
    if !store.insert_user(&user, chrono::Utc::now().timestamp_millis()).await? {
        anyhow::bail!("user {} already exists", user.name);
    }
    Ok(())
}

/// Removes an account, but never the last administrator (nobody could then see every session,
/// and the next start would make a new `admin`).
pub async fn remove(store: &Store, name: &str) -> anyhow::Result<()> {
    let Some(user) = store.user_by_name(name).await? else {
        anyhow::bail!("there is no user {}", name.to_lowercase());
    };
    if user.is_admin && store.users().await?.iter().filter(|u| u.is_admin).count() <= 1 {
        anyhow::bail!("{} is the last administrator: add another one first", user.name);
    }
    store.delete_user(&user.id).await?;
    Ok(())
}

async fn open(settings: &Settings) -> anyhow::Result<Store> {
    if settings.database_url.is_none() {
        std::fs::create_dir_all(&settings.data_dir)?;
        crate::crypto::create_private_file_if_missing(&settings.data_dir.join("restoregate.db"))?;
    }
    Store::open(&crate::app::database_url(settings)).await
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_are_checked() {
        assert!(super::check_name("alice").is_ok());
        assert!(super::check_name("alice@contoso.com").is_ok());
        assert!(super::check_name("").is_err());
        assert!(super::check_name("a b").is_err());
        assert!(super::check_name(&"x".repeat(65)).is_err());
    }
}
