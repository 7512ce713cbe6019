//! The follower: drives every pending device authorization to an outcome.
//!
//! One scheduler task holds a min-heap of (next poll time, authorization); it sleeps until the
//! earliest is due, takes a slot from its authority's poll budget (stretching the wait rather
//! than bursting when many are due), and runs the poll as a short task. Pending authorizations
//! cost a heap entry each, not a sleeping task; their state lives in the database, so that a
//! restart resumes them, and the budget spreads the overdue ones instead of storming.

pub mod outcome;

use crate::clock::{Millis, SharedClock};
use crate::crypto::Sealer;
use crate::domain::schedule::Schedule;
use crate::domain::session::EventStatus;
use crate::identity::IdentityClient;
use crate::store::{Finish, NewEvent, SignInState, Store};
use outcome::{poll_step, PollTarget, Step};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch, Semaphore};

pub const DEVICE_CODE_PURPOSE: &str = "device_code";
pub const TOKENS_PURPOSE: &str = "delegated_tokens";

/// At most this many polls in flight at once, whatever the number pending.
const MAX_CONCURRENT_POLLS: usize = 256;

enum Message {
    /// A new (or resumed) authorization; ignored when already followed.
    Follow { id: String, authority: Arc<str>, at: Millis },
    /// A poll ended and the authorization is still pending.
    Again { id: String, authority: Arc<str>, at: Millis },
    /// A poll ended it (or it vanished).
    Done { id: String },
}

/// The handle the API uses to hand over new authorizations.
#[derive(Clone)]
pub struct FollowerHandle {
    tx: mpsc::UnboundedSender<Message>,
}

impl FollowerHandle {
    pub fn follow(&self, id: &str, authority: &str, next_poll_at: Millis) {
        let _ = self.tx.send(Message::Follow { id: id.to_string(), authority: authority.into(), at: next_poll_at });
    }
}

struct Worker {
    store: Store,
    identity: Arc<IdentityClient>,
    sealer: Sealer,
    clock: SharedClock,
}

/// Per-authority poll budget: slots `gap_ms` apart, handed out in order (a GCRA without burst).
struct Budget {
    gap_ms: f64,
    next_free: HashMap<Arc<str>, f64>,
}

impl Budget {
    fn reserve(&mut self, authority: &Arc<str>, now: Millis) -> Millis {
        let slot = self.next_free.get(authority).copied().unwrap_or(f64::MIN).max(now as f64);
        self.next_free.insert(authority.clone(), slot + self.gap_ms);
        slot.ceil() as Millis
    }
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    at: Millis,
    id: String,
    authority: Arc<str>,
    /// Already holds a budget slot at `at` (it was stretched to it).
    reserved: bool,
}

pub struct Follower;

impl Follower {
    /// Starts the scheduler; it loads every pending authorization from the store first.
    pub fn start(
        store: Store,
        identity: Arc<IdentityClient>,
        sealer: Sealer,
        clock: SharedClock,
        polls_per_second_per_authority: f64,
        mut shutdown: watch::Receiver<bool>,
    ) -> (FollowerHandle, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let handle = FollowerHandle { tx: tx.clone() };
        let worker = Arc::new(Worker { store, identity, sealer, clock });
        let task = tokio::spawn(async move {
            match worker.store.pending_device_authorizations().await {
                Ok(pending) => {
                    tracing::info!(pending = pending.len(), "resuming pending sign-ins");
                    for p in pending {
                        let _ = tx.send(Message::Follow { id: p.id, authority: p.authority.into(), at: p.next_poll_at });
                    }
                }
                Err(e) => tracing::error!(error = %e, "cannot load pending sign-ins"),
            }
            let mut heap: BinaryHeap<Reverse<Entry>> = BinaryHeap::new();
            let mut followed: HashSet<String> = HashSet::new();
            let mut budget = Budget { gap_ms: 1000.0 / polls_per_second_per_authority, next_free: HashMap::new() };
            let permits = Arc::new(Semaphore::new(MAX_CONCURRENT_POLLS));
            loop {
                let wait = heap.peek().map(|Reverse(e)| (e.at - worker.clock.now()).max(0) as u64);
                tokio::select! {
                    biased;
                    _ = shutdown.changed() => break,
                    message = rx.recv() => match message {
                        Some(Message::Follow { id, authority, at }) => {
                            if followed.insert(id.clone()) {
                                heap.push(Reverse(Entry { at, id, authority, reserved: false }));
                            }
                        }
                        Some(Message::Again { id, authority, at }) => {
                            heap.push(Reverse(Entry { at, id, authority, reserved: false }));
                        }
                        Some(Message::Done { id }) => { followed.remove(&id); }
                        None => break,
                    },
                    _ = tokio::time::sleep(Duration::from_millis(wait.unwrap_or(0))), if wait.is_some() => {
                        let now = worker.clock.now();
                        while heap.peek().is_some_and(|Reverse(e)| e.at <= now) {
                            let Reverse(entry) = heap.pop().expect("peeked");
                            if !entry.reserved {
                                let slot = budget.reserve(&entry.authority, now);
                                if slot > now {
                                    heap.push(Reverse(Entry { at: slot, reserved: true, ..entry }));
                                    continue;
                                }
                            }
                            let Ok(permit) = permits.clone().acquire_owned().await else { break };
                            let worker = worker.clone();
                            let tx = tx.clone();
                            tokio::spawn(async move {
                                let message = match worker.poll(&entry.id).await {
                                    Some(at) => Message::Again { id: entry.id, authority: entry.authority, at },
                                    None => Message::Done { id: entry.id },
                                };
                                let _ = tx.send(message);
                                drop(permit);
                            });
                        }
                    }
                }
            }
            tracing::info!(pending = followed.len(), "sign-in follower stopped; pending sign-ins resume at next start");
        });
        (handle, task)
    }
}

impl Worker {
    /// Polls one authorization; the next poll time when it is still pending.
    async fn poll(&self, id: &str) -> Option<Millis> {
        let row = match self.store.device_authorization(id).await {
            Ok(Some(row)) => row,
            Ok(None) => return None,
            Err(e) => {
                tracing::error!(error = %e, "cannot read a pending sign-in; retrying in 5 s");
                return Some(self.clock.now() + 5_000);
            }
        };
        let finish = |state, message: String| crate::signin::outcome::Finished { state, message, account: None, tokens: None };
        let mut schedule = Schedule {
            interval_ms: row.interval_ms,
            expires_at: row.expires_at,
            next_poll_at: row.next_poll_at,
            transient_failures: row.transient_failures.max(0) as u32,
        };
        let step = match (self.sealer.open_string(DEVICE_CODE_PURPOSE, &row.device_code_sealed), url::Url::parse(&row.token_endpoint)) {
            (Ok(device_code), Ok(token_endpoint)) => {
                let target = PollTarget {
                    token_endpoint: &token_endpoint,
                    client_id: &row.client_id,
                    tenant: &row.tenant,
                    device_code: &device_code,
                };
                poll_step(&self.identity, &mut schedule, &target, || self.clock.now()).await
            }
            _ => Step::Finished(finish(
                SignInState::Failed,
                "The stored device code cannot be opened with this server's sealing key".into(),
            )),
        };
        match step {
            Step::Again => {
                if let Err(e) = self
                    .store
                    .reschedule_device_authorization(id, schedule.interval_ms, schedule.next_poll_at, schedule.transient_failures)
                    .await
                {
                    tracing::error!(error = %e, "cannot record a poll");
                }
                Some(schedule.next_poll_at)
            }
            Step::Finished(f) => {
                let now = self.clock.now();
                let tokens_sealed = f.tokens.as_ref().map(|t| {
                    let json = serde_json::json!({
                        "access_token": t.access_token,
                        "refresh_token": t.refresh_token,
                        "expires_in": t.expires_in,
                        "scope": t.scope,
                        "obtained_at": now,
                    });
                    self.sealer.seal(TOKENS_PURPOSE, json.to_string().as_bytes())
                });
                let status = match f.state {
                    SignInState::SignedIn => EventStatus::Success,
                    SignInState::Expired | SignInState::Declined => EventStatus::Warning,
                    SignInState::Failed => EventStatus::Failed,
                };
                let event = NewEvent {
                    status,
                    title: "Sign-in".to_string(),
                    message: f.message.clone(),
                    start_time: now,
                    end_time: Some(now),
                };
                let finish = Finish {
                    id,
                    session_id: &row.session_id,
                    state: f.state,
                    account: f.account.as_deref(),
                    tokens_sealed: tokens_sealed.as_deref(),
                };
                match self.store.finish_device_authorization(&finish, &event).await {
                    Ok(_) => tracing::info!(state = f.state.as_str(), "sign-in finished"),
                    Err(e) => tracing::error!(error = %e, "cannot record the end of a sign-in"),
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_spreads_slots_per_authority() {
        let mut b = Budget { gap_ms: 100.0, next_free: HashMap::new() };
        let a: Arc<str> = "a".into();
        let other: Arc<str> = "b".into();
        assert_eq!(b.reserve(&a, 1000), 1000);
        assert_eq!(b.reserve(&a, 1000), 1100);
        assert_eq!(b.reserve(&a, 1000), 1200);
        assert_eq!(b.reserve(&other, 1000), 1000);
        // Idle time does not bank slots for a later burst.
        assert_eq!(b.reserve(&a, 5000), 5000);
        assert_eq!(b.reserve(&a, 5000), 5100);
    }
}
