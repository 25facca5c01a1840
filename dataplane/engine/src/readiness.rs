//! Per-core socket readiness for publishing RTMP connections: one edge-triggered epoll set
//! per core, watched by one dispatcher task, instead of one io_uring poll per read.
//!
//! Why: glommio's TCP read is readiness-based, and it re-arms a one-shot io_uring
//! `POLL_ADD` for every read. A 600 kbps publisher sends about 77 RTMP messages a second, each
//! read on its own, so every message cost a submission, a completion delivered as task work
//! (an inter-processor interrupt when the reactor was running on another core's behalf), a
//! `Source` allocation and an `io_uring_enter`: more than the `recv` itself. Here a socket is
//! added to the core's epoll set once (edge-triggered), and the kernel queues readiness on it
//! with no work from us per message. The dispatcher harvests every ready socket with one
//! `epoll_wait` and wakes their connection tasks; only the epoll descriptor itself is polled
//! through io_uring, once per batch. This is the model nginx uses, on glommio's executor.
//!
//! glommio 0.9 has no public "wait until this descriptor is readable". Every glommio socket
//! arms a read poll on its descriptor when it is created, so [`wait_readable`] wraps a
//! duplicate of the epoll descriptor in a glommio `TcpStream` and reads from it: when the
//! poll fires, the read's `recv` fails with `ENOTSOCK`, which here means "ready". The
//! duplicate is closed afterwards (the epoll set lives on with the original).
//!
//! Edge-triggered rules the readers follow ([`Registration::read`]): a read that returns less
//! than the room it was given has drained the socket, so the reader waits for the next edge
//! instead of calling `recv` to see `EAGAIN`; any byte arriving after the last harvest raises
//! a new edge, so no wake-up is lost. The exception is the peer's close: it raises no edge of
//! its own when it arrives with the last data, so once an event says `EPOLLRDHUP` (or hang-up,
//! or error) the reader reads until `recv` returns the end.

use std::cell::{Cell, RefCell};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;

use crate::recv::RecvArena;

/// Events harvested per `epoll_wait`.
const BATCH: usize = 256;

struct Slot {
    ready: Cell<bool>,
    /// The peer closed or the socket failed: read on until `recv` says so (the end's edge
    /// may have come with the last data, so a short read proves nothing).
    hung_up: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

/// One core's epoll set and the wakers of the connections registered in it.
pub struct Readiness {
    epoll: OwnedFd,
    slots: RefCell<Vec<Option<Rc<Slot>>>>,
    free: RefCell<Vec<usize>>,
}

impl Readiness {
    /// A new, empty epoll set.
    pub fn new() -> std::io::Result<Rc<Self>> {
        // SAFETY: plain syscall; the result is checked.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Rc::new(Readiness {
            // SAFETY: `fd` was just created and is owned by nothing else.
            epoll: unsafe { OwnedFd::from_raw_fd(fd) },
            slots: RefCell::new(Vec::new()),
            free: RefCell::new(Vec::new()),
        }))
    }

    /// Adds `fd` (a non-blocking socket) to the set. The registration removes it again when
    /// dropped, which must happen while `fd` is still open.
    pub fn register(self: &Rc<Self>, fd: RawFd) -> std::io::Result<Registration> {
        let slot = Rc::new(Slot {
            ready: Cell::new(false),
            hung_up: Cell::new(false),
            waker: RefCell::new(None),
        });
        let token = match self.free.borrow_mut().pop() {
            Some(t) => {
                self.slots.borrow_mut()[t] = Some(slot.clone());
                t
            }
            None => {
                let mut slots = self.slots.borrow_mut();
                slots.push(Some(slot.clone()));
                slots.len() - 1
            }
        };
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLET) as u32,
            u64: token as u64,
        };
        // SAFETY: both descriptors are open; `ev` is a valid event for the call's duration.
        let rc =
            unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) };
        if rc < 0 {
            let e = std::io::Error::last_os_error();
            self.release(token);
            return Err(e);
        }
        Ok(Registration {
            owner: self.clone(),
            slot,
            token,
            fd,
            drained: Cell::new(false),
        })
    }

    fn release(&self, token: usize) {
        if let Some(s) = self.slots.borrow_mut().get_mut(token) {
            *s = None;
        }
        self.free.borrow_mut().push(token);
    }

    /// Harvests ready sockets and wakes their readers, forever. Spawn once per core.
    ///
    /// `batch`: after a harvest that found sockets ready, wait this long before the next one
    /// (zero: harvest again at once). While the dispatcher waits, data piles up in the
    /// sockets and readiness in the set, so one executor wake-up serves many connections; a
    /// message waits at most `batch` longer. When a harvest finds nothing, the dispatcher
    /// waits on the set itself, so an idle core does not wake for the batch period.
    pub async fn dispatch(self: Rc<Self>, batch: std::time::Duration) {
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; BATCH];
        loop {
            // SAFETY: `events` has room for BATCH entries; timeout 0 never blocks.
            let n = unsafe {
                libc::epoll_wait(self.epoll.as_raw_fd(), events.as_mut_ptr(), BATCH as i32, 0)
            };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() != std::io::ErrorKind::Interrupted {
                    tracing::error!(error = %e, "epoll_wait failed; RTMP reads stall");
                    glommio::timer::sleep(std::time::Duration::from_millis(100)).await;
                }
                continue;
            }
            let n = n as usize;
            {
                let slots = self.slots.borrow();
                for ev in &events[..n] {
                    let token = ev.u64 as usize;
                    if let Some(Some(slot)) = slots.get(token) {
                        slot.ready.set(true);
                        let ends = (libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32;
                        if ev.events & ends != 0 {
                            slot.hung_up.set(true);
                        }
                        if let Some(w) = slot.waker.borrow_mut().take() {
                            w.wake();
                        }
                    }
                }
            }
            if n == BATCH {
                // More may be queued: let the woken readers run first, then harvest again.
                futures_lite::future::yield_now().await;
            } else if n > 0 && !batch.is_zero() {
                glommio::timer::sleep(batch).await;
            } else if let Err(e) = wait_readable(self.epoll.as_raw_fd()).await {
                tracing::error!(error = %e, "cannot wait on the epoll set; RTMP reads stall");
                glommio::timer::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

/// Waits until the epoll set `epfd` has events (see the module docs for the mechanism).
async fn wait_readable(epfd: RawFd) -> std::io::Result<()> {
    // SAFETY: plain syscall; the result is checked.
    let dup = unsafe { libc::fcntl(epfd, libc::F_DUPFD_CLOEXEC, 0) };
    if dup < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `dup` is a fresh descriptor owned by nothing else; the stream closes it. The
    // stream is only read from, and a read of an epoll descriptor fails without side effect.
    let mut watcher = unsafe { glommio::net::TcpStream::from_raw_fd(dup) };
    let mut probe = [0u8; 1];
    match futures_lite::AsyncReadExt::read(&mut watcher, &mut probe).await {
        // ENOTSOCK: the poll fired and glommio tried its `recv`: the set is readable.
        Err(e) if e.raw_os_error() == Some(libc::ENOTSOCK) => Ok(()),
        Err(e) => Err(e),
        Ok(_) => Ok(()),
    }
}

/// A socket's place in its core's epoll set. Removes the socket from the set when dropped.
pub struct Registration {
    owner: Rc<Readiness>,
    slot: Rc<Slot>,
    token: usize,
    fd: RawFd,
    /// The last read drained the socket: wait for an edge before reading again.
    drained: Cell<bool>,
}

impl Registration {
    fn poll_edge(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.slot.ready.replace(false) {
            return Poll::Ready(());
        }
        *self.slot.waker.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }

    /// Reads what the socket has into `arena`: empty at end of stream. Waits for readiness
    /// through the epoll set, never through a per-read poll.
    #[cfg(test)]
    pub async fn read(&self, arena: &RecvArena) -> std::io::Result<Bytes> {
        self.read_stamped(arena).await.map(|r| r.0)
    }

    /// [`Registration::read`], with the kernel's receive timestamp of the last segment read
    /// (see [`crate::latency`]).
    pub async fn read_stamped(&self, arena: &RecvArena) -> std::io::Result<(Bytes, Option<u64>)> {
        std::future::poll_fn(|cx| {
            loop {
                if self.drained.get() {
                    if self.poll_edge(cx).is_pending() {
                        return Poll::Pending;
                    }
                    self.drained.set(false);
                }
                match arena.recv_nonblocking(self.fd) {
                    Ok(got) => {
                        // A short read drained the socket (edge-triggered: see module docs),
                        // unless the peer's close came with the data's edge.
                        if got.data.len() < got.room && !self.slot.hung_up.get() {
                            self.drained.set(true);
                        }
                        return Poll::Ready(Ok((got.data, got.arrival_ns)));
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        self.drained.set(true);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
        })
        .await
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // SAFETY: the socket is still open (documented on `register`); removing it from the
        // set matters when a duplicate of it lives on (a connection handed to another core).
        unsafe {
            libc::epoll_ctl(
                self.owner.epoll.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                self.fd,
                std::ptr::null_mut(),
            )
        };
        self.owner.release(self.token);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::net::UnixStream;
    use std::time::Duration;

    /// Runs `f` on a glommio executor; a reader that is never woken fails the test instead
    /// of hanging it.
    fn run<F: std::future::Future<Output = ()> + 'static>(f: F) {
        glommio::LocalExecutorBuilder::default()
            .make()
            .unwrap()
            .run(futures_lite::future::or(f, async {
                glommio::timer::sleep(Duration::from_secs(10)).await;
                panic!("a reader was never woken");
            }));
    }

    fn pair() -> (UnixStream, UnixStream) {
        let (a, b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        b.set_nonblocking(true).unwrap();
        (a, b)
    }

    async fn read_to_end(reg: &Registration, arena: &RecvArena) -> Vec<u8> {
        let mut got = Vec::new();
        loop {
            let b = reg.read(arena).await.unwrap();
            if b.is_empty() {
                return got;
            }
            got.extend_from_slice(&b);
        }
    }

    #[test]
    fn a_reader_wakes_for_every_write_and_sees_the_end() {
        run(async {
            let readiness = Readiness::new().unwrap();
            glommio::spawn_local(readiness.clone().dispatch(Duration::ZERO)).detach();
            let (mut tx, rx) = pair();
            let reg = readiness.register(rx.as_raw_fd()).unwrap();
            let arena = RecvArena::new(4096, 1024);
            glommio::spawn_local(async move {
                for part in [&b"hello"[..], b" ", b"world"] {
                    glommio::timer::sleep(Duration::from_millis(5)).await;
                    tx.write_all(part).unwrap();
                }
                glommio::timer::sleep(Duration::from_millis(5)).await;
                drop(tx);
            })
            .detach();
            assert_eq!(read_to_end(&reg, &arena).await, b"hello world");
        });
    }

    #[test]
    fn a_batching_dispatcher_delivers_every_write_and_waits_between_harvests() {
        run(async {
            let readiness = Readiness::new().unwrap();
            let batch = Duration::from_millis(20);
            glommio::spawn_local(readiness.clone().dispatch(batch)).detach();
            let (tx, rx) = pair();
            let tx = Rc::new(RefCell::new(tx));
            let reg = readiness.register(rx.as_raw_fd()).unwrap();
            let arena = RecvArena::new(4096, 1024);
            // The reader finds nothing and waits for an edge; the write wakes the
            // dispatcher, whose harvest starts a batch period.
            let writer = tx.clone();
            glommio::spawn_local(async move {
                glommio::timer::sleep(Duration::from_millis(5)).await;
                writer.borrow_mut().write_all(b"first").unwrap();
            })
            .detach();
            assert_eq!(&reg.read(&arena).await.unwrap()[..], b"first");
            // Written right after that harvest: read only once the batch period is over.
            let t0 = std::time::Instant::now();
            tx.borrow_mut().write_all(b"second").unwrap();
            assert_eq!(&reg.read(&arena).await.unwrap()[..], b"second");
            let waited = t0.elapsed();
            assert!(waited >= batch / 2, "harvested again after {waited:?}");
            drop(tx);
            assert!(reg.read(&arena).await.unwrap().is_empty());
        });
    }

    #[test]
    fn more_ready_sockets_than_one_harvest_all_get_read() {
        run(async {
            let readiness = Readiness::new().unwrap();
            glommio::spawn_local(readiness.clone().dispatch(Duration::ZERO)).detach();
            let arena = Rc::new(RecvArena::new(64 * 1024, 1024));
            let n = BATCH * 2 + 7;
            let mut readers = Vec::new();
            let mut writers = Vec::new();
            for i in 0..n {
                let (mut tx, rx) = pair();
                let reg = readiness.register(rx.as_raw_fd()).unwrap();
                let arena = arena.clone();
                readers.push(glommio::spawn_local(async move {
                    let got = read_to_end(&reg, &arena).await;
                    drop(reg);
                    drop(rx);
                    got
                }));
                tx.write_all(format!("socket {i}").as_bytes()).unwrap();
                writers.push(tx);
            }
            // Every socket became readable before the dispatcher harvested it; now end them
            // all, so each socket's data and end share one edge (the case `hung_up` exists
            // for).
            drop(writers);
            for (i, r) in readers.into_iter().enumerate() {
                assert_eq!(r.await, format!("socket {i}").into_bytes());
            }
        });
    }

    #[test]
    fn a_dropped_registration_leaves_the_set_and_frees_its_token() {
        run(async {
            let readiness = Readiness::new().unwrap();
            let (_tx, rx) = pair();
            let first = readiness.register(rx.as_raw_fd()).unwrap();
            let token = first.token;
            drop(first);
            // Registering the same socket again works only if the drop removed it.
            let again = readiness.register(rx.as_raw_fd()).unwrap();
            assert_eq!(again.token, token);
        });
    }
}
