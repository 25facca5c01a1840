//! What every ingest protocol shares: admission of a publish request (key check, registry
//! of live channel+uid pairs, quotas), the choice of the stream's owner core, and starting the
//! stream on that core.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;

use crate::admission::{self, AbortCode, Refusal};
use crate::core::CoreCtx;
use crate::registry::{ChannelUid, RegisterError, StreamGuard};
use crate::stream::{Stream, StreamIdentity};

/// A publish that passed admission and holds its place in the registry, not started yet.
/// It is `Send`, so it can travel to the stream's owner core with the connection.
pub struct AdmittedStream {
    /// Who publishes.
    pub identity: StreamIdentity,
    /// Template bound to the key.
    pub template_id: Option<String>,
    /// Registry entry (released on drop).
    pub guard: StreamGuard,
    /// Bitrate limit for this stream in kbps (0 = none).
    pub max_bitrate_kbps: u32,
}

impl AdmittedStream {
    /// The owner core (mesh peer index) of this stream among `cores`.
    pub fn owner(&self, cores: usize) -> usize {
        owner_of(
            &self.identity.app_id,
            &self.identity.channel,
            &self.identity.uid,
            cores,
        )
    }
}

/// The core that owns a channel+uid (see [`sluice_table::owner_core`]).
pub fn owner_of(app_id: &str, channel: &str, uid: &str, cores: usize) -> usize {
    sluice_table::owner_core(app_id, channel, uid, cores)
}

/// Runs admission for `key` and registers the stream; on refusal, records the abort event.
pub fn admit(
    ctx: &CoreCtx,
    key: &str,
    host: Option<&str>,
    url: &str,
    peer: Option<SocketAddr>,
    protocol: &'static str,
) -> Result<AdmittedStream, Refusal> {
    let table = &ctx.shared.table;
    let sid = ctx.new_sid();
    let identity = |channel: String, uid: String, app_id: String| StreamIdentity {
        sid: sid.clone(),
        app_id,
        channel,
        uid,
        key: key.to_string(),
        url: url.to_string(),
        domain: host.unwrap_or_default().to_string(),
        protocol,
        peer,
    };
    let admitted = match admission::admit(table.as_ref(), key, host, crate::time::unix_s()) {
        Ok(a) => a,
        Err(refusal) => {
            // Attribute the refusal to the app the ingest host belongs to (or the only app),
            // so it shows in that app's events and webhooks.
            let app_id = host
                .and_then(|h| table.app_by_domain(h))
                .map(|a| a.id)
                .or_else(|| {
                    let apps = table.apps();
                    (apps.len() == 1).then(|| apps[0].id.clone())
                })
                .unwrap_or_default();
            let id = identity(String::new(), String::new(), app_id);
            record_refusal(ctx, &id, &refusal);
            return Err(refusal);
        }
    };
    let id = identity(
        admitted.channel.clone(),
        admitted.uid.clone(),
        admitted.app.id.clone(),
    );
    let replace = matches!(
        admitted.app.duplicate_policy,
        sluice_table::DuplicatePolicy::ReplaceOld
    );
    let registered = ctx.shared.registry.register(
        ChannelUid {
            app_id: admitted.app.id.clone(),
            channel: admitted.channel.clone(),
            uid: admitted.uid.clone(),
        },
        &sid,
        ctx.shared.cfg.max_streams,
        admitted.app.max_streams,
        replace,
    );
    let guard = match registered {
        Ok(g) => g,
        Err(e) => {
            let refusal = match e {
                RegisterError::Quota => Refusal {
                    code: AbortCode::Quota,
                    reason: "concurrent stream quota exceeded".into(),
                },
                RegisterError::Conflict => Refusal {
                    code: AbortCode::Conflict,
                    reason: "this channel and uid are already being published".into(),
                },
            };
            record_refusal(ctx, &id, &refusal);
            return Err(refusal);
        }
    };
    let max_bitrate_kbps = if admitted.app.max_bitrate_kbps != 0 {
        admitted.app.max_bitrate_kbps
    } else {
        ctx.shared.cfg.max_bitrate_kbps
    };
    Ok(AdmittedStream {
        identity: id,
        template_id: admitted.template_id,
        guard,
        max_bitrate_kbps,
    })
}

/// Records a refused publish: always in its `refused_*` counter, and as an aborted event
/// (event ring, webhooks) unless the same source IP had too many recently (see
/// [`crate::registry::REFUSAL_EVENT_PERIOD`]); suppressed events are counted too.
pub fn record_refusal(ctx: &CoreCtx, id: &StreamIdentity, refusal: &Refusal) {
    let table = &ctx.shared.table;
    let allowed = id.peer.is_none_or(|p| {
        ctx.shared
            .registry
            .allow_refusal_event(p.ip(), std::time::Instant::now())
    });
    if allowed {
        crate::stream::push_abort(table, id, refusal);
    } else {
        table.add_counter(
            sluice_table::Counter::for_abort_code(refusal.code as u32),
            1,
        );
        table.add_counter(sluice_table::Counter::RefusalEventsSuppressed, 1);
        tracing::debug!(peer = ?id.peer, code = refusal.code as u32, reason = %refusal.reason,
            "publish refused (event suppressed: recent refusals from this address)");
    }
}

/// The identity of a publish that passed the key check but is refused later (by the
/// protocol: an SRT encryption mismatch), for its aborted event.
pub fn refused_identity(
    ctx: &CoreCtx,
    admitted: &crate::admission::Admitted,
    key: &str,
    host: Option<&str>,
    url: &str,
    peer: Option<SocketAddr>,
    protocol: &'static str,
) -> StreamIdentity {
    StreamIdentity {
        sid: ctx.new_sid(),
        app_id: admitted.app.id.clone(),
        channel: admitted.channel.clone(),
        uid: admitted.uid.clone(),
        key: key.to_string(),
        url: url.to_string(),
        domain: host.unwrap_or_default().to_string(),
        protocol,
        peer,
    }
}

/// Starts an admitted stream on this core (which should be its owner).
pub fn start_stream(ctx: &Rc<CoreCtx>, a: AdmittedStream) -> Rc<RefCell<Stream>> {
    let sid = a.identity.sid.clone();
    let stream = Stream::start(a.identity, a.template_id, a.guard, a.max_bitrate_kbps, ctx);
    let stream = Rc::new(RefCell::new(stream));
    ctx.streams.borrow_mut().insert(sid, stream.clone());
    stream
}

#[cfg(test)]
mod tests {
    use super::owner_of;

    #[test]
    fn owner_is_stable_and_spread() {
        assert_eq!(owner_of("a", "c", "1", 1), 0);
        let first = owner_of("a", "c", "1", 4);
        for _ in 0..10 {
            assert_eq!(owner_of("a", "c", "1", 4), first);
        }
        let mut seen = [0usize; 4];
        for i in 0..400 {
            seen[owner_of("a", "c", &i.to_string(), 4)] += 1;
        }
        assert!(seen.iter().all(|&n| n > 50), "{seen:?}");
    }
}
