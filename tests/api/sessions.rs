//! Restore sessions: explore, list, get, stop, events, and who may see them.

use crate::helpers::*;
use serde_json::{json, Value};

#[tokio::test]
async fn sessions_are_listed_in_pages_and_stopped_once() {
    let app = spawn_app().await;
    let token = app.token().await;
    let org = app.add_org(&token, TENANT, APP_ID).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(app.explore(&token, &org).await);
    }
    let (status, page) = app.get_json(&token, "/v5/RestoreSessions?offset=1&limit=1").await;
    assert_eq!(status, 200);
    assert_eq!(page["offset"], 1);
    assert_eq!(page["limit"], 1);
    assert_eq!(page["results"].as_array().unwrap().len(), 1);
    assert_eq!(page["results"][0]["id"], ids[1]);
    let (_, all) = app.get_json(&token, "/v5/RestoreSessions").await;
    assert_eq!(all["limit"], 30);
    assert_eq!(all["results"].as_array().unwrap().len(), 3);
    let (status, body) = app.get_json(&token, "/v5/RestoreSessions?limit=10001").await;
    assert_eq!(status, 400, "{body}");

    let (status, s) = app.get_json(&token, &format!("/v5/RestoreSessions/{}", ids[0])).await;
    assert_eq!(status, 200);
    assert_eq!(s["state"], "Working");
    assert_eq!(s["type"], "Vex");
    assert_eq!(s["organization"], TENANT);
    assert_eq!(s["initiatedBy"], "admin");
    assert!(s["endTime"].is_null());

    let r = app.post_json(&token, &format!("/v5/RestoreSessions/{}/Action", ids[0]), json!({"stop": null})).await;
    assert_eq!(r.status(), 200);
    let (_, s) = app.get_json(&token, &format!("/v5/RestoreSessions/{}", ids[0])).await;
    assert_eq!(s["state"], "Stopped");
    assert!(s["endTime"].is_string());
    let r = app.post_json(&token, &format!("/v5/RestoreSessions/{}/Action", ids[0]), json!({"stop": null})).await;
    assert_eq!(r.status(), 409);
    let r = app.post_json(&token, &format!("/v5/RestoreSessions/{}/Action", ids[1]), json!({"start": {}})).await;
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn explore_accepts_every_session_type_in_any_case_and_rejects_others() {
    let app = spawn_app().await;
    let token = app.token().await;
    let org = app.add_org(&token, TENANT, APP_ID).await;
    for (given, want) in [("vex", "Vex"), ("VEOD", "Veod"), ("vesp", "Vesp"), ("Vet", "Vet")] {
        let r = app.post_json(&token, &format!("/v5/Organizations/{org}/Action"), json!({"explore": {"type": given}})).await;
        assert_eq!(r.status(), 201);
        assert_eq!(r.json::<Value>().await.unwrap()["type"], want);
    }
    let r = app.post_json(&token, &format!("/v5/Organizations/{org}/Action"), json!({"explore": {"type": "exchange"}})).await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("Vex, Veod, Vesp, Vet"));
    let r = app.post_json(&token, "/v5/Organizations/00000000-0000-0000-0000-000000000009/Action", json!({"explore": {}})).await;
    assert_eq!(r.status(), 404);
    // The tolerant decoder: trailing commas, any case, booleans as strings.
    let r = app
        .post_raw(&token, &format!("/v5/Organizations/{org}/action/"), r#"{"Explore": {"DateTime": "2021.03.15 14:30:00", "ShowAllVersions": "true", "Type": "vex",},}"#)
        .await;
    assert_eq!(r.status(), 201);
    let r = app.post_raw(&token, &format!("/v5/Organizations/{org}/Action"), r#"{"explore": {"showDeleted": "perhaps"}}"#).await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("showdeleted"));
}

#[tokio::test]
async fn organizations_are_deleted_with_204_and_validated() {
    let app = spawn_app().await;
    let token = app.token().await;
    let org = app.add_org(&token, TENANT, APP_ID).await;
    let r = app.post_json(&token, "/v5/Organizations", json!({"exchangeOnlineSettings": {"officeOrganizationName": TENANT, "applicationId": APP_ID}})).await;
    assert_eq!(r.status(), 409, "added twice");
    let r = app.post_json(&token, "/v5/Organizations", json!({"exchangeOnlineSettings": {"officeOrganizationName": "x.onmicrosoft.com"}})).await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("applicationId"));
    let r = app.client.delete(app.url(&format!("/v5/Organizations/{org}"))).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let (status, body) = app.get_json(&token, &format!("/v5/Organizations/{org}")).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["errorCode"], "ResourceNotFound");
}

/// Errors that axum's extractors would answer in plain text (a path segment that is not UTF-8)
/// come in the API's error shape too, as every client of it expects.
#[tokio::test]
async fn errors_the_api_does_not_write_itself_are_json_too() {
    let app = spawn_app().await;
    let token = app.token().await;
    let r = app.client.get(app.url("/v5/RestoreSessions/%00%ff")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["errorCode"], "ParameterValidationFailure");
    assert!(body["message"].as_str().unwrap().contains("UTF-8"), "{body}");
}
