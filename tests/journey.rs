//! End-to-end journeys: the hub and the KZ, AZ and GE nodes started in this process as
//! `cats demo` starts them (real sockets, HTTPS and mutual TLS, signatures, SQLite), driven
//! only through the nodes' national APIs by the demo's own driver (`src/cli/demo/`, included
//! below). Each case takes the transport as a parameter.
//!
//! The last test runs the `cats demo` binary itself.

use std::time::Duration;

use chrono::Offset;

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

use demo::client::element;
use demo::journey::{self, Ending, Plan};
use demo::load::{CONTROLLED_AT_DEPARTURE, CONTROLLED_AT_DESTINATION};
use demo::messages;
use demo::world::{TransportKind, World};

const STEP: Duration = Duration::from_secs(30);

#[path = "support/world.rs"]
mod support;

use support::Setup;

/// This binary's broker (ports 26712 / 15682 / 25682).
const BROKER: support::amqp::Spec = support::amqp::Spec {
    name: "journey",
    port: 26712,
    management_port: 15682,
    dist_port: 25682,
};

/// The hub and the three nodes on `transport`; `None` when AMQP is asked for and no broker
/// can be started (outside CI only: under `CI=true` that fails the test).
async fn setup(transport: TransportKind) -> Option<Setup> {
    support::setup(transport, &BROKER, 7, STEP).await
}

fn lrn(case: &str) -> String {
    format!("T{case}{:08X}", rand::random::<u32>())
}

fn with_goods(mut plan: Plan, goods: (&str, &str, &str)) -> Plan {
    let (description, hs, mass) = goods;
    plan.consignment.goods[0] = messages::Goods {
        description: description.into(),
        hs_code: hs.into(),
        gross_mass: mass.into(),
        net_mass: "100".into(),
        packages: 2,
    };
    plan
}

fn types(world: &World, country: &str, key: &str) -> Vec<String> {
    world.nodes.0[country]
        .stream
        .items(key)
        .iter()
        .map(|i| i.message_type.clone())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The cases, each for one transport.

async fn full_journey(transport: TransportKind) {
    let Some(s) = setup(transport).await else {
        return;
    };
    let plan = Plan::pilot(&lrn("FULL"));
    let outcome = journey::drive(&s.world.nodes, &plan, STEP, None)
        .await
        .expect("the pilot journey ends written off");
    assert_eq!(outcome.ending, Ending::WrittenOff);
    let mrn = outcome.mrn.expect("an MRN");
    assert!(outcome.controls.is_empty(), "{:?}", outcome.controls);

    // The national system of departure got acceptance, release and write-off, each once and
    // in that order; the one of destination got the goods release.
    let kz = types(&s.world, "KZ", &mrn);
    for t in ["CC028C", "CC029C", "CC045C"] {
        assert_eq!(kz.iter().filter(|k| *k == t).count(), 1, "{t} in {kz:?}");
    }
    let pos = |t: &str| kz.iter().position(|k| k == t);
    assert!(
        pos("CC028C") < pos("CC029C") && pos("CC029C") < pos("CC045C"),
        "{kz:?}"
    );
    assert!(types(&s.world, "GE", &mrn).contains(&"CC025C".to_owned()));

    // The pull API gives the same messages, each once, in cursor order.
    let kz_client = &s.world.nodes.0["KZ"].client;
    let (page, next) = kz_client.pull(0, 1000).await.expect("pull");
    let cursors: Vec<i64> = page.iter().map(|i| i.cursor).collect();
    assert!(cursors.windows(2).all(|w| w[0] < w[1]), "{cursors:?}");
    assert_eq!(next, *cursors.last().expect("messages"));
    let pulled: Vec<&str> = page
        .iter()
        .filter(|i| i.mrn.as_deref() == Some(mrn.as_str()))
        .map(|i| i.message_type.as_str())
        .collect();
    assert_eq!(pulled, kz.iter().map(String::as_str).collect::<Vec<_>>());

    // Every office on the route ended where the journey leaves it, and every step's local
    // time is the UTC time in the office's zone (Kazakhstan UTC+5 since March 2024).
    let expected = [
        (
            "KZ",
            "KZ000101",
            "departure",
            "WrittenOff",
            chrono_tz::Asia::Aqtau,
        ),
        (
            "KZ",
            "KZ000101",
            "exit",
            "Proceeded",
            chrono_tz::Asia::Aqtau,
        ),
        (
            "AZ",
            "AZ000101",
            "transit",
            "Proceeded",
            chrono_tz::Asia::Baku,
        ),
        ("AZ", "AZ000201", "exit", "Proceeded", chrono_tz::Asia::Baku),
        (
            "GE",
            "GE000101",
            "transit",
            "Proceeded",
            chrono_tz::Asia::Tbilisi,
        ),
        (
            "GE",
            "GE000201",
            "destination",
            "GoodsReleased",
            chrono_tz::Asia::Tbilisi,
        ),
    ];
    for (country, office, role, phase, zone) in expected {
        let view = s.world.nodes.0[country]
            .client
            .movement(&mrn)
            .await
            .expect("movement")
            .expect("held");
        assert!(
            journey::phase_is(view.phase(office, role), phase),
            "{office} {role}: {:?}",
            view.phase(office, role)
        );
        let steps: Vec<_> = view
            .history
            .iter()
            .filter(|e| e.office == office && e.role == role)
            .collect();
        assert!(!steps.is_empty(), "{office} {role} has no history");
        for e in steps {
            let utc = chrono::DateTime::parse_from_rfc3339(&e.at).expect("at is RFC 3339");
            let local =
                chrono::DateTime::parse_from_rfc3339(&e.at_local).expect("at_local is RFC 3339");
            assert_eq!(utc, local, "{office}: same instant");
            let want = utc.with_timezone(&zone).offset().fix();
            assert_eq!(local.offset(), &want, "{office}: {}", e.at_local);
        }
    }
    let kz_offset = chrono::DateTime::parse_from_rfc3339(
        &s.world.nodes.0["KZ"]
            .client
            .movement(&mrn)
            .await
            .expect("movement")
            .expect("held")
            .history[0]
            .at_local,
    )
    .expect("at_local");
    assert_eq!(kz_offset.offset().local_minus_utc(), 5 * 3600);
    s.world.stop().await;
}

async fn declaration_rejected(transport: TransportKind) {
    let Some(s) = setup(transport).await else {
        return;
    };
    let mut plan = Plan::pilot(&lrn("REJ"));
    // Aktau is no office of destination: the node's reference checks refuse the declaration.
    plan.consignment.route.destination = "KZ000101";
    plan.consignment.route.transits.clear();
    plan.consignment.route.exits.clear();
    let kz = &s.world.nodes.0["KZ"];
    let reply = kz
        .client
        .submit(messages::cc015c(
            &plan.consignment,
            "REJ-1",
            chrono::Utc::now(),
        ))
        .await
        .expect("POST");
    let rejection = if reply.status == 422 {
        assert_eq!(reply.message_type.as_deref(), Some("CC056C"));
        reply.body
    } else {
        assert_eq!(reply.status, 200, "{}", reply.body);
        kz.stream
            .wait(&plan.consignment.lrn, "CC056C", STEP)
            .await
            .expect("a CC056C on the stream")
            .xml
            .clone()
    };
    assert!(element(&rejection, "errorCode").is_some(), "{rejection}");
    assert!(
        element(&rejection, "errorPointer")
            .is_some_and(|p| p.contains("CustomsOfficeOfDestination")),
        "{rejection}"
    );
    let view = kz
        .client
        .declaration(&plan.consignment.lrn)
        .await
        .expect("GET declaration")
        .expect("the rejected declaration is kept");
    assert!(view.mrn.is_none());
    assert!(journey::phase_is(
        view.phase("KZ000101", "departure"),
        "Rejected"
    ));
    assert!(!types(&s.world, "KZ", &plan.consignment.lrn).contains(&"CC028C".to_owned()));
    s.world.stop().await;
}

async fn major_discrepancy_at_destination(transport: TransportKind) {
    let Some(s) = setup(transport).await else {
        return;
    };
    let mut plan = with_goods(Plan::pilot(&lrn("MAJ")), CONTROLLED_AT_DESTINATION);
    plan.destination_outcome = "major-discrepancies";
    let outcome = journey::drive(&s.world.nodes, &plan, STEP, None)
        .await
        .expect("written off by the officer after the discrepancies");
    let mrn = outcome.mrn.expect("MRN");
    assert_eq!(outcome.controls, vec!["GE000201 destination".to_owned()]);
    let kz = types(&s.world, "KZ", &mrn);
    assert!(kz.contains(&"CC019C".to_owned()), "{kz:?}");
    let view = s.world.nodes.0["GE"]
        .client
        .movement(&mrn)
        .await
        .expect("GET")
        .expect("held");
    assert!(
        view.selections
            .iter()
            .any(|sel| sel.office == "GE000201" && sel.selected && !sel.reason.is_empty()),
        "{:?}",
        view.selections
    );
    let departure = s.world.nodes.0["KZ"]
        .client
        .movement(&mrn)
        .await
        .expect("GET")
        .expect("held");
    let write_off = departure
        .history
        .iter()
        .find(|e| e.action.as_deref() == Some("write-off"))
        .expect("the officer's write-off is in the history");
    assert_eq!(write_off.by.as_deref(), Some("kz-officer"));
    s.world.stop().await;
}

async fn invalidated_before_release(transport: TransportKind) {
    let Some(s) = setup(transport).await else {
        return;
    };
    let mut plan = with_goods(Plan::pilot(&lrn("INV")), CONTROLLED_AT_DEPARTURE);
    plan.invalidate = true;
    plan.expect = Ending::Invalidated;
    let outcome = journey::drive(&s.world.nodes, &plan, STEP, None)
        .await
        .expect("invalidated");
    let mrn = outcome.mrn.expect("MRN");
    let kz = types(&s.world, "KZ", &mrn);
    assert!(kz.contains(&"CC009C".to_owned()), "{kz:?}");
    assert!(!kz.contains(&"CC029C".to_owned()), "{kz:?}");
    // Nothing was announced to the other countries.
    for country in ["AZ", "GE"] {
        assert!(
            s.world.nodes.0[country]
                .client
                .movement(&mrn)
                .await
                .expect("GET")
                .is_none()
        );
    }
    s.world.stop().await;
}

/// Invalidation after release: the CD010C reaches every office on the route, the departure
/// country's own office of exit included (regression: the KZ exit office at Aktau was never
/// told, because the node and the hub sent a cancellation to the *other* countries only).
async fn invalidated_after_release(transport: TransportKind) {
    let Some(s) = setup(transport).await else {
        return;
    };
    let plan = Plan::pilot(&lrn("INVR"));
    let kz = &s.world.nodes.0["KZ"];
    let reply = kz
        .client
        .submit(messages::cc015c(
            &plan.consignment,
            "INVR-015",
            chrono::Utc::now(),
        ))
        .await
        .expect("POST");
    assert_eq!(reply.status, 200, "{}", reply.body);
    let deadline = std::time::Instant::now() + STEP;
    let released = loop {
        assert!(
            std::time::Instant::now() < deadline,
            "KZ000101 (departure): no release of {} within {STEP:?}",
            plan.consignment.lrn
        );
        let view = kz
            .client
            .declaration(&plan.consignment.lrn)
            .await
            .expect("GET");
        if let Some(v) =
            view.filter(|v| journey::phase_is(v.phase("KZ000101", "departure"), "Released"))
        {
            break v;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mrn = released.mrn.clone().expect("an MRN once released");
    // Every office was told before the invalidation, so the cancellation finds them all.
    for (country, office, role) in [
        ("KZ", "KZ000101", "exit"),
        ("AZ", "AZ000101", "transit"),
        ("AZ", "AZ000201", "exit"),
        ("GE", "GE000101", "transit"),
        ("GE", "GE000201", "destination"),
    ] {
        journey::wait_phase(
            &s.world.nodes.0[country],
            &mrn,
            office,
            role,
            &["Anticipated"],
            "the anticipated record",
            STEP,
        )
        .await
        .expect("announced");
    }
    journey::officer(
        kz,
        serde_json::json!({"action": "invalidate", "office": "KZ000101", "role": "departure",
                           "mrn": mrn, "justification": "declared in error"}),
    )
    .await
    .expect("invalidated after release");
    for (country, office, role) in [
        ("KZ", "KZ000101", "exit"),
        ("AZ", "AZ000101", "transit"),
        ("AZ", "AZ000201", "exit"),
        ("GE", "GE000101", "transit"),
        ("GE", "GE000201", "destination"),
    ] {
        journey::wait_phase(
            &s.world.nodes.0[country],
            &mrn,
            office,
            role,
            &["Cancelled"],
            "the cancellation (CD010C)",
            STEP,
        )
        .await
        .expect("cancelled");
    }
    let view = kz.client.movement(&mrn).await.expect("GET").expect("held");
    assert!(journey::phase_is(
        view.phase("KZ000101", "departure"),
        "Invalidated"
    ));
    s.world.stop().await;
}

async fn amendment(transport: TransportKind) {
    let Some(s) = setup(transport).await else {
        return;
    };
    let mut plan = with_goods(Plan::pilot(&lrn("AMD")), CONTROLLED_AT_DEPARTURE);
    plan.amend = true;
    let outcome = journey::drive(&s.world.nodes, &plan, STEP, None)
        .await
        .expect("amended, released and written off");
    let mrn = outcome.mrn.expect("MRN");
    let kz = types(&s.world, "KZ", &mrn);
    assert!(kz.contains(&"CC004C".to_owned()), "{kz:?}");
    let pos = |t: &str| kz.iter().position(|k| k == t);
    assert!(
        pos("CC060C") < pos("CC004C") && pos("CC004C") < pos("CC029C"),
        "{kz:?}"
    );
    // The release is composed from the declaration as amended (one more package), not from
    // the original (regression: the node kept composing from the CC015C as first received).
    let amended_packages = plan.consignment.goods[0].packages + 1;
    let release = s.world.nodes.0["KZ"]
        .stream
        .items(&mrn)
        .iter()
        .find(|i| i.message_type == "CC029C")
        .cloned()
        .expect("CC029C");
    assert_eq!(
        element(&release.xml, "numberOfPackages").as_deref(),
        Some(amended_packages.to_string().as_str()),
        "{}",
        release.xml
    );
    s.world.stop().await;
}

async fn out_of_sequence(transport: TransportKind) {
    let Some(s) = setup(transport).await else {
        return;
    };
    let plan = Plan::pilot(&lrn("SEQ"));
    let mrn = journey::drive(&s.world.nodes, &plan, STEP, None)
        .await
        .expect("written off")
        .mrn
        .expect("MRN");
    let kz = &s.world.nodes.0["KZ"];
    // An invalidation request after release does not fit: CC056C with code 92.
    let reply = kz
        .client
        .submit(messages::cc014c(
            &plan.consignment,
            &mrn,
            "too late",
            "SEQ-014",
            chrono::Utc::now(),
        ))
        .await
        .expect("POST");
    assert_eq!(reply.status, 422, "{}", reply.body);
    assert_eq!(reply.message_type.as_deref(), Some("CC056C"));
    assert_eq!(reply.error_code().as_deref(), Some("92"), "{}", reply.body);
    // An officer action that does not fit: 409 code 92, state unchanged.
    let refused = kz
        .client
        .act(
            serde_json::json!({"action": "write-off", "office": "KZ000101",
                                "role": "departure", "mrn": mrn}),
        )
        .await
        .expect("POST")
        .expect_err("a second write-off is refused");
    assert_eq!((refused.status, refused.code.as_str()), (409, "92"));
    let view = kz.client.movement(&mrn).await.expect("GET").expect("held");
    assert!(journey::phase_is(
        view.phase("KZ000101", "departure"),
        "WrittenOff"
    ));
    s.world.stop().await;
}

async fn unknown_mrn(transport: TransportKind) {
    let Some(s) = setup(transport).await else {
        return;
    };
    let office = CustomsOfficeRef::parse("KZ000101").expect("office");
    let mrn = Mrn::generate(
        26,
        &office,
        987_654,
        ProcedureLetter::parse("J").expect("J"),
    )
    .expect("MRN")
    .to_string();
    let ge = &s.world.nodes.0["GE"];
    let reply = ge
        .client
        .submit(messages::cc007c(
            &mrn,
            "GE000201",
            "GE123456789",
            "UNK-007",
            chrono::Utc::now(),
        ))
        .await
        .expect("POST");
    assert_eq!(reply.status, 422, "{}", reply.body);
    // The contract names CC057C at destination; with no movement held there is nothing to
    // compose it from, and the node answers with the generic functional NACK. The code is
    // what a national system acts on.
    assert!(
        matches!(reply.message_type.as_deref(), Some("CC057C" | "CC906C")),
        "{:?}",
        reply.message_type
    );
    assert_eq!(reply.error_code().as_deref(), Some("90"), "{}", reply.body);
    assert!(ge.client.movement(&mrn).await.expect("GET").is_none());
    let refused = ge
        .client
        .act(
            serde_json::json!({"action": "release-goods", "office": "GE000201",
                                "role": "destination", "mrn": mrn}),
        )
        .await
        .expect("POST")
        .expect_err("no such movement");
    assert_eq!((refused.status, refused.code.as_str()), (404, "90"));
    s.world.stop().await;
}

async fn node_restarted_mid_journey(transport: TransportKind) {
    let Some(mut s) = setup(transport).await else {
        return;
    };
    let plan = Plan::pilot(&lrn("RST"));
    let nodes = s.world.nodes.clone();
    let driven = {
        let plan = plan.clone();
        tokio::spawn(async move { journey::drive(&nodes, &plan, STEP, None).await })
    };
    // Once the movement is released, the destination's node goes down and comes back: the
    // anticipated arrival record sent meanwhile waits at the hub and is delivered after.
    s.world.nodes.0["KZ"]
        .stream
        .wait(&plan.consignment.lrn, "CC029C", STEP)
        .await
        .expect("released");
    let ge = s
        .world
        .running
        .iter_mut()
        .find(|n| n.country == "GE")
        .expect("GE node");
    ge.stop().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    ge.restart().await.expect("GE restarts");
    let outcome = driven
        .await
        .expect("the journey task")
        .expect("the journey ends written off across the restart");
    assert_eq!(outcome.ending, Ending::WrittenOff);
    s.world.stop().await;
}

async fn same_declaration_twice(transport: TransportKind) {
    let Some(s) = setup(transport).await else {
        return;
    };
    let plan = Plan::pilot(&lrn("DUP"));
    let kz = &s.world.nodes.0["KZ"];
    let now = chrono::Utc::now();
    let first = kz
        .client
        .submit(messages::cc015c(&plan.consignment, "DUP-1", now))
        .await
        .expect("POST");
    assert_eq!(
        (first.status, first.message_type.as_deref()),
        (200, Some("CC928C"))
    );
    let lrn = plan.consignment.lrn.as_str();
    let accepted = kz.stream.wait(lrn, "CC028C", STEP).await.expect("CC028C");
    let second = kz
        .client
        .submit(messages::cc015c(&plan.consignment, "DUP-2", now))
        .await
        .expect("POST");
    assert_eq!(second.status, 422, "{}", second.body);
    assert_eq!(second.message_type.as_deref(), Some("CC056C"));
    assert_eq!(
        second.error_code().as_deref(),
        Some("26"),
        "{}",
        second.body
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let accepted_count = types(&s.world, "KZ", lrn)
        .iter()
        .filter(|t| *t == "CC028C")
        .count();
    assert_eq!(accepted_count, 1);
    let view = kz
        .client
        .declaration(lrn)
        .await
        .expect("GET")
        .expect("held");
    assert_eq!(view.mrn, accepted.mrn);
    s.world.stop().await;
}

/// `GET path` on the hub's API with a bearer token: the JSON of a 200 answer.
async fn insurer_view(addr: std::net::SocketAddr, path: &str, token: &str) -> serde_json::Value {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(
        format!(
            "GET {path} HTTP/1.1\r\nHost: hub\r\nAuthorization: Bearer {token}\r\n\
             Connection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .expect("write");
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.expect("read");
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}\n{body}");
    serde_json::from_str(body).expect("JSON")
}

/// The guarantee of a journey as its insurer sees it at the hub: reserved at release in KZT,
/// converted to the contract's USD at the pilot rate, released by the write-off (CD209C).
async fn guarantee_seen_by_the_insurer(transport: TransportKind) {
    use cats_hub::insurer::{self, Principal};
    let Some(s) = setup(transport).await else {
        return;
    };
    let mut plan = Plan::pilot(&lrn("GUARANTEE"));
    plan.consignment.guarantee.amount = "2000000.00".into();
    plan.consignment.guarantee.currency = "KZT".into();
    let outcome = journey::drive(&s.world.nodes, &plan, STEP, None)
        .await
        .expect("the journey ends written off");
    assert_eq!(outcome.ending, Ending::WrittenOff);
    let mrn = outcome.mrn.expect("an MRN");
    let hub = s.world.hub();
    let token = insurer::issue_credential(
        &hub.services.store,
        &hub.services.reference,
        &Principal::Insurer("KZ990140000123".into()),
    )
    .await
    .expect("the KZ insurer's credential");
    let url = "/api/v1/insurer/contracts/KZ-CG-2026-0001";
    let deadline = std::time::Instant::now() + STEP;
    let (view, used) = loop {
        let view = insurer_view(hub.http_addr, url, &token).await;
        let used = view["movements"]
            .as_array()
            .expect("movements")
            .iter()
            .find(|m| m["mrn"] == mrn.as_str())
            .cloned();
        if let Some(u) = used.filter(|u| u["status"] == "released") {
            break (view, u);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the write-off's credit reaches the hub: {view}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(used["declared_amount"], "2000000.00");
    assert_eq!(used["declared_currency"], "KZT");
    assert_eq!(used["exchange_rate"], "0.002081165");
    assert_eq!(used["amount"], "4162.33");
    assert_eq!(used["currency"], "USD");
    assert_eq!(used["released_by"], "CD209C");
    assert!(used["released_at"].is_string(), "{used}");
    assert_eq!(view["in_use"], "0.00", "{view}");
    assert_eq!(view["available"], "100000000.00");
    s.world.stop().await;
}

fn cc034c(id: &str, requester: &str, grn: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<ncts:CC034C xmlns:ncts="http://ncts.dgtaxud.ec" PhaseID="NCTS5.1">
  <messageSender>{requester}</messageSender>
  <messageRecipient>NTA.KZ</messageRecipient>
  <preparationDateAndTime>2026-03-16T09:30:00</preparationDateAndTime>
  <messageIdentification>{id}</messageIdentification>
  <messageType>CC034C</messageType>
  <Requester><identificationNumber>{requester}</identificationNumber><role>1</role></Requester>
  <GuaranteeReference>
    <sequenceNumber>1</sequenceNumber>
    <GRN>{grn}</GRN>
    <GuaranteeQuery><queryIdentifier>1</queryIdentifier></GuaranteeQuery>
    <AccessCode><accessCode>AC01</accessCode></AccessCode>
  </GuaranteeReference>
</ncts:CC034C>"#
    )
}

/// A trader asks its node for its guarantee's balance (CC034C); the node asks the hub's ledger
/// and the national system gets the CC037C on its stream, with the amount in use after a
/// journey released in KZT and the available balance.
async fn guarantee_balance_query(transport: TransportKind) {
    let Some(s) = setup(transport).await else {
        return;
    };
    let kz = &s.world.nodes.0["KZ"].client;
    let reply = kz
        .submit(cc034c("Q-BALANCE-1", "KZ123456789012", "26KZ0001010000017"))
        .await
        .expect("the node answers");
    assert_eq!(reply.status, 202, "{}", reply.body);
    let deadline = std::time::Instant::now() + STEP;
    let answer = loop {
        let (page, _) = kz.pull(0, 1000).await.expect("pull");
        if let Some(item) = page.into_iter().find(|i| i.message_type == "CC037C") {
            break item;
        }
        assert!(std::time::Instant::now() < deadline, "no CC037C came");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        element(&answer.xml, "correlationIdentifier").as_deref(),
        Some("Q-BALANCE-1")
    );
    assert_eq!(
        element(&answer.xml, "GRN").as_deref(),
        Some("26KZ0001010000017")
    );
    assert_eq!(
        element(&answer.xml, "balance").as_deref(),
        Some("100000000.00"),
        "{}",
        answer.xml
    );
    assert_eq!(
        element(&answer.xml, "exposure").as_deref(),
        Some("0"),
        "{}",
        answer.xml
    );
    assert_eq!(element(&answer.xml, "currency").as_deref(), Some("USD"));

    // The same question over the node API, answered synchronously.
    let (status, xml) = kz
        .guarantee_balance("26KZ0001010000017", "KZ123456789012")
        .await
        .expect("the node answers");
    assert_eq!(status, 200, "{xml}");
    assert!(xml.contains("<ncts:CC037C"), "{xml}");
    assert_eq!(
        element(&xml, "balance").as_deref(),
        Some("100000000.00"),
        "{xml}"
    );
    // A requester the contract does not cover: refused by the hub, at once, no balance.
    let (status, xml) = kz
        .guarantee_balance("26KZ0001010000017", "AZ1234567890")
        .await
        .expect("the node answers");
    assert_eq!(status, 400, "{xml}");
    assert!(xml.contains("<ncts:CC917C"), "{xml}");
    assert!(xml.contains("guarantee.holder-not-covered"), "{xml}");
    // A malformed GRN: refused by the node's own checks.
    let (status, xml) = kz
        .guarantee_balance("NOT-A-GRN", "KZ123456789012")
        .await
        .expect("the node answers");
    assert_eq!(status, 400, "{xml}");
    s.world.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Direct mutual-TLS link.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_guarantee_balance_query() {
    guarantee_balance_query(TransportKind::Direct).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_guarantee_seen_by_the_insurer() {
    guarantee_seen_by_the_insurer(TransportKind::Direct).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_full_journey() {
    full_journey(TransportKind::Direct).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_declaration_rejected() {
    declaration_rejected(TransportKind::Direct).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_major_discrepancy_at_destination() {
    major_discrepancy_at_destination(TransportKind::Direct).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_invalidated_before_release() {
    invalidated_before_release(TransportKind::Direct).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_invalidated_after_release() {
    invalidated_after_release(TransportKind::Direct).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_amendment() {
    amendment(TransportKind::Direct).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_out_of_sequence() {
    out_of_sequence(TransportKind::Direct).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_unknown_mrn() {
    unknown_mrn(TransportKind::Direct).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_node_restarted_mid_journey() {
    node_restarted_mid_journey(TransportKind::Direct).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_same_declaration_twice() {
    same_declaration_twice(TransportKind::Direct).await;
}

// ---------------------------------------------------------------------------------------------
// RabbitMQ (AMQPS, client certificates).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_full_journey() {
    full_journey(TransportKind::Amqp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_declaration_rejected() {
    declaration_rejected(TransportKind::Amqp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_major_discrepancy_at_destination() {
    major_discrepancy_at_destination(TransportKind::Amqp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_invalidated_before_release() {
    invalidated_before_release(TransportKind::Amqp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_amendment() {
    amendment(TransportKind::Amqp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_out_of_sequence() {
    out_of_sequence(TransportKind::Amqp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_unknown_mrn() {
    unknown_mrn(TransportKind::Amqp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_node_restarted_mid_journey() {
    node_restarted_mid_journey(TransportKind::Amqp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_same_declaration_twice() {
    same_declaration_twice(TransportKind::Amqp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_a_step_that_does_not_come_names_the_office_and_what_was_awaited() {
    let Some(mut s) = setup(TransportKind::Direct).await else {
        return;
    };
    // The AZ node is down for good: the journey stops at the first AZ office.
    s.world
        .running
        .iter_mut()
        .find(|n| n.country == "AZ")
        .expect("AZ node")
        .stop()
        .await;
    let plan = Plan::pilot(&lrn("TMO"));
    let error = journey::drive(&s.world.nodes, &plan, Duration::from_secs(3), None)
        .await
        .expect_err("the AZ steps never come");
    let text = format!("{error:#}");
    assert!(text.contains("AZ000101 (transit)"), "{text}");
    assert!(text.contains("timed out"), "{text}");
    assert!(text.contains("anticipated record"), "{text}");
    s.world.stop().await;
}

// ---------------------------------------------------------------------------------------------
// The binary.

#[test]
fn cats_demo_drives_the_pilot_movement_to_write_off() {
    let certs = tempfile::tempdir().expect("tempdir");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_cats"))
        .args(["demo", "--certs"])
        .arg(certs.path().join("dev"))
        .output()
        .expect("cats runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let last = stdout.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("movement 26KZ000101") && last.ends_with("written off"),
        "{stdout}"
    );
    for step in [
        "CC015C", "CC028C", "CC029C", "CD168C", "CD118C", "CC007C", "CC025C", "CC045C",
    ] {
        assert!(stdout.contains(step), "no {step} in\n{stdout}");
    }
}
