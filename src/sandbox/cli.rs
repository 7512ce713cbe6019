//! `restoregate sandbox …`: list, add and remove the sandbox provider's tenants, applications
//! (with the public-client switch) and users. Works on `<data dir>/sandbox.db`, with or without
//! the server running.

use super::registry;
use clap::Subcommand;
use std::path::Path;

#[derive(Debug, Subcommand)]
pub enum SandboxCommand {
    /// Tenants: list, add NAME, remove NAME
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Applications of a tenant: list, add, remove
    #[command(subcommand, name = "app")]
    App(AppCommand),
    /// Users of a tenant: list, add, remove
    #[command(subcommand)]
    User(UserCommand),
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// List tenants (id and domain)
    List,
    /// Add a tenant by domain, e.g. abc.onmicrosoft.com
    Add { name: String },
    /// Remove a tenant (by domain or id) with its applications, users and codes
    Remove { name: String },
}

#[derive(Debug, Subcommand)]
pub enum AppCommand {
    /// List a tenant's applications
    List {
        #[arg(long)]
        tenant: String,
    },
    /// Add an application, or change its name or public-client switch
    Add {
        #[arg(long)]
        tenant: String,
        /// The application (client) id, a GUID
        #[arg(long)]
        client_id: String,
        #[arg(long, default_value = "Sandbox application")]
        name: String,
        /// Allow public client flows (the device code flow needs them); false reproduces AADSTS7000218
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
        public_client: bool,
    },
    /// Remove an application
    Remove {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        client_id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// List a tenant's users
    List {
        #[arg(long)]
        tenant: String,
    },
    /// Add a user, or set its password. The password is read from standard input (one line), or
    /// taken from RESTOREGATE_SANDBOX_PASSWORD; never from the command line.
    Add {
        #[arg(long)]
        tenant: String,
        /// e.g. alice@abc.onmicrosoft.com
        username: String,
        /// Read the password from standard input
        #[arg(long)]
        password_stdin: bool,
    },
    /// Remove a user
    Remove {
        #[arg(long)]
        tenant: String,
        username: String,
    },
}

pub async fn run(data_dir: &Path, command: SandboxCommand) -> anyhow::Result<()> {
    std::fs::create_dir_all(data_dir)?;
    let db = super::db::open(&data_dir.join("sandbox.db"), crate::clock::Clock::now(&crate::clock::SystemClock)).await?;
    match command {
        SandboxCommand::Tenant(TenantCommand::List) => {
            for t in registry::tenants(&db).await? {
                println!("{}\t{}", t.id, t.name);
            }
        }
        SandboxCommand::Tenant(TenantCommand::Add { name }) => {
            let id = registry::add_tenant(&db, &name).await?;
            println!("{id}\t{}", name.to_ascii_lowercase());
        }
        SandboxCommand::Tenant(TenantCommand::Remove { name }) => {
            registry::remove_tenant(&db, &name).await?;
            println!("removed tenant {name}");
        }
        SandboxCommand::App(AppCommand::List { tenant }) => {
            let t = registry::require_tenant(&db, &tenant).await?;
            for a in registry::applications(&db, &t.id).await? {
                println!("{}\t{}\tpublic_client={}", a.client_id, a.name, a.public_client);
            }
        }
        SandboxCommand::App(AppCommand::Add { tenant, client_id, name, public_client }) => {
            let t = registry::require_tenant(&db, &tenant).await?;
            registry::add_application(&db, &t.id, &client_id, &name, public_client).await?;
            println!("application {client_id} in {}: public_client={public_client}", t.name);
        }
        SandboxCommand::App(AppCommand::Remove { tenant, client_id }) => {
            let t = registry::require_tenant(&db, &tenant).await?;
            if !registry::remove_application(&db, &t.id, &client_id).await? {
                anyhow::bail!("no application {client_id} in {}", t.name);
            }
            println!("removed application {client_id} from {}", t.name);
        }
        SandboxCommand::User(UserCommand::List { tenant }) => {
            let t = registry::require_tenant(&db, &tenant).await?;
            for u in registry::users(&db, &t.id).await? {
                println!("{u}");
            }
        }
        SandboxCommand::User(UserCommand::Add { tenant, username, password_stdin }) => {
            let t = registry::require_tenant(&db, &tenant).await?;
            let password = if password_stdin {
                let mut line = String::new();
                std::io::stdin().read_line(&mut line)?;
                line.trim_end_matches(['\r', '\n']).to_string()
            } else if let Ok(p) = std::env::var("RESTOREGATE_SANDBOX_PASSWORD") {
                p
            } else {
                anyhow::bail!("give the password on standard input with --password-stdin, or in RESTOREGATE_SANDBOX_PASSWORD");
            };
            if password.is_empty() {
                anyhow::bail!("the password is empty");
            }
            registry::add_user(&db, &t.id, &username, &password).await?;
            println!("user {username} in {}", t.name);
        }
        SandboxCommand::User(UserCommand::Remove { tenant, username }) => {
            let t = registry::require_tenant(&db, &tenant).await?;
            if !registry::remove_user(&db, &t.id, &username).await? {
                anyhow::bail!("no user {username} in {}", t.name);
            }
            println!("removed user {username} from {}", t.name);
        }
    }
    Ok(())
}
