#![no_main]
//! Fuzz target `hl7_split`: the harness and its properties are in
//! `fuzz/src/app.rs`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| wardwatch_fuzz::hl7_split(data));
