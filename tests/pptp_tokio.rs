//! The tokio drivers over real TCP on loopback: PAC connects with backoff to a PNS accept
//! loop, a call goes up, then the PNS shuts down gracefully (calls cleared, Stop-CC, close).

use pptp_nas::io::control::serve;
use pptp_nas::io::control::{connect, Backoff, Command};
use pptp_nas::pptp::control::{CallEnd, CloseReason, Config, Event, IncomingCall, Role};
use pptp_nas::pptp::message::{BearerType, FramingType, StopReason, TextField};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};

async fn next_event(h: &mut pptp_nas::io::control::Handle) -> Event {
    tokio::time::timeout(Duration::from_secs(10), h.events.recv())
        .await
        .expect("event within 10 s")
        .expect("connection task alive")
}

#[tokio::test]
async fn pac_connects_with_backoff_call_up_then_graceful_pns_shutdown() {
    // Reserve a port, close it, and start the PNS only after the PAC's first attempts fail.
    let probe = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = probe.local_addr().unwrap();
    drop(probe);

    let (stop_tx, stop_rx) = watch::channel(false);
    let pns = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let listener = TcpListener::bind(addr).await.unwrap();
        serve(
            listener,
            Config::new(Role::Pns),
            stop_rx,
            |_peer, mut h| async move {
                // A PNS that accepts every incoming call and records what it saw.
                while let Some(ev) = h.events.recv().await {
                    if let Event::IncomingCallRequested { call_id, .. } = ev {
                        let _ = h.commands.send(Command::Accept { call_id }).await;
                    }
                }
            },
        )
        .await
        .unwrap();
    });

    let mut backoff = Backoff::new(Duration::from_millis(20), Duration::from_millis(80), 7);
    let (mut pac, pac_task) = connect(addr, Config::new(Role::Pac), &mut backoff, Some(100))
        .await
        .unwrap();
    assert!(matches!(next_event(&mut pac).await, Event::Established(_)));

    let (tx, rx) = oneshot::channel();
    let ring = IncomingCall {
        bearer: BearerType::Digital,
        physical_channel_id: 1,
        dialed: TextField::new(b"100").unwrap(),
        dialing: TextField::new(b"200").unwrap(),
        subaddress: TextField::empty(),
    };
    pac.commands
        .send(Command::IncomingCall(ring, tx))
        .await
        .unwrap();
    let call_id = rx.await.unwrap().unwrap();
    assert_eq!(next_event(&mut pac).await, Event::AnswerCall { call_id });
    pac.commands
        .send(Command::AnswerConnected {
            call_id,
            speed: 64_000,
            framing: FramingType::Sync,
        })
        .await
        .unwrap();
    match next_event(&mut pac).await {
        Event::CallUp(info) => assert_eq!(info.call_id, call_id),
        other => panic!("{other:?}"),
    }

    // Graceful PNS shutdown: the PNS clears the call (CCRQ), then Stop-CC.
    stop_tx.send(true).unwrap();
    assert_eq!(
        next_event(&mut pac).await,
        Event::CallDown {
            call_id,
            end: CallEnd::ClearedByPeer
        }
    );
    assert_eq!(
        next_event(&mut pac).await,
        Event::Closed(CloseReason::PeerStopped(StopReason::LocalShutdown))
    );
    let reason = pac_task.await.unwrap().unwrap();
    assert_eq!(reason, CloseReason::PeerStopped(StopReason::LocalShutdown));
    tokio::time::timeout(Duration::from_secs(10), pns)
        .await
        .expect("PNS shut down")
        .unwrap();
}

#[tokio::test]
async fn dropping_the_command_sender_stops_gracefully() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_stop_tx, stop_rx) = watch::channel(false);
    let (seen_tx, seen_rx) = oneshot::channel();
    let seen_tx = std::sync::Mutex::new(Some(seen_tx));
    tokio::spawn(serve(
        listener,
        Config::new(Role::Pns),
        stop_rx,
        move |_, mut h| {
            let seen = seen_tx.lock().unwrap().take();
            async move {
                let mut last = None;
                while let Some(ev) = h.events.recv().await {
                    last = Some(ev);
                }
                if let Some(s) = seen {
                    let _ = s.send(last);
                }
            }
        },
    ));
    let mut backoff = Backoff::new(Duration::from_millis(10), Duration::from_millis(10), 1);
    let (mut pac, task) = connect(addr, Config::new(Role::Pac), &mut backoff, Some(5))
        .await
        .unwrap();
    assert!(matches!(next_event(&mut pac).await, Event::Established(_)));
    drop(pac.commands);
    assert_eq!(task.await.unwrap().unwrap(), CloseReason::Stopped);
    let last = tokio::time::timeout(Duration::from_secs(10), seen_rx)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        last,
        Some(Event::Closed(CloseReason::PeerStopped(
            StopReason::LocalShutdown
        )))
    );
}
