#![no_main]
//! See `haagent_fuzz::properties::nd_frame` for what this target checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| haagent_fuzz::properties::nd_frame(data));
