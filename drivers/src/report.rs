//! Turns decoder output into driver events: readings batched per chunk, repeated device events
//! rate-limited, decoding errors counted and reported at most once a second.

use crate::events::{DriverEvent, DriverEventKind, Link};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use vigil_protocol::format::Decoded;
use vigil_protocol::{DeviceEvent, Observation};

/// The room core has gone (its channel is closed): the driver should stop.
#[derive(Debug)]
pub(crate) struct CoreGone;

const REPEAT_EVERY: Duration = Duration::from_secs(1);
const ERRORS_EVERY: Duration = Duration::from_secs(1);
const LOG_EVERY: Duration = Duration::from_secs(10);
/// Most distinct repeating events remembered per second. A monitor may send hundreds of distinct
/// unmapped codes a second; beyond this many, further unknown parameters that second are not
/// sent on (they are evidence for nothing), so neither this list nor the core's queue grows
/// with them (W1).
const MAX_RECENT: usize = 64;

pub(crate) struct Reporter {
    device: Arc<str>,
    tx: mpsc::Sender<DriverEvent>,
    recent: Vec<(DeviceEvent, Instant)>,
    errors: u64,
    errors_total: u64,
    last_error: Option<String>,
    errors_sent_at: Option<Instant>,
    logged_at: Option<Instant>,
}

impl Reporter {
    pub(crate) fn new(device: Arc<str>, tx: mpsc::Sender<DriverEvent>) -> Self {
        Reporter {
            device,
            tx,
            recent: Vec::new(),
            errors: 0,
            errors_total: 0,
            last_error: None,
            errors_sent_at: None,
            logged_at: None,
        }
    }

    /// The device's id (for its log lines).
    pub(crate) fn device(&self) -> &str {
        &self.device
    }

    async fn send(&self, kind: DriverEventKind) -> Result<(), CoreGone> {
        self.tx
            .send(DriverEvent {
                device: self.device.clone(),
                at: Instant::now(),
                kind,
            })
            .await
            .map_err(|_| CoreGone)
    }

    pub(crate) async fn link(&mut self, link: Link) -> Result<(), CoreGone> {
        match &link {
            Link::Disconnected { reason } => {
                tracing::warn!(device = %self.device, %reason, "device disconnected")
            }
            other => tracing::info!(device = %self.device, link = ?other, "device link"),
        }
        self.send(DriverEventKind::Link(link)).await
    }

    pub(crate) async fn event(&mut self, event: DeviceEvent) -> Result<(), CoreGone> {
        self.send(DriverEventKind::Device(event)).await
    }

    /// Sends what one chunk decoded to; returns the device events for the driver to act on.
    pub(crate) async fn decoded(
        &mut self,
        items: &mut Vec<Decoded>,
    ) -> Result<Vec<DeviceEvent>, CoreGone> {
        let now = Instant::now();
        let mut readings = Vec::new();
        let mut events = Vec::new();
        for item in items.drain(..) {
            match item {
                Ok(Observation::Reading(r)) => readings.push(r),
                Ok(Observation::Event(e)) => events.push(e),
                // The core counts it per device like any unknown parameter; its value is never
                // evidence, so only the code travels on.
                Ok(Observation::UnknownParameter(p)) => {
                    events.push(DeviceEvent::UnknownParameter { code: p.code })
                }
                Err(e) => {
                    self.errors += 1;
                    self.errors_total += 1;
                    self.last_error = Some(e.to_string());
                }
            }
        }
        if !readings.is_empty() {
            self.send(DriverEventKind::Readings(readings)).await?;
        }
        self.recent
            .retain(|(_, at)| now.duration_since(*at) < REPEAT_EVERY);
        for e in &events {
            // Sensor off or low battery repeats with every frame (60 a second for a Contec):
            // once a second is enough for the engine and the log.
            let repeats = matches!(
                e,
                DeviceEvent::SensorOff
                    | DeviceEvent::SensorDefective
                    | DeviceEvent::SensorDisconnected
                    | DeviceEvent::LowBattery
                    | DeviceEvent::DeviceAlarms { .. }
                    | DeviceEvent::UnknownParameter { .. }
            );
            if repeats && self.recent.iter().any(|(r, _)| r == e) {
                continue;
            }
            if matches!(e, DeviceEvent::UnknownParameter { .. }) && self.recent.len() >= MAX_RECENT
            {
                continue;
            }
            self.recent.push((e.clone(), now));
            self.send(DriverEventKind::Device(e.clone())).await?;
        }
        self.flush_errors(false).await?;
        Ok(events)
    }

    /// Counts `count` messages lost before decoding (`last` says why), reported with the
    /// decoding errors.
    pub(crate) fn count_errors(&mut self, count: u64, last: String) {
        self.errors += count;
        self.errors_total += count;
        self.last_error = Some(last);
    }

    /// Reports counted decoding errors (at most once a second unless `force`).
    pub(crate) async fn flush_errors(&mut self, force: bool) -> Result<(), CoreGone> {
        if self.errors == 0 {
            return Ok(());
        }
        let now = Instant::now();
        if !force
            && self
                .errors_sent_at
                .is_some_and(|t| now.duration_since(t) < ERRORS_EVERY)
        {
            return Ok(());
        }
        let last = self.last_error.clone().unwrap_or_default();
        if self
            .logged_at
            .is_none_or(|t| now.duration_since(t) >= LOG_EVERY)
        {
            tracing::warn!(
                device = %self.device,
                errors = self.errors_total,
                last = %last,
                "decoding errors (wrong format or line settings?)"
            );
            self.logged_at = Some(now);
        }
        let count = std::mem::take(&mut self.errors);
        self.errors_sent_at = Some(now);
        self.send(DriverEventKind::DecodeErrors { count, last })
            .await
    }
}

/// The pump's clock, as the device session takes it (tokio's, so paused time works in tests).
pub(crate) fn now() -> std::time::Instant {
    Instant::now().into_std()
}

/// Hands what the device session produced to the core.
pub(crate) async fn report(
    device: &mut dyn vigil_protocol::DeviceSession,
    reporter: &mut Reporter,
    decoded: &mut Vec<vigil_protocol::format::Decoded>,
) -> Result<(), CoreGone> {
    decoded.extend(std::iter::from_fn(|| device.poll_output()));
    reporter.decoded(decoded).await.map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_protocol::UnknownParameter;

    /// An unmapped parameter reaches the core as the device's unknown-parameter event, which the
    /// core counts per device (`vigil_unknown_parameters_total`); its value never travels as a
    /// reading, so it can be evidence for nothing.
    #[tokio::test]
    async fn an_unknown_parameter_reaches_the_core_as_a_device_event_never_a_reading() {
        let (tx, mut rx) = mpsc::channel(8);
        let mut reporter = Reporter::new("monitor-1".into(), tx);
        let mut items: Vec<Decoded> = vec![Ok(UnknownParameter {
            code: "MDC_TEMP".into(),
            value: Some(36.6),
            unit: Some("Cel".into()),
        }
        .into())];
        reporter.decoded(&mut items).await.unwrap();
        drop(reporter);
        let mut kinds = Vec::new();
        while let Some(e) = rx.recv().await {
            kinds.push(e.kind);
        }
        assert!(
            matches!(
                kinds.as_slice(),
                [DriverEventKind::Device(DeviceEvent::UnknownParameter { code })] if code == "MDC_TEMP"
            ),
            "{kinds:?}"
        );
    }
}
