#![no_main]
//! Fuzz target `reassembly`: the harness and its properties are in
//! `fuzz/src/reassembly.rs`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| wardwatch_fuzz::reassembly(data));
