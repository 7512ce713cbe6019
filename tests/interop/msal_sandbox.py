"""Interoperability test: MSAL for Python against restoregate's sandbox identity provider.

MSAL (Microsoft's own client) runs the device-code flow (RFC 8628) over HTTPS against the sandbox;
a real headless Chromium, driven by Playwright, enters the code on the sandbox's verification
page, signs in as the tenant's sandbox user and approves. The access token must then validate
(RS256, iss, aud, exp) against the published JWKS with PyJWT, as any resource server would.

Also checked over plain HTTP: a wrong code on the page is "not recognised", a form POST without
the CSRF cookie is refused (403), and a device code cannot be redeemed twice (invalid_grant);
and with MSAL's Entra-style `authority=` configuration, a denied request ends in
`authorization_declined` and a refresh (acquire_token_silent) works.

Run from the repository root with the project's venv:  .venv/bin/python tests/interop/msal_sandbox.py
Environment: RESTOREGATE_BIN (default target/debug/restoregate), CHROMIUM (default
/usr/bin/chromium). Exits 0 on success; non-zero with a message naming the failed check.
"""

import atexit
import base64
import html
import json
import os
import re
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import jwt
import msal
import requests
from playwright.sync_api import sync_playwright

TOTAL_DEADLINE_S = 110  # the whole test, whatever happens (the brief's bound is 2 minutes)
STARTED = time.monotonic()
ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("RESTOREGATE_BIN", ROOT / "target" / "debug" / "restoregate"))
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
TENANT = "abc.onmicrosoft.com"
USER = f"admin@{TENANT}"
GRAPH_DEFAULT = "https://graph.microsoft.com/.default"
DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"

server = None  # subprocess.Popen of restoregate
server_log_path = None
server_log_saved = None  # the log's tail, kept when the data directory is removed
passed = []


class Failure(Exception):
    pass


def log(msg):
    print(f"[{time.monotonic() - STARTED:6.1f}s] {msg}", flush=True)


def check(condition, what):
    if not condition:
        raise Failure(what)
    passed.append(what)
    log(f"ok: {what}")


def stop_server():
    global server
    proc, server = server, None
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def server_log_tail(lines=40):
    if server_log_saved is not None:
        return server_log_saved
    try:
        text = Path(server_log_path).read_text(errors="replace")
    except (OSError, TypeError):
        return "(no server log)"
    return "\n".join(text.splitlines()[-lines:])


def watchdog():
    """Whatever hangs (a browser, a poll, the server), the test ends within its deadline."""
    remaining = TOTAL_DEADLINE_S - (time.monotonic() - STARTED)
    time.sleep(max(remaining, 0))
    print(f"FAIL: the test did not finish within {TOTAL_DEADLINE_S} s", file=sys.stderr, flush=True)
    print("server log (tail):\n" + server_log_tail(), file=sys.stderr, flush=True)
    stop_server()
    os._exit(3)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(data_dir, admin_password, sandbox_password):
    """Starts restoregate on a free loopback port; its base URL once /health answers."""
    global server, server_log_path
    if not BIN.exists():
        raise Failure(f"{BIN} is missing: run `cargo build` first")
    for attempt in range(3):  # another process may take the port between probe and bind
        port = free_port()
        env = dict(os.environ)
        env.update(
            RESTOREGATE_ADMIN_PASSWORD=admin_password,
            RESTOREGATE_SANDBOX_PASSWORD=sandbox_password,
            RESTOREGATE_LOG=env.get("RESTOREGATE_LOG", "info"),
        )
        for k in list(env):  # nothing from the caller's environment should steer the server
            if k.startswith("RESTOREGATE_") and k not in ("RESTOREGATE_ADMIN_PASSWORD", "RESTOREGATE_SANDBOX_PASSWORD", "RESTOREGATE_LOG"):
                del env[k]
        server_log_path = Path(data_dir) / f"server-{attempt}.log"
        logf = open(server_log_path, "wb")
        server = subprocess.Popen(
            [str(BIN), "--data-dir", str(data_dir), "--listen", f"127.0.0.1:{port}"],
            env=env, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT, cwd=data_dir,
        )
        logf.close()
        base = f"https://127.0.0.1:{port}"
        cert = Path(data_dir) / "tls-cert.pem"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if server.poll() is not None:
                break
            if cert.exists():
                try:
                    r = requests.get(f"{base}/health", verify=str(cert), timeout=2)
                    if r.status_code == 200:
                        return base, str(cert)
                except requests.RequestException:
                    pass
            time.sleep(0.1)
        else:
            raise Failure(f"restoregate did not answer {base}/health within 30 s\n{server_log_tail()}")
        if "address" in server_log_tail().lower() and attempt < 2:
            log(f"port {port} was taken, trying another")
            continue
        raise Failure(f"restoregate exited with status {server.returncode}\n{server_log_tail()}")
    raise Failure("could not start restoregate")


def add_organization(base, cert, admin_password, application_id):
    s = requests.Session()
    s.verify = cert
    r = s.post(f"{base}/v5/Token", data={"grant_type": "password", "username": "admin", "password": admin_password}, timeout=10)
    check(r.status_code == 200 and "access_token" in r.json(), "POST /v5/Token answers an access token for admin")
    body = {
        "type": "Office365",
        "region": "Worldwide",
        "exchangeOnlineSettings": {
            "useApplicationOnlyAuth": True,
            "officeOrganizationName": TENANT,
            "applicationId": application_id,
        },
    }
    r = s.post(f"{base}/v5/Organizations", json=body, headers={"Authorization": f"Bearer {r.json()['access_token']}"}, timeout=10)
    check(r.status_code in (200, 201), f"POST /v5/Organizations adds {TENANT} (status {r.status_code})")


def csrf_of(page_html):
    m = re.search(r'name="csrf" value="([^"]+)"', page_html)
    if not m:
        raise Failure("the verification page has no CSRF field")
    return html.unescape(m.group(1))


def different_code(real):
    """A well-formed user code that is not `real` (so the page looks it up and does not find it)."""
    alphabet = "BCDFGHJKLMNPQRSTVWXZ"
    real = real.replace("-", "").upper()
    while True:
        c = "".join(secrets.choice(alphabet) for _ in range(8))
        if c != real:
            return f"{c[:4]}-{c[4:]}"


def http_page_checks(base, cert):
    verification = f"{base}/sandbox/device"
    # 1. A POST without the CSRF cookie (the form field alone proves nothing) is refused.
    r = requests.post(verification, data={"csrf": "x" * 43, "code": "BCDF-GHJK"}, verify=cert, timeout=10, allow_redirects=False)
    check(r.status_code == 403, f"POST /sandbox/device without the CSRF cookie is refused with 403 (got {r.status_code})")
    # 2. A wrong (well-formed, unknown) code shows "not recognised".
    s = requests.Session()
    s.verify = cert
    r = s.get(verification, timeout=10)
    check(r.status_code == 200 and "sandbox_csrf" in s.cookies.get_dict(), "GET /sandbox/device sets the CSRF cookie")
    r = s.post(verification, data={"csrf": csrf_of(r.text), "code": different_code("")}, timeout=10)
    check(r.status_code == 400 and "not recognised" in r.text, f"a wrong code on the page shows 'not recognised' (status {r.status_code})")


def discovery_checks(authority, cert):
    r = requests.get(f"{authority}/v2.0/.well-known/openid-configuration", verify=cert, timeout=10)
    check(r.status_code == 200, "the tenant's OpenID discovery document is served")
    doc = r.json()
    for field in ("issuer", "token_endpoint", "device_authorization_endpoint", "jwks_uri", "authorization_endpoint"):
        check(isinstance(doc.get(field), str) and doc[field].startswith("https://127.0.0.1:"), f"discovery has {field}")
    check(doc["jwks_uri"] == f"{authority}/discovery/v2.0/keys", "discovery's jwks_uri is {authority}/discovery/v2.0/keys")
    return doc


class Poller:
    """MSAL's acquire_token_by_device_flow in a thread, bounded by the flow's expires_at."""

    def __init__(self, app, flow, seconds):
        self.app, self.flow, self.result, self.error = app, flow, None, None
        flow["expires_at"] = min(flow["expires_at"], time.time() + seconds)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            self.result = self.app.acquire_token_by_device_flow(self.flow)
        except Exception as e:  # reported by wait()
            self.error = e

    def wait(self, seconds):
        self.thread.join(seconds)
        if self.thread.is_alive():
            self.flow["expires_at"] = 0  # MSAL's documented way to stop polling
            self.thread.join(3)
            raise Failure("MSAL's acquire_token_by_device_flow did not return in time")
        if self.error is not None:
            raise Failure(f"MSAL's acquire_token_by_device_flow raised {type(self.error).__name__}: {self.error}")
        return self.result


def browser_sign_in(browser, verification_uri, user_code, password, client_id, decision):
    """Chromium on the verification page: a wrong code first, then the real one typed lowercase
    without its dash, then sign in and approve or deny."""
    context = browser.new_context(ignore_https_errors=True)
    try:
        page = context.new_page()
        page.set_default_timeout(15000)
        r = page.goto(verification_uri)
        check(r is not None and r.status == 200, f"Chromium opens the verification page ({decision})")
        page.fill("#code", different_code(user_code).lower())
        page.click("button[type=submit]")
        page.wait_for_selector("p.error")
        check("not recognised" in page.inner_text("p.error"), f"Chromium: a wrong code is 'not recognised' ({decision})")
        typed = user_code.replace("-", "").lower()
        page.fill("#code", typed)
        page.click("button[type=submit]")
        page.wait_for_selector("#password")
        body = page.inner_text("main")
        check(f"Sign in to {TENANT}" in body and client_id in body,
              f"Chromium: the code typed as lowercase without dash is accepted and the page names the tenant and application ({decision})")
        page.fill("#username", USER)
        page.fill("#password", password)
        page.click(f"button[name=decision][value={decision}]")
        page.wait_for_selector("h1")
        heading = page.inner_text("h1")
        expected = "You're signed in" if decision == "approve" else "Access denied"
        shown = page.locator("p.error")
        detail = f": {shown.first.inner_text()}" if shown.count() else ""
        check(heading == expected, f"Chromium: the page answers '{expected}' (got '{heading}'{detail})")
    finally:
        context.close()


def validate_access_token(token, doc, cert, client_id):
    ctx = ssl.create_default_context(cafile=cert)
    jwks = jwt.PyJWKClient(doc["jwks_uri"], ssl_context=ctx, timeout=10)
    key = jwks.get_signing_key_from_jwt(token)
    header = jwt.get_unverified_header(token)
    check(header.get("alg") == "RS256" and header.get("kid") == key.key_id, "the access token is RS256 with a kid from the JWKS")
    claims = jwt.decode(
        token, key.key, algorithms=["RS256"], audience="https://graph.microsoft.com", issuer=doc["issuer"],
        options={"require": ["exp", "iat", "nbf", "iss", "aud"]}, leeway=60,
    )
    check(True, "PyJWT validates the access token's signature, iss, aud and exp against the JWKS")
    check(claims.get("appid") == client_id or claims.get("azp") == client_id, "the access token names the client (appid/azp)")
    check(claims.get("preferred_username") == USER and claims.get("upn") == USER, "the access token names the user who approved")
    check(doc["issuer"].rstrip("/").endswith(f"/{claims.get('tid')}/v2.0"), "the access token's tid is the issuer's tenant")
    check(0 < claims["exp"] - time.time() <= 3600 + 60, "the access token expires within the hour")
    # A tampered token must not validate.
    head, payload, sig = token.split(".")
    forged = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    forged["preferred_username"] = "mallory@" + TENANT
    forged_payload = base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()
    try:
        jwt.decode(f"{head}.{forged_payload}.{sig}", key.key, algorithms=["RS256"], audience="https://graph.microsoft.com", issuer=doc["issuer"])
        check(False, "a tampered access token is rejected")
    except jwt.InvalidSignatureError:
        check(True, "a tampered access token is rejected")
    return claims, key


def main():
    global server_log_saved
    # requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override a Session's own `verify` (which
    # is how MSAL applies its verify= argument), so with either set, MSAL would not trust the
    # server's certificate. The test trusts exactly that certificate and nothing from outside.
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        os.environ.pop(name, None)
    threading.Thread(target=watchdog, daemon=True).start()
    admin_password = secrets.token_urlsafe(18)
    sandbox_password = secrets.token_urlsafe(18)
    client_id = str(uuid.uuid4())
    with tempfile.TemporaryDirectory(prefix="restoregate-msal-") as data_dir:
        try:
            run(data_dir, admin_password, sandbox_password, client_id)
        finally:
            stop_server()
            server_log_saved = server_log_tail()


def run(data_dir, admin_password, sandbox_password, client_id):
    base, cert = start_server(data_dir, admin_password, sandbox_password)
    log(f"restoregate is up at {base} (msal {msal.__version__}, PyJWT {jwt.__version__})")
    add_organization(base, cert, admin_password, client_id)
    authority = f"{base}/sandbox/{TENANT}"
    doc = discovery_checks(authority, cert)
    http_page_checks(base, cert)

    scopes = [GRAPH_DEFAULT]
    # MSAL's generic OIDC configuration: discovery at {oidc_authority}/.well-known/openid-configuration,
    # and the issuer it announces is checked against the authority.
    oidc_app = msal.PublicClientApplication(client_id, oidc_authority=f"{authority}/v2.0", verify=cert, timeout=10)
    check(oidc_app.authority.device_authorization_endpoint == doc["device_authorization_endpoint"],
          "MSAL (oidc_authority=) reads the sandbox's discovery document")
    # MSAL's Entra configuration: authority={host}/{tenant}, no instance discovery (which would ask
    # login.microsoftonline.com, unreachable here and unaware of this host).
    entra_app = msal.PublicClientApplication(client_id, authority=authority, instance_discovery=False, verify=cert, timeout=10)
    check(entra_app.authority.token_endpoint == doc["token_endpoint"],
          "MSAL (authority= with instance_discovery=False) reads the sandbox's discovery document")

    browser_args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--no-first-run"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=browser_args, timeout=30000)
        try:
            # --- 1. Approve, with MSAL's oidc_authority configuration.
            flow = oidc_app.initiate_device_flow(scopes=scopes)
            check("user_code" in flow, f"MSAL initiates a device flow (got keys {sorted(k for k in flow if k != 'device_code')})")
            check(re.fullmatch(r"[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}", flow["user_code"]) is not None,
                  "the user code looks like XXXX-XXXX from the RFC 8628 alphabet")
            check(flow["verification_uri"] == f"{base}/sandbox/device", "the verification_uri is the sandbox's page")
            check(flow["user_code"] in flow.get("message", ""), "the flow's message names the user code")
            poller = Poller(oidc_app, flow, seconds=45)
            browser_sign_in(browser, flow["verification_uri"], flow["user_code"], sandbox_password, client_id, "approve")
            result = poller.wait(50)
            check("access_token" in result,
                  "MSAL obtains an access token by the device flow"
                  + ("" if "access_token" in result else f": {result.get('error')}: {result.get('error_description')}"))
            check(result.get("token_type", "").lower() == "bearer", "the token type is Bearer")
            check("refresh_token" in result, "a refresh token is issued for offline_access")
            id_claims = result.get("id_token_claims") or {}
            check(id_claims.get("aud") == client_id and id_claims.get("preferred_username") == USER,
                  "MSAL decodes the id_token: aud is the client, preferred_username the user")
            accounts = oidc_app.get_accounts()
            check(len(accounts) == 1 and accounts[0].get("username") == USER,
                  f"MSAL's token cache holds the account {USER} (from client_info and the id_token)")
            claims, key = validate_access_token(result["access_token"], doc, cert, client_id)
            check(id_claims.get("oid") == claims.get("oid") and id_claims.get("tid") == claims.get("tid"),
                  "the id_token and the access token agree on oid and tid")
            id_token = jwt.decode(result["id_token"], key.key, algorithms=["RS256"], audience=client_id, issuer=doc["issuer"])
            check(id_token["sub"] == id_claims["sub"], "the id_token validates against the JWKS too")

            # One use: the same device code again is invalid_grant.
            r = requests.post(doc["token_endpoint"], data={"grant_type": DEVICE_CODE_GRANT, "client_id": client_id,
                                                           "device_code": flow["device_code"]}, verify=cert, timeout=10)
            err = r.json().get("error") if r.headers.get("content-type", "").startswith("application/json") else None
            check(r.status_code == 400 and err == "invalid_grant",
                  f"a second redemption of the device code answers invalid_grant (status {r.status_code}, error {err})")

            # --- 2. Deny, with MSAL's Entra-style authority configuration.
            flow2 = entra_app.initiate_device_flow(scopes=scopes)
            check("user_code" in flow2 and flow2["user_code"] != flow["user_code"], "a second device flow gets a new user code")
            poller2 = Poller(entra_app, flow2, seconds=30)
            browser_sign_in(browser, flow2["verification_uri"], flow2["user_code"], sandbox_password, client_id, "deny")
            result2 = poller2.wait(35)
            check("access_token" not in result2 and result2.get("error") == "authorization_declined",
                  f"a denied request ends MSAL's polling with authorization_declined (got {result2.get('error')})")
        finally:
            browser.close()

    # --- 3. Refresh with MSAL (refresh_token grant), the oidc_authority app's cached account.
    refreshed = oidc_app.acquire_token_silent(scopes, account=accounts[0], force_refresh=True)
    check(refreshed is not None and "access_token" in refreshed and refreshed["access_token"] != result["access_token"],
          "MSAL's acquire_token_silent(force_refresh=True) gets a new access token with the refresh token"
          + ("" if refreshed and "access_token" in refreshed else f": {refreshed and refreshed.get('error')}: {refreshed and refreshed.get('error_description')}"))
    validate_access_token(refreshed["access_token"], doc, cert, client_id)


if __name__ == "__main__":
    atexit.register(stop_server)
    signal.signal(signal.SIGTERM, lambda *_: (stop_server(), os._exit(143)))
    try:
        main()
    except Failure as e:
        print(f"FAIL: {e}", file=sys.stderr)
        print("server log (tail):\n" + server_log_tail(), file=sys.stderr)
        print(f"msal_sandbox: {len(passed)} passed, 1 failed")
        sys.exit(1)
    except Exception as e:
        import traceback
        traceback.print_exc()
        print(f"FAIL: unexpected {type(e).__name__}: {e}", file=sys.stderr)
        print("server log (tail):\n" + server_log_tail(), file=sys.stderr)
        print(f"msal_sandbox: {len(passed)} passed, 1 failed")
        sys.exit(2)
    print(f"msal_sandbox: {len(passed)} passed, 0 failed")
