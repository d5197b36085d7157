//! Any re-segmentation of a real MQTT stream yields the same records.
//!
//! The streams are the in-order bytes the worker hands the MQTT parser for
//! real captures (`pcaps/mqtt_v5_props.pcap`: every v5 packet type used,
//! properties, a topic alias; `pcaps/mqtt_large_split.pcap`: a 198 KB
//! PUBLISH over ~140 segments and up to 22 small messages per segment),
//! as a list of turns (direction, bytes). The property cuts every turn at
//! random points and checks the records equal those of the original
//! segmentation.
#![allow(clippy::unwrap_used, clippy::panic)]

#[path = "common/parser_input.rs"]
mod parser_input;

use proptest::prelude::*;
use wardwatch::app::mqtt::{MqttConfig, Record};
use wardwatch::app::{AppProto, AppRecord, StreamContext};
use wardwatch::flow::Direction;
use wardwatch::time::Timestamp;

type Calls = Vec<(Direction, Vec<u8>)>;

/// The parser's input for every MQTT flow of `capture`, call by call.
fn flows(capture: &str) -> Vec<Calls> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("pcaps")
        .join(capture);
    parser_input::parser_input(&path, |p, _| p == AppProto::Mqtt)
        .iter()
        .map(|f| f.data().into_iter().map(|(d, b)| (d, b.to_vec())).collect())
        .collect()
}

/// Adjacent calls of one direction joined.
fn turns(calls: &Calls) -> Calls {
    let mut out: Calls = Vec::new();
    for (d, b) in calls {
        match out.last_mut() {
            Some((ld, lb)) if ld == d => lb.extend_from_slice(b),
            _ => out.push((*d, b.clone())),
        }
    }
    out
}

fn run(calls: &[(Direction, &[u8])]) -> Vec<AppRecord> {
    let mut p = wardwatch::app::mqtt::new_parser(&MqttConfig::default()).unwrap();
    let mut out = Vec::new();
    for (d, b) in calls {
        let mut ctx = StreamContext {
            ts: Timestamp(0),
            records: &mut out,
        };
        p.data(&mut ctx, *d, b);
    }
    let mut ctx = StreamContext {
        ts: Timestamp(0),
        records: &mut out,
    };
    p.end(&mut ctx);
    out
}

fn records(r: &[AppRecord]) -> Vec<&Record> {
    r.iter()
        .filter_map(|r| match r {
            AppRecord::Mqtt(m) => Some(m),
            _ => None,
        })
        .collect()
}

/// Cuts every turn at the points `cuts` (fractions of its length).
fn resplit<'a>(turns: &'a Calls, cuts: &[Vec<u16>]) -> Vec<(Direction, &'a [u8])> {
    let mut out = Vec::new();
    for (i, (d, b)) in turns.iter().enumerate() {
        let mut points: Vec<usize> = cuts
            .get(i % cuts.len().max(1))
            .map(|c| {
                c.iter()
                    .map(|&f| b.len() * usize::from(f) / 65536)
                    .collect()
            })
            .unwrap_or_default();
        points.push(0);
        points.push(b.len());
        points.sort_unstable();
        points.dedup();
        for w in points.windows(2) {
            out.push((*d, &b[w[0]..w[1]]));
        }
    }
    out
}

fn check(capture: &str, expect_records: usize, cuts: &[Vec<u16>]) {
    let fl = flows(capture);
    let mut total = 0;
    for calls in &fl {
        let orig: Vec<(Direction, &[u8])> = calls.iter().map(|(d, b)| (*d, &b[..])).collect();
        let want = run(&orig);
        assert!(
            want.iter().all(|r| matches!(r, AppRecord::Mqtt(_))),
            "{capture}: anomaly in the original segmentation"
        );
        total += records(&want).len();
        let t = turns(calls);
        let got = run(&resplit(&t, cuts));
        assert_eq!(records(&got), records(&want), "{capture}");
        assert_eq!(got.len(), want.len());
    }
    assert_eq!(total, expect_records, "{capture}: records");
}

#[test]
fn byte_by_byte_equals_original_segmentation() {
    let fl = flows("mqtt_v5_props.pcap");
    for calls in &fl {
        let orig: Vec<(Direction, &[u8])> = calls.iter().map(|(d, b)| (*d, &b[..])).collect();
        let want = run(&orig);
        let t = turns(calls);
        let mut one: Vec<(Direction, &[u8])> = Vec::new();
        for (d, b) in &t {
            for i in 0..b.len() {
                one.push((*d, &b[i..i + 1]));
            }
        }
        assert_eq!(records(&run(&one)), records(&want));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn any_resegmentation_of_v5_stream_gives_the_same_records(
        cuts in prop::collection::vec(prop::collection::vec(any::<u16>(), 0..8), 1..16)
    ) {
        // 41 messages (pcaps/README.md) in 20 transactions.
        check("mqtt_v5_props.pcap", 20, &cuts);
    }

    #[test]
    fn any_resegmentation_of_large_split_stream_gives_the_same_records(
        cuts in prop::collection::vec(prop::collection::vec(any::<u16>(), 0..32), 1..8)
    ) {
        // 3 logins, 1 subscription, 802 publishes (801 QoS 0 + 1 QoS 1 with
        // its PUBACK), 3 disconnects.
        check("mqtt_large_split.pcap", 809, &cuts);
    }
}
