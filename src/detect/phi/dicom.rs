//! DICOM data sets: attributes of the Patient module and patient
//! identification (PS3.3 §C.7.1.1, PS3.6 group 0010).
//!
//! An identifying attribute with a non-empty value in any data set of an
//! exchange — request, final response, pending responses — is PHI. PatientSex,
//! PatientAge and PatientWeight alone do not identify anyone and are not
//! listed. A value made only of wildcards and separators (`*`, `?`, `^`,
//! `=`, spaces: a C-FIND universal or wildcard match key, PS3.4 §C.2.2.2)
//! is a query template, not PHI; so is a date range (`19000101-19991231`)
//! in PatientBirthDate. The national-identifier checks run on every value;
//! a PatientID whose IssuerOfPatientID (0010,0021) names the BSN (the
//! NLMINBIZA authority or its OID) is checked as a BSN.

use super::ids::{self, Hint};
use super::{Collector, PhiKind};
use crate::app::dicom::{DataSet, Exchange, Message, Record};

const PATIENT_ID: u32 = 0x0010_0020;
const ISSUER_OF_PATIENT_ID: u32 = 0x0010_0021;
const PATIENT_BIRTH_DATE: u32 = 0x0010_0030;

/// Identifying attributes and their evidence names.
const IDENTIFYING: [(u32, &str); 14] = [
    (0x0010_0010, "PatientName (0010,0010)"),
    (PATIENT_ID, "PatientID (0010,0020)"),
    (PATIENT_BIRTH_DATE, "PatientBirthDate (0010,0030)"),
    (0x0010_0032, "PatientBirthTime (0010,0032)"),
    (0x0010_1000, "OtherPatientIDs (0010,1000)"),
    (0x0010_1001, "OtherPatientNames (0010,1001)"),
    (0x0010_1002, "OtherPatientIDsSequence (0010,1002)"),
    (0x0010_1005, "PatientBirthName (0010,1005)"),
    (0x0010_1040, "PatientAddress (0010,1040)"),
    (0x0010_1060, "PatientMotherBirthName (0010,1060)"),
    (0x0010_1090, "MedicalRecordLocator (0010,1090)"),
    (0x0010_2154, "PatientTelephoneNumbers (0010,2154)"),
    (0x0010_2155, "PatientTelecomInformation (0010,2155)"),
    (0x0010_2297, "ResponsiblePerson (0010,2297)"),
];

/// Other kept attributes in which only national identifiers are looked
/// for.
const ID_ONLY: [(u32, &str); 1] = [(0x0010_4000, "PatientComments (0010,4000)")];

fn is_template(v: &str) -> bool {
    v.chars()
        .all(|c| matches!(c, '*' | '?' | '^' | '=' | ' ' | '\\'))
}

/// Scans every data set of a DICOM record.
pub fn scan(rec: &Record, col: &mut Collector) {
    let Record::Dimse(ex) = rec else {
        return;
    };
    let Exchange {
        request,
        response,
        pending,
        ..
    } = ex.as_ref();
    let messages = request.iter().chain(response.iter()).chain(pending.iter());
    for Message { data_set, .. } in messages {
        if let Some(ds) = data_set {
            scan_data_set(ds, col);
        }
    }
}

fn scan_data_set(ds: &DataSet, col: &mut Collector) {
    let issuer_is_bsn = ds.get(ISSUER_OF_PATIENT_ID).is_some_and(|i| {
        i.split('&')
            .any(|p| p.trim() == ids::BSN_OID || p.trim().eq_ignore_ascii_case("NLMINBIZA"))
    });
    for a in &ds.attributes {
        let named = IDENTIFYING
            .iter()
            .chain(ID_ONLY.iter())
            .find(|(t, _)| *t == a.tag);
        let Some(&(tag, name)) = named else { continue };
        let v = a.value.trim();
        if is_template(v) {
            continue;
        }
        let identifying = IDENTIFYING.iter().any(|(t, _)| *t == tag);
        let range = tag == PATIENT_BIRTH_DATE && v.contains('-');
        if identifying && !range {
            col.add(PhiKind::Dicom, name, v);
        }
        if tag == PATIENT_ID && issuer_is_bsn {
            ids::check_hinted(Hint::Bsn, v, name, col);
        }
        // Multi-valued attributes separate values with a backslash.
        for part in v.split('\\') {
            ids::scan_text(part.as_bytes(), Some(name), col);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::dicom::{Association, Attribute, Command};
    use crate::detect::phi::{PhiConfig, PhiReport};

    fn attr(tag: u32, value: &str) -> Attribute {
        Attribute {
            tag,
            value: value.into(),
            truncated: false,
        }
    }

    fn message(attrs: Vec<Attribute>) -> Message {
        Message {
            presentation_context_id: 1,
            command: Command::default(),
            data_set: Some(DataSet {
                attributes: attrs,
                ..Default::default()
            }),
        }
    }

    fn run(rec: &Record) -> PhiReport {
        let mut col = Collector::new(&PhiConfig {
            max_evidence: 32,
            ..PhiConfig::default()
        });
        scan(rec, &mut col);
        col.finish()
    }

    fn exchange(request: Vec<Attribute>, pending: Vec<Vec<Attribute>>) -> Record {
        Record::Dimse(Box::new(Exchange {
            request: Some(message(request)),
            pending: pending.into_iter().map(message).collect(),
            ..Default::default()
        }))
    }

    #[test]
    fn wildcard_only_query_keys_are_not_phi() {
        let rec = exchange(
            vec![
                attr(0x0010_0010, "*"),
                attr(0x0010_0020, ""),
                attr(PATIENT_BIRTH_DATE, ""),
                attr(0x0010_0040, ""),
                attr(0x0010_1001, "?^*"),
            ],
            vec![],
        );
        assert!(run(&rec).is_empty());
    }

    #[test]
    fn birth_date_range_is_not_phi_but_a_patient_id_key_is() {
        let rec = exchange(vec![attr(PATIENT_BIRTH_DATE, "19000101-19991231")], vec![]);
        assert!(run(&rec).is_empty());
        let rec = exchange(vec![attr(PATIENT_ID, "MRN-TEST-0001")], vec![]);
        assert_eq!(run(&rec).kinds, vec![PhiKind::Dicom]);
    }

    #[test]
    fn pending_response_names_are_phi() {
        let rec = exchange(
            vec![attr(0x0010_0010, "*")],
            vec![vec![attr(0x0010_0010, "TEST^JANE"), attr(0x0010_0040, "F")]],
        );
        let r = run(&rec);
        assert_eq!(r.kinds, vec![PhiKind::Dicom]);
        assert_eq!(r.evidence[0].field, "PatientName (0010,0010)");
        assert_eq!(r.evidence[0].value, "TEST^JANE");
    }

    #[test]
    fn sex_age_weight_alone_are_not_phi() {
        let rec = exchange(
            vec![
                attr(0x0010_0040, "F"),
                attr(0x0010_1010, "125Y"),
                attr(0x0010_1030, "60"),
            ],
            vec![],
        );
        assert!(run(&rec).is_empty());
    }

    #[test]
    fn national_ids_in_patient_values() {
        let rec = exchange(vec![attr(0x0010_1000, "MRN-X\\200017511299931")], vec![]);
        assert_eq!(run(&rec).kinds, vec![PhiKind::Nir, PhiKind::Dicom]);
        let rec = exchange(vec![attr(0x0010_1000, "200017511299932")], vec![]);
        assert_eq!(run(&rec).kinds, vec![PhiKind::Dicom]);
        let rec = exchange(
            vec![
                attr(PATIENT_ID, "111222333"),
                attr(ISSUER_OF_PATIENT_ID, "NLMINBIZA"),
            ],
            vec![],
        );
        assert_eq!(run(&rec).kinds, vec![PhiKind::Bsn, PhiKind::Dicom]);
        let rec = exchange(vec![attr(PATIENT_ID, "111222333")], vec![]);
        assert_eq!(run(&rec).kinds, vec![PhiKind::Dicom]);
    }

    #[test]
    fn association_record_is_clean() {
        let rec = Record::Association(Box::<Association>::default());
        assert!(run(&rec).is_empty());
    }
}
