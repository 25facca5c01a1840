//! Stream-key endpoints (api-digest §1.3): create, list, query, rebind template, delete or
//! revoke, and Sluice's key inspector.

use super::body::{self, invalid};
use super::{
    ApiError, ApiResult, AppState, PathParams, QueryParams, Scope, db, msg, ok, ok_data, scope,
};
use crate::localkey;
use crate::store::{KeyRow, RevocationRow};
use crate::table::ConfigChange;
use axum::body::Bytes;
use axum::extract::State;
use base64::Engine;
use serde_json::{Value, json};
use std::sync::Arc;

/// Longest channel name in bytes (the documentation says "less than 64 bytes").
pub const MAX_CHANNEL_BYTES: usize = 63;
/// Longest string uid in bytes.
pub const MAX_UID_BYTES: usize = 255;
/// Largest `expiresAfter`: 100 years, so `createdAt + expiresAfter` never overflows anything
/// downstream.
pub const MAX_EXPIRES_AFTER: i64 = 100 * 365 * 86_400;
/// Longest key text accepted in a path or body (local keys are longer than REST keys).
pub const MAX_KEY_TEXT: usize = localkey::MAX_KEY_CHARS;
/// Default and largest page size of the key list.
pub const LIST_DEFAULT: u32 = 20;
/// Largest page size of the key list; larger values are treated as this.
pub const LIST_MAX: u32 = 50;

/// The 89-character set of channel names and string uids (see `sluice_proto::streamkey::is_name`).
pub fn in_charset(s: &str) -> bool {
    sluice_proto::streamkey::is_name(s)
}

/// Uid normalisation (`sluice_proto::streamkey::normalize_uid`) with the API's error.
pub fn normalize_uid(uid: &str, random: impl FnOnce() -> u32) -> Result<String, ApiError> {
    sluice_proto::streamkey::normalize_uid(uid, random).ok_or_else(|| {
        invalid(
            "uid",
            "must be at most 255 bytes of letters, digits, space and !#$%&()+-:;<=.>?@[]^_{}|~,",
        )
    })
}

/// Validates a channel name.
pub fn check_channel(c: &str) -> Result<(), ApiError> {
    if c.len() > MAX_CHANNEL_BYTES || !in_charset(c) {
        return Err(ApiError::bad(msg::INVALID_CHANNEL));
    }
    Ok(())
}

/// Stream-key text in a path: base64url characters only, bounded length.
pub fn check_key_text(k: &str) -> Result<(), ApiError> {
    if k.is_empty()
        || k.len() > MAX_KEY_TEXT
        || !k
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(ApiError::bad(
            "Invalid streamKey: expected 1..2048 base64url characters.",
        ));
    }
    Ok(())
}

/// Template IDs: 1..12 ASCII letters and digits.
pub fn valid_template_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 12 && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn key_json(k: &KeyRow) -> Value {
    json!({
        "streamKey": k.key,
        "channel": k.channel,
        "uid": k.uid,
        "expiresAfter": k.expires_after,
        "createdAt": k.created_at.to_string(),
    })
}

fn new_key_text() -> String {
    // 21 random bytes: 28 base64url characters, the length of the documented examples and
    // well below the ~43 characters of the shortest local key, so the two never collide.
    let b: [u8; 21] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

async fn template_must_exist(st: &Arc<AppState>, app: &str, id: &str) -> Result<(), ApiError> {
    if !valid_template_id(id) {
        return Err(ApiError::bad(msg::INVALID_TEMPLATE_ID));
    }
    let (a, i) = (app.to_string(), id.to_string());
    match db(st, move |s| s.template(&a, &i)).await? {
        Some(_) => Ok(()),
        None => Err(ApiError::not_found(msg::TEMPLATE_NOT_FOUND)),
    }
}

/// Creates a key through the store and the table, as `POST .../streamkeys` does. Used by the
/// handler and by `sluice up` for the ready-to-use URL.
pub async fn create_key(
    st: &Arc<AppState>,
    app_id: &str,
    channel: &str,
    uid: &str,
    expires_after: u64,
    template_id: Option<String>,
) -> Result<KeyRow, ApiError> {
    check_channel(channel)?;
    let uid_in_is_empty = uid.is_empty() || uid.bytes().all(|b| b == b'0');
    if channel.is_empty() && uid_in_is_empty {
        return Err(ApiError::bad(
            "Invalid settings: \"channel\" and \"uid\" cannot both be empty or 0.",
        ));
    }
    let uid = normalize_uid(uid, rand::random::<u32>)?;
    if let Some(t) = &template_id {
        template_must_exist(st, app_id, t).await?;
    }
    let row = KeyRow {
        key: new_key_text(),
        app_id: app_id.to_string(),
        channel: channel.to_string(),
        uid,
        expires_after,
        created_at: crate::time::now_unix(),
        template_id,
    };
    let r = row.clone();
    db(st, move |s| s.insert_key(&r)).await?;
    st.publish(ConfigChange::PutKey(row.clone()));
    Ok(row)
}

/// `POST .../streamkeys`.
pub async fn create(State(st): State<Arc<AppState>>, p: PathParams, b: Bytes) -> ApiResult {
    let Scope { app, .. } = scope(&st, &p, &["v1"])?;
    let v = body::parse_json(&b)?;
    let s = body::settings(&v)?;
    let channel = match s.map.get("channel") {
        Some(Value::String(c)) => c.as_str(),
        _ => return Err(invalid("channel", "is required and must be a string")),
    };
    let uid = match s.map.get("uid") {
        Some(Value::String(u)) => u.clone(),
        // Numeric uids sent as JSON numbers are accepted: some clients send `"uid": 1001`.
        Some(Value::Number(n)) if n.is_u64() => n.to_string(),
        _ => return Err(invalid("uid", "is required and must be a string")),
    };
    let expires = match s.map.get("expiresAfter") {
        Some(v) => match v.as_i64() {
            Some(n) if (0..=MAX_EXPIRES_AFTER).contains(&n) => n,
            _ => {
                return Err(invalid(
                    "expiresAfter",
                    &format!("must be an integer in 0..={MAX_EXPIRES_AFTER} (0 = never expires)"),
                ));
            }
        },
        None => return Err(invalid("expiresAfter", "is required (0 = never expires)")),
    };
    let template = s.str("templateId")?.map(str::to_string);
    let row = create_key(
        &st,
        &app.id,
        channel,
        &uid,
        u64::try_from(expires).unwrap_or(0),
        template,
    )
    .await?;
    ok_data(key_json(&row))
}

/// `GET .../streamkeys?limit=&cursor=`.
pub async fn list(State(st): State<Arc<AppState>>, p: PathParams, q: QueryParams) -> ApiResult {
    let Scope { app, .. } = scope(&st, &p, &["v1"])?;
    let limit = match q.0.get("limit").map(String::as_str) {
        None | Some("") => LIST_DEFAULT,
        Some(l) => match l.parse::<u64>() {
            Ok(n) if n >= 1 => u32::try_from(n.min(u64::from(LIST_MAX))).unwrap_or(LIST_MAX),
            _ => {
                return Err(ApiError::bad(
                    "Invalid query: \"limit\" must be a positive integer.",
                ));
            }
        },
    };
    let cursor = match q.0.get("cursor").map(String::as_str) {
        None | Some("") => 0,
        Some(c) => match i64::from_str_radix(c, 16) {
            Ok(n) if n >= 0 && c.len() <= 16 => n,
            _ => {
                return Err(ApiError::bad(
                    "Invalid query: \"cursor\" is not a cursor this API returned.",
                ));
            }
        },
    };
    let a = app.id.clone();
    let mut rows = db(&st, move |s| s.list_keys(&a, cursor, limit + 1)).await?;
    let has_more = rows.len() > usize::try_from(limit).unwrap_or(usize::MAX);
    rows.truncate(usize::try_from(limit).unwrap_or(0));
    let next = rows
        .last()
        .map(|(seq, _)| format!("{seq:x}"))
        .unwrap_or_default();
    let items: Vec<Value> = rows.iter().map(|(_, k)| key_json(k)).collect();
    ok_data(json!({"hasMore": has_more, "streamKeys": items, "cursor": next}))
}

/// `GET .../streamkeys/{streamkey}`.
pub async fn query(State(st): State<Arc<AppState>>, p: PathParams) -> ApiResult {
    let Scope { app, .. } = scope(&st, &p, &["v1"])?;
    let key = p.get("streamkey").to_string();
    check_key_text(&key)?;
    let a = app.id.clone();
    match db(&st, move |s| s.key(&a, &key)).await? {
        Some(k) => ok_data(key_json(&k)),
        None => Err(ApiError::not_found(msg::NOT_FOUND)),
    }
}

/// `PUT .../streamkeys/{streamkey}`: `{"settings":{"templateId":"id"|null}}`.
pub async fn rebind(State(st): State<Arc<AppState>>, p: PathParams, b: Bytes) -> ApiResult {
    let Scope { app, .. } = scope(&st, &p, &["v1"])?;
    let key = p.get("streamkey").to_string();
    check_key_text(&key)?;
    let v = body::parse_json(&b)?;
    let s = body::settings(&v)?;
    if !s.has("templateId") {
        return Err(invalid(
            "templateId",
            "is required (null unbinds the template)",
        ));
    }
    let template = s.str("templateId")?.map(str::to_string);
    if let Some(t) = &template {
        template_must_exist(&st, &app.id, t).await?;
    }
    let (a, k, t) = (app.id.clone(), key.clone(), template.clone());
    let row = db(&st, move |s| {
        if s.set_key_template(&a, &k, t.as_deref())? {
            s.key(&a, &k)
        } else {
            Ok(None)
        }
    })
    .await?
    .ok_or_else(|| ApiError::not_found(msg::NOT_FOUND))?;
    st.publish(ConfigChange::PutKey(row));
    ok()
}

/// `DELETE .../streamkeys/{streamkey}`: deletes a REST key, or revokes a locally generated key
/// (one that decodes with the app's certificate) until its own expiry.
pub async fn delete(State(st): State<Arc<AppState>>, p: PathParams) -> ApiResult {
    let Scope { app, .. } = scope(&st, &p, &["v1"])?;
    let key = p.get("streamkey").to_string();
    check_key_text(&key)?;
    let (a, k) = (app.id.clone(), key.clone());
    if db(&st, move |s| s.delete_key(&a, &k)).await? {
        st.publish(ConfigChange::RemoveKey(key));
        return ok();
    }
    match localkey::decode(&app.certificate_hex, &key) {
        Ok(claims) => {
            let now = crate::time::now_unix();
            if claims.is_expired(now) {
                // Already expired: the dataplane refuses it anyway; nothing to record.
                return ok();
            }
            let r = RevocationRow {
                app_id: app.id.clone(),
                key,
                until: claims.expires_at,
            };
            let rr = r.clone();
            db(&st, move |s| s.put_revocation(&rr)).await?;
            st.publish(ConfigChange::PutRevocation(r));
            ok()
        }
        Err(_) => Err(ApiError::not_found(msg::NOT_FOUND)),
    }
}

/// `POST .../streamkeys:inspect` with `{"streamKey":"..."}`: decoded fields and whether the
/// dataplane would admit the key now (abort code and reason when not).
pub async fn inspect(State(st): State<Arc<AppState>>, p: PathParams, b: Bytes) -> ApiResult {
    let Scope { app, .. } = scope(&st, &p, &["v1"])?;
    let v = body::parse_json(&b)?;
    let key = body::root(&v)?
        .str("streamKey")?
        .ok_or_else(|| invalid("streamKey", "is required"))?
        .to_string();
    check_key_text(&key)?;
    let now = crate::time::now_unix();
    let (a, k) = (app.id.clone(), key.clone());
    let (rest, revoked) = db(&st, move |s| {
        Ok((s.key(&a, &k)?, s.is_revoked(&a, &k, now)?))
    })
    .await?;
    let refuse = |code: u32, why: &str| (false, json!(code), json!(why));
    let admit = (true, Value::Null, Value::Null);
    let out = if let Some(k) = rest {
        let exp = k.expires_at();
        let (admitted, code, reason) = if exp != 0 && exp < now {
            refuse(2, "expired")
        } else {
            admit
        };
        json!({"streamKey": key, "source": "rest", "channel": k.channel, "uid": k.uid,
            "expiresAt": exp, "createdAt": k.created_at.to_string(), "templateId": k.template_id,
            "admitted": admitted, "abortCode": code, "reason": reason})
    } else {
        match localkey::decode(&app.certificate_hex, &key) {
            Ok(c) => {
                let (admitted, code, reason) = if revoked {
                    refuse(2, "revoked")
                } else if c.is_expired(now) {
                    refuse(2, "expired")
                } else if check_channel(&c.channel).is_err()
                    || (c.channel.is_empty() && (c.uid.is_empty() || c.uid == "0"))
                {
                    refuse(1, "illegal channel or uid in the key")
                } else {
                    admit
                };
                json!({"streamKey": key, "source": "local", "channel": c.channel, "uid": c.uid,
                    "expiresAt": c.expires_at, "createdAt": Value::Null, "templateId": c.template_id,
                    "admitted": admitted, "abortCode": code, "reason": reason})
            }
            Err(e) => json!({"streamKey": key, "source": "unknown", "admitted": false,
                "abortCode": 1,
                "reason": format!("not a stream key of this app, and not a local key for its certificate ({e})")}),
        }
    };
    ok_data(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_rules() {
        let r = || 77u32;
        assert_eq!(normalize_uid("1001", r).unwrap(), "1001");
        assert_eq!(normalize_uid("0123", r).unwrap(), "123");
        assert_eq!(normalize_uid("4294967295", r).unwrap(), "4294967295");
        assert_eq!(normalize_uid("4294967296", r).unwrap(), "4294967296");
        assert_eq!(normalize_uid("123abc", r).unwrap(), "123abc");
        assert_eq!(normalize_uid("", r).unwrap(), "77");
        assert_eq!(normalize_uid("0", r).unwrap(), "77");
        assert_eq!(
            normalize_uid("000", || 0).unwrap(),
            "1",
            "random uid is never 0"
        );
        assert!(normalize_uid("a/b", r).is_err());
        assert!(normalize_uid(&"a".repeat(256), r).is_err());
        assert!(normalize_uid(&"a".repeat(255), r).is_ok());
    }

    #[test]
    fn channel_rules() {
        assert!(check_channel("").is_ok());
        assert!(check_channel("shx 001!#$%&()+-:;<=.>?@[]^_{}|~,").is_ok());
        assert!(check_channel(&"c".repeat(63)).is_ok());
        assert!(check_channel(&"c".repeat(64)).is_err());
        assert!(check_channel("a/b").is_err());
        assert!(check_channel("é").is_err());
        assert!(!in_charset("\"'*\\`"));
    }

    #[test]
    fn rest_keys_are_28_base64url_chars() {
        let k = new_key_text();
        assert_eq!(k.len(), 28);
        assert!(check_key_text(&k).is_ok());
        assert_ne!(k, new_key_text());
    }
}
