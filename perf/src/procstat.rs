//! Gateway cost from `/proc`: CPU time, resident and proportional set size of a process tree.
//!
//! Sources (proc(5)): `/proc/PID/stat` fields 14 and 15 (`utime`, `stime`, in clock ticks)
//! and field 4 (`ppid`); `/proc/PID/status` (`VmRSS`, `VmHWM`, in kB); `/proc/PID/smaps_rollup`
//! (`Pss`, in kB). Parsing is separated from reading so it can be tested on captured text.

use std::fs;
use std::path::Path;

/// Clock ticks per second of `utime`/`stime`. Linux reports these in USER_HZ, which the
/// kernel ABI fixes at 100 on every architecture it exports `/proc` for.
pub const USER_HZ: f64 = 100.0;

/// The fields of `/proc/PID/stat` that the sampler uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// Parent process id.
    pub ppid: u32,
    /// User-mode CPU time in clock ticks.
    pub utime: u64,
    /// Kernel-mode CPU time in clock ticks.
    pub stime: u64,
}

impl Stat {
    /// CPU seconds, user plus system.
    pub fn cpu_seconds(&self) -> f64 {
        (self.utime + self.stime) as f64 / USER_HZ
    }
}

/// Parses the text of `/proc/PID/stat`. The command name (field 2) may hold spaces and
/// parentheses, so fields are counted from the last `)`.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    // After ")": state(3) ppid(4) pgrp(5) session(6) tty(7) tpgid(8) flags(9) minflt(10)
    // cminflt(11) majflt(12) cmajflt(13) utime(14) stime(15).
    let f: Vec<&str> = rest.split_ascii_whitespace().take(13).collect();
    Some(Stat {
        ppid: f.get(1)?.parse().ok()?,
        utime: f.get(11)?.parse().ok()?,
        stime: f.get(12)?.parse().ok()?,
    })
}

/// Memory figures of one process, in kB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Mem {
    /// Current resident set size.
    pub rss_kb: u64,
    /// Peak resident set size (high-water mark).
    pub hwm_kb: u64,
}

/// Parses the text of `/proc/PID/status` (`VmRSS`, `VmHWM`); missing lines read as 0
/// (kernel threads have none).
pub fn parse_status(text: &str) -> Mem {
    let mut m = Mem::default();
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("VmRSS:") {
            m.rss_kb = kb(v);
        } else if let Some(v) = line.strip_prefix("VmHWM:") {
            m.hwm_kb = kb(v);
        }
    }
    m
}

/// The `Pss:` line of `/proc/PID/smaps_rollup`, in kB.
pub fn parse_pss(text: &str) -> Option<u64> {
    text.lines().find_map(|l| l.strip_prefix("Pss:")).map(kb)
}

fn kb(v: &str) -> u64 {
    v.split_ascii_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// One reading of a process tree.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct TreeSample {
    /// Processes found (the roots and their descendants still alive).
    pub processes: u32,
    /// CPU seconds of the live processes, user plus system.
    pub cpu_seconds: f64,
    /// Sum of current RSS, kB.
    pub rss_kb: u64,
    /// Sum of peak RSS, kB.
    pub hwm_kb: u64,
    /// Sum of PSS, kB (0 when `smaps_rollup` was not read).
    pub pss_kb: u64,
}

/// Samples `roots` and all their descendants (found by scanning `/proc/*/stat` for parents).
/// `with_pss` also reads `smaps_rollup`, which costs a page-table walk per process.
pub fn sample_tree(roots: &[u32], with_pss: bool) -> TreeSample {
    let proc = Path::new("/proc");
    let mut all: Vec<(u32, Stat)> = Vec::new();
    if let Ok(dir) = fs::read_dir(proc) {
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if let Some(st) = fs::read_to_string(e.path().join("stat"))
                .ok()
                .and_then(|t| parse_stat(&t))
            {
                all.push((pid, st));
            }
        }
    }
    let members = descendants(roots, &all);
    let mut s = TreeSample::default();
    for (pid, st) in all.iter().filter(|(p, _)| members.contains(p)) {
        s.processes += 1;
        s.cpu_seconds += st.cpu_seconds();
        let dir = proc.join(pid.to_string());
        let mem = parse_status(&fs::read_to_string(dir.join("status")).unwrap_or_default());
        s.rss_kb += mem.rss_kb;
        s.hwm_kb += mem.hwm_kb;
        if with_pss {
            s.pss_kb += fs::read_to_string(dir.join("smaps_rollup"))
                .ok()
                .and_then(|t| parse_pss(&t))
                .unwrap_or(0);
        }
    }
    s
}

/// The roots plus every process whose ancestor chain reaches one of them.
pub fn descendants(roots: &[u32], all: &[(u32, Stat)]) -> Vec<u32> {
    let mut members: Vec<u32> = roots
        .iter()
        .copied()
        .filter(|r| all.iter().any(|(p, _)| p == r))
        .collect();
    // Fixed point: process trees are shallow, so a few passes suffice.
    loop {
        let before = members.len();
        for (pid, st) in all {
            if !members.contains(pid) && members.contains(&st.ppid) {
                members.push(*pid);
            }
        }
        if members.len() == before {
            return members;
        }
    }
}

/// CPU seconds of this process (the load tool's own cost).
pub fn self_cpu_seconds() -> f64 {
    fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|t| parse_stat(&t))
        .map_or(0.0, |s| s.cpu_seconds())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_spaces_and_parens_in_name() {
        let t = "4242 (nginx: (worker) x) S 4241 4241 4241 0 -1 4194624 310 0 0 0 157 43 0 0 20 0 1 0 \
                 1234 12345678 900 18446744073709551615";
        let s = parse_stat(t).unwrap();
        assert_eq!(s.ppid, 4241);
        assert_eq!(s.utime, 157);
        assert_eq!(s.stime, 43);
        assert!((s.cpu_seconds() - 2.0).abs() < 1e-9);
    }

    #[test]
    fn stat_truncated_is_none() {
        assert_eq!(parse_stat("1 (init) S 0 1 1 0"), None);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn status_and_pss() {
        let st = "Name:\tnginx\nVmPeak:\t 9000 kB\nVmHWM:\t    4321 kB\nVmRSS:\t    4000 kB\n";
        assert_eq!(
            parse_status(st),
            Mem {
                rss_kb: 4000,
                hwm_kb: 4321
            }
        );
        assert_eq!(parse_status("Name:\tkthreadd\n"), Mem::default());
        let sm = "55d0-7ffc ---p 00000000 00:00 0 [rollup]\nRss:  4000 kB\nPss:   2500 kB\n";
        assert_eq!(parse_pss(sm), Some(2500));
        assert_eq!(parse_pss("Rss: 1 kB\n"), None);
    }

    #[test]
    fn tree_follows_grandchildren() {
        let st = |ppid| Stat {
            ppid,
            utime: 0,
            stime: 0,
        };
        let all = [
            (1, st(0)),
            (10, st(1)),
            (11, st(10)),
            (12, st(11)),
            (20, st(1)),
        ];
        let mut d = descendants(&[10], &all);
        d.sort();
        assert_eq!(d, vec![10, 11, 12]);
        assert!(descendants(&[99], &all).is_empty());
    }

    #[test]
    fn samples_this_process() {
        let s = sample_tree(&[std::process::id()], true);
        assert!(s.processes >= 1);
        assert!(s.rss_kb > 0);
        assert!(s.hwm_kb >= s.rss_kb);
        assert!(s.pss_kb > 0);
    }
}
