//! The fuzz harnesses as plain tests: every seed under `fuzz/seeds/<target>/`
//! (inputs derived from the real captures, so each property is also checked
//! on real traffic) and every input the fuzzer saved under
//! `fuzz/regressions/<target>/` run through the same harness code as the
//! fuzz targets, included from `fuzz/src/`.
//!
//! A saved input is named after what it found. Once its bug is fixed it is
//! replayed by `fixed_regressions_still_pass`; while the bug is open (in
//! code another branch owns) it is listed in [`OPEN`] with its own ignored
//! test, so `cargo test -- --ignored` shows every open finding.
//!
//! Fixed and replayed: `mqtt_split/*` (MQTT records depended on
//! segmentation at the start of a stream and at resync boundaries: a first
//! to-server call too short for a fixed header, issue 11's `00` then
//! `e0 00 e0 00`, and `ff 50 02 00 50` then `50 50`; fixed by wt-mqtt),
//! `pipeline_workers/threshold-by-src-per-worker` (two MQTT flows from
//! 10.20.1.15 on different workers alerted twice on a `limit` 1 per source
//! rule with 3 workers, once with 1; fixed by wt-detect's shared threshold
//! table), `dicom/strict-associate-rq-of-68-bytes-cut-short` (a panic: the
//! strict plausibility check of an A-ASSOCIATE-RQ/AC header of length 68
//! read its reserved bytes up to offset 74 having made sure of 10, so a
//! hunt after a gap ending within those bytes indexed past the slice and
//! the worker died; fixed in src/app/dicom/parser.rs by this branch),
//! `phi/nir-separators-past-the-value-cap` (a harness bug: an identifier
//! cut by the value cap was checked as if whole), `reassembly/*` (harness
//! bugs: the hole timeout fires before a late segment's payload and FIN).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../fuzz/src/lib.rs"]
mod harness;

use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The harness of `target`.
fn harness(target: &str) -> fn(&[u8]) {
    harness::TARGETS
        .iter()
        .find(|(n, _)| *n == target)
        .map(|(_, f)| *f)
        .unwrap_or_else(|| panic!("no fuzz target {target}"))
}

/// Files of `fuzz/<kind>/<target>/`, sorted.
fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = fuzz_dir().join(kind).join(target);
    let mut v: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(_) => Vec::new(),
    };
    v.retain(|p| p.is_file());
    v.sort();
    v
}

/// Runs `target`'s harness on `path`, naming the file when it fails.
fn replay(target: &str, path: &Path) {
    assert!(path.is_file(), "no input {}", path.display());
    let data = std::fs::read(path).unwrap();
    let run = harness(target);
    if std::panic::catch_unwind(|| run(&data)).is_err() {
        panic!("fuzz target {target} fails on {}", path.display());
    }
}

/// Open findings: (target, file under `fuzz/regressions/<target>/`), each
/// with an ignored test below that says what it found.
const OPEN: &[(&str, &str)] = &[
    ("dicom_dataset", "deflate-error-drops-inflated-output"),
    ("dicom_dataset", "deflate-error-fuzzer-minimized"),
    ("dicom_dataset", "attribute-bytes-counted-by-capacity"),
    ("dicom_split", "resync-limit-not-applied-within-one-call"),
    (
        "mqtt_split",
        "oversized-connect-protocol-level-by-segmentation",
    ),
    ("mqtt_split", "broken-connect-level-changes-anomalies"),
    ("pipeline_workers", "threshold-late-by-worker-count"),
];

fn open_finding(target: &str, name: &str) {
    assert!(
        OPEN.contains(&(target, name)),
        "{target}/{name} is not in OPEN"
    );
    let path = fuzz_dir().join("regressions").join(target).join(name);
    // The targets exempt their open findings so that CI keeps fuzzing the
    // rest (fuzz/src/dataset.rs, fuzz/src/app.rs); the tests must not.
    let data = std::fs::read(&path).unwrap();
    match target {
        "dicom_dataset" => harness::dataset::dicom_dataset_strict(&data),
        "dicom_split" => harness::app::dicom_split_strict(&data),
        // Depends on thread timing: fails in most runs, so it is run until
        // it fails (20 runs all passing by chance: well under 1 in 10^6).
        "pipeline_workers" => {
            for _ in 0..20 {
                harness::pipeline::pipeline_workers_strict(&data);
            }
        }
        _ => replay(target, &path),
    }
}

// New finding (src/app/dicom/dataset.rs, wt-dicom): when inflating returns
// an error, the bytes inflated by that same call are dropped unwalked. A
// deflated data set holding PatientName `DOE^JOHN`, then one invalid
// deflate block (byte 0x07: final block of the reserved type 11): fed in
// one piece it keeps no attribute, fed in two (the name's part first) it
// keeps PatientName. One trailing byte hides the PHI of a deflated C-STORE
// that travels in one PDV. Hand-built with Python's zlib (raw deflate,
// sync flush): `sel 0xfd` (deflated, 51 attributes), `max_value 64`,
// `sizes [22, 255]`, then the 23 bytes.
#[test]
#[ignore = "finding: a deflate error drops the attributes inflated in the same call (wt-dicom)"]
fn dicom_dataset_deflate_error_drops_inflated_output() {
    open_finding("dicom_dataset", "deflate-error-drops-inflated-output");
}

// The same finding as the fuzzer first met it (minimised, 51 bytes; its
// first byte set to 0xfd when the target's layout changed, to keep the
// deflated syntax).
#[test]
#[ignore = "finding: a deflate error drops the attributes inflated in the same call (wt-dicom)"]
fn dicom_dataset_deflate_error_fuzzer_minimized() {
    open_finding("dicom_dataset", "deflate-error-fuzzer-minimized");
}

// New finding (src/app/dicom/dataset.rs, wt-dicom): the value bytes kept
// (`max_attribute_bytes`) are counted by the capacity of each value's
// buffer, which depends on how the value was cut into PDV fragments (one
// piece: exact; many: grown by doubling). Five kept attributes of 50
// bytes with a 256-byte budget: whole, all five are kept; in 7-byte
// fragments the fifth, PatientName `DOE^JOHN`, is listed as truncated with
// no value. Found by the `dicom_dataset` seeds of dicom_store_large (real
// capture) once the target set `max_attribute_bytes`; this input is
// hand-built: `sel 51` (explicit VR LE, 11 attributes), `max_value 64`,
// `sizes [7]`, then five explicit-VR-LE elements (InstitutionName,
// InstitutionAddress, StationName, StudyDescription, PatientName), each
// 50 bytes padded with spaces.
#[test]
#[ignore = "finding: kept value bytes are counted by buffer capacity, so what is kept depends on fragmentation (wt-dicom)"]
fn dicom_dataset_attribute_bytes_counted_by_capacity() {
    open_finding("dicom_dataset", "attribute-bytes-counted-by-capacity");
}

// New finding (src/app/dicom/state.rs, wt-dicom): a hunt for a PDU start
// applies `max_resync` only across calls. 769 bytes of garbage then a
// P-DATA-TF PDU, to the server, with `max_resync` 768: in one call the
// hunt finds the PDU (the bytes it discarded are counted only after it
// decided) and an association record is logged; in 1-byte calls it gives
// up at byte 769 with `resync_failed` and logs nothing. Found by
// `dicom_split` in 10 s, minimised by hand-driven reduction (the garbage
// replaced by `A`s): `cfg 0x98` (small limits, `max_resync` 768), no
// sizes (1-byte pieces), one to-server step of 781 bytes.
#[test]
#[ignore = "finding: max_resync is not applied to bytes discarded within one call (wt-dicom)"]
fn dicom_split_resync_limit_not_applied_within_one_call() {
    open_finding("dicom_split", "resync-limit-not-applied-within-one-call");
}

// New finding (src/app/mqtt/state.rs, `keep_level_of_broken_connect`,
// wt-mqtt): a CONNECT that fails to parse gives the flow its protocol
// level only when its protocol name and level are in the same call as its
// fixed header. To the server: PUBCOMP `70 02 00 10`, then a CONNECT with
// invalid flags (`1f`) declaring 54 bytes (over `max_msg_len` 40) whose
// first 7 arrive (`00 04 MQTT 05`), with a PUBCOMP `70 02 79 00` after it.
// In one call the later PUBCOMP's record says `protocol_version` 5 and
// `mid_stream_guess` false; in 1-byte calls 0 and true. The level decides
// how later CONNACKs and PUBLISHes are decoded, so a sender can choose it
// by segmenting. Found by `mqtt_split` in 4 minutes, minimised by
// libFuzzer (`-minimize_crash`), rewritten by hand as `cfg 0xb1` (small
// limits: `max_msg_len` 40), no sizes (1-byte pieces), one to-server step
// of those 17 bytes. The target is listed in fuzz/known (CI skips it)
// while this is open.
#[test]
#[ignore = "finding: the level of a broken CONNECT is kept only when it arrived with its header (wt-mqtt)"]
fn mqtt_split_oversized_connect_protocol_level_by_segmentation() {
    open_finding(
        "mqtt_split",
        "oversized-connect-protocol-level-by-segmentation",
    );
}

// New finding (src/detect/threshold.rs, `detect.threshold_late`,
// wt-detect): with the capture's time running backwards, the count of
// threshold matches decided late depends on the worker count and on
// thread timing. A capture of two packets (fuzzer-minimised, 221 bytes):
// an MQTT CONNECT without credentials (sid of the anonymous-access rule,
// which has a threshold), then its CONNACK stamped 4096 s earlier. With 1
// worker `threshold_late` is 1 on every run; with 3 it is 0 or 1 from run
// to run (about 6 runs in 10 give 0). Alerts are the same; the stats are
// not, against the shared decision that they are.
#[test]
#[ignore = "finding: detect.threshold_late depends on the worker count and thread timing (wt-detect)"]
fn pipeline_workers_threshold_late_by_worker_count() {
    open_finding("pipeline_workers", "threshold-late-by-worker-count");
}

// The same finding changing the anomalies, with the default limits (found
// again by `mqtt_split` in 58 332 executions, minimised by libFuzzer, 23
// bytes): to the server `70 03 6e 02 00`, then a CONNECT with invalid flags
// (`15`) of 9 bytes `00 04 MQTT 04 2f 3a`, then `f9 6a`. In one call the
// level 4 is kept and the rest reads as two `invalid_flags`; in 1-byte
// calls it is not, and the rest gives `invalid_flags` and
// `unassigned_msg_type`.
#[test]
#[ignore = "finding: the level of a broken CONNECT is kept only when it arrived with its header (wt-mqtt)"]
fn mqtt_split_broken_connect_level_changes_anomalies() {
    open_finding("mqtt_split", "broken-connect-level-changes-anomalies");
}

fn seeds_of(target: &str) {
    // A target without its own seeds shares those of the name before its
    // first `_`, as fuzz/run.sh does.
    let mut seeds = inputs("seeds", target);
    if seeds.is_empty() {
        seeds = inputs("seeds", target.split('_').next().unwrap_or(target));
    }
    assert!(
        !seeds.is_empty(),
        "no seeds in fuzz/seeds/{target}/ (fuzz/seed.sh writes them)"
    );
    for s in &seeds {
        replay(target, s);
    }
}

#[test]
fn capture_seeds_hold_the_properties() {
    seeds_of("capture");
}

#[test]
fn decode_seeds_hold_the_properties() {
    seeds_of("decode");
}

#[test]
fn reassembly_seeds_hold_the_properties() {
    seeds_of("reassembly");
}

#[test]
fn mqtt_seeds_hold_the_properties() {
    seeds_of("mqtt");
}

#[test]
fn mqtt_split_seeds_hold_the_properties() {
    seeds_of("mqtt_split");
}

#[test]
fn dicom_seeds_hold_the_properties() {
    seeds_of("dicom");
}

#[test]
fn dicom_split_seeds_hold_the_properties() {
    seeds_of("dicom_split");
}

#[test]
fn hl7_seeds_hold_the_properties() {
    seeds_of("hl7");
}

#[test]
fn hl7_split_seeds_hold_the_properties() {
    seeds_of("hl7_split");
}

#[test]
fn dicom_dataset_seeds_hold_the_properties() {
    seeds_of("dicom_dataset");
}

#[test]
fn rules_seeds_hold_the_properties() {
    seeds_of("rules");
}

#[test]
fn detect_seeds_hold_the_properties() {
    seeds_of("detect");
}

#[test]
fn phi_seeds_hold_the_properties() {
    seeds_of("phi");
}

#[test]
fn pipeline_seeds_hold_the_properties() {
    seeds_of("pipeline");
}

#[test]
fn pipeline_workers_seeds_hold_the_properties() {
    seeds_of("pipeline_workers");
}

#[test]
fn every_target_has_a_seed_test_and_a_binary() {
    for (t, _) in harness::TARGETS {
        assert!(
            fuzz_dir()
                .join("fuzz_targets")
                .join(format!("{t}.rs"))
                .is_file(),
            "no fuzz_targets/{t}.rs"
        );
        assert!(
            include_str!("fuzz_regressions.rs").contains(&format!("fn {t}_seeds_hold")),
            "no seed test for {t}"
        );
    }
}

#[test]
fn fixed_regressions_still_pass() {
    for (t, _) in harness::TARGETS {
        for p in inputs("regressions", t) {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if !OPEN.contains(&(*t, name)) {
                replay(t, &p);
            }
        }
    }
    for (t, name) in OPEN {
        let p = fuzz_dir().join("regressions").join(t).join(name);
        assert!(p.is_file(), "open finding {} has no input", p.display());
    }
}

#[test]
fn every_detect_target_rule_loads() {
    let (_, errors) = harness::detect::build(harness::detect::DETECT_RULES);
    assert!(errors.is_empty(), "{errors:#?}");
}

#[test]
fn turns_encode_and_parse_round_trip() {
    use harness::turns::{encode, parse, Call, Step};
    use wardwatch::flow::Direction;
    // Hand-built steps: data both ways (one longer than a step holds), a
    // small and a large gap, and a shed request.
    let steps = vec![
        Step {
            shed: false,
            call: Call::Data(Direction::ToServer, vec![0x10, 0x0c, 0x00]),
        },
        Step {
            shed: true,
            call: Call::Gap(Direction::ToClient, 7),
        },
        Step {
            shed: false,
            call: Call::Gap(Direction::ToServer, 3 << 16),
        },
        Step {
            shed: false,
            call: Call::Data(Direction::ToClient, vec![0xab; 70_000]),
        },
    ];
    let mut bytes = Vec::new();
    encode(&mut bytes, &steps);
    let got = parse(&mut harness::input::Cursor::new(&bytes));
    let mut want = steps.clone();
    // Data longer than 65535 bytes becomes two steps.
    want.pop();
    want.push(Step {
        shed: false,
        call: Call::Data(Direction::ToClient, vec![0xab; 65_535]),
    });
    want.push(Step {
        shed: false,
        call: Call::Data(Direction::ToClient, vec![0xab; 70_000 - 65_535]),
    });
    assert_eq!(got, want);
    assert_eq!(harness::turns::merged(&got).len(), 4);
}

/// Not a test: rewrites `fuzz/seeds/` from `pcaps/` and the rule files
/// (`fuzz/seed.sh` runs it with `FUZZ_WRITE_SEEDS=1`).
#[test]
#[ignore = "tool: writes fuzz/seeds/ (fuzz/seed.sh)"]
fn write_seeds() {
    assert!(
        std::env::var_os("FUZZ_WRITE_SEEDS").is_some(),
        "set FUZZ_WRITE_SEEDS=1 to rewrite fuzz/seeds/"
    );
    let n = harness::seeds::write_all(Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap();
    eprintln!("{n} seeds written");
}
