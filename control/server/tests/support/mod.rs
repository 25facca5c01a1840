//! Shared helpers for end-to-end tests: a whole gateway (control + dataplane) in a temp dir,
//! real external clients (ffmpeg, ffprobe, srt-live-transmit), and a small HTTP client.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// An unused TCP port on loopback (bound then released; good enough for tests).
pub fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An unused UDP port on loopback.
pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An even UDP port P such that P and P+1 are free (RTP and RTCP).
pub fn free_rtp_port_pair() -> u16 {
    for _ in 0..200 {
        let p = free_udp_port() & !1;
        if p < 1024 || p == u16::MAX - 1 {
            continue;
        }
        if UdpSocket::bind(("127.0.0.1", p)).is_ok()
            && UdpSocket::bind(("127.0.0.1", p + 1)).is_ok()
        {
            return p;
        }
    }
    panic!("no free RTP port pair");
}

/// Fails the test with a clear message when an external tool is missing.
pub fn require_tool(name: &str) {
    let ok = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "{name} is not installed: run scripts/setup.sh --test (CI installs it)"
    );
}

/// Directory holding the workspace's built binaries (`target/debug`).
pub fn bin_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sluice"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A running gateway: `sluice up --config FILE`, which spawns the dataplane.
pub struct Gateway {
    pub dir: tempfile::TempDir,
    pub child: Child,
    pub rest_port: u16,
    pub rtmp_port: u16,
    pub srt_port: u16,
    pub http_port: u16,
    pub app_id: String,
    pub cert: String,
    pub customer: (String, String),
    pub table_path: PathBuf,
    pub cfg_path: PathBuf,
    /// The dataplane, when started beside `sluice control` rather than by `sluice up`.
    pub split_dataplane: Option<Child>,
}

#[derive(Default)]
pub struct GatewayOptions {
    pub extra_app_toml: String,
    /// Lines added to the `[dataplane]` section.
    pub extra_dataplane_toml: String,
    pub extra_toml: String,
    /// Run `sluice control` and `sluice-dataplane` as two processes (the systemd layout)
    /// instead of `sluice up` supervising the dataplane.
    pub split: bool,
}

impl Gateway {
    pub fn start() -> Gateway {
        Self::start_with(GatewayOptions::default())
    }

    pub fn start_with(opts: GatewayOptions) -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        let rest_port = free_tcp_port();
        let rtmp_port = free_tcp_port();
        let http_port = free_tcp_port();
        let srt_port = free_udp_port();
        let app_id = "e2eapp".to_string();
        let cert = "0123456789abcdef0123456789abcdef".to_string();
        let table_path = PathBuf::from(format!(
            "/dev/shm/sluice-test-{}-{}.table",
            std::process::id(),
            rest_port
        ));
        let cfg = format!(
            r#"
[control]
listen = "127.0.0.1:{rest_port}"
data_dir = "{data}"
region = "na"

[[control.credentials]]
id = "cust"
secret = "custsecret"

[[apps]]
id = "{app_id}"
certificate = "{cert}"
domains = ["ingest.example.com"]
{extra_app}

[dataplane]
cores = 2
rtmp_listen = "127.0.0.1:{rtmp_port}"
srt_listen = "127.0.0.1:{srt_port}"
http_listen = "127.0.0.1:{http_port}"
{extra_dp}

[table]
path = "{table}"
{extra}
"#,
            data = dir.path().join("data").display(),
            extra_app = opts.extra_app_toml,
            extra_dp = opts.extra_dataplane_toml,
            table = table_path.display(),
            extra = opts.extra_toml,
        );
        let cfg_path = dir.path().join("sluice.toml");
        std::fs::write(&cfg_path, cfg).unwrap();
        let log = std::fs::File::create(dir.path().join("gateway.log")).unwrap();
        drop(log);
        let split_dataplane = opts.split.then(|| {
            spawn_logged(
                dir.path(),
                Command::new(bin_dir().join("sluice-dataplane"))
                    .arg("--config")
                    .arg(&cfg_path),
            )
        });
        let child = spawn_control(dir.path(), &cfg_path, opts.split);
        let gw = Gateway {
            dir,
            child,
            rest_port,
            rtmp_port,
            srt_port,
            http_port,
            app_id,
            cert,
            customer: ("cust".into(), "custsecret".into()),
            table_path,
            cfg_path,
            split_dataplane,
        };
        gw.wait_ready();
        gw
    }

    /// Starts the control process again on the same config (after a test killed it) and
    /// waits until it answers; the old `child` must have been reaped.
    pub fn restart_control(&mut self) {
        self.child = spawn_control(
            self.dir.path(),
            &self.cfg_path,
            self.split_dataplane.is_some(),
        );
        self.wait_ready();
    }

    /// The pid `sluice up` recorded for the dataplane it supervises, if any.
    pub fn dataplane_pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.dir.path().join("data").join("dataplane.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    pub fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let rest = http("GET", self.rest_port, "/healthz", None, None)
                .map(|r| r.status == 200)
                .unwrap_or(false);
            let rtmp = TcpStream::connect(("127.0.0.1", self.rtmp_port)).is_ok();
            if rest && rtmp {
                return;
            }
            if Instant::now() > deadline {
                panic!("gateway did not become ready; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("gateway.log")).unwrap_or_default()
    }

    pub fn base(&self) -> String {
        format!("/na/v1/projects/{}/rtls/ingress", self.app_id)
    }

    pub fn basic_auth(&self) -> String {
        use base64::Engine;
        let raw = format!("{}:{}", self.customer.0, self.customer.1);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }

    /// Authenticated REST call; returns status and parsed JSON body.
    pub fn api(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let body = body.map(|b| b.to_string());
        let r = http(
            method,
            self.rest_port,
            path,
            body.as_deref(),
            Some(&self.basic_auth()),
        )
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let json = serde_json::from_slice(&r.body).unwrap_or(serde_json::Value::Null);
        (r.status, json)
    }

    /// Creates a stream key through the REST API.
    pub fn create_key(&self, channel: &str, uid: &str) -> String {
        let (status, body) = self.api(
            "POST",
            &format!("{}/streamkeys", self.base()),
            Some(serde_json::json!({"settings": {"channel": channel, "uid": uid, "expiresAfter": 0}})),
        );
        assert_eq!(status, 200, "create key: {body}");
        body["data"]["streamKey"]
            .as_str()
            .expect("streamKey")
            .to_string()
    }

    /// Waits until the online-streams API lists a stream on `channel`, and returns it.
    pub fn wait_online(&self, channel: &str, timeout: Duration) -> serde_json::Value {
        let deadline = Instant::now() + timeout;
        loop {
            let (status, body) = self.api(
                "GET",
                &format!("{}/online-streams?channel={}", self.base(), channel),
                None,
            );
            if status == 200
                && let Some(s) = body["data"].as_array().and_then(|a| a.first())
            {
                return s.clone();
            }
            if Instant::now() > deadline {
                panic!(
                    "stream on {channel} never came online; last answer {status} {body}; log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn rtmp_url(&self, key: &str) -> String {
        format!("rtmp://127.0.0.1:{}/live/{}", self.rtmp_port, key)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        // SIGTERM first so `sluice up` stops its dataplane child too.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(mut dp) = self.split_dataplane.take() {
            let _ = dp.kill();
            let _ = dp.wait();
        }
        // A dataplane orphaned by a test that SIGKILLed `sluice up` and did not restart it.
        if let Some(pid) = self.dataplane_pid()
            && std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| "sluice-dataplane".starts_with(c.trim()))
        {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        }
        let _ = std::fs::remove_file(&self.table_path);
        if std::thread::panicking() {
            eprintln!("---- gateway log ----\n{}", self.log());
        }
    }
}

/// Spawns `cmd` with stdout and stderr appended to the gateway log in `dir`.
fn spawn_logged(dir: &Path, cmd: &mut Command) -> Child {
    let log = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(dir.join("gateway.log"))
        .unwrap();
    cmd.env(
        "PATH",
        format!(
            "{}:{}",
            bin_dir().display(),
            std::env::var("PATH").unwrap_or_default()
        ),
    )
    .env("SLUICE_LOG", "info")
    .stdout(log.try_clone().unwrap())
    .stderr(log)
    .spawn()
    .expect("spawning a gateway process")
}

/// `sluice up --config FILE`, or `sluice control --config FILE` when the dataplane runs
/// beside it.
fn spawn_control(dir: &Path, cfg_path: &Path, split: bool) -> Child {
    let verb = if split { "control" } else { "up" };
    spawn_logged(
        dir,
        Command::new(env!("CARGO_BIN_EXE_sluice"))
            .arg(verb)
            .arg("--config")
            .arg(cfg_path),
    )
}

/// A minimal HTTP/1.1 response.
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request over a fresh connection (`Connection: close`).
pub fn http(
    method: &str,
    port: u16,
    path: &str,
    body: Option<&str>,
    auth: Option<&str>,
) -> std::io::Result<Response> {
    http_raw(
        port,
        method,
        path,
        &[("Authorization", auth.unwrap_or(""))],
        body.map(str::as_bytes),
    )
}

/// Like [`http`], with arbitrary headers (empty values are skipped) and a raw body.
pub fn http_raw(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> std::io::Result<Response> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (k, v) in headers {
        if !v.is_empty() {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    if let Some(b) = body {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    if let Some(b) = body {
        s.write_all(b)?;
    }
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> std::io::Result<Response> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no header end"))?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|_| bad("header not utf8"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or_else(|| bad("empty"))?;
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("status"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        })
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        body = dechunk(&body).ok_or_else(|| bad("bad chunked body"))?;
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = b.windows(2).position(|w| w == b"\r\n")?;
        let size = usize::from_str_radix(
            std::str::from_utf8(&b[..line_end])
                .ok()?
                .split(';')
                .next()?
                .trim(),
            16,
        )
        .ok()?;
        b = &b[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(b.get(..size)?);
        b = b.get(size + 2..)?;
    }
}

/// Starts an ffmpeg RTMP publisher of synthetic H.264 + AAC (`extra` adds encoder options).
pub fn ffmpeg_publish_rtmp(url: &str, seconds: u32, extra: &[&str]) -> Child {
    require_tool("ffmpeg");
    let mut cmd = Command::new("ffmpeg");
    cmd.args([
        "-hide_banner",
        "-loglevel",
        "error",
        "-re",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=25",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000",
        "-t",
        &seconds.to_string(),
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-g",
        "25",
        "-pix_fmt",
        "yuv420p",
    ]);
    cmd.args(extra);
    cmd.args(["-c:a", "aac", "-b:a", "64k", "-f", "flv", url]);
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    cmd.spawn().expect("spawning ffmpeg")
}

/// Kills a child process if still running and returns its stderr.
pub fn finish(mut child: Child) -> String {
    let _ = child.kill();
    let out = child
        .wait_with_output()
        .map(|o| String::from_utf8_lossy(&o.stderr).into_owned());
    out.unwrap_or_default()
}

/// Writes `text` to `dir/name` and returns the path.
pub fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// A cheap publisher (160x120 at 10 fps) for tests that run several at once.
pub fn ffmpeg_publish_rtmp_small(url: &str, seconds: u32) -> Child {
    require_tool("ffmpeg");
    Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-re",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=160x120:rate=10",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-t",
            &seconds.to_string(),
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-tune",
            "zerolatency",
            "-g",
            "10",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-b:a",
            "32k",
            "-f",
            "flv",
            url,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning ffmpeg")
}

/// A minimal, deliberately naive RTMP publisher for bad-input tests: plain handshake, then
/// whatever messages the test writes (built with sluice-proto's chunk encoder and AMF0).
pub struct RawRtmp {
    pub stream: TcpStream,
    enc: sluice_proto::rtmp::chunk::ChunkEncoder,
}

impl RawRtmp {
    /// Connects and completes the plain handshake.
    pub fn connect(port: u16) -> std::io::Result<RawRtmp> {
        let mut s = TcpStream::connect(("127.0.0.1", port))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut c0c1 = vec![3u8];
        c0c1.extend(std::iter::repeat_n(0u8, 8));
        c0c1.extend((0..1528u32).map(|i| (i * 7 + 3) as u8));
        s.write_all(&c0c1)?;
        let mut s0s1s2 = vec![0u8; 1 + 1536 * 2];
        s.read_exact(&mut s0s1s2)?;
        // C2 echoes S1.
        s.write_all(&s0s1s2[1..1537])?;
        Ok(RawRtmp {
            stream: s,
            enc: sluice_proto::rtmp::chunk::ChunkEncoder::new(),
        })
    }

    /// Sends one message on chunk stream `csid`.
    pub fn send(
        &mut self,
        csid: u32,
        type_id: u8,
        stream_id: u32,
        payload: &[u8],
    ) -> std::io::Result<()> {
        let mut out = bytes::BytesMut::new();
        self.enc.encode(
            sluice_proto::rtmp::chunk::ChunkStreamId::new(csid).unwrap(),
            0,
            type_id,
            sluice_proto::rtmp::chunk::MessageStreamId(stream_id),
            payload,
            &mut out,
        );
        self.stream.write_all(&out)
    }

    /// Sends an AMF0 command (message type 20).
    pub fn command(
        &mut self,
        stream_id: u32,
        values: &[sluice_proto::amf0::Amf0Value],
    ) -> std::io::Result<()> {
        let mut body = Vec::new();
        for v in values {
            sluice_proto::amf0::encode(v, &mut body);
        }
        self.send(3, 20, stream_id, &body)
    }

    /// connect, createStream and publish `key` (the reply bytes are not parsed).
    pub fn publish(&mut self, key: &str) -> std::io::Result<()> {
        use sluice_proto::amf0::Amf0Value as V;
        self.command(
            0,
            &[
                V::String("connect".into()),
                V::Number(1.0),
                V::Object(vec![
                    ("app".into(), V::String("live".into())),
                    ("tcUrl".into(), V::String("rtmp://127.0.0.1/live".into())),
                ]),
            ],
        )?;
        self.command(
            0,
            &[V::String("createStream".into()), V::Number(2.0), V::Null],
        )?;
        self.command(
            1,
            &[
                V::String("publish".into()),
                V::Number(3.0),
                V::Null,
                V::String(key.into()),
                V::String("live".into()),
            ],
        )
    }

    /// Reads until the server closes the connection or `timeout` passes; true when closed.
    pub fn closed_within(&mut self, timeout: Duration) -> bool {
        closed_within(&mut self.stream, timeout)
    }
}

/// Reads from `s` until the peer closes it or `timeout` passes; true when closed.
pub fn closed_within(s: &mut TcpStream, timeout: Duration) -> bool {
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return true,
        }
    }
    false
}

/// An ffmpeg publishing 320x240 25 fps test video plus a 48 kHz sine as MPEG-TS over SRT,
/// encoded with the `video` and `audio` codec arguments.
pub fn ffmpeg_publish_srt_with(url: &str, seconds: u32, video: &[&str], audio: &[&str]) -> Child {
    require_tool("ffmpeg");
    let mut cmd = Command::new("ffmpeg");
    cmd.args([
        "-hide_banner",
        "-loglevel",
        "error",
        "-re",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=25",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000",
        "-t",
        &seconds.to_string(),
        "-pix_fmt",
        "yuv420p",
    ]);
    cmd.args(video).args(audio).args(["-f", "mpegts", url]);
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    cmd.spawn().expect("spawning ffmpeg")
}

/// `control/server/tests/browser`, with its node_modules installed (scripts/setup.sh --test).
pub fn browser_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        dir.join("node_modules/playwright-core").exists(),
        "playwright-core is not installed in {}: run scripts/setup.sh --test",
        dir.display()
    );
    dir
}

/// Where browser screenshots are kept after the tests (`target/e2e-whep/`).
pub fn browser_artifacts_dir() -> PathBuf {
    let d = bin_dir().join("../e2e-whep");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Opens the watch page at `url` in headless Chromium for `seconds`, saves a screenshot, and
/// returns the page's per-second getStats samples.
pub fn watch_in_chromium(url: &str, seconds: u32, screenshot: &Path) -> Vec<serde_json::Value> {
    require_tool("chromium");
    require_tool("node");
    let out = Command::new("timeout")
        .arg(format!("{}", seconds + 60))
        .arg("node")
        .arg(browser_dir().join("watch.mjs"))
        .arg(url)
        .arg(seconds.to_string())
        .arg(screenshot)
        .output()
        .expect("running node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "browser script failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}
