//! The admin topic's `stats` event, once a second: the ticker asks the engine for the
//! open-task counts and hands them to the publisher, which adds what it knows.

use std::time::Duration;

use gavel_protocol::Millis;
use gavel_protocol::views::UrgencyCounts;
use tokio::sync::mpsc;

use crate::sequencer::clock::EngineClock;
use crate::sequencer::handle::EngineHandle;

/// What the ticker hands the publisher each second.
#[derive(Debug, Clone, Copy)]
pub struct StatsTick {
    pub open_tasks: UrgencyCounts,
    /// Engine time now: `stats` carries engine time like every event (with `--time-scale`
    /// it runs ahead of the wall clock).
    pub now: Millis,
}

/// Feeds the publisher the open-task counts once a second, for `stats`, until `stop` fires.
pub async fn stats_ticker(
    engine: EngineHandle,
    clock: EngineClock,
    tx: mpsc::Sender<StatsTick>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let Some(open_tasks) = engine.query(|e| e.state().open_by_urgency).await else {
            if tx.is_closed() {
                return;
            }
            continue;
        };
        let tick = StatsTick {
            open_tasks,
            now: clock.now(),
        };
        if tx.send(tick).await.is_err() {
            return;
        }
    }
}
