#![no_main]
//! Parses arbitrary bytes as one PPTP control message, and feeds the same bytes through the
//! stream splitter whole and in chunks (chunk size taken from the last byte); both must agree.
use libfuzzer_sys::fuzz_target;
use pptp_nas::pptp::message::{ControlItem, ControlStream, Message};

fn split(chunks: &mut dyn Iterator<Item = &[u8]>) -> (Vec<ControlItem>, Option<String>) {
    let mut s = ControlStream::new();
    let mut items = Vec::new();
    for chunk in chunks {
        s.handle_bytes(chunk);
        loop {
            match s.poll_item() {
                Ok(Some(item)) => items.push(item),
                Ok(None) => break,
                Err(e) => return (items, Some(e.to_string())),
            }
        }
    }
    (items, None)
}

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Message::parse(data) {
        // Whatever parses must emit to something that parses back to the same message.
        let again = m.to_vec();
        assert_eq!(again.len(), m.buffer_len());
        assert_eq!(Message::parse(&again), Ok(m));
        assert_eq!(Message::parse_strict(&again), Ok(m));
    }
    let _ = Message::parse_strict(data);

    let Some(&last) = data.last() else {
        return;
    };
    let step = usize::from(last % 32) + 1;
    let whole = split(&mut std::iter::once(data));
    let chunked = split(&mut data.chunks(step));
    assert_eq!(whole, chunked, "chunking changed the result (step {step})");
});
