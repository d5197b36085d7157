//! wardwatch: a passive network sensor for hospital networks.
//!
//! The crate is a pipeline of stages, one module each, with dependencies that
//! point downstream only (see `DESIGN.md` in the shared planning folder):
//!
//! ```text
//! capture ──► decode ──► flow ──► stream ──► app ──► detect ──► output
//! ```
//!
//! [`pipeline`] wires them into reader, worker and writer threads; the binary
//! in `main.rs` only parses the command line and configuration.

pub mod alloc;
pub mod app;
pub mod asset;
pub mod capture;
pub mod config;
pub mod decode;
pub mod detect;
pub mod flow;
pub mod hint;
pub mod memcap;
pub mod output;
pub mod pipeline;
pub mod stream;
pub mod time;
