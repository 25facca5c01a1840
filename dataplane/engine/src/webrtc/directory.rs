//! Which publishers are live in which channel, on which core, and how many viewers each
//! channel has: the cross-core facts a WHEP request needs before it can be routed.
//!
//! Touched when a stream starts or ends, once a second per stream for its media summary, and
//! when a viewer session opens or closes; never per packet. A mutex is enough.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::viewer::SendCodec;

/// A channel of an app.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChannelKey {
    /// App id.
    pub app_id: String,
    /// Channel name.
    pub channel: String,
}

/// What the watch page and the WHEP router know about one live publisher.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveEntry {
    /// Publisher uid.
    pub uid: String,
    /// Session id of the stream.
    pub sid: String,
    /// Core that owns the stream (and so its viewers).
    pub core: usize,
    /// `rtmp` or `srt`.
    pub protocol: String,
    /// Video codec name, empty before the first configuration.
    pub video_codec: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Frames per second over the last second.
    pub fps: u32,
    /// Ingest bitrate over the last second.
    pub bitrate_kbps: u32,
    /// Source audio codec name, empty when there is no audio.
    pub audio_codec: String,
    /// What a WebRTC viewer gets for audio: `opus` (passthrough or transcoded) or `none`.
    pub webrtc_audio: String,
    /// The encoder uses B-frames: browsers may stutter (no reordering in WebRTC playout).
    pub bframes: bool,
    /// WebRTC viewers of this stream.
    pub viewers: u32,
    /// What its video can be sent to WebRTC as, for a session built on another core.
    pub send_video: Option<SendCodec>,
    /// What its audio can be sent to WebRTC as (Opus passed through or transcoded).
    pub send_audio: Option<SendCodec>,
}

#[derive(Default)]
struct Inner {
    live: HashMap<ChannelKey, Vec<LiveEntry>>,
    viewers: HashMap<ChannelKey, u32>,
}

/// The directory shared by all cores.
#[derive(Default, Clone)]
pub struct Directory {
    inner: Arc<Mutex<Inner>>,
}

/// Why a viewer could not be counted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ViewerLimitReached {
    /// The limit in force.
    pub limit: u32,
}

impl Directory {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Only plain data lives under this lock; recover from a poisoned lock rather than
        // stopping every core.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a live publisher (replacing an entry with the same uid).
    pub fn add(&self, key: ChannelKey, entry: LiveEntry) {
        let mut g = self.lock();
        let list = g.live.entry(key).or_default();
        list.retain(|e| e.uid != entry.uid);
        list.push(entry);
        list.sort_by(|a, b| a.uid.cmp(&b.uid));
    }

    /// Updates the media summary of a live publisher, if it is still listed.
    pub fn update(&self, key: &ChannelKey, sid: &str, f: impl FnOnce(&mut LiveEntry)) {
        let mut g = self.lock();
        if let Some(e) = g
            .live
            .get_mut(key)
            .and_then(|l| l.iter_mut().find(|e| e.sid == sid))
        {
            f(e);
        }
    }

    /// Removes a publisher by session id (a replacing publisher with the same uid stays).
    pub fn remove(&self, key: &ChannelKey, sid: &str) {
        let mut g = self.lock();
        if let Some(list) = g.live.get_mut(key) {
            list.retain(|e| e.sid != sid);
            if list.is_empty() {
                g.live.remove(key);
            }
        }
    }

    /// The live publishers of a channel, sorted by uid.
    pub fn channel(&self, key: &ChannelKey) -> Vec<LiveEntry> {
        self.lock().live.get(key).cloned().unwrap_or_default()
    }

    /// Whether the stream `sid` is still listed in the channel.
    pub fn is_live(&self, key: &ChannelKey, sid: &str) -> bool {
        self.lock()
            .live
            .get(key)
            .is_some_and(|l| l.iter().any(|e| e.sid == sid))
    }

    /// One live publisher.
    pub fn find(&self, key: &ChannelKey, uid: &str) -> Option<LiveEntry> {
        self.lock()
            .live
            .get(key)
            .and_then(|l| l.iter().find(|e| e.uid == uid).cloned())
    }

    /// Counts a new viewer of the channel unless `limit` (0 = none) is reached.
    pub fn add_viewer(&self, key: &ChannelKey, limit: u32) -> Result<(), ViewerLimitReached> {
        let mut g = self.lock();
        let n = g.viewers.entry(key.clone()).or_insert(0);
        if limit != 0 && *n >= limit {
            return Err(ViewerLimitReached { limit });
        }
        *n += 1;
        Ok(())
    }

    /// Counts a viewer out.
    pub fn remove_viewer(&self, key: &ChannelKey) {
        let mut g = self.lock();
        if let Some(n) = g.viewers.get_mut(key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                g.viewers.remove(key);
            }
        }
    }

    /// Viewers of a channel now.
    pub fn viewers(&self, key: &ChannelKey) -> u32 {
        self.lock().viewers.get(key).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ChannelKey {
        ChannelKey {
            app_id: "a".into(),
            channel: "c".into(),
        }
    }

    #[test]
    fn add_find_remove_by_sid() {
        let d = Directory::default();
        d.add(
            key(),
            LiveEntry {
                uid: "2".into(),
                sid: "s2".into(),
                ..Default::default()
            },
        );
        d.add(
            key(),
            LiveEntry {
                uid: "1".into(),
                sid: "s1".into(),
                ..Default::default()
            },
        );
        let uids: Vec<String> = d.channel(&key()).into_iter().map(|e| e.uid).collect();
        assert_eq!(uids, ["1", "2"]);
        // A replacing publisher of uid 1 takes over; removing the old sid keeps the new one.
        d.add(
            key(),
            LiveEntry {
                uid: "1".into(),
                sid: "s3".into(),
                ..Default::default()
            },
        );
        d.remove(&key(), "s1");
        assert_eq!(d.find(&key(), "1").map(|e| e.sid), Some("s3".into()));
        d.update(&key(), "s3", |e| e.width = 640);
        assert_eq!(d.find(&key(), "1").map(|e| e.width), Some(640));
        assert!(d.is_live(&key(), "s3"));
        d.remove(&key(), "s3");
        assert!(!d.is_live(&key(), "s3"));
        d.remove(&key(), "s2");
        assert!(d.channel(&key()).is_empty());
    }

    #[test]
    fn viewer_limit() {
        let d = Directory::default();
        assert!(d.add_viewer(&key(), 2).is_ok());
        assert!(d.add_viewer(&key(), 2).is_ok());
        assert_eq!(
            d.add_viewer(&key(), 2),
            Err(ViewerLimitReached { limit: 2 })
        );
        d.remove_viewer(&key());
        assert!(d.add_viewer(&key(), 2).is_ok());
        assert_eq!(d.viewers(&key()), 2);
        assert!(d.add_viewer(&key(), 0).is_ok());
    }
}
