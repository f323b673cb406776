//! Crash-only on bugs. A panic in a pipeline task (the engine, the publisher, the journal
//! writer, the snapshot replica) leaves the pipeline broken in a way no retry repairs: every
//! command would be answered "busy" for ever. So the process ends, with a clear log line and
//! exit code [`EXIT_PIPELINE_PANIC`]; a restart rebuilds the state from what is durable, and
//! nothing acknowledged is lost (acknowledged means durable).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::task::JoinHandle;

/// The exit code after a pipeline task panicked (EX_SOFTWARE: an internal error).
pub const EXIT_PIPELINE_PANIC: i32 = 70;

/// Set once a pipeline task has died: `/readyz` fails from that moment.
#[derive(Debug, Default)]
pub struct Fatal(AtomicBool);

impl Fatal {
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    /// Logs, fails readiness, and ends the process.
    pub fn die(&self, task: &str, detail: &str) -> ! {
        self.0.store(true, Ordering::Release);
        tracing::error!(
            task,
            detail,
            exit_code = EXIT_PIPELINE_PANIC,
            "a pipeline task panicked: exiting (restart to recover from the journal)"
        );
        std::process::exit(EXIT_PIPELINE_PANIC)
    }
}

/// Watches `task`: when it panics the process ends; the returned handle completes when it
/// ends normally.
pub fn supervise(name: &'static str, task: JoinHandle<()>, fatal: Arc<Fatal>) -> JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(error) = task.await
            && error.is_panic()
        {
            let detail = panic_message(error.into_panic());
            fatal.die(name, &detail);
        }
    })
}

/// Ends the process if dropped while its thread unwinds from a panic (for pipeline stages on
/// threads of their own, such as the snapshot replica).
#[derive(Debug)]
pub struct DieOnPanic {
    pub name: &'static str,
    pub fatal: Arc<Fatal>,
}

impl Drop for DieOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.fatal
                .die(self.name, "the thread panicked (message above)");
        }
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(text) => *text,
        Err(payload) => match payload.downcast::<&'static str>() {
            Ok(text) => (*text).to_owned(),
            Err(_) => "a panic without a message".into(),
        },
    }
}
