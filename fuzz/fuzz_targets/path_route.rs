//! A request target as the proxy routes it: `METHOD SP target` (a bare target is a GET),
//! normalised, matched against a plain and a `{tenant}` base path, classified.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    scimitar_fuzz::checks::check_path_input(data);
});
