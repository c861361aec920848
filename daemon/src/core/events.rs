//! What comes in from the devices and out of the engine, turned into what the room publishes.

use super::*;

impl Core {
    pub(super) fn on_driver(&mut self, event: DriverEvent) {
        let device = event.device.to_string();
        match event.kind {
            DriverEventKind::Readings(readings) => {
                self.metrics.readings(&device, readings.len() as u64);
                let implausible = readings
                    .iter()
                    .filter(|r| r.value == Value::Unavailable(Unavailable::Implausible))
                    .count();
                self.metrics.implausible(&device, implausible as u64);
                let mut sensor_back = false;
                let at_ms = self.clock.unix_ms(event.at);
                for r in &readings {
                    let info = self.room_state.record(&self.clock, &device, r, event.at);
                    self.storage.record(crate::storage::Record::Reading(
                        Box::new(info.clone()),
                        at_ms,
                        r.device_time,
                    ));
                    sensor_back |= r.clinical_value().is_some();
                    self.send(
                        |seq| ServerMessage::Reading { seq, reading: info },
                        Some(event.at),
                    );
                }
                if sensor_back && self.room_state.link(&device) == Some(LinkState::SensorOff) {
                    self.set_link(&device, LinkState::Connected, None);
                }
                let started = std::time::Instant::now();
                self.engine
                    .handle_readings(event.at.into_std(), &device, &readings);
                self.metrics.record_engine(started.elapsed());
            }
            DriverEventKind::Device(e) => {
                match &e {
                    DeviceEvent::SensorOff
                    | DeviceEvent::SensorDefective
                    | DeviceEvent::SensorDisconnected => {
                        if matches!(
                            self.room_state.link(&device),
                            Some(LinkState::Connected | LinkState::Stale)
                        ) {
                            self.set_link(&device, LinkState::SensorOff, None);
                        }
                    }
                    DeviceEvent::BatteryLevel { percent } => {
                        self.room_state.set_battery(&device, *percent)
                    }
                    DeviceEvent::UnknownParameter { code } => {
                        self.metrics.unknown_parameter(&device);
                        tracing::warn!(%device, %code, "unknown parameter from device");
                    }
                    _ => {}
                }
                self.engine
                    .handle_device_event(event.at.into_std(), &device, &e);
            }
            DriverEventKind::Link(link) => {
                let (state, reason, up) = match link {
                    Link::Connecting => (LinkState::Connecting, None, None),
                    Link::Connected => (LinkState::Connected, None, Some(true)),
                    Link::Disconnected { reason } => {
                        (LinkState::Disconnected, Some(reason), Some(false))
                    }
                    Link::NoData { .. } => (LinkState::Stale, None, None),
                };
                // A reconnect attempt after a loss keeps showing the loss until it succeeds.
                let keep_loss = state == LinkState::Connecting
                    && self.room_state.link(&device) == Some(LinkState::Disconnected);
                if !keep_loss {
                    self.set_link(&device, state, reason);
                }
                if let Some(up) = up {
                    self.engine.handle_link(event.at.into_std(), &device, up);
                }
            }
            DriverEventKind::DecodeErrors { count, .. } => {
                self.metrics.decode_errors(&device, count)
            }
        }
        self.publish_engine_events();
    }

    pub(super) fn set_link(&mut self, device: &str, link: LinkState, reason: Option<String>) {
        if self.room_state.set_link(device, link, reason.clone()) {
            self.storage.record(crate::storage::Record::Link {
                device: device.to_string(),
                state: link,
                reason: reason.clone(),
                at: self.clock.unix_ms(self.clock.now()),
            });
            let device = device.to_string();
            self.send(
                |seq| ServerMessage::Device {
                    seq,
                    device,
                    link,
                    reason,
                },
                None,
            );
        }
    }
    /// handled caused, so that its changes reach the displays before any answer to a person.
    pub(super) fn publish_engine_events(&mut self) {
        let mut alarms_changed = false;
        while let Some(event) = self.engine.poll_event() {
            match event {
                EngineEvent::Alarm {
                    change, alarm, by, ..
                } => {
                    alarms_changed = true;
                    match &by {
                        Some(person) => {
                            tracing::info!(alarm = %alarm.id, change = %wire_name(&change), %person, "alarm action")
                        }
                        None => {
                            tracing::info!(alarm = %alarm.id, change = %wire_name(&change), priority = %wire_name(&alarm.priority), "alarm")
                        }
                    }
                    let info = self.alarm_info(&alarm);
                    let event = wire_name(&change);
                    self.storage.record(crate::storage::Record::Alarm {
                        change,
                        state: alarm.state,
                        alarm: Box::new(crate::storage::StoredAlarm::of(&alarm, &self.clock)),
                        display: Box::new(info.clone()),
                        at: self.clock.unix_ms(self.clock.now()),
                    });
                    self.send(
                        |seq| ServerMessage::Alarm {
                            seq,
                            event,
                            alarm: info,
                        },
                        None,
                    );
                }
                EngineEvent::AudioPaused { by, at, until } => {
                    tracing::info!(%by, "audio paused");
                    let remaining = until.saturating_duration_since(at).as_secs_f64();
                    self.send(
                        |seq| ServerMessage::AudioPause {
                            seq,
                            paused: true,
                            remaining_s: Some(remaining),
                            by: Some(by),
                            reason: None,
                        },
                        None,
                    );
                }
                EngineEvent::AudioPauseEnded { reason, .. } => {
                    let reason = wire_name(&reason);
                    self.send(
                        |seq| ServerMessage::AudioPause {
                            seq,
                            paused: false,
                            remaining_s: None,
                            by: None,
                            reason: Some(reason),
                        },
                        None,
                    );
                }
                EngineEvent::DoseMarked {
                    by,
                    at,
                    baseline,
                    baseline_taken,
                } => {
                    tracing::info!(%by, "dose marked");
                    self.storage.record(crate::storage::Record::Dose {
                        at: self.clock.unix_ms(tokio::time::Instant::from_std(at)),
                        by: by.clone(),
                        baseline: baseline.map(|b| (b.systolic, b.diastolic)),
                        baseline_taken: baseline_taken
                            .map(|t| self.clock.unix_ms(tokio::time::Instant::from_std(t))),
                    });
                    let session = self.session_info();
                    self.send(
                        |seq| ServerMessage::Session {
                            seq,
                            event: "dose_marked".into(),
                            session,
                            by: Some(by),
                            message: None,
                        },
                        None,
                    );
                }
                EngineEvent::BaselineSet {
                    by,
                    taken,
                    baseline,
                    ..
                } => {
                    tracing::info!(%by, "baseline set");
                    self.storage.record(crate::storage::Record::Baseline {
                        baseline: (baseline.systolic, baseline.diastolic),
                        taken: self.clock.unix_ms(tokio::time::Instant::from_std(taken)),
                        by: by.clone(),
                    });
                    let session = self.session_info();
                    self.send(
                        |seq| ServerMessage::Session {
                            seq,
                            event: "baseline_set".into(),
                            session,
                            by: Some(by),
                            message: None,
                        },
                        None,
                    );
                }
                EngineEvent::NibpRequested { rule, .. } => {
                    let session = self.session_info();
                    self.send(
                        |seq| ServerMessage::Session {
                            seq,
                            event: "nibp_requested".into(),
                            session,
                            by: None,
                            message: Some(format!("Repeat the NIBP now to confirm ({rule})")),
                        },
                        None,
                    );
                    // Cuffs the daemon can start are started; others rely on the nurse.
                    for (id, (handle, format)) in &self.devices {
                        if *format == Format::Suntech {
                            let handle = handle.clone();
                            let id = id.clone();
                            tokio::spawn(async move {
                                if let Err(e) = handle.start_nibp().await {
                                    tracing::warn!(device = %id, error = %e, "could not start the repeat NIBP");
                                }
                            });
                        }
                    }
                }
            }
        }
        if alarms_changed {
            let mut counts: BTreeMap<(String, String), u64> = BTreeMap::new();
            for a in self.engine.snapshot(self.clock.now().into_std()).alarms {
                *counts
                    .entry((wire_name(&a.priority), wire_name(&a.state)))
                    .or_default() += 1;
            }
            self.metrics.set_alarms(counts);
        }
        self.publish();
    }
}
