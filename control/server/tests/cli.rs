//! The `sluice` binary: `up` (first start, reuse, dataplane supervision, clean stop),
//! `check-config`, `keygen`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_sluice");

struct UpOutput {
    lines: Vec<String>,
}

impl UpOutput {
    fn field(&self, label: &str) -> String {
        self.lines
            .iter()
            .find_map(|l| l.trim().strip_prefix(label).map(|v| v.trim().to_string()))
            .unwrap_or_else(|| panic!("no {label:?} in {:?}", self.lines))
    }
}

/// Runs `sluice up`, reads its banner, lets it run `run_for`, then SIGTERMs it.
fn up(dir: &std::path::Path, path_env: &str, run_for: Duration) -> UpOutput {
    let cfg = dir.join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "[control]\nlisten = \"127.0.0.1:0\"\n[table]\npath = \"{}\"\n",
            dir.join("sluice.table").display()
        ),
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .args(["up", "--config"])
        .arg(&cfg)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .env("PATH", path_env)
        // The stand-in dataplane on PATH, not a real one built next to `sluice`.
        .env(
            "SLUICE_DATAPLANE",
            std::env::split_paths(path_env)
                .next()
                .unwrap()
                .join("sluice-dataplane"),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut rd = BufReader::new(child.stdout.take().unwrap());
    let mut lines = Vec::new();
    loop {
        let mut l = String::new();
        assert!(
            rd.read_line(&mut l).unwrap() > 0,
            "banner ended early: {lines:?}"
        );
        let done = l.trim_start().starts_with("data dir");
        lines.push(l.trim_end().to_string());
        if done {
            break;
        }
    }
    std::thread::sleep(run_for);
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let st = child.wait().unwrap();
    assert!(st.success(), "sluice up did not stop cleanly: {st:?}");
    UpOutput { lines }
}

#[test]
fn up_bootstraps_once_supervises_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    // A fake dataplane that records each start and dies quickly, to exercise restarts.
    let bin_dir = dir.path().join("bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    let log = dir.path().join("dp.log");
    let script = bin_dir.join("sluice-dataplane");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"start $*\" >> {}\nsleep 0.2\nexit 1\n",
            log.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path_env = format!("{}:/usr/bin:/bin", bin_dir.display());

    let first = up(dir.path(), &path_env, Duration::from_millis(2500));
    let id = first.field("customer id");
    let rtmp = first.field("RTMP");
    assert!(rtmp.starts_with("rtmp://127.0.0.1/live/"), "{rtmp}");
    assert!(first.field("SRT").contains(":6001?streamid="));
    assert!(
        first
            .field("watch")
            .starts_with("http://127.0.0.1:8081/watch/")
    );
    assert!(first.field("REST API").contains("/na/v1/projects/"));

    let starts = std::fs::read_to_string(&log).unwrap();
    let n = starts.lines().count();
    assert!(n >= 2, "dataplane restarted after exiting: {starts}");
    assert!(
        starts.contains("--config") && starts.contains("sluice.toml"),
        "{starts}"
    );
    let effective = dir.path().join("data/sluice.toml");
    let mode = std::fs::metadata(&effective).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let cfg = sluice::config::Config::load(&effective).unwrap();
    assert_eq!(cfg.apps.len(), 1);

    let second = up(dir.path(), &path_env, Duration::from_millis(100));
    assert_eq!(second.field("customer id"), id, "credentials reused");
    assert_ne!(second.field("RTMP"), rtmp, "a fresh key each start");
}

#[test]
fn check_config_reports_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.toml");
    std::fs::write(&p, "[[apps]]\nid = \"a\"\ncertificate = \"xyz\"\n").unwrap();
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&p)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("apps[0].certificate: expected 32 hex characters"),
        "{err}"
    );
    std::fs::write(&p, "").unwrap();
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&p)
        .output()
        .unwrap();
    assert!(out.status.success());
}

#[test]
fn keygen_makes_a_decodable_key() {
    let cert = "0123456789abcdef0123456789abcdef";
    let out = Command::new(BIN)
        .args([
            "keygen",
            "--cert",
            cert,
            "--channel",
            "test",
            "--uid",
            "123",
            "--expires-after",
            "60",
            "--template",
            "720p",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let key = String::from_utf8(out.stdout).unwrap();
    let c = sluice::localkey::decode(cert, key.trim()).unwrap();
    assert_eq!((c.channel.as_str(), c.uid.as_str()), ("test", "123"));
    assert_eq!(c.template_id.as_deref(), Some("720p"));
    let now = sluice::time::now_unix();
    assert!(c.expires_at > now && c.expires_at <= now + 60);
    let bad = Command::new(BIN)
        .args(["keygen", "--cert", "zz", "--channel", "c", "--uid", "1"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
}
