//! End-to-end tests of the REST API against a real server on an ephemeral port.

mod common;

use common::*;
use serde_json::json;
use sluice::table::{AudioInfo, EventInfo, EventKind, StreamInfo, StreamStatus, VideoInfo};

fn create_key(s: &Srv, channel: &str, uid: &str) -> serde_json::Value {
    let r = s.call(
        "POST",
        "/streamkeys",
        Some(json!({"settings": {"channel": channel, "uid": uid, "expiresAfter": 0}})),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()["data"].clone()
}

fn stream(sid: &str, app: &str, channel: &str, running: bool) -> StreamInfo {
    StreamInfo {
        sid: sid.into(),
        app_id: app.into(),
        channel: channel.into(),
        uid: "1001".into(),
        url: "ingest.example.com/live/KEY".into(),
        protocol: "rtmp".into(),
        status: if running {
            StreamStatus::Running
        } else {
            StreamStatus::Started
        },
        begin_at_ms: 1_704_070_861_001,
        video: Some(VideoInfo {
            codec: "H.264".into(),
            width: 1280,
            height: 720,
            fps: 30,
            bitrate_kbps: 2500,
            gop_ms: 2000,
            bframes: false,
            profile_level_id: "42e01f".into(),
        }),
        audio: Some(AudioInfo {
            codec: "AAC".into(),
            channels: 2,
            sample_rate: 48000,
            bitrate_kbps: 128,
        }),
        video_params: vec![vec![0x67, 0x42], vec![0x68, 0xce]],
        audio_config: vec![0x11, 0x90],
    }
}

#[test]
fn create_query_list_delete_key() {
    let s = Srv::start();
    let d = create_key(&s, "shx001", "0123");
    let key = d["streamKey"].as_str().unwrap().to_string();
    assert_eq!(d["channel"], "shx001");
    assert_eq!(d["uid"], "123", "leading zeros dropped");
    assert_eq!(d["expiresAfter"], 0);
    assert!(d["createdAt"].is_string());
    assert!(d.get("templateId").is_none());
    // The table saw it.
    assert!(s.table.config().keys.contains_key(&key));

    let q = s.call("GET", &format!("/streamkeys/{key}"), None);
    assert_eq!(q.status, 200);
    assert_eq!(q.json()["data"], d);

    let l = s.call("GET", "/streamkeys", None);
    assert_eq!(l.status, 200);
    assert_eq!(l.json()["data"]["streamKeys"][0]["streamKey"], key.as_str());
    assert_eq!(l.json()["data"]["hasMore"], false);

    let del = s.call("DELETE", &format!("/streamkeys/{key}"), None);
    assert_eq!(del.status, 200);
    assert_eq!(del.json(), json!({"status": "success"}));
    assert!(!s.table.config().keys.contains_key(&key));
    let q = s.call("GET", &format!("/streamkeys/{key}"), None);
    assert_eq!(q.status, 404);
    assert_eq!(q.message(), "Resource not found and destroyed.");
    assert_eq!(
        s.call("DELETE", &format!("/streamkeys/{key}"), None).status,
        404
    );
}

#[test]
fn uid_and_channel_rules() {
    let s = Srv::start();
    assert_eq!(create_key(&s, "c", "4294967295")["uid"], "4294967295");
    assert_eq!(create_key(&s, "c", "4294967296")["uid"], "4294967296");
    assert_eq!(create_key(&s, "c", "123abc")["uid"], "123abc");
    let random = create_key(&s, "c", "0")["uid"]
        .as_str()
        .unwrap()
        .to_string();
    let n: u64 = random.parse().expect("random uid is an integer");
    assert!((1..=u64::from(u32::MAX)).contains(&n));
    assert_eq!(create_key(&s, "", "7")["channel"], "");

    let post = |settings: serde_json::Value| {
        s.call("POST", "/streamkeys", Some(json!({"settings": settings})))
    };
    let r = post(json!({"channel": "", "uid": "", "expiresAfter": 0}));
    assert_eq!(r.status, 400);
    assert!(r.message().contains("cannot both be empty"));
    let r = post(json!({"channel": "c".repeat(64), "uid": "1", "expiresAfter": 0}));
    assert_eq!(
        (r.status, r.message().as_str()),
        (400, "Invalid 'channel' format.")
    );
    let r = post(json!({"channel": "a/b", "uid": "1", "expiresAfter": 0}));
    assert_eq!(r.message(), "Invalid 'channel' format.");
    let r = post(json!({"channel": "c", "uid": "1"}));
    assert_eq!(r.status, 400);
    assert!(r.message().contains("expiresAfter"), "{}", r.message());
    let r = post(json!({"channel": "c", "uid": "1", "expiresAfter": null}));
    assert_eq!(r.status, 400);
    let r = post(json!({"channel": "c", "uid": "1", "expiresAfter": "10"}));
    assert_eq!(r.status, 400);
    let r = post(json!({"channel": "c", "uid": "1", "expiresAfter": 1.5}));
    assert_eq!(r.status, 400);
    let r = post(json!({"channel": "c", "uid": "1", "expiresAfter": -1}));
    assert_eq!(r.status, 400);
    let r = post(json!({"channel": "c", "uid": "1", "expiresAfter": 0, "templateId": "nope"}));
    assert_eq!(
        (r.status, r.message().as_str()),
        (404, "Stream template not found.")
    );
    let r = s.call("POST", "/streamkeys", Some(json!({"settings": null})));
    assert_eq!((r.status, r.message().as_str()), (400, "Invalid settings."));
    // Nothing of the refused requests was stored.
    let l = s.call("GET", "/streamkeys?limit=50", None).json();
    assert_eq!(l["data"]["streamKeys"].as_array().unwrap().len(), 5);
}

#[test]
fn list_pages_with_cursor() {
    let s = Srv::start();
    let mut made = Vec::new();
    for i in 0..5 {
        made.push(
            create_key(&s, &format!("c{i}"), "1")["streamKey"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let r = s
            .call("GET", &format!("/streamkeys?limit=2&cursor={cursor}"), None)
            .json();
        let d = &r["data"];
        for k in d["streamKeys"].as_array().unwrap() {
            seen.push(k["streamKey"].as_str().unwrap().to_string());
        }
        cursor = d["cursor"].as_str().unwrap().to_string();
        if !d["hasMore"].as_bool().unwrap() {
            break;
        }
    }
    assert_eq!(seen, made);
    let big = s.call("GET", "/streamkeys?limit=500", None).json();
    assert_eq!(big["data"]["streamKeys"].as_array().unwrap().len(), 5);
    assert_eq!(s.call("GET", "/streamkeys?limit=0", None).status, 400);
    assert_eq!(s.call("GET", "/streamkeys?limit=x", None).status, 400);
    assert_eq!(s.call("GET", "/streamkeys?cursor=zz", None).status, 400);
}

#[test]
fn templates_lifecycle_and_key_binding() {
    let s = Srv::start();
    let body = json!({"settings": {"transcoding": {"video": {"enabled": true, "codec": "H.264",
        "width": 1280, "height": 720, "fps": 24, "bitrate": 2200,
        "simulcastStream": {"width": 960, "height": 540, "fps": 24, "bitrate": 1670}},
        "audio": {"enabled": false, "profile": 3}},
        "jitterBuffer": {"size": 500, "maxSize": 800}}});
    let r = s.call("PUT", "/stream-templates/720p", Some(body));
    assert_eq!(r.status, 200, "{}", r.message());
    assert_eq!(r.json(), json!({"status": "success"}));
    assert!(
        s.table
            .config()
            .templates
            .contains_key(&(APP.to_string(), "720p".to_string()))
    );

    // PATCH replaces audio as a unit, keeps video and jitterBuffer.
    let r = s.call(
        "PATCH",
        "/stream-templates/720p",
        Some(json!({"settings": {"transcoding": {"audio": {"profile": 5}}}})),
    );
    assert_eq!(r.status, 200, "{}", r.message());
    let g = s.call("GET", "/stream-templates/720p", None).json();
    let st = &g["data"]["settings"];
    assert_eq!(
        st["transcoding"]["audio"],
        json!({"enabled": true, "profile": 5})
    );
    assert_eq!(st["transcoding"]["video"]["width"], 1280);
    assert_eq!(st["jitterBuffer"]["maxSize"], 800);
    let r = s.call(
        "PATCH",
        "/stream-templates/720p",
        Some(json!({"settings": {"transcoding": {"video": {"width": 640}}}})),
    );
    assert_eq!(r.message(), "Missing field: \"transcoding.video.enabled\"");
    let r = s.call(
        "PATCH",
        "/stream-templates/none",
        Some(json!({"settings": {"transcoding": {}}})),
    );
    assert_eq!(
        (r.status, r.message().as_str()),
        (404, "Stream template not found.")
    );

    // Bind to a key, rebind with null, delete.
    let k = create_key(&s, "c", "1")["streamKey"]
        .as_str()
        .unwrap()
        .to_string();
    let r = s.call(
        "PUT",
        &format!("/streamkeys/{k}"),
        Some(json!({"settings": {"templateId": "720p"}})),
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        s.table.config().keys[&k].template_id.as_deref(),
        Some("720p")
    );
    let r = s.call(
        "PUT",
        &format!("/streamkeys/{k}"),
        Some(json!({"settings": {"templateId": null}})),
    );
    assert_eq!(r.status, 200);
    assert_eq!(s.table.config().keys[&k].template_id, None);
    let r = s.call(
        "PUT",
        &format!("/streamkeys/{k}"),
        Some(json!({"settings": {}})),
    );
    assert_eq!(r.status, 400);
    let r = s.call(
        "PUT",
        &format!("/streamkeys/{k}"),
        Some(json!({"settings": {"templateId": "zz"}})),
    );
    assert_eq!(r.status, 404);

    let all = s.call("GET", "/stream-templates", None).json();
    assert_eq!(all["data"].as_array().unwrap().len(), 1);
    assert_eq!(s.call("DELETE", "/stream-templates/720p", None).status, 200);
    assert_eq!(s.call("DELETE", "/stream-templates/720p", None).status, 404);
    assert_eq!(s.call("GET", "/stream-templates/720p", None).status, 404);
}

#[test]
fn template_errors_and_cap() {
    let s = Srv::start();
    let min = json!({"settings": {"transcoding": {}}});
    let r = s.call("PUT", "/stream-templates/bad-id", Some(min.clone()));
    assert_eq!(
        (r.status, r.message().as_str()),
        (400, "Invalid template ID.")
    );
    let r = s.call("PUT", "/stream-templates/abcdefghijklm", Some(min.clone()));
    assert_eq!(r.message(), "Invalid template ID.");
    let r = s.call(
        "PUT",
        "/stream-templates/t",
        Some(json!({"settings": {"transcoding": {"video": {"codec": "AV1"}}}})),
    );
    assert_eq!(r.message(), "Unsupported codec: \"AV1\".");
    let r = s.call(
        "PUT",
        "/stream-templates/t",
        Some(
            json!({"settings": {"transcoding": {"video": {"mode": "adaptive",
            "adaptFilters": "bitrate > 4000 or bframs > 0"}}}}),
        ),
    );
    assert_eq!(r.status, 400);
    assert!(r.message().contains("bframs"), "{}", r.message());
    let r = s.call("PUT", "/stream-templates/t", Some(json!({"settings": {}})));
    assert_eq!(r.message(), "Missing field: \"transcoding\"");
    for i in 0..10 {
        assert_eq!(
            s.call("PUT", &format!("/stream-templates/t{i}"), Some(min.clone()))
                .status,
            200
        );
    }
    let r = s.call("PUT", "/stream-templates/t10", Some(min.clone()));
    assert_eq!(
        (r.status, r.message().as_str()),
        (403, "Too many templates have been created.")
    );
    assert_eq!(
        s.call("PUT", "/stream-templates/t3", Some(min)).status,
        200,
        "reset allowed"
    );
}

#[test]
fn appconfig_set_get_clear() {
    let s = Srv::start();
    let r = s.call(
        "PUT",
        "/appconfig",
        Some(json!({"settings": {"defaultStreamTemplate": "x"}})),
    );
    assert_eq!(r.status, 404);
    s.call(
        "PUT",
        "/stream-templates/x",
        Some(json!({"settings": {"transcoding": {}}})),
    );
    let r = s.call(
        "PUT",
        "/appconfig",
        Some(json!({"settings": {"defaultStreamTemplate": "x"}})),
    );
    assert_eq!(r.status, 200);
    let g = s.call("GET", "/appconfig", None).json();
    assert_eq!(g["data"]["defaultStreamTemplate"], "x");
    assert_eq!(
        s.table.config().apps[APP].1.default_template.as_deref(),
        Some("x")
    );
    let dual = json!({"enabled": true, "switchStrategy": 2});
    let r = s.call(
        "PUT",
        "/appconfig",
        Some(json!({"settings": {"dualStreaming": dual}})),
    );
    assert_eq!(r.status, 200);
    let g = s.call("GET", "/appconfig", None).json();
    assert_eq!(
        g["data"]["defaultStreamTemplate"], "x",
        "left-out field kept"
    );
    assert_eq!(g["data"]["dualStreaming"], dual);
    let r = s.call(
        "PUT",
        "/appconfig",
        Some(json!({"settings": {"defaultStreamTemplate": null}})),
    );
    assert_eq!(r.status, 200);
    assert!(s.call("GET", "/appconfig", None).json()["data"]["defaultStreamTemplate"].is_null());
    let r = s.call("PUT", "/appconfig", Some(json!({"settings": {}})));
    assert_eq!(r.status, 400);
    let r = s.call(
        "PUT",
        "/appconfig",
        Some(json!({"settings": {"dualStreaming": {"switchStrategy": 9}}})),
    );
    assert_eq!(r.status, 400);
}

#[test]
fn online_streams_v1_v2_kick_mute() {
    let s = Srv::start();
    s.table.set_streams(vec![
        stream("sid-1", APP, "ch1", true),
        stream("sid-2", APP, "ch2", false),
        stream("sid-3", "otherapp", "ch1", true),
    ]);
    let l = s.call("GET", "/online-streams", None).json();
    assert_eq!(l["data"].as_array().unwrap().len(), 2);
    let l = s.call("GET", "/online-streams?channel=ch1", None).json();
    let items = l["data"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["beginAt"], "2024-01-01 01:01:01.001");
    assert_eq!(items[0]["bitrate"], 2628);
    assert_eq!(
        items[0]["video"],
        json!({"width": 1280, "height": 720, "fps": 30})
    );
    assert_eq!(
        items[0]["audio"],
        json!({"channels": 2, "sampleRate": 48000})
    );
    assert_eq!(items[0]["status"], "Running");

    let q = s.call("GET", "/online-streams/sid-2", None).json();
    assert_eq!(q["data"].as_array().unwrap().len(), 1, "data is an array");
    assert_eq!(q["data"][0]["status"], "Started");
    assert!(
        q["data"][0].get("video").is_none(),
        "no media info before Running"
    );
    let r = s.call("GET", "/online-streams/nope", None);
    assert_eq!((r.status, r.message().as_str()), (404, ""));
    let r = s.call("GET", "/online-streams/sid-3", None);
    assert_eq!(
        (r.status, r.message().as_str()),
        (403, "Stream does not belong to this app ID.")
    );

    let v2 = s
        .call(
            "GET",
            "//na/v2/projects/demoapp/rtls/ingress/online-streams/sid-1",
            None,
        )
        .json();
    assert_eq!(v2["data"][0]["input"]["video"]["codec"], "H.264");
    assert_eq!(v2["data"][0]["input"]["audio"]["codec"], "AAC");
    assert!(v2["data"][0]["output"]["video"].is_object());
    let r = s.call(
        "GET",
        "//na/v3/projects/demoapp/rtls/ingress/online-streams",
        None,
    );
    assert_eq!(r.status, 404);

    assert_eq!(s.call("DELETE", "/online-streams/sid-1", None).status, 200);
    assert_eq!(s.call("DELETE", "/online-streams/sid-1", None).status, 200);
    let cmds = s.table.config().commands;
    assert_eq!(cmds[&(APP.to_string(), "sid-1".to_string())].kick_seq, 2);

    let m = json!({"settings": {"videoMuted": true, "audioMuted": false}});
    assert_eq!(
        s.call("POST", "/online-streams/mute/sid-1", Some(m.clone()))
            .status,
        200
    );
    let c = &s.table.config().commands[&(APP.to_string(), "sid-1".to_string())];
    assert!(c.video_muted && !c.audio_muted);
    let m2 = json!({"settings": {"videoMuted": false, "audioMuted": true}});
    assert_eq!(
        s.call("POST", "/online-streams/sid-1/mute", Some(m2))
            .status,
        200
    );
    let c = &s.table.config().commands[&(APP.to_string(), "sid-1".to_string())];
    assert!(!c.video_muted && c.audio_muted);
    let r = s.call(
        "POST",
        "/online-streams/mute/sid-1",
        Some(json!({"settings": {"videoMuted": true}})),
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        s.call("POST", "/online-streams/mute/nope", Some(m)).status,
        404
    );
}

#[test]
fn forwarders_and_events() {
    let s = Srv::start();
    s.table.set_streams(vec![stream("sid-1", APP, "ch1", true)]);
    let body = json!({"host": "127.0.0.1", "videoPort": 5004, "audioPort": 5006});
    let r = s.call(
        "POST",
        "/online-streams/sid-1/forwarders",
        Some(body.clone()),
    );
    assert_eq!(r.status, 200, "{}", r.message());
    let d = r.json()["data"].clone();
    assert_eq!(d["videoPort"], 5004);
    assert!(d.get("sdp").is_some());
    let id = d["id"].as_str().unwrap().to_string();
    assert_eq!(s.table.config().forwarders.len(), 1);
    let r = s.call("POST", "/online-streams/sid-1/forwarders", Some(body));
    assert_eq!(
        (r.status, r.message().as_str()),
        (409, "Resource with the same name already exists.")
    );
    let bad = json!({"host": "not-an-ip", "videoPort": 5004});
    assert_eq!(
        s.call("POST", "/online-streams/sid-1/forwarders", Some(bad))
            .status,
        400
    );
    let bad = json!({"host": "127.0.0.1", "videoPort": 70000});
    assert_eq!(
        s.call("POST", "/online-streams/sid-1/forwarders", Some(bad))
            .status,
        400
    );
    let ok = json!({"host": "127.0.0.1", "videoPort": 6000});
    assert_eq!(
        s.call("POST", "/online-streams/nope/forwarders", Some(ok))
            .status,
        404
    );
    let l = s
        .call("GET", "/online-streams/sid-1/forwarders", None)
        .json();
    assert_eq!(l["data"][0]["id"], id.as_str());
    assert_eq!(
        s.call(
            "DELETE",
            &format!("/online-streams/sid-1/forwarders/{id}"),
            None
        )
        .status,
        200
    );
    assert_eq!(
        s.call(
            "DELETE",
            &format!("/online-streams/sid-1/forwarders/{id}"),
            None
        )
        .status,
        404
    );
    assert!(s.table.config().forwarders.is_empty());

    for (i, kind) in [EventKind::Connected, EventKind::Aborted]
        .into_iter()
        .enumerate()
    {
        s.table.push_event(EventInfo {
            kind,
            at_ms: 1000 + i as u64,
            sid: "sid-1".into(),
            app_id: APP.into(),
            channel: "ch1".into(),
            uid: "1001".into(),
            error_code: if kind == EventKind::Aborted { 5 } else { 0 },
            reason: String::new(),
        });
    }
    let e = s.call("GET", "/events", None).json();
    let items = e["data"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["eventType"], 3, "newest first");
    assert_eq!(items[0]["errorCode"], 5);
    assert_eq!(items[1]["event"], "live_stream_connected");
    let e = s.call("GET", "/events?limit=1", None).json();
    assert_eq!(e["data"].as_array().unwrap().len(), 1);
}

#[test]
fn local_key_revocation_and_inspector() {
    let s = Srv::start();
    let claims = sluice::localkey::Claims {
        channel: "test".into(),
        uid: "123".into(),
        expires_at: sluice::time::now_unix() + 3600,
        template_id: None,
    };
    let local = sluice::localkey::encode(CERT, &claims, [7; 16]).unwrap();
    let i = s
        .call(
            "POST",
            "/streamkeys:inspect",
            Some(json!({"streamKey": local})),
        )
        .json();
    assert_eq!(i["data"]["source"], "local");
    assert_eq!(i["data"]["channel"], "test");
    assert_eq!(i["data"]["admitted"], true);
    assert_eq!(
        s.call("DELETE", &format!("/streamkeys/{local}"), None)
            .status,
        200
    );
    let rev = s.table.config().revocations;
    assert_eq!(
        rev[&(APP.to_string(), local.clone())].until,
        claims.expires_at
    );
    let i = s
        .call(
            "POST",
            "/streamkeys:inspect",
            Some(json!({"streamKey": local})),
        )
        .json();
    assert_eq!(i["data"]["admitted"], false);
    assert_eq!(i["data"]["reason"], "revoked");
    assert_eq!(i["data"]["abortCode"], 2);

    let rest = create_key(&s, "c", "1")["streamKey"]
        .as_str()
        .unwrap()
        .to_string();
    let i = s
        .call(
            "POST",
            "/streamkeys:inspect",
            Some(json!({"streamKey": rest})),
        )
        .json();
    assert_eq!(i["data"]["source"], "rest");
    assert_eq!(i["data"]["admitted"], true);
    let i = s
        .call(
            "POST",
            "/streamkeys:inspect",
            Some(json!({"streamKey": "AAAA"})),
        )
        .json();
    assert_eq!(i["data"]["source"], "unknown");
    assert_eq!(i["data"]["admitted"], false);
    assert_eq!(
        s.call("POST", "/streamkeys:inspect", Some(json!({})))
            .status,
        400
    );
}

#[test]
fn auth_basic_and_hmac_and_request_id() {
    let s = Srv::start();
    let target = format!("{}/streamkeys", s.base());
    // No credentials: 401 without X-Request-ID.
    let r = raw(s.addr, "GET", &target, &[("X-Request-ID", "abc")], b"");
    assert_eq!(r.status, 401);
    assert_eq!(r.message(), "Invalid authentication credentials.");
    assert!(r.header("x-request-id").is_none());
    let wrong = format!(
        "Basic {}",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "cid:bad")
    );
    assert_eq!(
        raw(s.addr, "GET", &target, &[("Authorization", &wrong)], b"").status,
        401
    );
    // Basic: echoed request ID; generated when absent.
    let b = basic();
    let r = raw(
        s.addr,
        "GET",
        &target,
        &[("Authorization", &b), ("X-Request-ID", "req-42")],
        b"",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-request-id"), Some("req-42"));
    let r = raw(s.addr, "GET", &target, &[("Authorization", &b)], b"");
    assert_eq!(r.header("x-request-id").map(str::len), Some(36));
    // Errors other than 401 carry it too.
    let r = raw(
        s.addr,
        "GET",
        &format!("{target}/bad!key"),
        &[("Authorization", &b)],
        b"",
    );
    assert_eq!(r.status, 400);
    assert!(r.header("x-request-id").is_some());

    // HMAC.
    let host = s.addr.to_string();
    let date = httpdate::fmt_http_date(std::time::SystemTime::now());
    let body = json!({"settings": {"channel": "h", "uid": "5", "expiresAfter": 0}}).to_string();
    let (auth, digest) =
        sluice::api::auth::sign_hmac(CID, SECRET, &host, &date, "POST", &target, body.as_bytes());
    let hs = [
        ("Authorization", auth.as_str()),
        ("Date", date.as_str()),
        ("Digest", digest.as_str()),
        ("Content-Type", "application/json"),
    ];
    let r = raw(s.addr, "POST", &target, &hs, body.as_bytes());
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    // Tampered body: digest mismatch.
    let tampered = body.replace("\"h\"", "\"x\"");
    assert_eq!(
        raw(s.addr, "POST", &target, &hs, tampered.as_bytes()).status,
        401
    );
    // Stale date (replay).
    let old =
        httpdate::fmt_http_date(std::time::SystemTime::now() - std::time::Duration::from_secs(600));
    let (auth, digest) =
        sluice::api::auth::sign_hmac(CID, SECRET, &host, &old, "POST", &target, body.as_bytes());
    let hs = [
        ("Authorization", auth.as_str()),
        ("Date", old.as_str()),
        ("Digest", digest.as_str()),
    ];
    assert_eq!(
        raw(s.addr, "POST", &target, &hs, body.as_bytes()).status,
        401
    );
    // Wrong secret.
    let (auth, digest) =
        sluice::api::auth::sign_hmac(CID, "nope", &host, &date, "GET", &target, b"");
    let hs = [
        ("Authorization", auth.as_str()),
        ("Date", date.as_str()),
        ("Digest", digest.as_str()),
    ];
    assert_eq!(raw(s.addr, "GET", &target, &hs, b"").status, 401);
}

#[test]
fn rate_limit_429() {
    let s = Srv::start_with(|c| c.control.rate_limits.query = 5);
    let mut codes = Vec::new();
    for _ in 0..8 {
        codes.push(s.call("GET", "/streamkeys", None).status);
    }
    assert_eq!(&codes[..5], &[200; 5]);
    assert!(codes[5..].contains(&429), "{codes:?}");
    let r = s.call("GET", "/streamkeys", None);
    if r.status == 429 {
        assert_eq!(r.message(), "Request rate limit exceeded.");
        assert!(r.header("x-request-id").is_some());
    }
    // Creates have their own bucket.
    assert_eq!(create_key(&s, "c", "1")["channel"], "c");
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let s = Srv::start();
    let target = format!("{}/streamkeys", s.base());
    let b = basic();
    let h = [
        ("Authorization", b.as_str()),
        ("Content-Type", "application/json"),
    ];
    let r = raw(s.addr, "POST", &target, &h, b"{not json");
    assert_eq!(r.status, 400);
    assert!(r.message().starts_with("Invalid body"), "{}", r.message());
    let r = raw(
        s.addr,
        "POST",
        &target,
        &h,
        b"{\"settings\":{\"channel\":\"\xff\"}}",
    );
    assert_eq!(r.status, 400);
    assert!(r.message().contains("UTF-8"), "{}", r.message());
    let r = raw(s.addr, "POST", &target, &h, b"");
    assert_eq!(r.status, 400);
    let big = vec![b' '; 70 * 1024];
    let r = raw(s.addr, "POST", &target, &h, &big);
    assert_eq!(r.status, 413);
    assert!(r.message().contains("larger than"));
    let r = raw(s.addr, "POST", &target, &h, b"[1,2]");
    assert_eq!(r.status, 400);
    let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
    assert_eq!(
        raw(s.addr, "POST", &target, &h, deep.as_bytes()).status,
        400
    );
    // Path characters in IDs.
    assert_eq!(s.call("GET", "/streamkeys/a%2Fb", None).status, 400);
    assert_eq!(
        s.call(
            "PUT",
            "/stream-templates/a%2Fb",
            Some(json!({"settings": {"transcoding": {}}}))
        )
        .status,
        400
    );
    assert_eq!(s.call("GET", "/online-streams/a%2F..", None).status, 400);
    assert_eq!(s.call("GET", "/streamkeys/%FF", None).status, 400);
    // Unknown app and region.
    let r = s.call(
        "GET",
        "//na/v1/projects/otherapp/rtls/ingress/streamkeys",
        None,
    );
    assert_eq!(r.status, 403);
    assert!(r.message().starts_with("Media Gateway is not enabled"));
    let r = s.call(
        "GET",
        "//na/v1/projects/bad.app/rtls/ingress/streamkeys",
        None,
    );
    assert_eq!((r.status, r.message().as_str()), (400, "Invalid app ID."));
    assert_eq!(
        s.call(
            "GET",
            "//eu/v1/projects/demoapp/rtls/ingress/streamkeys",
            None
        )
        .status,
        400
    );
    assert_eq!(s.call("GET", "/nothing-here", None).status, 404);
    let r = s.call("PATCH", "/streamkeys", None);
    assert_eq!(r.status, 405);
    assert_eq!(r.json()["status"], "error");
    // Store unchanged.
    let l = s.call("GET", "/streamkeys", None).json();
    assert_eq!(l["data"]["streamKeys"].as_array().unwrap().len(), 0);
    assert!(
        s.call("GET", "/stream-templates", None).json()["data"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[test]
fn healthz_and_ncs_ip() {
    let s = Srv::start();
    let r = raw(s.addr, "GET", "/healthz", &[], b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], "ok");
    let r = s.call("GET", "//v2/ncs/ip", None);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json(),
        json!({"data": {"service": {"hosts": [{"primaryIP": "127.0.0.1"}]}}})
    );
    assert_eq!(raw(s.addr, "GET", "/v2/ncs/ip", &[], b"").status, 401);
}

#[test]
fn restart_rebuilds_table_from_store() {
    let s = Srv::start();
    let k = create_key(&s, "c", "1")["streamKey"]
        .as_str()
        .unwrap()
        .to_string();
    s.call(
        "PUT",
        "/stream-templates/t",
        Some(json!({"settings": {"transcoding": {}}})),
    );
    let dir = s.stop();
    let cfg = test_config(dir.path());
    let s2 = Srv::start_in(dir, cfg);
    let c = s2.table.config();
    assert!(c.keys.contains_key(&k));
    assert!(
        c.templates
            .contains_key(&(APP.to_string(), "t".to_string()))
    );
    assert!(c.apps.contains_key(APP));
    assert_eq!(
        s2.call("GET", &format!("/streamkeys/{k}"), None).status,
        200
    );
}
