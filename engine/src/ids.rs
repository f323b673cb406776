//! Numbers the engine hands out: server-chosen task and bid ids are `t_<n>` and `b_<n>` from
//! counters kept in the state, so they are deterministic across replays.

use gavel_protocol::{BidId, TaskId};

/// The number of a bid, in placement order (also the ranking tie-breaker "earlier bid").
pub type BidNo = u64;

/// The id of the `n`th server-chosen task.
pub fn task_id(n: u64) -> TaskId {
    TaskId::numbered(n)
}

/// The id of the `n`th bid.
pub fn bid_id(n: BidNo) -> BidId {
    BidId::numbered(n)
}

/// The number of an engine bid id, if it is one: exactly what [`bid_id`] writes (`b_`, then
/// the number in decimal without a sign or leading zeros). Another spelling of a number
/// (`b_07`) names no bid — lookups by number must not find `b_7` under it.
pub fn bid_no(id: &BidId) -> Option<BidNo> {
    number_in(id.as_str(), "b_")
}

/// The number of a task id in the shape [`task_id`] writes (`t_<n>`), if it has that shape.
/// Clients may choose such ids too (contract §5, `post_task`'s `task_id`).
pub fn task_no(id: &TaskId) -> Option<u64> {
    number_in(id.as_str(), "t_")
}

/// `n` when `id` is `prefix` then `n` in decimal as `TaskId::numbered` writes it (no sign, no
/// leading zeros: `str::parse` takes both).
fn number_in(id: &str, prefix: &str) -> Option<u64> {
    let digits = id.strip_prefix(prefix)?.as_bytes();
    if digits.is_empty() || (digits[0] == b'0' && digits.len() > 1) {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        let digit = d.checked_sub(b'0').filter(|d| *d <= 9)?;
        n.checked_mul(10)?.checked_add(u64::from(digit))
    })
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

    #[test]
    fn a_bid_number_is_read_only_from_the_spelling_bid_id_writes() {
        for n in [0, 7, 10, 99, 1_000_000, u64::MAX] {
            assert_eq!(bid_no(&bid_id(n)), Some(n));
        }
        for other in [
            "b_", "b_07", "b_00", "b_-7", "b_7a", "b_7.0", "x_7", "B_7", "b7",
        ] {
            assert_eq!(bid_no(&BidId::new(other).unwrap()), None, "{other}");
        }
        let too_big = BidId::new("b_18446744073709551616").unwrap(); // u64::MAX + 1
        assert_eq!(bid_no(&too_big), None);
        assert_eq!(task_no(&task_id(42)), Some(42));
        assert_eq!(task_no(&TaskId::new("t_042").unwrap()), None);
        assert_eq!(task_no(&TaskId::new("b_42").unwrap()), None);
    }
}
