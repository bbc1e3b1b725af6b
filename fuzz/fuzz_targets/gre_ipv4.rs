#![no_main]
//! Parses arbitrary bytes as a raw-socket IPv4 datagram carrying enhanced GRE, and as bare GRE;
//! whatever parses must emit back to bytes that parse to the same header.
use libfuzzer_sys::fuzz_target;
use pptp_nas::pptp::gre::GreRepr;
use pptp_nas::pptp::ipv4::{parse_raw_gre, Ipv4Header};

fuzz_target!(|data: &[u8]| {
    if let Ok(raw) = parse_raw_gre(data) {
        assert_eq!(raw.payload.len(), usize::from(raw.gre.payload_len));
        let mut buf = Vec::new();
        raw.ip.emit(&mut buf);
        raw.gre.emit_with_payload(raw.payload, &mut buf);
        // The IP payload may extend past the GRE payload (padding), so only check GRE here.
        let again = parse_raw_gre(&buf).map(|r| (r.gre, r.payload.to_vec()));
        if usize::from(raw.ip.payload_len) == raw.gre.buffer_len() {
            assert_eq!(again, Ok((raw.gre, raw.payload.to_vec())));
        }
    }
    let _ = Ipv4Header::parse_any(data);
    if let Ok((repr, payload)) = GreRepr::parse_bytes(data) {
        let mut buf = Vec::new();
        repr.emit_with_payload(payload, &mut buf);
        assert_eq!(GreRepr::parse_bytes(&buf), Ok((repr, payload)));
    }
});
