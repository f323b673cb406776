//! Numbers the engine hands out: server-chosen task and bid ids are `t_<n>` and `b_<n>` from
//! counters kept in the state, so they are deterministic across replays.

use gavel_protocol::{BidId, TaskId};

/// The number of a bid, in placement order (also the ranking tie-breaker "earlier bid").
pub type BidNo = u64;

/// The id of the `n`th server-chosen task.
pub fn task_id(n: u64) -> TaskId {
    numbered(b't', n, |id| {
        TaskId::new(id).expect("t_<digits> is a valid id")
    })
}

/// The id of the `n`th bid.
pub fn bid_id(n: BidNo) -> BidId {
    numbered(b'b', n, |id| {
        BidId::new(id).expect("b_<digits> is a valid id")
    })
}

/// The number of an engine bid id (`b_<n>`), if it is one.
pub fn bid_no(id: &BidId) -> Option<BidNo> {
    id.as_str().strip_prefix("b_")?.parse().ok()
}

/// Hands `<letter>_<n>` (decimal) to `make`, written on the stack: `format!` cost ~1,100
/// instructions per bid (the formatting machinery and a temporary `String`), a fifth of a
/// whole `place_bid` (docs/benchmarks.md, "Engine").
fn numbered<R>(letter: u8, mut n: u64, make: impl FnOnce(&str) -> R) -> R {
    // Two bytes of prefix and the 20 digits of u64::MAX.
    let mut buf = [0u8; 22];
    let mut start = buf.len();
    loop {
        start -= 1;
        buf[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    start -= 2;
    buf[start] = letter;
    buf[start + 1] = b'_';
    make(std::str::from_utf8(&buf[start..]).expect("ASCII digits and a prefix"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_the_letter_an_underscore_and_the_number() {
        for n in [0, 7, 10, 99, 1_000_000, 1_234_567_890, u64::MAX] {
            assert_eq!(bid_id(n).as_str(), format!("b_{n}"));
            assert_eq!(task_id(n).as_str(), format!("t_{n}"));
        }
    }
}
