//! Code points and bit sets of the PPTP control messages (RFC 2637 section 2).
//!
//! Every code point is an `enum_with_unknown!` enum, so a value this crate does not know is kept
//! as `Unknown(v)` and emitted again unchanged. Result codes differ per message, so each message
//! with a Result Code field has its own enum; the General Error Codes of section 2.16 are shared.

enum_with_unknown! {
    /// Control Message Type, the field at octets 8..10 of every control message (RFC 2637 §2).
    pub enum ControlMessageType(u16) {
        /// Start-Control-Connection-Request (SCCRQ), §2.1.
        StartControlConnectionRequest = 1,
        /// Start-Control-Connection-Reply (SCCRP), §2.2.
        StartControlConnectionReply = 2,
        /// Stop-Control-Connection-Request (StopCCRQ), §2.3.
        StopControlConnectionRequest = 3,
        /// Stop-Control-Connection-Reply (StopCCRP), §2.4.
        StopControlConnectionReply = 4,
        /// Echo-Request, §2.5.
        EchoRequest = 5,
        /// Echo-Reply, §2.6.
        EchoReply = 6,
        /// Outgoing-Call-Request (OCRQ), §2.7.
        OutgoingCallRequest = 7,
        /// Outgoing-Call-Reply (OCRP), §2.8.
        OutgoingCallReply = 8,
        /// Incoming-Call-Request (ICRQ), §2.9.
        IncomingCallRequest = 9,
        /// Incoming-Call-Reply (ICRP), §2.10.
        IncomingCallReply = 10,
        /// Incoming-Call-Connected (ICCN), §2.11.
        IncomingCallConnected = 11,
        /// Call-Clear-Request (CCRQ), §2.12.
        CallClearRequest = 12,
        /// Call-Disconnect-Notify (CDN), §2.13.
        CallDisconnectNotify = 13,
        /// WAN-Error-Notify (WEN), §2.14.
        WanErrorNotify = 14,
        /// Set-Link-Info (SLI), §2.15.
        SetLinkInfo = 15,
    }
}

impl ControlMessageType {
    /// The total length in octets (header included) RFC 2637 gives this message type, or `None`
    /// for an unknown type.
    pub const fn fixed_len(self) -> Option<u16> {
        Some(match self {
            Self::StartControlConnectionRequest | Self::StartControlConnectionReply => 156,
            Self::StopControlConnectionRequest | Self::StopControlConnectionReply => 16,
            Self::EchoRequest => 16,
            Self::EchoReply => 20,
            Self::OutgoingCallRequest => 168,
            Self::OutgoingCallReply => 32,
            Self::IncomingCallRequest => 220,
            Self::IncomingCallReply => 24,
            Self::IncomingCallConnected => 28,
            Self::CallClearRequest => 16,
            Self::CallDisconnectNotify => 148,
            Self::WanErrorNotify => 40,
            Self::SetLinkInfo => 24,
            Self::Unknown(_) => return None,
        })
    }

    /// The usual abbreviation (`"SCCRQ"`, `"OCRP"`, …), for logs.
    pub const fn abbreviation(self) -> &'static str {
        match self {
            Self::StartControlConnectionRequest => "SCCRQ",
            Self::StartControlConnectionReply => "SCCRP",
            Self::StopControlConnectionRequest => "StopCCRQ",
            Self::StopControlConnectionReply => "StopCCRP",
            Self::EchoRequest => "ECHORQ",
            Self::EchoReply => "ECHORP",
            Self::OutgoingCallRequest => "OCRQ",
            Self::OutgoingCallReply => "OCRP",
            Self::IncomingCallRequest => "ICRQ",
            Self::IncomingCallReply => "ICRP",
            Self::IncomingCallConnected => "ICCN",
            Self::CallClearRequest => "CCRQ",
            Self::CallDisconnectNotify => "CDN",
            Self::WanErrorNotify => "WEN",
            Self::SetLinkInfo => "SLI",
            Self::Unknown(_) => "unknown",
        }
    }
}

impl core::fmt::Display for ControlMessageType {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Unknown(v) => write!(f, "unknown({v})"),
            other => f.write_str(other.abbreviation()),
        }
    }
}

enum_with_unknown! {
    /// General Error Codes (RFC 2637 §2.16), carried in the Error Code field of replies when the
    /// Result Code says "General Error".
    pub enum ErrorCode(u8) {
        /// 0 (None): no general error.
        None = 0,
        /// 1 (Not-Connected): no control connection exists yet for this PAC-PNS pair.
        NotConnected = 1,
        /// 2 (Bad-Format): length is wrong or Magic Cookie value is incorrect.
        BadFormat = 2,
        /// 3 (Bad-Value): one of the field values was out of range or a reserved field was
        /// non-zero.
        BadValue = 3,
        /// 4 (No-Resource): insufficient resources to handle this command now.
        NoResource = 4,
        /// 5 (Bad-Call ID): the Call ID is invalid in this context.
        BadCallId = 5,
        /// 6 (PAC-Error): a generic vendor-specific error occurred in the PAC.
        PacError = 6,
    }
}

enum_with_unknown! {
    /// Result Code of a Start-Control-Connection-Reply (RFC 2637 §2.2).
    pub enum StartControlConnectionResult(u8) {
        /// 1: successful channel establishment.
        Success = 1,
        /// 2: general error; the Error Code says which.
        GeneralError = 2,
        /// 3: command channel already exists.
        ChannelExists = 3,
        /// 4: requester is not authorized to establish a command channel.
        NotAuthorized = 4,
        /// 5: the protocol version of the requester is not supported.
        VersionNotSupported = 5,
    }
}

enum_with_unknown! {
    /// Reason of a Stop-Control-Connection-Request (RFC 2637 §2.3).
    pub enum StopReason(u8) {
        /// 1 (None): general request to clear the control connection.
        None = 1,
        /// 2 (Stop-Protocol): can't support the peer's version of the protocol.
        StopProtocol = 2,
        /// 3 (Stop-Local-Shutdown): requester is being shut down.
        LocalShutdown = 3,
    }
}

enum_with_unknown! {
    /// Result Code of a Stop-Control-Connection-Reply (RFC 2637 §2.4).
    pub enum StopControlConnectionResult(u8) {
        /// 1 (OK): control connection closed.
        Ok = 1,
        /// 2 (General Error): control connection not closed; the Error Code says why.
        GeneralError = 2,
    }
}

enum_with_unknown! {
    /// Result Code of an Echo-Reply (RFC 2637 §2.6).
    pub enum EchoResult(u8) {
        /// 1 (OK): the Echo-Reply is valid.
        Ok = 1,
        /// 2 (General Error): Echo-Request not accepted; the Error Code says why.
        GeneralError = 2,
    }
}

enum_with_unknown! {
    /// Result Code of an Outgoing-Call-Reply (RFC 2637 §2.8).
    pub enum OutgoingCallResult(u8) {
        /// 1 (Connected): call established with no errors.
        Connected = 1,
        /// 2 (General Error): outgoing call not established; the Error Code says why.
        GeneralError = 2,
        /// 3 (No Carrier): outgoing call failed due to no carrier detected.
        NoCarrier = 3,
        /// 4 (Busy): outgoing call failed due to detection of a busy signal.
        Busy = 4,
        /// 5 (No Dial Tone): outgoing call failed due to lack of a dial tone.
        NoDialTone = 5,
        /// 6 (Time-out): outgoing call not established within the time allotted by the PAC.
        TimeOut = 6,
        /// 7 (Do Not Accept): outgoing call administratively prohibited.
        DoNotAccept = 7,
    }
}

enum_with_unknown! {
    /// Result Code of an Incoming-Call-Reply (RFC 2637 §2.10).
    pub enum IncomingCallResult(u8) {
        /// 1 (Connect): the PAC should answer the incoming call.
        Connect = 1,
        /// 2 (General Error): the incoming call should not be established; see the Error Code.
        GeneralError = 2,
        /// 3 (Do Not Accept): the PAC should not accept the incoming call; it should hang up or
        /// reject it.
        DoNotAccept = 3,
    }
}

enum_with_unknown! {
    /// Result Code of a Call-Disconnect-Notify (RFC 2637 §2.13).
    pub enum CallDisconnectResult(u8) {
        /// 1 (Lost Carrier): call disconnected due to loss of carrier.
        LostCarrier = 1,
        /// 2 (General Error): call disconnected for the reason in the Error Code.
        GeneralError = 2,
        /// 3 (Admin Shutdown): call disconnected for administrative reasons.
        AdminShutdown = 3,
        /// 4 (Request): call disconnected due to receipt of a Call-Clear-Request.
        Request = 4,
    }
}

enum_with_unknown! {
    /// Cause Code of an Outgoing-Call-Reply (§2.8) and Call-Disconnect-Notify (§2.13).
    ///
    /// RFC 2637 only says the field "gives additional information"; in practice it carries the
    /// ISDN cause value (ITU-T Q.850/Q.931) or 0. The common values are named here; every other
    /// value is kept as `Unknown(v)`.
    pub enum CauseCode(u16) {
        /// 0: no cause information (what pptpd and pptp-linux send).
        None = 0,
        /// Q.850 1: unallocated (unassigned) number.
        UnallocatedNumber = 1,
        /// Q.850 3: no route to destination.
        NoRouteToDestination = 3,
        /// Q.850 16: normal call clearing.
        NormalClearing = 16,
        /// Q.850 17: user busy.
        UserBusy = 17,
        /// Q.850 18: no user responding.
        NoUserResponding = 18,
        /// Q.850 19: no answer from user (user alerted).
        NoAnswer = 19,
        /// Q.850 21: call rejected.
        CallRejected = 21,
        /// Q.850 27: destination out of order.
        DestinationOutOfOrder = 27,
        /// Q.850 28: invalid number format.
        InvalidNumberFormat = 28,
        /// Q.850 31: normal, unspecified.
        NormalUnspecified = 31,
        /// Q.850 34: no circuit/channel available.
        NoCircuitAvailable = 34,
        /// Q.850 38: network out of order.
        NetworkOutOfOrder = 38,
        /// Q.850 41: temporary failure.
        TemporaryFailure = 41,
        /// Q.850 44: requested circuit/channel not available.
        RequestedChannelNotAvailable = 44,
        /// Q.850 47: resource unavailable, unspecified.
        ResourceUnavailable = 47,
        /// Q.850 57: bearer capability not authorized.
        BearerNotAuthorized = 57,
        /// Q.850 58: bearer capability not presently available.
        BearerNotAvailable = 58,
        /// Q.850 65: bearer capability not implemented.
        BearerNotImplemented = 65,
        /// Q.850 88: incompatible destination.
        IncompatibleDestination = 88,
        /// Q.850 102: recovery on timer expiry.
        TimerExpiry = 102,
        /// Q.850 111: protocol error, unspecified.
        ProtocolError = 111,
        /// Q.850 127: interworking, unspecified.
        Interworking = 127,
    }
}

enum_with_unknown! {
    /// Bearer Type of an Outgoing-Call-Request (§2.7) and Call Bearer Type of an
    /// Incoming-Call-Request (§2.9).
    ///
    /// RFC 2637 allows `Any` only in the Outgoing-Call-Request; the codec keeps whatever the peer
    /// sent (the captured test client puts 3 in its ICRQ) and leaves policy to the caller.
    pub enum BearerType(u32) {
        /// 1: call to be placed on (or received on) an analog channel.
        Analog = 1,
        /// 2: call to be placed on (or received on) a digital channel.
        Digital = 2,
        /// 3: call can be placed on any type of channel (OCRQ only).
        Any = 3,
    }
}

enum_with_unknown! {
    /// Framing Type of an Outgoing-Call-Request (§2.7) and Incoming-Call-Connected (§2.11).
    ///
    /// RFC 2637 allows `Either` only in the Outgoing-Call-Request.
    pub enum FramingType(u32) {
        /// 1: asynchronous framing (modems: RFC 1662 async HDLC).
        Async = 1,
        /// 2: synchronous framing (ISDN: bit-synchronous HDLC).
        Sync = 2,
        /// 3: the PAC may choose either framing (OCRQ only).
        Either = 3,
    }
}

/// Declares a 32-bit capability bit set that keeps bits it does not know.
macro_rules! capability_bits {
    (
        $( #[$attr:meta] )*
        pub struct $name:ident {
            $( $( #[$flag_attr:meta] )* const $flag:ident = $value:expr; )+
        }
    ) => {
        $( #[$attr] )*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
        pub struct $name(u32);

        impl $name {
            $( $( #[$flag_attr] )* pub const $flag: Self = Self($value); )+

            /// The empty set.
            pub const NONE: Self = Self(0);

            /// Builds a set from raw bits, keeping bits this crate does not know.
            pub const fn from_bits_retain(bits: u32) -> Self {
                Self(bits)
            }

            /// The raw bits, exactly as they go on the wire.
            pub const fn bits(self) -> u32 {
                self.0
            }

            /// Whether every bit of `other` is set in `self`.
            pub const fn contains(self, other: Self) -> bool {
                self.0 & other.0 == other.0
            }

            /// The union of both sets.
            pub const fn union(self, other: Self) -> Self {
                Self(self.0 | other.0)
            }

            /// Whether no bit is set.
            pub const fn is_empty(self) -> bool {
                self.0 == 0
            }
        }

        impl ::core::ops::BitOr for $name {
            type Output = Self;
            fn bitor(self, rhs: Self) -> Self {
                self.union(rhs)
            }
        }

        impl ::core::convert::From<u32> for $name {
            fn from(bits: u32) -> Self {
                Self(bits)
            }
        }

        impl ::core::convert::From<$name> for u32 {
            fn from(set: $name) -> u32 {
                set.0
            }
        }
    };
}

capability_bits! {
    /// Framing Capabilities of a Start-Control-Connection-Request/-Reply (RFC 2637 §2.1).
    pub struct FramingCapabilities {
        /// Bit 1: asynchronous framing supported.
        const ASYNC = 1;
        /// Bit 2: synchronous framing supported.
        const SYNC = 2;
    }
}

capability_bits! {
    /// Bearer Capabilities of a Start-Control-Connection-Request/-Reply (RFC 2637 §2.1).
    pub struct BearerCapabilities {
        /// Bit 1: analog access supported.
        const ANALOG = 1;
        /// Bit 2: digital access supported.
        const DIGITAL = 2;
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn message_types_round_trip_and_keep_unknowns() {
        for v in 0u16..=20 {
            let t = ControlMessageType::from(v);
            assert_eq!(u16::from(t), v);
            assert_eq!(t.fixed_len().is_some(), (1..=15).contains(&v), "{v}");
        }
        assert_eq!(
            ControlMessageType::from(16),
            ControlMessageType::Unknown(16)
        );
        assert_eq!(ControlMessageType::SetLinkInfo.to_string(), "SLI");
        assert_eq!(ControlMessageType::Unknown(99).to_string(), "unknown(99)");
    }

    #[test]
    fn fixed_lengths_match_rfc_2637() {
        use ControlMessageType as T;
        let table = [
            (T::StartControlConnectionRequest, 156),
            (T::StartControlConnectionReply, 156),
            (T::StopControlConnectionRequest, 16),
            (T::StopControlConnectionReply, 16),
            (T::EchoRequest, 16),
            (T::EchoReply, 20),
            (T::OutgoingCallRequest, 168),
            (T::OutgoingCallReply, 32),
            (T::IncomingCallRequest, 220),
            (T::IncomingCallReply, 24),
            (T::IncomingCallConnected, 28),
            (T::CallClearRequest, 16),
            (T::CallDisconnectNotify, 148),
            (T::WanErrorNotify, 40),
            (T::SetLinkInfo, 24),
        ];
        for (t, len) in table {
            assert_eq!(t.fixed_len(), Some(len), "{t}");
        }
    }

    #[test]
    fn result_codes_keep_unknown_values() {
        assert_eq!(OutgoingCallResult::from(7), OutgoingCallResult::DoNotAccept);
        assert_eq!(OutgoingCallResult::from(8), OutgoingCallResult::Unknown(8));
        assert_eq!(u8::from(ErrorCode::Unknown(200)), 200);
        assert_eq!(ErrorCode::from(6), ErrorCode::PacError);
        assert_eq!(u32::from(BearerType::from(9)), 9);
        assert_eq!(CauseCode::from(17), CauseCode::UserBusy);
        assert_eq!(u16::from(CauseCode::from(300)), 300);
    }

    #[test]
    fn capability_bits_keep_unknown_bits() {
        let caps = FramingCapabilities::ASYNC | FramingCapabilities::SYNC;
        assert_eq!(caps.bits(), 3);
        assert!(caps.contains(FramingCapabilities::SYNC));
        let odd = BearerCapabilities::from_bits_retain(0x8000_0001);
        assert!(odd.contains(BearerCapabilities::ANALOG));
        assert!(!odd.contains(BearerCapabilities::DIGITAL));
        assert_eq!(u32::from(odd), 0x8000_0001);
        assert!(BearerCapabilities::NONE.is_empty());
    }
}
