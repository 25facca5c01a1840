//! Template body validation: never panics on any bytes; the normalised output is bounded by
//! the input and validating it again is a fixed point (idempotent normalisation).
#![no_main]
use libfuzzer_sys::fuzz_target;
use sluice::api::templates::validate_settings;

fuzz_target!(|data: &[u8]| {
    let (patch, body) = match data.split_first() {
        Some((b, rest)) => (b & 1 == 1, rest),
        None => return,
    };
    if let Ok(out) = validate_settings(body, patch) {
        let again_body = serde_json::json!({ "settings": out }).to_string();
        // Defaults added by normalisation are few and short.
        assert!(again_body.len() <= body.len() + 256, "output grew beyond defaults");
        let again = validate_settings(again_body.as_bytes(), patch)
            .expect("normalised settings must validate");
        assert_eq!(again, out);
    }
});
