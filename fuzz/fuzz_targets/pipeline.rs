#![no_main]
//! Fuzz target `pipeline`: the harness and its properties are in
//! `fuzz/src/pipeline.rs`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| wardwatch_fuzz::pipeline(data));
