#![no_main]
//! Fuzz target `decode`: the harness and its properties are in
//! `fuzz/src/decode.rs`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| wardwatch_fuzz::decode(data));
