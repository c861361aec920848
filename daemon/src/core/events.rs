//! What comes in from the devices and out of the engine, turned into what the room publishes.

use super::*;

impl Core {
    pub(super) fn on_driver(&mut self, event: DriverEvent) {
        let device = event.device.to_string();
        if !self.devices.contains_key(&device) {
            // Late frames of a driver a reload stopped: that device has left the room.
            return;
        }
        match event.kind {
            DriverEventKind::Readings(readings) => {
                self.metrics.readings(&device, readings.len() as u64);
                let implausible = readings
                    .iter()
                    .filter(|r| r.value == Value::Unavailable(Unavailable::Implausible))
                    .count();
                self.metrics.implausible(&device, implausible as u64);
                let mut sensor_back = false;
                for r in &readings {
                    self.room_state.record(&self.clock, &device, r, event.at);
                    sensor_back |= r.clinical_value().is_some();
                    self.emit(
                        RoomEvent::Reading {
                            device: device.clone(),
                            reading: r.clone(),
                            at: event.at,
                        },
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
                        // Counted, and logged once a minute per device: a monitor sending dozens
                        // of unmapped parameters per message would write thousands of lines a
                        // second (W1). The metric has them all.
                        let now = self.clock.now();
                        let tally = self.unknown_log.entry(device.clone()).or_default();
                        if let Some(count) = tally.note(now) {
                            tracing::warn!(%device, last = %code, count, "unknown parameters from device");
                        }
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
            let device = device.to_string();
            let event = RoomEvent::Link {
                device,
                link,
                reason,
            };
            self.emit(event, None);
        }
    }

    /// Turns the engine's events into room events and publishes everything the event being
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
                    self.emit(RoomEvent::Alarm { change, alarm }, None);
                }
                EngineEvent::AudioPaused { by, at, until } => {
                    tracing::info!(%by, "audio paused");
                    let remaining = until.saturating_duration_since(at);
                    self.emit(RoomEvent::AudioPaused { by, remaining }, None);
                }
                EngineEvent::AudioPauseEnded { reason, .. } => {
                    self.emit(RoomEvent::AudioPauseEnded { reason }, None);
                }
                EngineEvent::DoseMarked {
                    by,
                    at,
                    baseline,
                    baseline_taken,
                } => {
                    tracing::info!(%by, "dose marked");
                    let event = RoomEvent::DoseMarked {
                        by,
                        at,
                        baseline,
                        baseline_taken,
                    };
                    self.emit(event, None);
                }
                EngineEvent::BaselineSet {
                    by,
                    taken,
                    baseline,
                    ..
                } => {
                    tracing::info!(%by, "baseline set");
                    let event = RoomEvent::BaselineSet {
                        by,
                        taken,
                        baseline,
                    };
                    self.emit(event, None);
                }
                EngineEvent::NibpRequested { rule, .. } => {
                    // Cuffs the daemon can start are started; otherwise the prompt asks the
                    // nurse to take it.
                    let mut started = Vec::new();
                    for (id, (handle, format)) in &self.devices {
                        if format.accepts(DeviceCommand::StartNibp) {
                            started.push(id.to_string());
                            let handle = handle.clone();
                            let id = id.clone();
                            tokio::spawn(async move {
                                if let Err(e) = handle.start_nibp().await {
                                    tracing::warn!(device = %id, error = %e, "could not start the repeat NIBP");
                                }
                            });
                        }
                    }
                    started.sort();
                    self.emit(RoomEvent::NibpRequested { rule, started }, None);
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
