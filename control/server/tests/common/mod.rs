//! Test harness: a real server on an ephemeral port with a temp data dir, and a tiny raw
//! HTTP/1.1 client (raw so tests can send invalid UTF-8, oversize bodies and odd headers).
#![allow(dead_code)]

use base64::Engine;
use serde_json::Value;
use sluice::config::{AppConfig, Config, Credential, DuplicatePolicy, RateLimits};
use sluice::table::MemoryTable;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;

pub const APP: &str = "demoapp";
pub const CERT: &str = "0123456789abcdef0123456789abcdef";
pub const CID: &str = "cid";
pub const SECRET: &str = "secret";

pub struct Srv {
    pub addr: SocketAddr,
    pub table: Arc<MemoryTable>,
    pub dir: tempfile::TempDir,
    rt: tokio::runtime::Runtime,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

pub fn test_config(dir: &std::path::Path) -> Config {
    let mut c = Config::default();
    c.control.listen = "127.0.0.1:0".parse().unwrap();
    c.control.data_dir = dir.to_path_buf();
    c.table.path = dir.join("sluice.table");
    c.control.rate_limits = RateLimits {
        create: 0,
        delete: 0,
        query: 0,
        update: 0,
    };
    c.control.credentials.push(Credential {
        id: CID.into(),
        secret: SECRET.into(),
    });
    c.apps.push(AppConfig {
        id: APP.into(),
        certificate: CERT.into(),
        domains: vec!["ingest.example.com".into()],
        srt_passphrase: None,
        srt_pbkeylen: 0,
        max_streams: 0,
        max_bitrate_kbps: 0,
        duplicate_policy: DuplicatePolicy::RefuseNew,
    });
    c
}

pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn message(&self) -> String {
        self.json()["message"]
            .as_str()
            .unwrap_or("<none>")
            .to_string()
    }
}

pub fn basic() -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{CID}:{SECRET}"))
    )
}

/// Sends one request on a fresh connection.
pub fn raw(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    let mut s = TcpStream::connect(addr).unwrap();
    let mut req = format!(
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    // The server may answer (413) before reading the whole body and close.
    let _ = s.write_all(body);
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    parse_response(&buf)
}

fn parse_response(buf: &[u8]) -> Resp {
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("no header end");
    let head = std::str::from_utf8(&buf[..split]).unwrap();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = buf[split + 4..].to_vec();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let nl = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let n = usize::from_str_radix(std::str::from_utf8(&rest[..nl]).unwrap().trim(), 16)
                .unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&rest[nl + 2..nl + 2 + n]);
            rest = &rest[nl + 2 + n + 2..];
        }
        body = out;
    }
    Resp {
        status,
        headers,
        body,
    }
}

impl Srv {
    pub fn start() -> Srv {
        Srv::start_with(|_| {})
    }

    pub fn start_with(f: impl FnOnce(&mut Config)) -> Srv {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = test_config(dir.path());
        f(&mut cfg);
        Srv::start_in(dir, cfg)
    }

    /// A server on the real shared-memory table at `cfg.table.path` (`table` is then unused).
    pub fn start_real(dir: tempfile::TempDir, cfg: Config) -> Srv {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (sink, stats) = sluice::supervise::open_table(&cfg).unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let running = rt
            .block_on(sluice::supervise::start_control(cfg, sink, stats, async {
                let _ = rx.await;
            }))
            .unwrap();
        Srv {
            addr: running.addr,
            table: Arc::new(MemoryTable::new()),
            dir,
            rt,
            stop: Some(tx),
        }
    }

    pub fn start_in(dir: tempfile::TempDir, cfg: Config) -> Srv {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let table = Arc::new(MemoryTable::new());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let t2 = table.clone();
        let running = rt
            .block_on(sluice::supervise::start_control(
                cfg,
                t2.clone(),
                t2,
                async {
                    let _ = rx.await;
                },
            ))
            .unwrap();
        Srv {
            addr: running.addr,
            table,
            dir,
            rt,
            stop: Some(tx),
        }
    }

    /// Stops the server and returns its data dir (for restart tests).
    pub fn stop(mut self) -> tempfile::TempDir {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        let Srv { dir, rt, .. } = self;
        rt.shutdown_timeout(std::time::Duration::from_secs(2));
        dir
    }

    pub fn base(&self) -> String {
        format!("/na/v1/projects/{APP}/rtls/ingress")
    }

    /// Authenticated request to `base() + suffix` (or an absolute path if it starts with `//`).
    pub fn call(&self, method: &str, suffix: &str, body: Option<Value>) -> Resp {
        let target = if let Some(abs) = suffix.strip_prefix("//") {
            format!("/{abs}")
        } else {
            format!("{}{suffix}", self.base())
        };
        let b = body.map(|v| v.to_string()).unwrap_or_default();
        let auth = basic();
        let mut h = vec![("Authorization", auth.as_str())];
        if !b.is_empty() {
            h.push(("Content-Type", "application/json"));
        }
        raw(self.addr, method, &target, &h, b.as_bytes())
    }
}
