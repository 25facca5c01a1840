//! Byte layout of the table file, ABI version [`ABI_VERSION`].
//!
//! The whole file is an array of little-endian 64-bit words, every one of which is accessed
//! only through `AtomicU64` (both processes map it shared). Word `w` lives at byte `8 * w`.
//!
//! The header, region and slot tables are in the crate documentation.

use crate::Capacities;

/// Version of the header and slot layout; records inside slots evolve without changing it.
pub const ABI_VERSION: u32 = 1;

/// The file's first 8 bytes.
pub const MAGIC: [u8; 8] = *b"SLUICETB";

/// Header size in bytes (one page).
pub const HEADER_BYTES: u32 = 4096;

/// Alignment of each region's start.
pub const REGION_ALIGN: u64 = 4096;

/// Words before a slot's payload (seq, meta, tag, aux).
pub const SLOT_PREFIX_WORDS: usize = 4;

/// Slot size of the apps region (certificate, domain list, limits).
pub const APP_SLOT_BYTES: u32 = 2048;
/// Slot size of the keys region (key, app, channel < 64 B, uid <= 255 B, template).
pub const KEY_SLOT_BYTES: u32 = 768;
/// Slot size of the revocations region (holds local keys of up to ~950 characters).
pub const REVOCATION_SLOT_BYTES: u32 = 1024;
/// Slot size of the templates region (template settings JSON up to ~4 KiB).
pub const TEMPLATE_SLOT_BYTES: u32 = 4096;
/// Slot size of the forwarders region.
pub const FORWARDER_SLOT_BYTES: u32 = 512;
/// Slot size of the commands region.
pub const COMMAND_SLOT_BYTES: u32 = 512;
/// Slot size of the stats region (room for ~2 KiB of parameter sets).
pub const STATS_SLOT_BYTES: u32 = 4096;
/// Slot size of the event ring (an event can carry a full stats record).
pub const EVENT_SLOT_BYTES: u32 = 6144;

/// Header word indexes.
pub(crate) mod word {
    pub const MAGIC: usize = 0;
    pub const ABI: usize = 1;
    pub const FILE_BYTES: usize = 2;
    pub const REGIONS: usize = 3;
    pub const GENERATION: usize = 32;
    pub const HEARTBEAT: usize = 33;
    pub const EVENT_HEAD: usize = 34;
    pub const CONTROL_PID: usize = 35;
    pub const DATAPLANE_PID: usize = 36;
}

/// Index of each region in the header's region table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RegionId {
    Apps = 0,
    Keys = 1,
    Revocations = 2,
    Templates = 3,
    Forwarders = 4,
    Commands = 5,
    Stats = 6,
    Events = 7,
}

/// Number of regions.
pub(crate) const REGION_COUNT: usize = 8;

impl RegionId {
    pub(crate) const ALL: [RegionId; REGION_COUNT] = [
        RegionId::Apps,
        RegionId::Keys,
        RegionId::Revocations,
        RegionId::Templates,
        RegionId::Forwarders,
        RegionId::Commands,
        RegionId::Stats,
        RegionId::Events,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            RegionId::Apps => "apps",
            RegionId::Keys => "keys",
            RegionId::Revocations => "revocations",
            RegionId::Templates => "templates",
            RegionId::Forwarders => "forwarders",
            RegionId::Commands => "commands",
            RegionId::Stats => "stats",
            RegionId::Events => "events",
        }
    }

    pub(crate) fn is_hashed(self) -> bool {
        matches!(self, RegionId::Keys | RegionId::Revocations)
    }

    fn slot_bytes(self) -> u32 {
        match self {
            RegionId::Apps => APP_SLOT_BYTES,
            RegionId::Keys => KEY_SLOT_BYTES,
            RegionId::Revocations => REVOCATION_SLOT_BYTES,
            RegionId::Templates => TEMPLATE_SLOT_BYTES,
            RegionId::Forwarders => FORWARDER_SLOT_BYTES,
            RegionId::Commands => COMMAND_SLOT_BYTES,
            RegionId::Stats => STATS_SLOT_BYTES,
            RegionId::Events => EVENT_SLOT_BYTES,
        }
    }

    fn capacity(self, caps: &Capacities) -> u32 {
        match self {
            RegionId::Apps => caps.apps,
            RegionId::Keys => caps.keys,
            RegionId::Revocations => caps.revocations,
            RegionId::Templates => caps.templates,
            RegionId::Forwarders => caps.forwarders,
            RegionId::Commands => caps.commands,
            RegionId::Stats => caps.stats,
            RegionId::Events => caps.events,
        }
    }
}

/// Where one region lives, in words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RegionLayout {
    /// Byte offset of slot 0.
    pub offset: u64,
    /// Bytes per slot.
    pub slot_bytes: u32,
    /// Number of slots.
    pub capacity: u32,
}

impl RegionLayout {
    pub(crate) fn first_word(&self) -> usize {
        (self.offset / 8) as usize
    }
    pub(crate) fn slot_words(&self) -> usize {
        (self.slot_bytes / 8) as usize
    }
    /// Payload bytes a slot can hold.
    pub(crate) fn payload_bytes(&self) -> usize {
        (self.slot_words() - SLOT_PREFIX_WORDS) * 8
    }
    pub(crate) fn pack(&self) -> (u64, u64) {
        (
            self.offset,
            u64::from(self.slot_bytes) | (u64::from(self.capacity) << 32),
        )
    }
    pub(crate) fn unpack(offset: u64, sizes: u64) -> RegionLayout {
        RegionLayout {
            offset,
            slot_bytes: sizes as u32,
            capacity: (sizes >> 32) as u32,
        }
    }
}

/// The full layout: region placement and file size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    pub regions: [RegionLayout; REGION_COUNT],
    pub file_bytes: u64,
}

impl Layout {
    /// Computes the layout this build uses for `caps` (hash capacities rounded up to powers
    /// of two).
    pub(crate) fn for_capacities(caps: &Capacities) -> Result<Layout, String> {
        let mut regions = [RegionLayout {
            offset: 0,
            slot_bytes: 0,
            capacity: 0,
        }; REGION_COUNT];
        let mut at = u64::from(HEADER_BYTES);
        for (r, out) in RegionId::ALL.iter().zip(regions.iter_mut()) {
            let mut cap = r.capacity(caps);
            if cap == 0 {
                return Err(format!("{} capacity is 0", r.name()));
            }
            if r.is_hashed() {
                cap = cap
                    .checked_next_power_of_two()
                    .ok_or_else(|| format!("{} capacity too large", r.name()))?;
            }
            let bytes = u64::from(cap) * u64::from(r.slot_bytes());
            *out = RegionLayout {
                offset: at,
                slot_bytes: r.slot_bytes(),
                capacity: cap,
            };
            at = at
                .checked_add(bytes)
                .and_then(|e| e.checked_next_multiple_of(REGION_ALIGN))
                .ok_or("layout overflows")?;
        }
        if usize::try_from(at).is_err() {
            return Err("layout does not fit the address space".into());
        }
        Ok(Layout {
            regions,
            file_bytes: at,
        })
    }

    /// Checks a layout read from a file against the file's size: every region inside the
    /// file, after the header, 8-byte aligned, slots big enough, no overlaps.
    pub(crate) fn validate(&self, actual_file_bytes: u64) -> Result<(), String> {
        if self.file_bytes != actual_file_bytes {
            return Err(format!(
                "header says {} bytes, file has {actual_file_bytes}",
                self.file_bytes
            ));
        }
        let mut spans = Vec::with_capacity(REGION_COUNT);
        for (r, l) in RegionId::ALL.iter().zip(self.regions.iter()) {
            let name = r.name();
            if l.offset % 8 != 0 || l.slot_bytes % 8 != 0 {
                return Err(format!("{name} region misaligned"));
            }
            if (l.slot_bytes as usize) < (SLOT_PREFIX_WORDS + 1) * 8 {
                return Err(format!("{name} slots too small"));
            }
            if l.capacity == 0 || (r.is_hashed() && !l.capacity.is_power_of_two()) {
                return Err(format!("{name} capacity {} invalid", l.capacity));
            }
            let end = u64::from(l.capacity)
                .checked_mul(u64::from(l.slot_bytes))
                .and_then(|b| b.checked_add(l.offset))
                .ok_or_else(|| format!("{name} region overflows"))?;
            if l.offset < u64::from(HEADER_BYTES) || end > actual_file_bytes {
                return Err(format!("{name} region outside the file"));
            }
            spans.push((l.offset, end));
        }
        spans.sort_unstable();
        if spans.windows(2).any(|w| matches!(w, [a, b] if a.1 > b.0)) {
            return Err("regions overlap".into());
        }
        if usize::try_from(actual_file_bytes).is_err() {
            return Err("file too large for this platform".into());
        }
        Ok(())
    }

    /// The capacities this layout holds.
    pub(crate) fn capacities(&self) -> Capacities {
        let c = |r: RegionId| self.regions[r as usize].capacity;
        Capacities {
            apps: c(RegionId::Apps),
            keys: c(RegionId::Keys),
            revocations: c(RegionId::Revocations),
            templates: c(RegionId::Templates),
            forwarders: c(RegionId::Forwarders),
            commands: c(RegionId::Commands),
            stats: c(RegionId::Stats),
            events: c(RegionId::Events),
        }
    }
}

/// FNV-1a 64 over the parts of an identity, with a 0xff byte (never in UTF-8) between parts
/// so `("ab", "c")` and `("a", "bc")` differ.
pub(crate) fn digest(parts: &[&str]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET;
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            h = (h ^ 0xff).wrapping_mul(PRIME);
        }
        for b in p.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(PRIME);
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_layout_is_valid_and_round_trips_capacities() {
        let l = Layout::for_capacities(&Capacities::default()).unwrap();
        l.validate(l.file_bytes).unwrap();
        assert_eq!(l.capacities(), Capacities::default());
        for r in &l.regions {
            assert_eq!(r.offset % REGION_ALIGN, 0);
            assert_eq!(RegionLayout::unpack(r.pack().0, r.pack().1), *r);
        }
    }

    #[test]
    fn hash_capacities_round_up() {
        let caps = Capacities {
            keys: 100,
            revocations: 3,
            ..Capacities::default()
        };
        let l = Layout::for_capacities(&caps).unwrap();
        assert_eq!(l.capacities().keys, 128);
        assert_eq!(l.capacities().revocations, 4);
        let zero = Capacities {
            apps: 0,
            ..Capacities::default()
        };
        assert!(Layout::for_capacities(&zero).is_err());
    }

    #[test]
    fn validate_rejects_bad_layouts() {
        let good = Layout::for_capacities(&Capacities::default()).unwrap();
        assert!(good.validate(good.file_bytes - 8).is_err());
        let mut overlap = good;
        overlap.regions[1].offset = overlap.regions[0].offset;
        assert!(overlap.validate(good.file_bytes).is_err());
        let mut outside = good;
        outside.regions[7].capacity += 1;
        assert!(outside.validate(good.file_bytes).is_err());
        let mut not_pow2 = good;
        not_pow2.regions[1].capacity -= 1;
        assert!(not_pow2.validate(good.file_bytes).is_err());
    }

    #[test]
    fn digest_separates_parts() {
        assert_ne!(digest(&["ab", "c"]), digest(&["a", "bc"]));
        // FNV-1a 64 reference values.
        assert_eq!(digest(&[""]), 0xcbf2_9ce4_8422_2325);
        assert_eq!(digest(&["a"]), 0xaf63_dc4c_8601_ec8c);
    }
}
