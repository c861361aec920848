//! A simulated Philips IntelliVue on its MIB/RS232 port: it speaks only when spoken to, as the
//! real one does. It accepts (or, during an `association_refused` fault, refuses) the host's
//! association, announces its MDS with its clock, answers each extended numerics poll with the
//! patient's SpO2, pulse, EtCO2, respiratory rate and the last NIBP determination, answers a
//! release, and now and then sends a poll reply whose frame check sequence is wrong.
//! Sans-IO: host bytes and time in, wire bytes out.

use crate::patient::{Breathing, Vitals};
use vigil_protocol::intellivue::frame::{encode, FrameReader};
use vigil_protocol::intellivue::message::{mds_create_event, spdu, PollReply, RELEASE_RESULT};
use vigil_protocol::intellivue::numeric::{float_raw, physio, state, unit, NuObsValue, FLOAT_NAN};
use vigil_protocol::intellivue::Message;
use vigil_protocol::stream::Deframer;
use vigil_protocol::DeviceTime;

/// One poll reply in this many goes out with a corrupted frame check sequence.
pub const BAD_FCS_EVERY: u64 = 17;

/// What the monitor measures when a poll arrives.
#[derive(Debug, Clone, Copy)]
pub struct Measurement {
    /// SpO2, pulse and the cuff's values now.
    pub vitals: Vitals,
    /// EtCO2 and respiratory rate now.
    pub breathing: Breathing,
    /// The oximeter probe is off: SpO2 and pulse are not a number.
    pub probe_off: bool,
    /// The monitor's clock now.
    pub clock: DeviceTime,
    /// The newest NIBP determination, if any: its values and when it was taken. The monitor
    /// keeps reporting it, with that time stamp, until the next one.
    pub nibp: Option<(Vitals, DeviceTime)>,
}

/// The monitor's side of the conversation.
#[derive(Debug)]
pub struct SimIntelliVue {
    frames: Deframer<FrameReader>,
    associated: bool,
    replies: u64,
    mds_invoke_id: u16,
}

impl Default for SimIntelliVue {
    fn default() -> Self {
        SimIntelliVue {
            frames: Deframer::new(FrameReader),
            associated: false,
            replies: 0,
            mds_invoke_id: 0,
        }
    }
}

fn numeric(physio_id: u16, unit_code: u16, value: Option<f64>) -> NuObsValue {
    let (state, value) = match value {
        Some(v) => (0, float_raw(v.round() as i32, 0)),
        None => (state::INVALID, FLOAT_NAN),
    };
    NuObsValue {
        physio_id,
        state,
        unit_code,
        value,
    }
}

impl SimIntelliVue {
    /// Is a host associated?
    pub fn associated(&self) -> bool {
        self.associated
    }

    /// Bytes from the host; returns the monitor's frames. `refuse` answers an association
    /// request with a refusal; `measure` is asked only when a poll needs the values.
    pub fn host_bytes(
        &mut self,
        bytes: &[u8],
        refuse: bool,
        mut measure: impl FnMut() -> Measurement,
    ) -> Vec<u8> {
        self.frames.push(bytes);
        let mut out = Vec::new();
        while let Some(frame) = self.frames.next_frame() {
            // The real monitor drops a frame it cannot read; so does this one.
            let Ok(message) = frame.and_then(|data| Message::decode(&data)) else {
                continue;
            };
            match message {
                Message::AssociationRequest if refuse => {
                    self.associated = false;
                    out.extend(encode(&[spdu::RF, 0x00]));
                }
                Message::AssociationRequest => {
                    self.associated = true;
                    self.mds_invoke_id = self.mds_invoke_id.wrapping_add(1);
                    out.extend(encode(&[spdu::AC, 0x00]));
                    let clock = measure().clock;
                    out.extend(encode(&mds_create_event(self.mds_invoke_id, Some(clock))));
                }
                Message::PollRequest {
                    invoke_id,
                    extended: true,
                    ..
                } if self.associated => out.extend(self.poll_reply(invoke_id, measure())),
                Message::ReleaseRequest => {
                    self.associated = false;
                    out.extend(encode(&RELEASE_RESULT));
                }
                // The keep-alive (a single poll of the MDS) and the MDS create result need no
                // answer Vigil reads.
                _ => {}
            }
        }
        out
    }

    fn poll_reply(&mut self, invoke_id: u16, m: Measurement) -> Vec<u8> {
        let oximeter = |v: f64| (!m.probe_off).then_some(v);
        let mut numerics = vec![
            (
                numeric(
                    physio::PULS_OXIM_SAT_O2,
                    unit::PERCENT,
                    oximeter(m.vitals.spo2),
                ),
                None,
            ),
            (
                numeric(
                    physio::PLETH_PULS_RATE,
                    unit::BEAT_PER_MIN,
                    oximeter(m.vitals.heart_rate),
                ),
                None,
            ),
            (
                numeric(physio::AWAY_CO2_ET, unit::MMHG, Some(m.breathing.etco2)),
                None,
            ),
            (
                numeric(
                    physio::AWAY_RESP_RATE,
                    unit::RESP_PER_MIN,
                    Some(m.breathing.respiratory_rate),
                ),
                None,
            ),
        ];
        if let Some((bp, taken)) = m.nibp {
            let mean = ((bp.systolic + 2.0 * bp.diastolic) / 3.0).round();
            for (id, v) in [
                (physio::PRESS_BLD_NONINV_SYS, bp.systolic),
                (physio::PRESS_BLD_NONINV_DIA, bp.diastolic),
                (physio::PRESS_BLD_NONINV_MEAN, mean),
            ] {
                numerics.push((numeric(id, unit::MMHG, Some(v)), Some(taken)));
            }
        }
        let reply = PollReply {
            invoke_id,
            time: Some(m.clock),
            numerics,
        };
        self.replies += 1;
        let mut wire = encode(&reply.encode());
        if self.replies % BAD_FCS_EVERY == 0 {
            // The last byte before EOF is (part of) the FCS; it is never BOF or EOF, and
            // flipping a bit keeps it so.
            let at = wire.len() - 2;
            wire[at] ^= 0x01;
        }
        wire
    }
}

#[cfg(test)]
mod tests {
    use crate::scenario::Scenario;
    use crate::{Device, Output};
    use std::sync::Arc;
    use std::time::{Duration, Instant};
    use vigil_protocol::intellivue::IntelliVueSession;
    use vigil_protocol::{DecodeError, DeviceEvent, DeviceSession, Format, Observation, Vital};

    /// Vigil's own IntelliVue session talking to the simulated monitor for `seconds` of
    /// scenario time; returns everything the session produced.
    fn converse(scenario: Scenario, seconds: u64) -> Vec<Result<Observation, DecodeError>> {
        let mut monitor = Device::new(Format::Intellivue, Arc::new(scenario), 7, 0);
        let mut session = IntelliVueSession::new();
        let t0 = Instant::now();
        let mut out = Vec::new();
        session.handle_connected(t0);
        let mut now = t0;
        let end = t0 + Duration::from_secs(seconds);
        while now <= end {
            // Everything the host sends is answered at once, as over a cable.
            while let Some(bytes) = session.poll_transmit() {
                let t = now.duration_since(t0).as_secs_f64();
                for o in monitor.host_bytes(t, &bytes) {
                    if let Output::Serial(answer) = o {
                        session.handle_input(&answer, now);
                    }
                }
            }
            out.extend(std::iter::from_fn(|| session.poll_output()));
            let Some(next) = session.poll_timeout() else {
                break;
            };
            now = next.max(now);
            session.handle_timeout(now);
        }
        out
    }

    fn values(out: &[Result<Observation, DecodeError>], vital: Vital) -> Vec<f64> {
        out.iter()
            .filter_map(|o| match o {
                Ok(Observation::Reading(r)) if r.vital == vital => r.value.number(),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn vigil_s_session_reads_the_scenario_s_vitals_and_a_bad_fcs_now_and_then() {
        let out = converse(Scenario::load("kap-typical").unwrap(), 70);
        let spo2 = values(&out, Vital::Spo2);
        // Polled each second from the association on.
        assert!(spo2.len() >= 55, "{}", spo2.len());
        assert!(spo2.iter().all(|v| (90.0..=100.0).contains(v)), "{spo2:?}");
        for vital in [Vital::PulseRate, Vital::Etco2, Vital::RespiratoryRate] {
            assert!(!values(&out, vital).is_empty(), "{vital:?}");
        }
        // kap-typical's first cuff reading is at 1 min: the monitor would repeat it in every
        // reply from then on, and Vigil takes it once.
        assert_eq!(values(&out, Vital::NibpSystolic).len(), 1);
        let errors = out.iter().filter(|o| o.is_err()).count();
        assert_eq!(
            errors as u64,
            spo2.len() as u64 / (super::BAD_FCS_EVERY - 1)
        );
        assert!(out
            .iter()
            .all(|o| !matches!(o, Ok(Observation::Event(DeviceEvent::NotResponding { .. })))));
    }

    #[test]
    fn during_an_association_refused_fault_vigil_reports_the_refusal_then_recovers() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scenarios/kap-typical.toml"
        ))
        .unwrap();
        let text = format!(
            "{text}\n[[fault]]\nkind = \"association_refused\"\nat = \"0s\"\nfor = \"2s\"\n"
        );
        let out = converse(Scenario::parse("refusing", &text).unwrap(), 10);
        let reasons: Vec<&str> = out
            .iter()
            .filter_map(|o| match o {
                Ok(Observation::Event(DeviceEvent::NotResponding { reason })) => {
                    Some(reason.as_str())
                }
                _ => None,
            })
            .collect();
        assert!(!reasons.is_empty());
        assert!(reasons.iter().all(|r| r.contains("refused")), "{reasons:?}");
        assert!(
            !values(&out, Vital::Spo2).is_empty(),
            "readings after the fault"
        );
    }
}
