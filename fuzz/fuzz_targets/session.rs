//! session: arbitrary operations of 2 to 4 fake clients, a monitor and a fake clock driving the
//! sans-IO realm (`turnstile_core::realm::Realm`). Checks after every step (see
//! `turnstile_fuzz::session`): no panic; every CALL answered exactly once unless its caller
//! left; no EVENT without the subscription; statistics cycles sum to what each session
//! exchanged; the realm's tables return to empty when the sessions leave.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| turnstile_fuzz::session::check(data));
