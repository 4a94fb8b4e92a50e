//! A PUT and a PATCH body through deprovision detection, against a serde_json reference.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    scimitar_fuzz::checks::check_body(data);
});
