//! Fuzz harnesses for wardwatch: one function per fuzz target, shared by the
//! cargo-fuzz targets in `fuzz_targets/` and by `tests/fuzz_regressions.rs`,
//! which includes this file with `#[path]` and replays every file under
//! `fuzz/seeds/<target>/` and `fuzz/regressions/<target>/` through the same
//! function — so an input the fuzzer saved becomes a plain test.
//!
//! A harness decodes the fuzzer's bytes into a plan with [`input::Cursor`]
//! (every input decodes to some plan: reads past the end give zeros), drives
//! wardwatch through its public API, and panics when a property does not
//! hold; libFuzzer reports the panic as a crash and saves the input. Each
//! module states its input layout and its properties; "no panic, no hang, no
//! unbounded allocation" holds for all of them (libFuzzer's `-timeout` and
//! `-rss_limit_mb` catch the last two).
//!
//! Only wardwatch's public API is used, so a harness breaks at compile time,
//! not silently, when an interface it relies on changes.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

pub mod app;
pub mod capture;
pub mod dataset;
pub mod decode;
pub mod detect;
pub mod input;
pub mod phi;
pub mod pipeline;
pub mod reassembly;
pub mod rules;
pub mod seeds;
pub mod turns;

pub use app::{dicom, dicom_split, hl7, hl7_split, mqtt, mqtt_split, tls, tls_split};
pub use capture::capture;
pub use dataset::dicom_dataset;
pub use decode::decode;
pub use detect::detect;
pub use phi::phi;
pub use pipeline::{pipeline, pipeline_workers};
pub use reassembly::reassembly;
pub use rules::rules;

/// A harness: panics when a property does not hold on the input.
pub type Harness = fn(&[u8]);

/// Every target: its name (the `fuzz_targets/<name>.rs` binary and the
/// `seeds/<name>/`, `regressions/<name>/` folders) and its harness.
pub const TARGETS: &[(&str, Harness)] = &[
    ("capture", capture),
    ("decode", decode),
    ("reassembly", reassembly),
    ("mqtt", mqtt),
    ("mqtt_split", mqtt_split),
    ("dicom", dicom),
    ("dicom_split", dicom_split),
    ("dicom_dataset", dicom_dataset),
    ("hl7", hl7),
    ("hl7_split", hl7_split),
    ("tls", tls),
    ("tls_split", tls_split),
    ("rules", rules),
    ("detect", detect),
    ("phi", phi),
    ("pipeline", pipeline),
    ("pipeline_workers", pipeline_workers),
];
