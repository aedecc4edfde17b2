//! Movements for the scaling tests (`hub/tests/scale.rs`: two hubs in one process;
//! `tests/hubs.rs`: two `cats hub` processes): many movements, each sent by its three node
//! identities in life-cycle order, and the check of the journal they leave.
//!
//! Each movement is four messages: KZ's AAR (CD001C) to GE and ATR (CD050C) to AZ, AZ's entry
//! notification (CD118C) to KZ, GE's arrival advice (CD006C) to KZ. Within one movement, each
//! message is sent once the broker confirmed the one before, so it is in its partition queue
//! before the next: a hub that keeps each partition in order journals them in that order.
//!
//! A test binary includes this file with `#[path]`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use cats_hub::journal::{self, Entry};
use cats_transport::contract::{CountryCode, Destination, Outbound, PeerIdentity, Transport};
use cats_transport_amqp::{AmqpConfig, AmqpTransport};
use cats_trust::pki::DevPkiFiles;
use cats_trust::{EnvelopeHeaderFields, Signer};
use futures::StreamExt;
use message_catalog::ids::{CustomsOfficeRef, Mrn, ProcedureLetter};

const CD001C: &str = include_str!("../data/cd001c.xml");
const CD050C: &str = include_str!("../data/cd050c.xml");
const CD118C: &str = include_str!("../../../message-catalog/tests/data/cd118c/valid-minimal.xml");
const CD006C: &str = include_str!("../../../message-catalog/tests/data/cd006c/valid-minimal.xml");
const TEMPLATE_MRN: &str = "26KZ000101000001J0";

/// The three node identities that send.
pub const COUNTRIES: [CountryCode; 3] = [CountryCode::KZ, CountryCode::AZ, CountryCode::GE];

/// The message types of one movement, in the order they are sent.
pub const LIFE_CYCLE: [&str; 4] = ["CD001C", "CD050C", "CD118C", "CD006C"];

/// One message of a movement: who sends it, to whom, and its body.
pub struct Step {
    /// The sending country.
    pub from: CountryCode,
    /// The recipient country.
    pub to: CountryCode,
    /// `CD001C`, …
    pub message_type: &'static str,
    /// Its message identification, unique per run.
    pub id: String,
    /// The XML body.
    pub body: Vec<u8>,
}

/// `count` distinct MRNs of the departure office KZ000101, from sequence `first`.
pub fn mrns(count: usize, first: u64) -> Vec<String> {
    let office = CustomsOfficeRef::parse("KZ000101").expect("a valid office");
    (first..)
        .take(count)
        .map(|n| {
            Mrn::generate(26, &office, n, ProcedureLetter::J)
                .expect("a valid MRN")
                .as_str()
                .to_owned()
        })
        .collect()
}

/// The four messages of movement `mrn`, in life-cycle order; `run` makes their identifications
/// unique to this run.
pub fn life_cycle(run: &str, mrn: &str) -> Vec<Step> {
    let (kz, az, ge) = (CountryCode::KZ, CountryCode::AZ, CountryCode::GE);
    [
        (kz, ge, CD001C, "CD001C-MESS-0001"),
        (kz, az, CD050C, "CD050C-MESS-0001"),
        (az, kz, CD118C, "CD118C-MESS-0001"),
        (ge, kz, CD006C, "CD006C-MESS-0001"),
    ]
    .into_iter()
    .zip(LIFE_CYCLE)
    .map(|((from, to, template, template_id), message_type)| {
        let id = format!("{run}-{message_type}-{mrn}");
        let body = template
            .replace(template_id, &id)
            .replace(TEMPLATE_MRN, mrn)
            .replace(
                "<messageSender>NTA.KZ</messageSender>",
                &format!("<messageSender>NTA.{from}</messageSender>"),
            )
            .replace(
                "<messageRecipient>NTA.GE</messageRecipient>",
                &format!("<messageRecipient>NTA.{to}</messageRecipient>"),
            )
            .replace(
                "<messageRecipient>NTA.AZ</messageRecipient>",
                &format!("<messageRecipient>NTA.{to}</messageRecipient>"),
            )
            .into_bytes();
        Step {
            from,
            to,
            message_type,
            id,
            body,
        }
    })
    .collect()
}

/// The three nodes' signers and broker links.
pub struct Senders {
    signers: BTreeMap<CountryCode, Signer>,
    /// Each node's link (it also receives what the hub routes to the node).
    pub links: BTreeMap<CountryCode, AmqpTransport>,
}

impl Senders {
    /// Loads the signers of `files` and connects each node with `amqp(party)` (`node-kz`, …).
    pub async fn connect(files: &DevPkiFiles, amqp: impl Fn(&str) -> AmqpConfig) -> Senders {
        let mut signers = BTreeMap::new();
        let mut links = BTreeMap::new();
        for c in COUNTRIES {
            let s = files.signers.get(&c).expect("a signer per country");
            signers.insert(c, Signer::load(&s.cert, &s.key).expect("the signer loads"));
            let party = format!("node-{}", c.as_str().to_ascii_lowercase());
            links.insert(
                c,
                AmqpTransport::node(amqp(&party), c)
                    .await
                    .expect("the node connects"),
            );
        }
        Senders { signers, links }
    }

    /// Sends movement `mrn`'s messages one after the other, each once the broker confirmed the
    /// one before.
    pub async fn send_movement(&self, run: &str, mrn: &str) {
        for step in life_cycle(run, mrn) {
            let fields = EnvelopeHeaderFields {
                message_id: step.id.clone(),
                message_type: step.message_type.into(),
                sender: PeerIdentity::Node(step.from),
                recipient: PeerIdentity::Node(step.to),
                correlation_id: None,
                mrn: Some(mrn.to_owned()),
                prepared_at: chrono::Utc::now(),
            };
            let wire = self.signers[&step.from]
                .seal(&fields, &step.body)
                .expect("seal");
            self.links[&step.from]
                .send(Outbound {
                    message_id: step.id,
                    destination: Destination::Hub,
                    partition_key: Some(mrn.to_owned()),
                    bytes: wire.into(),
                })
                .await
                .expect("the broker confirms");
        }
    }

    /// Sends every movement of `mrns`, `concurrency` movements at a time.
    pub async fn send_all(self: &Arc<Self>, run: &str, mrns: &[String], concurrency: usize) {
        futures::stream::iter(mrns.iter().cloned())
            .map(|mrn| {
                let (senders, run) = (self.clone(), run.to_owned());
                async move { senders.send_movement(&run, &mrn).await }
            })
            .buffer_unordered(concurrency)
            .collect::<Vec<()>>()
            .await;
    }

    /// Closes the links.
    pub async fn close(&self) {
        for link in self.links.values() {
            link.close().await;
        }
    }
}

/// Checks `entries` (the whole journal) against the movements `mrns` sent: one accepted entry
/// per message, none twice, and each movement's messages in the order they were sent. Returns
/// each movement's journal sequences.
pub fn check_journal(entries: &[Entry], mrns: &[String]) -> BTreeMap<String, Vec<i64>> {
    let mut seen = BTreeSet::new();
    let mut per_mrn: BTreeMap<String, Vec<(i64, String)>> = BTreeMap::new();
    for e in entries {
        assert_eq!(
            e.entry.status,
            journal::Status::Accepted,
            "entry {} ({} {}) was not accepted",
            e.sequence,
            e.entry.message_type,
            e.entry.message_id
        );
        assert!(
            seen.insert((e.entry.sender.clone(), e.entry.message_id.clone())),
            "{} from {} journalled twice",
            e.entry.message_id,
            e.entry.sender
        );
        let mrn = e.entry.mrn.clone().expect("every message has an MRN");
        per_mrn
            .entry(mrn)
            .or_default()
            .push((e.sequence, e.entry.message_type.clone()));
    }
    assert_eq!(
        entries.len(),
        LIFE_CYCLE.len() * mrns.len(),
        "one entry per message"
    );
    let sent: BTreeSet<&String> = mrns.iter().collect();
    assert_eq!(
        per_mrn.keys().collect::<BTreeSet<_>>(),
        sent,
        "the journal holds exactly the movements sent"
    );
    per_mrn
        .into_iter()
        .map(|(mrn, journalled)| {
            let types: Vec<&str> = journalled.iter().map(|(_, t)| t.as_str()).collect();
            assert_eq!(
                types, LIFE_CYCLE,
                "movement {mrn} was processed out of order: {journalled:?}"
            );
            (mrn, journalled.into_iter().map(|(s, _)| s).collect())
        })
        .collect()
}

/// A unique prefix for this run's message identifications.
pub fn run_id() -> String {
    format!("S{:08x}", rand::random::<u32>())
}
