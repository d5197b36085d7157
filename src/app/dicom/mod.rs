//! DICOM app-layer parser: not written yet (see the DICOM issue). The types
//! here are the contract the worker and the EVE writer rely on.

use serde::Deserialize;

use crate::app::{LogOptions, StreamConsumer};

/// `app_layer.dicom` configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DicomConfig {}

/// One DICOM record for EVE and detection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {}

impl Record {
    /// The EVE `dicom` object.
    pub fn log(&self, opts: &LogOptions) -> serde_json::Value {
        let _ = opts;
        serde_json::Value::Object(serde_json::Map::new())
    }
}

/// The parser of one DICOM flow, or `None` while there is none.
pub fn new_parser(cfg: &DicomConfig) -> Option<Box<dyn StreamConsumer>> {
    let _ = cfg;
    None
}
