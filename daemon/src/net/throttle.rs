//! Failed authentication, slowed per client address: each failure's answer waits twice as long
//! as the last (0.25 s, 0.5 s, 1 s, 2 s, 4 s), the sixth locks the address out (HTTP 429) for a
//! minute, and every later failure locks it again. Logged once per address per minute with the
//! count. The table of addresses is bounded.

use super::Tally;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;
use tokio::time::Instant;

/// The wait before answering the first failure; each further one doubles it.
pub const FIRST_DELAY: Duration = Duration::from_millis(250);
/// The failure that locks an address out.
pub const LOCK_AFTER: u32 = 6;
/// How long a lock-out lasts.
pub const LOCKOUT: Duration = Duration::from_secs(60);
/// An address with no failure for this long starts again from nothing.
pub const FORGET_AFTER: Duration = Duration::from_secs(600);
/// Addresses remembered at once; past it the one whose last failure is oldest is forgotten.
pub const MAX_ADDRESSES: usize = 4096;

#[derive(Debug)]
struct Record {
    failures: u32,
    last: Instant,
    locked_until: Option<Instant>,
    log: Tally,
}

/// What a failed attempt gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// 401 after this wait.
    Delayed(Duration),
    /// 429: locked out for this long.
    Locked(Duration),
}

/// Failed authentication per client address.
#[derive(Debug, Default)]
pub struct Throttle {
    records: Mutex<HashMap<IpAddr, Record>>,
    failed: AtomicU64,
    locked: AtomicU64,
}

/// The key of an address: IPv6 clients by their /64, which one host usually holds whole.
fn key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

fn log(ip: IpAddr, attempts: u64, locked: bool) {
    tracing::warn!(address = %ip, attempts, locked,
        "failed authentication from this address (attempts since its last such line; one line a minute at most)");
}

impl Throttle {
    fn records(&self) -> MutexGuard<'_, HashMap<IpAddr, Record>> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Before any token is checked: `Some(retry_after)` while `ip` is locked out.
    pub fn locked(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let ip = key(ip);
        let mut records = self.records();
        let r = records.get_mut(&ip)?;
        let until = r.locked_until.filter(|until| *until > now)?;
        self.locked.fetch_add(1, Ordering::Relaxed);
        if let Some(n) = r.log.note(now) {
            log(ip, n, true);
        }
        Some(until - now)
    }

    /// A token was missing or wrong.
    pub fn failed(&self, ip: IpAddr, now: Instant) -> Answer {
        let ip = key(ip);
        let mut records = self.records();
        if !records.contains_key(&ip) && records.len() >= MAX_ADDRESSES {
            records.retain(|_, r| !forgotten(r, now));
            if records.len() >= MAX_ADDRESSES {
                if let Some(oldest) = records.iter().min_by_key(|(_, r)| r.last).map(|(k, _)| *k) {
                    records.remove(&oldest);
                }
            }
        }
        let r = records.entry(ip).or_insert(Record {
            failures: 0,
            last: now,
            locked_until: None,
            log: Tally::default(),
        });
        if forgotten(r, now) {
            r.failures = 0;
        }
        r.failures = r.failures.saturating_add(1);
        r.last = now;
        let answer = if r.failures >= LOCK_AFTER {
            r.locked_until = Some(now + LOCKOUT);
            self.locked.fetch_add(1, Ordering::Relaxed);
            Answer::Locked(LOCKOUT)
        } else {
            self.failed.fetch_add(1, Ordering::Relaxed);
            Answer::Delayed(FIRST_DELAY * 2u32.pow(r.failures - 1))
        };
        if let Some(n) = r.log.note(now) {
            log(ip, n, matches!(answer, Answer::Locked(_)));
        }
        answer
    }

    /// Logs the counts the last minute's lines left out, and forgets quiet addresses.
    pub fn sweep(&self, now: Instant) {
        let mut records = self.records();
        for (ip, r) in records.iter_mut() {
            if let Some(n) = r.log.flush(now) {
                log(*ip, n, r.locked_until.is_some_and(|until| until > now));
            }
        }
        records.retain(|_, r| !forgotten(r, now) || r.log.pending());
    }

    /// Attempts refused so far: (401, 429).
    pub fn refused(&self) -> (u64, u64) {
        (
            self.failed.load(Ordering::Relaxed),
            self.locked.load(Ordering::Relaxed),
        )
    }

    /// Addresses remembered now.
    pub fn addresses(&self) -> usize {
        self.records().len()
    }
}

fn forgotten(r: &Record, now: Instant) -> bool {
    now.duration_since(r.last) >= FORGET_AFTER && r.locked_until.is_none_or(|until| until <= now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|_| panic!("{s}"))
    }

    #[test]
    fn failures_wait_twice_as_long_each_then_lock_the_address_out() {
        let t = Throttle::default();
        let (a, b) = (ip("10.0.0.66"), ip("10.0.0.7"));
        let start = Instant::now();
        let answers: Vec<Answer> = (0..7).map(|_| t.failed(a, start)).collect();
        let ms = |n| Answer::Delayed(Duration::from_millis(n));
        assert_eq!(
            answers,
            [
                ms(250),
                ms(500),
                ms(1000),
                ms(2000),
                ms(4000),
                Answer::Locked(LOCKOUT),
                Answer::Locked(LOCKOUT)
            ]
        );
        assert_eq!(
            t.locked(a, start + Duration::from_secs(59)),
            Some(Duration::from_secs(1))
        );
        // Another address is not affected.
        assert_eq!(t.locked(b, start), None);
        assert_eq!(t.failed(b, start), ms(250));
        // After the lock-out, one more failure locks again; ten quiet minutes forget it.
        let later = start + LOCKOUT;
        assert_eq!(t.locked(a, later), None);
        assert_eq!(t.failed(a, later), Answer::Locked(LOCKOUT));
        assert_eq!(t.failed(a, later + LOCKOUT + FORGET_AFTER), ms(250));
        assert_eq!(t.refused(), (1 + 5 + 1, 2 + 1 + 1));
    }

    #[test]
    fn ipv6_clients_count_by_their_64_and_mapped_v4_as_v4() {
        let t = Throttle::default();
        let now = Instant::now();
        t.failed(ip("2001:db8:1:2::1"), now);
        assert_eq!(
            t.failed(ip("2001:db8:1:2:ffff::9"), now),
            Answer::Delayed(FIRST_DELAY * 2)
        );
        t.failed(ip("10.1.1.1"), now);
        assert_eq!(
            t.failed(ip("::ffff:10.1.1.1"), now),
            Answer::Delayed(FIRST_DELAY * 2)
        );
        assert_eq!(t.addresses(), 2);
    }

    #[test]
    fn the_table_is_bounded_and_forgets_the_oldest() {
        let t = Throttle::default();
        let start = Instant::now();
        for i in 0..(MAX_ADDRESSES as u32 + 500) {
            let addr = IpAddr::V4((0x0a00_0000 + i).into());
            t.failed(addr, start + Duration::from_millis(u64::from(i)));
        }
        assert_eq!(t.addresses(), MAX_ADDRESSES);
        // The first addresses were forgotten, the latest kept.
        assert_eq!(
            t.failed(
                IpAddr::V4(0x0a00_0000.into()),
                start + Duration::from_secs(10)
            ),
            Answer::Delayed(FIRST_DELAY)
        );
    }
}
