//! State shared by every core: which channel+uid pairs are live, how many streams each app and
//! the whole gateway hold, and how many connections each source IP has open.
//!
//! It is touched only when a connection opens or closes and when a publish is admitted or
//! ends, never per packet, so a mutex is the simple and sufficient tool here.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Why a stream could not be registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterError {
    /// The gateway-wide or per-app stream limit is reached (abort code 4).
    Quota,
    /// The channel+uid is already live and the policy refuses a second publisher (code 5).
    Conflict,
}

/// Identity of a live stream in its channel.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChannelUid {
    /// App that owns the channel.
    pub app_id: String,
    /// Channel name.
    pub channel: String,
    /// Publisher uid in the channel.
    pub uid: String,
}

struct LiveEntry {
    sid: String,
    kick: Arc<AtomicBool>,
}

#[derive(Default)]
struct Inner {
    live: HashMap<ChannelUid, LiveEntry>,
    per_app: HashMap<String, u32>,
    per_ip: HashMap<IpAddr, u32>,
    total: u32,
}

/// The cross-core registry.
#[derive(Default, Clone)]
pub struct Registry {
    inner: Arc<Mutex<Inner>>,
}

/// Held by a connection for as long as it is open; releases its per-IP count on drop.
pub struct IpGuard {
    registry: Registry,
    ip: IpAddr,
}

impl Drop for IpGuard {
    fn drop(&mut self) {
        let mut g = self.registry.lock();
        if let Some(n) = g.per_ip.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                g.per_ip.remove(&self.ip);
            }
        }
    }
}

/// Held by an admitted stream; releases its channel+uid and quota on drop.
pub struct StreamGuard {
    registry: Registry,
    id: ChannelUid,
    sid: String,
    /// Set by another publisher that replaced this one (the `replace` duplicate policy).
    pub kicked: Arc<AtomicBool>,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let mut g = self.registry.lock();
        // Only remove the entry if it is still ours: a replacing publisher may own it now.
        if g.live.get(&self.id).is_some_and(|e| e.sid == self.sid) {
            g.live.remove(&self.id);
        }
        if let Some(n) = g.per_app.get_mut(&self.id.app_id) {
            *n = n.saturating_sub(1);
        }
        g.total = g.total.saturating_sub(1);
    }
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock would be a bug in this module; the data stays
        // consistent (counters only), so recover rather than poison every core.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts a new connection from `ip`; `None` when it already has `limit` open.
    pub fn connect_ip(&self, ip: IpAddr, limit: u32) -> Option<IpGuard> {
        let mut g = self.lock();
        let n = g.per_ip.entry(ip).or_insert(0);
        if limit != 0 && *n >= limit {
            return None;
        }
        *n += 1;
        Some(IpGuard {
            registry: self.clone(),
            ip,
        })
    }

    /// Registers a stream for `id`, enforcing the global and per-app limits and the duplicate
    /// policy. With `replace`, the previous publisher's kick flag is raised.
    pub fn register(
        &self,
        id: ChannelUid,
        sid: &str,
        max_total: u32,
        max_app: u32,
        replace: bool,
    ) -> Result<StreamGuard, RegisterError> {
        let mut g = self.lock();
        let mut replacing = false;
        if let Some(existing) = g.live.get(&id) {
            if !replace {
                return Err(RegisterError::Conflict);
            }
            existing.kick.store(true, Ordering::Release);
            replacing = true;
        }
        let app_count = g.per_app.get(&id.app_id).copied().unwrap_or(0);
        // A replacement swaps one stream for another, so it needs no extra quota.
        if !replacing
            && ((max_total != 0 && g.total >= max_total) || (max_app != 0 && app_count >= max_app))
        {
            return Err(RegisterError::Quota);
        }
        let kick = Arc::new(AtomicBool::new(false));
        g.live.insert(
            id.clone(),
            LiveEntry {
                sid: sid.to_string(),
                kick: kick.clone(),
            },
        );
        *g.per_app.entry(id.app_id.clone()).or_insert(0) += 1;
        g.total += 1;
        Ok(StreamGuard {
            registry: self.clone(),
            id,
            sid: sid.to_string(),
            kicked: kick,
        })
    }

    /// Number of admitted streams across all cores.
    #[cfg(test)]
    pub fn total_streams(&self) -> u32 {
        self.lock().total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(c: &str, u: &str) -> ChannelUid {
        ChannelUid {
            app_id: "a".into(),
            channel: c.into(),
            uid: u.into(),
        }
    }

    #[test]
    fn conflict_refused_then_released() {
        let r = Registry::default();
        let g1 = r.register(id("c", "1"), "s1", 0, 0, false).unwrap();
        assert_eq!(
            r.register(id("c", "1"), "s2", 0, 0, false).err(),
            Some(RegisterError::Conflict)
        );
        drop(g1);
        assert!(r.register(id("c", "1"), "s3", 0, 0, false).is_ok());
    }

    #[test]
    fn replace_kicks_previous_and_keeps_count() {
        let r = Registry::default();
        let g1 = r.register(id("c", "1"), "s1", 1, 1, true).unwrap();
        let g2 = r.register(id("c", "1"), "s2", 1, 1, true).unwrap();
        assert!(g1.kicked.load(Ordering::Acquire));
        drop(g1); // the old one ends after the new one took the slot
        assert_eq!(r.total_streams(), 1);
        assert_eq!(
            r.register(id("c", "1"), "s3", 0, 0, false).err(),
            Some(RegisterError::Conflict)
        );
        drop(g2);
        assert_eq!(r.total_streams(), 0);
    }

    #[test]
    fn quotas() {
        let r = Registry::default();
        let _a = r.register(id("c", "1"), "s1", 2, 1, false).unwrap();
        assert_eq!(
            r.register(id("c", "2"), "s2", 2, 1, false).err(),
            Some(RegisterError::Quota)
        );
        let _ip1 = r.connect_ip("127.0.0.1".parse().unwrap(), 1).unwrap();
        assert!(r.connect_ip("127.0.0.1".parse().unwrap(), 1).is_none());
    }
}
