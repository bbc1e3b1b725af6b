//! Modem result codes and caller-ID lines: the vocabulary both sides of the AT link share.
//!
//! The soft-modem ([`super::at`]) *emits* these; the modem-control core ([`super::control`])
//! *parses* them from whatever a real modem or ISDN terminal adapter prints. Parsing is total:
//! any byte string gives a [`Response`], unknown text is kept verbatim as [`Response::Other`],
//! unknown numeric codes as [`NumericCode::Unknown`].
//!
//! Caller ID comes in two shapes (ITU-T V.253 `+VCID`, Bellcore GR-30 data):
//! - formatted (`+VCID=1`): one tagged line per field, `DATE = 0321`, `TIME = 1405`,
//!   `NMBR = 5551234`, `NAME = JOHN DOE`, `MESG = ...`; some modems also give `DDN_NMBR =`
//!   (the dialled number, DNIS) and ISDN TAs print `CALLER NUMBER: ...` or `RING/<msn>`;
//! - unformatted (`+VCID=2`): the raw SDMF (type 0x04) or MDMF (type 0x80) packet as hex digits,
//!   checked with its GR-30 modulo-256 checksum before it is believed.

use crate::wire::Reader;

/// The longest response line the parser looks at; longer lines are cut by the line splitter.
pub const MAX_RESPONSE_LINE: usize = 256;

enum_with_unknown! {
    /// Numeric (`ATV0`) result codes. Only the codes every Hayes-compatible modem agrees on are
    /// named; vendor-specific CONNECT speed codes above 12 stay [`NumericCode::Unknown`].
    pub enum NumericCode(u8) {
        /// 0: OK.
        Ok = 0,
        /// 1: CONNECT (300 bps, or any speed at `ATX0`).
        Connect = 1,
        /// 2: RING.
        Ring = 2,
        /// 3: NO CARRIER.
        NoCarrier = 3,
        /// 4: ERROR.
        Error = 4,
        /// 5: CONNECT 1200.
        Connect1200 = 5,
        /// 6: NO DIALTONE.
        NoDialtone = 6,
        /// 7: BUSY.
        Busy = 7,
        /// 8: NO ANSWER.
        NoAnswer = 8,
        /// 10: CONNECT 2400.
        Connect2400 = 10,
        /// 11: CONNECT 4800.
        Connect4800 = 11,
        /// 12: CONNECT 9600.
        Connect9600 = 12,
    }
}

impl NumericCode {
    /// The numeric code a modem prints for `CONNECT <speed>`: the speed-specific code when one is
    /// standard, plain 1 (CONNECT) otherwise.
    pub fn for_connect(speed: u32) -> NumericCode {
        match speed {
            1200 => NumericCode::Connect1200,
            2400 => NumericCode::Connect2400,
            4800 => NumericCode::Connect4800,
            9600 => NumericCode::Connect9600,
            _ => NumericCode::Connect,
        }
    }
}

/// What a `CONNECT` line says about the call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectInfo {
    /// Line (carrier) speed in bit/s, when given.
    pub speed: Option<u32>,
    /// Modulation, e.g. `V90`, `V34`, `K56`.
    pub modulation: Option<String>,
    /// Error-control protocol, e.g. `LAPM`, `MNP`, `ARQ`, `X.75`, `NONE`.
    pub protocol: Option<String>,
    /// Compression, e.g. `V42BIS`, `V44`, `MNP5`.
    pub compression: Option<String>,
}

/// A caller-ID field, from a formatted line or a decoded SDMF/MDMF parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CidField {
    /// `DATE = MMDD`.
    Date(String),
    /// `TIME = HHMM`.
    Time(String),
    /// `NMBR = ...`: the calling number (CLID).
    Number(String),
    /// `NAME = ...`.
    Name(String),
    /// The called number (DNIS): `DDN_NMBR =`, MDMF parameter 3, or ISDN `RING/<msn>`.
    Called(String),
    /// Why the number is absent: `O` (out of area) or `P` (private).
    NoNumber(String),
    /// Why the name is absent.
    NoName(String),
    /// `MESG = ...` that did not decode as a packet; kept verbatim.
    Message(String),
}

/// One line from a modem, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Response {
    /// `OK` / `0`.
    Ok,
    /// `CONNECT [speed[/...]]` / `1`, `5`, `10`, `11`, `12`.
    Connect(ConnectInfo),
    /// `RING` / `2`, with the called number when an ISDN TA prints `RING/<msn>`.
    Ring {
        /// The called MSN/number (DNIS), when the line carries it.
        called: Option<String>,
    },
    /// `NO CARRIER` / `3`.
    NoCarrier,
    /// `ERROR` / `4`.
    Error,
    /// `NO DIALTONE` (also `NO DIAL TONE`) / `6`.
    NoDialtone,
    /// `BUSY` / `7`.
    Busy,
    /// `NO ANSWER` / `8`.
    NoAnswer,
    /// One or more caller-ID fields (an unformatted packet gives several at once).
    CallerId(Vec<CidField>),
    /// A numeric code this crate does not know.
    Numeric(NumericCode),
    /// An empty line.
    Empty,
    /// Anything else (command echo, `ATI` text, S-register values), verbatim.
    Other(String),
}

impl Response {
    /// Classifies one line (without its CR/LF). Total: never fails, never panics.
    pub fn parse(line: &[u8]) -> Response {
        let line = line.get(..MAX_RESPONSE_LINE).unwrap_or(line);
        let text = String::from_utf8_lossy(line);
        let t = text.trim_matches(|c: char| c.is_ascii_whitespace() || c == '\0');
        if t.is_empty() {
            return Response::Empty;
        }
        if t.bytes().all(|b| b.is_ascii_digit()) && t.len() <= 3 {
            if let Ok(n) = t.parse::<u8>() {
                return Response::from_numeric(NumericCode::from(n));
            }
        }
        let upper = t.to_ascii_uppercase();
        match upper.as_str() {
            "OK" => return Response::Ok,
            "RING" => return Response::Ring { called: None },
            "NO CARRIER" => return Response::NoCarrier,
            "ERROR" => return Response::Error,
            "NO DIALTONE" | "NO DIAL TONE" => return Response::NoDialtone,
            "BUSY" => return Response::Busy,
            "NO ANSWER" => return Response::NoAnswer,
            _ => {}
        }
        if let Some(rest) = upper.strip_prefix("CONNECT") {
            if rest.is_empty() || rest.starts_with([' ', '/']) {
                return Response::Connect(parse_connect(rest));
            }
        }
        if let Some(rest) = t.strip_prefix("RING/").or_else(|| t.strip_prefix("ring/")) {
            let called = rest.trim();
            return Response::Ring {
                called: (!called.is_empty()).then(|| called.to_string()),
            };
        }
        if let Some(fields) = parse_cid_line(t) {
            return Response::CallerId(fields);
        }
        Response::Other(t.to_string())
    }

    fn from_numeric(code: NumericCode) -> Response {
        let connect = |speed| {
            Response::Connect(ConnectInfo {
                speed,
                ..ConnectInfo::default()
            })
        };
        match code {
            NumericCode::Ok => Response::Ok,
            NumericCode::Connect => connect(None),
            NumericCode::Ring => Response::Ring { called: None },
            NumericCode::NoCarrier => Response::NoCarrier,
            NumericCode::Error => Response::Error,
            NumericCode::Connect1200 => connect(Some(1200)),
            NumericCode::NoDialtone => Response::NoDialtone,
            NumericCode::Busy => Response::Busy,
            NumericCode::NoAnswer => Response::NoAnswer,
            NumericCode::Connect2400 => connect(Some(2400)),
            NumericCode::Connect4800 => connect(Some(4800)),
            NumericCode::Connect9600 => connect(Some(9600)),
            NumericCode::Unknown(_) => Response::Numeric(code),
        }
    }

    /// Whether this is a final result code that ends a command (as opposed to an
    /// unsolicited RING, caller-ID data or information text).
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            Response::Ok
                | Response::Connect(_)
                | Response::NoCarrier
                | Response::Error
                | Response::NoDialtone
                | Response::Busy
                | Response::NoAnswer
        )
    }
}

fn parse_connect(rest: &str) -> ConnectInfo {
    let mut info = ConnectInfo::default();
    for tok in rest
        .split(|c: char| c == '/' || c.is_ascii_whitespace())
        .filter(|s| !s.is_empty())
    {
        if info.speed.is_none() && tok.bytes().all(|b| b.is_ascii_digit()) {
            info.speed = tok.parse().ok();
            continue;
        }
        let slot = match tok {
            "V42BIS" | "V42B" | "V44" | "MNP5" | "COMP" | "ALT" | "CLASS5" => &mut info.compression,
            "LAPM" | "MNP" | "MNP4" | "ARQ" | "REL" | "REL4" | "NONE" | "V42" | "X.75" | "X75"
            | "V.110" | "V110" | "V.120" | "V120" | "HDLC" | "SYNC" | "TRANS" => &mut info.protocol,
            _ => &mut info.modulation,
        };
        if slot.is_none() {
            *slot = Some(tok.chars().take(32).collect());
        }
    }
    info
}

fn parse_cid_line(t: &str) -> Option<Vec<CidField>> {
    // isdn4linux style: "CALLER NUMBER: 5551234" / "CALLED NUMBER: 123".
    let upper = t.to_ascii_uppercase();
    for (tag, make) in [
        ("CALLER NUMBER:", CidField::Number as fn(String) -> CidField),
        ("CALLED NUMBER:", CidField::Called),
    ] {
        if upper.starts_with(tag) {
            let v = t.get(tag.len()..).unwrap_or("").trim();
            return Some(vec![make(v.to_string())]);
        }
    }
    if let Some((tag, value)) = t.split_once('=') {
        let tag = tag.trim().to_ascii_uppercase();
        let value = value.trim().to_string();
        let field = match tag.as_str() {
            "DATE" => CidField::Date(value),
            "TIME" => CidField::Time(value),
            "NMBR" => CidField::Number(value),
            "NAME" => CidField::Name(value),
            "DDN_NMBR" | "DDN" | "CALLED" => CidField::Called(value),
            "MESG" => {
                return Some(
                    decode_hex(&value)
                        .and_then(|raw| decode_cid_packet(&raw))
                        .unwrap_or_else(|| vec![CidField::Message(value)]),
                )
            }
            _ => return None,
        };
        return Some(vec![field]);
    }
    // Unformatted +VCID=2 output: a bare hex packet, believed only if its checksum holds.
    if t.len() >= 8 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
        return decode_hex(t).and_then(|raw| decode_cid_packet(&raw));
    }
    None
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    let s = s.as_bytes();
    if s.len() % 2 != 0 {
        return None;
    }
    s.chunks_exact(2)
        .map(|pair| {
            let hi = char::from(*pair.first()?).to_digit(16)?;
            let lo = char::from(*pair.get(1)?).to_digit(16)?;
            u8::try_from(hi * 16 + lo).ok()
        })
        .collect()
}

/// Message type of a single-data-message-format (SDMF) caller-ID packet (GR-30).
pub const SDMF: u8 = 0x04;
/// Message type of a multiple-data-message-format (MDMF) caller-ID packet (GR-30).
pub const MDMF: u8 = 0x80;

/// Decodes a raw SDMF or MDMF caller-ID packet (type, length, body, checksum).
///
/// GR-30: the checksum is "the twos complement of the modulo 256 sum" of every other octet, so
/// the sum of all octets including it is 0 mod 256. Returns `None` for anything malformed.
pub fn decode_cid_packet(raw: &[u8]) -> Option<Vec<CidField>> {
    let sum = raw.iter().fold(0u8, |a, &b| a.wrapping_add(b));
    if sum != 0 {
        return None;
    }
    let mut r = Reader::new(raw);
    let kind = r.u8().ok()?;
    let len = usize::from(r.u8().ok()?);
    let mut body = r.sub(len).ok()?;
    r.u8().ok()?; // checksum, verified above
    r.finish().ok()?;
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let mut out = Vec::new();
    match kind {
        SDMF => {
            let stamp = body.take(8).ok()?;
            push_stamp(&mut out, stamp);
            let number = body.rest();
            out.push(match number {
                [b'O'] | [b'P'] => CidField::NoNumber(text(number)),
                _ => CidField::Number(text(number)),
            });
        }
        MDMF => {
            while !body.is_empty() {
                let ptype = body.u8().ok()?;
                let plen = usize::from(body.u8().ok()?);
                let value = body.take(plen).ok()?;
                match ptype {
                    0x01 if value.len() == 8 => push_stamp(&mut out, value),
                    0x02 => out.push(CidField::Number(text(value))),
                    0x03 => out.push(CidField::Called(text(value))),
                    0x04 => out.push(CidField::NoNumber(text(value))),
                    0x07 => out.push(CidField::Name(text(value))),
                    0x08 => out.push(CidField::NoName(text(value))),
                    _ => {}
                }
            }
        }
        _ => return None,
    }
    Some(out)
}

fn push_stamp(out: &mut Vec<CidField>, stamp: &[u8]) {
    let (date, time) = stamp.split_at(stamp.len().min(4));
    out.push(CidField::Date(String::from_utf8_lossy(date).into_owned()));
    out.push(CidField::Time(String::from_utf8_lossy(time).into_owned()));
}

/// Caller ID collected for one incoming call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallerId {
    /// `MMDD`.
    pub date: Option<String>,
    /// `HHMM`.
    pub time: Option<String>,
    /// The calling number (CLID).
    pub number: Option<String>,
    /// The caller's name.
    pub name: Option<String>,
    /// The called number or MSN (DNIS).
    pub called: Option<String>,
    /// Why the number is absent (`O`/`P`).
    pub no_number: Option<String>,
}

impl CallerId {
    /// Merges one field into the record.
    pub fn apply(&mut self, field: &CidField) {
        let slot = match field {
            CidField::Date(_) => &mut self.date,
            CidField::Time(_) => &mut self.time,
            CidField::Number(_) => &mut self.number,
            CidField::Name(_) => &mut self.name,
            CidField::Called(_) => &mut self.called,
            CidField::NoNumber(_) => &mut self.no_number,
            CidField::NoName(_) | CidField::Message(_) => return,
        };
        if let CidField::Date(v)
        | CidField::Time(v)
        | CidField::Number(v)
        | CidField::Name(v)
        | CidField::Called(v)
        | CidField::NoNumber(v) = field
        {
            *slot = Some(v.chars().take(64).collect());
        }
    }

    /// Whether nothing is known.
    pub fn is_empty(&self) -> bool {
        *self == CallerId::default()
    }

    /// The formatted (`+VCID=1`) lines a modem prints for this record, in the usual order.
    pub fn formatted_lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (tag, v) in [
            ("DATE", &self.date),
            ("TIME", &self.time),
            ("NMBR", &self.number),
            ("NAME", &self.name),
            ("DDN_NMBR", &self.called),
        ] {
            if let Some(v) = v {
                out.push(format!("{tag} = {v}"));
            }
        }
        if self.number.is_none() {
            if let Some(reason) = &self.no_number {
                out.push(format!("NMBR = {reason}"));
            }
        }
        out
    }

    /// The MDMF packet (GR-30) for this record, checksum included: what `+VCID=2` prints as hex.
    pub fn to_mdmf(&self) -> Vec<u8> {
        let mut body = Vec::new();
        let mut param = |t: u8, v: &str| {
            let v = v.as_bytes().get(..v.len().min(64)).unwrap_or_default();
            body.push(t);
            body.push(u8::try_from(v.len()).unwrap_or(0));
            body.extend_from_slice(v);
        };
        if let (Some(d), Some(t)) = (&self.date, &self.time) {
            if d.len() == 4 && t.len() == 4 {
                param(0x01, &format!("{d}{t}"));
            }
        }
        if let Some(n) = &self.number {
            param(0x02, n);
        } else if let Some(r) = &self.no_number {
            param(0x04, r);
        }
        if let Some(c) = &self.called {
            param(0x03, c);
        }
        if let Some(n) = &self.name {
            param(0x07, n);
        }
        body.truncate(255);
        let mut raw = vec![MDMF, u8::try_from(body.len()).unwrap_or(0)];
        raw.extend_from_slice(&body);
        let sum = raw.iter().fold(0u8, |a, &b| a.wrapping_add(b));
        raw.push(sum.wrapping_neg());
        raw
    }
}

/// Splits a modem's output into lines, bounded (after tokio-util's `LinesCodec`).
///
/// A line ends at CR or LF; empty lines are skipped. A line longer than `max` is cut: the first
/// `max` octets are delivered and the rest up to the next CR/LF is discarded.
#[derive(Debug, Clone)]
pub struct LineSplitter {
    buf: Vec<u8>,
    max: usize,
    discarding: bool,
}

impl Default for LineSplitter {
    fn default() -> Self {
        LineSplitter::new(MAX_RESPONSE_LINE)
    }
}

impl LineSplitter {
    /// A splitter that keeps at most `max` octets of a line.
    pub fn new(max: usize) -> Self {
        LineSplitter {
            buf: Vec::new(),
            max: max.max(1),
            discarding: false,
        }
    }

    /// Feeds one octet; returns a completed line when `b` ends one.
    pub fn push(&mut self, b: u8) -> Option<Vec<u8>> {
        match b {
            b'\r' | b'\n' => {
                let was_discarding = std::mem::replace(&mut self.discarding, false);
                if self.buf.is_empty() || was_discarding && self.buf.is_empty() {
                    None
                } else {
                    Some(std::mem::take(&mut self.buf))
                }
            }
            _ if self.discarding => None,
            _ if self.buf.len() >= self.max => {
                self.discarding = true;
                Some(std::mem::take(&mut self.buf))
            }
            _ => {
                self.buf.push(b);
                None
            }
        }
    }

    /// Octets of an unfinished line.
    pub fn pending(&self) -> &[u8] {
        &self.buf
    }

    /// Forgets any partial line.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.discarding = false;
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn parses_verbose_codes() {
        assert_eq!(Response::parse(b"OK"), Response::Ok);
        assert_eq!(Response::parse(b" ok \r"), Response::Ok);
        assert_eq!(Response::parse(b"NO CARRIER"), Response::NoCarrier);
        assert_eq!(Response::parse(b"NO DIAL TONE"), Response::NoDialtone);
        assert_eq!(Response::parse(b"NO DIALTONE"), Response::NoDialtone);
        assert_eq!(Response::parse(b"BUSY"), Response::Busy);
        assert_eq!(Response::parse(b"NO ANSWER"), Response::NoAnswer);
        assert_eq!(Response::parse(b"ERROR"), Response::Error);
        assert_eq!(Response::parse(b"RING"), Response::Ring { called: None });
        assert_eq!(Response::parse(b""), Response::Empty);
        assert_eq!(
            Response::parse(b"CONNECTED"),
            Response::Other("CONNECTED".into())
        );
    }

    #[test]
    fn parses_numeric_codes() {
        assert_eq!(Response::parse(b"0"), Response::Ok);
        assert_eq!(Response::parse(b"3"), Response::NoCarrier);
        assert_eq!(Response::parse(b"7"), Response::Busy);
        assert_eq!(Response::parse(b"8"), Response::NoAnswer);
        assert_eq!(Response::parse(b"6"), Response::NoDialtone);
        assert_eq!(
            Response::parse(b"10"),
            Response::Connect(ConnectInfo {
                speed: Some(2400),
                ..Default::default()
            })
        );
        assert_eq!(
            Response::parse(b"99"),
            Response::Numeric(NumericCode::Unknown(99))
        );
        assert_eq!(
            Response::parse(b"999"),
            Response::Other("999".into()),
            "not a u8: text"
        );
        for speed in [1200, 2400, 4800, 9600] {
            let code = u8::from(NumericCode::for_connect(speed));
            match Response::parse(code.to_string().as_bytes()) {
                Response::Connect(c) => assert_eq!(c.speed, Some(speed)),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn parses_connect_variants() {
        let c = |s: &[u8]| match Response::parse(s) {
            Response::Connect(c) => c,
            other => panic!("{other:?}"),
        };
        let v90 = c(b"CONNECT 52000/V90/LAPM/V42BIS");
        assert_eq!(v90.speed, Some(52000));
        assert_eq!(v90.modulation.as_deref(), Some("V90"));
        assert_eq!(v90.protocol.as_deref(), Some("LAPM"));
        assert_eq!(v90.compression.as_deref(), Some("V42BIS"));
        assert_eq!(c(b"CONNECT").speed, None);
        assert_eq!(c(b"CONNECT 33600").speed, Some(33600));
        let usr = c(b"CONNECT 28800/ARQ/V34/LAPM/V42BIS");
        assert_eq!(usr.protocol.as_deref(), Some("ARQ"));
        assert_eq!(usr.modulation.as_deref(), Some("V34"));
        let isdn = c(b"CONNECT 64000/X.75");
        assert_eq!(isdn.speed, Some(64000));
        assert_eq!(isdn.protocol.as_deref(), Some("X.75"));
        assert_eq!(c(b"connect 9600 /rel").protocol.as_deref(), Some("REL"));
    }

    #[test]
    fn parses_formatted_caller_id() {
        assert_eq!(
            Response::parse(b"NMBR = 5551234"),
            Response::CallerId(vec![CidField::Number("5551234".into())])
        );
        assert_eq!(
            Response::parse(b"NAME = JOHN DOE"),
            Response::CallerId(vec![CidField::Name("JOHN DOE".into())])
        );
        assert_eq!(
            Response::parse(b"DATE=0321"),
            Response::CallerId(vec![CidField::Date("0321".into())])
        );
        assert_eq!(
            Response::parse(b"CALLER NUMBER: 0301234"),
            Response::CallerId(vec![CidField::Number("0301234".into())])
        );
        assert_eq!(
            Response::parse(b"RING/4711"),
            Response::Ring {
                called: Some("4711".into())
            }
        );
        assert_eq!(
            Response::parse(b"DDN_NMBR = 8005551212"),
            Response::CallerId(vec![CidField::Called("8005551212".into())])
        );
    }

    /// An SDMF packet: type 04, length 18, "01011200" + "5551234567", checksum.
    fn sdmf() -> Vec<u8> {
        let mut raw = vec![SDMF, 18];
        raw.extend_from_slice(b"010112005551234567");
        let sum = raw.iter().fold(0u8, |a, &b| a.wrapping_add(b));
        raw.push(sum.wrapping_neg());
        raw
    }

    #[test]
    fn parses_unformatted_caller_id() {
        let hex: String = sdmf().iter().map(|b| format!("{b:02X}")).collect();
        let want = vec![
            CidField::Date("0101".into()),
            CidField::Time("1200".into()),
            CidField::Number("5551234567".into()),
        ];
        assert_eq!(
            Response::parse(hex.as_bytes()),
            Response::CallerId(want.clone())
        );
        assert_eq!(
            Response::parse(format!("MESG = {hex}").as_bytes()),
            Response::CallerId(want)
        );
        // One flipped octet: the checksum rejects it and it stays text.
        let mut bad = sdmf();
        bad[5] ^= 1;
        let hex: String = bad.iter().map(|b| format!("{b:02X}")).collect();
        assert_eq!(Response::parse(hex.as_bytes()), Response::Other(hex));
    }

    #[test]
    fn mdmf_round_trip() {
        let cid = CallerId {
            date: Some("1124".into()),
            time: Some("1030".into()),
            number: Some("5551234".into()),
            name: Some("LAB CLIENT".into()),
            called: Some("4711".into()),
            no_number: None,
        };
        let raw = cid.to_mdmf();
        let mut back = CallerId::default();
        for f in decode_cid_packet(&raw).unwrap() {
            back.apply(&f);
        }
        assert_eq!(back, cid);
        let mut from_lines = CallerId::default();
        for line in cid.formatted_lines() {
            match Response::parse(line.as_bytes()) {
                Response::CallerId(fs) => fs.iter().for_each(|f| from_lines.apply(f)),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(from_lines, cid);
        assert_eq!(decode_cid_packet(&raw[..raw.len() - 1]), None);
    }

    #[test]
    fn splitter_bounds_lines() {
        let mut s = LineSplitter::new(4);
        let mut out = Vec::new();
        for &b in b"\r\nOK\r\nABCDEFGH\r\nX\n" {
            if let Some(l) = s.push(b) {
                out.push(l);
            }
        }
        assert_eq!(out, vec![b"OK".to_vec(), b"ABCD".to_vec(), b"X".to_vec()]);
        assert!(s.pending().is_empty());
    }
}
