//! `/v5/Token`: password and refresh_token grants, OAuth-style errors.

use crate::helpers::*;
use serde_json::Value;

#[tokio::test]
async fn password_grant_then_refresh_rotates() {
    let app = spawn_app().await;
    let r = app
        .client
        .post(app.url("/v5/token"))
        .form(&[("grant_type", "password"), ("username", "admin"), ("password", ADMIN_PASSWORD), ("client_id", "ignored")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    for field in ["access_token", "refresh_token", "token_type", "expires_in", "userName", ".issued", ".expires"] {
        assert!(body.get(field).is_some(), "missing {field}: {body}");
    }
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 3600);
    let refresh = body["refresh_token"].as_str().unwrap();

    let r = app.client.post(app.url("/v5/Token")).form(&[("grant_type", "refresh_token"), ("refresh_token", refresh)]).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let renewed: Value = r.json().await.unwrap();
    let (status, _) = app.get_json(renewed["access_token"].as_str().unwrap(), "/v5/RestoreSessions").await;
    assert_eq!(status, 200);

    let r = app.client.post(app.url("/v5/Token")).form(&[("grant_type", "refresh_token"), ("refresh_token", refresh)]).send().await.unwrap();
    assert_eq!(r.status(), 400, "a refresh token works once");
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");
}

#[tokio::test]
async fn token_errors_are_oauth_style() {
    let app = spawn_app().await;
    let cases: [(&[(&str, &str)], &str); 4] = [
        (&[("grant_type", "password"), ("username", "admin"), ("password", "wrong")], "invalid_grant"),
        (&[("grant_type", "password"), ("username", "nobody"), ("password", "x")], "invalid_grant"),
        (&[("grant_type", "client_credentials")], "unsupported_grant_type"),
        (&[("username", "admin")], "invalid_request"),
    ];
    for (form, error) in cases {
        let r = app.client.post(app.url("/v5/Token")).form(form).send().await.unwrap();
        assert_eq!(r.status(), 400);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], error, "{body}");
        assert!(body["error_description"].is_string());
    }
    // JSON bodies are accepted too.
    let r = app
        .client
        .post(app.url("/v5/Token"))
        .json(&serde_json::json!({"grant_type": "password", "username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// A bearer token far longer than any this server issues is refused as such, not as a malformed
/// header.
#[tokio::test]
async fn an_overlong_bearer_token_is_refused_as_too_long() {
    let app = spawn_app().await;
    let r = app.client.get(app.url("/v5/RestoreSessions")).bearer_auth("a".repeat(5000)).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("longer than any access token"), "{body}");
}
