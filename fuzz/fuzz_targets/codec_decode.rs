//! The codec on arbitrary bytes, as read from a Redis anyone could write to: the envelope parse,
//! the decoded-size estimate and typed payload decodes never panic.
#![no_main]

use cache_core::__internals::{decode_envelope, envelope_parts};
use cache_core::codec::decode_value;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let _ = decode_envelope(bytes);
    if let Ok((_, _, Some(payload))) = envelope_parts(bytes) {
        let _ = decode_value::<serde_json::Value>(&payload);
        let _ = decode_value::<(u64, String, Vec<bool>)>(&payload);
    }
    let _ = decode_value::<serde_json::Value>(bytes);
});
