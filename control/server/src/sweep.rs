//! Cleanup of state that belongs to streams which have ended: RTP forwarders (durable, in the
//! store and the table) and kick/mute commands (in memory and the table). Without it both
//! grow with every stream that ever had a forwarder or a command.
//!
//! A stream counts as ended when the dataplane is alive (fresh heartbeat) and the stream is
//! absent from its stats at two sweeps in a row, [`SWEEP_INTERVAL`] apart: one absent read is
//! not trusted, so a momentary gap in the stats never deletes a live stream's forwarder.

use std::collections::HashSet;
use std::time::Duration;

use crate::api::AppState;
use crate::store::ForwarderRow;
use crate::table::ConfigChange;

/// How often control looks for state of ended streams.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(10);

/// An (app ID, sid) pair.
pub type StreamRef = (String, String);

/// What the sweeper remembers between sweeps: the streams seen absent last time.
#[derive(Debug, Default)]
pub struct Sweeper {
    absent_before: HashSet<StreamRef>,
}

/// What one sweep removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Swept {
    /// Forwarders deleted from the store and the table.
    pub forwarders: usize,
    /// Stream commands dropped.
    pub commands: usize,
}

impl Sweeper {
    /// Among the streams that own state (`owners`), those absent from `online` now and at the
    /// previous call: they are ended. Remembers this call's absent set for the next one.
    pub fn ended(
        &mut self,
        owners: impl IntoIterator<Item = StreamRef>,
        online: &HashSet<StreamRef>,
    ) -> HashSet<StreamRef> {
        let absent: HashSet<StreamRef> =
            owners.into_iter().filter(|s| !online.contains(s)).collect();
        let ended = absent.intersection(&self.absent_before).cloned().collect();
        self.absent_before = absent;
        ended
    }

    /// One sweep over `state` (blocking: it writes the store). Does nothing while the
    /// dataplane's heartbeat is stale, since its stats then say nothing about which streams
    /// are live.
    pub fn sweep(&mut self, state: &AppState) -> Swept {
        let hb = state.stats.dataplane_heartbeat_ms();
        if hb == 0
            || crate::time::now_ms().saturating_sub(hb) > crate::table_shm::DATAPLANE_STALE_MS
        {
            self.absent_before.clear();
            return Swept::default();
        }
        let online: HashSet<StreamRef> = state
            .stats
            .streams()
            .into_iter()
            .map(|s| (s.app_id, s.sid))
            .collect();
        let forwarders: Vec<ForwarderRow> = match state.store.all_forwarders() {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!("forwarder sweep: cannot read the store: {e}");
                return Swept::default();
            }
        };
        let commands: Vec<StreamRef> = state
            .commands
            .lock()
            .map(|c| c.keys().cloned().collect())
            .unwrap_or_default();
        let owners = forwarders
            .iter()
            .map(|f| (f.app_id.clone(), f.sid.clone()))
            .chain(commands);
        let ended = self.ended(owners, &online);
        let mut swept = Swept::default();
        for f in forwarders
            .iter()
            .filter(|f| ended.contains(&(f.app_id.clone(), f.sid.clone())))
        {
            match state.store.delete_forwarder(&f.app_id, &f.sid, &f.id) {
                Ok(true) => {
                    state.publish(ConfigChange::RemoveForwarder(
                        f.app_id.clone(),
                        f.id.clone(),
                    ));
                    swept.forwarders += 1;
                }
                Ok(false) => {}
                Err(e) => tracing::warn!("forwarder sweep: cannot delete {}: {e}", f.id),
            }
        }
        if let Ok(mut c) = state.commands.lock() {
            for s in &ended {
                if c.remove(s).is_some() {
                    state.publish(ConfigChange::RemoveCommand(s.0.clone(), s.1.clone()));
                    swept.commands += 1;
                }
            }
        }
        if swept != Swept::default() {
            tracing::info!(
                forwarders = swept.forwarders,
                commands = swept.commands,
                "removed the state of ended streams"
            );
        }
        swept
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(sid: &str) -> StreamRef {
        ("app".into(), sid.into())
    }

    #[test]
    fn a_stream_ends_only_after_two_absent_sweeps() {
        let mut s = Sweeper::default();
        let online: HashSet<_> = [r("live")].into();
        // First absent read: not trusted yet.
        assert!(s.ended([r("live"), r("gone")], &online).is_empty());
        // Second in a row: ended. The live one never is.
        assert_eq!(s.ended([r("live"), r("gone")], &online), [r("gone")].into());
    }

    #[test]
    fn a_stream_seen_again_starts_over() {
        let mut s = Sweeper::default();
        let none = HashSet::new();
        assert!(s.ended([r("a")], &none).is_empty());
        // Back online (a gap in the stats): forgiven.
        assert!(s.ended([r("a")], &[r("a")].into()).is_empty());
        assert!(s.ended([r("a")], &none).is_empty());
        assert_eq!(s.ended([r("a")], &none), [r("a")].into());
    }
}
