//! Flow packet and byte counts, and Community IDs, against independent
//! implementations: tshark's conversation counts and the reference
//! `communityid` Python package, frozen per capture in
//! `tests/expected/conv/<capture>.tsv` by `tests/tools/tshark_conv.py`.
//! Regenerate with `tests/tools/freeze_conv.sh` and review the diff.

mod common;

use common::*;

fn frozen(capture: &std::path::Path) -> Option<String> {
    let name = capture.file_name()?.to_str()?;
    std::fs::read_to_string(
        repo()
            .join("tests/expected/conv")
            .join(format!("{name}.tsv")),
    )
    .ok()
}

#[test]
fn every_capture_has_frozen_counts() {
    let missing: Vec<_> = captures()
        .into_iter()
        .filter(|c| frozen(c).is_none())
        .collect();
    assert!(
        missing.is_empty(),
        "run tests/tools/freeze_conv.sh for {missing:?}"
    );
    assert!(!captures().is_empty());
}

#[test]
fn flow_counts_and_community_ids_equal_the_frozen_reference() {
    for cap in captures() {
        let Some(text) = frozen(&cap) else { continue };
        let want = conv_from_tsv(&text);
        let got = conv_from_eve(&eve(&cap, 1));
        let keys_w: Vec<_> = want.keys().collect();
        let keys_g: Vec<_> = got.keys().collect();
        assert_eq!(keys_g, keys_w, "{}: conversations differ", cap.display());
        for (k, (counts, cid)) in &want {
            let (gc, gcid) = &got[k];
            assert_eq!(gc, counts, "{}: {k:?} frames/bytes a→b, b→a", cap.display());
            if cid != "-" {
                assert_eq!(gcid, cid, "{}: {k:?} community_id", cap.display());
            }
        }
    }
}

/// Runs only where tshark is installed: the frozen files must still be what
/// tshark says today, so a regenerated capture cannot drift from them.
#[test]
fn frozen_counts_are_what_tshark_says() {
    if !have("tshark") || !have("python3") {
        common::skip("tshark or python3 not installed; frozen counts used alone");
        return;
    }
    for cap in captures() {
        let out = std::process::Command::new("python3")
            .arg(repo().join("tests/tools/tshark_conv.py"))
            .arg(&cap)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            cap.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let live = conv_from_tsv(&String::from_utf8(out.stdout).unwrap());
        let frozen = conv_from_tsv(&frozen(&cap).unwrap_or_default());
        // The community id column is "-" where the python package is absent.
        let strip =
            |m: &ConvCounts| -> Vec<_> { m.iter().map(|(k, (c, _))| (k.clone(), *c)).collect() };
        assert_eq!(strip(&live), strip(&frozen), "{}", cap.display());
    }
}
