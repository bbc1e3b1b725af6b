//! proptest strategies for every control message (test builds only).

use super::text::strategy::text;
use super::*;
use proptest::prelude::*;

fn framing_caps() -> impl Strategy<Value = FramingCapabilities> {
    any::<u32>().prop_map(FramingCapabilities::from_bits_retain)
}
fn bearer_caps() -> impl Strategy<Value = BearerCapabilities> {
    any::<u32>().prop_map(BearerCapabilities::from_bits_retain)
}
fn error_code() -> impl Strategy<Value = ErrorCode> {
    any::<u8>().prop_map(ErrorCode::from)
}

prop_compose! {
    fn sccrq()(
        protocol_version in any::<u16>(), framing_capabilities in framing_caps(),
        bearer_capabilities in bearer_caps(), maximum_channels in any::<u16>(),
        firmware_revision in any::<u16>(), host_name in text::<64>(), vendor in text::<64>(),
    ) -> StartControlConnectionRequest {
        StartControlConnectionRequest { protocol_version, framing_capabilities,
            bearer_capabilities, maximum_channels, firmware_revision, host_name, vendor }
    }
}

prop_compose! {
    fn sccrp()(
        protocol_version in any::<u16>(), result in any::<u8>(), error in error_code(),
        framing_capabilities in framing_caps(), bearer_capabilities in bearer_caps(),
        maximum_channels in any::<u16>(), firmware_revision in any::<u16>(),
        host_name in text::<64>(), vendor in text::<64>(),
    ) -> StartControlConnectionReply {
        StartControlConnectionReply { protocol_version, result: result.into(), error,
            framing_capabilities, bearer_capabilities, maximum_channels, firmware_revision,
            host_name, vendor }
    }
}

prop_compose! {
    fn ocrq()(
        ids in any::<(u16, u16)>(), bps in any::<(u32, u32)>(), types in any::<(u32, u32)>(),
        window in any::<(u16, u16)>(), phone_number_length in any::<u16>(),
        phone_number in text::<64>(), subaddress in text::<64>(),
    ) -> OutgoingCallRequest {
        OutgoingCallRequest { call_id: ids.0, call_serial_number: ids.1, minimum_bps: bps.0,
            maximum_bps: bps.1, bearer_type: types.0.into(), framing_type: types.1.into(),
            packet_recv_window_size: window.0, packet_processing_delay: window.1,
            phone_number_length, phone_number, subaddress }
    }
}

prop_compose! {
    fn ocrp()(
        ids in any::<(u16, u16)>(), result in any::<u8>(), error in error_code(),
        cause in any::<u16>(), connect_speed in any::<u32>(), window in any::<(u16, u16)>(),
        physical_channel_id in any::<u32>(),
    ) -> OutgoingCallReply {
        OutgoingCallReply { call_id: ids.0, peer_call_id: ids.1, result: result.into(), error,
            cause_code: cause.into(), connect_speed, packet_recv_window_size: window.0,
            packet_processing_delay: window.1, physical_channel_id }
    }
}

prop_compose! {
    fn icrq()(
        ids in any::<(u16, u16)>(), bearer in any::<u32>(), physical_channel_id in any::<u32>(),
        lens in any::<(u16, u16)>(), dialed_number in text::<64>(),
        dialing_number in text::<64>(), subaddress in text::<64>(),
    ) -> IncomingCallRequest {
        IncomingCallRequest { call_id: ids.0, call_serial_number: ids.1,
            call_bearer_type: bearer.into(), physical_channel_id, dialed_number_length: lens.0,
            dialing_number_length: lens.1, dialed_number, dialing_number, subaddress }
    }
}

prop_compose! {
    fn icrp()(
        ids in any::<(u16, u16)>(), result in any::<u8>(), error in error_code(),
        window in any::<(u16, u16)>(),
    ) -> IncomingCallReply {
        IncomingCallReply { call_id: ids.0, peer_call_id: ids.1, result: result.into(), error,
            packet_recv_window_size: window.0, packet_transmit_delay: window.1 }
    }
}

prop_compose! {
    fn iccn()(
        peer_call_id in any::<u16>(), connect_speed in any::<u32>(),
        window in any::<(u16, u16)>(), framing in any::<u32>(),
    ) -> IncomingCallConnected {
        IncomingCallConnected { peer_call_id, connect_speed, packet_recv_window_size: window.0,
            packet_transmit_delay: window.1, framing_type: framing.into() }
    }
}

prop_compose! {
    fn cdn()(
        call_id in any::<u16>(), result in any::<u8>(), error in error_code(),
        cause in any::<u16>(), call_statistics in text::<128>(),
    ) -> CallDisconnectNotify {
        CallDisconnectNotify { call_id, result: result.into(), error,
            cause_code: cause.into(), call_statistics }
    }
}

prop_compose! {
    fn wen()(peer_call_id in any::<u16>(), c in any::<[u32; 6]>()) -> WanErrorNotify {
        WanErrorNotify { peer_call_id, crc_errors: c[0], framing_errors: c[1],
            hardware_overruns: c[2], buffer_overruns: c[3], timeout_errors: c[4],
            alignment_errors: c[5] }
    }
}

/// Any of the 15 control messages, with any field values (unknown code points included).
pub(crate) fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        sccrq().prop_map(Message::from),
        sccrp().prop_map(Message::from),
        any::<u8>().prop_map(|r| Message::from(StopControlConnectionRequest { reason: r.into() })),
        (any::<u8>(), error_code()).prop_map(|(r, error)| Message::from(
            StopControlConnectionReply {
                result: r.into(),
                error
            }
        )),
        any::<u32>().prop_map(|identifier| Message::from(EchoRequest { identifier })),
        (any::<u32>(), any::<u8>(), error_code()).prop_map(|(identifier, r, error)| {
            Message::from(EchoReply {
                identifier,
                result: r.into(),
                error,
            })
        }),
        ocrq().prop_map(Message::from),
        ocrp().prop_map(Message::from),
        icrq().prop_map(Message::from),
        icrp().prop_map(Message::from),
        iccn().prop_map(Message::from),
        any::<u16>().prop_map(|call_id| Message::from(CallClearRequest { call_id })),
        cdn().prop_map(Message::from),
        wen().prop_map(Message::from),
        any::<(u16, u32, u32)>().prop_map(|(peer_call_id, send_accm, receive_accm)| {
            Message::from(SetLinkInfo {
                peer_call_id,
                send_accm,
                receive_accm,
            })
        }),
    ]
}
