//! Requests from the display sessions: snapshots and a person's actions.

use super::*;

impl Core {
    /// Records a person's action and answers only once it is committed: a display never hears
    /// "done" for an action the record does not hold.
    pub(super) fn commit_then_reply(
        &self,
        person: &str,
        action: String,
        target: Option<String>,
        reply: oneshot::Sender<Result<(), Refusal>>,
    ) {
        let committed = record_action(&self.storage, &self.clock, person, action, target);
        tokio::spawn(async move {
            let _ = reply.send(committed.await);
        });
    }

    pub(super) fn on_request(&mut self, request: Request) {
        match request {
            #[cfg(feature = "fault-injection")]
            Request::Fault(fault) => match fault {
                Fault::PanicCore => panic!("injected fault: the core panics"),
                Fault::StallCore(d) => std::thread::sleep(d),
                Fault::PanicWriter => self.storage.record(crate::storage::Record::Panic),
                Fault::PanicDriver(device) => {
                    if let Some((handle, _)) = self.devices.get(device) {
                        handle.inject_panic();
                    }
                }
            },
            Request::CentralLink(connected) => {
                if self.central_link != Some(connected) {
                    self.central_link = Some(connected);
                    self.emit(RoomEvent::CentralLink { connected }, None);
                }
            }
            Request::Reconfigure { change, applied } => {
                self.reconfigure(change);
                let _ = applied.send(());
            }
            Request::Snapshot { user, reply } => {
                // The chart the handle draws then holds everything up to this snapshot.
                if let Some(trends) = self.room_state.publish_trends() {
                    self.trends.send_replace(trends);
                }
                let _ = reply.send(self.snapshot(user));
            }
            Request::Act {
                person,
                message,
                reply,
            } => {
                let now = self.clock.now().into_std();
                let action = message.action().to_string();
                let target = match &message {
                    ClientMessage::Ack { alarm_id, .. } | ClientMessage::Reset { alarm_id, .. } => {
                        Some(alarm_id.clone())
                    }
                    ClientMessage::StartNibp { device, .. } => Some(device.clone()),
                    ClientMessage::SetBaseline { reading_time, .. } => Some(reading_time.clone()),
                    _ => None,
                };
                let refused = |e: vigil_alarm::ActionError| Refusal {
                    code: "refused",
                    reason: e.to_string(),
                };
                let result = match message {
                    ClientMessage::Ack { alarm_id, .. } => self
                        .engine
                        .acknowledge(now, &alarm_id, &person)
                        .map_err(refused),
                    ClientMessage::Reset { alarm_id, .. } => {
                        self.engine.reset(now, &alarm_id, &person).map_err(refused)
                    }
                    ClientMessage::MarkDose { .. } => self
                        .engine
                        .mark_dose(now, &person)
                        .map(|_| ())
                        .map_err(refused),
                    ClientMessage::SetBaseline { reading_time, .. } => {
                        match humantime::parse_rfc3339(&reading_time)
                            .ok()
                            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                        {
                            None => Err(Refusal {
                                code: "bad_message",
                                reason: format!(
                                    "reading_time must be a UTC RFC 3339 time, not {reading_time:?}"
                                ),
                            }),
                            Some(d) => {
                                let taken = self.clock.instant_of_unix_ms(d.as_millis() as i64);
                                self.engine
                                    .set_baseline(now, taken, &person)
                                    .map(|_| ())
                                    .map_err(refused)
                            }
                        }
                    }
                    ClientMessage::PauseAudio { seconds, .. } => {
                        // `check_numbers` passed it; `try_` keeps a bad caller from panicking us.
                        match seconds.map(Duration::try_from_secs_f64).transpose() {
                            Ok(s) => {
                                self.engine.pause_audio(now, &person, s);
                                Ok(())
                            }
                            Err(e) => Err(Refusal {
                                code: "bad_message",
                                reason: e.to_string(),
                            }),
                        }
                    }
                    ClientMessage::Trend { .. } => Ok(()),
                    ClientMessage::StartNibp { device, .. } => match self.devices.get(&device) {
                        None => Err(Refusal {
                            code: "refused",
                            reason: format!("no device {device:?} in this room"),
                        }),
                        Some((handle, _)) => {
                            tracing::info!(%person, %device, "NIBP start requested");
                            let handle = handle.clone();
                            let storage = self.storage.clone();
                            let (clock, person) = (self.clock, person.clone());
                            self.publish_engine_events();
                            // The cuff answers off the core; a started measurement is recorded
                            // like any other action before the display hears it worked.
                            tokio::spawn(async move {
                                let answer = match handle.start_nibp().await {
                                    Err(e) => Err(Refusal {
                                        code: "refused",
                                        reason: e.to_string(),
                                    }),
                                    Ok(()) => {
                                        record_action(&storage, &clock, &person, action, target)
                                            .await
                                    }
                                };
                                let _ = reply.send(answer);
                            });
                            return;
                        }
                    },
                };
                self.publish_engine_events();
                match result {
                    Err(refusal) => {
                        let _ = reply.send(Err(refusal));
                    }
                    Ok(()) => self.commit_then_reply(&person, action, target, reply),
                }
            }
        }
    }
}

/// Queues an action for the record; the future says whether it was committed, as the
/// display's answer.
fn record_action(
    storage: &crate::storage::Storage,
    clock: &Clock,
    person: &str,
    action: String,
    target: Option<String>,
) -> impl std::future::Future<Output = Result<(), Refusal>> + Send + 'static {
    let at = clock.unix_ms(clock.now());
    let committed = storage.commit_action(action, person.to_string(), target, at);
    async move {
        committed.await.map_err(|reason| Refusal {
            code: "not_recorded",
            reason,
        })
    }
}
