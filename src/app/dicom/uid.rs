//! Names of well-known UIDs (PS3.6 Annex A): SOP classes from dicom-rs's
//! standard dictionary (`dicom-dictionary-std`, feature `sop-class`),
//! transfer syntaxes and the application context name from the short table
//! below (dicom-rs keeps its transfer syntax table private to its crate).
//! Also what the DIMSE command field, status and the association's numeric
//! fields mean (PS3.7 §9.3, Annex C; PS3.8 §9.3).

use dicom_core::dictionary::UidDictionary;
use dicom_dictionary_std::StandardSopClassDictionary;

/// Transfer syntaxes of PS3.6 Annex A, with their standard names.
const TRANSFER_SYNTAXES: &[(&str, &str)] = &[
    (
        "1.2.840.10008.1.2",
        "Implicit VR Little Endian: Default Transfer Syntax for DICOM",
    ),
    ("1.2.840.10008.1.2.1", "Explicit VR Little Endian"),
    (
        "1.2.840.10008.1.2.1.98",
        "Encapsulated Uncompressed Explicit VR Little Endian",
    ),
    (
        "1.2.840.10008.1.2.1.99",
        "Deflated Explicit VR Little Endian",
    ),
    ("1.2.840.10008.1.2.2", "Explicit VR Big Endian (Retired)"),
    ("1.2.840.10008.1.2.4.50", "JPEG Baseline (Process 1)"),
    ("1.2.840.10008.1.2.4.51", "JPEG Extended (Process 2 & 4)"),
    (
        "1.2.840.10008.1.2.4.57",
        "JPEG Lossless, Non-Hierarchical (Process 14)",
    ),
    (
        "1.2.840.10008.1.2.4.70",
        "JPEG Lossless, Non-Hierarchical, First-Order Prediction (Process 14 [Selection Value 1])",
    ),
    (
        "1.2.840.10008.1.2.4.80",
        "JPEG-LS Lossless Image Compression",
    ),
    (
        "1.2.840.10008.1.2.4.81",
        "JPEG-LS Lossy (Near-Lossless) Image Compression",
    ),
    (
        "1.2.840.10008.1.2.4.90",
        "JPEG 2000 Image Compression (Lossless Only)",
    ),
    ("1.2.840.10008.1.2.4.91", "JPEG 2000 Image Compression"),
    ("1.2.840.10008.1.2.4.100", "MPEG2 Main Profile / Main Level"),
    ("1.2.840.10008.1.2.4.101", "MPEG2 Main Profile / High Level"),
    (
        "1.2.840.10008.1.2.4.102",
        "MPEG-4 AVC/H.264 High Profile / Level 4.1",
    ),
    (
        "1.2.840.10008.1.2.4.201",
        "High-Throughput JPEG 2000 Image Compression (Lossless Only)",
    ),
    (
        "1.2.840.10008.1.2.4.203",
        "High-Throughput JPEG 2000 Image Compression",
    ),
    ("1.2.840.10008.1.2.5", "RLE Lossless"),
];

/// The standard name of a SOP class, transfer syntax or application
/// context UID.
pub fn name(uid: &str) -> Option<&'static str> {
    if uid == "1.2.840.10008.3.1.1.1" {
        return Some("DICOM Application Context Name");
    }
    if let Some((_, n)) = TRANSFER_SYNTAXES.iter().find(|(u, _)| *u == uid) {
        return Some(n);
    }
    StandardSopClassDictionary.by_uid(uid).map(|e| e.name)
}

/// DIMSE command field (0000,0100) as PS3.7 names it.
pub fn command_name(field: u16) -> Option<&'static str> {
    Some(match field {
        0x0001 => "C-STORE-RQ",
        0x8001 => "C-STORE-RSP",
        0x0010 => "C-GET-RQ",
        0x8010 => "C-GET-RSP",
        0x0020 => "C-FIND-RQ",
        0x8020 => "C-FIND-RSP",
        0x0021 => "C-MOVE-RQ",
        0x8021 => "C-MOVE-RSP",
        0x0030 => "C-ECHO-RQ",
        0x8030 => "C-ECHO-RSP",
        0x0100 => "N-EVENT-REPORT-RQ",
        0x8100 => "N-EVENT-REPORT-RSP",
        0x0110 => "N-GET-RQ",
        0x8110 => "N-GET-RSP",
        0x0120 => "N-SET-RQ",
        0x8120 => "N-SET-RSP",
        0x0130 => "N-ACTION-RQ",
        0x8130 => "N-ACTION-RSP",
        0x0140 => "N-CREATE-RQ",
        0x8140 => "N-CREATE-RSP",
        0x0150 => "N-DELETE-RQ",
        0x8150 => "N-DELETE-RSP",
        0x0FFF => "C-CANCEL-RQ",
        _ => return None,
    })
}

/// The service of a command field, without `-RQ`/`-RSP` (`C-STORE`).
pub fn service_name(field: u16) -> Option<&'static str> {
    command_name(field).map(|n| n.trim_end_matches("-RQ").trim_end_matches("-RSP"))
}

/// Category of a DIMSE status (PS3.7 Annex C): `success`, `pending`,
/// `cancel`, `warning` or `failure`.
pub fn status_category(status: u16) -> &'static str {
    match status {
        0x0000 => "success",
        0xFF00 | 0xFF01 => "pending",
        0xFE00 => "cancel",
        0x0001 | 0x0107 | 0x0116 | 0xB000..=0xBFFF => "warning",
        _ => "failure",
    }
}

/// Meaning of the common DIMSE status codes (PS3.7 Annex C and the
/// service-specific codes of PS3.4 most often seen).
pub fn status_meaning(status: u16) -> Option<&'static str> {
    Some(match status {
        0x0000 => "Success",
        0xFF00 => "Pending: matches are continuing",
        0xFF01 => "Pending: matches are continuing, optional keys not supported",
        0xFE00 => "Cancel",
        0x0001 => "Warning: requested optional attributes are not supported",
        0x0107 => "Warning: attribute list error",
        0x0116 => "Warning: attribute value out of range",
        0xB000 => "Warning: coercion of data elements or sub-operations failed",
        0xB006 => "Warning: elements discarded",
        0xB007 => "Warning: data set does not match SOP class",
        0x0105 => "Failure: no such attribute",
        0x0106 => "Failure: invalid attribute value",
        0x0110 => "Failure: processing failure",
        0x0111 => "Failure: duplicate SOP instance",
        0x0112 => "Failure: no such SOP instance",
        0x0117 => "Failure: invalid object instance",
        0x0118 => "Failure: no such SOP class",
        0x0119 => "Failure: class-instance conflict",
        0x0120 => "Failure: missing attribute",
        0x0121 => "Failure: missing attribute value",
        0x0122 => "Failure: SOP class not supported",
        0x0124 => "Failure: not authorized",
        0x0210 => "Failure: duplicate invocation",
        0x0211 => "Failure: unrecognized operation",
        0x0212 => "Failure: mistyped argument",
        0x0213 => "Failure: resource limitation",
        0xA700 => "Failure: out of resources",
        0xA701 => "Failure: out of resources, unable to calculate number of matches",
        0xA702 => "Failure: out of resources, unable to perform sub-operations",
        0xA801 => "Failure: move destination unknown",
        0xA900 => "Failure: data set does not match SOP class",
        0xC000 => "Failure: cannot understand",
        _ => return None,
    })
}

/// A-ASSOCIATE-AC presentation context result (PS3.8 Table 9-18).
pub fn pctx_result_name(r: u8) -> &'static str {
    match r {
        0 => "acceptance",
        1 => "user_rejection",
        2 => "no_reason",
        3 => "abstract_syntax_not_supported",
        4 => "transfer_syntaxes_not_supported",
        _ => "unknown",
    }
}

/// A-ASSOCIATE-RJ result (PS3.8 Table 9-21).
pub fn reject_result_name(r: u8) -> &'static str {
    match r {
        1 => "rejected_permanent",
        2 => "rejected_transient",
        _ => "unknown",
    }
}

/// A-ASSOCIATE-RJ source (PS3.8 Table 9-21).
pub fn reject_source_name(s: u8) -> &'static str {
    match s {
        1 => "service_user",
        2 => "service_provider_acse",
        3 => "service_provider_presentation",
        _ => "unknown",
    }
}

/// A-ASSOCIATE-RJ reason/diagnostic, which depends on the source.
pub fn reject_reason_name(source: u8, reason: u8) -> &'static str {
    match (source, reason) {
        (1, 1) => "no_reason_given",
        (1, 2) => "application_context_name_not_supported",
        (1, 3) => "calling_ae_title_not_recognized",
        (1, 7) => "called_ae_title_not_recognized",
        (2, 1) => "no_reason_given",
        (2, 2) => "protocol_version_not_supported",
        (3, 1) => "temporary_congestion",
        (3, 2) => "local_limit_exceeded",
        _ => "reserved",
    }
}

/// A-ABORT source (PS3.8 Table 9-26).
pub fn abort_source_name(s: u8) -> &'static str {
    match s {
        0 => "service_user",
        2 => "service_provider",
        _ => "reserved",
    }
}

/// A-ABORT reason when the provider aborted (PS3.8 Table 9-26).
pub fn abort_reason_name(source: u8, r: u8) -> &'static str {
    if source != 2 {
        return "not_significant";
    }
    match r {
        0 => "not_specified",
        1 => "unrecognized_pdu",
        2 => "unexpected_pdu",
        4 => "unrecognized_pdu_parameter",
        5 => "unexpected_pdu_parameter",
        6 => "invalid_pdu_parameter_value",
        _ => "reserved",
    }
}

/// User identity type (PS3.7 Table D.3-14).
pub fn user_identity_type_name(t: u8) -> &'static str {
    match t {
        1 => "username",
        2 => "username_and_passcode",
        3 => "kerberos",
        4 => "saml",
        5 => "jwt",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_both_tables() {
        assert_eq!(name("1.2.840.10008.1.1"), Some("Verification SOP Class"));
        assert_eq!(name("1.2.840.10008.5.1.4.1.1.2"), Some("CT Image Storage"));
        assert_eq!(
            name("1.2.840.10008.1.2.1"),
            Some("Explicit VR Little Endian")
        );
        assert_eq!(name("1.2.3.4"), None);
    }

    #[test]
    fn status_categories() {
        assert_eq!(status_category(0), "success");
        assert_eq!(status_category(0xff00), "pending");
        assert_eq!(status_category(0xb007), "warning");
        assert_eq!(status_category(0xa700), "failure");
        assert_eq!(status_category(0xfe00), "cancel");
    }
}
