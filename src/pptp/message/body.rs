//! The bodies of the 15 control messages (everything after the 12-octet header), field by field
//! as RFC 2637 section 2 lays them out.
//!
//! Each struct holds every field except the Reserved ones, which are emitted as 0 ("This field
//! MUST be 0") and checked on receipt only by [`Message::parse_strict`](super::Message::parse_strict).
//! Length fields that RFC 2637 carries beside a text field (Phone Number Length, Dialed/Dialing
//! Number Length) are kept as received, because peers do not always fill them consistently; use
//! the `*_length_matches` helpers or set them from the text with `len()`.

use super::codes::*;
use super::text::{CallStatistics, TextField};
use crate::wire::{Reader, WireError};
use bytes::BufMut;

/// A body reader that notes the first non-zero Reserved field instead of failing on it.
pub(super) struct BodyReader<'a> {
    r: Reader<'a>,
    pub(super) reserved: Option<(&'static str, u32)>,
}

impl<'a> BodyReader<'a> {
    pub(super) fn new(body: &'a [u8]) -> Self {
        BodyReader {
            r: Reader::new(body),
            reserved: None,
        }
    }
    fn u8(&mut self) -> Result<u8, WireError> {
        self.r.u8()
    }
    fn u16(&mut self) -> Result<u16, WireError> {
        self.r.u16()
    }
    fn u32(&mut self) -> Result<u32, WireError> {
        self.r.u32()
    }
    fn text<const N: usize>(&mut self) -> Result<TextField<N>, WireError> {
        self.r.array::<N>().map(|a| TextField::from_wire(&a))
    }
    fn note(&mut self, name: &'static str, value: u32) {
        if value != 0 && self.reserved.is_none() {
            self.reserved = Some((name, value));
        }
    }
    fn reserved8(&mut self, name: &'static str) -> Result<(), WireError> {
        let v = self.r.u8()?;
        self.note(name, u32::from(v));
        Ok(())
    }
    fn reserved16(&mut self, name: &'static str) -> Result<(), WireError> {
        let v = self.r.u16()?;
        self.note(name, u32::from(v));
        Ok(())
    }
    pub(super) fn finish(self) -> Result<Option<(&'static str, u32)>, WireError> {
        self.r.finish()?;
        Ok(self.reserved)
    }
}

/// Start-Control-Connection-Request (RFC 2637 §2.1), 156 octets: opens a control connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StartControlConnectionRequest {
    /// Protocol Version: major in the high octet, minor in the low; 0x0100 for RFC 2637.
    pub protocol_version: u16,
    /// Framing Capabilities of the sender.
    pub framing_capabilities: FramingCapabilities,
    /// Bearer Capabilities of the sender.
    pub bearer_capabilities: BearerCapabilities,
    /// Maximum Channels: total number of sessions a PAC can support (0 from a PNS).
    pub maximum_channels: u16,
    /// Firmware Revision of the PAC, or the PNS driver version.
    pub firmware_revision: u16,
    /// Host Name: the DNS name of the sender.
    pub host_name: TextField,
    /// Vendor String: vendor-specific description of the sender.
    pub vendor: TextField,
}

impl StartControlConnectionRequest {
    pub(super) fn parse(r: &mut BodyReader<'_>) -> Result<Self, WireError> {
        let protocol_version = r.u16()?;
        r.reserved16("Reserved1")?;
        Ok(Self {
            protocol_version,
            framing_capabilities: r.u32()?.into(),
            bearer_capabilities: r.u32()?.into(),
            maximum_channels: r.u16()?,
            firmware_revision: r.u16()?,
            host_name: r.text()?,
            vendor: r.text()?,
        })
    }
    pub(super) fn emit<B: BufMut>(&self, buf: &mut B) {
        buf.put_u16(self.protocol_version);
        buf.put_u16(0);
        buf.put_u32(self.framing_capabilities.bits());
        buf.put_u32(self.bearer_capabilities.bits());
        buf.put_u16(self.maximum_channels);
        buf.put_u16(self.firmware_revision);
        self.host_name.emit(buf);
        self.vendor.emit(buf);
    }
}

/// Start-Control-Connection-Reply (RFC 2637 §2.2), 156 octets: answers an SCCRQ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StartControlConnectionReply {
    /// Protocol Version of the replier.
    pub protocol_version: u16,
    /// Result Code.
    pub result: StartControlConnectionResult,
    /// Error Code (0 unless `result` is General Error).
    pub error: ErrorCode,
    /// Framing Capabilities of the replier.
    pub framing_capabilities: FramingCapabilities,
    /// Bearer Capabilities of the replier.
    pub bearer_capabilities: BearerCapabilities,
    /// Maximum Channels the PAC supports.
    pub maximum_channels: u16,
    /// Firmware Revision.
    pub firmware_revision: u16,
    /// Host Name of the replier.
    pub host_name: TextField,
    /// Vendor String of the replier.
    pub vendor: TextField,
}

impl StartControlConnectionReply {
    pub(super) fn parse(r: &mut BodyReader<'_>) -> Result<Self, WireError> {
        Ok(Self {
            protocol_version: r.u16()?,
            result: r.u8()?.into(),
            error: r.u8()?.into(),
            framing_capabilities: r.u32()?.into(),
            bearer_capabilities: r.u32()?.into(),
            maximum_channels: r.u16()?,
            firmware_revision: r.u16()?,
            host_name: r.text()?,
            vendor: r.text()?,
        })
    }
    pub(super) fn emit<B: BufMut>(&self, buf: &mut B) {
        buf.put_u16(self.protocol_version);
        buf.put_u8(self.result.into());
        buf.put_u8(self.error.into());
        buf.put_u32(self.framing_capabilities.bits());
        buf.put_u32(self.bearer_capabilities.bits());
        buf.put_u16(self.maximum_channels);
        buf.put_u16(self.firmware_revision);
        self.host_name.emit(buf);
        self.vendor.emit(buf);
    }
}

/// Stop-Control-Connection-Request (RFC 2637 §2.3), 16 octets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StopControlConnectionRequest {
    /// Reason for closing the control connection.
    pub reason: StopReason,
}

impl StopControlConnectionRequest {
    pub(super) fn parse(r: &mut BodyReader<'_>) -> Result<Self, WireError> {
        let reason = r.u8()?.into();
        r.reserved8("Reserved1")?;
        r.reserved16("Reserved2")?;
        Ok(Self { reason })
    }
    pub(super) fn emit<B: BufMut>(&self, buf: &mut B) {
        buf.put_u8(self.reason.into());
        buf.put_u8(0);
        buf.put_u16(0);
    }
}

/// Stop-Control-Connection-Reply (RFC 2637 §2.4), 16 octets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StopControlConnectionReply {
    /// Result Code.
    pub result: StopControlConnectionResult,
    /// Error Code (0 unless `result` is General Error).
    pub error: ErrorCode,
}

impl StopControlConnectionReply {
    pub(super) fn parse(r: &mut BodyReader<'_>) -> Result<Self, WireError> {
        let result = r.u8()?.into();
        let error = r.u8()?.into();
        r.reserved16("Reserved1")?;
        Ok(Self { result, error })
    }
    pub(super) fn emit<B: BufMut>(&self, buf: &mut B) {
        buf.put_u8(self.result.into());
        buf.put_u8(self.error.into());
        buf.put_u16(0);
    }
}

/// Echo-Request (RFC 2637 §2.5), 16 octets: keep-alive on the control connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EchoRequest {
    /// Identifier, copied into the Echo-Reply.
    pub identifier: u32,
}

impl EchoRequest {
    pub(super) fn parse(r: &mut BodyReader<'_>) -> Result<Self, WireError> {
        Ok(Self {
            identifier: r.u32()?,
        })
    }
    pub(super) fn emit<B: BufMut>(&self, buf: &mut B) {
        buf.put_u32(self.identifier);
    }
}

/// Echo-Reply (RFC 2637 §2.6), 20 octets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EchoReply {
    /// Identifier copied from the Echo-Request.
    pub identifier: u32,
    /// Result Code.
    pub result: EchoResult,
    /// Error Code (0 unless `result` is General Error).
    pub error: ErrorCode,
}

impl EchoReply {
    pub(super) fn parse(r: &mut BodyReader<'_>) -> Result<Self, WireError> {
        let identifier = r.u32()?;
        let result = r.u8()?.into();
        let error = r.u8()?.into();
        r.reserved16("Reserved1")?;
        Ok(Self {
            identifier,
            result,
            error,
        })
    }
    pub(super) fn emit<B: BufMut>(&self, buf: &mut B) {
        buf.put_u32(self.identifier);
        buf.put_u8(self.result.into());
        buf.put_u8(self.error.into());
        buf.put_u16(0);
    }
}

/// Outgoing-Call-Request (RFC 2637 §2.7), 168 octets: the PNS asks the PAC to place a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OutgoingCallRequest {
    /// Call ID the PNS assigned to this session (the PAC puts it in GRE keys it sends).
    pub call_id: u16,
    /// Call Serial Number, for logging and management.
    pub call_serial_number: u16,
    /// Minimum BPS: lowest acceptable line speed.
    pub minimum_bps: u32,
    /// Maximum BPS: highest acceptable line speed.
    pub maximum_bps: u32,
    /// Bearer Type to place the call on.
    pub bearer_type: BearerType,
    /// Framing Type to use.
    pub framing_type: FramingType,
    /// Packet Receive Window Size: receive window the PNS offers for this call.
    pub packet_recv_window_size: u16,
    /// Packet Processing Delay, in 1/10 second units.
    pub packet_processing_delay: u16,
    /// Phone Number Length as sent (normally `phone_number.len()`).
    pub phone_number_length: u16,
    /// Phone Number to dial.
    pub phone_number: TextField,
    /// Subaddress (additional dialing information).
    pub subaddress: TextField,
}

impl OutgoingCallRequest {
    pub(super) fn parse(r: &mut BodyReader<'_>) -> Result<Self, WireError> {
        let call_id = r.u16()?;
        let call_serial_number = r.u16()?;
        let minimum_bps = r.u32()?;
        let maximum_bps = r.u32()?;
        let bearer_type = r.u32()?.into();
        let framing_type = r.u32()?.into();
        let packet_recv_window_size = r.u16()?;
        let packet_processing_delay = r.u16()?;
        let phone_number_length = r.u16()?;
        r.reserved16("Reserved1")?;
        Ok(Self {
            call_id,
            call_serial_number,
            minimum_bps,
            maximum_bps,
            bearer_type,
            framing_type,
            packet_recv_window_size,
            packet_processing_delay,
            phone_number_length,
            phone_number: r.text()?,
            subaddress: r.text()?,
        })
    }
    pub(super) fn emit<B: BufMut>(&self, buf: &mut B) {
        buf.put_u16(self.call_id);
        buf.put_u16(self.call_serial_number);
        buf.put_u32(self.minimum_bps);
        buf.put_u32(self.maximum_bps);
        buf.put_u32(self.bearer_type.into());
        buf.put_u32(self.framing_type.into());
        buf.put_u16(self.packet_recv_window_size);
        buf.put_u16(self.packet_processing_delay);
        buf.put_u16(self.phone_number_length);
        buf.put_u16(0);
        self.phone_number.emit(buf);
        self.subaddress.emit(buf);
    }

    /// Whether Phone Number Length agrees with the Phone Number text.
    pub fn phone_number_length_matches(&self) -> bool {
        usize::from(self.phone_number_length) == self.phone_number.len()
    }
}

/// Outgoing-Call-Reply (RFC 2637 §2.8), 32 octets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OutgoingCallReply {
    /// Call ID the PAC assigned to this session.
    pub call_id: u16,
    /// Peer's Call ID: the Call ID from the Outgoing-Call-Request.
    pub peer_call_id: u16,
    /// Result Code.
    pub result: OutgoingCallResult,
    /// Error Code (0 unless `result` is General Error).
    pub error: ErrorCode,
    /// Cause Code: additional (Q.931) failure information.
    pub cause_code: CauseCode,
    /// Connect Speed actually used, in bits per second.
    pub connect_speed: u32,
    /// Packet Receive Window Size the PAC offers.
    pub packet_recv_window_size: u16,
    /// Packet Processing Delay of the PAC, in 1/10 second units.
    pub packet_processing_delay: u16,
    /// Physical Channel ID, for logging.
    pub physical_channel_id: u32,
}

impl OutgoingCallReply {
    pub(super) fn parse(r: &mut BodyReader<'_>) -> Result<Self, WireError> {
        Ok(Self {
            call_id: r.u16()?,
            peer_call_id: r.u16()?,
            result: r.u8()?.into(),
            error: r.u8()?.into(),
            cause_code: r.u16()?.into(),
            connect_speed: r.u32()?,
            packet_recv_window_size: r.u16()?,
            packet_processing_delay: r.u16()?,
            physical_channel_id: r.u32()?,
        })
    }
    pub(super) fn emit<B: BufMut>(&self, buf: &mut B) {
        buf.put_u16(self.call_id);
        buf.put_u16(self.peer_call_id);
        buf.put_u8(self.result.into());
        buf.put_u8(self.error.into());
        buf.put_u16(self.cause_code.into());
        buf.put_u32(self.connect_speed);
        buf.put_u16(self.packet_recv_window_size);
        buf.put_u16(self.packet_processing_delay);
        buf.put_u32(self.physical_channel_id);
    }
}

/// Incoming-Call-Request (RFC 2637 §2.9), 220 octets: the PAC reports an inbound call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IncomingCallRequest {
    /// Call ID the PAC assigned to this session.
    pub call_id: u16,
    /// Call Serial Number.
    pub call_serial_number: u16,
    /// Call Bearer Type the call arrived on.
    pub call_bearer_type: BearerType,
    /// Physical Channel ID, for logging.
    pub physical_channel_id: u32,
    /// Dialed Number Length as sent (normally `dialed_number.len()`).
    pub dialed_number_length: u16,
    /// Dialing Number Length as sent (normally `dialing_number.len()`).
    pub dialing_number_length: u16,
    /// Dialed Number (DNIS): the number the caller dialed.
    pub dialed_number: TextField,
    /// Dialing Number (CLID): the caller's number.
    pub dialing_number: TextField,
    /// Subaddress.
    pub subaddress: TextField,
}

impl IncomingCallRequest {
    pub(super) fn parse(r: &mut BodyReader<'_>) -> Result<Self, WireError> {
        Ok(Self {
            call_id: r.u16()?,
            call_serial_number: r.u16()?,
            call_bearer_type: r.u32()?.into(),
            physical_channel_id: r.u32()?,
            dialed_number_length: r.u16()?,
            dialing_number_length: r.u16()?,
            dialed_number: r.text()?,
            dialing_number: r.text()?,
            subaddress: r.text()?,
        })
    }
    pub(super) fn emit<B: BufMut>(&self, buf: &mut B) {
        buf.put_u16(self.call_id);
        buf.put_u16(self.call_serial_number);
        buf.put_u32(self.call_bearer_type.into());
        buf.put_u32(self.physical_channel_id);
        buf.put_u16(self.dialed_number_length);
        buf.put_u16(self.dialing_number_length);
        self.dialed_number.emit(buf);
        self.dialing_number.emit(buf);
        self.subaddress.emit(buf);
    }

    /// Whether both length fields agree with their text fields.
    pub fn number_lengths_match(&self) -> bool {
        usize::from(self.dialed_number_length) == self.dialed_number.len()
            && usize::from(self.dialing_number_length) == self.dialing_number.len()
    }
}

/// Incoming-Call-Reply (RFC 2637 §2.10), 24 octets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IncomingCallReply {
    /// Call ID the PNS assigned to this session.
    pub call_id: u16,
    /// Peer's Call ID: the Call ID from the Incoming-Call-Request.
    pub peer_call_id: u16,
    /// Result Code.
    pub result: IncomingCallResult,
    /// Error Code (0 unless `result` is General Error).
    pub error: ErrorCode,
    /// Packet Receive Window Size the PNS offers.
    pub packet_recv_window_size: u16,
    /// Packet Transmit Delay, in 1/10 second units.
    pub packet_transmit_delay: u16,
}

impl IncomingCallReply {
    pub(super) fn parse(r: &mut BodyReader<'_>) -> Result<Self, WireError> {
        let s = Self {
            call_id: r.u16()?,
            peer_call_id: r.u16()?,
            result: r.u8()?.into(),
            error: r.u8()?.into(),
            packet_recv_window_size: r.u16()?,
            packet_transmit_delay: r.u16()?,
        };
        r.reserved16("Reserved1")?;
        Ok(s)
    }
    pub(super) fn emit<B: BufMut>(&self, buf: &mut B) {
        buf.put_u16(self.call_id);
        buf.put_u16(self.peer_call_id);
        buf.put_u8(self.result.into());
        buf.put_u8(self.error.into());
        buf.put_u16(self.packet_recv_window_size);
        buf.put_u16(self.packet_transmit_delay);
        buf.put_u16(0);
    }
}

/// Incoming-Call-Connected (RFC 2637 §2.11), 28 octets: the PAC answered the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IncomingCallConnected {
    /// Peer's Call ID: the Call ID from the Incoming-Call-Reply.
    pub peer_call_id: u16,
    /// Connect Speed, in bits per second.
    pub connect_speed: u32,
    /// Packet Receive Window Size the PAC offers.
    pub packet_recv_window_size: u16,
    /// Packet Transmit Delay, in 1/10 second units.
    pub packet_transmit_delay: u16,
    /// Framing Type the call uses.
    pub framing_type: FramingType,
}

impl IncomingCallConnected {
    pub(super) fn parse(r: &mut BodyReader<'_>) -> Result<Self, WireError> {
        let peer_call_id = r.u16()?;
        r.reserved16("Reserved1")?;
        Ok(Self {
            peer_call_id,
            connect_speed: r.u32()?,
            packet_recv_window_size: r.u16()?,
            packet_transmit_delay: r.u16()?,
            framing_type: r.u32()?.into(),
        })
    }
    pub(super) fn emit<B: BufMut>(&self, buf: &mut B) {
        buf.put_u16(self.peer_call_id);
        buf.put_u16(0);
        buf.put_u32(self.connect_speed);
        buf.put_u16(self.packet_recv_window_size);
        buf.put_u16(self.packet_transmit_delay);
        buf.put_u32(self.framing_type.into());
    }
}

/// Call-Clear-Request (RFC 2637 §2.12), 16 octets: the PNS asks the PAC to drop a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CallClearRequest {
    /// Call ID the PNS assigned to the call.
    pub call_id: u16,
}

impl CallClearRequest {
    pub(super) fn parse(r: &mut BodyReader<'_>) -> Result<Self, WireError> {
        let call_id = r.u16()?;
        r.reserved16("Reserved1")?;
        Ok(Self { call_id })
    }
    pub(super) fn emit<B: BufMut>(&self, buf: &mut B) {
        buf.put_u16(self.call_id);
        buf.put_u16(0);
    }
}

/// Call-Disconnect-Notify (RFC 2637 §2.13), 148 octets: the PAC reports a call is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CallDisconnectNotify {
    /// Call ID the PAC assigned to the call.
    pub call_id: u16,
    /// Result Code.
    pub result: CallDisconnectResult,
    /// Error Code (0 unless `result` is General Error).
    pub error: ErrorCode,
    /// Cause Code: additional (Q.931) disconnect information.
    pub cause_code: CauseCode,
    /// Call Statistics: vendor-specific text for logging (128 octets on the wire).
    pub call_statistics: CallStatistics,
}

impl CallDisconnectNotify {
    pub(super) fn parse(r: &mut BodyReader<'_>) -> Result<Self, WireError> {
        let call_id = r.u16()?;
        let result = r.u8()?.into();
        let error = r.u8()?.into();
        let cause_code = r.u16()?.into();
        r.reserved16("Reserved1")?;
        Ok(Self {
            call_id,
            result,
            error,
            cause_code,
            call_statistics: r.text()?,
        })
    }
    pub(super) fn emit<B: BufMut>(&self, buf: &mut B) {
        buf.put_u16(self.call_id);
        buf.put_u8(self.result.into());
        buf.put_u8(self.error.into());
        buf.put_u16(self.cause_code.into());
        buf.put_u16(0);
        self.call_statistics.emit(buf);
    }
}

/// WAN-Error-Notify (RFC 2637 §2.14), 40 octets: cumulative line error counters from the PAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct WanErrorNotify {
    /// Peer's Call ID: the PNS's Call ID for this call.
    pub peer_call_id: u16,
    /// CRC Errors: PPP frames received with CRC errors since the session was established.
    pub crc_errors: u32,
    /// Framing Errors: improperly framed PPP packets received.
    pub framing_errors: u32,
    /// Hardware Overruns: receive buffer overruns.
    pub hardware_overruns: u32,
    /// Buffer Overruns: buffer overruns detected.
    pub buffer_overruns: u32,
    /// Time-out Errors.
    pub timeout_errors: u32,
    /// Alignment Errors.
    pub alignment_errors: u32,
}

impl WanErrorNotify {
    pub(super) fn parse(r: &mut BodyReader<'_>) -> Result<Self, WireError> {
        let peer_call_id = r.u16()?;
        r.reserved16("Reserved1")?;
        Ok(Self {
            peer_call_id,
            crc_errors: r.u32()?,
            framing_errors: r.u32()?,
            hardware_overruns: r.u32()?,
            buffer_overruns: r.u32()?,
            timeout_errors: r.u32()?,
            alignment_errors: r.u32()?,
        })
    }
    pub(super) fn emit<B: BufMut>(&self, buf: &mut B) {
        buf.put_u16(self.peer_call_id);
        buf.put_u16(0);
        buf.put_u32(self.crc_errors);
        buf.put_u32(self.framing_errors);
        buf.put_u32(self.hardware_overruns);
        buf.put_u32(self.buffer_overruns);
        buf.put_u32(self.timeout_errors);
        buf.put_u32(self.alignment_errors);
    }
}

/// Set-Link-Info (RFC 2637 §2.15), 24 octets: the PNS tells the PAC the PPP-negotiated ACCMs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SetLinkInfo {
    /// Peer's Call ID: the PAC's Call ID for this call.
    pub peer_call_id: u16,
    /// Send ACCM the PAC must use towards the client (default 0xFFFFFFFF).
    pub send_accm: u32,
    /// Receive ACCM the PAC should use (default 0xFFFFFFFF).
    pub receive_accm: u32,
}

impl SetLinkInfo {
    pub(super) fn parse(r: &mut BodyReader<'_>) -> Result<Self, WireError> {
        let peer_call_id = r.u16()?;
        r.reserved16("Reserved1")?;
        Ok(Self {
            peer_call_id,
            send_accm: r.u32()?,
            receive_accm: r.u32()?,
        })
    }
    pub(super) fn emit<B: BufMut>(&self, buf: &mut B) {
        buf.put_u16(self.peer_call_id);
        buf.put_u16(0);
        buf.put_u32(self.send_accm);
        buf.put_u32(self.receive_accm);
    }
}
