//! Webhook notices from arbitrary event fields: the body is JSON that parses back to itself,
//! carries the event's identity unchanged (type, key, channel, uid, abort code and reason),
//! and both signatures are lowercase hex of the right length.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sluice::table::{EventInfo, EventKind};
use sluice::webhook::{notice_body, signatures};

fuzz_target!(|data: &[u8]| {
    let Some((head, rest)) = data.split_first_chunk::<9>() else {
        return;
    };
    let kind = match head[0] % 4 {
        0 => EventKind::Connected,
        1 => EventKind::Disconnected,
        2 => EventKind::Aborted,
        _ => EventKind::ProfileUpdated,
    };
    let code = u32::from_le_bytes([head[1], head[2], head[3], head[4]]);
    let at_ms = u64::from(u32::from_le_bytes([head[5], head[6], head[7], head[8]])) * 1000;
    let mut parts = rest
        .split(|&b| b == 0)
        .map(|p| String::from_utf8_lossy(p).into_owned());
    let mut next = || parts.next().unwrap_or_default();
    let e = EventInfo {
        kind,
        at_ms,
        sid: next(),
        app_id: next(),
        channel: next(),
        uid: next(),
        error_code: code,
        reason: next(),
        stream_key: next(),
        domain: next(),
        protocol: "rtmp".into(),
        begin_at_ms: at_ms / 2,
        stats: None,
    };
    let secret = next();
    let body = notice_body(&e, "na", "id:1", at_ms);
    let bytes = serde_json::to_vec(&body).expect("a JSON value serialises");
    let back: serde_json::Value = serde_json::from_slice(&bytes).expect("own output parses");
    assert_eq!(back, body);
    assert_eq!(body["eventType"], kind.code());
    assert_eq!(body["productId"], 10);
    assert_eq!(body["sid"], e.sid.as_str());
    let p = &body["payload"];
    assert_eq!(p["streamKey"], e.stream_key.as_str());
    assert_eq!(p["rtcInfo"]["channel"], e.channel.as_str());
    assert_eq!(p["rtcInfo"]["uid"], e.uid.as_str());
    if kind == EventKind::Aborted {
        assert_eq!(p["errorCode"], code);
        assert_eq!(p["reason"], e.reason.as_str());
    }
    let (v1, v2) = signatures(secret.as_bytes(), &bytes);
    assert_eq!(v1.len(), 40);
    assert_eq!(v2.len(), 64);
    assert!(
        v1.bytes()
            .chain(v2.bytes())
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    );
});
