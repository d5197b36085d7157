//! Patient location ([`PhiKind::Location`]): positions precise enough to
//! place a person, in JSON and in NMEA 0183 sentences; street-level
//! addresses are judged by [`super::hl7`] (PID-11) and [`super::json`]
//! (FHIR `Patient.address`) with [`postal_code_is_precise`].
//!
//! Why: HIPAA's Safe Harbor method (45 CFR §164.514(b)(2)(i)(B)) counts
//! every geographic subdivision smaller than a state as an identifier, and
//! wearables and remote-monitoring gateways publish GPS fixes next to the
//! vital signs.
//!
//! A *position* is a latitude and a longitude that
//! - are both in range (|lat| ≤ 90, |lon| ≤ 180), neither is exactly 0 and
//!   they are not both within [`OPEN_SEA_DEG`] of 0: `0.0, 0.0` ("null
//!   island") or a zero half is what a receiver without a fix, or a device
//!   never located, sends, and the square of ±4° around it is open sea
//!   (the Gulf of Guinea: the nearest coasts, Ghana's at 4.7° N and
//!   São Tomé at 6.5° E, are outside it) where no patient is, while
//!   `{"lat": 0.123, "long": 0.987}` is what an accelerometer reporting
//!   lateral and longitudinal g sends;
//! - are both precise: at least [`PhiConfig::location_min_decimals`]
//!   significant decimal places of a degree (trailing zeros do not count,
//!   so `48.80000` is one decimal). The default, 3, is 0.001° ≈ 111 m of
//!   latitude (73 m of longitude in Paris): a street, a building — where a
//!   person is. Two decimals (≈ 1.1 km) is a neighbourhood, one (≈ 11 km) a
//!   town: a coarse value or a rounded city centroid is not flagged. (A
//!   centroid published to 4 decimals cannot be told from a person standing
//!   there, and is flagged.)
//! - lie outside every configured site ([`PhiConfig::site_locations`], the
//!   hospital's own grounds, distance by the haversine formula): a fixed
//!   device reporting where it is installed is not a patient's location.
//!
//! Where positions are read:
//! - JSON, each object (any depth up to [`MAX_DEPTH`]) on its own direct
//!   members:
//!   - a latitude key (`lat`, `latitude`, `gps_lat`…) and a longitude key
//!     (`lon`, `lng`, `long`, `longitude`…), values numbers or numeric
//!     strings (keys compared lower case without separators);
//!   - a GeoJSON geometry (RFC 7946 §3.1) `{"type": "Point" | "MultiPoint"
//!     | "LineString", "coordinates": …}`, positions `[lon, lat(, alt)]`;
//!   - a FHIR geolocation extension (`url` [`GEOLOCATION_URL`], with
//!     sub-extensions `latitude` and `longitude` carrying `valueDecimal`),
//!     which FHIR puts on `Patient.address`, `Location.address`…;
//!   - a string `"lat,lon"` under a position key (`location`, `position`,
//!     `gps`, `geo`, `coords`…; Elasticsearch's and Google's string order),
//!     and a `[lat, lon]` array under a key that names its order
//!     (`latlng`, `latlon`; `lnglat`, `lonlat` for `[lon, lat]`). An array
//!     under `location` or `coordinates` without a GeoJSON `type` is not
//!     read: nothing says which number is the latitude.
//! - NMEA 0183 sentences anywhere in the bytes: `$`, a GNSS talker (GP,
//!   GL, GA, GB, BD, GQ, GI, GN), GGA, RMC, GLL or GNS, then the fields as
//!   NMEA 0183 (v4.11 §8.3) lays them out, on at most [`MAX_SENTENCE`]
//!   bytes of printable ASCII. The `*hh` checksum (XOR of the bytes between
//!   `$` and `*`) must match when present. Only fixes count: GGA quality
//!   1–6 (not 0 invalid, 7 manual input, 8 simulator), RMC and GLL status
//!   `A` (and their mode, when present, not N, M or S), GNS with a mode of
//!   A, D, P, R, F or E. Latitude is `ddmm.mmmm`, longitude `dddmm.mmmm`:
//!   m significant decimals of a minute are a step of 10^-m / 60 degrees,
//!   finer than 10^-(m+1), so they count as m + 1 decimals of a degree.
//!
//! Evidence: the position as `lat,lon` (JSON: the numbers as written; NMEA:
//! decimal degrees to 6 places); the output's masking policy
//! ([`crate::output::mask`]) logs it [`coarsened`] to one decimal
//! (`~48.8,2.4`, about 11 km).
//!
//! Work: one walk of the JSON tape ([`super::tape`]); one memchr pass over the bytes for
//! `$`, each candidate read over at most [`MAX_SENTENCE`] bytes and a
//! recognised sentence skipped whole. No allocation but evidence and the
//! text of numbers under latitude/longitude keys.

use serde::Deserialize;

use super::ids;
use super::tape::{self, Val};
use super::{Collector, PhiConfig, PhiKind};
use crate::output::mask::display_bytes;

/// Nesting walked (objects and arrays): the walk is
/// [`super::json::scan`]'s.
pub const MAX_DEPTH: usize = super::json::MAX_DEPTH;

/// Bytes of one NMEA sentence read after its `$` (the standard allows 82
/// characters with `$` and CR LF; some receivers write longer ones).
pub const MAX_SENTENCE: usize = 100;

/// FHIR's geolocation extension (FHIR R4 extension registry).
pub const GEOLOCATION_URL: &str = "http://hl7.org/fhir/StructureDefinition/geolocation";

/// Half-side, in degrees, of the square of open sea around (0, 0) whose
/// positions are not believed (see the module docs).
pub const OPEN_SEA_DEG: f64 = 4.0;

/// Mean Earth radius (IUGG), metres.
const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// One `detect.phi.site_locations` entry: a place whose positions are not
/// a patient's (`{lat, lon, radius_m}` in the configuration).
///
/// Kept in 1e-7 degree units (about 1 cm) and whole metres, so that the
/// configuration compares exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "SiteSpec")]
pub struct SiteLocation {
    lat_e7: i32,
    lon_e7: i32,
    radius_m: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SiteSpec {
    lat: f64,
    lon: f64,
    radius_m: f64,
}

impl TryFrom<SiteSpec> for SiteLocation {
    type Error = String;

    fn try_from(s: SiteSpec) -> Result<Self, String> {
        SiteLocation::new(s.lat, s.lon, s.radius_m)
    }
}

impl SiteLocation {
    /// Largest radius accepted, metres: a site is a hospital's grounds,
    /// not a region.
    pub const MAX_RADIUS_M: f64 = 100_000.0;

    /// # Errors
    /// A coordinate out of range or a radius that is negative, not finite
    /// or over [`SiteLocation::MAX_RADIUS_M`].
    pub fn new(lat: f64, lon: f64, radius_m: f64) -> Result<Self, String> {
        if !(-90.0..=90.0).contains(&lat) {
            return Err(format!("site latitude {lat} is not within -90..90"));
        }
        if !(-180.0..=180.0).contains(&lon) {
            return Err(format!("site longitude {lon} is not within -180..180"));
        }
        if !(0.0..=Self::MAX_RADIUS_M).contains(&radius_m) {
            return Err(format!(
                "site radius_m {radius_m} is not within 0..{}",
                Self::MAX_RADIUS_M
            ));
        }
        // In range (checked above), so the conversions cannot saturate.
        Ok(SiteLocation {
            lat_e7: (lat * 1e7).round() as i32,
            lon_e7: (lon * 1e7).round() as i32,
            radius_m: radius_m.round() as u32,
        })
    }

    /// Whether a position lies within the site's radius.
    pub fn contains(&self, lat: f64, lon: f64) -> bool {
        let (slat, slon) = (f64::from(self.lat_e7) / 1e7, f64::from(self.lon_e7) / 1e7);
        distance_m(slat, slon, lat, lon) <= f64::from(self.radius_m)
    }
}

/// Great-circle distance (haversine), metres.
fn distance_m(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = (lat2 - lat1).to_radians() / 2.0;
    let dl = (lon2 - lon1).to_radians() / 2.0;
    let a = dp.sin().powi(2) + p1.cos() * p2.cos() * dl.sin().powi(2);
    2.0 * EARTH_RADIUS_M * a.sqrt().min(1.0).asin()
}

/// One coordinate and its precision.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Coord {
    deg: f64,
    /// Significant decimal places of a degree.
    decimals: u32,
}

/// A decimal number as JSON or a device writes it: optional sign, digits,
/// optional fraction, optional exponent (serde_json writes tiny values as
/// `1e-7`). `None` for anything else (`latency`, `N/A`, `1.2.3`).
fn parse_decimal(text: &str) -> Option<Coord> {
    let b = text.as_bytes();
    let mut i = usize::from(matches!(b.first(), Some(b'-' | b'+')));
    let digits = |from: usize| {
        b.get(from..)
            .map_or(0, |r| r.iter().take_while(|c| c.is_ascii_digit()).count())
    };
    let int = digits(i);
    if int == 0 || int > 20 {
        return None;
    }
    i += int;
    let mut frac_sig = 0usize;
    if b.get(i) == Some(&b'.') {
        let n = digits(i + 1);
        if n == 0 || n > 20 {
            return None;
        }
        let frac = b.get(i + 1..i + 1 + n)?;
        frac_sig = frac.iter().rposition(|&c| c != b'0').map_or(0, |p| p + 1);
        i += 1 + n;
    }
    let mut exp = 0i64;
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        let neg = b.get(i) == Some(&b'-');
        i += usize::from(matches!(b.get(i), Some(b'-' | b'+')));
        let n = digits(i);
        if n == 0 || n > 3 {
            return None;
        }
        let e = b
            .get(i..i + n)?
            .iter()
            .fold(0i64, |a, &c| a * 10 + i64::from(c - b'0'));
        exp = if neg { -e } else { e };
        i += n;
    }
    if i != b.len() {
        return None;
    }
    let deg: f64 = text.parse().ok()?;
    let decimals = u32::try_from((frac_sig as i64 - exp).clamp(0, 64)).unwrap_or(0);
    deg.is_finite().then_some(Coord { deg, decimals })
}

fn coord_of_value(v: Val<'_>) -> Option<Coord> {
    match v.as_str() {
        Some(s) => parse_decimal(s.trim()),
        // Copied: the number's shortest text, to count its decimals.
        None => parse_decimal(&v.number_text()?),
    }
}

/// The position rules of the module docs, but the text.
fn is_personal(lat: Coord, lon: Coord, cfg: &PhiConfig) -> bool {
    let min = u32::from(cfg.location_min_decimals);
    lat.deg.abs() <= 90.0
        && lon.deg.abs() <= 180.0
        && lat.deg != 0.0
        && lon.deg != 0.0
        && (lat.deg.abs() >= OPEN_SEA_DEG || lon.deg.abs() >= OPEN_SEA_DEG)
        && lat.decimals >= min
        && lon.decimals >= min
        && !cfg
            .site_locations
            .iter()
            .any(|s| s.contains(lat.deg, lon.deg))
}

/// Evidence value of a position read from numbers or numeric strings.
fn pair_text(lat: Val<'_>, lon: Val<'_>) -> String {
    let t = |v: Val<'_>| match v.as_str() {
        Some(s) => s.trim().to_string(),
        None => v.number_text().unwrap_or_default(),
    };
    format!("{},{}", t(lat), t(lon))
}

/// `~48.8,2.4`: a `lat,lon` evidence value rounded to one decimal (about
/// 11 km), or `None` when `value` is not a position (an address).
pub fn coarsened(value: &str) -> Option<String> {
    let (a, b) = value.split_once(',')?;
    let lat = parse_decimal(a.trim())?.deg;
    let lon = parse_decimal(b.trim())?.deg;
    (lat.abs() <= 90.0 && lon.abs() <= 180.0).then(|| format!("~{lat:.1},{lon:.1}"))
}

/// A postal code detailed enough to place a street or a few blocks: at
/// least 4 letters or digits (a US ZIP5, a French or German code, a Dutch
/// `1012 AB`; not the 3-digit ZIP prefix Safe Harbor allows, nor a
/// French département).
pub fn postal_code_is_precise(code: &[u8]) -> bool {
    code.iter().filter(|b| b.is_ascii_alphanumeric()).count() >= 4
}

// ------------------------------------------------------------------ JSON

/// What a member's key says its value is (keys compared lower case
/// without separators).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Lat,
    Lon,
    /// A `"lat,lon"` string.
    Position,
    /// `"lat,lon"` or `[lat, lon]`.
    LatFirst,
    /// `"lon,lat"` or `[lon, lat]`.
    LonFirst,
}

fn role(key: &str) -> Option<Role> {
    // Every name below starts with `l`, `g`, `p` or `c`, and a key's
    // normalised form starts with its first letter or digit: most keys
    // (`hr`, `name`, `device`…) are turned away without normalising them
    // (the identity detector normalises every key already).
    let first = key.bytes().find(u8::is_ascii_alphanumeric)?;
    if !matches!(first.to_ascii_lowercase(), b'l' | b'g' | b'p' | b'c') {
        return None;
    }
    let mut buf = [0u8; 32];
    let r = match ids::normalize(key.as_bytes(), &mut buf)? {
        b"lat" | b"latitude" | b"gpslat" | b"gpslatitude" | b"geolat" | b"geolatitude" => Role::Lat,
        b"lon" | b"lng" | b"long" | b"longitude" | b"gpslon" | b"gpslng" | b"gpslong"
        | b"gpslongitude" | b"geolon" | b"geolng" | b"geolong" | b"geolongitude" => Role::Lon,
        b"location" | b"position" | b"pos" | b"gps" | b"geo" | b"geolocation" | b"geopoint"
        | b"coords" | b"coordinates" => Role::Position,
        b"latlng" | b"latlon" | b"latlong" => Role::LatFirst,
        b"lnglat" | b"lonlat" | b"longlat" => Role::LonFirst,
        _ => return None,
    };
    Some(r)
}

/// Scans a parsed JSON document for positions alone (the payload scan
/// walks once for keys and positions, [`super::json::scan`]); `scratch`
/// is reused between documents.
pub fn scan_json(doc: Val<'_>, cfg: &PhiConfig, col: &mut Collector, scratch: &mut Vec<u32>) {
    let mut places = Places::default();
    tape::walk_objects(doc, MAX_DEPTH, scratch, &mut |_, members, key| {
        judge_object(members, key, cfg, &mut places);
    });
    places.record(col);
}

/// Positions found in a walk, as (field, value) evidence, recorded in the
/// order found once the walk is over.
#[derive(Debug, Default)]
pub struct Places(Vec<(String, String)>);

impl Places {
    fn add(&mut self, field: &str, value: &str) {
        // Copied: rare (a position), and recorded after the walk.
        self.0.push((field.to_string(), value.to_string()));
    }

    /// Records the positions as [`PhiKind::Location`] evidence.
    pub fn record(self, col: &mut Collector) {
        for (field, value) in &self.0 {
            col.add(PhiKind::Location, field, value);
        }
    }
}

/// `members` are the object's members in key order; `key` is the member
/// name the object is found under (arrays pass theirs on), naming the
/// evidence. One pass over the members, each key normalised once.
pub fn judge_object(
    members: &[tape::Member<'_>],
    key: Option<&str>,
    cfg: &PhiConfig,
    places: &mut Places,
) {
    // The first latitude and longitude members whose values are numbers,
    // and the members GeoJSON and FHIR name (each key once: `members`
    // holds a repeated key's last value, as a parsed map did).
    let mut lat = None;
    let mut lon = None;
    let (mut coordinates, mut kind, mut url, mut extension) = (None, None, None, None);
    for (k, v) in members {
        let (k, v) = (&**k, *v);
        match k {
            "coordinates" => coordinates = Some(v),
            "type" => kind = Some(v),
            "url" => url = Some(v),
            "extension" => extension = Some(v),
            _ => {}
        }
        match role(k) {
            Some(Role::Lat) if lat.is_none() => lat = coord_of_value(v).map(|c| (k, v, c)),
            Some(Role::Lon) if lon.is_none() => lon = coord_of_value(v).map(|c| (k, v, c)),
            Some(r @ (Role::Position | Role::LatFirst | Role::LonFirst)) => {
                ordered_member(k, v, r, cfg, places);
            }
            _ => {}
        }
    }
    if let (Some((lat_key, lat_v, lat)), Some((lon_key, lon_v, lon))) = (lat, lon) {
        if is_personal(lat, lon, cfg) {
            let field = key.map_or_else(|| format!("{lat_key},{lon_key}"), str::to_string);
            places.add(&field, &pair_text(lat_v, lon_v));
        }
    }
    if let Some(coordinates) = coordinates {
        geojson(coordinates, kind, key, cfg, places);
    }
    if url.and_then(Val::as_str).as_deref() == Some(GEOLOCATION_URL) {
        fhir_geolocation(extension, cfg, places);
    }
}

/// `[first, second(, altitude)]` of numbers.
fn number_pair(v: Val<'_>) -> Option<(Val<'_>, Coord, Val<'_>, Coord)> {
    if !v.is_array() {
        return None;
    }
    let len = v.elements().count();
    if !(2..=3).contains(&len) || !v.elements().all(Val::is_number) {
        return None;
    }
    let mut items = v.elements();
    let (x, y) = (items.next()?, items.next()?);
    Some((x, coord_of_value(x)?, y, coord_of_value(y)?))
}

/// A GeoJSON geometry's `coordinates` and `type` members.
fn geojson(
    coords: Val<'_>,
    kind: Option<Val<'_>>,
    key: Option<&str>,
    cfg: &PhiConfig,
    places: &mut Places,
) {
    let mut one = None;
    let mut many = None;
    match kind.and_then(Val::as_str).as_deref() {
        Some("Point") => one = Some(coords),
        Some("MultiPoint" | "LineString") => many = Some(coords.elements()),
        _ => return,
    }
    for p in one.into_iter().chain(many.into_iter().flatten()) {
        if let Some((lon_v, lon, lat_v, lat)) = number_pair(p) {
            if is_personal(lat, lon, cfg) {
                let field = key.unwrap_or("coordinates");
                places.add(field, &pair_text(lat_v, lon_v));
            }
        }
    }
}

/// The `extension` member of a FHIR geolocation extension.
fn fhir_geolocation(extension: Option<Val<'_>>, cfg: &PhiConfig, places: &mut Places) {
    let subs = extension.filter(|e| e.is_array());
    let part = |name: &str| {
        subs?
            .elements()
            .find(|e| e.get("url").and_then(Val::as_str).as_deref() == Some(name))?
            .get("valueDecimal")
    };
    if let (Some(lat_v), Some(lon_v)) = (part("latitude"), part("longitude")) {
        if let (Some(lat), Some(lon)) = (coord_of_value(lat_v), coord_of_value(lon_v)) {
            if is_personal(lat, lon, cfg) {
                places.add("geolocation", &pair_text(lat_v, lon_v));
            }
        }
    }
}

/// A member holding both coordinates in an order its key names: `"lat,lon"`
/// strings under position keys, `[lat, lon]` / `[lon, lat]` arrays under
/// `latlng` / `lnglat`-style keys.
fn ordered_member(k: &str, v: Val<'_>, role: Role, cfg: &PhiConfig, places: &mut Places) {
    let lon_first = role == Role::LonFirst;
    let (x, y, first, second) = if let Some(s) = v.as_str() {
        let Some((a, b)) = s.split_once(',') else {
            return;
        };
        let (a, b) = (a.trim(), b.trim());
        let (Some(x), Some(y)) = (parse_decimal(a), parse_decimal(b)) else {
            return;
        };
        (x, y, a.to_string(), b.to_string())
    } else if v.is_array() && role != Role::Position {
        let Some((xv, x, yv, y)) = number_pair(v) else {
            return;
        };
        let text = |n: Val<'_>| n.number_text().unwrap_or_default();
        (x, y, text(xv), text(yv))
    } else {
        return;
    };
    let (lat, lon) = if lon_first { (y, x) } else { (x, y) };
    if is_personal(lat, lon, cfg) {
        let text = if lon_first {
            format!("{second},{first}")
        } else {
            format!("{first},{second}")
        };
        places.add(k, &text);
    }
}

// ------------------------------------------------------------------ NMEA

/// GNSS talker ids: GPS, GLONASS, Galileo, BeiDou (two ids), QZSS, NavIC,
/// and combined solutions.
const TALKERS: [&[u8]; 8] = [b"GP", b"GL", b"GA", b"GB", b"BD", b"GQ", b"GI", b"GN"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sentence {
    Gga,
    Rmc,
    Gll,
    Gns,
}

/// Scans bytes for NMEA position sentences.
pub fn scan_nmea(data: &[u8], cfg: &PhiConfig, col: &mut Collector) {
    let mut next = 0usize;
    for i in memchr::memchr_iter(b'$', data) {
        if i < next {
            continue;
        }
        if let Some(end) = sentence_at(data, i, cfg, col) {
            next = end;
        }
    }
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

/// Reads the sentence whose `$` is at `at`; returns where it ends when it
/// is a well-formed position sentence (recorded if it is a patient's).
fn sentence_at(data: &[u8], at: usize, cfg: &PhiConfig, col: &mut Collector) -> Option<usize> {
    let start = at.checked_add(1)?;
    let head = data.get(start..start.checked_add(6)?)?;
    let (talker, kind) = (head.get(..2)?, head.get(2..5)?);
    if head.get(5) != Some(&b',') || !TALKERS.contains(&talker) {
        return None;
    }
    let kind = match kind {
        b"GGA" => Sentence::Gga,
        b"RMC" => Sentence::Rmc,
        b"GLL" => Sentence::Gll,
        b"GNS" => Sentence::Gns,
        _ => return None,
    };
    let rest = data.get(start..)?;
    let window = rest.get(..MAX_SENTENCE).unwrap_or(rest);
    // A sentence is printable ASCII without spaces; `$` and `!` start the
    // next one, `"` and `\` end a JSON string holding it.
    let stop = window.iter().position(|&b| {
        !(0x21..=0x7e).contains(&b) || matches!(b, b'*' | b'$' | b'!' | b'"' | b'\\')
    });
    let n = match stop {
        Some(n) => n,
        None if window.len() < MAX_SENTENCE => window.len(),
        None => return None,
    };
    let body = window.get(..n)?;
    let mut end = start + n;
    if data.get(end) == Some(&b'*') {
        let hex = data.get(end + 1..end + 3)?;
        let want = hex_digit(*hex.first()?)? << 4 | hex_digit(*hex.get(1)?)?;
        if body.iter().fold(0u8, |a, &b| a ^ b) != want {
            return None;
        }
        end += 3;
    }
    let mut fields: [&[u8]; 14] = [&[]; 14];
    for (slot, f) in fields.iter_mut().zip(body.split(|&b| b == b',')) {
        *slot = f;
    }
    let f = |i: usize| fields.get(i).copied().unwrap_or_default();
    // Positions of latitude, N/S, longitude, E/W, and whether it is a fix.
    let (la, ns, lo, ew, fix) = match kind {
        Sentence::Gga => (2, 3, 4, 5, matches!(f(6), [b'1'..=b'6'])),
        Sentence::Rmc => (3, 4, 5, 6, f(2) == b"A" && mode_ok(f(12))),
        Sentence::Gll => (1, 2, 3, 4, f(6) == b"A" && mode_ok(f(7))),
        Sentence::Gns => (2, 3, 4, 5, f(6).iter().any(|m| b"ADPRFE".contains(m))),
    };
    let lat = nmea_coord(f(la), 2, f(ns), b'N', b'S')?;
    let lon = nmea_coord(f(lo), 3, f(ew), b'E', b'W')?;
    if fix && is_personal(lat, lon, cfg) {
        let field = display_bytes(head.get(..5).unwrap_or_default());
        let text = format!("{:.6},{:.6}", lat.deg, lon.deg);
        col.add(PhiKind::Location, &format!("${field}"), &text);
    }
    Some(end)
}

/// The NMEA 2.3+ mode indicator of RMC and GLL, when present, is not
/// N (not valid), M (manual input) or S (simulator).
fn mode_ok(mode: &[u8]) -> bool {
    !matches!(mode.first(), Some(b'N' | b'M' | b'S'))
}

/// `ddmm.mmmm` (latitude, `deg_digits` 2) or `dddmm.mmmm` (longitude, 3)
/// with its hemisphere letter.
fn nmea_coord(v: &[u8], deg_digits: usize, hemi: &[u8], pos: u8, neg: u8) -> Option<Coord> {
    let (int, frac) = match v.iter().position(|&b| b == b'.') {
        Some(p) => (v.get(..p)?, v.get(p + 1..)?),
        None => (v, &[][..]),
    };
    let all_digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
    if int.len() != deg_digits + 2 || !all_digits(int) || !all_digits(frac) || frac.len() > 10 {
        return None;
    }
    let num = |s: &[u8]| s.iter().fold(0f64, |a, &c| a * 10.0 + f64::from(c - b'0'));
    let deg = num(int.get(..deg_digits)?);
    let mut minutes = num(int.get(deg_digits..)?);
    if minutes >= 60.0 {
        return None;
    }
    let mut scale = 1.0;
    for &c in frac {
        scale /= 10.0;
        minutes += f64::from(c - b'0') * scale;
    }
    let sig = frac.iter().rposition(|&c| c != b'0').map_or(0, |p| p + 1);
    let sign = match hemi {
        [h] if *h == pos => 1.0,
        [h] if *h == neg => -1.0,
        _ => return None,
    };
    Some(Coord {
        deg: sign * (deg + minutes / 60.0),
        decimals: u32::try_from(sig + 1).unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::phi::PhiReport;

    /// The first-letter gate of `role` turns away none of the role
    /// names, whatever their case and separators; other keys find none.
    #[test]
    fn role_names_pass_the_first_letter_gate() {
        let names = [
            ("lat", Role::Lat),
            ("latitude", Role::Lat),
            ("gpslat", Role::Lat),
            ("geoLatitude", Role::Lat),
            ("lon", Role::Lon),
            ("lng", Role::Lon),
            ("Long", Role::Lon),
            ("gps_longitude", Role::Lon),
            ("geo-lng", Role::Lon),
            ("location", Role::Position),
            ("Position", Role::Position),
            ("pos", Role::Position),
            ("GPS", Role::Position),
            ("geo", Role::Position),
            ("geolocation", Role::Position),
            ("geopoint", Role::Position),
            ("coords", Role::Position),
            ("coordinates", Role::Position),
            ("lat_lng", Role::LatFirst),
            ("latlon", Role::LatFirst),
            ("latLong", Role::LatFirst),
            ("lngLat", Role::LonFirst),
            ("lon-lat", Role::LonFirst),
            ("longlat", Role::LonFirst),
        ];
        for (key, want) in names {
            for k in [
                key.to_string(),
                format!("_{key}"),
                format!("-{}", key.to_uppercase()),
            ] {
                assert_eq!(role(&k), Some(want), "{k}");
            }
        }
        for k in [
            "hr", "name", "device", "", "_", "1lat", "xlat", "nibp", "spo2",
        ] {
            assert_eq!(role(k), None, "{k}");
        }
    }

    fn cfg() -> PhiConfig {
        PhiConfig {
            max_evidence: 32,
            ..PhiConfig::default()
        }
    }

    fn json(text: &str, cfg: &PhiConfig) -> PhiReport {
        let mut col = Collector::new(cfg);
        let mut tape = Vec::new();
        let doc = tape::parse(text.as_bytes(), &mut tape).unwrap();
        scan_json(doc.root(), cfg, &mut col, &mut Vec::new());
        col.finish()
    }

    fn nmea(text: &[u8], cfg: &PhiConfig) -> PhiReport {
        let mut col = Collector::new(cfg);
        scan_nmea(text, cfg, &mut col);
        col.finish()
    }

    fn values(r: &PhiReport) -> Vec<(String, String)> {
        r.evidence
            .iter()
            .map(|e| (e.field.clone(), e.value.clone()))
            .collect()
    }

    fn pair(field: &str, value: &str) -> Vec<(String, String)> {
        vec![(field.to_string(), value.to_string())]
    }

    // Hand-built JSON below; positions are public places in Paris
    // (Jardin des Plantes, Place de la Nation).

    #[test]
    fn lat_lon_keys_in_any_spelling_are_a_position() {
        let c = cfg();
        let r = json(r#"{"hr":72,"gps":{"lat":48.84512,"lon":2.35601}}"#, &c);
        assert_eq!(r.kinds, vec![PhiKind::Location]);
        assert_eq!(values(&r), pair("gps", "48.84512,2.35601"));
        for doc in [
            r#"{"latitude":48.84512,"longitude":2.35601}"#,
            r#"{"Lat":"48.84512","Lng":"2.35601"}"#,
            r#"{"position":{"GPS_Lat":48.84512,"gps-long":2.35601}}"#,
            r#"[{"geo":{"lat":48.84512,"long":2.35601,"alt":35.2}}]"#,
            r#"{"latitude":-33.85678,"longitude":151.21529}"#,
        ] {
            assert_eq!(json(doc, &c).kinds, vec![PhiKind::Location], "{doc}");
        }
        let r = json(r#"{"lat":48.84512,"lon":2.35601}"#, &c);
        assert_eq!(values(&r), pair("lat,lon", "48.84512,2.35601"));
    }

    #[test]
    fn geojson_fhir_and_ordered_forms_are_read_in_their_order() {
        let c = cfg();
        let r = json(
            r#"{"location":{"type":"Point","coordinates":[2.35601,48.84512]}}"#,
            &c,
        );
        assert_eq!(values(&r), pair("location", "48.84512,2.35601"));
        let r = json(
            r#"{"type":"LineString","coordinates":[[2.35601,48.84512,35.0],[2.35702,48.84466]]}"#,
            &c,
        );
        assert_eq!(r.evidence.len(), 2);
        let r = json(
            r#"{"url":"http://hl7.org/fhir/StructureDefinition/geolocation","extension":[{"url":"latitude","valueDecimal":48.84512},{"url":"longitude","valueDecimal":2.35601}]}"#,
            &c,
        );
        assert_eq!(values(&r), pair("geolocation", "48.84512,2.35601"));
        let r = json(r#"{"location":"48.84512, 2.35601"}"#, &c);
        assert_eq!(values(&r), pair("location", "48.84512,2.35601"));
        let r = json(r#"{"latLng":[48.84512,2.35601]}"#, &c);
        assert_eq!(values(&r), pair("latLng", "48.84512,2.35601"));
        let r = json(r#"{"lngLat":[2.35601,48.84512]}"#, &c);
        assert_eq!(values(&r), pair("lngLat", "48.84512,2.35601"));
        let r = json(r#"{"lonlat":"2.35601,48.84512"}"#, &c);
        assert_eq!(values(&r), pair("lonlat", "48.84512,2.35601"));
    }

    #[test]
    fn arrays_of_unknown_order_and_other_geometries_are_not_read() {
        let c = cfg();
        for doc in [
            r#"{"location":[48.84512,2.35601]}"#,
            r#"{"coordinates":[2.35601,48.84512]}"#,
            r#"{"type":"Polygon","coordinates":[[[2.35601,48.84512],[2.357,48.845],[2.35601,48.84512]]]}"#,
            r#"{"type":"point","coordinates":[2.35601,48.84512]}"#,
            r#"{"url":"http://example.org/geolocation","extension":[{"url":"latitude","valueDecimal":48.84512},{"url":"longitude","valueDecimal":2.35601}]}"#,
        ] {
            assert!(json(doc, &c).is_empty(), "{doc}");
        }
    }

    #[test]
    fn numbers_that_merely_look_like_coordinates_are_clean() {
        let c = cfg();
        for doc in [
            // Vital-sign pairs, temperatures, versions, timestamps.
            r#"{"sys":120.5,"dia":80.25,"temp":37.25,"fw":"2.4.1","ts":1735689600000}"#,
            r#"{"bp":{"systolic":118.125,"diastolic":76.375}}"#,
            r#"{"x":48.84512,"y":2.35601}"#,
            // Latency- and length-like keys in unrelated JSON.
            r#"{"lat":"latency","lon":"2.35601"}"#,
            r#"{"lat":48.84512,"long":true}"#,
            r#"{"lat":12.345,"long":123456789}"#,
            r#"{"lat":48.84512}"#,
            r#"{"lon":2.35601,"lng":2.35602}"#,
            r#"{"lat":"48.845.12","lon":"2.35601"}"#,
            r#"{"lat":"48,84512","lon":"2,35601"}"#,
            r#"{"lat":null,"lon":null}"#,
            r#"{"lat":[48.84512],"lon":[2.35601]}"#,
            r#"{"location":"48.84512"}"#,
            r#"{"location":"Ward 3, bed 12"}"#,
            r#"{"position":"1.2.3,4.5.6"}"#,
        ] {
            assert!(json(doc, &c).is_empty(), "{doc}");
        }
    }

    #[test]
    fn coarse_zero_and_out_of_range_values_are_clean() {
        let c = cfg();
        for doc in [
            // Two decimals (a district), a rounded city centroid.
            r#"{"lat":48.85,"lon":2.35}"#,
            r#"{"lat":48.8,"lon":2.3522}"#,
            r#"{"lat":48.85661,"lon":2}"#,
            // Trailing zeros are not precision.
            r#"{"lat":"48.80000","lon":"2.30000"}"#,
            // Null island, zero halves, the open sea around it (an
            // accelerometer's lateral and longitudinal g).
            r#"{"lat":0.0,"lon":0.0}"#,
            r#"{"lat":"0.000000","lon":"0.000000"}"#,
            r#"{"lat":0,"lon":2.35601}"#,
            r#"{"lat":48.84512,"lon":-0.0}"#,
            r#"{"accel":{"lat":0.123,"long":-0.987,"vert":9.806}}"#,
            r#"{"lat":-3.99999,"lon":3.99999}"#,
            // Out of range.
            r#"{"lat":91.12345,"lon":2.35601}"#,
            r#"{"lat":48.84512,"lon":180.00001}"#,
            r#"{"lat":-90.00001,"lon":2.35601}"#,
            r#"{"type":"Point","coordinates":[48.84512,122.35601]}"#,
        ] {
            assert!(json(doc, &c).is_empty(), "{doc}");
        }
        // The edges themselves are in range; near the equator or the
        // prime meridian, not both, is land (Quito, Greenwich).
        assert!(!json(r#"{"lat":-89.99991,"lon":179.99991}"#, &c).is_empty());
        assert!(!json(r#"{"lat":-0.18065,"lon":-78.46784}"#, &c).is_empty());
        assert!(!json(r#"{"lat":51.47788,"lon":-0.00147}"#, &c).is_empty());
    }

    #[test]
    fn precision_threshold_is_configurable() {
        let doc = r#"{"lat":48.85,"lon":2.35}"#;
        let two = PhiConfig {
            location_min_decimals: 2,
            ..cfg()
        };
        assert_eq!(json(doc, &two).kinds, vec![PhiKind::Location]);
        let five = PhiConfig {
            location_min_decimals: 5,
            ..cfg()
        };
        assert!(json(r#"{"lat":48.8451,"lon":2.3560}"#, &five).is_empty());
        assert!(!json(r#"{"lat":48.84512,"lon":2.35601}"#, &five).is_empty());
    }

    #[test]
    fn decimals_are_counted_on_significant_digits() {
        let d = |s: &str| parse_decimal(s).map(|c| c.decimals);
        assert_eq!(d("48.84512"), Some(5));
        assert_eq!(d("-48.845120"), Some(5));
        assert_eq!(d("+2.3"), Some(1));
        assert_eq!(d("48"), Some(0));
        assert_eq!(d("1.5e-5"), Some(6));
        assert_eq!(d("1e-7"), Some(7));
        assert_eq!(d("4.8845e1"), Some(3));
        for bad in [
            "", "-", ".5", "5.", "1e", "1.2.3", "NaN", "inf", "0x10", "1,5", " 1",
        ] {
            assert_eq!(parse_decimal(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn configured_site_is_not_a_patient_location() {
        // Place de la Nation (48.84832, 2.39590), 200 m around it.
        let site = SiteLocation::new(48.84832, 2.3959, 200.0).unwrap();
        let c = PhiConfig {
            site_locations: vec![site],
            ..cfg()
        };
        // The fixed hub at the site (about 15 m away): clean.
        let hub = r#"{"device":"HUB-W3","location":{"lat":48.84841,"lon":2.39603}}"#;
        assert!(json(hub, &c).is_empty());
        assert_eq!(json(hub, &cfg()).kinds, vec![PhiKind::Location]);
        // About 300 m east: a patient outside the site.
        let out = r#"{"gps":{"lat":48.84832,"lon":2.39998}}"#;
        assert_eq!(json(out, &c).kinds, vec![PhiKind::Location]);
        assert!(site.contains(48.84832, 2.3959));
        assert!(!site.contains(48.84832, 2.39998));
        // The haversine distance: 0.001 degree of latitude is 111.2 m.
        let d = distance_m(48.0, 2.0, 48.001, 2.0);
        assert!((d - 111.19).abs() < 0.1, "{d}");
    }

    #[test]
    fn site_config_rejects_nonsense() {
        assert!(SiteLocation::new(91.0, 2.0, 10.0).is_err());
        assert!(SiteLocation::new(48.0, -181.0, 10.0).is_err());
        assert!(SiteLocation::new(48.0, 2.0, -1.0).is_err());
        assert!(SiteLocation::new(48.0, 2.0, f64::NAN).is_err());
        assert!(SiteLocation::new(48.0, 2.0, 1e6).is_err());
        let s: SiteLocation =
            serde_norway::from_str("{lat: 48.84832, lon: 2.3959, radius_m: 200}").unwrap();
        assert_eq!(s, SiteLocation::new(48.84832, 2.3959, 200.0).unwrap());
        assert!(serde_norway::from_str::<SiteLocation>("{lat: 48.8, lon: 2.3}").is_err());
        assert!(serde_norway::from_str::<SiteLocation>(
            "{lat: 48.8, lon: 2.3, radius_m: 1, alt: 3}"
        )
        .is_err());
        assert!(
            serde_norway::from_str::<SiteLocation>("{lat: 95, lon: 2.3, radius_m: 1}").is_err()
        );
    }

    #[test]
    fn coarsened_rounds_to_one_decimal() {
        assert_eq!(coarsened("48.84512,2.35601").as_deref(), Some("~48.8,2.4"));
        assert_eq!(
            coarsened("-33.856780,151.215290").as_deref(),
            Some("~-33.9,151.2")
        );
        assert_eq!(coarsened("1 RUE DE L'EXEMPLE^^PARIS"), None);
        assert_eq!(coarsened("75012, PARIS"), None);
        assert_eq!(coarsened("48.8"), None);
    }

    // NMEA sentences below are hand-built; their checksums were computed
    // with pynmea2 1.19 (`pynmea2.RMC(...).render()`), independently of the
    // code under test. The first is NMEA's classic example (Munich).

    const GGA_MUNICH: &[u8] = b"$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47";

    #[test]
    fn nmea_fixes_give_decimal_degrees() {
        let c = cfg();
        let r = nmea(GGA_MUNICH, &c);
        // 48 deg 07.038' = 48.117300; 11 deg 31.000' = 11.516667; minutes
        // with 3 and 0 significant decimals: 4 and 1 decimal of a degree.
        assert!(r.is_empty(), "longitude to the whole minute is coarse");
        let lat = nmea_coord(b"4807.038", 2, b"N", b'N', b'S').unwrap();
        assert!((lat.deg - 48.1173).abs() < 1e-9 && lat.decimals == 4);
        let lon = nmea_coord(b"01131.000", 3, b"W", b'E', b'W').unwrap();
        assert!((lon.deg + 11.516_666_666).abs() < 1e-6 && lon.decimals == 1);
        // Jardin des Plantes: 48 deg 50.7072' N, 2 deg 21.3606' E.
        let rmc = b"$GPRMC,101500.00,A,4850.7072,N,00221.3606,E,0.5,90.0,010125,,,A*69\r\n";
        let r = nmea(rmc, &c);
        assert_eq!(values(&r), pair("$GPRMC", "48.845120,2.356010"));
        let gga = b"$GNGGA,101500.00,4850.7072,N,00221.3606,E,1,09,0.9,35.0,M,46.0,M,,*4A";
        assert_eq!(values(&nmea(gga, &c)), pair("$GNGGA", "48.845120,2.356010"));
        let gll = b"$GPGLL,4850.7072,N,00221.3606,E,101500.00,A,A*65";
        assert_eq!(nmea(gll, &c).kinds, vec![PhiKind::Location]);
        let gns = b"$GNGNS,101500.00,4850.7072,N,00221.3606,E,AA,12,0.9,35.0,46.0,,*6A";
        assert_eq!(nmea(gns, &c).kinds, vec![PhiKind::Location]);
        // Southern and western hemispheres.
        let s = b"$GPGLL,3351.4068,S,15112.9174,W,101500.00,A,A*60";
        assert_eq!(
            values(&nmea(s, &c)),
            pair("$GPGLL", "-33.856780,-151.215290")
        );
    }

    #[test]
    fn nmea_without_a_fix_or_with_a_wrong_checksum_is_clean() {
        let c = cfg();
        for s in [
            // RMC void, GGA quality 0, 7 (manual) and 8 (simulator), GLL
            // void, GNS with no fix, RMC mode N.
            &b"$GPRMC,101500.00,V,4850.7072,N,00221.3606,E,0.5,90.0,010125,,,N*71"[..],
            b"$GPRMC,101500.00,V,,,,,,,010125,,,N*7F",
            b"$GPGGA,101500.00,4850.7072,N,00221.3606,E,0,00,99.9,35.0,M,46.0,M,,*6C",
            b"$GPGGA,101500.00,4850.7072,N,00221.3606,E,7,00,0.9,35.0,M,46.0,M,,*5B",
            b"$GPGGA,101500.00,4850.7072,N,00221.3606,E,8,00,0.9,35.0,M,46.0,M,,*54",
            b"$GPGLL,4850.7072,N,00221.3606,E,101500.00,V,N*7D",
            b"$GNGNS,101500.00,4850.7072,N,00221.3606,E,NN,00,99.9,35.0,46.0,,*59",
            b"$GPRMC,101500.00,A,4850.7072,N,00221.3606,E,0.5,90.0,010125,,,N*66",
            // The first fix above with one digit changed: checksum fails.
            b"$GPRMC,101500.00,A,4850.7073,N,00221.3606,E,0.5,90.0,010125,,,A*69",
            // Bad checksum digits, an unknown talker or sentence, minutes
            // over 59, a missing hemisphere, coarse minutes.
            b"$GPRMC,101500.00,A,4850.7072,N,00221.3606,E,0.5,90.0,010125,,,A*6G",
            b"$XXRMC,101500.00,A,4850.7072,N,00221.3606,E,0.5,90.0,010125,,,A",
            b"$GPZDA,101500.00,01,01,2025,00,00*66",
            b"$GPGLL,4860.7072,N,00221.3606,E,101500.00,A,A",
            b"$GPGLL,4850.7072,,00221.3606,E,101500.00,A,A",
            b"$GPGLL,4850.7,N,00221.3,E,101500.00,A,A",
            b"$GPGLL,485.07072,N,00221.3606,E,101500.00,A,A",
        ] {
            assert!(nmea(s, &c).is_empty(), "{}", String::from_utf8_lossy(s));
        }
    }

    #[test]
    fn nmea_without_checksum_counts_and_sentences_are_found_in_text() {
        let c = cfg();
        let r = nmea(b"$GPGLL,4850.7072,N,00221.3606,E,101500.00,A\r\n", &c);
        assert_eq!(r.kinds, vec![PhiKind::Location]);
        // Inside a JSON string, two per payload, after other text.
        let doc = br#"{"nmea":"$GPRMC,101500.00,A,4850.7072,N,00221.3606,E,0.5,90.0,010125,,,A*69\r\n$GPGLL,3351.4068,S,15112.9174,W,101500.00,A,A*60"}"#;
        assert_eq!(nmea(doc, &c).evidence.len(), 2);
        let text = b"fix: $GPGLL,4850.7072,N,00221.3606,E,101500.00,A,A*65 done";
        assert_eq!(nmea(text, &c).kinds, vec![PhiKind::Location]);
        // Cut before its end: no fields, nothing.
        assert!(nmea(b"$GPRMC,101500.00,A,4850.70", &c).is_empty());
        assert!(nmea(b"$GPRMC", &c).is_empty());
        assert!(nmea(b"$", &c).is_empty());
    }

    #[test]
    fn nmea_sentence_longer_than_the_limit_is_not_read() {
        let c = cfg();
        let mut s = b"$GPGLL,4850.7072,N,00221.3606,E,101500.00,A,A".to_vec();
        s.extend(std::iter::repeat_n(b',', MAX_SENTENCE));
        assert!(nmea(&s, &c).is_empty());
    }

    #[test]
    fn nmea_at_the_site_is_clean() {
        let c = PhiConfig {
            site_locations: vec![SiteLocation::new(48.84512, 2.35601, 50.0).unwrap()],
            ..cfg()
        };
        let rmc = b"$GPRMC,101500.00,A,4850.7072,N,00221.3606,E,0.5,90.0,010125,,,A*69";
        assert!(nmea(rmc, &c).is_empty());
    }

    #[test]
    fn every_truncation_of_a_sentence_is_safe() {
        let c = cfg();
        let rmc = b"$GPRMC,101500.00,A,4850.7072,N,00221.3606,E,0.5,90.0,010125,,,A*69";
        let mut found_at = Vec::new();
        for n in 0..=rmc.len() {
            let r = nmea(&rmc[..n], &c);
            // A cut sentence has no checksum: what it still holds may be
            // read, never another place than the whole sentence's.
            for e in &r.evidence {
                let (lat, lon) = e.value.split_once(',').unwrap();
                let (lat, lon): (f64, f64) = (lat.parse().unwrap(), lon.parse().unwrap());
                assert!(
                    (lat - 48.84512).abs() < 1e-3 && (lon - 2.35601).abs() < 1e-3,
                    "{n}: {e:?}"
                );
            }
            if !r.is_empty() {
                found_at.push(n);
            }
        }
        // Once the longitude's hemisphere is there, except when the cut
        // leaves `*` or `*6` (a checksum begun and not whole).
        let lon_end = rmc.windows(10).position(|w| w == b"00221.3606").unwrap() + 10;
        let want: Vec<usize> = (lon_end + 2..=rmc.len())
            .filter(|&n| n < rmc.len() - 2 || n == rmc.len())
            .collect();
        assert_eq!(found_at, want);
    }
}
