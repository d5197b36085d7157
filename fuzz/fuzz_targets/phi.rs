#![no_main]
//! Fuzz target `phi`: the harness and its properties are in
//! `fuzz/src/phi.rs`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| wardwatch_fuzz::phi(data));
