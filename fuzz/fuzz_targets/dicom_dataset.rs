#![no_main]
//! Fuzz target `dicom_dataset`: the harness and its properties are in
//! `fuzz/src/dataset.rs`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| wardwatch_fuzz::dicom_dataset(data));
