//! Counters and latency histograms, rendered in the Prometheus text format at `GET /metrics`.

use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

#[derive(Debug, Default, Clone, Copy)]
struct DeviceCounters {
    readings: u64,
    decode_errors: u64,
    unknown_parameters: u64,
    implausible: u64,
}

/// Everything `/metrics` shows.
#[derive(Debug)]
pub struct Metrics {
    devices: Mutex<BTreeMap<String, DeviceCounters>>,
    alarms: Mutex<BTreeMap<(String, String), u64>>,
    displays: AtomicI64,
    /// Microseconds from a reading's arrival to its frame written to a display.
    reading_to_frame: Mutex<Histogram<u64>>,
    /// Nanoseconds per engine evaluation of one chunk of readings.
    engine_eval: Mutex<Histogram<u64>>,
    /// The `[[forward]]`s' statuses.
    forwards: Mutex<Vec<std::sync::Arc<crate::forward::Status>>>,
    /// Messages waiting to be published to the central station.
    central_pending: AtomicI64,
    /// 1 while NATS is connected.
    central_connected: AtomicI64,
    /// Messages for the central station dropped because their queue was full.
    central_dropped: AtomicI64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("constant, valid bounds")
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            devices: Mutex::default(),
            alarms: Mutex::default(),
            displays: AtomicI64::new(0),
            reading_to_frame: Mutex::new(histogram()),
            engine_eval: Mutex::new(histogram()),
            forwards: Mutex::default(),
            central_pending: AtomicI64::new(0),
            central_connected: AtomicI64::new(0),
            central_dropped: AtomicI64::new(0),
        }
    }
}

impl Metrics {
    /// Sets how many messages wait for the central station.
    pub fn set_central_pending(&self, n: usize) {
        self.central_pending.store(n as i64, Ordering::Relaxed);
    }

    /// Sets whether NATS is connected.
    pub fn set_central_connected(&self, connected: bool) {
        self.central_connected
            .store(i64::from(connected), Ordering::Relaxed);
    }

    /// Counts messages for the central station dropped from a full queue.
    pub fn central_dropped(&self, n: u64) {
        self.central_dropped.fetch_add(n as i64, Ordering::Relaxed);
    }

    /// Counts readings from a device.
    pub fn readings(&self, device: &str, n: u64) {
        lock(&self.devices)
            .entry(device.into())
            .or_default()
            .readings += n;
    }

    /// Counts decoding errors from a device.
    pub fn decode_errors(&self, device: &str, n: u64) {
        lock(&self.devices)
            .entry(device.into())
            .or_default()
            .decode_errors += n;
    }

    /// Counts an unknown parameter code from a device.
    pub fn unknown_parameter(&self, device: &str) {
        lock(&self.devices)
            .entry(device.into())
            .or_default()
            .unknown_parameters += 1;
    }

    /// Counts readings from a device whose number the vital cannot have (unavailable as
    /// `implausible`): a device or decoding fault worth seeing, never evidence.
    pub fn implausible(&self, device: &str, n: u64) {
        if n > 0 {
            lock(&self.devices)
                .entry(device.into())
                .or_default()
                .implausible += n;
        }
    }

    /// Replaces the alarm gauges: count by (priority, state).
    pub fn set_alarms(&self, counts: BTreeMap<(String, String), u64>) {
        *lock(&self.alarms) = counts;
    }

    /// A display connection opened (+1) or closed (-1).
    pub fn displays(&self, delta: i64) {
        self.displays.fetch_add(delta, Ordering::Relaxed);
    }

    /// Records reading-to-frame latency.
    pub fn record_delivery(&self, latency: Duration) {
        let _ = lock(&self.reading_to_frame).record(latency.as_micros().max(1) as u64);
    }

    /// Reading-to-frame latencies so far, in microseconds: from the driver's read of the
    /// device's bytes to the frame's write to the display's socket.
    pub fn delivery_latency(&self) -> Histogram<u64> {
        lock(&self.reading_to_frame).clone()
    }

    /// Records one engine evaluation.
    pub fn record_engine(&self, took: Duration) {
        let _ = lock(&self.engine_eval).record(took.as_nanos().max(1) as u64);
    }

    /// Shows these forwards' statuses (`vigil_forward_*`).
    pub fn set_forwards(&self, forwards: Vec<std::sync::Arc<crate::forward::Status>>) {
        *lock(&self.forwards) = forwards;
    }

    /// The `[[forward]]`s' statuses.
    pub fn forwards(&self) -> Vec<std::sync::Arc<crate::forward::Status>> {
        lock(&self.forwards).clone()
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let devices = lock(&self.devices).clone();
        let counter =
            |out: &mut String, name: &str, help: &str, get: fn(&DeviceCounters) -> u64| {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
                for (d, c) in &devices {
                    let _ = writeln!(out, "{name}{{device=\"{}\"}} {}", escape(d), get(c));
                }
            };
        counter(
            &mut out,
            "vigil_readings_total",
            "Readings decoded per device.",
            |c| c.readings,
        );
        counter(
            &mut out,
            "vigil_decode_errors_total",
            "Decoding errors per device.",
            |c| c.decode_errors,
        );
        counter(
            &mut out,
            "vigil_unknown_parameters_total",
            "Unknown parameter codes per device.",
            |c| c.unknown_parameters,
        );
        counter(
            &mut out,
            "vigil_implausible_readings_total",
            "Readings per device with a number outside what the vital can be.",
            |c| c.implausible,
        );
        let _ = writeln!(
            out,
            "# HELP vigil_alarms Alarms by priority and state.\n# TYPE vigil_alarms gauge"
        );
        for ((p, s), n) in lock(&self.alarms).iter() {
            let _ = writeln!(out, "vigil_alarms{{priority=\"{p}\",state=\"{s}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP vigil_display_sessions Open display sessions.\n# TYPE vigil_display_sessions gauge\nvigil_display_sessions {}",
            self.displays.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP vigil_hl7_unmatched_messages_total HL7 messages acknowledged on a shared listen address that no device's match took.\n# TYPE vigil_hl7_unmatched_messages_total counter\nvigil_hl7_unmatched_messages_total {}",
            vigil_drivers::hl7::unmatched_total()
        );
        let _ = writeln!(
            out,
            "# HELP vigil_central_pending Messages waiting to be published to the central station.\n# TYPE vigil_central_pending gauge\nvigil_central_pending {}\n\
             # HELP vigil_central_connected 1 while the room is connected to NATS (0 without [central]).\n# TYPE vigil_central_connected gauge\nvigil_central_connected {}\n\
             # HELP vigil_central_dropped_total Messages for the central station dropped from a full queue.\n# TYPE vigil_central_dropped_total counter\nvigil_central_dropped_total {}",
            self.central_pending.load(Ordering::Relaxed),
            self.central_connected.load(Ordering::Relaxed),
            self.central_dropped.load(Ordering::Relaxed)
        );
        let summary = |out: &mut String, name: &str, help: &str, h: &Histogram<u64>, scale: f64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} summary");
            for q in [0.5, 0.9, 0.99, 0.999] {
                let _ = writeln!(
                    out,
                    "{name}{{quantile=\"{q}\"}} {}",
                    h.value_at_quantile(q) as f64 / scale
                );
            }
            let _ = writeln!(out, "{name}_count {}", h.len());
        };
        summary(
            &mut out,
            "vigil_reading_to_frame_seconds",
            "From a reading's arrival to its frame written to a display.",
            &lock(&self.reading_to_frame),
            1e6,
        );
        summary(
            &mut out,
            "vigil_engine_evaluation_seconds",
            "Alarm engine time per chunk of readings.",
            &lock(&self.engine_eval),
            1e9,
        );
        crate::forward::render_metrics(&mut out, &lock(&self.forwards));
        out
    }
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn implausible_readings_are_counted_per_device() {
        let m = Metrics::default();
        m.implausible("masimo-1", 2);
        m.implausible("masimo-1", 1);
        m.readings("nonin-1", 5);
        let text = m.render();
        assert!(
            text.contains("vigil_implausible_readings_total{device=\"masimo-1\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("vigil_implausible_readings_total{device=\"nonin-1\"} 0"),
            "{text}"
        );
    }
}
