//! The verification page: enter the code, see who asks for access, sign in, approve or deny.
//! Plain HTML forms (no JavaScript), CSRF tokens (double-submit cookie), escaped output, and
//! limits on wrong codes per client address and wrong passwords per code.

use super::codes::normalize_user_code;
use super::db::{code_by_user_code, DeviceCode};
use super::Sandbox;
use crate::crypto::{constant_time_eq, random_token, verify_password};
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use rusqlite::{params, OptionalExtension};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

const CSRF_COOKIE: &str = "sandbox_csrf";

pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn layout(title: &str, body: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} - restoregate sandbox sign-in</title>
<style>
body{{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;background:#f3f4f6;color:#1f2937;margin:0;display:flex;min-height:100vh;align-items:center;justify-content:center}}
main{{background:#fff;max-width:26rem;width:100%;padding:2rem;border-radius:.5rem;box-shadow:0 2px 12px rgba(0,0,0,.12)}}
h1{{font-size:1.4rem;margin:0 0 1rem}} p{{line-height:1.5}} label{{display:block;margin:.8rem 0 .3rem;font-weight:600}}
input[type=text],input[type=password],input[type=email]{{width:100%;box-sizing:border-box;padding:.6rem;font-size:1.1rem;border:1px solid #9ca3af;border-radius:.3rem}}
button{{margin-top:1.2rem;margin-right:.5rem;padding:.6rem 1.2rem;font-size:1rem;border-radius:.3rem;border:1px solid #1d4ed8;background:#1d4ed8;color:#fff;cursor:pointer}}
button.secondary{{background:#fff;color:#1d4ed8}} :focus-visible{{outline:3px solid #f59e0b;outline-offset:2px}}
.error{{background:#fee2e2;border-left:4px solid #b91c1c;padding:.6rem .8rem}} .ask{{background:#eff6ff;border-left:4px solid #1d4ed8;padding:.6rem .8rem}}
.banner{{font-size:.8rem;color:#6b7280;margin-top:1.5rem}}
</style></head>
<body><main>
{body}
<p class="banner">restoregate sandbox identity provider: for testing only, not Microsoft.</p>
</main></body></html>"#,
        title = escape(title),
    )
}

fn html(status: StatusCode, csrf_cookie: Option<&str>, title: &str, body: &str) -> Response {
    let mut response = (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], layout(title, body)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"),
    );
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    if let Some(token) = csrf_cookie {
        if let Ok(v) = HeaderValue::from_str(&format!("{CSRF_COOKIE}={token}; Path=/sandbox; Secure; HttpOnly; SameSite=Strict")) {
            headers.insert(header::SET_COOKIE, v);
        }
    }
    response
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

fn code_form(csrf: &str, error: Option<&str>, typed: &str) -> String {
    let error = error.map(|e| format!(r#"<p class="error" role="alert">{}</p>"#, escape(e))).unwrap_or_default();
    format!(
        r#"<h1>Enter code</h1>
<p>Enter the code displayed on your app or device to allow it to access your account.</p>
{error}
<form method="post" action="/sandbox/device">
<input type="hidden" name="csrf" value="{csrf}">
<label for="code">Code</label>
<input type="text" id="code" name="code" value="{typed}" autocomplete="one-time-code" autocapitalize="characters" spellcheck="false" maxlength="32" autofocus required>
<button type="submit">Next</button>
</form>"#,
        csrf = escape(csrf),
        typed = escape(typed),
    )
}

fn signin_form(csrf: &str, code: &DeviceCode, tenant_name: &str, app_name: &str, error: Option<&str>) -> String {
    let error = error.map(|e| format!(r#"<p class="error" role="alert">{}</p>"#, escape(e))).unwrap_or_default();
    let display_code = format!("{}-{}", &code.user_code[..4], &code.user_code[4..]);
    format!(
        r#"<h1>Sign in to {tenant}</h1>
<p class="ask"><strong>{app}</strong> (application {client_id}) is asking for access to organization <strong>{tenant}</strong>.
Only continue if you requested this code yourself just now; if someone sent it to you, choose Deny.</p>
{error}
<form method="post" action="/sandbox/device/confirm">
<input type="hidden" name="csrf" value="{csrf}">
<input type="hidden" name="code" value="{code}">
<label for="username">Account</label>
<input type="email" id="username" name="username" value="admin@{tenant}" autocomplete="username" autofocus required>
<label for="password">Password</label>
<input type="password" id="password" name="password" autocomplete="current-password">
<button type="submit" name="decision" value="approve">Sign in and approve</button>
<button type="submit" name="decision" value="deny" class="secondary" formnovalidate>Deny</button>
</form>
<p>Code {display_code}; it expires at {expires} UTC.</p>"#,
        tenant = escape(tenant_name),
        app = escape(app_name),
        client_id = escape(&code.client_id),
        csrf = escape(csrf),
        code = escape(&code.user_code),
        display_code = escape(&display_code),
        expires = crate::clock::to_datetime(code.expires_at).format("%H:%M:%S"),
    )
}

/// `GET /sandbox/device`
pub async fn show(headers: HeaderMap) -> Response {
    let existing = cookie(&headers, CSRF_COOKIE).filter(|c| c.len() == 43);
    let csrf = existing.clone().unwrap_or_else(|| random_token(32));
    html(StatusCode::OK, existing.is_none().then_some(csrf.as_str()), "Enter code", &code_form(&csrf, None, ""))
}

/// Checks the double-submit token; on failure, a fresh code form with a new token.
fn check_csrf(headers: &HeaderMap, f: &HashMap<String, String>) -> Result<String, Response> {
    let from_cookie = cookie(headers, CSRF_COOKIE);
    let from_form = f.get("csrf");
    match (from_cookie, from_form) {
        (Some(c), Some(v)) if !c.is_empty() && constant_time_eq(c.as_bytes(), v.as_bytes()) => Ok(c),
        _ => {
            let fresh = random_token(32);
            Err(html(
                StatusCode::FORBIDDEN,
                Some(&fresh),
                "Enter code",
                &code_form(&fresh, Some("This form expired or did not come from this page. Enter the code again."), ""),
            ))
        }
    }
}

fn form(body: &Bytes) -> HashMap<String, String> {
    url::form_urlencoded::parse(body).map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

/// A code that had too many wrong passwords stays pending until it expires (as at Microsoft,
/// where wrong passwords lock the account, not the code), so its client is not told of a decline
/// nobody made; only the page refuses it.
const LOCKED: &str = "This code is locked after too many wrong passwords. Ask for a new code.";

/// A code locked or used while its sign-in form was open: said whatever the password was, so that
/// the answer never tells a right password from a wrong one.
const NO_LONGER_USABLE: &str = "That code can no longer be used to sign in. Ask for a new code.";

enum Lookup {
    Found(DeviceCode),
    Problem(&'static str),
}

async fn lookup(sb: &Sandbox, canonical: &str) -> Lookup {
    let canonical = canonical.to_string();
    let found = sb
        .db
        .call(move |c| {
            code_by_user_code(c, &canonical)
        })
        .await
        .unwrap_or(None);
    let Some(code) = found else {
        return Lookup::Problem("That code was not recognised. Check it and try again.");
    };
    if sb.clock.now() > code.expires_at {
        return Lookup::Problem("That code has expired. Ask for a new code and try again.");
    }
    if code.status != "pending" {
        return Lookup::Problem("That code has already been used. Ask for a new code if you need to sign in again.");
    }
    if code.wrong_passwords >= super::MAX_WRONG_PASSWORDS_PER_CODE {
        return Lookup::Problem(LOCKED);
    }
    Lookup::Found(code)
}

/// 429 with Retry-After when this address has entered too many wrong codes.
fn too_many_wrong_codes(sb: &Sandbox, peer: SocketAddr, csrf: &str) -> Option<Response> {
    let retry = sb.code_attempts_exhausted(peer.ip())?;
    let mut r = html(
        StatusCode::TOO_MANY_REQUESTS,
        None,
        "Too many attempts",
        &code_form(csrf, Some(&format!("Too many wrong codes from your address. Try again in {retry} seconds.")), ""),
    );
    r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry));
    Some(r)
}

/// `POST /sandbox/device`: the code was entered.
pub async fn enter_code(
    State(sb): State<Arc<Sandbox>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let f = form(&body);
    let csrf = match check_csrf(&headers, &f) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let typed = f.get("code").map(|s| s.chars().take(32).collect::<String>()).unwrap_or_default();
    if let Some(r) = too_many_wrong_codes(&sb, peer, &csrf) {
        return r;
    }
    let problem = match normalize_user_code(&typed) {
        None => "That is not a code: codes have 8 letters, like BCDF-GHJK.",
        Some(canonical) => match lookup(&sb, &canonical).await {
            Lookup::Found(code) => {
                let tenant = sb.tenant(&code.tenant_id).await.map(|t| t.name).unwrap_or_default();
                let app = sb.application(&code.tenant_id, &code.client_id).await.map(|a| a.name).unwrap_or_default();
                return html(StatusCode::OK, None, "Sign in", &signin_form(&csrf, &code, &tenant, &app, None));
            }
            Lookup::Problem(p) => p,
        },
    };
    sb.record_wrong_code(peer.ip());
    html(StatusCode::BAD_REQUEST, None, "Enter code", &code_form(&csrf, Some(problem), &typed))
}

/// `POST /sandbox/device/confirm`: sign in, then approve or deny.
///
/// The code arrives again here (a hidden field), so this step counts wrong codes against the
/// address as the first does: otherwise posting guesses straight to it would try codes unlimited.
pub async fn confirm(
    State(sb): State<Arc<Sandbox>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let f = form(&body);
    let csrf = match check_csrf(&headers, &f) {
        Ok(c) => c,
        Err(r) => return r,
    };
    if let Some(r) = too_many_wrong_codes(&sb, peer, &csrf) {
        return r;
    }
    let Some(canonical) = f.get("code").and_then(|c| normalize_user_code(c)) else {
        sb.record_wrong_code(peer.ip());
        return html(StatusCode::BAD_REQUEST, None, "Enter code", &code_form(&csrf, Some("The code is missing. Enter it again."), ""));
    };
    let code = match lookup(&sb, &canonical).await {
        Lookup::Found(code) => code,
        Lookup::Problem(p) => {
            sb.record_wrong_code(peer.ip());
            return html(StatusCode::BAD_REQUEST, None, "Enter code", &code_form(&csrf, Some(p), ""));
        }
    };
    let tenant = sb.tenant(&code.tenant_id).await.map(|t| t.name).unwrap_or_default();
    let app = sb.application(&code.tenant_id, &code.client_id).await.map(|a| a.name).unwrap_or_default();
    if f.get("decision").map(String::as_str) == Some("deny") {
        let id = code.id;
        let _ = sb.db.call(move |c| c.execute("UPDATE device_codes SET status = 'denied' WHERE id = ?1 AND status = 'pending'", [id])).await;
        return html(StatusCode::OK, None, "Access denied", "<h1>Access denied</h1><p>You denied the request. You can close this window.</p>");
    }
    let username = f.get("username").map(|u| u.trim().chars().take(320).collect::<String>()).unwrap_or_default();
    let password = f.get("password").cloned().unwrap_or_default();
    // One job: take one of the code's password attempts, then read the user's hash. Taking it
    // before the (slow) check is what bounds the checks per code when guesses arrive in parallel;
    // a correct password gives it back.
    let (id, tenant_id, name) = (code.id, code.tenant_id.clone(), username.clone());
    let attempt = sb
        .db
        .call(move |c| {
            let taken: Option<i64> = c
                .query_row(
                    "UPDATE device_codes SET wrong_passwords = wrong_passwords + 1
                     WHERE id = ?1 AND status = 'pending' AND wrong_passwords < ?2 RETURNING wrong_passwords",
                    params![id, super::MAX_WRONG_PASSWORDS_PER_CODE],
                    |r| r.get(0),
                )
                .optional()?;
            let Some(taken) = taken else { return Ok(None) };
            let stored: Option<(String, String)> = c
                .query_row("SELECT username, password_hash FROM users WHERE tenant_id = ?1 AND username = ?2", [&tenant_id, &name], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()?;
            Ok(Some((taken, stored)))
        })
        .await;
    let (attempts_used, stored) = match attempt {
        Ok(Some(a)) => a,
        // Locked, or used, since the lookup: the same answer whatever the password.
        Ok(None) => {
            sb.record_wrong_code(peer.ip());
            return html(StatusCode::BAD_REQUEST, None, "Enter code", &code_form(&csrf, Some(NO_LONGER_USABLE), ""));
        }
        Err(e) => {
            tracing::error!(error = %e, "sandbox page: cannot read the code");
            return html(StatusCode::SERVICE_UNAVAILABLE, None, "Try again", &code_form(&csrf, Some("The sign-in service is busy. Try again."), ""));
        }
    };
    let hash = stored.as_ref().map(|s| s.1.clone()).unwrap_or_else(|| sb.dummy_hash.clone());
    let ok = tokio::task::spawn_blocking(move || verify_password(&password, &hash)).await.unwrap_or(false);
    let Some((username, _)) = stored.filter(|_| ok) else {
        // A wrong password also counts against the address: codes cost nothing to ask for, so
        // the per-code limit alone would let one address guess without end.
        sb.record_wrong_code(peer.ip());
        if attempts_used >= super::MAX_WRONG_PASSWORDS_PER_CODE {
            return html(StatusCode::BAD_REQUEST, None, "Too many attempts", &format!("<h1>Too many attempts</h1><p>{LOCKED}</p>"));
        }
        return html(
            StatusCode::BAD_REQUEST,
            None,
            "Sign in",
            &signin_form(&csrf, &code, &tenant, &app, Some("The account or password is incorrect.")),
        );
    };
    let (id, name) = (code.id, username.clone());
    let approved = sb
        .db
        .call(move |c| {
            c.execute(
                "UPDATE device_codes SET status = 'approved', username = ?2, wrong_passwords = wrong_passwords - 1 WHERE id = ?1 AND status = 'pending'",
                params![id, name],
            )
        })
        .await;
    match approved {
        Ok(1) => html(
            StatusCode::OK,
            None,
            "Signed in",
            &format!(
                "<h1>You're signed in</h1><p>You signed in as <strong>{}</strong> and approved <strong>{}</strong>. You can close this window.</p>",
                escape(&username),
                escape(&app)
            ),
        ),
        _ => html(StatusCode::BAD_REQUEST, None, "Enter code", &code_form(&csrf, Some(NO_LONGER_USABLE), "")),
    }
}
