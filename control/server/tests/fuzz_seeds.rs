//! The seed corpora of the control fuzz targets (`fuzz/corpus/control_*`). Run with
//! `SLUICE_WRITE_FUZZ_SEEDS=1` to (re)write them; otherwise checks that the committed seeds
//! are present and that the valid ones are accepted, so the corpora keep exercising the
//! accepting paths as the code changes.

use std::path::PathBuf;

fn seeds() -> Vec<(&'static str, &'static str, Vec<u8>, bool)> {
    let t = |patch: u8, s: &str| {
        let mut v = vec![patch];
        v.extend_from_slice(s.as_bytes());
        v
    };
    vec![
        (
            "control_adapt_filters",
            "example",
            b"bitrate > 4000 or bframes > 0".to_vec(),
            true,
        ),
        (
            "control_adapt_filters",
            "nested",
            b"not (codec == 2) and (width >= 1920 or fps < 24.5)".to_vec(),
            true,
        ),
        (
            "control_adapt_filters",
            "typo",
            b"bitrat > 4000".to_vec(),
            false,
        ),
        (
            "control_template",
            "put",
            t(
                0,
                r#"{"settings":{"transcoding":{"video":{"enabled":true,"codec":"H.264","width":1280,"height":720,"fps":24,"bitrate":2200,"simulcastStream":{"width":960,"height":540,"fps":24,"bitrate":1670}},"audio":{"enabled":false,"profile":3}},"jitterBuffer":{"size":500,"maxSize":800}}}"#,
            ),
            true,
        ),
        (
            "control_template",
            "abr",
            t(
                1,
                r#"{"settings":{"transcoding":{"video":{"enabled":true,"mode":"adaptive","adaptFilters":"bframes > 0","width":1920,"height":1080,"fps":30,"bitrate":4000,"simulcastStreamLayers":[{"id":4,"width":1280,"height":720,"bitrate":2000},{"id":7,"width":640,"height":360,"fps":15,"bitrate":600}]}}}}"#,
            ),
            true,
        ),
        (
            "control_template",
            "bad_codec",
            t(
                0,
                r#"{"settings":{"transcoding":{"video":{"codec":"AV1"}}}}"#,
            ),
            false,
        ),
        (
            "control_config",
            "full",
            br#"[control]
listen = "127.0.0.1:8080"
region = "na"
[[control.credentials]]
id = "cid"
secret = "sec"
[[apps]]
id = "demoapp"
certificate = "0123456789abcdef0123456789abcdef"
domains = ["ingest.example.com"]
duplicate_policy = "replace_old"
[dataplane]
cores = 2
[table]
path = "/dev/shm/sluice.table"
[[webhooks]]
url = "https://hooks.example.com/x"
secret = "s"
"#
            .to_vec(),
            true,
        ),
        (
            "control_config",
            "typo",
            b"[control]\nlsten = \"1.2.3.4:5\"\n".to_vec(),
            false,
        ),
    ]
}

fn accepted(target: &str, data: &[u8]) -> bool {
    match target {
        "control_adapt_filters" => {
            sluice::filters::parse(std::str::from_utf8(data).unwrap()).is_ok()
        }
        "control_template" => {
            sluice::api::templates::validate_settings(&data[1..], data[0] & 1 == 1).is_ok()
        }
        "control_config" => {
            sluice::config::Config::from_toml(std::str::from_utf8(data).unwrap()).is_ok()
        }
        _ => unreachable!(),
    }
}

#[test]
fn seed_corpora() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    let write = std::env::var_os("SLUICE_WRITE_FUZZ_SEEDS").is_some();
    for (target, name, data, valid) in seeds() {
        assert_eq!(accepted(target, &data), valid, "{target}/{name}");
        let path = root.join(target).join(name);
        if write {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &data).unwrap();
        }
        let on_disk = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(
            on_disk,
            data,
            "{} differs; rerun with SLUICE_WRITE_FUZZ_SEEDS=1",
            path.display()
        );
    }
}
