//! A restart keeps organizations, sessions and events, and resumes pending sign-ins.

use crate::helpers::*;
use std::time::Duration;

#[tokio::test]
async fn restart_keeps_data_and_resumes_pending_sign_ins() {
    let tmp = tempfile::tempdir().unwrap();
    let app = spawn_with(settings(tmp.path())).await;
    let token = app.token().await;
    let (session, answer) = app.device_code(&token).await;
    let user_code = answer["userCode"].as_str().unwrap().to_string();
    let events_before = app.events(&token, &session).await;
    let addr = app.addr;
    app.stop().await;

    // Same data directory, new process state: the admin account is not re-created, the access
    // token still works, and the pending sign-in is followed again.
    // The same address too: the stored authority endpoints are this server's sandbox.
    let mut again = settings(tmp.path());
    again.listen = addr;
    let app = spawn_with(again).await;
    let (status, orgs) = app.get_json(&token, "/v5/Organizations").await;
    assert_eq!(status, 200);
    assert_eq!(orgs.as_array().unwrap().len(), 1);
    let (status, s) = app.get_json(&token, &format!("/v5/RestoreSessions/{session}")).await;
    assert_eq!(status, 200);
    assert_eq!(s["state"], "Working");
    assert_eq!(app.events(&token, &session).await, events_before);

    let browser = Browser::open(&app, &app.url("/sandbox/device")).await;
    let (status, html) = browser.sign_in(&user_code, SANDBOX_PASSWORD, "approve").await;
    assert_eq!(status, 200, "{html}");
    let event = app.wait_for_event(&token, &session, "Sign-in", Duration::from_secs(20)).await;
    assert_eq!(event["status"], "Success");
    app.stop().await;
    drop(tmp);
}
