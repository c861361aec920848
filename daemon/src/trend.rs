//! The 1 Hz trend of every vital, and the answers to displays' trend requests.
//!
//! The core owns the series and, every heartbeat, publishes a copy that costs next to nothing
//! (sealed chunks are shared, only the open chunk is copied). Trend requests, up to 8 hours,
//! are answered from that copy on the blocking pool, a few at a time daemon-wide, so that no
//! number of displays asking for long trends can delay the core or the display connections.

use crate::clock::Clock;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use tokio::sync::{watch, Semaphore};
use vigil_protocol::display::{ServerMessage, Trend, TrendSeries};
use vigil_protocol::Vital;

/// Trend points kept per vital: 2 h 10 min at 1 Hz.
pub const TREND_POINTS: usize = 7_800;
/// Points per sealed chunk (5 minutes): what a publication copies at most per series.
const CHUNK: usize = 300;
/// Trend requests answered at once, daemon-wide; the rest wait their turn (each display has at
/// most a few requests waiting, see the server).
pub const TREND_CONCURRENCY: usize = 2;
/// The longest trend a display may ask for, in minutes.
pub const MAX_TREND_MINUTES: u32 = 480;

/// One vital's 1 Hz history: the last value in each second, oldest first.
#[derive(Debug, Default, Clone)]
pub struct Series {
    /// Full chunks, shared with every published copy.
    sealed: VecDeque<Arc<[(i64, f32)]>>,
    /// Points of the oldest sealed chunk already past the window.
    skip: usize,
    /// The chunk being filled; it always holds the newest point once there is one.
    open: Vec<(i64, f32)>,
    len: usize,
}

impl Series {
    /// Records `value` at `unix_ms`; a later value in the same second replaces the earlier.
    pub fn push(&mut self, unix_ms: i64, value: f64) {
        let second = unix_ms.div_euclid(1000);
        if let Some((s, v)) = self.open.last_mut() {
            if *s == second {
                *v = value as f32;
                return;
            }
        }
        if self.open.len() == CHUNK {
            let full = std::mem::replace(&mut self.open, Vec::with_capacity(CHUNK));
            self.sealed.push_back(full.into());
        }
        self.open.push((second, value as f32));
        self.len += 1;
        while self.len > TREND_POINTS {
            self.skip += 1;
            self.len -= 1;
            if self.sealed.front().is_some_and(|c| self.skip == c.len()) {
                self.sealed.pop_front();
                self.skip = 0;
            }
        }
    }

    /// Points kept.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// (second, value) pairs, oldest first.
    pub fn points(&self) -> impl Iterator<Item = &(i64, f32)> {
        self.sealed
            .iter()
            .enumerate()
            .flat_map(move |(i, c)| c[if i == 0 { self.skip } else { 0 }..].iter())
            .chain(self.open.iter())
    }
}

/// Every series of the room, as the core last published them.
#[derive(Debug, Default, Clone)]
pub struct Trends {
    series: BTreeMap<(String, Vital), Series>,
}

impl Trends {
    /// Records a clinical value of `vital` from `device`.
    pub fn push(&mut self, device: &str, vital: Vital, unix_ms: i64, value: f64) {
        match self.series.get_mut(&(device.to_string(), vital)) {
            Some(s) => s.push(unix_ms, value),
            None => {
                let mut s = Series::default();
                s.push(unix_ms, value);
                self.series.insert((device.to_string(), vital), s);
            }
        }
    }

    /// One series, if any value was recorded.
    pub fn series(&self, device: &str, vital: Vital) -> Option<&Series> {
        self.series.get(&(device.to_string(), vital))
    }

    /// The `minutes` before `end_unix_ms` of every series at `resolution_s` (the last value in
    /// each interval).
    pub fn window(&self, end_unix_ms: i64, minutes: u32, resolution_s: u32) -> Trend {
        let end = end_unix_ms.div_euclid(1000);
        let start = end - i64::from(minutes) * 60;
        let step = i64::from(resolution_s.max(1));
        let series = self
            .series
            .iter()
            .map(|((device, vital), s)| {
                let mut points: Vec<(i64, f64)> = Vec::new();
                for &(sec, v) in s.points().filter(|(sec, _)| *sec >= start) {
                    let bucket = sec.div_euclid(step);
                    match points.last_mut() {
                        Some((t, last)) if t.div_euclid(1000).div_euclid(step) == bucket => {
                            *t = sec * 1000;
                            *last = f64::from(v);
                        }
                        _ => points.push((sec * 1000, f64::from(v))),
                    }
                }
                TrendSeries {
                    device: device.clone(),
                    vital: *vital,
                    points,
                }
            })
            .filter(|s| !s.points.is_empty())
            .collect();
        Trend {
            minutes,
            resolution_s,
            series,
        }
    }
}

/// The resolution a trend of `minutes` is answered at: 10 s up to an hour, 30 s beyond.
pub fn resolution(minutes: u32) -> u32 {
    if minutes <= 60 {
        10
    } else {
        30
    }
}

/// Answers trend requests off the core, from what the core publishes.
#[derive(Debug, Clone)]
pub struct TrendService {
    published: watch::Receiver<Arc<Trends>>,
    clock: Clock,
    permits: Arc<Semaphore>,
}

impl TrendService {
    /// A service reading the core's publications.
    pub fn new(published: watch::Receiver<Arc<Trends>>, clock: Clock) -> TrendService {
        TrendService {
            published,
            clock,
            permits: Arc::new(Semaphore::new(TREND_CONCURRENCY)),
        }
    }

    /// The `trend` message for a request of `minutes` (already range-checked), serialised. It
    /// waits for one of the daemon's few trend slots, then works on the blocking pool.
    pub async fn answer(&self, request_id: Option<String>, minutes: u32) -> Option<String> {
        let _permit = self.permits.acquire().await.ok()?;
        let trends = self.published.borrow().clone();
        let end = self.clock.unix_ms(self.clock.now());
        tokio::task::spawn_blocking(move || {
            let trend = trends.window(end, minutes, resolution(minutes));
            ServerMessage::Trend { request_id, trend }.to_json()
        })
        .await
        .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_series_keeps_the_window_exactly_and_one_value_per_second() {
        let mut s = Series::default();
        // Three hours at 2 Hz: each second's second value replaces its first.
        for i in 0..(3 * 3600 * 2) {
            s.push(500 * i, (i % 10) as f64);
        }
        assert_eq!(s.len(), TREND_POINTS);
        let points: Vec<_> = s.points().copied().collect();
        assert_eq!(points.len(), TREND_POINTS);
        let last = 3 * 3600 - 1;
        assert_eq!(points.last(), Some(&(last, 9.0)));
        assert_eq!(points[0].0, last - TREND_POINTS as i64 + 1);
        assert!(points.windows(2).all(|w| w[1].0 == w[0].0 + 1));
    }

    #[test]
    fn a_published_copy_does_not_change_when_the_series_goes_on() {
        let mut trends = Trends::default();
        for i in 0..1000 {
            trends.push("ox", Vital::Spo2, i * 1000, 97.0);
        }
        let published = trends.clone();
        trends.push("ox", Vital::Spo2, 1000 * 1000, 80.0);
        let before = published.window(1001 * 1000, 60, 10);
        let after = trends.window(1001 * 1000, 60, 10);
        assert_eq!(before.series[0].points.last().map(|p| p.1), Some(97.0));
        assert_eq!(after.series[0].points.last().map(|p| p.1), Some(80.0));
    }
}
