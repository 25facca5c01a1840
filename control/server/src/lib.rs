//! # sluice (control process)
//!
//! The control side of Sluice: the operator CLI, the REST API compatible with Agora's Media
//! Gateway (`docs/api.md`), the durable SQLite store that is the source of truth for
//! configuration, and the writer of the shared-memory table the dataplane reads
//! (`docs/architecture.md`).
//!
//! Layout: [`config`] parses and validates the TOML file; [`store`] is the durable store behind
//! the [`store::Store`] trait; [`table`] holds the traits through which the server talks to the
//! shared-memory table ([`table::ConfigSink`], [`table::StatsSource`]) with an in-memory
//! implementation and [`table_shm`], the one on `sluice_table::Table`; [`api`] is the HTTP surface; [`filters`] parses `adaptFilters` expressions;
//! [`localkey`] wraps the locally generated stream-key codec; [`supervise`] runs `sluice up`;
//! [`webhook`] turns dataplane events into signed notifications; [`metrics`] renders
//! `/metrics`; [`logging`] sets up `tracing` and masks stream keys.

pub mod api;
pub mod config;
pub mod filters;
pub mod localkey;
pub mod logging;
pub mod metrics;
pub mod store;
pub mod supervise;
pub mod sweep;
pub mod table;
pub mod table_shm;
pub mod time;
pub mod webhook;

pub use logging::mask_key;
