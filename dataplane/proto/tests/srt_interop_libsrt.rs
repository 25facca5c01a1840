//! Interop with libsrt: `srt-live-transmit` (libsrt 1.5) and `ffmpeg` publish, encrypted or
//! not, with an access-control stream id, to a tiny UDP loop written here around the sans-IO
//! listener and receiver (the loop stands in for the engine). Every byte must arrive, in
//! order; rejections must be understood by the caller.
//!
//! The tests need the publishers (`srt-tools` and `ffmpeg`, which `scripts/setup.sh
//! --test` installs); where one is missing the test fails and says how to install it: a test
//! that passes without checking anything would hide a lost interop check.

use bytes::Bytes;
use sluice_proto::srt::crypto::Passphrase;
use sluice_proto::srt::handshake::{
    Listener, ListenerConfig, ListenerEvent, RejectReason, peer_ip_bytes,
};
use sluice_proto::srt::packet::{Packet, SocketId};
use sluice_proto::srt::receiver::{CloseReason, MIN_TRANSMIT_BUF, Receiver, ReceiverConfig};
use sluice_proto::srt::streamid::Mode;
use std::io::Write;
use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PASSPHRASE: &str = "interop-passphrase-1";
const CHUNK: usize = 1316;
const CHUNKS: usize = 200;

fn have_binary(name: &str) -> bool {
    Command::new(name)
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// How the loop answers the conclusion.
#[derive(Clone, Copy)]
enum Decision {
    /// Accept with this listener passphrase.
    Accept(Option<&'static str>),
    /// Reject with this reason after the stream id check.
    Reject(RejectReason),
}

/// Publishes with `sender_pass` / `pbkeylen`; returns the rejection sent, if any, and
/// srt-live-transmit's stderr. With `drop_nth`, two of every n original data packets are
/// discarded before the receiver sees them, so libsrt must act on our NAKs.
fn run(
    sender_pass: Option<&str>,
    pbkeylen: u32,
    decision: Decision,
    drop_nth: Option<u64>,
) -> Option<(RejectReason, String)> {
    run_with(
        Publisher::LiveTransmit,
        sender_pass,
        pbkeylen,
        decision,
        drop_nth,
    )
}

/// Which libsrt application publishes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Publisher {
    /// `srt-live-transmit` relaying a known byte pattern from its stdin.
    LiveTransmit,
    /// `ffmpeg` sending a 3-second MPEG-TS test pattern, then closing (SHUTDOWN).
    Ffmpeg,
}

fn run_with(
    publisher: Publisher,
    sender_pass: Option<&str>,
    pbkeylen: u32,
    decision: Decision,
    drop_nth: Option<u64>,
) -> Option<(RejectReason, String)> {
    let ffmpeg = publisher == Publisher::Ffmpeg;
    let mut originals = 0u64;
    let passphrase = match decision {
        Decision::Accept(p) => p,
        Decision::Reject(_) => None,
    };
    let tool = if ffmpeg {
        "ffmpeg"
    } else {
        "srt-live-transmit"
    };
    assert!(
        have_binary(tool),
        "{tool} is not installed: run scripts/setup.sh --test (CI installs it)"
    );
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(5)))
        .unwrap();
    let port = sock.local_addr().unwrap().port();
    // ffmpeg takes the latency in microseconds, srt-live-transmit in milliseconds.
    let latency = if ffmpeg { "1000000" } else { "1000" };
    let mut url = format!("srt://127.0.0.1:{port}?streamid=#!::r=key1,m=publish&latency={latency}");
    if let Some(p) = sender_pass {
        url.push_str(&format!("&passphrase={p}&pbkeylen={pbkeylen}"));
    }
    let mut child = if ffmpeg {
        Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi"])
            .args(["-i", "testsrc=size=160x120:rate=25", "-t", "3"])
            .args(["-c:v", "mpeg2video", "-f", "mpegts", &url])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    } else {
        Command::new("srt-live-transmit")
            .args(["-a:no", "-chunk:1316", "file://con", &url])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut input = Vec::with_capacity(CHUNK * CHUNKS);
    for i in 0..CHUNK * CHUNKS {
        input.push((i * 7 % 251) as u8);
    }
    let listener = Listener::new(ListenerConfig {
        cookie_secret: b"interop".to_vec(),
        listener_socket: SocketId(0x0100),
        ..ListenerConfig::default()
    });
    let mut rx: Option<Receiver> = None;
    let mut peer = None;
    let mut got = Vec::new();
    let mut written = false;
    let mut writer = None;
    let mut buf = [0u8; 2048];
    let mut out = [0u8; MIN_TRANSMIT_BUF];
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut finished = false;
    while !finished && Instant::now() < deadline {
        if rx.is_some() && !written && !ffmpeg {
            // Feed the publisher once connected, from a thread so this loop keeps reading
            // the socket (a burst could overflow the kernel's receive buffer).
            let mut stdin = child.stdin.take().unwrap();
            let data = input.clone();
            writer = Some(std::thread::spawn(move || {
                for c in data.chunks(CHUNK) {
                    stdin.write_all(c).unwrap();
                    stdin.flush().unwrap();
                    std::thread::sleep(Duration::from_millis(2));
                }
                // Keep stdin open: EOF would make srt-live-transmit close the connection.
                stdin
            }));
            written = true;
        }
        let now = Instant::now();
        if let Ok((n, from)) = sock.recv_from(&mut buf) {
            if std::env::var_os("SLUICE_SRT_CAPTURE").is_some() {
                let hex: String = buf[..n.min(400).min(if n > 1000 { 48 } else { n })]
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                eprintln!("datagram {n}: {hex}");
            }
            let pkt = Packet::parse(Bytes::copy_from_slice(&buf[..n])).unwrap();
            if pkt.dest() == SocketId(0) {
                let Packet::Control(c) = pkt else { continue };
                let addr = from.to_string();
                let ev = listener
                    .handle(&c, addr.as_bytes(), peer_ip_bytes(from.ip()), 0, &mut buf)
                    .unwrap();
                match ev {
                    ListenerEvent::InductionReply(n) => {
                        sock.send_to(&buf[..n], from).unwrap();
                    }
                    ListenerEvent::Conclusion(req) => {
                        let id = req.stream_id().unwrap();
                        assert_eq!(id.key, "key1");
                        assert_eq!(id.mode, Some(Mode::Publish));
                        let reason = match decision {
                            Decision::Reject(r) => Some(r),
                            Decision::Accept(_) => None,
                        };
                        let accepted = match reason {
                            Some(r) => Err(r),
                            None => listener
                                .accept(
                                    &req,
                                    SocketId(0x0200),
                                    passphrase.map(str::as_bytes),
                                    0,
                                    &mut buf,
                                )
                                .map_err(|e| e.reject_reason()),
                        };
                        let acc = match accepted {
                            Ok(acc) => acc,
                            Err(r) => {
                                let n = listener.reject(&req, r, &mut buf).unwrap();
                                sock.send_to(&buf[..n], from).unwrap();
                                wait_exit(&mut child);
                                let mut err = String::new();
                                std::io::Read::read_to_string(
                                    child.stderr.as_mut().unwrap(),
                                    &mut err,
                                )
                                .unwrap();
                                return Some((r, err));
                            }
                        };
                        assert_eq!(acc.keys.is_some(), passphrase.is_some());
                        assert_eq!(acc.latency, Duration::from_millis(1000));
                        sock.send_to(&buf[..acc.len], from).unwrap();
                        peer = Some(from);
                        if rx.is_none() {
                            let cfg = ReceiverConfig::from_accepted(
                                &acc,
                                passphrase.map(|p| Passphrase::new(p).unwrap()),
                            );
                            assert!(cfg.too_late_drop);
                            rx = Some(Receiver::new(cfg, now));
                        }
                    }
                    ListenerEvent::Rejected { error, .. } => panic!("rejected: {error}"),
                }
            } else if let Some(r) = rx.as_mut() {
                assert_eq!(pkt.dest(), SocketId(0x0200));
                if let (Packet::Data(d), Some(n)) = (&pkt, drop_nth)
                    && !d.retransmitted
                {
                    originals += 1;
                    // Two in a row, so the NAK carries ranges as well.
                    if originals % n < 2 {
                        continue;
                    }
                }
                r.handle_packet(now, pkt);
            }
        }
        if let Some(r) = rx.as_mut() {
            while let Some(n) = r.poll_transmit(now, &mut out) {
                if let Some(to) = peer {
                    sock.send_to(&out[..n], to).unwrap();
                }
            }
            while let Some(p) = r.poll_output(now) {
                if ffmpeg {
                    assert_eq!(p.len() % 188, 0, "whole TS packets");
                    assert!(p.chunks(188).all(|ts| ts[0] == 0x47), "TS sync bytes");
                }
                got.extend_from_slice(&p);
            }
            if ffmpeg {
                // ffmpeg ends the stream with SHUTDOWN; by then the tail has been drained.
                finished = r.closed() == Some(CloseReason::PeerShutdown);
            } else {
                assert!(r.closed().is_none(), "closed: {:?}", r.closed());
                finished = got.len() >= input.len();
            }
        }
    }
    if let Some(r) = &rx {
        eprintln!("stats {:?} rtt {:?}", r.stats(), r.rtt());
        if drop_nth.is_some() {
            assert!(r.stats().naks_sent > 0 && r.stats().retransmitted > 0);
            assert_eq!(r.stats().dropped_too_late, 0);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    drop(writer.map(|w| w.join()));
    if ffmpeg {
        assert!(finished, "ffmpeg's SHUTDOWN seen");
        // 3 s of 25 fps video in MPEG-TS is well over 100 TS packets.
        assert!(got.len() > 188 * 100, "got {} bytes", got.len());
        assert_eq!(rx.map(|r| r.stats().dropped_too_late), Some(0));
        return None;
    }
    assert_eq!(got.len(), input.len(), "all bytes received");
    assert!(got == input, "bytes match");
    None
}

/// Waits for the publisher to give up. libsrt's connect timeout is 3 s: a caller that did
/// not understand the rejection would keep retrying until then, so it must exit sooner.
fn wait_exit(child: &mut std::process::Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_millis(2500);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(Instant::now() < deadline, "publisher did not give up");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn libsrt_publisher_encrypted_aes128() {
    assert_eq!(
        run(
            Some(PASSPHRASE),
            16,
            Decision::Accept(Some(PASSPHRASE)),
            None
        ),
        None
    );
}

#[test]
fn libsrt_publisher_encrypted_aes256() {
    assert_eq!(
        run(
            Some(PASSPHRASE),
            32,
            Decision::Accept(Some(PASSPHRASE)),
            None
        ),
        None
    );
}

#[test]
fn libsrt_publisher_plain() {
    assert_eq!(run(None, 0, Decision::Accept(None), None), None);
}

#[test]
fn libsrt_publisher_wrong_passphrase_gets_badsecret() {
    let (reason, err) = run(
        Some("not-the-passphrase"),
        16,
        Decision::Accept(Some(PASSPHRASE)),
        None,
    )
    .expect("a wrong passphrase must be rejected");
    assert_eq!(reason, RejectReason::BADSECRET);
    assert_understood(&err, "Incorrect passphrase", "BADSECRET");
}

#[test]
fn libsrt_publisher_sees_forbidden() {
    let (reason, err) = run(None, 0, Decision::Reject(RejectReason::FORBIDDEN), None)
        .expect("the caller must be rejected");
    assert_eq!(reason, RejectReason::FORBIDDEN);
    assert_understood(&err, "Application-defined rejection reason", "1403");
}

#[test]
fn libsrt_publisher_recovers_losses_through_our_naks() {
    assert_eq!(
        run(
            Some(PASSPHRASE),
            16,
            Decision::Accept(Some(PASSPHRASE)),
            Some(13)
        ),
        None
    );
}

/// libsrt logs the rejection on one of two paths depending on timing: the asynchronous one
/// names the reason's description, the synchronous one its code.
fn assert_understood(err: &str, description: &str, code: &str) {
    assert!(err.to_lowercase().contains("reject"), "{err}");
    if err.contains("REJECT reported from HS processing") {
        assert!(err.contains(description), "{err}");
    } else {
        eprintln!("libsrt took the other logging path; expecting {code}: {err}");
    }
}

#[test]
fn ffmpeg_publisher_mpegts_encrypted_until_shutdown() {
    assert_eq!(
        run_with(
            Publisher::Ffmpeg,
            Some(PASSPHRASE),
            16,
            Decision::Accept(Some(PASSPHRASE)),
            None
        ),
        None
    );
}
