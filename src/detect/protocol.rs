//! The one interface through which an application protocol offers rule
//! keywords to the engine (issue 12, part 1): sticky buffers, predicates,
//! the login a record carries (`credentials`) and its patient data
//! (`phi`).
//!
//! A protocol implements [`ProtocolKeywords`] (over its own record type;
//! [`Keywords`], the engine's view, follows) in its own
//! `app/<proto>/detect.rs` and returns it from
//! [`crate::app::AppProtocol::keywords`]; its entry in
//! [`crate::app::PROTOCOLS`] is then all the engine needs: rule headers
//! may name the protocol (`alert hl7 …`), its keywords compile, its
//! records are evaluated by the rules that use them, and
//! `app-layer-protocol` knows its name.
//!
//! Contract:
//! - [`Keywords::keyword`] is asked for every option name the engine does
//!   not know; `None` means "not one of mine". A rule's protocol keywords
//!   all come from one protocol, and the rule then runs on that
//!   protocol's records only.
//! - A [`TxBuffer`] yields the byte strings that the following
//!   `content`/`pcre`/`dataset`/`bsize` options match, one per instance (a
//!   content group matches when one instance matches all of it); a
//!   [`TxPredicate`] is true or false on a record. Both get every record of
//!   the flow and answer `false` / yield nothing for another protocol's.
//! - Two buffers with equal [`TxBuffer::key`] read the same bytes (the
//!   engine shares one prefilter between them).
//! - Transaction rules see a flow client → server (or server → client
//!   with `flow:to_client`), whichever side sent the record's messages.

use std::fmt::Debug;
use std::sync::Arc;

use super::phi::{PhiConfig, PhiReport};
use crate::app::{AppProto, AppRecord, Credentials};

/// What a protocol offers rules, as the engine holds it (type-erased).
/// A protocol implements [`ProtocolKeywords`] over its own record type;
/// this follows.
pub trait Keywords: Sync {
    /// Compiles option `name` with its value: `None` when `name` is not
    /// this protocol's keyword, `Some(Err(reason))` when the value is
    /// wrong.
    fn keyword(&self, name: &str, value: Option<&str>) -> Option<Result<Keyword, String>>;

    /// The login `rec` carries, for `credentials` (`None`: not a login,
    /// or another protocol's record).
    fn credentials<'r>(&self, rec: &'r AppRecord) -> Option<Credentials<'r>>;

    /// The patient data of `rec`, for `phi`.
    fn phi(&self, rec: &AppRecord, cfg: &PhiConfig) -> PhiReport;
}

/// A compiled protocol keyword.
#[derive(Debug, Clone)]
pub enum Keyword {
    Buffer(Arc<dyn TxBuffer>),
    Predicate(Arc<dyn TxPredicate>),
}

/// A sticky buffer over records.
pub trait TxBuffer: Debug + Send + Sync {
    /// Identifies what the buffer reads: by default its `Debug` form (the
    /// keyword and its argument).
    fn key(&self) -> String {
        format!("{self:?}")
    }
    /// Calls `f` on each instance in `rec` until it returns true; returns
    /// whether it did.
    fn instances(&self, rec: &AppRecord, f: &mut dyn FnMut(&[u8]) -> bool) -> bool;
}

/// A keyword that is true or false on a record.
pub trait TxPredicate: Debug + Send + Sync {
    fn test(&self, rec: &AppRecord) -> bool;
}

// ------------------------------------------------- a protocol's side

/// A protocol's record, as it travels in an [`AppRecord`].
pub trait TxRecord: Sized + 'static {
    fn of(rec: &AppRecord) -> Option<&Self>;
}

/// What a protocol's `detect.rs` offers, over its own records.
pub trait ProtocolKeywords: Sync {
    type Record: TxRecord;
    type Buffer: RecordBuffer<Record = Self::Record>;
    type Predicate: TxPredicate + 'static;
    /// As [`Keywords::keyword`].
    fn keyword(&self, name: &str, value: Option<&str>) -> Compiled<Self::Buffer, Self::Predicate>;
    /// As [`Keywords::credentials`]; a protocol without logins keeps the
    /// default.
    fn credentials<'r>(&self, _rec: &'r Self::Record) -> Option<Credentials<'r>> {
        None
    }
    /// As [`Keywords::phi`].
    fn phi(&self, rec: &Self::Record, cfg: &PhiConfig) -> PhiReport;
}

impl<K: ProtocolKeywords> Keywords for K {
    fn keyword(&self, name: &str, value: Option<&str>) -> Option<Result<Keyword, String>> {
        ProtocolKeywords::keyword(self, name, value).map(|r| r.map(Keyword::from))
    }
    fn credentials<'r>(&self, rec: &'r AppRecord) -> Option<Credentials<'r>> {
        K::Record::of(rec).and_then(|r| ProtocolKeywords::credentials(self, r))
    }
    fn phi(&self, rec: &AppRecord, cfg: &PhiConfig) -> PhiReport {
        K::Record::of(rec).map_or_else(PhiReport::default, |r| ProtocolKeywords::phi(self, r, cfg))
    }
}

/// What compiling an option gives: not the protocol's (`None`), a wrong
/// value, or the keyword.
pub type Compiled<B, P> = Option<Result<Typed<B, P>, String>>;

/// A protocol's compiled keyword, typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Typed<B, P> {
    Buffer(B),
    Predicate(P),
}

impl<B: TxBuffer + 'static, P: TxPredicate + 'static> From<Typed<B, P>> for Keyword {
    fn from(k: Typed<B, P>) -> Keyword {
        match k {
            Typed::Buffer(b) => Keyword::Buffer(Arc::new(b)),
            Typed::Predicate(p) => Keyword::Predicate(Arc::new(p)),
        }
    }
}

/// A sticky buffer over one protocol's records.
pub trait RecordBuffer: Debug + Send + Sync + 'static {
    type Record: TxRecord;
    /// Calls `f` on each instance until it returns true; returns whether
    /// it did. An empty field yields no instance (as Suricata's buffers).
    fn any(&self, rec: &Self::Record, f: &mut dyn FnMut(&[u8]) -> bool) -> bool;
}

impl<B: RecordBuffer> TxBuffer for B {
    fn instances(&self, rec: &AppRecord, f: &mut dyn FnMut(&[u8]) -> bool) -> bool {
        B::Record::of(rec).is_some_and(|r| self.any(r, f))
    }
}

/// A predicate over one protocol's records.
pub trait RecordPredicate: Debug + Send + Sync + 'static {
    type Record: TxRecord;
    fn matches(&self, rec: &Self::Record) -> bool;
}

impl<P: RecordPredicate> TxPredicate for P {
    fn test(&self, rec: &AppRecord) -> bool {
        P::Record::of(rec).is_some_and(|r| self.matches(r))
    }
}

/// The predicate type of a protocol that offers buffers only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoPredicate {}

impl TxPredicate for NoPredicate {
    fn test(&self, _: &AppRecord) -> bool {
        match *self {}
    }
}

/// A buffer as rules name it: the protocol and the buffer.
#[derive(Debug, Clone)]
pub(crate) struct TxBuf {
    pub proto: AppProto,
    key: String,
    pub buf: Arc<dyn TxBuffer>,
}

impl TxBuf {
    pub(crate) fn new(proto: AppProto, buf: Arc<dyn TxBuffer>) -> TxBuf {
        TxBuf {
            proto,
            key: buf.key(),
            buf,
        }
    }
}

impl PartialEq for TxBuf {
    fn eq(&self, o: &TxBuf) -> bool {
        self.proto == o.proto && self.key == o.key
    }
}

impl Eq for TxBuf {}

/// Every source of rule keywords, with the hook it names and that hook's
/// name in rule headers: the protocols of [`crate::app::PROTOCOLS`] that
/// offer keywords, then the `asset` hook (rules on asset changes,
/// [`crate::asset::detect`]; no flow carries it).
pub(crate) fn hooks() -> impl Iterator<Item = (AppProto, &'static str, &'static dyn Keywords)> {
    crate::app::PROTOCOLS
        .iter()
        .filter_map(|p| Some((p.proto(), p.name(), p.keywords()?)))
        .chain(std::iter::once((
            AppProto::Asset,
            "asset",
            &crate::asset::detect::KEYWORDS as &'static dyn Keywords,
        )))
}

/// The keywords of the protocol `rec` belongs to.
pub(crate) fn of_record(rec: &AppRecord) -> Option<&'static dyn Keywords> {
    rec.app_proto()?.protocol()?.keywords()
}
