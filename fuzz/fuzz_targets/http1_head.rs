//! Bytes on a plaintext HTTP/1 connection, read by Pingora's own request parser (head, then
//! body) from an in-memory stream, then the parsed target classified as scimitar does.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    scimitar_fuzz::checks::check_http1(data);
});
