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
use crate::store::{DeviceAuthorizationRow, Finish, Lease, NewEvent, SignInState, Store};
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
    Follow(Box<DeviceAuthorizationRow>),
    /// A poll ended and the authorization is still pending.
    Again(Box<Pending>),
    /// A poll ended it.
    Done(String),
    /// The session stopped: forget its pending sign-ins (the store has ended them).
    Cancel { session_id: String },
}

/// The handle the API uses to hand over new authorizations and cancel stopped sessions'.
#[derive(Clone)]
pub struct FollowerHandle {
    tx: mpsc::UnboundedSender<Message>,
    owner: Arc<str>,
    lease_ms: i64,
}

impl FollowerHandle {
    /// The lease a new authorization is stored with: this instance follows it.
    pub fn lease(&self, now: Millis) -> Lease {
        Lease { owner: self.owner.to_string(), until: now + self.lease_ms }
    }

    pub fn follow(&self, row: DeviceAuthorizationRow) {
        let _ = self.tx.send(Message::Follow(Box::new(row)));
    }

    pub fn cancel_session(&self, session_id: &str) {
        let _ = self.tx.send(Message::Cancel { session_id: session_id.to_string() });
    }
}

/// A pending sign-in as the follower holds it in memory between polls.
pub struct Pending {
    id: String,
    session_id: String,
    authority: Arc<str>,
    token_endpoint: url::Url,
    client_id: String,
    tenant: String,
    device_code: String,
    schedule: Schedule,
    polls: u32,
}

impl Pending {
    /// Opens a stored authorization; on resume (`resume_at`), the next poll is no earlier than
    /// that, so that a restart cannot shorten the interval after a poll it did not record.
    fn open(row: DeviceAuthorizationRow, sealer: &Sealer, resume_at: Option<Millis>) -> Result<Self, (DeviceAuthorizationRow, String)> {
        let device_code = match sealer.open_string(DEVICE_CODE_PURPOSE, &row.device_code_sealed) {
            Ok(c) => c,
            Err(_) => return Err((row, "The stored device code cannot be opened with this server's sealing key".into())),
        };
        let token_endpoint = match url::Url::parse(&row.token_endpoint) {
            Ok(u) => u,
            Err(_) => return Err((row, "The stored token endpoint is not a URL".into())),
        };
        let next_poll_at = match resume_at {
            Some(t) => row.next_poll_at.max(t + row.interval_ms),
            None => row.next_poll_at,
        };
        Ok(Pending {
            authority: row.authority.as_str().into(),
            schedule: Schedule {
                interval_ms: row.interval_ms,
                expires_at: row.expires_at,
                next_poll_at,
                transient_failures: row.transient_failures.max(0) as u32,
            },
            id: row.id,
            session_id: row.session_id,
            token_endpoint,
            client_id: row.client_id,
            tenant: row.tenant,
            device_code,
            polls: 0,
        })
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
    /// Already holds a budget slot at `at` (it was stretched to it).
    reserved: bool,
}

/// The scheduler's state: the pending sign-ins waiting for their next poll (by id), their due
/// times (a min-heap), and the ids whose poll is in flight.
#[derive(Default)]
struct Queue {
    waiting: HashMap<String, Pending>,
    heap: BinaryHeap<Reverse<Entry>>,
    /// Polls in flight: id → session.
    in_flight: HashMap<String, String>,
    /// In flight when their lease was found taken or their session stopped: dropped when the
    /// poll comes back.
    lost: HashSet<String>,
}

impl Queue {
    /// Drops the entries of sign-ins no longer waiting and returns every budget slot held, so
    /// that the remaining entries take fresh slots in the order they fell due.
    fn rebuild(&mut self) {
        let entries = std::mem::take(&mut self.heap).into_vec();
        self.heap = entries
            .into_iter()
            .filter_map(|Reverse(e)| {
                let p = self.waiting.get(&e.id)?;
                Some(Reverse(Entry { at: p.schedule.next_poll_at, id: e.id, reserved: false }))
            })
            .collect();
    }

    fn push(&mut self, p: Pending) {
        self.heap.push(Reverse(Entry { at: p.schedule.next_poll_at, id: p.id.clone(), reserved: false }));
        self.waiting.insert(p.id.clone(), p);
    }

    fn is_followed(&self, id: &str) -> bool {
        self.waiting.contains_key(id) || self.in_flight.contains_key(id)
    }

    fn len(&self) -> usize {
        self.waiting.len() + self.in_flight.len()
    }
}

/// How the follower runs.
#[derive(Debug, Clone)]
pub struct FollowerOptions {
    pub polls_per_second_per_authority: f64,
    /// How long a claim on a pending sign-in lasts without renewal. Renewed every third of it;
    /// when an instance dies, others take its sign-ins over within one lease.
    pub lease_ms: i64,
}

impl Default for FollowerOptions {
    fn default() -> Self {
        FollowerOptions { polls_per_second_per_authority: 200.0, lease_ms: 30_000 }
    }
}

/// Pending sign-ins claimed per statement.
const CLAIM_BATCH: i64 = 1000;

pub struct Follower;

impl Follower {
    /// Starts the scheduler. It claims pending authorizations nobody holds (at start: those of a
    /// previous run, or of a dead instance), renews its leases, and keeps claiming lapsed ones.
    pub fn start(
        store: Store,
        identity: Arc<IdentityClient>,
        sealer: Sealer,
        clock: SharedClock,
        options: FollowerOptions,
        mut shutdown: watch::Receiver<bool>,
    ) -> (FollowerHandle, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let owner: Arc<str> = uuid::Uuid::new_v4().to_string().into();
        let handle = FollowerHandle { tx: tx.clone(), owner: owner.clone(), lease_ms: options.lease_ms };
        let lease_handle = handle.clone();
        let polls_per_second_per_authority = options.polls_per_second_per_authority;
        let worker = Arc::new(Worker { store, identity, sealer, clock });
        let task = tokio::spawn(async move {
            let mut queue = Queue::default();
            let mut lease_tick = tokio::time::interval(Duration::from_millis((options.lease_ms / 3).max(100) as u64));
            lease_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut budget = Budget { gap_ms: 1000.0 / polls_per_second_per_authority, next_free: HashMap::new() };
            let permits = Arc::new(Semaphore::new(MAX_CONCURRENT_POLLS));
            loop {
                metrics::gauge!(crate::metrics::PENDING_SIGN_INS).set(queue.len() as f64);
                let wait = queue.heap.peek().map(|Reverse(e)| (e.at - worker.clock.now()).max(0) as u64);
                tokio::select! {
                    biased;
                    _ = shutdown.changed() => break,
                    _ = lease_tick.tick() => worker.keep_leases(&lease_handle, &mut queue).await,
                    message = rx.recv() => match message {
                        Some(Message::Follow(row)) => {
                            if !queue.is_followed(&row.id) {
                                match Pending::open(*row, &worker.sealer, None) {
                                    Ok(p) => queue.push(p),
                                    Err((row, why)) => worker.fail(&row, why).await,
                                }
                            }
                        }
                        Some(Message::Again(p)) => {
                            queue.in_flight.remove(&p.id);
                            if !queue.lost.remove(&p.id) {
                                queue.push(*p);
                            }
                        }
                        Some(Message::Done(id)) => {
                            queue.in_flight.remove(&id);
                            queue.lost.remove(&id);
                        }
                        Some(Message::Cancel { session_id }) => {
                            queue.waiting.retain(|_, p| p.session_id != session_id);
                            // Polls in flight for it are dropped when they come back.
                            let in_flight: Vec<String> = queue.in_flight.iter().filter(|(_, s)| **s == session_id).map(|(id, _)| id.clone()).collect();
                            queue.lost.extend(in_flight);
                            // The budget slots its sign-ins held would otherwise stay spent and
                            // delay everyone else: hand the slots out again, in due order.
                            queue.rebuild();
                            budget.next_free.clear();
                        }
                        None => break,
                    },
                    _ = tokio::time::sleep(Duration::from_millis(wait.unwrap_or(0))), if wait.is_some() => {
                        let now = worker.clock.now();
                        while queue.heap.peek().is_some_and(|Reverse(e)| e.at <= now) {
                            let Reverse(entry) = queue.heap.pop().expect("peeked");
                            // Entries of cancelled or finished sign-ins are skipped lazily.
                            let Some(authority) = queue.waiting.get(&entry.id).map(|p| p.authority.clone()) else { continue };
                            // A slot held since long ago (the scheduler fell behind) is stale:
                            // spending all of those now would burst; take a fresh one. Within
                            // 100 ms (timer jitter) a slot is still good.
                            let stale = entry.reserved && now - entry.at > (budget.gap_ms as Millis).max(100);
                            if !entry.reserved || stale {
                                let slot = budget.reserve(&authority, now);
                                if slot > now {
                                    queue.heap.push(Reverse(Entry { at: slot, reserved: true, ..entry }));
                                    continue;
                                }
                            }
                            let Ok(permit) = permits.clone().acquire_owned().await else { break };
                            let pending = queue.waiting.remove(&entry.id).expect("checked above");
                            queue.in_flight.insert(entry.id, pending.session_id.clone());
                            let worker = worker.clone();
                            let tx = tx.clone();
                            tokio::spawn(async move {
                                let id = pending.id.clone();
                                let message = match worker.poll(pending).await {
                                    Some(p) => Message::Again(Box::new(p)),
                                    None => Message::Done(id),
                                };
                                let _ = tx.send(message);
                                drop(permit);
                            });
                        }
                    }
                }
            }
            if let Err(e) = worker.store.release_leases(&owner).await {
                tracing::warn!(error = %e, "cannot release leases; other instances take over when they lapse");
            }
            tracing::info!(pending = queue.len(), "sign-in follower stopped; pending sign-ins resume at next start");
        });
        (handle, task)
    }
}

impl Worker {
    /// Renews this instance's leases (forgetting sign-ins whose lease another instance took while
    /// this one was stalled), then claims pending sign-ins that nobody holds.
    async fn keep_leases(&self, handle: &FollowerHandle, queue: &mut Queue) {
        let now = self.clock.now();
        let lease = handle.lease(now);
        match self.store.renew_leases(&lease, now).await {
            Ok(held) => {
                let held: HashSet<String> = held.into_iter().collect();
                queue.waiting.retain(|id, _| held.contains(id));
                for id in queue.in_flight.keys().filter(|id| !held.contains(*id)) {
                    queue.lost.insert(id.clone());
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot renew sign-in leases"),
        }
        loop {
            match self.store.claim_device_authorizations(&lease, now, CLAIM_BATCH).await {
                Ok(rows) => {
                    let n = rows.len() as i64;
                    if n > 0 {
                        tracing::info!(claimed = n, "following pending sign-ins");
                    }
                    for row in rows {
                        if queue.is_followed(&row.id) {
                            continue;
                        }
                        match Pending::open(row, &self.sealer, Some(now)) {
                            Ok(p) => queue.push(p),
                            Err((row, why)) => self.fail(&row, why).await,
                        }
                    }
                    if n < CLAIM_BATCH {
                        break;
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot claim pending sign-ins");
                    break;
                }
            }
        }
    }

    /// Polls once; the authorization back when it is still pending.
    async fn poll(&self, mut p: Pending) -> Option<Pending> {
        let before = p.schedule.clone();
        let target = PollTarget {
            token_endpoint: &p.token_endpoint,
            client_id: &p.client_id,
            tenant: &p.tenant,
            device_code: &p.device_code,
        };
        let step = poll_step(&self.identity, &mut p.schedule, &target, || self.clock.now()).await;
        p.polls += 1;
        match step {
            Step::Again => {
                let s = &p.schedule;
                if s.interval_ms != before.interval_ms || s.transient_failures != before.transient_failures {
                    if let Err(e) = self
                        .store
                        .reschedule_device_authorization(&p.id, s.interval_ms, s.next_poll_at, s.transient_failures)
                        .await
                    {
                        tracing::error!(error = %e, "cannot record a changed poll schedule");
                    }
                }
                Some(p)
            }
            Step::Finished(f) => {
                self.finish(&p.id, &p.session_id, p.polls, f).await;
                None
            }
        }
    }

    async fn fail(&self, row: &DeviceAuthorizationRow, message: String) {
        let f = crate::signin::outcome::Finished { state: SignInState::Failed, message, account: None, tokens: None };
        self.finish(&row.id, &row.session_id, 0, f).await;
    }

    async fn finish(&self, id: &str, session_id: &str, polls: u32, f: crate::signin::outcome::Finished) {
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
        let event = NewEvent { status, title: "Sign-in".to_string(), message: f.message, start_time: now, end_time: Some(now) };
        let finish = Finish {
            id,
            session_id,
            state: f.state,
            account: f.account.as_deref(),
            tokens_sealed: tokens_sealed.as_deref(),
            polls,
        };
        metrics::counter!(crate::metrics::SIGN_INS_FINISHED, "state" => f.state.as_str()).increment(1);
        match self.store.finish_device_authorization(&finish, &event).await {
            Ok(_) => tracing::info!(state = f.state.as_str(), polls, "sign-in finished"),
            Err(e) => tracing::error!(error = %e, "cannot record the end of a sign-in"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(id: &str, session: &str, due: Millis) -> Pending {
        Pending {
            id: id.into(),
            session_id: session.into(),
            authority: "a".into(),
            token_endpoint: url::Url::parse("https://a/token").unwrap(),
            client_id: "c".into(),
            tenant: "t".into(),
            device_code: "d".into(),
            schedule: Schedule { interval_ms: 5_000, expires_at: 900_000, next_poll_at: due, transient_failures: 0 },
            polls: 0,
        }
    }

    #[test]
    fn a_cancelled_session_gives_its_budget_slots_back() {
        let mut q = Queue::default();
        q.push(pending("stopped", "s1", 1_000));
        q.push(pending("kept", "s2", 2_000));
        // Both were stretched far ahead by the budget.
        q.heap = [("stopped", 80_000), ("kept", 85_000)]
            .into_iter()
            .map(|(id, at)| Reverse(Entry { at, id: id.into(), reserved: true }))
            .collect();
        q.waiting.retain(|_, p| p.session_id != "s1");
        q.rebuild();
        let entries: Vec<(Millis, String, bool)> = q.heap.into_sorted_vec().into_iter().map(|Reverse(e)| (e.at, e.id, e.reserved)).collect();
        assert_eq!(entries, vec![(2_000, "kept".to_string(), false)], "due again at its own time, holding no slot");
    }

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
