//! Per-app request quotas (api-digest §1.8): one token bucket per app and operation class,
//! refilled continuously at the configured rate, holding at most one second's worth.

use crate::config::RateLimits;
use axum::http::Method;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// Most buckets kept: app IDs in paths are attacker-chosen (unknown apps are refused later),
/// so the map is cleared when it reaches this size rather than growing without bound.
pub const MAX_BUCKETS: usize = 4096;

/// Operation classes with separate quotas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// POST.
    Create,
    /// DELETE.
    Delete,
    /// GET and anything else read-only.
    Query,
    /// PUT and PATCH.
    Update,
}

impl Class {
    /// The class of an HTTP method.
    pub fn of(m: &Method) -> Class {
        match *m {
            Method::POST => Class::Create,
            Method::DELETE => Class::Delete,
            Method::PUT | Method::PATCH => Class::Update,
            _ => Class::Query,
        }
    }
}

struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Token buckets keyed by (app, class).
pub struct RateLimiter {
    limits: RateLimits,
    buckets: Mutex<HashMap<(String, Class), Bucket>>,
}

impl RateLimiter {
    /// A limiter with the given per-second quotas.
    pub fn new(limits: RateLimits) -> RateLimiter {
        RateLimiter {
            limits,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token now; false when the quota is exhausted.
    pub fn allow(&self, app: &str, class: Class) -> bool {
        self.allow_at(app, class, Instant::now())
    }

    /// Takes a token at `now`.
    pub fn allow_at(&self, app: &str, class: Class, now: Instant) -> bool {
        let rate = f64::from(match class {
            Class::Create => self.limits.create,
            Class::Delete => self.limits.delete,
            Class::Query => self.limits.query,
            Class::Update => self.limits.update,
        });
        if rate == 0.0 {
            return true;
        }
        let Ok(mut map) = self.buckets.lock() else {
            return true;
        };
        if map.len() >= MAX_BUCKETS && !map.contains_key(&(app.to_string(), class)) {
            map.clear();
        }
        let b = map.entry((app.to_string(), class)).or_insert(Bucket {
            tokens: rate,
            last: now,
        });
        let dt = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + dt * rate).min(rate);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn burst_then_refill_per_app_and_class() {
        let l = RateLimiter::new(RateLimits {
            create: 5,
            delete: 1,
            query: 1,
            update: 1,
        });
        let t = Instant::now();
        for _ in 0..5 {
            assert!(l.allow_at("a", Class::Create, t));
        }
        assert!(!l.allow_at("a", Class::Create, t));
        assert!(l.allow_at("b", Class::Create, t), "apps are independent");
        assert!(l.allow_at("a", Class::Query, t), "classes are independent");
        assert!(l.allow_at("a", Class::Create, t + Duration::from_millis(200)));
        assert!(!l.allow_at("a", Class::Create, t + Duration::from_millis(210)));
    }
}
