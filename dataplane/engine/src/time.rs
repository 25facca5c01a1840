//! Wall-clock helpers (the protocol crates take time as an argument; this is where it comes from).

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub fn unix_ms() -> u64 {
    unix_ns() / 1_000_000
}

/// Nanoseconds since the Unix epoch (`CLOCK_REALTIME`, the clock kernel receive timestamps
/// use).
pub fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Seconds since the Unix epoch.
pub fn unix_s() -> u64 {
    unix_ms() / 1000
}
