//! HTTP calls to an identity authority: discovery, device authorization, one token poll.
//! Every call has a connect deadline and a whole-response deadline, and follows no redirect.

use super::classify::{classify, PollOutcome};
use super::parse::{self, AuthorityText, DeviceCodeGrant, GrantParse};
use crate::clock::{Millis, SharedClock};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use url::Url;

/// The two endpoints a device-code sign-in needs, from the tenant's discovery document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    pub device_authorization_endpoint: Url,
    pub token_endpoint: Url,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorityError {
    /// The authority answered with an OAuth error (unknown tenant, unknown application, …).
    Refused(AuthorityText),
    /// It answered, but not with anything a standard authority sends.
    Invalid(String),
    /// No answer: connection refused, DNS, TLS.
    Unreachable(String),
    /// No answer within the deadline.
    TimedOut,
}

impl std::fmt::Display for AuthorityError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthorityError::Refused(t) => write!(f, "the identity authority refused: {}", t.summary()),
            AuthorityError::Invalid(why) => write!(f, "the identity authority sent an invalid answer: {why}"),
            AuthorityError::Unreachable(why) => write!(f, "the identity authority is unreachable: {why}"),
            AuthorityError::TimedOut => f.write_str("the identity authority did not answer in time"),
        }
    }
}

const DISCOVERY_TTL_MS: Millis = 3_600_000;
/// Bodies we read from an authority are small JSON documents; a larger one is not an authority.
const MAX_BODY_BYTES: usize = 256 * 1024;

pub struct IdentityClient {
    http: reqwest::Client,
    clock: SharedClock,
    discovery: Mutex<HashMap<String, (Endpoints, Millis)>>,
}

impl IdentityClient {
    pub fn new(tls: rustls::ClientConfig, timeout: Duration, clock: SharedClock) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .timeout(timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("restoregate/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { http, clock, discovery: Mutex::new(HashMap::new()) })
    }

    /// `{authority}/{tenant}/v2.0/.well-known/openid-configuration`, cached for an hour.
    pub async fn endpoints(&self, authority: &Url, tenant: &str) -> Result<Endpoints, AuthorityError> {
        let url = discovery_url(authority, tenant);
        let now = self.clock.now();
        if let Some((e, at)) = self.discovery.lock().expect("discovery cache lock").get(url.as_str()) {
            if now - at < DISCOVERY_TTL_MS {
                return Ok(e.clone());
            }
        }
        let (status, body) = self.send("discovery", self.http.get(url.clone())).await?;
        let value: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|_| AuthorityError::Invalid(format!("discovery answered HTTP {status} without JSON")))?;
        if let Some(err) = parse::error_of(&value) {
            return Err(AuthorityError::Refused(err));
        }
        let field = |name: &str| -> Result<Url, AuthorityError> {
            value
                .get(name)
                .and_then(|v| v.as_str())
                .and_then(|s| Url::parse(s).ok())
                .ok_or_else(|| AuthorityError::Invalid(format!("discovery document has no valid {name}")))
        };
        let endpoints = Endpoints {
            device_authorization_endpoint: field("device_authorization_endpoint")?,
            token_endpoint: field("token_endpoint")?,
        };
        self.discovery
            .lock()
            .expect("discovery cache lock")
            .insert(url.to_string(), (endpoints.clone(), now));
        Ok(endpoints)
    }

    /// RFC 8628 section 3.1, in Microsoft's v2.0 form (`client_id`, `scope`).
    pub async fn request_device_code(
        &self,
        endpoints: &Endpoints,
        client_id: &str,
        scope: &str,
    ) -> Result<DeviceCodeGrant, AuthorityError> {
        let request = self
            .http
            .post(endpoints.device_authorization_endpoint.clone())
            .form(&[("client_id", client_id), ("scope", scope)]);
        let (status, body) = self.send("device_authorization", request).await?;
        match parse::device_code_response(status, &body) {
            GrantParse::Grant(g) => Ok(g),
            GrantParse::Refused(t) => Err(AuthorityError::Refused(t)),
            GrantParse::Malformed(why) if status >= 500 => Err(AuthorityError::Unreachable(why)),
            GrantParse::Malformed(why) => Err(AuthorityError::Invalid(why)),
        }
    }

    /// One poll of the token endpoint (RFC 8628 section 3.4), classified.
    pub async fn poll(&self, token_endpoint: &Url, client_id: &str, device_code: &str) -> PollOutcome {
        let request = self.http.post(token_endpoint.clone()).form(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("client_id", client_id),
            ("device_code", device_code),
        ]);
        match self.send("token", request).await {
            Ok((status, body)) => classify(status, parse::token_response(status, &body)),
            Err(AuthorityError::TimedOut) => PollOutcome::Transient("the token endpoint did not answer in time".into()),
            Err(e) => PollOutcome::Transient(e.to_string()),
        }
    }

    /// Sends one request and reads its body (bounded), timing it by `operation`.
    async fn send(&self, operation: &'static str, request: reqwest::RequestBuilder) -> Result<(u16, Vec<u8>), AuthorityError> {
        let start = std::time::Instant::now();
        let result = self.exchange(request).await;
        metrics::histogram!(crate::metrics::UPSTREAM_DURATION, "operation" => operation).record(start.elapsed().as_secs_f64());
        result
    }

    async fn exchange(&self, request: reqwest::RequestBuilder) -> Result<(u16, Vec<u8>), AuthorityError> {
        let mut response = request.send().await.map_err(transport_error)?;
        let status = response.status().as_u16();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(AuthorityError::Invalid("answer too large".into()));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((status, body))
    }
}

fn transport_error(e: reqwest::Error) -> AuthorityError {
    if e.is_timeout() {
        return AuthorityError::TimedOut;
    }
    // The chain of causes says what failed (refused, DNS, certificate); without the URL.
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        causes.push(s.to_string());
        source = s.source();
    }
    let mut text = e.without_url().to_string();
    for c in causes {
        text.push_str(": ");
        text.push_str(&c);
    }
    AuthorityError::Unreachable(text)
}

/// The discovery document's address: path segments appended to the authority, never string
/// concatenation of user input into the host part.
pub fn discovery_url(authority: &Url, tenant: &str) -> Url {
    let mut url = authority.clone();
    {
        let mut segments = url.path_segments_mut().expect("authority URLs are http(s) URLs");
        segments.pop_if_empty();
        segments.extend([tenant, "v2.0", ".well-known", "openid-configuration"]);
    }
    url.set_query(None);
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_url_keeps_the_authority_path_and_escapes_the_tenant() {
        let a = Url::parse("https://localhost:4443/sandbox/").unwrap();
        assert_eq!(
            discovery_url(&a, "abc.onmicrosoft.com").as_str(),
            "https://localhost:4443/sandbox/abc.onmicrosoft.com/v2.0/.well-known/openid-configuration"
        );
        let a = Url::parse("https://login.microsoftonline.com").unwrap();
        assert_eq!(
            discovery_url(&a, "a/b").as_str(),
            "https://login.microsoftonline.com/a%2Fb/v2.0/.well-known/openid-configuration"
        );
    }
}
