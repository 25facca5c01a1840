//! Loopback UDP send cost: one send per datagram against UDP GSO runs, same process, same
//! run, alternating, so the ratio holds on a loaded machine.
//!
//! ```sh
//! cargo run --release -p sluice-dataplane --example gso_bench -- [packets-per-frame] [rounds] [slices]
//! ```
//!
//! `slices` is 1 (one buffer per datagram, as a WHEP viewer's SRTP packets) or 3 (RTP
//! header, FU-A prefix and payload slice as separate iovecs, as an RTP forwarder sends).
//!
//! Each round sends `frames` access units of `packets-per-frame` 1316-byte datagrams (the last
//! of each frame shorter, as an FU-A tail is) from one non-blocking socket to a loopback
//! receiver drained by another thread, once per path. It prints, per path, datagrams per
//! second of wall time and the sending thread's CPU time per datagram (`RUSAGE_THREAD`,
//! user + system), the median over rounds, and the ratio GSO / per-datagram. Delivery is
//! checked: the receiver must count every datagram the sender reported sent. On loopback the
//! sender's system time includes delivery into the receiving socket (softirq work done in
//! the sending syscall), as it does for the gateway's loopback receivers. The sender waits
//! when more than 2000 datagrams are unread, so wall-clock rates are bounded by the reader.

// The engine is a binary crate: the send path is compiled in from its source file.
#[path = "../src/gso.rs"]
#[allow(dead_code)]
mod gso;

use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use socket2::SockAddr;

const SIZE: usize = 1316;
const FRAMES: usize = 2000;
/// Datagrams sent but not yet read by the receiver before the sender waits.
const MAX_IN_FLIGHT: u64 = 2000;

fn thread_cpu() -> Duration {
    // SAFETY: getrusage writes into the zeroed struct we own.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

struct Sample {
    per_s: f64,
    cpu_ns: f64,
}

fn run<const K: usize>(
    tx: &UdpSocket,
    dest: &SockAddr,
    parts: &[gso::Parts<'_, K>],
    gso_on: bool,
    got: &AtomicU64,
) -> Sample {
    let before = got.load(Ordering::Relaxed);
    let (t0, c0) = (Instant::now(), thread_cpu());
    let mut sent = 0u64;
    for _ in 0..FRAMES {
        let r = gso::send_batch(tx, dest, parts, gso_on);
        sent += r.sent;
        // Keep the receiver's queue bounded: loopback drops silently at a full receive
        // buffer, and a dropped datagram costs the sender less than a delivered one.
        while sent - (got.load(Ordering::Relaxed) - before) > MAX_IN_FLIGHT {
            std::thread::yield_now();
        }
    }
    let (wall, cpu) = (t0.elapsed(), thread_cpu() - c0);
    // Wait for the receiver to see everything that was sent.
    let deadline = Instant::now() + Duration::from_secs(5);
    while got.load(Ordering::Relaxed) - before < sent && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    let delivered = got.load(Ordering::Relaxed) - before;
    assert!(
        delivered >= sent * 99 / 100,
        "delivered {delivered} of {sent}"
    );
    Sample {
        per_s: sent as f64 / wall.as_secs_f64(),
        cpu_ns: cpu.as_nanos() as f64 / sent as f64,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let per_frame: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(20);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(7);
    let slices: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let rx = UdpSocket::bind("127.0.0.1:0").expect("bind receiver");
    let _ = socket2::SockRef::from(&rx).set_recv_buffer_size(8 << 20);
    // As root, past net.core.rmem_max, so the in-flight window fits (truesize ~2.3 kB each).
    let force: libc::c_int = 32 << 20;
    // SAFETY: a valid descriptor and a c_int option value.
    unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&rx),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&force as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
    rx.set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");
    let tx = UdpSocket::bind("127.0.0.1:0").expect("bind sender");
    tx.set_nonblocking(true).expect("non-blocking");
    let _ = socket2::SockRef::from(&tx).set_send_buffer_size(4 << 20);
    let dest = SockAddr::from(rx.local_addr().expect("addr"));
    let got = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (got, stop) = (got.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65_536];
            while !stop.load(Ordering::Relaxed) {
                if rx.recv(&mut buf).is_ok() {
                    got.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    let frame: Vec<Vec<u8>> = (0..per_frame)
        .map(|i| vec![i as u8; if i + 1 == per_frame { SIZE / 3 } else { SIZE }])
        .collect();
    let gso_ok = gso::enabled();
    println!(
        "loopback, {per_frame} datagrams per frame ({SIZE} bytes, last {}), {slices} slice(s) per datagram, {FRAMES} frames per round, {rounds} rounds, GSO supported: {gso_ok}",
        SIZE / 3
    );
    let one: Vec<gso::Parts<'_, 1>> = frame.iter().map(|d| [&d[..]]).collect();
    let three: Vec<gso::Parts<'_, 3>> = frame
        .iter()
        .map(|d| [&d[..12], &d[12..14], &d[14..]])
        .collect();
    let send = |g: bool| {
        if slices == 3 {
            run(&tx, &dest, &three, g, &got)
        } else {
            run(&tx, &dest, &one, g, &got)
        }
    };
    let (mut plain, mut batched) = (Vec::new(), Vec::new());
    // Warm-up, then alternate which path goes first.
    send(false);
    for r in 0..rounds {
        let order = if r % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for g in order {
            let s = send(g && gso_ok);
            if g { batched.push(s) } else { plain.push(s) }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = reader.join();
    let m = |v: &[Sample], f: fn(&Sample) -> f64| median(v.iter().map(f).collect());
    let (pp, pc) = (m(&plain, |s| s.per_s), m(&plain, |s| s.cpu_ns));
    let (gp, gc) = (m(&batched, |s| s.per_s), m(&batched, |s| s.cpu_ns));
    println!(
        "per-datagram sends: {:>10.0} datagrams/s, {:>7.0} ns CPU per datagram",
        pp, pc
    );
    println!(
        "GSO sends:          {:>10.0} datagrams/s, {:>7.0} ns CPU per datagram",
        gp, gc
    );
    println!(
        "ratio GSO/per-datagram: throughput {:.2}, CPU per datagram {:.2}",
        gp / pp,
        gc / pc
    );
}
