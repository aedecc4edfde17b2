//! A dead letter replayed once its cause is fixed (issue 7), end to end on each transport: the
//! hub and the KZ, AZ and GE nodes started in this process as `cats demo` starts them (real
//! sockets, mutual TLS, signatures, SQLite), the movement driven through the national APIs by
//! the demo's own driver.
//!
//! 1. AZ's reference data loses its office AZ000101 (its copy in its database is edited, as a
//!    node restored from a backup older than the office would hold it) and AZ restarts with
//!    periodic reconciliation effectively off, so that only the replay can repair;
//! 2. KZ declares a movement Aktau (KZ000101) → Alat (AZ000101) and releases it: AZ refuses the
//!    anticipated arrival record (CD001C) with `refdata-gap: office AZ000101 …`, before writing
//!    anything; the hub's register (`GET /api/v1/dead-letters`) shows the letter under
//!    `cats.node.AZ` with that reason, and AZ holds no movement for the MRN;
//! 3. AZ asks the hub for the whole reference data (`POST /api/v1/refdata/resync`) and gets its
//!    office back; an operator replays the letter through the hub's API;
//! 4. AZ now holds the movement and it continues from where it stopped: arrival, release of the
//!    goods at Alat, write-off at Aktau. AZ applied the AAR once, the letter is `replayed`, with
//!    its audit entry.

use std::time::{Duration, Instant};

use cats_hub::client::{HubClient, Settlement};
use cats_hub::dead_letters::DeadLetterSummary;
use message_catalog::ids::CustomsOfficeRef;

#[path = "../src/cli/demo"]
#[allow(dead_code)]
mod demo {
    pub mod client;
    pub mod journey;
    pub mod load;
    pub mod messages;
    pub mod world;
}

use demo::journey::{self, Ending, MrnCell, Plan};
use demo::messages::Route;
use demo::world::{TransportKind, World};

/// Each step of the driver may wait this long: the wait for AZ's anticipated record spans the
/// refusal, the resync and the replay.
const STEP: Duration = Duration::from_secs(90);

/// The office AZ's copy loses.
const OFFICE: &str = "AZ000101";

#[path = "support/world.rs"]
mod support;

/// This binary's broker (ports 26721 / 15691 / 25691).
const BROKER: support::amqp::Spec = support::amqp::Spec {
    name: "deadletter",
    port: 26721,
    management_port: 15691,
    dist_port: 25691,
};

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

fn office() -> CustomsOfficeRef {
    CustomsOfficeRef::parse(OFFICE).expect("an office")
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

/// Removes `office` from the reference data copy in the (stopped) node's database; the copy
/// keeps its version, as a backup taken before the office was added would.
async fn lose_office(url: &str, office: &str) {
    let pool = sqlite(url).await;
    let snapshot: String = sqlx::query_scalar("SELECT snapshot FROM node_refdata WHERE id = 1")
        .fetch_one(&pool)
        .await
        .expect("the node's copy");
    let mut set: serde_json::Value = serde_json::from_str(&snapshot).expect("JSON");
    let offices = set["offices"].as_array_mut().expect("offices");
    let before = offices.len();
    offices.retain(|o| o["reference_number"] != office);
    assert_eq!(offices.len() + 1, before, "{office} was in the copy");
    sqlx::query("UPDATE node_refdata SET snapshot = $1 WHERE id = 1")
        .bind(set.to_string())
        .execute(&pool)
        .await
        .expect("the copy edited");
    pool.close().await;
}

async fn count(url: &str, sql: &str) -> i64 {
    let pool = sqlite(url).await;
    let n: i64 = sqlx::query_scalar(sql)
        .fetch_one(&pool)
        .await
        .expect("count");
    pool.close().await;
    n
}

fn hub_client(world: &World) -> HubClient {
    HubClient::new(&format!("http://{}", world.hub_api()))
        .expect("hub client")
        .with_token(&world.hub_operator_token)
}

/// Waits for the MRN the driver is given by KZ.
async fn mrn_of(cell: &MrnCell) -> String {
    let deadline = Instant::now() + STEP;
    loop {
        if let Some(mrn) = cell.lock().ok().and_then(|m| m.clone()) {
            return mrn;
        }
        assert!(Instant::now() < deadline, "KZ allocated no MRN");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits for the hub's register to show the letter of `mrn` refused by AZ.
async fn letter_of(hub: &HubClient, mrn: &str) -> DeadLetterSummary {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let letters = hub.dead_letters("dead").await.expect("the register");
        if let Some(l) = letters
            .into_iter()
            .find(|l| l.partition_key.as_deref() == Some(mrn))
        {
            return l;
        }
        assert!(
            Instant::now() < deadline,
            "no dead letter for {mrn} in the hub's register"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn replayed_once_the_gap_is_fixed(transport: TransportKind) {
    let Some(mut s) = support::setup(transport, &BROKER, 17, Duration::from_secs(30)).await else {
        return;
    };
    let label = format!("{transport:?}");

    // 1. The gap, and periodic reconciliation effectively off.
    let az_url = running(&s.world, "AZ").store_url.clone();
    let az = s
        .world
        .running
        .iter_mut()
        .find(|n| n.country == "AZ")
        .expect("AZ");
    az.stop().await;
    lose_office(&az_url, OFFICE).await;
    az.restart_with(|raw| raw.node.reconcile_interval_secs = 86_400)
        .await
        .expect("AZ restarts on the edited copy");
    let held = engine(&s.world, "AZ").refdata.versions().held;
    assert!(
        engine(&s.world, "AZ")
            .refdata
            .current()
            .office(&office())
            .is_none(),
        "{label}: AZ still has {OFFICE}"
    );

    // 2. The declaration, driven in the background; its wait at Alat spans the repair.
    let mut plan = Plan::pilot(&format!("TDLQ{:08X}", rand::random::<u32>()));
    plan.consignment.route = Route {
        departure: "KZ000101",
        exits: vec!["KZ000101"],
        transits: vec![],
        destination: OFFICE,
    };
    plan.trader_at_destination = journey::holder("AZ").tin;
    let cell = MrnCell::default();
    let driving = {
        let nodes = s.world.nodes.clone();
        let cell = cell.clone();
        tokio::spawn(async move { journey::drive(&nodes, &plan, STEP, Some(&cell)).await })
    };
    let mrn = mrn_of(&cell).await;
    let hub = hub_client(&s.world);
    let letter = letter_of(&hub, &mrn).await;
    eprintln!("{label}: dead letter {letter:?}");
    assert_eq!(letter.queue, "cats.node.AZ", "{label}");
    assert_eq!(
        letter.reason,
        format!(
            "refdata-gap: office {OFFICE} is not in this node's reference data (version {held})"
        ),
        "{label}"
    );
    let detail = hub.dead_letter(letter.id).await.expect("show");
    let envelope = detail.envelope.expect("the letter is an envelope");
    assert_eq!(envelope.message_type, "CD001C", "{label}");
    assert_eq!(envelope.mrn.as_deref(), Some(mrn.as_str()), "{label}");
    let az_client = &s.world.nodes.0["AZ"].client;
    assert!(
        az_client.movement(&mrn).await.expect("GET").is_none(),
        "{label}: AZ holds the refused movement"
    );
    // The world is new: this movement's AAR is the only one AZ was sent.
    let aars = "SELECT COUNT(*) FROM node_messages WHERE direction = 'in' \
                AND message_type = 'CD001C'";
    assert_eq!(
        count(&az_url, aars).await,
        0,
        "{label}: the refusal wrote the AAR"
    );
    assert_eq!(
        count(&az_url, "SELECT COUNT(*) FROM node_movements").await,
        0,
        "{label}: the refusal wrote a movement"
    );
    assert!(
        engine(&s.world, "AZ")
            .metrics()
            .value("cats_node_rejections_total", "code=\"refdata_gap\"")
            >= 1,
        "{label}: the refusal is not counted"
    );

    // 3. The fix: AZ asks the hub for the whole set; then the replay.
    let response = demo::client::http_client(&s.world.ca_pem)
        .expect("HTTP client")
        .post(format!(
            "https://localhost:{}/api/v1/refdata/resync",
            running(&s.world, "AZ").api.port()
        ))
        .bearer_auth(&running(&s.world, "AZ").officer_token)
        .send()
        .await
        .expect("POST resync");
    assert_eq!(response.status(), reqwest::StatusCode::ACCEPTED, "{label}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while engine(&s.world, "AZ")
        .refdata
        .current()
        .office(&office())
        .is_none()
    {
        assert!(
            Instant::now() < deadline,
            "{label}: the resync did not bring {OFFICE} back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let settled = hub
        .replay(
            letter.id,
            &Settlement {
                reason: format!("{OFFICE} is back in AZ's reference data"),
            },
        )
        .await
        .expect("replay");
    assert_eq!(settled.state, "replayed", "{label}: {settled:?}");

    // 4. The movement continues from where it stopped, to the write-off at departure.
    let outcome = driving
        .await
        .expect("the driver")
        .unwrap_or_else(|e| panic!("{label}: the movement did not continue: {e:#}"));
    assert_eq!(outcome.ending, Ending::WrittenOff, "{label}");
    let view = az_client
        .movement(&mrn)
        .await
        .expect("GET")
        .expect("AZ holds the movement");
    assert!(
        journey::phase_is(view.phase(OFFICE, "destination"), "GoodsReleased"),
        "{label}: AZ's destination phase {:?}",
        view.phase(OFFICE, "destination")
    );
    let kz = s.world.nodes.0["KZ"]
        .client
        .movement(&mrn)
        .await
        .expect("GET")
        .expect("KZ holds the movement");
    assert!(
        journey::phase_is(kz.phase("KZ000101", "departure"), "WrittenOff"),
        "{label}: departure {:?}",
        kz.phase("KZ000101", "departure")
    );
    // AZ applied the AAR once; its national system saw each of its messages once.
    assert_eq!(
        count(&az_url, aars).await,
        1,
        "{label}: the AAR applied other than once"
    );
    let az_stream: Vec<String> = s.world.nodes.0["AZ"]
        .stream
        .items(&mrn)
        .iter()
        .map(|i| i.message_type.clone())
        .collect();
    eprintln!("{label}: AZ's national stream for {mrn}: {az_stream:?}");
    let mut sorted = az_stream.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(
        sorted.len(),
        az_stream.len(),
        "{label}: AZ's national system saw a message twice: {az_stream:?}"
    );
    assert_eq!(
        count(
            &az_url,
            "SELECT COUNT(*) FROM (SELECT message_id FROM node_stream \
             GROUP BY message_id HAVING COUNT(*) > 1)",
        )
        .await,
        0,
        "{label}: AZ's stream repeats a message"
    );
    // The register: replayed, with the audit entry of the replay.
    let detail = hub.dead_letter(letter.id).await.expect("show");
    assert_eq!(detail.summary.state, "replayed", "{label}");
    assert_eq!(detail.audit.len(), 1, "{label}: {:?}", detail.audit);
    assert_eq!(detail.audit[0].action, "replay", "{label}");
    assert_eq!(detail.audit[0].operator, "operator:demo", "{label}");
    assert_eq!(
        detail.audit[0].outcome, "sent to cats.node.AZ again",
        "{label}"
    );
    assert!(
        hub.dead_letters("dead")
            .await
            .expect("the register")
            .iter()
            .all(|l| l.partition_key.as_deref() != Some(mrn.as_str())),
        "{label}: another letter for {mrn}"
    );
    s.world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn direct_link_dead_letter_replayed_once_the_gap_is_fixed() {
    replayed_once_the_gap_is_fixed(TransportKind::Direct).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn amqp_dead_letter_replayed_once_the_gap_is_fixed() {
    replayed_once_the_gap_is_fixed(TransportKind::Amqp).await;
}
