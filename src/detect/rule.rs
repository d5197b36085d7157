//! One rule compiled from its text: header sets, meta options, the ordered
//! conditions it tests and the actions a match triggers.
//!
//! Keywords follow Suricata's userguide (Rules Format, Meta Keywords,
//! Payload Keywords, Flow Keywords, Thresholding, Flowbits, GeoIP, IP
//! Reputation, Datasets) plus ours (`phi`, `credentials`, the `allowed`
//! code of `geoip`), and the keywords every application protocol offers
//! through [`super::protocol::Keywords`] (`mqtt.*`, `dicom.*`, `hl7.*`). An
//! unknown option name is an error for that rule.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::addr::{AddrSet, PortSet};
use super::content::{Content, DatasetTest, Item, Pcre};
use super::lookup::{Dataset, Lookups};
use super::phi::PhiKind;
use super::protocol::{hooks, Keyword, TxBuf, TxPredicate};
use super::text::{self, RawRule};
use super::threshold::Threshold;
use super::{Action, Country, EveCache, RuleMeta, Vars};
use crate::app::keyword::UintMatch;
use crate::app::{AppProto, PROTOCOLS};
use crate::flow::Direction;

/// Distinct flowbit names in one engine.
pub(crate) const MAX_FLOWBITS: usize = 1024;

/// The transaction hook bit of an application protocol (a rule's
/// [`Rule::tx`]); protocol ids are below 16.
pub(crate) fn tx_bit(p: AppProto) -> u16 {
    1u16.checked_shl(u32::from(p.id())).unwrap_or(0)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Proto {
    Ip,
    Tcp,
    Udp,
    /// An application protocol over TCP (`alert mqtt …`).
    App(AppProto),
}

impl Proto {
    /// Whether a flow of IP protocol `p` can match.
    pub(crate) fn accepts(self, p: u8) -> bool {
        match self {
            Proto::Ip => true,
            Proto::Udp => p == 17,
            // Asset changes are no flow's.
            Proto::App(AppProto::Asset) => true,
            Proto::Tcp | Proto::App(_) => p == 6,
        }
    }
}

/// What a group of payload keywords reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BufId {
    /// The packet's TCP/UDP payload.
    Payload,
    /// A protocol's sticky buffer over its records.
    Tx(TxBuf),
    /// The rule's source / destination address (for `type: ip` datasets).
    IpSrc,
    IpDst,
}

/// Payload keywords on one buffer.
#[derive(Debug, Clone)]
pub(crate) struct Group {
    pub buf: BufId,
    pub items: Vec<Item>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Src,
    Dst,
    Both,
    Any,
}

impl Side {
    fn parse(s: &str) -> Result<Side, String> {
        Ok(match s {
            "src" => Side::Src,
            "dst" => Side::Dst,
            "both" => Side::Both,
            "any" => Side::Any,
            _ => return Err(format!("unknown side {s:?} (src, dst, both or any)")),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RepOp {
    Gt(u8),
    Lt(u8),
    Eq(u8),
    IsSet,
    IsNotSet,
}

impl RepOp {
    pub(crate) fn test(self, score: Option<u8>) -> bool {
        match (self, score) {
            (RepOp::IsSet, s) => s.is_some(),
            (RepOp::IsNotSet, s) => s.is_none(),
            (RepOp::Gt(v), Some(s)) => s > v,
            (RepOp::Lt(v), Some(s)) => s < v,
            (RepOp::Eq(v), Some(s)) => s == v,
            (_, None) => false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CredTest {
    Default,
    Cleartext,
    None,
}

/// The server's answer a `credentials` test asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Whatever it was, or none.
    Any,
    Accepted,
    Refused,
    /// No answer captured: a one-way capture, an answer lost to a gap
    /// (`answer_lost`), or a server that never answered.
    Unknown,
}

impl Outcome {
    pub(crate) fn matches(self, accepted: Option<bool>) -> bool {
        match self {
            Outcome::Any => true,
            Outcome::Accepted => accepted == Some(true),
            Outcome::Refused => accepted == Some(false),
            Outcome::Unknown => accepted.is_none(),
        }
    }
}

/// A test of a rule, in evaluation order.
#[derive(Debug, Clone)]
pub(crate) enum Cond {
    /// Never true (an `isnotset` on an empty dataset).
    Never,
    AppProto {
        proto: AppProto,
        negated: bool,
    },
    FlowBytes {
        dir: usize,
        m: UintMatch,
    },
    /// True when any of the bits is set (`isset`) / none is (`isnotset`).
    Flowbits {
        bits: Vec<u16>,
        isset: bool,
    },
    /// A protocol's predicate over its records.
    Pred(Arc<dyn TxPredicate>),
    Buffer(Group),
    Geoip {
        side: Side,
        codes: Vec<Country>,
        allowed: bool,
        negated: bool,
    },
    Iprep {
        side: Side,
        cat: u8,
        op: RepOp,
    },
    Credentials {
        test: CredTest,
        outcome: Outcome,
    },
    Phi(Vec<PhiKind>),
}

impl Cond {
    /// The same for every packet of a flow direction while its app-layer
    /// protocol stays the same: the engine caches these per flow.
    pub(crate) fn flow_constant(&self) -> bool {
        matches!(
            self,
            Cond::Never | Cond::AppProto { .. } | Cond::Geoip { .. } | Cond::Iprep { .. }
        )
    }

    /// Cheap tests first, PHI scanning last.
    fn cost(&self) -> u8 {
        match self {
            Cond::Never => 0,
            Cond::AppProto { .. } | Cond::FlowBytes { .. } | Cond::Flowbits { .. } => 1,
            Cond::Pred(_) => 2,
            Cond::Buffer(_) => 3,
            Cond::Geoip { .. } | Cond::Iprep { .. } | Cond::Credentials { .. } => 4,
            Cond::Phi(_) => 5,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FlowbitAction {
    Set(u16),
    Unset(u16),
    Toggle(u16),
}

/// A compiled rule.
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    pub meta: Arc<RuleMeta>,
    pub proto: Proto,
    /// Runs on packets.
    pub packet: bool,
    /// Runs on the records of these protocols ([`tx_bit`]).
    pub tx: u16,
    pub src: AddrSet,
    pub sport: PortSet,
    pub dst: AddrSet,
    pub dport: PortSet,
    pub bidir: bool,
    pub flow_dir: Option<Direction>,
    pub established: Option<bool>,
    pub conds: Vec<Cond>,
    pub threshold: Option<Threshold>,
    pub flowbit_actions: Vec<FlowbitAction>,
    pub noalert: bool,
    pub has_phi: bool,
    /// Prefilter pattern: buffer and bytes.
    pub fast: Option<(BufId, Vec<u8>)>,
}

/// `classification.config`: class name → (description, priority).
#[derive(Debug, Clone, Default)]
pub(crate) struct Classes(HashMap<String, (String, u8)>);

impl Classes {
    /// The embedded `rules/classification.config`.
    pub(crate) fn embedded() -> Classes {
        Classes::parse(include_str!("../../rules/classification.config"))
    }

    /// Lines `config classification: name,description,priority`; others
    /// are ignored.
    pub(crate) fn parse(text: &str) -> Classes {
        let mut m = HashMap::new();
        for line in text.lines() {
            let Some(rest) = line.trim().strip_prefix("config classification:") else {
                continue;
            };
            let mut parts = rest.splitn(3, ',').map(str::trim);
            let (Some(name), Some(desc), Some(prio)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            if let Ok(p) = prio.parse::<u8>() {
                m.insert(name.to_string(), (desc.to_string(), p));
            }
        }
        Classes(m)
    }

    pub(crate) fn get(&self, name: &str) -> Option<&(String, u8)> {
        self.0.get(name)
    }
}

/// Flowbit names → bit numbers.
#[derive(Debug, Clone, Default)]
pub(crate) struct Flowbits(HashMap<String, u16>);

impl Flowbits {
    fn intern(&mut self, name: &str) -> Result<u16, String> {
        if let Some(&b) = self.0.get(name) {
            return Ok(b);
        }
        if self.0.len() >= MAX_FLOWBITS {
            return Err(format!("more than {MAX_FLOWBITS} flowbit names"));
        }
        // Below MAX_FLOWBITS, so it fits u16.
        let b = self.0.len() as u16;
        self.0.insert(name.to_string(), b);
        Ok(b)
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}

/// What compiling rules needs besides the text.
pub(crate) struct Compiler<'a> {
    pub vars: &'a Vars,
    pub classes: &'a Classes,
    pub lookups: &'a Lookups,
    /// Dataset names in `lookups.datasets` order, for indices.
    pub dataset_names: Vec<String>,
    pub flowbits: Flowbits,
    pub warnings: Vec<String>,
}

/// A rule that did not compile: its sid when known, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub sid: Option<u32>,
    pub reason: String,
}

fn num<T: std::str::FromStr>(name: &str, v: Option<&str>) -> Result<T, String> {
    let v = v.ok_or_else(|| format!("{name} needs a value"))?;
    v.trim()
        .parse::<T>()
        .map_err(|_| format!("{name}: bad number {v:?}"))
}

fn no_value(name: &str, v: Option<&str>) -> Result<(), String> {
    match v {
        None => Ok(()),
        Some(v) => Err(format!("{name} takes no value (got {v:?})")),
    }
}

fn need<'v>(name: &str, v: Option<&'v str>) -> Result<&'v str, String> {
    v.filter(|s| !s.is_empty())
        .ok_or_else(|| format!("{name} needs a value"))
}

/// State while walking a rule's options.
struct Build {
    groups_open: Option<Group>,
    conds: Vec<Cond>,
    /// The protocol whose keywords the rule uses.
    kw_proto: Option<AppProto>,
    uses_credentials: bool,
    sid: Option<u32>,
    gid: u32,
    rev: u32,
    msg: String,
    classtype: Option<String>,
    priority: Option<u8>,
    metadata: Vec<(String, String)>,
    references: Vec<String>,
    flow_dir: Option<Direction>,
    established: Option<bool>,
    threshold: Option<Threshold>,
    flowbit_actions: Vec<FlowbitAction>,
    noalert: bool,
    has_phi: bool,
}

impl Build {
    fn close_group(&mut self) {
        if let Some(g) = self.groups_open.take() {
            if !g.items.is_empty() {
                self.conds.push(Cond::Buffer(g));
            }
        }
    }

    fn open(&mut self, buf: BufId) {
        self.close_group();
        self.groups_open = Some(Group {
            buf,
            items: Vec::new(),
        });
    }

    /// The group payload keywords go to (the packet payload before any
    /// sticky buffer).
    fn group(&mut self) -> &mut Group {
        self.groups_open.get_or_insert_with(|| Group {
            buf: BufId::Payload,
            items: Vec::new(),
        })
    }

    fn last_content(&mut self, modifier: &str) -> Result<&mut Content, String> {
        match self.groups_open.as_mut().and_then(|g| g.items.last_mut()) {
            Some(Item::Content(c)) => Ok(c),
            _ => Err(format!("{modifier} without a preceding content")),
        }
    }

    fn set_kw_proto(&mut self, p: AppProto) -> Result<(), String> {
        match self.kw_proto {
            Some(q) if q != p => {
                let name = |x: AppProto| hooks().find(|h| h.0 == x).map_or("?", |h| h.1);
                Err(format!("rule mixes {} and {} keywords", name(q), name(p)))
            }
            _ => {
                self.kw_proto = Some(p);
                Ok(())
            }
        }
    }
}

impl Compiler<'_> {
    /// Compiles one rule text.
    pub(crate) fn compile(&mut self, text: &str) -> Result<Rule, Failure> {
        let raw = text::split_rule(text).map_err(|reason| Failure { sid: None, reason })?;
        let sid = raw
            .options
            .iter()
            .find(|(n, _)| *n == "sid")
            .and_then(|(_, v)| v.and_then(|v| v.trim().parse::<u32>().ok()));
        self.compile_raw(&raw)
            .map_err(|reason| Failure { sid, reason })
    }

    fn compile_raw(&mut self, raw: &RawRule<'_>) -> Result<Rule, String> {
        let [action, proto, src, sport, dir, dst, dport] = raw.header;
        let action = match action {
            "alert" => Action::Alert,
            "pass" => Action::Pass,
            other => return Err(format!("unsupported action {other:?} (alert or pass)")),
        };
        let proto = match proto.to_ascii_lowercase().as_str() {
            "ip" => Proto::Ip,
            "tcp" => Proto::Tcp,
            "udp" => Proto::Udp,
            other => match hooks().find(|(_, name, _)| *name == other) {
                Some((p, ..)) => Proto::App(p),
                None => return Err(format!("unsupported protocol {other:?}")),
            },
        };
        let bidir = match dir {
            "->" => false,
            "<>" => true,
            other => return Err(format!("bad direction {other:?} (-> or <>)")),
        };
        let src = AddrSet::parse(src, self.vars).map_err(|e| format!("source: {e}"))?;
        let dst = AddrSet::parse(dst, self.vars).map_err(|e| format!("destination: {e}"))?;
        let sport = PortSet::parse(sport, self.vars).map_err(|e| format!("source port: {e}"))?;
        let dport =
            PortSet::parse(dport, self.vars).map_err(|e| format!("destination port: {e}"))?;

        let mut b = Build {
            groups_open: None,
            conds: Vec::new(),
            kw_proto: None,
            uses_credentials: false,
            sid: None,
            gid: 1,
            rev: 0,
            msg: String::new(),
            classtype: None,
            priority: None,
            metadata: Vec::new(),
            references: Vec::new(),
            flow_dir: None,
            established: None,
            threshold: None,
            flowbit_actions: Vec::new(),
            noalert: false,
            has_phi: false,
        };
        for &(name, value) in &raw.options {
            self.option(&mut b, name, value)
                .map_err(|e| format!("{name}: {e}"))?;
        }
        b.close_group();

        let sid = b.sid.ok_or("rule has no sid")?;
        // Packet rule, or the protocols whose records it runs on.
        let tx = match (proto, b.kw_proto) {
            (Proto::App(p), None) => tx_bit(p),
            (Proto::App(p), Some(k)) if k == p => tx_bit(p),
            (Proto::App(_), Some(_)) => {
                return Err("protocol keywords of another protocol than the rule's".to_string())
            }
            (_, Some(AppProto::Asset)) => {
                return Err("asset keywords need an asset rule (alert asset …)".to_string())
            }
            (Proto::Udp, Some(_)) => {
                return Err("protocol keywords need a tcp, ip or protocol rule".to_string())
            }
            (Proto::Udp, None) if b.uses_credentials => {
                return Err("credentials needs a tcp, ip or protocol rule".to_string())
            }
            (_, Some(k)) => tx_bit(k),
            // Every protocol's logins.
            (_, None) if b.uses_credentials => PROTOCOLS
                .iter()
                .filter(|p| p.keywords().is_some())
                .fold(0, |m, p| m | tx_bit(p.proto())),
            (_, None) => 0,
        };
        if tx != 0 {
            for c in &b.conds {
                if let Cond::Buffer(g) = c {
                    if g.buf == BufId::Payload {
                        return Err("content/pcre without a sticky buffer in a transaction rule (use a protocol buffer such as mqtt.publish.message or hl7.segment)".to_string());
                    }
                }
            }
        }

        let fast = fast_pattern(&b.conds)?;
        let mut conds = b.conds;
        conds.sort_by_key(Cond::cost);

        let (category, class_prio) = match &b.classtype {
            Some(c) => {
                let (d, p) = self
                    .classes
                    .get(c)
                    .ok_or_else(|| format!("unknown classtype {c:?}"))?;
                (d.clone(), Some(*p))
            }
            None => (String::new(), None),
        };
        let meta = RuleMeta {
            action,
            gid: b.gid,
            sid,
            rev: b.rev,
            msg: b.msg,
            classtype: b.classtype,
            category,
            severity: b.priority.or(class_prio).unwrap_or(3),
            metadata: b.metadata,
            references: b.references,
            eve: EveCache::default(),
        };
        Ok(Rule {
            meta: Arc::new(meta),
            proto,
            packet: tx == 0,
            tx,
            src,
            sport,
            dst,
            dport,
            bidir,
            flow_dir: b.flow_dir,
            established: b.established,
            conds,
            threshold: b.threshold,
            flowbit_actions: b.flowbit_actions,
            noalert: b.noalert,
            has_phi: b.has_phi,
            fast,
        })
    }

    fn option(&mut self, b: &mut Build, name: &str, v: Option<&str>) -> Result<(), String> {
        match name {
            "msg" => b.msg = text::unescape(need(name, v)?),
            "sid" => b.sid = Some(num(name, v)?),
            "rev" => b.rev = num(name, v)?,
            "gid" => b.gid = num(name, v)?,
            "priority" => {
                let p: u8 = num(name, v)?;
                if p == 0 {
                    return Err("priority must be 1 to 255".to_string());
                }
                b.priority = Some(p);
            }
            "classtype" => b.classtype = Some(need(name, v)?.to_string()),
            "metadata" => {
                for item in text::list(&text::unescape(need(name, v)?)) {
                    if item.is_empty() {
                        continue;
                    }
                    let (k, val) = item
                        .split_once(char::is_whitespace)
                        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
                        .unwrap_or_else(|| (item.to_string(), String::new()));
                    b.metadata.push((k, val));
                }
            }
            "reference" => {
                let r = text::unescape(need(name, v)?);
                let (t, val) = r
                    .split_once(',')
                    .ok_or_else(|| format!("{r:?} is not 'type,value'"))?;
                let prefix = reference_prefix(t.trim())
                    .ok_or_else(|| format!("unknown reference type {:?}", t.trim()))?;
                b.references.push(format!("{prefix}{}", val.trim()));
            }
            // Documented meta keywords that change nothing we output.
            "target" => match need(name, v)? {
                "src_ip" | "dest_ip" => {}
                o => return Err(format!("{o:?} is not src_ip or dest_ip")),
            },
            "noalert" => {
                no_value(name, v)?;
                b.noalert = true;
            }
            "content" => {
                let (negated, val) = text::negation(need(name, v)?);
                let pat = text::content_bytes(val)?;
                b.group()
                    .items
                    .push(Item::Content(Content::new(pat, negated)));
            }
            "nocase" => {
                no_value(name, v)?;
                let c = b.last_content(name)?;
                c.nocase = true;
                c.pat.make_ascii_lowercase();
            }
            "depth" => b.last_content(name)?.depth = Some(num(name, v)?),
            "offset" => b.last_content(name)?.offset = Some(num(name, v)?),
            "distance" => b.last_content(name)?.distance = Some(num(name, v)?),
            "within" => {
                let w: u32 = num(name, v)?;
                if w == 0 {
                    return Err("within must be positive".to_string());
                }
                b.last_content(name)?.within = Some(w);
            }
            "startswith" => {
                no_value(name, v)?;
                b.last_content(name)?.startswith = true;
            }
            "endswith" => {
                no_value(name, v)?;
                b.last_content(name)?.endswith = true;
            }
            "fast_pattern" => {
                if v.is_some() {
                    return Err("only plain fast_pattern is supported".to_string());
                }
                let c = b.last_content(name)?;
                if c.negated {
                    return Err("fast_pattern on a negated content".to_string());
                }
                c.fast_pattern = true;
            }
            "bsize" => {
                let m = UintMatch::parse(need(name, v)?, u64::MAX)?;
                if b.groups_open.is_none() {
                    return Err("bsize needs a sticky buffer".to_string());
                }
                b.group().items.push(Item::Bsize(m));
            }
            "pcre" => {
                let p = Pcre::parse(need(name, v)?)?;
                b.group().items.push(Item::Pcre(p));
            }
            "pkt_data" => {
                no_value(name, v)?;
                b.open(BufId::Payload);
            }
            "ip.src" | "ip.dst" => {
                no_value(name, v)?;
                b.open(if name == "ip.src" {
                    BufId::IpSrc
                } else {
                    BufId::IpDst
                });
            }
            "flow" => self.flow(b, need(name, v)?)?,
            "threshold" | "detection_filter" => {
                if b.threshold.is_some() {
                    return Err("only one threshold or detection_filter per rule".to_string());
                }
                b.threshold = Some(Threshold::parse(
                    need(name, v)?,
                    name == "detection_filter",
                )?);
            }
            "app-layer-protocol" => {
                let (negated, p) = text::negation(need(name, v)?);
                let proto =
                    AppProto::from_name(p).ok_or_else(|| format!("unknown protocol {p:?}"))?;
                b.conds.push(Cond::AppProto { proto, negated });
            }
            "flow.bytes_toserver" | "flow.bytes_toclient" => {
                let m = UintMatch::parse(need(name, v)?, u64::MAX)?;
                let dir = usize::from(name == "flow.bytes_toclient");
                b.conds.push(Cond::FlowBytes { dir, m });
            }
            "flowbits" => self.flowbits(b, need(name, v)?)?,
            "geoip" => b.conds.push(geoip(need(name, v)?)?),
            "iprep" => b.conds.push(self.iprep(need(name, v)?)?),
            "dataset" => self.dataset(b, need(name, v)?)?,
            "phi" => {
                let kinds = match v {
                    None => Vec::new(),
                    Some(v) => text::list(v)
                        .map(|k| PhiKind::parse(k).ok_or_else(|| format!("unknown PHI kind {k:?}")))
                        .collect::<Result<Vec<_>, _>>()?,
                };
                b.has_phi = true;
                b.conds.push(Cond::Phi(kinds));
            }
            "credentials" => {
                let mut parts = text::list(need(name, v)?);
                let test = match parts.next() {
                    Some("default") => CredTest::Default,
                    Some("cleartext") => CredTest::Cleartext,
                    Some("none") => CredTest::None,
                    o => return Err(format!("{o:?}: expected default, cleartext or none")),
                };
                let outcome = match parts.next() {
                    None => Outcome::Any,
                    Some("accepted") => Outcome::Accepted,
                    Some("refused") => Outcome::Refused,
                    Some("unknown") => Outcome::Unknown,
                    Some(o) => return Err(format!("{o:?}: expected accepted, refused or unknown")),
                };
                if let Some(extra) = parts.next() {
                    return Err(format!("unexpected {extra:?}"));
                }
                b.uses_credentials = true;
                b.conds.push(Cond::Credentials { test, outcome });
            }
            _ => return self.protocol_keyword(b, name, v),
        }
        Ok(())
    }

    fn protocol_keyword(
        &mut self,
        b: &mut Build,
        name: &str,
        v: Option<&str>,
    ) -> Result<(), String> {
        for (p, _, keywords) in hooks() {
            let Some(r) = keywords.keyword(name, v) else {
                continue;
            };
            b.set_kw_proto(p)?;
            match r? {
                Keyword::Buffer(buf) => b.open(BufId::Tx(TxBuf::new(p, buf))),
                Keyword::Predicate(pred) => b.conds.push(Cond::Pred(pred)),
            }
            return Ok(());
        }
        Err("unknown keyword".to_string())
    }

    fn flow(&mut self, b: &mut Build, v: &str) -> Result<(), String> {
        for part in text::list(v) {
            let (dir, est) = match part {
                "to_server" | "from_client" => (Some(Direction::ToServer), None),
                "to_client" | "from_server" => (Some(Direction::ToClient), None),
                "established" => (None, Some(true)),
                "not_established" => (None, Some(false)),
                "stateless" => (None, None),
                o => return Err(format!("unsupported flow option {o:?}")),
            };
            if let Some(d) = dir {
                if b.flow_dir.is_some_and(|x| x != d) {
                    return Err("both directions given".to_string());
                }
                b.flow_dir = Some(d);
            }
            if let Some(e) = est {
                if b.established.is_some_and(|x| x != e) {
                    return Err("established and not_established given".to_string());
                }
                b.established = Some(e);
            }
        }
        Ok(())
    }

    fn flowbits(&mut self, b: &mut Build, v: &str) -> Result<(), String> {
        let (cmd, names) = match v.split_once(',') {
            Some((c, n)) => (c.trim(), Some(n.trim())),
            None => (v.trim(), None),
        };
        if cmd == "noalert" {
            if names.is_some() {
                return Err("noalert takes no name".to_string());
            }
            b.noalert = true;
            return Ok(());
        }
        let names = names
            .filter(|n| !n.is_empty())
            .ok_or_else(|| format!("{cmd} needs a name"))?;
        match cmd {
            "isset" | "isnotset" => {
                let bits = names
                    .split('|')
                    .map(|n| self.flowbits.intern(n.trim()))
                    .collect::<Result<Vec<_>, _>>()?;
                b.conds.push(Cond::Flowbits {
                    bits,
                    isset: cmd == "isset",
                });
            }
            "set" | "unset" | "toggle" => {
                for n in names.split('&') {
                    let bit = self.flowbits.intern(n.trim())?;
                    b.flowbit_actions.push(match cmd {
                        "set" => FlowbitAction::Set(bit),
                        "unset" => FlowbitAction::Unset(bit),
                        _ => FlowbitAction::Toggle(bit),
                    });
                }
            }
            o => return Err(format!("unknown flowbits command {o:?}")),
        }
        Ok(())
    }

    fn iprep(&self, v: &str) -> Result<Cond, String> {
        let parts: Vec<&str> = text::list(v).collect();
        let (side, cat, op, value) = match parts.as_slice() {
            [s, c, o] => (*s, *c, *o, None),
            [s, c, o, val] => (*s, *c, *o, Some(*val)),
            _ => return Err("expected side,category,operator,value".to_string()),
        };
        let side = Side::parse(side)?;
        let cat = self
            .lookups
            .reputation
            .category(cat)
            .ok_or_else(|| format!("unknown reputation category {cat:?}"))?;
        let score = |val: Option<&str>| -> Result<u8, String> {
            let s = val.ok_or("operator needs a value")?;
            let n = s.parse::<u8>().map_err(|_| format!("bad score {s:?}"))?;
            if n > 127 {
                return Err(format!("score {n} above 127"));
            }
            Ok(n)
        };
        let op = match op {
            ">" => RepOp::Gt(score(value)?),
            "<" => RepOp::Lt(score(value)?),
            "=" => RepOp::Eq(score(value)?),
            "isset" | "isnotset" if value.is_none() => {
                if op == "isset" {
                    RepOp::IsSet
                } else {
                    RepOp::IsNotSet
                }
            }
            o => return Err(format!("bad operator {o:?} (>, <, =, isset, isnotset)")),
        };
        Ok(Cond::Iprep { side, cat, op })
    }

    fn dataset(&mut self, b: &mut Build, v: &str) -> Result<(), String> {
        let mut parts = text::list(v);
        let cmd = parts.next().unwrap_or_default();
        let isset = match cmd {
            "isset" => true,
            "isnotset" => false,
            o => return Err(format!("{o:?}: only isset and isnotset are supported")),
        };
        let name = parts
            .next()
            .filter(|n| !n.is_empty())
            .ok_or("dataset needs a name")?;
        if let Some(extra) = parts.next() {
            return Err(format!(
                "{extra:?}: dataset type and file are set in the detect.datasets configuration"
            ));
        }
        let g = b
            .groups_open
            .as_mut()
            .ok_or("dataset needs a sticky buffer")?;
        let found = self
            .dataset_names
            .iter()
            .position(|n| n == name)
            .and_then(|i| Some((i, self.lookups.datasets.get(name)?)));
        let Some((index, set)) = found else {
            // An unconfigured list is like an empty one: the operator has
            // not said what belongs in it, so the rule cannot decide.
            self.warnings.push(format!(
                "dataset {name:?} is not configured (detect.datasets): rules using it never match"
            ));
            b.conds.push(Cond::Never);
            return Ok(());
        };
        let ip_buf = matches!(g.buf, BufId::IpSrc | BufId::IpDst);
        match set {
            Dataset::Ips(_) if !ip_buf => {
                return Err(format!(
                    "ip dataset {name:?} needs the ip.src or ip.dst buffer"
                ))
            }
            Dataset::Strings(_) if ip_buf => {
                return Err(format!("string dataset {name:?} on an address buffer"))
            }
            _ => {}
        }
        if !isset && set.is_empty() {
            self.warnings.push(format!(
                "dataset {name:?} is empty: rules testing 'isnotset' on it never match"
            ));
            b.conds.push(Cond::Never);
            return Ok(());
        }
        g.items.push(Item::Dataset(DatasetTest { index, isset }));
        Ok(())
    }
}

fn geoip(v: &str) -> Result<Cond, String> {
    let mut parts = text::list(v);
    let side = Side::parse(parts.next().unwrap_or_default())?;
    let mut codes = Vec::new();
    let mut allowed = false;
    let mut negated = false;
    for p in parts {
        let (neg, code) = text::negation(p);
        negated |= neg;
        if code == "allowed" {
            allowed = true;
            continue;
        }
        let c = code.as_bytes();
        if c.len() != 2 || !c.iter().all(u8::is_ascii_alphabetic) {
            return Err(format!("{code:?} is not a two-letter country code"));
        }
        codes.push([c[0].to_ascii_uppercase(), c[1].to_ascii_uppercase()]);
    }
    if codes.is_empty() && !allowed {
        return Err("geoip needs at least one country".to_string());
    }
    Ok(Cond::Geoip {
        side,
        codes,
        allowed,
        negated,
    })
}

/// The prefilter pattern: the explicit `fast_pattern`, else the longest
/// positive content (first of equal length).
fn fast_pattern(conds: &[Cond]) -> Result<Option<(BufId, Vec<u8>)>, String> {
    let mut explicit: Option<(BufId, Vec<u8>)> = None;
    let mut best: Option<(BufId, Vec<u8>)> = None;
    for c in conds {
        let Cond::Buffer(g) = c else { continue };
        for item in &g.items {
            let Item::Content(ct) = item else { continue };
            ct.validate()?;
            if ct.negated {
                continue;
            }
            if ct.fast_pattern {
                if explicit.is_some() {
                    return Err("fast_pattern given twice".to_string());
                }
                explicit = Some((g.buf.clone(), ct.pat.clone()));
            }
            if best.as_ref().is_none_or(|(_, p)| ct.pat.len() > p.len()) {
                best = Some((g.buf.clone(), ct.pat.clone()));
            }
        }
    }
    Ok(explicit.or(best))
}

/// Allowed countries per address group, in configuration order.
pub(crate) fn allowed_groups(
    cfg: &BTreeMap<String, Vec<String>>,
    vars: &Vars,
) -> Result<Vec<(AddrSet, Vec<Country>)>, super::Error> {
    let mut out = Vec::new();
    for (group, codes) in cfg {
        let invalid = |reason: String| super::Error::Invalid {
            what: format!("detect.allowed_countries.{group}"),
            reason,
        };
        let set = AddrSet::parse(&format!("${group}"), vars).map_err(invalid)?;
        let mut cs = Vec::with_capacity(codes.len());
        for c in codes {
            let b = c.as_bytes();
            if b.len() != 2 || !b.iter().all(u8::is_ascii_alphabetic) {
                return Err(invalid(format!("{c:?} is not a two-letter country code")));
            }
            cs.push([b[0].to_ascii_uppercase(), b[1].to_ascii_uppercase()]);
        }
        out.push((set, cs));
    }
    Ok(out)
}

/// The URL a reference type expands to in EVE, as in Suricata's default
/// `reference.config` (`url,example.org/x` is logged `http://example.org/x`).
fn reference_prefix(kind: &str) -> Option<&'static str> {
    Some(match kind.to_ascii_lowercase().as_str() {
        "url" => "http://",
        "cve" => "http://cve.mitre.org/cgi-bin/cvename.cgi?name=",
        "bugtraq" | "bid" => "http://www.securityfocus.com/bid/",
        "nessus" => "http://cgi.nessus.org/plugins/dump.php3?id=",
        "et" => "http://doc.emergingthreats.net/",
        "etpro" => "http://doc.emergingthreatspro.com/",
        "exploitdb" => "http://www.exploit-db.com/exploits/",
        "msft" => "http://technet.microsoft.com/security/bulletin/",
        "osvdb" => "http://osvdb.org/show/osvdb/",
        "md5" => "http://www.threatexpert.com/report.aspx?md5=",
        _ => return None,
    })
}
