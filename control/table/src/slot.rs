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

/// How long a slot may stay locked at the *same* odd sequence number before a reader gives
/// up on it, when its writer process is gone (or unknown). A live writer holds a slot for a
/// copy of a few hundred bytes; a sequence number that moves means the writer is alive and
/// restarts this clock. Control's next start clears slots a dead writer left locked.
pub(crate) const READ_PATIENCE: Duration = Duration::from_millis(100);

/// The same, when the writer process still exists: it was descheduled inside the slot
/// (heavy overload), so wait much longer before reporting the record absent.
pub(crate) const LIVE_WRITER_PATIENCE: Duration = Duration::from_secs(2);

/// Hard bound on attempts, so a reader terminates even against a writer that rewrites the
/// same slot without pause forever (no real writer does).
pub(crate) const MAX_READ_ATTEMPTS: u32 = 1_000_000;

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
    /// is occupied) the payload bytes. `None` if the slot stayed locked at one sequence
    /// number too long (see [`Patience`]) or after [`MAX_READ_ATTEMPTS`].
    /// `writer` is the pid of the process that writes this slot (0 if unknown).
    pub(crate) fn read(&self, mut buf: Option<&mut Vec<u8>>, writer: u32) -> Option<Seen> {
        let mut patience = Patience::new(writer);
        loop {
            let s1 = self.seq().load(Ordering::Acquire);
            if s1 & 1 == 1 {
                if !patience.wait(s1) {
                    return None;
                }
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
            let s2 = self.seq().load(Ordering::Relaxed);
            if s2 == s1 {
                return Some(Seen {
                    state,
                    tag,
                    seq: s1,
                });
            }
            if !patience.wait(s2) {
                return None;
            }
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

/// Waiting for a slot another writer holds: spin briefly, then yield, and give up only when
/// the slot's sequence number has stayed at one odd value for [`READ_PATIENCE`] and its
/// writer process is gone, or for [`LIVE_WRITER_PATIENCE`] in any case, or after
/// [`MAX_READ_ATTEMPTS`].
#[derive(Debug)]
pub(crate) struct Patience {
    writer: u32,
    attempt: u32,
    stuck: Option<(u64, Instant)>,
}

impl Patience {
    /// `writer`: pid of the slot's writer process, 0 if unknown.
    pub(crate) fn new(writer: u32) -> Patience {
        Patience {
            writer,
            attempt: 0,
            stuck: None,
        }
    }

    /// Records a failed attempt that saw `seq` and waits a little; `false` means give up.
    pub(crate) fn wait(&mut self, seq: u64) -> bool {
        self.attempt = self.attempt.saturating_add(1);
        if self.attempt > MAX_READ_ATTEMPTS {
            return false;
        }
        if self.attempt > SPINS_BEFORE_CLOCK && seq & 1 == 1 {
            match self.stuck {
                Some((s, since)) if s == seq => {
                    let waited = since.elapsed();
                    if waited > LIVE_WRITER_PATIENCE
                        || (waited > READ_PATIENCE && !process_alive(self.writer))
                    {
                        return false;
                    }
                }
                _ => self.stuck = Some((seq, Instant::now())),
            }
        }
        backoff(self.attempt);
        true
    }
}

/// Whether a process with this pid exists in our pid namespace (Linux `/proc`). Unknown (0)
/// counts as gone. A writer in another pid namespace also reads as gone, which only shortens
/// the wait to [`READ_PATIENCE`].
fn process_alive(pid: u32) -> bool {
    pid != 0 && std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Spin briefly, then let the writer's thread run, then sleep: a yield returns at once on an
/// idle machine, so without the sleep [`MAX_READ_ATTEMPTS`] would run out long before the
/// time-based patience and a reader would give up on a live writer early.
pub(crate) fn backoff(attempt: u32) {
    if attempt < 64 {
        std::hint::spin_loop();
    } else if attempt < 1024 {
        std::thread::yield_now();
    } else {
        std::thread::sleep(std::time::Duration::from_micros(50));
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
        let seen = s.read(Some(&mut buf), 0).unwrap();
        assert_eq!((seen.state, seen.tag, seen.seq), (State::Occupied, 42, 2));
        assert_eq!(buf, b"hello, seqlock!");
        s.write(State::Tombstone, 0, &[]);
        let seen = s.read(Some(&mut buf), 0).unwrap();
        assert_eq!(seen.state, State::Tombstone);
        assert!(buf.is_empty());
    }

    #[test]
    fn reader_gives_up_on_a_dead_writer_and_next_write_recovers() {
        let w = words(6);
        let s = Slot::new(&w);
        s.seq().store(7, Ordering::Relaxed);
        assert_eq!(s.read(None, 0), None);
        s.write(State::Occupied, 1, b"x");
        assert_eq!(s.read(None, 0).unwrap().seq, 8);
    }

    #[test]
    fn torn_length_is_clamped() {
        let w = words(6);
        let s = Slot::new(&w);
        w[1].store(1 | (1 << 40), Ordering::Relaxed);
        let mut buf = Vec::new();
        s.read(Some(&mut buf), 0).unwrap();
        assert_eq!(buf.len(), 16);
    }
}
