//! An AEO suspended at the hub loses its AEO treatment at every node, and gets it back when it
//! is reinstated: the hub and the KZ, AZ and GE nodes started as `cats demo` starts them (direct
//! link, SQLite), the AEO holder of the pilot reference data (KZ123456789012, Caspian Pipes
//! LLP, under the comprehensive guarantee 26KZ0001010000017) declaring through each node as
//! departure (Aktau KZ000101, Alat AZ000101, Poti GE000201).
//!
//! What each node applies, read from what it stored and sent:
//!
//! - selection at departure: the stored reason names the AEO sampling rate for an AEO and the
//!   non-AEO rate otherwise (the demo's nodes sample nobody, so neither is selected);
//! - the guarantee: an AEO in force is released (CC029C); a suspended one is refused by the
//!   hub's ledger (holder not covered) and the declarant gets the CC055C.
//!
//! The administrator suspends and reinstates through `POST /api/v1/refs/changes` with the
//! demo's administrator credential; each declaration is sent only once every node holds the
//! version that change made.

use std::time::{Duration, Instant};

#[path = "../src/cli/demo"]
#[allow(dead_code)]
mod demo {
    pub mod client;
    pub mod journey;
    pub mod load;
    pub mod messages;
    pub mod world;
}

use demo::journey::{guarantee, holder};
use demo::messages::{self, Consignment, Goods, Route};
use demo::world::{TransportKind, World};

#[path = "support/world.rs"]
mod support;

const STEP: Duration = Duration::from_secs(30);

/// This binary's broker (ports 26718 / 15688 / 25688), kept for an AMQP case; the direct-link
/// case starts none.
const BROKER: support::amqp::Spec = support::amqp::Spec {
    name: "aeo",
    port: 26718,
    management_port: 15688,
    dist_port: 25688,
};

const AEO: &str = "KZ123456789012";

/// The departure offices, one per node, and the demo's first route from each.
fn routes() -> Vec<(&'static str, Route)> {
    let mut out: Vec<(&'static str, Route)> = Vec::new();
    for r in Route::all() {
        let c = messages::country(r.departure);
        if matches!(r.departure, "KZ000101" | "AZ000101" | "GE000201")
            && !out.iter().any(|(seen, _)| *seen == c)
        {
            out.push((c, r));
        }
    }
    out
}

/// The hub's API as the demo's administrator: (status, JSON).
async fn admin(world: &World, method: &str, path: &str, body: serde_json::Value) -> (u16, String) {
    let base =
        cats_hub::client::HttpBase::parse(&format!("http://{}", world.hub_api())).expect("hub URL");
    let auth = format!("Bearer {}", world.hub_administrator_token);
    let (status, body) = base
        .request(
            method,
            path,
            Some(&auth),
            Some(body.to_string().into_bytes()),
            STEP,
        )
        .await
        .expect("the hub answers");
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Sets the AEO's status at the hub and waits until every node holds the new version.
async fn set_status(world: &World, status: &str) {
    let (code, body) = admin(
        world,
        "POST",
        "/api/v1/refs/changes",
        serde_json::json!({
            "reason": format!("AEO {status}"),
            "change": {"traders": [{
                "role": "aeo", "tin": AEO, "name": "Caspian Forwarding LLP", "country": "KZ",
                "status": status, "valid_from": "2026-01-01", "valid_until": "2030-12-31"
            }]}
        }),
    )
    .await;
    assert_eq!(code, 201, "{body}");
    let made: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let version = made["version"].as_u64().expect("version");
    let deadline = Instant::now() + STEP;
    for n in &world.running {
        while n.refdata_version() != Some(version) {
            assert!(
                Instant::now() < deadline,
                "{} never held version {version}: {:?}",
                n.country,
                n.refdata_version()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// What one node did with one declaration of the AEO: the departure selection's reason and
/// the answer on the guarantee (CC029C released, CC055C refused).
async fn declare(world: &World, country: &str, route: &Route, lrn: &str) -> (String, String) {
    let node = &world.nodes.0[country];
    let consignment = Consignment {
        lrn: lrn.to_owned(),
        route: route.clone(),
        holder: holder("KZ"),
        guarantee: guarantee("KZ", "1000.00"),
        goods: vec![Goods {
            description: "Seamless steel pipes".into(),
            hs_code: "730419".into(),
            gross_mass: "1250.5".into(),
            net_mass: "1200".into(),
            packages: 10,
        }],
    };
    assert_eq!(consignment.holder.tin, AEO);
    let reply = node
        .client
        .submit(messages::cc015c(
            &consignment,
            &format!("{lrn}-M"),
            chrono::Utc::now(),
        ))
        .await
        .expect("submit");
    assert!(reply.status < 300, "{country}: {reply:?}");
    let accepted = node
        .stream
        .wait_any(lrn, &["CC028C", "CC056C"], STEP)
        .await
        .expect("accepted or rejected");
    assert_eq!(
        accepted.message_type, "CC028C",
        "{country}: {}",
        accepted.xml
    );
    let mrn = accepted.mrn.clone().expect("MRN");
    let answer = node
        .stream
        .wait_any(&mrn, &["CC029C", "CC055C", "CC060C"], STEP)
        .await
        .expect("released, refused or controlled");
    let view = node
        .client
        .movement(&mrn)
        .await
        .expect("GET movement")
        .expect("held");
    let selection = view
        .selections
        .iter()
        .find(|s| s.office == route.departure && s.role == "departure")
        .unwrap_or_else(|| panic!("{country}: no departure selection: {:?}", view.selections));
    assert!(!selection.selected, "{country}: {selection:?}");
    (selection.reason.clone(), answer.message_type.clone())
}

async fn suspension_reaches_every_node(transport: TransportKind) {
    let Some(s) = support::setup(transport, &BROKER, 11, STEP).await else {
        return;
    };
    let w = &s.world;
    let routes = routes();
    assert_eq!(routes.len(), 3, "{routes:?}");
    let tag = format!("{:06X}", rand::random::<u32>() & 0xFF_FFFF);
    for (phase, status) in [("A", "active"), ("S", "suspended"), ("R", "active")] {
        if phase != "A" {
            set_status(w, status).await;
        }
        for (country, route) in &routes {
            let lrn = format!("AEO{phase}{country}{tag}");
            let (reason, answer) = declare(w, country, route, &lrn).await;
            if status == "active" {
                assert!(
                    reason.contains("AEO rate") && !reason.contains("non-AEO"),
                    "{phase} {country}: an AEO in force is sampled as an AEO: {reason}"
                );
                assert_eq!(answer, "CC029C", "{phase} {country}: released");
            } else {
                assert!(
                    reason.contains("non-AEO rate"),
                    "{phase} {country}: a suspended AEO is sampled as any holder: {reason}"
                );
                assert_eq!(
                    answer, "CC055C",
                    "{phase} {country}: the ledger refuses a suspended holder"
                );
            }
        }
    }
    // The hub's audit names the administrator of the credential for both changes.
    let base =
        cats_hub::client::HttpBase::parse(&format!("http://{}", w.hub_api())).expect("hub URL");
    let auth = format!("Bearer {}", w.hub_operator_token);
    let (status, body) = base
        .request(
            "GET",
            &format!(
                "/api/v1/refs/changes?since={}",
                message_catalog::reference::ReferenceData::pilot().version()
            ),
            Some(&auth),
            None,
            STEP,
        )
        .await
        .expect("the hub answers");
    assert_eq!(status, 200);
    let changes: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    let ours: Vec<&serde_json::Value> = changes["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .filter(|c| c["key"].as_str().is_some_and(|k| k.contains(AEO)))
        .collect();
    assert_eq!(ours.len(), 2, "{changes}");
    assert!(
        ours.iter().all(|c| c["actor"] == "administrator:demo"),
        "{changes}"
    );
    s.world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn direct_aeo_suspension_reaches_every_node() {
    suspension_reaches_every_node(TransportKind::Direct).await;
}
