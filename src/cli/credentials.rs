//! The credentials file of the command-line client: which server, which CA to trust, and the
//! tokens `restoregate login` obtained. It holds bearer tokens, so it is written 0600 and never
//! printed.

use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Clone, Serialize, Deserialize)]
pub struct Credentials {
    /// Base URL of the server, without a trailing slash.
    pub server: String,
    /// PEM roots to trust besides the public ones (the server's self-signed certificate).
    pub ca_file: Option<PathBuf>,
    pub username: String,
    pub access_token: String,
    pub refresh_token: String,
}

/// By hand, so that a `{:?}` somewhere can never print a token.
impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("server", &self.server)
            .field("ca_file", &self.ca_file)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// `--credentials` / `RESTOREGATE_CREDENTIALS`, else `$XDG_CONFIG_HOME/restoregate/credentials.json`,
/// else `~/.config/restoregate/credentials.json`.
pub fn default_path(xdg_config_home: Option<&str>, home: Option<&str>) -> anyhow::Result<PathBuf> {
    // The XDG spec says a relative XDG_CONFIG_HOME is to be ignored.
    if let Some(dir) = xdg_config_home.filter(|d| Path::new(d).is_absolute()) {
        return Ok(Path::new(dir).join("restoregate/credentials.json"));
    }
    match home.filter(|h| !h.is_empty()) {
        Some(home) => Ok(Path::new(home).join(".config/restoregate/credentials.json")),
        None => anyhow::bail!("neither XDG_CONFIG_HOME nor HOME is set: give the credentials file with --credentials FILE"),
    }
}

pub fn resolve(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    match given {
        Some(p) => Ok(p.to_path_buf()),
        None => default_path(std::env::var("XDG_CONFIG_HOME").ok().as_deref(), std::env::var("HOME").ok().as_deref()),
    }
}

/// The saved credentials, or the error that tells the operator to log in.
pub fn load(path: &Path) -> anyhow::Result<Credentials> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            anyhow::bail!("not logged in: run `restoregate login` (no credentials in {})", path.display())
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read the credentials file {}", path.display())),
    };
    // serde_json's error names a position, never the text, so no token can leak through it.
    serde_json::from_str(&text).map_err(|e| {
        anyhow::anyhow!("the credentials file {} is damaged ({e}): run `restoregate login` again", path.display())
    })
}

/// Writes a new file beside the old one and renames it over: the file is 0600 from its first
/// byte whatever the old one's mode was, and a crash leaves the old credentials or the new ones.
pub fn save(path: &Path, credentials: &Credentials) -> anyhow::Result<()> {
    use std::io::Write;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    create_private_dir(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("credentials"),
        std::process::id()
    ));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let _ = std::fs::remove_file(&tmp);
    let write = || -> std::io::Result<()> {
        let mut file = options.open(&tmp)?;
        file.write_all(serde_json::to_string_pretty(credentials).expect("plain strings serialize").as_bytes())?;
        file.write_all(b"\n")?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        anyhow::anyhow!("cannot write the credentials file {}: {e}", path.display())
    })
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).with_context(|| format!("cannot create {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Credentials {
        Credentials {
            server: "https://localhost:4443".into(),
            ca_file: Some("/tmp/ca.pem".into()),
            username: "admin".into(),
            access_token: "access-secret".into(),
            refresh_token: "refresh-secret".into(),
        }
    }

    #[test]
    fn xdg_config_home_wins_when_absolute() {
        assert_eq!(default_path(Some("/x/cfg"), Some("/home/a")).unwrap(), Path::new("/x/cfg/restoregate/credentials.json"));
        assert_eq!(default_path(Some("rel"), Some("/home/a")).unwrap(), Path::new("/home/a/.config/restoregate/credentials.json"));
        assert_eq!(default_path(None, Some("/home/a")).unwrap(), Path::new("/home/a/.config/restoregate/credentials.json"));
        assert!(default_path(None, None).is_err());
    }

    #[test]
    fn saved_file_is_private_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/credentials.json");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "old").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        save(&path, &sample()).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let back = load(&path).unwrap();
        assert_eq!(back.refresh_token, "refresh-secret");
        assert_eq!(back.ca_file.as_deref(), Some(Path::new("/tmp/ca.pem")));
        assert!(!format!("{back:?}").contains("secret"), "Debug hides the tokens");
    }

    #[test]
    fn missing_file_says_to_log_in() {
        let err = load(Path::new("/nonexistent/credentials.json")).unwrap_err().to_string();
        assert!(err.starts_with("not logged in: run `restoregate login`"), "{err}");
    }
}
