//! The `restoregate` command: starts the server (no subcommand, or `serve`).

use clap::{Parser, Subcommand};
use restoregate::app::Application;
use restoregate::config::{ServeArgs, Settings};
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "restoregate",
    version,
    about = "REST server for restore sessions of Microsoft 365 backups (Veeam Backup for Microsoft 365 REST API v5 wire format)",
    long_about = "REST server for restore sessions of Microsoft 365 backups. It speaks the wire format of the \
Veeam Backup for Microsoft 365 REST API v5 and obtains device codes (RFC 8628) from the Microsoft identity \
platform of each region, or from its embedded sandbox identity provider.\n\nEvery flag can also be set with \
its RESTOREGATE_* environment variable or in the TOML file given with --config; flags win over variables, \
variables over the file (deploy/restoregate.example.toml documents every setting).\n\nEnvironment or file only: \
RESTOREGATE_ADMIN_PASSWORD (the first-start admin account), RESTOREGATE_SANDBOX_PASSWORD (sandbox users), \
RESTOREGATE_METRICS_TOKEN (the bearer token for /metrics), \
RESTOREGATE_REGIONS__<REGION>__AUTHORITY / __GRAPH (e.g. RESTOREGATE_REGIONS__WORLDWIDE__AUTHORITY=https://login.microsoftonline.com), \
RESTOREGATE_SESSION_IDLE_TIMEOUT_SECONDS (3600), RESTOREGATE_AUTHORITY_POLLS_PER_SECOND (200), \
RESTOREGATE_OUTBOUND_TIMEOUT_MS (10000), RESTOREGATE_FOLLOWER_LEASE_SECONDS (30), \
RESTOREGATE_SANDBOX_POLL_INTERVAL_SECONDS (5), RESTOREGATE_SANDBOX_CODE_LIFETIME_SECONDS (900), \
RESTOREGATE_LOG (log filter, e.g. info or restoregate=debug), RESTOREGATE_LOG_FORMAT (text or json)."
)]
struct Cli {
    #[command(flatten)]
    serve: ServeArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the server (the default when no command is given)
    Serve,
    /// Create or upgrade the database schema, then exit (the server also does it at start)
    Migrate,
    /// Manage the sandbox identity provider's tenants, applications and users
    #[command(subcommand)]
    Sandbox(restoregate::sandbox::cli::SandboxCommand),
    /// Manage the server's own accounts (administrators and users)
    #[command(subcommand)]
    User(restoregate::users::UserCommand),
    /// Log in to a server and save the tokens for the commands below
    Login(restoregate::cli::LoginArgs),
    /// List restore sessions (working ones; --all for stopped ones too)
    Sessions(restoregate::cli::SessionsArgs),
    /// Get a device code for a restore session and wait until the sign-in ends
    DeviceCode(restoregate::cli::DeviceCodeArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, None | Some(Command::Serve)) {
        // The commands print lists that are piped into head and grep: a closed pipe ends them
        // quietly, as it does other Unix tools, instead of a panic on the next print. (Rust
        // ignores SIGPIPE; the server keeps it ignored and handles write errors itself.)
        // SAFETY: restores the default disposition of one signal before any thread starts.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    // Read before the settings, so that what loading them says is logged in the chosen format.
    let json_logs = match std::env::var("RESTOREGATE_LOG_FORMAT").as_deref() {
        Err(std::env::VarError::NotPresent) | Ok("text") => false,
        Ok("json") => true,
        _ => {
            eprintln!("error: RESTOREGATE_LOG_FORMAT must be text or json");
            return std::process::ExitCode::from(2);
        }
    };
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RESTOREGATE_LOG")
                // rustls warns for every client that sends an IP address as SNI (wrk, curl to an
                // IP): noise for an operator, so only its errors by default.
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rustls=error")),
        )
        .with_writer(std::io::stderr)
        // Colours only for a person at a terminal, not in files and journals.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none());
    if json_logs {
        // One object a line; the request's span (request_id, method, path) as "span".
        logs.json().with_current_span(true).with_span_list(false).init();
    } else {
        logs.init();
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            None | Some(Command::Serve) => serve(&cli.serve).await,
            Some(Command::Migrate) => {
                let settings = Settings::load(&cli.serve)?;
                let url = restoregate::app::database_url(&settings);
                restoregate::store::Store::open(&url).await?.close().await;
                println!("database schema is up to date");
                Ok(())
            }
            Some(Command::User(command)) => restoregate::users::run(&Settings::load(&cli.serve)?, command).await,
            Some(Command::Sandbox(command)) => {
                let settings = Settings::load(&cli.serve)?;
                restoregate::sandbox::cli::run(&settings.data_dir, command).await
            }
            Some(Command::Login(args)) => restoregate::cli::login(args, &Settings::load(&cli.serve)?.data_dir).await,
            Some(Command::Sessions(args)) => restoregate::cli::sessions(args).await,
            Some(Command::DeviceCode(args)) => restoregate::cli::device_code(args).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => match restoregate::cli::exit_status(&e) {
            // An ending of the client (declined, expired, …): its message is printed already.
            Some(status) => status,
            None => {
                eprintln!("error: {e:#}");
                std::process::ExitCode::FAILURE
            }
        },
    }
}

async fn serve(args: &ServeArgs) -> anyhow::Result<()> {
    let settings = Settings::load(args)?;
    let app = Application::build(settings).await?;
    // Signals first: whatever happens to the lines below, SIGTERM stops the server.
    let handle = app.handle();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: finishing in-flight requests");
        handle.graceful_shutdown(Some(Duration::from_secs(10)));
    });
    // What a person starting it must be told, on stdout. A closed stdout (`| head`) loses the
    // lines, not the server.
    let say = |line: String| {
        use std::io::Write;
        let _ = writeln!(std::io::stdout(), "{line}");
    };
    let url = app.public_url().clone();
    say(format!("restoregate listening on {} (public URL {})", app.local_addr(), url));
    if let Some(path) = &app.notes.generated_certificate {
        say(format!("generated a self-signed TLS certificate: {}", path.display()));
    }
    if let Some(path) = &app.notes.admin_password_file {
        say(format!("first start: the password of user 'admin' is in {}", path.display()));
    }
    if let Some(path) = &app.notes.metrics_token_file {
        say(format!("the bearer token for /metrics (Prometheus) is in {}", path.display()));
    }
    if app.sandbox_enabled() {
        say(format!("*** SANDBOX IDENTITY PROVIDER ON: regions without a configured authority sign in at {url}sandbox/device, not at Microsoft ***"));
        if let Some(path) = &app.notes.sandbox_password_file {
            say(format!("    the password of sandbox users admin@<tenant> is in {}", path.display()));
        }
    }
    app.run_until_stopped().await
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

// mimalloc instead of glibc's allocator: a request allocates and frees many small buffers across
// threads, where glibc's malloc showed about a tenth of the server's CPU in a profile under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
