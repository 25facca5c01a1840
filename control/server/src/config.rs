//! The TOML configuration file shared by both processes (`docs/configuration.md`,
//! architecture §1). Unknown keys are rejected (`deny_unknown_fields`) so that a typo is reported
//! with the offending key instead of being silently ignored. The dataplane reads only the
//! `[dataplane]` and `[table]` sections of the same file.

use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The whole configuration file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[control]`: the REST API and store.
    #[serde(default)]
    pub control: ControlConfig,
    /// `[[apps]]`: the apps (projects) this gateway serves.
    #[serde(default)]
    pub apps: Vec<AppConfig>,
    /// `[dataplane]`: read by `sluice-dataplane`.
    #[serde(default)]
    pub dataplane: DataplaneConfig,
    /// `[table]`: the shared-memory table both processes map.
    #[serde(default)]
    pub table: TableConfig,
    /// `[[webhooks]]`: notification receivers.
    #[serde(default)]
    pub webhooks: Vec<WebhookConfig>,
}

/// `[control]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlConfig {
    /// Address of the REST API, `/healthz` and `/metrics`.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Directory of the durable store and generated credentials.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// The `{region}` path segment this gateway answers for.
    #[serde(default = "default_region")]
    pub region: String,
    /// Host name printed in ready-to-use URLs by `sluice up` (default: the listen IP, or
    /// `127.0.0.1` when listening on all interfaces).
    #[serde(default)]
    pub public_host: Option<String>,
    /// Addresses returned by `GET /v2/ncs/ip` (the sources of webhook requests).
    #[serde(default)]
    pub notify_ips: Vec<String>,
    /// Largest accepted request body in bytes; larger bodies get 413.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Allowed difference in seconds between an HMAC request's `Date` and the server clock.
    #[serde(default = "default_skew")]
    pub hmac_max_skew_secs: u64,
    /// Per-app request quotas.
    #[serde(default)]
    pub rate_limits: RateLimits,
    /// REST customers (HTTP Basic and HMAC-SHA256).
    #[serde(default)]
    pub credentials: Vec<Credential>,
    /// Log filter (`error`, `warn`, `info`, `debug`, `trace`, or a `tracing` directive list such
    /// as `info,sluice=debug`); the `SLUICE_LOG` environment variable overrides it.
    #[serde(default = "default_log")]
    pub log: String,
    /// Log line format.
    #[serde(default)]
    pub log_format: LogFormat,
    /// Require REST credentials on `/metrics` too (default: open, like `/healthz`; keep the
    /// listener private or set this when the API faces the internet).
    #[serde(default)]
    pub metrics_auth: bool,
}

/// How log lines are written (to stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable text.
    #[default]
    Text,
    /// One JSON object per line (for log shippers).
    Json,
}

/// `[control.rate_limits]`: requests per second per app and operation class; 0 disables.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimits {
    /// POST (create) requests per second.
    #[serde(default = "fifty")]
    pub create: u32,
    /// DELETE requests per second.
    #[serde(default = "fifty")]
    pub delete: u32,
    /// GET requests per second.
    #[serde(default = "hundred")]
    pub query: u32,
    /// PUT and PATCH requests (and mute) per second.
    #[serde(default = "fifty")]
    pub update: u32,
}

/// One `[[control.credentials]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credential {
    /// Customer ID (HTTP Basic user name, HMAC `username`).
    pub id: String,
    /// Customer secret (HTTP Basic password, HMAC key).
    pub secret: String,
}

/// What the dataplane does when a second push arrives for a channel+uid already live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DuplicatePolicy {
    /// Refuse the newcomer (abort code 5).
    #[default]
    RefuseNew,
    /// Disconnect the old stream and admit the newcomer.
    ReplaceOld,
}

/// One `[[apps]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    /// The `{appId}` in REST paths.
    pub id: String,
    /// 32 hex characters: decrypts locally generated stream keys.
    pub certificate: String,
    /// Ingest host names bound to this app (RTMP tcUrl host, SRT `h=`).
    #[serde(default)]
    pub domains: Vec<String>,
    /// SRT passphrase (10..79 characters) required from SRT publishers, if set.
    #[serde(default)]
    pub srt_passphrase: Option<String>,
    /// SRT key length in bytes callers must use with the passphrase: 0 accepts the caller's
    /// choice, 16, 24 or 32 is enforced.
    #[serde(default)]
    pub srt_pbkeylen: u8,
    /// Concurrent streams allowed; 0 = unlimited.
    #[serde(default)]
    pub max_streams: u32,
    /// Highest admitted source bitrate in kbps; 0 = unlimited.
    #[serde(default)]
    pub max_bitrate_kbps: u32,
    /// Second push for a live channel+uid.
    #[serde(default)]
    pub duplicate_policy: DuplicatePolicy,
}

/// `[dataplane]`: defined in `sluice-table`, the contract crate, so both processes agree.
pub use sluice_table::DataplaneConfig;

/// `[table]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableConfig {
    /// The shared-memory table file (on tmpfs).
    #[serde(default = "default_table_path")]
    pub path: PathBuf,
    /// Most REST stream keys the table mirrors (the store itself has no limit). The table is
    /// allocated in full at start, so this and the next settings size its memory; see
    /// `docs/configuration.md` for the cost of each.
    #[serde(default = "default_max_keys")]
    pub max_keys: u32,
    /// Most live streams at once (stats slots; kick/mute commands get half as many).
    #[serde(default = "default_max_live_streams")]
    pub max_live_streams: u32,
    /// Most revoked local keys remembered until their own expiry.
    #[serde(default = "default_max_revocations")]
    pub max_revocations: u32,
    /// Most RTP forwarders across all streams.
    #[serde(default = "default_max_forwarders")]
    pub max_forwarders: u32,
    /// Slots of the event ring the dataplane writes and control drains.
    #[serde(default = "default_event_ring")]
    pub event_ring: u32,
}

fn default_max_keys() -> u32 {
    65_536
}
fn default_max_live_streams() -> u32 {
    8_192
}
fn default_max_revocations() -> u32 {
    16_384
}
fn default_max_forwarders() -> u32 {
    1_024
}
fn default_event_ring() -> u32 {
    4_096
}

impl TableConfig {
    /// The table capacities these settings ask for. Apps (64) and templates (10 per app) are
    /// fixed, so adding an app never changes the layout (a layout change rebuilds the table
    /// and restarts the dataplane).
    pub fn capacities(&self) -> sluice_table::Capacities {
        sluice_table::Capacities {
            keys: self.max_keys,
            revocations: self.max_revocations,
            forwarders: self.max_forwarders,
            // Only streams that were kicked or muted hold a command: half the streams is ample.
            commands: (self.max_live_streams / 2).max(1),
            stats: self.max_live_streams,
            events: self.event_ring,
            ..sluice_table::Capacities::default()
        }
    }
}

/// One `[[webhooks]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Receiver URL (`http://` or `https://`).
    pub url: String,
    /// Key of the `Agora-Signature` HMACs.
    pub secret: String,
    /// Event types (1 connected, 2 disconnected, 3 aborted, 4 profile updated) sent to this
    /// receiver; empty = all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<u32>,
    /// Apps whose events go to this receiver; empty = all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub apps: Vec<String>,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("sluice-data")
}
fn default_log() -> String {
    "info".into()
}
fn default_region() -> String {
    "na".into()
}
fn default_max_body() -> usize {
    64 * 1024
}
fn default_skew() -> u64 {
    300
}
fn fifty() -> u32 {
    50
}
fn hundred() -> u32 {
    100
}
fn default_table_path() -> PathBuf {
    PathBuf::from("/dev/shm/sluice.table")
}

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig {
            listen: default_listen(),
            data_dir: default_data_dir(),
            region: default_region(),
            public_host: None,
            notify_ips: Vec::new(),
            max_body_bytes: default_max_body(),
            hmac_max_skew_secs: default_skew(),
            rate_limits: RateLimits::default(),
            credentials: Vec::new(),
            log: default_log(),
            log_format: LogFormat::Text,
            metrics_auth: false,
        }
    }
}
impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            create: 50,
            delete: 50,
            query: 100,
            update: 50,
        }
    }
}
impl Default for TableConfig {
    fn default() -> Self {
        TableConfig {
            path: default_table_path(),
            max_keys: default_max_keys(),
            max_live_streams: default_max_live_streams(),
            max_revocations: default_max_revocations(),
            max_forwarders: default_max_forwarders(),
            event_ring: default_event_ring(),
        }
    }
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// TOML syntax, a wrong type or an unknown key (the message names it).
    #[error("{0}")]
    Parse(String),
    /// A value out of its allowed range; the message starts with the key path.
    #[error("{0}")]
    Invalid(String),
}

/// Longest accepted app ID: app IDs become path segments and table keys.
pub const MAX_APP_ID_LEN: usize = 64;

impl Config {
    /// Parses and validates TOML text.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads, parses and validates a file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::from_toml(&text)
    }

    /// Serialises back to TOML (the effective config `sluice up` writes for the dataplane).
    pub fn to_toml(&self) -> String {
        // Serialising plain structs of strings, numbers and arrays cannot fail.
        toml::to_string_pretty(self).unwrap_or_default()
    }

    /// Checks every value that serde's types do not already constrain.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        let c = &self.control;
        if c.region.is_empty()
            || c.region.len() > 32
            || !c
                .region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return bad(format!(
                "control.region: expected 1..32 lowercase letters, digits or '-', got {:?}",
                c.region
            ));
        }
        if c.max_body_bytes < 1024 || c.max_body_bytes > 16 * 1024 * 1024 {
            return bad("control.max_body_bytes: expected 1024..16777216".into());
        }
        if c.hmac_max_skew_secs == 0 || c.hmac_max_skew_secs > 3600 {
            return bad("control.hmac_max_skew_secs: expected 1..3600".into());
        }
        for (i, ip) in c.notify_ips.iter().enumerate() {
            if ip.parse::<std::net::IpAddr>().is_err() {
                return bad(format!(
                    "control.notify_ips[{i}]: expected an IP address, got {ip:?}"
                ));
            }
        }
        let mut ids = HashSet::new();
        for (i, cred) in c.credentials.iter().enumerate() {
            if cred.id.is_empty() || cred.id.contains(':') {
                return bad(format!(
                    "control.credentials[{i}].id: expected a non-empty string without ':'"
                ));
            }
            if cred.secret.is_empty() {
                return bad(format!(
                    "control.credentials[{i}].secret: expected a non-empty string"
                ));
            }
            if !ids.insert(cred.id.as_str()) {
                return bad(format!(
                    "control.credentials[{i}].id: duplicate id {:?}",
                    cred.id
                ));
            }
        }
        let mut app_ids = HashSet::new();
        for (i, app) in self.apps.iter().enumerate() {
            if !valid_app_id(&app.id) {
                return bad(format!(
                    "apps[{i}].id: expected 1..{MAX_APP_ID_LEN} letters, digits, '_' or '-', got {:?}",
                    app.id
                ));
            }
            if !app_ids.insert(app.id.as_str()) {
                return bad(format!("apps[{i}].id: duplicate app id {:?}", app.id));
            }
            if !is_hex32(&app.certificate) {
                return bad(format!("apps[{i}].certificate: expected 32 hex characters"));
            }
            for (j, d) in app.domains.iter().enumerate() {
                if d.is_empty()
                    || d.len() > 253
                    || !d
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b':')
                {
                    return bad(format!(
                        "apps[{i}].domains[{j}]: expected a host name, got {d:?}"
                    ));
                }
            }
            if let Some(p) = &app.srt_passphrase
                && !(10..=79).contains(&p.len())
            {
                return bad(format!(
                    "apps[{i}].srt_passphrase: expected 10..79 characters (SRT rule)"
                ));
            }
            if !matches!(app.srt_pbkeylen, 0 | 16 | 24 | 32) {
                return bad(format!(
                    "apps[{i}].srt_pbkeylen: expected 0, 16, 24 or 32, got {}",
                    app.srt_pbkeylen
                ));
            }
        }
        for (i, w) in self.webhooks.iter().enumerate() {
            if !(w.url.starts_with("http://") || w.url.starts_with("https://")) {
                return bad(format!(
                    "webhooks[{i}].url: expected an http:// or https:// URL"
                ));
            }
            if w.secret.is_empty() {
                return bad(format!("webhooks[{i}].secret: expected a non-empty string"));
            }
            if let Some(t) = w.events.iter().find(|t| !(1..=4).contains(*t)) {
                return bad(format!(
                    "webhooks[{i}].events: expected event types 1..4, got {t}"
                ));
            }
            if let Some(a) = w.apps.iter().find(|a| !valid_app_id(a)) {
                return bad(format!("webhooks[{i}].apps: invalid app id {a:?}"));
            }
        }
        if tracing_subscriber::EnvFilter::try_new(&c.log).is_err() {
            return bad(format!(
                "control.log: expected a level (error, warn, info, debug, trace) or a tracing filter, got {:?}",
                c.log
            ));
        }
        if let Err(m) = self.dataplane.validate() {
            return bad(m);
        }
        let t = &self.table;
        for (name, value, min, max) in [
            ("table.max_keys", t.max_keys, 16, 4_194_304),
            ("table.max_live_streams", t.max_live_streams, 1, 262_144),
            ("table.max_revocations", t.max_revocations, 16, 1_048_576),
            ("table.max_forwarders", t.max_forwarders, 1, 65_536),
            ("table.event_ring", t.event_ring, 64, 262_144),
        ] {
            if !(min..=max).contains(&value) {
                return bad(format!(
                    "{name}: must be between {min} and {max}, got {value}"
                ));
            }
        }
        Ok(())
    }
}

/// App IDs: 1..64 of `[A-Za-z0-9_-]`, so they are safe as path segments.
pub fn valid_app_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_APP_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Exactly 32 hex digits (an App certificate).
pub fn is_hex32(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_defaults() {
        let c = Config::from_toml("").unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.control.listen.port(), 8080);
        assert_eq!(c.table.path, PathBuf::from("/dev/shm/sluice.table"));
        assert_eq!(c.table.capacities(), sluice_table::Capacities::default());
    }

    #[test]
    fn full_example_parses_and_round_trips() {
        let text = r#"
[control]
listen = "127.0.0.1:9000"
region = "eu"
[[control.credentials]]
id = "cid"
secret = "sec"
[[apps]]
id = "demoapp"
certificate = "0123456789abcdef0123456789abcdef"
domains = ["ingest.example.com"]
max_streams = 5
duplicate_policy = "replace_old"
[dataplane]
cores = 2
[table]
path = "/tmp/x.table"
[[webhooks]]
url = "https://hooks.example.com/x"
secret = "s"
"#;
        let c = Config::from_toml(text).unwrap();
        assert_eq!(c.apps[0].duplicate_policy, DuplicatePolicy::ReplaceOld);
        assert_eq!(c.control.rate_limits.query, 100);
        let again = Config::from_toml(&c.to_toml()).unwrap();
        assert_eq!(again, c);
    }

    #[test]
    fn srt_pbkeylen_is_one_of_the_aes_key_lengths() {
        let cert = "0123456789abcdef0123456789abcdef";
        for ok in [0, 16, 24, 32] {
            let c = Config::from_toml(&format!(
                "[[apps]]\nid = \"a\"\ncertificate = \"{cert}\"\nsrt_pbkeylen = {ok}\n"
            ))
            .unwrap();
            assert_eq!(c.apps[0].srt_pbkeylen, ok);
        }
        let e = Config::from_toml(&format!(
            "[[apps]]\nid = \"a\"\ncertificate = \"{cert}\"\nsrt_pbkeylen = 20\n"
        ))
        .unwrap_err();
        assert!(e.to_string().contains("srt_pbkeylen"), "{e}");
    }

    #[test]
    fn table_sizes_are_configurable_and_bounded() {
        let c = Config::from_toml(
            "[table]\nmax_keys = 4096\nmax_live_streams = 256\nevent_ring = 512\n",
        )
        .unwrap();
        let caps = c.table.capacities();
        assert_eq!(
            (caps.keys, caps.stats, caps.commands, caps.events),
            (4096, 256, 128, 512)
        );
        // Unchanged settings keep their defaults.
        assert_eq!(
            caps.revocations,
            sluice_table::Capacities::default().revocations
        );
        let e = Config::from_toml("[table]\nmax_live_streams = 0\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "table.max_live_streams: must be between 1 and 262144, got 0"
        );
    }

    #[test]
    fn unknown_key_is_named() {
        let e = Config::from_toml("[control]\nlsten = \"1.2.3.4:1\"\n").unwrap_err();
        assert!(e.to_string().contains("lsten"), "{e}");
    }

    #[test]
    fn bad_certificate_names_the_key() {
        let e = Config::from_toml("[[apps]]\nid = \"a\"\ncertificate = \"xyz\"\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "apps[0].certificate: expected 32 hex characters"
        );
    }

    #[test]
    fn duplicate_app_and_bad_region_are_refused() {
        let cert = "0123456789abcdef0123456789abcdef";
        let t = format!(
            "[[apps]]\nid = \"a\"\ncertificate = \"{cert}\"\n[[apps]]\nid = \"a\"\ncertificate = \"{cert}\"\n"
        );
        assert!(
            Config::from_toml(&t)
                .unwrap_err()
                .to_string()
                .starts_with("apps[1].id")
        );
        let e = Config::from_toml("[control]\nregion = \"NA\"\n").unwrap_err();
        assert!(e.to_string().starts_with("control.region"));
    }
}
