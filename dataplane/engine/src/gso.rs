//! Batched UDP sends with generic segmentation offload (`UDP_SEGMENT`, Linux 4.18 and later).
//!
//! A loopback or NIC send costs a few microseconds of syscall and stack traversal per
//! datagram. With GSO one `sendmsg` carries a run of datagrams to one destination and the
//! kernel splits it into datagrams of `segment` bytes each (the last may be shorter), so the
//! per-syscall cost is paid once per run instead of once per datagram.
//!
//! Rules the kernel imposes, and how this module meets them:
//! - every segment but the last has exactly the segment size: runs are made of consecutive
//!   datagrams of equal size, and may end with one shorter datagram;
//! - at most 64 segments per send on older kernels (`UDP_MAX_SEGMENTS`, 128 since 5.x) and
//!   at most 64 KiB of payload: runs are capped at [`MAX_SEGMENTS`] and [`MAX_RUN_BYTES`];
//! - at most `UIO_MAXIOV` (1024) iovecs per `sendmsg`: a datagram made of `K` slices takes
//!   `K` iovecs, and runs are capped to fit.
//!
//! **No copy.** The kernel accepts any number of iovecs (up to `UIO_MAXIOV`) with GSO and
//! segments the concatenation of all of them, so each datagram's slices (an RTP header, a
//! FU-A prefix and a slice of the ingest buffer, or one SRTP packet) are handed over as
//! they are; the only copy is the kernel's own copy into its socket buffer, the same copy a
//! per-datagram send makes.
//!
//! **Fallback.** Support is probed once per process (`getsockopt(SOL_UDP, UDP_SEGMENT)`),
//! and `SLUICE_UDP_GSO=off` in the environment turns it off. If a GSO send fails with
//! `EIO`, `EINVAL` or `EOPNOTSUPP` (a device without checksum offload, a segment larger than
//! the path MTU) the run is sent again one datagram per syscall and counted in
//! [`Stats::fallbacks`]; if no GSO send has succeeded yet, GSO is switched off for the
//! process and a warning says so. The active path is logged once at start.
//!
//! **Never blocking.** Sends use `MSG_DONTWAIT`: a full socket buffer (`EAGAIN`, `ENOBUFS`)
//! or a refused destination drops the run (all its datagrams are counted as dropped), so a
//! slow receiver cannot stall the core or the other destinations.

use std::io;
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::sync::Once;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};

use socket2::SockAddr;

/// Most datagrams in one GSO send (the oldest kernels with GSO accept 64).
pub const MAX_SEGMENTS: usize = 64;
/// Most payload bytes in one GSO send: a UDP datagram's limit (65 535 less the UDP and
/// IPv6 headers), rounded down.
pub const MAX_RUN_BYTES: usize = 65_000;
/// Most iovecs in one `sendmsg` (`UIO_MAXIOV`).
const MAX_IOVECS: usize = 1024;

/// Gateway-wide counters of the batched send path.
#[derive(Debug, Default)]
pub struct Stats {
    /// `sendmsg` calls that carried `UDP_SEGMENT` (two or more datagrams).
    pub gso_sends: AtomicU64,
    /// Datagrams sent inside those calls.
    pub gso_datagrams: AtomicU64,
    /// Datagrams sent one per syscall (single datagrams, odd sizes, or GSO off).
    pub single_sends: AtomicU64,
    /// Datagrams dropped: full socket buffer, refused or unreachable destination.
    pub dropped: AtomicU64,
    /// GSO sends the kernel refused and that were sent again one datagram at a time.
    pub fallbacks: AtomicU64,
}

/// The process's counters.
pub static STATS: Stats = Stats {
    gso_sends: AtomicU64::new(0),
    gso_datagrams: AtomicU64::new(0),
    single_sends: AtomicU64::new(0),
    dropped: AtomicU64::new(0),
    fallbacks: AtomicU64::new(0),
};

const MODE_UNPROBED: u8 = 0;
const MODE_ON: u8 = 1;
const MODE_OFF: u8 = 2;
static MODE: AtomicU8 = AtomicU8::new(MODE_UNPROBED);
/// Set once a GSO send succeeded: later refusals are about that send, not about support.
static GSO_WORKED: AtomicBool = AtomicBool::new(false);
static LOGGED: Once = Once::new();

/// Whether GSO sends are used (probed on first call, logged once).
pub fn enabled() -> bool {
    match MODE.load(Ordering::Relaxed) {
        MODE_ON => true,
        MODE_OFF => false,
        _ => {
            let (on, why) = probe();
            let _ = MODE.compare_exchange(
                MODE_UNPROBED,
                if on { MODE_ON } else { MODE_OFF },
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
            LOGGED.call_once(|| {
                if on {
                    tracing::info!(
                        "UDP GSO active: one sendmsg per run of equal-sized datagrams to a destination"
                    );
                } else {
                    tracing::info!(reason = %why, "UDP GSO off: one send per datagram");
                }
            });
            MODE.load(Ordering::Relaxed) == MODE_ON
        }
    }
}

/// Whether the kernel knows `UDP_SEGMENT`, unless the environment turns GSO off.
fn probe() -> (bool, String) {
    if std::env::var("SLUICE_UDP_GSO").is_ok_and(|v| matches!(v.as_str(), "off" | "0" | "false")) {
        return (false, "SLUICE_UDP_GSO=off".into());
    }
    let sock = match UdpSocket::bind("127.0.0.1:0") {
        Ok(s) => s,
        Err(e) => return (false, format!("probe socket: {e}")),
    };
    let mut val: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: a valid descriptor, and `val`/`len` describe a writable c_int.
    let r = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_UDP,
            libc::UDP_SEGMENT,
            (&mut val as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if r == 0 {
        (true, String::new())
    } else {
        (
            false,
            format!("UDP_SEGMENT: {}", io::Error::last_os_error()),
        )
    }
}

/// What a batch send did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// Bytes handed to the kernel.
    pub bytes: u64,
    /// Datagrams handed to the kernel.
    pub sent: u64,
    /// Datagrams dropped (full buffer, refused destination).
    pub dropped: u64,
    /// System calls made.
    pub syscalls: u64,
}

/// A datagram made of `K` slices sent back to back (header, prefix, payload; or one buffer).
pub type Parts<'a, const K: usize> = [&'a [u8]; K];

fn size_of_parts<const K: usize>(d: &Parts<'_, K>) -> usize {
    d.iter().map(|s| s.len()).sum()
}

/// Where the next run starting at `start` ends (exclusive): datagrams of the first one's size,
/// then at most one shorter datagram, within the segment, byte and iovec caps.
pub fn run_end<const K: usize>(datagrams: &[Parts<'_, K>], start: usize) -> usize {
    let Some(first) = datagrams.get(start) else {
        return start;
    };
    let seg = size_of_parts(first);
    let max_segs = MAX_SEGMENTS.min(MAX_IOVECS / K.max(1));
    let mut end = start + 1;
    let mut bytes = seg;
    while let Some(d) = datagrams.get(end) {
        let n = size_of_parts(d);
        if end - start >= max_segs || bytes + n > MAX_RUN_BYTES || n > seg || n == 0 {
            break;
        }
        end += 1;
        bytes += n;
        if n < seg {
            // A shorter datagram can only close a run.
            break;
        }
    }
    end
}

/// Sends `datagrams` to `dest` from a non-blocking socket: runs of equal size in one GSO
/// `sendmsg` each when `gso` is set, every other datagram alone. Never waits.
pub fn send_batch<const K: usize>(
    sock: &UdpSocket,
    dest: &SockAddr,
    datagrams: &[Parts<'_, K>],
    gso: bool,
) -> Report {
    let mut report = Report::default();
    let mut iov: Vec<libc::iovec> = Vec::new();
    let mut start = 0;
    while start < datagrams.len() {
        let end = if gso {
            run_end(datagrams, start)
        } else {
            start + 1
        };
        let run = datagrams.get(start..end).unwrap_or_default();
        start = end.max(start + 1);
        if run.len() >= 2 {
            let seg = size_of_parts(&run[0]);
            fill_iovecs(&mut iov, run);
            report.syscalls += 1;
            match sendmsg(sock, dest, &iov, u16::try_from(seg).ok()) {
                Ok(n) => {
                    GSO_WORKED.store(true, Ordering::Relaxed);
                    STATS.gso_sends.fetch_add(1, Ordering::Relaxed);
                    STATS
                        .gso_datagrams
                        .fetch_add(run.len() as u64, Ordering::Relaxed);
                    report.bytes += n as u64;
                    report.sent += run.len() as u64;
                    continue;
                }
                Err(e) if gso_refused(&e) => {
                    STATS.fallbacks.fetch_add(1, Ordering::Relaxed);
                    if !GSO_WORKED.load(Ordering::Relaxed)
                        && MODE.swap(MODE_OFF, Ordering::Relaxed) != MODE_OFF
                    {
                        tracing::warn!(error = %e,
                            "UDP GSO send refused by the kernel: falling back to one send per datagram");
                    }
                    // Fall through: send this run one datagram at a time.
                }
                Err(_) => {
                    drop_run(&mut report, run.len());
                    continue;
                }
            }
        }
        for d in run {
            fill_iovecs(&mut iov, std::slice::from_ref(d));
            report.syscalls += 1;
            match sendmsg(sock, dest, &iov, None) {
                Ok(n) => {
                    STATS.single_sends.fetch_add(1, Ordering::Relaxed);
                    report.bytes += n as u64;
                    report.sent += 1;
                }
                Err(_) => drop_run(&mut report, 1),
            }
        }
    }
    report
}

fn drop_run(report: &mut Report, n: usize) {
    report.dropped += n as u64;
    STATS.dropped.fetch_add(n as u64, Ordering::Relaxed);
}

/// Errors that mean "this GSO send is not possible here", not "the buffer is full".
fn gso_refused(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EIO | libc::EINVAL | libc::EOPNOTSUPP | libc::ENOPROTOOPT)
    )
}

fn fill_iovecs<const K: usize>(iov: &mut Vec<libc::iovec>, run: &[Parts<'_, K>]) {
    iov.clear();
    for d in run {
        for s in d.iter().filter(|s| !s.is_empty()) {
            iov.push(libc::iovec {
                iov_base: s.as_ptr().cast_mut().cast(),
                iov_len: s.len(),
            });
        }
    }
}

/// One `sendmsg(MSG_DONTWAIT)`, with a `UDP_SEGMENT` control message when `segment` is set.
fn sendmsg(
    sock: &UdpSocket,
    dest: &SockAddr,
    iov: &[libc::iovec],
    segment: Option<u16>,
) -> io::Result<usize> {
    // Room for one cmsghdr and a u16, 8-byte aligned (CMSG_SPACE(2) is 24 on 64-bit Linux).
    let mut control = [0u64; 4];
    // SAFETY: msghdr is plain data; every pointer set below outlives the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = dest.as_ptr().cast_mut().cast();
    msg.msg_namelen = dest.len();
    msg.msg_iov = iov.as_ptr().cast_mut();
    msg.msg_iovlen = iov.len() as _;
    if let Some(seg) = segment {
        // SAFETY: CMSG_SPACE of a u16 fits in `control` (32 bytes, aligned for cmsghdr);
        // CMSG_FIRSTHDR is non-null because msg_controllen covers one header.
        unsafe {
            let space = libc::CMSG_SPACE(std::mem::size_of::<u16>() as u32) as usize;
            debug_assert!(space <= std::mem::size_of_val(&control));
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = space as _;
            let c = libc::CMSG_FIRSTHDR(&msg);
            if c.is_null() {
                return Err(io::Error::from_raw_os_error(libc::EINVAL));
            }
            (*c).cmsg_level = libc::SOL_UDP;
            (*c).cmsg_type = libc::UDP_SEGMENT;
            (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<u16>() as u32) as _;
            std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<u16>(), seg);
        }
    }
    // SAFETY: `msg` points at live buffers (address, iovecs, control) for the whole call.
    let n = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn recv_all(rx: &UdpSocket, n: usize) -> Vec<Vec<u8>> {
        rx.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut out = Vec::new();
        let mut buf = vec![0u8; 70_000];
        while out.len() < n {
            let Ok(len) = rx.recv(&mut buf) else { break };
            out.push(buf[..len].to_vec());
        }
        out
    }

    fn pair() -> (UdpSocket, UdpSocket, SockAddr) {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.set_nonblocking(true).unwrap();
        let dest = SockAddr::from(rx.local_addr().unwrap());
        (rx, tx, dest)
    }

    #[test]
    fn runs_group_equal_sizes_and_end_on_a_shorter_one() {
        let a = [0u8; 100];
        let b = [0u8; 60];
        let d: Vec<Parts<'_, 1>> = vec![[&a], [&a], [&a], [&b], [&b], [&a], [&b]];
        assert_eq!(run_end(&d, 0), 4); // a a a b
        assert_eq!(run_end(&d, 4), 5); // b, then a larger one starts a new run
        assert_eq!(run_end(&d, 5), 7); // a b
        assert_eq!(run_end(&d, 7), 7);
        // The segment cap.
        let many: Vec<Parts<'_, 1>> = vec![[&b]; 200];
        assert_eq!(run_end(&many, 0), MAX_SEGMENTS);
        // The byte cap: 1400-byte datagrams, at most 65 000 bytes.
        let big = [0u8; 1400];
        let many: Vec<Parts<'_, 1>> = vec![[&big]; 60];
        assert_eq!(run_end(&many, 0), MAX_RUN_BYTES / 1400);
        // The iovec cap with 3 slices per datagram still allows 64 segments.
        let three: Vec<Parts<'_, 3>> = vec![[&b, &b, &b]; 100];
        assert_eq!(run_end(&three, 0), MAX_SEGMENTS);
    }

    #[test]
    fn gso_send_arrives_as_separate_datagrams() {
        let (rx, tx, dest) = pair();
        let bodies: Vec<Vec<u8>> = (0..10u8)
            .map(|i| vec![i; if i == 9 { 300 } else { 1000 }])
            .collect();
        let d: Vec<Parts<'_, 2>> = bodies.iter().map(|b| [&b[..1], &b[1..]]).collect();
        let r = send_batch(&tx, &dest, &d, enabled());
        assert_eq!(r.sent, 10);
        assert_eq!(r.dropped, 0);
        if enabled() {
            assert_eq!(
                r.syscalls, 1,
                "one GSO send for 9 equal datagrams and a short last"
            );
        }
        let got = recv_all(&rx, 10);
        assert_eq!(got, bodies);
    }

    #[test]
    fn without_gso_every_datagram_is_its_own_send() {
        let (rx, tx, dest) = pair();
        let bodies: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 500]).collect();
        let d: Vec<Parts<'_, 1>> = bodies.iter().map(|b| [&b[..]]).collect();
        let r = send_batch(&tx, &dest, &d, false);
        assert_eq!((r.sent, r.syscalls), (5, 5));
        assert_eq!(recv_all(&rx, 5), bodies);
    }

    #[test]
    fn a_full_receiver_drops_without_blocking() {
        let (rx, tx, dest) = pair();
        let sock = socket2::SockRef::from(&rx);
        sock.set_recv_buffer_size(4096).unwrap();
        let sock = socket2::SockRef::from(&tx);
        sock.set_send_buffer_size(4096).unwrap();
        let body = vec![7u8; 1200];
        let d: Vec<Parts<'_, 1>> = vec![[&body[..]]; 64];
        let mut dropped = 0;
        let mut sent = 0;
        // Nobody reads: the receiver's buffer fills and the loopback silently discards, or
        // the sender's buffer fills and the send is refused; either way the call returns.
        for _ in 0..200 {
            let r = send_batch(&tx, &dest, &d, enabled());
            dropped += r.dropped;
            sent += r.sent;
        }
        assert_eq!(sent + dropped, 200 * 64);
    }
}
