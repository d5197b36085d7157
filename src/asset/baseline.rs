//! A baseline inventory (`--inventory-baseline FILE`, an inventory a
//! previous run wrote) and how the hosts of this run differ from it.
//!
//! Drift, per host of this run:
//! - `new-device`: its address is not in the baseline and it speaks a
//!   clinical protocol (a DICOM, MQTT or HL7 role);
//! - `ae-title-moved`: one of its DICOM AE titles (SCU or SCP) belongs to
//!   another address in the baseline, and not to this one;
//! - `device-changed`: the baseline knew its manufacturers, models,
//!   software versions or DICOM implementation version names (the
//!   software that speaks DICOM for it), and this run saw a value of that
//!   kind the baseline did not list.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde_json::{json, Value};

use super::{Asset, Fact, Kind, Seen};

/// What the baseline says of one host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Known {
    /// Values per kind.
    pub facts: BTreeMap<Kind, BTreeSet<String>>,
}

/// Kinds compared for `device-changed`.
pub const DEVICE_KINDS: [Kind; 4] = [
    Kind::Manufacturer,
    Kind::Model,
    Kind::SoftwareVersion,
    Kind::ImplementationVersion,
];

/// Kinds holding AE titles.
const AE_KINDS: [Kind; 2] = [Kind::DicomScuAe, Kind::DicomScpAe];

/// A baseline inventory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Baseline {
    pub hosts: BTreeMap<IpAddr, Known>,
    /// AE title → the addresses that had it.
    ae_titles: BTreeMap<String, BTreeSet<IpAddr>>,
}

/// One difference from the baseline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    /// `new-device`, `ae-title-moved`, `device-changed`.
    pub finding: &'static str,
    /// The kind of fact that differs (none for a new device).
    pub kind: Option<Kind>,
    /// The value seen now.
    pub value: Option<String>,
    /// What the baseline had: the AE title's addresses, the kind's values.
    pub baseline: Vec<String>,
}

/// A host compared with the baseline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comparison {
    pub known: bool,
    pub drift: Vec<Drift>,
}

impl Comparison {
    pub fn to_value(&self) -> Value {
        let drift: Vec<Value> = self
            .drift
            .iter()
            .map(|d| {
                let mut o = serde_json::Map::new();
                o.insert("finding".into(), d.finding.into());
                if let Some(k) = d.kind {
                    o.insert("fact".into(), k.name().into());
                }
                if let Some(v) = &d.value {
                    o.insert("value".into(), v.as_str().into());
                }
                if !d.baseline.is_empty() {
                    o.insert("baseline".into(), d.baseline.clone().into());
                }
                Value::Object(o)
            })
            .collect();
        json!({
            "status": if self.known { "known" } else { "new" },
            "drift": drift,
        })
    }
}

/// The JSON inventory's list fields and the kind each holds, as
/// `log::asset_object` writes them.
fn json_lists(o: &Value) -> Vec<(Kind, Vec<String>)> {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    for (group, kinds) in super::log::GROUPS {
        for (kind, name) in *kinds {
            out.push((*kind, strings(&o[group][name])));
        }
    }
    out.push((Kind::Role, strings(&o["roles"])));
    out.push((Kind::Service, strings(&o["services"])));
    let macs: Vec<String> = o["macs"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|m| m["address"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    out.push((Kind::Mac, macs));
    out
}

impl Baseline {
    /// Reads an inventory file (`--inventory` of an earlier run): JSON, or
    /// CSV when the name ends in `.csv`.
    ///
    /// # Errors
    /// Unreadable, or not an inventory.
    pub fn load(path: &std::path::Path) -> Result<Baseline, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("baseline {}: {e}", path.display()))?;
        let csv = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
        let r = if csv {
            Baseline::parse_csv(&text)
        } else {
            Baseline::parse_json(&text)
        };
        r.map_err(|e| format!("baseline {}: {e}", path.display()))
    }

    /// Parses a JSON inventory.
    ///
    /// # Errors
    /// Not JSON, or no `hosts` list of objects with an `ip`.
    pub fn parse_json(text: &str) -> Result<Baseline, String> {
        let v: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let hosts = v["hosts"]
            .as_array()
            .ok_or("no \"hosts\" list: not a wardwatch inventory")?;
        let mut b = Baseline::default();
        for h in hosts {
            let ip: IpAddr = h["ip"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .ok_or("a host without a valid \"ip\"")?;
            let mut k = Known::default();
            for (kind, vals) in json_lists(h) {
                if !vals.is_empty() {
                    k.facts.entry(kind).or_default().extend(vals);
                }
            }
            b.add(ip, k);
        }
        Ok(b)
    }

    /// Parses a CSV inventory (`log::CSV_COLUMNS`, lists joined with `;`).
    ///
    /// # Errors
    /// No `ip` column, or a row whose address does not parse.
    pub fn parse_csv(text: &str) -> Result<Baseline, String> {
        let mut rows = text.lines().filter(|l| !l.trim().is_empty()).map(csv_split);
        let header = rows.next().ok_or("empty file")?;
        let ip_col = header
            .iter()
            .position(|c| c == "ip")
            .ok_or("no \"ip\" column: not a wardwatch inventory")?;
        let mut b = Baseline::default();
        for row in rows {
            let ip: IpAddr = row
                .get(ip_col)
                .and_then(|s| s.parse().ok())
                .ok_or("a row without a valid ip")?;
            let mut k = Known::default();
            for (col, val) in header.iter().zip(&row) {
                let kind = if col == "mac" {
                    Some(Kind::Mac)
                } else {
                    Kind::from_name(col)
                };
                let Some(kind) = kind else {
                    continue;
                };
                let vals: BTreeSet<String> = val
                    .split(';')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect();
                if !vals.is_empty() {
                    k.facts.entry(kind).or_default().extend(vals);
                }
            }
            b.add(ip, k);
        }
        Ok(b)
    }

    fn add(&mut self, ip: IpAddr, k: Known) {
        for kind in AE_KINDS {
            for t in k.facts.get(&kind).into_iter().flatten() {
                self.ae_titles.entry(t.clone()).or_default().insert(ip);
            }
        }
        self.hosts.insert(ip, k);
    }

    /// How `a` (its facts first seen no later than `upto`) differs from
    /// the baseline.
    pub fn compare(&self, a: &Asset, upto: Option<Seen>) -> Comparison {
        self.compare_facts(a, |f| upto.is_none_or(|u| f.first <= u))
    }

    /// How `a`, with only the facts `keep` takes, differs from the
    /// baseline.
    pub fn compare_facts(&self, a: &Asset, keep: impl Fn(&Fact) -> bool) -> Comparison {
        let seen = |k: Kind| -> Vec<&str> {
            let mut v: Vec<_> = a.facts.iter().filter(|f| f.kind == k && keep(f)).collect();
            v.sort_by(|x, y| (x.first, &x.value).cmp(&(y.first, &y.value)));
            v.into_iter().map(|f| &*f.value).collect()
        };
        let known = self.hosts.get(&a.ip);
        let mut drift = Vec::new();
        let clinical = seen(Kind::Role)
            .iter()
            .any(|r| ["dicom", "mqtt", "hl7"].iter().any(|p| r.starts_with(p)));
        if known.is_none() && clinical {
            drift.push(Drift {
                finding: "new-device",
                kind: None,
                value: None,
                baseline: Vec::new(),
            });
        }
        for kind in AE_KINDS {
            for t in seen(kind) {
                let Some(owners) = self.ae_titles.get(t) else {
                    continue;
                };
                if !owners.contains(&a.ip) {
                    drift.push(Drift {
                        finding: "ae-title-moved",
                        kind: Some(kind),
                        value: Some(t.to_string()),
                        baseline: owners.iter().map(|ip| ip.to_string()).collect(),
                    });
                }
            }
        }
        if let Some(k) = known {
            for kind in DEVICE_KINDS {
                let Some(before) = k.facts.get(&kind) else {
                    continue;
                };
                for v in seen(kind) {
                    if !before.contains(v) {
                        drift.push(Drift {
                            finding: "device-changed",
                            kind: Some(kind),
                            value: Some(v.to_string()),
                            baseline: before.iter().cloned().collect(),
                        });
                    }
                }
            }
        }
        Comparison {
            known: known.is_some(),
            drift,
        }
    }
}

/// One CSV line into fields (RFC 4180 quoting; a field does not span
/// lines in our inventories).
fn csv_split(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    out.push(cur);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_unquote() {
        assert_eq!(
            csv_split("a,\"VMware, Inc.\",\"x\"\"y\",,"),
            ["a", "VMware, Inc.", "x\"y", "", ""]
        );
    }
}
