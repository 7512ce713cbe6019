//! The OpenAPI documents: served, complete, and every documented operation is routed.

use crate::helpers::*;
use serde_json::Value;

async fn doc(app: &TestApp, version: &str) -> Value {
    let r = app.client.get(app.url(&format!("/swagger/{version}/swagger.json"))).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

#[tokio::test]
async fn documents_describe_the_api_and_every_documented_operation_is_routed() {
    let app = spawn_app().await;
    let v5 = doc(&app, "v5").await;
    assert!(v5["openapi"].as_str().unwrap().starts_with("3."));
    assert_eq!(v5["components"]["securitySchemes"]["Bearer"]["scheme"], "bearer");
    for path in [
        "/v5/Token",
        "/v5/Organizations",
        "/v5/Organizations/{organizationId}/Action",
        "/v5/RestoreSessions/{restoreSessionId}/Events",
        "/v5/RestoreSessions/{restoreSessionId}/organization/restoreDeviceCode",
        "/v5/DeviceCode/check",
    ] {
        assert!(v5["paths"].get(path).is_some(), "{path} is not documented");
    }
    let v8 = doc(&app, "v8").await;
    for path in ["/v8/token", "/v8/Organizations/{organizationId}/explore", "/v8/RestoreSessions/{restoreSessionId}/Stop", "/v8/DeviceCode/check"] {
        assert!(v8["paths"].get(path).is_some(), "{path} is not documented");
    }

    let mut operations = 0;
    for d in [&v5, &v8] {
        for (path, item) in d["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                operations += 1;
                let concrete = path.replace("{organizationId}", "00000000-0000-0000-0000-000000000001").replace("{restoreSessionId}", "00000000-0000-0000-0000-000000000002");
                let request = app.client.request(method.to_uppercase().parse().unwrap(), app.url(&concrete));
                let r = request.header("content-type", "application/json").body("{}").send().await.unwrap();
                let status = r.status().as_u16();
                let body = r.text().await.unwrap();
                assert!(status != 405 && !body.contains("There is no resource"), "{method} {path} is documented but not routed ({status} {body})");
                let documented: Vec<&String> = op["responses"].as_object().unwrap().keys().collect();
                assert!(documented.iter().any(|s| **s == status.to_string()), "{method} {path} answered {status}, documented {documented:?}");
                if op.get("security").is_some() {
                    assert_eq!(status, 401, "{method} {path} without a token");
                }
            }
        }
    }
    assert!(operations >= 16, "{operations} operations");

    let r = app.client.get(app.url("/swagger/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().to_lowercase().contains("swagger"));
}

/// Every operation the documents mark as secured, with concrete paths.
fn secured_operations(docs: &[&Value]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for d in docs {
        for (path, item) in d["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                if op.get("security").is_some_and(|s| s.as_array().is_some_and(|a| !a.is_empty())) {
                    let concrete = path
                        .replace("{organizationId}", "00000000-0000-0000-0000-000000000001")
                        .replace("{restoreSessionId}", "00000000-0000-0000-0000-000000000002");
                    out.push((method.to_uppercase(), concrete));
                }
            }
        }
    }
    out
}

/// Every secured operation, derived from the OpenAPI documents so that a new one cannot be
/// forgotten, answers 401 with the vendor's body to an expired token, a forged one (random text,
/// and a well-formed token the server never issued), and a refresh token used as an access token.
#[tokio::test]
async fn every_secured_operation_refuses_expired_and_forged_tokens() {
    use restoregate::clock::{Clock, ManualClock, SystemClock};
    let tmp = tempfile::tempdir().unwrap();
    let clock = std::sync::Arc::new(ManualClock::new(SystemClock.now()));
    let app = spawn_with_clock(settings(tmp.path()), clock.clone()).await;
    let r = app
        .client
        .post(app.url("/v5/Token"))
        .form(&[("grant_type", "password"), ("username", "admin"), ("password", ADMIN_PASSWORD)])
        .send()
        .await
        .unwrap();
    let tokens: Value = r.json().await.unwrap();
    let (access, refresh) = (tokens["access_token"].as_str().unwrap().to_string(), tokens["refresh_token"].as_str().unwrap().to_string());
    let (v5, v8) = (doc(&app, "v5").await, doc(&app, "v8").await);
    let operations = secured_operations(&[&v5, &v8]);
    assert!(operations.len() >= 14, "{operations:?}");

    // The live token works (not 401) on every one of them, so the 401s below are the token's doing.
    for (method, path) in &operations {
        let r = app.client.request(method.parse().unwrap(), app.url(path)).bearer_auth(&access).json(&serde_json::json!({})).send().await.unwrap();
        assert_ne!(r.status(), 401, "{method} {path} with a live token");
    }

    let unknown_but_well_formed = restoregate::crypto::random_token(32);
    let forged: [(&str, String); 4] = [
        ("random text", "not-a-token-at-all".into()),
        ("well-formed, never issued", unknown_but_well_formed),
        ("a refresh token", refresh.clone()),
        ("overlong", "a".repeat(4096)),
    ];
    let check = |label: String, method: String, path: String, token: String| {
        let app = &app;
        async move {
            let r = app.client.request(method.parse().unwrap(), app.url(&path)).bearer_auth(&token).json(&serde_json::json!({})).send().await.unwrap();
            assert_eq!(r.status(), 401, "{method} {path} with {label}");
            assert_eq!(r.headers()["www-authenticate"], "Bearer");
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["errorCode"], "ResourceAccessDenied", "{method} {path} with {label}: {body}");
            assert!(!body["message"].as_str().unwrap().contains(&token[..token.len().min(16)]), "the token is echoed: {body}");
        }
    };
    for (method, path) in &operations {
        for (label, token) in &forged {
            check(label.to_string(), method.clone(), path.clone(), token.clone()).await;
        }
    }
    // An hour and a second later the access token has expired.
    clock.advance((restoregate::api::auth::ACCESS_TOKEN_SECONDS + 1) * 1000);
    for (method, path) in &operations {
        check("an expired token".into(), method.clone(), path.clone(), access.clone()).await;
    }
    drop(tmp);
}
