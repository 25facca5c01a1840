//! WHEP viewers for the load tool: each is a str0m peer (ICE, DTLS, SRTP receive) that POSTs
//! its offer to the gateway's WHEP endpoint, then counts the frames str0m depacketizes and
//! times the latency markers inside the H.264 frames.
//!
//! One UDP socket per viewer on 127.0.0.1; the task follows str0m's run loop (mutate, drain
//! `poll_output` to its timeout, wait).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use str0m::change::SdpAnswer;
use str0m::media::{Direction, MediaKind};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::{Instant, sleep_until, timeout};

/// Largest HTTP answer read (an SDP answer is a few kB).
const MAX_ANSWER: usize = 64 * 1024;
/// Longest wait for the HTTP answer and for ICE + DTLS to connect.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);

/// What one viewer saw.
#[derive(Debug, Default, Clone, Copy)]
pub struct ViewerStats {
    /// ICE and DTLS completed.
    pub connected: bool,
    /// Video frames depacketized.
    pub video_frames: u64,
    /// Audio frames depacketized.
    pub audio_frames: u64,
    /// Media bytes (depacketized).
    pub bytes: u64,
}

/// `POST url` with an SDP body over HTTP/1.1 on loopback; returns the answer body.
async fn post_offer(url: &str, sdp: &str) -> anyhow::Result<String> {
    let rest = url
        .strip_prefix("http://")
        .context("WHEP URL must be http://")?;
    let (hostport, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut s = TcpStream::connect(hostport).await.context("connect")?;
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {hostport}\r\nContent-Type: application/sdp\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{sdp}",
        sdp.len()
    );
    s.write_all(req.as_bytes()).await?;
    let mut buf = Vec::new();
    // The gateway closes after the answer (`Connection: close`); read to the end, capped.
    let mut chunk = [0u8; 8192];
    loop {
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        if buf.len() + n > MAX_ANSWER {
            bail!("answer over {MAX_ANSWER} bytes");
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text.split_once("\r\n\r\n").context("no HTTP header end")?;
    let status = head.split(' ').nth(1).unwrap_or("?");
    if status != "201" {
        bail!("WHEP answered {status}: {}", body.trim());
    }
    Ok(body.to_string())
}

/// One viewer: offer (video and audio, receive only), answer, then receive until `stop`
/// says so. `on_frame` gets every video frame (Annex-B) at its arrival; `report` gets the
/// counters after every batch of events.
pub async fn run_viewer(
    url: &str,
    stop: impl Fn() -> bool,
    mut on_frame: impl FnMut(&[u8]),
    stats: &mut ViewerStats,
    report: &mut dyn FnMut(&ViewerStats),
) -> anyhow::Result<()> {
    let sock = UdpSocket::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let local = sock.local_addr()?;
    let mut rtc = Rtc::builder()
        .set_stats_interval(None)
        .build(Instant::now().into_std());
    rtc.add_local_candidate(Candidate::host(local, "udp")?);
    let mut change = rtc.sdp_api();
    change.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    change.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    let (offer, pending) = change.apply().context("no offer")?;
    let answer = timeout(SETUP_TIMEOUT, post_offer(url, &offer.to_sdp_string()))
        .await
        .context("WHEP POST timed out")??;
    let answer = SdpAnswer::from_sdp_string(&answer).context("bad SDP answer")?;
    rtc.sdp_api().accept_answer(pending, answer)?;
    let started = Instant::now();
    let mut buf = vec![0u8; 2048];
    loop {
        // Drain to the next timeout (str0m's single-mutation rule).
        let deadline = loop {
            match rtc.poll_output()? {
                Output::Timeout(t) => break Instant::from_std(t),
                Output::Transmit(t) => {
                    let _ = sock.send_to(&t.contents, t.destination).await;
                }
                Output::Event(e) => match e {
                    Event::Connected => stats.connected = true,
                    Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                        bail!("ICE disconnected");
                    }
                    Event::MediaData(m) => {
                        stats.bytes += m.data.len() as u64;
                        if m.params.spec().codec.is_video() {
                            stats.video_frames += 1;
                            on_frame(&m.data);
                        } else {
                            stats.audio_frames += 1;
                        }
                    }
                    _ => {}
                },
            }
        };
        report(stats);
        if stop() {
            return Ok(());
        }
        if !stats.connected && started.elapsed() > SETUP_TIMEOUT {
            bail!("ICE/DTLS did not connect in {SETUP_TIMEOUT:?}");
        }
        // Wake at least every 200 ms to notice `stop`.
        let wake = deadline.min(Instant::now() + Duration::from_millis(200));
        let input = tokio::select! {
            _ = sleep_until(wake) => Input::Timeout(Instant::now().into_std()),
            r = sock.recv_from(&mut buf) => {
                let (n, source) = r?;
                let Ok(contents) = buf[..n].try_into() else { continue };
                Input::Receive(
                    Instant::now().into_std(),
                    Receive { proto: Protocol::Udp, source, destination: local, contents },
                )
            }
        };
        rtc.handle_input(input)?;
    }
}
