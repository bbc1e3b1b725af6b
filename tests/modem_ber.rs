//! Line simulation with bit errors: at BER 1e-4 the HDLC decoder's CRC counter rises while
//! valid frames still arrive intact (real ptys, the soft-modem pair, our line driver).

use std::time::Duration;

use pptp_nas::hdlc::{Decoder, DecoderConfig, Encoder, EncoderConfig};
use pptp_nas::io::line::{open_serial, LineEvent, ModemLine};
use pptp_nas::io::softmodem::{Softmodem, SoftmodemOptions};
use pptp_nas::modem::control::{AnswerMode, ControlConfig, Event};
use pptp_nas::modem::sim::SimConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

async fn expect(dev: &mut tokio_serial::SerialStream, want: &str) {
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while !String::from_utf8_lossy(&got).contains(want) {
        let n = timeout(Duration::from_secs(3), dev.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        got.extend_from_slice(&buf[..n]);
    }
}

#[tokio::test]
async fn ber_raises_crc_errors_but_good_frames_arrive() {
    let dir = std::env::temp_dir().join(format!("pptp-nas-ber-{}", std::process::id()));
    let sm = Softmodem::start(&SoftmodemOptions {
        dir,
        lines: 1,
        sim: SimConfig {
            speed: 230_400,
            ber: 1e-4,
            ..SimConfig::default()
        },
    })
    .unwrap();
    let line = &sm.lines()[0];
    let mut client = open_serial(&line.client, 115_200, false).unwrap();
    let mut nas = ModemLine::new(
        open_serial(&line.nas, 115_200, false).unwrap(),
        ControlConfig {
            init: vec!["ATE0V1Q0X4S0=0".into()],
            caller_id: None,
            answer: AnswerMode::OnRing(1),
            ..ControlConfig::default()
        },
    );
    let mut events = Vec::new();
    while !matches!(events.last(), Some(Event::Connected { .. })) {
        if events.last() == Some(&Event::Ready) {
            client.write_all(b"ATE0D1\r").await.unwrap();
        }
        match timeout(Duration::from_secs(5), nas.next())
            .await
            .unwrap()
            .unwrap()
        {
            LineEvent::Modem(e) => events.push(e),
            LineEvent::Data(d) => panic!("data before CONNECT: {d:?}"),
        }
    }
    expect(&mut client, "CONNECT 230400").await;

    // 400 LCP-Echo-like frames of 100 octets, numbered, every octet value present.
    let frames: Vec<Vec<u8>> = (0..400u16)
        .map(|i| {
            let mut f = vec![0xff, 0x03, 0xc0, 0x21, 0x09, 0x01, 0x00, 0x60];
            f.extend_from_slice(&i.to_be_bytes());
            f.extend((0..90u8).map(|k| k.wrapping_mul(37).wrapping_add(i as u8)));
            f
        })
        .collect();
    let mut wire = Vec::new();
    let mut enc = Encoder::new(EncoderConfig::default());
    for f in &frames {
        enc.encode(f, &mut wire).unwrap();
    }
    let total = wire.len();
    let sender = tokio::spawn(async move {
        client.write_all(&wire).await.unwrap();
        client
    });

    let mut dec = Decoder::new(DecoderConfig::default());
    let mut good = 0usize;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
    let mut received = 0usize;
    // 400 frames, ~115 octets each on the wire, at 28800 octets/s: about 1.6 s.
    while received < total {
        let chunk = match tokio::time::timeout_at(deadline, nas.next()).await {
            Ok(Ok(LineEvent::Data(d))) => d,
            Ok(other) => panic!("{other:?}"),
            Err(_) => panic!("only {received} of {total} octets arrived"),
        };
        received += chunk.len();
        let mut input = &chunk[..];
        while let Some(r) = dec.decode(&mut input) {
            if let Ok(frame) = r {
                let n = u16::from_be_bytes([frame[8], frame[9]]) as usize;
                assert_eq!(
                    frame,
                    &frames[n][..],
                    "a frame that passed the FCS is intact"
                );
                good += 1;
            }
        }
    }
    let _client = sender.await.unwrap();
    let c = *dec.counters();
    eprintln!("BER 1e-4: {good} good frames, counters {c:?}");
    assert!(
        c.crc_errors > 0,
        "bit errors must show as CRC errors: {c:?}"
    );
    assert!(good > frames.len() / 2, "most frames still arrive: {good}");
}
