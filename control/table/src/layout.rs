//! Byte layout of the table file (ABI version [`ABI_VERSION`]).
//!
//! All integers are little-endian `u64`/`u32` at 8-byte aligned offsets.

/// Version of the header and slot layout; records inside slots evolve without changing it.
pub const ABI_VERSION: u32 = 1;
