//! The sandbox identity provider as an RFC 8628 authorization server with Microsoft's surface:
//! its errors, code matching, the page's limits and CSRF defence, one use, expiry, slow_down.

use crate::helpers::*;
use restoregate::clock::{Clock, ManualClock};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

const GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// A client of the sandbox itself: asks for a device code as MSAL would.
async fn device_code(app: &TestApp, tenant: &str, client_id: &str) -> (u16, Value) {
    let r = app
        .client
        .post(app.url(&format!("/sandbox/{tenant}/oauth2/v2.0/devicecode")))
        .form(&[("client_id", client_id), ("scope", "https://graph.microsoft.com/.default offline_access openid")])
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn redeem(app: &TestApp, tenant: &str, client_id: &str, code: &str) -> (u16, Value) {
    let r = app
        .client
        .post(app.url(&format!("/sandbox/{tenant}/oauth2/v2.0/token")))
        .form(&[("grant_type", GRANT), ("client_id", client_id), ("device_code", code)])
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

fn assert_ms_error(body: &Value, error: &str, aadsts: u32) {
    assert_eq!(body["error"], error, "{body}");
    assert!(body["error_description"].as_str().unwrap().starts_with(&format!("AADSTS{aadsts}:")), "{body}");
    assert_eq!(body["error_codes"][0], aadsts, "{body}");
}

async fn app_with_org() -> (TestApp, String) {
    let app = spawn_app().await;
    let token = app.token().await;
    app.add_org(&token, TENANT, APP_ID).await;
    (app, token)
}

#[tokio::test]
async fn unknown_tenant_and_application_get_microsofts_errors() {
    let (app, _) = app_with_org().await;
    let (status, body) = device_code(&app, "nobody.onmicrosoft.com", APP_ID).await;
    assert_eq!(status, 400);
    assert_ms_error(&body, "invalid_request", 90002);
    let r = app.client.get(app.url("/sandbox/nobody.onmicrosoft.com/v2.0/.well-known/openid-configuration")).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let (status, body) = device_code(&app, TENANT, "99999999-9999-4999-8999-999999999999").await;
    assert_eq!(status, 400);
    assert_ms_error(&body, "unauthorized_client", 700016);
}

#[tokio::test]
async fn tenants_are_named_by_domain_or_guid() {
    let (app, _) = app_with_org().await;
    let r = app.client.get(app.url(&format!("/sandbox/{TENANT}/v2.0/.well-known/openid-configuration"))).send().await.unwrap();
    let doc: Value = r.json().await.unwrap();
    let issuer = doc["issuer"].as_str().unwrap();
    let tenant_id = issuer.trim_end_matches("/v2.0").rsplit('/').next().unwrap();
    assert!(uuid::Uuid::parse_str(tenant_id).is_ok(), "{issuer}");
    let (status, body) = device_code(&app, tenant_id, APP_ID).await;
    assert_eq!(status, 200, "{body}");
    let code = body["user_code"].as_str().unwrap();
    assert!(code.len() == 9 && &code[4..5] == "-", "{code}");
    assert!(code.replace('-', "").chars().all(|c| "BCDFGHJKLMNPQRSTVWXZ".contains(c)), "{code}");
    assert!(body["device_code"].as_str().unwrap().len() >= 22, "at least 128 bits");
    assert_eq!(body["interval"], 1);
    assert_eq!(body["expires_in"], 900);
}

#[tokio::test]
async fn application_without_public_client_flows_is_refused_and_the_event_says_so() {
    let (app, token) = app_with_org().await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_restoregate"))
        .args(["sandbox", "app", "add", "--tenant", TENANT, "--client-id", APP_ID, "--public-client", "false"])
        .env("RESTOREGATE_DATA_DIR", &app.data_dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Microsoft hands out the code, and refuses at the token endpoint.
    let (status, body) = device_code(&app, TENANT, APP_ID).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = redeem(&app, TENANT, APP_ID, body["device_code"].as_str().unwrap()).await;
    assert_eq!(status, 401);
    assert_ms_error(&body, "invalid_client", 7000218);

    let orgs = app.get_json(&token, "/v5/Organizations").await.1;
    let session = app.explore(&token, orgs[0]["id"].as_str().unwrap()).await;
    let r = app.post_json(&token, &format!("/v5/RestoreSessions/{session}/organization/restoreDeviceCode"), serde_json::json!({})).await;
    assert_eq!(r.status(), 200);
    let event = app.wait_for_event(&token, &session, "Sign-in", Duration::from_secs(20)).await;
    assert_eq!(event["status"], "Failed");
    assert!(
        event["message"].as_str().unwrap().starts_with(&format!("Application {APP_ID} does not allow public client flows: enable it in Entra ID")),
        "{event}"
    );
}

#[tokio::test]
async fn codes_match_ignoring_case_spaces_and_dashes_and_work_once() {
    let (app, _) = app_with_org().await;
    let (_, body) = device_code(&app, TENANT, APP_ID).await;
    let user_code = body["user_code"].as_str().unwrap();
    let device = body["device_code"].as_str().unwrap();
    let typed = format!(" {} {} ", user_code[..4].to_lowercase(), &user_code[5..]);
    let (status, body) = redeem(&app, TENANT, APP_ID, device).await;
    assert_eq!(status, 400);
    assert_ms_error(&body, "authorization_pending", 70016);

    let browser = Browser::open(&app, &app.url("/sandbox/device")).await;
    let (status, html) = browser.sign_in(&typed, SANDBOX_PASSWORD, "approve").await;
    assert_eq!(status, 200, "{html}");

    // Bound to its client: another client (even a registered one) cannot redeem it.
    let other = "22222222-3333-4444-5555-666666666666";
    let token = app.token().await;
    app.add_org(&token, "other.onmicrosoft.com", other).await;
    let (status, body) = redeem(&app, "other.onmicrosoft.com", other, device).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant");

    let (status, first) = redeem(&app, TENANT, APP_ID, device).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["token_type"], "Bearer");
    assert!(first["access_token"].as_str().unwrap().split('.').count() == 3);
    assert!(first["refresh_token"].is_string() && first["id_token"].is_string());
    let (status, body) = redeem(&app, TENANT, APP_ID, device).await;
    assert_eq!(status, 400, "a device code is used once");
    assert_eq!(body["error"], "invalid_grant");

    // The page says so too.
    let (status, html) = browser.post("/sandbox/device", &[("code", user_code)]).await;
    assert_eq!(status, 400);
    assert!(html.contains("already been used"), "{html}");

    // Refresh tokens rotate: the old one works once.
    let old = first["refresh_token"].as_str().unwrap().to_string();
    let refresh = |rt: String| {
        let app = &app;
        async move {
            let r = app
                .client
                .post(app.url(&format!("/sandbox/{TENANT}/oauth2/v2.0/token")))
                .form(&[("grant_type", "refresh_token"), ("client_id", APP_ID), ("refresh_token", rt.as_str())])
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    // Presented at another tenant (the same application registered there too), it is refused
    // and stays its holder's.
    for args in [&["tenant", "add", "other.onmicrosoft.com"][..], &["app", "add", "--tenant", "other.onmicrosoft.com", "--client-id", APP_ID]] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_restoregate"))
            .arg("--data-dir")
            .arg(&app.data_dir)
            .arg("sandbox")
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let r = app
        .client
        .post(app.url("/sandbox/other.onmicrosoft.com/oauth2/v2.0/token"))
        .form(&[("grant_type", "refresh_token"), ("client_id", APP_ID), ("refresh_token", old.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");
    let (status, renewed) = refresh(old.clone()).await;
    assert_eq!(status, 200, "{renewed}");
    assert_ne!(renewed["refresh_token"], first["refresh_token"]);
    let (status, body) = refresh(old).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn the_page_refuses_forms_without_its_csrf_token() {
    let (app, _) = app_with_org().await;
    let (_, body) = device_code(&app, TENANT, APP_ID).await;
    let code = body["user_code"].as_str().unwrap();
    // No cookie at all.
    let r = app.client.post(app.url("/sandbox/device")).form(&[("csrf", "x"), ("code", code)]).send().await.unwrap();
    assert_eq!(r.status(), 403);
    // A cookie, but a token from elsewhere.
    let browser = Browser::open(&app, &app.url("/sandbox/device")).await;
    let forged = Browser { csrf: "forged-token".into(), ..browser };
    let (status, html) = forged.post("/sandbox/device", &[("code", code)]).await;
    assert_eq!(status, 403);
    assert!(html.contains("did not come from this page"));
    // Approving needs it as well.
    let (status, _) = forged
        .post("/sandbox/device/confirm", &[("code", code), ("username", "admin@abc.onmicrosoft.com"), ("password", SANDBOX_PASSWORD), ("decision", "approve")])
        .await;
    assert_eq!(status, 403);
    let (status, body) = redeem(&app, TENANT, APP_ID, body["device_code"].as_str().unwrap()).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("authorization_pending")), "nothing was approved");
}

#[tokio::test]
async fn output_is_escaped() {
    let (app, _) = app_with_org().await;
    let browser = Browser::open(&app, &app.url("/sandbox/device")).await;
    let (status, html) = browser.post("/sandbox/device", &[("code", "<script>alert(1)</script>")]).await;
    assert_eq!(status, 400);
    assert!(!html.contains("<script>alert(1)"), "{html}");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
}

#[tokio::test]
async fn wrong_codes_per_address_are_limited() {
    let (app, _) = app_with_org().await;
    let (_, body) = device_code(&app, TENANT, APP_ID).await;
    let real = body["user_code"].as_str().unwrap();
    let browser = Browser::open(&app, &app.url("/sandbox/device")).await;
    let limit = restoregate::sandbox::MAX_WRONG_CODES_PER_ADDRESS;
    for i in 0..limit {
        let wrong = if real.starts_with('B') { format!("CCCC-CCC{}", ["D", "F"][i as usize % 2]) } else { format!("BBBB-BBB{}", ["D", "F"][i as usize % 2]) };
        let (status, html) = browser.post("/sandbox/device", &[("code", &wrong)]).await;
        assert_eq!(status, 400, "attempt {i}: {html}");
        assert!(html.contains("not recognised"));
    }
    // The next attempt is refused, even with the right code.
    let r = app.client.post(app.url("/sandbox/device")).header("cookie", format!("sandbox_csrf={}", browser.csrf)).form(&[("csrf", browser.csrf.as_str()), ("code", real)]).send().await.unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers()["retry-after"].to_str().unwrap().parse::<u64>().unwrap() > 0);
}

#[tokio::test]
async fn wrong_passwords_spend_the_code() {
    let (app, _) = app_with_org().await;
    let (_, body) = device_code(&app, TENANT, APP_ID).await;
    let code = body["user_code"].as_str().unwrap().replace('-', "");
    let browser = Browser::open(&app, &app.url("/sandbox/device")).await;
    let attempts = restoregate::sandbox::MAX_WRONG_PASSWORDS_PER_CODE;
    for i in 0..attempts {
        let (status, html) = browser
            .post("/sandbox/device/confirm", &[("code", &code), ("username", "admin@abc.onmicrosoft.com"), ("password", "guess"), ("decision", "approve")])
            .await;
        assert_eq!(status, 400);
        if i + 1 < attempts {
            assert!(html.contains("incorrect"), "{html}");
        } else {
            assert!(html.contains("locked"), "{html}");
        }
    }
    // Locked, not declined: nobody declined, so the client keeps waiting until the code expires.
    let (status, redeemed) = redeem(&app, TENANT, APP_ID, body["device_code"].as_str().unwrap()).await;
    assert_eq!(status, 400);
    assert_eq!(redeemed["error"], "authorization_pending");
    // The right password no longer opens it, and is answered as a wrong one would be.
    let fields = |password: &'static str| [("code", code.clone()), ("username", "admin@abc.onmicrosoft.com".into()), ("password", password.into()), ("decision", "approve".into())];
    let right = browser.post("/sandbox/device/confirm", &fields(SANDBOX_PASSWORD).each_ref().map(|(k, v)| (*k, v.as_str()))).await;
    let wrong = browser.post("/sandbox/device/confirm", &fields("guess").each_ref().map(|(k, v)| (*k, v.as_str()))).await;
    assert_eq!(right.0, 400);
    assert!(right.1.contains("locked"), "{}", right.1);
    assert_eq!(right, wrong);
}

/// Guesses sent in parallel get no more password checks than sequential ones: each takes one of
/// the code's attempts before its check. The right password, among them, is either the one that
/// signs in or answered as the wrong ones are; never with an answer of its own.
#[tokio::test]
async fn parallel_guesses_get_no_more_password_checks() {
    let (app, _) = app_with_org().await;
    let (_, body) = device_code(&app, TENANT, APP_ID).await;
    let code = body["user_code"].as_str().unwrap().replace('-', "");
    let browser = Browser::open(&app, &app.url("/sandbox/device")).await;
    let guesses: Vec<&str> = std::iter::repeat_n("guess", 7).chain([SANDBOX_PASSWORD]).chain(std::iter::repeat_n("guess", 7)).collect();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, password) in guesses.iter().enumerate() {
        let (client, url, cookie) = (app.client.clone(), app.url("/sandbox/device/confirm"), browser.cookie.clone());
        let fields = [("csrf", browser.csrf.clone()), ("code", code.clone()), ("username", "admin@abc.onmicrosoft.com".into()), ("password", password.to_string()), ("decision", "approve".into())];
        tasks.spawn(async move {
            let r = client.post(url).header("cookie", cookie).form(&fields).send().await.unwrap();
            (i, r.status().as_u16(), r.text().await.unwrap())
        });
    }
    let mut answers = vec![(0, String::new()); guesses.len()];
    while let Some(done) = tasks.join_next().await {
        let (i, status, html) = done.unwrap();
        answers[i] = (status, html);
    }
    let checked_wrong = answers.iter().filter(|(_, html)| html.contains("incorrect")).count();
    let signed_in = answers.iter().filter(|(_, html)| html.contains("signed in as")).count();
    let max = restoregate::sandbox::MAX_WRONG_PASSWORDS_PER_CODE as usize;
    assert!(checked_wrong + signed_in <= max, "{checked_wrong} wrong passwords checked and {signed_in} sign-ins for one code (at most {max} checks)");
    let right = &answers[7];
    if !right.1.contains("signed in as") {
        let (status, html) = right;
        assert!(*status == 429 || (*status == 400 && (html.contains("locked") || html.contains("no longer be used"))), "{status}: {html}");
    }
}

#[tokio::test]
async fn expiry_is_enforced_at_the_page_and_the_token_endpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(restoregate::clock::SystemClock.now()));
    let app = spawn_with_clock(settings(tmp.path()), clock.clone()).await;
    let token = app.token().await;
    app.add_org(&token, TENANT, APP_ID).await;
    let (_, body) = device_code(&app, TENANT, APP_ID).await;
    clock.advance(901_000);
    let browser = Browser::open(&app, &app.url("/sandbox/device")).await;
    let (status, html) = browser.post("/sandbox/device", &[("code", body["user_code"].as_str().unwrap())]).await;
    assert_eq!(status, 400);
    assert!(html.contains("expired"), "{html}");
    let (status, body) = redeem(&app, TENANT, APP_ID, body["device_code"].as_str().unwrap()).await;
    assert_eq!(status, 400);
    assert_ms_error(&body, "expired_token", 70020);
    drop(tmp);
}

#[tokio::test]
async fn polling_faster_than_the_interval_gets_slow_down_but_jitter_does_not() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(restoregate::clock::SystemClock.now()));
    let mut s = settings(tmp.path());
    s.sandbox_poll_interval_seconds = 5;
    let app = spawn_with_clock(s, clock.clone()).await;
    let token = app.token().await;
    app.add_org(&token, TENANT, APP_ID).await;
    let (_, body) = device_code(&app, TENANT, APP_ID).await;
    let device = body["device_code"].as_str().unwrap();
    clock.advance(5_000);
    assert_eq!(redeem(&app, TENANT, APP_ID, device).await.1["error"], "authorization_pending");
    clock.advance(4_200); // on time, give or take network jitter
    assert_eq!(redeem(&app, TENANT, APP_ID, device).await.1["error"], "authorization_pending");
    clock.advance(1_000); // far too fast
    assert_eq!(redeem(&app, TENANT, APP_ID, device).await.1["error"], "slow_down");
    clock.advance(5_000); // the interval is now 10 s: 5 s is too fast
    assert_eq!(redeem(&app, TENANT, APP_ID, device).await.1["error"], "slow_down");
    clock.advance(15_000);
    assert_eq!(redeem(&app, TENANT, APP_ID, device).await.1["error"], "authorization_pending");
    drop(tmp);
}

/// A brute-force run at the verification page from one address: it gets exactly the configured
/// number of wrong codes, spread over both steps of the page (the confirm step takes the code
/// too), and after that even the right code with the right password is refused with 429 and
/// Retry-After, so the attacker learns nothing more. Another address is not affected.
#[tokio::test]
async fn an_attacker_cannot_try_more_codes_than_configured_at_either_step() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = settings(tmp.path());
    s.sandbox_wrong_codes_per_address = 4;
    let app = spawn_with(s).await;
    let token = app.token().await;
    app.add_org(&token, TENANT, APP_ID).await;
    let (_, body) = device_code(&app, TENANT, APP_ID).await;
    let real = body["user_code"].as_str().unwrap().to_string();
    let wrong = |i: usize| if real.starts_with('B') { format!("CCCC-CCC{}", ["D", "F", "G", "H"][i % 4]) } else { format!("BBBB-BBB{}", ["D", "F", "G", "H"][i % 4]) };

    // The attacker, from 127.0.0.2, with a CSRF cookie of its own.
    let attacker = app.client_from("127.0.0.2");
    let r = attacker.get(app.url("/sandbox/device")).send().await.unwrap();
    let cookie = r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let csrf = extract(&r.text().await.unwrap(), r#"name="csrf" value=""#).unwrap();
    let post = |path: &'static str, fields: Vec<(&'static str, String)>| {
        let (attacker, cookie, csrf, url) = (attacker.clone(), cookie.clone(), csrf.clone(), app.url(path));
        async move {
            let mut all = vec![("csrf", csrf)];
            all.extend(fields);
            let r = attacker.post(url).header("cookie", cookie).form(&all).send().await.unwrap();
            let retry = r.headers().get("retry-after").map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
            (r.status().as_u16(), retry, r.text().await.unwrap())
        }
    };
    let confirm_fields = |code: &str, password: &str| {
        vec![("code", code.to_string()), ("username", format!("admin@{TENANT}")), ("password", password.to_string()), ("decision", "approve".to_string())]
    };
    let limit = 4;
    let mut tried = 0;
    for i in 0..limit {
        let (status, _, html) = if i % 2 == 0 {
            post("/sandbox/device", vec![("code", wrong(i))]).await
        } else {
            post("/sandbox/device/confirm", confirm_fields(&wrong(i), SANDBOX_PASSWORD)).await
        };
        assert_eq!(status, 400, "attempt {i}: {html}");
        assert!(html.contains("not recognised"), "{html}");
        tried += 1;
    }
    assert_eq!(tried, limit);
    // Attempt limit + 1 and beyond: refused at both steps, even with the right code and password.
    for (path, fields) in [
        ("/sandbox/device", vec![("code", real.clone())]),
        ("/sandbox/device/confirm", confirm_fields(&real, SANDBOX_PASSWORD)),
        ("/sandbox/device", vec![("code", wrong(0))]),
    ] {
        let (status, retry, html) = post(path, fields).await;
        assert_eq!(status, 429, "{path}: {html}");
        assert!(retry.is_some_and(|r| r >= 1 && r <= 15 * 60), "Retry-After: {retry:?}");
        assert!(html.contains("Too many wrong codes"), "{html}");
        assert!(!html.contains("Sign in to"), "nothing tells whether the code is real: {html}");
    }
    let (status, body) = redeem(&app, TENANT, APP_ID, body["device_code"].as_str().unwrap()).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("authorization_pending")), "the attacker approved nothing");

    // The person the code is for, at another address, signs in as usual.
    let browser = Browser::open(&app, &app.url("/sandbox/device")).await;
    let (status, html) = browser.sign_in(&real, SANDBOX_PASSWORD, "approve").await;
    assert_eq!(status, 200, "{html}");
    drop(tmp);
}
