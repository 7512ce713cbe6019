//! HTTPS calls to the server with the saved bearer token. An access token the server no longer
//! takes (401) is renewed with the refresh token once, saved, and the call repeated, so that an
//! operator logs in once per refresh-token lifetime rather than once an hour.

use super::credentials::{self, Credentials};
use anyhow::Context;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::Mutex;

/// Deadlines of every call: the CLI never hangs on a server that stopped answering.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// An HTTPS client trusting the public roots plus `ca_file` (the server's own certificate).
pub fn http_client(ca_file: Option<&Path>) -> anyhow::Result<reqwest::Client> {
    crate::tls::install_crypto_provider();
    let extra = match ca_file {
        Some(path) => crate::tls::read_certs(path).context("the --ca-file")?,
        None => Vec::new(),
    };
    reqwest::Client::builder()
        .tls_backend_preconfigured(crate::tls::client_config(&extra)?)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .user_agent(concat!("restoregate-cli/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("cannot set up the HTTPS client")
}

/// A connection error as one line with its causes (reqwest's own text omits them, and the
/// cause, such as an untrusted certificate, is what the operator needs).
pub fn describe(e: &reqwest::Error, server: &str) -> String {
    let mut text = format!("cannot reach the server at {server}");
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    let mut causes = Vec::new();
    while let Some(s) = source {
        causes.push(s.to_string());
        source = s.source();
    }
    if e.is_timeout() {
        causes.push("no answer in time".into());
    }
    if !causes.is_empty() {
        text.push_str(": ");
        text.push_str(&causes.join(": "));
    }
    if causes.iter().any(|c| c.contains("certificate") || c.contains("UnknownIssuer")) {
        text.push_str(" (give the server's certificate with `restoregate login --ca-file PEM`)");
    }
    text
}

/// The `message` of an error body (`{"message", "errorCode"}`, or OAuth's `error_description`).
pub fn error_message(status: StatusCode, body: &str) -> String {
    #[derive(Deserialize)]
    struct Body {
        message: Option<String>,
        error_description: Option<String>,
    }
    let said = serde_json::from_str::<Body>(body).ok().and_then(|b| b.message.or(b.error_description));
    match said {
        Some(m) => format!("the server answered {}: {m}", status.as_u16()),
        None => format!("the server answered {}", status.as_u16()),
    }
}

/// The answer of `/v5/Token` that the client keeps.
#[derive(Deserialize)]
pub struct TokenAnswer {
    pub access_token: String,
    pub refresh_token: String,
    #[serde(rename = "userName")]
    pub user_name: Option<String>,
}

/// Signals that the refresh token was refused too: only a new login helps.
const LOG_IN_AGAIN: &str = "the saved sign-in has expired: run `restoregate login` again";

pub struct Api {
    http: reqwest::Client,
    path: PathBuf,
    credentials: Mutex<Credentials>,
    server: String,
}

impl Api {
    /// The client of the saved credentials, or "not logged in: run `restoregate login`".
    pub fn from_saved(path: &Path) -> anyhow::Result<Api> {
        let credentials = credentials::load(path)?;
        let http = http_client(credentials.ca_file.as_deref())?;
        Ok(Api { http, path: path.to_path_buf(), server: credentials.server.clone(), credentials: Mutex::new(credentials) })
    }

    pub fn server(&self) -> &str {
        &self.server
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.call(Method::GET, path, None).await
    }

    pub async fn post<T: DeserializeOwned>(&self, path: &str, body: &Value) -> anyhow::Result<T> {
        self.call(Method::POST, path, Some(body)).await
    }

    async fn call<T: DeserializeOwned>(&self, method: Method, path: &str, body: Option<&Value>) -> anyhow::Result<T> {
        let url = format!("{}{path}", self.server);
        let mut refreshed = false;
        loop {
            let token = self.credentials.lock().await.access_token.clone();
            let mut request = self.http.request(method.clone(), &url).bearer_auth(&token);
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = request.send().await.map_err(|e| anyhow::anyhow!(describe(&e, &self.server)))?;
            let status = response.status();
            if status == StatusCode::UNAUTHORIZED && !refreshed {
                self.refresh(&token).await?;
                refreshed = true;
                continue;
            }
            let text = response.text().await.map_err(|e| anyhow::anyhow!(describe(&e, &self.server)))?;
            if status == StatusCode::UNAUTHORIZED {
                anyhow::bail!(LOG_IN_AGAIN);
            }
            if !status.is_success() {
                anyhow::bail!(error_message(status, &text));
            }
            return serde_json::from_str(&text)
                .map_err(|e| anyhow::anyhow!("the server's answer to {method} {path} is not what this client expects: {e}"));
        }
    }

    /// Trades the refresh token for new tokens and saves them. `stale` is the access token that
    /// was refused: when another call has already renewed it, there is nothing to do.
    async fn refresh(&self, stale: &str) -> anyhow::Result<()> {
        let mut credentials = self.credentials.lock().await;
        if credentials.access_token != stale {
            return Ok(());
        }
        let response = self
            .http
            .post(format!("{}/v5/Token", self.server))
            .form(&[("grant_type", "refresh_token"), ("refresh_token", credentials.refresh_token.as_str())])
            .send()
            .await
            .map_err(|e| anyhow::anyhow!(describe(&e, &self.server)))?;
        if !response.status().is_success() {
            anyhow::bail!(LOG_IN_AGAIN);
        }
        let answer: TokenAnswer = response.json().await.context("the server's answer to the refresh is not a token")?;
        credentials.access_token = answer.access_token;
        credentials.refresh_token = answer.refresh_token;
        credentials::save(&self.path, &credentials)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_give_their_message() {
        let api = r#"{"message": "Restore session x was not found", "errorCode": "ResourceNotFound"}"#;
        assert_eq!(error_message(StatusCode::NOT_FOUND, api), "the server answered 404: Restore session x was not found");
        let oauth = r#"{"error": "invalid_grant", "error_description": "The user name or password is incorrect"}"#;
        assert_eq!(error_message(StatusCode::BAD_REQUEST, oauth), "the server answered 400: The user name or password is incorrect");
        assert_eq!(error_message(StatusCode::BAD_GATEWAY, "<html>"), "the server answered 502");
    }
}
