//! Market pricing (contract §11): the accepted amounts of the last `window` tasks of each task
//! type and tier, kept incrementally so a quote or a market-priced `post_task` reads three
//! percentiles by index instead of scanning anything.
//!
//! A sample is taken when a task is assigned by `accept_bid` or by auto-award (a
//! `TaskAssigned` with a bid, not on call), in `evolve` — so replaying the journal from any
//! snapshot gives the same windows.

use std::collections::{BTreeMap, VecDeque};

use gavel_protocol::views::{MarketStats, QuoteResult, QuoteTiers, TierQuote};
use gavel_protocol::{Cents, Urgency};
use serde::{Deserialize, Serialize};

use crate::tiers::Tier;

/// Default `[pricing] window`: samples kept per task type and tier.
pub const DEFAULT_WINDOW: u32 = 200;
/// Default `[pricing] min_samples`: samples a tier needs before `mode = "market"` prices it.
pub const DEFAULT_MIN_SAMPLES: u32 = 20;

/// How `post_task` prices a task sent without `base_price`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PricingMode {
    /// Contract §5: `round(2500 × multiplier)`.
    #[default]
    Fixed,
    /// The tier's market median once it has `min_samples`, clamped to half and twice the
    /// fixed price.
    Market,
}

/// The `[pricing]` section of the server's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PricingConfig {
    pub mode: PricingMode,
    /// Samples kept per task type and tier (at least 1).
    pub window: u32,
    /// Samples a tier needs before `mode = "market"` uses its median.
    pub min_samples: u32,
}

impl Default for PricingConfig {
    fn default() -> Self {
        PricingConfig {
            mode: PricingMode::Fixed,
            window: DEFAULT_WINDOW,
            min_samples: DEFAULT_MIN_SAMPLES,
        }
    }
}

impl PricingConfig {
    /// Checks that the window can hold a sample.
    pub fn validate(&self) -> Result<(), String> {
        if self.window == 0 || self.window > 100_000 {
            return Err("[pricing] window must be within 1..100000".into());
        }
        Ok(())
    }

    /// The suggested price of a task of `tier` posted now with `base_price` (or without one:
    /// `None`), given its tier's market.
    pub fn suggested_price(
        &self,
        tier: &Tier,
        base_price: Option<Cents>,
        market: Option<MarketStats>,
    ) -> Cents {
        let fixed = tier.suggested_price(base_price.unwrap_or(crate::tiers::DEFAULT_BASE_PRICE));
        match (self.mode, base_price, market) {
            (PricingMode::Market, None, Some(m)) if m.samples >= self.min_samples => {
                m.median.clamp(fixed / 2, fixed * 2)
            }
            _ => fixed,
        }
    }
}

/// The accepted amounts of one task type and tier.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// In the order they were taken (the oldest leaves first).
    arrivals: VecDeque<Cents>,
    /// The same amounts, ascending (percentiles by index).
    sorted: Vec<Cents>,
}

impl Window {
    fn push(&mut self, amount: Cents, capacity: usize) {
        self.trim(capacity.max(1) - 1);
        self.arrivals.push_back(amount);
        let at = self.sorted.partition_point(|&a| a <= amount);
        self.sorted.insert(at, amount);
    }

    /// Takes back the latest sample of `amount`, if the window still holds one.
    fn take_back(&mut self, amount: Cents) {
        if let Some(at) = self.arrivals.iter().rposition(|&a| a == amount) {
            self.arrivals.remove(at);
            let at = self.sorted.partition_point(|&a| a < amount);
            self.sorted.remove(at);
        }
    }

    /// Drops the oldest samples until at most `keep` remain.
    fn trim(&mut self, keep: usize) {
        while self.arrivals.len() > keep {
            let Some(old) = self.arrivals.pop_front() else {
                break;
            };
            let at = self.sorted.partition_point(|&a| a < old);
            self.sorted.remove(at);
        }
    }

    /// `samples`, p25, median and p75 by nearest rank (the value at 1-based ⌈q × n⌉).
    pub fn stats(&self) -> Option<MarketStats> {
        let n = self.sorted.len();
        if n == 0 {
            return None;
        }
        // ⌈q × n⌉ with q = num / 4, in integers; at least rank 1.
        let rank = |num: usize| (num * n).div_ceil(4).max(1);
        let at = |num: usize| self.sorted[rank(num) - 1];
        Some(MarketStats {
            samples: n as u32,
            p25: at(1),
            median: at(2),
            p75: at(3),
        })
    }
}

/// Every window, by task type and tier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Market {
    /// Samples kept per window (from `[pricing] window`; set when the engine is built).
    pub window: u32,
    /// By task type, then tier (urgent, standard, flexible).
    windows: BTreeMap<String, [Window; 3]>,
}

fn tier_index(urgency: Urgency) -> usize {
    match urgency {
        Urgency::Urgent => 0,
        Urgency::Standard => 1,
        Urgency::Flexible => 2,
    }
}

impl Default for Market {
    fn default() -> Self {
        Market {
            window: DEFAULT_WINDOW,
            windows: BTreeMap::new(),
        }
    }
}

impl Market {
    /// Takes an accepted amount.
    pub fn record(&mut self, task_type: &str, urgency: Urgency, amount: Cents) {
        let capacity = self.window as usize;
        if !self.windows.contains_key(task_type) {
            self.windows
                .insert(task_type.to_owned(), Default::default());
        }
        let tiers = self.windows.get_mut(task_type).expect("inserted above");
        tiers[tier_index(urgency)].push(amount, capacity);
    }

    /// Takes back a sample whose award was undone (the payment failed).
    pub fn unrecord(&mut self, task_type: &str, urgency: Urgency, amount: Cents) {
        if let Some(tiers) = self.windows.get_mut(task_type) {
            tiers[tier_index(urgency)].take_back(amount);
        }
    }

    /// Sets the window size (from the configuration), dropping the oldest samples of any
    /// window now over it.
    pub fn set_window(&mut self, window: u32) {
        self.window = window;
        for tiers in self.windows.values_mut() {
            for w in tiers.iter_mut() {
                w.trim(window.max(1) as usize);
            }
        }
    }

    /// The statistics of one task type and tier (`None`: no sample yet).
    pub fn stats(&self, task_type: &str, urgency: Urgency) -> Option<MarketStats> {
        self.windows
            .get(task_type)
            .and_then(|tiers| tiers[tier_index(urgency)].stats())
    }
}

impl crate::engine::Engine {
    /// The suggested price a `post_task` of this type and tier sent now would get.
    pub fn suggested_price(
        &self,
        task_type: &str,
        urgency: Urgency,
        base_price: Option<Cents>,
    ) -> Cents {
        let tier = self.config.tiers.get(urgency);
        let market = match (self.config.pricing.mode, base_price) {
            (PricingMode::Market, None) => self.state.market.stats(task_type, urgency),
            _ => None,
        };
        self.config
            .pricing
            .suggested_price(tier, base_price, market)
    }

    /// `quote` (contract §11): each tier's price now, its market and its supply.
    pub fn quote(&self, c: &gavel_protocol::command::Quote) -> QuoteResult {
        let task_type = c
            .task_type
            .as_deref()
            .unwrap_or(crate::decide::DEFAULT_TASK_TYPE);
        let coaches_available = self.state.on_call.available() as u64;
        let tier = |urgency| {
            let suggested_price = self.suggested_price(task_type, urgency, c.base_price);
            TierQuote {
                suggested_price,
                price_range: [suggested_price, 2 * suggested_price],
                market: self.state.market.stats(task_type, urgency),
                open_tasks: self.state.open_of_type(task_type, urgency),
                coaches_available,
            }
        };
        QuoteResult {
            task_type: task_type.to_owned(),
            tiers: QuoteTiers {
                urgent: tier(Urgency::Urgent),
                standard: tier(Urgency::Standard),
                flexible: tier(Urgency::Flexible),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_by_nearest_rank() {
        let mut w = Window::default();
        for a in [5, 1, 4, 2, 3] {
            w.push(a, 10);
        }
        // n = 5: ranks ⌈1.25⌉ = 2, ⌈2.5⌉ = 3, ⌈3.75⌉ = 4.
        let s = w.stats().unwrap();
        assert_eq!((s.samples, s.p25, s.median, s.p75), (5, 2, 3, 4));
        let mut one = Window::default();
        one.push(7, 10);
        let s = one.stats().unwrap();
        assert_eq!((s.p25, s.median, s.p75), (7, 7, 7));
    }

    #[test]
    fn the_oldest_sample_leaves_a_full_window() {
        let mut w = Window::default();
        for a in [100, 1, 2, 3] {
            w.push(a, 3);
        }
        assert_eq!(w.sorted, vec![1, 2, 3]);
        assert_eq!(w.stats().unwrap().samples, 3);
        w.push(100, 3);
        assert_eq!(w.sorted, vec![2, 3, 100]);
    }

    #[test]
    fn a_sample_taken_back_and_a_smaller_window_keep_the_rest_in_order() {
        let mut m = Market::default();
        for a in [10, 20, 30, 20] {
            m.record("x", Urgency::Urgent, a);
        }
        m.unrecord("x", Urgency::Urgent, 20);
        m.unrecord("x", Urgency::Urgent, 99);
        let w = &m.windows["x"][0];
        assert_eq!(
            (
                w.arrivals.iter().copied().collect::<Vec<_>>(),
                w.sorted.clone()
            ),
            (vec![10, 20, 30], vec![10, 20, 30])
        );
        m.set_window(2);
        let w = &m.windows["x"][0];
        assert_eq!(w.sorted, vec![20, 30]);
        m.set_window(1);
        m.record("x", Urgency::Urgent, 5);
        assert_eq!(m.windows["x"][0].sorted, vec![5]);
        assert_eq!(m.stats("x", Urgency::Standard), None);
    }

    #[test]
    fn market_pricing_clamps_the_median_and_needs_min_samples() {
        let tier = Tier {
            multiplier_percent: 100,
            delivery_hours: 24,
            bidding_minutes: 30,
        };
        let market = PricingConfig {
            mode: PricingMode::Market,
            window: 200,
            min_samples: 2,
        };
        let stats = |samples, median| MarketStats {
            samples,
            p25: median,
            median,
            p75: median,
        };
        assert_eq!(market.suggested_price(&tier, None, None), 2500);
        assert_eq!(
            market.suggested_price(&tier, None, Some(stats(1, 3000))),
            2500
        );
        assert_eq!(
            market.suggested_price(&tier, None, Some(stats(2, 3000))),
            3000
        );
        assert_eq!(
            market.suggested_price(&tier, None, Some(stats(2, 9000))),
            5000
        );
        assert_eq!(
            market.suggested_price(&tier, None, Some(stats(2, 100))),
            1250
        );
        assert_eq!(
            market.suggested_price(&tier, Some(4000), Some(stats(2, 3000))),
            4000
        );
        let fixed = PricingConfig::default();
        assert_eq!(
            fixed.suggested_price(&tier, None, Some(stats(50, 3000))),
            2500
        );
    }
}
