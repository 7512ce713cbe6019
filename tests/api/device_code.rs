//! Every 4xx (and 502/504) of restoreDeviceCode, contract section 1.

use crate::helpers::*;
use serde_json::{json, Value};

async fn call(app: &TestApp, token: &str, session: &str, body: Value) -> (u16, Value) {
    let r = app.post_json(token, &format!("/v5/RestoreSessions/{session}/organization/restoreDeviceCode"), body).await;
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn assert_error(status: u16, body: &Value, want_status: u16, want_code: &str, mentions: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["errorCode"], want_code, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains(mentions), "message '{message}' should mention '{mentions}'");
}

#[tokio::test]
async fn bad_requests_get_clear_4xx_answers() {
    let app = spawn_app().await;
    let token = app.token().await;
    let org = app.add_org(&token, TENANT, APP_ID).await;
    let session = app.explore(&token, &org).await;

    let (s, b) = call(&app, &token, "00000000-0000-0000-0000-000000000001", json!({})).await;
    assert_error(s, &b, 404, "ResourceNotFound", "00000000-0000-0000-0000-000000000001");

    let (s, b) = call(&app, &token, "not-a-guid", json!({})).await;
    assert_error(s, &b, 400, "ParameterValidationFailure", "not a GUID");

    let (s, b) = call(&app, &token, &session, json!({"targetApplicationId": "abc"})).await;
    assert_error(s, &b, 400, "ParameterValidationFailure", "targetApplicationId");

    let (s, b) = call(&app, &token, &session, json!({"targetRegion": "Worldwide"})).await;
    assert_error(s, &b, 400, "ParameterValidationFailure", "targetOrganizationName and targetRegion");
    let (s, b) = call(&app, &token, &session, json!({"targetOrganizationName": TENANT})).await;
    assert_error(s, &b, 400, "ParameterValidationFailure", "targetOrganizationName and targetRegion");

    let (s, b) = call(&app, &token, &session, json!({"targetOrganizationName": TENANT, "targetRegion": "Mars"})).await;
    assert_error(s, &b, 400, "ParameterValidationFailure", "Worldwide, Germany, China, USDefence, USGovernment");

    let r = app.client.post(app.url(&format!("/v5/RestoreSessions/{session}/organization/restoreDeviceCode"))).json(&json!({})).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["errorCode"], "ResourceAccessDenied");
    let (s, b) = call(&app, "forged-token", &session, json!({})).await;
    assert_error(s, &b, 401, "ResourceAccessDenied", "access token");

    let r = app.post_raw(&token, &format!("/v5/RestoreSessions/{session}/organization/restoreDeviceCode"), "{not json").await;
    assert_eq!(r.status(), 400);

    let r = app.post_json(&token, &format!("/v5/RestoreSessions/{session}/Action"), json!({"stop": null})).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "", "stop answers an empty body");
    let (s, b) = call(&app, &token, &session, json!({})).await;
    assert_error(s, &b, 409, "OperationConflict", "stopped");
}

#[tokio::test]
async fn authority_refusals_are_502_with_its_code_and_silence_is_504() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = settings(tmp.path());
    // Nothing listens on port 1: the USGovernment authority is unreachable.
    s.regions.entry(restoregate::domain::region::Region::USGovernment).or_default().authority =
        Some("https://127.0.0.1:1".parse().unwrap());
    let app = spawn_with(s).await;
    let token = app.token().await;
    let org = app.add_org(&token, TENANT, APP_ID).await;
    let session = app.explore(&token, &org).await;

    // An application the tenant does not know: AADSTS700016 from the sandbox authority.
    let (s, b) = call(&app, &token, &session, json!({"targetApplicationId": "99999999-2222-3333-4444-555555555555"})).await;
    assert_error(s, &b, 502, "HttpError", "AADSTS700016");
    // A tenant the authority does not know: AADSTS90002.
    let (s, b) = call(&app, &token, &session, json!({"targetOrganizationName": "nobody.onmicrosoft.com", "targetRegion": "China"})).await;
    assert_error(s, &b, 502, "HttpError", "AADSTS90002");
    let (s, b) = call(&app, &token, &session, json!({"targetOrganizationName": TENANT, "targetRegion": "USGovernment"})).await;
    assert_error(s, &b, 504, "Timeout", "unreachable");
    drop(tmp);
}
