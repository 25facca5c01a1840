//! # sluice-table
//!
//! The shared-memory table between Sluice's two processes (architecture §3): the control
//! process writes configuration (apps, REST keys, revoked local keys, templates, forwarders,
//! stream commands); the dataplane writes live-stream stats and an event ring. Both map one
//! file on tmpfs (default `/dev/shm/sluice-<name>.table`, mode 0600) with `memmap2`.
//!
//! ## Concurrency model
//! - Config regions have a **single writer**: the control process (one [`Table`] handle, and
//!   calls to the config writers must not run concurrently with each other). Readers in any
//!   process never block it and never see a torn record.
//! - Each stats slot has one writer: the dataplane core that claimed it.
//! - The event ring has many producers (dataplane cores) and one consumer (control).
//! - Every slot is guarded by a seqlock built only from atomics; the payload is stored as
//!   `AtomicU64` words, because a plain memcpy racing with a writer is undefined behaviour.
//!
//! ## Layout
//! See [`layout`] for the byte layout of the header and regions.
//!
//! ## Example
//! ```no_run
//! use sluice_table::{AppRecord, Capacities, Table};
//! # fn main() -> Result<(), sluice_table::TableError> {
//! let path = std::path::Path::new("/dev/shm/sluice-demo.table");
//! let control = Table::create_or_open(path, &Capacities::default())?;
//! control.put_app(&AppRecord { id: "demoapp".into(), ..Default::default() })?;
//! let dataplane = Table::open(path)?;
//! assert!(dataplane.app("demoapp").is_some());
//! # Ok(()) }
//! ```

pub mod layout;
mod records;

pub use records::{
    AppRecord, AudioStats, ConfigSnapshot, DuplicatePolicy, Event, EventKind, ForwarderRecord,
    KeyRecord, RevocationRecord, StreamCommand, StreamStats, StreamStatus, TemplateRecord,
    VideoStats,
};

use std::path::{Path, PathBuf};

/// Default table path for a gateway instance called `name`.
pub fn default_path(name: &str) -> PathBuf {
    PathBuf::from(format!("/dev/shm/sluice-{name}.table"))
}

/// Number of slots in each region. Hash regions (`keys`, `revocations`) are rounded up to a
/// power of two; every capacity must be at least 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacities {
    /// Apps (linear scan).
    pub apps: u32,
    /// REST stream keys (open addressing).
    pub keys: u32,
    /// Revoked local keys (open addressing).
    pub revocations: u32,
    /// Templates (linear scan).
    pub templates: u32,
    /// RTP forwarders (linear scan).
    pub forwarders: u32,
    /// Stream commands (linear scan).
    pub commands: u32,
    /// Live-stream stats slots.
    pub stats: u32,
    /// Event ring slots.
    pub events: u32,
}

impl Default for Capacities {
    fn default() -> Self {
        Capacities {
            apps: 64,
            keys: 65536,
            revocations: 16384,
            templates: 640,
            forwarders: 1024,
            commands: 4096,
            stats: 8192,
            events: 4096,
        }
    }
}

/// Errors from creating, opening or writing the table.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// The file could not be created, opened, sized or mapped.
    #[error("table file {path}: {source}")]
    Io {
        /// The table file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a Sluice table (wrong magic), or is shorter than its header says.
    #[error("table file {path} is not a Sluice table: {detail}")]
    NotATable {
        /// The table file.
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },
    /// The file was written by a build with a different table ABI.
    #[error(
        "table file {path} has ABI version {found}, this build speaks version {expected}; \
         restart both processes from the same release"
    )]
    AbiMismatch {
        /// The table file.
        path: PathBuf,
        /// The version in the file.
        found: u32,
        /// The version this build implements.
        expected: u32,
    },
    /// The header's region layout is inconsistent (overlapping or out-of-file regions).
    #[error("table file {path} has a corrupt layout: {detail}")]
    CorruptLayout {
        /// The table file.
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },
    /// A capacity of 0, or a layout that does not fit in 64-bit offsets.
    #[error("invalid capacities: {0}")]
    InvalidCapacities(String),
    /// A record's serialised form does not fit its region's slot (never truncated).
    #[error("{region} record of {len} bytes does not fit a {max}-byte slot payload")]
    RecordTooLarge {
        /// The region.
        region: &'static str,
        /// Serialised length.
        len: usize,
        /// Payload bytes per slot.
        max: usize,
    },
    /// The region has no free slot (or the hash region reached its load limit).
    #[error("{region} region is full ({capacity} slots)")]
    RegionFull {
        /// The region.
        region: &'static str,
        /// Its capacity.
        capacity: u32,
    },
    /// A record could not be serialised (internal error).
    #[error("serialising a {region} record: {source}")]
    Encode {
        /// The region.
        region: &'static str,
        /// The serializer's error.
        #[source]
        source: rmp_serde::encode::Error,
    },
    /// A slot stayed locked by a writer that seems to have died (event ring only).
    #[error("{region} slot {index} is held by another writer")]
    Busy {
        /// The region.
        region: &'static str,
        /// The slot index.
        index: u32,
    },
}

/// A claimed stats slot: the handle its one writer (a dataplane core) writes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StatsSlot(pub u32);

/// The consumer's position in the event ring: the sequence number of the next event to read.
/// Starts at 0 (the oldest event still in the ring is read first); control may persist it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EventCursor {
    /// Sequence number of the next event to read.
    pub next: u64,
}

/// The result of [`Table::read_events`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EventBatch {
    /// Events in publication order.
    pub events: Vec<Event>,
    /// Events that were overwritten (ring lapped the reader) or abandoned before they were
    /// read.
    pub lost: u64,
}

/// What [`Table::sync_config`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SyncReport {
    /// Records written because they were missing or different.
    pub upserted: usize,
    /// Records removed because `desired` did not contain them.
    pub removed: usize,
    /// Records already equal to `desired`.
    pub unchanged: usize,
}

/// A mapped table. `Send + Sync`; every method takes `&self`.
pub struct Table {
    _private: (),
}

#[allow(unused_variables)]
impl Table {
    /// Control side: opens the table at `path` if it exists with this build's ABI and the
    /// same capacities, otherwise builds a fresh one (mode 0600) and atomically renames it over
    /// `path`. A dataplane still mapping the replaced file notices via [`Table::is_replaced`].
    pub fn create_or_open(path: &Path, caps: &Capacities) -> Result<Table, TableError> {
        unimplemented!()
    }

    /// Dataplane side: opens an existing table, refusing a wrong magic or ABI version.
    pub fn open(path: &Path) -> Result<Table, TableError> {
        unimplemented!()
    }

    /// Whether the file at this table's path is no longer the one mapped (control replaced
    /// it); the dataplane should [`Table::open`] it again.
    pub fn is_replaced(&self) -> bool {
        unimplemented!()
    }

    /// The capacities in the mapped file.
    pub fn capacities(&self) -> Capacities {
        unimplemented!()
    }

    /// Config generation: bumped by every config write (after the write is visible).
    pub fn generation(&self) -> u64 {
        unimplemented!()
    }

    /// Inserts or replaces (in place) the app with `r.id`.
    pub fn put_app(&self, r: &AppRecord) -> Result<(), TableError> {
        unimplemented!()
    }
    /// Removes the app `id`; `Ok(false)` if absent.
    pub fn remove_app(&self, id: &str) -> Result<bool, TableError> {
        unimplemented!()
    }
    /// Inserts or replaces (in place) the key `r.key`.
    pub fn put_key(&self, r: &KeyRecord) -> Result<(), TableError> {
        unimplemented!()
    }
    /// Removes the key; `Ok(false)` if absent.
    pub fn remove_key(&self, key: &str) -> Result<bool, TableError> {
        unimplemented!()
    }
    /// Inserts or replaces the revocation of `(r.app_id, r.key)`.
    pub fn put_revocation(&self, r: &RevocationRecord) -> Result<(), TableError> {
        unimplemented!()
    }
    /// Removes the revocation of `(app_id, key)`; `Ok(false)` if absent.
    pub fn remove_revocation(&self, app_id: &str, key: &str) -> Result<bool, TableError> {
        unimplemented!()
    }
    /// Inserts or replaces the template `(r.app_id, r.id)`.
    pub fn put_template(&self, r: &TemplateRecord) -> Result<(), TableError> {
        unimplemented!()
    }
    /// Removes the template; `Ok(false)` if absent.
    pub fn remove_template(&self, app_id: &str, id: &str) -> Result<bool, TableError> {
        unimplemented!()
    }
    /// Inserts or replaces the forwarder `(r.app_id, r.id)`.
    pub fn put_forwarder(&self, r: &ForwarderRecord) -> Result<(), TableError> {
        unimplemented!()
    }
    /// Removes the forwarder; `Ok(false)` if absent.
    pub fn remove_forwarder(&self, app_id: &str, id: &str) -> Result<bool, TableError> {
        unimplemented!()
    }
    /// Inserts or replaces the command for `(r.app_id, r.sid)`.
    pub fn put_command(&self, r: &StreamCommand) -> Result<(), TableError> {
        unimplemented!()
    }
    /// Removes the command; `Ok(false)` if absent.
    pub fn remove_command(&self, app_id: &str, sid: &str) -> Result<bool, TableError> {
        unimplemented!()
    }

    /// Makes the config regions equal to `desired` (control, at start, rebuilding from the
    /// store without disturbing a running dataplane): upserts what is missing or different,
    /// then removes what is extra; never clear-then-fill, so an entry present in both the
    /// table and `desired` stays readable throughout.
    pub fn sync_config(&self, desired: &ConfigSnapshot) -> Result<SyncReport, TableError> {
        unimplemented!()
    }

    /// The app `id`.
    pub fn app(&self, id: &str) -> Option<AppRecord> {
        unimplemented!()
    }
    /// All apps.
    pub fn apps(&self) -> Vec<AppRecord> {
        unimplemented!()
    }
    /// The REST key `key`.
    pub fn key(&self, key: &str) -> Option<KeyRecord> {
        unimplemented!()
    }
    /// Whether the local key `key` of `app_id` is revoked.
    pub fn is_revoked(&self, app_id: &str, key: &str) -> bool {
        unimplemented!()
    }
    /// The template `(app_id, id)`.
    pub fn template(&self, app_id: &str, id: &str) -> Option<TemplateRecord> {
        unimplemented!()
    }
    /// All forwarders.
    pub fn forwarders(&self) -> Vec<ForwarderRecord> {
        unimplemented!()
    }
    /// All stream commands.
    pub fn commands(&self) -> Vec<StreamCommand> {
        unimplemented!()
    }
    /// Every config region's content.
    pub fn snapshot_config(&self) -> ConfigSnapshot {
        unimplemented!()
    }

    /// Claims a free stats slot for a new stream (CAS on the slot's owner word); `None` when
    /// all are taken.
    pub fn claim_stats_slot(&self) -> Option<StatsSlot> {
        unimplemented!()
    }
    /// Publishes `s` in `slot` (only the claiming core may call this for `slot`).
    pub fn write_stats(&self, slot: StatsSlot, s: &StreamStats) -> Result<(), TableError> {
        unimplemented!()
    }
    /// Clears and frees `slot` (stream ended).
    pub fn release_stats_slot(&self, slot: StatsSlot) {
        unimplemented!()
    }
    /// Dataplane start: clears every stats slot (the previous dataplane's streams are gone)
    /// and repairs event slots a crashed producer left half-written.
    pub fn reset_stats(&self) {
        unimplemented!()
    }
    /// Every live stream's stats.
    pub fn all_stats(&self) -> Vec<StreamStats> {
        unimplemented!()
    }

    /// Appends an event (any dataplane core). When the ring is full the oldest unread event
    /// is overwritten; the consumer learns how many it lost.
    pub fn push_event(&self, e: &Event) -> Result<(), TableError> {
        unimplemented!()
    }
    /// Reads published events from `cursor` on, in order, and advances `cursor`. Stops at the
    /// first event still being written.
    pub fn read_events(&self, cursor: &mut EventCursor) -> EventBatch {
        unimplemented!()
    }

    /// Dataplane liveness: records `now_ms` (Unix milliseconds).
    pub fn dataplane_heartbeat(&self, now_ms: u64) {
        unimplemented!()
    }
    /// The last heartbeat, Unix milliseconds (0 = never).
    pub fn last_dataplane_heartbeat(&self) -> u64 {
        unimplemented!()
    }
}
