#![no_main]
//! Fuzz target `tls`: the harness and its properties are in
//! `fuzz/src/app.rs`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| wardwatch_fuzz::tls(data));
