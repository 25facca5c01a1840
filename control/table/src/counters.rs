//! Dataplane-wide counters (ABI version 2): a fixed block of named `u64` slots in the header
//! page, words [`COUNTERS_FIRST_WORD`]`..+`[`COUNTER_SLOTS`]. The dataplane adds to them with
//! `fetch_add` from any core ([`crate::Table::add_counter`]); control reads them for
//! `/metrics` ([`crate::Table::counters`]). They count from the creation of the table file:
//! when control rebuilds the file they restart at zero, which Prometheus treats as a counter
//! reset.
//!
//! A counter's slot is its position in [`Counter::ALL`]: new counters are appended, never
//! inserted, so an older reader still finds the counters it knows.

/// First header word of the counters block (header words 35..64 stay reserved).
pub const COUNTERS_FIRST_WORD: usize = 64;
/// Slots reserved for counters; [`Counter::ALL`] uses the first ones. The block ends well
/// inside the 4096-byte header page (word 128 of 512).
pub const COUNTER_SLOTS: usize = 64;

/// A named dataplane-wide counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Counter {
    /// RTMP connections accepted.
    RtmpConnections,
    /// SRT connections accepted.
    SrtConnections,
    /// Publishes refused with abort code 1 (illegal key).
    RefusedIllegalKey,
    /// Publishes refused with abort code 2 (expired or deleted key).
    RefusedExpiredKey,
    /// Publishes refused with abort code 3 (domain of another app).
    RefusedNoPermission,
    /// Publishes refused with abort code 4 (concurrency quota).
    RefusedQuota,
    /// Publishes refused with abort code 5 (channel+uid already live).
    RefusedConflict,
    /// Publishes refused or stopped with abort code 6 (bitrate over the limit).
    RefusedBitrate,
    /// Streams aborted with code 7 (no media for too long).
    AbortedNoMedia,
    /// Publishes refused with any other code (internal errors, unknown codes).
    RefusedOther,
    /// Connections refused because their source IP had too many open.
    RefusedPerIp,
    /// Connections closed for a protocol violation by the peer.
    ProtocolErrors,
    /// Connections closed for not completing the handshake or publish in time.
    HandshakeTimeouts,
    /// RTP packets dropped because an egress socket buffer was full.
    EgressDrops,
    /// SRT callers refused for their encryption: wrong passphrase, passphrase on one side
    /// only, or a key length other than the app's enforced `srt_pbkeylen`.
    SrtRefusedEncryption,
    /// Demuxed SRT media units dropped because the queue to the stream's owner core was full.
    SrtFeedDrops,
    /// Refusal events not written to the event ring because the same source IP had one
    /// recently (the refusal itself is still counted under its `refused_*` counter).
    RefusalEventsSuppressed,
}

impl Counter {
    /// Every counter, in slot order.
    pub const ALL: [Counter; 17] = [
        Counter::RtmpConnections,
        Counter::SrtConnections,
        Counter::RefusedIllegalKey,
        Counter::RefusedExpiredKey,
        Counter::RefusedNoPermission,
        Counter::RefusedQuota,
        Counter::RefusedConflict,
        Counter::RefusedBitrate,
        Counter::AbortedNoMedia,
        Counter::RefusedOther,
        Counter::RefusedPerIp,
        Counter::ProtocolErrors,
        Counter::HandshakeTimeouts,
        Counter::EgressDrops,
        Counter::SrtRefusedEncryption,
        Counter::SrtFeedDrops,
        Counter::RefusalEventsSuppressed,
    ];

    /// The counter's slot in the block.
    pub fn slot(self) -> usize {
        self as usize
    }

    /// Stable snake_case name (used as a metric label).
    pub fn name(self) -> &'static str {
        match self {
            Counter::RtmpConnections => "rtmp_connections",
            Counter::SrtConnections => "srt_connections",
            Counter::RefusedIllegalKey => "refused_illegal_key",
            Counter::RefusedExpiredKey => "refused_expired_key",
            Counter::RefusedNoPermission => "refused_no_permission",
            Counter::RefusedQuota => "refused_quota",
            Counter::RefusedConflict => "refused_conflict",
            Counter::RefusedBitrate => "refused_bitrate",
            Counter::AbortedNoMedia => "aborted_no_media",
            Counter::RefusedOther => "refused_other",
            Counter::RefusedPerIp => "refused_per_ip",
            Counter::ProtocolErrors => "protocol_errors",
            Counter::HandshakeTimeouts => "handshake_timeouts",
            Counter::EgressDrops => "egress_drops",
            Counter::SrtRefusedEncryption => "srt_refused_encryption",
            Counter::SrtFeedDrops => "srt_feed_drops",
            Counter::RefusalEventsSuppressed => "refusal_events_suppressed",
        }
    }

    /// The counter of a refusal or abort with webhook `errorCode` `code` (api-digest §5).
    pub fn for_abort_code(code: u32) -> Counter {
        match code {
            1 => Counter::RefusedIllegalKey,
            2 => Counter::RefusedExpiredKey,
            3 => Counter::RefusedNoPermission,
            4 => Counter::RefusedQuota,
            5 => Counter::RefusedConflict,
            6 => Counter::RefusedBitrate,
            7 => Counter::AbortedNoMedia,
            _ => Counter::RefusedOther,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_dense_distinct_and_fit_the_block() {
        for (i, c) in Counter::ALL.iter().enumerate() {
            assert_eq!(c.slot(), i);
        }
        assert!(Counter::ALL.len() <= COUNTER_SLOTS);
        let end = (COUNTERS_FIRST_WORD + COUNTER_SLOTS) * 8;
        assert!(end <= crate::layout::HEADER_BYTES as usize);
        let mut names: Vec<_> = Counter::ALL.iter().map(|c| c.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Counter::ALL.len());
    }

    #[test]
    fn abort_codes_map_to_their_counters() {
        assert_eq!(Counter::for_abort_code(1), Counter::RefusedIllegalKey);
        assert_eq!(Counter::for_abort_code(5), Counter::RefusedConflict);
        assert_eq!(Counter::for_abort_code(10), Counter::RefusedOther);
        assert_eq!(Counter::for_abort_code(100), Counter::RefusedOther);
    }
}
