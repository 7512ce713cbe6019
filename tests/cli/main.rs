//! The command-line client against the real server: `restoregate login`, `sessions` and
//! `device-code` run as the built binary, the waits on a real pseudo-terminal, the sign-ins
//! completed (or declined) on the sandbox page with plain HTTP forms.

// The API tests' server and sandbox-page helpers, shared rather than copied.
#[allow(dead_code)]
#[path = "../api/helpers.rs"]
mod helpers;
mod pty;

use helpers::*;
use pty::Pty;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_restoregate");
const WAIT: Duration = Duration::from_secs(30);

/// The CLI with its credentials in `dir` and nothing taken from the tester's environment that
/// could point it elsewhere.
fn cli(credentials: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.env("RESTOREGATE_CREDENTIALS", credentials)
        .env_remove("RESTOREGATE_SERVER")
        .env_remove("RESTOREGATE_DATA_DIR")
        .env_remove("RESTOREGATE_CONFIG")
        .env("RESTOREGATE_LOG", "warn")
        .env("TERM", "xterm");
    c
}

struct Operator {
    app: TestApp,
    _dir: tempfile::TempDir,
    credentials: PathBuf,
}

impl Operator {
    /// A server, and `restoregate login --password-stdin` done against it.
    async fn logged_in(app: TestApp) -> Operator {
        let dir = tempfile::tempdir().unwrap();
        let credentials = dir.path().join("credentials.json");
        let out = run_with_stdin(
            cli(&credentials).args(["login", "--server", &app.base, "--password-stdin", "--ca-file"]).arg(app.data_dir.join("tls-cert.pem")),
            &format!("{ADMIN_PASSWORD}\n"),
        ).await;
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        Operator { app, _dir: dir, credentials }
    }

    fn command(&self) -> Command {
        cli(&self.credentials)
    }

    /// An organization and a working restore session on it.
    async fn session(&self) -> String {
        let token = self.app.token().await;
        let org = self.app.add_org(&token, TENANT, APP_ID).await;
        self.app.explore(&token, &org).await
    }

    fn device_code(&self, session: &str) -> Pty {
        let mut c = self.command();
        c.args(["device-code", "--session", session]);
        Pty::spawn(c)
    }
}

/// Runs a command to its end with `input` on stdin, off the test's runtime thread (the server
/// under test runs on that thread too).
async fn run_with_stdin(command: &mut Command, input: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    tokio::task::spawn_blocking(move || child.wait_with_output().unwrap()).await.unwrap()
}

async fn run(command: &mut Command) -> std::process::Output {
    run_with_stdin(command, "").await
}

fn text(out: &std::process::Output) -> (String, String) {
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The `M:SS` elapsed times of the spinner's redraws, in the order drawn.
fn redraws(screen: &str) -> Vec<(char, String)> {
    screen
        .split('\r')
        .filter_map(|frame| {
            let frame = frame.trim_end_matches("\x1b[K");
            let spin = frame.chars().next()?;
            let rest = frame.strip_prefix(spin)?.strip_prefix(" waiting for sign-in: ")?;
            Some((spin, rest.split(' ').next()?.to_string()))
        })
        .collect()
}

fn seconds(clock: &str) -> u64 {
    let (m, s) = clock.split_once(':').unwrap();
    m.parse::<u64>().unwrap() * 60 + s.parse::<u64>().unwrap()
}

/// The last line drawn, where the ending is: the spinner's line is cleared (`\r\x1b[K`) and the
/// ending written over it. The terminal turns each `\n` into `\r\n`.
fn ending(screen: &str) -> String {
    let screen = screen.replace("\r\n", "\n");
    let last = screen.rsplit('\r').next().unwrap();
    last.strip_prefix("\x1b[K").unwrap_or_else(|| panic!("the spinner's line is cleared first: {screen:?}")).to_string()
}

/// The code and URL the command printed.
fn printed_code(screen: &str) -> (String, String) {
    let field = |name: &str| {
        screen.lines().find_map(|l| l.trim().strip_prefix(name)).map(|v| v.trim().to_string()).unwrap_or_else(|| panic!("no {name} in {screen:?}"))
    };
    (field("code:"), field("URL:"))
}

/// Waits until the spinner has shown an elapsed time of at least `secs`, and checks what it
/// drew until then: the code and URL, and a line redrawn in place with a growing elapsed time.
async fn spinner_reaches(pty: &Pty, secs: u64) -> (String, String) {
    let screen = pty
        .expect_with(&format!("a redraw at {secs} s elapsed"), WAIT, move |s| redraws(s).last().is_some_and(|(_, t)| seconds(t) >= secs))
        .await;
    let (code, url) = printed_code(&screen);
    assert!(screen.contains(&format!("enter the code {code}")), "the message: {screen:?}");
    let frames = redraws(&screen);
    // About ten a second: over a second or more, well over five.
    assert!(frames.len() >= 5, "{frames:?}");
    let times: Vec<u64> = frames.iter().map(|(_, t)| seconds(t)).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "elapsed never goes back: {times:?}");
    assert!(times.first() < times.last(), "elapsed grows: {times:?}");
    let spins: std::collections::BTreeSet<char> = frames.iter().map(|(c, _)| *c).collect();
    assert!(spins.len() >= 3, "the spinner turns: {spins:?}");
    (code, url)
}

#[tokio::test]
async fn device_code_waits_with_a_spinner_until_signed_in() {
    let op = Operator::logged_in(spawn_app().await).await;
    let session = op.session().await;
    let pty = op.device_code(&session);
    let (code, url) = spinner_reaches(&pty, 1).await;
    assert_eq!(url, op.app.url("/sandbox/device"));

    let browser = Browser::open(&op.app, &url).await;
    let (status, html) = browser.sign_in(&code, SANDBOX_PASSWORD, "approve").await;
    assert_eq!(status, 200, "{html}");

    let (status, screen) = pty.finish(WAIT).await;
    assert_eq!(status.code(), Some(0), "{screen:?}");
    let last = ending(&screen);
    assert!(last.starts_with(&format!("Signed in as admin@{TENANT} (after 0:")), "{last:?}");
}

#[tokio::test]
async fn device_code_exits_3_when_the_sign_in_is_declined() {
    let op = Operator::logged_in(spawn_app().await).await;
    let session = op.session().await;
    let pty = op.device_code(&session);
    let (code, url) = spinner_reaches(&pty, 1).await;
    let browser = Browser::open(&op.app, &url).await;
    let (status, html) = browser.sign_in(&code, "", "deny").await;
    assert_eq!(status, 200, "{html}");

    let (status, screen) = pty.finish(WAIT).await;
    assert_eq!(status.code(), Some(3), "{screen:?}");
    assert!(ending(&screen).starts_with("The sign-in was declined ("), "{screen:?}");
}

#[tokio::test]
async fn device_code_exits_4_when_the_code_expires() {
    let tmp = tempfile::tempdir().unwrap();
    let mut settings = helpers::settings(tmp.path());
    settings.sandbox_code_lifetime_seconds = 3;
    let op = Operator::logged_in(spawn_with(settings).await).await;
    let session = op.session().await;
    let pty = op.device_code(&session);
    let screen = pty.expect("code expires in 0:01", WAIT).await;
    let left: Vec<&str> = screen.split("code expires in ").skip(1).map(|r| &r[..4]).collect();
    assert_eq!(left.first(), Some(&"0:03"), "the time left counts down from expiresIn: {screen:?}");
    assert!(left.contains(&"0:02"), "{left:?}");

    let (status, screen) = pty.finish(WAIT).await;
    assert_eq!(status.code(), Some(4), "{screen:?}");
    assert!(ending(&screen).starts_with("The device code expired before anyone signed in (after 0:0"), "{screen:?}");
    drop(tmp);
}

#[tokio::test]
async fn ctrl_c_stops_the_wait_and_exits_130() {
    let op = Operator::logged_in(spawn_app().await).await;
    let session = op.session().await;
    let mut pty = op.device_code(&session);
    spinner_reaches(&pty, 1).await;
    // ^C at the terminal: the line discipline sends SIGINT to the command.
    pty.send(b"\x03");
    let (status, screen) = pty.finish(WAIT).await;
    assert_eq!(status.code(), Some(130), "{screen:?}");
    assert!(ending(&screen).starts_with("stopped waiting after 0:0"), "{screen:?}");
}

#[tokio::test]
async fn login_asks_for_the_password_without_echo_and_saves_private_credentials() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let credentials = dir.path().join("sub/credentials.json");
    let mut c = cli(&credentials);
    // No --ca-file: the data directory's generated certificate is found by itself.
    c.args(["login", "--server", &app.base, "--data-dir"]).arg(&app.data_dir);
    let mut pty = Pty::spawn(c);
    pty.expect(&format!("Password of admin at {}: ", app.base), WAIT).await;
    pty.send(format!("{ADMIN_PASSWORD}\r").as_bytes());
    let (status, screen) = pty.finish(WAIT).await;
    assert_eq!(status.code(), Some(0), "{screen:?}");
    assert!(screen.contains(&format!("logged in to {} as admin", app.base)), "{screen:?}");
    assert!(!screen.contains(ADMIN_PASSWORD), "the password is not echoed: {screen:?}");

    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&credentials).unwrap().permissions().mode() & 0o777, 0o600);
    let saved: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&credentials).unwrap()).unwrap();
    assert_eq!(saved["server"], app.base);
    assert_eq!(saved["ca_file"], std::fs::canonicalize(app.data_dir.join("tls-cert.pem")).unwrap().to_str().unwrap());
    assert!(!saved.to_string().contains(ADMIN_PASSWORD));

    // The saved sign-in works from another directory.
    let out = run(cli(&credentials).arg("sessions").current_dir("/")).await;
    assert!(out.status.success(), "{:?}", text(&out));
}

#[tokio::test]
async fn login_with_a_wrong_password_says_so_and_saves_nothing() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let credentials = dir.path().join("credentials.json");
    let out = run_with_stdin(
        cli(&credentials).args(["login", "--server", &app.base, "--password-stdin", "--ca-file"]).arg(app.data_dir.join("tls-cert.pem")),
        "not-the-password\n",
    ).await;
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with("error: login refused: the server answered 400: "), "{stderr}");
    assert!(!stderr.contains("not-the-password"), "{stderr}");
    assert!(!credentials.exists());
}

#[tokio::test]
async fn commands_before_login_tell_the_operator_to_log_in() {
    let dir = tempfile::tempdir().unwrap();
    let credentials = dir.path().join("credentials.json");
    for args in [&["sessions"][..], &["device-code", "--session", "6f3b0d2e-1c4a-4e59-9a7e-2b8f5d9c1a01"]] {
        let out = run(cli(&credentials).args(args)).await;
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.starts_with("error: not logged in: run `restoregate login`"), "{stderr}");
    }
    // Usage errors are clap's status 2.
    let out = run(cli(&credentials).args(["device-code", "--session", "not-a-guid"])).await;
    assert_eq!(out.status.code(), Some(2));
    // A plain-HTTP server URL is refused with what to give instead, before any password is read.
    let out = run(cli(&credentials).args(["login", "--server", "http://localhost:4443", "--password-stdin"])).await;
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("HTTPS only: give --server https://localhost:4443"), "{stderr}");
}

#[tokio::test]
async fn sessions_lists_every_page_and_hides_stopped_ones_without_all() {
    let op = Operator::logged_in(spawn_app().await).await;
    let token = op.app.token().await;
    let org = op.app.add_org(&token, TENANT, APP_ID).await;
    // More than one page of the client's (100).
    let mut ids = Vec::new();
    for _ in 0..101 {
        ids.push(op.app.explore(&token, &org).await);
    }
    let r = op.app.post_json(&token, &format!("/v5/RestoreSessions/{}/Action", ids[0]), serde_json::json!({"stop": null})).await;
    assert_eq!(r.status(), 200);

    let out = run(op.command().arg("sessions")).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    let header: Vec<&str> = lines[0].split("  ").map(str::trim).filter(|c| !c.is_empty()).collect();
    assert_eq!(header, ["ID", "ORGANIZATION", "TYPE", "STATE", "CREATED (UTC)", "INITIATED BY"]);
    assert_eq!(lines.len(), 1 + 100, "the working sessions only");
    assert!(!stdout.contains(&ids[0]));
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(row[0], ids[1]);
    assert_eq!(&row[1..4], [TENANT, "Vex", "Working"]);
    assert!(chrono::NaiveDateTime::parse_from_str(&format!("{} {}", row[4], row[5]), "%Y-%m-%d %H:%M:%S").is_ok(), "{row:?}");
    assert_eq!(row[6], "admin");
    // Every column starts where its header does.
    let at = |line: &str, col: &str| line.find(col).unwrap();
    assert_eq!(at(lines[0], "STATE"), at(lines[1], "Working"));

    let out = run(op.command().args(["sessions", "--all"])).await;
    let (stdout, _) = text(&out);
    assert_eq!(stdout.lines().count(), 1 + 101);
    let stopped = stdout.lines().find(|l| l.starts_with(&ids[0])).expect("the stopped session with --all");
    assert!(stopped.contains("  Stopped  "), "{stopped}");
}

#[tokio::test]
async fn an_expired_access_token_is_renewed_with_the_refresh_token() {
    let op = Operator::logged_in(spawn_app().await).await;
    let mut saved: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&op.credentials).unwrap()).unwrap();
    // A token the server does not know answers 401 as an expired one does.
    saved["access_token"] = "expired-token".into();
    std::fs::write(&op.credentials, saved.to_string()).unwrap();

    let out = run(op.command().arg("sessions")).await;
    assert!(out.status.success(), "{:?}", text(&out));
    assert_eq!(text(&out).0, "no restore sessions\n");
    let renewed: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&op.credentials).unwrap()).unwrap();
    assert_ne!(renewed["access_token"], "expired-token");
    assert_ne!(renewed["refresh_token"], saved["refresh_token"], "the refresh token rotated and was saved");

    // Without a usable refresh token either: log in again.
    let mut dead = renewed.clone();
    dead["access_token"] = "expired-token".into();
    dead["refresh_token"] = "revoked".into();
    std::fs::write(&op.credentials, dead.to_string()).unwrap();
    let out = run(op.command().arg("sessions")).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out).1, "error: the saved sign-in has expired: run `restoregate login` again\n");
}
