//! Evaluation: the [`Engine`] built from rule texts, its hooks and
//! prefilters, and how packets and app-layer records are matched
//! (module `detect` has the contract).

use super::state::*;
use super::*;
/// Rules of one hook in evaluation order (`pass` rules first, then the
/// others, each in load order), with their prefilters.
#[derive(Debug, Default)]
struct HookRules {
    /// Rule indices.
    order: Vec<u32>,
    /// Positions (in `order`) of rules without a fast pattern.
    always: Vec<u32>,
    /// Those of `always` without a `credentials` condition: the ones a
    /// record without a login (most records) can match.
    always_no_login: Vec<u32>,
    prefilters: Vec<Prefilter>,
}

/// While building: a buffer, its patterns, pattern ids by bytes, and the
/// rule positions per pattern id.
type PatternsOf = (BufId, Vec<Vec<u8>>, HashMap<Vec<u8>, usize>, Vec<Vec<u32>>);

/// One multi-pattern automaton over the fast patterns of one buffer.
#[derive(Debug)]
struct Prefilter {
    buf: BufId,
    ac: AhoCorasick,
    /// Pattern id → positions of the rules having it.
    positions: Vec<Vec<u32>>,
}

impl Prefilter {
    fn scan(&self, hay: &[u8], sc: &mut Scratch) {
        for m in self.ac.find_overlapping_iter(hay) {
            if let Some(ps) = self.positions.get(m.pattern().as_usize()) {
                for &p in ps {
                    sc.add(p);
                }
            }
        }
    }
}

impl HookRules {
    fn build(rules: &[Rule], pick: impl Fn(&Rule) -> bool) -> Result<HookRules, Error> {
        let mut order: Vec<u32> = Vec::new();
        for pass in [true, false] {
            for (i, r) in rules.iter().enumerate() {
                if pick(r) && (r.meta.action == Action::Pass) == pass {
                    // Rule counts are bounded by the rule text size; an index
                    // that does not fit u32 is not a ruleset anyone loads.
                    order.push(u32::try_from(i).map_err(|_| Error::Invalid {
                        what: "rules".into(),
                        reason: "too many rules".into(),
                    })?);
                }
            }
        }
        let mut always = Vec::new();
        // Per buffer: patterns (lower-cased, deduplicated) and their rules.
        let mut per_buf: Vec<PatternsOf> = Vec::new();
        for (pos, &i) in order.iter().enumerate() {
            // pos < order.len() which came from u32 indices.
            let pos = pos as u32;
            match rules.get(i as usize).and_then(|r| r.fast.as_ref()) {
                None => always.push(pos),
                Some((buf, pat)) => {
                    let k = match per_buf.iter().position(|(b, ..)| b == buf) {
                        Some(k) => k,
                        None => {
                            per_buf.push((buf.clone(), Vec::new(), HashMap::new(), Vec::new()));
                            per_buf.len() - 1
                        }
                    };
                    let (_, pats, ids, positions) = &mut per_buf[k];
                    let key = pat.to_ascii_lowercase();
                    let id = *ids.entry(key.clone()).or_insert_with(|| {
                        pats.push(key);
                        positions.push(Vec::new());
                        pats.len() - 1
                    });
                    positions[id].push(pos);
                }
            }
        }
        let always_no_login = always
            .iter()
            .copied()
            .filter(|&pos| {
                let rule = order.get(pos as usize).and_then(|&i| rules.get(i as usize));
                !rule.is_some_and(|r| {
                    r.conds
                        .iter()
                        .any(|c| matches!(c, Cond::Credentials { .. }))
                })
            })
            .collect();
        let mut prefilters = Vec::new();
        for (buf, pats, _, positions) in per_buf {
            let ac = AhoCorasick::builder()
                .ascii_case_insensitive(true)
                .match_kind(MatchKind::Standard)
                .build(&pats)
                .map_err(|e| Error::Invalid {
                    what: "prefilter".into(),
                    reason: e.to_string(),
                })?;
            prefilters.push(Prefilter { buf, ac, positions });
        }
        Ok(HookRules {
            order,
            always,
            always_no_login,
            prefilters,
        })
    }
}

/// What a rule is evaluated on.
#[derive(Clone, Copy)]
enum Subject<'a> {
    Packet(&'a [u8]),
    /// A record, with its protocol's hook.
    Tx(&'a AppRecord, &'a TxHook),
}

/// The transaction rules of one application protocol.
struct TxHook {
    proto: AppProto,
    /// EVE name (the default-credential list's protocol column).
    name: &'static str,
    keywords: &'static dyn Keywords,
    rules: HookRules,
}

impl std::fmt::Debug for TxHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxHook")
            .field("proto", &self.name)
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

/// One packet's or record's evaluation: the PHI scan is done at most once.
struct Eval<'a> {
    f: &'a FlowInfo,
    subject: Subject<'a>,
    phi: Option<Arc<phi::PhiReport>>,
    /// The record's login, once read (several `credentials` rules look at
    /// each record).
    creds: Option<Option<crate::app::Credentials<'a>>>,
}

/// A rule's view of the flow: which end is its source, and the alert
/// direction.
#[derive(Clone, Copy)]
struct Orient {
    src: Endpoint,
    dst: Endpoint,
    dir: Direction,
}

impl Orient {
    fn new(f: &FlowInfo, dir: Direction) -> Orient {
        match dir {
            Direction::ToServer => Orient {
                src: f.client,
                dst: f.server,
                dir,
            },
            Direction::ToClient => Orient {
                src: f.server,
                dst: f.client,
                dir,
            },
        }
    }
}

struct Datasets<'a>(&'a [Dataset]);

impl content::DatasetCheck for Datasets<'_> {
    fn contains(&self, index: usize, value: &[u8]) -> bool {
        match self.0.get(index) {
            Some(Dataset::Strings(s)) => s.contains(value),
            _ => false,
        }
    }
}

/// The compiled ruleset.
#[derive(Debug, Default)]
pub struct Engine {
    rules: Vec<Rule>,
    /// Packet rules for TCP flows, UDP flows, other IP flows.
    packet: [HookRules; 3],
    /// Transaction rules per application protocol offering keywords.
    tx: Vec<TxHook>,
    lookups: Lookups,
    datasets: Vec<Dataset>,
    allowed: Vec<(addr::AddrSet, Vec<Country>)>,
    flowbit_words: usize,
}

impl Engine {
    /// Tests: an engine of `rules` (one rule file) with default
    /// variables, configuration and no lookups, and its load report.
    #[cfg(test)]
    pub(crate) fn build_test_rules(rules: &str) -> (Engine, LoadReport) {
        Engine::build_with(
            &Vars::default(),
            &DetectConfig::default(),
            Lookups::default(),
            &[RuleSource {
                name: "test.rules".into(),
                text: rules.into(),
            }],
        )
        .expect("test rules build")
    }

    /// Tests: [`Engine::build_test_rules`], every rule loaded.
    #[cfg(test)]
    pub(crate) fn from_test_rules(rules: &str) -> Engine {
        let (e, report) = Engine::build_test_rules(rules);
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        e
    }

    /// An engine without rules.
    pub fn empty() -> Engine {
        Engine::default()
    }

    /// The embedded default ruleset.
    pub fn default_rules() -> RuleSource {
        RuleSource {
            name: "<embedded>/medical.rules".to_string(),
            text: include_str!("../../rules/medical.rules").to_string(),
        }
    }

    /// Builds an engine. `base` resolves relative paths in `cfg`.
    ///
    /// # Errors
    /// A list or database file cannot be read or parsed, or a variable is
    /// malformed. Bad rules are not errors: they are in the report.
    pub fn build(
        vars: &Vars,
        cfg: &DetectConfig,
        base: &Path,
        rules: &[RuleSource],
    ) -> Result<(Engine, LoadReport), Error> {
        let lookups = Lookups::load(cfg, base)?;
        Engine::build_with(vars, cfg, lookups, rules)
    }

    /// Builds an engine with the given lookups instead of loading the ones
    /// `cfg` names (tests and tools inject their own country database or
    /// lists this way). `cfg.datasets` is ignored: `lookups.datasets` is
    /// what rules may name.
    ///
    /// # Errors
    /// A variable or an `allowed_countries` entry is malformed.
    pub fn build_with(
        vars: &Vars,
        cfg: &DetectConfig,
        lookups: Lookups,
        rules: &[RuleSource],
    ) -> Result<(Engine, LoadReport), Error> {
        for (k, v) in &vars.address_groups {
            addr::AddrSet::parse(v, vars).map_err(|reason| Error::Invalid {
                what: format!("vars.address-groups.{k}"),
                reason,
            })?;
        }
        for (k, v) in &vars.port_groups {
            addr::PortSet::parse(v, vars).map_err(|reason| Error::Invalid {
                what: format!("vars.port-groups.{k}"),
                reason,
            })?;
        }
        let allowed = rule::allowed_groups(&cfg.allowed_countries, vars)?;
        let classes = rule::Classes::embedded();
        let mut report = LoadReport::default();
        let mut compiled: Vec<Rule> = Vec::new();
        let mut seen: HashSet<(u32, u32)> = HashSet::new();
        let flowbits;
        {
            let mut comp = rule::Compiler {
                vars,
                classes: &classes,
                lookups: &lookups,
                dataset_names: lookups.datasets.keys().cloned().collect(),
                flowbits: rule::Flowbits::default(),
                warnings: Vec::new(),
            };
            for src in rules {
                for rt in text::split_rules(&src.text) {
                    let res = comp.compile(&rt.text).and_then(|r| {
                        if seen.insert((r.meta.gid, r.meta.sid)) {
                            Ok(r)
                        } else {
                            Err(rule::Failure {
                                sid: Some(r.meta.sid),
                                reason: format!(
                                    "duplicate sid {} (gid {})",
                                    r.meta.sid, r.meta.gid
                                ),
                            })
                        }
                    });
                    match res {
                        Ok(r) => compiled.push(r),
                        Err(f) => report.errors.push(RuleError {
                            file: src.name.clone(),
                            line: rt.line,
                            sid: f.sid,
                            reason: f.reason,
                        }),
                    }
                }
            }
            flowbits = comp.flowbits.len();
            let mut w = comp.warnings;
            w.sort();
            w.dedup();
            report.warnings = w;
        }
        report.loaded = compiled.len();
        let pkt = |r: &Rule, ok: &[Proto]| r.packet && ok.contains(&r.proto);
        let packet = [
            HookRules::build(&compiled, |r| pkt(r, &[Proto::Ip, Proto::Tcp]))?,
            HookRules::build(&compiled, |r| pkt(r, &[Proto::Ip, Proto::Udp]))?,
            HookRules::build(&compiled, |r| pkt(r, &[Proto::Ip]))?,
        ];
        let mut tx = Vec::new();
        for (proto, name, keywords) in protocol::hooks() {
            let bit = rule::tx_bit(proto);
            tx.push(TxHook {
                proto,
                name,
                keywords,
                rules: HookRules::build(&compiled, |r| r.tx & bit != 0)?,
            });
        }
        let datasets = lookups.datasets.values().cloned().collect();
        Ok((
            Engine {
                rules: compiled,
                packet,
                tx,
                lookups,
                datasets,
                allowed,
                flowbit_words: flowbits.div_ceil(64),
            },
            report,
        ))
    }

    /// The country of `ip` in the engine's country database (`None` when
    /// unknown), for the asset inventory.
    pub fn country_of(&self, ip: IpAddr) -> Option<Country> {
        self.lookups.geo.country(ip)
    }

    /// Whether some rule runs on the records of hook `p` (a protocol, or
    /// [`AppProto::Asset`]).
    pub fn has_tx_rules(&self, p: AppProto) -> bool {
        self.tx
            .iter()
            .any(|t| t.proto == p && !t.rules.order.is_empty())
    }

    /// Whether some rule of hook `p` has every predicate keyword
    /// (`Cond::Pred`: `asset.drift`, `mqtt.type`, …) true on `rec`; its
    /// other conditions are not looked at. False: no rule of the hook can
    /// match a record on which its predicates say what they say on `rec`
    /// (the asset inventory skips evaluating its changes this way).
    pub fn tx_predicates_hold(&self, p: AppProto, rec: &AppRecord) -> bool {
        self.tx
            .iter()
            .filter(|t| t.proto == p)
            .flat_map(|t| &t.rules.order)
            .filter_map(|&i| self.rules.get(i as usize))
            .any(|r| {
                r.conds.iter().all(|c| match c {
                    Cond::Pred(pred) => pred.test(rec),
                    _ => true,
                })
            })
    }

    /// Rules loaded.
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// State for a new flow.
    pub fn new_flow(&self, _client: IpAddr, _server: IpAddr) -> FlowDetect {
        FlowDetect::default()
    }

    /// False when [`Engine::packet`] would do nothing for this flow in this
    /// direction (no packet rule can match it, as cached from an earlier
    /// packet under the same app-layer protocol): the caller may skip
    /// building the packet's [`FlowInfo`].
    pub fn packet_needed(&self, fd: &FlowDetect, dir: Direction, app: AppProto) -> bool {
        let d = dir.index();
        !(fd.passed()
            || fd.pkt_app == app_code(app)
                && fd.flags & PKT_KNOWN[d] != 0
                && fd.flags & PKT_SOME[d] == 0)
    }

    /// Evaluates packet rules.
    pub fn packet(
        &self,
        st: &mut DetectState,
        fd: &mut FlowDetect,
        p: &PacketInfo<'_>,
        out: &mut Vec<Alert>,
    ) {
        self.packet_rules(st, fd, p, out, false);
    }

    /// Evaluates, on bytes that went past as packets while the flow's
    /// app-layer protocol was unknown, the packet rules that name an
    /// app-layer protocol (`app-layer-protocol`): the only ones whose
    /// answer the decision can change, so the others do not alert twice.
    pub fn replay(
        &self,
        st: &mut DetectState,
        fd: &mut FlowDetect,
        p: &PacketInfo<'_>,
        out: &mut Vec<Alert>,
    ) {
        self.packet_rules(st, fd, p, out, true);
    }

    fn packet_rules(
        &self,
        st: &mut DetectState,
        fd: &mut FlowDetect,
        p: &PacketInfo<'_>,
        out: &mut Vec<Alert>,
        replay: bool,
    ) {
        if fd.passed() {
            return;
        }
        let h = match p.flow.proto {
            6 => &self.packet[0],
            17 => &self.packet[1],
            _ => &self.packet[2],
        };
        if h.order.is_empty() {
            return;
        }
        let d = p.dir.index();
        // Which packet rules can still match this flow in this direction
        // is cached per flow: their header, and the conditions that cannot
        // change while the app-layer protocol stays the same (app-layer
        // protocol, country, reputation). Recomputed when the protocol is
        // decided.
        let app = app_code(p.flow.app_proto);
        if fd.pkt_app != app {
            fd.pkt_app = app;
            fd.flags &= !(PKT_KNOWN[0] | PKT_KNOWN[1] | PKT_SOME[0] | PKT_SOME[1]);
            fd.patterned = 0;
        }
        if fd.flags & PKT_KNOWN[d] == 0 {
            fd.flags |= PKT_KNOWN[d];
            let o = Orient::new(&p.flow, p.dir);
            let mut ev = Eval {
                f: &p.flow,
                subject: Subject::Packet(&[]),
                phi: None,
                creds: None,
            };
            for (pos, &i) in h.order.iter().enumerate() {
                let Some(r) = self.rules.get(i as usize) else {
                    continue;
                };
                if !packet_header(r, &p.flow, p.dir)
                    || !r
                        .conds
                        .iter()
                        .filter(|c| c.flow_constant())
                        .all(|c| self.cond(c, &mut ev, fd, &o))
                {
                    continue;
                }
                fd.flags |= PKT_SOME[d];
                if !h.always.contains(&(pos as u32)) {
                    fd.patterned |= 1 << d;
                    break;
                }
            }
        }
        if fd.flags & PKT_SOME[d] == 0 {
            return;
        }
        st.scratch.begin(h.order.len());
        for &pos in &h.always {
            st.scratch.add(pos);
        }
        // The payload is scanned only when a rule with a pattern could
        // match this flow: bulk transfers between hosts no such rule names
        // cost no scan.
        if !p.payload.is_empty() && fd.patterned & (1 << d) != 0 {
            for pf in &h.prefilters {
                if pf.buf == BufId::Payload {
                    pf.scan(p.payload, &mut st.scratch);
                }
            }
        }
        let mut ev = Eval {
            f: &p.flow,
            subject: Subject::Packet(p.payload),
            phi: None,
            creds: None,
        };
        let o = Orient::new(&p.flow, p.dir);
        self.run(h, st, fd, &mut ev, out, |_, r| {
            let named = || r.conds.iter().any(|c| matches!(c, Cond::AppProto { .. }));
            (packet_header(r, &p.flow, p.dir) && (!replay || named())).then_some(o)
        });
    }

    /// Evaluates transaction rules on one app-layer record.
    pub fn record(
        &self,
        st: &mut DetectState,
        fd: &mut FlowDetect,
        f: &FlowInfo,
        rec: &AppRecord,
        out: &mut Vec<Alert>,
    ) {
        if fd.passed() {
            return;
        }
        let Some(proto) = rec.app_proto() else {
            return;
        };
        let Some(hook) = self.tx.iter().find(|t| t.proto == proto) else {
            return;
        };
        let (h, subject) = (&hook.rules, Subject::Tx(rec, hook));
        if h.order.is_empty() {
            return;
        }
        // A flow carries one application protocol, so one cache bit pair
        // serves both transaction hooks.
        if fd.flags & REC_KNOWN == 0 {
            fd.flags |= REC_KNOWN;
            let mut fits = 0u8;
            for (pos, &i) in h.order.iter().enumerate() {
                let Some(r) = self.rules.get(i as usize) else {
                    continue;
                };
                if tx_orient(r, f).is_some() {
                    fd.flags |= REC_SOME;
                    fits |= fit_bit(pos).unwrap_or(0);
                }
            }
            fd.rec_fits = fits;
        }
        if fd.flags & REC_SOME == 0 {
            return;
        }
        // A `credentials` condition fails on a record without a login
        // (every record but a CONNECT's): read it once here, and such
        // rules are not candidates then (their other conditions are not
        // evaluated for nothing).
        let creds =
            (h.always_no_login.len() < h.always.len()).then(|| hook.keywords.credentials(rec));
        st.scratch.begin(h.order.len());
        let always = match creds {
            Some(None) => &h.always_no_login,
            _ => &h.always,
        };
        for &pos in always {
            st.scratch.add(pos);
        }
        for pf in &h.prefilters {
            let sc = &mut st.scratch;
            if let BufId::Tx(b) = &pf.buf {
                b.buf.instances(rec, &mut |bytes| {
                    pf.scan(bytes, sc);
                    false
                });
            }
        }
        let mut ev = Eval {
            f,
            subject,
            phi: None,
            creds,
        };
        // The headers of the hook's first eight rules were judged at the
        // flow's first record; the others' are judged on each.
        let fits = fd.rec_fits;
        self.run(h, st, fd, &mut ev, out, |pos, r| match fit_bit(pos) {
            Some(bit) => (fits & bit != 0).then(|| Orient::new(f, tx_dir(r))),
            None => tx_orient(r, f),
        });
    }

    /// Evaluates the candidates collected in `st.scratch`, in order.
    fn run(
        &self,
        h: &HookRules,
        st: &mut DetectState,
        fd: &mut FlowDetect,
        ev: &mut Eval<'_>,
        out: &mut Vec<Alert>,
        orient: impl Fn(usize, &Rule) -> Option<Orient>,
    ) {
        let mut cands = std::mem::take(&mut st.scratch.cands);
        cands.sort_unstable();
        let start = out.len();
        for &pos in &cands {
            let Some(&i) = h.order.get(pos as usize) else {
                continue;
            };
            let Some(r) = self.rules.get(i as usize) else {
                continue;
            };
            let Some(o) = orient(pos as usize, r) else {
                continue;
            };
            if r.established.is_some_and(|e| e != ev.f.established) {
                continue;
            }
            // A per-flow limit already reached suppresses any match: skip
            // the conditions (a PHI scan, a lookup) unless a match would
            // still set flowbits. Such skipped matches are not counted in
            // `detect.alerts_suppressed`.
            if r.flowbit_actions.is_empty()
                && r.threshold.as_ref().is_some_and(|t| {
                    t.track == threshold::Track::Flow && fd.threshold_saturated(i, t, ev.f.ts)
                })
            {
                continue;
            }
            if !r.conds.iter().all(|c| self.cond(c, ev, fd, &o)) {
                continue;
            }
            if self.fire(i, r, st, fd, ev, &o, out) {
                out.truncate(start);
                break;
            }
        }
        st.scratch.cands = cands;
    }

    /// Post-match actions and the alert; returns true when a `pass` rule
    /// matched.
    #[allow(clippy::too_many_arguments)]
    fn fire(
        &self,
        i: u32,
        r: &Rule,
        st: &mut DetectState,
        fd: &mut FlowDetect,
        ev: &Eval<'_>,
        o: &Orient,
        out: &mut Vec<Alert>,
    ) -> bool {
        for &a in &r.flowbit_actions {
            fd.apply(a, self.flowbit_words);
        }
        if r.meta.action == Action::Pass {
            fd.flags |= PASSED;
            return true;
        }
        if r.noalert {
            return false;
        }
        let mut undecided = None;
        if let Some(t) = &r.threshold {
            let alert = match threshold::Key::new(i, t, o.src.addr, o.dst.addr) {
                None => fd.threshold_hit(i, t, ev.f.ts),
                Some(k) => {
                    let seq = fd.next_tracked();
                    match st.tracker.submit(k, t, ev.f.ts, ev.f.flow_id, seq) {
                        threshold::Verdict::Decided(a) => a,
                        threshold::Verdict::Pending(ticket) => {
                            undecided = Some(ticket);
                            true
                        }
                        threshold::Verdict::Full(a) => {
                            st.stats.threshold_table_full += 1;
                            a
                        }
                        threshold::Verdict::Late(a) => {
                            st.stats.threshold_late += 1;
                            a
                        }
                        threshold::Verdict::LatePending(ticket) => {
                            st.stats.threshold_late += 1;
                            undecided = Some(ticket);
                            true
                        }
                    }
                }
            };
            if !alert {
                st.stats.suppressed += 1;
                return false;
            }
        }
        let countries = self.countries(fd, ev.f);
        out.push(Alert {
            rule: Arc::clone(&r.meta),
            dir: o.dir,
            phi: if r.has_phi { ev.phi.clone() } else { None },
            countries,
            undecided,
        });
        // An undecided alert is counted when it is written.
        if undecided.is_none() {
            st.stats.alerts += 1;
        }
        false
    }

    /// Client and server countries, looked up once per flow.
    fn countries(&self, fd: &mut FlowDetect, f: &FlowInfo) -> [Option<Country>; 2] {
        if fd.flags & GEO_DONE == 0 {
            fd.flags |= GEO_DONE;
            let g = &self.lookups.geo;
            fd.countries = [
                g.country(f.client.addr).unwrap_or([0, 0]),
                g.country(f.server.addr).unwrap_or([0, 0]),
            ];
        }
        fd.countries.map(|c| (c != [0, 0]).then_some(c))
    }

    fn country(&self, fd: &mut FlowDetect, f: &FlowInfo, ip: IpAddr) -> Option<Country> {
        let [c, s] = self.countries(fd, f);
        if ip == f.client.addr {
            c
        } else if ip == f.server.addr {
            s
        } else {
            self.lookups.geo.country(ip)
        }
    }

    fn cond(&self, c: &Cond, ev: &mut Eval<'_>, fd: &mut FlowDetect, o: &Orient) -> bool {
        match c {
            Cond::Never => false,
            Cond::AppProto { proto, negated } => (ev.f.app_proto == *proto) != *negated,
            Cond::FlowBytes { dir, m } => ev.f.bytes.get(*dir).is_some_and(|&b| m.matches(b)),
            Cond::Flowbits { bits, isset } => bits.iter().any(|&b| fd.bit(b) == *isset),
            Cond::Pred(p) => matches!(ev.subject, Subject::Tx(r, _) if p.test(r)),
            Cond::Buffer(g) => self.group(g, ev, o),
            Cond::Geoip {
                side,
                codes,
                allowed,
                negated,
            } => {
                let mut one = |ip: IpAddr, other: IpAddr| -> bool {
                    let Some(c) = self.country(fd, ev.f, ip) else {
                        return false;
                    };
                    let list = if *allowed {
                        match self.allowed.iter().find(|(s, _)| s.contains(other)) {
                            Some((_, l)) => Some(l),
                            None => return false,
                        }
                    } else {
                        None
                    };
                    let listed = codes.contains(&c) || list.is_some_and(|l| l.contains(&c));
                    listed != *negated
                };
                let (s, d) = (o.src.addr, o.dst.addr);
                match side {
                    Side::Src => one(s, d),
                    Side::Dst => one(d, s),
                    Side::Both => one(s, d) && one(d, s),
                    Side::Any => one(s, d) || one(d, s),
                }
            }
            Cond::Iprep { side, cat, op } => {
                let rep = &self.lookups.reputation;
                let one = |ip: IpAddr| op.test(rep.score(ip, *cat));
                let (s, d) = (o.src.addr, o.dst.addr);
                match side {
                    Side::Src => one(s),
                    Side::Dst => one(d),
                    Side::Both => one(s) && one(d),
                    Side::Any => one(s) || one(d),
                }
            }
            Cond::Credentials { test, outcome } => {
                let Subject::Tx(r, t) = ev.subject else {
                    return false;
                };
                let Some(c) = *ev.creds.get_or_insert_with(|| t.keywords.credentials(r)) else {
                    return false;
                };
                let proto = t.name;
                let hit = match test {
                    CredTest::Default => c.username.is_some_and(|u| {
                        self.lookups.credentials.is_default(proto, u, c.password)
                            || c.password.is_some_and(|p| !p.is_empty() && p == u)
                    }),
                    CredTest::Cleartext => c.password.is_some_and(|p| !p.is_empty()),
                    CredTest::None => c.username.is_none(),
                };
                hit && outcome.matches(c.accepted)
            }
            Cond::Phi(kinds) => {
                let scanner = &self.lookups.phi;
                let report = ev.phi.get_or_insert_with(|| {
                    Arc::new(match ev.subject {
                        Subject::Packet(p) => scanner.payload(p),
                        Subject::Tx(r, _) => scanner.record(r),
                    })
                });
                report.has_any(kinds)
            }
        }
    }

    fn group(&self, g: &rule::Group, ev: &Eval<'_>, o: &Orient) -> bool {
        let ds = Datasets(&self.datasets);
        match (&g.buf, ev.subject) {
            (BufId::Payload, Subject::Packet(p)) => content::match_items(&g.items, p, &ds),
            (BufId::Tx(b), Subject::Tx(r, t)) if b.proto == t.proto => b
                .buf
                .instances(r, &mut |bytes| content::match_items(&g.items, bytes, &ds)),
            (BufId::IpSrc | BufId::IpDst, _) => {
                let ip = if g.buf == BufId::IpSrc {
                    o.src.addr
                } else {
                    o.dst.addr
                };
                g.items.iter().all(|it| match it {
                    content::Item::Dataset(d) => match self.datasets.get(d.index) {
                        Some(Dataset::Ips(s)) => s.contains(ip) == d.isset,
                        _ => false,
                    },
                    _ => false,
                })
            }
            _ => false,
        }
    }
}

/// Addresses and ports of a rule header against a source and destination.
#[inline]
fn header(r: &Rule, src: Endpoint, dst: Endpoint) -> bool {
    // Most rules' headers are `any any -> any any` (every MQTT rule of the
    // default set): no address or port to look up, either way round, and
    // no call (this runs for every candidate rule of every record).
    (r.src.is_any() && r.sport.is_any() && r.dst.is_any() && r.dport.is_any())
        || header_sets(r, src, dst)
}

/// [`header`] by its address and port sets.
fn header_sets(r: &Rule, src: Endpoint, dst: Endpoint) -> bool {
    let fwd = |s: Endpoint, d: Endpoint| {
        r.src.contains(s.addr)
            && r.sport.contains(s.port)
            && r.dst.contains(d.addr)
            && r.dport.contains(d.port)
    };
    fwd(src, dst) || (r.bidir && fwd(dst, src))
}

/// Whether a packet rule's static part (protocol, direction, header) fits a
/// packet of `dir` on flow `f`.
/// A small code per app-layer protocol, never 0.
fn app_code(p: AppProto) -> u8 {
    match p {
        AppProto::Unknown => 1,
        AppProto::Mqtt => 2,
        AppProto::Dicom => 3,
        AppProto::Tls => 4,
        AppProto::Failed => 5,
        other => other.id(),
    }
}

fn packet_header(r: &Rule, f: &FlowInfo, dir: Direction) -> bool {
    if !r.proto.accepts(f.proto) || r.flow_dir.is_some_and(|d| d != dir) {
        return false;
    }
    let o = Orient::new(f, dir);
    header(r, o.src, o.dst)
}

/// How a transaction rule sees the flow: client to server unless it asks
/// for `to_client`; `None` when the header does not fit.
fn tx_orient(r: &Rule, f: &FlowInfo) -> Option<Orient> {
    if !r.proto.accepts(f.proto) {
        return None;
    }
    let o = Orient::new(f, tx_dir(r));
    header(r, o.src, o.dst).then_some(o)
}

/// The direction a transaction rule sees the flow in.
fn tx_dir(r: &Rule) -> Direction {
    r.flow_dir.unwrap_or(Direction::ToServer)
}

/// The bit of `FlowDetect::rec_fits` for the rule at position `pos` of a
/// hook (`None` from the ninth on: not cached).
fn fit_bit(pos: usize) -> Option<u8> {
    u32::try_from(pos).ok().and_then(|p| 1u8.checked_shl(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(s: &str) -> Endpoint {
        let sa: std::net::SocketAddr = s.parse().unwrap();
        Endpoint {
            addr: sa.ip(),
            port: sa.port(),
        }
    }

    fn flow(client: &str, server: &str, proto: u8) -> FlowInfo {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (client, server, proto).hash(&mut h);
        FlowInfo {
            ts: Timestamp::from_parts(1_700_000_000, 0),
            flow_id: h.finish(),
            client: ep(client),
            server: ep(server),
            proto,
            app_proto: AppProto::Unknown,
            established: true,
            bytes: [0, 0],
            pkts: [0, 0],
        }
    }

    fn build_with(rules: &str, cfg: &DetectConfig, lookups: Lookups) -> (Engine, LoadReport) {
        Engine::build_with(
            &Vars::default(),
            cfg,
            lookups,
            &[RuleSource {
                name: "test.rules".into(),
                text: rules.into(),
            }],
        )
        .unwrap()
    }

    fn build(rules: &str) -> Engine {
        let (e, r) = build_with(rules, &DetectConfig::default(), Lookups::default());
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        e
    }

    /// Runs one packet; returns the sids that alerted.
    fn pkt(
        e: &Engine,
        st: &mut DetectState,
        fd: &mut FlowDetect,
        f: &FlowInfo,
        dir: Direction,
        payload: &[u8],
    ) -> Vec<u32> {
        let mut out = Vec::new();
        e.packet(
            st,
            fd,
            &PacketInfo {
                flow: *f,
                dir,
                payload,
            },
            &mut out,
        );
        out.iter().map(|a| a.rule.sid).collect()
    }

    fn once(e: &Engine, f: &FlowInfo, dir: Direction, payload: &[u8]) -> Vec<u32> {
        let mut st = DetectState::default();
        let mut fd = e.new_flow(f.client.addr, f.server.addr);
        pkt(e, &mut st, &mut fd, f, dir, payload)
    }

    const TS: Direction = Direction::ToServer;
    const TC: Direction = Direction::ToClient;

    #[test]
    fn flow_detect_is_small() {
        assert!(std::mem::size_of::<FlowDetect>() <= 16);
    }

    #[test]
    fn bad_rules_are_reported_with_file_line_and_sid_and_others_load() {
        let text = "alert tcp any any -> any any (msg:\"ok\"; sid:1;)\n\
                    # comment\n\
                    alert tcp any any -> any any (msg:\"x\"; \\\n  bogus_keyword; sid:2;)\n\
                    alert tcp any any -> any any (msg:\"no sid\";)\n\
                    drop tcp any any -> any any (sid:4;)\n\
                    alert tcp any any -> any any (sid:1;)\n\
                    alert tcp any any -> any any (content:\"a\"; depth:0; sid:6;)\n\
                    alert tcp any any -> any any (classtype:nope; sid:7;)\n\
                    alert tcp any any -> any any (msg:\"ok2\"; sid:8;)\n";
        let (e, r) = build_with(text, &DetectConfig::default(), Lookups::default());
        assert_eq!(e.rule_count(), 2);
        assert_eq!(r.loaded, 2);
        let got: Vec<(usize, Option<u32>)> = r.errors.iter().map(|x| (x.line, x.sid)).collect();
        assert_eq!(
            got,
            [
                (3, Some(2)),
                (5, None),
                (6, Some(4)),
                (7, Some(1)),
                (8, Some(6)),
                (9, Some(7))
            ]
        );
        assert!(r.errors[0].reason.contains("bogus_keyword"));
        assert!(r.errors[0].reason.contains("unknown keyword"));
        assert!(r.errors[0].to_string().starts_with("test.rules:3: sid 2: "));
        assert!(r.errors[3].reason.contains("duplicate"));
    }

    #[test]
    fn meta_options_fill_the_rule_meta() {
        let e = build(
            r#"alert tcp any any -> any any (msg:"Default \"login\"\; seen"; classtype:default-login-attempt; metadata: finding default-credentials, created_at 2025_01_01; reference:url,www.cisa.gov/x; gid:3; sid:9; rev:2;)
alert tcp any any -> any any (msg:"p"; classtype:policy-violation; priority:3; sid:10;)
alert tcp any any -> any any (msg:"n"; sid:11;)"#,
        );
        let m = &e.rules[0].meta;
        assert_eq!(m.msg, "Default \"login\"; seen");
        assert_eq!((m.gid, m.sid, m.rev), (3, 9, 2));
        assert_eq!(
            m.category,
            "Attempt to login by a default username and password"
        );
        assert_eq!(m.severity, 2);
        assert_eq!(
            m.metadata,
            [
                ("finding".to_string(), "default-credentials".to_string()),
                ("created_at".to_string(), "2025_01_01".to_string())
            ]
        );
        // Expanded as Suricata's default reference.config does.
        assert_eq!(m.references, ["http://www.cisa.gov/x"]);
        assert_eq!(e.rules[1].meta.severity, 3);
        assert_eq!(
            e.rules[1].meta.category,
            "Potential Corporate Privacy Violation"
        );
        assert_eq!(
            (e.rules[2].meta.severity, e.rules[2].meta.category.as_str()),
            (3, "")
        );
        assert_eq!(e.rules[2].meta.gid, 1);
    }

    #[test]
    fn header_addresses_ports_and_direction() {
        let e = build(
            "alert tcp $HOME_NET any -> $EXTERNAL_NET [80,443] (sid:1;)\n\
             alert tcp $EXTERNAL_NET [80,443] -> $HOME_NET any (sid:2;)\n\
             alert tcp any any <> 8.8.8.8 443 (sid:3;)\n\
             alert udp any any -> any any (sid:4;)\n\
             alert ip any any -> any any (flow:to_client; sid:5;)",
        );
        let f = flow("10.0.0.5:40000", "8.8.8.8:443", 6);
        assert_eq!(once(&e, &f, TS, b"x"), [1, 3]);
        assert_eq!(once(&e, &f, TC, b"x"), [2, 3, 5]);
        let f = flow("10.0.0.5:40000", "8.8.8.8:8443", 6);
        assert!(once(&e, &f, TS, b"x").is_empty());
        let f = flow("10.0.0.5:40000", "8.8.8.8:53", 17);
        assert_eq!(once(&e, &f, TS, b"x"), [4]);
    }

    #[test]
    fn flow_established_option() {
        let e = build(
            "alert tcp any any -> any any (flow:established,to_server; sid:1;)\n\
             alert tcp any any -> any any (flow:not_established; sid:2;)\n\
             alert tcp any any -> any any (flow:stateless; sid:3;)",
        );
        let mut f = flow("10.0.0.5:40000", "10.0.0.6:1883", 6);
        assert_eq!(once(&e, &f, TS, b""), [1, 3]);
        f.established = false;
        assert_eq!(once(&e, &f, TS, b""), [2, 3]);
        assert!(
            build_with(
                "alert tcp any any -> any any (flow:to_server,to_client; sid:1;)",
                &DetectConfig::default(),
                Lookups::default()
            )
            .1
            .errors
            .len()
                == 1
        );
    }

    #[test]
    fn content_rules_alert_in_rule_order_through_the_prefilter() {
        let e = build(
            "alert tcp any any -> any any (content:\"PID|7c|\"; sid:20;)\n\
             alert tcp any any -> any any (content:\"msh\"; nocase; content:\"pid\"; nocase; distance:0; sid:10;)\n\
             alert tcp any any -> any any (content:!\"secret\"; sid:30;)\n\
             alert tcp any any -> any any (pcre:\"/^MSH\\|/\"; sid:40;)",
        );
        let f = flow("10.0.0.5:40000", "10.0.0.6:2575", 6);
        assert_eq!(once(&e, &f, TS, b"MSH|^~\\&|x\rPID|1"), [20, 10, 30, 40]);
        assert_eq!(once(&e, &f, TS, b"hello secret"), Vec::<u32>::new());
        assert_eq!(once(&e, &f, TS, b"xMSH pid"), [10, 30]);
        assert_eq!(once(&e, &f, TS, b"pid msh"), [30]);
    }

    #[test]
    fn fast_pattern_choice_does_not_change_results() {
        // The explicit fast pattern is the short one: the rule is still
        // found when the long content is present and not otherwise.
        let e = build(
            "alert tcp any any -> any any (content:\"ab\"; fast_pattern; content:\"longer pattern\"; sid:1;)",
        );
        assert_eq!(e.packet[0].prefilters[0].ac.patterns_len(), 1);
        let f = flow("10.0.0.5:40000", "10.0.0.6:80", 6);
        assert_eq!(once(&e, &f, TS, b"AB longer pattern ab"), [1]);
        assert!(once(&e, &f, TS, b"longer pattern").is_empty());
    }

    #[test]
    fn flow_bytes_and_app_layer_protocol() {
        let e = build(
            "alert tcp any any -> any any (flow.bytes_toserver:>1000; sid:1;)\n\
             alert tcp any any -> any any (app-layer-protocol:mqtt; sid:2;)\n\
             alert tcp any any -> any any (app-layer-protocol:!tls; sid:3;)\n\
             alert tcp any any -> any any (flow.bytes_toclient:<10; sid:4;)",
        );
        let mut f = flow("10.0.0.5:40000", "10.0.0.6:1883", 6);
        f.bytes = [1001, 50];
        f.app_proto = AppProto::Mqtt;
        assert_eq!(once(&e, &f, TS, b""), [1, 2, 3]);
        f.bytes = [1000, 5];
        f.app_proto = AppProto::Tls;
        assert_eq!(once(&e, &f, TS, b""), [4]);
    }

    #[test]
    fn the_per_flow_rule_cache_follows_the_app_layer_protocol() {
        // While the protocol is undecided the rule cannot match and the
        // flow is cached as "nothing to do"; once decided, the same flow
        // state must let it match.
        let e = build(
            "alert tcp any any -> any any (app-layer-protocol:failed; content:\"MSH|7C|\"; sid:1;)",
        );
        let mut f = flow("10.0.0.5:40000", "10.0.0.6:515", 6);
        let mut st = DetectState::default();
        let mut fd = FlowDetect::default();
        assert!(pkt(&e, &mut st, &mut fd, &f, TS, b"MSH|^~").is_empty());
        f.app_proto = AppProto::Failed;
        assert_eq!(pkt(&e, &mut st, &mut fd, &f, TS, b"MSH|^~"), [1]);
        f.app_proto = AppProto::Dicom;
        assert!(pkt(&e, &mut st, &mut fd, &f, TS, b"MSH|^~").is_empty());
    }

    #[test]
    fn flowbits_set_then_isset_on_a_later_packet() {
        let e = build(
            "alert tcp any any -> any any (content:\"login\"; flowbits:set,logged_in; flowbits:noalert; sid:1;)\n\
             alert tcp any any -> any any (content:\"data\"; flowbits:isset,logged_in; sid:2;)\n\
             alert tcp any any -> any any (content:\"data\"; flowbits:isnotset,logged_in; sid:3;)\n\
             alert tcp any any -> any any (content:\"logout\"; flowbits:unset,logged_in; sid:4;)",
        );
        let f = flow("10.0.0.5:40000", "10.0.0.6:80", 6);
        let mut st = DetectState::default();
        let mut fd = FlowDetect::default();
        assert_eq!(pkt(&e, &mut st, &mut fd, &f, TS, b"data"), [3]);
        assert!(pkt(&e, &mut st, &mut fd, &f, TS, b"login").is_empty());
        assert_eq!(pkt(&e, &mut st, &mut fd, &f, TS, b"data"), [2]);
        assert_eq!(pkt(&e, &mut st, &mut fd, &f, TS, b"logout"), [4]);
        assert_eq!(pkt(&e, &mut st, &mut fd, &f, TS, b"data"), [3]);
        // Another flow does not see this flow's bits.
        let mut fd2 = FlowDetect::default();
        assert!(pkt(&e, &mut st, &mut fd2, &f, TS, b"login").is_empty());
        assert_eq!(pkt(&e, &mut st, &mut fd, &f, TS, b"data"), [3]);
    }

    #[test]
    fn pass_rule_silences_the_flow() {
        let e = build(
            "alert tcp any any -> any any (content:\"x\"; sid:1;)\n\
             pass tcp any any -> any any (content:\"trusted\"; sid:2;)",
        );
        let f = flow("10.0.0.5:40000", "10.0.0.6:80", 6);
        let mut st = DetectState::default();
        let mut fd = FlowDetect::default();
        assert_eq!(pkt(&e, &mut st, &mut fd, &f, TS, b"x"), [1]);
        // The pass rule matches on the same packet as the alert rule: no alert.
        assert!(pkt(&e, &mut st, &mut fd, &f, TS, b"x trusted").is_empty());
        assert!(fd.passed());
        assert!(pkt(&e, &mut st, &mut fd, &f, TS, b"x").is_empty());
    }

    #[test]
    fn thresholds_by_src_dst_rule_and_flow_use_packet_time() {
        let e = build(
            "alert tcp any any -> any any (content:\"a\"; threshold:type limit, track by_src, count 1, seconds 60; sid:1;)\n\
             alert tcp any any -> any any (content:\"b\"; threshold:type threshold, track by_dst, count 2, seconds 60; sid:2;)\n\
             alert tcp any any -> any any (content:\"c\"; detection_filter:track by_rule, count 1, seconds 60; sid:3;)\n\
             alert tcp any any -> any any (content:\"d\"; threshold:type both, track by_flow, count 2, seconds 60; sid:4;)",
        );
        let mut st = DetectState::default();
        let f1 = flow("10.0.0.1:1000", "10.0.0.9:80", 6);
        let f2 = flow("10.0.0.2:1000", "10.0.0.9:80", 6);
        let (mut d1, mut d2) = (FlowDetect::default(), FlowDetect::default());
        let mut later = f1;
        later.ts = f1.ts.plus_secs(61);
        // by_src limit 1: one alert per source per minute.
        assert_eq!(pkt(&e, &mut st, &mut d1, &f1, TS, b"a"), [1]);
        assert!(pkt(&e, &mut st, &mut d1, &f1, TS, b"a").is_empty());
        assert_eq!(pkt(&e, &mut st, &mut d2, &f2, TS, b"a"), [1]);
        assert_eq!(pkt(&e, &mut st, &mut d1, &later, TS, b"a"), [1]);
        // by_dst threshold 2: the second match from any source alerts.
        assert!(pkt(&e, &mut st, &mut d1, &f1, TS, b"b").is_empty());
        assert_eq!(pkt(&e, &mut st, &mut d2, &f2, TS, b"b"), [2]);
        // by_rule detection_filter 1: every match after the first.
        assert!(pkt(&e, &mut st, &mut d1, &f1, TS, b"c").is_empty());
        assert_eq!(pkt(&e, &mut st, &mut d2, &f2, TS, b"c"), [3]);
        assert_eq!(pkt(&e, &mut st, &mut d1, &f1, TS, b"c"), [3]);
        // by_flow both 2: once per flow and window, at the second match.
        assert!(pkt(&e, &mut st, &mut d1, &f1, TS, b"d").is_empty());
        assert!(pkt(&e, &mut st, &mut d2, &f2, TS, b"d").is_empty());
        assert_eq!(pkt(&e, &mut st, &mut d1, &f1, TS, b"d"), [4]);
        assert!(pkt(&e, &mut st, &mut d1, &f1, TS, b"d").is_empty());
        assert_eq!(st.stats.suppressed, 6);
        assert_eq!(st.stats.alerts, 7);
    }

    #[test]
    fn full_threshold_table_is_counted() {
        let e = build("alert tcp any any -> any any (threshold:type limit, track by_src, count 1, seconds 60; sid:1;)");
        let cfg = DetectConfig {
            max_threshold_entries: 1,
            ..DetectConfig::default()
        };
        let mut st = DetectState::new(&cfg);
        let f1 = flow("10.0.0.1:1000", "10.0.0.9:80", 6);
        let f2 = flow("10.0.0.2:1000", "10.0.0.9:80", 6);
        let mut fd = FlowDetect::default();
        assert_eq!(pkt(&e, &mut st, &mut fd, &f1, TS, b""), [1]);
        assert_eq!(pkt(&e, &mut st, &mut fd, &f2, TS, b""), [1]);
        assert_eq!(st.stats.threshold_table_full, 1);
    }

    #[derive(Debug)]
    struct FakeGeo(Vec<(IpAddr, Country)>);
    impl CountryLookup for FakeGeo {
        fn country(&self, ip: IpAddr) -> Option<Country> {
            self.0.iter().find(|(a, _)| *a == ip).map(|(_, c)| *c)
        }
    }

    fn geo_lookups() -> Lookups {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        Lookups {
            geo: Arc::new(FakeGeo(vec![
                (ip("81.0.0.1"), *b"FR"),
                (ip("145.0.0.1"), *b"NL"),
                (ip("1.2.3.4"), *b"CN"),
                (ip("9.9.9.9"), *b"US"),
            ])),
            ..Lookups::default()
        }
    }

    #[test]
    fn geoip_lists_negation_and_unknown_addresses() {
        let (e, r) = build_with(
            "alert ip any any -> any any (geoip:dst,CN; sid:1;)\n\
             alert ip any any -> any any (geoip:dst,!FR,!NL; sid:2;)\n\
             alert ip any any -> any any (geoip:both,FR,NL; sid:3;)\n\
             alert ip any any -> any any (geoip:any,US; sid:4;)\n\
             alert ip any any -> any any (geoip:src,!FR; sid:5;)",
            &DetectConfig::default(),
            geo_lookups(),
        );
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        let f = flow("81.0.0.1:1000", "1.2.3.4:80", 6);
        assert_eq!(once(&e, &f, TS, b""), [1, 2]);
        let f = flow("81.0.0.1:1000", "145.0.0.1:80", 6);
        assert_eq!(once(&e, &f, TS, b""), [3]);
        let f = flow("9.9.9.9:1000", "145.0.0.1:80", 6);
        assert_eq!(once(&e, &f, TS, b""), [4, 5]);
        // A private address is unknown: neither plain nor negated lists match.
        let f = flow("10.0.0.1:1000", "192.168.1.1:80", 6);
        assert!(once(&e, &f, TS, b"").is_empty());
        // The reply direction swaps src and dst: the source is now CN.
        let f = flow("10.0.0.1:1000", "1.2.3.4:80", 6);
        assert_eq!(once(&e, &f, TS, b""), [1, 2]);
        assert_eq!(once(&e, &f, TC, b""), [5]);
    }

    #[test]
    fn geoip_allowed_uses_the_other_ends_group() {
        let mut vars = Vars::default();
        vars.address_groups
            .insert("CARDIO".into(), "[10.1.0.0/16]".into());
        vars.address_groups
            .insert("RADIOLOGY".into(), "[10.2.0.0/16]".into());
        let cfg = DetectConfig {
            allowed_countries: BTreeMap::from([
                ("CARDIO".to_string(), vec!["FR".to_string()]),
                (
                    "RADIOLOGY".to_string(),
                    vec!["fr".to_string(), "NL".to_string()],
                ),
            ]),
            ..DetectConfig::default()
        };
        let (e, r) = Engine::build_with(
            &vars,
            &cfg,
            geo_lookups(),
            &[RuleSource {
                name: "t".into(),
                text: "alert ip any any -> any any (geoip:dst,!allowed; sid:1;)".into(),
            }],
        )
        .unwrap();
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        let f = |c: &str, s: &str| flow(&format!("{c}:1000"), &format!("{s}:443"), 6);
        assert!(once(&e, &f("10.1.0.5", "81.0.0.1"), TS, b"").is_empty());
        assert_eq!(once(&e, &f("10.1.0.5", "145.0.0.1"), TS, b""), [1]);
        assert!(once(&e, &f("10.2.0.5", "145.0.0.1"), TS, b"").is_empty());
        assert_eq!(once(&e, &f("10.2.0.5", "1.2.3.4"), TS, b""), [1]);
        // No group holds the source: never matches.
        assert!(once(&e, &f("10.3.0.5", "1.2.3.4"), TS, b"").is_empty());
        // Destination unknown to the database: never matches.
        assert!(once(&e, &f("10.1.0.5", "10.2.0.1"), TS, b"").is_empty());
    }

    #[test]
    fn allowed_countries_of_an_unknown_group_is_a_build_error() {
        let cfg = DetectConfig {
            allowed_countries: BTreeMap::from([("NOPE".to_string(), vec!["FR".to_string()])]),
            ..DetectConfig::default()
        };
        assert!(Engine::build_with(&Vars::default(), &cfg, Lookups::default(), &[]).is_err());
        let mut vars = Vars::default();
        vars.address_groups.insert("BAD".into(), "[1.1.1.1".into());
        assert!(
            Engine::build_with(&vars, &DetectConfig::default(), Lookups::default(), &[]).is_err()
        );
    }

    #[test]
    fn alerts_carry_the_flow_countries() {
        let (e, _) = build_with(
            "alert ip any any -> any any (sid:1;)",
            &DetectConfig::default(),
            geo_lookups(),
        );
        let f = flow("10.0.0.1:1000", "1.2.3.4:80", 6);
        let mut out = Vec::new();
        e.packet(
            &mut DetectState::default(),
            &mut FlowDetect::default(),
            &PacketInfo {
                flow: f,
                dir: TC,
                payload: b"",
            },
            &mut out,
        );
        assert_eq!(out[0].countries, [None, Some(*b"CN")]);
        assert_eq!(out[0].dir, TC);
    }

    #[derive(Debug)]
    struct FakeRep;
    impl ReputationLookup for FakeRep {
        fn category(&self, name: &str) -> Option<u8> {
            (name == "KnownBad").then_some(1)
        }
        fn score(&self, ip: IpAddr, cat: u8) -> Option<u8> {
            (cat == 1 && ip == "202.114.4.119".parse::<IpAddr>().unwrap()).then_some(100)
        }
    }

    #[test]
    fn iprep_sides_and_operators() {
        let lk = Lookups {
            reputation: Arc::new(FakeRep),
            ..Lookups::default()
        };
        let (e, r) = build_with(
            "alert ip any any -> any any (iprep:any,KnownBad,>,50; sid:1;)\n\
             alert ip any any -> any any (iprep:dst,KnownBad,>,100; sid:2;)\n\
             alert ip any any -> any any (iprep:dst,KnownBad,=,100; sid:3;)\n\
             alert ip any any -> any any (iprep:src,KnownBad,isset; sid:4;)\n\
             alert ip any any -> any any (iprep:src,Nope,>,1; sid:5;)\n\
             alert ip any any -> any any (iprep:src,KnownBad,>,200; sid:6;)",
            &DetectConfig::default(),
            lk,
        );
        assert_eq!(
            r.errors.iter().map(|x| x.sid).collect::<Vec<_>>(),
            [Some(5), Some(6)]
        );
        let f = flow("10.0.0.1:1000", "202.114.4.119:80", 6);
        assert_eq!(once(&e, &f, TS, b""), [1, 3]);
        assert_eq!(once(&e, &f, TC, b""), [1, 4]);
        let f = flow("10.0.0.1:1000", "202.114.4.118:80", 6);
        assert!(once(&e, &f, TS, b"").is_empty());
    }

    #[derive(Debug)]
    struct FakeStrings(Vec<&'static [u8]>);
    impl StringLookup for FakeStrings {
        fn contains(&self, v: &[u8]) -> bool {
            self.0.contains(&v)
        }
        fn len(&self) -> usize {
            self.0.len()
        }
    }
    #[derive(Debug)]
    struct FakeIps(Vec<IpAddr>);
    impl IpLookup for FakeIps {
        fn contains(&self, ip: IpAddr) -> bool {
            self.0.contains(&ip)
        }
        fn len(&self) -> usize {
            self.0.len()
        }
    }

    #[test]
    fn datasets_on_ip_buffers_and_empty_allowlists() {
        let lk = Lookups {
            datasets: BTreeMap::from([
                (
                    "servers".to_string(),
                    Dataset::Ips(Arc::new(FakeIps(vec!["10.0.0.9".parse().unwrap()]))),
                ),
                ("empty".to_string(), Dataset::Ips(Arc::new(FakeIps(vec![])))),
                (
                    "words".to_string(),
                    Dataset::Strings(Arc::new(FakeStrings(vec![b"abc"]))),
                ),
            ]),
            ..Lookups::default()
        };
        let (e, r) = build_with(
            "alert ip any any -> any any (ip.dst; dataset:isset,servers; sid:1;)\n\
             alert ip any any -> any any (ip.dst; dataset:isnotset,servers; sid:2;)\n\
             alert ip any any -> any any (ip.src; dataset:isnotset,empty; sid:3;)\n\
             alert ip any any -> any any (ip.src; dataset:isset,words; sid:4;)\n\
             alert ip any any -> any any (dataset:isset,servers; sid:5;)\n\
             alert ip any any -> any any (ip.src; dataset:isset,nope; sid:6;)",
            &DetectConfig::default(),
            lk,
        );
        assert_eq!(
            r.errors.iter().map(|x| x.sid).collect::<Vec<_>>(),
            [Some(4), Some(5)]
        );
        assert_eq!(r.warnings.len(), 2);
        assert!(r.warnings[0].contains("\"empty\" is empty"));
        assert!(r.warnings[1].contains("\"nope\" is not configured"));
        let f = flow("10.0.0.1:1000", "10.0.0.9:80", 6);
        assert_eq!(once(&e, &f, TS, b""), [1]);
        assert_eq!(once(&e, &f, TC, b""), [2]);
    }

    #[derive(Debug)]
    struct FakePhi;
    impl PhiScanner for FakePhi {
        fn payload(&self, data: &[u8]) -> phi::PhiReport {
            if data.windows(4).any(|w| w == b"PID|") {
                phi::PhiReport {
                    kinds: vec![phi::PhiKind::Hl7],
                    evidence: vec![],
                }
            } else {
                phi::PhiReport::default()
            }
        }
        fn record(&self, _: &AppRecord) -> phi::PhiReport {
            phi::PhiReport::default()
        }
    }

    #[test]
    fn phi_kinds_select_and_the_report_rides_on_the_alert() {
        let lk = Lookups {
            phi: Arc::new(FakePhi),
            ..Lookups::default()
        };
        let (e, r) = build_with(
            "alert tcp any any -> any any (phi; sid:1;)\n\
             alert tcp any any -> any any (phi:nir,bsn; sid:2;)\n\
             alert tcp any any -> any any (phi:hl7; sid:3;)\n\
             alert tcp any any -> any any (content:\"PID\"; sid:4;)\n\
             alert tcp any any -> any any (phi:blood_type; sid:5;)",
            &DetectConfig::default(),
            lk,
        );
        assert_eq!(r.errors.len(), 1);
        let f = flow("10.0.0.1:1000", "10.0.0.9:2575", 6);
        let mut out = Vec::new();
        e.packet(
            &mut DetectState::default(),
            &mut FlowDetect::default(),
            &PacketInfo {
                flow: f,
                dir: TS,
                payload: b"MSH|x\rPID|1",
            },
            &mut out,
        );
        let sids: Vec<u32> = out.iter().map(|a| a.rule.sid).collect();
        assert_eq!(sids, [1, 3, 4]);
        assert_eq!(out[0].phi.as_ref().unwrap().kinds, [phi::PhiKind::Hl7]);
        assert!(out[2].phi.is_none());
        assert!(once(&e, &f, TS, b"telemetry").is_empty());
    }

    #[test]
    fn transaction_rules_need_a_sticky_buffer_for_content() {
        let (_, r) = build_with(
            "alert mqtt any any -> any any (content:\"x\"; sid:1;)\n\
             alert udp any any -> any any (credentials:default; sid:2;)\n\
             alert mqtt any any -> any any (msg:\"ok\"; sid:3;)",
            &DetectConfig::default(),
            Lookups::default(),
        );
        assert_eq!(
            r.errors.iter().map(|x| x.sid).collect::<Vec<_>>(),
            [Some(1), Some(2)]
        );
    }

    #[test]
    fn credentials_outcomes_parse_and_unknown_means_no_answer() {
        let (_, r) = build_with(
            "alert mqtt any any -> any any (credentials:default,unknown; sid:1;)\n\
             alert mqtt any any -> any any (credentials:default,maybe; sid:2;)\n\
             alert mqtt any any -> any any (credentials:none,refused,x; sid:3;)",
            &DetectConfig::default(),
            Lookups::default(),
        );
        assert_eq!(
            r.errors.iter().map(|x| x.sid).collect::<Vec<_>>(),
            [Some(2), Some(3)]
        );
        assert!(r.errors[0].reason.contains("accepted, refused or unknown"));
        use rule::Outcome;
        let answers = [Some(true), Some(false), None];
        let m = |o: Outcome| answers.map(|a| o.matches(a));
        assert_eq!(m(Outcome::Any), [true, true, true]);
        assert_eq!(m(Outcome::Accepted), [true, false, false]);
        assert_eq!(m(Outcome::Refused), [false, true, false]);
        assert_eq!(m(Outcome::Unknown), [false, false, true]);
    }

    #[test]
    fn records_without_a_login_skip_credentials_rules_only() {
        use crate::app::mqtt::{Body, Connack, Connect, Message, Record};
        let e = build(
            "alert mqtt any any -> any any (credentials:none,accepted; sid:1;)\n\
             alert mqtt any any -> any any (msg:\"any\"; sid:2;)",
        );
        let hook = e.tx.iter().find(|t| t.proto == AppProto::Mqtt).unwrap();
        assert_eq!(hook.rules.always.len(), 2);
        let no_login: Vec<u32> = hook
            .rules
            .always_no_login
            .iter()
            .map(|&pos| e.rules[hook.rules.order[pos as usize] as usize].meta.sid)
            .collect();
        assert_eq!(no_login, [2]);
        let message = |packet_type, dir, body| Message {
            packet_type,
            flags: 0,
            dir,
            body,
        };
        let record = |messages| {
            AppRecord::Mqtt(Record {
                messages,
                protocol_version: 4,
                mid_stream_guess: false,
                answer_lost: false,
            })
        };
        let anonymous = record(vec![
            message(
                1,
                Direction::ToServer,
                Body::Connect(Connect {
                    protocol_string: "MQTT".into(),
                    protocol_version: 4,
                    flags: 0x02,
                    keep_alive: 60,
                    client_id: "mon".into(),
                    username: None,
                    password: None,
                    will: None,
                    properties: None,
                    skipped_length: 0,
                }),
            ),
            message(
                2,
                Direction::ToClient,
                Body::Connack(Connack {
                    session_present: false,
                    return_code: 0,
                    properties: None,
                }),
            ),
        ]);
        let ping = record(vec![message(12, Direction::ToServer, Body::Pingreq)]);
        let mut f = flow("10.0.0.1:1000", "10.0.0.9:1883", 6);
        f.app_proto = AppProto::Mqtt;
        let mut st = DetectState::default();
        let mut fd = FlowDetect::default();
        let mut sids = |r: &AppRecord| {
            let mut out = Vec::new();
            e.record(&mut st, &mut fd, &f, r, &mut out);
            out.iter().map(|a| a.rule.sid).collect::<Vec<_>>()
        };
        assert_eq!(sids(&ping), [2]);
        assert_eq!(sids(&anonymous), [1, 2]);
        assert_eq!(sids(&ping), [2]);
    }

    #[test]
    fn record_headers_judged_once_per_flow_match_as_judged_each_time() {
        use crate::app::mqtt::{Body, Message, Record};
        // Twelve rules, past the eight whose headers a flow caches, with
        // headers that fit the flow or not in every way: addresses,
        // ports, `<>`, `flow:to_client`.
        let headers = [
            "any any -> any any",
            "10.0.0.2 any -> any any",
            "any any -> any 1883",
            "any any -> any 1884",
            "10.0.0.9 any <> 10.0.0.1 any",
            "10.0.0.9 1883 -> 10.0.0.1 any (flow:to_client;",
            "10.0.0.1 any -> 10.0.0.9 any (flow:to_client;",
            "any 1000 -> any any",
            "any any -> 10.0.0.1 any",
            "10.0.0.0/24 any -> 10.0.0.9 1883",
            "any any -> any !1883",
            "any any <> any 1000",
        ];
        let rules: String = headers
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let h = if h.contains('(') {
                    h.to_string()
                } else {
                    format!("{h} (")
                };
                format!("alert mqtt {h} msg:\"r\"; sid:{};)\n", i + 1)
            })
            .collect();
        let e = build(&rules);
        let hook = e.tx.iter().find(|t| t.proto == AppProto::Mqtt).unwrap();
        assert_eq!(hook.rules.order.len(), headers.len());
        let mut f = flow("10.0.0.1:1000", "10.0.0.9:1883", 6);
        f.app_proto = AppProto::Mqtt;
        // Each rule's header judged on its own, in evaluation order.
        let want: Vec<u32> = hook
            .rules
            .order
            .iter()
            .map(|&i| &e.rules[i as usize])
            .filter(|r| tx_orient(r, &f).is_some())
            .map(|r| r.meta.sid)
            .collect();
        assert!(want.iter().any(|&s| s > 8) && want.len() < headers.len());
        let ping = AppRecord::Mqtt(Record {
            messages: vec![Message {
                packet_type: 12,
                flags: 0,
                dir: Direction::ToServer,
                body: Body::Pingreq,
            }],
            protocol_version: 4,
            mid_stream_guess: false,
            answer_lost: false,
        });
        let mut st = DetectState::default();
        let mut fd = FlowDetect::default();
        for _ in 0..3 {
            let mut out = Vec::new();
            e.record(&mut st, &mut fd, &f, &ping, &mut out);
            let got: Vec<u32> = out.iter().map(|a| a.rule.sid).collect();
            assert_eq!(got, want);
        }
    }

    #[test]
    fn packet_rules_cost_nothing_on_flows_their_headers_exclude() {
        let e = build("alert tcp any any -> any 502 (content:\"x\"; sid:1;)");
        let f = flow("10.0.0.1:1000", "10.0.0.9:80", 6);
        let mut st = DetectState::default();
        let mut fd = FlowDetect::default();
        assert!(pkt(&e, &mut st, &mut fd, &f, TS, b"x").is_empty());
        assert_eq!(fd.flags & (PKT_KNOWN[0] | PKT_SOME[0]), PKT_KNOWN[0]);
        let f = flow("10.0.0.1:1000", "10.0.0.9:502", 6);
        let mut fd = FlowDetect::default();
        assert_eq!(pkt(&e, &mut st, &mut fd, &f, TS, b"x"), [1]);
    }

    #[test]
    fn embedded_classifications_include_the_standard_names() {
        let c = rule::Classes::embedded();
        assert_eq!(c.get("trojan-activity").map(|x| x.1), Some(1));
        assert_eq!(c.get("misc-activity").map(|x| x.1), Some(3));
        assert_eq!(
            c.get("credential-theft").map(|x| x.0.as_str()),
            Some("Successful Credential Theft Detected")
        );
    }
}
