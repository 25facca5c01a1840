//! The dataplane's part of the Sluice configuration file.
//!
//! Both processes read the same TOML file. The control process validates all of it; the
//! dataplane reads only `[dataplane]` and `[table]` and ignores the other sections.

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

pub use sluice_table::DataplaneConfig;

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
