//! `cats demo --movements N`: N movements with varied routes, holders and goods, driven
//! concurrently; some selected for control, some deliberately refused. Reports throughput,
//! submit-to-release latency percentiles and total time.
//!
//! The plans are drawn from a seeded generator, so one seed always gives the same movements.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::journey::{self, Ending, Nodes, Outcome, Plan};
use super::messages::{Consignment, Goods, Route, country};

/// Goods the generator draws from: (description, HS sub-heading, gross mass in kg).
const GOODS: &[(&str, &str, &str)] = &[
    ("Seamless steel pipes", "730419", "1250.5"),
    ("Cotton fabric", "520811", "830"),
    ("Wheat", "100199", "24000"),
    ("Mineral water", "220110", "18000"),
    ("Sunflower oil", "151211", "20000"),
    ("Laptops", "847130", "640.8"),
    ("Tea", "090240", "3500"),
    ("Carpets", "570110", "910.2"),
];

/// Goods that the demo's selection profiles send to control (see `world::selection`): at
/// departure (KZ), at the office of transit (AZ), at destination (GE).
pub const CONTROLLED_AT_DEPARTURE: (&str, &str, &str) = ("Sporting rifles", "930320", "150");
/// See [`CONTROLLED_AT_DEPARTURE`].
pub const CONTROLLED_IN_TRANSIT: (&str, &str, &str) = ("Passenger cars", "870323", "3000");
/// See [`CONTROLLED_AT_DEPARTURE`].
pub const CONTROLLED_AT_DESTINATION: (&str, &str, &str) = ("Cognac", "220820", "2100");

fn goods(item: (&str, &str, &str), packages: u32) -> Goods {
    let (description, hs_code, gross_mass) = item;
    let net = gross_mass
        .split('.')
        .next()
        .and_then(|w| w.parse::<u64>().ok())
        .map(|w| (w * 95 / 100).max(1))
        .unwrap_or(1);
    Goods {
        description: description.into(),
        hs_code: hs_code.into(),
        gross_mass: gross_mass.into(),
        net_mass: net.to_string(),
        packages,
    }
}

/// The plan of movement `i` of a run with this generator.
pub fn plan(i: usize, run: &str, rng: &mut StdRng) -> Plan {
    let routes = Route::all();
    let route = routes[rng.random_range(0..routes.len())].clone();
    let dep_country = country(route.departure);
    let lrn = format!("{run}{i:06}");
    let mut items = vec![goods(
        GOODS[rng.random_range(0..GOODS.len())],
        rng.random_range(1..40),
    )];
    if rng.random_bool(0.3) {
        items.push(goods(
            GOODS[rng.random_range(0..GOODS.len())],
            rng.random_range(1..40),
        ));
    }
    let amount = format!("{}.00", rng.random_range(1_000..90_000));
    let mut plan = Plan {
        consignment: Consignment {
            lrn,
            route: route.clone(),
            holder: journey::holder(dep_country),
            guarantee: journey::guarantee(dep_country, &amount),
            goods: items,
        },
        trader_at_destination: journey::holder(country(route.destination)).tin,
        destination_outcome: "satisfactory",
        expect: Ending::WrittenOff,
        amend: false,
        invalidate: false,
    };
    let roll: f64 = rng.random();
    if roll < 0.03 {
        // Refused: the declared destination is an office without the destination role.
        plan.consignment.route.destination = "KZ000101";
        plan.consignment.route.exits.clear();
        plan.consignment.route.transits.clear();
        plan.expect = Ending::Rejected;
    } else if roll < 0.06 {
        // Refused: a guarantee the ledger does not know.
        plan.consignment.guarantee.grn = "26KZ000101CG00056".into();
        plan.expect = Ending::GuaranteeRefused;
    } else if roll < 0.10 && dep_country == "KZ" {
        plan.consignment.goods[0] = goods(CONTROLLED_AT_DEPARTURE, 3);
    } else if roll < 0.14 && route.transits.contains(&"AZ000101") {
        plan.consignment.goods[0] = goods(CONTROLLED_IN_TRANSIT, 1);
    } else if roll < 0.18 && country(route.destination) == "GE" {
        plan.consignment.goods[0] = goods(CONTROLLED_AT_DESTINATION, 50);
        if rng.random_bool(0.3) {
            plan.destination_outcome = "major-discrepancies";
        }
    }
    plan
}

/// What a load run measured.
#[derive(Debug)]
pub struct Report {
    /// Movements per ending.
    pub endings: Vec<(Ending, usize)>,
    /// Movements that failed, with why.
    pub failures: Vec<(String, String)>,
    /// Submit-to-release latencies of the released movements, sorted.
    pub latencies: Vec<Duration>,
    /// Controls recorded by officers.
    pub controls: usize,
    /// Wall time of the whole run.
    pub total: Duration,
}

impl Report {
    /// The `p`-th percentile (nearest rank) of the submit-to-release latencies.
    pub fn percentile(&self, p: f64) -> Option<Duration> {
        percentile(&self.latencies, p)
    }
}

/// The nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

/// Runs `count` movements, at most `concurrency` at once.
pub async fn run(
    nodes: &Nodes,
    count: usize,
    seed: u64,
    concurrency: usize,
    step: Duration,
) -> Report {
    let mut rng = StdRng::seed_from_u64(seed);
    let run_id = format!("L{:05X}", rng.random_range(0..0xF_FFFF));
    let plans: Vec<Plan> = (0..count).map(|i| plan(i, &run_id, &mut rng)).collect();
    let limit = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for plan in plans {
        let nodes = nodes.clone();
        let limit = limit.clone();
        let done = done.clone();
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let lrn = plan.consignment.lrn.clone();
            let result = journey::drive(&nodes, &plan, step, None).await;
            if let Ok(Outcome { mrn: Some(mrn), .. }) = &result {
                for node in nodes.0.values() {
                    node.stream.forget(mrn);
                }
            }
            for node in nodes.0.values() {
                node.stream.forget(&lrn);
            }
            let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            if n.is_multiple_of(100) {
                eprintln!("  {n} movements done");
            }
            (lrn, result)
        });
    }
    let mut report = Report {
        endings: Vec::new(),
        failures: Vec::new(),
        latencies: Vec::new(),
        controls: 0,
        total: Duration::ZERO,
    };
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((_, Ok(outcome))) => {
                match report
                    .endings
                    .iter_mut()
                    .find(|(e, _)| *e == outcome.ending)
                {
                    Some((_, n)) => *n += 1,
                    None => report.endings.push((outcome.ending, 1)),
                }
                report.controls += outcome.controls.len();
                if let Some(l) = outcome.submit_to_release {
                    report.latencies.push(l);
                }
            }
            Ok((lrn, Err(e))) => report.failures.push((lrn, format!("{e:#}"))),
            Err(e) => report
                .failures
                .push(("?".into(), format!("task failed: {e}"))),
        }
    }
    report.total = started.elapsed();
    report.latencies.sort();
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&v, 50.0), Some(Duration::from_millis(50)));
        assert_eq!(percentile(&v, 99.0), Some(Duration::from_millis(99)));
        assert_eq!(percentile(&v, 100.0), Some(Duration::from_millis(100)));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn one_seed_gives_the_same_valid_plans_with_every_kind_of_movement() {
        use message_catalog::Limits;
        use message_catalog::rules::{Level, validate};
        let plans = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            (0..300).map(|i| plan(i, "T", &mut rng)).collect::<Vec<_>>()
        };
        let a = plans(7);
        let b = plans(7);
        assert_eq!(
            a.iter().map(|p| &p.consignment).collect::<Vec<_>>(),
            b.iter().map(|p| &p.consignment).collect::<Vec<_>>()
        );
        for kind in [
            Ending::WrittenOff,
            Ending::Rejected,
            Ending::GuaranteeRefused,
        ] {
            assert!(
                a.iter().any(|p| p.expect == kind),
                "no {kind:?} in 300 plans"
            );
        }
        assert!(
            a.iter()
                .any(|p| p.destination_outcome == "major-discrepancies")
        );
        for p in &a {
            let xml = super::super::messages::cc015c(&p.consignment, "M-1", chrono::Utc::now());
            if let Err(e) = validate(xml.as_bytes(), &Limits::default(), Level::Rules) {
                panic!("{xml}\n{e:?}");
            }
        }
    }
}
