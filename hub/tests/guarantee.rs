//! The guarantee ledger end to end, on SQLite and on PostgreSQL: nodes send CD203C / CD204C /
//! CD209C through the hub (direct link, real TLS on loopback, certificates from `DevPki::init`)
//! and receive the hub's CD205C, which they verify as a node would and decode.
//!
//! The pilot contracts are those of `message-catalog/src/reference/pilot.json`: a large KZ
//! contract (26KZ0001010000017, USD 100,000,000.00, holder KZ123456789012), a small one
//! (26KZ000101CG00029, USD 30,000.00, holder KZ555000111222), an expired one
//! (26KZ000101CG00038) and a suspended one (26KZ000101CG00047).
//!
//! PostgreSQL: `CATS_TEST_POSTGRES` (default `postgres://postgres@127.0.0.1:5432/test`), a
//! fresh database per test. Unreachable: the test fails when `CI=true`, else it says loudly
//! that it did not run.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cats_hub::guarantee::{self, Release, UseRequest, UseResult};
use cats_hub::journal;
use cats_hub::store::HubStore;
use cats_hub::{RawConfig, RunningHub};
use cats_transport::contract::{CountryCode, Destination, Outbound, PeerIdentity, Transport};
use cats_transport::direct::{DirectNode, LinkConfig, NodeTls};
use cats_transport::shutdown::{self, ShutdownTrigger};
use cats_trust::pki::{DevPki, DevPkiFiles};
use cats_trust::{EnvelopeHeaderFields, Signer, TrustStore, Verifier};
use message_catalog::Message;
use message_catalog::codec::{Limits, decode};
use message_catalog::generated::cats::{Flag, GuaranteeRefusalReasonCode as Why};
use message_catalog::ids::{CustomsOfficeRef, Grn, Mrn, ProcedureLetter};
use message_catalog::reference::update::{Update, read_update};
use message_catalog::reference::{GuaranteeRefusal, ReferenceData};
use rust_decimal::Decimal;
use serde_json::json;
use sqlx::Connection;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BIG: &str = "26KZ0001010000017";
const BIG_HOLDER: &str = "KZ123456789012";
const SMALL: &str = "26KZ000101CG00029";
const EXPIRED: &str = "26KZ000101CG00038";
const SUSPENDED: &str = "26KZ000101CG00047";
const UNKNOWN: &str = "26KZ000101CG00056";
const SMALL_HOLDER: &str = "KZ555000111222";
const AZ_HOLDER: &str = "AZ1234567890";

#[derive(Debug, Clone, Copy)]
enum Db {
    Sqlite,
    Postgres,
}

async fn database_url(db: Db, dir: &std::path::Path) -> Option<String> {
    match db {
        Db::Sqlite => Some(format!("sqlite://{}", dir.join("hub.db").display())),
        Db::Postgres => {
            let base = std::env::var("CATS_TEST_POSTGRES")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
            let mut admin = match sqlx::PgConnection::connect(&base).await {
                Ok(c) => c,
                Err(e) => {
                    if std::env::var("CI").as_deref() == Ok("true") {
                        panic!("PostgreSQL at {base} is unreachable in CI: {e}");
                    }
                    eprintln!(
                        "\n!!!!! SKIPPED: PostgreSQL at {base} is unreachable ({e}); \
                         this test did NOT run on PostgreSQL !!!!!\n"
                    );
                    return None;
                }
            };
            let name = format!("cats_guarantee_{:016x}", rand::random::<u64>());
            sqlx::query(&format!("CREATE DATABASE \"{name}\""))
                .execute(&mut admin)
                .await
                .expect("create database");
            let i = base.rfind('/').expect("database URL has a path");
            Some(format!("{}/{name}", &base[..i]))
        }
    }
}

fn mrn(country: &str, sequence: u64) -> String {
    let office = CustomsOfficeRef::parse(departure_office(country)).expect("office");
    let letter = ProcedureLetter::parse("J").expect("letter");
    Mrn::generate(26, &office, sequence, letter)
        .expect("MRN")
        .to_string()
}

fn departure_office(country: &str) -> &'static str {
    match country {
        "AZ" => "AZ000101",
        "GE" => "GE000201",
        _ => "KZ000101",
    }
}

/// A CD203C from `country` for `mrn`, one GuaranteeReference per `(grn, amount, currency)`.
fn cd203c(
    id: &str,
    country: &str,
    mrn: &str,
    holder: &str,
    refs: &[(&str, &str, &str)],
) -> Vec<u8> {
    let references: String = refs
        .iter()
        .enumerate()
        .map(|(i, (grn, amount, currency))| {
            format!(
                "<GuaranteeReference><sequenceNumber>{}</sequenceNumber><GRN>{grn}</GRN>\
                 <accessCode>AC01</accessCode><amountConcerned>{amount}</amountConcerned>\
                 <currency>{currency}</currency></GuaranteeReference>",
                i + 1
            )
        })
        .collect();
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<cats:CD203C xmlns:cats="urn:carec:cats:common:1">
  <messageSender>NTA.{country}</messageSender>
  <messageRecipient>CATS.HUB</messageRecipient>
  <preparationDateAndTime>2026-03-16T09:30:00</preparationDateAndTime>
  <messageIdentification>{id}</messageIdentification>
  <messageType>CD203C</messageType>
  <TransitOperation><MRN>{mrn}</MRN><declarationAcceptanceDate>2026-03-16</declarationAcceptanceDate></TransitOperation>
  <CustomsOfficeOfDeparture><referenceNumber>{office}</referenceNumber></CustomsOfficeOfDeparture>
  <CustomsOfficeOfDestinationDeclared><referenceNumber>GE000301</referenceNumber></CustomsOfficeOfDestinationDeclared>
  <HolderOfTheTransitProcedure><identificationNumber>{holder}</identificationNumber></HolderOfTheTransitProcedure>
  <Guarantee><sequenceNumber>1</sequenceNumber><guaranteeType>1</guaranteeType>{references}</Guarantee>
</cats:CD203C>"#,
        office = departure_office(country)
    )
    .into_bytes()
}

/// A CD204C (cancellation) or CD209C (credit) from `country` for `mrn` and `grns`.
fn release_message(ty: &str, id: &str, country: &str, mrn: &str, grns: &[&str]) -> Vec<u8> {
    let references: String = grns
        .iter()
        .enumerate()
        .map(|(i, grn)| {
            format!(
                "<GuaranteeReference><sequenceNumber>{}</sequenceNumber><GRN>{grn}</GRN>\
                 <CustomsOfficeOfGuarantee><referenceNumber>KZ000101</referenceNumber>\
                 </CustomsOfficeOfGuarantee></GuaranteeReference>",
                i + 1
            )
        })
        .collect();
    let operation = if ty == "CD204C" {
        format!("<MRN>{mrn}</MRN><usageCancellationDate>2026-03-17</usageCancellationDate>")
    } else {
        format!(
            "<MRN>{mrn}</MRN><arrivalDateAndTimeActual>2026-03-20T10:00:00</arrivalDateAndTimeActual>"
        )
    };
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<cats:{ty} xmlns:cats="urn:carec:cats:common:1">
  <messageSender>NTA.{country}</messageSender>
  <messageRecipient>CATS.HUB</messageRecipient>
  <preparationDateAndTime>2026-03-20T10:30:00</preparationDateAndTime>
  <messageIdentification>{id}</messageIdentification>
  <messageType>{ty}</messageType>
  <TransitOperation>{operation}</TransitOperation>
  <CustomsOfficeOfDeparture><referenceNumber>{office}</referenceNumber></CustomsOfficeOfDeparture>
  <Guarantee><sequenceNumber>1</sequenceNumber><guaranteeType>1</guaranteeType>{references}</Guarantee>
</cats:{ty}>"#,
        office = departure_office(country)
    )
    .into_bytes()
}

struct Node {
    link: DirectNode,
    signer: Signer,
    verifier: Verifier,
    /// The reference-data updates (CA005C) the hub sent this node, in order: [`World::next`]
    /// sets them aside, so that a contract approved or suspended does not stand in the way of
    /// the answer a test waits for.
    updates: std::sync::Mutex<Vec<Message>>,
}

struct World {
    dir: tempfile::TempDir,
    files: DevPkiFiles,
    url: String,
    hub: RunningHub,
    trigger: ShutdownTrigger,
    nodes: BTreeMap<CountryCode, Arc<Node>>,
}

const COUNTRIES: [CountryCode; 3] = [CountryCode::KZ, CountryCode::AZ, CountryCode::GE];

fn link_config() -> LinkConfig {
    LinkConfig {
        heartbeat: Duration::from_secs(5),
        min_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(300),
        send_timeout: Duration::from_secs(180),
        shutdown_grace: Duration::from_secs(2),
        ..LinkConfig::default()
    }
}

async fn start_hub(files: &DevPkiFiles, url: &str) -> (RunningHub, ShutdownTrigger) {
    let mut raw = RawConfig::default();
    raw.store.url = url.to_owned();
    raw.http.listen = "127.0.0.1:0".into();
    raw.transport.listen = "127.0.0.1:0".into();
    raw.certs.dir = files.dir.clone();
    let config = raw.resolve().expect("config resolves");
    let (trigger, shutdown) = shutdown::channel();
    let hub = cats_hub::start(config, shutdown).await.expect("hub starts");
    (hub, trigger)
}

async fn connect_nodes(files: &DevPkiFiles, hub: &RunningHub) -> BTreeMap<CountryCode, Arc<Node>> {
    let mut nodes = BTreeMap::new();
    for c in COUNTRIES {
        let node = files.nodes.get(&c).expect("node certificate");
        let mut tls = NodeTls::from_files(&files.ca.cert, &node.cert, &node.key).expect("node TLS");
        tls.server_name = "localhost".into();
        let link = DirectNode::connect(
            hub.direct_addr
                .expect("the hub runs the direct link")
                .to_string(),
            tls,
            link_config(),
        )
        .expect("node link");
        link.wait_connected(Duration::from_secs(10))
            .await
            .expect("node connects");
        let s = files.signers.get(&c).expect("signer");
        let trust = TrustStore::load(&files.ca.cert, Some(&files.allow_list)).expect("trust");
        nodes.insert(
            c,
            Arc::new(Node {
                link,
                signer: Signer::load(&s.cert, &s.key).expect("signer loads"),
                verifier: Verifier::new(trust, Duration::from_secs(300))
                    .with_local_identity(PeerIdentity::Node(c)),
                updates: std::sync::Mutex::new(Vec::new()),
            }),
        );
    }
    nodes
}

async fn world(db: Db) -> Option<World> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let dir = tempfile::tempdir().expect("tempdir");
    let files = DevPki::init(&dir.path().join("pki"), &COUNTRIES, false).expect("dev PKI");
    let url = database_url(db, dir.path()).await?;
    let (hub, trigger) = start_hub(&files, &url).await;
    let nodes = connect_nodes(&files, &hub).await;
    Some(World {
        dir,
        files,
        url,
        hub,
        trigger,
        nodes,
    })
}

/// What a node reads from one GuaranteeReference of a CD205C.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Answer {
    grn: String,
    accepted: bool,
    reason: Option<Why>,
    amount: Option<Decimal>,
    currency: Option<String>,
    rate: Option<Decimal>,
}

fn answers(m: &Message) -> Vec<Answer> {
    let Message::CD205C(m) = m else {
        panic!("expected a CD205C, got {}", m.message_type());
    };
    m.guarantee
        .iter()
        .flat_map(|g| g.guarantee_reference.iter())
        .map(|r| Answer {
            grn: r.grn.clone(),
            accepted: r.accepted == Flag::V1,
            reason: r.refusal_reason,
            amount: r.amount_reserved,
            currency: r.contract_currency.clone(),
            rate: r.exchange_rate,
        })
        .collect()
}

async fn send_as(
    node: &Node,
    from: CountryCode,
    id: &str,
    ty: &str,
    mrn: &str,
    body: &[u8],
) -> Bytes {
    let fields = EnvelopeHeaderFields {
        message_id: id.into(),
        message_type: ty.into(),
        sender: PeerIdentity::Node(from),
        recipient: PeerIdentity::Hub,
        correlation_id: None,
        mrn: Some(mrn.into()),
        prepared_at: chrono::Utc::now(),
    };
    let wire = Bytes::from(node.signer.seal(&fields, body).expect("seal"));
    resend_as(node, id, mrn, wire.clone()).await;
    wire
}

async fn resend_as(node: &Node, id: &str, mrn: &str, wire: Bytes) {
    node.link
        .send(Outbound {
            message_id: id.into(),
            destination: Destination::Hub,
            partition_key: Some(mrn.into()),
            bytes: wire,
        })
        .await
        .expect("hub takes the message");
}

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).expect("decimal")
}

impl World {
    /// Seals `body` as `from` for the hub and sends it; returns the envelope.
    async fn send(&self, from: CountryCode, id: &str, ty: &str, mrn: &str, body: &[u8]) -> Bytes {
        send_as(&self.nodes[&from], from, id, ty, mrn, body).await
    }

    async fn resend(&self, from: CountryCode, id: &str, mrn: &str, wire: Bytes) {
        resend_as(&self.nodes[&from], id, mrn, wire).await
    }

    /// The next message delivered to `node`: verified as the node verifies live traffic and as
    /// it verifies a redelivery from the journal, decoded, acknowledged.
    async fn next(&self, node: CountryCode) -> Message {
        self.next_within(node, Duration::from_secs(15)).await
    }

    /// [`World::next`], waiting up to `wait`. A CA005C (reference data) is verified, set aside
    /// in the node's `updates` and acknowledged; the next message after it is returned.
    async fn next_within(&self, node: CountryCode, wait: Duration) -> Message {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let m = self
                .next_any(node, deadline)
                .await
                .expect("a delivery arrives");
            if !self.set_aside(node, &m) {
                return m;
            }
        }
    }

    /// Sets a CA005C aside in `node`'s updates; whether it was one.
    fn set_aside(&self, node: CountryCode, m: &Message) -> bool {
        if !matches!(m, Message::CA005C(_)) {
            return false;
        }
        self.nodes[&node]
            .updates
            .lock()
            .expect("updates lock")
            .push(m.clone());
        true
    }

    /// The reference-data updates `node` received so far.
    fn updates(&self, node: CountryCode) -> Vec<Message> {
        self.nodes[&node]
            .updates
            .lock()
            .expect("updates lock")
            .clone()
    }

    /// The next message delivered to `node` before `deadline` (`None`: nothing came), verified,
    /// decoded and acknowledged.
    async fn next_any(&self, node: CountryCode, deadline: tokio::time::Instant) -> Option<Message> {
        let n = &self.nodes[&node];
        let d = tokio::time::timeout_at(deadline, n.link.receive())
            .await
            .ok()?
            .expect("receive");
        assert_eq!(d.from, PeerIdentity::Hub);
        let wire = d.bytes.clone();
        let live = n
            .verifier
            .open(&wire, &PeerIdentity::Hub, chrono::Utc::now())
            .expect("the node accepts what the hub delivers");
        let again = n
            .verifier
            .open_redelivered(&wire, &PeerIdentity::Hub)
            .expect("and accepts it again when it is redelivered from the journal");
        assert_eq!(live.body, again.body);
        assert_eq!(again.header.fields.sender, PeerIdentity::Hub);
        let message = decode(again.body, &Limits::default()).expect("body decodes");
        // And the message passes the rules a node applies.
        message_catalog::rules::validate(
            again.body,
            &Limits::default(),
            message_catalog::rules::Level::Rules,
        )
        .expect("CD205C passes the rules");
        d.ack().await.expect("ack");
        Some(message)
    }

    /// Nothing but reference-data updates reaches `node` within 700 ms.
    async fn nothing_for(&self, node: CountryCode) {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(700);
        while let Some(m) = self.next_any(node, deadline).await {
            assert!(
                self.set_aside(node, &m),
                "{node} received something it should not have: {}",
                m.message_type()
            );
        }
    }

    /// Takes what `node` receives in the next second: only redeliveries of messages it had
    /// already received (an acknowledgement lost in a restart) are allowed.
    async fn drain_redelivered(&self, node: CountryCode) {
        while let Ok(d) =
            tokio::time::timeout(Duration::from_secs(1), self.nodes[&node].link.receive()).await
        {
            let d = d.expect("receive");
            assert!(d.redelivered, "{node} received a new {}", d.message_id);
            d.ack().await.expect("ack");
        }
    }

    /// Sends a CD203C and returns the CD205C's answers.
    async fn use_guarantee(
        &self,
        from: CountryCode,
        id: &str,
        mrn: &str,
        holder: &str,
        refs: &[(&str, &str, &str)],
    ) -> Vec<Answer> {
        let body = cd203c(id, from.as_str(), mrn, holder, refs);
        self.send(from, id, "CD203C", mrn, &body).await;
        let m = self.next(from).await;
        if let Message::CD205C(r) = &m {
            assert_eq!(r.correlation_identifier.as_deref(), Some(id));
            assert_eq!(r.transit_operation.mrn, mrn);
            assert_eq!(r.message_sender, "CATS.HUB");
            assert_eq!(r.message_recipient, format!("NTA.{from}"));
        }
        answers(&m)
    }

    /// `GET path` with a fresh operator's credential.
    async fn http_get(&self, path: &str) -> (u16, String) {
        let token = cats_hub::access::issue(
            &self.hub.services.store,
            cats_hub::access::Role::Operator,
            "guarantee-test",
        )
        .await
        .expect("credential")
        .token;
        self.http("GET", path, Some(&token), None).await
    }

    /// An HTTP request to the hub's API, with a bearer token and a JSON body when given.
    async fn http(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&serde_json::Value>,
    ) -> (u16, String) {
        let mut s = tokio::net::TcpStream::connect(self.hub.http_addr)
            .await
            .expect("connect");
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let kind = if body.is_empty() {
            String::new()
        } else {
            "Content-Type: application/json\r\n".to_owned()
        };
        s.write_all(
            format!(
                "{method} {path} HTTP/1.1\r\nHost: hub\r\nConnection: close\r\n{auth}{kind}\
                 Content-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .expect("write");
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.expect("read");
        let text = String::from_utf8_lossy(&out).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").expect("HTTP response");
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status code");
        (status, body.to_owned())
    }

    async fn contract(&self, grn: &str) -> serde_json::Value {
        let (status, body) = self.http_get(&format!("/api/v1/guarantees/{grn}")).await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).expect("JSON")
    }

    async fn in_use(&self, grn: &str) -> Decimal {
        let v = self.contract(grn).await;
        dec(v["in_use"].as_str().expect("in_use is a decimal string"))
    }

    async fn stop(self) {
        self.trigger.trigger();
        for (_, n) in self.nodes {
            n.link.shutdown().await;
        }
        tokio::time::timeout(Duration::from_secs(10), self.hub.stopped())
            .await
            .expect("hub stops on shutdown");
    }

    /// Stops the hub and starts it again on the same database; the nodes reconnect.
    async fn restart(self) -> World {
        let World {
            dir,
            files,
            url,
            hub,
            trigger,
            nodes,
        } = self;
        trigger.trigger();
        for (_, n) in nodes {
            n.link.shutdown().await;
        }
        tokio::time::timeout(Duration::from_secs(10), hub.stopped())
            .await
            .expect("hub stops on shutdown");
        let (hub, trigger) = start_hub(&files, &url).await;
        let nodes = connect_nodes(&files, &hub).await;
        World {
            dir,
            files,
            url,
            hub,
            trigger,
            nodes,
        }
    }
}

fn accepted(grn: &str, amount: &str) -> Answer {
    Answer {
        grn: grn.into(),
        accepted: true,
        reason: None,
        amount: Some(dec(amount)),
        currency: Some("USD".into()),
        rate: None,
    }
}

fn refused(grn: &str, reason: Option<Why>, currency: Option<&str>) -> Answer {
    Answer {
        grn: grn.into(),
        accepted: false,
        reason,
        amount: None,
        currency: currency.map(str::to_owned),
        rate: None,
    }
}

async fn reserve_and_refuse(db: Db) {
    let Some(w) = world(db).await else { return };
    let kz = CountryCode::KZ;

    // Accepted: the amount is reserved, in the contract's currency.
    let m1 = mrn("KZ", 1);
    let got = w
        .use_guarantee(kz, "KZ-USE-1", &m1, BIG_HOLDER, &[(BIG, "1250.50", "USD")])
        .await;
    assert_eq!(got, vec![accepted(BIG, "1250.50")]);
    assert_eq!(w.in_use(BIG).await, dec("1250.50"));

    // Each refusal, with its CD205C reason.
    let cases: [(&str, &str, &str, Answer); 5] = [
        (
            UNKNOWN,
            SMALL_HOLDER,
            "USD",
            refused(UNKNOWN, Some(Why::UnknownGrn), None),
        ),
        (
            EXPIRED,
            SMALL_HOLDER,
            "USD",
            refused(EXPIRED, Some(Why::Expired), Some("USD")),
        ),
        (
            SUSPENDED,
            SMALL_HOLDER,
            "USD",
            refused(SUSPENDED, Some(Why::Suspended), Some("USD")),
        ),
        (
            BIG,
            AZ_HOLDER,
            "USD",
            refused(BIG, Some(Why::HolderNotCovered), Some("USD")),
        ),
        // A currency with no exchange rate: no reason word in the schema; the CD205C says
        // which currency the contract is in (CATS004 G02 at the office of departure).
        (BIG, BIG_HOLDER, "CHF", refused(BIG, None, Some("USD"))),
    ];
    for (i, (grn, holder, currency, want)) in cases.into_iter().enumerate() {
        let m = mrn("KZ", 10 + i as u64);
        let id = format!("KZ-REF-{i}");
        let got = w
            .use_guarantee(kz, &id, &m, holder, &[(grn, "100.00", currency)])
            .await;
        assert_eq!(got, vec![want], "case {i}");
    }
    assert_eq!(
        GuaranteeRefusal::cats004_of_cd205c(None),
        GuaranteeRefusal::UnknownCurrency.cats004()
    );

    // Insufficient balance: the small contract covers USD 30,000.00.
    let m2 = mrn("KZ", 2);
    let got = w
        .use_guarantee(
            kz,
            "KZ-USE-2",
            &m2,
            SMALL_HOLDER,
            &[(SMALL, "30000.01", "USD")],
        )
        .await;
    assert_eq!(
        got,
        vec![refused(SMALL, Some(Why::InsufficientBalance), Some("USD"))]
    );
    // Two GRNs in one request: each answered on its own.
    let m3 = mrn("KZ", 3);
    let got = w
        .use_guarantee(
            kz,
            "KZ-USE-3",
            &m3,
            SMALL_HOLDER,
            &[(SMALL, "30000.00", "USD"), (SUSPENDED, "5.00", "USD")],
        )
        .await;
    assert_eq!(
        got,
        vec![
            accepted(SMALL, "30000.00"),
            refused(SUSPENDED, Some(Why::Suspended), Some("USD"))
        ]
    );
    assert_eq!(w.in_use(SMALL).await, dec("30000.00"));

    // A second CD203C for the same movement and GRN (another message): the same answer, and
    // nothing reserved twice. The refused one is refused again.
    let again = w
        .use_guarantee(kz, "KZ-USE-1B", &m1, BIG_HOLDER, &[(BIG, "1250.50", "USD")])
        .await;
    assert_eq!(again, vec![accepted(BIG, "1250.50")]);
    assert_eq!(w.in_use(BIG).await, dec("1250.50"));
    let again = w
        .use_guarantee(
            kz,
            "KZ-USE-2B",
            &m2,
            SMALL_HOLDER,
            &[(SMALL, "1.00", "USD")],
        )
        .await;
    assert_eq!(
        again,
        vec![refused(SMALL, Some(Why::InsufficientBalance), Some("USD"))]
    );

    // The exact same envelope redelivered: no new answer, no new journal entry.
    let size = journal::size(&w.hub.services.store).await.expect("size");
    let body = cd203c(
        "KZ-USE-4",
        "KZ",
        &mrn("KZ", 4),
        BIG_HOLDER,
        &[(BIG, "10.00", "USD")],
    );
    let wire = w.send(kz, "KZ-USE-4", "CD203C", &mrn("KZ", 4), &body).await;
    assert_eq!(answers(&w.next(kz).await), vec![accepted(BIG, "10.00")]);
    w.resend(kz, "KZ-USE-4", &mrn("KZ", 4), wire).await;
    w.nothing_for(kz).await;
    assert_eq!(
        journal::size(&w.hub.services.store).await.expect("size"),
        size + 2,
        "one CD203C and one CD205C"
    );
    assert_eq!(w.in_use(BIG).await, dec("1260.50"));

    // The CD205C is journalled as emitted, with the CD203C as correlation.
    let emitted = journal::entry(&w.hub.services.store, size + 2)
        .await
        .expect("read")
        .expect("entry");
    assert_eq!(emitted.entry.message_type, "CD205C");
    assert_eq!(emitted.entry.status, journal::Status::Emitted);
    assert_eq!(emitted.entry.recipients, vec!["node:KZ".to_owned()]);
    assert_eq!(emitted.entry.correlation_id.as_deref(), Some("KZ-USE-4"));

    // Cancellation releases; a second cancellation (another message) changes nothing.
    let body = release_message("CD204C", "KZ-CAN-1", "KZ", &m3, &[SMALL]);
    w.send(kz, "KZ-CAN-1", "CD204C", &m3, &body).await;
    w.nothing_for(kz).await;
    assert_eq!(w.in_use(SMALL).await, Decimal::ZERO);
    let body = release_message("CD204C", "KZ-CAN-2", "KZ", &m3, &[SMALL]);
    w.send(kz, "KZ-CAN-2", "CD204C", &m3, &body).await;
    w.nothing_for(kz).await;
    assert_eq!(w.in_use(SMALL).await, Decimal::ZERO);
    // Credit at write-off releases; repeated, nothing changes.
    for id in ["KZ-WO-1", "KZ-WO-2"] {
        let body = release_message("CD209C", id, "KZ", &m1, &[BIG]);
        w.send(kz, id, "CD209C", &m1, &body).await;
        w.nothing_for(kz).await;
        assert_eq!(w.in_use(BIG).await, dec("10.00"), "{id}");
    }

    // A write-off for a movement that never asked for the guarantee: CD906C, ledger unchanged.
    let m9 = mrn("KZ", 9);
    let body = release_message("CD209C", "KZ-WO-9", "KZ", &m9, &[BIG]);
    w.send(kz, "KZ-WO-9", "CD209C", &m9, &body).await;
    let nack = w.next(kz).await;
    let Message::CD906C(n) = &nack else {
        panic!("expected a CD906C, got {}", nack.message_type());
    };
    let errors: Vec<(String, String)> = n
        .functional_error
        .iter()
        .map(|e| (e.error_pointer.clone(), format!("{:?}", e.error_code)))
        .collect();
    assert!(
        errors.iter().any(
            |(p, c)| p == "/CD209C/Guarantee[1]/GuaranteeReference[1]/GRN" && c.contains("14")
        ),
        "{errors:?}"
    );
    assert_eq!(w.in_use(BIG).await, dec("10.00"));

    // The insurer's view: the contract, its balance and each movement.
    let v = w.contract(SMALL).await;
    assert_eq!(v["contract"]["contract_id"], "KZ-CG-2026-0002");
    assert_eq!(
        dec(v["insured_amount"].as_str().expect("amount")),
        dec("30000")
    );
    assert_eq!(dec(v["available"].as_str().expect("amount")), dec("30000"));
    let movements: Vec<(String, String)> = v["movements"]
        .as_array()
        .expect("movements")
        .iter()
        .map(|m| {
            (
                m["mrn"].as_str().unwrap_or_default().to_owned(),
                m["status"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        movements,
        vec![
            (m2.clone(), "refused".into()),
            (m3.clone(), "released".into())
        ]
    );
    let v = w.contract(BIG).await;
    let statuses: BTreeMap<String, (String, String)> = v["movements"]
        .as_array()
        .expect("movements")
        .iter()
        .map(|m| {
            (
                m["mrn"].as_str().unwrap_or_default().to_owned(),
                (
                    m["status"].as_str().unwrap_or_default().to_owned(),
                    m["amount"].as_str().unwrap_or_default().to_owned(),
                ),
            )
        })
        .collect();
    assert_eq!(statuses[&m1], ("released".into(), "1250.50".into()));
    assert_eq!(statuses[&mrn("KZ", 4)], ("reserved".into(), "10.00".into()));
    let (status, list) = w.http_get("/api/v1/guarantees").await;
    assert_eq!(status, 200);
    let list: serde_json::Value = serde_json::from_str(&list).expect("JSON");
    assert_eq!(
        list["guarantees"].as_array().map(Vec::len),
        Some(ReferenceData::pilot().contracts().count())
    );
    let (status, body) = w.http_get(&format!("/api/v1/guarantees/{UNKNOWN}")).await;
    assert_eq!(status, 404);
    assert!(body.contains("guarantee.unknown-grn"), "{body}");
    let (status, body) = w.http_get("/api/v1/guarantees/26KZ000101CG00057").await;
    assert_eq!(status, 400);
    assert!(body.contains("guarantee.bad-grn"), "{body}");

    // Metrics.
    let (status, text) = w.http_get("/metrics").await;
    assert_eq!(status, 200);
    for line in [
        "cats_hub_guarantee_reservations_total{result=\"accepted\"} 3",
        "cats_hub_guarantee_reservations_total{result=\"refused\",reason=\"guarantee.insufficient-balance\"} 1",
        "cats_hub_guarantee_reservations_total{result=\"refused\",reason=\"guarantee.suspended\"} 2",
        "cats_hub_guarantee_reservations_total{result=\"refused\",reason=\"guarantee.unknown-currency\"} 1",
        "cats_hub_guarantee_releases_total 2",
        "cats_hub_messages_out_total{type=\"CD205C\",country=\"KZ\"} 11",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }

    // The journal still verifies.
    cats_hub::verify_journal(&w.url)
        .await
        .expect("journal verifies");
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_reserve_refuse_release() {
    reserve_and_refuse(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_reserve_refuse_release() {
    reserve_and_refuse(Db::Postgres).await;
}

// ------------------------------------------------------------------------------- concurrency

/// 50 reservations of USD 1,000.00 at once, straight on the ledger (each in its own
/// transaction, as two hub processes would), against the contract of USD 30,000.00.
async fn concurrent_on_the_ledger(db: Db) {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(url) = database_url(db, dir.path()).await else {
        return;
    };
    let store = HubStore::connect(&url).await.expect("store");
    let reference = Arc::new(ReferenceData::pilot());
    let day = chrono::Utc::now().date_naive();
    let mut tasks = Vec::new();
    for i in 0..50u64 {
        let store = store.clone();
        let reference = reference.clone();
        tasks.push(tokio::spawn(async move {
            let request = UseRequest {
                mrn: mrn("KZ", 100 + i),
                grn: SMALL.into(),
                holder: SMALL_HOLDER.into(),
                amount: dec("1000.00"),
                currency: "USD".into(),
                request_id: format!("PAR-{i}"),
                request_sequence: None,
            };
            let mut tx = store.begin().await.expect("begin");
            let answer = guarantee::reserve(&mut tx, &reference, &request, day)
                .await
                .expect("reserve");
            tx.commit().await.expect("commit");
            answer.result
        }));
    }
    let mut reserved = 0;
    let mut refused = 0;
    for t in tasks {
        match t.await.expect("task") {
            UseResult::Reserved { amount, .. } => {
                assert_eq!(amount, dec("1000.00"));
                reserved += 1;
            }
            UseResult::Refused { reason, .. } => {
                assert_eq!(reason, GuaranteeRefusal::InsufficientBalance);
                refused += 1;
            }
        }
    }
    assert_eq!((reserved, refused), (30, 20));
    let grn = Grn::parse(SMALL).expect("grn");
    let v = guarantee::guarantee(&store, &grn, day)
        .await
        .expect("query")
        .expect("known");
    assert_eq!(v.in_use, dec("30000.00"));
    assert_eq!(v.available, Decimal::ZERO);
    let movements = v.movements.unwrap_or_default();
    assert_eq!(
        movements.iter().filter(|m| m.status == "reserved").count(),
        30
    );
    // Releasing all of them at once, twice each: back to zero, never below.
    let mut tasks = Vec::new();
    for m in movements.into_iter().filter(|m| m.status == "reserved") {
        for n in 0..2 {
            let store = store.clone();
            let mrn = m.mrn.clone();
            tasks.push(tokio::spawn(async move {
                let mut tx = store.begin().await.expect("begin");
                let r = guarantee::release(&mut tx, &mrn, SMALL, "CD209C", &format!("W{n}"), None)
                    .await
                    .expect("release");
                tx.commit().await.expect("commit");
                r
            }));
        }
    }
    let mut released = 0;
    for t in tasks {
        match t.await.expect("task") {
            Release::Released => released += 1,
            Release::AlreadyReleased => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(released, 30);
    let v = guarantee::guarantee(&store, &grn, day)
        .await
        .expect("query")
        .expect("known");
    assert_eq!(v.in_use, Decimal::ZERO);

    // The same movement and GRN asked 20 times at once: reserved once, the same answer to all.
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = store.clone();
        let reference = reference.clone();
        tasks.push(tokio::spawn(async move {
            let request = UseRequest {
                mrn: mrn("KZ", 999),
                grn: SMALL.into(),
                holder: SMALL_HOLDER.into(),
                amount: dec("700.00"),
                currency: "USD".into(),
                request_id: format!("DUP-{i}"),
                request_sequence: None,
            };
            let mut tx = store.begin().await.expect("begin");
            let a = guarantee::reserve(&mut tx, &reference, &request, day)
                .await
                .expect("reserve");
            tx.commit().await.expect("commit");
            a
        }));
    }
    let mut fresh = 0;
    for t in tasks {
        let a = t.await.expect("task");
        assert!(matches!(a.result, UseResult::Reserved { .. }), "{a:?}");
        fresh += usize::from(!a.repeated);
    }
    assert_eq!(fresh, 1, "one reservation, 19 repeated answers");
    let v = guarantee::guarantee(&store, &grn, day)
        .await
        .expect("query")
        .expect("known");
    assert_eq!(v.in_use, dec("700.00"));

    // Throughput with 200 concurrent requesters on one contract (printed, for the record).
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for t in 0..200u64 {
        let store = store.clone();
        let reference = reference.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..10u64 {
                let request = UseRequest {
                    mrn: mrn("KZ", 10_000 + t * 10 + i),
                    grn: BIG.into(),
                    holder: BIG_HOLDER.into(),
                    amount: dec("1.00"),
                    currency: "USD".into(),
                    request_id: format!("T-{t}-{i}"),
                    request_sequence: None,
                };
                let mut tx = store.begin().await.expect("begin");
                let a = guarantee::reserve(&mut tx, &reference, &request, day)
                    .await
                    .expect("reserve");
                tx.commit().await.expect("commit");
                assert!(matches!(a.result, UseResult::Reserved { .. }), "{a:?}");
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let elapsed = started.elapsed();
    eprintln!(
        "{db:?}: 2000 reservations by 200 concurrent requesters in {:.2} s: {:.0} per second",
        elapsed.as_secs_f64(),
        2000.0 / elapsed.as_secs_f64()
    );
    let big = Grn::parse(BIG).expect("grn");
    let v = guarantee::guarantee(&store, &big, day)
        .await
        .expect("query")
        .expect("known");
    assert_eq!(v.in_use, dec("2000.00"));
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_concurrent_reservations_never_overdraw() {
    concurrent_on_the_ledger(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_concurrent_reservations_never_overdraw() {
    concurrent_on_the_ledger(Db::Postgres).await;
}

/// Requests from the three nodes through the hub against the contract of USD 30,000.00.
const PER_NODE: u64 = 67;

/// 201 CD203C of USD 1,000.00 sent at once by the three nodes (67 each) through the hub
/// against the contract of USD 30,000.00: 30 accepted, 171 refused for insufficient balance,
/// and USD 30,000.00 in use. Each node reads its answers while it sends, as a node does.
async fn concurrent_through_the_hub(db: Db) {
    let Some(w) = world(db).await else { return };
    let started = std::time::Instant::now();
    // Readers: one answer per request, keyed by the request it answers. A node may receive an
    // answer twice (at-least-once delivery): the copy must be the same message.
    let mut readers = tokio::task::JoinSet::new();
    for c in COUNTRIES {
        let node = w.nodes[&c].clone();
        readers.spawn(async move {
            let mut answered: BTreeMap<String, (String, Vec<Answer>)> = BTreeMap::new();
            while (answered.len() as u64) < PER_NODE {
                let d = tokio::time::timeout(Duration::from_secs(120), node.link.receive())
                    .await
                    .unwrap_or_else(|_| panic!("{c}: only {} answers", answered.len()))
                    .expect("receive");
                let opened = node
                    .verifier
                    .open_redelivered(&d.bytes, &PeerIdentity::Hub)
                    .expect("the node accepts the hub's answer");
                let m = decode(opened.body, &Limits::default()).expect("decodes");
                d.ack().await.expect("ack");
                let Message::CD205C(r) = &m else {
                    panic!("expected a CD205C, got {}", m.message_type());
                };
                let key = r.correlation_identifier.clone().expect("correlation");
                let value = (r.message_identification.clone(), answers(&m));
                if let Some(before) = answered.insert(key, value.clone()) {
                    assert_eq!(before, value, "a redelivered answer is the same message");
                }
            }
            answered
        });
    }
    let mut sends = tokio::task::JoinSet::new();
    for i in 0..PER_NODE * 3 {
        let country = COUNTRIES[(i % 3) as usize];
        let m = mrn(country.as_str(), 200 + i);
        let id = format!("{country}-PAR-{i}");
        let body = cd203c(
            &id,
            country.as_str(),
            &m,
            SMALL_HOLDER,
            &[(SMALL, "1000.00", "USD")],
        );
        let node = w.nodes[&country].clone();
        sends.spawn(async move { send_as(&node, country, &id, "CD203C", &m, &body).await });
    }
    while let Some(done) = sends.join_next().await {
        done.expect("send task");
    }
    let mut all = Vec::new();
    while let Some(done) = readers.join_next().await {
        all.extend(
            done.expect("reader task")
                .into_values()
                .flat_map(|(_, a)| a),
        );
    }
    let accepted = all.iter().filter(|a| a.accepted).count();
    let refused = all
        .iter()
        .filter(|a| !a.accepted && a.reason == Some(Why::InsufficientBalance))
        .count();
    assert_eq!((accepted, refused), (30, 171));
    eprintln!(
        "{db:?}: {} CD203C through the hub, answered in {:.2} s",
        PER_NODE * 3,
        started.elapsed().as_secs_f64()
    );
    assert_eq!(w.in_use(SMALL).await, dec("30000.00"));
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_concurrent_requests_from_three_nodes() {
    concurrent_through_the_hub(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_concurrent_requests_from_three_nodes() {
    concurrent_through_the_hub(Db::Postgres).await;
}

// ----------------------------------------------------------------------------------- restart

async fn restart_between_reserve_and_credit(db: Db) {
    let Some(w) = world(db).await else { return };
    let (kz, az) = (CountryCode::KZ, CountryCode::AZ);
    let m = mrn("KZ", 300);
    let got = w
        .use_guarantee(
            kz,
            "KZ-R-1",
            &m,
            SMALL_HOLDER,
            &[(SMALL, "12345.67", "USD")],
        )
        .await;
    assert_eq!(got, vec![accepted(SMALL, "12345.67")]);
    let w = w.restart().await;
    w.drain_redelivered(kz).await;
    assert_eq!(w.in_use(SMALL).await, dec("12345.67"));
    // The balance after the restart is the one reservations are checked against.
    let m2 = mrn("AZ", 301);
    let got = w
        .use_guarantee(
            az,
            "AZ-R-2",
            &m2,
            SMALL_HOLDER,
            &[(SMALL, "17654.34", "USD")],
        )
        .await;
    assert_eq!(
        got,
        vec![refused(SMALL, Some(Why::InsufficientBalance), Some("USD"))]
    );
    let body = release_message("CD209C", "KZ-R-WO", "KZ", &m, &[SMALL]);
    w.send(kz, "KZ-R-WO", "CD209C", &m, &body).await;
    w.nothing_for(kz).await;
    assert_eq!(w.in_use(SMALL).await, Decimal::ZERO);
    let v = w.contract(SMALL).await;
    let first = &v["movements"][0];
    assert_eq!(first["mrn"], m.as_str());
    assert_eq!(first["status"], "released");
    assert_eq!(first["released_by"], "CD209C");
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_restart_between_reserve_and_credit() {
    restart_between_reserve_and_credit(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_restart_between_reserve_and_credit() {
    restart_between_reserve_and_credit(Db::Postgres).await;
}

// ------------------------------------------------------ answer lost after the journal commit

/// A transport whose next `send` can be made to fail (the link dropped after the journal
/// commit), recording what it sends.
#[derive(Debug, Default)]
struct FlakyTransport {
    fail_next_send: std::sync::atomic::AtomicBool,
    sent: std::sync::Mutex<Vec<Outbound>>,
}

impl Transport for FlakyTransport {
    fn send(
        &self,
        msg: Outbound,
    ) -> impl std::future::Future<Output = Result<(), cats_transport::contract::TransportError>> + Send
    {
        let fail = self
            .fail_next_send
            .swap(false, std::sync::atomic::Ordering::SeqCst);
        if !fail {
            self.sent.lock().expect("lock").push(msg);
        }
        async move {
            if fail {
                Err(cats_transport::contract::TransportError::Disconnected(
                    "test".into(),
                ))
            } else {
                Ok(())
            }
        }
    }

    async fn receive(
        &self,
    ) -> Result<cats_transport::contract::Delivery, cats_transport::contract::TransportError> {
        Err(cats_transport::contract::TransportError::Closed)
    }
}

#[derive(Debug)]
struct Acks(Arc<std::sync::Mutex<u32>>);

type Settling = std::pin::Pin<
    Box<
        dyn std::future::Future<Output = Result<(), cats_transport::contract::TransportError>>
            + Send,
    >,
>;

impl cats_transport::contract::Acknowledger for Acks {
    fn ack(self: Box<Self>) -> Settling {
        *self.0.lock().expect("lock") += 1;
        Box::pin(async { Ok(()) })
    }
    fn reject(self: Box<Self>, reason: String) -> Settling {
        panic!("rejected: {reason}");
    }
}

/// The CD205C cannot be sent after the commit: the CD203C stays owed; its redelivery sends the
/// journalled CD205C (the same bytes), once, and reserves nothing more.
async fn answer_sent_on_redelivery(db: Db) {
    use cats_hub::pipeline::{HubServices, Outcome, Pipeline};
    let dir = tempfile::tempdir().expect("tempdir");
    let files = DevPki::init(&dir.path().join("pki"), &[CountryCode::KZ], false).expect("PKI");
    let Some(url) = database_url(db, dir.path()).await else {
        return;
    };
    let store = HubStore::connect(&url).await.expect("store");
    let trust = TrustStore::load(&files.ca.cert, Some(&files.allow_list)).expect("trust");
    let services = Arc::new(HubServices {
        store: store.clone(),
        verifier: Verifier::new(trust, Duration::from_secs(300)),
        signer: Signer::load(&files.hub_signer.cert, &files.hub_signer.key).expect("hub signer"),
        reference: ReferenceData::pilot(),
        ledger: Default::default(),
        metrics: Arc::new(cats_hub::metrics::Metrics::new()),
        limits: Limits::default(),
    });
    let transport = Arc::new(FlakyTransport::default());
    let pipeline = Pipeline::new(transport.clone(), services);
    let kz = CountryCode::KZ;
    let s = files.signers.get(&kz).expect("KZ signer");
    let signer = Signer::load(&s.cert, &s.key).expect("signer");
    let m = mrn("KZ", 400);
    let body = cd203c(
        "KZ-LOST-1",
        "KZ",
        &m,
        SMALL_HOLDER,
        &[(SMALL, "500.00", "USD")],
    );
    let fields = EnvelopeHeaderFields {
        message_id: "KZ-LOST-1".into(),
        message_type: "CD203C".into(),
        sender: PeerIdentity::Node(kz),
        recipient: PeerIdentity::Hub,
        correlation_id: None,
        mrn: Some(m.clone()),
        prepared_at: chrono::Utc::now(),
    };
    let wire = Bytes::from(signer.seal(&fields, &body).expect("seal"));
    let acks = Arc::new(std::sync::Mutex::new(0u32));
    let delivery = || {
        cats_transport::contract::Delivery::new(
            PeerIdentity::Node(kz),
            "KZ-LOST-1".into(),
            Some(m.clone()),
            wire.clone(),
            false,
            Box::new(Acks(acks.clone())),
        )
    };

    transport
        .fail_next_send
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let first = pipeline.process(delivery()).await;
    assert!(first.is_err(), "{first:?}");
    assert_eq!(*acks.lock().expect("lock"), 0, "left owed");
    assert!(transport.sent.lock().expect("lock").is_empty());
    // The reservation and the answer are committed with the request.
    assert_eq!(journal::size(&store).await.expect("size"), 2);
    let answer = journal::entry(&store, 2)
        .await
        .expect("read")
        .expect("CD205C entry");
    assert_eq!(answer.entry.message_type, "CD205C");

    let again = pipeline.process(delivery()).await.expect("processed");
    assert_eq!(again, Outcome::Duplicate { sequence: 1 });
    let third = pipeline.process(delivery()).await.expect("processed");
    assert_eq!(third, Outcome::Duplicate { sequence: 1 });
    {
        let sent = transport.sent.lock().expect("lock");
        assert_eq!(sent.len(), 1, "sent once");
        assert_eq!(sent[0].destination, Destination::Node(kz));
        assert_eq!(sent[0].bytes.as_ref(), answer.entry.envelope.as_slice());
    }
    assert_eq!(*acks.lock().expect("lock"), 2);
    assert_eq!(journal::size(&store).await.expect("size"), 2);
    let grn = Grn::parse(SMALL).expect("grn");
    let v = guarantee::guarantee(&store, &grn, chrono::Utc::now().date_naive())
        .await
        .expect("query")
        .expect("known");
    assert_eq!(v.in_use, dec("500.00"));
    journal::verify(&store).await.expect("chain verifies");
    store.close().await;
}

#[tokio::test]
async fn sqlite_answer_sent_on_redelivery() {
    answer_sent_on_redelivery(Db::Sqlite).await;
}

#[tokio::test]
async fn postgres_answer_sent_on_redelivery() {
    answer_sent_on_redelivery(Db::Postgres).await;
}

// ------------------------------------------------------------------ currencies and insurers

const KZ_INSURER: &str = "KZ990140000123";
const AZ_INSURER: &str = "AZ1700456789";

fn new_grn(sequence: u64) -> String {
    let office = CustomsOfficeRef::parse("KZ000101").expect("office");
    Grn::generate(26, &office, 900_000 + sequence)
        .expect("GRN")
        .to_string()
}

fn contract_json(
    id: &str,
    grn: &str,
    from: &str,
    until: &str,
    amount: &str,
    currency: &str,
) -> serde_json::Value {
    serde_json::json!({
        "contract_id": id, "grn": grn, "holders": [SMALL_HOLDER],
        "valid_from": from, "valid_until": until,
        "insured_amount": amount, "currency": currency,
        "terms": "Comprehensive guarantee for CATS transit, KZ-AZ-GE."
    })
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("JSON ({e}): {body}"))
}

/// The `contracts` of an insurer's view, by contract id.
async fn view_of(w: &World, token: &str) -> BTreeMap<String, serde_json::Value> {
    let (status, body) = w
        .http("GET", "/api/v1/insurer/contracts", Some(token), None)
        .await;
    assert_eq!(status, 200, "{body}");
    json(&body)["contracts"]
        .as_array()
        .expect("contracts")
        .iter()
        .map(|c| {
            (
                c["contract"]["contract_id"]
                    .as_str()
                    .expect("id")
                    .to_owned(),
                c.clone(),
            )
        })
        .collect()
}

async fn submissions_count(w: &World, token: &str) -> usize {
    let (status, body) = w
        .http(
            "GET",
            "/api/v1/insurance-contracts/submissions",
            Some(token),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    json(&body)["submissions"].as_array().expect("list").len()
}

async fn currencies_and_insurers(db: Db) {
    use cats_hub::guarantee::LedgerPolicy;
    use cats_hub::insurer::{self, Principal};
    let Some(w) = world(db).await else { return };
    let kz = CountryCode::KZ;
    let store = w.hub.services.store.clone();
    let reference = ReferenceData::pilot();
    let issue = |p: Principal| {
        let (store, reference) = (store.clone(), reference.clone());
        async move { insurer::issue_credential(&store, &reference, &p).await }
    };
    let kz_token = issue(Principal::Insurer(KZ_INSURER.into()))
        .await
        .expect("KZ insurer");
    let az_token = issue(Principal::Insurer(AZ_INSURER.into()))
        .await
        .expect("AZ insurer");
    let admin = issue(Principal::Administrator("ops".into()))
        .await
        .expect("admin");
    let e = issue(Principal::Insurer("KZ000000000000".into()))
        .await
        .expect_err("not an approved insurer");
    assert_eq!(e.code(), "contract.insurer");

    // Currencies: EUR and KZT converted to the contract's USD, the rate in the CD205C.
    let m_eur = mrn("KZ", 501);
    let got = w
        .use_guarantee(
            kz,
            "KZ-EUR-1",
            &m_eur,
            BIG_HOLDER,
            &[(BIG, "100.00", "EUR")],
        )
        .await;
    assert_eq!(
        got,
        vec![Answer {
            rate: Some(dec("1.086956522")),
            ..accepted(BIG, "108.70")
        }]
    );
    let m_kzt = mrn("KZ", 502);
    let got = w
        .use_guarantee(
            kz,
            "KZ-KZT-1",
            &m_kzt,
            BIG_HOLDER,
            &[(BIG, "1000000.00", "KZT")],
        )
        .await;
    assert_eq!(
        got,
        vec![Answer {
            rate: Some(dec("0.002081165")),
            ..accepted(BIG, "2081.17")
        }]
    );
    assert_eq!(w.in_use(BIG).await, dec("2189.87"));
    let in_use_before = w.in_use(BIG).await;
    let got = w
        .use_guarantee(
            kz,
            "KZ-CHF-1",
            &mrn("KZ", 503),
            BIG_HOLDER,
            &[(BIG, "5.00", "CHF")],
        )
        .await;
    assert_eq!(got, vec![refused(BIG, None, Some("USD"))]);
    assert_eq!(
        w.in_use(BIG).await,
        in_use_before,
        "a refusal changes nothing"
    );

    // The insurer's view: its own contracts only, each movement with amounts and rate.
    let (status, body) = w.http("GET", "/api/v1/insurer/contracts", None, None).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(json(&body)["code"], "auth.missing-token");
    let (status, _) = w
        .http(
            "GET",
            "/api/v1/insurer/contracts",
            Some("not-a-token"),
            None,
        )
        .await;
    assert_eq!(status, 401);
    let mine = view_of(&w, &kz_token).await;
    assert!(mine.contains_key("KZ-CG-2026-0001"), "{mine:?}");
    assert!(
        mine.keys().all(|k| k.starts_with("KZ-")),
        "{:?}",
        mine.keys()
    );
    let big = &mine["KZ-CG-2026-0001"];
    assert_eq!(big["insured_amount"], "100000000.00");
    assert_eq!(big["in_use"], "2189.87");
    assert_eq!(big["available"], "99997810.13");
    let eur = big["movements"]
        .as_array()
        .expect("movements")
        .iter()
        .find(|m| m["mrn"] == m_eur.as_str())
        .expect("the EUR movement");
    assert_eq!(
        (
            &eur["amount"],
            &eur["currency"],
            &eur["declared_amount"],
            &eur["declared_currency"]
        ),
        (
            &serde_json::json!("108.70"),
            &serde_json::json!("USD"),
            &serde_json::json!("100.00"),
            &serde_json::json!("EUR")
        )
    );
    assert_eq!(eur["exchange_rate"], "1.086956522");
    assert_eq!(eur["status"], "reserved");
    assert!(eur["requested_at"].is_string());
    let theirs = view_of(&w, &az_token).await;
    assert_eq!(theirs.keys().collect::<Vec<_>>(), vec!["AZ-CG-2026-0001"]);
    let (status, body) = w
        .http(
            "GET",
            "/api/v1/insurer/contracts/KZ-CG-2026-0001",
            Some(&az_token),
            None,
        )
        .await;
    assert_eq!(
        status, 404,
        "another insurer's contract is unknown to it: {body}"
    );
    assert_eq!(view_of(&w, &admin).await.len(), 6);

    // Submissions: each bad one refused with its code, nothing recorded.
    let g1 = new_grn(1);
    let bad = [
        (
            contract_json(
                "KZ-CG-2027-0101",
                BIG,
                "2027-01-01",
                "2027-12-31",
                "1000.00",
                "USD",
            ),
            "contract.overlap",
        ),
        (
            contract_json(
                "KZ-CG-2027-0101",
                &g1,
                "2027-01-01",
                "2027-12-31",
                "0",
                "USD",
            ),
            "contract.amount",
        ),
        (
            contract_json(
                "KZ-CG-2027-0101",
                &g1,
                "2027-01-01",
                "2027-12-31",
                "-10.00",
                "USD",
            ),
            "contract.amount",
        ),
        (
            contract_json(
                "KZ-CG-2027-0101",
                &g1,
                "2027-01-01",
                "2027-12-31",
                "ten",
                "USD",
            ),
            "contract.amount",
        ),
        (
            contract_json(
                "KZ-CG-2027-0101",
                &g1,
                "2027-01-01",
                "2027-12-31",
                "1000.00",
                "CHF",
            ),
            "contract.currency",
        ),
        (
            contract_json(
                "KZ-CG-2027-0101",
                &g1,
                "2027-12-31",
                "2027-01-01",
                "1000.00",
                "USD",
            ),
            "contract.period",
        ),
        (
            contract_json(
                "KZ-CG-2026-0001",
                &g1,
                "2027-01-01",
                "2027-12-31",
                "1000.00",
                "USD",
            ),
            "contract.duplicate",
        ),
        (
            contract_json(
                "KZ-CG-2027-0101",
                "26KZ000101CG00057",
                "2027-01-01",
                "2027-12-31",
                "1000.00",
                "USD",
            ),
            "contract.grn",
        ),
    ];
    for (body, code) in &bad {
        let (status, answer) = w
            .http(
                "POST",
                "/api/v1/insurance-contracts",
                Some(&kz_token),
                Some(body),
            )
            .await;
        assert_eq!(
            (status, json(&answer)["code"].as_str()),
            (422, Some(*code)),
            "{body}: {answer}"
        );
    }
    let mut no_holder = contract_json(
        "KZ-CG-2027-0101",
        &g1,
        "2027-01-01",
        "2027-12-31",
        "1000.00",
        "USD",
    );
    no_holder["holders"] = serde_json::json!([]);
    let (status, answer) = w
        .http(
            "POST",
            "/api/v1/insurance-contracts",
            Some(&kz_token),
            Some(&no_holder),
        )
        .await;
    assert_eq!(
        (status, json(&answer)["code"].as_str()),
        (422, Some("contract.holders"))
    );
    let e = insurer::submit(
        &store,
        &reference,
        "KZ000000000000",
        &serde_json::from_value(contract_json(
            "KZ-CG-2027-0101",
            &g1,
            "2026-01-01",
            "2027-12-31",
            "100.00",
            "USD",
        ))
        .expect("submission"),
        &insurer::Channel::Api,
    )
    .await
    .expect_err("unknown insurer");
    assert_eq!(e.code(), "contract.insurer");
    let good = contract_json(
        "KZ-CG-2026-0101",
        &g1,
        "2026-01-01",
        "2027-12-31",
        "100.00",
        "USD",
    );
    let (status, _) = w
        .http(
            "POST",
            "/api/v1/insurance-contracts",
            Some(&admin),
            Some(&good),
        )
        .await;
    assert_eq!(status, 403, "an administrator does not submit contracts");
    assert_eq!(submissions_count(&w, &admin).await, 0, "nothing recorded");

    // A good submission; not usable before approval.
    let (status, body) = w
        .http(
            "POST",
            "/api/v1/insurance-contracts",
            Some(&kz_token),
            Some(&good),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let sub = json(&body);
    assert_eq!(sub["status"], "submitted");
    let id = sub["submission_id"].as_i64().expect("id");
    let (status, body) = w
        .http(
            "POST",
            "/api/v1/insurance-contracts",
            Some(&kz_token),
            Some(&contract_json(
                "KZ-CG-2026-0102",
                &g1,
                "2027-06-01",
                "2028-12-31",
                "100.00",
                "USD",
            )),
        )
        .await;
    assert_eq!(
        (status, json(&body)["code"].as_str()),
        (422, Some("contract.overlap")),
        "overlaps the pending one"
    );
    assert_eq!(submissions_count(&w, &az_token).await, 0);
    let got = w
        .use_guarantee(
            kz,
            "KZ-NEW-0",
            &mrn("KZ", 600),
            SMALL_HOLDER,
            &[(g1.as_str(), "10.00", "USD")],
        )
        .await;
    assert_eq!(got, vec![refused(&g1, Some(Why::UnknownGrn), None)]);

    // The administrator decides; the insurer may not.
    let approve = format!("/api/v1/insurance-contracts/submissions/{id}/approve");
    let (status, _) = w.http("POST", &approve, Some(&kz_token), None).await;
    assert_eq!(status, 403);
    let (status, body) = w.http("POST", &approve, Some(&admin), None).await;
    assert_eq!(status, 200, "{body}");
    let decided = json(&body);
    assert_eq!(decided["submission"]["status"], "approved");
    let ca002c = decided["ca002c"].as_str().expect("CA002C");
    match decode(ca002c.as_bytes(), &Limits::default()).expect("a valid CA002C") {
        Message::CA002C(m) => {
            assert_eq!(
                m.insurance_contract_status.contract_identifier,
                "KZ-CG-2026-0101"
            );
            assert_eq!(m.insurance_contract_status.grn, g1);
        }
        other => panic!("expected a CA002C, got {}", other.message_type()),
    }
    let (status, body) = w.http("POST", &approve, Some(&admin), None).await;
    assert_eq!(
        (status, json(&body)["code"].as_str()),
        (409, Some("submission.decided"))
    );

    // Refused with a reason (and a refusal without one is refused).
    let g2 = new_grn(2);
    let (_, body) = w
        .http(
            "POST",
            "/api/v1/insurance-contracts",
            Some(&kz_token),
            Some(&contract_json(
                "KZ-CG-2026-0201",
                &g2,
                "2026-01-01",
                "2026-12-31",
                "50.00",
                "EUR",
            )),
        )
        .await;
    let id2 = json(&body)["submission_id"].as_i64().expect("id");
    let refuse = format!("/api/v1/insurance-contracts/submissions/{id2}/refuse");
    let (status, _) = w.http("POST", &refuse, Some(&admin), None).await;
    assert_eq!(status, 422);
    let (status, body) = w
        .http(
            "POST",
            &refuse,
            Some(&admin),
            Some(&serde_json::json!({"reason": "holder unknown to the insurer's country"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["submission"]["status"], "refused");
    assert_eq!(submissions_count(&w, &kz_token).await, 2);

    // The approved contract guarantees; thresholds 80 % and 100 % notified once per crossing.
    let new = |i: u64| mrn("KZ", 700 + i);
    for (i, amount, want) in [
        (0, "60.00", true),
        (1, "25.00", true),
        (2, "15.00", true),
        (3, "0.01", false),
    ] {
        let got = w
            .use_guarantee(
                kz,
                &format!("KZ-NEW-{}", i + 1),
                &new(i),
                SMALL_HOLDER,
                &[(g1.as_str(), amount, "USD")],
            )
            .await;
        assert_eq!(got[0].accepted, want, "{i}: {got:?}");
    }
    let notes = |token: String| {
        let w = &w;
        async move {
            let (status, body) = w
                .http("GET", "/api/v1/guarantee-notifications", Some(&token), None)
                .await;
            assert_eq!(status, 200, "{body}");
            json(&body)["notifications"]
                .as_array()
                .expect("list")
                .clone()
        }
    };
    let seen = notes(kz_token.clone()).await;
    let thresholds: Vec<(&str, &str)> = seen
        .iter()
        .map(|n| {
            (
                n["threshold"].as_str().unwrap_or(""),
                n["mrn"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        thresholds,
        vec![("80", new(1).as_str()), ("100", new(2).as_str())]
    );
    // Down below 80 % and up again: a new crossing.
    let body = release_message("CD209C", "KZ-NEW-W1", "KZ", &new(1), &[g1.as_str()]);
    w.send(kz, "KZ-NEW-W1", "CD209C", &new(1), &body).await;
    let mut waited = 0;
    while w.in_use(&g1).await != dec("75.00") {
        waited += 1;
        assert!(waited < 100, "the credit is applied");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = w
        .use_guarantee(
            kz,
            "KZ-NEW-9",
            &new(9),
            SMALL_HOLDER,
            &[(g1.as_str(), "5.00", "USD")],
        )
        .await;
    assert!(got[0].accepted);
    assert_eq!(notes(kz_token.clone()).await.len(), 3);
    assert!(notes(az_token.clone()).await.is_empty());

    // Enquiries and liabilities, with the clock passed in.
    let policy = LedgerPolicy::default();
    let now = chrono::Utc::now();
    let early = insurer::sweep(&store, &policy, now).await.expect("sweep");
    assert_eq!(early.enquiries_opened, 0, "nothing is overdue yet");
    let later = now + chrono::Duration::days(9);
    let swept = insurer::sweep(&store, &policy, later).await.expect("sweep");
    assert!(swept.enquiries_opened >= 4, "{swept:?}");
    assert_eq!(
        insurer::sweep(&store, &policy, later)
            .await
            .expect("again")
            .enquiries_opened,
        0
    );
    // The movement written off now closes its enquiry.
    let body = release_message("CD209C", "KZ-NEW-W2", "KZ", &new(0), &[g1.as_str()]);
    w.send(kz, "KZ-NEW-W2", "CD209C", &new(0), &body).await;
    while w.in_use(&g1).await != dec("20.00") {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let claimed = insurer::sweep(&store, &policy, later + chrono::Duration::days(29))
        .await
        .expect("sweep");
    assert!(claimed.liabilities_claimed >= 2, "{claimed:?}");
    let view = view_of(&w, &kz_token).await;
    let c = &view["KZ-CG-2026-0101"];
    assert_eq!(c["in_use"], "20.00");
    let enquiries: BTreeMap<String, String> = c["enquiries"]
        .as_array()
        .expect("enquiries")
        .iter()
        .map(|e| {
            (
                e["mrn"].as_str().unwrap_or("").to_owned(),
                e["status"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(enquiries.get(&new(0)).map(String::as_str), Some("resolved"));
    assert_eq!(
        enquiries.get(&new(2)).map(String::as_str),
        Some("liability")
    );
    let liabilities = c["liabilities"].as_array().expect("liabilities").clone();
    assert_eq!(liabilities.len(), 2, "{liabilities:?}");
    assert!(liabilities.iter().all(|l| l["state"] == "claimed"));
    let l1 = liabilities[0]["liability_id"].as_i64().expect("id");
    let l2 = liabilities[1]["liability_id"].as_i64().expect("id");
    let step = |id: i64, action: &'static str, token: String| {
        let w = &w;
        async move {
            let (status, body) = w
                .http(
                    "POST",
                    &format!("/api/v1/liabilities/{id}/{action}"),
                    Some(&token),
                    None,
                )
                .await;
            (status, json(&body))
        }
    };
    let illegal = |(status, body): (u16, serde_json::Value)| {
        assert_eq!(
            (status, body["code"].as_str()),
            (409, Some("liability.illegal-transition")),
            "{body}"
        );
    };
    illegal(step(l1, "notify", kz_token.clone()).await);
    illegal(step(l1, "pay", admin.clone()).await);
    let (status, body) = step(l1, "notify", admin.clone()).await;
    assert_eq!(
        (status, body["state"].as_str()),
        (200, Some("notified")),
        "{body}"
    );
    let (status, _) = step(l1, "pay", az_token.clone()).await;
    assert_eq!(status, 404, "another insurer's liability");
    let (status, body) = step(l1, "pay", kz_token.clone()).await;
    assert_eq!(
        (status, body["state"].as_str()),
        (200, Some("paid")),
        "{body}"
    );
    illegal(step(l1, "dispute", kz_token.clone()).await);
    step(l2, "notify", admin.clone()).await;
    let (_, body) = step(l2, "dispute", kz_token.clone()).await;
    assert_eq!(body["state"], "disputed");
    illegal(step(l2, "pay", kz_token.clone()).await);
    let (_, body) = step(l2, "pay", admin.clone()).await;
    assert_eq!(body["state"], "paid");
    let trail = insurer::audit_trail(&store, &format!("liability:{l2}"))
        .await
        .expect("audit");
    let actions: Vec<(&str, &str)> = trail
        .iter()
        .map(|a| (a.action.as_str(), a.actor.as_str()))
        .collect();
    assert_eq!(
        actions,
        vec![
            ("claimed", "hub"),
            ("notified", "administrator:ops"),
            ("disputed", "insurer:KZ990140000123"),
            ("paid", "administrator:ops")
        ]
    );
    let (status, _) = step(99_999, "notify", admin.clone()).await;
    assert_eq!(status, 404);
    cats_hub::verify_journal(&w.url)
        .await
        .expect("journal verifies");
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_currencies_and_insurers() {
    currencies_and_insurers(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_currencies_and_insurers() {
    currencies_and_insurers(Db::Postgres).await;
}

fn ca001c(id: &str, contract: &str, grn: &str, from: &str, until: &str, amount: &str) -> Vec<u8> {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<adm:CA001C xmlns:adm="urn:carec:cats:admin:1">
  <messageSender>NTA.KZ</messageSender>
  <messageRecipient>CATS.HUB</messageRecipient>
  <preparationDateAndTime>2026-03-16T09:30:00</preparationDateAndTime>
  <messageIdentification>{id}</messageIdentification>
  <messageType>CA001C</messageType>
  <InsuranceContract>
    <contractIdentifier>{contract}</contractIdentifier>
    <GRN>{grn}</GRN>
    <insurerIdentificationNumber>{KZ_INSURER}</insurerIdentificationNumber>
    <Holder><sequenceNumber>1</sequenceNumber><identificationNumber>{SMALL_HOLDER}</identificationNumber></Holder>
    <policyStartDate>{from}</policyStartDate>
    <policyEndDate>{until}</policyEndDate>
    <insuredAmount>{amount}</insuredAmount>
    <currency>USD</currency>
  </InsuranceContract>
</adm:CA001C>"#
    )
    .into_bytes()
}

/// A contract submitted by a CA001C through the KZ node: refused at once with a CA002C when it
/// is wrong, otherwise recorded and answered with a CA002C when the administrator decides.
async fn contract_submitted_by_message(db: Db) {
    use cats_hub::insurer::{self, Principal};
    let Some(w) = world(db).await else { return };
    let kz = CountryCode::KZ;
    let store = w.hub.services.store.clone();
    let admin = insurer::issue_credential(
        &store,
        &ReferenceData::pilot(),
        &Principal::Administrator("ops".into()),
    )
    .await
    .expect("admin");
    let send = |id: &'static str, body: Vec<u8>| {
        let node = w.nodes[&kz].clone();
        async move {
            let fields = EnvelopeHeaderFields {
                message_id: id.into(),
                message_type: "CA001C".into(),
                sender: PeerIdentity::Node(kz),
                recipient: PeerIdentity::Hub,
                correlation_id: None,
                mrn: None,
                prepared_at: chrono::Utc::now(),
            };
            let wire = Bytes::from(node.signer.seal(&fields, &body).expect("seal"));
            node.link
                .send(Outbound {
                    message_id: id.into(),
                    destination: Destination::Hub,
                    partition_key: None,
                    bytes: wire,
                })
                .await
                .expect("hub takes the message");
        }
    };
    let status = |m: Message| match m {
        Message::CA002C(m) => m,
        other => panic!("expected a CA002C, got {}", other.message_type()),
    };
    // Overlapping the pilot contract of its GRN: refused at once, nothing recorded.
    send(
        "KZ-CA-1",
        ca001c(
            "KZ-CA-1",
            "KZ-CG-2027-0301",
            BIG,
            "2027-01-01",
            "2027-12-31",
            "5000.00",
        ),
    )
    .await;
    let refused = status(w.next(kz).await);
    assert_eq!(refused.correlation_identifier.as_deref(), Some("KZ-CA-1"));
    assert_eq!(
        refused.insurance_contract_status.status,
        message_catalog::generated::admin::ContractStatusCode::Refused
    );
    let reason = refused.insurance_contract_status.reason.unwrap_or_default();
    assert!(reason.starts_with("contract.overlap"), "{reason}");
    let (_, body) = w
        .http(
            "GET",
            "/api/v1/insurance-contracts/submissions",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(json(&body)["submissions"].as_array().map(Vec::len), Some(0));

    // A good one: recorded; approved by the administrator; the node hears it.
    let g = new_grn(3);
    send(
        "KZ-CA-2",
        ca001c(
            "KZ-CA-2",
            "KZ-CG-2026-0301",
            &g,
            "2026-01-01",
            "2027-12-31",
            "5000.00",
        ),
    )
    .await;
    let mut id = None;
    for _ in 0..100 {
        let (_, body) = w
            .http(
                "GET",
                "/api/v1/insurance-contracts/submissions",
                Some(&admin),
                None,
            )
            .await;
        if let Some(s) = json(&body)["submissions"]
            .as_array()
            .and_then(|l| l.first().cloned())
        {
            assert_eq!(s["channel"], "CA001C");
            id = s["submission_id"].as_i64();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let id = id.expect("the CA001C is recorded");
    let (status_code, body) = w
        .http(
            "POST",
            &format!("/api/v1/insurance-contracts/submissions/{id}/approve"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status_code, 200, "{body}");
    assert!(json(&body)["ca002c_sent"].is_string(), "{body}");
    let approved = status(w.next(kz).await);
    assert_eq!(approved.correlation_identifier.as_deref(), Some("KZ-CA-2"));
    assert_eq!(
        approved.insurance_contract_status.status,
        message_catalog::generated::admin::ContractStatusCode::Approved
    );
    assert_eq!(approved.insurance_contract_status.grn, g);
    let got = w
        .use_guarantee(
            kz,
            "KZ-CA-USE",
            &mrn("KZ", 800),
            SMALL_HOLDER,
            &[(g.as_str(), "4000.00", "USD")],
        )
        .await;
    assert_eq!(got, vec![accepted(&g, "4000.00")]);
    cats_hub::verify_journal(&w.url)
        .await
        .expect("journal verifies");
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_contract_submitted_by_message() {
    contract_submitted_by_message(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_contract_submitted_by_message() {
    contract_submitted_by_message(Db::Postgres).await;
}

fn cc034c_from_node(id: &str, requester: &str, grn: &str) -> Vec<u8> {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<ncts:CC034C xmlns:ncts="http://ncts.dgtaxud.ec">
  <messageSender>NTA.KZ</messageSender>
  <messageRecipient>CATS.HUB</messageRecipient>
  <preparationDateAndTime>2026-03-16T09:30:00</preparationDateAndTime>
  <messageIdentification>{id}</messageIdentification>
  <messageType>CC034C</messageType>
  <correlationIdentifier>NAT-{id}</correlationIdentifier>
  <Requester><identificationNumber>{requester}</identificationNumber><role>1</role></Requester>
  <GuaranteeReference>
    <sequenceNumber>1</sequenceNumber>
    <GRN>{grn}</GRN>
    <GuaranteeQuery><queryIdentifier>1</queryIdentifier></GuaranteeQuery>
    <AccessCode><accessCode>AC01</accessCode></AccessCode>
  </GuaranteeReference>
</ncts:CC034C>"#
    )
    .into_bytes()
}

/// A node's CC034C: the ledger answers with a CC037C (exposure, reservations held, balance);
/// an unknown GRN or a requester the contract does not cover gets a CD906C and no balance.
async fn balance_query(db: Db) {
    let Some(w) = world(db).await else { return };
    let kz = CountryCode::KZ;
    let m1 = mrn("KZ", 901);
    let got = w
        .use_guarantee(
            kz,
            "KZ-Q-USE",
            &m1,
            SMALL_HOLDER,
            &[(SMALL, "1250.50", "EUR")],
        )
        .await;
    assert!(got[0].accepted, "{got:?}");
    let send = |id: &'static str, body: Vec<u8>| {
        let node = w.nodes[&kz].clone();
        async move {
            let fields = EnvelopeHeaderFields {
                message_id: id.into(),
                message_type: "CC034C".into(),
                sender: PeerIdentity::Node(kz),
                recipient: PeerIdentity::Hub,
                correlation_id: None,
                mrn: None,
                prepared_at: chrono::Utc::now(),
            };
            let wire = Bytes::from(node.signer.seal(&fields, &body).expect("seal"));
            node.link
                .send(Outbound {
                    message_id: id.into(),
                    destination: Destination::Hub,
                    partition_key: None,
                    bytes: wire,
                })
                .await
                .expect("hub takes the message");
        }
    };
    send("KZ-Q-1", cc034c_from_node("KZ-Q-1", SMALL_HOLDER, SMALL)).await;
    let Message::CC037C(a) = w.next(kz).await else {
        panic!("expected a CC037C");
    };
    assert_eq!(a.correlation_identifier.as_deref(), Some("NAT-KZ-Q-1"));
    let r = &a.guarantee_reference[0];
    assert_eq!(r.grn, SMALL);
    let e = r.exposure.as_ref().expect("exposure");
    // 1,250.50 EUR at 0.92 EUR/USD: 1,359.24 USD in use of 30,000.00.
    assert_eq!(
        (e.exposure, e.exposure_counter, e.balance),
        (dec("1359.24"), 1, Some(dec("28640.76")))
    );
    assert_eq!(e.currency, "USD");
    for (id, requester, grn, label) in [
        (
            "KZ-Q-2",
            SMALL_HOLDER,
            UNKNOWN,
            "no insurance contract has GRN",
        ),
        ("KZ-Q-3", AZ_HOLDER, SMALL, "does not cover AZ1234567890"),
    ] {
        send(id, cc034c_from_node(id, requester, grn)).await;
        // No MRN, so the refusal is a CD917C (as for any refused message without one); it
        // points at the GRN and says why.
        let nack = w.next(kz).await;
        let Message::CD917C(n) = &nack else {
            panic!("{id}: expected a CD917C, got {}", nack.message_type());
        };
        assert_eq!(n.correlation_identifier.as_deref(), Some(id));
        let errors: Vec<(Option<String>, String)> = n
            .xml_error
            .iter()
            .map(|e| (e.error_pointer.clone(), e.error_text.clone()))
            .collect();
        assert!(
            errors.iter().any(
                |(p, r)| p.as_deref() == Some("/CC034C/GuaranteeReference[1]/GRN")
                    && r.contains(label)
            ),
            "{id}: {errors:?}"
        );
    }
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_balance_query() {
    balance_query(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_balance_query() {
    balance_query(Db::Postgres).await;
}

/// The version of the hub's reference data in force (`GET /api/v1/refs`).
async fn refs_version(w: &World) -> u64 {
    let (status, body) = w.http_get("/api/v1/refs").await;
    assert_eq!(status, 200, "{body}");
    json(&body)["version"].as_u64().expect("version")
}

/// The audited record changes of the versions after `since` (`GET /api/v1/refs/changes`), as
/// `(section, key, new status or rate)`.
async fn refs_changes(w: &World, since: u64) -> Vec<(String, String, serde_json::Value)> {
    let (status, body) = w
        .http_get(&format!("/api/v1/refs/changes?since={since}"))
        .await;
    assert_eq!(status, 200, "{body}");
    json(&body)["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| {
            let new = &c["new"];
            (
                c["section"].as_str().expect("section").to_owned(),
                c["key"].as_str().expect("key").to_owned(),
                new.get("status")
                    .or_else(|| new.get("rate"))
                    .cloned()
                    .unwrap_or(serde_json::Value::Null),
            )
        })
        .collect()
}

/// Takes what each node receives (only reference-data updates are allowed) until it has
/// received version `version`, and returns, per node, the updates received so far, read.
async fn updates_everywhere(w: &World, version: u64) -> BTreeMap<CountryCode, Vec<Update>> {
    let mut out = BTreeMap::new();
    for c in COUNTRIES {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let read: Vec<Update> = w
                .updates(c)
                .iter()
                .map(|m| match m {
                    Message::CA005C(u) => read_update(u).expect("a CA005C the node can read"),
                    other => panic!("not a CA005C: {}", other.message_type()),
                })
                .collect();
            if read.last().is_some_and(|u| u.version >= version) {
                out.insert(c, read);
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{c} never received version {version}"
            );
            w.nothing_for(c).await;
        }
    }
    out
}

/// An approved contract is a reference-data version sent to every node; an administrator
/// suspends, reinstates and terminates it, and its insurer may terminate it too. Each step is a
/// version (audited, sent to every node) and a `contract:ID` audit row; the ledger refuses new
/// reservations on a suspended (`suspended`) or terminated (`expired`) contract, while a
/// reservation already held is released as usual. Bad steps are refused with their own code
/// and change nothing.
async fn contract_lifecycle(db: Db) {
    use cats_hub::insurer::{self, Principal};
    let Some(w) = world(db).await else { return };
    let kz = CountryCode::KZ;
    let store = w.hub.services.store.clone();
    let reference = ReferenceData::pilot();
    let issue = |p: Principal| {
        let (store, reference) = (store.clone(), reference.clone());
        async move { insurer::issue_credential(&store, &reference, &p).await }
    };
    let kz_token = issue(Principal::Insurer(KZ_INSURER.into()))
        .await
        .expect("KZ insurer");
    let az_token = issue(Principal::Insurer(AZ_INSURER.into()))
        .await
        .expect("AZ insurer");
    let admin = issue(Principal::Administrator("ops".into()))
        .await
        .expect("admin");

    // Approval makes the contract reference data.
    let v0 = refs_version(&w).await;
    let grn = new_grn(40);
    let id = "KZ-CG-2026-0401";
    let (status, body) = w
        .http(
            "POST",
            "/api/v1/insurance-contracts",
            Some(&kz_token),
            Some(&contract_json(
                id,
                &grn,
                "2026-01-01",
                "2030-12-31",
                "1000.00",
                "USD",
            )),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let submission = json(&body)["submission_id"].as_i64().expect("id");
    assert_eq!(
        refs_version(&w).await,
        v0,
        "a submission is not reference data"
    );
    let (status, body) = w
        .http(
            "POST",
            &format!("/api/v1/insurance-contracts/submissions/{submission}/approve"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let v1 = refs_version(&w).await;
    assert_eq!(v1, v0 + 1);
    let (_, body) = w.http_get("/api/v1/refs").await;
    let held = json(&body)["data"]["insurance_contracts"]
        .as_array()
        .expect("contracts")
        .iter()
        .find(|c| c["contract_id"] == id)
        .cloned()
        .expect("the approved contract is in the reference data");
    assert_eq!(
        (&held["grn"], &held["status"]),
        (&json!(grn), &json!("active"))
    );
    assert_eq!(
        refs_changes(&w, v0).await,
        vec![("contract".to_owned(), id.to_owned(), json!("active"))]
    );
    let every = updates_everywhere(&w, v1).await;
    for c in COUNTRIES {
        let u = every[&c].last().expect("the node received the new version");
        assert_eq!((u.version, u.previous), (v1, Some(v0)), "{c}");
        assert_eq!(
            u.change
                .insurance_contracts
                .iter()
                .map(|c| c.contract_id.as_str())
                .collect::<Vec<_>>(),
            vec![id],
            "{c}"
        );
    }
    let m1 = mrn("KZ", 1001);
    let got = w
        .use_guarantee(
            kz,
            "KZ-LC-1",
            &m1,
            SMALL_HOLDER,
            &[(grn.as_str(), "100.00", "USD")],
        )
        .await;
    assert_eq!(got, vec![accepted(&grn, "100.00")]);

    // Bad steps: each refused with its code, nothing changed.
    let step = |who: String,
                action: &'static str,
                contract: &'static str,
                reason: Option<&'static str>| {
        let w = &w;
        async move {
            let body = reason.map(|r| json!({ "reason": r }));
            let (status, body) = w
                .http(
                    "POST",
                    &format!("/api/v1/insurance-contracts/{contract}/{action}"),
                    Some(&who),
                    body.as_ref(),
                )
                .await;
            (status, json(&body))
        }
    };
    for (who, action, contract, reason, want) in [
        (
            &kz_token,
            "suspend",
            id,
            Some("late premium"),
            (403, "insurer.forbidden"),
        ),
        (
            &admin,
            "suspend",
            "KZ-CG-2026-9999",
            Some("late premium"),
            (404, "contract.not-found"),
        ),
        (&admin, "suspend", id, None, (422, "contract.bad-request")),
        (
            &admin,
            "reinstate",
            id,
            None,
            (409, "contract.illegal-transition"),
        ),
        (
            &admin,
            "cancel",
            id,
            Some("no"),
            (422, "contract.bad-request"),
        ),
    ] {
        let (status, body) = step(who.clone(), action, contract, reason).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (want.0, Some(want.1)),
            "{action}: {body}"
        );
    }
    assert_eq!(refs_version(&w).await, v1, "refused steps make no version");

    // Suspended: no new reservation; the one held is released as usual.
    let (status, body) = step(admin.clone(), "suspend", id, Some("premium unpaid")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (
            &body["contract"]["status"],
            &body["previous_status"],
            &body["version"]
        ),
        (&json!("suspended"), &json!("active"), &json!(v1 + 1))
    );
    let (status, body) = step(admin.clone(), "suspend", id, Some("again")).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("contract.illegal-transition")),
        "{body}"
    );
    assert_eq!(refs_version(&w).await, v1 + 1);
    let got = w
        .use_guarantee(
            kz,
            "KZ-LC-2",
            &mrn("KZ", 1002),
            SMALL_HOLDER,
            &[(grn.as_str(), "10.00", "USD")],
        )
        .await;
    assert_eq!(got, vec![refused(&grn, Some(Why::Suspended), Some("USD"))]);
    assert_eq!(w.in_use(&grn).await, dec("100.00"));
    let body = release_message("CD209C", "KZ-LC-W1", "KZ", &m1, &[grn.as_str()]);
    w.send(kz, "KZ-LC-W1", "CD209C", &m1, &body).await;
    let mut waited = 0;
    while w.in_use(&grn).await != Decimal::ZERO {
        waited += 1;
        assert!(
            waited < 100,
            "the credit of a suspended contract's reservation is applied"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Reinstated: reservations again.
    let (status, body) = step(admin.clone(), "reinstate", id, None).await;
    assert_eq!(
        (status, &body["contract"]["status"]),
        (200, &json!("active")),
        "{body}"
    );
    let m3 = mrn("KZ", 1003);
    let got = w
        .use_guarantee(
            kz,
            "KZ-LC-3",
            &m3,
            SMALL_HOLDER,
            &[(grn.as_str(), "200.00", "USD")],
        )
        .await;
    assert_eq!(got, vec![accepted(&grn, "200.00")]);

    // Terminated by its own insurer (another insurer does not see it; a reason is required).
    for (who, action, reason, want) in [
        (
            &az_token,
            "terminate",
            Some("not mine"),
            (404, "contract.not-found"),
        ),
        (&kz_token, "terminate", None, (422, "contract.bad-request")),
        (&kz_token, "reinstate", None, (403, "insurer.forbidden")),
    ] {
        let (status, body) = step(who.clone(), action, id, reason).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (want.0, Some(want.1)),
            "{action}: {body}"
        );
    }
    let (status, body) = step(kz_token.clone(), "terminate", id, Some("holder left CATS")).await;
    assert_eq!(
        (status, &body["contract"]["status"]),
        (200, &json!("expired")),
        "{body}"
    );
    for action in ["reinstate", "suspend", "terminate"] {
        let (status, body) = step(admin.clone(), action, id, Some("after the end")).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (409, Some("contract.illegal-transition")),
            "{action}: {body}"
        );
    }
    let got = w
        .use_guarantee(
            kz,
            "KZ-LC-4",
            &mrn("KZ", 1004),
            SMALL_HOLDER,
            &[(grn.as_str(), "10.00", "USD")],
        )
        .await;
    assert_eq!(got, vec![refused(&grn, Some(Why::Expired), Some("USD"))]);
    assert_eq!(
        w.in_use(&grn).await,
        dec("200.00"),
        "the held reservation stays"
    );
    let body = release_message("CD209C", "KZ-LC-W3", "KZ", &m3, &[grn.as_str()]);
    w.send(kz, "KZ-LC-W3", "CD209C", &m3, &body).await;
    let mut waited = 0;
    while w.in_use(&grn).await != Decimal::ZERO {
        waited += 1;
        assert!(
            waited < 100,
            "the credit of a terminated contract's reservation is applied"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Audited twice: the reference data's versions and the contract's own trail.
    let v4 = refs_version(&w).await;
    assert_eq!(v4, v1 + 3);
    assert_eq!(
        refs_changes(&w, v1).await,
        vec![
            ("contract".to_owned(), id.to_owned(), json!("suspended")),
            ("contract".to_owned(), id.to_owned(), json!("active")),
            ("contract".to_owned(), id.to_owned(), json!("expired")),
        ]
    );
    let trail: Vec<(String, String, Option<String>)> =
        insurer::audit_trail(&store, &format!("contract:{id}"))
            .await
            .expect("trail")
            .into_iter()
            .map(|e| (e.action, e.actor, e.detail))
            .collect();
    assert_eq!(
        trail,
        vec![
            (
                "suspend".into(),
                "administrator:ops".into(),
                Some("premium unpaid".into())
            ),
            ("reinstate".into(), "administrator:ops".into(), None),
            (
                "terminate".into(),
                format!("insurer:{KZ_INSURER}"),
                Some("holder left CATS".into())
            ),
        ]
    );
    // Every node received every version, in order.
    let every = updates_everywhere(&w, v4).await;
    for c in COUNTRIES {
        let statuses: Vec<(u64, String)> = every[&c]
            .iter()
            .flat_map(|u| {
                u.change
                    .insurance_contracts
                    .iter()
                    .filter(|k| k.contract_id == id)
                    .map(move |k| (u.version, format!("{:?}", k.status)))
            })
            .collect();
        assert_eq!(
            statuses,
            vec![
                (v1, "Active".to_owned()),
                (v1 + 1, "Suspended".to_owned()),
                (v1 + 2, "Active".to_owned()),
                (v1 + 3, "Expired".to_owned()),
            ],
            "{c}"
        );
    }

    // The exchange rates alone: a version, audited, sent, and used by the next reservation.
    let yesterday = chrono::Utc::now().date_naive() - chrono::Days::new(1);
    let mut rates: Vec<serde_json::Value> = reference
        .exchange_rates()
        .map(|r| serde_json::to_value(r).expect("rate"))
        .collect();
    rates.push(json!({ "currency": "KZT", "rate": "500.00", "valid_from": yesterday }));
    let rate_change = json!({ "reason": "KZT rate of the day",
                              "change": { "exchange_rates": rates } });
    let (status, body) = w
        .http(
            "POST",
            "/api/v1/refs/changes",
            Some(&admin),
            Some(&rate_change),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(refs_version(&w).await, v4 + 1);
    assert_eq!(
        refs_changes(&w, v4).await,
        vec![(
            "exchange-rate".to_owned(),
            format!("KZT:{yesterday}"),
            json!("500.00")
        )]
    );
    let (status, body) = w
        .http(
            "POST",
            "/api/v1/refs/changes",
            Some(&admin),
            Some(&rate_change),
        )
        .await;
    assert_eq!(
        (status, json(&body)["code"].as_str()),
        (422, Some("refdata.bad-request")),
        "the same table again changes nothing: {body}"
    );
    assert_eq!(refs_version(&w).await, v4 + 1);
    let m5 = mrn("KZ", 1005);
    let got = w
        .use_guarantee(
            kz,
            "KZ-LC-5",
            &m5,
            BIG_HOLDER,
            &[(BIG, "1000000.00", "KZT")],
        )
        .await;
    assert_eq!(
        got,
        vec![Answer {
            rate: Some(dec("0.002")),
            ..accepted(BIG, "2000.00")
        }]
    );
    let mine = view_of(&w, &kz_token).await;
    let used = mine["KZ-CG-2026-0001"]["movements"]
        .as_array()
        .expect("movements")
        .iter()
        .find(|m| m["mrn"] == m5.as_str())
        .cloned()
        .expect("the KZT movement");
    assert_eq!(
        dec(used["exchange_rate"].as_str().expect("rate recorded")),
        dec("0.002")
    );
    assert_eq!(used["amount"], "2000.00");
    let every = updates_everywhere(&w, v4 + 1).await;
    for c in COUNTRIES {
        let u = every[&c].last().expect("an update");
        assert_eq!(u.version, v4 + 1, "{c}");
        assert!(
            u.change.exchange_rates.iter().any(|r| r.currency == "KZT"
                && r.rate == dec("500.00")
                && r.valid_from == yesterday),
            "{c}: {:?}",
            u.change.exchange_rates
        );
    }
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_contract_lifecycle() {
    contract_lifecycle(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_contract_lifecycle() {
    contract_lifecycle(Db::Postgres).await;
}
