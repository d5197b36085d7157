//! What a DICOM implementation class UID and a SOP class say about a host.
//!
//! PS3.7 §D.3.3.2: the implementation class UID (A-ASSOCIATE item 0x52)
//! names the software that built the PDU; it is made under its maker's UID
//! root (PS3.5 §9), so the root names the toolkit or the vendor. The roots
//! below are those the toolkits themselves use, each checked where said:
//! - dcmtk: `1.2.276.0.7230010.3` (OFFIS; `SITE_UID_ROOT` in dcmtk's
//!   `dcmdata/include/dcmtk/dcmdata/dcuid.h`; dcmtk 3.6.7 sends
//!   `1.2.276.0.7230010.3.0.3.6.7`, version name `OFFIS_DCMTK_367`, in
//!   `pcaps/dicom_echo.pcap`);
//! - pynetdicom: `1.2.826.0.1.3680043.9.3811` (`pynetdicom.
//!   PYNETDICOM_IMPLEMENTATION_UID` is `…3811.3.0.4` for pynetdicom 3.0.4,
//!   version name `PYNETDICOM_304`);
//! - pydicom: `1.2.826.0.1.3680043.8.498` (`pydicom.uid.PYDICOM_ROOT_UID`);
//! - fo-dicom: `1.3.6.1.4.1.30071.8` (`DicomImplementation.ClassUID` in
//!   fo-dicom; version names `fo-dicom x.y.z`);
//! - dcm4che: `1.2.40.0.13.1` (dcm4che's `Implementation` class:
//!   `1.2.40.0.13.1.1` for dcm4che 2, `1.2.40.0.13.1.3` for dcm4che 3);
//! - GDCM: `1.2.826.0.1.3680043.2.1143` (GDCM's UID root, `gdcmUIDs`);
//! - vendors, by the root of the UIDs their devices issue: GE Healthcare
//!   `1.2.840.113619`, Siemens Healthineers `1.3.12.2.1107.5`, Philips
//!   `1.3.46.670589`, Canon (Toshiba) Medical `1.2.392.200036.9116`,
//!   Fujifilm `1.2.392.200036.9125`, Hologic `1.2.840.113681`.
//!
//! Modality of a storage SOP class: PS3.4 Annex B.5 (Standard SOP
//! Classes) with the modality codes of PS3.3 C.7.3.1.1.1.

/// UID roots and who uses them; the longest matching root wins.
const ROOTS: &[(&str, &str)] = &[
    ("1.2.276.0.7230010.3", "OFFIS DCMTK"),
    ("1.2.826.0.1.3680043.9.3811", "pynetdicom"),
    ("1.2.826.0.1.3680043.8.498", "pydicom"),
    ("1.3.6.1.4.1.30071.8", "fo-dicom"),
    ("1.2.40.0.13.1", "dcm4che"),
    ("1.2.826.0.1.3680043.2.1143", "GDCM"),
    ("1.2.840.113619", "GE Healthcare"),
    ("1.3.12.2.1107.5", "Siemens Healthineers"),
    ("1.3.46.670589", "Philips"),
    ("1.2.392.200036.9116", "Canon Medical (Toshiba)"),
    ("1.2.392.200036.9125", "Fujifilm"),
    ("1.2.840.113681", "Hologic"),
];

/// The toolkit or vendor whose UID root `class_uid` is under.
pub fn toolkit(class_uid: &str) -> Option<&'static str> {
    ROOTS
        .iter()
        .filter(|(root, _)| {
            class_uid
                .strip_prefix(root)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
        })
        .max_by_key(|(root, _)| root.len())
        .map(|&(_, name)| name)
}

/// Storage SOP classes (PS3.4 B.5) and the modality of their images.
const STORAGE: &[(&str, &str)] = &[
    ("1.2.840.10008.5.1.4.1.1.1", "CR"),
    ("1.2.840.10008.5.1.4.1.1.1.1", "DX"),
    ("1.2.840.10008.5.1.4.1.1.1.1.1", "DX"),
    ("1.2.840.10008.5.1.4.1.1.1.2", "MG"),
    ("1.2.840.10008.5.1.4.1.1.1.2.1", "MG"),
    ("1.2.840.10008.5.1.4.1.1.1.3", "IO"),
    ("1.2.840.10008.5.1.4.1.1.1.3.1", "IO"),
    ("1.2.840.10008.5.1.4.1.1.2", "CT"),
    ("1.2.840.10008.5.1.4.1.1.2.1", "CT"),
    ("1.2.840.10008.5.1.4.1.1.3.1", "US"),
    ("1.2.840.10008.5.1.4.1.1.4", "MR"),
    ("1.2.840.10008.5.1.4.1.1.4.1", "MR"),
    ("1.2.840.10008.5.1.4.1.1.6.1", "US"),
    ("1.2.840.10008.5.1.4.1.1.9.1.1", "ECG"),
    ("1.2.840.10008.5.1.4.1.1.9.1.2", "ECG"),
    ("1.2.840.10008.5.1.4.1.1.12.1", "XA"),
    ("1.2.840.10008.5.1.4.1.1.12.2", "RF"),
    ("1.2.840.10008.5.1.4.1.1.13.1.3", "MG"),
    ("1.2.840.10008.5.1.4.1.1.20", "NM"),
    ("1.2.840.10008.5.1.4.1.1.128", "PT"),
    ("1.2.840.10008.5.1.4.1.1.481.1", "RTIMAGE"),
];

/// The modality of the images a storage SOP class carries.
pub fn modality(sop_class: &str) -> Option<&'static str> {
    STORAGE
        .iter()
        .find(|(uid, _)| *uid == sop_class)
        .map(|&(_, m)| m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_name_toolkits_and_only_at_a_component_boundary() {
        assert_eq!(toolkit("1.2.276.0.7230010.3.0.3.6.7"), Some("OFFIS DCMTK"));
        assert_eq!(
            toolkit("1.2.826.0.1.3680043.9.3811.3.0.4"),
            Some("pynetdicom")
        );
        assert_eq!(toolkit("1.3.6.1.4.1.30071.8"), Some("fo-dicom"));
        assert_eq!(toolkit("1.2.840.113619.6.374"), Some("GE Healthcare"));
        // 1.2.840.1136190 is not under 1.2.840.113619.
        assert_eq!(toolkit("1.2.840.1136190.1"), None);
        assert_eq!(toolkit("1.2.3.4"), None);
    }

    #[test]
    fn storage_classes_name_their_modality() {
        assert_eq!(modality("1.2.840.10008.5.1.4.1.1.2"), Some("CT"));
        assert_eq!(modality("1.2.840.10008.5.1.4.1.1.4"), Some("MR"));
        assert_eq!(modality("1.2.840.10008.1.1"), None);
    }
}
