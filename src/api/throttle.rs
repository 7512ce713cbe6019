//! The API's limits: wrong passwords at `/v5/Token` per client address and per account, password
//! hashes at once, and device codes per user. The numbers are settings (see `config`).
//!
//! Logins. Every password check reserves one failure from the caller's address and, unless that
//! address has signed in to the account before, one from the account, *before* the Argon2 hash
//! runs; a correct password gives them back. So wrong passwords cannot be tried faster than the
//! limits from any address, a flood costs one hash per allowed failure and cheap 429s after that,
//! and at most `login_concurrent_hashes` hashes run at once. The per-account limit stops guessing
//! spread over many addresses; exempting addresses that have signed in to the account keeps its
//! owner from being locked out by someone else's flood (the same idea as OWASP's device cookies,
//! with the client address as the device). A first sign-in from a new address during such a flood
//! waits for the window to pass: that is the trade-off.

use super::error::ApiError;
use crate::clock::{Millis, SharedClock};
use crate::limit::{Limiter, RetryAfter};
pub use crate::limit::address_key;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long an address that signed in to an account stays exempt from the account's limit.
const KNOWN_ADDRESS_MS: Millis = 30 * 24 * 3600 * 1000;
/// How long a login waits for a free hashing slot before it is told to come back.
const HASH_QUEUE_WAIT: Duration = Duration::from_secs(10);

pub struct LoginLimits {
    pub failures_per_address: u64,
    pub failures_per_account: u64,
    pub window_ms: Millis,
    pub concurrent_hashes: u64,
}

pub struct LoginGuard {
    by_address: Limiter,
    by_account: Limiter,
    /// "account|address" → last successful sign-in.
    known: Mutex<HashMap<String, Millis>>,
    hashes: Arc<Semaphore>,
    clock: SharedClock,
}

/// Why a login is refused before its password is checked.
#[derive(Debug)]
pub enum Refusal {
    Address(RetryAfter),
    Account(RetryAfter),
    Busy,
}

impl Refusal {
    pub fn retry_after(&self) -> u64 {
        match self {
            Refusal::Address(r) | Refusal::Account(r) => r.0,
            Refusal::Busy => 1,
        }
    }

    /// Says what happened and what to do, without telling whether the account exists.
    pub fn message(&self) -> String {
        match self {
            Refusal::Address(r) => format!("Too many failed sign-ins from your address: try again in {} s", r.0),
            Refusal::Account(r) => format!(
                "Too many failed sign-ins for this user name from addresses it has not signed in from: try again in {} s",
                r.0
            ),
            Refusal::Busy => "The server is busy checking other sign-ins: try again in 1 s".into(),
        }
    }
}

/// A login admitted to one password check. Dropped without `succeeded`, its reservations stay
/// counted as failures.
pub struct Admitted<'a> {
    guard: &'a LoginGuard,
    address: String,
    account: String,
    took_account: bool,
    _hash: OwnedSemaphorePermit,
}

impl Admitted<'_> {
    pub fn succeeded(self) {
        self.guard.by_address.give_back(&self.address);
        if self.took_account {
            self.guard.by_account.give_back(&self.account);
        }
        let now = self.guard.clock.now();
        let mut known = self.guard.known.lock().expect("known addresses lock");
        if known.len() >= crate::limit::DEFAULT_MAX_KEYS {
            known.retain(|_, at| now - *at < KNOWN_ADDRESS_MS);
            if known.len() >= crate::limit::DEFAULT_MAX_KEYS {
                known.clear();
            }
        }
        known.insert(known_key(&self.account, &self.address), now);
    }
}

fn known_key(account: &str, address: &str) -> String {
    format!("{account}|{address}")
}

impl LoginGuard {
    pub fn new(limits: &LoginLimits, clock: SharedClock) -> Self {
        LoginGuard {
            by_address: Limiter::new(limits.failures_per_address, limits.window_ms, clock.clone()),
            by_account: Limiter::new(limits.failures_per_account, limits.window_ms, clock.clone()),
            known: Mutex::new(HashMap::new()),
            hashes: Arc::new(Semaphore::new(limits.concurrent_hashes.clamp(1, 1024) as usize)),
            clock,
        }
    }

    /// Admits one password check for `account` (any case) from `ip`, or refuses it before any
    /// hashing.
    pub async fn admit(&self, ip: IpAddr, account: &str) -> Result<Admitted<'_>, Refusal> {
        let address = address_key(ip);
        let account = account.to_lowercase();
        self.by_address.try_take(&address).map_err(Refusal::Address)?;
        let known = {
            let known = self.known.lock().expect("known addresses lock");
            known.get(&known_key(&account, &address)).is_some_and(|at| self.clock.now() - at < KNOWN_ADDRESS_MS)
        };
        let took_account = !known;
        if took_account {
            if let Err(r) = self.by_account.try_take(&account) {
                self.by_address.give_back(&address);
                return Err(Refusal::Account(r));
            }
        }
        match tokio::time::timeout(HASH_QUEUE_WAIT, self.hashes.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(Admitted { guard: self, address, account, took_account, _hash: permit }),
            _ => {
                self.by_address.give_back(&address);
                if took_account {
                    self.by_account.give_back(&account);
                }
                Err(Refusal::Busy)
            }
        }
    }
}

/// restoreDeviceCode: requests per user per minute, and sign-ins pending per user.
pub struct DeviceCodeGuard {
    per_user: Limiter,
    pub max_pending: u64,
}

impl DeviceCodeGuard {
    pub fn new(per_minute: u64, max_pending: u64, clock: SharedClock) -> Self {
        DeviceCodeGuard { per_user: Limiter::new(per_minute, 60_000, clock), max_pending }
    }

    pub fn take(&self, user_id: &str) -> Result<(), ApiError> {
        self.per_user.try_take(user_id).map_err(|r| {
            ApiError::TooManyRequests(
                format!("Too many device code requests: try again in {} s (each user may ask for a limited number a minute)", r.0),
                r.0,
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn guard(clock: Arc<ManualClock>) -> LoginGuard {
        LoginGuard::new(&LoginLimits { failures_per_address: 3, failures_per_account: 5, window_ms: 60_000, concurrent_hashes: 2 }, clock)
    }

    #[tokio::test]
    async fn failures_are_limited_per_address_and_successes_do_not_count() {
        let clock = Arc::new(ManualClock::new(0));
        let g = guard(clock.clone());
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..10 {
            g.admit(a, "alice").await.unwrap().succeeded();
        }
        for _ in 0..3 {
            drop(g.admit(a, "Alice").await.unwrap());
        }
        assert!(matches!(g.admit(a, "bob").await, Err(Refusal::Address(RetryAfter(20)))));
        clock.advance(20_000);
        assert!(g.admit(a, "bob").await.is_ok());
    }

    #[tokio::test]
    async fn an_account_under_attack_still_admits_addresses_it_signed_in_from() {
        let clock = Arc::new(ManualClock::new(0));
        let g = guard(clock);
        let owner: IpAddr = "10.0.0.1".parse().unwrap();
        g.admit(owner, "alice").await.unwrap().succeeded();
        for i in 0..5 {
            let attacker: IpAddr = format!("10.0.1.{i}").parse().unwrap();
            drop(g.admit(attacker, "alice").await.unwrap());
        }
        let fresh: IpAddr = "10.0.2.1".parse().unwrap();
        assert!(matches!(g.admit(fresh, "alice").await, Err(Refusal::Account(_))));
        assert!(g.admit(fresh, "bob").await.is_ok(), "a refusal for the account does not use up the address");
        g.admit(owner, "alice").await.expect("the owner's address is exempt").succeeded();
    }

    #[tokio::test]
    async fn hashes_at_once_are_bounded() {
        let g = guard(Arc::new(ManualClock::new(0)));
        let a = g.admit("10.0.0.1".parse().unwrap(), "x").await.unwrap();
        let b = g.admit("10.0.0.2".parse().unwrap(), "y").await.unwrap();
        assert_eq!(g.hashes.available_permits(), 0);
        drop(a);
        drop(b);
        assert_eq!(g.hashes.available_permits(), 2);
    }
}
