//! # sluice-table
//!
//! The shared-memory table that connects Sluice's control process (writer of configuration)
//! and its dataplane process (writer of stats and events). See `docs/architecture.md`.
