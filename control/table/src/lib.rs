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
//! ## Layout (ABI version 1)
//! The file is an array of little-endian 64-bit words, each accessed only as an `AtomicU64`.
//! Header, page 0:
//! ```text
//! byte     word  field
//! 0..8     0     magic "SLUICETB" (stored last when the file is built)
//! 8..16    1     abi_version (low 32 bits) | header_bytes = 4096 (high 32 bits)
//! 16..24   2     file_bytes
//! 24..152  3..19 region table, 8 x {offset: u64, slot_bytes: u32 | capacity: u32 << 32}
//! 256..264 32    config generation (bumped after every config write)
//! 264..272 33    dataplane heartbeat, Unix ms
//! 272..280 34    event head: event sequence numbers claimed so far
//! 280..288 35    pid of the control process (config writer), for dead-writer detection
//! 288..296 36    pid of the dataplane process (stats and event writer)
//! ..4096         reserved (zero)
//! ```
//! Regions follow in this order, each starting on a 4096-byte boundary:
//! ```text
//! region       index       default slots  slot bytes  writer
//! apps         linear                 64        2048  control
//! keys         hash (FNV)          65536         768  control
//! revocations  hash (FNV)          16384        1024  control
//! templates    linear                640        4096  control
//! forwarders   linear               1024         512  control
//! commands     linear               4096         512  control
//! stats        owner CAS            8192        4096  one dataplane core per slot
//! events       ring                 4096        6144  any dataplane core
//! ```
//! Every slot:
//! ```text
//! word  field
//! 0     seq      seqlock: odd while written, even when stable (events: 2n+1 / 2n+2)
//! 1     meta     state (0 empty, 1 occupied, 2 tombstone) | payload length << 32
//! 2     tag      FNV-1a 64 of the record's identity (events: sequence number n)
//! 3     aux      stats: owner word (0 free, 1 claimed), outside the seqlock
//! 4..   payload  rmp-serde bytes of the record (a msgpack map with field names)
//! ```
//! Hash regions use linear probing from `tag & (capacity - 1)` with tombstones; a tombstone
//! followed by an empty slot is turned back into an empty slot, and inserts stop at 7/8 load.
//! Records are serialised with field names, so fields can be added (with
//! `#[serde(default)]`) without changing the ABI version; a record that does not fit its slot
//! is refused ([`TableError::RecordTooLarge`]), never truncated. [`layout`] has the constants.
//!
//! ## Lifecycle
//! - Control calls [`Table::create_or_open`] then [`Table::sync_config`] with the store's
//!   content. If the file has another ABI or layout, control builds a fresh file and renames
//!   it into place; a running dataplane sees [`Table::is_replaced`] and reopens.
//! - The dataplane calls [`Table::open`] (refusing a foreign ABI), then
//!   [`Table::reset_stats`], then heartbeats. It re-reads cached config when
//!   [`Table::generation`] changes.
//! - The file is fully written at creation, so it occupies its whole size in tmpfs: about
//!   125 MiB with the default capacities (mostly keys 48 MiB, stats 32 MiB, events 24 MiB).
//!   Lower [`Capacities`] on small machines or containers.
//! - A slot whose writer died inside it stays locked. Readers (and event producers) wait on
//!   a locked slot while its sequence number moves; once it has stayed at one odd value for
//!   100 ms and the writer's pid (header words 35/36) is gone, or for 2 s in any case, they
//!   treat the record as absent. Control's next start clears such config slots and resyncs;
//!   the dataplane's next start repairs stats and event slots.
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

mod dataplane_config;
pub use dataplane_config::DataplaneConfig;
pub mod layout;
mod records;
mod slot;

pub use records::{
    AppRecord, AudioStats, ConfigSnapshot, DuplicatePolicy, Event, EventKind, ForwarderRecord,
    KeyRecord, RevocationRecord, StreamCommand, StreamStats, StreamStatus, TemplateRecord,
    VideoStats,
};

use layout::{Layout, RegionId, digest};
use serde::Serialize;
use serde::de::DeserializeOwned;
use slot::{Slot, State};
use std::collections::HashMap;
use std::fs::{File, OpenOptions, Permissions};
use std::io::Write as _;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};

/// The dataplane core (index among `cores`) that owns the stream of a channel+uid: every key
/// that resolves to the same identity lands on the same core, so duplicate checks and viewer
/// lookups stay core-local. Shared here so the dataplane, control and tests agree.
pub fn owner_core(app_id: &str, channel: &str, uid: &str, cores: usize) -> usize {
    use std::hash::{Hash, Hasher};
    if cores <= 1 {
        return 0;
    }
    // `DefaultHasher::new()` uses fixed keys, so the mapping is stable across processes
    // built by the same toolchain (both processes ship together).
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (app_id, channel, uid).hash(&mut h);
    (h.finish() % cores as u64) as usize
}

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
    /// REST stream keys (open addressing; accepts up to 7/8 of this many live keys).
    pub keys: u32,
    /// Revoked local keys (open addressing; up to 7/8 of this many live entries).
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
    /// The file system (tmpfs) has no room for the table. Creation writes the whole file, so
    /// this shows up here instead of as a SIGBUS when a page is first touched later.
    #[error(
        "table file {path} needs {bytes} bytes and the file system is full: enlarge /dev/shm \
         (e.g. docker --shm-size) or lower the table capacities"
    )]
    NoSpace {
        /// The table file.
        path: PathBuf,
        /// The file size the capacities need.
        bytes: u64,
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
    /// A stats slot index outside the region (not one [`Table::claim_stats_slot`] returned).
    #[error("no stats slot {0}")]
    NoSuchSlot(u32),
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
///
/// Config writers (`put_*`, `remove_*`, `sync_config`) are serialised by a mutex inside the
/// handle, but only one *process* may write config: the control process.
pub struct Table {
    map: memmap2::MmapRaw,
    path: PathBuf,
    /// `(device, inode)` of the mapped file, to notice replacement.
    identity: (u64, u64),
    layout: Layout,
    /// Writer-side bookkeeping, computed on the first config write.
    writer: Mutex<Option<WriterState>>,
    /// Where the next stats-slot search starts (a hint; correctness does not depend on it).
    stats_hint: AtomicU32,
    /// Whether this handle built the file (see [`Table::was_created`]).
    created: bool,
}

/// Live-entry counts of the hash regions, kept by the single config writer.
#[derive(Debug, Clone, Copy)]
struct WriterState {
    live_keys: u32,
    live_revocations: u32,
}

/// A record stored in a config region, with its identity.
trait Record: Serialize + DeserializeOwned + PartialEq + Clone {
    const REGION: RegionId;
    /// The identity's digest.
    fn tag(&self) -> u64;
    /// Whether `other` has the same identity.
    fn same(&self, other: &Self) -> bool;
}

impl Record for AppRecord {
    const REGION: RegionId = RegionId::Apps;
    fn tag(&self) -> u64 {
        digest(&[&self.id])
    }
    fn same(&self, o: &Self) -> bool {
        self.id == o.id
    }
}
impl Record for KeyRecord {
    const REGION: RegionId = RegionId::Keys;
    fn tag(&self) -> u64 {
        digest(&[&self.key])
    }
    fn same(&self, o: &Self) -> bool {
        self.key == o.key
    }
}
impl Record for RevocationRecord {
    const REGION: RegionId = RegionId::Revocations;
    fn tag(&self) -> u64 {
        digest(&[&self.app_id, &self.key])
    }
    fn same(&self, o: &Self) -> bool {
        self.app_id == o.app_id && self.key == o.key
    }
}
impl Record for TemplateRecord {
    const REGION: RegionId = RegionId::Templates;
    fn tag(&self) -> u64 {
        digest(&[&self.app_id, &self.id])
    }
    fn same(&self, o: &Self) -> bool {
        self.app_id == o.app_id && self.id == o.id
    }
}
impl Record for ForwarderRecord {
    const REGION: RegionId = RegionId::Forwarders;
    fn tag(&self) -> u64 {
        digest(&[&self.app_id, &self.id])
    }
    fn same(&self, o: &Self) -> bool {
        self.app_id == o.app_id && self.id == o.id
    }
}
impl Record for StreamCommand {
    const REGION: RegionId = RegionId::Commands;
    fn tag(&self) -> u64 {
        digest(&[&self.app_id, &self.sid])
    }
    fn same(&self, o: &Self) -> bool {
        self.app_id == o.app_id && self.sid == o.sid
    }
}

/// Hash regions refuse new entries beyond this fraction (7/8) of their capacity, so probes
/// for absent keys stay short.
fn max_live(capacity: u32) -> u32 {
    capacity - capacity / 8
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TableError + '_ {
    move |source| TableError::Io {
        path: path.to_owned(),
        source,
    }
}

fn encode<T: Serialize>(region: RegionId, r: &T) -> Result<Vec<u8>, TableError> {
    rmp_serde::to_vec_named(r).map_err(|source| TableError::Encode {
        region: region.name(),
        source,
    })
}

impl Table {
    /// Control side: opens the table at `path` if it exists with this build's ABI and the
    /// same layout (capacities and slot sizes), otherwise builds a fresh one (mode 0600) and
    /// atomically renames it over `path`. A dataplane still mapping a replaced file notices
    /// via [`Table::is_replaced`]. Config slots a crashed writer left half-written are
    /// cleared; call [`Table::sync_config`] next.
    pub fn create_or_open(path: &Path, caps: &Capacities) -> Result<Table, TableError> {
        let want = Layout::for_capacities(caps).map_err(TableError::InvalidCapacities)?;
        match Table::open(path) {
            Ok(t) if t.layout == want => {
                t.claim_config_writer();
                t.recover_config_slots();
                return Ok(t);
            }
            Ok(_)
            | Err(TableError::NotATable { .. })
            | Err(TableError::AbiMismatch { .. })
            | Err(TableError::CorruptLayout { .. }) => {}
            Err(TableError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            }
            Err(e) => return Err(e),
        }
        create_file(path, &want)?;
        let mut t = Table::open(path)?;
        t.created = true;
        t.claim_config_writer();
        Ok(t)
    }

    /// Whether [`Table::create_or_open`] built a fresh file (first start, or the old one had
    /// another ABI or layout). Its event sequence numbers start again at 0, so a saved
    /// [`EventCursor`] no longer applies: start from `EventCursor::default()`.
    pub fn was_created(&self) -> bool {
        self.created
    }

    /// Dataplane side: opens an existing table, refusing a wrong magic or ABI version. Fails
    /// with [`TableError::Io`] (`NotFound`) until control has created the file: retry.
    pub fn open(path: &Path) -> Result<Table, TableError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(io_err(path))?;
        let meta = file.metadata().map_err(io_err(path))?;
        let not_a_table = |detail: &str| TableError::NotATable {
            path: path.to_owned(),
            detail: detail.to_owned(),
        };
        if meta.len() < u64::from(layout::HEADER_BYTES) {
            return Err(not_a_table("shorter than the header"));
        }
        let map = memmap2::MmapRaw::map_raw(&file).map_err(io_err(path))?;
        let mut t = Table {
            map,
            path: path.to_owned(),
            identity: (meta.dev(), meta.ino()),
            layout: Layout {
                regions: [layout::RegionLayout::unpack(0, 0); layout::REGION_COUNT],
                file_bytes: 0,
            },
            writer: Mutex::new(None),
            stats_hint: AtomicU32::new(0),
            created: false,
        };
        let w = |i: usize| t.words().get(i).map_or(0, |a| a.load(Ordering::Acquire));
        if w(layout::word::MAGIC).to_le_bytes() != layout::MAGIC {
            return Err(not_a_table("bad magic"));
        }
        let abi = w(layout::word::ABI);
        if abi as u32 != layout::ABI_VERSION {
            return Err(TableError::AbiMismatch {
                path: path.to_owned(),
                found: abi as u32,
                expected: layout::ABI_VERSION,
            });
        }
        let corrupt = |detail: String| TableError::CorruptLayout {
            path: path.to_owned(),
            detail,
        };
        if (abi >> 32) as u32 != layout::HEADER_BYTES {
            return Err(corrupt(format!("header size {}", abi >> 32)));
        }
        let mut lay = Layout {
            regions: t.layout.regions,
            file_bytes: w(layout::word::FILE_BYTES),
        };
        for (i, r) in lay.regions.iter_mut().enumerate() {
            let base = layout::word::REGIONS + 2 * i;
            *r = layout::RegionLayout::unpack(w(base), w(base + 1));
        }
        lay.validate(meta.len()).map_err(corrupt)?;
        t.layout = lay;
        Ok(t)
    }

    /// The mapping as atomic words.
    fn words(&self) -> &[AtomicU64] {
        atomic_words(&self.map)
    }

    fn header(&self, word: usize) -> &AtomicU64 {
        // The file is at least HEADER_BYTES long (checked at open), so header words exist.
        &self.words()[word]
    }

    /// The pid of the process that writes region `r` (0 if not recorded).
    fn writer_pid(&self, r: RegionId) -> u32 {
        let word = match r {
            RegionId::Stats | RegionId::Events => layout::word::DATAPLANE_PID,
            _ => layout::word::CONTROL_PID,
        };
        self.header(word).load(Ordering::Relaxed) as u32
    }

    fn cap(&self, r: RegionId) -> u32 {
        self.layout.regions[r as usize].capacity
    }

    /// Slot `i` of region `r`; `i` must be below the region's capacity.
    fn slot(&self, r: RegionId, i: u32) -> Slot<'_> {
        let l = &self.layout.regions[r as usize];
        let start = l.first_word() + i as usize * l.slot_words();
        // In bounds: the layout was validated against the file size at open.
        Slot::new(&self.words()[start..start + l.slot_words()])
    }

    /// Whether the file at this table's path is no longer the one mapped (control replaced
    /// it, or it was deleted); the dataplane should [`Table::open`] it again.
    pub fn is_replaced(&self) -> bool {
        match std::fs::metadata(&self.path) {
            Ok(m) => (m.dev(), m.ino()) != self.identity,
            Err(_) => true,
        }
    }

    /// The capacities in the mapped file.
    pub fn capacities(&self) -> Capacities {
        self.layout.capacities()
    }

    /// The table file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Config generation: bumped by every config write (after the write is visible). Compare
    /// for inequality: a replaced file starts again at 0.
    pub fn generation(&self) -> u64 {
        self.header(layout::word::GENERATION)
            .load(Ordering::Acquire)
    }

    fn bump_generation(&self) {
        self.header(layout::word::GENERATION)
            .fetch_add(1, Ordering::AcqRel);
    }

    // ----- generic record access -----

    /// Reads slot `i` as a `T` if it is occupied and its tag is `tag` (any tag if `None`).
    fn read_record<T: DeserializeOwned>(
        &self,
        r: RegionId,
        i: u32,
        tag: Option<u64>,
        buf: &mut Vec<u8>,
    ) -> (Option<slot::Seen>, Option<T>) {
        let s = self.slot(r, i);
        let writer = self.writer_pid(r);
        let Some(seen) = s.read(None, writer) else {
            return (None, None);
        };
        if seen.state != State::Occupied || tag.is_some_and(|t| t != seen.tag) {
            return (Some(seen), None);
        }
        // Second read with the payload: the slot may have changed since; judge by this one.
        let Some(seen) = s.read(Some(buf), writer) else {
            return (None, None);
        };
        if seen.state != State::Occupied || tag.is_some_and(|t| t != seen.tag) {
            return (Some(seen), None);
        }
        // A record that does not decode (written by an incompatible build) reads as absent.
        (Some(seen), rmp_serde::from_slice(buf).ok())
    }

    fn linear_find<T: Record>(&self, tag: u64, is: impl Fn(&T) -> bool) -> Option<(u32, T)> {
        let mut buf = Vec::new();
        (0..self.cap(T::REGION)).find_map(|i| {
            let (_, rec) = self.read_record::<T>(T::REGION, i, Some(tag), &mut buf);
            rec.filter(|r| is(r)).map(|r| (i, r))
        })
    }

    fn scan_all<T: DeserializeOwned>(&self, r: RegionId) -> Vec<T> {
        let mut buf = Vec::new();
        (0..self.cap(r))
            .filter_map(|i| self.read_record::<T>(r, i, None, &mut buf).1)
            .collect()
    }

    fn hash_find<T: Record>(&self, tag: u64, is: impl Fn(&T) -> bool) -> Option<(u32, T)> {
        let cap = self.cap(T::REGION);
        let mask = cap - 1;
        let mut buf = Vec::new();
        let mut i = tag as u32 & mask;
        for _ in 0..cap {
            let (seen, rec) = self.read_record::<T>(T::REGION, i, Some(tag), &mut buf);
            if let Some(r) = rec.filter(|r| is(r)) {
                return Some((i, r));
            }
            // An empty slot ends the probe chain; an unreadable one (writer died) does not.
            if seen.is_some_and(|s| s.state == State::Empty) {
                return None;
            }
            i = (i + 1) & mask;
        }
        None
    }

    fn payload_for<T: Record>(&self, r: &T) -> Result<Vec<u8>, TableError> {
        let bytes = encode(T::REGION, r)?;
        let max = self.layout.regions[T::REGION as usize].payload_bytes();
        if bytes.len() > max {
            return Err(TableError::RecordTooLarge {
                region: T::REGION.name(),
                len: bytes.len(),
                max,
            });
        }
        Ok(bytes)
    }

    /// Runs a config write under the in-process writer lock.
    fn with_writer<R>(
        &self,
        f: impl FnOnce(&mut WriterState) -> Result<R, TableError>,
    ) -> Result<R, TableError> {
        // A panic in another writer leaves consistent slots (each write is a whole seqlock
        // section), so a poisoned lock is safe to reuse.
        let mut g = self
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let state = g.get_or_insert_with(|| WriterState {
            live_keys: self.count_occupied(RegionId::Keys),
            live_revocations: self.count_occupied(RegionId::Revocations),
        });
        f(state)
    }

    fn count_occupied(&self, r: RegionId) -> u32 {
        (0..self.cap(r))
            .filter(|&i| {
                self.slot(r, i)
                    .read(None, self.writer_pid(r))
                    .is_some_and(|s| s.state == State::Occupied)
            })
            .count() as u32
    }

    fn linear_put<T: Record>(&self, r: &T) -> Result<(), TableError> {
        let bytes = self.payload_for(r)?;
        let tag = r.tag();
        self.with_writer(|_| {
            let i = match self.linear_find::<T>(tag, |o| o.same(r)) {
                Some((i, _)) => i,
                None => (0..self.cap(T::REGION))
                    .find(|&i| {
                        self.slot(T::REGION, i)
                            .read(None, self.writer_pid(T::REGION))
                            .is_some_and(|s| s.state != State::Occupied)
                    })
                    .ok_or(TableError::RegionFull {
                        region: T::REGION.name(),
                        capacity: self.cap(T::REGION),
                    })?,
            };
            self.slot(T::REGION, i).write(State::Occupied, tag, &bytes);
            self.bump_generation();
            Ok(())
        })
    }

    fn linear_remove<T: Record>(&self, tag: u64, is: impl Fn(&T) -> bool) -> bool {
        self.with_writer(|_| {
            Ok(match self.linear_find::<T>(tag, is) {
                Some((i, _)) => {
                    self.slot(T::REGION, i).write(State::Empty, 0, &[]);
                    self.bump_generation();
                    true
                }
                None => false,
            })
        })
        .unwrap_or(false)
    }

    fn live_of(w: &mut WriterState, r: RegionId) -> &mut u32 {
        if r == RegionId::Keys {
            &mut w.live_keys
        } else {
            &mut w.live_revocations
        }
    }

    fn hash_put<T: Record>(&self, r: &T) -> Result<(), TableError> {
        let bytes = self.payload_for(r)?;
        let tag = r.tag();
        let cap = self.cap(T::REGION);
        let mask = cap - 1;
        self.with_writer(|w| {
            let mut free = None;
            let mut found = None;
            let mut buf = Vec::new();
            let mut i = tag as u32 & mask;
            for _ in 0..cap {
                let (seen, rec) = self.read_record::<T>(T::REGION, i, Some(tag), &mut buf);
                if rec.is_some_and(|o| o.same(r)) {
                    found = Some(i);
                    break;
                }
                match seen.map(|s| s.state) {
                    Some(State::Empty) => {
                        free = free.or(Some(i));
                        break;
                    }
                    Some(State::Tombstone) => free = free.or(Some(i)),
                    _ => {}
                }
                i = (i + 1) & mask;
            }
            let live = Self::live_of(w, T::REGION);
            let i = match (found, free) {
                // In place: a reader sees the old or the new record, never neither.
                (Some(i), _) => i,
                (None, Some(i)) if *live < max_live(cap) => {
                    *live += 1;
                    i
                }
                _ => {
                    return Err(TableError::RegionFull {
                        region: T::REGION.name(),
                        capacity: cap,
                    });
                }
            };
            self.slot(T::REGION, i).write(State::Occupied, tag, &bytes);
            self.bump_generation();
            Ok(())
        })
    }

    fn hash_remove<T: Record>(&self, tag: u64, is: impl Fn(&T) -> bool) -> bool {
        let cap = self.cap(T::REGION);
        let mask = cap - 1;
        self.with_writer(|w| {
            let Some((i, _)) = self.hash_find::<T>(tag, is) else {
                return Ok(false);
            };
            self.slot(T::REGION, i).write(State::Tombstone, 0, &[]);
            let live = Self::live_of(w, T::REGION);
            *live = live.saturating_sub(1);
            // If the next slot is empty no probe chain runs through this one, so it and the
            // tombstones right before it can become empty again (keeps chains short).
            let is_state = |j: u32, st: State| {
                self.slot(T::REGION, j)
                    .read(None, self.writer_pid(T::REGION))
                    .is_some_and(|s| s.state == st)
            };
            if is_state((i + 1) & mask, State::Empty) {
                let mut j = i;
                for _ in 0..cap {
                    if !is_state(j, State::Tombstone) {
                        break;
                    }
                    self.slot(T::REGION, j).write(State::Empty, 0, &[]);
                    j = j.wrapping_sub(1) & mask;
                }
            }
            self.bump_generation();
            Ok(true)
        })
        .unwrap_or(false)
    }

    /// Records this process as the config writer (for readers' dead-writer detection).
    fn claim_config_writer(&self) {
        self.header(layout::word::CONTROL_PID)
            .store(u64::from(std::process::id()), Ordering::Release);
    }

    /// Control start: a config slot left odd by a control process that died mid-write holds
    /// a torn record; clear it (tombstone in hash regions, so probe chains stay intact).
    fn recover_config_slots(&self) {
        let config = [
            RegionId::Apps,
            RegionId::Keys,
            RegionId::Revocations,
            RegionId::Templates,
            RegionId::Forwarders,
            RegionId::Commands,
        ];
        for r in config {
            for i in 0..self.cap(r) {
                let s = self.slot(r, i);
                if s.seq().load(Ordering::Acquire) & 1 == 1 {
                    let st = if r.is_hashed() {
                        State::Tombstone
                    } else {
                        State::Empty
                    };
                    s.write(st, 0, &[]);
                }
            }
        }
    }

    // ----- config writers -----

    /// Inserts or replaces (in place) the app with `r.id`.
    pub fn put_app(&self, r: &AppRecord) -> Result<(), TableError> {
        self.linear_put(r)
    }
    /// Removes the app `id`; `Ok(false)` if absent.
    pub fn remove_app(&self, id: &str) -> Result<bool, TableError> {
        Ok(self.linear_remove::<AppRecord>(digest(&[id]), |r| r.id == id))
    }
    /// Inserts or replaces (in place) the key `r.key`.
    pub fn put_key(&self, r: &KeyRecord) -> Result<(), TableError> {
        self.hash_put(r)
    }
    /// Removes the key; `Ok(false)` if absent.
    pub fn remove_key(&self, key: &str) -> Result<bool, TableError> {
        Ok(self.hash_remove::<KeyRecord>(digest(&[key]), |r| r.key == key))
    }
    /// Inserts or replaces the revocation of `(r.app_id, r.key)`.
    pub fn put_revocation(&self, r: &RevocationRecord) -> Result<(), TableError> {
        self.hash_put(r)
    }
    /// Removes the revocation of `(app_id, key)`; `Ok(false)` if absent.
    pub fn remove_revocation(&self, app_id: &str, key: &str) -> Result<bool, TableError> {
        Ok(
            self.hash_remove::<RevocationRecord>(digest(&[app_id, key]), |r| {
                r.app_id == app_id && r.key == key
            }),
        )
    }
    /// Inserts or replaces the template `(r.app_id, r.id)`.
    pub fn put_template(&self, r: &TemplateRecord) -> Result<(), TableError> {
        self.linear_put(r)
    }
    /// Removes the template; `Ok(false)` if absent.
    pub fn remove_template(&self, app_id: &str, id: &str) -> Result<bool, TableError> {
        Ok(
            self.linear_remove::<TemplateRecord>(digest(&[app_id, id]), |r| {
                r.app_id == app_id && r.id == id
            }),
        )
    }
    /// Inserts or replaces the forwarder `(r.app_id, r.id)`.
    pub fn put_forwarder(&self, r: &ForwarderRecord) -> Result<(), TableError> {
        self.linear_put(r)
    }
    /// Removes the forwarder; `Ok(false)` if absent.
    pub fn remove_forwarder(&self, app_id: &str, id: &str) -> Result<bool, TableError> {
        Ok(
            self.linear_remove::<ForwarderRecord>(digest(&[app_id, id]), |r| {
                r.app_id == app_id && r.id == id
            }),
        )
    }
    /// Inserts or replaces the command for `(r.app_id, r.sid)`.
    pub fn put_command(&self, r: &StreamCommand) -> Result<(), TableError> {
        self.linear_put(r)
    }
    /// Removes the command; `Ok(false)` if absent.
    pub fn remove_command(&self, app_id: &str, sid: &str) -> Result<bool, TableError> {
        Ok(
            self.linear_remove::<StreamCommand>(digest(&[app_id, sid]), |r| {
                r.app_id == app_id && r.sid == sid
            }),
        )
    }

    /// Makes the config regions equal to `desired` (control, at start, rebuilding from the
    /// store without disturbing a running dataplane). Never clear-then-fill: per region it
    /// first rewrites in place the entries present in both that differ, then removes the
    /// entries `desired` lacks, then inserts the new ones. An entry present in both the table
    /// and `desired` stays readable throughout, and a full region can be turned over because
    /// removals come before insertions. On error the table holds a mix of old and new
    /// entries; calling again converges.
    pub fn sync_config(&self, desired: &ConfigSnapshot) -> Result<SyncReport, TableError> {
        let current = self.snapshot_config();
        let mut rep = SyncReport::default();
        self.sync_region(&current.apps, &desired.apps, &mut rep, |r| {
            self.remove_app(&r.id)
        })?;
        self.sync_region(&current.keys, &desired.keys, &mut rep, |r| {
            self.remove_key(&r.key)
        })?;
        self.sync_region(&current.revocations, &desired.revocations, &mut rep, |r| {
            self.remove_revocation(&r.app_id, &r.key)
        })?;
        self.sync_region(&current.templates, &desired.templates, &mut rep, |r| {
            self.remove_template(&r.app_id, &r.id)
        })?;
        self.sync_region(&current.forwarders, &desired.forwarders, &mut rep, |r| {
            self.remove_forwarder(&r.app_id, &r.id)
        })?;
        self.sync_region(&current.commands, &desired.commands, &mut rep, |r| {
            self.remove_command(&r.app_id, &r.sid)
        })?;
        Ok(rep)
    }

    fn sync_region<T: Record>(
        &self,
        current: &[T],
        desired: &[T],
        rep: &mut SyncReport,
        remove: impl Fn(&T) -> Result<bool, TableError>,
    ) -> Result<(), TableError> {
        let put = |d: &T| match T::REGION {
            RegionId::Keys | RegionId::Revocations => self.hash_put(d),
            _ => self.linear_put(d),
        };
        let mut by_tag: HashMap<u64, Vec<&T>> = HashMap::new();
        for c in current {
            by_tag.entry(c.tag()).or_default().push(c);
        }
        let find = |d: &T| {
            by_tag
                .get(&d.tag())
                .and_then(|v| v.iter().find(|c| c.same(d)).copied())
        };
        // 1. Entries in both: rewrite in place where they differ (never absent meanwhile).
        let mut missing = Vec::new();
        for d in desired {
            match find(d) {
                Some(c) if c == d => rep.unchanged += 1,
                Some(_) => {
                    put(d)?;
                    rep.upserted += 1;
                }
                None => missing.push(d),
            }
        }
        // 2. Entries only in the table: remove them before inserting, so a full region can
        //    be turned over (these are in neither the old-and-new intersection nor desired).
        let mut wanted: HashMap<u64, Vec<&T>> = HashMap::new();
        for d in desired {
            wanted.entry(d.tag()).or_default().push(d);
        }
        for c in current {
            let keep = wanted
                .get(&c.tag())
                .is_some_and(|v| v.iter().any(|d| d.same(c)));
            if !keep && remove(c)? {
                rep.removed += 1;
            }
        }
        // 3. Entries only in `desired`.
        for d in missing {
            put(d)?;
            rep.upserted += 1;
        }
        Ok(())
    }

    // ----- config readers -----

    /// The app `id`.
    pub fn app(&self, id: &str) -> Option<AppRecord> {
        self.linear_find::<AppRecord>(digest(&[id]), |r| r.id == id)
            .map(|(_, r)| r)
    }
    /// The app whose `domains` contain `host` (ASCII case-insensitive; pass the host without
    /// a port). The first match in slot order if several apps claim it.
    pub fn app_by_domain(&self, host: &str) -> Option<AppRecord> {
        let mut buf = Vec::new();
        (0..self.cap(RegionId::Apps)).find_map(|i| {
            self.read_record::<AppRecord>(RegionId::Apps, i, None, &mut buf)
                .1
                .filter(|a| a.domains.iter().any(|d| d.eq_ignore_ascii_case(host)))
        })
    }
    /// All apps.
    pub fn apps(&self) -> Vec<AppRecord> {
        self.scan_all(RegionId::Apps)
    }
    /// The REST key `key`.
    pub fn key(&self, key: &str) -> Option<KeyRecord> {
        self.hash_find::<KeyRecord>(digest(&[key]), |r| r.key == key)
            .map(|(_, r)| r)
    }
    /// Whether the local key `key` of `app_id` is revoked.
    pub fn is_revoked(&self, app_id: &str, key: &str) -> bool {
        self.hash_find::<RevocationRecord>(digest(&[app_id, key]), |r| {
            r.app_id == app_id && r.key == key
        })
        .is_some()
    }
    /// The template `(app_id, id)`.
    pub fn template(&self, app_id: &str, id: &str) -> Option<TemplateRecord> {
        self.linear_find::<TemplateRecord>(digest(&[app_id, id]), |r| {
            r.app_id == app_id && r.id == id
        })
        .map(|(_, r)| r)
    }
    /// All forwarders.
    pub fn forwarders(&self) -> Vec<ForwarderRecord> {
        self.scan_all(RegionId::Forwarders)
    }
    /// All stream commands.
    pub fn commands(&self) -> Vec<StreamCommand> {
        self.scan_all(RegionId::Commands)
    }
    /// Every config region's content (each record read consistently; the regions are read
    /// one after the other, not as one atomic snapshot).
    pub fn snapshot_config(&self) -> ConfigSnapshot {
        ConfigSnapshot {
            apps: self.apps(),
            keys: self.scan_all(RegionId::Keys),
            revocations: self.scan_all(RegionId::Revocations),
            templates: self.scan_all(RegionId::Templates),
            forwarders: self.forwarders(),
            commands: self.commands(),
        }
    }

    // ----- stats -----

    /// Claims a free stats slot for a new stream (CAS on the slot's owner word); `None` when
    /// all are taken.
    pub fn claim_stats_slot(&self) -> Option<StatsSlot> {
        let cap = self.cap(RegionId::Stats);
        let start = u64::from(self.stats_hint.load(Ordering::Relaxed) % cap);
        (0..u64::from(cap))
            .map(|k| ((start + k) % u64::from(cap)) as u32)
            .find_map(|i| {
                let owner = self.slot(RegionId::Stats, i).aux();
                owner
                    .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Relaxed)
                    .ok()
                    .map(|_| {
                        self.stats_hint.store(i.wrapping_add(1), Ordering::Relaxed);
                        StatsSlot(i)
                    })
            })
    }

    fn stats_slot(&self, slot: StatsSlot) -> Result<Slot<'_>, TableError> {
        if slot.0 >= self.cap(RegionId::Stats) {
            return Err(TableError::NoSuchSlot(slot.0));
        }
        Ok(self.slot(RegionId::Stats, slot.0))
    }

    /// Publishes `s` in `slot` (only the claiming core may call this for `slot`).
    pub fn write_stats(&self, slot: StatsSlot, s: &StreamStats) -> Result<(), TableError> {
        let sl = self.stats_slot(slot)?;
        let bytes = encode(RegionId::Stats, s)?;
        if bytes.len() > sl.capacity() {
            return Err(TableError::RecordTooLarge {
                region: RegionId::Stats.name(),
                len: bytes.len(),
                max: sl.capacity(),
            });
        }
        sl.write(State::Occupied, digest(&[&s.sid]), &bytes);
        Ok(())
    }

    /// Clears and frees `slot` (stream ended). An out-of-range slot is ignored.
    pub fn release_stats_slot(&self, slot: StatsSlot) {
        if let Ok(sl) = self.stats_slot(slot) {
            sl.write(State::Empty, 0, &[]);
            sl.aux().store(0, Ordering::Release);
        }
    }

    /// Dataplane start: records this process as the stats and event writer, clears every
    /// stats slot (the previous dataplane's streams are gone) and marks event slots a crashed producer left unpublished as lost, so the consumer
    /// does not wait on them. Call before any core claims a slot or pushes an event.
    pub fn reset_stats(&self) {
        self.header(layout::word::DATAPLANE_PID)
            .store(u64::from(std::process::id()), Ordering::Release);
        for i in 0..self.cap(RegionId::Stats) {
            let sl = self.slot(RegionId::Stats, i);
            sl.write(State::Empty, 0, &[]);
            sl.aux().store(0, Ordering::Release);
        }
        let cap = u64::from(self.cap(RegionId::Events));
        let head = self
            .header(layout::word::EVENT_HEAD)
            .load(Ordering::Acquire);
        for n in head.saturating_sub(cap)..head {
            let sl = self.slot(RegionId::Events, (n % cap) as u32);
            let done = n.wrapping_mul(2).wrapping_add(2);
            if sl.seq().load(Ordering::Acquire) < done {
                sl.seq().store(done.wrapping_sub(1), Ordering::Relaxed);
                fence(Ordering::Release);
                sl.fill(State::Empty, n, &[]);
                sl.seq().store(done, Ordering::Release);
            }
        }
    }

    /// Every live stream's stats.
    pub fn all_stats(&self) -> Vec<StreamStats> {
        self.scan_all(RegionId::Stats)
    }

    // ----- events -----

    /// Appends an event (any dataplane core). When the ring is full the oldest unread event
    /// is overwritten; the consumer learns how many it lost. An event whose slot a newer
    /// lap already took is dropped silently (the consumer counts it as lost).
    pub fn push_event(&self, e: &Event) -> Result<(), TableError> {
        let bytes = encode(RegionId::Events, e)?;
        let cap = self.cap(RegionId::Events);
        let max = self.layout.regions[RegionId::Events as usize].payload_bytes();
        if bytes.len() > max {
            return Err(TableError::RecordTooLarge {
                region: RegionId::Events.name(),
                len: bytes.len(),
                max,
            });
        }
        let n = self
            .header(layout::word::EVENT_HEAD)
            .fetch_add(1, Ordering::AcqRel);
        let index = (n % u64::from(cap)) as u32;
        let sl = self.slot(RegionId::Events, index);
        let writing = n.wrapping_mul(2).wrapping_add(1);
        let mut patience = slot::Patience::new(self.writer_pid(RegionId::Events));
        loop {
            let cur = sl.seq().load(Ordering::Acquire);
            if cur > writing {
                return Ok(());
            }
            if cur & 1 == 1 {
                // An older lap's producer is still inside this slot; wait for it unless it
                // died there (the consumer then counts this event as lost).
                if !patience.wait(cur) {
                    return Err(TableError::Busy {
                        region: RegionId::Events.name(),
                        index,
                    });
                }
                continue;
            }
            if sl
                .seq()
                .compare_exchange(cur, writing, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                break;
            }
        }
        fence(Ordering::Release);
        sl.fill(State::Occupied, n, &bytes);
        sl.seq().store(writing.wrapping_add(1), Ordering::Release);
        Ok(())
    }

    /// A cursor positioned after the newest event (control starting without a saved cursor
    /// and not wanting to replay the ring).
    pub fn event_cursor_at_head(&self) -> EventCursor {
        EventCursor {
            next: self
                .header(layout::word::EVENT_HEAD)
                .load(Ordering::Acquire),
        }
    }

    /// Reads published events from `cursor` on, in order, and advances `cursor`. Stops at the
    /// first event still being written, unless more than half the ring has been claimed after
    /// it (its producer is then presumed dead and the event counted as lost).
    pub fn read_events(&self, cursor: &mut EventCursor) -> EventBatch {
        let cap = u64::from(self.cap(RegionId::Events));
        let head = self
            .header(layout::word::EVENT_HEAD)
            .load(Ordering::Acquire);
        let mut batch = EventBatch::default();
        if cursor.next > head {
            // A cursor from another (replaced) table: start over at the head.
            cursor.next = head;
        }
        let oldest = head.saturating_sub(cap);
        if cursor.next < oldest {
            batch.lost += oldest - cursor.next;
            cursor.next = oldest;
        }
        let mut buf = Vec::new();
        while cursor.next < head {
            let n = cursor.next;
            let sl = self.slot(RegionId::Events, (n % cap) as u32);
            let done = n.wrapping_mul(2).wrapping_add(2);
            let s1 = sl.seq().load(Ordering::Acquire);
            if s1 < done {
                if head - n > cap / 2 {
                    batch.lost += 1;
                    cursor.next = n + 1;
                    continue;
                }
                break;
            }
            if s1 == done {
                match sl.read(Some(&mut buf), self.writer_pid(RegionId::Events)) {
                    Some(seen) if seen.seq == done && seen.state == State::Occupied => {
                        match rmp_serde::from_slice::<Event>(&buf) {
                            Ok(e) => batch.events.push(e),
                            Err(_) => batch.lost += 1,
                        }
                    }
                    _ => batch.lost += 1,
                }
            } else {
                batch.lost += 1;
            }
            cursor.next += 1;
        }
        batch
    }

    // ----- liveness -----

    /// Dataplane liveness: records `now_ms` (Unix milliseconds).
    pub fn dataplane_heartbeat(&self, now_ms: u64) {
        self.header(layout::word::HEARTBEAT)
            .store(now_ms, Ordering::Release);
    }
    /// The last heartbeat, Unix milliseconds (0 = never).
    pub fn last_dataplane_heartbeat(&self) -> u64 {
        self.header(layout::word::HEARTBEAT).load(Ordering::Acquire)
    }
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table")
            .field("path", &self.path)
            .field("capacities", &self.capacities())
            .finish_non_exhaustive()
    }
}

/// Views a shared mapping as atomic words (the only way this crate touches mapped memory).
fn atomic_words(map: &memmap2::MmapRaw) -> &[AtomicU64] {
    // SAFETY: the mapping is page-aligned (so 8-aligned), `map.len() / 8` words lie inside
    // it, and it stays mapped for the borrow of `map`. `AtomicU64` is 8 bytes with 8-byte
    // alignment and the bit validity of `u64` (any bit pattern is valid). Every access to the file, from any
    // process, is an atomic operation, which is what makes mutation through shared references
    // sound. (A file truncated behind our back would fault with SIGBUS, not alias memory.)
    unsafe { std::slice::from_raw_parts(map.as_ptr().cast::<AtomicU64>(), map.len() / 8) }
}

/// `ENOSPC` on Linux (no `libc` dependency for one constant).
const ENOSPC: i32 = 28;

/// Builds a fresh table file next to `path` and renames it into place, so no process ever
/// maps a half-initialised file.
fn create_file(path: &Path, layout: &Layout) -> Result<(), TableError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    let result = (|| {
        let mut file: File = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        // The umask can only remove bits, but be explicit: the file holds App certificates.
        file.set_permissions(Permissions::from_mode(0o600))?;
        // Write every byte rather than `set_len`: a sparse tmpfs file whose pages are
        // allocated on first touch would SIGBUS both processes when /dev/shm runs out (a
        // 64 MiB Docker default is smaller than the default table); failing here is clearer.
        let zeros = vec![0u8; 1 << 20];
        let mut left = layout.file_bytes;
        while left > 0 {
            let n = usize::try_from(left.min(zeros.len() as u64)).unwrap_or(zeros.len());
            file.write_all(zeros.get(..n).unwrap_or(&zeros))?;
            left -= n as u64;
        }
        let map = memmap2::MmapRaw::map_raw(&file)?;
        let words = atomic_words(&map);
        let set = |i: usize, v: u64| {
            if let Some(w) = words.get(i) {
                w.store(v, Ordering::Relaxed);
            }
        };
        set(
            layout::word::ABI,
            u64::from(layout::ABI_VERSION) | (u64::from(layout::HEADER_BYTES) << 32),
        );
        set(layout::word::FILE_BYTES, layout.file_bytes);
        for (i, r) in layout.regions.iter().enumerate() {
            let (a, b) = r.pack();
            set(layout::word::REGIONS + 2 * i, a);
            set(layout::word::REGIONS + 2 * i + 1, b);
        }
        fence(Ordering::Release);
        set(layout::word::MAGIC, u64::from_le_bytes(layout::MAGIC));
        drop(map);
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        if e.raw_os_error() == Some(ENOSPC) {
            TableError::NoSpace {
                path: path.to_owned(),
                bytes: layout.file_bytes,
            }
        } else {
            io_err(path)(e)
        }
    })
}

#[cfg(test)]
mod tests;
