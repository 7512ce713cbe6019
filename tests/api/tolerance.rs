//! Byte-for-byte replays of what real portals and scripts send (contract section 8), each answered
//! as the original server would: the status and the body. Requests are written out as raw bytes
//! with the headers those clients send, not built by a JSON library.

use crate::helpers::*;
use serde_json::Value;

const JSON_UTF8: &str = "application/json; charset=utf-8";

/// Sends `body` as is, with the content type portals send.
async fn raw(app: &TestApp, token: &str, method: &str, path: &str, body: &str) -> (u16, String, Value) {
    let r = app
        .client
        .request(method.parse().unwrap(), app.url(path))
        .bearer_auth(token)
        .header("content-type", JSON_UTF8)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let ctype = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    let text = r.text().await.unwrap();
    let value = serde_json::from_str(&text).unwrap_or(Value::Null);
    (status, ctype, value)
}

fn is_guid(v: &Value) -> bool {
    v.as_str().is_some_and(|s| s.len() == 36 && uuid::Uuid::parse_str(s).is_ok() && s == s.to_lowercase())
}

/// The restore session as the original server answers it, with the given type and details.
fn assert_session(s: &Value, kind: &str, details: &str) {
    assert!(is_guid(&s["id"]), "{s}");
    let id = s["id"].as_str().unwrap();
    let describe = match kind {
        "Vex" => "Exchange",
        "Veod" => "OneDrive",
        "Vesp" => "SharePoint",
        _ => "Teams",
    };
    assert_eq!(s["name"], format!("{TENANT} - {describe}"), "{s}");
    assert_eq!(s["organization"], TENANT);
    assert_eq!(s["type"], kind);
    assert_eq!(s["state"], "Working");
    assert_eq!(s["result"], "Success");
    assert_eq!(s["initiatedBy"], "admin");
    assert!(s["endTime"].is_null());
    assert!(s["creationTime"].as_str().unwrap().ends_with('Z'), "{s}");
    assert_eq!(s["details"], details);
    assert_eq!(s["_links"]["self"]["href"], format!("/v5/RestoreSessions/{id}"));
    assert_eq!(s["_links"]["events"]["href"], format!("/v5/RestoreSessions/{id}/Events"));
}

#[tokio::test]
async fn explore_body_with_trailing_commas_string_booleans_and_a_portal_date() {
    let app = spawn_app().await;
    let token = app.token().await;
    let org = app.add_org(&token, TENANT, APP_ID).await;
    // What a portal that concatenates strings sends: property names as it pleases, booleans
    // quoted, the date as its date picker writes it, a comma after the last property.
    let body = "{\"explore\": {\"datetime\": \"2021.03.15 14:30\", \"type\": \"vex\", \"ShowDeleted\": \"false\", \"ShowAllVersions\": \"true\",},}";
    let (status, ctype, s) = raw(&app, &token, "POST", &format!("/v5/Organizations/{org}/Action"), body).await;
    assert_eq!(status, 201, "{s}");
    assert!(ctype.starts_with("application/json"), "{ctype}");
    assert_session(&s, "Vex", "Point in time: 2021-03-15T14:30:00Z; show deleted items: false; show all versions: true");

    // Every date format portals use names the same point in time.
    for date in ["2021.03.15 14:30:00", "2021-03-15 14:30:00.000", "2021-03-15T14:30:00Z", "2021-03-15T14:30:00"] {
        let body = format!("{{\"explore\":{{\"DateTime\":\"{date}\",\"Type\":\"VEOD\",\"showDeleted\":\"True\",\"showAllVersions\":false,}}}}");
        let (status, _, s) = raw(&app, &token, "POST", &format!("/v5/Organizations/{org}/Action"), &body).await;
        assert_eq!(status, 201, "{date}: {s}");
        assert_session(&s, "Veod", "Point in time: 2021-03-15T14:30:00Z; show deleted items: true; show all versions: false");
    }

    // Strict where it matters: a boolean that is not one is a 400 naming the property.
    let (status, _, e) = raw(&app, &token, "POST", &format!("/v5/Organizations/{org}/Action"), "{\"explore\": {\"ShowAllVersions\": \"sometimes\",},}").await;
    assert_eq!(status, 400);
    assert_eq!(e["errorCode"], "ParameterValidationFailure");
    assert!(e["message"].as_str().unwrap().contains("showallversions"), "{e}");
    // An array is not an object, though serde would fill a struct from one.
    let (status, _, e) = raw(&app, &token, "POST", &format!("/v5/Organizations/{org}/Action"), "{\"explore\": [null, null]}").await;
    assert_eq!(status, 400, "{e}");
    assert_eq!(e["errorCode"], "ParameterValidationFailure");
}

#[tokio::test]
async fn organization_added_as_a_portal_writes_it() {
    let app = spawn_app().await;
    let token = app.token().await;
    let body = "{\r\n  \"Type\": \"office365\",\r\n  \"Region\": \"worldwide\",\r\n  \"ExchangeOnlineSettings\": {\r\n    \"UseApplicationOnlyAuth\": \"true\",\r\n    \"OfficeOrganizationName\": \"ABC.onmicrosoft.com\",\r\n    \"ApplicationId\": \"{11111111-2222-3333-4444-555555555555}\",\r\n    \"ApplicationCertificate\": \"MIIKcAIBAzCCCiwGCSqGSIb3DQEHAaCCCh0Eggo=\",\r\n    \"ApplicationCertificatePassword\": \"pfx-secret-42\",\r\n  },\r\n  \"IsTeamsOnline\": \"False\",\r\n}\r\n";
    let (status, _, o) = raw(&app, &token, "POST", "/v5/organizations/", body).await;
    assert_eq!(status, 201, "{o}");
    assert!(is_guid(&o["id"]));
    assert_eq!(o["name"], TENANT);
    assert_eq!(o["officeName"], TENANT);
    assert_eq!(o["type"], "Office365");
    assert_eq!(o["region"], "Worldwide");
    assert_eq!(o["isExchangeOnline"], true);
    assert_eq!(o["isSharePointOnline"], false);
    assert_eq!(o["isTeamsOnline"], false);
    assert_eq!(o["exchangeOnlineSettings"]["useApplicationOnlyAuth"], true);
    assert_eq!(o["exchangeOnlineSettings"]["officeOrganizationName"], TENANT);
    assert_eq!(o["exchangeOnlineSettings"]["applicationId"], APP_ID);
    assert!(o["sharePointOnlineSettings"].is_null());
    assert_eq!(o["_links"]["self"]["href"], format!("/v5/Organizations/{}", o["id"].as_str().unwrap()));
    let text = o.to_string();
    assert!(!text.contains("pfx-secret-42") && !text.contains("MIIKcAIB"), "secrets are never returned: {text}");
}

#[tokio::test]
async fn token_path_in_any_case_with_the_form_portals_send() {
    let app = spawn_app().await;
    for path in ["/v5/token", "/v5/Token", "/V5/TOKEN", "/v5/token/"] {
        let form = format!("grant_type=password&username=admin&password={}&client_id=portal&scope=", ADMIN_PASSWORD);
        let r = app
            .client
            .post(app.url(path))
            .header("content-type", "application/x-www-form-urlencoded; charset=UTF-8")
            .header("accept", "application/json, text/plain, */*")
            .body(form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["token_type"], "bearer", "{path}");
        assert_eq!(body["expires_in"], 3600);
        assert_eq!(body["userName"], "admin");
        assert!(body[".issued"].is_string() && body[".expires"].is_string());
    }
    // JSON with a trailing comma, as some scripts send it.
    let r = app
        .client
        .post(app.url("/v5/token"))
        .header("content-type", "application/json")
        .body(format!("{{\"grant_type\": \"password\", \"username\": \"admin\", \"password\": \"{ADMIN_PASSWORD}\",}}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn restore_device_code_at_organization_in_any_case_with_braced_uppercase_guid() {
    let app = spawn_app().await;
    let token = app.token().await;
    let org = app.add_org(&token, TENANT, APP_ID).await;
    let session = app.explore(&token, &org).await;
    let braced = format!("{{{}}}", session.to_uppercase());
    for path in [
        format!("/v5/RestoreSessions/{braced}/Organization/restoreDeviceCode"),
        format!("/v5/restoresessions/{}/organization/RestoreDeviceCode/", session.to_uppercase()),
    ] {
        let body = format!("{{\"targetApplicationId\": \"{}\", \"targetOrganizationName\": \"\", \"targetRegion\": null,}}", APP_ID.to_uppercase());
        let (status, ctype, code) = raw(&app, &token, "POST", &path, &body).await;
        assert_eq!(status, 200, "{path}: {code}");
        assert_eq!(ctype, "application/json", "{path}");
        let user_code = code["userCode"].as_str().unwrap();
        assert_eq!(user_code.len(), 9, "{code}");
        assert_eq!(code["verificationUrl"], app.url("/sandbox/device"));
        assert_eq!(code["expiresIn"], 900);
        assert_eq!(
            code["message"],
            format!("To sign in, use a web browser to open the page {} and enter the code {user_code} to authenticate.", app.url("/sandbox/device"))
        );
        // DeviceCode/check as a portal writes it.
        let (status, _, checked) = raw(&app, &token, "POST", "/v5/devicecode/Check", &format!("{{\"UserCode\": \"{user_code}\",}}")).await;
        assert_eq!(status, 200);
        assert_eq!(checked, serde_json::json!({"authenticated": false}));
    }
    // Not a GUID: 400 naming the parameter; an unknown one: 404.
    let (status, _, e) = raw(&app, &token, "POST", "/v5/RestoreSessions/{not-a-guid}/Organization/restoreDeviceCode", "{}").await;
    assert_eq!(status, 400, "{e}");
    assert!(e["message"].as_str().unwrap().contains("restoreSessionId"), "{e}");
    let (status, _, e) = raw(&app, &token, "POST", "/v5/RestoreSessions/{00000000-0000-0000-0000-0000000000AB}/Organization/restoreDeviceCode", "{}").await;
    assert_eq!(status, 404, "{e}");
    assert_eq!(e["errorCode"], "ResourceNotFound");
}

#[tokio::test]
async fn query_names_in_any_case_guids_with_braces_and_trailing_slashes() {
    let app = spawn_app().await;
    let token = app.token().await;
    let org = app.add_org(&token, TENANT, APP_ID).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(app.explore(&token, &org).await);
    }
    let (status, page) = app.get_json(&token, "/v5/RestoreSessions?Offset=1&LIMIT=1").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["offset"], 1);
    assert_eq!(page["limit"], 1);
    assert_eq!(page["results"].as_array().unwrap().len(), 1);
    assert_eq!(page["results"][0]["id"], ids[1]);
    let (status, page) = app.get_json(&token, "/v5/restoresessions/?offset=0&Limit=2").await;
    assert_eq!(status, 200);
    assert_eq!(page["results"].as_array().unwrap().len(), 2);
    let (status, events) = app.get_json(&token, &format!("/v5/RestoreSessions/{}/events/?OFFSET=0&limit=1", ids[0].to_uppercase())).await;
    assert_eq!(status, 200, "{events}");
    assert_eq!(events["limit"], 1);
    assert_eq!(events["results"][0]["title"], "Restore session started");

    // A GUID in braces and upper case names the same session; answers carry the canonical form.
    let (status, s) = app.get_json(&token, &format!("/v5/RestoreSessions/{{{}}}", ids[2].to_uppercase())).await;
    assert_eq!(status, 200, "{s}");
    assert_eq!(s["id"], ids[2]);
    let (status, o) = app.get_json(&token, &format!("/V5/ORGANIZATIONS/{{{}}}/", org.to_uppercase())).await;
    assert_eq!(status, 200, "{o}");
    assert_eq!(o["id"], org);

    // Stop as portals write it: property name in any case, a trailing comma, a trailing slash.
    let (status, _, body) = raw(&app, &token, "POST", &format!("/v5/RestoreSessions/{}/action/", ids[2].to_uppercase()), "{\"Stop\": null,}").await;
    assert_eq!(status, 200);
    assert!(body.is_null(), "an empty body");
}

#[tokio::test]
async fn accept_json_stream_is_answered_as_json() {
    let app = spawn_app().await;
    let token = app.token().await;
    let org = app.add_org(&token, TENANT, APP_ID).await;
    let session = app.explore(&token, &org).await;
    for path in ["/v5/RestoreSessions".to_string(), format!("/v5/RestoreSessions/{session}"), format!("/v5/Organizations/{org}"), "/v5/Organizations".to_string()] {
        let r = app
            .client
            .get(app.url(&path))
            .bearer_auth(&token)
            .header("accept", "application/json-stream")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.headers()["content-type"], "application/json", "{path}");
        let body: Value = r.json().await.unwrap();
        assert!(body.is_object() || body.is_array(), "{path}: {body}");
    }
    let r = app
        .client
        .post(app.url("/v5/Token"))
        .header("accept", "application/json-stream")
        .form(&[("grant_type", "password"), ("username", "admin"), ("password", ADMIN_PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    // Errors too are JSON, whatever was asked for.
    let r = app.client.get(app.url("/v5/RestoreSessions")).header("accept", "application/json-stream").send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["content-type"], "application/json");
    assert_eq!(r.json::<Value>().await.unwrap()["errorCode"], "ResourceAccessDenied");
}

#[tokio::test]
async fn a_session_whose_organization_was_removed_needs_a_custom_location() {
    let app = spawn_app().await;
    let token = app.token().await;
    let org = app.add_org(&token, TENANT, APP_ID).await;
    let session = app.explore(&token, &org).await;
    let r = app.client.delete(app.url(&format!("/v5/Organizations/{org}"))).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let path = format!("/v5/RestoreSessions/{session}/organization/restoreDeviceCode");
    // Only an application, or nothing: there is no organization to fall back on (409, not 500).
    for body in [format!("{{\"targetApplicationId\": \"{APP_ID}\", \"targetRegion\": \"\", \"targetOrganizationName\": \"\"}}"), "{}".to_string()] {
        let (status, _, e) = raw(&app, &token, "POST", &path, &body).await;
        assert_eq!(status, 409, "{body}: {e}");
        assert_eq!(e["errorCode"], "OperationConflict");
    }
    // One of targetOrganizationName and targetRegion without the other: 400.
    let body = format!("{{\"targetApplicationId\": \"{APP_ID}\", \"targetOrganizationName\": \"{TENANT}\"}}");
    let (status, _, e) = raw(&app, &token, "POST", &path, &body).await;
    assert_eq!(status, 400, "{e}");
    // A full custom location works.
    let body = format!("{{\"targetApplicationId\": \"{APP_ID}\", \"targetOrganizationName\": \"{TENANT}\", \"targetRegion\": \"worldwide\"}}");
    let (status, _, code) = raw(&app, &token, "POST", &path, &body).await;
    assert_eq!(status, 200, "{code}");
    assert!(code["userCode"].is_string());
}

#[tokio::test]
async fn a_request_refused_before_its_body_is_read_still_gets_its_answer() {
    let app = spawn_app().await;
    // 900 KB sent without a token: the 401 arrives whole, the connection is not cut mid-upload.
    let big = format!("{{\"explore\": {{\"padding\": \"{}\"}}}}", "x".repeat(900_000));
    for _ in 0..5 {
        let r = app
            .client
            .post(app.url("/v8/Organizations/00000000-0000-0000-0000-000000000001/explore"))
            .header("content-type", "application/json")
            .body(big.clone())
            .send()
            .await
            .expect("an answer, not a broken connection");
        assert_eq!(r.status(), 401);
        assert_eq!(r.json::<Value>().await.unwrap()["errorCode"], "ResourceAccessDenied");
    }
    // Over the limit: 413 in the API's error shape.
    let huge = "x".repeat(restoregate::api::decode::MAX_BODY_BYTES + 10);
    let token = app.token().await;
    let (status, _, e) = raw(&app, &token, "POST", "/v5/DeviceCode/check", &huge).await;
    assert_eq!(status, 413, "{e}");
    assert_eq!(e["errorCode"], "ParameterValidationFailure");
}

/// Over HTTP/2 (curl, as browsers, negotiates it), a body over the limit is read to its end and
/// then answered 413: answered mid-upload, the stream ends and the client reports a framing error
/// instead of the answer.
#[tokio::test]
async fn a_body_over_the_limit_gets_its_413_over_http2_too() {
    let app = spawn_app().await;
    let file = app.data_dir.join("big.json");
    std::fs::write(&file, vec![b' '; 2 * restoregate::api::decode::MAX_BODY_BYTES]).unwrap();
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "--http2", "--max-time", "30", "--cacert"])
        .arg(app.data_dir.join("tls-cert.pem"))
        .args(["-H", "Content-Type: application/json", "-w", "\n%{http_code} %{http_version}", "--data-binary"])
        .arg(format!("@{}", file.display()))
        .arg(app.url("/v5/Token"))
        .output()
        .await
        .expect("curl is installed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "curl: {}{stdout}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.ends_with("\n413 2"), "{stdout}");
    assert!(stdout.contains("\"errorCode\":\"ParameterValidationFailure\""), "{stdout}");
}
