//! The ranking formula of contract §5, in integer basis points, and the key that orders a
//! task's pending bids best first (sorted when asked: `Task::ranked_bids`).

use gavel_protocol::Cents;
use serde::{Deserialize, Serialize};

use crate::ids::BidNo;

/// Ranking weight of an unrated coach's rating, in hundredths.
pub const UNRATED_CENTI: u16 = 250;

/// `score = (5 × price_bp + 3 × rating_bp + 2 × eta_bp) / 10`, each part in basis points with
/// integer division, exactly as the contract writes it.
///
/// - `price_bp = (max - amount) × 10000 / (max - min)` (cheaper is better);
/// - `rating_bp = rating_centi × 10000 / 500` (an unrated coach, `0`, counts as 250);
/// - `eta_bp = (window_h - eta_hours) × 10000 / window_h` (sooner is better).
///
/// The caller guarantees `min ≤ amount ≤ max` and `1 ≤ eta_hours ≤ window_h`.
pub fn score(
    amount: Cents,
    range: [Cents; 2],
    rating_centi: u16,
    eta_hours: u32,
    window_h: u32,
) -> u32 {
    let [min, max] = range;
    debug_assert!(min <= amount && amount <= max, "amount outside the range");
    debug_assert!(eta_hours <= window_h, "eta outside the window");
    // A degenerate range (min == max, only possible with a zero price) gives every bid the
    // full price score rather than dividing by zero.
    let price_bp = if max > min {
        (max - amount) * 10_000 / (max - min)
    } else {
        10_000
    };
    let rating = if rating_centi == 0 {
        UNRATED_CENTI
    } else {
        rating_centi.min(500)
    };
    let rating_bp = u64::from(rating) * 10_000 / 500;
    let eta_bp = u64::from(window_h - eta_hours) * 10_000 / u64::from(window_h);
    ((5 * price_bp + 3 * rating_bp + 2 * eta_bp) / 10) as u32
}

/// Orders pending bids best first: higher score, then lower amount, then the earlier bid
/// (bid numbers increase with time). Kept in a `BTreeSet` per task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RankKey {
    /// `u32::MAX - score`, so that ascending order puts the highest score first.
    inverted_score: u32,
    amount: Cents,
    bid_no: BidNo,
}

impl RankKey {
    pub fn new(score: u32, amount: Cents, bid_no: BidNo) -> Self {
        RankKey {
            inverted_score: u32::MAX - score,
            amount,
            bid_no,
        }
    }

    /// The bid this key ranks.
    pub fn bid_no(&self) -> BidNo {
        self.bid_no
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const URGENT: [Cents; 2] = [3750, 7500];

    #[test]
    fn score_is_the_contracts_formula_in_basis_points() {
        // amount at the cheap end, perfect rating, 1 h of a 2 h window.
        // price 10000, rating 10000, eta 5000 → (50000 + 30000 + 10000) / 10 = 9000.
        assert_eq!(score(3750, URGENT, 500, 1, 2), 9000);
        // most expensive, unrated (250 → 5000 bp), full window: (0 + 15000 + 0) / 10 = 1500.
        assert_eq!(score(7500, URGENT, 0, 2, 2), 1500);
        // integer division at every step: price (7500-5000)*10000/3750 = 6666.
        // rating 480 → 9600; eta (24-5)*10000/24 = 7916 → (33330+28800+15832)/10 = 7796.
        assert_eq!(score(5000, URGENT, 480, 5, 24), 7796);
    }

    #[test]
    fn rank_keys_order_best_first_then_cheaper_then_earlier() {
        let mut keys = [
            RankKey::new(5000, 4000, 3),
            RankKey::new(9000, 5000, 2),
            RankKey::new(5000, 3900, 4),
            RankKey::new(5000, 4000, 1),
        ];
        keys.sort();
        let order: Vec<BidNo> = keys.iter().map(|k| k.bid_no()).collect();
        assert_eq!(order, [2, 4, 1, 3]);
    }
}
