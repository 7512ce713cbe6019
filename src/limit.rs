//! In-process rate limits: token buckets keyed by a string (a client address, an account), in
//! bounded memory, on the application's clock so that tests drive them with a `ManualClock`.
//!
//! Each instance limits on its own: behind a load balancer with several instances, a client can
//! get up to (instances × limit). That is the price of keeping limits off the database's hot path.

use crate::clock::{Millis, SharedClock};
use std::collections::HashMap;
use std::sync::Mutex;

/// How long to wait before trying again, in whole seconds (at least 1): the `Retry-After` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub u64);

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Millis,
}

/// `capacity` tokens per key, refilled evenly over `window_ms`: a burst of `capacity`, then
/// `capacity` per window. A capacity of 0 turns the limit off.
pub struct Limiter {
    capacity: f64,
    refill_per_ms: f64,
    max_keys: usize,
    clock: SharedClock,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter").field("capacity", &self.capacity).finish_non_exhaustive()
    }
}

/// Keys kept at most, per limiter: beyond it, full buckets go first (they say nothing a missing
/// key does not), then the least recently touched. About 100 bytes a key.
pub const DEFAULT_MAX_KEYS: usize = 100_000;

impl Limiter {
    pub fn new(capacity: u64, window_ms: Millis, clock: SharedClock) -> Self {
        Self::with_max_keys(capacity, window_ms, DEFAULT_MAX_KEYS, clock)
    }

    pub fn with_max_keys(capacity: u64, window_ms: Millis, max_keys: usize, clock: SharedClock) -> Self {
        let capacity = capacity as f64;
        Limiter {
            capacity,
            refill_per_ms: capacity / (window_ms.max(1) as f64),
            max_keys: max_keys.max(1),
            clock,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    pub fn is_off(&self) -> bool {
        self.capacity == 0.0
    }

    /// Takes one token for `key`, or says how long until one is there.
    pub fn try_take(&self, key: &str) -> Result<(), RetryAfter> {
        if self.is_off() {
            return Ok(());
        }
        let now = self.clock.now();
        let mut buckets = self.buckets.lock().expect("limiter lock");
        if !buckets.contains_key(key) && buckets.len() >= self.max_keys {
            self.evict(&mut buckets, now);
        }
        let bucket = buckets.entry(key.to_string()).or_insert(Bucket { tokens: self.capacity, updated: now });
        self.refill(bucket, now);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(self.retry_after(bucket.tokens))
        }
    }

    /// Would `try_take` succeed? Takes nothing.
    pub fn check(&self, key: &str) -> Result<(), RetryAfter> {
        if self.is_off() {
            return Ok(());
        }
        let now = self.clock.now();
        let mut buckets = self.buckets.lock().expect("limiter lock");
        match buckets.get_mut(key) {
            None => Ok(()),
            Some(bucket) => {
                self.refill(bucket, now);
                if bucket.tokens >= 1.0 {
                    Ok(())
                } else {
                    Err(self.retry_after(bucket.tokens))
                }
            }
        }
    }

    /// Returns a token taken by `try_take` (the attempt turned out not to count).
    pub fn give_back(&self, key: &str) {
        if self.is_off() {
            return;
        }
        let now = self.clock.now();
        let mut buckets = self.buckets.lock().expect("limiter lock");
        if let Some(bucket) = buckets.get_mut(key) {
            self.refill(bucket, now);
            bucket.tokens = (bucket.tokens + 1.0).min(self.capacity);
        }
    }

    fn refill(&self, bucket: &mut Bucket, now: Millis) {
        let elapsed = (now - bucket.updated).max(0) as f64;
        bucket.tokens = (bucket.tokens + elapsed * self.refill_per_ms).min(self.capacity);
        bucket.updated = now.max(bucket.updated);
    }

    fn retry_after(&self, tokens: f64) -> RetryAfter {
        let ms = (1.0 - tokens) / self.refill_per_ms;
        RetryAfter(((ms / 1000.0).ceil() as u64).max(1))
    }

    /// Drops full buckets; if that frees nothing, the oldest tenth.
    fn evict(&self, buckets: &mut HashMap<String, Bucket>, now: Millis) {
        buckets.retain(|_, b| {
            let tokens = b.tokens + ((now - b.updated).max(0) as f64) * self.refill_per_ms;
            tokens < self.capacity
        });
        if buckets.len() >= self.max_keys {
            let mut times: Vec<Millis> = buckets.values().map(|b| b.updated).collect();
            let cut = times.len() / 10;
            let (_, nth, _) = times.select_nth_unstable(cut);
            let threshold = *nth;
            buckets.retain(|_, b| b.updated > threshold);
        }
    }

    #[cfg(test)]
    fn keys(&self) -> usize {
        self.buckets.lock().unwrap().len()
    }
}

/// The key of a client address: IPv4 as it is, IPv6 by its /64 (one host usually holds a whole
/// /64, and would otherwise have 2^64 addresses to rotate through).
pub fn address_key(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use std::sync::Arc;

    #[test]
    fn a_burst_of_capacity_then_one_per_refill() {
        let clock = Arc::new(ManualClock::new(0));
        let l = Limiter::new(3, 60_000, clock.clone());
        for _ in 0..3 {
            assert!(l.try_take("a").is_ok());
        }
        assert_eq!(l.try_take("a"), Err(RetryAfter(20)));
        assert!(l.try_take("b").is_ok(), "keys are independent");
        clock.advance(19_999);
        assert!(l.check("a").is_err());
        clock.advance(1);
        assert!(l.check("a").is_ok());
        assert!(l.try_take("a").is_ok());
        assert!(l.try_take("a").is_err());
        // Never more than the capacity, however long the wait.
        clock.advance(3_600_000);
        for _ in 0..3 {
            assert!(l.try_take("a").is_ok());
        }
        assert!(l.try_take("a").is_err());
    }

    #[test]
    fn given_back_tokens_count_again_up_to_capacity() {
        let clock = Arc::new(ManualClock::new(0));
        let l = Limiter::new(1, 60_000, clock);
        assert!(l.try_take("a").is_ok());
        assert!(l.check("a").is_err());
        l.give_back("a");
        l.give_back("a");
        assert!(l.try_take("a").is_ok());
        assert!(l.try_take("a").is_err(), "giving back never exceeds the capacity");
    }

    #[test]
    fn zero_capacity_is_no_limit() {
        let l = Limiter::new(0, 60_000, Arc::new(ManualClock::new(0)));
        for _ in 0..1000 {
            assert!(l.try_take("a").is_ok());
        }
    }

    #[test]
    fn memory_is_bounded() {
        let clock = Arc::new(ManualClock::new(0));
        let l = Limiter::with_max_keys(2, 60_000, 100, clock.clone());
        for i in 0..10_000 {
            clock.advance(1);
            let _ = l.try_take(&format!("k{i}"));
            assert!(l.keys() <= 100);
        }
        // A key that is being limited right now survives a flood of others touched earlier.
        let l = Limiter::with_max_keys(1, 60_000, 100, clock.clone());
        for i in 0..99 {
            let _ = l.try_take(&format!("old{i}"));
        }
        clock.advance(1);
        assert!(l.try_take("attacker").is_ok());
        for i in 0..20 {
            let _ = l.try_take(&format!("new{i}"));
        }
        assert!(l.try_take("attacker").is_err());
    }

    #[test]
    fn ipv6_addresses_count_by_their_64() {
        assert_eq!(address_key("2001:db8:1:2:aaaa::1".parse().unwrap()), "2001:db8:1:2::/64");
        assert_eq!(address_key("2001:db8:1:2:bbbb::9".parse().unwrap()), "2001:db8:1:2::/64");
        assert_eq!(address_key("::ffff:10.1.2.3".parse().unwrap()), "10.1.2.3");
    }
}
