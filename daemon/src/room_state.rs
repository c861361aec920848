//! The room's live state as the display needs it: devices and their links, the latest value of
//! every vital with its age, and a 1 Hz trend of at least two hours. Pure data: the core task
//! owns it and feeds it `now`.

use crate::clock::Clock;
use crate::trend::Trends;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::time::Instant;
use vigil_protocol::display::{DeviceInfo, LatestVital, LinkState, Trend};
use vigil_protocol::{Format, Reading, Vital};

pub use crate::trend::TREND_POINTS;

#[derive(Debug)]
struct DeviceState {
    info: DeviceInfo,
}

/// The room's live state.
#[derive(Debug)]
pub struct RoomState {
    devices: Vec<DeviceState>,
    latest: BTreeMap<(String, Vital), (Reading, Instant)>,
    trends: Trends,
    /// Trends changed since the last publication.
    trends_changed: bool,
}

impl RoomState {
    /// The state of a room with the configured devices, all connecting.
    pub fn new(devices: &[(String, Format)]) -> RoomState {
        RoomState {
            devices: devices
                .iter()
                .map(|(id, format)| DeviceState {
                    info: DeviceInfo {
                        device: id.clone(),
                        format: format.name().into(),
                        link: LinkState::Connecting,
                        reason: None,
                        battery: None,
                        commands: format.facts().commands.to_vec(),
                    },
                })
                .collect(),
            latest: BTreeMap::new(),
            trends: Trends::default(),
            trends_changed: false,
        }
    }

    /// A device a reload added: it joins the room connecting.
    pub fn add_device(&mut self, id: &str, format: Format) {
        let info = &mut self.device_mut(id).info;
        info.format = format.name().into();
        info.commands = format.facts().commands.to_vec();
    }

    /// A device a reload removed leaves the room with its latest values (its trend stays, as
    /// history).
    pub fn remove_device(&mut self, id: &str) {
        self.devices.retain(|d| d.info.device != id);
        self.latest.retain(|(device, _), _| device != id);
    }

    fn device_mut(&mut self, id: &str) -> &mut DeviceState {
        if let Some(i) = self.devices.iter().position(|d| d.info.device == id) {
            return &mut self.devices[i];
        }
        self.devices.push(DeviceState {
            info: DeviceInfo {
                device: id.into(),
                format: "unknown".into(),
                link: LinkState::Connecting,
                reason: None,
                battery: None,
                commands: Vec::new(),
            },
        });
        let last = self.devices.len() - 1;
        &mut self.devices[last]
    }

    /// Records a link state; returns whether it changed.
    pub fn set_link(&mut self, device: &str, link: LinkState, reason: Option<String>) -> bool {
        let d = self.device_mut(device);
        let changed = d.info.link != link || d.info.reason != reason;
        d.info.link = link;
        d.info.reason = reason;
        changed
    }

    /// The device's current link state.
    pub fn link(&self, device: &str) -> Option<LinkState> {
        self.devices
            .iter()
            .find(|d| d.info.device == device)
            .map(|d| d.info.link)
    }

    /// Records a battery level.
    pub fn set_battery(&mut self, device: &str, percent: u8) {
        self.device_mut(device).info.battery = Some(percent);
    }

    /// Records a reading as the latest of its vital, and in the trend when it is a number an
    /// alarm could act on.
    pub fn record(&mut self, clock: &Clock, device: &str, reading: &Reading, at: Instant) {
        self.device_mut(device);
        if let Some(v) = reading.clinical_value() {
            self.trends
                .push(device, reading.vital, clock.unix_ms(at), v);
            self.trends_changed = true;
        }
        self.latest
            .insert((device.to_string(), reading.vital), (reading.clone(), at));
    }

    /// Puts a series recorded before a restart back into the trends (not into the latest
    /// values: those are live, and a restored one would show an old number as current).
    pub fn restore_trend(&mut self, device: &str, vital: Vital, points: &[(i64, f64)]) {
        for &(unix_ms, value) in points {
            self.trends.push(device, vital, unix_ms, value);
        }
        self.trends_changed = true;
    }

    /// Devices and their links.
    pub fn devices(&self) -> Vec<DeviceInfo> {
        self.devices.iter().map(|d| d.info.clone()).collect()
    }

    /// Latest value of every vital with its age at `now`, as the display shows it.
    pub fn latest(&self, clock: &Clock, now: Instant) -> Vec<LatestVital> {
        self.latest
            .iter()
            .map(|((device, _), (reading, at))| LatestVital {
                reading: crate::core::reading_info(clock, device, reading, *at),
                age_s: now.saturating_duration_since(*at).as_secs_f64(),
            })
            .collect()
    }

    /// The last `minutes` of every trend at `resolution_s` (the last value in each interval).
    pub fn trend(&self, clock: &Clock, now: Instant, minutes: u32, resolution_s: u32) -> Trend {
        self.trends
            .window(clock.unix_ms(now), minutes, resolution_s)
    }

    /// A copy of the trends for answering requests off the core, when they changed since the
    /// last one (cheap: the series share their full chunks with it).
    pub fn publish_trends(&mut self) -> Option<Arc<Trends>> {
        std::mem::take(&mut self.trends_changed).then(|| Arc::new(self.trends.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use vigil_protocol::Unit;

    #[test]
    fn trend_keeps_two_hours_at_one_hertz_and_downsamples() {
        let clock = Clock::start();
        let t0 = clock.now();
        let mut room = RoomState::new(&[("ox".into(), Format::Masimo)]);
        // Three hours at 2 Hz.
        for i in 0..(3 * 3600 * 2) {
            let at = t0 + Duration::from_millis(500 * i);
            let r = Reading::number(Vital::Spo2, 90.0 + (i % 10) as f64, Unit::Percent);
            room.record(&clock, "ox", &r, at);
        }
        let series = room.trends.series("ox", Vital::Spo2).unwrap();
        assert_eq!(series.len(), TREND_POINTS, "bounded");
        let now = t0 + Duration::from_secs(3 * 3600);
        let trend = room.trend(&clock, now, 60, 10);
        let points = &trend.series[0].points;
        assert!((359..=361).contains(&points.len()), "{}", points.len());
        let latest = room.latest(&clock, now + Duration::from_secs(5));
        assert_eq!(latest.len(), 1);
        assert!(latest[0].age_s >= 5.0);
    }

    #[test]
    fn invalid_readings_are_latest_but_not_trended() {
        let clock = Clock::start();
        let mut room = RoomState::new(&[]);
        let r = Reading::unavailable(Vital::Spo2, vigil_protocol::Unavailable::Missing);
        room.record(&clock, "ox", &r, clock.now());
        let info = &room.latest(&clock, clock.now())[0].reading;
        assert_eq!(info.value, None);
        assert!(room.trend(&clock, clock.now(), 60, 10).series.is_empty());
        assert_eq!(room.latest(&clock, clock.now()).len(), 1);
        assert_eq!(
            room.devices().len(),
            1,
            "an unknown device is listed once it speaks"
        );
    }
}
