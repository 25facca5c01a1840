//! The durable store: the source of truth for apps, stream keys, templates, appconfig, RTP
//! forwarders and revocations of locally generated keys.
//!
//! Durability: the SQLite database runs in WAL mode with `synchronous = FULL`. In WAL mode,
//! `NORMAL` only syncs the WAL at checkpoints, so a transaction acknowledged just before a power
//! loss can vanish; `FULL` syncs the WAL on every commit, so a call that returned `Ok` survives
//! power loss. The REST API answers 200 only after such a call returned.
//!
//! The [`Store`] trait is deliberately narrow (plain rows in, plain rows out) so another backend
//! (PostgreSQL) can implement it later.

use crate::config::DuplicatePolicy;
use rusqlite::{Connection, OptionalExtension, params};
use std::net::IpAddr;
use std::path::Path;
use std::sync::Mutex;

/// An app (project) as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRow {
    /// App ID.
    pub id: String,
    /// 32 hex characters.
    pub certificate_hex: String,
    /// Ingest domains bound to the app.
    pub domains: Vec<String>,
    /// SRT passphrase, if required.
    pub srt_passphrase: Option<String>,
    /// SRT key length callers must use (0 = the caller's choice; 16, 24 or 32 enforced).
    pub srt_pbkeylen: u8,
    /// Concurrent streams allowed, 0 = unlimited.
    pub max_streams: u32,
    /// Highest admitted bitrate in kbps, 0 = unlimited.
    pub max_bitrate_kbps: u32,
    /// Second push for a live channel+uid.
    pub duplicate_policy: DuplicatePolicy,
}

/// A REST-created stream key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRow {
    /// The key text.
    pub key: String,
    /// Owning app.
    pub app_id: String,
    /// RTC channel.
    pub channel: String,
    /// RTC uid, normalised.
    pub uid: String,
    /// Seconds of validity from `created_at`; 0 = never expires.
    pub expires_after: u64,
    /// Unix seconds.
    pub created_at: u64,
    /// Bound template.
    pub template_id: Option<String>,
}

impl KeyRow {
    /// Absolute expiry in Unix seconds, 0 = never.
    pub fn expires_at(&self) -> u64 {
        if self.expires_after == 0 {
            0
        } else {
            self.created_at.saturating_add(self.expires_after)
        }
    }
}

/// A stream template; `settings_json` is the normalised `settings` object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateRow {
    /// Owning app.
    pub app_id: String,
    /// Template ID (1..12 alphanumerics).
    pub id: String,
    /// JSON text of the normalised settings.
    pub settings_json: String,
}

/// Per-app settings (`appconfig`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppSettings {
    /// The global template.
    pub default_template: Option<String>,
    /// JSON text of the `dualStreaming` object, stored as given.
    pub dual_streaming_json: Option<String>,
}

/// A revoked locally generated key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationRow {
    /// Owning app.
    pub app_id: String,
    /// The key text.
    pub key: String,
    /// Unix seconds until which the revocation matters (the key's own expiry), 0 = forever.
    pub until: u64,
}

/// An RTP forwarder attached to a live stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwarderRow {
    /// Forwarder ID.
    pub id: String,
    /// Owning app.
    pub app_id: String,
    /// The stream session.
    pub sid: String,
    /// Destination address.
    pub host: IpAddr,
    /// Destination port of video RTP, 0 = none.
    pub video_port: u16,
    /// Destination port of audio RTP, 0 = none.
    pub audio_port: u16,
    /// Unix seconds.
    pub created_at: u64,
}

/// Everything the shared-memory table mirrors, read in one transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Apps, each with its settings.
    pub apps: Vec<(AppRow, AppSettings)>,
    /// REST keys.
    pub keys: Vec<KeyRow>,
    /// Templates.
    pub templates: Vec<TemplateRow>,
    /// Revocations still in force.
    pub revocations: Vec<RevocationRow>,
    /// Forwarders.
    pub forwarders: Vec<ForwarderRow>,
}

/// Store failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row already exists (duplicate creation).
    #[error("already exists")]
    Conflict,
    /// A per-app cap (e.g. templates) would be exceeded.
    #[error("limit reached")]
    LimitReached,
    /// The backend failed (I/O, corruption): an internal fault.
    #[error("store backend: {0}")]
    Backend(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Backend(e.to_string())
    }
}

/// Result alias for store calls.
pub type StoreResult<T> = Result<T, StoreError>;

/// The durable store. Every mutating call returns only after the change is durable.
pub trait Store: Send + Sync {
    /// Inserts or replaces an app.
    fn upsert_app(&self, app: &AppRow) -> StoreResult<()>;
    /// All apps.
    fn apps(&self) -> StoreResult<Vec<AppRow>>;
    /// Inserts a key; [`StoreError::Conflict`] if the text exists.
    fn insert_key(&self, key: &KeyRow) -> StoreResult<()>;
    /// One key of an app.
    fn key(&self, app_id: &str, key: &str) -> StoreResult<Option<KeyRow>>;
    /// Keys of an app in creation order after `cursor` (0 = from the start), with their cursors.
    fn list_keys(&self, app_id: &str, cursor: i64, limit: u32) -> StoreResult<Vec<(i64, KeyRow)>>;
    /// Rebinds a key's template; false if the key does not exist.
    fn set_key_template(
        &self,
        app_id: &str,
        key: &str,
        template: Option<&str>,
    ) -> StoreResult<bool>;
    /// Deletes a key; false if it did not exist.
    fn delete_key(&self, app_id: &str, key: &str) -> StoreResult<bool>;
    /// Creates or replaces a template; true if created. [`StoreError::LimitReached`] when
    /// creating would exceed `max_per_app`.
    fn put_template(&self, t: &TemplateRow, max_per_app: usize) -> StoreResult<bool>;
    /// One template.
    fn template(&self, app_id: &str, id: &str) -> StoreResult<Option<TemplateRow>>;
    /// All templates of an app, by ID.
    fn templates(&self, app_id: &str) -> StoreResult<Vec<TemplateRow>>;
    /// Deletes a template; false if it did not exist.
    fn delete_template(&self, app_id: &str, id: &str) -> StoreResult<bool>;
    /// The app's settings (defaults when never set).
    fn app_settings(&self, app_id: &str) -> StoreResult<AppSettings>;
    /// Replaces the app's settings.
    fn put_app_settings(&self, app_id: &str, s: &AppSettings) -> StoreResult<()>;
    /// Records (or extends) a revocation.
    fn put_revocation(&self, r: &RevocationRow) -> StoreResult<()>;
    /// Whether a key is revoked at `now`.
    fn is_revoked(&self, app_id: &str, key: &str, now: u64) -> StoreResult<bool>;
    /// Adds a forwarder; [`StoreError::Conflict`] if the ID exists.
    fn insert_forwarder(&self, f: &ForwarderRow) -> StoreResult<()>;
    /// Forwarders of one stream.
    fn forwarders(&self, app_id: &str, sid: &str) -> StoreResult<Vec<ForwarderRow>>;
    /// Every forwarder of every app (for the sweep of ended streams).
    fn all_forwarders(&self) -> StoreResult<Vec<ForwarderRow>>;
    /// Deletes a forwarder; false if it did not exist.
    fn delete_forwarder(&self, app_id: &str, sid: &str, id: &str) -> StoreResult<bool>;
    /// Everything, consistently, with revocations expired before `now` left out.
    fn snapshot(&self, now: u64) -> StoreResult<Snapshot>;
}

/// [`Store`] on SQLite (WAL, `synchronous = FULL`).
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS apps (
  id TEXT PRIMARY KEY, certificate TEXT NOT NULL, domains TEXT NOT NULL,
  srt_passphrase TEXT, max_streams INTEGER NOT NULL, max_bitrate_kbps INTEGER NOT NULL,
  duplicate_policy TEXT NOT NULL, srt_pbkeylen INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS keys (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL UNIQUE, app_id TEXT NOT NULL,
  channel TEXT NOT NULL, uid TEXT NOT NULL, expires_after INTEGER NOT NULL,
  created_at INTEGER NOT NULL, template_id TEXT);
CREATE INDEX IF NOT EXISTS keys_by_app ON keys(app_id, seq);
CREATE TABLE IF NOT EXISTS templates (
  app_id TEXT NOT NULL, id TEXT NOT NULL, settings TEXT NOT NULL, PRIMARY KEY(app_id, id));
CREATE TABLE IF NOT EXISTS appconfig (
  app_id TEXT PRIMARY KEY, default_template TEXT, dual_streaming TEXT);
CREATE TABLE IF NOT EXISTS revocations (
  app_id TEXT NOT NULL, key TEXT NOT NULL, until INTEGER NOT NULL, PRIMARY KEY(app_id, key));
CREATE TABLE IF NOT EXISTS forwarders (
  app_id TEXT NOT NULL, id TEXT NOT NULL, sid TEXT NOT NULL, host TEXT NOT NULL,
  video_port INTEGER NOT NULL, audio_port INTEGER NOT NULL, created_at INTEGER NOT NULL,
  PRIMARY KEY(app_id, id));
";

/// Brings a store created by an older version up to [`SCHEMA`]: columns added since are
/// added with their default, so existing rows keep their meaning.
fn migrate(conn: &Connection) -> StoreResult<()> {
    let has_pbkeylen = conn
        .prepare("SELECT 1 FROM pragma_table_info('apps') WHERE name = 'srt_pbkeylen'")?
        .exists([])?;
    if !has_pbkeylen {
        conn.execute_batch("ALTER TABLE apps ADD COLUMN srt_pbkeylen INTEGER NOT NULL DEFAULT 0;")?;
    }
    Ok(())
}

fn policy_text(p: DuplicatePolicy) -> &'static str {
    match p {
        DuplicatePolicy::RefuseNew => "refuse_new",
        DuplicatePolicy::ReplaceOld => "replace_old",
    }
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl SqliteStore {
    /// Opens (creating if needed) `dir/sluice.db` with WAL and `synchronous = FULL`.
    pub fn open(dir: &Path) -> StoreResult<SqliteStore> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Backend(e.to_string()))?;
        // The store holds stream keys, which admit publishers: keep the directory private.
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        }
        let conn = Connection::open(dir.join("sluice.db"))?;
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Backend(format!(
                "journal_mode is {mode}, not wal"
            )));
        }
        conn.execute_batch("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        migrate(&conn)?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
        })
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> StoreResult<T>) -> StoreResult<T> {
        let mut guard = self
            .conn
            .lock()
            .map_err(|_| StoreError::Backend("store mutex poisoned".into()))?;
        f(&mut guard)
    }
}

fn row_to_key(r: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, KeyRow)> {
    Ok((
        r.get(0)?,
        KeyRow {
            key: r.get(1)?,
            app_id: r.get(2)?,
            channel: r.get(3)?,
            uid: r.get(4)?,
            expires_after: to_u64(r.get(5)?),
            created_at: to_u64(r.get(6)?),
            template_id: r.get(7)?,
        },
    ))
}

fn row_to_forwarder(r: &rusqlite::Row<'_>) -> rusqlite::Result<ForwarderRow> {
    let host: String = r.get(3)?;
    Ok(ForwarderRow {
        app_id: r.get(0)?,
        id: r.get(1)?,
        sid: r.get(2)?,
        host: host
            .parse()
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)),
        video_port: u16::try_from(r.get::<_, i64>(4)?).unwrap_or(0),
        audio_port: u16::try_from(r.get::<_, i64>(5)?).unwrap_or(0),
        created_at: to_u64(r.get(6)?),
    })
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.code == rusqlite::ErrorCode::ConstraintViolation)
}

const KEY_COLS: &str = "seq, key, app_id, channel, uid, expires_after, created_at, template_id";

impl Store for SqliteStore {
    fn upsert_app(&self, a: &AppRow) -> StoreResult<()> {
        self.with(|c| {
            c.execute(
                "INSERT OR REPLACE INTO apps (id, certificate, domains, srt_passphrase, \
                 max_streams, max_bitrate_kbps, duplicate_policy, srt_pbkeylen) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    a.id,
                    a.certificate_hex,
                    serde_json::to_string(&a.domains).unwrap_or_else(|_| "[]".into()),
                    a.srt_passphrase,
                    a.max_streams,
                    a.max_bitrate_kbps,
                    policy_text(a.duplicate_policy),
                    a.srt_pbkeylen
                ],
            )?;
            Ok(())
        })
    }

    fn apps(&self) -> StoreResult<Vec<AppRow>> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT id, certificate, domains, srt_passphrase, max_streams, \
                 max_bitrate_kbps, duplicate_policy, srt_pbkeylen FROM apps ORDER BY id",
            )?;
            let rows = st.query_map([], |r| {
                let domains: String = r.get(2)?;
                let policy: String = r.get(6)?;
                Ok(AppRow {
                    id: r.get(0)?,
                    certificate_hex: r.get(1)?,
                    domains: serde_json::from_str(&domains).unwrap_or_default(),
                    srt_passphrase: r.get(3)?,
                    srt_pbkeylen: r.get(7)?,
                    max_streams: r.get(4)?,
                    max_bitrate_kbps: r.get(5)?,
                    duplicate_policy: if policy == "replace_old" {
                        DuplicatePolicy::ReplaceOld
                    } else {
                        DuplicatePolicy::RefuseNew
                    },
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn insert_key(&self, k: &KeyRow) -> StoreResult<()> {
        self.with(|c| {
            match c.execute(
                "INSERT INTO keys (key, app_id, channel, uid, expires_after, created_at, template_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    k.key,
                    k.app_id,
                    k.channel,
                    k.uid,
                    to_i64(k.expires_after),
                    to_i64(k.created_at),
                    k.template_id
                ],
            ) {
                Ok(_) => Ok(()),
                Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict),
                Err(e) => Err(e.into()),
            }
        })
    }

    fn key(&self, app_id: &str, key: &str) -> StoreResult<Option<KeyRow>> {
        self.with(|c| {
            Ok(c.query_row(
                &format!("SELECT {KEY_COLS} FROM keys WHERE app_id = ?1 AND key = ?2"),
                params![app_id, key],
                row_to_key,
            )
            .optional()?
            .map(|(_, k)| k))
        })
    }

    fn list_keys(&self, app_id: &str, cursor: i64, limit: u32) -> StoreResult<Vec<(i64, KeyRow)>> {
        self.with(|c| {
            let mut st = c.prepare(&format!(
                "SELECT {KEY_COLS} FROM keys WHERE app_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3"
            ))?;
            let rows = st.query_map(params![app_id, cursor, limit], row_to_key)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn set_key_template(
        &self,
        app_id: &str,
        key: &str,
        template: Option<&str>,
    ) -> StoreResult<bool> {
        self.with(|c| {
            Ok(c.execute(
                "UPDATE keys SET template_id = ?3 WHERE app_id = ?1 AND key = ?2",
                params![app_id, key, template],
            )? > 0)
        })
    }

    fn delete_key(&self, app_id: &str, key: &str) -> StoreResult<bool> {
        self.with(|c| {
            Ok(c.execute(
                "DELETE FROM keys WHERE app_id = ?1 AND key = ?2",
                params![app_id, key],
            )? > 0)
        })
    }

    fn put_template(&self, t: &TemplateRow, max_per_app: usize) -> StoreResult<bool> {
        self.with(|c| {
            // One transaction: the count check and the insert must not interleave with
            // another creation.
            let tx = c.transaction()?;
            let exists: bool = tx
                .query_row(
                    "SELECT 1 FROM templates WHERE app_id = ?1 AND id = ?2",
                    params![t.app_id, t.id],
                    |_| Ok(()),
                )
                .optional()?
                .is_some();
            if !exists {
                let n: i64 = tx.query_row(
                    "SELECT COUNT(*) FROM templates WHERE app_id = ?1",
                    params![t.app_id],
                    |r| r.get(0),
                )?;
                if usize::try_from(n).unwrap_or(usize::MAX) >= max_per_app {
                    return Err(StoreError::LimitReached);
                }
            }
            tx.execute(
                "INSERT OR REPLACE INTO templates VALUES (?1, ?2, ?3)",
                params![t.app_id, t.id, t.settings_json],
            )?;
            tx.commit()?;
            Ok(!exists)
        })
    }

    fn template(&self, app_id: &str, id: &str) -> StoreResult<Option<TemplateRow>> {
        self.with(|c| {
            Ok(c.query_row(
                "SELECT app_id, id, settings FROM templates WHERE app_id = ?1 AND id = ?2",
                params![app_id, id],
                |r| {
                    Ok(TemplateRow {
                        app_id: r.get(0)?,
                        id: r.get(1)?,
                        settings_json: r.get(2)?,
                    })
                },
            )
            .optional()?)
        })
    }

    fn templates(&self, app_id: &str) -> StoreResult<Vec<TemplateRow>> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT app_id, id, settings FROM templates WHERE app_id = ?1 ORDER BY id",
            )?;
            let rows = st.query_map(params![app_id], |r| {
                Ok(TemplateRow {
                    app_id: r.get(0)?,
                    id: r.get(1)?,
                    settings_json: r.get(2)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn delete_template(&self, app_id: &str, id: &str) -> StoreResult<bool> {
        self.with(|c| {
            Ok(c.execute(
                "DELETE FROM templates WHERE app_id = ?1 AND id = ?2",
                params![app_id, id],
            )? > 0)
        })
    }

    fn app_settings(&self, app_id: &str) -> StoreResult<AppSettings> {
        self.with(|c| {
            Ok(c.query_row(
                "SELECT default_template, dual_streaming FROM appconfig WHERE app_id = ?1",
                params![app_id],
                |r| {
                    Ok(AppSettings {
                        default_template: r.get(0)?,
                        dual_streaming_json: r.get(1)?,
                    })
                },
            )
            .optional()?
            .unwrap_or_default())
        })
    }

    fn put_app_settings(&self, app_id: &str, s: &AppSettings) -> StoreResult<()> {
        self.with(|c| {
            c.execute(
                "INSERT OR REPLACE INTO appconfig VALUES (?1, ?2, ?3)",
                params![app_id, s.default_template, s.dual_streaming_json],
            )?;
            Ok(())
        })
    }

    fn put_revocation(&self, r: &RevocationRow) -> StoreResult<()> {
        self.with(|c| {
            c.execute(
                "INSERT OR REPLACE INTO revocations VALUES (?1, ?2, ?3)",
                params![r.app_id, r.key, to_i64(r.until)],
            )?;
            Ok(())
        })
    }

    fn is_revoked(&self, app_id: &str, key: &str, now: u64) -> StoreResult<bool> {
        self.with(|c| {
            Ok(c.query_row(
                "SELECT 1 FROM revocations WHERE app_id = ?1 AND key = ?2 AND (until = 0 OR until >= ?3)",
                params![app_id, key, to_i64(now)],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
        })
    }

    fn insert_forwarder(&self, f: &ForwarderRow) -> StoreResult<()> {
        self.with(|c| {
            match c.execute(
                "INSERT INTO forwarders VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    f.app_id,
                    f.id,
                    f.sid,
                    f.host.to_string(),
                    f.video_port,
                    f.audio_port,
                    to_i64(f.created_at)
                ],
            ) {
                Ok(_) => Ok(()),
                Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict),
                Err(e) => Err(e.into()),
            }
        })
    }

    fn forwarders(&self, app_id: &str, sid: &str) -> StoreResult<Vec<ForwarderRow>> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT * FROM forwarders WHERE app_id = ?1 AND sid = ?2 ORDER BY created_at, id",
            )?;
            let rows = st.query_map(params![app_id, sid], row_to_forwarder)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn all_forwarders(&self) -> StoreResult<Vec<ForwarderRow>> {
        self.with(|c| {
            let mut st = c.prepare("SELECT * FROM forwarders ORDER BY created_at, id")?;
            let rows = st.query_map([], row_to_forwarder)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn delete_forwarder(&self, app_id: &str, sid: &str, id: &str) -> StoreResult<bool> {
        self.with(|c| {
            Ok(c.execute(
                "DELETE FROM forwarders WHERE app_id = ?1 AND sid = ?2 AND id = ?3",
                params![app_id, sid, id],
            )? > 0)
        })
    }

    fn snapshot(&self, now: u64) -> StoreResult<Snapshot> {
        let apps = self.apps()?;
        let mut snap = Snapshot::default();
        for a in apps {
            let s = self.app_settings(&a.id)?;
            snap.apps.push((a, s));
        }
        self.with(|c| {
            let mut st = c.prepare(&format!("SELECT {KEY_COLS} FROM keys ORDER BY seq"))?;
            snap.keys = st
                .query_map([], row_to_key)?
                .map(|r| r.map(|(_, k)| k))
                .collect::<Result<Vec<_>, _>>()?;
            let mut st = c.prepare("SELECT app_id, id, settings FROM templates")?;
            snap.templates = st
                .query_map([], |r| {
                    Ok(TemplateRow {
                        app_id: r.get(0)?,
                        id: r.get(1)?,
                        settings_json: r.get(2)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            let mut st = c.prepare(
                "SELECT app_id, key, until FROM revocations WHERE until = 0 OR until >= ?1",
            )?;
            snap.revocations = st
                .query_map(params![to_i64(now)], |r| {
                    Ok(RevocationRow {
                        app_id: r.get(0)?,
                        key: r.get(1)?,
                        until: to_u64(r.get(2)?),
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            let mut st = c.prepare("SELECT * FROM forwarders")?;
            snap.forwarders = st
                .query_map([], row_to_forwarder)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(())
        })?;
        Ok(snap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str, app: &str) -> KeyRow {
        KeyRow {
            key: k.into(),
            app_id: app.into(),
            channel: "ch".into(),
            uid: "1".into(),
            expires_after: 0,
            created_at: 100,
            template_id: None,
        }
    }

    #[test]
    fn wal_and_full_sync_are_on() {
        let d = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(d.path()).unwrap();
        s.with(|c| {
            let m: String = c.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
            let sync: i64 = c.query_row("PRAGMA synchronous", [], |r| r.get(0))?;
            assert_eq!(m, "wal");
            assert_eq!(sync, 2, "synchronous must be FULL (2)");
            Ok(())
        })
        .unwrap();
    }

    #[test]
    fn an_older_apps_table_gains_srt_pbkeylen() {
        let d = tempfile::tempdir().unwrap();
        // The apps table as it was before `srt_pbkeylen`, with one row.
        {
            let c = Connection::open(d.path().join("sluice.db")).unwrap();
            c.execute_batch(
                "CREATE TABLE apps (id TEXT PRIMARY KEY, certificate TEXT NOT NULL, \
                 domains TEXT NOT NULL, srt_passphrase TEXT, max_streams INTEGER NOT NULL, \
                 max_bitrate_kbps INTEGER NOT NULL, duplicate_policy TEXT NOT NULL); \
                 INSERT INTO apps VALUES ('old', 'c', '[]', 'pass-phrase-1', 0, 0, 'refuse_new');",
            )
            .unwrap();
        }
        let s = SqliteStore::open(d.path()).unwrap();
        let apps = s.apps().unwrap();
        assert_eq!(apps.len(), 1);
        assert_eq!(apps[0].srt_pbkeylen, 0);
        assert_eq!(apps[0].srt_passphrase.as_deref(), Some("pass-phrase-1"));
        let mut a = apps[0].clone();
        a.srt_pbkeylen = 32;
        s.upsert_app(&a).unwrap();
        assert_eq!(s.apps().unwrap()[0].srt_pbkeylen, 32);
        // Reopening does not migrate twice.
        drop(s);
        let s = SqliteStore::open(d.path()).unwrap();
        assert_eq!(s.apps().unwrap()[0].srt_pbkeylen, 32);
    }

    #[test]
    fn keys_conflict_list_and_delete() {
        let d = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(d.path()).unwrap();
        s.insert_key(&key("a", "app")).unwrap();
        assert!(matches!(
            s.insert_key(&key("a", "app")),
            Err(StoreError::Conflict)
        ));
        s.insert_key(&key("b", "app")).unwrap();
        s.insert_key(&key("c", "other")).unwrap();
        let page = s.list_keys("app", 0, 1).unwrap();
        assert_eq!(page.len(), 1);
        assert_eq!(page[0].1.key, "a");
        let rest = s.list_keys("app", page[0].0, 10).unwrap();
        assert_eq!(
            rest.iter().map(|r| r.1.key.as_str()).collect::<Vec<_>>(),
            ["b"]
        );
        assert!(s.set_key_template("app", "b", Some("t1")).unwrap());
        assert_eq!(
            s.key("app", "b").unwrap().unwrap().template_id.as_deref(),
            Some("t1")
        );
        assert!(
            s.key("other", "b").unwrap().is_none(),
            "keys are scoped to their app"
        );
        assert!(s.delete_key("app", "a").unwrap());
        assert!(!s.delete_key("app", "a").unwrap());
    }

    #[test]
    fn template_cap_applies_to_creation_only() {
        let d = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(d.path()).unwrap();
        let t = |id: &str| TemplateRow {
            app_id: "app".into(),
            id: id.into(),
            settings_json: "{}".into(),
        };
        assert!(s.put_template(&t("a"), 2).unwrap());
        assert!(s.put_template(&t("b"), 2).unwrap());
        assert!(matches!(
            s.put_template(&t("c"), 2),
            Err(StoreError::LimitReached)
        ));
        assert!(
            !s.put_template(&t("a"), 2).unwrap(),
            "reset of an existing one is allowed"
        );
    }

    #[test]
    fn revocations_expire_and_survive_reopen() {
        let d = tempfile::tempdir().unwrap();
        {
            let s = SqliteStore::open(d.path()).unwrap();
            s.put_revocation(&RevocationRow {
                app_id: "app".into(),
                key: "k".into(),
                until: 1000,
            })
            .unwrap();
        }
        let s = SqliteStore::open(d.path()).unwrap();
        assert!(s.is_revoked("app", "k", 999).unwrap());
        assert!(!s.is_revoked("app", "k", 1001).unwrap());
        assert_eq!(s.snapshot(500).unwrap().revocations.len(), 1);
        assert_eq!(s.snapshot(2000).unwrap().revocations.len(), 0);
    }
}
