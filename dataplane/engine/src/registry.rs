//! State shared by every core: which channel+uid pairs are live, how many streams each app and
//! the whole gateway hold, how many connections each source IP has open, and how recently each
//! source IP had a refusal recorded as an event.
//!
//! It is touched only when a connection opens or closes and when a publish is admitted or
//! ends, never per packet, so a mutex is the simple and sufficient tool here.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Refusal events one source IP may add at once (a burst: a typo fixed on the second try
/// still shows both attempts).
pub const REFUSAL_EVENT_BURST: u32 = 3;
/// After the burst, one refusal event per source IP per this period. Encoders retry a refused
/// publish every second or two; without a limit each retry is an aborted event and a webhook.
pub const REFUSAL_EVENT_PERIOD: Duration = Duration::from_secs(10);
/// Most source IPs whose refusal-event budget is tracked. Guards memory; when every tracked
/// IP is still within its period, further IPs' refusal events are suppressed (their refusals
/// are still counted).
pub const MAX_REFUSAL_EVENT_IPS: usize = 4096;

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
    /// Per source IP, the time at which its refusal-event budget is whole again (GCRA's
    /// theoretical arrival time).
    refusal_events: HashMap<IpAddr, Instant>,
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

    /// Whether a refusal from `ip` at `now` may be recorded as an event: a burst of
    /// [`REFUSAL_EVENT_BURST`], then one per [`REFUSAL_EVENT_PERIOD`] (a generic cell rate
    /// algorithm: one timestamp per IP).
    pub fn allow_refusal_event(&self, ip: IpAddr, now: Instant) -> bool {
        let mut g = self.lock();
        if g.refusal_events.len() >= MAX_REFUSAL_EVENT_IPS && !g.refusal_events.contains_key(&ip) {
            // An entry whose budget is whole again says nothing a missing entry would not.
            g.refusal_events.retain(|_, tat| *tat > now);
            if g.refusal_events.len() >= MAX_REFUSAL_EVENT_IPS {
                return false;
            }
        }
        let tat = g.refusal_events.get(&ip).copied().unwrap_or(now).max(now);
        let allowance = REFUSAL_EVENT_PERIOD * (REFUSAL_EVENT_BURST - 1);
        if tat.duration_since(now) > allowance {
            return false;
        }
        g.refusal_events.insert(ip, tat + REFUSAL_EVENT_PERIOD);
        true
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

    #[test]
    fn refusal_events_burst_then_one_per_period_per_ip() {
        let r = Registry::default();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..REFUSAL_EVENT_BURST {
            assert!(r.allow_refusal_event(a, t0));
        }
        assert!(!r.allow_refusal_event(a, t0));
        assert!(!r.allow_refusal_event(a, t0 + Duration::from_secs(1)));
        // Another address has its own budget.
        assert!(r.allow_refusal_event(b, t0));
        // One period later, one more; then none until the next period.
        let t1 = t0 + REFUSAL_EVENT_PERIOD;
        assert!(r.allow_refusal_event(a, t1));
        assert!(!r.allow_refusal_event(a, t1));
        // Quiet for long enough: the whole burst again.
        let t2 = t1 + REFUSAL_EVENT_PERIOD * (REFUSAL_EVENT_BURST + 1);
        for _ in 0..REFUSAL_EVENT_BURST {
            assert!(r.allow_refusal_event(a, t2));
        }
    }

    #[test]
    fn refusal_event_budgets_are_bounded() {
        let r = Registry::default();
        let t0 = Instant::now();
        for i in 0..MAX_REFUSAL_EVENT_IPS as u32 {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            assert!(r.allow_refusal_event(ip, t0));
        }
        let newcomer: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(
            !r.allow_refusal_event(newcomer, t0),
            "over the cap: suppressed"
        );
        // Once the tracked budgets are whole again, they are forgotten and room is made.
        let later = t0 + REFUSAL_EVENT_PERIOD * 2;
        assert!(r.allow_refusal_event(newcomer, later));
        assert!(r.lock().refusal_events.len() <= 1);
    }
}
