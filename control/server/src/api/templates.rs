//! Stream templates and appconfig (api-digest §1.5 and §2, with the decisions of its first
//! section). A template body is validated field by field and stored normalised: only the
//! documented fields, with their documented types; unknown fields are dropped.

use super::body::{self, Obj, invalid};
use super::keys::valid_template_id;
use super::{
    ApiError, ApiResult, AppState, MAX_TEMPLATES_PER_APP, PathParams, Scope, db, msg, ok, ok_data,
    scope,
};
use crate::store::{AppSettings, TemplateRow};
use crate::table::ConfigChange;
use axum::body::Bytes;
use axum::extract::State;
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// Largest width or height in pixels.
pub const MAX_DIMENSION: i64 = 3840;
/// Largest frame rate.
pub const MAX_FPS: i64 = 60;
/// Largest video bitrate in kbps.
pub const MAX_VIDEO_KBPS: i64 = 20000;
/// Most ABR layers.
pub const MAX_LAYERS: usize = 5;
/// Largest jitter buffer in ms (Sluice's bound; the service documents none).
pub const MAX_JITTER_MS: i64 = 10_000;

fn set(m: &mut Map<String, Value>, k: &str, v: Option<impl Into<Value>>) {
    if let Some(v) = v {
        m.insert(k.to_string(), v.into());
    }
}

/// Validates `transcoding.video` (PATCH requires `enabled`) and returns it normalised.
fn video(o: Obj<'_>, patch: bool) -> Result<Value, ApiError> {
    let mut m = Map::new();
    let enabled = o.bool("enabled")?;
    if patch && enabled.is_none() {
        return Err(ApiError::bad(
            "Missing field: \"transcoding.video.enabled\"",
        ));
    }
    m.insert("enabled".into(), json!(enabled.unwrap_or(false)));
    let mode = o.str("mode")?;
    if let Some(md) = mode
        && md != "force"
        && md != "adaptive"
    {
        return Err(invalid(
            &o.path_of("mode"),
            "must be \"force\" or \"adaptive\"",
        ));
    }
    set(&mut m, "mode", mode);
    if let Some(f) = o.str("adaptFilters")? {
        crate::filters::parse(f).map_err(|e| {
            ApiError::bad(format!(
                "Invalid settings: \"transcoding.video.adaptFilters\": {e}."
            ))
        })?;
        m.insert("adaptFilters".into(), json!(f));
    }
    if let Some(c) = o.str("codec")? {
        if c != "H.264" && c != "VP8" {
            return Err(ApiError::bad(format!("Unsupported codec: \"{c}\".")));
        }
        m.insert("codec".into(), json!(c));
    }
    let width = o.int("width", 0, MAX_DIMENSION)?;
    let height = o.int("height", 0, MAX_DIMENSION)?;
    let fps = o.int("fps", 0, MAX_FPS)?;
    let bitrate = o.int("bitrate", 0, MAX_VIDEO_KBPS)?;
    set(&mut m, "width", width);
    set(&mut m, "height", height);
    set(&mut m, "fps", fps);
    set(&mut m, "bitrate", bitrate);

    let adv_path = o.path_of("advancedOptions");
    if let Some(adv) = o.obj("advancedOptions", &adv_path)? {
        let mut am = Map::new();
        let pvc_path = adv.path_of("pvc");
        if let Some(pvc) = adv.obj("pvc", &pvc_path)? {
            let mut pm = Map::new();
            set(&mut pm, "enabled", pvc.bool("enabled")?);
            set(
                &mut pm,
                "saveBitrateRatio",
                pvc.int("saveBitrateRatio", 0, 100)?,
            );
            am.insert("pvc".into(), Value::Object(pm));
        }
        let sr_path = adv.path_of("superResolution");
        if let Some(sr) = adv.obj("superResolution", &sr_path)? {
            let mut sm = Map::new();
            set(&mut sm, "enabled", sr.bool("enabled")?);
            set(&mut sm, "alphaBlending", sr.int("alphaBlending", 1, 256)?);
            am.insert("superResolution".into(), Value::Object(sm));
        }
        m.insert("advancedOptions".into(), Value::Object(am));
    }

    let ss_path = o.path_of("simulcastStream");
    if let Some(ss) = o.obj("simulcastStream", &ss_path)? {
        let Some(main_bitrate) = bitrate else {
            return Err(invalid(
                "transcoding.video.bitrate",
                "is required when simulcastStream is present",
            ));
        };
        let mut sm = Map::new();
        let below = |name: &str, v: Option<i64>, main: Option<i64>| -> Result<(), ApiError> {
            if let (Some(v), Some(main)) = (v, main)
                && v != 0
                && main != 0
                && v >= main
            {
                return Err(invalid(
                    &ss.path_of(name),
                    &format!("must be below the main stream's {name} ({main})"),
                ));
            }
            Ok(())
        };
        let w = ss.int("width", 0, MAX_DIMENSION)?;
        let h = ss.int("height", 0, MAX_DIMENSION)?;
        below("width", w, width)?;
        below("height", h, height)?;
        let f = ss.int("fps", 0, MAX_FPS)?;
        if let (Some(f), Some(mf)) = (f, fps)
            && f != 0
            && mf != 0
            && f > mf
        {
            return Err(invalid(
                &ss.path_of("fps"),
                &format!("must be at most the main stream's fps ({mf})"),
            ));
        }
        let b = ss.int("bitrate", 0, MAX_VIDEO_KBPS)?;
        if let Some(b) = b
            && b != 0
            && b >= main_bitrate
        {
            return Err(invalid(
                &ss.path_of("bitrate"),
                &format!("must be below transcoding.video.bitrate ({main_bitrate})"),
            ));
        }
        set(&mut sm, "width", w);
        set(&mut sm, "height", h);
        set(&mut sm, "fps", f);
        set(&mut sm, "bitrate", b);
        m.insert("simulcastStream".into(), Value::Object(sm));
    }

    let layers_path = o.path_of("simulcastStreamLayers");
    if let Some(raw) = o.raw("simulcastStreamLayers") {
        let Some(arr) = raw.as_array() else {
            return Err(invalid(&layers_path, "must be an array"));
        };
        if arr.len() > MAX_LAYERS {
            return Err(invalid(&layers_path, "may hold at most 5 layers"));
        }
        if !arr.is_empty() {
            let (Some(mw), Some(mh), Some(mb)) = (width, height, bitrate) else {
                return Err(invalid(
                    "transcoding.video",
                    "needs width, height and a non-zero bitrate when simulcastStreamLayers is set",
                ));
            };
            if mw == 0 || mh == 0 || mb == 0 {
                return Err(invalid(
                    "transcoding.video",
                    "needs width, height and a non-zero bitrate when simulcastStreamLayers is set",
                ));
            }
        }
        let mut out = Vec::new();
        let mut prev: Option<(i64, Option<i64>, Option<i64>, i64)> = None;
        let paths: Vec<String> = (0..arr.len())
            .map(|i| format!("{layers_path}[{i}]"))
            .collect();
        for (item, path) in arr.iter().zip(&paths) {
            let Some(lm) = item.as_object() else {
                return Err(invalid(path, "must be an object"));
            };
            let l = Obj::child(lm, path);
            let id = l
                .int("id", 1, 7)?
                .ok_or_else(|| invalid(&l.path_of("id"), "is required (1..=7)"))?;
            let lw = l.int("width", 0, MAX_DIMENSION)?;
            let lh = l.int("height", 0, MAX_DIMENSION)?;
            let lf = l.int("fps", 0, MAX_FPS)?;
            let lb = l
                .int("bitrate", 1, MAX_VIDEO_KBPS)?
                .ok_or_else(|| invalid(&l.path_of("bitrate"), "is required"))?;
            let main_check = |name: &str, v: Option<i64>, main: Option<i64>| {
                if let (Some(v), Some(main)) = (v, main)
                    && v >= main
                {
                    return Err(invalid(
                        &l.path_of(name),
                        &format!("must be below the main stream's {name} ({main})"),
                    ));
                }
                Ok(())
            };
            main_check("width", lw, width)?;
            main_check("height", lh, height)?;
            main_check("bitrate", Some(lb), bitrate)?;
            if let (Some(f), Some(mf)) = (lf, fps)
                && f != 0
                && mf != 0
                && f >= mf
            {
                return Err(invalid(
                    &l.path_of("fps"),
                    &format!("must be below the main stream's fps ({mf})"),
                ));
            }
            if let Some((pid, pw, ph, pb)) = prev {
                let mono = |a: Option<i64>, b: Option<i64>| match (a, b) {
                    (Some(a), Some(b)) => b < a,
                    _ => true,
                };
                if id <= pid || !mono(pw, lw) || !mono(ph, lh) || lb >= pb {
                    return Err(invalid(
                        path,
                        "must have a larger id than the previous layer and a smaller width, height and bitrate",
                    ));
                }
            }
            prev = Some((id, lw, lh, lb));
            let mut om = Map::new();
            om.insert("id".into(), json!(id));
            set(&mut om, "width", lw);
            set(&mut om, "height", lh);
            set(&mut om, "fps", lf);
            om.insert("bitrate".into(), json!(lb));
            out.push(Value::Object(om));
        }
        m.insert("simulcastStreamLayers".into(), Value::Array(out));
    }
    Ok(Value::Object(m))
}

fn audio(o: Obj<'_>) -> Result<Value, ApiError> {
    let mut m = Map::new();
    m.insert("enabled".into(), json!(o.bool("enabled")?.unwrap_or(true)));
    m.insert(
        "profile".into(),
        json!(o.int("profile", 0, 5)?.unwrap_or(0)),
    );
    set(&mut m, "bitrate", o.int("bitrate", 64, 320)?);
    if let Some(sr) = o.int("sampleRate", 8000, 48000)? {
        if ![8000, 16000, 32000, 44100, 48000].contains(&sr) {
            return Err(invalid(
                &o.path_of("sampleRate"),
                "must be one of 8000, 16000, 32000, 44100, 48000",
            ));
        }
        m.insert("sampleRate".into(), json!(sr));
    }
    set(&mut m, "channels", o.int("channels", 1, 2)?);
    Ok(Value::Object(m))
}

fn jitter(o: Obj<'_>) -> Result<Value, ApiError> {
    let size = o.int("size", 0, MAX_JITTER_MS)?.unwrap_or(500);
    let max = o.int("maxSize", 0, MAX_JITTER_MS)?.unwrap_or(1000);
    if max <= size {
        return Err(invalid(
            "jitterBuffer.maxSize",
            &format!("must be greater than jitterBuffer.size ({size})"),
        ));
    }
    Ok(json!({"size": size, "maxSize": max}))
}

/// The three independently replaceable units of a template body.
#[derive(Default)]
struct Units {
    video: Option<Value>,
    audio: Option<Value>,
    jitter: Option<Value>,
}

fn parse_units(b: &[u8], patch: bool) -> Result<Units, ApiError> {
    let v = body::parse_json(b)?;
    let s = body::settings(&v)?;
    let t = s
        .obj("transcoding", "transcoding")?
        .ok_or_else(|| ApiError::bad("Missing field: \"transcoding\""))?;
    let vp = "transcoding.video".to_string();
    let ap = "transcoding.audio".to_string();
    let mut u = Units::default();
    if let Some(vo) = t.obj("video", &vp)? {
        u.video = Some(video(vo, patch)?);
    }
    if let Some(ao) = t.obj("audio", &ap)? {
        u.audio = Some(audio(ao)?);
    }
    if let Some(jo) = s.obj("jitterBuffer", "jitterBuffer")? {
        u.jitter = Some(jitter(jo)?);
    }
    Ok(u)
}

/// Validates a template body (`{"settings":{...}}`, PATCH rules when `patch`) and returns the
/// normalised `settings` as stored. Normalising is idempotent: validating
/// `{"settings": <output>}` again yields the same output (the fuzz target checks this).
pub fn validate_settings(body: &[u8], patch: bool) -> Result<Value, ApiError> {
    parse_units(body, patch).map(assemble)
}

fn assemble(u: Units) -> Value {
    let mut t = Map::new();
    if let Some(v) = u.video {
        t.insert("video".into(), v);
    }
    if let Some(a) = u.audio {
        t.insert("audio".into(), a);
    }
    let mut s = Map::new();
    s.insert("transcoding".into(), Value::Object(t));
    if let Some(j) = u.jitter {
        s.insert("jitterBuffer".into(), j);
    }
    Value::Object(s)
}

fn template_id(p: &PathParams) -> Result<String, ApiError> {
    let id = p.get("templateId");
    if !valid_template_id(id) {
        return Err(ApiError::bad(msg::INVALID_TEMPLATE_ID));
    }
    Ok(id.to_string())
}

async fn save(st: &Arc<AppState>, app: &str, id: &str, settings: Value) -> ApiResult {
    let row = TemplateRow {
        app_id: app.to_string(),
        id: id.to_string(),
        settings_json: settings.to_string(),
    };
    let r = row.clone();
    db(st, move |s| s.put_template(&r, MAX_TEMPLATES_PER_APP)).await?;
    st.publish(ConfigChange::PutTemplate(row));
    ok()
}

/// `PUT .../stream-templates/{templateId}`: create or reset.
pub async fn put(State(st): State<Arc<AppState>>, p: PathParams, b: Bytes) -> ApiResult {
    let Scope { app, .. } = scope(&st, &p, &["v1"])?;
    let id = template_id(&p)?;
    let units = parse_units(&b, false)?;
    save(&st, &app.id, &id, assemble(units)).await
}

/// `PATCH .../stream-templates/{templateId}`: replaces each unit present in the body.
pub async fn patch(State(st): State<Arc<AppState>>, p: PathParams, b: Bytes) -> ApiResult {
    let Scope { app, .. } = scope(&st, &p, &["v1"])?;
    let id = template_id(&p)?;
    let units = parse_units(&b, true)?;
    let (a, i) = (app.id.clone(), id.clone());
    let Some(existing) = db(&st, move |s| s.template(&a, &i)).await? else {
        return Err(ApiError::not_found(msg::TEMPLATE_NOT_FOUND));
    };
    let old: Value = serde_json::from_str(&existing.settings_json).map_err(ApiError::internal)?;
    let old_t = old.get("transcoding");
    let merged = Units {
        video: units
            .video
            .or_else(|| old_t.and_then(|t| t.get("video")).cloned()),
        audio: units
            .audio
            .or_else(|| old_t.and_then(|t| t.get("audio")).cloned()),
        jitter: units.jitter.or_else(|| old.get("jitterBuffer").cloned()),
    };
    save(&st, &app.id, &id, assemble(merged)).await
}

/// `DELETE .../stream-templates/{templateId}`.
pub async fn delete(State(st): State<Arc<AppState>>, p: PathParams) -> ApiResult {
    let Scope { app, .. } = scope(&st, &p, &["v1"])?;
    let id = template_id(&p)?;
    let (a, i) = (app.id.clone(), id.clone());
    if !db(&st, move |s| s.delete_template(&a, &i)).await? {
        return Err(ApiError::not_found(msg::TEMPLATE_NOT_FOUND));
    }
    st.publish(ConfigChange::RemoveTemplate(app.id, id));
    ok()
}

fn template_json(t: &TemplateRow) -> Result<Value, ApiError> {
    let s: Value = serde_json::from_str(&t.settings_json).map_err(ApiError::internal)?;
    Ok(json!({"templateId": t.id, "settings": s}))
}

/// `GET .../stream-templates/{templateId}` (Sluice addition).
pub async fn get_one(State(st): State<Arc<AppState>>, p: PathParams) -> ApiResult {
    let Scope { app, .. } = scope(&st, &p, &["v1"])?;
    let id = template_id(&p)?;
    let a = app.id.clone();
    match db(&st, move |s| s.template(&a, &id)).await? {
        Some(t) => ok_data(template_json(&t)?),
        None => Err(ApiError::not_found(msg::TEMPLATE_NOT_FOUND)),
    }
}

/// `GET .../stream-templates` (Sluice addition).
pub async fn list(State(st): State<Arc<AppState>>, p: PathParams) -> ApiResult {
    let Scope { app, .. } = scope(&st, &p, &["v1"])?;
    let a = app.id.clone();
    let all = db(&st, move |s| s.templates(&a)).await?;
    let items = all
        .iter()
        .map(template_json)
        .collect::<Result<Vec<_>, _>>()?;
    ok_data(Value::Array(items))
}

fn dual_streaming(o: Obj<'_>) -> Result<Value, ApiError> {
    let mut m = Map::new();
    set(&mut m, "enabled", o.bool("enabled")?);
    set(&mut m, "switchStrategy", o.int("switchStrategy", 0, 2)?);
    let qp = o.path_of("qualityThreshold");
    if let Some(q) = o.obj("qualityThreshold", &qp)? {
        let fp = q.path_of("freezeRate");
        let mut qm = Map::new();
        if let Some(f) = q.obj("freezeRate", &fp)? {
            let high = f.int("high", 0, 1000)?;
            let low = f.int("low", 0, 1000)?;
            if let (Some(h), Some(l)) = (high, low)
                && l >= h
            {
                return Err(invalid(&f.path_of("low"), "must be below high"));
            }
            let mut fm = Map::new();
            set(&mut fm, "high", high);
            set(&mut fm, "low", low);
            qm.insert("freezeRate".into(), Value::Object(fm));
        }
        m.insert("qualityThreshold".into(), Value::Object(qm));
    }
    let pp = o.path_of("adaptiveSwitchPolicy");
    if let Some(p) = o.obj("adaptiveSwitchPolicy", &pp)? {
        let mut pm = Map::new();
        for k in [
            "windowCount",
            "degradeCount",
            "recoverCount",
            "takeoverCount",
        ] {
            set(&mut pm, k, p.int(k, 1, 100)?);
        }
        set(&mut pm, "cooldownMs", p.int("cooldownMs", 0, 3_600_000)?);
        m.insert("adaptiveSwitchPolicy".into(), Value::Object(pm));
    }
    Ok(Value::Object(m))
}

/// `PUT .../appconfig`: `defaultStreamTemplate` (id, or null to clear) and `dualStreaming`.
/// A field left out keeps its value.
pub async fn put_appconfig(State(st): State<Arc<AppState>>, p: PathParams, b: Bytes) -> ApiResult {
    let Scope { app, .. } = scope(&st, &p, &["v1"])?;
    let v = body::parse_json(&b)?;
    let s = body::settings(&v)?;
    if !s.has("defaultStreamTemplate") && !s.has("dualStreaming") {
        return Err(invalid(
            "defaultStreamTemplate",
            "is required (a template ID, or null to clear)",
        ));
    }
    let default = s.str("defaultStreamTemplate")?.map(str::to_string);
    if let Some(t) = &default {
        if !valid_template_id(t) {
            return Err(ApiError::bad(msg::INVALID_TEMPLATE_ID));
        }
        let (a, i) = (app.id.clone(), t.clone());
        if db(&st, move |s| s.template(&a, &i)).await?.is_none() {
            return Err(ApiError::not_found(msg::TEMPLATE_NOT_FOUND));
        }
    }
    let dual = match s.obj("dualStreaming", "dualStreaming")? {
        Some(o) => Some(dual_streaming(o)?.to_string()),
        None => None,
    };
    let (set_default, set_dual) = (s.has("defaultStreamTemplate"), s.has("dualStreaming"));
    let a = app.id.clone();
    let settings = db(&st, move |s| {
        let mut cur = s.app_settings(&a)?;
        if set_default {
            cur.default_template = default;
        }
        if set_dual {
            cur.dual_streaming_json = dual;
        }
        s.put_app_settings(&a, &cur)?;
        Ok(cur)
    })
    .await?;
    st.publish(ConfigChange::PutApp(app, settings));
    ok()
}

fn appconfig_json(s: &AppSettings) -> Value {
    let dual = s
        .dual_streaming_json
        .as_deref()
        .and_then(|d| serde_json::from_str::<Value>(d).ok())
        .unwrap_or(Value::Null);
    json!({"defaultStreamTemplate": s.default_template, "dualStreaming": dual})
}

/// `GET .../appconfig`.
pub async fn get_appconfig(State(st): State<Arc<AppState>>, p: PathParams) -> ApiResult {
    let Scope { app, .. } = scope(&st, &p, &["v1"])?;
    let a = app.id.clone();
    let s = db(&st, move |s| s.app_settings(&a)).await?;
    ok_data(appconfig_json(&s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put_body(v: Value) -> Result<Value, ApiError> {
        parse_units(v.to_string().as_bytes(), false).map(assemble)
    }

    #[test]
    fn documented_example_is_accepted_and_normalised() {
        let v = json!({"settings":{"transcoding":{"video":{"enabled":true,"codec":"H.264",
            "width":1280,"height":720,"fps":24,"bitrate":2200,
            "simulcastStream":{"width":960,"height":540,"fps":24,"bitrate":1670}},
            "audio":{"enabled":false,"profile":3}},"jitterBuffer":{"size":500,"maxSize":800}},
            "unknown": 1});
        let out = put_body(v).unwrap();
        assert_eq!(
            out["transcoding"]["video"]["simulcastStream"]["bitrate"],
            1670
        );
        assert_eq!(out["transcoding"]["audio"]["profile"], 3);
        assert_eq!(out["jitterBuffer"]["maxSize"], 800);
    }

    #[test]
    fn each_rule_refuses() {
        let cases = [
            (json!({"settings":{}}), "Missing field: \"transcoding\""),
            (
                json!({"settings":{"transcoding":{"video":{"codec":"AV1"}}}}),
                "Unsupported codec: \"AV1\".",
            ),
            (
                json!({"settings":{"transcoding":{"video":{"width":3841}}}}),
                "Invalid settings: \"transcoding.video.width\" must be an integer in 0..=3840.",
            ),
            (
                json!({"settings":{"transcoding":{"video":{"fps":"30"}}}}),
                "Invalid settings: \"transcoding.video.fps\" must be an integer in 0..=60.",
            ),
            (
                json!({"settings":{"transcoding":{"video":{"simulcastStream":{}}}}}),
                "Invalid settings: \"transcoding.video.bitrate\" is required when simulcastStream is present.",
            ),
        ];
        for (v, want) in cases {
            let e = put_body(v.clone()).unwrap_err();
            assert_eq!(e.message, want, "{v}");
        }
        let bad = [
            json!({"settings":{"transcoding":{"video":{"width":1280,"bitrate":2000,
                "simulcastStream":{"width":1280}}}}}),
            json!({"settings":{"transcoding":{"video":{"bitrate":2000,
                "simulcastStream":{"bitrate":2000}}}}}),
            json!({"settings":{"transcoding":{"video":{"fps":24,"bitrate":2000,
                "simulcastStream":{"fps":30}}}}}),
            json!({"settings":{"transcoding":{"video":{"bitrate":20001}}}}),
            json!({"settings":{"transcoding":{"video":{"mode":"auto"}}}}),
            json!({"settings":{"transcoding":{"video":{"adaptFilters":"bitrat > 1"}}}}),
            json!({"settings":{"transcoding":{"audio":{"bitrate":32}}}}),
            json!({"settings":{"transcoding":{}, "jitterBuffer":{"size":800,"maxSize":800}}}),
            json!({"settings":"x"}),
        ];
        for v in bad {
            assert!(put_body(v.clone()).is_err(), "{v}");
        }
    }

    #[test]
    fn abr_layers() {
        let main = |layers: Value| {
            json!({"settings":{"transcoding":{"video":{"enabled":true,"width":1920,
                "height":1080,"fps":30,"bitrate":4000,"simulcastStreamLayers":layers}}}})
        };
        assert!(
            put_body(main(json!([
                {"id":4,"width":1280,"height":720,"bitrate":2000},
                {"id":7,"width":640,"height":360,"fps":15,"bitrate":600}
            ])))
            .is_ok()
        );
        // Not monotonic.
        assert!(
            put_body(main(json!([
                {"id":4,"width":640,"height":360,"bitrate":600},
                {"id":7,"width":1280,"height":720,"bitrate":2000}
            ])))
            .is_err()
        );
        // Ids out of range, missing bitrate, too many layers, fps not below main.
        assert!(put_body(main(json!([{"id":8,"bitrate":100}]))).is_err());
        assert!(put_body(main(json!([{"id":2}]))).is_err());
        assert!(
            put_body(main(json!([{"id":1,"bitrate":5},{"id":2,"bitrate":4},
            {"id":3,"bitrate":3},{"id":4,"bitrate":2},{"id":5,"bitrate":1},{"id":6,"bitrate":0}])))
            .is_err()
        );
        assert!(put_body(main(json!([{"id":3,"fps":30,"bitrate":100}]))).is_err());
        // Main stream without size.
        let v = json!({"settings":{"transcoding":{"video":{"bitrate":4000,
            "simulcastStreamLayers":[{"id":7,"bitrate":500}]}}}});
        assert!(put_body(v).is_err());
    }

    #[test]
    fn patch_requires_enabled() {
        let v = json!({"settings":{"transcoding":{"video":{"width":640}}}});
        let e = parse_units(v.to_string().as_bytes(), true).err().unwrap();
        assert_eq!(e.message, "Missing field: \"transcoding.video.enabled\"");
    }
}
