//! The per-core receive arena: every TCP ingest connection of a core reads into one shared
//! buffer, so an idle or slow publisher holds no receive buffer of its own.
//!
//! glommio's TCP read is readiness-based: `poll_read` first tries a non-blocking `recv` into
//! the slice it is given and, when nothing is there, arms a poll for readability and keeps no
//! reference to the slice. The slice is therefore only needed for the instant of the `recv`
//! itself, which is what lets every connection of the core share one buffer: each successful
//! read takes the next bytes of the arena's current chunk and hands them out as a frozen
//! `Bytes` slice (zero copy: the parsers and the packetizer borrow from it, and the GOP cache
//! keeps it alive by reference count). When the chunk's free space falls below
//! [`MIN_READ`], a fresh chunk is allocated; the old one is freed when its last slice drops.
//!
//! A per-connection 64 KiB buffer (what this replaces) cost every publisher 64 KiB of
//! resident memory whether it sent 600 kbps or nothing; the arena costs one chunk per core
//! plus whatever slices the streams still hold.

use std::cell::RefCell;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_lite::AsyncRead;

/// Size of each arena chunk.
pub const CHUNK: usize = 256 * 1024;
/// A read is offered at least this much room (a new chunk starts below it), and at most the
/// rest of the chunk: large reads mean few syscalls.
pub const MIN_READ: usize = 16 * 1024;

/// Most room a read through [`RecvArena::poll_read`] is offered: that path zeroes the room
/// first, on every poll.
const ZEROED_READ_MAX: usize = 64 * 1024;

/// One core's shared receive buffer. Lives in the core's context; never crosses threads.
pub struct RecvArena {
    chunk: RefCell<BytesMut>,
    chunk_size: usize,
    min_read: usize,
}

impl Default for RecvArena {
    fn default() -> Self {
        RecvArena::new(CHUNK, MIN_READ)
    }
}

impl RecvArena {
    /// An arena of `chunk_size`-byte chunks that starts a new chunk when less than
    /// `min_read` bytes are free.
    pub fn new(chunk_size: usize, min_read: usize) -> Self {
        let min_read = min_read.clamp(1, chunk_size.max(1));
        RecvArena {
            chunk: RefCell::new(BytesMut::new()),
            chunk_size: chunk_size.max(min_read),
            min_read,
        }
    }

    /// Polls one read of `source` into the arena. `Ready(Ok(bytes))` is what arrived (empty
    /// at end of stream); the arena is borrowed only for this call, never across a
    /// `Pending`.
    pub fn poll_read<R: AsyncRead + Unpin>(
        &self,
        cx: &mut Context<'_>,
        source: &mut R,
    ) -> Poll<std::io::Result<Bytes>> {
        let mut chunk = self.chunk.borrow_mut();
        self.ensure_room(&mut chunk);
        // The read API takes an initialised slice: zero the room it is offered, at most
        // [`ZEROED_READ_MAX`] (this path serves handshakes and the rare connection outside
        // the epoll set, and is polled again after every wake-up; publishing reads go
        // through `recv_nonblocking`, which needs no zeroing).
        let room = (chunk.capacity() - chunk.len()).min(ZEROED_READ_MAX);
        chunk.resize(room, 0);
        let result = Pin::new(source).poll_read(cx, &mut chunk[..]);
        let n = match &result {
            Poll::Ready(Ok(n)) => *n,
            _ => 0,
        };
        let data = chunk.split_to(n).freeze();
        // What was not read stays part of the chunk's free room.
        chunk.clear();
        match result {
            Poll::Ready(Ok(_)) => Poll::Ready(Ok(data)),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Starts a new chunk when the current one has less than `min_read` bytes of room. The
    /// chunk is allocated, not zeroed: `recv` writes into it directly.
    fn ensure_room(&self, chunk: &mut BytesMut) {
        if chunk.capacity() - chunk.len() < self.min_read {
            *chunk = BytesMut::with_capacity(self.chunk_size);
        }
    }

    /// One non-blocking `recv` from socket `fd` into the arena: what arrived (empty at end
    /// of stream), the room the read was offered (a shorter read drained the socket), and
    /// the kernel's receive timestamp of the last segment read (nanoseconds since the Unix
    /// epoch), when the socket has receive timestamps on ([`crate::latency`]).
    pub fn recv_nonblocking(&self, fd: std::os::fd::RawFd) -> std::io::Result<Received> {
        let mut chunk = self.chunk.borrow_mut();
        self.ensure_room(&mut chunk);
        let spare = chunk.spare_capacity_mut();
        let room = spare.len();
        let mut iov = libc::iovec {
            iov_base: spare.as_mut_ptr().cast(),
            iov_len: room,
        };
        // Room for one SCM_TIMESTAMPING message (three timespecs), aligned for cmsghdr.
        let mut control = [0u64; 16];
        // SAFETY: an all-zero msghdr is valid; the pointers set below outlive the call.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control) as _;
        // SAFETY: `iov` describes writable memory owned by `chunk` for the duration of the
        // call (`recvmsg` only writes it, so it may be uninitialised); `control` likewise.
        let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT) };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let n = n as usize;
        // SAFETY: the kernel initialised the first `n` bytes of the spare capacity.
        unsafe { chunk.set_len(n) };
        Ok(Received {
            data: chunk.split_to(n).freeze(),
            room,
            // SAFETY: `msg` was filled in by a successful `recvmsg`.
            arrival_ns: unsafe { rx_timestamp(&msg) },
        })
    }

    /// Reads once from `source` into the arena.
    pub async fn read<R: AsyncRead + Unpin>(&self, source: &mut R) -> std::io::Result<Bytes> {
        std::future::poll_fn(|cx| self.poll_read(cx, source)).await
    }
}

/// One read from a socket.
pub struct Received {
    /// What arrived (empty at end of stream).
    pub data: Bytes,
    /// The room the read was offered.
    pub room: usize,
    /// Kernel receive timestamp of the last segment read, ns since the Unix epoch.
    pub arrival_ns: Option<u64>,
}

/// The software receive timestamp in a `recvmsg` result's control messages, if any.
///
/// # Safety
/// `msg` must come from a successful `recvmsg` whose control buffer is still alive.
unsafe fn rx_timestamp(msg: &libc::msghdr) -> Option<u64> {
    // SAFETY (whole body): the CMSG_* walk stays within the control buffer the kernel filled
    // in, as the caller guarantees.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPING {
                // struct scm_timestamping: ts[0] is the software timestamp.
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                if ts.tv_sec <= 0 {
                    return None;
                }
                return Some(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64);
            }
            c = libc::CMSG_NXTHDR(msg, c);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A source that yields scripted reads, and `Pending` (with a wake) between them.
    struct Script {
        reads: Vec<Vec<u8>>,
        pending_next: bool,
    }

    impl AsyncRead for Script {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<std::io::Result<usize>> {
            if self.pending_next {
                self.pending_next = false;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            self.pending_next = true;
            if self.reads.is_empty() {
                return Poll::Ready(Ok(0));
            }
            let r = self.reads.remove(0);
            let n = r.len().min(buf.len());
            buf[..n].copy_from_slice(&r[..n]);
            Poll::Ready(Ok(n))
        }
    }

    #[test]
    fn reads_from_many_sources_share_chunks_and_keep_their_bytes() {
        let arena = RecvArena::new(64, 16);
        let mut a = Script {
            reads: vec![vec![1; 10], vec![2; 30], vec![3; 40]],
            pending_next: false,
        };
        let mut b = Script {
            reads: vec![vec![7; 20], vec![8; 5]],
            pending_next: true,
        };
        let mut got_a = Vec::new();
        let mut got_b = Vec::new();
        futures_lite::future::block_on(async {
            loop {
                let x = arena.read(&mut a).await.unwrap();
                let y = arena.read(&mut b).await.unwrap();
                if x.is_empty() && y.is_empty() {
                    break;
                }
                got_a.push(x);
                got_b.push(y);
            }
        });
        // Every slice keeps its bytes although later reads went into the same chunks.
        let flat = |v: &[Bytes]| v.iter().flat_map(|b| b.to_vec()).collect::<Vec<u8>>();
        let want_a: Vec<u8> = [vec![1; 10], vec![2; 30], vec![3; 40]].concat();
        assert_eq!(flat(&got_a), want_a);
        assert_eq!(flat(&got_b), [vec![7; 20], vec![8; 5]].concat());
        // The first two reads of `a` and `b` came from one chunk: adjacent slices.
        let (p0, p1) = (got_a[0].as_ptr() as usize, got_b[0].as_ptr() as usize);
        assert_eq!(p1, p0 + 10);
    }

    #[test]
    fn a_read_never_gets_less_than_min_read_of_room() {
        let arena = RecvArena::new(64, 48);
        let mut s = Script {
            reads: vec![vec![1; 20], vec![2; 60]],
            pending_next: false,
        };
        let (x, y) = futures_lite::future::block_on(async {
            (
                arena.read(&mut s).await.unwrap(),
                arena.read(&mut s).await.unwrap(),
            )
        });
        assert_eq!(x.len(), 20);
        // 44 bytes were left, under the 48 minimum: a new chunk gave the read 60 bytes.
        assert_eq!(y.len(), 60);
    }

    #[test]
    fn nonblocking_reads_share_a_chunk_until_its_room_runs_short() {
        use std::io::Write;
        use std::os::fd::AsRawFd;
        let (mut tx, rx) = std::os::unix::net::UnixStream::pair().unwrap();
        rx.set_nonblocking(true).unwrap();
        let arena = RecvArena::new(64, 16);
        tx.write_all(&[5; 30]).unwrap();
        let r = |arena: &RecvArena| {
            let got = arena.recv_nonblocking(rx.as_raw_fd());
            got.map(|g| (g.data, g.room))
        };
        let (a, room) = r(&arena).unwrap();
        assert_eq!((a.len(), room), (30, 64));
        tx.write_all(&[6; 20]).unwrap();
        let (b, room) = r(&arena).unwrap();
        // Same chunk, right behind the first read; only its remaining room was offered.
        assert_eq!((b.len(), room), (20, 34));
        assert_eq!(b.as_ptr() as usize, a.as_ptr() as usize + 30);
        tx.write_all(&[7; 10]).unwrap();
        // 14 bytes of room left, under the 16 minimum: a new chunk.
        let (c, room) = r(&arena).unwrap();
        assert_eq!((c.len(), room), (10, 64));
        assert_eq!(
            (&a[..], &b[..], &c[..]),
            (&[5; 30][..], &[6; 20][..], &[7; 10][..])
        );
        let e = r(&arena).err().unwrap();
        assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock);
        drop(tx);
        let (end, _) = r(&arena).unwrap();
        assert!(end.is_empty());
    }
}
