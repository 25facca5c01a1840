//! `sluice-perf load`: RTMP publishers, RTMP players and RTP receivers in one process, with
//! latency markers, a `/proc` sampler of the server under test, and a JSON result.
//!
//! One thread runs a tokio current-thread runtime (epoll): every connection is a task, so
//! thousands of streams cost the tool a few percent of a core and it does not starve the
//! server it measures on a small machine. The tool reports its own CPU time next to the
//! server's.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use bytes::{Bytes, BytesMut};
use clap::Args;
use hdrhistogram::Histogram;
use serde::Serialize;
use sluice_proto::flv::{FileTag, FileTagReader, TAG_AUDIO, TAG_SCRIPT, TAG_VIDEO};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::{Instant, sleep, sleep_until, timeout};

use crate::procstat::{self, TreeSample};
use crate::rtmp_client::{ClientConfig, ClientEvent, Role, RtmpClient, State};
use crate::rtp_rx::RtpCounter;
use crate::srt_caller::{CallerConfig, CallerState, SrtCaller};
use crate::{sei, whep};

/// Receive buffer asked for on each RTP receiver socket (see where it is set).
const RTP_RECV_BUFFER: usize = 4 << 20;

/// Output is flushed to the socket once this much is pending, in flat-out mode.
const FLUSH_BYTES: usize = 64 * 1024;
/// Longest wait for `publish`/`play` to be accepted.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Options of `sluice-perf load`.
#[derive(Debug, Clone, Args, Serialize)]
pub struct LoadArgs {
    /// RTMP application URL; stream names are appended: `rtmp://127.0.0.1:1935/live`.
    #[arg(long, default_value = "rtmp://127.0.0.1:1935/live")]
    pub rtmp: String,
    /// File replayed by every publisher: FLV (H.264 + AAC) for RTMP, MPEG-TS with `--srt`.
    #[arg(long)]
    pub input: PathBuf,
    /// Publish over SRT instead of RTMP: the listener's `HOST:PORT`. Each publisher is an SRT
    /// caller (`crate::srt_caller`) sending `--input` (MPEG-TS) in 1316-byte payloads, paced
    /// by the file's PCR; its stream id is `--srt-streamid-prefix` + the stream name.
    #[arg(long)]
    pub srt: Option<SocketAddr>,
    /// With `--srt`: stream `i` goes to port `PORT + i * step` (one listener per stream, as
    /// with `srt-live-transmit`); 0 sends every stream to `PORT`.
    #[arg(long, default_value_t = 0)]
    pub srt_port_step: u16,
    /// With `--srt`: latency proposed in the handshake, ms.
    #[arg(long, default_value_t = 120)]
    pub srt_latency_ms: u16,
    /// With `--srt`: text put before each stream name to form the stream id.
    #[arg(long, default_value = "")]
    pub srt_streamid_prefix: String,
    /// With `--srt`: data packets each caller keeps for retransmission.
    #[arg(long, default_value_t = 512)]
    pub srt_send_buffer: usize,
    /// Number of RTMP publishers.
    #[arg(long, short = 'n', default_value_t = 1)]
    pub publishers: usize,
    /// File with one stream name (key) per line; default names are `<prefix><i>`.
    #[arg(long)]
    pub keys_file: Option<PathBuf>,
    /// Prefix of generated stream names.
    #[arg(long, default_value = "perf")]
    pub prefix: String,
    /// RTMP players per stream (for servers that serve RTMP playback, like nginx-rtmp).
    #[arg(long, default_value_t = 0)]
    pub players: usize,
    /// RTP receivers per stream, listening on `rtp_base_port + 4 * (stream * M + j)` (video)
    /// and `+ 2` (audio), on 127.0.0.1.
    #[arg(long, default_value_t = 0)]
    pub rtp_receivers: usize,
    /// WHEP viewers per stream (str0m peers: ICE, DTLS, SRTP), against `--whep-url`.
    #[arg(long, default_value_t = 0)]
    pub whep_viewers: usize,
    /// WHEP endpoint without the channel: viewer of stream `i` POSTs its offer to
    /// `<url>/<whep-channel-prefix><i>`, e.g. `http://127.0.0.1:8081/whep/APPID`.
    #[arg(long, default_value = "")]
    pub whep_url: String,
    /// Channel name prefix of stream `i` for `--whep-url`.
    #[arg(long, default_value = "c")]
    pub whep_channel_prefix: String,
    /// Seconds between a publisher starting and its WHEP viewers offering.
    #[arg(long, default_value_t = 2.0)]
    pub whep_delay_s: f64,
    /// Seconds between one WHEP viewer of a stream and the next (a viewer ramp: viewer `j`
    /// offers `whep_delay_s + j * whep_stagger_s` after its publisher started). 0: all at once.
    #[arg(long, default_value_t = 0.0)]
    pub whep_stagger_s: f64,
    /// First RTP receiver port.
    #[arg(long, default_value_t = 40000)]
    pub rtp_base_port: u16,
    /// New connections per second while ramping up.
    #[arg(long, default_value_t = 50.0)]
    pub ramp: f64,
    /// Run length in seconds, ramp included.
    #[arg(long, default_value_t = 10.0)]
    pub duration_s: f64,
    /// Send as fast as the server reads (parser throughput) instead of in real time.
    #[arg(long)]
    pub flat: bool,
    /// Reconnect loop: publish this many seconds, drop the connection, connect again
    /// (0 = publish for the whole run).
    #[arg(long, default_value_t = 0.0)]
    pub reconnect_s: f64,
    /// Window Acknowledgement Size announced by publishers, so the server acknowledges
    /// what it received (`bytes_acked` in the result).
    #[arg(long, default_value_t = crate::rtmp_client::DEFAULT_ACK_WINDOW)]
    pub ack_window: u32,
    /// Process id of the server under test (repeat for several); its descendants are included.
    #[arg(long = "gateway-pid")]
    pub gateway_pids: Vec<u32>,
    /// Sampling period of the server's CPU and memory, ms.
    #[arg(long, default_value_t = 500)]
    pub sample_ms: u64,
    /// Also read PSS (`smaps_rollup`) at every sample.
    #[arg(long)]
    pub pss: bool,
    /// JSON result path; the text summary and plots are written next to it.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Free-form label recorded in the result (server name, run number).
    #[arg(long, default_value = "")]
    pub label: String,
}

/// The replayed file, parsed once and shared by every publisher.
struct Media {
    tags: Vec<FileTag>,
    /// Tags sent only once per connection (metadata and sequence headers).
    is_config: Vec<bool>,
    /// Length of one pass, ms (the next pass is shifted by this).
    loop_ms: u32,
    /// NALU length size from the AVC sequence header.
    length_size: u8,
}

impl Media {
    /// No FLV (SRT runs).
    fn empty() -> Self {
        Self {
            tags: Vec::new(),
            is_config: Vec::new(),
            loop_ms: 1,
            length_size: 4,
        }
    }

    fn load(path: &PathBuf) -> anyhow::Result<Self> {
        let data = Bytes::from(
            std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
        );
        let tags: Vec<FileTag> = FileTagReader::new(data)?
            .collect::<Result<_, _>>()
            .context("parsing FLV")?;
        if tags.is_empty() {
            bail!("{} has no tags", path.display());
        }
        let mut length_size = 4;
        let is_config: Vec<bool> = tags
            .iter()
            .map(|t| match t.tag_type {
                TAG_SCRIPT => true,
                TAG_VIDEO => {
                    if let Some(ls) = sei::avc_length_size(&t.body) {
                        length_size = ls;
                    }
                    t.body.get(1) == Some(&0)
                }
                TAG_AUDIO => {
                    t.body.first().map(|b| b >> 4) == Some(10) && t.body.get(1) == Some(&0)
                }
                _ => true,
            })
            .collect();
        let first = tags.iter().map(|t| t.timestamp_ms).min().unwrap_or(0);
        let last = tags.iter().map(|t| t.timestamp_ms).max().unwrap_or(0);
        // One video frame interval past the last tag, so passes do not overlap.
        let loop_ms = last.saturating_sub(first) + 33;
        Ok(Self {
            tags,
            is_config,
            loop_ms,
            length_size,
        })
    }
}

/// Counters shared by all tasks (single thread, so `RefCell`).
#[derive(Debug, Default, Clone, Serialize)]
pub struct Totals {
    /// TCP connections attempted by publishers.
    pub publish_attempts: u64,
    /// Publications that reached `NetStream.Publish.Start`.
    pub publish_started: u64,
    /// Publishers live right now.
    pub publishers_live: u64,
    /// Players that reached `NetStream.Play.Start`.
    pub play_started: u64,
    /// Players live right now.
    pub players_live: u64,
    /// Bytes written by publishers (RTMP chunk stream, handshake excluded).
    pub bytes_sent: u64,
    /// Media payload bytes (FLV tag bodies) sent.
    pub media_bytes_sent: u64,
    /// Video frames sent.
    pub frames_sent: u64,
    /// Bytes the server acknowledged (RTMP Acknowledgement), summed over publishers.
    pub bytes_acked: u64,
    /// Media messages received by players.
    pub player_messages: u64,
    /// Media bytes received by players.
    pub player_bytes: u64,
    /// Video frames received by players.
    pub player_frames: u64,
    /// RTP packets received.
    pub rtp_packets: u64,
    /// RTP payload bytes received.
    pub rtp_bytes: u64,
    /// RTP video frames (marker bits) received.
    pub rtp_frames: u64,
    /// RTP frames with a marker sent before their receiver's first packet arrived (the GOP
    /// cache replayed to a new forwarder): counted here, kept out of the latency histogram.
    pub rtp_cached_frames: u64,
    /// RTP packets missing by sequence number.
    pub rtp_lost: u64,
    /// RTP loss bursts.
    pub rtp_gaps: u64,
    /// SRT data packets sent (first transmissions).
    pub srt_packets: u64,
    /// SRT data packets retransmitted on NAK.
    pub srt_retransmitted: u64,
    /// SRT NAKs received.
    pub srt_naks: u64,
    /// Sequence numbers NAKed after they left the send buffer.
    pub srt_nak_unavailable: u64,
    /// SRT ACKs received.
    pub srt_acks: u64,
    /// WHEP viewers that completed ICE and DTLS.
    pub whep_connected: u64,
    /// WHEP viewers live right now.
    pub whep_live: u64,
    /// Video frames WHEP viewers depacketized.
    pub whep_video_frames: u64,
    /// Audio frames WHEP viewers depacketized.
    pub whep_audio_frames: u64,
    /// Media bytes WHEP viewers received (depacketized).
    pub whep_bytes: u64,
    /// Errors by kind.
    pub errors: BTreeMap<String, u64>,
}

/// An MPEG-TS file cut into SRT payloads, parsed once and shared by every SRT publisher.
struct TsMedia {
    /// Payloads of 7 TS packets (the last may be shorter), slices of the file.
    chunks: Vec<Bytes>,
    /// Send time of each chunk, µs from the first PCR.
    at_us: Vec<u64>,
    /// Length of one pass, µs.
    loop_us: u64,
}

/// TS packets per SRT payload: 7 x 188 = 1316 bytes, the usual SRT/UDP payload.
const TS_PER_CHUNK: usize = 7;

impl TsMedia {
    fn load(path: &PathBuf) -> anyhow::Result<Self> {
        use sluice_proto::ts::packet::{PACKET_SIZE, PacketHeader};
        let data = Bytes::from(
            std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
        );
        if data.len() < PACKET_SIZE || data.first() != Some(&0x47) {
            bail!("{} is not an MPEG-TS file", path.display());
        }
        // Pace on the first PID that carries a PCR: each chunk goes out at the last PCR seen
        // at its start (packets before the first PCR go at once).
        let mut pcr_pid = None;
        let (mut first, mut last) = (None::<u64>, 0u64);
        let mut chunks = Vec::new();
        let mut at_us = Vec::new();
        for start in (0..data.len()).step_by(PACKET_SIZE * TS_PER_CHUNK) {
            let end = (start + PACKET_SIZE * TS_PER_CHUNK).min(data.len());
            at_us.push(last);
            chunks.push(data.slice(start..end));
            for p in data[start..end].chunks_exact(PACKET_SIZE) {
                let Ok(h) = PacketHeader::parse(p) else {
                    continue;
                };
                let Some(pcr) = h.adaptation.and_then(|a| a.pcr) else {
                    continue;
                };
                if *pcr_pid.get_or_insert(h.pid) != h.pid {
                    continue;
                }
                let t = pcr.to_27mhz() / 27;
                let f = *first.get_or_insert(t);
                last = t.saturating_sub(f).max(last);
            }
        }
        if first.is_none() {
            bail!("{}: no PCR to pace on", path.display());
        }
        // One average chunk interval past the last, so passes do not overlap.
        let loop_us = last + last / chunks.len().max(1) as u64;
        Ok(Self {
            chunks,
            at_us,
            loop_us,
        })
    }
}

struct Ctx {
    args: LoadArgs,
    media: Media,
    ts: Option<TsMedia>,
    stop: Cell<bool>,
    t: RefCell<Totals>,
    /// Latency over the whole run, µs.
    hist: RefCell<Histogram<u64>>,
    /// Latency since the last sample, µs.
    interval: RefCell<Histogram<u64>>,
}

impl Ctx {
    fn error(&self, kind: impl Into<String>) {
        *self.t.borrow_mut().errors.entry(kind.into()).or_default() += 1;
    }

    fn latency(&self, ns: u64) {
        let us = (ns / 1000).max(1);
        let _ = self.hist.borrow_mut().record(us.min(MAX_LATENCY_US));
        let _ = self.interval.borrow_mut().record(us.min(MAX_LATENCY_US));
    }
}

/// Latencies are clamped to one minute (the histogram's range).
const MAX_LATENCY_US: u64 = 60_000_000;

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
        .expect("constant bounds within hdrhistogram's limits")
}

/// Wall-clock nanoseconds, the clock of the latency markers (shared by every task).
fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// One sample of the run's time series.
#[derive(Debug, Clone, Serialize)]
pub struct SamplePoint {
    /// Seconds since the start.
    pub t: f64,
    /// Publishers live.
    pub publishers_live: u64,
    /// Players live.
    pub players_live: u64,
    /// WHEP viewers connected and live.
    pub whep_live: u64,
    /// Server CPU, percent of one core, over the last interval.
    pub gw_cpu_pct: f64,
    /// Server RSS, kB.
    pub gw_rss_kb: u64,
    /// Server PSS, kB (0 unless `--pss`).
    pub gw_pss_kb: u64,
    /// This tool's CPU, percent of one core, over the last interval.
    pub self_cpu_pct: f64,
    /// Latency p50 over the interval, ms (0 when no marker arrived).
    pub lat_p50_ms: f64,
    /// Latency p99 over the interval, ms.
    pub lat_p99_ms: f64,
}

/// Latency percentiles, ms.
#[derive(Debug, Clone, Serialize)]
pub struct LatencySummary {
    /// Frames measured.
    pub count: u64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Maximum.
    pub max_ms: f64,
}

/// The JSON result of one run.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    /// Options of the run.
    pub args: LoadArgs,
    /// Wall time, s.
    pub wall_s: f64,
    /// Counters.
    pub totals: Totals,
    /// Server CPU seconds over the run.
    pub gw_cpu_s: f64,
    /// Server peak RSS (sum of the processes' high-water marks), kB.
    pub gw_peak_rss_kb: u64,
    /// Largest sampled RSS sum, kB.
    pub gw_max_sampled_rss_kb: u64,
    /// Largest sampled PSS sum, kB.
    pub gw_max_pss_kb: u64,
    /// Server CPU seconds per GB (10^9 bytes) written by the publishers.
    pub gw_cpu_s_per_gb: f64,
    /// This tool's CPU seconds over the run.
    pub self_cpu_s: f64,
    /// Publisher-to-receiver latency.
    pub latency: LatencySummary,
    /// Time series.
    pub samples: Vec<SamplePoint>,
}

/// Runs the load and returns its result (also written to `--out` with a summary and plots).
pub fn run(args: LoadArgs) -> anyhow::Result<RunResult> {
    let (media, ts) = if args.srt.is_some() {
        (Media::empty(), Some(TsMedia::load(&args.input)?))
    } else {
        (Media::load(&args.input)?, None)
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    let result = local.block_on(&rt, run_async(args, media, ts))?;
    if let Some(out) = &result.args.out {
        std::fs::write(out, serde_json::to_vec_pretty(&result)?)?;
        let txt = out.with_extension("txt");
        std::fs::write(&txt, summary(&result))?;
        crate::plot::write_run_plots(&result, out)?;
    }
    print!("{}", summary(&result));
    Ok(result)
}

async fn run_async(args: LoadArgs, media: Media, ts: Option<TsMedia>) -> anyhow::Result<RunResult> {
    let names: Vec<String> = match &args.keys_file {
        Some(p) => std::fs::read_to_string(p)?
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect(),
        None => (0..args.publishers)
            .map(|i| format!("{}{i}", args.prefix))
            .collect(),
    };
    if names.len() < args.publishers {
        bail!(
            "{} stream names for {} publishers",
            names.len(),
            args.publishers
        );
    }
    let base = args.rtmp.trim_end_matches('/').to_string();
    let ctx = Rc::new(Ctx {
        args: args.clone(),
        media,
        ts,
        stop: Cell::new(false),
        t: RefCell::default(),
        hist: RefCell::new(histogram()),
        interval: RefCell::new(histogram()),
    });
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(args.duration_s.max(0.1));
    let gw0 = procstat::sample_tree(&args.gateway_pids, false);
    let self0 = procstat::self_cpu_seconds();

    // RTP receivers first, so forwarders attached later find them listening.
    for i in 0..args.publishers {
        for j in 0..args.rtp_receivers {
            let port = u32::from(args.rtp_base_port) + 4 * (i * args.rtp_receivers + j) as u32;
            for p in [port, port + 2] {
                let p = u16::try_from(p).context("RTP port beyond 65535")?;
                let sock = UdpSocket::bind(SocketAddr::from(([127, 0, 0, 1], p)))
                    .await
                    .with_context(|| format!("binding RTP receiver port {p}"))?;
                // A forwarder attached to a live stream first replays its cached GOP (up to
                // ~2 s of media in one burst); the default receive buffer (~200 kB of
                // truesize, ~100 datagrams) overflows on it and the tool would count the
                // loss against the gateway. Ask for 4 MiB (capped by net.core.rmem_max).
                if let Err(e) = socket2::SockRef::from(&sock).set_recv_buffer_size(RTP_RECV_BUFFER)
                {
                    eprintln!("warning: cannot enlarge the RTP receive buffer: {e}");
                }
                tokio::task::spawn_local(rtp_receiver(sock, ctx.clone()));
            }
        }
    }

    let sampler = tokio::task::spawn_local(sampler(ctx.clone(), start, gw0, self0));

    let gap = Duration::from_secs_f64(1.0 / args.ramp.max(0.001));
    let mut tasks = Vec::new();
    for (i, name) in names.iter().take(args.publishers).enumerate() {
        if Instant::now() >= deadline {
            break;
        }
        if let Some(mut addr) = args.srt {
            let port = u32::from(addr.port()) + u32::from(args.srt_port_step) * i as u32;
            addr.set_port(u16::try_from(port).context("SRT port beyond 65535")?);
            let sid = format!("{}{name}", args.srt_streamid_prefix).into_bytes();
            tasks.push(tokio::task::spawn_local(srt_publisher(
                addr,
                sid,
                ctx.clone(),
                i as u64,
            )));
            sleep_until(Instant::now() + gap).await;
            continue;
        }
        let url = format!("{base}/{name}");
        tasks.push(tokio::task::spawn_local(publisher(
            url.clone(),
            ctx.clone(),
            i as u64,
        )));
        for _ in 0..args.players {
            tasks.push(tokio::task::spawn_local(player(url.clone(), ctx.clone())));
        }
        for j in 0..args.whep_viewers {
            let wurl = format!(
                "{}/{}{i}",
                args.whep_url.trim_end_matches('/'),
                args.whep_channel_prefix
            );
            let delay = args.whep_delay_s.max(0.0) + j as f64 * args.whep_stagger_s.max(0.0);
            tasks.push(tokio::task::spawn_local(whep_viewer(
                wurl,
                ctx.clone(),
                delay,
            )));
        }
        sleep_until(Instant::now() + gap).await;
    }
    sleep_until(deadline).await;
    ctx.stop.set(true);
    for t in tasks {
        let _ = timeout(Duration::from_secs(3), t).await;
    }
    let samples = sampler.await.unwrap_or_default();
    let wall_s = start.elapsed().as_secs_f64();
    let gw1 = procstat::sample_tree(&args.gateway_pids, args.pss);
    let self_cpu_s = procstat::self_cpu_seconds() - self0;
    let totals = ctx.t.borrow().clone();
    let gw_cpu_s = (gw1.cpu_seconds - gw0.cpu_seconds).max(0.0);
    let gb = totals.bytes_sent as f64 / 1e9;
    let h = ctx.hist.borrow();
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    let latency = LatencySummary {
        count: h.len(),
        p50_ms: ms(0.5),
        p90_ms: ms(0.9),
        p99_ms: ms(0.99),
        max_ms: h.max() as f64 / 1000.0,
    };
    Ok(RunResult {
        args,
        wall_s,
        gw_cpu_s,
        gw_peak_rss_kb: gw1.hwm_kb,
        gw_max_sampled_rss_kb: samples
            .iter()
            .map(|s| s.gw_rss_kb)
            .max()
            .unwrap_or(0)
            .max(gw1.rss_kb),
        gw_max_pss_kb: samples
            .iter()
            .map(|s| s.gw_pss_kb)
            .max()
            .unwrap_or(0)
            .max(gw1.pss_kb),
        gw_cpu_s_per_gb: if gb > 0.0 { gw_cpu_s / gb } else { 0.0 },
        self_cpu_s,
        latency,
        samples,
        totals,
    })
}

async fn sampler(ctx: Rc<Ctx>, start: Instant, gw0: TreeSample, self0: f64) -> Vec<SamplePoint> {
    let period = Duration::from_millis(ctx.args.sample_ms.max(50));
    let mut out = Vec::new();
    let (mut last_gw, mut last_self, mut last_t) = (gw0.cpu_seconds, self0, start);
    while !ctx.stop.get() {
        sleep(period).await;
        let now = Instant::now();
        let dt = now.duration_since(last_t).as_secs_f64().max(1e-3);
        let gw = procstat::sample_tree(&ctx.args.gateway_pids, ctx.args.pss);
        let me = procstat::self_cpu_seconds();
        let (p50, p99) = {
            let mut h = ctx.interval.borrow_mut();
            let r = if h.is_empty() {
                (0.0, 0.0)
            } else {
                (
                    h.value_at_quantile(0.5) as f64 / 1000.0,
                    h.value_at_quantile(0.99) as f64 / 1000.0,
                )
            };
            h.reset();
            r
        };
        let t = ctx.t.borrow();
        out.push(SamplePoint {
            t: now.duration_since(start).as_secs_f64(),
            publishers_live: t.publishers_live,
            players_live: t.players_live,
            whep_live: t.whep_live,
            gw_cpu_pct: 100.0 * (gw.cpu_seconds - last_gw).max(0.0) / dt,
            gw_rss_kb: gw.rss_kb,
            gw_pss_kb: gw.pss_kb,
            self_cpu_pct: 100.0 * (me - last_self).max(0.0) / dt,
            lat_p50_ms: p50,
            lat_p99_ms: p99,
        });
        (last_gw, last_self, last_t) = (gw.cpu_seconds, me, now);
    }
    out
}

/// Connects and runs the client until `Live` (or failure). Returns the socket halves.
async fn start_session(
    url: &str,
    role: Role,
    seed: u64,
    ctx: &Ctx,
) -> anyhow::Result<(
    RtmpClient,
    OwnedReadHalf,
    tokio::net::tcp::OwnedWriteHalf,
    BytesMut,
)> {
    let (mut cfg, hostport) = ClientConfig::from_url(url, role).context("bad RTMP URL")?;
    cfg.ack_window = ctx.args.ack_window;
    let stream = TcpStream::connect(&hostport).await.context("connect")?;
    stream.set_nodelay(true)?;
    let (mut rd, mut wr) = stream.into_split();
    let mut random = [0u8; sluice_proto::rtmp::handshake::RANDOM_SIZE];
    for (i, b) in random.iter_mut().enumerate() {
        *b = (seed
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .wrapping_add(i as u64)
            >> 24) as u8;
    }
    let mut client = RtmpClient::new(cfg, 0, &random);
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let until = Instant::now() + START_TIMEOUT;
    loop {
        let out = client.take_output();
        if !out.is_empty() {
            wr.write_all(&out).await?;
        }
        if client.state() == State::Live {
            // Discard the Live event; the caller counts it.
            while client.poll_event().is_some() {}
            return Ok((client, rd, wr, buf));
        }
        if ctx.stop.get() {
            bail!("stopped");
        }
        buf.reserve(16 * 1024);
        let n = match timeout(
            until.saturating_duration_since(Instant::now()),
            rd.read_buf(&mut buf),
        )
        .await
        {
            Ok(r) => r?,
            Err(_) => bail!("start timeout in {:?}", client.state()),
        };
        if n == 0 {
            bail!("closed by server in {:?}", client.state());
        }
        client.handle_input(buf.split().freeze())?;
    }
}

async fn publisher(url: String, ctx: Rc<Ctx>, idx: u64) {
    let mut round = 0u64;
    while !ctx.stop.get() {
        ctx.t.borrow_mut().publish_attempts += 1;
        let r = publish_once(&url, &ctx, idx.wrapping_mul(1000).wrapping_add(round)).await;
        if let Err(e) = r {
            ctx.error(format!("publish: {e:#}"));
            // Back off before retrying, so a refusing server is not hammered.
            sleep(Duration::from_millis(500)).await;
        }
        round += 1;
        if ctx.args.reconnect_s <= 0.0 {
            break;
        }
    }
}

async fn publish_once(url: &str, ctx: &Ctx, seed: u64) -> anyhow::Result<()> {
    let (mut client, mut rd, mut wr, mut rbuf) =
        start_session(url, Role::Publish, seed, ctx).await?;
    {
        let mut t = ctx.t.borrow_mut();
        t.publish_started += 1;
        t.publishers_live += 1;
    }
    let r = media_loop(&mut client, &mut rd, &mut wr, &mut rbuf, ctx).await;
    ctx.t.borrow_mut().publishers_live -= 1;
    client.close();
    let _ = wr.write_all(&client.take_output()).await;
    let _ = wr.shutdown().await;
    r
}

async fn media_loop(
    client: &mut RtmpClient,
    rd: &mut OwnedReadHalf,
    wr: &mut tokio::net::tcp::OwnedWriteHalf,
    rbuf: &mut BytesMut,
    ctx: &Ctx,
) -> anyhow::Result<()> {
    let m = &ctx.media;
    let t0 = Instant::now();
    let end = if ctx.args.reconnect_s > 0.0 {
        Some(t0 + Duration::from_secs_f64(ctx.args.reconnect_s))
    } else {
        None
    };
    let first_ts = m.tags.first().map_or(0, |t| t.timestamp_ms);
    let mut scratch = BytesMut::new();
    let mut acked_before = 0u64;
    let mut pass = 0u32;
    let mut i = 0usize;
    loop {
        if ctx.stop.get() || end.is_some_and(|e| Instant::now() >= e) {
            flush(client, wr, ctx).await?;
            return Ok(());
        }
        let Some(tag) = m.tags.get(i) else {
            i = 0;
            pass += 1;
            continue;
        };
        if pass > 0 && m.is_config.get(i) == Some(&true) {
            i += 1;
            continue;
        }
        let ts = tag
            .timestamp_ms
            .saturating_sub(first_ts)
            .wrapping_add(pass.wrapping_mul(m.loop_ms));
        if !ctx.args.flat {
            let due = t0 + Duration::from_millis(u64::from(ts));
            if due > Instant::now() {
                flush(client, wr, ctx).await?;
                // Wait for the tag's time, answering the server meanwhile.
                loop {
                    rbuf.reserve(4096);
                    tokio::select! {
                        _ = sleep_until(due) => break,
                        r = rd.read_buf(rbuf) => {
                            if r? == 0 { bail!("closed by server"); }
                            acked_before = handle_server(client, rbuf, ctx, acked_before)?;
                        }
                    }
                }
            }
        }
        let body: &[u8] = if tag.tag_type == TAG_VIDEO
            && sei::insert_into_avc_body(&tag.body, m.length_size, now_ns(), &mut scratch)
        {
            ctx.t.borrow_mut().frames_sent += 1;
            &scratch
        } else {
            &tag.body
        };
        client.send_media(tag.tag_type, ts, body)?;
        ctx.t.borrow_mut().media_bytes_sent += tag.body.len() as u64;
        i += 1;
        if client.pending_output() >= FLUSH_BYTES {
            flush(client, wr, ctx).await?;
            // Drain without blocking: acknowledgements and pings.
            loop {
                rbuf.reserve(4096);
                match rd.try_read_buf(rbuf) {
                    Ok(0) => bail!("closed by server"),
                    Ok(_) => acked_before = handle_server(client, rbuf, ctx, acked_before)?,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
}

async fn flush(
    client: &mut RtmpClient,
    wr: &mut tokio::net::tcp::OwnedWriteHalf,
    ctx: &Ctx,
) -> anyhow::Result<()> {
    let out = client.take_output();
    if !out.is_empty() {
        wr.write_all(&out).await?;
        ctx.t.borrow_mut().bytes_sent += out.len() as u64;
    }
    Ok(())
}

fn handle_server(
    client: &mut RtmpClient,
    rbuf: &mut BytesMut,
    ctx: &Ctx,
    mut acked: u64,
) -> anyhow::Result<u64> {
    client.handle_input(rbuf.split().freeze())?;
    while let Some(ev) = client.poll_event() {
        if let ClientEvent::Acked(n) = ev {
            ctx.t.borrow_mut().bytes_acked += n.saturating_sub(acked);
            acked = n;
        }
    }
    Ok(acked)
}

async fn srt_publisher(addr: SocketAddr, stream_id: Vec<u8>, ctx: Rc<Ctx>, idx: u64) {
    let mut round = 0u64;
    while !ctx.stop.get() {
        ctx.t.borrow_mut().publish_attempts += 1;
        // Socket ids and ISNs only need to differ between callers of one process.
        let id = (idx as u32)
            .wrapping_mul(7919)
            .wrapping_add(round as u32)
            .wrapping_add(1)
            & 0x3FFF_FFFF;
        let cfg = CallerConfig {
            socket_id: id.max(1),
            isn: id.wrapping_mul(2_654_435_761) & 0x7FFF_FFFF,
            stream_id: stream_id.clone(),
            latency_ms: ctx.args.srt_latency_ms,
            peer_ip: addr.ip(),
            send_buffer: ctx.args.srt_send_buffer,
        };
        if let Err(e) = srt_publish_once(addr, cfg, &ctx).await {
            ctx.error(format!("srt publish: {e:#}"));
            sleep(Duration::from_millis(500)).await;
        }
        round += 1;
        if ctx.args.reconnect_s <= 0.0 {
            break;
        }
    }
}

/// Timer period of an SRT caller (handshake resends, keep-alives).
const SRT_TICK: Duration = Duration::from_millis(50);

async fn srt_flush(c: &mut SrtCaller, sock: &UdpSocket) -> anyhow::Result<()> {
    while let Some(d) = c.poll_output() {
        sock.send(&d).await.context("SRT send")?;
    }
    Ok(())
}

/// Feeds what the socket has to the caller, waiting at most until `until`.
async fn srt_wait(
    c: &mut SrtCaller,
    sock: &UdpSocket,
    buf: &mut [u8],
    until: Instant,
    clock: Instant,
) -> anyhow::Result<()> {
    let us = |i: Instant| i.duration_since(clock).as_micros() as u64;
    tokio::select! {
        _ = sleep_until(until) => {}
        r = sock.recv(buf) => {
            let n = r.context("SRT receive")?;
            // Copy: control packets (ACK, NAK; tens of bytes) out of the reused buffer.
            c.handle(Bytes::copy_from_slice(buf.get(..n).unwrap_or_default()), us(Instant::now()));
            // Drain what else is queued without waiting.
            while let Ok(n) = sock.try_recv(buf) {
                c.handle(Bytes::copy_from_slice(buf.get(..n).unwrap_or_default()), us(Instant::now()));
            }
        }
    }
    c.tick(us(Instant::now()));
    srt_flush(c, sock).await
}

async fn srt_publish_once(addr: SocketAddr, cfg: CallerConfig, ctx: &Ctx) -> anyhow::Result<()> {
    let Some(m) = &ctx.ts else {
        bail!("no TS media");
    };
    let sock = UdpSocket::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    sock.connect(addr).await?;
    let clock = Instant::now();
    let us = |i: Instant| i.duration_since(clock).as_micros() as u64;
    let mut c = SrtCaller::new(cfg, 0);
    let mut buf = vec![0u8; 2048];
    srt_flush(&mut c, &sock).await?;
    while c.state() != CallerState::Connected {
        if let CallerState::Closed(r) = c.state() {
            bail!("handshake: {r:?}");
        }
        if ctx.stop.get() {
            bail!("stopped");
        }
        srt_wait(&mut c, &sock, &mut buf, Instant::now() + SRT_TICK, clock).await?;
    }
    {
        let mut t = ctx.t.borrow_mut();
        t.publish_started += 1;
        t.publishers_live += 1;
    }
    let t0 = Instant::now();
    let end =
        (ctx.args.reconnect_s > 0.0).then(|| t0 + Duration::from_secs_f64(ctx.args.reconnect_s));
    let r: anyhow::Result<()> = async {
        let (mut i, mut pass) = (0usize, 0u64);
        loop {
            if ctx.stop.get() || end.is_some_and(|e| Instant::now() >= e) {
                return Ok(());
            }
            if let CallerState::Closed(r) = c.state() {
                bail!("closed: {r:?}");
            }
            let (Some(chunk), Some(at)) = (m.chunks.get(i), m.at_us.get(i)) else {
                i = 0;
                pass += 1;
                continue;
            };
            let due = t0 + Duration::from_micros(at + pass * m.loop_us);
            let now = Instant::now();
            if !ctx.args.flat && due > now {
                srt_wait(&mut c, &sock, &mut buf, due.min(now + SRT_TICK), clock).await?;
                continue;
            }
            c.send(chunk.clone(), us(now))?;
            srt_flush(&mut c, &sock).await?;
            ctx.t.borrow_mut().bytes_sent += chunk.len() as u64;
            ctx.t.borrow_mut().media_bytes_sent += chunk.len() as u64;
            i += 1;
            if ctx.args.flat {
                // Flat out still answers ACKs and NAKs.
                while let Ok(n) = sock.try_recv(&mut buf) {
                    c.handle(
                        Bytes::copy_from_slice(buf.get(..n).unwrap_or_default()),
                        us(Instant::now()),
                    );
                }
                srt_flush(&mut c, &sock).await?;
            }
        }
    }
    .await;
    c.close(us(Instant::now()));
    let _ = srt_flush(&mut c, &sock).await;
    let s = c.stats();
    let mut t = ctx.t.borrow_mut();
    t.publishers_live -= 1;
    t.srt_packets += s.packets;
    t.srt_retransmitted += s.retransmitted;
    t.srt_naks += s.naks;
    t.srt_nak_unavailable += s.nak_unavailable;
    t.srt_acks += s.acks;
    r
}

async fn whep_viewer(url: String, ctx: Rc<Ctx>, delay_s: f64) {
    sleep(Duration::from_secs_f64(delay_s)).await;
    let mut last_err = None;
    // Retry while the stream is not live yet (404) or setup fails, until the run ends.
    while !ctx.stop.get() {
        let mut st = whep::ViewerStats::default();
        let mut counted = whep::ViewerStats::default();
        let mut live = false;
        let mut first_ns = None;
        let r = whep::run_viewer(
            &url,
            || ctx.stop.get(),
            |au| {
                let now = now_ns();
                // As for RTP: frames sent before the first one arrived are the cached GOP.
                let first = *first_ns.get_or_insert(now);
                if let Some(sent) = sei::find_in_annexb(au)
                    && sent >= first
                {
                    ctx.latency(now.saturating_sub(sent));
                }
            },
            &mut st,
            &mut |st: &whep::ViewerStats| {
                let mut t = ctx.t.borrow_mut();
                if st.connected && !live {
                    live = true;
                    t.whep_connected += 1;
                    t.whep_live += 1;
                }
                t.whep_video_frames += st.video_frames - counted.video_frames;
                t.whep_audio_frames += st.audio_frames - counted.audio_frames;
                t.whep_bytes += st.bytes - counted.bytes;
                counted = *st;
            },
        )
        .await;
        if live {
            ctx.t.borrow_mut().whep_live -= 1;
        }
        match r {
            Ok(()) => return,
            Err(e) => {
                last_err = Some(format!("{e:#}"));
                if live {
                    break;
                }
                sleep(Duration::from_millis(500)).await;
            }
        }
    }
    if let Some(e) = last_err {
        ctx.error(format!("whep: {e}"));
    }
}

async fn player(url: String, ctx: Rc<Ctx>) {
    if let Err(e) = play_once(&url, &ctx).await {
        ctx.error(format!("play: {e:#}"));
    }
}

async fn play_once(url: &str, ctx: &Ctx) -> anyhow::Result<()> {
    // Retry until the publisher is live: servers refuse or idle a play of an unknown stream.
    let (mut client, mut rd, mut wr, mut buf) = start_session(url, Role::Play, 7, ctx).await?;
    {
        let mut t = ctx.t.borrow_mut();
        t.play_started += 1;
        t.players_live += 1;
    }
    let mut length_size = 4;
    let r: anyhow::Result<()> = async {
        while !ctx.stop.get() {
            buf.reserve(16 * 1024);
            let n = match timeout(Duration::from_millis(200), rd.read_buf(&mut buf)).await {
                Ok(r) => r?,
                Err(_) => continue,
            };
            if n == 0 {
                bail!("closed by server");
            }
            client.handle_input(buf.split().freeze())?;
            let now = now_ns();
            while let Some(ev) = client.poll_event() {
                if let ClientEvent::Media { type_id, body, .. } = ev {
                    let mut t = ctx.t.borrow_mut();
                    t.player_messages += 1;
                    t.player_bytes += body.len() as u64;
                    if type_id == TAG_VIDEO {
                        if let Some(ls) = sei::avc_length_size(&body) {
                            length_size = ls;
                        } else {
                            t.player_frames += 1;
                        }
                        drop(t);
                        if let Some(sent) = sei::find_in_avc_body(&body, length_size) {
                            ctx.latency(now.saturating_sub(sent));
                        }
                    }
                }
            }
            let out = client.take_output();
            if !out.is_empty() {
                wr.write_all(&out).await?;
            }
        }
        Ok(())
    }
    .await;
    ctx.t.borrow_mut().players_live -= 1;
    r
}

async fn rtp_receiver(sock: UdpSocket, ctx: Rc<Ctx>) {
    let mut c = RtpCounter::default();
    let mut buf = vec![0u8; 2048];
    // Arrival of this receiver's first packet: frames sent before it are the GOP cache
    // replayed to a new forwarder, not forwarding latency.
    let mut first_rx_ns = None;
    while !ctx.stop.get() {
        let n = match timeout(Duration::from_millis(200), sock.recv(&mut buf)).await {
            Ok(Ok(n)) => n,
            Ok(Err(_)) | Err(_) => continue,
        };
        let before = c.clone();
        let now = now_ns();
        let first = *first_rx_ns.get_or_insert(now);
        let lat = c.handle(buf.get(..n).unwrap_or_default(), now);
        if let Some(ns) = lat {
            if now.saturating_sub(ns) >= first {
                ctx.latency(ns);
            } else {
                ctx.t.borrow_mut().rtp_cached_frames += 1;
            }
        }
        let mut t = ctx.t.borrow_mut();
        t.rtp_packets += c.packets - before.packets;
        t.rtp_bytes += c.bytes - before.bytes;
        t.rtp_frames += c.frames - before.frames;
        t.rtp_lost += c.lost - before.lost;
        t.rtp_gaps += c.gaps - before.gaps;
    }
}

/// The text summary of a run.
pub fn summary(r: &RunResult) -> String {
    let t = &r.totals;
    let mut s = String::new();
    use std::fmt::Write;
    let _ = writeln!(
        s,
        "sluice-perf load {} ({:.1} s, {} publishers, {} players/stream, {} RTP receivers/stream, {})",
        r.args.label,
        r.wall_s,
        r.args.publishers,
        r.args.players,
        r.args.rtp_receivers,
        if r.args.flat { "flat out" } else { "real time" }
    );
    let _ = writeln!(
        s,
        "  publish: {} started / {} attempts; {:.1} MB sent, {:.1} MB acked, {} frames",
        t.publish_started,
        t.publish_attempts,
        t.bytes_sent as f64 / 1e6,
        t.bytes_acked as f64 / 1e6,
        t.frames_sent
    );
    if r.args.srt.is_some() {
        let _ = writeln!(
            s,
            "  srt: {} packets, {} retransmitted on {} NAKs ({} no longer buffered), {} ACKs",
            t.srt_packets, t.srt_retransmitted, t.srt_naks, t.srt_nak_unavailable, t.srt_acks
        );
    }
    if r.args.whep_viewers > 0 {
        let _ = writeln!(
            s,
            "  whep: {} connected; {} video frames, {} audio frames, {:.1} MB",
            t.whep_connected,
            t.whep_video_frames,
            t.whep_audio_frames,
            t.whep_bytes as f64 / 1e6
        );
    }
    if r.args.players > 0 {
        let _ = writeln!(
            s,
            "  play: {} started; {} messages, {:.1} MB, {} frames",
            t.play_started,
            t.player_messages,
            t.player_bytes as f64 / 1e6,
            t.player_frames
        );
    }
    if r.args.rtp_receivers > 0 {
        let _ = writeln!(
            s,
            "  rtp: {} packets, {} frames ({} replayed from the GOP cache), {} lost in {} gaps",
            t.rtp_packets, t.rtp_frames, t.rtp_cached_frames, t.rtp_lost, t.rtp_gaps
        );
    }
    let l = &r.latency;
    let _ = writeln!(
        s,
        "  latency: n={} p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        l.count, l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms
    );
    let _ = writeln!(
        s,
        "  server: {:.2} CPU s ({:.2} s/GB), peak RSS {} kB, max PSS {} kB",
        r.gw_cpu_s, r.gw_cpu_s_per_gb, r.gw_peak_rss_kb, r.gw_max_pss_kb
    );
    let _ = writeln!(s, "  load tool: {:.2} CPU s", r.self_cpu_s);
    for (e, n) in &t.errors {
        let _ = writeln!(s, "  error x{n}: {e}");
    }
    s
}
