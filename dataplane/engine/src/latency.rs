//! The gateway's own latency figure: from the moment a media unit's last bytes reached the
//! ingest socket to the moment its packets were handed to the egress sockets.
//!
//! Start: the kernel's receive timestamp of the last TCP segment a read returned
//! (`SO_TIMESTAMPING` with `SOF_TIMESTAMPING_RX_SOFTWARE`, delivered with `recvmsg`), so time
//! spent queued in the socket before the dataplane looked (a busy core, the read-batching
//! period) is counted, not only the dataplane's own processing. End: the wall clock right
//! after the last RTP forwarder's send and after every WebRTC viewer on the stream's core
//! has been given the packets (`sendmsg` returned). Both are `CLOCK_REALTIME`, the clock the
//! kernel stamps with.
//!
//! Recorded per media unit (a video access unit or an audio frame) on the stream's owner
//! core, in one histogram per core and egress kind, so recording never contends across
//! cores; `GET /api/latency` merges them. Not covered: SRT ingest (its receive buffer holds
//! packets for the negotiated TSBPD latency on purpose, so "added latency" means something
//! else there), Opus made from AAC (the transcoder runs off the reactor by design), and
//! viewers of a channel-level session on another core than the stream.

use std::sync::Mutex;

use hdrhistogram::Histogram;

/// Where a media unit went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Egress {
    /// RTP forwarders.
    Rtp,
    /// WebRTC (WHEP) viewers.
    Webrtc,
}

/// Largest latency a histogram tracks exactly, in microseconds (10 s); larger ones are
/// clamped to it (and still counted).
const MAX_US: u64 = 10_000_000;

fn histogram() -> Histogram<u64> {
    // Two significant digits: 1% resolution in ~4 kB per histogram.
    Histogram::new_with_bounds(1, MAX_US, 2).expect("static histogram bounds are valid")
}

/// One histogram per core and egress kind.
pub struct LatencyStats {
    rtp: Vec<Mutex<Histogram<u64>>>,
    webrtc: Vec<Mutex<Histogram<u64>>>,
}

/// Percentiles of one merged histogram, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    /// Media units recorded.
    pub count: u64,
    /// Median.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Largest.
    pub max_us: u64,
}

impl LatencyStats {
    /// Empty histograms for `cores` executors.
    pub fn new(cores: usize) -> Self {
        let make = || (0..cores.max(1)).map(|_| Mutex::new(histogram())).collect();
        LatencyStats {
            rtp: make(),
            webrtc: make(),
        }
    }

    fn slot(&self, egress: Egress, core: usize) -> &Mutex<Histogram<u64>> {
        let v = match egress {
            Egress::Rtp => &self.rtp,
            Egress::Webrtc => &self.webrtc,
        };
        &v[core % v.len()]
    }

    /// Records one media unit that arrived at `arrival_ns` and left at `sent_ns` (both
    /// nanoseconds since the Unix epoch). A clock step backwards records nothing.
    pub fn record(&self, egress: Egress, core: usize, arrival_ns: u64, sent_ns: u64) {
        let Some(d) = sent_ns.checked_sub(arrival_ns) else {
            return;
        };
        let us = (d / 1000).clamp(1, MAX_US);
        if let Ok(mut h) = self.slot(egress, core).lock() {
            // Within bounds by the clamp, so this cannot fail.
            let _ = h.record(us);
        }
    }

    /// Percentiles over every core.
    pub fn summary(&self, egress: Egress) -> Summary {
        let v = match egress {
            Egress::Rtp => &self.rtp,
            Egress::Webrtc => &self.webrtc,
        };
        let mut all = histogram();
        for h in v {
            if let Ok(h) = h.lock() {
                let _ = all.add(&*h);
            }
        }
        if all.is_empty() {
            return Summary::default();
        }
        Summary {
            count: all.len(),
            p50_us: all.value_at_quantile(0.50),
            p90_us: all.value_at_quantile(0.90),
            p99_us: all.value_at_quantile(0.99),
            p999_us: all.value_at_quantile(0.999),
            max_us: all.max(),
        }
    }

    /// Empties every histogram (a benchmark resets after its warm-up).
    pub fn reset(&self) {
        for h in self.rtp.iter().chain(&self.webrtc) {
            if let Ok(mut h) = h.lock() {
                h.reset();
            }
        }
    }
}

/// Asks the kernel to timestamp what socket `fd` receives (software receive timestamps,
/// read back by [`crate::recv::RecvArena::recv_nonblocking`]).
pub fn enable_rx_timestamps(fd: std::os::fd::RawFd) -> std::io::Result<()> {
    let flags: libc::c_int =
        (libc::SOF_TIMESTAMPING_RX_SOFTWARE | libc::SOF_TIMESTAMPING_SOFTWARE) as libc::c_int;
    // SAFETY: `flags` outlives the call and its size is passed.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPING,
            (&flags as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_merge_cores_and_reset_empties() {
        let s = LatencyStats::new(2);
        for i in 0..99u64 {
            s.record(Egress::Rtp, 0, 1_000_000, 1_000_000 + 100_000 + i);
        }
        // One slow unit on the other core: the max, and above p99 of 100 samples.
        s.record(Egress::Rtp, 1, 0, 5_000_000);
        let r = s.summary(Egress::Rtp);
        assert_eq!(r.count, 100);
        assert!((99..=101).contains(&r.p50_us), "{r:?}");
        assert!((99..=101).contains(&r.p99_us), "{r:?}");
        assert!((4_950..=5_050).contains(&r.max_us), "{r:?}");
        assert_eq!(s.summary(Egress::Webrtc), Summary::default());
        s.reset();
        assert_eq!(s.summary(Egress::Rtp).count, 0);
    }

    #[test]
    fn a_clock_step_backwards_records_nothing_and_huge_gaps_are_clamped() {
        let s = LatencyStats::new(1);
        s.record(Egress::Webrtc, 0, 2_000, 1_000);
        assert_eq!(s.summary(Egress::Webrtc).count, 0);
        s.record(Egress::Webrtc, 0, 0, u64::MAX);
        let r = s.summary(Egress::Webrtc);
        assert_eq!(r.count, 1);
        assert!(r.max_us >= MAX_US * 99 / 100, "{r:?}");
    }
}
