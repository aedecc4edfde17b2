//! One movement driven end to end through the national APIs, the way the national systems and
//! the officers of the three countries would: the declaration POSTed by the national system of
//! departure, each officer's action at each office on the route, the arrival notification
//! POSTed by the national system of destination, the release of the goods. Everything it waits
//! for it reads from the nodes: the messages to the national systems from the SSE streams, the
//! offices' phases from the movements' views. Nothing is assumed to have happened.
//!
//! [`drive`] follows a [`Plan`] and returns what happened ([`Outcome`]); a step that does not
//! come within the step time limit is an error that names the office and what was awaited.
//! [`Trail`] prints each node's history of a movement as it grows.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use chrono::Utc;
use serde_json::json;

use super::client::{HistoryEntry, MovementView, NodeClient, Stream};
use super::messages::{self, Consignment, Route};

/// A node as the demo sees it: its API and its stream to the national system.
#[derive(Debug, Clone)]
pub struct NodeHandle {
    /// The API.
    pub client: NodeClient,
    /// The messages to the national system.
    pub stream: Stream,
}

/// The three nodes, by country.
#[derive(Debug, Clone, Default)]
pub struct Nodes(pub BTreeMap<String, NodeHandle>);

impl Nodes {
    /// The node that holds `office`.
    pub fn of(&self, office: &str) -> anyhow::Result<&NodeHandle> {
        let country = office.get(..2).unwrap_or(office);
        self.0
            .get(country)
            .ok_or_else(|| anyhow!("no node for country {country} (office {office})"))
    }
}

/// How a movement is expected to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Released, travelled, arrived, goods released, written off (CC045C).
    WrittenOff,
    /// The declaration was rejected (CC056C).
    Rejected,
    /// The guarantee was refused (CC055C) and the officer refused release (CC051C).
    GuaranteeRefused,
    /// Invalidated at the holder's request before release (CC009C).
    Invalidated,
}

impl Ending {
    /// A word for reports.
    pub fn label(self) -> &'static str {
        match self {
            Ending::WrittenOff => "written off",
            Ending::Rejected => "rejected",
            Ending::GuaranteeRefused => "guarantee refused",
            Ending::Invalidated => "invalidated",
        }
    }
}

/// What to do with one movement.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The declaration.
    pub consignment: Consignment,
    /// The trader at destination's TIN (CC007C).
    pub trader_at_destination: String,
    /// The control outcome an officer records at destination when the goods are selected
    /// there (`satisfactory`, `minor-discrepancies`, `major-discrepancies`).
    pub destination_outcome: &'static str,
    /// How it should end.
    pub expect: Ending,
    /// Amend the declaration (CC013C) before release and check the CC004C.
    pub amend: bool,
    /// Ask for invalidation (CC014C) right after acceptance.
    pub invalidate: bool,
}

impl Plan {
    /// The pilot journey: Aktau → Alat → Red Bridge → Poti, holder KZ123456789012 under its
    /// comprehensive guarantee.
    pub fn pilot(lrn: &str) -> Plan {
        Plan {
            consignment: Consignment {
                lrn: lrn.to_owned(),
                route: Route::pilot(),
                holder: holder("KZ"),
                guarantee: guarantee("KZ", "25000.00"),
                goods: vec![messages::Goods {
                    description: "Seamless steel pipes".into(),
                    hs_code: "730419".into(),
                    gross_mass: "1250.5".into(),
                    net_mass: "1200".into(),
                    packages: 10,
                }],
            },
            trader_at_destination: "GE123456789".into(),
            destination_outcome: "satisfactory",
            expect: Ending::WrittenOff,
            amend: false,
            invalidate: false,
        }
    }
}

/// The pilot holder of a country (its comprehensive guarantee is in the pilot reference data).
pub fn holder(country: &str) -> messages::Holder {
    let (tin, name, city) = match country {
        "AZ" => ("AZ1234567890", "Absheron Logistics LLC", "Baku"),
        "GE" => ("GE123456789", "Kolkheti Freight LLC", "Poti"),
        _ => ("KZ123456789012", "Caspian Pipes LLP", "Aktau"),
    };
    messages::Holder {
        tin: tin.into(),
        name: name.into(),
        country: country.into(),
        city: city.into(),
    }
}

/// The comprehensive guarantee of a country's pilot holder, for `amount` USD.
pub fn guarantee(country: &str, amount: &str) -> messages::GuaranteeRef {
    let grn = match country {
        "AZ" => "26AZ000101CG00010",
        "GE" => "26GE000201CG00014",
        _ => "26KZ0001010000017",
    };
    messages::GuaranteeRef {
        grn: grn.into(),
        access_code: "1234".into(),
        amount: amount.into(),
        currency: "USD".into(),
    }
}

/// What happened to one movement.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The MRN, once allocated.
    pub mrn: Option<String>,
    /// How it ended.
    pub ending: Ending,
    /// From the POST of the CC015C to the CC029C on the stream.
    pub submit_to_release: Option<Duration>,
    /// Offices where the goods were selected for control and an officer recorded the result.
    pub controls: Vec<String>,
}

/// Shared with [`Trail`]: the MRN once it is known.
pub type MrnCell = Arc<Mutex<Option<String>>>;

fn set_mrn(cell: Option<&MrnCell>, mrn: &str) {
    if let Some(cell) = cell
        && let Ok(mut m) = cell.lock()
    {
        *m = Some(mrn.to_owned());
    }
}

/// Drives one movement by `plan`; every wait is bounded by `step`.
pub async fn drive(
    nodes: &Nodes,
    plan: &Plan,
    step: Duration,
    mrn_cell: Option<&MrnCell>,
) -> anyhow::Result<Outcome> {
    let c = &plan.consignment;
    let route = &c.route;
    let departure = nodes.of(route.departure)?;
    let lrn = c.lrn.as_str();
    let mut controls = Vec::new();

    // 1. The national system of departure sends the declaration.
    let started = Instant::now();
    let now = Utc::now();
    let reply = departure
        .client
        .submit(messages::cc015c(c, &message_id("015", lrn), now))
        .await?;
    match reply.status {
        200 if reply.message_type.as_deref() == Some("CC928C") => {}
        422 => {
            return refused_at_submission(plan, &reply.body, route.departure);
        }
        s => bail!(
            "{} (departure): the CC015C for LRN {lrn} was answered {s} {:?}: {}",
            route.departure,
            reply.message_type,
            reply.body
        ),
    }

    // 2. Acceptance (MRN) or rejection, decided by the node of departure.
    let accepted = departure
        .stream
        .wait_any(lrn, &["CC028C", "CC056C"], step)
        .await
        .with_context(|| {
            format!(
                "{} (departure): waiting for the MRN (CC028C) or a rejection (CC056C) of LRN {lrn}",
                route.departure
            )
        })?;
    if accepted.message_type == "CC056C" {
        return refused_at_submission(plan, &accepted.xml, route.departure);
    }
    let mrn = accepted
        .mrn
        .clone()
        .ok_or_else(|| anyhow!("{}: CC028C without an MRN", route.departure))?;
    set_mrn(mrn_cell, &mrn);
    let mrn = mrn.as_str();

    // 3. Control at departure if selected, the guarantee, release.
    let first = departure
            .stream
            .wait_any(mrn, &["CC060C", "CC029C", "CC055C", "CC051C"], step)
            .await
            .with_context(|| {
                format!(
                    "{} (departure): waiting for release (CC029C), control (CC060C) or a refusal (CC055C, CC051C) of {mrn}",
                    route.departure
                )
        })?;
    let seen_control = first.message_type == "CC060C";
    let release = if seen_control {
        if plan.amend {
            amend(departure, plan, mrn).await?;
        }
        if plan.invalidate {
            return invalidate(departure, plan, mrn, step).await;
        }
        controls.push(format!("{} departure", route.departure));
        officer(
            departure,
            json!({"action": "record-control-result", "office": route.departure,
                       "role": "departure", "mrn": mrn, "outcome": "satisfactory",
                       "remarks": "seals and documents checked"}),
        )
        .await?;
        // Wait past the CC060C from now on.
        departure
                .stream
                .wait_any(mrn, &["CC029C", "CC055C", "CC051C"], step)
                .await
                .with_context(|| {
                    format!(
                        "{} (departure): waiting for release (CC029C) or a refusal (CC055C) of {mrn} after the control",
                        route.departure
                    )
                })?
    } else {
        first
    };
    let submit_to_release = release.seen.duration_since(started);
    match release.message_type.as_str() {
        "CC029C" => {}
        "CC055C" => {
            officer(
                departure,
                json!({"action": "refuse-release", "office": route.departure, "role": "departure",
                       "mrn": mrn, "motivation": "03", "text": "guarantee not valid"}),
            )
            .await?;
            departure
                .stream
                .wait(mrn, "CC051C", step)
                .await
                .with_context(|| {
                    format!(
                        "{}: waiting for CC051C (no release) for {mrn}",
                        route.departure
                    )
                })?;
            return finish(plan, mrn, Ending::GuaranteeRefused, None, controls);
        }
        other => bail!(
            "{} (departure): {mrn} was not released: {other}",
            route.departure
        ),
    }
    if (plan.amend || plan.invalidate) && !seen_control {
        bail!(
            "{} (departure): {mrn} was released without a control, so the planned amendment or invalidation (which needs a movement held at departure) could not be sent",
            route.departure
        );
    }

    // 4. The offices of exit and transit on the route, in travel order.
    for (office, role) in route.stops() {
        if role != "exit" && role != "transit" {
            continue;
        }
        let node = nodes.of(office)?;
        wait_phase(
            node,
            mrn,
            office,
            role,
            &["Anticipated"],
            "the anticipated record",
            step,
        )
        .await?;
        let answer = officer(
            node,
            json!({"action": "record-presentation", "office": office, "role": role, "mrn": mrn}),
        )
        .await?;
        // The selection runs with the presentation: the answer's movement usually shows it.
        let selected = ["Cleared", "UnderControl"];
        let phase = match answered_phase(&answer, office, role) {
            Some(p) if selected.iter().any(|s| phase_is(Some(&p), s)) => p,
            _ => wait_phase(
                node,
                mrn,
                office,
                role,
                &selected,
                "the selection after presentation",
                step,
            )
            .await?
            .phase(office, role)
            .unwrap_or_default()
            .to_owned(),
        };
        if phase_is(Some(&phase), "UnderControl") {
            controls.push(format!("{office} {role}"));
            officer(
                node,
                json!({"action": "record-control-result", "office": office, "role": role,
                       "mrn": mrn, "outcome": "satisfactory", "remarks": "seals intact"}),
            )
            .await?;
        }
        let action = if role == "exit" {
            "record-exit"
        } else {
            "record-entry"
        };
        officer(
            node,
            json!({"action": action, "office": office, "role": role, "mrn": mrn}),
        )
        .await?;
    }

    // 5. Destination: arrival notification from the national system, control if selected,
    // release of the goods.
    let destination = nodes.of(route.destination)?;
    let office = route.destination;
    wait_phase(
        destination,
        mrn,
        office,
        "destination",
        &["Anticipated"],
        "the anticipated arrival record (CD001C)",
        step,
    )
    .await?;
    let reply = destination
        .client
        .submit(messages::cc007c(
            mrn,
            office,
            &plan.trader_at_destination,
            &message_id("007", lrn),
            Utc::now(),
        ))
        .await?;
    if !(200..300).contains(&reply.status) {
        bail!(
            "{office} (destination): the CC007C for {mrn} was answered {} {:?}: {}",
            reply.status,
            reply.message_type,
            reply.body
        );
    }
    let view = wait_phase(
        destination,
        mrn,
        office,
        "destination",
        &["ReadyForRelease", "UnderControl"],
        "the selection after arrival",
        step,
    )
    .await?;
    if phase_is(view.phase(office, "destination"), "UnderControl") {
        controls.push(format!("{office} destination"));
        officer(
            destination,
            json!({"action": "record-control-result", "office": office, "role": "destination",
                   "mrn": mrn, "outcome": plan.destination_outcome,
                   "remarks": if plan.destination_outcome == "satisfactory" { "as declared" } else { "two packages missing" }}),
        )
        .await?;
    }
    officer(
        destination,
        json!({"action": "release-goods", "office": office, "role": "destination", "mrn": mrn}),
    )
    .await?;
    destination
        .stream
        .wait(mrn, "CC025C", step)
        .await
        .with_context(|| {
            format!("{office} (destination): waiting for CC025C (goods released) for {mrn}")
        })?;

    // 6. Departure closes: by itself after satisfactory results, by an officer after a
    // discrepancy (CC019C to the holder first).
    let close = departure
        .stream
        .wait_any(mrn, &["CC045C", "CC019C"], step)
        .await
        .with_context(|| {
            format!(
                "{} (departure): waiting for the write-off (CC045C) or discrepancies (CC019C) of {mrn}",
                route.departure
            )
        })?;
    if close.message_type == "CC019C" {
        officer(
            departure,
            json!({"action": "write-off", "office": route.departure, "role": "departure", "mrn": mrn}),
        )
        .await?;
        departure
            .stream
            .wait(mrn, "CC045C", step)
            .await
            .with_context(|| {
                format!(
                    "{} (departure): waiting for the write-off (CC045C) of {mrn}",
                    route.departure
                )
            })?;
    }
    wait_phase(
        departure,
        mrn,
        route.departure,
        "departure",
        &["WrittenOff"],
        "the written-off state",
        step,
    )
    .await?;
    finish(
        plan,
        mrn,
        Ending::WrittenOff,
        Some(submit_to_release),
        controls,
    )
}

async fn invalidate(
    departure: &NodeHandle,
    plan: &Plan,
    mrn: &str,
    step: Duration,
) -> anyhow::Result<Outcome> {
    let c = &plan.consignment;
    let office = c.route.departure;
    let reply = departure
        .client
        .submit(messages::cc014c(
            c,
            mrn,
            "the goods will not travel",
            &message_id("014", &c.lrn),
            Utc::now(),
        ))
        .await?;
    if reply.status != 200 || reply.message_type.as_deref() != Some("CC009C") {
        bail!(
            "{office} (departure): the CC014C for {mrn} was answered {} {:?}: {}",
            reply.status,
            reply.message_type,
            reply.body
        );
    }
    departure
        .stream
        .wait(mrn, "CC009C", step)
        .await
        .with_context(|| format!("{office} (departure): waiting for CC009C for {mrn}"))?;
    wait_phase(
        departure,
        mrn,
        office,
        "departure",
        &["Invalidated"],
        "the invalidated state",
        step,
    )
    .await?;
    finish(
        plan,
        mrn,
        Ending::Invalidated,
        None,
        vec![format!("{office} departure")],
    )
}

async fn amend(departure: &NodeHandle, plan: &Plan, mrn: &str) -> anyhow::Result<()> {
    let mut amended = plan.consignment.clone();
    if let Some(g) = amended.goods.first_mut() {
        g.packages += 1;
    }
    let reply = departure
        .client
        .submit(messages::cc013c(
            &amended,
            mrn,
            &message_id("013", &amended.lrn),
            Utc::now(),
        ))
        .await?;
    if reply.status != 200 || reply.message_type.as_deref() != Some("CC004C") {
        bail!(
            "{} (departure): the CC013C for {mrn} was answered {} {:?}: {}",
            amended.route.departure,
            reply.status,
            reply.message_type,
            reply.body
        );
    }
    Ok(())
}

fn refused_at_submission(plan: &Plan, body: &str, office: &str) -> anyhow::Result<Outcome> {
    if plan.expect == Ending::Rejected {
        return Ok(Outcome {
            mrn: None,
            ending: Ending::Rejected,
            submit_to_release: None,
            controls: Vec::new(),
        });
    }
    bail!(
        "{office} (departure): the declaration LRN {} was rejected: {}",
        plan.consignment.lrn,
        super::client::element(body, "errorReason")
            .or_else(|| super::client::element(body, "errorCode"))
            .unwrap_or_else(|| body.chars().take(400).collect())
    )
}

fn finish(
    plan: &Plan,
    mrn: &str,
    ending: Ending,
    submit_to_release: Option<Duration>,
    controls: Vec<String>,
) -> anyhow::Result<Outcome> {
    if ending != plan.expect {
        bail!(
            "{mrn} ended {} where {} was planned",
            ending.label(),
            plan.expect.label()
        );
    }
    Ok(Outcome {
        mrn: Some(mrn.to_owned()),
        ending,
        submit_to_release,
        controls,
    })
}

/// A message identification unique to this LRN and kind.
fn message_id(kind: &str, lrn: &str) -> String {
    let mut id = format!("{kind}-{lrn}");
    id.truncate(35);
    id
}

/// Posts an officer action; a refusal is an error naming the office and the action.
pub async fn officer(
    node: &NodeHandle,
    action: serde_json::Value,
) -> anyhow::Result<serde_json::Value> {
    match node.client.act(action.clone()).await? {
        Ok(answer) => Ok(answer),
        Err(refused) => Err(anyhow!(
            "{} ({}): the officer's {} for {} was refused: {refused}",
            action["office"].as_str().unwrap_or("?"),
            action["role"].as_str().unwrap_or("?"),
            action["action"].as_str().unwrap_or("?"),
            action["mrn"].as_str().unwrap_or("?")
        )),
    }
}

/// The phase of `office` in `role` in the movement an officer action answered with.
fn answered_phase(answer: &serde_json::Value, office: &str, role: &str) -> Option<String> {
    let view: MovementView = serde_json::from_value(answer.get("movement")?.clone()).ok()?;
    view.phase(office, role).map(str::to_owned)
}

/// Phases are compared without regard to case, `_`, `-` and spaces (`WrittenOff`,
/// `written_off` and `written-off` are one phase).
pub fn phase_is(phase: Option<&str>, wanted: &str) -> bool {
    let norm = |s: &str| -> String {
        s.chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .map(|c| c.to_ascii_lowercase())
            .collect()
    };
    phase.is_some_and(|p| norm(p) == norm(wanted))
}

/// Polls the node's view of `mrn` until `office` in `role` is in one of `phases`.
pub async fn wait_phase(
    node: &NodeHandle,
    mrn: &str,
    office: &str,
    role: &str,
    phases: &[&str],
    what: &str,
    limit: Duration,
) -> anyhow::Result<MovementView> {
    let deadline = Instant::now() + limit;
    let mut pause = Duration::from_millis(5);
    let mut last: Option<String> = None;
    loop {
        // A node that is restarting does not answer for a moment: keep asking.
        match node.client.movement(mrn).await {
            Ok(Some(view)) => {
                let phase = view.phase(office, role);
                if phases.iter().any(|p| phase_is(phase, p)) {
                    return Ok(view);
                }
                last = phase.map(str::to_owned);
            }
            Ok(None) => {}
            Err(e) => last = Some(format!("unknown: {e:#}")),
        }
        if Instant::now() >= deadline {
            bail!(
                "{office} ({role}): timed out after {:.1} s waiting for {what} of {mrn} (phase {}, awaited {})",
                limit.as_secs_f64(),
                last.as_deref().unwrap_or("none: the node does not hold it"),
                phases.join(" or ")
            );
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// Prints each node's history of one movement as it grows: office, local time in the office's
/// zone, message or action, from → to, the office's new phase.
#[derive(Debug)]
pub struct Trail {
    seen: HashSet<(String, i64)>,
    names: BTreeMap<String, String>,
}

impl Default for Trail {
    fn default() -> Self {
        let reference = message_catalog::reference::ReferenceData::pilot();
        let names = reference
            .offices()
            .map(|o| {
                (
                    o.reference_number.as_str().to_owned(),
                    o.names.get("en").to_owned(),
                )
            })
            .collect();
        Trail {
            seen: HashSet::new(),
            names,
        }
    }
}

impl Trail {
    /// Reads every node's view of the movement (by MRN, or by LRN at departure before the
    /// MRN) and prints what is new, oldest first. Returns how many lines it printed.
    pub async fn poll(&mut self, nodes: &Nodes, lrn: &str, mrn: Option<&str>) -> usize {
        // Each node's new entries in its own order (seq), then merged across nodes by time.
        let mut fresh: Vec<std::collections::VecDeque<HistoryEntry>> = Vec::new();
        for (country, node) in &nodes.0 {
            let view = match mrn {
                Some(mrn) => node.client.movement(mrn).await,
                None => node.client.declaration(lrn).await,
            };
            let Ok(Some(mut view)) = view else { continue };
            view.history.sort_by_key(|e| e.seq);
            let new: std::collections::VecDeque<HistoryEntry> = view
                .history
                .into_iter()
                .filter(|e| self.seen.insert((country.clone(), e.seq)))
                .collect();
            if !new.is_empty() {
                fresh.push(new);
            }
        }
        let mut printed = 0;
        loop {
            let next = fresh
                .iter()
                .enumerate()
                .filter_map(|(i, q)| {
                    // Parsed, not compared as text: "…:42Z" and "…:42.120Z" are both RFC 3339.
                    q.front()
                        .map(|e| (i, chrono::DateTime::parse_from_rfc3339(&e.at).ok()))
                })
                .min_by(|a, b| a.1.cmp(&b.1))
                .map(|(i, _)| i);
            let Some(i) = next else { break };
            if let Some(e) = fresh.get_mut(i).and_then(|q| q.pop_front()) {
                println!("{}", self.line(&e));
                printed += 1;
            }
        }
        printed
    }

    /// One history entry as a line of the demo's output.
    pub fn line(&self, e: &HistoryEntry) -> String {
        // Milliseconds when the node keeps them, whole seconds otherwise.
        let local = chrono::DateTime::parse_from_rfc3339(&e.at_local)
            .map(|t| {
                if t.timestamp_subsec_millis() == 0 {
                    t.format("%H:%M:%S %:z").to_string()
                } else {
                    t.format("%H:%M:%S%.3f %:z").to_string()
                }
            })
            .unwrap_or_else(|_| e.at_local.clone());
        let what = match (&e.message_type, &e.action) {
            (Some(m), _) => m.clone(),
            (None, Some(a)) => a.clone(),
            (None, None) => e.kind.clone(),
        };
        let name = self.names.get(&e.office).map(String::as_str).unwrap_or("");
        let route = format!(
            "{} → {}",
            e.from.as_deref().unwrap_or("-"),
            e.to.as_deref().unwrap_or("-")
        );
        format!(
            "{local}  {} {:<26} {:<11} {:<19} {:<26} {}",
            e.office,
            name,
            e.role,
            what,
            route,
            e.phase_after.as_deref().unwrap_or("")
        )
    }
}
