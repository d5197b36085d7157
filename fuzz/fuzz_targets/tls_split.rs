#![no_main]
//! Fuzz target `tls_split`: the harness and its properties are in
//! `fuzz/src/app.rs`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| wardwatch_fuzz::tls_split(data));
