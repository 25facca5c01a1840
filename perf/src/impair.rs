//! A deterministic UDP impairment proxy.
//!
//! Clients send to `--listen`; each client address gets its own upstream socket, so the
//! upstream sees one peer per client and its replies find their way back. Both directions
//! pass through the same impairment model: a seeded PRNG decides per datagram whether it is
//! lost, duplicated or held back for reordering, and how much delay and jitter it gets. With
//! the same seed and the same input order, the same datagrams are impaired.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use clap::Args;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Options of `sluice-perf impair`.
#[derive(Debug, Clone, Args)]
pub struct ImpairArgs {
    /// Address clients send to.
    #[arg(long)]
    pub listen: SocketAddr,
    /// Where datagrams are relayed.
    #[arg(long)]
    pub upstream: SocketAddr,
    /// Percentage of datagrams dropped, each direction.
    #[arg(long, default_value_t = 0.0)]
    pub loss: f64,
    /// Fixed one-way delay in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub delay_ms: u64,
    /// Extra random delay, uniform in 0..=jitter milliseconds.
    #[arg(long, default_value_t = 0)]
    pub jitter_ms: u64,
    /// Percentage of datagrams held back an extra `reorder_gap_ms` so later ones overtake them.
    #[arg(long, default_value_t = 0.0)]
    pub reorder: f64,
    /// Extra hold-back for reordered datagrams, in milliseconds.
    #[arg(long, default_value_t = 15)]
    pub reorder_gap_ms: u64,
    /// Percentage of datagrams sent twice.
    #[arg(long, default_value_t = 0.0)]
    pub duplicate: f64,
    /// PRNG seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Stop after this many seconds (0 = run until killed).
    #[arg(long, default_value_t = 0)]
    pub duration_s: u64,
}

/// The impairment decisions, separated from sockets so they can be tested.
pub struct Model {
    rng: StdRng,
    args: ImpairArgs,
    /// Datagrams seen, dropped, duplicated, reordered.
    pub counts: [u64; 4],
}

impl Model {
    /// A model with the given options.
    pub fn new(args: ImpairArgs) -> Self {
        Model {
            rng: StdRng::seed_from_u64(args.seed),
            args,
            counts: [0; 4],
        }
    }

    /// Delays (from now) at which copies of one datagram are released; empty when it is lost.
    pub fn decide(&mut self) -> Vec<Duration> {
        self.counts[0] += 1;
        if self.rng.gen_bool((self.args.loss / 100.0).clamp(0.0, 1.0)) {
            self.counts[1] += 1;
            return Vec::new();
        }
        let mut delay = self.args.delay_ms;
        if self.args.jitter_ms > 0 {
            delay += self.rng.gen_range(0..=self.args.jitter_ms);
        }
        if self
            .rng
            .gen_bool((self.args.reorder / 100.0).clamp(0.0, 1.0))
        {
            self.counts[3] += 1;
            delay += self.args.reorder_gap_ms;
        }
        let mut out = vec![Duration::from_millis(delay)];
        if self
            .rng
            .gen_bool((self.args.duplicate / 100.0).clamp(0.0, 1.0))
        {
            self.counts[2] += 1;
            out.push(Duration::from_millis(delay + 1));
        }
        out
    }
}

enum Dir {
    Up(SocketAddr),
    Down(SocketAddr),
}

struct Pending {
    at: Instant,
    seq: u64,
    dir: Dir,
    data: Vec<u8>,
}

impl PartialEq for Pending {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Pending {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

/// Runs the proxy until `duration_s` passes (or forever).
pub fn run(args: ImpairArgs) -> anyhow::Result<()> {
    let front = UdpSocket::bind(args.listen)?;
    let upstream = args.upstream;
    let stop_at =
        (args.duration_s > 0).then(|| Instant::now() + Duration::from_secs(args.duration_s));
    let (tx, rx) = mpsc::channel::<(Dir, Vec<u8>)>();

    // Reader of the client-facing socket.
    {
        let front = front.try_clone()?;
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65_536];
            while let Ok((n, from)) = front.recv_from(&mut buf) {
                // The relay copies each datagram: it must hold it while delaying it.
                if tx.send((Dir::Up(from), buf[..n].to_vec())).is_err() {
                    break;
                }
            }
        });
    }

    let mut model = Model::new(args.clone());
    let mut uplinks: HashMap<SocketAddr, UdpSocket> = HashMap::new();
    let mut queue: BinaryHeap<Reverse<Pending>> = BinaryHeap::new();
    let mut seq = 0u64;
    loop {
        if stop_at.is_some_and(|t| Instant::now() >= t) {
            break;
        }
        let wait = queue
            .peek()
            .map(|Reverse(p)| p.at.saturating_duration_since(Instant::now()))
            .unwrap_or(Duration::from_millis(50))
            .min(Duration::from_millis(50));
        match rx.recv_timeout(wait) {
            Ok((dir, data)) => {
                if let Dir::Up(client) = dir
                    && !uplinks.contains_key(&client)
                {
                    let sock = UdpSocket::bind(SocketAddr::new(args.listen.ip(), 0))?;
                    sock.connect(upstream)?;
                    let reader = sock.try_clone()?;
                    let tx = tx.clone();
                    std::thread::spawn(move || {
                        let mut buf = vec![0u8; 65_536];
                        while let Ok(n) = reader.recv(&mut buf) {
                            if tx.send((Dir::Down(client), buf[..n].to_vec())).is_err() {
                                break;
                            }
                        }
                    });
                    uplinks.insert(client, sock);
                }
                let now = Instant::now();
                for d in model.decide() {
                    seq += 1;
                    // A duplicated datagram needs its own buffer: one more copy.
                    let data = data.clone();
                    let dir = match &dir {
                        Dir::Up(c) => Dir::Up(*c),
                        Dir::Down(c) => Dir::Down(*c),
                    };
                    queue.push(Reverse(Pending {
                        at: now + d,
                        seq,
                        dir,
                        data,
                    }));
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        let now = Instant::now();
        while queue.peek().is_some_and(|Reverse(p)| p.at <= now) {
            let Some(Reverse(p)) = queue.pop() else { break };
            match p.dir {
                Dir::Up(client) => {
                    if let Some(s) = uplinks.get(&client) {
                        let _ = s.send(&p.data);
                    }
                }
                Dir::Down(client) => {
                    let _ = front.send_to(&p.data, client);
                }
            }
        }
    }
    eprintln!(
        "impair: seen {} dropped {} duplicated {} reordered {}",
        model.counts[0], model.counts[1], model.counts[2], model.counts[3]
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(seed: u64) -> ImpairArgs {
        ImpairArgs {
            listen: "127.0.0.1:0".parse().unwrap(),
            upstream: "127.0.0.1:9".parse().unwrap(),
            loss: 5.0,
            delay_ms: 10,
            jitter_ms: 50,
            reorder: 2.0,
            reorder_gap_ms: 15,
            duplicate: 1.0,
            seed,
            duration_s: 0,
        }
    }

    #[test]
    fn same_seed_same_decisions() {
        let mut a = Model::new(args(7));
        let mut b = Model::new(args(7));
        for _ in 0..10_000 {
            assert_eq!(a.decide(), b.decide());
        }
    }

    #[test]
    fn rates_close_to_requested() {
        let mut m = Model::new(args(3));
        for _ in 0..100_000 {
            let d = m.decide();
            for x in d {
                assert!(
                    x >= Duration::from_millis(10) && x <= Duration::from_millis(10 + 50 + 15 + 1)
                );
            }
        }
        let loss = m.counts[1] as f64 / m.counts[0] as f64;
        assert!((0.04..0.06).contains(&loss), "loss {loss}");
        let dup = m.counts[2] as f64 / m.counts[0] as f64;
        assert!((0.005..0.015).contains(&dup), "dup {dup}");
    }
}
