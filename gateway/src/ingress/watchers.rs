//! The watchers' thread: the sessions of seekers and admins run on a runtime of their own.
//!
//! Coaches watch `feed`, where one event goes to every coach; seekers and admins watch
//! `task:`, `seeker:` and `admin`, a few events each. On the main runtime a seeker's session,
//! woken for its `bid.placed`, waits in the workers' run queue behind every coach session
//! woken for the `feed` events before it (hundreds of socket writes), so the bid reached its
//! seeker only after the feed's sweep (issue 12: bid → seeker p99 14.6 ms with 300 coaches on
//! feed at 1,000 commands/s). Here it is woken on a thread that has little else to do, and the
//! OS schedules that thread beside the main workers.
//!
//! Nothing else changes: the socket stays registered with the main runtime's I/O driver, the
//! publisher hands frames to the session's queue as before, and the session's bounds and
//! slow-consumer policy are the same. The thread ends when the [`Watchers`] value is dropped
//! (with the server's shared state, after every session has closed).

use std::future::Future;

use gavel_protocol::Role;
use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// The watchers' runtime (one thread).
#[derive(Debug)]
pub struct Watchers {
    handle: Handle,
    /// Dropping it ends the thread's runtime.
    _stop: oneshot::Sender<()>,
}

impl Watchers {
    /// Starts the thread and its runtime.
    pub fn start() -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("gavel-watchers".into())
            .spawn(move || {
                // Runs the spawned sessions until the owner is dropped; the runtime is then
                // dropped here, on its own thread (never inside an async context).
                let _ = runtime.block_on(stopped);
            })?;
        Ok(Watchers {
            handle,
            _stop: stop,
        })
    }

    /// Whether a session of `role` runs here.
    pub fn serves(role: Role) -> bool {
        matches!(role, Role::Seeker | Role::Admin)
    }

    /// Runs `session` on the watchers' thread.
    pub fn spawn(&self, session: impl Future<Output = ()> + Send + 'static) {
        drop(self.handle.spawn(session));
    }
}
