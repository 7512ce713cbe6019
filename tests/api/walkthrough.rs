//! The README's walkthrough, end to end: token, organization, session, device code, sign-in on
//! the sandbox page, the recorded event, and the check operation.

use crate::helpers::*;
use serde_json::{json, Value};
use std::time::Duration;

#[tokio::test]
async fn walkthrough_signs_in_on_the_page_and_records_the_event() {
    let app = spawn_app().await;
    let token = app.token().await;
    let org = app.add_org(&token, TENANT, APP_ID).await;
    let session = app.explore(&token, &org).await;

    let r = app
        .post_json(
            &token,
            &format!("/v5/RestoreSessions/{session}/organization/restoreDeviceCode"),
            json!({"targetApplicationId": APP_ID, "targetOrganizationName": TENANT, "targetRegion": "Worldwide"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let answer: Value = r.json().await.unwrap();
    let user_code = answer["userCode"].as_str().unwrap();
    let verification_url = answer["verificationUrl"].as_str().unwrap();
    assert_eq!(verification_url, app.url("/sandbox/device"));
    assert_eq!(answer["expiresIn"], 900, "seconds, not milliseconds");
    assert!(answer["message"].as_str().unwrap().contains(user_code));
    assert!(answer.get("deviceCode").is_none() && answer.get("device_code").is_none(), "the device code stays on the server");

    let check = app.post_json(&token, "/v5/DeviceCode/check", json!({"userCode": user_code})).await;
    assert_eq!(check.json::<Value>().await.unwrap(), json!({"authenticated": false}));

    let browser = Browser::open(&app, verification_url).await;
    let (status, html) = browser.sign_in(user_code, SANDBOX_PASSWORD, "approve").await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("signed in"), "{html}");

    let event = app.wait_for_event(&token, &session, "Sign-in", Duration::from_secs(20)).await;
    assert_eq!(event["status"], "Success");
    assert_eq!(event["message"], format!("Signed in as admin@{TENANT}"));

    let check = app.post_json(&token, "/v5/DeviceCode/check", json!({"userCode": user_code})).await;
    assert_eq!(check.json::<Value>().await.unwrap(), json!({"authenticated": true}));
    // As typed by a person: any case, without the dash.
    let typed = user_code.replace('-', "").to_lowercase();
    let check = app.post_json(&token, "/v5/DeviceCode/check", json!({"userCode": typed})).await;
    assert_eq!(check.json::<Value>().await.unwrap(), json!({"authenticated": true}));

    // The events read as the vendor's do.
    let events = app.events(&token, &session).await;
    let titles: Vec<&str> = events.iter().map(|e| e["title"].as_str().unwrap()).collect();
    assert_eq!(titles, ["Restore session started", "Device code requested", "Sign-in"]);
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["order"], i as i64 + 1);
        assert!(e["duration"].as_str().unwrap().len() == 8, "HH:MM:SS");
    }
}

#[tokio::test]
async fn a_declined_sign_in_is_recorded_as_declined() {
    let app = spawn_app().await;
    let token = app.token().await;
    let (session, answer) = app.device_code(&token).await;
    let browser = Browser::open(&app, answer["verificationUrl"].as_str().unwrap()).await;
    let (status, html) = browser.sign_in(answer["userCode"].as_str().unwrap(), "", "deny").await;
    assert_eq!(status, 200, "{html}");
    let event = app.wait_for_event(&token, &session, "Sign-in", Duration::from_secs(20)).await;
    assert_eq!(event["status"], "Warning");
    assert!(event["message"].as_str().unwrap().starts_with("The sign-in was declined"), "{event}");
}

#[tokio::test]
async fn secrets_are_never_returned_and_not_stored_in_clear() {
    let app = spawn_app().await;
    let token = app.token().await;
    let org = app.add_org(&token, TENANT, APP_ID).await;
    let (status, body) = app.get_json(&token, &format!("/v5/Organizations/{org}")).await;
    assert_eq!(status, 200);
    let text = body.to_string();
    assert!(!text.contains("pfx-secret-42") && !text.contains("MIIKcAIBAzCCCiwG"), "{text}");
    let (_, list) = app.get_json(&token, "/v5/Organizations").await;
    assert!(list.is_array(), "v5 answers a bare array");
    assert_eq!(list[0]["id"], org);
    let data_dir = app.data_dir.clone();
    let tmp = app.stop().await;
    for entry in std::fs::read_dir(&data_dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "db" || e == "db-wal") || path.to_string_lossy().ends_with("-wal") {
            let bytes = std::fs::read(&path).unwrap();
            let hay = String::from_utf8_lossy(&bytes);
            assert!(!hay.contains("pfx-secret-42"), "{} holds the certificate password in clear", path.display());
            assert!(!hay.contains("MIIKcAIBAzCCCiwG"), "{} holds the certificate in clear", path.display());
        }
    }
    drop(tmp);
}
