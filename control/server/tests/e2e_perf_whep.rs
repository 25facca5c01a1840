//! The load tool's WHEP viewers against a whole gateway: `sluice-perf load` publishes one
//! RTMP stream (an FLV ffmpeg made) and attaches two str0m WHEP viewers to its channel; both
//! must connect (ICE, DTLS, SRTP) and depacketize video frames. This keeps the viewer side of
//! the load tool, which the WebRTC capacity figures in docs/performance.md rest on, working.

mod support;

use std::process::Command;

use support::*;

#[test]
fn sluice_perf_whep_viewers_connect_and_receive_frames() {
    require_tool("ffmpeg");
    let perf = bin_dir().join("sluice-perf");
    assert!(
        perf.exists(),
        "{} missing: build the workspace first (cargo build --workspace --bins)",
        perf.display()
    );
    let gw = Gateway::start();
    let dir = gw.dir.path().to_path_buf();
    // The load tool names stream i's channel `c<i>`.
    let key = gw.create_key("c0", "1");
    let keys = write_file(&dir, "keys", &format!("{key}\n"));
    let flv = dir.join("in.flv");
    let st = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i"])
        .arg("testsrc2=size=320x240:rate=25")
        .args([
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-t",
            "14",
        ])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "50",
            "-bf",
            "0",
        ])
        .args([
            "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k", "-f", "flv",
        ])
        .arg(&flv)
        .status()
        .expect("running ffmpeg");
    assert!(st.success(), "ffmpeg could not make the FLV");

    let out = dir.join("run.json");
    let run = Command::new("timeout")
        .arg("60")
        .arg(&perf)
        .arg("load")
        .arg("--rtmp")
        .arg(format!("rtmp://127.0.0.1:{}/live", gw.rtmp_port))
        .args(["-n", "1", "--ramp", "5", "--duration-s", "10"])
        .arg("--keys-file")
        .arg(&keys)
        .arg("--input")
        .arg(&flv)
        .args(["--whep-viewers", "2", "--whep-delay-s", "2"])
        .arg("--whep-url")
        .arg(format!(
            "http://127.0.0.1:{}/whep/{}",
            gw.http_port, gw.app_id
        ))
        .arg("--out")
        .arg(&out)
        .output()
        .expect("running sluice-perf");
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    assert!(
        run.status.success(),
        "sluice-perf failed: {}\n{}\n{}",
        run.status,
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(&text).expect("result JSON");
    let t = &v["totals"];
    assert_eq!(t["whep_connected"], 2, "{t}\n{}", gw.log());
    // Eight seconds of 25 fps video for each of two viewers, less the time to connect.
    let frames = t["whep_video_frames"].as_u64().unwrap_or(0);
    assert!(frames >= 200, "only {frames} video frames: {t}");
}
