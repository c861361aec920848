//! MLLP framing (HL7 v2 minimal lower layer protocol: 0x0B, message, 0x1C 0x0D) and reading
//! the peer's ACK, for the forwarder's side of the conversation.

use tokio::io::{AsyncRead, AsyncReadExt};

/// Start of a frame.
pub const START: u8 = 0x0B;
/// End of a frame (then CR).
pub const END: [u8; 2] = [0x1C, 0x0D];
/// An ACK longer than this is refused (the connection is dropped and the message resent).
pub const MAX_ACK: usize = 64 * 1024;

/// `message` framed for the wire.
pub fn frame(message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 3);
    out.push(START);
    out.extend_from_slice(message.as_bytes());
    out.extend_from_slice(&END);
    out
}

/// What a peer's ACK says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// MSA-1: `AA`/`CA` taken, `AE`/`CE` error, `AR`/`CR` rejected.
    pub code: String,
    /// MSA-2: the MSH-10 of the message it answers.
    pub control: String,
    /// Why, for a refusal: MSA-3, else ERR-8 (user message), else ERR-3 (error code); at most
    /// 200 characters of printable text, for the log.
    pub reason: String,
}

impl Ack {
    /// The peer took the message.
    pub fn accepted(&self) -> bool {
        matches!(self.code.as_str(), "AA" | "CA")
    }
}

/// Why the peer's answer could not be used.
#[derive(Debug, thiserror::Error)]
pub enum AckError {
    /// The connection failed or closed.
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    /// More than [`MAX_ACK`] bytes without a frame end.
    #[error("answer longer than {MAX_ACK} bytes")]
    TooLong,
    /// A frame that is not an ACK with an MSA segment.
    #[error("answer is not an HL7 ACK: {0}")]
    NotAck(&'static str),
}

/// Reads bytes until one whole frame, returns its content (bytes before 0x0B are skipped).
pub async fn read_frame<R: AsyncRead + Unpin>(
    io: &mut R,
    buf: &mut Vec<u8>,
) -> Result<Vec<u8>, AckError> {
    loop {
        if let Some(start) = buf.iter().position(|b| *b == START) {
            if let Some(end) = buf[start..].windows(2).position(|w| w == END) {
                let content = buf[start + 1..start + end].to_vec();
                buf.drain(..start + end + 2);
                return Ok(content);
            }
        } else {
            buf.clear();
        }
        if buf.len() > MAX_ACK {
            return Err(AckError::TooLong);
        }
        let mut chunk = [0u8; 4096];
        let n = io.read(&mut chunk).await?;
        if n == 0 {
            return Err(AckError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn printable(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect::<String>()
}

/// Parses an ACK message (segments separated by CR, LF or CRLF).
pub fn parse_ack(content: &[u8]) -> Result<Ack, AckError> {
    let text = String::from_utf8_lossy(content);
    let segments: Vec<&str> = text.split(['\r', '\n']).filter(|s| !s.is_empty()).collect();
    let msh = segments
        .first()
        .filter(|s| s.starts_with("MSH"))
        .ok_or(AckError::NotAck("no MSH segment"))?;
    let field_sep = msh.chars().nth(3).ok_or(AckError::NotAck("short MSH"))?;
    let component_sep = msh.chars().nth(4).unwrap_or('^');
    let fields =
        |segment: &str| -> Vec<String> { segment.split(field_sep).map(str::to_string).collect() };
    let msa = segments
        .iter()
        .find(|s| s.starts_with("MSA"))
        .map(|s| fields(s))
        .ok_or(AckError::NotAck("no MSA segment"))?;
    let get = |f: &[String], i: usize| f.get(i).cloned().unwrap_or_default();
    let code = get(&msa, 1).trim().to_ascii_uppercase();
    if !matches!(code.as_str(), "AA" | "AE" | "AR" | "CA" | "CE" | "CR") {
        return Err(AckError::NotAck("MSA-1 is not an acknowledgment code"));
    }
    let mut reason = get(&msa, 3);
    if reason.is_empty() {
        if let Some(err) = segments
            .iter()
            .find(|s| s.starts_with("ERR"))
            .map(|s| fields(s))
        {
            reason = get(&err, 8);
            if reason.is_empty() {
                reason = get(&err, 3).replace(component_sep, " ");
            }
        }
    }
    Ok(Ack {
        code,
        control: get(&msa, 2).trim().to_string(),
        reason: printable(&reason),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_frame_is_read_whole_after_garbage_and_split_reads() {
        let mut wire = b"junk".to_vec();
        wire.extend(frame("MSH|^~\\&|ENGINE\rMSA|AA|R12"));
        wire.extend(frame("MSH|^~\\&|ENGINE\rMSA|AE|A3|unknown code\rERR|||207^Application internal error^HL70357"));
        let (mut client, mut server) = tokio::io::duplex(8);
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            server.write_all(&wire).await.unwrap();
        });
        let mut buf = Vec::new();
        let first = parse_ack(&read_frame(&mut client, &mut buf).await.unwrap()).unwrap();
        assert_eq!((first.code.as_str(), first.control.as_str()), ("AA", "R12"));
        assert!(first.accepted());
        let second = parse_ack(&read_frame(&mut client, &mut buf).await.unwrap()).unwrap();
        assert_eq!(
            (
                second.code.as_str(),
                second.control.as_str(),
                second.reason.as_str()
            ),
            ("AE", "A3", "unknown code")
        );
        assert!(!second.accepted());
    }

    #[test]
    fn the_reason_falls_back_to_err_and_bad_answers_are_typed_errors() {
        let ack = parse_ack(b"MSH|^~\\&|E\nMSA|AR|R1\nERR|||200^Unsupported message type^HL70357")
            .unwrap();
        assert_eq!(ack.reason, "200 Unsupported message type HL70357");
        assert!(matches!(parse_ack(b"hello"), Err(AckError::NotAck(_))));
        assert!(matches!(
            parse_ack(b"MSH|^~\\&|E\rMSA|ZZ|R1"),
            Err(AckError::NotAck(_))
        ));
        assert!(matches!(
            parse_ack(b"MSH|^~\\&|E\rPID|1"),
            Err(AckError::NotAck(_))
        ));
    }
}
