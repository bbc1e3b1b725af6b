//! Typed PAP (RFC 1334) and CHAP (RFC 1994) packets, and the MS-CHAP response values
//! (RFC 2433, RFC 2759).

use super::control::{emit_control, ChapCode, ControlRepr, PapCode, HEADER_LEN};
use super::{len_u8, PppError, Writer};
use crate::wire::Reader;

/// The body of a PAP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PapMessage<'a> {
    /// Authenticate-Request: peer identifier and password, each with a one-octet length.
    AuthenticateRequest {
        /// The Peer-ID field.
        peer_id: &'a [u8],
        /// The Password field.
        password: &'a [u8],
    },
    /// Authenticate-Ack with a message.
    AuthenticateAck {
        /// The Message field (may be empty).
        message: &'a [u8],
    },
    /// Authenticate-Nak with a message.
    AuthenticateNak {
        /// The Message field (may be empty).
        message: &'a [u8],
    },
}

impl PapMessage<'_> {
    /// The code of this message.
    pub fn code(&self) -> PapCode {
        match self {
            PapMessage::AuthenticateRequest { .. } => PapCode::AuthenticateRequest,
            PapMessage::AuthenticateAck { .. } => PapCode::AuthenticateAck,
            PapMessage::AuthenticateNak { .. } => PapCode::AuthenticateNak,
        }
    }

    fn data_len(&self) -> usize {
        match self {
            PapMessage::AuthenticateRequest { peer_id, password } => {
                2 + peer_id.len() + password.len()
            }
            PapMessage::AuthenticateAck { message } | PapMessage::AuthenticateNak { message } => {
                1 + message.len()
            }
        }
    }

    fn emit_data(&self, w: &mut Writer<'_>) -> Result<(), PppError> {
        match self {
            PapMessage::AuthenticateRequest { peer_id, password } => {
                w.u8(len_u8("PAP Peer-ID", peer_id.len())?)?;
                w.bytes(peer_id)?;
                w.u8(len_u8("PAP Password", password.len())?)?;
                w.bytes(password)
            }
            PapMessage::AuthenticateAck { message } | PapMessage::AuthenticateNak { message } => {
                w.u8(len_u8("PAP Message", message.len())?)?;
                w.bytes(message)
            }
        }
    }
}

/// A parsed PAP packet.
///
/// Octets after the last field but inside Length are rejected as trailing data, except that an
/// Ack or Nak with no Data at all (no Msg-Length octet, as some old servers send) reads as an
/// empty message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PapRepr<'a> {
    /// The Identifier field.
    pub identifier: u8,
    /// The typed body.
    pub message: PapMessage<'a>,
}

impl<'a> PapRepr<'a> {
    /// Parses a PAP packet (the Information field of a frame with protocol c023).
    pub fn parse(buf: &'a [u8]) -> Result<Self, PppError> {
        let ctrl = ControlRepr::<PapCode>::parse(buf)?;
        Self::from_control(&ctrl)
    }

    /// Types an already-parsed control packet.
    pub fn from_control(ctrl: &ControlRepr<'a, PapCode>) -> Result<Self, PppError> {
        let mut r = Reader::new(ctrl.data);
        let message = match ctrl.code {
            PapCode::AuthenticateRequest => {
                let n = usize::from(r.u8()?);
                let peer_id = r.take(n)?;
                let n = usize::from(r.u8()?);
                let password = r.take(n)?;
                PapMessage::AuthenticateRequest { peer_id, password }
            }
            PapCode::AuthenticateAck | PapCode::AuthenticateNak => {
                let message = if r.is_empty() {
                    &[][..]
                } else {
                    let n = usize::from(r.u8()?);
                    r.take(n)?
                };
                if ctrl.code == PapCode::AuthenticateAck {
                    PapMessage::AuthenticateAck { message }
                } else {
                    PapMessage::AuthenticateNak { message }
                }
            }
            PapCode::Unknown(code) => return Err(PppError::UnknownCode { code }),
        };
        r.finish()?;
        Ok(PapRepr {
            identifier: ctrl.identifier,
            message,
        })
    }

    /// Length of the emitted packet.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.message.data_len()
    }

    /// Writes the packet to the start of `buf`; returns the number of octets written.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, PppError> {
        emit_control(
            buf,
            self.message.code().into(),
            self.identifier,
            self.message.data_len(),
            |w| self.message.emit_data(w),
        )
    }

    /// Emits the packet into a new vector.
    pub fn to_vec(&self) -> Result<Vec<u8>, PppError> {
        let mut out = vec![0u8; self.buffer_len()];
        let n = self.emit(&mut out)?;
        out.truncate(n);
        Ok(out)
    }
}

enum_with_unknown! {
    /// The CHAP algorithm octet of the LCP Authentication-Protocol option.
    pub enum ChapAlgorithm(u8) {
        /// CHAP with MD5 (RFC 1994).
        Md5 = 5,
        /// MS-CHAP version 1 (RFC 2433).
        MsChapV1 = 0x80,
        /// MS-CHAP version 2 (RFC 2759).
        MsChapV2 = 0x81,
    }
}

/// The body of a CHAP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChapMessage<'a> {
    /// Challenge: the challenge value and the authenticator's name.
    Challenge {
        /// The Value field (16 octets for MD5 and MS-CHAPv2, 8 for MS-CHAPv1).
        value: &'a [u8],
        /// The Name field.
        name: &'a [u8],
    },
    /// Response: the response value and the peer's name.
    Response {
        /// The Value field (16 octets for MD5, 49 for MS-CHAP v1 and v2).
        value: &'a [u8],
        /// The Name field.
        name: &'a [u8],
    },
    /// Success with a message (for MS-CHAPv2, `S=<authenticator response> M=...`).
    Success {
        /// The Message field.
        message: &'a [u8],
    },
    /// Failure with a message (for MS-CHAP, `E=691 R=0 ...`).
    Failure {
        /// The Message field.
        message: &'a [u8],
    },
}

impl ChapMessage<'_> {
    /// The code of this message.
    pub fn code(&self) -> ChapCode {
        match self {
            ChapMessage::Challenge { .. } => ChapCode::Challenge,
            ChapMessage::Response { .. } => ChapCode::Response,
            ChapMessage::Success { .. } => ChapCode::Success,
            ChapMessage::Failure { .. } => ChapCode::Failure,
        }
    }

    fn data_len(&self) -> usize {
        match self {
            ChapMessage::Challenge { value, name } | ChapMessage::Response { value, name } => {
                1 + value.len() + name.len()
            }
            ChapMessage::Success { message } | ChapMessage::Failure { message } => message.len(),
        }
    }

    fn emit_data(&self, w: &mut Writer<'_>) -> Result<(), PppError> {
        match self {
            ChapMessage::Challenge { value, name } | ChapMessage::Response { value, name } => {
                if value.is_empty() {
                    return Err(PppError::BadField {
                        what: "CHAP Value-Size 0",
                    });
                }
                w.u8(len_u8("CHAP Value", value.len())?)?;
                w.bytes(value)?;
                w.bytes(name)
            }
            ChapMessage::Success { message } | ChapMessage::Failure { message } => w.bytes(message),
        }
    }
}

/// A parsed CHAP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChapRepr<'a> {
    /// The Identifier field.
    pub identifier: u8,
    /// The typed body.
    pub message: ChapMessage<'a>,
}

impl<'a> ChapRepr<'a> {
    /// Parses a CHAP packet (the Information field of a frame with protocol c223).
    pub fn parse(buf: &'a [u8]) -> Result<Self, PppError> {
        let ctrl = ControlRepr::<ChapCode>::parse(buf)?;
        Self::from_control(&ctrl)
    }

    /// Types an already-parsed control packet.
    pub fn from_control(ctrl: &ControlRepr<'a, ChapCode>) -> Result<Self, PppError> {
        let mut r = Reader::new(ctrl.data);
        let message = match ctrl.code {
            ChapCode::Challenge | ChapCode::Response => {
                // RFC 1994 section 4.1: "Value-Size: This field is one octet and indicates the
                // length of the Value field." and "The Value field is one or more octets."
                let n = usize::from(r.u8()?);
                if n == 0 {
                    return Err(PppError::BadField {
                        what: "CHAP Value-Size 0",
                    });
                }
                let value = r.take(n)?;
                let name = r.rest();
                if ctrl.code == ChapCode::Challenge {
                    ChapMessage::Challenge { value, name }
                } else {
                    ChapMessage::Response { value, name }
                }
            }
            ChapCode::Success => ChapMessage::Success { message: r.rest() },
            ChapCode::Failure => ChapMessage::Failure { message: r.rest() },
            ChapCode::Unknown(code) => return Err(PppError::UnknownCode { code }),
        };
        Ok(ChapRepr {
            identifier: ctrl.identifier,
            message,
        })
    }

    /// Length of the emitted packet.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.message.data_len()
    }

    /// Writes the packet to the start of `buf`; returns the number of octets written.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, PppError> {
        emit_control(
            buf,
            self.message.code().into(),
            self.identifier,
            self.message.data_len(),
            |w| self.message.emit_data(w),
        )
    }

    /// Emits the packet into a new vector.
    pub fn to_vec(&self) -> Result<Vec<u8>, PppError> {
        let mut out = vec![0u8; self.buffer_len()];
        let n = self.emit(&mut out)?;
        out.truncate(n);
        Ok(out)
    }
}

/// The 49-octet Response value of MS-CHAPv2 (RFC 2759 section 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsChapV2Response {
    /// Peer-Challenge.
    pub peer_challenge: [u8; 16],
    /// Reserved, zero when sent.
    pub reserved: [u8; 8],
    /// NT-Response.
    pub nt_response: [u8; 24],
    /// Flags, zero when sent.
    pub flags: u8,
}

impl MsChapV2Response {
    /// Size of the Value field.
    pub const LEN: usize = 49;

    /// Splits a Response value; it must be exactly 49 octets.
    pub fn parse(value: &[u8]) -> Result<Self, PppError> {
        let mut r = Reader::new(value);
        let v = MsChapV2Response {
            peer_challenge: r.array()?,
            reserved: r.array()?,
            nt_response: r.array()?,
            flags: r.u8()?,
        };
        r.finish()?;
        Ok(v)
    }

    /// The Response value.
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        let parts: [&[u8]; 4] = [
            &self.peer_challenge,
            &self.reserved,
            &self.nt_response,
            &[self.flags],
        ];
        for (dst, src) in out.iter_mut().zip(parts.into_iter().flatten()) {
            *dst = *src;
        }
        out
    }
}

/// The 49-octet Response value of MS-CHAP version 1 (RFC 2433 section 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsChapV1Response {
    /// LAN Manager compatible challenge response (zeros when not used).
    pub lm_response: [u8; 24],
    /// Windows NT compatible challenge response.
    pub nt_response: [u8; 24],
    /// Use-Windows-NT-compatible-challenge-response flag (1 = use `nt_response`).
    pub use_nt: u8,
}

impl MsChapV1Response {
    /// Size of the Value field.
    pub const LEN: usize = 49;

    /// Splits a Response value; it must be exactly 49 octets.
    pub fn parse(value: &[u8]) -> Result<Self, PppError> {
        let mut r = Reader::new(value);
        let v = MsChapV1Response {
            lm_response: r.array()?,
            nt_response: r.array()?,
            use_nt: r.u8()?,
        };
        r.finish()?;
        Ok(v)
    }

    /// The Response value.
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        let parts: [&[u8]; 3] = [&self.lm_response, &self.nt_response, &[self.use_nt]];
        for (dst, src) in out.iter_mut().zip(parts.into_iter().flatten()) {
            *dst = *src;
        }
        out
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use proptest::prelude::*;

    /// PAP Authenticate-Request id 1: peer-id "user", password "pass".
    static PAP_REQ: [u8; 14] = [
        0x01, 0x01, 0x00, 0x0e, 0x04, b'u', b's', b'e', b'r', 0x04, b'p', b'a', b's', b's',
    ];
    /// PAP Authenticate-Ack id 1 with message "ok".
    static PAP_ACK: [u8; 7] = [0x02, 0x01, 0x00, 0x07, 0x02, b'o', b'k'];
    /// PAP Authenticate-Nak id 1 without any data (old servers).
    static PAP_NAK_BARE: [u8; 4] = [0x03, 0x01, 0x00, 0x04];

    /// CHAP-MD5 Challenge id 0x11: 16-octet value, name "pns".
    static CHAP_CHALLENGE: [u8; 24] = [
        0x01, 0x11, 0x00, 0x18, 0x10, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09,
        0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, b'p', b'n', b's',
    ];

    #[test]
    fn pap_parse_emit() {
        let req = PapRepr::parse(&PAP_REQ).unwrap();
        assert_eq!(
            req,
            PapRepr {
                identifier: 1,
                message: PapMessage::AuthenticateRequest {
                    peer_id: b"user",
                    password: b"pass"
                }
            }
        );
        assert_eq!(req.to_vec().unwrap(), PAP_REQ);
        let ack = PapRepr::parse(&PAP_ACK).unwrap();
        assert_eq!(ack.message, PapMessage::AuthenticateAck { message: b"ok" });
        assert_eq!(ack.to_vec().unwrap(), PAP_ACK);
        let nak = PapRepr::parse(&PAP_NAK_BARE).unwrap();
        assert_eq!(nak.message, PapMessage::AuthenticateNak { message: b"" });
        // Re-emitted with an explicit Msg-Length of zero.
        assert_eq!(nak.to_vec().unwrap(), [0x03, 0x01, 0x00, 0x05, 0x00]);
    }

    #[test]
    fn pap_malformed() {
        // Peer-ID length past the end.
        assert!(PapRepr::parse(&[1, 1, 0, 6, 5, b'u']).is_err());
        // Missing Passwd-Length.
        assert!(PapRepr::parse(&[1, 1, 0, 6, 1, b'u']).is_err());
        // Trailing octet after the password.
        assert!(PapRepr::parse(&[1, 1, 0, 8, 1, b'u', 0, 9]).is_err());
        assert_eq!(
            PapRepr::parse(&[7, 1, 0, 4]),
            Err(PppError::UnknownCode { code: 7 })
        );
        let long = [0u8; 256];
        let repr = PapRepr {
            identifier: 0,
            message: PapMessage::AuthenticateRequest {
                peer_id: &long,
                password: b"",
            },
        };
        assert!(matches!(repr.to_vec(), Err(PppError::TooLong { .. })));
    }

    #[test]
    fn chap_md5() {
        let c = ChapRepr::parse(&CHAP_CHALLENGE).unwrap();
        assert_eq!(c.identifier, 0x11);
        let ChapMessage::Challenge { value, name } = c.message else {
            panic!("{c:?}")
        };
        assert_eq!(value.len(), 16);
        assert_eq!(value, &CHAP_CHALLENGE[5..21]);
        assert_eq!(name, b"pns");
        assert_eq!(c.to_vec().unwrap(), CHAP_CHALLENGE);

        let resp = ChapRepr {
            identifier: 0x11,
            message: ChapMessage::Response {
                value: &[0xaa; 16],
                name: b"user",
            },
        };
        let bytes = resp.to_vec().unwrap();
        assert_eq!(&bytes[..5], &[0x02, 0x11, 0x00, 0x19, 0x10]);
        assert_eq!(&bytes[21..], b"user");
        assert_eq!(ChapRepr::parse(&bytes).unwrap(), resp);

        let ok = ChapRepr::parse(&[3, 0x11, 0, 8, b'W', b'e', b'l', b'c']).unwrap();
        assert_eq!(ok.message, ChapMessage::Success { message: b"Welc" });
        let fail = ChapRepr::parse(&[4, 0x11, 0, 4]).unwrap();
        assert_eq!(fail.message, ChapMessage::Failure { message: b"" });
    }

    #[test]
    fn chap_mschap_sizes() {
        // MS-CHAPv2 Response: Value-Size 49 = peer challenge, 8 reserved, NT-Response, flags.
        let v2 = MsChapV2Response {
            peer_challenge: [0x21; 16],
            reserved: [0; 8],
            nt_response: [0x82; 24],
            flags: 0,
        };
        let value = v2.to_bytes();
        assert_eq!(&value[..16], &[0x21; 16]);
        assert_eq!(&value[24..48], &[0x82; 24]);
        let resp = ChapRepr {
            identifier: 3,
            message: ChapMessage::Response {
                value: &value,
                name: b"User",
            },
        };
        let bytes = resp.to_vec().unwrap();
        assert_eq!(bytes.len(), 4 + 1 + 49 + 4);
        assert_eq!(bytes[4], 49);
        let ChapMessage::Response { value, name } = ChapRepr::parse(&bytes).unwrap().message else {
            panic!()
        };
        assert_eq!(name, b"User");
        assert_eq!(MsChapV2Response::parse(value), Ok(v2));
        assert!(MsChapV2Response::parse(&value[..48]).is_err());
        assert!(MsChapV2Response::parse(&bytes[4..]).is_err());

        let v1 = MsChapV1Response {
            lm_response: [0; 24],
            nt_response: [7; 24],
            use_nt: 1,
        };
        assert_eq!(MsChapV1Response::parse(&v1.to_bytes()), Ok(v1));
        assert_eq!(v1.to_bytes()[48], 1);

        // MS-CHAPv2 challenge: 16 octets; MS-CHAPv1: 8.
        let ch = ChapRepr::parse(&[1, 1, 0, 13, 8, 1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
        assert!(
            matches!(ch.message, ChapMessage::Challenge { value, name: b"" } if value.len() == 8)
        );
        assert_eq!(ChapAlgorithm::from(0x81), ChapAlgorithm::MsChapV2);
        assert_eq!(u8::from(ChapAlgorithm::Unknown(0x7f)), 0x7f);
    }

    #[test]
    fn chap_malformed() {
        assert_eq!(
            ChapRepr::parse(&[1, 1, 0, 5, 0]),
            Err(PppError::BadField {
                what: "CHAP Value-Size 0"
            })
        );
        assert!(ChapRepr::parse(&[2, 1, 0, 6, 5, 1]).is_err());
        assert!(ChapRepr::parse(&[1, 1, 0, 4]).is_err());
        assert_eq!(
            ChapRepr::parse(&[9, 1, 0, 4]),
            Err(PppError::UnknownCode { code: 9 })
        );
        let empty = ChapRepr {
            identifier: 0,
            message: ChapMessage::Challenge {
                value: b"",
                name: b"x",
            },
        };
        assert!(empty.to_vec().is_err());
    }

    fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(any::<u8>(), 0..max)
    }

    proptest! {
        #[test]
        fn pap_roundtrip(kind in 0u8..3, id in any::<u8>(), a in bytes(40), b in bytes(40)) {
            let message = match kind {
                0 => PapMessage::AuthenticateRequest { peer_id: &a, password: &b },
                1 => PapMessage::AuthenticateAck { message: &a },
                _ => PapMessage::AuthenticateNak { message: &a },
            };
            let repr = PapRepr { identifier: id, message };
            let bytes = repr.to_vec().unwrap();
            prop_assert_eq!(bytes.len(), repr.buffer_len());
            prop_assert_eq!(PapRepr::parse(&bytes).unwrap(), repr);
        }

        #[test]
        fn chap_roundtrip(kind in 0u8..4, id in any::<u8>(), value in proptest::collection::vec(any::<u8>(), 1..60), name in bytes(40)) {
            let message = match kind {
                0 => ChapMessage::Challenge { value: &value, name: &name },
                1 => ChapMessage::Response { value: &value, name: &name },
                2 => ChapMessage::Success { message: &name },
                _ => ChapMessage::Failure { message: &name },
            };
            let repr = ChapRepr { identifier: id, message };
            let bytes = repr.to_vec().unwrap();
            prop_assert_eq!(bytes.len(), repr.buffer_len());
            prop_assert_eq!(ChapRepr::parse(&bytes).unwrap(), repr);
        }

        #[test]
        fn auth_parse_never_panics(bytes in bytes(32)) {
            let _ = PapRepr::parse(&bytes);
            let _ = ChapRepr::parse(&bytes);
        }
    }
}
