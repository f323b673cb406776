//! Urgency tiers (contract §5): each urgency has a price multiplier, a delivery window and a
//! bidding window. The defaults are the contract's; operators may override them in the
//! `[tiers]` table of the server's TOML config.

use gavel_protocol::{Cents, Urgency};
use serde::{Deserialize, Serialize};

/// Default `base_price`, in cents, when a task is posted without one.
pub const DEFAULT_BASE_PRICE: Cents = 2500;

/// One urgency tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    /// Price multiplier in percent (150 = ×1.5). Integer so prices never touch floats.
    pub multiplier_percent: u32,
    /// Hours the coach has to deliver (also the largest `eta_hours` a bid may promise).
    pub delivery_hours: u32,
    /// Minutes the task takes bids before the window closes.
    pub bidding_minutes: u32,
}

impl Tier {
    /// `round(base_price × multiplier)`, rounding halves up.
    pub fn suggested_price(&self, base_price: Cents) -> Cents {
        (base_price * Cents::from(self.multiplier_percent) + 50) / 100
    }

    /// `[suggested, 2 × suggested]`: the amounts a bid may ask.
    pub fn price_range(&self, base_price: Cents) -> [Cents; 2] {
        let s = self.suggested_price(base_price);
        [s, 2 * s]
    }

    /// The delivery window in milliseconds.
    pub fn delivery_ms(&self) -> u64 {
        u64::from(self.delivery_hours) * 3_600_000
    }

    /// The bidding window in milliseconds.
    pub fn bidding_ms(&self) -> u64 {
        u64::from(self.bidding_minutes) * 60_000
    }
}

/// The tier of every urgency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TierTable {
    pub urgent: Tier,
    pub standard: Tier,
    pub flexible: Tier,
}

impl Default for TierTable {
    fn default() -> Self {
        TierTable {
            urgent: Tier {
                multiplier_percent: 150,
                delivery_hours: 2,
                bidding_minutes: 10,
            },
            standard: Tier {
                multiplier_percent: 100,
                delivery_hours: 24,
                bidding_minutes: 30,
            },
            flexible: Tier {
                multiplier_percent: 80,
                delivery_hours: 72,
                bidding_minutes: 30,
            },
        }
    }
}

impl TierTable {
    /// The tier for `urgency`.
    pub fn get(&self, urgency: Urgency) -> &Tier {
        match urgency {
            Urgency::Urgent => &self.urgent,
            Urgency::Standard => &self.standard,
            Urgency::Flexible => &self.flexible,
        }
    }

    /// Checks that every tier is usable: a positive multiplier and windows.
    pub fn validate(&self) -> Result<(), String> {
        for &u in Urgency::ALL {
            let t = self.get(u);
            if t.multiplier_percent == 0 || t.delivery_hours == 0 || t.bidding_minutes == 0 {
                return Err(format!(
                    "tier `{u}`: multiplier_percent, delivery_hours and bidding_minutes must all be at least 1"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_tiers_are_the_contracts() {
        let t = TierTable::default();
        assert_eq!(
            t.get(Urgency::Urgent).suggested_price(DEFAULT_BASE_PRICE),
            3750
        );
        assert_eq!(
            t.get(Urgency::Standard).suggested_price(DEFAULT_BASE_PRICE),
            2500
        );
        assert_eq!(
            t.get(Urgency::Flexible).suggested_price(DEFAULT_BASE_PRICE),
            2000
        );
        assert_eq!(
            t.get(Urgency::Urgent).price_range(DEFAULT_BASE_PRICE),
            [3750, 7500]
        );
        assert_eq!(t.get(Urgency::Urgent).delivery_ms(), 2 * 3_600_000);
        assert_eq!(t.get(Urgency::Standard).bidding_ms(), 30 * 60_000);
        assert_eq!(t.get(Urgency::Flexible).delivery_hours, 72);
    }

    #[test]
    fn suggested_price_rounds_half_up() {
        let t = Tier {
            multiplier_percent: 150,
            delivery_hours: 2,
            bidding_minutes: 10,
        };
        assert_eq!(t.suggested_price(1), 2); // 1.5 → 2
        assert_eq!(t.suggested_price(3), 5); // 4.5 → 5
        let t = Tier {
            multiplier_percent: 80,
            ..t
        };
        assert_eq!(t.suggested_price(3), 2); // 2.4 → 2
    }

    #[test]
    fn tiers_load_from_toml_with_defaults_for_the_rest() {
        let t: TierTable = toml::from_str(
            "[urgent]\nmultiplier_percent = 200\ndelivery_hours = 1\nbidding_minutes = 5\n",
        )
        .unwrap();
        assert_eq!(t.urgent.multiplier_percent, 200);
        assert_eq!(t.standard, TierTable::default().standard);
        assert!(t.validate().is_ok());
        let bad = TierTable {
            urgent: Tier {
                delivery_hours: 0,
                ..t.urgent
            },
            ..t
        };
        assert!(bad.validate().is_err());
    }
}
