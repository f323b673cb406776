//! Numbers the engine hands out: server-chosen task and bid ids are `t_<n>` and `b_<n>` from
//! counters kept in the state, so they are deterministic across replays.

use gavel_protocol::{BidId, TaskId};

/// The number of a bid, in placement order (also the ranking tie-breaker "earlier bid").
pub type BidNo = u64;

/// The id of the `n`th server-chosen task.
pub fn task_id(n: u64) -> TaskId {
    TaskId::new(&format!("t_{n}")).expect("t_<digits> is a valid id")
}

/// The id of the `n`th bid.
pub fn bid_id(n: BidNo) -> BidId {
    BidId::new(&format!("b_{n}")).expect("b_<digits> is a valid id")
}
