//! The wire formats by name, and one [`Decoder`] that turns any of them into observations.
//!
//! Format names are a promise to users: `vigil decode --format`, `vigil probe --format` and the
//! `format` key of a device in the config all use them.

use crate::ble::blood_pressure::BloodPressureMeasurement;
use crate::ble::heart_rate::HeartRateMeasurement;
use crate::ble::plx::{PlxContinuous, PlxFeatures, PlxSpotCheck};
use crate::device::{self, BlePlan, DeviceCommand, DeviceSession, DeviceTransport, FormatFacts};
use crate::error::DecodeError;
use crate::hl7::{CodeTable, Hl7Session, Match, PlainSplitter};
use crate::intellivue;
use crate::model::Observation;
use crate::serial::{contec, masimo, nonin, suntech, LineSettings};
use crate::stream::{Deframer, FrameDecoder};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// The one list of formats: each variant and the static facts its module keeps (`device/`).
/// Adding a format is a line here plus its module; the enum, [`Format::ALL`] and
/// [`Format::facts`] all come from this list.
macro_rules! formats {
    ($($(#[doc = $doc:literal])* $variant:ident => $facts:path,)*) => {
        /// A device wire format.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Format {
            $($(#[doc = $doc])* $variant,)*
        }

        impl Format {
            /// Every format, in the order the documentation lists them.
            pub const ALL: [Format; [$(Format::$variant),*].len()] = [$(Format::$variant),*];

            /// What is fixed about the format: name, transport, continuous vitals, silence
            /// limit, the commands it accepts, and its session.
            pub fn facts(self) -> &'static FormatFacts {
                match self {
                    $(Format::$variant => &$facts,)*
                }
            }
        }
    };
}

formats! {
    /// BLE Heart Rate Measurement 0x2A37.
    BleHeartRate => device::HEART_RATE,
    /// BLE Blood Pressure Measurement 0x2A35.
    BleBloodPressure => device::BLOOD_PRESSURE,
    /// BLE Intermediate Cuff Pressure 0x2A36.
    BleCuffPressure => device::CUFF_PRESSURE,
    /// BLE PLX Spot-check Measurement 0x2A5E.
    BlePlxSpot => device::PLX_SPOT,
    /// BLE PLX Continuous Measurement 0x2A5F.
    BlePlxContinuous => device::PLX_CONTINUOUS,
    /// BLE PLX Features 0x2A60.
    BlePlxFeatures => device::PLX_FEATURES,
    /// Masimo ASCII 1 / trend lines.
    Masimo => device::MASIMO,
    /// Nonin format #2.
    Nonin2 => device::NONIN_2,
    /// Nonin format #7.
    Nonin7 => device::NONIN_7,
    /// Nonin format #8.
    Nonin8 => device::NONIN_8,
    /// Contec V7.0.
    Contec => device::CONTEC,
    /// Contec legacy 5-byte protocol.
    ContecLegacy => device::CONTEC_LEGACY,
    /// SunTech Advantage NIBP module responses.
    Suntech => device::SUNTECH,
    /// HL7 v2 ORU^R01 from a multiparameter monitor or its gateway, over MLLP.
    Hl7 => device::HL7,
    /// Philips IntelliVue data export (MIB/RS232).
    Intellivue => device::INTELLIVUE,
}

impl Format {
    /// The format's name.
    pub fn name(self) -> &'static str {
        self.facts().name
    }

    /// BLE formats decode one characteristic value at a time; the others are byte streams.
    pub fn is_ble(self) -> bool {
        self.characteristic().is_some()
    }

    /// The BLE plan of a BLE format: what it decodes, subscribes to and reads.
    pub fn ble_plan(self) -> Option<BlePlan> {
        match self.facts().transport {
            DeviceTransport::Ble(plan) => Some(plan),
            DeviceTransport::Serial(_) | DeviceTransport::Tcp => None,
        }
    }

    /// The GATT characteristic a BLE format decodes.
    pub fn characteristic(self) -> Option<u16> {
        self.ble_plan().map(|p| p.characteristic)
    }

    /// The BLE format that decodes a characteristic.
    pub fn for_characteristic(uuid: u16) -> Option<Format> {
        Format::ALL
            .into_iter()
            .find(|f| f.characteristic() == Some(uuid))
    }

    /// The documented line settings of a serial format.
    pub fn line_settings(self) -> Option<LineSettings> {
        match self.facts().transport {
            DeviceTransport::Serial(line) => Some(line),
            DeviceTransport::Ble(_) | DeviceTransport::Tcp => None,
        }
    }

    /// The vitals a device of this format sends continuously, so that the alarm engine can tell
    /// when they stop being current. Cuffs and spot-check devices send none continuously.
    pub fn continuous_vitals(self) -> &'static [crate::model::Vital] {
        self.facts().continuous_vitals
    }

    /// How long a device of this format may stay silent before its driver reports "no data";
    /// event-driven formats (cuffs) have no cadence to miss.
    pub fn silence_limit(self) -> Option<Duration> {
        self.facts().silence_limit
    }

    /// Does the format accept a command from the room (start or cancel a cuff measurement)?
    pub fn accepts(self, command: DeviceCommand) -> bool {
        self.facts().accepts(command)
    }

    /// A fresh session for one connection to a device of this format.
    pub fn session(self) -> Box<dyn DeviceSession> {
        (self.facts().session)()
    }

    /// A fresh session over UDP, one message per datagram, for the formats that also run on
    /// the LAN (IntelliVue data export, port [`intellivue::session::UDP_DATA_EXPORT_PORT`]).
    pub fn udp_session(self) -> Option<fn() -> Box<dyn DeviceSession>> {
        match self {
            Format::Intellivue => {
                Some(|| Box::new(intellivue::IntelliVueSession::over(intellivue::Link::Udp)))
            }
            _ => None,
        }
    }

    /// A fresh decoder for this format.
    pub fn decoder(self) -> Decoder {
        let state = match self {
            Format::Masimo => State::Masimo(Deframer::new(masimo::MasimoDecoder)),
            Format::Nonin2 => State::Nonin27(
                Deframer::new(nonin::FrameDecoder27(nonin::NoninFormat::Two)),
                nonin::PacketAssembler::default(),
            ),
            Format::Nonin7 => State::Nonin27(
                Deframer::new(nonin::FrameDecoder27(nonin::NoninFormat::Seven)),
                nonin::PacketAssembler::default(),
            ),
            Format::Nonin8 => State::Nonin8(Deframer::new(nonin::FrameDecoder8)),
            Format::Contec => State::Contec(Deframer::new(contec::ContecDecoder)),
            Format::ContecLegacy => State::ContecLegacy(Deframer::new(contec::LegacyDecoder)),
            Format::Suntech => State::Suntech(Deframer::new(suntech::SuntechDecoder)),
            Format::Hl7 => State::Hl7(Box::default()),
            Format::Intellivue => State::Intellivue(intellivue::StreamDecoder::default()),
            ble => State::Ble(ble),
        };
        Decoder { state }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown format name; the message lists the known ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown format {name:?}; expected one of: {}", Format::ALL.map(Format::name).join(", "))]
pub struct UnknownFormat {
    /// The name given.
    pub name: String,
}

impl FromStr for Format {
    type Err = UnknownFormat;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Format::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| UnknownFormat { name: s.into() })
    }
}

impl serde::Serialize for Format {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for Format {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// One output of a [`Decoder`]: an observation, or an error after which decoding continues.
pub type Decoded = Result<Observation, DecodeError>;

/// Where a [`Decoder`] appends what it decodes: a `Vec` (the CLI, tests) or a `VecDeque` (a
/// device session's output queue), without copying through a scratch buffer.
pub(crate) trait DecodedSink: Extend<Decoded> {
    /// Appends one output.
    fn push_decoded(&mut self, decoded: Decoded);
}

impl DecodedSink for Vec<Decoded> {
    fn push_decoded(&mut self, decoded: Decoded) {
        self.push(decoded);
    }
}

impl DecodedSink for std::collections::VecDeque<Decoded> {
    fn push_decoded(&mut self, decoded: Decoded) {
        self.push_back(decoded);
    }
}

/// Decodes any format into observations, keeping whatever state the format needs.
#[derive(Debug)]
pub struct Decoder {
    state: State,
}

#[derive(Debug)]
enum State {
    Ble(Format),
    Masimo(Deframer<masimo::MasimoDecoder>),
    Nonin27(Deframer<nonin::FrameDecoder27>, nonin::PacketAssembler),
    Nonin8(Deframer<nonin::FrameDecoder8>),
    Contec(Deframer<contec::ContecDecoder>),
    ContecLegacy(Deframer<contec::LegacyDecoder>),
    Suntech(Deframer<suntech::SuntechDecoder>),
    Hl7(Box<Hl7Stream>),
    Intellivue(intellivue::StreamDecoder),
}

/// `vigil decode --format hl7`: MLLP-framed or plain messages, told apart by the first byte.
#[derive(Debug)]
struct Hl7Stream {
    session: Hl7Session,
    /// None until the first non-blank byte: MLLP (0x0B) or plain text.
    plain: Option<Option<PlainSplitter>>,
    /// Blank bytes seen before that decision.
    undecided: Vec<u8>,
}

impl Default for Hl7Stream {
    fn default() -> Self {
        Hl7Stream {
            session: Hl7Session::new(CodeTable::default(), Match::default()),
            plain: None,
            undecided: Vec::new(),
        }
    }
}

impl Hl7Stream {
    fn feed(&mut self, bytes: &[u8], out: &mut impl DecodedSink) {
        let held;
        let bytes = if self.plain.is_none() {
            // Blank bytes before the first message are kept until the first real byte decides.
            self.undecided.extend_from_slice(bytes);
            match self.undecided.iter().find(|b| !b.is_ascii_whitespace()) {
                None => return,
                Some(&b) => {
                    self.plain = Some((b != crate::hl7::mllp::START).then(PlainSplitter::default));
                    held = std::mem::take(&mut self.undecided);
                    &held[..]
                }
            }
        } else {
            bytes
        };
        match &mut self.plain {
            Some(Some(splitter)) => {
                for message in splitter.push(bytes) {
                    match message {
                        Ok(m) => self.session.handle_message(&m),
                        Err(e) => out.push_decoded(Err(e)),
                    }
                }
            }
            _ => self.session.feed(bytes),
        }
        self.drain(out);
    }

    fn finish(&mut self, out: &mut impl DecodedSink) {
        self.undecided.clear();
        if let Some(Some(splitter)) = &mut self.plain {
            if let Some(m) = splitter.finish() {
                self.session.handle_message(&m);
            }
        }
        self.session.finish();
        self.drain(out);
    }

    fn drain(&mut self, out: &mut impl DecodedSink) {
        while self.session.poll_transmit().is_some() {}
        out.extend(std::iter::from_fn(|| self.session.poll_output()));
    }
}

fn drain<D: FrameDecoder>(
    deframer: &mut Deframer<D>,
    bytes: &[u8],
    out: &mut impl DecodedSink,
    mut observe: impl FnMut(D::Frame) -> Vec<Observation>,
) {
    deframer.push(bytes);
    while let Some(frame) = deframer.next_frame() {
        match frame {
            Ok(f) => out.extend(observe(f).into_iter().map(Ok)),
            Err(e) => out.push_decoded(Err(e)),
        }
    }
}

impl Decoder {
    /// Feeds bytes: for a BLE format one complete characteristic value, for a serial format the
    /// next chunk of the stream (any split). Appends what they decode to, in order.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<Decoded>) {
        self.feed_into(bytes, out);
    }

    /// As [`Decoder::feed`], into any sink (a device session's output queue).
    pub(crate) fn feed_into(&mut self, bytes: &[u8], out: &mut impl DecodedSink) {
        match &mut self.state {
            State::Ble(format) => match decode_ble(*format, bytes) {
                Ok(obs) => out.extend(obs.into_iter().map(Ok)),
                Err(e) => out.push_decoded(Err(e)),
            },
            State::Masimo(d) => drain(d, bytes, out, |f| f.observations()),
            State::Nonin27(d, assembler) => {
                d.push(bytes);
                while let Some(frame) = d.next_frame() {
                    match frame {
                        Ok(f) => match assembler.push(f) {
                            Some(Ok(packet)) => {
                                out.extend(packet.observations().into_iter().map(Ok))
                            }
                            Some(Err(e)) => out.push_decoded(Err(e)),
                            None => {}
                        },
                        Err(e) => {
                            // A dropped frame shifts every later index: start over at the next
                            // SYNC rather than misread a float byte.
                            assembler.reset();
                            out.push_decoded(Err(e));
                        }
                    }
                }
            }
            State::Nonin8(d) => drain(d, bytes, out, |f| f.observations()),
            State::Contec(d) => drain(d, bytes, out, |f| f.observations()),
            State::ContecLegacy(d) => drain(d, bytes, out, |f| f.observations()),
            State::Suntech(d) => drain(d, bytes, out, |f| f.observations()),
            State::Hl7(s) => s.feed(bytes, out),
            State::Intellivue(d) => d.feed_into(bytes, out),
        }
    }

    /// Ends the input: reports a frame left unfinished at the end of a stream.
    pub fn finish(&mut self, out: &mut Vec<Decoded>) {
        let left = match &mut self.state {
            State::Ble(_) => None,
            State::Masimo(d) => d.finish(),
            State::Nonin27(d, assembler) => d.finish().or_else(|| {
                let n = assembler.pending_frames().filter(|n| *n > 0)?;
                assembler.reset();
                Some(DecodeError::Malformed(format!(
                    "input ended inside a packet ({n} of {} frames)",
                    nonin::FRAMES_PER_PACKET
                )))
            }),
            State::Nonin8(d) => d.finish(),
            State::Contec(d) => d.finish(),
            State::ContecLegacy(d) => d.finish(),
            State::Suntech(d) => d.finish(),
            State::Hl7(s) => {
                s.finish(out);
                None
            }
            State::Intellivue(d) => d.finish_error(),
        };
        out.extend(left.map(Err));
    }
}

fn decode_ble(format: Format, value: &[u8]) -> Result<Vec<Observation>, DecodeError> {
    Ok(match format {
        Format::BleHeartRate => HeartRateMeasurement::decode(value)?.observations(),
        Format::BleBloodPressure => {
            BloodPressureMeasurement::decode(value)?.measurement_observations()
        }
        Format::BleCuffPressure => BloodPressureMeasurement::decode(value)?.cuff_observations(),
        Format::BlePlxSpot => PlxSpotCheck::decode(value)?.observations(),
        Format::BlePlxContinuous => PlxContinuous::decode(value)?.observations(),
        Format::BlePlxFeatures => PlxFeatures::decode(value)?.observations(),
        serial => {
            return Err(DecodeError::Malformed(format!(
                "{serial} is a serial format, not a BLE characteristic"
            )))
        }
    })
}
