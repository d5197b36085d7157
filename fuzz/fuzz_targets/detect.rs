#![no_main]
//! Fuzz target `detect`: the harness and its properties are in
//! `fuzz/src/detect.rs`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| wardwatch_fuzz::detect(data));
