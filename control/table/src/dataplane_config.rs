//! The `[dataplane]` section of the configuration file.
//!
//! Both processes read the same TOML file: the dataplane uses this section, and the control
//! process validates it (with unknown keys refused) before it starts the dataplane. Defining
//! it once, in the crate that is already the contract between the two, keeps them from
//! disagreeing about which keys exist.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// `[dataplane]`: sockets, cores and limits of `sluice-dataplane`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataplaneConfig {
    /// Number of executors; 0 means one per available core.
    pub cores: usize,
    /// RTMP listen address.
    pub rtmp_listen: SocketAddr,
    /// SRT listen address (UDP).
    pub srt_listen: SocketAddr,
    /// Viewer HTTP listen address (watch page, WHEP).
    pub http_listen: SocketAddr,
    /// Streams admitted at once across all apps (abort code 4 past it).
    pub max_streams: u32,
    /// Concurrent ingest connections from one source IP.
    pub max_connections_per_ip: u32,
    /// Time a connection may take to complete the handshake and start publishing.
    pub handshake_timeout_ms: u64,
    /// Time a publishing stream may go without audio or video before it is aborted (code 7).
    pub media_timeout_ms: u64,
    /// Bitrate above which a stream is aborted (code 6) unless its app sets its own; 0 = none.
    pub max_bitrate_kbps: u32,
    /// Cap on the bytes of the cached GOP kept per stream for new viewers and forwarders.
    pub gop_cache_max_bytes: usize,
    /// Largest RTP payload, in bytes.
    pub rtp_payload_mtu: usize,
    /// Address advertised to WebRTC viewers as a host candidate besides 127.0.0.1.
    pub webrtc_public_ip: Option<std::net::IpAddr>,
    /// First UDP port of the WebRTC range: core N uses `webrtc_port_base + N`, so a viewer's
    /// packets reach the core that owns its session; 0 = an ephemeral port per core.
    pub webrtc_port_base: u16,
    /// WHEP sessions allowed per channel; 0 = unlimited.
    pub max_viewers_per_channel: u32,
    /// Read batching for publishing RTMP connections, in microseconds: after a core has read
    /// what its ready connections sent, it waits this long before it looks again, so one
    /// wake-up serves the messages of many connections. 0 (the default) reads as soon as data
    /// arrives. A larger value trades up to this much added ingest latency for less CPU per
    /// message (`docs/performance.md`).
    pub rtmp_read_batch_us: u32,
}

impl Default for DataplaneConfig {
    fn default() -> Self {
        Self {
            cores: 0,
            rtmp_listen: SocketAddr::from(([0, 0, 0, 0], 1935)),
            srt_listen: SocketAddr::from(([0, 0, 0, 0], 6001)),
            http_listen: SocketAddr::from(([0, 0, 0, 0], 8081)),
            max_streams: 10_000,
            max_connections_per_ip: 256,
            handshake_timeout_ms: 10_000,
            media_timeout_ms: 10_000,
            max_bitrate_kbps: 0,
            gop_cache_max_bytes: 16 << 20,
            rtp_payload_mtu: 1200,
            webrtc_public_ip: None,
            webrtc_port_base: 0,
            max_viewers_per_channel: 0,
            rtmp_read_batch_us: 0,
        }
    }
}

impl DataplaneConfig {
    /// Checks ranges; the message names the offending key.
    pub fn validate(&self) -> Result<(), String> {
        if self.cores > 1024 {
            return Err("dataplane.cores: expected 0..=1024".into());
        }
        if !(16..=65_000).contains(&self.rtp_payload_mtu) {
            return Err("dataplane.rtp_payload_mtu: expected 16..=65000 bytes".into());
        }
        if self.handshake_timeout_ms == 0 || self.handshake_timeout_ms > 600_000 {
            return Err("dataplane.handshake_timeout_ms: expected 1..=600000".into());
        }
        if self.media_timeout_ms == 0 || self.media_timeout_ms > 3_600_000 {
            return Err("dataplane.media_timeout_ms: expected 1..=3600000".into());
        }
        if self.rtmp_read_batch_us > 100_000 {
            return Err("dataplane.rtmp_read_batch_us: expected 0..=100000".into());
        }
        if self.gop_cache_max_bytes > 1 << 30 {
            return Err("dataplane.gop_cache_max_bytes: expected at most 1 GiB".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtmp_read_batch_is_off_by_default_and_bounded() {
        let cfg = DataplaneConfig::default();
        assert_eq!(cfg.rtmp_read_batch_us, 0);
        assert!(cfg.validate().is_ok());
        let ok = DataplaneConfig {
            rtmp_read_batch_us: 2_000,
            ..DataplaneConfig::default()
        };
        assert!(ok.validate().is_ok());
        let too_long = DataplaneConfig {
            rtmp_read_batch_us: 100_001,
            ..DataplaneConfig::default()
        };
        let e = too_long.validate().unwrap_err();
        assert!(e.contains("rtmp_read_batch_us"), "{e}");
        let parsed: DataplaneConfig = toml::from_str("rtmp_read_batch_us = 500").unwrap();
        assert_eq!(parsed.rtmp_read_batch_us, 500);
    }
}
