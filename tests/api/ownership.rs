//! Who may act on what: a user acts only on the restore sessions and codes they started (another
//! user's are answered exactly as unknown ones: 404, nothing disclosed); an administrator on all.
//! Organizations are shared: any user may add, list and get them; only an administrator removes one.

use crate::helpers::*;
use serde_json::{json, Value};

const ALICE: (&str, &str) = ("alice", "alice-password-1");
const BOB: (&str, &str) = ("bob", "bob-password-22");

struct World {
    app: TestApp,
    admin: String,
    alice: String,
    bob: String,
    alice_session: String,
    bob_session: String,
    bob_code: String,
}

async fn world() -> World {
    let app = spawn_app().await;
    app.add_user(ALICE.0, ALICE.1, false).await;
    app.add_user(BOB.0, BOB.1, false).await;
    let admin = app.token().await;
    let alice = app.login(ALICE.0, ALICE.1).await;
    let bob = app.login(BOB.0, BOB.1).await;
    // A non-administrator may add an organization (shared by all users).
    let org = app.add_org(&alice, TENANT, APP_ID).await;
    let alice_session = app.explore(&alice, &org).await;
    let r = app.post_json(&bob, &format!("/v8/Organizations/{org}/explore"), json!({"type": "vex"})).await;
    assert_eq!(r.status(), 201);
    let bob_session = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let r = app.post_json(&bob, &format!("/v5/RestoreSessions/{bob_session}/organization/restoreDeviceCode"), json!({})).await;
    assert_eq!(r.status(), 200);
    let bob_code = r.json::<Value>().await.unwrap()["userCode"].as_str().unwrap().to_string();
    World { app, admin, alice, bob, alice_session, bob_session, bob_code }
}

async fn ids(app: &TestApp, token: &str, path: &str) -> Vec<String> {
    let (status, page) = app.get_json(token, path).await;
    assert_eq!(status, 200, "{page}");
    page["results"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_string()).collect()
}

/// The answer for another user's session must read as the answer for a session that does not
/// exist, apart from the id it names.
async fn assert_hidden(app: &TestApp, token: &str, method: &str, path_of: impl Fn(&str) -> String, body: Option<Value>, hidden: &str) {
    let unknown = "00000000-0000-0000-0000-00000000abcd";
    let mut answers = Vec::new();
    for id in [hidden, unknown] {
        let mut request = app.client.request(method.parse().unwrap(), app.url(&path_of(id))).bearer_auth(token);
        if let Some(b) = &body {
            request = request.json(b);
        }
        let r = request.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap().replace(id, "<id>");
        answers.push((status, text));
    }
    assert_eq!(answers[0].0, 404, "{method} {}: {}", path_of(hidden), answers[0].1);
    assert!(answers[0].1.contains("ResourceNotFound"), "{}", answers[0].1);
    assert_eq!(answers[0], answers[1], "{method} {}: another user's session reads differently from an unknown one", path_of(hidden));
}

#[tokio::test]
async fn users_see_and_act_on_their_own_sessions_and_codes_only() {
    let w = world().await;
    let app = &w.app;

    // Lists: each user their own, on both versions; the administrator all.
    for prefix in ["/v5", "/v8"] {
        assert_eq!(ids(app, &w.alice, &format!("{prefix}/RestoreSessions")).await, [w.alice_session.clone()]);
        assert_eq!(ids(app, &w.bob, &format!("{prefix}/RestoreSessions")).await, [w.bob_session.clone()]);
        assert_eq!(ids(app, &w.admin, &format!("{prefix}/RestoreSessions")).await, [w.alice_session.clone(), w.bob_session.clone()]);
    }
    // Paging counts only what the user may see: offset 1 of Bob's one session is empty.
    assert!(ids(app, &w.bob, "/v5/RestoreSessions?offset=1").await.is_empty());

    // Alice cannot reach Bob's session by any operation, on either version.
    for prefix in ["/v5", "/v8"] {
        assert_hidden(app, &w.alice, "GET", |id| format!("{prefix}/RestoreSessions/{id}"), None, &w.bob_session).await;
        assert_hidden(app, &w.alice, "GET", |id| format!("{prefix}/RestoreSessions/{id}/Events"), None, &w.bob_session).await;
        assert_hidden(app, &w.alice, "POST", |id| format!("{prefix}/RestoreSessions/{id}/organization/restoreDeviceCode"), Some(json!({})), &w.bob_session).await;
    }
    assert_hidden(app, &w.alice, "POST", |id| format!("/v5/RestoreSessions/{id}/Action"), Some(json!({"stop": null})), &w.bob_session).await;
    assert_hidden(app, &w.alice, "POST", |id| format!("/v8/RestoreSessions/{id}/Stop"), None, &w.bob_session).await;

    // Bob's code: unknown to Alice, exactly as a code nobody asked for.
    for prefix in ["/v5", "/v8"] {
        let mut answers = Vec::new();
        for code in [w.bob_code.as_str(), "ZZZZ-ZZZZ"] {
            let r = app.post_json(&w.alice, &format!("{prefix}/DeviceCode/check"), json!({"userCode": code})).await;
            answers.push((r.status().as_u16(), r.text().await.unwrap().replace(code, "<code>")));
        }
        assert_eq!(answers[0].0, 404, "{}", answers[0].1);
        assert_eq!(answers[0], answers[1], "another user's code reads differently from an unknown one");
        let r = app.post_json(&w.bob, &format!("{prefix}/DeviceCode/check"), json!({"userCode": w.bob_code})).await;
        assert_eq!(r.json::<Value>().await.unwrap(), json!({"authenticated": false}));
        let r = app.post_json(&w.admin, &format!("{prefix}/DeviceCode/check"), json!({"userCode": w.bob_code})).await;
        assert_eq!(r.status(), 200, "the administrator checks anyone's code");
        assert_eq!(r.json::<Value>().await.unwrap(), json!({"authenticated": false}));
    }

    // Nothing Alice tried changed Bob's session: still working, no event of hers.
    let (_, s) = app.get_json(&w.bob, &format!("/v5/RestoreSessions/{}", w.bob_session)).await;
    assert_eq!(s["state"], "Working");
    let titles: Vec<String> = app.events(&w.bob, &w.bob_session).await.iter().map(|e| e["title"].as_str().unwrap().to_string()).collect();
    assert_eq!(titles, ["Restore session started", "Device code requested"]);

    // The administrator sees every session and its events, asks codes for and stops anyone's.
    for prefix in ["/v5", "/v8"] {
        let (status, s) = app.get_json(&w.admin, &format!("{prefix}/RestoreSessions/{}", w.alice_session)).await;
        assert_eq!((status, s["initiatedBy"].as_str()), (200, Some("alice")));
        let (status, _) = app.get_json(&w.admin, &format!("{prefix}/RestoreSessions/{}/Events", w.bob_session)).await;
        assert_eq!(status, 200);
    }
    let r = app.post_json(&w.admin, &format!("/v8/RestoreSessions/{}/organization/restoreDeviceCode", w.alice_session), json!({})).await;
    assert_eq!(r.status(), 200);
    let r = app.post_json(&w.admin, &format!("/v5/RestoreSessions/{}/Action", w.bob_session), json!({"stop": null})).await;
    assert_eq!(r.status(), 200);
    let r = app.client.post(app.url(&format!("/v8/RestoreSessions/{}/Stop", w.alice_session))).bearer_auth(&w.admin).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let events = app.events(&w.bob, &w.bob_session).await;
    assert_eq!(events.last().unwrap()["message"], "Stopped by admin");

    // Each user stops their own.
    let (_, orgs) = app.get_json(&w.bob, "/v5/Organizations").await;
    let fresh = app.explore(&w.bob, orgs[0]["id"].as_str().unwrap()).await;
    let r = app.client.post(app.url(&format!("/v8/RestoreSessions/{fresh}/Stop"))).bearer_auth(&w.bob).send().await.unwrap();
    assert_eq!(r.status(), 204);
}

#[tokio::test]
async fn organizations_are_shared_and_only_an_administrator_removes_one() {
    let w = world().await;
    let app = &w.app;
    let (status, list) = app.get_json(&w.bob, "/v5/Organizations").await;
    assert_eq!(status, 200);
    let org = list[0]["id"].as_str().unwrap().to_string();
    let (status, _) = app.get_json(&w.bob, &format!("/v5/Organizations/{org}")).await;
    assert_eq!(status, 200, "any user reads the organizations (never their secrets)");
    for token in [&w.alice, &w.bob] {
        let r = app.client.delete(app.url(&format!("/v5/Organizations/{org}"))).bearer_auth(token).send().await.unwrap();
        assert_eq!(r.status(), 403);
        assert_eq!(r.json::<Value>().await.unwrap()["errorCode"], "ResourceAccessDenied");
    }
    let r = app.client.delete(app.url(&format!("/v5/Organizations/{org}"))).bearer_auth(&w.admin).send().await.unwrap();
    assert_eq!(r.status(), 204);
}
