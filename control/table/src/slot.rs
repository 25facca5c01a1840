//! The seqlock every slot is guarded by, built only from atomics.
//!
//! Writer: `seq` to odd (Relaxed), Release fence, payload words (Relaxed), `seq` to even
//! (Release). Reader: `seq` (Acquire), payload words (Relaxed), Acquire fence, `seq` again
//! (Relaxed); equal and even means the words read belong to one write. This is the
//! fence-based seqlock of H.-J. Boehm, "Can seqlocks get along with programming language
//! memory models?" (MSPC 2012), and it needs no non-atomic access at all.

use crate::layout::SLOT_PREFIX_WORDS;
use std::sync::atomic::{AtomicU64, Ordering, fence};
use std::time::{Duration, Instant};

/// Slot states (low byte of the meta word).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    Empty = 0,
    Occupied = 1,
    Tombstone = 2,
}

impl State {
    fn from_meta(meta: u64) -> State {
        match meta & 0xff {
            1 => State::Occupied,
            2 => State::Tombstone,
            // Anything else (including a state a newer build invented) reads as empty.
            _ => State::Empty,
        }
    }
}

/// How long a reader keeps retrying a slot that a writer holds or keeps changing before it
/// gives up and treats the record as absent. A writer holds a slot for a copy of a few hundred
/// bytes, so this is only reached when the writer was descheduled for that long or died
/// inside the slot (then control's next start clears it). A bound in time rather than in
/// attempts, because `yield_now` can return at once or after a whole timeslice.
pub(crate) const READ_PATIENCE: Duration = Duration::from_millis(20);

/// Attempts before the reader starts looking at the clock (the uncontended path never does).
const SPINS_BEFORE_CLOCK: u32 = 64;

/// What a consistent read of a slot saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Seen {
    pub state: State,
    pub tag: u64,
    pub seq: u64,
}

/// One slot: `SLOT_PREFIX_WORDS` control words then payload words.
#[derive(Clone, Copy)]
pub(crate) struct Slot<'a> {
    words: &'a [AtomicU64],
}

impl<'a> Slot<'a> {
    /// `words` must hold at least `SLOT_PREFIX_WORDS + 1` words (the layout guarantees it).
    pub(crate) fn new(words: &'a [AtomicU64]) -> Slot<'a> {
        Slot { words }
    }

    fn w(&self, i: usize) -> &'a AtomicU64 {
        // The layout check at open guarantees every slot has its prefix words.
        &self.words[i]
    }

    pub(crate) fn seq(&self) -> &'a AtomicU64 {
        self.w(0)
    }

    /// The stats owner word (outside the seqlock).
    pub(crate) fn aux(&self) -> &'a AtomicU64 {
        self.w(3)
    }

    fn payload(&self) -> &'a [AtomicU64] {
        self.words.get(SLOT_PREFIX_WORDS..).unwrap_or(&[])
    }

    /// Payload capacity in bytes.
    pub(crate) fn capacity(&self) -> usize {
        self.payload().len() * 8
    }

    /// A consistent snapshot of the slot: state and tag, and (if `buf` is given and the slot
    /// is occupied) the payload bytes. `None` if no consistent read happened within
    /// [`READ_PATIENCE`].
    pub(crate) fn read(&self, mut buf: Option<&mut Vec<u8>>) -> Option<Seen> {
        let mut started: Option<Instant> = None;
        let mut attempt = 0u32;
        loop {
            attempt = attempt.saturating_add(1);
            if attempt >= SPINS_BEFORE_CLOCK
                && started.get_or_insert_with(Instant::now).elapsed() > READ_PATIENCE
            {
                return None;
            }
            let s1 = self.seq().load(Ordering::Acquire);
            if s1 & 1 == 1 {
                backoff(attempt);
                continue;
            }
            let meta = self.w(1).load(Ordering::Relaxed);
            let tag = self.w(2).load(Ordering::Relaxed);
            let state = State::from_meta(meta);
            if let Some(b) = buf.as_deref_mut() {
                b.clear();
                if state == State::Occupied {
                    // A torn meta word can claim any length: clamp, the re-check discards it.
                    let len = ((meta >> 32) as usize).min(self.capacity());
                    for w in self.payload().iter().take(len.div_ceil(8)) {
                        b.extend_from_slice(&w.load(Ordering::Relaxed).to_le_bytes());
                    }
                    b.truncate(len);
                }
            }
            fence(Ordering::Acquire);
            if self.seq().load(Ordering::Relaxed) == s1 {
                return Some(Seen {
                    state,
                    tag,
                    seq: s1,
                });
            }
            backoff(attempt);
        }
    }

    /// Writes the slot. The caller must be the slot's only writer (config: the single control
    /// writer; stats: the owner) and `payload` must fit ([`Slot::capacity`]).
    pub(crate) fn write(&self, state: State, tag: u64, payload: &[u8]) {
        let s = self.seq().load(Ordering::Relaxed);
        // A slot left odd by a writer that died is made even again by the next write.
        let odd = s | 1;
        self.seq().store(odd, Ordering::Relaxed);
        fence(Ordering::Release);
        self.fill(state, tag, payload);
        self.seq().store(odd.wrapping_add(1), Ordering::Release);
    }

    /// Stores meta, tag and payload words; the caller holds the seqlock (seq odd).
    pub(crate) fn fill(&self, state: State, tag: u64, payload: &[u8]) {
        let len = payload.len().min(self.capacity());
        self.w(1)
            .store(state as u64 | ((len as u64) << 32), Ordering::Relaxed);
        self.w(2).store(tag, Ordering::Relaxed);
        for (w, chunk) in self.payload().iter().zip(payload.chunks(8)) {
            let mut b = [0u8; 8];
            if let Some(dst) = b.get_mut(..chunk.len()) {
                dst.copy_from_slice(chunk);
            }
            w.store(u64::from_le_bytes(b), Ordering::Relaxed);
        }
    }
}

/// Spin briefly, then let the writer's thread run.
pub(crate) fn backoff(attempt: u32) {
    if attempt < 64 {
        std::hint::spin_loop();
    } else {
        std::thread::yield_now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(n: usize) -> Vec<AtomicU64> {
        (0..n).map(|_| AtomicU64::new(0)).collect()
    }

    #[test]
    fn write_then_read_round_trips() {
        let w = words(8);
        let s = Slot::new(&w);
        assert_eq!(s.capacity(), 32);
        s.write(State::Occupied, 42, b"hello, seqlock!");
        let mut buf = Vec::new();
        let seen = s.read(Some(&mut buf)).unwrap();
        assert_eq!((seen.state, seen.tag, seen.seq), (State::Occupied, 42, 2));
        assert_eq!(buf, b"hello, seqlock!");
        s.write(State::Tombstone, 0, &[]);
        let seen = s.read(Some(&mut buf)).unwrap();
        assert_eq!(seen.state, State::Tombstone);
        assert!(buf.is_empty());
    }

    #[test]
    fn reader_gives_up_on_a_dead_writer_and_next_write_recovers() {
        let w = words(6);
        let s = Slot::new(&w);
        s.seq().store(7, Ordering::Relaxed);
        assert_eq!(s.read(None), None);
        s.write(State::Occupied, 1, b"x");
        assert_eq!(s.read(None).unwrap().seq, 8);
    }

    #[test]
    fn torn_length_is_clamped() {
        let w = words(6);
        let s = Slot::new(&w);
        w[1].store(1 | (1 << 40), Ordering::Relaxed);
        let mut buf = Vec::new();
        s.read(Some(&mut buf)).unwrap();
        assert_eq!(buf.len(), 16);
    }
}
