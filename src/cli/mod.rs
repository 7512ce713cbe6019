//! The command-line client for operators: `restoregate login`, `sessions` and `device-code`. It
//! talks to a running server over HTTPS like any other client of the API; nothing here reaches
//! into the server's modules.

pub mod client;
pub mod credentials;
pub mod device_code;
pub mod password;
pub mod sessions;
pub mod spinner;

use clap::Args;
use std::path::{Path, PathBuf};

/// The exit statuses of `device-code`, in its `--help` and the README.
pub const EXIT_STATUSES: &str = "Exit status:
  0    signed in
  1    error: not logged in, server unreachable, request refused
  2    wrong usage
  3    the sign-in was declined
  4    the code expired before anyone signed in
  5    the sign-in failed otherwise (the authority refused, the session stopped)
  130  interrupted with Ctrl-C (the code stays valid; the server records the outcome)";

/// An ending that is not an error of the command but has its own exit status. Its message has
/// been printed already; `main` only turns it into the status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Declined,
    Expired,
    Failed,
    Interrupted,
}

impl Exit {
    pub fn code(self) -> u8 {
        match self {
            Exit::Declined => 3,
            Exit::Expired => 4,
            Exit::Failed => 5,
            // 128 + SIGINT, as shells report a command stopped by Ctrl-C.
            Exit::Interrupted => 130,
        }
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Exit::Declined => "the sign-in was declined",
            Exit::Expired => "the device code expired",
            Exit::Failed => "the sign-in failed",
            Exit::Interrupted => "interrupted",
        })
    }
}

impl std::error::Error for Exit {}

/// The status of an ending that is not an error (None: an error, exit status 1).
pub fn exit_status(error: &anyhow::Error) -> Option<std::process::ExitCode> {
    error.downcast_ref::<Exit>().map(|e| e.code().into())
}

#[derive(Debug, Clone, Args)]
pub struct CredentialsArg {
    /// Credentials file [default: $XDG_CONFIG_HOME/restoregate/credentials.json, else
    /// ~/.config/restoregate/credentials.json]
    #[arg(long = "credentials", env = "RESTOREGATE_CREDENTIALS", value_name = "FILE")]
    pub path: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct LoginArgs {
    /// The server's base URL
    #[arg(long, env = "RESTOREGATE_SERVER", value_name = "URL", default_value = "https://localhost:4443")]
    pub server: url::Url,
    /// Account on the server
    #[arg(long, default_value = "admin")]
    pub username: String,
    /// Read the password from the first line of standard input instead of asking at the terminal
    #[arg(long)]
    pub password_stdin: bool,
    /// PEM certificate(s) to trust for the server, besides the public roots
    /// [default: <data dir>/tls-cert.pem when it exists, the server's generated certificate]
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    #[command(flatten)]
    pub credentials: CredentialsArg,
}

#[derive(Debug, Clone, Args)]
pub struct SessionsArgs {
    /// Stopped sessions too, not only working ones
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub credentials: CredentialsArg,
}

#[derive(Debug, Clone, Args)]
#[command(after_help = EXIT_STATUSES)]
pub struct DeviceCodeArgs {
    /// The restore session (its id, as `restoregate sessions` lists them)
    #[arg(long, value_name = "ID")]
    pub session: uuid::Uuid,
    /// The Entra ID application to sign in to [default: the organization's]
    #[arg(long, value_name = "GUID")]
    pub application: Option<uuid::Uuid>,
    /// Restore to a custom location: its organization, e.g. contoso.onmicrosoft.com (with --region)
    #[arg(long, value_name = "NAME", requires = "region")]
    pub organization: Option<String>,
    /// The region of --organization
    #[arg(long, value_name = "REGION", requires = "organization",
          value_parser = ["Worldwide", "USGovernment", "USDefence", "China", "Germany"])]
    pub region: Option<String>,
    #[command(flatten)]
    pub credentials: CredentialsArg,
}

/// `restoregate login`: trades the password for tokens at `/v5/Token` and saves them.
/// `data_dir` is where the server's generated certificate is looked for.
pub async fn login(args: LoginArgs, data_dir: &Path) -> anyhow::Result<()> {
    let path = credentials::resolve(args.credentials.path.as_deref())?;
    if args.server.scheme() != "https" {
        anyhow::bail!("restoregate serves HTTPS only: give --server https://{}", args.server.authority());
    }
    let server = args.server.as_str().trim_end_matches('/').to_string();
    let ca_file = match args.ca_file {
        Some(p) => Some(p),
        None => Some(data_dir.join("tls-cert.pem")).filter(|p| p.is_file()),
    };
    // Absolute, so that the saved path works from any directory later.
    let ca_file = ca_file
        .map(|p| std::fs::canonicalize(&p).map_err(|e| anyhow::anyhow!("cannot read the CA file {}: {e}", p.display())))
        .transpose()?;
    let http = client::http_client(ca_file.as_deref())?;
    // Asked at the controlling terminal even when stdin is a pipe, as ssh and sudo do.
    let password = if args.password_stdin {
        password::from_stdin()?
    } else {
        password::prompt(&format!("Password of {} at {server}: ", args.username)).await?
    };
    let response = http
        .post(format!("{server}/v5/Token"))
        .form(&[("grant_type", "password"), ("username", args.username.as_str()), ("password", password.as_str())])
        .send()
        .await
        .map_err(|e| anyhow::anyhow!(client::describe(&e, &server)))?;
    let status = response.status();
    let text = response.text().await.map_err(|e| anyhow::anyhow!(client::describe(&e, &server)))?;
    if !status.is_success() {
        anyhow::bail!("login refused: {}", client::error_message(status, &text));
    }
    let answer: client::TokenAnswer =
        serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("the server's answer to the login is not a token: {e}"))?;
    let username = answer.user_name.unwrap_or(args.username);
    let saved = credentials::Credentials {
        server: server.clone(),
        ca_file,
        username: username.clone(),
        access_token: answer.access_token,
        refresh_token: answer.refresh_token,
    };
    credentials::save(&path, &saved)?;
    println!("logged in to {server} as {username} (credentials in {})", path.display());
    Ok(())
}

/// `restoregate sessions`
pub async fn sessions(args: SessionsArgs) -> anyhow::Result<()> {
    let api = client::Api::from_saved(&credentials::resolve(args.credentials.path.as_deref())?)?;
    sessions::run(&api, args.all).await
}

/// `restoregate device-code`
pub async fn device_code(args: DeviceCodeArgs) -> anyhow::Result<()> {
    let api = client::Api::from_saved(&credentials::resolve(args.credentials.path.as_deref())?)?;
    let request = device_code::Request {
        session: args.session,
        application: args.application,
        organization: args.organization,
        region: args.region,
    };
    device_code::run(api, request).await
}
