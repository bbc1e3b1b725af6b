#![no_main]
//! Parses arbitrary bytes as a PPP frame, then its payload (and the raw input) as LCP, IPCP,
//! CCP, PAP and CHAP packets, walks every option, and checks that whatever parses re-emits
//! to something that parses back to the same value (options byte-exact).
use libfuzzer_sys::fuzz_target;
use pptp_nas::ppp::packet::{
    CcpCode, CcpOption, ChapRepr, Compression, ControlRepr, EmitOption, FrameRepr, IpcpOption,
    LcpCode, LcpOption, LcpRepr, MsChapV1Response, MsChapV2Response, NcpCode, Options, PapRepr,
    ChapMessage, Protocol,
};

fn options(opts: Options<'_>) {
    for raw in opts.iter() {
        let raw_bytes = raw.to_vec().unwrap();
        if let Ok(o) = LcpOption::parse(raw) {
            assert_eq!(o.to_vec().unwrap(), raw_bytes);
        }
        if let Ok(o) = IpcpOption::parse(raw) {
            assert_eq!(o.to_vec().unwrap(), raw_bytes);
        }
        if let Ok(o) = CcpOption::parse(raw) {
            assert_eq!(o.to_vec().unwrap(), raw_bytes);
        }
    }
    // The validated list re-emits byte-exact.
    let total: usize = opts.iter().map(|o| o.buffer_len()).sum();
    assert_eq!(total, opts.as_bytes().len());
}

fn control(buf: &[u8]) {
    if let Ok(lcp) = LcpRepr::parse(buf) {
        let bytes = lcp.to_vec().unwrap();
        assert_eq!(LcpRepr::parse(&bytes).unwrap(), lcp);
    }
    if let Ok(c) = ControlRepr::<LcpCode>::parse(buf) {
        assert_eq!(ControlRepr::<LcpCode>::parse(&c.to_vec().unwrap()).unwrap(), c);
        if let Ok(o) = c.options() {
            options(o);
        }
    }
    if let Ok(c) = ControlRepr::<NcpCode>::parse(buf) {
        if let Ok(o) = c.options() {
            options(o);
        }
    }
    if let Ok(c) = ControlRepr::<CcpCode>::parse(buf) {
        assert_eq!(ControlRepr::<CcpCode>::parse(&c.to_vec().unwrap()).unwrap(), c);
    }
    if let Ok(p) = PapRepr::parse(buf) {
        assert_eq!(PapRepr::parse(&p.to_vec().unwrap()).unwrap(), p);
    }
    if let Ok(c) = ChapRepr::parse(buf) {
        assert_eq!(ChapRepr::parse(&c.to_vec().unwrap()).unwrap(), c);
        if let ChapMessage::Response { value, .. } = c.message {
            if let Ok(v) = MsChapV2Response::parse(value) {
                assert_eq!(&v.to_bytes()[..], value);
            }
            if let Ok(v) = MsChapV1Response::parse(value) {
                assert_eq!(&v.to_bytes()[..], value);
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = FrameRepr::parse(data) {
        for c in [Compression::NONE, Compression::ALL] {
            let bytes = frame.to_vec(c);
            assert_eq!(FrameRepr::parse(&bytes).unwrap(), frame);
        }
        match frame.protocol {
            Protocol::Lcp
            | Protocol::Ipcp
            | Protocol::Ccp
            | Protocol::Pap
            | Protocol::Chap => control(frame.payload),
            _ => {}
        }
    }
    control(data);
});
