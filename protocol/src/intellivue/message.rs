//! Data Export messages inside a frame: the session SPDUs (association, release, abort) and the
//! remote-operation messages behind the `E1 00` session header (MDS create event and its result,
//! polls and their replies). All integers are big-endian.

use super::numeric::{absolute_time, absolute_time_bytes, NuObsValue};
use crate::error::DecodeError;
use crate::model::{DeviceTime, Observation};

/// Session SPDU ids (first byte of a session message).
pub mod spdu {
    /// Connect: the host's association request.
    pub const CN: u8 = 0x0D;
    /// Accept: the monitor accepts the association.
    pub const AC: u8 = 0x0E;
    /// Refuse: the monitor refuses the association.
    pub const RF: u8 = 0x0C;
    /// Finish: a release request.
    pub const FN: u8 = 0x09;
    /// Disconnect: the release result.
    pub const DN: u8 = 0x0A;
    /// Abort.
    pub const AB: u8 = 0x19;
    /// Data export session header, first byte (`E1 00`).
    pub const DATA: u8 = 0xE1;
}

/// Remote operation APDU types.
mod ro {
    pub const ROIV: u16 = 1;
    pub const RORS: u16 = 2;
    pub const ROER: u16 = 3;
    pub const RORLS: u16 = 5;
}

/// Command types.
mod cmd {
    pub const CONFIRMED_EVENT_REPORT: u16 = 1;
    pub const CONFIRMED_ACTION: u16 = 7;
}

/// NOM_NOTI_MDS_CREAT: the MDS create event.
const NOTI_MDS_CREAT: u16 = 0x0D06;
/// NOM_ACT_POLL_MDIB_DATA: single poll.
const ACT_POLL: u16 = 0x0C16;
/// NOM_ACT_POLL_MDIB_DATA_EXT: extended poll.
const ACT_POLL_EXT: u16 = 0xF13B;
/// NOM_MOC_VMS_MDS object class.
const MOC_VMS_MDS: u16 = 0x0021;
/// NOM_MOC_VMO_METRIC_NU object class (numerics).
const MOC_VMO_METRIC_NU: u16 = 0x0006;
/// NOM_ATTR_TIME_ABS (MDS attribute).
const ATTR_TIME_ABS: u16 = 0x0987;
/// NOM_ATTR_NU_VAL_OBS.
const ATTR_NU_VAL_OBS: u16 = 0x0950;
/// NOM_ATTR_NU_CMPD_VAL_OBS.
const ATTR_NU_CMPD_VAL_OBS: u16 = 0x094B;
/// NOM_ATTR_TIME_STAMP_ABS (per-object time stamp).
const ATTR_TIME_STAMP_ABS: u16 = 0x0990;

/// The association request for data export over RS232, as the guide gives it (session header,
/// presentation header, the user data with protocol version, nomenclature version, functional
/// units, system type, startup mode, option list and the poll profile with its extended-poll
/// option). The same bytes are used by both open implementations (VSCaptureMP `aarq_msg`,
/// mdpnp); Vigil asks for no waveforms and no periodic data.
pub const ASSOCIATION_REQUEST: [u8; 238] = [
    0x0D, 0xEC, 0x05, 0x08, 0x13, 0x01, 0x00, 0x16, 0x01, 0x02, 0x80, 0x00, 0x14, 0x02, 0x00, 0x02,
    0xC1, 0xDC, 0x31, 0x80, 0xA0, 0x80, 0x80, 0x01, 0x01, 0x00, 0x00, 0xA2, 0x80, 0xA0, 0x03, 0x00,
    0x00, 0x01, 0xA4, 0x80, 0x30, 0x80, 0x02, 0x01, 0x01, 0x06, 0x04, 0x52, 0x01, 0x00, 0x01, 0x30,
    0x80, 0x06, 0x02, 0x51, 0x01, 0x00, 0x00, 0x00, 0x00, 0x30, 0x80, 0x02, 0x01, 0x02, 0x06, 0x0C,
    0x2A, 0x86, 0x48, 0xCE, 0x14, 0x02, 0x01, 0x00, 0x00, 0x00, 0x01, 0x01, 0x30, 0x80, 0x06, 0x0C,
    0x2A, 0x86, 0x48, 0xCE, 0x14, 0x02, 0x01, 0x00, 0x00, 0x00, 0x02, 0x01, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x61, 0x80, 0x30, 0x80, 0x02, 0x01, 0x01, 0xA0, 0x80, 0x60, 0x80, 0xA1, 0x80, 0x06,
    0x0C, 0x2A, 0x86, 0x48, 0xCE, 0x14, 0x02, 0x01, 0x00, 0x00, 0x00, 0x03, 0x01, 0x00, 0x00, 0xBE,
    0x80, 0x28, 0x80, 0x06, 0x0C, 0x2A, 0x86, 0x48, 0xCE, 0x14, 0x02, 0x01, 0x00, 0x00, 0x00, 0x01,
    0x01, 0x02, 0x01, 0x02, 0x81, 0x48, 0x80, 0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x80, 0x00, 0x00, 0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
    0x00, 0x2C, 0x00, 0x01, 0x00, 0x28, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x09, 0xC4, 0x00, 0x00,
    0x09, 0xC4, 0x00, 0x00, 0x03, 0xE8, 0xFF, 0xFF, 0xFF, 0xFF, 0x60, 0x00, 0x00, 0x00, 0x00, 0x01,
    0x00, 0x0C, 0xF0, 0x01, 0x00, 0x08, 0x8C, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
];

/// The association release request (a Finish SPDU), as the guide gives it.
pub const RELEASE_REQUEST: [u8; 26] = [
    0x09, 0x18, 0xC1, 0x16, 0x61, 0x80, 0x30, 0x80, 0x02, 0x01, 0x01, 0xA0, 0x80, 0x62, 0x80, 0x80,
    0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
];

/// The release result (a Disconnect SPDU) the monitor answers with.
pub const RELEASE_RESULT: [u8; 26] = [
    0x0A, 0x18, 0xC1, 0x16, 0x61, 0x80, 0x30, 0x80, 0x02, 0x01, 0x01, 0xA0, 0x80, 0x63, 0x80, 0x80,
    0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
];

/// Session header of every remote-operation message: `E1 00`, presentation context 2.
const DATA_HEADER: [u8; 4] = [0xE1, 0x00, 0x00, 0x02];

/// A remote operation: session header, ROapdus {type, length}, then `body`.
fn remote_operation(ro_type: u16, body: &[u8]) -> Vec<u8> {
    let mut out = DATA_HEADER.to_vec();
    out.extend_from_slice(&ro_type.to_be_bytes());
    out.extend_from_slice(&(body.len() as u16).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// {invoke_id, command_type, length} then `args`.
fn command(invoke_id: u16, command_type: u16, args: &[u8]) -> Vec<u8> {
    let mut out = invoke_id.to_be_bytes().to_vec();
    out.extend_from_slice(&command_type.to_be_bytes());
    out.extend_from_slice(&(args.len() as u16).to_be_bytes());
    out.extend_from_slice(args);
    out
}

/// The managed object {class, context 0, handle 0}.
fn managed_object(class: u16) -> [u8; 6] {
    let c = class.to_be_bytes();
    [c[0], c[1], 0, 0, 0, 0]
}

/// The MDS Create Event Result that confirms the monitor's MDS create event `invoke_id`.
pub fn mds_create_result(invoke_id: u16) -> Vec<u8> {
    let mut args = managed_object(MOC_VMS_MDS).to_vec();
    args.extend_from_slice(&[0, 0, 0, 0]); // current time (relative), unused
    args.extend_from_slice(&NOTI_MDS_CREAT.to_be_bytes());
    args.extend_from_slice(&[0, 0]); // no event reply info
    remote_operation(
        ro::RORS,
        &command(invoke_id, cmd::CONFIRMED_EVENT_REPORT, &args),
    )
}

/// A poll action on the MDS: `action` with {poll_number, polled object type, attribute group}
/// and (extended poll) an empty attribute list, so each request has exactly one reply.
fn poll(invoke_id: u16, action: u16, object_class: u16, attr_group: u16, ext: bool) -> Vec<u8> {
    let mut action_args = invoke_id.to_be_bytes().to_vec(); // poll number
    action_args.extend_from_slice(&[0x00, 0x01]); // partition NOM_PART_OBJ
    action_args.extend_from_slice(&object_class.to_be_bytes());
    action_args.extend_from_slice(&attr_group.to_be_bytes());
    if ext {
        action_args.extend_from_slice(&[0, 0, 0, 0]); // attribute list: count 0, length 0
    }
    let mut args = managed_object(MOC_VMS_MDS).to_vec();
    args.extend_from_slice(&[0, 0, 0, 0]); // scope
    args.extend_from_slice(&action.to_be_bytes());
    args.extend_from_slice(&(action_args.len() as u16).to_be_bytes());
    args.extend_from_slice(&action_args);
    remote_operation(ro::ROIV, &command(invoke_id, cmd::CONFIRMED_ACTION, &args))
}

/// The extended poll for all numerics (NOM_MOC_VMO_METRIC_NU, all attribute groups).
pub fn numerics_poll(invoke_id: u16) -> Vec<u8> {
    poll(invoke_id, ACT_POLL_EXT, MOC_VMO_METRIC_NU, 0, true)
}

/// The keep-alive: a single poll of the MDS object (its reply also carries the monitor's clock).
pub fn keep_alive_poll(invoke_id: u16) -> Vec<u8> {
    poll(invoke_id, ACT_POLL, MOC_VMS_MDS, 0x080C, false)
}

/// One message of the conversation, either direction.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// Host: association request.
    AssociationRequest,
    /// Monitor: association accepted.
    AssociationAccepted,
    /// Monitor: association refused.
    AssociationRefused,
    /// Release request (either side may send it).
    ReleaseRequest,
    /// Release result.
    ReleaseResult,
    /// Association abort.
    Abort,
    /// Monitor: the MDS create event report, with its invoke id and the monitor's clock.
    MdsCreate {
        /// The id the result must echo.
        invoke_id: u16,
        /// NOM_ATTR_TIME_ABS, when the monitor sets it.
        time: Option<DeviceTime>,
    },
    /// Host: the MDS create event result.
    MdsCreateResult {
        /// The id it confirms.
        invoke_id: u16,
    },
    /// Host: a poll request (single or extended).
    PollRequest {
        /// Invoke id (and poll number).
        invoke_id: u16,
        /// NOM_ACT_POLL_MDIB_DATA_EXT rather than the single poll.
        extended: bool,
        /// The polled object class (6 numerics, 0x21 the MDS).
        object_class: u16,
    },
    /// Monitor: a poll reply (one RORS, or one part of a linked RORLS reply).
    PollReply(PollReply),
    /// Monitor: a remote-operation error.
    RemoteError,
    /// A well-formed message Vigil has no use for (kept, described).
    Other(String),
}

/// A poll reply: its header's clock and the numerics found in it.
#[derive(Debug, Clone, PartialEq)]
pub struct PollReply {
    /// The invoke id of the request it answers.
    pub invoke_id: u16,
    /// The monitor's absolute time stamp of the reply, when it gives one.
    pub time: Option<DeviceTime>,
    /// Each numeric with the time stamp of its object, when the object carries one.
    pub numerics: Vec<(NuObsValue, Option<DeviceTime>)>,
}

impl PollReply {
    /// The observations of every numeric, each with its own time stamp or else the reply's.
    pub fn observations(&self) -> Vec<Observation> {
        self.numerics
            .iter()
            .map(|(nu, t)| nu.observation(t.or(self.time)))
            .collect()
    }

    /// Encodes the reply as an extended-poll RORS (the simulator and tests use it). Every
    /// numeric is its own object; a time stamp is sent per object.
    pub fn encode(&self) -> Vec<u8> {
        let objects: Vec<(u16, Vec<u8>)> = self
            .numerics
            .iter()
            .map(|(nu, t)| {
                let mut avas = ATTR_NU_VAL_OBS.to_be_bytes().to_vec();
                avas.extend_from_slice(&(NuObsValue::LEN as u16).to_be_bytes());
                nu.write(&mut avas);
                if t.is_some() {
                    avas.extend_from_slice(&ATTR_TIME_STAMP_ABS.to_be_bytes());
                    avas.extend_from_slice(&8u16.to_be_bytes());
                    avas.extend_from_slice(&absolute_time_bytes(*t));
                }
                (if t.is_some() { 2 } else { 1 }, avas)
            })
            .collect();
        poll_reply_bytes(self.invoke_id, self.time, &objects)
    }
}

/// An extended-poll reply (RORS) with one context of `objects`, each given as its attribute
/// count and its encoded attributes; the objects get handles 1, 2, ...
pub(crate) fn poll_reply_bytes(
    invoke_id: u16,
    time: Option<DeviceTime>,
    objects: &[(u16, Vec<u8>)],
) -> Vec<u8> {
    let mut polls = Vec::new();
    for (handle, (count, avas)) in objects.iter().enumerate() {
        polls.extend_from_slice(&(handle as u16 + 1).to_be_bytes());
        polls.extend_from_slice(&count.to_be_bytes());
        polls.extend_from_slice(&(avas.len() as u16).to_be_bytes());
        polls.extend_from_slice(avas);
    }
    let mut context = vec![0, 0]; // context id
    context.extend_from_slice(&(objects.len() as u16).to_be_bytes());
    context.extend_from_slice(&(polls.len() as u16).to_be_bytes());
    context.extend_from_slice(&polls);
    let mut reply = invoke_id.to_be_bytes().to_vec(); // poll number
    reply.extend_from_slice(&[0, 0]); // sequence number
    reply.extend_from_slice(&[0, 0, 0, 0]); // relative time
    reply.extend_from_slice(&absolute_time_bytes(time));
    reply.extend_from_slice(&[0x00, 0x01]);
    reply.extend_from_slice(&MOC_VMO_METRIC_NU.to_be_bytes());
    reply.extend_from_slice(&[0, 0]); // attribute group
    reply.extend_from_slice(&1u16.to_be_bytes()); // one context
    reply.extend_from_slice(&(context.len() as u16).to_be_bytes());
    reply.extend_from_slice(&context);
    let mut args = managed_object(MOC_VMS_MDS).to_vec();
    args.extend_from_slice(&ACT_POLL_EXT.to_be_bytes());
    args.extend_from_slice(&(reply.len() as u16).to_be_bytes());
    args.extend_from_slice(&reply);
    remote_operation(ro::RORS, &command(invoke_id, cmd::CONFIRMED_ACTION, &args))
}

/// Encodes an MDS create event report carrying the monitor's clock (the simulator uses it).
pub fn mds_create_event(invoke_id: u16, time: Option<DeviceTime>) -> Vec<u8> {
    let mut attrs = ATTR_TIME_ABS.to_be_bytes().to_vec();
    attrs.extend_from_slice(&8u16.to_be_bytes());
    attrs.extend_from_slice(&absolute_time_bytes(time));
    let mut info = managed_object(MOC_VMS_MDS).to_vec();
    info.extend_from_slice(&1u16.to_be_bytes());
    info.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    info.extend_from_slice(&attrs);
    let mut args = managed_object(MOC_VMS_MDS).to_vec();
    args.extend_from_slice(&[0, 0, 0, 0]); // event time
    args.extend_from_slice(&NOTI_MDS_CREAT.to_be_bytes());
    args.extend_from_slice(&(info.len() as u16).to_be_bytes());
    args.extend_from_slice(&info);
    remote_operation(
        ro::ROIV,
        &command(invoke_id, cmd::CONFIRMED_EVENT_REPORT, &args),
    )
}

/// A bounds-checked big-endian reader: running off the end is a typed error, never a panic.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, at: 0 }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.at.checked_add(n).filter(|e| *e <= self.bytes.len());
        let Some(end) = end else {
            return Err(DecodeError::Truncated {
                needed: self.at.saturating_add(n),
                got: self.bytes.len(),
            });
        };
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    /// A length-prefixed field {length u16, bytes}.
    fn counted(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.u16()? as usize;
        self.take(len)
    }

    /// A counted list {count u16, length u16, bytes}: the count and a reader over the bytes.
    fn list(&mut self) -> Result<(u16, Reader<'a>), DecodeError> {
        let count = self.u16()?;
        Ok((count, Reader::new(self.counted()?)))
    }
}

impl Message {
    /// Decodes the user data of one frame.
    pub fn decode(data: &[u8]) -> Result<Message, DecodeError> {
        let mut r = Reader::new(data);
        Ok(match r.u8()? {
            spdu::CN => Message::AssociationRequest,
            spdu::AC => Message::AssociationAccepted,
            spdu::RF => Message::AssociationRefused,
            spdu::FN => Message::ReleaseRequest,
            spdu::DN => Message::ReleaseResult,
            spdu::AB => Message::Abort,
            spdu::DATA => {
                r.take(3)?; // 00, presentation context id
                decode_remote_operation(&mut r)?
            }
            other => {
                return Err(DecodeError::Malformed(format!(
                    "unknown session message type 0x{other:02X}"
                )))
            }
        })
    }
}

fn decode_remote_operation(r: &mut Reader) -> Result<Message, DecodeError> {
    let ro_type = r.u16()?;
    let mut body = Reader::new(r.counted()?);
    if ro_type == ro::RORLS {
        body.take(2)?; // linked id: state, count
    }
    if ro_type == ro::ROER {
        return Ok(Message::RemoteError);
    }
    let invoke_id = body.u16()?;
    let command_type = body.u16()?;
    let mut args = Reader::new(body.counted()?);
    let object_class = args.u16()?;
    args.take(4)?; // context, handle
    match (ro_type, command_type) {
        (ro::ROIV, cmd::CONFIRMED_EVENT_REPORT) => {
            args.take(4)?; // event time
            let event_type = args.u16()?;
            let mut info = Reader::new(args.counted()?);
            if event_type != NOTI_MDS_CREAT {
                return Ok(Message::Other(format!("event report 0x{event_type:04X}")));
            }
            info.take(6)?; // the MDS's managed object
            let (count, mut attrs) = info.list()?;
            let mut time = None;
            for _ in 0..count {
                let id = attrs.u16()?;
                let value = attrs.counted()?;
                if id == ATTR_TIME_ABS {
                    time = absolute_time(value);
                }
            }
            Ok(Message::MdsCreate { invoke_id, time })
        }
        (ro::RORS, cmd::CONFIRMED_EVENT_REPORT) => Ok(Message::MdsCreateResult { invoke_id }),
        (ro::ROIV, cmd::CONFIRMED_ACTION) => {
            args.take(4)?; // scope
            let action = args.u16()?;
            let mut a = Reader::new(args.counted()?);
            a.take(4)?; // poll number, partition
            Ok(Message::PollRequest {
                invoke_id,
                extended: action == ACT_POLL_EXT,
                object_class: a.u16()?,
            })
        }
        (ro::RORS | ro::RORLS, cmd::CONFIRMED_ACTION) => {
            let action = args.u16()?;
            let mut reply = Reader::new(args.counted()?);
            match action {
                ACT_POLL_EXT => decode_poll_reply(invoke_id, &mut reply, true),
                ACT_POLL => decode_poll_reply(invoke_id, &mut reply, false),
                other => Ok(Message::Other(format!("action result 0x{other:04X}"))),
            }
        }
        _ => Ok(Message::Other(format!(
            "remote operation {ro_type} command {command_type} on class 0x{object_class:04X}"
        ))),
    }
}

fn decode_poll_reply(invoke_id: u16, r: &mut Reader, ext: bool) -> Result<Message, DecodeError> {
    r.take(if ext { 4 } else { 2 })?; // poll number (and sequence number)
    r.take(4)?; // relative time
    let time = absolute_time(r.take(8)?);
    r.take(6)?; // polled object type, attribute group
    let (contexts, mut list) = r.list()?;
    let mut numerics = Vec::new();
    for _ in 0..contexts {
        list.u16()?; // context id
        let (objects, mut polls) = list.list()?;
        for _ in 0..objects {
            polls.u16()?; // object handle
            let (count, mut attrs) = polls.list()?;
            let mut values = Vec::new();
            let mut stamp = None;
            for _ in 0..count {
                let id = attrs.u16()?;
                let value = attrs.counted()?;
                match id {
                    ATTR_NU_VAL_OBS => values.extend(NuObsValue::read(value)),
                    ATTR_NU_CMPD_VAL_OBS => {
                        let mut c = Reader::new(value);
                        let (n, mut items) = c.list()?;
                        for _ in 0..n {
                            values.extend(NuObsValue::read(items.take(NuObsValue::LEN)?));
                        }
                    }
                    ATTR_TIME_STAMP_ABS => stamp = absolute_time(value),
                    _ => {}
                }
            }
            numerics.extend(values.into_iter().map(|v| (v, stamp)));
        }
    }
    Ok(Message::PollReply(PollReply {
        invoke_id,
        time,
        numerics,
    }))
}
