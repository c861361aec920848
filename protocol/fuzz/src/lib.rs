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
