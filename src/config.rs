//! Settings: defaults, then a TOML file (`--config`), then `RESTOREGATE_*` environment variables,
//! then command-line flags. Each later layer wins.

use crate::domain::region::Region;
use clap::Args;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Flags of the server. Every flag is also read from its `RESTOREGATE_*` variable; none has a
/// clap default so that a value from the TOML file is only overridden by one actually given.
#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// Address and port to listen on [default: 0.0.0.0:4443]
    #[arg(long, env = "RESTOREGATE_LISTEN", value_name = "ADDR:PORT")]
    pub listen: Option<SocketAddr>,
    /// Directory for the database, the TLS certificate, the sealing key and generated passwords
    /// [default: ./restoregate-data]
    #[arg(long, env = "RESTOREGATE_DATA_DIR", value_name = "DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// Base URL of links the server hands out, such as verificationUrl
    /// [default: from the listen address, https://localhost:4443 for 0.0.0.0:4443]
    #[arg(long, env = "RESTOREGATE_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<url::Url>,
    /// Database: sqlite://FILE or postgres://USER@HOST/DB [default: sqlite database in the data directory]
    #[arg(long, env = "RESTOREGATE_DATABASE_URL", value_name = "URL")]
    pub database_url: Option<String>,
    /// PEM certificate chain to serve instead of the generated self-signed one (with --tls-key)
    #[arg(long, env = "RESTOREGATE_TLS_CERT", value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert
    #[arg(long, env = "RESTOREGATE_TLS_KEY", value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve the sandbox identity provider under /sandbox/ and use it for every region whose
    /// authority is not set explicitly [default: true]
    #[arg(long, env = "RESTOREGATE_SANDBOX", value_name = "BOOL", num_args = 0..=1,
          default_missing_value = "true", action = clap::ArgAction::Set)]
    pub sandbox: Option<bool>,
    /// Extra PEM root certificates trusted for outbound calls to identity authorities
    #[arg(long, env = "RESTOREGATE_AUTHORITY_CA_FILE", value_name = "FILE")]
    pub authority_ca_file: Option<PathBuf>,
    /// TOML configuration file (see deploy/restoregate.example.toml)
    #[arg(long, env = "RESTOREGATE_CONFIG", value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
}

/// The TOML file: the same names as the flags, plus the settings that only a file or the
/// environment carries.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    public_url: Option<url::Url>,
    database_url: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    sandbox: Option<bool>,
    authority_ca_file: Option<PathBuf>,
    #[serde(default)]
    regions: BTreeMap<String, RegionOverride>,
    session_idle_timeout_seconds: Option<u64>,
    sandbox_poll_interval_seconds: Option<u64>,
    sandbox_code_lifetime_seconds: Option<u64>,
    authority_polls_per_second: Option<f64>,
    outbound_timeout_ms: Option<u64>,
    follower_lease_seconds: Option<u64>,
    header_read_timeout_seconds: Option<u64>,
    body_read_timeout_seconds: Option<u64>,
    login_failures_per_address: Option<u64>,
    login_failures_per_account: Option<u64>,
    login_failure_window_seconds: Option<u64>,
    login_concurrent_hashes: Option<u64>,
    device_codes_per_user_per_minute: Option<u64>,
    pending_sign_ins_per_user: Option<u64>,
    sandbox_wrong_codes_per_address: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RegionOverride {
    pub authority: Option<url::Url>,
    pub graph: Option<url::Url>,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// None: derived from the address actually bound (see `app`).
    pub public_url: Option<url::Url>,
    pub database_url: Option<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub sandbox: bool,
    pub authority_ca_file: Option<PathBuf>,
    pub regions: BTreeMap<Region, RegionOverride>,
    pub admin_password: Option<String>,
    pub sandbox_password: Option<String>,
    /// The bearer token Prometheus sends to `/metrics` (environment only, like the passwords).
    pub metrics_token: Option<String>,
    /// A restore session nobody touches for this long is stopped by the server.
    pub session_idle_timeout_seconds: u64,
    /// The `interval` the sandbox provider asks clients to keep between polls.
    pub sandbox_poll_interval_seconds: u64,
    pub sandbox_code_lifetime_seconds: u64,
    /// Budget of token-endpoint polls per second per authority host, shared by all pending sign-ins.
    pub authority_polls_per_second: f64,
    /// Deadline of each outbound call to an authority (connect and whole response).
    pub outbound_timeout_ms: u64,
    /// How long an instance's claim on a pending sign-in lasts without renewal; when it dies,
    /// other instances take its sign-ins over within this time.
    pub follower_lease_seconds: u64,
    /// A connection must send a request's headers within this long (slow-header attacks).
    pub header_read_timeout_seconds: u64,
    /// A request's body must arrive within this long, or the answer is 408.
    pub body_read_timeout_seconds: u64,
    /// Wrong passwords at /v5/Token per client address per `login_failure_window_seconds`
    /// (0: no limit). Checked before the password is hashed.
    pub login_failures_per_address: u64,
    /// Wrong passwords per account per window, from addresses that have not signed in to it
    /// before (0: no limit).
    pub login_failures_per_account: u64,
    pub login_failure_window_seconds: u64,
    /// Password hashes computed at once; further logins wait for one to finish.
    pub login_concurrent_hashes: u64,
    /// restoreDeviceCode requests per user per minute (0: no limit).
    pub device_codes_per_user_per_minute: u64,
    /// Sign-ins a user may have pending at once (0: no limit).
    pub pending_sign_ins_per_user: u64,
    /// Wrong codes and wrong passwords one client address may enter at the sandbox page per 15
    /// minutes.
    pub sandbox_wrong_codes_per_address: u64,
}

impl Settings {
    /// Built-in defaults: the server as `cargo run --release` starts it.
    pub fn defaults() -> Self {
        Settings {
            listen: "0.0.0.0:4443".parse().expect("valid literal"),
            data_dir: PathBuf::from("restoregate-data"),
            public_url: None,
            database_url: None,
            tls_cert: None,
            tls_key: None,
            sandbox: true,
            authority_ca_file: None,
            regions: BTreeMap::new(),
            admin_password: None,
            sandbox_password: None,
            metrics_token: None,
            session_idle_timeout_seconds: 3600,
            sandbox_poll_interval_seconds: 5,
            sandbox_code_lifetime_seconds: 900,
            authority_polls_per_second: 200.0,
            outbound_timeout_ms: 10_000,
            follower_lease_seconds: 30,
            header_read_timeout_seconds: 10,
            body_read_timeout_seconds: 30,
            login_failures_per_address: 10,
            login_failures_per_account: 20,
            login_failure_window_seconds: 300,
            login_concurrent_hashes: 2,
            device_codes_per_user_per_minute: 60,
            pending_sign_ins_per_user: 100,
            sandbox_wrong_codes_per_address: crate::sandbox::MAX_WRONG_CODES_PER_ADDRESS as u64,
        }
    }

    /// Layers the TOML file, the environment and the flags over the defaults.
    pub fn load(args: &ServeArgs) -> anyhow::Result<Self> {
        let mut s = Settings::defaults();
        if let Some(path) = &args.config {
            s.apply_file(path)?;
        }
        s.apply_region_env(std::env::vars())?;
        for (name, field) in [
            ("RESTOREGATE_SESSION_IDLE_TIMEOUT_SECONDS", &mut s.session_idle_timeout_seconds),
            ("RESTOREGATE_SANDBOX_POLL_INTERVAL_SECONDS", &mut s.sandbox_poll_interval_seconds),
            ("RESTOREGATE_SANDBOX_CODE_LIFETIME_SECONDS", &mut s.sandbox_code_lifetime_seconds),
            ("RESTOREGATE_OUTBOUND_TIMEOUT_MS", &mut s.outbound_timeout_ms),
            ("RESTOREGATE_FOLLOWER_LEASE_SECONDS", &mut s.follower_lease_seconds),
            ("RESTOREGATE_HEADER_READ_TIMEOUT_SECONDS", &mut s.header_read_timeout_seconds),
            ("RESTOREGATE_BODY_READ_TIMEOUT_SECONDS", &mut s.body_read_timeout_seconds),
            ("RESTOREGATE_LOGIN_FAILURES_PER_ADDRESS", &mut s.login_failures_per_address),
            ("RESTOREGATE_LOGIN_FAILURES_PER_ACCOUNT", &mut s.login_failures_per_account),
            ("RESTOREGATE_LOGIN_FAILURE_WINDOW_SECONDS", &mut s.login_failure_window_seconds),
            ("RESTOREGATE_LOGIN_CONCURRENT_HASHES", &mut s.login_concurrent_hashes),
            ("RESTOREGATE_DEVICE_CODES_PER_USER_PER_MINUTE", &mut s.device_codes_per_user_per_minute),
            ("RESTOREGATE_PENDING_SIGN_INS_PER_USER", &mut s.pending_sign_ins_per_user),
            ("RESTOREGATE_SANDBOX_WRONG_CODES_PER_ADDRESS", &mut s.sandbox_wrong_codes_per_address),
        ] {
            if let Ok(v) = std::env::var(name) {
                *field = v.trim().parse().map_err(|_| anyhow::anyhow!("{name} must be a whole number"))?;
            }
        }
        if let Ok(v) = std::env::var("RESTOREGATE_AUTHORITY_POLLS_PER_SECOND") {
            s.authority_polls_per_second = v
                .trim()
                .parse()
                .map_err(|_| anyhow::anyhow!("RESTOREGATE_AUTHORITY_POLLS_PER_SECOND must be a number"))?;
        }
        s.admin_password = std::env::var("RESTOREGATE_ADMIN_PASSWORD").ok().filter(|p| !p.is_empty());
        s.sandbox_password = std::env::var("RESTOREGATE_SANDBOX_PASSWORD").ok().filter(|p| !p.is_empty());
        s.metrics_token = std::env::var("RESTOREGATE_METRICS_TOKEN").ok().filter(|p| !p.is_empty());
        // Flags and their variables (clap has already let a flag win over its variable).
        if let Some(v) = args.listen {
            s.listen = v;
        }
        if let Some(v) = &args.data_dir {
            s.data_dir = v.clone();
        }
        if let Some(v) = &args.public_url {
            s.public_url = Some(v.clone());
        }
        if let Some(v) = &args.database_url {
            s.database_url = Some(v.clone());
        }
        if let Some(v) = &args.tls_cert {
            s.tls_cert = Some(v.clone());
        }
        if let Some(v) = &args.tls_key {
            s.tls_key = Some(v.clone());
        }
        if let Some(v) = args.sandbox {
            s.sandbox = v;
        }
        if let Some(v) = &args.authority_ca_file {
            s.authority_ca_file = Some(v.clone());
        }
        s.validate()?;
        Ok(s)
    }

    fn apply_file(&mut self, path: &Path) -> anyhow::Result<()> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read configuration file {}: {e}", path.display()))?;
        let f: FileSettings = toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("configuration file {}: {e}", path.display()))?;
        macro_rules! take {
            ($($field:ident),*) => { $( if let Some(v) = f.$field { self.$field = v; } )* };
        }
        macro_rules! take_opt {
            ($($field:ident),*) => { $( if f.$field.is_some() { self.$field = f.$field; } )* };
        }
        take!(listen, data_dir, sandbox, session_idle_timeout_seconds, sandbox_poll_interval_seconds,
              sandbox_code_lifetime_seconds, authority_polls_per_second, outbound_timeout_ms, follower_lease_seconds,
              header_read_timeout_seconds, body_read_timeout_seconds, login_failures_per_address,
              login_failures_per_account, login_failure_window_seconds, login_concurrent_hashes,
              device_codes_per_user_per_minute, pending_sign_ins_per_user, sandbox_wrong_codes_per_address);
        take_opt!(public_url, database_url, tls_cert, tls_key, authority_ca_file);
        for (name, o) in f.regions {
            let region: Region = name.parse().map_err(|e| anyhow::anyhow!("configuration file: {e}"))?;
            let entry = self.regions.entry(region).or_default();
            if o.authority.is_some() {
                entry.authority = o.authority;
            }
            if o.graph.is_some() {
                entry.graph = o.graph;
            }
        }
        Ok(())
    }

    /// `RESTOREGATE_REGIONS__<REGION>__AUTHORITY` and `…__GRAPH`.
    pub fn apply_region_env(&mut self, vars: impl Iterator<Item = (String, String)>) -> anyhow::Result<()> {
        for (key, value) in vars {
            let Some(rest) = key.strip_prefix("RESTOREGATE_REGIONS__") else { continue };
            let (region, field) = rest
                .split_once("__")
                .ok_or_else(|| anyhow::anyhow!("{key}: expected RESTOREGATE_REGIONS__<REGION>__AUTHORITY or __GRAPH"))?;
            let region: Region = region.parse().map_err(|e| anyhow::anyhow!("{key}: {e}"))?;
            let url: url::Url = value.parse().map_err(|e| anyhow::anyhow!("{key}: not a URL: {e}"))?;
            let entry = self.regions.entry(region).or_default();
            match field.to_ascii_lowercase().as_str() {
                "authority" => entry.authority = Some(url),
                "graph" => entry.graph = Some(url),
                _ => anyhow::bail!("{key}: expected AUTHORITY or GRAPH after the region"),
            }
        }
        Ok(())
    }

    fn validate(&self) -> anyhow::Result<()> {
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            anyhow::bail!("tls_cert and tls_key must be given together");
        }
        // Ranges: beyond them a value is a mistake, and times in milliseconds would overflow.
        const DAY: u64 = 24 * 3600;
        for (name, value, min, max) in [
            ("session_idle_timeout_seconds", self.session_idle_timeout_seconds, 60, 365 * DAY),
            ("sandbox_poll_interval_seconds", self.sandbox_poll_interval_seconds, 1, 3600),
            ("sandbox_code_lifetime_seconds", self.sandbox_code_lifetime_seconds, 1, DAY),
            ("outbound_timeout_ms", self.outbound_timeout_ms, 100, 600_000),
            ("follower_lease_seconds", self.follower_lease_seconds, 1, 3600),
            ("header_read_timeout_seconds", self.header_read_timeout_seconds, 1, 3600),
            ("body_read_timeout_seconds", self.body_read_timeout_seconds, 1, 3600),
            ("login_failure_window_seconds", self.login_failure_window_seconds, 1, 30 * DAY),
            ("login_concurrent_hashes", self.login_concurrent_hashes, 1, 1024),
            ("sandbox_wrong_codes_per_address", self.sandbox_wrong_codes_per_address, 1, 1_000_000),
            ("login_failures_per_address", self.login_failures_per_address, 0, 1_000_000),
            ("login_failures_per_account", self.login_failures_per_account, 0, 1_000_000),
            ("device_codes_per_user_per_minute", self.device_codes_per_user_per_minute, 0, 1_000_000),
            ("pending_sign_ins_per_user", self.pending_sign_ins_per_user, 0, 1_000_000),
        ] {
            if !(min..=max).contains(&value) {
                anyhow::bail!("{name} must be from {min} to {max}, not {value}");
            }
        }
        if !(self.authority_polls_per_second.is_finite() && (0.01..=1_000_000.0).contains(&self.authority_polls_per_second)) {
            anyhow::bail!("authority_polls_per_second must be from 0.01 to 1000000, not {}", self.authority_polls_per_second);
        }
        if let Some(url) = &self.public_url {
            if url.scheme() != "https" || url.host_str().is_none() {
                anyhow::bail!("public_url must be an https:// URL with a host (the server serves HTTPS only), not {url}");
            }
        }
        for (region, o) in &self.regions {
            for (key, url) in [("authority", &o.authority), ("graph", &o.graph)] {
                if let Some(url) = url.as_ref().filter(|u| !matches!(u.scheme(), "https" | "http") || u.host_str().is_none()) {
                    anyhow::bail!("regions.{region}.{key} must be an https:// URL (http:// for a loopback test authority), not {url}");
                }
            }
        }
        if let Some(url) = &self.database_url {
            let postgres = url.strip_prefix("postgres://").or_else(|| url.strip_prefix("postgresql://"));
            if let Some(rest) = postgres {
                // Without a database name the driver picks one after the OS user: never what is meant.
                let database = rest.split_once('/').map(|(_, d)| d.split('?').next().unwrap_or("")).unwrap_or("");
                let host = rest.split('/').next().unwrap_or("").rsplit('@').next().unwrap_or("");
                if database.is_empty() || host.is_empty() {
                    anyhow::bail!("database_url must name the host and the database: postgres://USER@HOST:PORT/DATABASE");
                }
            } else if let Some(file) = url.strip_prefix("sqlite:") {
                let file = file.trim_start_matches("//");
                if file.split('?').next().unwrap_or("").is_empty() {
                    anyhow::bail!("database_url must name the file: sqlite://PATH");
                }
            } else {
                anyhow::bail!("database_url must be sqlite://FILE or postgres://USER@HOST:PORT/DATABASE");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_environment_overrides_authority_and_graph() {
        let mut s = Settings::defaults();
        s.apply_region_env(
            [
                ("RESTOREGATE_REGIONS__WORLDWIDE__AUTHORITY".to_string(), "https://127.0.0.1:9/".to_string()),
                ("RESTOREGATE_REGIONS__USGOVERNMENT__GRAPH".to_string(), "https://g.example/".to_string()),
                ("UNRELATED".to_string(), "x".to_string()),
            ]
            .into_iter(),
        )
        .unwrap();
        assert_eq!(s.regions[&Region::Worldwide].authority.as_ref().unwrap().as_str(), "https://127.0.0.1:9/");
        assert_eq!(s.regions[&Region::USGovernment].graph.as_ref().unwrap().as_str(), "https://g.example/");
        assert!(s
            .apply_region_env([("RESTOREGATE_REGIONS__MARS__AUTHORITY".into(), "https://x/".into())].into_iter())
            .is_err());
    }

    /// Values that would break the server quietly are refused at start, naming the setting.
    #[test]
    fn out_of_range_values_and_unusable_urls_are_refused() {
        assert!(Settings::defaults().validate().is_ok());
        let refused = |change: &dyn Fn(&mut Settings), says: &str| {
            let mut s = Settings::defaults();
            change(&mut s);
            let e = s.validate().expect_err(says).to_string();
            assert!(e.contains(says), "{e}");
        };
        // Seconds as large as these overflowed into the past once in milliseconds.
        refused(&|s| s.session_idle_timeout_seconds = i64::MAX as u64, "session_idle_timeout_seconds must be from 60");
        refused(&|s| s.session_idle_timeout_seconds = 0, "session_idle_timeout_seconds");
        refused(&|s| s.sandbox_code_lifetime_seconds = i64::MAX as u64, "sandbox_code_lifetime_seconds");
        refused(&|s| s.follower_lease_seconds = u64::MAX, "follower_lease_seconds");
        refused(&|s| s.login_failure_window_seconds = u64::MAX, "login_failure_window_seconds");
        refused(&|s| s.outbound_timeout_ms = 0, "outbound_timeout_ms");
        refused(&|s| s.authority_polls_per_second = f64::INFINITY, "authority_polls_per_second");
        refused(&|s| s.authority_polls_per_second = 1e-300, "authority_polls_per_second");
        refused(&|s| s.public_url = Some("ftp://x/".parse().unwrap()), "public_url must be an https:// URL");
        refused(
            &|s| {
                s.regions.insert(Region::Worldwide, RegionOverride { authority: Some("ftp://x/".parse().unwrap()), graph: None });
            },
            "regions.Worldwide.authority",
        );
        refused(&|s| s.database_url = Some("postgres://".into()), "must name the host and the database");
        refused(&|s| s.database_url = Some("postgres://postgres@127.0.0.1:5432".into()), "must name the host and the database");
        refused(&|s| s.database_url = Some("sqlite:".into()), "must name the file");
        let mut s = Settings::defaults();
        s.database_url = Some("postgres://postgres@127.0.0.1:5432/restoregate".into());
        s.regions.insert(Region::Worldwide, RegionOverride { authority: Some("http://127.0.0.1:9/".parse().unwrap()), graph: None });
        assert!(s.validate().is_ok());
    }

}
