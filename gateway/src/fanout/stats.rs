//! The admin topic's `stats` event, once a second: the ticker asks the engine for the
//! open-task counts and hands them to the publisher, which adds what it knows.

use std::time::Duration;

use gavel_protocol::views::UrgencyCounts;
use tokio::sync::mpsc;

use crate::sequencer::engine_task::EngineHandle;

/// Feeds the publisher the open-task counts once a second, for `stats`, until `stop` fires.
pub async fn stats_ticker(
    engine: EngineHandle,
    tx: mpsc::Sender<UrgencyCounts>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let Some(counts) = engine.query(|e| e.state().open_by_urgency).await else {
            if tx.is_closed() {
                return;
            }
            continue;
        };
        if tx.send(counts).await.is_err() {
            return;
        }
    }
}
