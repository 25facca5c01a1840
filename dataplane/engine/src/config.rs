//! The dataplane's part of the Sluice configuration file.
//!
//! Both processes read the same TOML file. The control process validates all of it; the
//! dataplane reads only `[dataplane]` and `[table]` and ignores the other sections.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

/// The whole file, as far as the dataplane is concerned.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct FileConfig {
    /// `[dataplane]`.
    #[serde(default)]
    pub dataplane: DataplaneConfig,
    /// `[table]`.
    #[serde(default)]
    pub table: TableConfig,
}

/// `[table]`: where the shared-memory table lives.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct TableConfig {
    /// Path of the table file (on tmpfs).
    pub path: PathBuf,
}

impl Default for TableConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("/dev/shm/sluice.table"),
        }
    }
}

/// `[dataplane]`: sockets, cores and limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct DataplaneConfig {
    /// Number of executors; 0 means one per available core.
    pub cores: usize,
    /// RTMP listen address.
    pub rtmp_listen: SocketAddr,
    /// SRT listen address.
    pub srt_listen: SocketAddr,
    /// Viewer HTTP listen address (watch page, WHEP).
    pub http_listen: SocketAddr,
    /// Streams admitted at once across all apps (abort code 4 past it).
    pub max_streams: u32,
    /// Concurrent connections from one source IP (RTMP and SRT together).
    pub max_connections_per_ip: u32,
    /// Time a connection may take to complete the handshake and start publishing.
    pub handshake_timeout_ms: u64,
    /// Time a publishing stream may go without audio or video before it is aborted (code 7).
    pub media_timeout_ms: u64,
    /// Bitrate above which a stream is aborted (code 6), unless its app sets its own; 0 = no limit.
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
}

impl Default for DataplaneConfig {
    fn default() -> Self {
        Self {
            cores: 0,
            rtmp_listen: "0.0.0.0:1935".parse().expect("valid literal"),
            srt_listen: "0.0.0.0:6001".parse().expect("valid literal"),
            http_listen: "0.0.0.0:8081".parse().expect("valid literal"),
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
        }
    }
}

impl FileConfig {
    /// Reads the file; a missing file is an error, an absent section takes its defaults.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config {}", path.display()))?;
        let cfg: FileConfig =
            toml::from_str(&text).with_context(|| format!("parsing config {}", path.display()))?;
        Ok(cfg)
    }
}
