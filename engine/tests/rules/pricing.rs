//! Contract §11: `quote` and market pricing — windows per task type and tier, percentiles by
//! nearest rank, only bid-awarded tasks as samples, the clamp, and the other tiers untouched.

use gavel_engine::EngineConfig;
use gavel_engine::market::{PricingConfig, PricingMode};
use gavel_protocol::command::Quote;
use gavel_protocol::views::MarketStats;
use gavel_protocol::{Award, Urgency};

use crate::common::*;
use crate::helpers::{post_priced, posted};

fn market_mode(window: u32, min_samples: u32) -> Market {
    Market::with_config(EngineConfig {
        pricing: PricingConfig {
            mode: PricingMode::Market,
            window,
            min_samples,
        },
        ..EngineConfig::default()
    })
}

fn quote(m: &Market) -> gavel_protocol::views::QuoteResult {
    m.engine.quote(&Quote {
        task_type: None,
        base_price: None,
    })
}

/// Posts and hires `amounts.len()` standard tasks at those amounts (c1 bids, alice accepts).
fn hire_at(m: &mut Market, prefix: &str, amounts: &[u64]) {
    for (i, _) in amounts.iter().enumerate() {
        m.post_task(
            "alice",
            &format!("{prefix}{i}"),
            Urgency::Standard,
            Award::Manual,
        );
    }
    for (i, amount) in amounts.iter().enumerate() {
        let task = format!("{prefix}{i}");
        let b = m.bid("c1", &task, *amount, 10);
        m.accept("alice", &task, &b);
    }
}

#[test]
fn a_quote_reports_each_tier_and_samples_only_awarded_bids() {
    let mut m = market_mode(200, 20);
    m.upsert_coach(
        "c1",
        gavel_protocol::http::CoachUpsert {
            capacity: 1000,
            ..profile(4.0)
        },
    );
    m.register_on_call("oc", 4.0);
    let q = quote(&m);
    assert_eq!(q.tiers.urgent.market, None);
    assert_eq!(
        (
            q.tiers.urgent.suggested_price,
            q.tiers.standard.suggested_price,
            q.tiers.flexible.suggested_price
        ),
        (3750, 2500, 2000)
    );
    assert_eq!(q.tiers.standard.coaches_available, 2);
    hire_at(&mut m, "s", &[2600, 2500, 3000, 2800]);
    // An unbid urgent task goes on call when its window closes: not a market sample.
    m.post_task("alice", "oncall", Urgency::Urgent, Award::Manual);
    m.tick(11 * 60_000);
    assert!(m.view("oncall").assigned.is_some_and(|a| a.on_call));
    let q = quote(&m);
    assert_eq!(
        q.tiers.urgent.market, None,
        "on-call assignments are not samples"
    );
    // Sorted 2500, 2600, 2800, 3000: ranks ⌈1⌉, ⌈2⌉, ⌈3⌉.
    assert_eq!(
        q.tiers.standard.market,
        Some(MarketStats {
            samples: 4,
            p25: 2500,
            median: 2600,
            p75: 2800
        })
    );
    // Four samples are below min_samples: the price stays fixed, the market is shown anyway.
    assert_eq!(q.tiers.standard.suggested_price, 2500);
    m.post_task("alice", "open1", Urgency::Standard, Award::Manual);
    assert_eq!(quote(&m).tiers.standard.open_tasks, 1);
    assert_eq!(quote(&m).tiers.flexible.open_tasks, 0);
    m.check_replay_and_snapshot();
}

#[test]
fn market_prices_follow_the_window_and_are_clamped() {
    let mut m = market_mode(3, 2);
    m.upsert_coach(
        "c1",
        gavel_protocol::http::CoachUpsert {
            capacity: 1000,
            ..profile(4.0)
        },
    );
    hire_at(&mut m, "a", &[2600, 2700]);
    assert_eq!(quote(&m).tiers.standard.suggested_price, 2600);
    let p = posted(m.ok(
        &seeker("alice"),
        post("next", Urgency::Standard, Award::Manual),
    ));
    assert_eq!((p.suggested_price, p.price_range), (2600, [2600, 5200]));
    // An explicit base_price keeps §5's price; another tier keeps the fixed one.
    let fixed = posted(m.ok(
        &seeker("alice"),
        post_priced("own", Urgency::Standard, 2500),
    ));
    assert_eq!(fixed.suggested_price, 2500);
    let urgent = posted(m.ok(&seeker("alice"), post("u", Urgency::Urgent, Award::Manual)));
    assert_eq!(urgent.suggested_price, 3750);
    // The window keeps the last three: 2600 leaves; then a median far above is clamped to 2×.
    hire_at(&mut m, "b", &[5200, 5200, 5200]);
    let q = quote(&m);
    assert_eq!(
        q.tiers.standard.market.map(|s| (s.samples, s.median)),
        Some((3, 5200))
    );
    assert_eq!(
        q.tiers.standard.suggested_price, 5000,
        "clamped to 2 × 2500"
    );
    m.check_replay_and_snapshot();
}
