//! When to poll a device authorization next (RFC 8628 section 3.5, client side), as a pure state
//! machine over simulated or real time. The follower in `signin` persists this state between polls.

use crate::clock::Millis;

/// What the authority said, reduced to what matters for timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// `authorization_pending`: nobody has finished signing in yet.
    Pending,
    /// `slow_down`: add 5 seconds to the interval, for good.
    SlowDown,
    /// Network error, timeout, 5xx or a loop-detection refusal: back off, then try again.
    Transient,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    PollAt(Millis),
    /// The code has expired without a sign-in; no further poll can succeed.
    Expired,
}

pub const DEFAULT_INTERVAL_MS: i64 = 5_000;
pub const SLOW_DOWN_STEP_MS: i64 = 5_000;
pub const MAX_BACKOFF_MS: i64 = 60_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    pub interval_ms: i64,
    pub expires_at: Millis,
    pub next_poll_at: Millis,
    /// Consecutive transient failures; doubles the wait each time, reset by any real answer.
    pub transient_failures: u32,
}

impl Schedule {
    /// A fresh schedule for a code issued at `issued_at`. A missing interval means 5 seconds.
    pub fn new(issued_at: Millis, interval_seconds: Option<u64>, expires_in_seconds: u64) -> Self {
        let interval_ms = interval_seconds
            .filter(|s| *s > 0)
            .map(|s| (s.min(3600) as i64) * 1000)
            .unwrap_or(DEFAULT_INTERVAL_MS);
        let expires_at = issued_at + (expires_in_seconds.min(86_400) as i64) * 1000;
        let mut s = Schedule { interval_ms, expires_at, next_poll_at: issued_at, transient_failures: 0 };
        s.next_poll_at = match s.plan(issued_at, interval_ms) {
            Next::PollAt(t) => t,
            Next::Expired => expires_at,
        };
        s
    }

    /// Where the schedule goes after a poll that ended at `now` with `signal`.
    pub fn after(&mut self, signal: Signal, now: Millis) -> Next {
        let wait = match signal {
            Signal::Pending => {
                self.transient_failures = 0;
                self.interval_ms
            }
            Signal::SlowDown => {
                self.transient_failures = 0;
                self.interval_ms += SLOW_DOWN_STEP_MS;
                self.interval_ms
            }
            Signal::Transient => {
                self.transient_failures = self.transient_failures.saturating_add(1);
                let factor = 1i64 << self.transient_failures.min(6);
                (self.interval_ms * factor).min(MAX_BACKOFF_MS.max(self.interval_ms))
            }
        };
        let next = self.plan(now, wait);
        if let Next::PollAt(t) = next {
            self.next_poll_at = t;
        }
        next
    }

    /// The poll after `now`, `wait` later; when that lands past the deadline, one last poll at the
    /// deadline itself, provided it still keeps the interval; otherwise the code is spent.
    fn plan(&self, now: Millis, wait: i64) -> Next {
        let candidate = now + wait;
        if candidate <= self.expires_at {
            Next::PollAt(candidate)
        } else if self.expires_at >= now + self.interval_ms && self.expires_at > now {
            Next::PollAt(self.expires_at)
        } else {
            Next::Expired
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_waits_one_interval_and_slow_down_adds_five_seconds_for_good() {
        let mut s = Schedule::new(0, Some(5), 900);
        assert_eq!(s.next_poll_at, 5_000);
        assert_eq!(s.after(Signal::Pending, 5_000), Next::PollAt(10_000));
        assert_eq!(s.after(Signal::SlowDown, 10_000), Next::PollAt(20_000));
        assert_eq!(s.after(Signal::SlowDown, 20_000), Next::PollAt(35_000));
        assert_eq!(s.after(Signal::Pending, 35_000), Next::PollAt(50_000));
    }

    #[test]
    fn missing_or_zero_interval_means_five_seconds() {
        assert_eq!(Schedule::new(0, None, 900).interval_ms, 5_000);
        assert_eq!(Schedule::new(0, Some(0), 900).interval_ms, 5_000);
    }

    #[test]
    fn transient_failures_back_off_and_reset() {
        let mut s = Schedule::new(0, Some(5), 900);
        assert_eq!(s.after(Signal::Transient, 5_000), Next::PollAt(15_000));
        assert_eq!(s.after(Signal::Transient, 15_000), Next::PollAt(35_000));
        assert_eq!(s.after(Signal::Pending, 35_000), Next::PollAt(40_000));
    }

    #[test]
    fn last_poll_is_at_the_deadline_and_then_the_code_is_spent() {
        let mut s = Schedule::new(0, Some(7), 20);
        assert_eq!(s.after(Signal::Pending, 7_000), Next::PollAt(14_000));
        // 21 s would pass the 20 s deadline; 20 s still keeps the 7 s interval after 14 s? No: 6 s.
        assert_eq!(s.after(Signal::Pending, 14_000), Next::Expired);
        let mut s = Schedule::new(0, Some(5), 12);
        assert_eq!(s.after(Signal::Pending, 5_000), Next::PollAt(10_000));
        // Backing off 20 s would pass the deadline: one last poll at 12 s? Only 2 s after: spent.
        assert_eq!(s.after(Signal::Transient, 10_000), Next::Expired);
        let mut s = Schedule::new(0, Some(5), 30);
        assert_eq!(s.after(Signal::Transient, 5_000), Next::PollAt(15_000));
        // Backing off 20 s from 15 s passes the 30 s deadline; the deadline itself keeps the interval.
        assert_eq!(s.after(Signal::Transient, 15_000), Next::PollAt(30_000));
        assert_eq!(s.after(Signal::Pending, 30_000), Next::Expired);
    }

    #[test]
    fn never_schedules_faster_than_the_interval() {
        // Exhaustive over small schedules: every planned poll keeps the current interval.
        for interval in 1..=12u64 {
            for lifetime in 1..=60u64 {
                for pattern in 0..27u32 {
                    let mut s = Schedule::new(0, Some(interval), lifetime);
                    let mut now = s.next_poll_at;
                    let mut p = pattern;
                    for _ in 0..3 {
                        let signal = [Signal::Pending, Signal::SlowDown, Signal::Transient][(p % 3) as usize];
                        p /= 3;
                        match s.after(signal, now) {
                            Next::PollAt(t) => {
                                assert!(t - now >= s.interval_ms, "interval {interval} lifetime {lifetime}");
                                assert!(t <= s.expires_at);
                                now = t;
                            }
                            Next::Expired => break,
                        }
                    }
                }
            }
        }
    }
}
