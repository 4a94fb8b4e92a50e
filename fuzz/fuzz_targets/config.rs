//! Config text (UTF-8) through `config::from_str_with_env`, the loader of `scimitar -t` and of
//! every start and reload. Inputs that would resolve a host name or read a device are skipped.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    scimitar_fuzz::checks::check_config_input(data);
});
