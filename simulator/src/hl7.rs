//! The HL7 monitor: a multiparameter monitor that dials Vigil over MLLP and sends an ORU^R01
//! every scenario second in the IHE PCD-01 style (MDC codes and units, one OBX per value, each
//! with its observation time): SpO2, pulse, respiratory rate and EtCO2 every second, NIBP when a
//! cuff cycle completes.
//! It reads each ACK and reconnects when the connection drops.

use crate::patient::{measured, measured_breathing, Noise};
use crate::run::SimClock;
use crate::scenario::Scenario;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{sleep_until, timeout};
use tokio_util::sync::CancellationToken;
use vigil_protocol::hl7::mllp::frame;
use vigil_protocol::hl7::time::{format_ts, from_unix};

/// The `--device` name.
pub const NAME: &str = "hl7-monitor";

/// How the monitor writes its messages (`--hl7-style`). Only the IHE PCD-01 style ships:
/// no vendor code table could be sourced from a published interface guide yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Hl7Style {
    /// IHE PCD-01: IEEE 11073 MDC codes and units.
    Pcd01,
}

/// Offset of the breathing's noise stream from the monitor's own.
const BREATHING_STREAM: u64 = 0x4252_4541_5448;

/// The simulated monitor's state.
#[derive(Debug)]
pub struct Hl7Monitor {
    scenario: Arc<Scenario>,
    noise: Noise,
    /// The breathing's own noise, so adding it left the other values' seeded course unchanged.
    breathing_noise: Noise,
    nibp_times: Vec<f64>,
    /// Scenario second 0 as Unix seconds (the monitor's clock).
    epoch: i64,
    sent: u64,
    /// The equipment id in OBX-18 (what a gateway `match` picks).
    pub equipment: String,
}

impl Hl7Monitor {
    /// A monitor for one patient; `epoch` is scenario second 0 in Unix seconds.
    pub fn new(scenario: Arc<Scenario>, seed: u64, stream: u64, epoch: i64) -> Hl7Monitor {
        Hl7Monitor {
            nibp_times: scenario.nibp_times(),
            scenario,
            noise: Noise::new(seed, stream),
            breathing_noise: Noise::new(seed, stream + BREATHING_STREAM),
            epoch,
            sent: 0,
            equipment: format!("SIM-MON-{stream}"),
        }
    }

    /// The ORU^R01 for scenario second `t` (unframed; segments end in CR).
    pub fn message(&mut self, t: f64, style: Hl7Style) -> Vec<u8> {
        let Hl7Style::Pcd01 = style;
        self.sent += 1;
        let v = measured(&self.scenario, t, &mut self.noise, false);
        let now = format_ts(&from_unix(self.epoch + t as i64));
        let eq = &self.equipment;
        let mut text = format!(
            "MSH|^~\\&|VIGIL-SIM^{eq}^EUI-64|SIM-WARD|||{now}||ORU^R01^ORU_R01|SIM{n}|P|2.6|||NE|AL||||||IHE_PCD_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.1.1^ISO\r\
             PID|||SIM-0001^^^Simulated^PI||Simulated^Patient^^^^^L\r\
             OBR|1|||182777000^monitoring of patient^SNOMED-CT|||{now}\r\
             OBX|1||69965^MDC_DEV_MON_PHYSIO_MULTI_PARAM_MDS^MDC|1.0.0.0|||||||X|||||||{eq}^EUI-64\r",
            n = self.sent
        );
        let mut obx = |code: &str, sub: &str, value: f64, unit: &str, at: &str| {
            let n = text.matches("\rOBX|").count() + 1;
            text.push_str(&format!(
                "OBX|{n}|NM|{code}^MDC|{sub}|{value}|{unit}^MDC|||||R|||{at}||||{eq}^EUI-64\r"
            ));
        };
        obx(
            "150456^MDC_PULS_OXIM_SAT_O2",
            "1.1.1.1",
            v.spo2,
            "262688^MDC_DIM_PERCENT",
            &now,
        );
        obx(
            "149530^MDC_PULS_OXIM_PULS_RATE",
            "1.1.1.2",
            v.heart_rate,
            "264864^MDC_DIM_BEAT_PER_MIN",
            &now,
        );
        let b = measured_breathing(&self.scenario, t, &mut self.breathing_noise);
        obx(
            "151562^MDC_RESP_RATE",
            "1.2.1.1",
            b.respiratory_rate,
            "264928^MDC_DIM_RESP_PER_MIN",
            &now,
        );
        obx(
            "151708^MDC_AWAY_CO2_ET",
            "1.2.1.2",
            b.etco2,
            "266016^MDC_DIM_MMHG",
            &now,
        );
        // A cuff cycle that completed in the last second: its values, with its own time.
        if let Some(&done) = self.nibp_times.iter().find(|n| **n <= t && t - **n < 1.0) {
            let at = format_ts(&from_unix(self.epoch + done as i64));
            let c = measured(&self.scenario, done, &mut self.noise, false);
            let mean = ((c.systolic + 2.0 * c.diastolic) / 3.0).round();
            obx(
                "150021^MDC_PRESS_BLD_NONINV_SYS",
                "1.3.1.1",
                c.systolic,
                "266016^MDC_DIM_MMHG",
                &at,
            );
            obx(
                "150022^MDC_PRESS_BLD_NONINV_DIA",
                "1.3.1.2",
                c.diastolic,
                "266016^MDC_DIM_MMHG",
                &at,
            );
            obx(
                "150023^MDC_PRESS_BLD_NONINV_MEAN",
                "1.3.1.3",
                mean,
                "266016^MDC_DIM_MMHG",
                &at,
            );
        }
        text.into_bytes()
    }
}

/// Dials `peer` and sends a message every scenario second until `end` or `cancel`, reading
/// each ACK; a refused or dropped connection is retried every second.
pub async fn serve_hl7(
    mut monitor: Hl7Monitor,
    style: Hl7Style,
    peer: String,
    clock: SimClock,
    end: f64,
    cancel: CancellationToken,
) {
    let mut next = 0.0;
    let mut conn: Option<TcpStream> = None;
    let mut ack = vec![0u8; 4096];
    while next <= end {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = sleep_until(clock.instant(next)) => {}
        }
        if conn.is_none() {
            conn = match timeout(Duration::from_secs(2), TcpStream::connect(&peer)).await {
                Ok(Ok(s)) => Some(s),
                // Vigil is not listening (yet): try again at the next second.
                _ => None,
            };
        }
        if let Some(stream) = conn.as_mut() {
            let message = frame(&monitor.message(next, style));
            let answered = async {
                stream.write_all(&message).await?;
                // The ACK (a few hundred bytes) ends the exchange.
                let mut got = 0;
                while !ack[..got].ends_with(&[0x1C, 0x0D]) && got < ack.len() {
                    match stream.read(&mut ack[got..]).await? {
                        0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                        n => got += n,
                    }
                }
                std::io::Result::Ok(())
            };
            if !matches!(timeout(Duration::from_secs(5), answered).await, Ok(Ok(()))) {
                conn = None;
            }
        }
        next += 1.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_protocol::{Format, Observation, Vital};

    #[test]
    fn the_monitor_speaks_pcd01_that_vigil_reads() {
        let scenario = Arc::new(Scenario::load("kap-typical").unwrap());
        let first_cuff = scenario.nibp_times()[0];
        let mut m = Hl7Monitor::new(scenario, 1, 0, 1_700_000_000);
        let mut out = Vec::new();
        let mut decoder = Format::Hl7.decoder();
        decoder.feed(
            &frame(&m.message(first_cuff.floor(), Hl7Style::Pcd01)),
            &mut out,
        );
        let vitals: Vec<Vital> = out
            .iter()
            .filter_map(|o| match o {
                Ok(Observation::Reading(r)) => Some(r.vital),
                _ => None,
            })
            .collect();
        assert_eq!(
            vitals,
            [
                Vital::Spo2,
                Vital::PulseRate,
                Vital::RespiratoryRate,
                Vital::Etco2,
                Vital::NibpSystolic,
                Vital::NibpDiastolic,
                Vital::NibpMean
            ]
        );
    }

    /// The respiratory-depression scenario reaches Vigil over HL7: the rate it reads falls from
    /// normal to none during the apnea, and EtCO2 rises past the 50 mmHg limit.
    #[test]
    fn the_monitors_breathing_follows_the_scenario() {
        let scenario = Arc::new(Scenario::load("respiratory-depression").unwrap());
        let mut m = Hl7Monitor::new(scenario, 1, 0, 1_700_000_000);
        let mut read = |t: f64| {
            let mut out = Vec::new();
            let mut decoder = Format::Hl7.decoder();
            decoder.feed(&frame(&m.message(t, Hl7Style::Pcd01)), &mut out);
            let value = |vital| {
                out.iter().find_map(|o| match o {
                    Ok(Observation::Reading(r)) if r.vital == vital => r.value.number(),
                    _ => None,
                })
            };
            (
                value(Vital::RespiratoryRate).unwrap(),
                value(Vital::Etco2).unwrap(),
            )
        };
        let (rate, etco2) = read(60.0);
        assert!(
            (12.0..=16.0).contains(&rate) && etco2 < 45.0,
            "{rate} {etco2}"
        );
        let (rate, etco2) = read(860.0);
        assert_eq!(rate, 0.0);
        assert!(etco2 > 50.0, "{etco2}");
    }
}
