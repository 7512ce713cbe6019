//! The RFC 8628 client against loopback authorities that replay what real ones send, one scripted
//! sequence each, in simulated time: each test asserts the outcome and the exact poll times.

use restoregate::clock::{Clock, ManualClock};
use restoregate::domain::schedule::Schedule;
use restoregate::identity::{Endpoints, IdentityClient};
use restoregate::signin::outcome::{poll_step, Finished, PollTarget, Step};
use restoregate::store::SignInState;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone)]
enum Reply {
    Json(u16, Value),
    /// Never answers (longer than the client's deadline).
    Hang,
    Text(u16, &'static str),
}

fn pending() -> Reply {
    Reply::Json(400, json!({"error": "authorization_pending", "error_description": "AADSTS70016: OAuth 2.0 device flow error. Authorization is pending. Continue polling.", "error_codes": [70016]}))
}
fn slow_down() -> Reply {
    Reply::Json(400, json!({"error": "slow_down", "error_description": "slow down"}))
}
fn tokens() -> Reply {
    // An unsigned JWT is enough for the account name shown in the event.
    let claims = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, r#"{"upn":"admin@abc.onmicrosoft.com"}"#);
    Reply::Json(200, json!({"token_type": "Bearer", "access_token": format!("e30.{claims}.sig"), "refresh_token": "r", "expires_in": "3599"}))
}

struct Authority {
    base: String,
    polls: Arc<Mutex<Vec<i64>>>,
    device_reply: Arc<Mutex<Option<Value>>>,
}

/// A loopback authority whose token endpoint answers `script` in order, recording the simulated
/// time of each poll.
async fn authority(clock: Arc<ManualClock>, script: Vec<Reply>) -> Authority {
    use axum::routing::post;
    let script = Arc::new(Mutex::new(VecDeque::from(script)));
    let polls = Arc::new(Mutex::new(Vec::new()));
    let device_reply: Arc<Mutex<Option<Value>>> = Arc::new(Mutex::new(None));
    let (p, dr) = (polls.clone(), device_reply.clone());
    let router = axum::Router::new()
        .route(
            "/token",
            post(move || {
                let (script, polls, clock) = (script.clone(), p.clone(), clock.clone());
                async move {
                    let reply = {
                        polls.lock().unwrap().push(clock.now());
                        script.lock().unwrap().pop_front().expect("a poll beyond the script")
                    };
                    respond(reply).await
                }
            }),
        )
        .route(
            "/devicecode",
            post(move || {
                let dr = dr.clone();
                async move {
                    let body = dr.lock().unwrap().clone().unwrap();
                    respond(Reply::Json(200, body)).await
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    Authority { base, polls, device_reply }
}

async fn respond(reply: Reply) -> axum::response::Response {
    use axum::response::IntoResponse;
    match reply {
        Reply::Json(status, body) => (axum::http::StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response(),
        Reply::Text(status, body) => (axum::http::StatusCode::from_u16(status).unwrap(), body).into_response(),
        Reply::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            unreachable!()
        }
    }
}

fn client(clock: Arc<ManualClock>) -> IdentityClient {
    restoregate::tls::install_crypto_provider();
    IdentityClient::new(restoregate::tls::client_config(&[]).unwrap(), Duration::from_millis(300), clock).unwrap()
}

/// Follows one code issued at t=0 with `interval` and `expires_in` until it ends; the outcome and
/// the poll times in seconds.
async fn follow(script: Vec<Reply>, interval: Option<u64>, expires_in: u64) -> (Finished, Vec<f64>) {
    let clock = Arc::new(ManualClock::new(0));
    let auth = authority(clock.clone(), script).await;
    let identity = client(clock.clone());
    let token_endpoint = url::Url::parse(&format!("{}/token", auth.base)).unwrap();
    let target = PollTarget { token_endpoint: &token_endpoint, client_id: "app", tenant: "abc.onmicrosoft.com", device_code: "dc" };
    let mut schedule = Schedule::new(0, interval, expires_in);
    let finished = loop {
        clock.set(schedule.next_poll_at);
        match poll_step(&identity, &mut schedule, &target, || clock.now()).await {
            Step::Again => continue,
            Step::Finished(f) => break f,
        }
    };
    let times = auth.polls.lock().unwrap().iter().map(|ms| *ms as f64 / 1000.0).collect();
    (finished, times)
}

#[tokio::test]
async fn pending_pending_token() {
    let (f, times) = follow(vec![pending(), pending(), tokens()], Some(5), 900).await;
    assert_eq!(f.state, SignInState::SignedIn);
    assert_eq!(f.message, "Signed in as admin@abc.onmicrosoft.com");
    assert_eq!(times, [5.0, 10.0, 15.0]);
}

#[tokio::test]
async fn slow_down_adds_five_seconds_for_every_later_poll() {
    let (f, times) = follow(vec![pending(), slow_down(), slow_down(), tokens()], Some(5), 900).await;
    assert_eq!(f.state, SignInState::SignedIn);
    // Gaps of 5, 10 and 15 s: each slow_down adds 5 s for good.
    assert_eq!(times, [5.0, 10.0, 20.0, 35.0]);
}

#[tokio::test]
async fn declined() {
    let declined = Reply::Json(400, json!({"error": "authorization_declined", "error_description": "AADSTS70000: The user declined.", "error_codes": [70000]}));
    let (f, times) = follow(vec![pending(), declined], Some(5), 900).await;
    assert_eq!(f.state, SignInState::Declined);
    assert!(f.message.contains("declined") && f.message.contains("AADSTS70000"), "{}", f.message);
    assert_eq!(times, [5.0, 10.0]);
}

#[tokio::test]
async fn expired_by_the_authority_and_by_the_clock() {
    let expired = Reply::Json(400, json!({"error": "expired_token", "error_description": "AADSTS70020: expired", "error_codes": [70020]}));
    let (f, times) = follow(vec![pending(), expired], Some(5), 900).await;
    assert_eq!(f.state, SignInState::Expired);
    assert_eq!(f.message, "The device code expired before anyone signed in");
    assert_eq!(times, [5.0, 10.0]);
    // A 12 s code polled every 5 s: polls at 5 and 10; a poll at 12 would break the interval.
    let (f, times) = follow(vec![pending(), pending()], Some(5), 12).await;
    assert_eq!(f.state, SignInState::Expired);
    assert_eq!(times, [5.0, 10.0]);
    // A 15 s code: the last regular poll lands on the deadline itself.
    let (f, times) = follow(vec![pending(), pending(), pending()], Some(5), 15).await;
    assert_eq!(f.state, SignInState::Expired);
    assert_eq!(times, [5.0, 10.0, 15.0]);
}

#[tokio::test]
async fn public_client_flows_disabled_on_the_first_poll() {
    let refusal = Reply::Json(401, json!({"error": "invalid_client", "error_description": "AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or 'client_secret'.", "error_codes": [7000218]}));
    let (f, times) = follow(vec![refusal], Some(5), 900).await;
    assert_eq!(f.state, SignInState::Failed);
    assert!(f.message.starts_with("Application app does not allow public client flows: enable it in Entra ID"), "{}", f.message);
    assert!(f.message.contains("AADSTS7000218"));
    assert_eq!(times, [5.0]);
}

#[tokio::test]
async fn an_error_on_http_200_is_still_an_error() {
    let pending_200 = Reply::Json(200, json!({"error": "authorization_pending", "error_description": "AADSTS70016: pending"}));
    let (f, times) = follow(vec![pending_200, tokens()], Some(5), 900).await;
    assert_eq!(f.state, SignInState::SignedIn);
    assert_eq!(times, [5.0, 10.0]);
}

#[tokio::test]
async fn a_hanging_token_endpoint_is_a_transient_failure_with_back_off() {
    // The first poll hangs past the client's deadline: back off 2 intervals, then succeed.
    let (f, times) = follow(vec![Reply::Hang, tokens()], Some(5), 900).await;
    assert_eq!(f.state, SignInState::SignedIn);
    assert_eq!(times, [5.0, 15.0]);
}

#[tokio::test]
async fn two_503s_back_off_doubling_then_recover() {
    let unavailable = Reply::Text(503, "<html>Service Unavailable</html>");
    let (f, times) = follow(vec![unavailable.clone(), unavailable, pending(), tokens()], Some(5), 900).await;
    assert_eq!(f.state, SignInState::SignedIn);
    assert_eq!(times, [5.0, 15.0, 35.0, 40.0]);
}

#[tokio::test]
async fn missing_interval_means_five_seconds() {
    let (f, times) = follow(vec![pending(), tokens()], None, 900).await;
    assert_eq!(f.state, SignInState::SignedIn);
    assert_eq!(times, [5.0, 10.0]);
}

#[tokio::test]
async fn device_authorization_with_numbers_as_strings_and_verification_url() {
    let clock = Arc::new(ManualClock::new(0));
    let auth = authority(clock.clone(), vec![]).await;
    *auth.device_reply.lock().unwrap() = Some(json!({
        "device_code": "dc", "user_code": "CWE5QHLNM", "verification_url": "https://microsoft.com/devicelogin",
        "expires_in": "900", "interval": "5", "message": "To sign in, use a web browser to open the page https://microsoft.com/devicelogin and enter the code CWE5QHLNM to authenticate."
    }));
    let identity = client(clock);
    let endpoints = Endpoints {
        device_authorization_endpoint: format!("{}/devicecode", auth.base).parse().unwrap(),
        token_endpoint: format!("{}/token", auth.base).parse().unwrap(),
    };
    let grant = identity.request_device_code(&endpoints, "app", "https://graph.microsoft.com/.default offline_access").await.unwrap();
    assert_eq!(grant.expires_in, 900);
    assert_eq!(grant.interval, Some(5));
    assert_eq!(grant.verification_uri, "https://microsoft.com/devicelogin");
    assert_eq!(grant.user_code, "CWE5QHLNM");
}
