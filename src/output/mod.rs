//! Output: EVE JSON, one object per line, in Suricata's field names and
//! shapes so the Filebeat/Logstash/Elasticsearch pipelines and dashboards a
//! SOC already runs take it as it is.
//!
//! Owns: serialisation structs (kept apart from the domain types of earlier
//! stages: they take plain values), the `stats` record, the sink that
//! writes lines to a file or stdout, and [`mask`]: the one masking policy
//! and the one rule for bytes that are not UTF-8, used by every protocol's
//! records, by alerts and by PHI evidence.
//!
//! Event types written so far:
//!
//! - `flow` — one per conversation when it ends:
//!   `timestamp` (flow start, UTC, microseconds), `flow_id` (51-bit integer,
//!   the same for every worker count), `event_type`, `vlan` (ids, outermost
//!   first; absent without tags), `src_ip`/`src_port` (the client: the
//!   endpoint that sent the SYN or the first packet), `dest_ip`/`dest_port`,
//!   `proto` (`TCP`, `UDP`, `ICMP`, `IPv6-ICMP`, or the protocol number),
//!   `app_proto` (`mqtt`, `dicom`, `tls`, `failed`; absent when no payload
//!   was seen), `flow{pkts_toserver, pkts_toclient, bytes_toserver,
//!   bytes_toclient, start, end, age, state, reason, alerted}` (bytes are
//!   frame lengths on the wire, as Suricata and tshark count them; `age` in
//!   whole seconds; `state` `new|established|closed`; `reason`
//!   `timeout|forced|shutdown|tcp_reuse`), `community_id` (v1, seed from the
//!   config), and for TCP `tcp{tcp_flags, tcp_flags_ts, tcp_flags_tc, syn,
//!   fin, rst, psh, ack, urg, ecn, cwr, state, ts_gap, tc_gap}` (flags as two
//!   hex digits, booleans only when true).
//! - `stats` — one at the end of a run: counters below `stats` in Suricata's
//!   names (`decoder.*`, `defrag.*`, `flow.*`, `tcp.*`, `app_layer.flow.*`),
//!   plus a few of ours where Suricata has none (`tcp.ooo_segments`,
//!   `tcp.retransmissions`, `tcp.reassembly_gap_bytes`,
//!   `tcp.ooo_limit_reached`, `tcp.ooo_timeout`, `tcp.overlap_window_memcap`,
//!   `app_layer.flow.dicom`, `app_layer.anomalies_capped`).
//!
//! IPv6 addresses are written fully expanded (`2001:0db8:0000:…`), as
//! Suricata does.

pub mod alert;
pub mod eve;
pub mod json;
pub mod mask;
pub mod redis;
pub mod sink;
