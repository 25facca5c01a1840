//! Runs one parser workload once on its fixed generated input, for instruction counting under
//! callgrind (`scripts/callgrind.sh`). The input is generated first; only the call to
//! [`measured`] is counted (`--toggle-collect`), so the count is the parser's alone.
//!
//! ```text
//! parse_bench --list          # the workload names
//! parse_bench WORKLOAD        # prints: WORKLOAD BYTES UNITS CHECK
//! ```
//! BYTES is the input the workload consumed, UNITS how many times it ran (the stream-key
//! decode runs many times so its count is not dominated by call overhead), CHECK a value
//! derived from the output so the work cannot be optimized away.

use bytes::Bytes;
use std::hint::black_box;

#[path = "../benches/workloads/mod.rs"]
mod workloads;

/// Stream-key decodes per run.
const STREAMKEY_RUNS: usize = 1000;

/// A workload with its input, built before counting starts.
enum Input {
    Chunks(Vec<Bytes>),
    Ts(Vec<Bytes>),
    TsPeer(Vec<Bytes>),
    Rtmp(Bytes),
    Annexb(Bytes),
    Flat(Bytes),
    H264(Vec<sluice_proto::media::VideoFrame>),
    Streamkey(Box<sluice_proto::streamkey::Certificate>, String),
}

const NAMES: &[&str] = &[
    "memcpy_ts_1316",
    "ts_demux_1316",
    "ts_demux_65536",
    "ts_mpeg2ts_reader_65424",
    "memcpy_rtmp_128",
    "rtmp_chunk_4096",
    "rtmp_chunk_128",
    "memcpy_annexb",
    "annexb_split",
    "memcpy_h264",
    "h264_packetize",
    "memcpy_streamkey",
    "streamkey_decode",
];

fn input(name: &str) -> Option<(Input, usize, usize)> {
    let ts = || Bytes::from(workloads::ts_stream());
    Some(match name {
        "memcpy_ts_1316" => {
            let all = ts();
            (Input::Chunks(workloads::pieces(&all, 1316)), all.len(), 1)
        }
        "ts_demux_1316" => {
            let all = ts();
            (Input::Ts(workloads::pieces(&all, 1316)), all.len(), 1)
        }
        "ts_demux_65536" => {
            let all = ts();
            (Input::Ts(workloads::pieces(&all, 65_536)), all.len(), 1)
        }
        "ts_mpeg2ts_reader_65424" => {
            let all = ts();
            (Input::TsPeer(workloads::pieces(&all, 65_424)), all.len(), 1)
        }
        "memcpy_rtmp_128" => {
            let all = workloads::rtmp_stream(128);
            let n = all.len();
            (Input::Chunks(workloads::pieces(&all, 64 * 1024)), n, 1)
        }
        "rtmp_chunk_4096" | "rtmp_chunk_128" => {
            let size = if name.ends_with("4096") { 4096 } else { 128 };
            let all = workloads::rtmp_stream(size);
            let n = all.len();
            (Input::Rtmp(all), n, 1)
        }
        "memcpy_annexb" => {
            let b = Bytes::from(workloads::annexb_stream(1 << 20));
            let n = b.len();
            (Input::Flat(b), n, 1)
        }
        "annexb_split" => {
            let b = Bytes::from(workloads::annexb_stream(1 << 20));
            let n = b.len();
            (Input::Annexb(b), n, 1)
        }
        "memcpy_h264" => {
            let frames = workloads::h264_frames(1 << 20);
            let flat: Vec<u8> = frames.iter().flat_map(|f| f.nalus.concat()).collect();
            let n = flat.len();
            (Input::Flat(Bytes::from(flat)), n, 1)
        }
        "h264_packetize" => {
            let frames = workloads::h264_frames(1 << 20);
            let n = frames.iter().map(|f| f.len()).sum();
            (Input::H264(frames), n, 1)
        }
        "memcpy_streamkey" | "streamkey_decode" => {
            let (cert, _, key) = workloads::streamkey_fixture();
            let n = key.len() * STREAMKEY_RUNS;
            if name == "memcpy_streamkey" {
                let mut all = Vec::new();
                for _ in 0..STREAMKEY_RUNS {
                    all.push(Bytes::from(key.clone()));
                }
                (Input::Chunks(all), n, STREAMKEY_RUNS)
            } else {
                (Input::Streamkey(Box::new(cert), key), n, STREAMKEY_RUNS)
            }
        }
        _ => return None,
    })
}

/// The counted part: one run of the workload over its whole input.
#[inline(never)]
fn measured(input: &Input) -> u64 {
    match input {
        Input::Chunks(chunks) => {
            let max = chunks.iter().map(Bytes::len).max().unwrap_or(0);
            let mut dst = vec![0u8; max];
            u64::from(workloads::memcpy_chunks(chunks, &mut dst))
        }
        Input::Flat(b) => {
            let mut dst = vec![0u8; b.len()];
            dst.copy_from_slice(b);
            u64::from(black_box(&dst).last().copied().unwrap_or(0))
        }
        Input::Ts(chunks) => workloads::ts_demux(chunks),
        Input::TsPeer(chunks) => workloads::peer::run(chunks),
        Input::Rtmp(all) => workloads::rtmp_decode(all) as u64,
        Input::Annexb(b) => workloads::annexb_split(b) as u64,
        Input::H264(frames) => {
            let mut p = workloads::h264_packetizer();
            let mut out = Vec::with_capacity(2048);
            workloads::h264_packetize(&mut p, frames, &mut out) as u64
        }
        Input::Streamkey(cert, key) => {
            let mut ok = 0;
            for _ in 0..STREAMKEY_RUNS {
                ok += u64::from(sluice_proto::streamkey::decode(cert, black_box(key)).is_ok());
            }
            ok
        }
    }
}

fn main() {
    let arg = std::env::args().nth(1).unwrap_or_default();
    if arg == "--list" || arg.is_empty() {
        for n in NAMES {
            println!("{n}");
        }
        return;
    }
    let Some((inp, bytes, units)) = input(&arg) else {
        eprintln!("unknown workload {arg}; try --list");
        std::process::exit(2);
    };
    let check = measured(black_box(&inp));
    println!("{arg} {bytes} {units} {check}");
}
