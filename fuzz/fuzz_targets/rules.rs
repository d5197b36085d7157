#![no_main]
//! Fuzz target `rules`: the harness and its properties are in
//! `fuzz/src/rules.rs`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| wardwatch_fuzz::rules(data));
