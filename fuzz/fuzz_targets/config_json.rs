//! config_json: arbitrary text as a JSON node configuration (`turnstile_config::load_str` with
//! `Format::Json`). Checks (see `turnstile_fuzz::config`): loading and validating never panics;
//! an error is a syntax or validation error whose message, key path and problem are non-empty.
#![no_main]

use libfuzzer_sys::fuzz_target;
use turnstile_config::Format;

fuzz_target!(|data: &[u8]| turnstile_fuzz::config::check(Format::Json, data));
