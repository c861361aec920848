//! Checks shared by the fuzz targets. Each asserts an invariant, not only "no panic".

use vigil_protocol::stream::merge_garbage;
use vigil_protocol::Format;

/// A serial format: decoding the bytes whole and split at a point the input chooses must give
/// the same output, up to how a garbage run is split into reports (the first byte picks the
/// split).
pub fn stream(format: Format, data: &[u8]) {
    let Some((&cut, bytes)) = data.split_first() else {
        return;
    };
    let decode = |chunks: &[&[u8]]| {
        let mut d = format.decoder();
        let mut out = Vec::new();
        for c in chunks {
            d.feed(c, &mut out);
        }
        d.finish(&mut out);
        merge_garbage(out)
    };
    let whole = decode(&[bytes]);
    let at = (cut as usize * bytes.len()) / 255;
    let split = decode(&[&bytes[..at], &bytes[at..]]);
    assert_eq!(whole, split, "chunking changed the output of {format}");
}

/// A BLE characteristic: whatever decodes must encode back to bytes that decode the same.
#[macro_export]
macro_rules! ble_round_trip {
    ($ty:ty, $data:expr) => {
        if let Ok(v) = <$ty>::decode($data) {
            let again = <$ty>::decode(&v.encode()).expect("an encoded value must decode");
            assert_eq!(again, v);
        }
    };
}

/// A BLE format: one characteristic value through the public decoder, observations included.
pub fn value(format: Format, data: &[u8]) {
    let mut out = Vec::new();
    format.decoder().feed(data, &mut out);
    assert!(!out.is_empty(), "a value decodes to observations or an error");
}

/// IntelliVue MIB/RS232: the stream decoder gives the same output whole and split (the first
/// byte picks the split), and a session fed the same bytes never panics and keeps its queues
/// bounded.
pub fn intellivue(data: &[u8]) {
    use std::time::{Duration, Instant};
    use vigil_protocol::intellivue::{IntelliVueSession, StreamDecoder};
    use vigil_protocol::DeviceSession;
    let Some((&cut, bytes)) = data.split_first() else {
        return;
    };
    let decode = |chunks: &[&[u8]]| {
        let mut d = StreamDecoder::default();
        let mut out = Vec::new();
        for c in chunks {
            d.feed(c, &mut out);
        }
        d.finish(&mut out);
        merge_garbage(out)
    };
    let at = (cut as usize * bytes.len()) / 255;
    assert_eq!(
        decode(&[bytes]),
        decode(&[&bytes[..at], &bytes[at..]]),
        "chunking changed the output of intellivue"
    );
    let t0 = Instant::now();
    let mut s = IntelliVueSession::new();
    s.handle_connected(t0);
    s.handle_input(&bytes[..at], t0);
    s.handle_timeout(t0 + Duration::from_secs(1));
    s.handle_input(&bytes[at..], t0 + Duration::from_secs(1));
    let sent = std::iter::from_fn(|| s.poll_transmit()).count();
    assert!(sent <= 16, "transmit queue unbounded: {sent}");
    while s.poll_output().is_some() {}
}
