#![no_main]
//! Fuzz target `capture`: the harness and its properties are in
//! `fuzz/src/capture.rs`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| wardwatch_fuzz::capture(data));
