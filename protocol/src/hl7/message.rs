//! An HL7 v2 message parser: segments, fields, repetitions, components, subcomponents and
//! escape sequences, with the delimiters each message declares in MSH-1 and MSH-2.
//!
//! Bounds keep a hostile peer from costing more than the bytes it sent: at most
//! [`MAX_SEGMENTS`] segments and [`MAX_FIELDS`] fields in a segment.

/// Most segments one message may have.
pub const MAX_SEGMENTS: usize = 5_000;
/// Most fields one segment may have (HL7 segments define well under 100).
pub const MAX_FIELDS: usize = 500;

/// Why a payload is not an HL7 v2 message Vigil can read. Each maps to an HL7 error code
/// (table 0357) for the ERR segment of the AE.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Hl7Error {
    /// The payload does not start with an MSH segment.
    #[error("not an HL7 v2 message: it does not start with MSH")]
    NoMsh,
    /// MSH-1/MSH-2 do not declare usable delimiters.
    #[error("MSH-1/MSH-2 do not declare the HL7 delimiters")]
    BadDelimiters,
    /// A segment has more fields than [`MAX_FIELDS`].
    #[error("segment {segment} has more than {max} fields")]
    TooManyFields {
        /// The segment's id.
        segment: String,
        /// The bound.
        max: usize,
    },
    /// The message has more segments than [`MAX_SEGMENTS`].
    #[error("message has more than {max} segments")]
    TooManySegments {
        /// The bound.
        max: usize,
    },
    /// The message exceeded the MLLP size bound.
    #[error("message longer than {max} bytes")]
    TooLarge {
        /// The bound.
        max: usize,
    },
    /// MSH-12 names a version Vigil does not read.
    #[error("HL7 version {0:?} not supported (2.3 to 2.6 are)")]
    UnsupportedVersion(String),
    /// MSH-9 is not ORU^R01.
    #[error("message type {0:?} not supported (ORU^R01 is)")]
    UnsupportedMessageType(String),
    /// An ORU^R01 without any OBX.
    #[error("ORU^R01 without any OBX segment")]
    NoObservations,
    /// A segment whose id is not three letters or digits (its text is not repeated: a broken
    /// line may hold patient data).
    #[error("segment {0} does not start with a three-character segment id")]
    BadSegmentId(usize),
}

impl Hl7Error {
    /// The HL7 table 0357 error code (and its text) for the ERR segment.
    pub fn hl7_code(&self) -> (u16, &'static str) {
        match self {
            Hl7Error::NoMsh | Hl7Error::BadDelimiters | Hl7Error::BadSegmentId(_) => {
                (100, "Segment sequence error")
            }
            Hl7Error::TooManyFields { .. }
            | Hl7Error::TooManySegments { .. }
            | Hl7Error::TooLarge { .. } => (207, "Application internal error"),
            Hl7Error::UnsupportedVersion(_) => (203, "Unsupported version id"),
            Hl7Error::UnsupportedMessageType(_) => (200, "Unsupported message type"),
            Hl7Error::NoObservations => (101, "Required field missing"),
        }
    }
}

/// The delimiters a message declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delimiters {
    /// Field separator (MSH-1), usually `|`.
    pub field: char,
    /// Component separator, usually `^`.
    pub component: char,
    /// Repetition separator, usually `~`.
    pub repetition: char,
    /// Escape character, usually `\`.
    pub escape: char,
    /// Subcomponent separator, usually `&`.
    pub subcomponent: char,
}

impl Default for Delimiters {
    fn default() -> Self {
        Delimiters {
            field: '|',
            component: '^',
            repetition: '~',
            escape: '\\',
            subcomponent: '&',
        }
    }
}

/// One segment: its id and its raw (still escaped) fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// `MSH`, `OBR`, `OBX`, ...
    pub id: String,
    /// Field n of the segment is `fields[n]`; for MSH, `fields[1]` is MSH-1 (the field
    /// separator) and `fields[2]` MSH-2, as the standard numbers them.
    fields: Vec<String>,
}

/// A parsed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The delimiters from MSH-1 and MSH-2.
    pub delimiters: Delimiters,
    /// The segments in order, MSH first.
    pub segments: Vec<Segment>,
}

impl Message {
    /// Parses one message. Segments may be separated by CR, LF or CRLF.
    pub fn parse(payload: &[u8]) -> Result<Message, Hl7Error> {
        let text = String::from_utf8_lossy(payload);
        let text = text.trim_start_matches(['\r', '\n', ' ', '\t']);
        let mut chars = text.chars();
        if !text.starts_with("MSH") {
            return Err(Hl7Error::NoMsh);
        }
        chars.nth(2);
        let field = chars.next().ok_or(Hl7Error::BadDelimiters)?;
        let encoding: Vec<char> = chars.take_while(|c| *c != field).collect();
        if field.is_alphanumeric() || field.is_whitespace() || encoding.len() < 4 {
            return Err(Hl7Error::BadDelimiters);
        }
        let delimiters = Delimiters {
            field,
            component: encoding[0],
            repetition: encoding[1],
            escape: encoding[2],
            subcomponent: encoding[3],
        };
        let mut all = vec![field];
        all.extend(&encoding[..4]);
        let distinct = all
            .iter()
            .all(|c| all.iter().filter(|d| *d == c).count() == 1);
        if !distinct || all.iter().any(|c| c.is_alphanumeric() || c.is_whitespace()) {
            return Err(Hl7Error::BadDelimiters);
        }
        let mut segments = Vec::new();
        for line in text.split(['\r', '\n']).filter(|l| !l.trim().is_empty()) {
            if segments.len() == MAX_SEGMENTS {
                return Err(Hl7Error::TooManySegments { max: MAX_SEGMENTS });
            }
            segments.push(parse_segment(line, field, segments.len() + 1)?);
        }
        Ok(Message {
            delimiters,
            segments,
        })
    }

    /// The MSH segment.
    pub fn msh(&self) -> &Segment {
        &self.segments[0]
    }

    /// The segments with this id, in order.
    pub fn all<'a>(&'a self, id: &'a str) -> impl Iterator<Item = &'a Segment> + 'a {
        self.segments.iter().filter(move |s| s.id == id)
    }

    /// Component `c` (1-based) of the first repetition of field `n` of `segment`, unescaped;
    /// empty when absent.
    pub fn component(&self, segment: &Segment, n: usize, c: usize) -> String {
        let d = &self.delimiters;
        let raw = segment.raw(n);
        let first = raw.split(d.repetition).next().unwrap_or("");
        let comp = first.split(d.component).nth(c - 1).unwrap_or("");
        let sub = comp.split(d.subcomponent).next().unwrap_or("");
        unescape(sub, d)
    }

    /// The first repetition of field `n` of `segment` with its components kept (joined by `^`
    /// whatever the message's separator), each unescaped.
    pub fn field_text(&self, segment: &Segment, n: usize) -> String {
        let d = &self.delimiters;
        let raw = segment.raw(n);
        let first = raw.split(d.repetition).next().unwrap_or("");
        let parts: Vec<String> = first
            .split(d.component)
            .map(|c| unescape(c.split(d.subcomponent).next().unwrap_or(""), d))
            .collect();
        let used = parts
            .iter()
            .rposition(|p| !p.is_empty())
            .map_or(0, |i| i + 1);
        parts[..used].join("^")
    }
}

impl Segment {
    /// The raw text of field `n` (as the standard numbers it), empty when absent.
    pub fn raw(&self, n: usize) -> &str {
        self.fields.get(n).map(String::as_str).unwrap_or("")
    }
}

fn parse_segment(line: &str, field: char, number: usize) -> Result<Segment, Hl7Error> {
    let mut parts = line.split(field);
    let id = parts.next().unwrap_or("").to_string();
    if id.len() != 3 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(Hl7Error::BadSegmentId(number));
    }
    let mut fields = vec![String::new()];
    if id == "MSH" {
        // MSH-1 is the separator itself; the next split part is MSH-2.
        fields.push(field.to_string());
    }
    for part in parts {
        if fields.len() > MAX_FIELDS {
            return Err(Hl7Error::TooManyFields {
                segment: id,
                max: MAX_FIELDS,
            });
        }
        fields.push(part.to_string());
    }
    Ok(Segment { id, fields })
}

/// Resolves escape sequences: `\F\ \S\ \T\ \R\ \E\` give the delimiters back, `\Xhh..\` hex
/// bytes, and formatting commands (`\.br\`, `\H\`, `\N\`, ...) are dropped.
pub fn unescape(text: &str, d: &Delimiters) -> String {
    if !text.contains(d.escape) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(d.escape) {
        out.push_str(&rest[..start]);
        let after = &rest[start + d.escape.len_utf8()..];
        let Some(end) = after.find(d.escape) else {
            // An unterminated escape is kept literally.
            out.push_str(&rest[start..]);
            return out;
        };
        let seq = &after[..end];
        match seq {
            "F" => out.push(d.field),
            "S" => out.push(d.component),
            "T" => out.push(d.subcomponent),
            "R" => out.push(d.repetition),
            "E" => out.push(d.escape),
            hex if hex.starts_with('X') => {
                let bytes: Vec<u8> = (1..hex.len())
                    .step_by(2)
                    .filter_map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
                    .collect();
                out.push_str(&String::from_utf8_lossy(&bytes));
            }
            _ => {}
        }
        rest = &after[end + d.escape.len_utf8()..];
    }
    out.push_str(rest);
    out
}

/// Escapes text for a field (the inverse of [`unescape`] for the delimiters).
pub fn escape(text: &str, d: &Delimiters) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let code = match c {
            c if c == d.escape => Some('E'),
            c if c == d.field => Some('F'),
            c if c == d.component => Some('S'),
            c if c == d.subcomponent => Some('T'),
            c if c == d.repetition => Some('R'),
            '\r' | '\n' => {
                out.push(' ');
                None
            }
            _ => {
                out.push(c);
                None
            }
        };
        if let Some(code) = code {
            out.push(d.escape);
            out.push(code);
            out.push(d.escape);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delimiters_come_from_msh() {
        let m = Message::parse(b"MSH#*@!$#A#B\rOBX#1#NM#a*b$c*d@e").unwrap();
        assert_eq!(m.delimiters.field, '#');
        assert_eq!(m.delimiters.component, '*');
        let obx = m.all("OBX").next().unwrap();
        assert_eq!(m.component(obx, 3, 2), "b");
        assert_eq!(m.component(obx, 3, 3), "d");
        assert_eq!(m.component(&m.segments[0], 3, 1), "A");
    }

    #[test]
    fn escapes_resolve_and_round_trip() {
        let d = Delimiters::default();
        assert_eq!(
            unescape(r"a\F\b\S\c\T\d\R\e\E\f\X41\\.br\", &d),
            "a|b^c&d~e\\fA"
        );
        let text = "x|y^z&w~v\\u";
        assert_eq!(unescape(&escape(text, &d), &d), text);
    }

    #[test]
    fn msh_fields_are_numbered_as_the_standard_does() {
        let m = Message::parse(b"MSH|^~\\&|SEND|FAC\nPID|1").unwrap();
        let msh = m.msh();
        assert_eq!(msh.raw(1), "|");
        assert_eq!(msh.raw(2), "^~\\&");
        assert_eq!(msh.raw(3), "SEND");
        assert_eq!(msh.raw(4), "FAC");
        assert_eq!(m.segments.len(), 2);
    }

    #[test]
    fn bounds_and_bad_input_are_typed_errors() {
        let mut wide = b"MSH|^~\\&|A\rOBX".to_vec();
        wide.extend(std::iter::repeat_n(b'|', 10_000));
        assert!(matches!(
            Message::parse(&wide),
            Err(Hl7Error::TooManyFields { .. })
        ));
        assert_eq!(Message::parse(b"\x00\xff garbage"), Err(Hl7Error::NoMsh));
        assert_eq!(Message::parse(b"MSH|^^^^|"), Err(Hl7Error::BadDelimiters));
        assert_eq!(Message::parse(b"MSH"), Err(Hl7Error::BadDelimiters));
        // A line broken inside a name: the error (and so the AE and the log) does not repeat it.
        let broken = Message::parse(b"MSH|^~\\&|A\rPID|||1||Doe^Jane\rDoe Jr|x").unwrap_err();
        assert_eq!(broken, Hl7Error::BadSegmentId(3));
        assert!(!broken.to_string().contains("Doe"));
    }
}
