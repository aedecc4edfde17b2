//! Status requests (issue 7, CD094C/CD095C), end to end: the hub and the KZ, AZ and GE nodes
//! started in this process as `cats demo` starts them, the pilot journey driven through the
//! national APIs, then KZ (departure) asks GE (destination) for its state of the movement
//! through `POST /api/v1/movements/{mrn}/status-requests`, on each transport:
//!
//! - both agree: `agreed`;
//! - GE's stored state thrown back by hand: the answer is below what KZ's messages say GE
//!   reached; the disagreement is recorded, GE reconciles after answering, KZ asks again and
//!   the request ends `repaired`, GE's movement back to its folded state;
//! - KZ's own stored state thrown back by hand: found by KZ's reconciliation before asking,
//!   reported (`own_state_repaired`) and the request ends `repaired`;
//! - an MRN GE does not hold: `unknown_mrn` (GE's CD906C, code 90);
//! - this node's own country, a country without offices, a malformed MRN: refused with their
//!   codes;
//! - GE stopped: the request ends `timed_out`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use message_catalog::ids::{CustomsOfficeRef, Mrn, ProcedureLetter};

#[path = "../src/cli/demo"]
#[allow(dead_code)]
mod demo {
    pub mod client;
    pub mod journey;
    pub mod load;
    pub mod messages;
    pub mod world;
}

use demo::journey::{self, Ending, Plan};
use demo::world::{TransportKind, World};

const STEP: Duration = Duration::from_secs(30);

#[path = "support/world.rs"]
mod support;

use support::Setup;

/// This binary's broker (ports 26720 / 15690 / 25690).
const BROKER: support::amqp::Spec = support::amqp::Spec {
    name: "status",
    port: 26720,
    management_port: 15690,
    dist_port: 25690,
};

async fn setup(transport: TransportKind) -> Option<Setup> {
    support::setup(transport, &BROKER, 13, STEP).await
}

fn running<'a>(world: &'a World, country: &str) -> &'a demo::world::RunningNode {
    world
        .running
        .iter()
        .find(|n| n.country == country)
        .expect("a pilot country")
}

fn engine<'a>(world: &'a World, country: &str) -> &'a cats_node::engine::Engine {
    &running(world, country)
        .node()
        .expect("the node is running")
        .engine
}

async fn sqlite(url: &str) -> sqlx::SqlitePool {
    use std::str::FromStr;
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)
        .expect("a SQLite URL")
        .busy_timeout(Duration::from_secs(10));
    sqlx::SqlitePool::connect_with(options)
        .await
        .expect("the node's database opens")
}

fn client(world: &World) -> reqwest::Client {
    demo::client::http_client(&world.ca_pem).expect("HTTP client")
}

fn base(world: &World, country: &str) -> String {
    format!(
        "https://localhost:{}/api/v1",
        running(world, country).api.port()
    )
}

/// `POST /api/v1/movements/{mrn}/status-requests` on `from`'s node.
async fn ask(
    world: &World,
    from: &str,
    mrn: &str,
    body: serde_json::Value,
) -> (reqwest::StatusCode, serde_json::Value) {
    let response = client(world)
        .post(format!(
            "{}/movements/{mrn}/status-requests",
            base(world, from)
        ))
        .bearer_auth(&running(world, from).officer_token)
        .json(&body)
        .send()
        .await
        .expect("POST status request");
    let status = response.status();
    let value = response.json().await.expect("JSON");
    (status, value)
}

/// Follows a status request until it ends (or `limit` passes) and returns it.
async fn outcome(world: &World, from: &str, id: &str, limit: Duration) -> serde_json::Value {
    let url = format!("{}/status-requests/{id}", base(world, from));
    let deadline = Instant::now() + limit;
    loop {
        let value: serde_json::Value = client(world)
            .get(&url)
            .bearer_auth(&running(world, from).officer_token)
            .send()
            .await
            .expect("GET status request")
            .json()
            .await
            .expect("JSON");
        let state = value["state"].as_str().unwrap_or_default().to_owned();
        if !matches!(state.as_str(), "asked" | "repairing") || Instant::now() > deadline {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Asks and follows; asserts that the request was accepted.
async fn ask_and_follow(world: &World, from: &str, mrn: &str, country: &str) -> serde_json::Value {
    let (status, sent) = ask(world, from, mrn, serde_json::json!({"country": country})).await;
    assert_eq!(status, reqwest::StatusCode::ACCEPTED, "{sent}");
    assert_eq!(sent["state"], "asked", "{sent}");
    let id = sent["id"].as_str().expect("an id").to_owned();
    outcome(world, from, &id, Duration::from_secs(90)).await
}

/// The pilot journey (KZ000101 → … → GE000201), written off; its MRN.
async fn pilot(world: &World, tag: &str) -> String {
    let plan = Plan::pilot(&format!("S{tag}{:08X}", rand::random::<u32>()));
    let outcome = journey::drive(&world.nodes, &plan, STEP, None)
        .await
        .expect("the pilot journey ends");
    assert_eq!(outcome.ending, Ending::WrittenOff);
    outcome.mrn.expect("an MRN")
}

/// Throws the movement's stored state back by hand on `country`'s node: the phase of `role`
/// set to `phase` and the event count changed. Returns the original state.
async fn corrupt(world: &World, country: &str, mrn: &str, role: &str, phase: &str) -> String {
    let pool = sqlite(&running(world, country).store_url).await;
    let (id, state): (i64, String) =
        sqlx::query_as("SELECT id, state FROM node_movements WHERE mrn = $1")
            .bind(mrn)
            .fetch_one(&pool)
            .await
            .expect("the movement");
    let mut json: serde_json::Value = serde_json::from_str(&state).expect("state JSON");
    json["applied"] = serde_json::json!(999);
    json[role]["phase"] = serde_json::json!(phase);
    sqlx::query("UPDATE node_movements SET state = $2 WHERE id = $1")
        .bind(id)
        .bind(json.to_string())
        .execute(&pool)
        .await
        .expect("corrupt it");
    pool.close().await;
    state
}

async fn stored_state(world: &World, country: &str, mrn: &str) -> serde_json::Value {
    let pool = sqlite(&running(world, country).store_url).await;
    let state: String = sqlx::query_scalar("SELECT state FROM node_movements WHERE mrn = $1")
        .bind(mrn)
        .fetch_one(&pool)
        .await
        .expect("the movement");
    pool.close().await;
    serde_json::from_str(&state).expect("JSON")
}

/// The MRNs on which `country`'s node and the hub disagree (digests of the hub deliveries).
async fn differences(world: &World, country: &str) -> Vec<String> {
    let cc = message_catalog::ids::CountryCode::parse(country).expect("country");
    let hub: BTreeMap<String, _> =
        cats_hub::reconcile::node_digests(&world.hub().services.store, cc, i64::MAX)
            .await
            .expect("hub digests")
            .into_iter()
            .collect();
    let mut tx = engine(world, country).store().begin().await.expect("store");
    let node: BTreeMap<String, _> = cats_node::reconcile::digests(&mut tx)
        .await
        .expect("node digests")
        .into_iter()
        .collect();
    tx.commit().await.expect("commit");
    let keys: BTreeSet<&String> = hub.keys().chain(node.keys()).collect();
    keys.into_iter()
        .filter(|k| hub.get(*k) != node.get(*k))
        .cloned()
        .collect()
}

/// The status messages exchanged leave `country` in step with the hub: reconciling converges.
async fn converges(world: &World, country: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = differences(world, country).await;
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{country} still differs from the hub: {left:?}"
        );
        engine(world, country)
            .reconcile()
            .await
            .expect("reconciliation starts");
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
}

async fn status_requests(transport: TransportKind) {
    let Some(mut s) = setup(transport).await else {
        return;
    };
    let mrn = pilot(&s.world, "A").await;

    // Agreement.
    let agreed = ask_and_follow(&s.world, "KZ", &mrn, "GE").await;
    assert_eq!(agreed["state"], "agreed", "{agreed}");
    assert_eq!(agreed["rounds"], 1, "{agreed}");
    let answer = agreed["answer"].as_array().expect("an answer");
    assert!(
        answer.iter().any(|o| o["role"] == "destination"
            && o["office"] == "GE000201"
            && o["status"] == "GRL"),
        "GE's destination released the goods: {agreed}"
    );
    assert!(
        answer
            .iter()
            .any(|o| o["role"] == "transit" && o["office"] == "GE000101" && o["status"] == "PRO"),
        "GE's office of transit let the goods proceed: {agreed}"
    );

    // The asked node thrown back by hand: found, reported, repaired.
    let original = corrupt(&s.world, "GE", &mrn, "destination", "Anticipated").await;
    let repaired = ask_and_follow(&s.world, "KZ", &mrn, "GE").await;
    assert_eq!(repaired["state"], "repaired", "{repaired}");
    let found = repaired["found"].as_array().expect("found");
    assert!(
        found
            .iter()
            .any(|d| d["behind"] == "asked" && d["role"] == "destination"),
        "the destination behind on GE: {repaired}"
    );
    assert!(repaired["rounds"].as_i64().unwrap_or(0) >= 2, "{repaired}");
    assert_eq!(repaired["remaining"], serde_json::json!([]), "{repaired}");
    let original: serde_json::Value = serde_json::from_str(&original).expect("JSON");
    assert_eq!(
        stored_state(&s.world, "GE", &mrn).await,
        original,
        "GE's movement is back to its folded state"
    );
    let kz_metrics = engine(&s.world, "KZ").metrics();
    assert!(
        kz_metrics.value(
            "cats_node_reconciliation_total",
            "what=\"status_differences\""
        ) >= 1
    );
    assert_eq!(
        kz_metrics.value("cats_node_reconciliation_total", "what=\"status_repaired\""),
        1
    );

    // The asking node thrown back by hand: found before asking, reported, repaired.
    let original = corrupt(&s.world, "KZ", &mrn, "departure", "Released").await;
    let own = ask_and_follow(&s.world, "KZ", &mrn, "GE").await;
    assert_eq!(own["state"], "repaired", "{own}");
    assert_eq!(own["own_state_repaired"], true, "{own}");
    let original: serde_json::Value = serde_json::from_str(&original).expect("JSON");
    assert_eq!(stored_state(&s.world, "KZ", &mrn).await, original);

    // An MRN GE does not hold.
    let office = CustomsOfficeRef::parse("KZ000101").expect("office");
    let unknown = Mrn::generate(26, &office, 999_999, ProcedureLetter::J).expect("MRN");
    let none = ask_and_follow(&s.world, "KZ", unknown.as_str(), "GE").await;
    assert_eq!(none["state"], "unknown_mrn", "{none}");
    assert!(
        none["reason"].as_str().unwrap_or_default().contains("90"),
        "{none}"
    );

    // Refused before anything is sent.
    for (body, mrn_text, code) in [
        (
            serde_json::json!({"country": "KZ"}),
            mrn.as_str(),
            "status.own_country",
        ),
        (
            serde_json::json!({"country": "FR"}),
            mrn.as_str(),
            "status.unknown_country",
        ),
        (
            serde_json::json!({"country": "G3"}),
            mrn.as_str(),
            "status.unknown_country",
        ),
        (
            serde_json::json!({"country": "GE"}),
            "26KZ0001",
            "status.invalid_mrn",
        ),
        (
            serde_json::json!({"country": "GE", "timeout_secs": 0}),
            mrn.as_str(),
            "status.invalid_timeout",
        ),
        (
            serde_json::json!({"land": "GE"}),
            mrn.as_str(),
            "status.invalid_body",
        ),
    ] {
        let (status, value) = ask(&s.world, "KZ", mrn_text, body.clone()).await;
        assert_eq!(status, reqwest::StatusCode::BAD_REQUEST, "{body}: {value}");
        assert_eq!(value["error"]["code"], code, "{body}: {value}");
    }
    let missing = client(&s.world)
        .get(format!("{}/status-requests/NOSUCH", base(&s.world, "KZ")))
        .bearer_auth(&running(&s.world, "KZ").officer_token)
        .send()
        .await
        .expect("GET");
    assert_eq!(missing.status(), reqwest::StatusCode::NOT_FOUND);

    // The status messages are journal entries like any other: both nodes agree with the hub.
    converges(&s.world, "KZ").await;
    converges(&s.world, "GE").await;

    // No answer: GE is down.
    let ge = s
        .world
        .running
        .iter_mut()
        .find(|n| n.country == "GE")
        .expect("GE");
    ge.stop().await;
    let (status, sent) = ask(
        &s.world,
        "KZ",
        &mrn,
        serde_json::json!({"country": "GE", "timeout_secs": 2}),
    )
    .await;
    assert_eq!(status, reqwest::StatusCode::ACCEPTED, "{sent}");
    let id = sent["id"].as_str().expect("id").to_owned();
    let late = outcome(&s.world, "KZ", &id, Duration::from_secs(30)).await;
    assert_eq!(late["state"], "timed_out", "{late}");
    let ge = s
        .world
        .running
        .iter_mut()
        .find(|n| n.country == "GE")
        .expect("GE");
    ge.restart().await.expect("GE comes back");
    s.world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_status_requests() {
    status_requests(TransportKind::Direct).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_status_requests() {
    status_requests(TransportKind::Amqp).await;
}
