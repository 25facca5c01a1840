//! Structured logs with `tracing`: the filter comes from `SLUICE_LOG` if set, else from
//! `[control] log`; lines are text or JSON (`[control] log_format`), on stderr.
//!
//! Stream keys are credentials (whoever holds one can publish into the channel), so the
//! control process never logs one whole: [`mask_key`] keeps a short prefix and suffix, enough
//! to tell keys apart in an incident.

use crate::config::{ControlConfig, LogFormat};
use tracing_subscriber::EnvFilter;

/// Environment variable that overrides `[control] log`.
pub const LOG_ENV: &str = "SLUICE_LOG";

/// A stream key for logs: `abcd…wxyz (len 42)`; keys shorter than 12 characters show nothing.
pub fn mask_key(key: &str) -> String {
    let n = key.chars().count();
    if n < 12 {
        return format!("*** (len {n})");
    }
    let head: String = key.chars().take(4).collect();
    let tail: String = key.chars().skip(n - 4).collect();
    format!("{head}…{tail} (len {n})")
}

/// The effective filter text: `SLUICE_LOG` when set and valid, else the configured one.
pub fn filter_text(cfg: &ControlConfig, env: Option<&str>) -> String {
    match env {
        Some(e) if !e.is_empty() && EnvFilter::try_new(e).is_ok() => e.to_string(),
        _ => cfg.log.clone(),
    }
}

/// Installs the global subscriber (a second call is a no-op).
pub fn init(cfg: &ControlConfig) {
    let env = std::env::var(LOG_ENV).ok();
    let filter = EnvFilter::try_new(filter_text(cfg, env.as_deref()))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match cfg.log_format {
        LogFormat::Text => b.try_init(),
        LogFormat::Json => b.json().flatten_event(true).try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_keep_only_a_prefix_and_suffix() {
        let k = "nY9Eec6Y-5xgTGYBRspyC9SBxTeUjZ0OCBTkfmKqXoLMkC0jdmM";
        let m = mask_key(k);
        assert_eq!(m, format!("nY9E…jdmM (len {})", k.len()));
        assert!(m.starts_with("nY9E…"));
        assert!(m.contains(&k[k.len() - 4..]));
        assert!(!m.contains(&k[4..k.len() - 4]));
        assert_eq!(mask_key("short"), "*** (len 5)");
    }

    #[test]
    fn env_overrides_config_unless_invalid() {
        let c = ControlConfig::default();
        assert_eq!(filter_text(&c, None), "info");
        assert_eq!(filter_text(&c, Some("debug")), "debug");
        assert_eq!(filter_text(&c, Some("")), "info");
        assert_eq!(filter_text(&c, Some("sluice=[[[")), "info");
    }
}
