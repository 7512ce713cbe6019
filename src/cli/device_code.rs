//! `restoregate device-code`: asks for a device code, shows it, and waits until the sign-in ends.
//!
//! The server follows the sign-in itself; this command only watches. `/v5/DeviceCode/check` says
//! whether this code signed in (exactly, per code); how a sign-in ended otherwise is only written
//! as a "Sign-in" event on the restore session, which does not name its code. So the events are
//! read from the position the session's event list had when the code was asked for, and the
//! first non-success ending after it is taken as this code's. When other codes of the session
//! are still pending, one of theirs could be taken instead: the command says so when it starts.

use super::client::Api;
use super::spinner::{self, Spinner};
use super::Exit;
use serde::Deserialize;
use serde_json::{json, Value};
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// How often the server is asked. Its own polls of the authority are 5 s apart by default, so
/// once a second sees an outcome soon after it is recorded at three small requests a second.
const POLL: Duration = Duration::from_secs(1);

/// How long after the code's expiry the command still waits for the server to record it: the
/// server's last poll of the authority is at the deadline, and that call may take its timeout.
const MARGIN: Duration = Duration::from_secs(30);

/// An older code's expiry can be told from this one's by time: this code cannot have expired
/// before its `expiresIn` (less this much for clock and rounding differences).
const EXPIRY_SLACK: Duration = Duration::from_secs(5);

/// Events read per request; a session with more new events than this between two polls is not
/// a case worth paging for.
const EVENTS_PAGE: usize = 1000;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeviceCode {
    user_code: String,
    verification_url: String,
    expires_in: u64,
    message: String,
}

#[derive(Debug, Deserialize)]
pub struct Event {
    pub title: String,
    pub status: String,
    pub message: String,
}

#[derive(Deserialize)]
struct Page<T> {
    results: Vec<T>,
}

#[derive(Deserialize)]
struct Check {
    authenticated: bool,
}

#[derive(Deserialize)]
struct SessionState {
    state: String,
}

/// How a sign-in ended, with the server's sentence for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    SignedIn(String),
    Declined(String),
    Expired(String),
    Failed(String),
}

impl Ending {
    /// A finished sign-in's event, as the follower writes them (src/signin/outcome.rs): Success
    /// for a sign-in; Warning for a decline or an expiry; Failed for everything else.
    pub fn of_event(e: &Event) -> Option<Ending> {
        if e.title != "Sign-in" {
            return None;
        }
        let message = e.message.clone();
        Some(match e.status.as_str() {
            "Success" => Ending::SignedIn(message),
            _ if message.starts_with("The sign-in was declined") => Ending::Declined(message),
            _ if message.starts_with("The device code expired") => Ending::Expired(message),
            _ => Ending::Failed(message),
        })
    }

    fn exit(&self) -> Option<Exit> {
        match self {
            Ending::SignedIn(_) => None,
            Ending::Declined(_) => Some(Exit::Declined),
            Ending::Expired(_) => Some(Exit::Expired),
            Ending::Failed(_) => Some(Exit::Failed),
        }
    }
}

/// What the watcher task tells the drawing loop.
#[derive(Debug, Clone, Default)]
struct Progress {
    /// Why the last poll failed, shown beside the spinner until one succeeds.
    note: Option<String>,
    ending: Option<Ending>,
}

/// What is known of the session when the code is asked for.
struct Before {
    /// Events the session had: the ones after are new.
    events: usize,
    /// Codes requested on the session that have not ended yet.
    pending: usize,
}

async fn session_events(api: &Api, session: &str, offset: usize) -> anyhow::Result<Vec<Event>> {
    let page: Page<Event> = api.get(&format!("/v5/RestoreSessions/{session}/Events?offset={offset}&limit={EVENTS_PAGE}")).await?;
    Ok(page.results)
}

async fn before(api: &Api, session: &str) -> anyhow::Result<Before> {
    let mut all = Vec::new();
    // Bounded: a session with a million events is not one to wait on.
    for _ in 0..1000 {
        let page = session_events(api, session, all.len()).await?;
        let n = page.len();
        all.extend(page);
        if n < EVENTS_PAGE {
            break;
        }
    }
    let requested = all.iter().filter(|e| e.title == "Device code requested").count();
    let ended = all.iter().filter(|e| e.title == "Sign-in").count();
    Ok(Before { events: all.len(), pending: requested.saturating_sub(ended) })
}

pub struct Request {
    pub session: uuid::Uuid,
    pub application: Option<uuid::Uuid>,
    pub organization: Option<String>,
    pub region: Option<String>,
}

pub async fn run(api: Api, request: Request) -> anyhow::Result<()> {
    let api = Arc::new(api);
    let session = request.session.to_string();
    let before = before(&api, &session).await?;
    let mut body = serde_json::Map::new();
    if let Some(app) = request.application {
        body.insert("targetApplicationId".into(), Value::String(app.to_string()));
    }
    if let (Some(org), Some(region)) = (request.organization, request.region) {
        body.insert("targetOrganizationName".into(), Value::String(org));
        body.insert("targetRegion".into(), Value::String(region));
    }
    let code: DeviceCode =
        api.post(&format!("/v5/RestoreSessions/{session}/organization/restoreDeviceCode"), &Value::Object(body)).await?;
    let started = Instant::now();
    println!("{}\n", code.message);
    println!("  code: {}", code.user_code);
    println!("  URL:  {}\n", code.verification_url);
    if before.pending > 0 {
        println!(
            "note: {} earlier device code(s) of this session are still pending; how one of them ends could be reported as this code's",
            before.pending
        );
    }
    let expires_in = Duration::from_secs(code.expires_in);
    let outcome = wait(api, session, before.events, code.user_code, started, expires_in).await;
    finish(outcome, started.elapsed())
}

/// Polls the server until the sign-in ends, drawing the spinner meanwhile; bounded by the code's
/// expiry plus `MARGIN`, and by Ctrl-C.
async fn wait(api: Arc<Api>, session: String, baseline: usize, user_code: String, started: Instant, expires_in: Duration) -> Waited {
    let (tx, mut rx) = tokio::sync::watch::channel(Progress::default());
    let watcher = tokio::spawn(async move {
        let mut next = Instant::now();
        loop {
            tokio::time::sleep_until(next).await;
            next = Instant::now() + POLL;
            match poll_once(&api, &session, baseline, &user_code, started.elapsed(), expires_in).await {
                Ok(Some(ending)) => {
                    let _ = tx.send(Progress { note: None, ending: Some(ending) });
                    return;
                }
                Ok(None) => tx.send_if_modified(|p| p.note.take().is_some()),
                Err(e) => {
                    // A server restarting or a network blip must not end the wait: the code
                    // stays valid and the server keeps following it.
                    let note = if e.to_string().starts_with("cannot reach") { "server unreachable" } else { "server error" };
                    tx.send_if_modified(|p| p.note.replace(note.to_string()).as_deref() != Some(note))
                }
            };
        }
    });
    let _abort = AbortOnDrop(watcher);
    let mut spinner = Spinner::new(std::io::stdout(), std::io::stdout().is_terminal());
    let mut redraw = tokio::time::interval(spinner::REDRAW);
    let deadline = started + expires_in + MARGIN;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let waited = loop {
        tokio::select! {
            _ = redraw.tick() => {
                let elapsed = started.elapsed();
                let note = rx.borrow().note.clone();
                spinner.tick(elapsed, expires_in.saturating_sub(elapsed), note.as_deref());
            }
            changed = rx.changed() => {
                if changed.is_err() {
                    break Waited::Ended(Ending::Failed("stopped following the sign-in".into()));
                }
                if let Some(ending) = rx.borrow().ending.clone() {
                    break Waited::Ended(ending);
                }
            }
            _ = tokio::time::sleep_until(deadline) => {
                break Waited::Ended(Ending::Expired(format!(
                    "The device code expired: the server recorded no outcome within {} of its expiry",
                    spinner::clock(MARGIN)
                )));
            }
            _ = &mut ctrl_c => break Waited::Interrupted,
        }
    };
    spinner.clear();
    waited
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

enum Waited {
    Ended(Ending),
    Interrupted,
}

/// One look at the server: has this code signed in, has a sign-in of the session ended
/// otherwise since the code was asked for, or has the session stopped?
async fn poll_once(
    api: &Api,
    session: &str,
    baseline: usize,
    user_code: &str,
    elapsed: Duration,
    expires_in: Duration,
) -> anyhow::Result<Option<Ending>> {
    let check: Check = api.post("/v5/DeviceCode/check", &json!({"userCode": user_code})).await?;
    let events = session_events(api, session, baseline).await?;
    let mut endings = events.iter().filter_map(Ending::of_event);
    if check.authenticated {
        // The last success is this code's (check says this code succeeded; a success ends it).
        let message = endings.rev().find(|e| matches!(e, Ending::SignedIn(_)));
        return Ok(Some(message.unwrap_or_else(|| Ending::SignedIn("Signed in".into()))));
    }
    let could_be_ours = |e: &Ending| match e {
        // Another code's success: check says this one has not signed in.
        Ending::SignedIn(_) => false,
        Ending::Expired(_) => elapsed + EXPIRY_SLACK >= expires_in,
        Ending::Declined(_) | Ending::Failed(_) => true,
    };
    if let Some(ending) = endings.find(could_be_ours) {
        return Ok(Some(ending));
    }
    let state: SessionState = api.get(&format!("/v5/RestoreSessions/{session}")).await?;
    if state.state == "Stopped" {
        return Ok(Some(Ending::Failed(format!("Restore session {session} was stopped before the sign-in ended"))));
    }
    Ok(None)
}

/// Prints the ending and turns it into the command's exit status.
fn finish(waited: Waited, elapsed: Duration) -> anyhow::Result<()> {
    let after = spinner::clock(elapsed);
    match waited {
        Waited::Interrupted => {
            eprintln!(
                "stopped waiting after {after}: the code stays valid until it expires, and the server records how the sign-in ends (see the session's events)"
            );
            Err(Exit::Interrupted.into())
        }
        Waited::Ended(ending) => {
            let exit = ending.exit();
            match ending {
                Ending::SignedIn(m) => println!("{m} (after {after})"),
                Ending::Declined(m) | Ending::Expired(m) | Ending::Failed(m) => eprintln!("{m} (after {after})"),
            }
            match exit {
                None => Ok(()),
                Some(exit) => Err(exit.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(title: &str, status: &str, message: &str) -> Event {
        Event { title: title.into(), status: status.into(), message: message.into() }
    }

    #[test]
    fn sign_in_events_read_as_their_endings() {
        let e = |status, message| Ending::of_event(&event("Sign-in", status, message));
        assert_eq!(e("Success", "Signed in as a@b"), Some(Ending::SignedIn("Signed in as a@b".into())));
        assert!(matches!(e("Warning", "The sign-in was declined (AADSTS70000: …)"), Some(Ending::Declined(_))));
        assert!(matches!(e("Warning", "The device code expired before anyone signed in"), Some(Ending::Expired(_))));
        assert!(matches!(
            e("Warning", "The device code expired before the sign-in could be confirmed: the last poll failed (x)"),
            Some(Ending::Expired(_))
        ));
        assert!(matches!(e("Failed", "Application x does not allow public client flows: …"), Some(Ending::Failed(_))));
        assert_eq!(Ending::of_event(&event("Device code requested", "Success", "Waiting")), None);
    }
}
