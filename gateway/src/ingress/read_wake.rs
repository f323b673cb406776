//! A connection's reads polled only when the socket's read side was woken ([`ReadWake`]).
//!
//! A connection's task wakes once per delivered frame, and its `select!` then polls every
//! branch — the socket's read too, though nothing arrived: tungstenite's `poll_next` sets its
//! wakers, tries to flush, reads, and maps the `WouldBlock` back, ~950 instructions of a
//! delivery's ~4,500 (docs/benchmarks.md, "Fan-out: instructions per delivery"). The socket is
//! polled with a waker of its own instead, which marks that it fired before it wakes the task;
//! the read branch polls the socket only when that mark is set.

use std::future::poll_fn;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use axum::extract::ws::{Message, WebSocket};
use futures_util::StreamExt;
use futures_util::task::AtomicWaker;

/// The mark the socket's own waker sets, and the task to wake.
#[derive(Debug)]
struct Mark {
    woken: AtomicBool,
    task: AtomicWaker,
}

impl Wake for Mark {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

/// The socket's own waker's mark, one per connection (the waker is made from it at each read
/// poll: holding it too would be 16 more bytes in every connection's task).
#[derive(Debug)]
pub struct ReadWake {
    mark: Arc<Mark>,
}

impl Default for ReadWake {
    fn default() -> Self {
        Self::new()
    }
}

impl ReadWake {
    /// Marked at first, so the first poll reads (and registers the socket's waker).
    pub fn new() -> Self {
        let mark = Arc::new(Mark {
            woken: AtomicBool::new(true),
            task: AtomicWaker::new(),
        });
        ReadWake { mark }
    }

    /// The socket's next message, polled only when its waker fired since the last poll that
    /// found nothing. After a message the socket is polled again at once (tungstenite may
    /// hold more already read: no wake-up would come for them).
    pub fn next<'a>(
        &'a self,
        socket: &'a mut WebSocket,
    ) -> impl Future<Output = Option<Result<Message, axum::Error>>> + 'a {
        poll_fn(move |cx| {
            self.mark.task.register(cx.waker());
            if !self.mark.woken.swap(false, Ordering::AcqRel) {
                return Poll::Pending;
            }
            let waker = Waker::from(self.mark.clone());
            let mut socket_cx = Context::from_waker(&waker);
            match socket.poll_next_unpin(&mut socket_cx) {
                Poll::Ready(message) => {
                    self.mark.woken.store(true, Ordering::Release);
                    Poll::Ready(message)
                }
                Poll::Pending => Poll::Pending,
            }
        })
    }
}
