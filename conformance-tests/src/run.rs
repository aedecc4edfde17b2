//! The runner: plays cases against a [`Driver`] and says, for each, passed or the first
//! difference between what the case expected and what the target did.
//!
//! Cases run `parallel` at a time; a case that restarts a node runs alone, after the others,
//! so the restart cannot fail a case that happened to be talking to that node. A case that
//! needs a node the target does not have (or a restart a remote target cannot do) is not
//! applicable: it is listed, not run, and not counted as passed.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::case::{self, Case, DEFAULT_WITHIN, Step};
use crate::pointer::{self, Assertion, Document};
use crate::template::{self, Escape, Vars};

/// The synchronous answer to a message POSTed to a node.
#[derive(Debug, Clone, Default)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// `X-CATS-Message-Type`.
    pub message_type: Option<String>,
    /// `X-CATS-MRN`.
    pub mrn: Option<String>,
    /// `X-CATS-LRN`.
    pub lrn: Option<String>,
    /// The body (a P5 message, or a JSON error).
    pub body: String,
}

/// A message a node sent its national system.
#[derive(Debug, Clone, Default)]
pub struct Received {
    /// Its type.
    pub message_type: String,
    /// The message.
    pub xml: String,
}

/// An officer action the node refused.
#[derive(Debug, Clone, Default)]
pub struct Refusal {
    /// The HTTP status.
    pub status: u16,
    /// The code (`92`, `90`, `bad-request` ...).
    pub code: String,
    /// The node's explanation.
    pub message: String,
}

/// What `hub-send` asks the target to seal and send.
#[derive(Debug, Clone)]
pub struct HubSendRequest {
    /// The country whose node identity carries it to the hub.
    pub sender: String,
    /// Whose signing key seals it (the header's sender).
    pub signer: String,
    /// The envelope's recipient: a country or `hub`.
    pub to: String,
    /// Header fields, from the body.
    pub message_id: String,
    /// The message type.
    pub message_type: String,
    /// The MRN, when the body has one.
    pub mrn: Option<String>,
    /// The body.
    pub xml: String,
    /// How to spoil it after sealing.
    pub tamper: Option<case::Tamper>,
}

/// An envelope the hub delivered to one of the target's node identities.
#[derive(Debug, Clone, Default)]
pub struct Delivered {
    /// The envelope as it came.
    pub wire: Vec<u8>,
    /// Header: message identification.
    pub message_id: String,
    /// Header: message type.
    pub message_type: String,
    /// Header: correlation identification.
    pub correlation_id: Option<String>,
    /// Header: MRN.
    pub mrn: Option<String>,
    /// Header: sender, a country or `hub`.
    pub sender: String,
    /// The body as text.
    pub body: String,
    /// `None` when the node's checks pass (signature, signer, recipient, body hash); else why
    /// the node would refuse it.
    pub refused: Option<String>,
}

/// Which delivered envelope a `hub-expect` waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubFilter {
    /// Header message type.
    pub message_type: String,
    /// Header message identification.
    pub id: Option<String>,
    /// Header correlation identification.
    pub correlates: Option<String>,
}

impl HubFilter {
    /// Whether `d` is one this filter waits for.
    pub fn matches(&self, d: &Delivered) -> bool {
        d.message_type == self.message_type
            && self.id.as_ref().is_none_or(|i| *i == d.message_id)
            && self
                .correlates
                .as_ref()
                .is_none_or(|c| Some(c) == d.correlation_id.as_ref())
    }
}

/// What a target could not do (a connection refused, a time limit passed ...), in words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DriverError(pub String);

/// A target the runner plays cases against: the national APIs of one or more nodes (and the
/// hub's API for registry checks). The `cats` command line implements it over HTTPS.
pub trait Driver: Sync {
    /// The countries whose nodes this target has.
    fn countries(&self) -> Vec<String>;
    /// Whether [`Driver::restart`] works (only for a CATS the runner started itself).
    fn can_restart(&self) -> bool;
    /// Whether the hub's registry can be read.
    fn has_hub(&self) -> bool;
    /// What the report says about the target (versions, addresses, store, transport).
    fn environment(&self) -> Vec<(String, String)>;
    /// POSTs a message to `country`'s node as its national system.
    fn submit(
        &self,
        country: &str,
        xml: String,
    ) -> impl Future<Output = Result<Reply, DriverError>> + Send;
    /// Waits for a message of `message_type` for `key` (an MRN or LRN) on `country`'s stream
    /// to its national system; the error says what did come for that key.
    fn expect(
        &self,
        country: &str,
        key: &str,
        message_type: &str,
        within: Duration,
    ) -> impl Future<Output = Result<Received, DriverError>> + Send;
    /// POSTs an officer action; the JSON answer, or the node's refusal.
    fn act(
        &self,
        country: &str,
        action: serde_json::Value,
    ) -> impl Future<Output = Result<Result<serde_json::Value, Refusal>, DriverError>> + Send;
    /// `country`'s node's view of movement `mrn` (`None`: it does not hold it).
    fn movement(
        &self,
        country: &str,
        mrn: &str,
    ) -> impl Future<Output = Result<Option<serde_json::Value>, DriverError>> + Send;
    /// The hub's registry entry of movement `mrn`.
    fn hub_movement(
        &self,
        mrn: &str,
    ) -> impl Future<Output = Result<Option<serde_json::Value>, DriverError>> + Send;
    /// Stops `country`'s node and starts it again on the same store and address.
    fn restart(&self, country: &str) -> impl Future<Output = Result<(), DriverError>> + Send;
    /// The countries whose node identities (TLS certificate and signing key) this target can
    /// play on the hub's link; empty when it cannot talk to the hub as a node.
    fn link_countries(&self) -> Vec<String> {
        Vec::new()
    }
    /// Seals a message as `request.signer` and sends it to the hub over `request.sender`'s
    /// link; returns the envelope once the hub has acknowledged it (processed it).
    fn hub_send(
        &self,
        request: HubSendRequest,
    ) -> impl Future<Output = Result<Vec<u8>, DriverError>> + Send {
        let _ = request;
        async { Err(DriverError("this target has no link to the hub".into())) }
    }
    /// The envelope delivered to `country`'s identity that is the `skip + 1`-th to match
    /// `filter`, waiting at most `within`; `None` when none came in time.
    fn hub_wait(
        &self,
        country: &str,
        filter: &HubFilter,
        skip: usize,
        within: Duration,
    ) -> impl Future<Output = Result<Option<Delivered>, DriverError>> + Send {
        let _ = (country, filter, skip, within);
        async { Err(DriverError("this target has no link to the hub".into())) }
    }
    /// What was delivered to `country`'s identity so far (types and identifications), for a
    /// difference.
    fn hub_delivered(&self, country: &str) -> Vec<Delivered> {
        let _ = country;
        Vec::new()
    }
    /// The registry entry of movement `mrn` at the hub the link talks to (the same hub as
    /// [`Driver::hub_movement`] unless the target runs a separate hub for link cases).
    fn link_hub_movement(
        &self,
        mrn: &str,
    ) -> impl Future<Output = Result<Option<serde_json::Value>, DriverError>> + Send {
        self.hub_movement(mrn)
    }
}

/// How a case ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CaseOutcome {
    /// Every step as expected.
    Passed,
    /// A step was not.
    Failed,
}

impl CaseOutcome {
    /// `PASS` or `FAIL`.
    pub fn label(self) -> &'static str {
        match self {
            CaseOutcome::Passed => "PASS",
            CaseOutcome::Failed => "FAIL",
        }
    }
}

/// The first difference of a failed case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Difference {
    /// The step, from 1.
    pub step: usize,
    /// The step in words (`send cc015c.xml to KZ`).
    pub step_text: String,
    /// What was checked (`reply message type`, `/CC029C/TransitOperation/MRN`).
    pub what: String,
    /// What the case expected.
    pub expected: String,
    /// What the target did.
    pub actual: String,
}

/// One message or action exchanged with the target, for the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exchange {
    /// The step, from 1.
    pub step: usize,
    /// `sent`, `reply`, `received`, `action`, `answer`.
    pub direction: String,
    /// The country of the node.
    pub country: String,
    /// The message type, when it is a message.
    pub message_type: Option<String>,
    /// The HTTP status of a reply or answer.
    pub status: Option<u16>,
    /// The XML or JSON.
    pub body: String,
}

/// One case's result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CaseResult {
    /// The suite.
    pub suite: String,
    /// The case.
    pub name: String,
    /// What it shows.
    pub description: String,
    /// Its tags.
    pub tags: Vec<String>,
    /// Passed or failed.
    pub outcome: CaseOutcome,
    /// How long it took, milliseconds.
    pub duration_ms: u64,
    /// The first difference, when failed.
    pub difference: Option<Difference>,
    /// What was exchanged, in order.
    pub exchanges: Vec<Exchange>,
    /// The variables at the end (lrn, mrn, captured ones).
    pub vars: BTreeMap<String, String>,
}

impl CaseResult {
    /// `suite/name`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.suite, self.name)
    }
}

/// A case that was selected but could not run against this target, and why.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NotApplicable {
    /// `suite/name`.
    pub case: String,
    /// Why.
    pub why: String,
}

/// Everything one run found: what the report is made from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResults {
    /// The kit's version.
    pub kit_version: String,
    /// When the run started, RFC 3339 UTC.
    pub started_at: String,
    /// The target as given (`self`, a URL).
    pub target: String,
    /// The target's environment.
    pub environment: Vec<(String, String)>,
    /// The `--filter` tags.
    pub filter: Vec<String>,
    /// Wall time, milliseconds.
    pub duration_ms: u64,
    /// Each case run, in suite and name order.
    pub cases: Vec<CaseResult>,
    /// Cases not run against this target.
    pub not_applicable: Vec<NotApplicable>,
}

impl RunResults {
    /// Cases passed.
    pub fn passed(&self) -> usize {
        self.cases
            .iter()
            .filter(|c| c.outcome == CaseOutcome::Passed)
            .count()
    }

    /// Cases failed.
    pub fn failed(&self) -> usize {
        self.cases.len() - self.passed()
    }

    /// Whether the run certifies the target: at least one case, and every case passed.
    pub fn all_passed(&self) -> bool {
        !self.cases.is_empty() && self.failed() == 0
    }
}

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Cases at once.
    pub parallel: usize,
    /// Run only cases with one of these tags (or suite names, or `suite/case` ids).
    pub filter: Vec<String>,
    /// The target as given, for the results.
    pub target: String,
}

/// Runs `cases` (already loaded) against `driver`.
pub async fn run<D: Driver>(driver: &D, cases: &[Case], options: &RunOptions) -> RunResults {
    let started_at = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let started = Instant::now();
    let countries = driver.countries();
    let mut not_applicable = Vec::new();
    let mut shared = Vec::new();
    let mut alone = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        if !options.filter.is_empty() && !options.filter.iter().any(|t| case.has_tag(t)) {
            continue;
        }
        let missing: Vec<&String> = case
            .manifest
            .countries
            .iter()
            .filter(|c| !countries.contains(c))
            .collect();
        let restarts = case
            .manifest
            .steps
            .iter()
            .any(|s| matches!(s, Step::Restart(_)));
        let hub = case
            .manifest
            .steps
            .iter()
            .any(|s| matches!(s, Step::Hub(_)));
        let identities: Vec<&str> = {
            let mut v: Vec<&str> = case
                .manifest
                .steps
                .iter()
                .flat_map(|s| s.link_identities())
                .collect();
            v.sort_unstable();
            v.dedup();
            v
        };
        let link = driver.link_countries();
        let missing_identities: Vec<&str> = identities
            .iter()
            .copied()
            .filter(|c| !link.iter().any(|l| l == c))
            .collect();
        let why = if !identities.is_empty() && link.is_empty() {
            Some(
                "talks to the hub as a node: give --hub-link and --hub-certs (or --target self)"
                    .to_owned(),
            )
        } else if !missing_identities.is_empty() {
            Some(format!(
                "plays the node{} of {} on the hub's link (the link has {})",
                if missing_identities.len() > 1 {
                    "s"
                } else {
                    ""
                },
                missing_identities.join(", "),
                link.join(", ")
            ))
        } else if !missing.is_empty() {
            Some(format!(
                "needs the node{} of {} (this target has {})",
                if missing.len() > 1 { "s" } else { "" },
                missing
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                countries.join(", ")
            ))
        } else if restarts && !driver.can_restart() {
            Some("restarts a node: only with --target self".to_owned())
        } else if hub && !driver.has_hub() {
            Some("reads the hub's registry: give --hub URL".to_owned())
        } else {
            None
        };
        match why {
            Some(why) => not_applicable.push(NotApplicable {
                case: case.id(),
                why,
            }),
            None if restarts => alone.push((i, case)),
            None => shared.push((i, case)),
        }
    }
    let mut results: Vec<(usize, CaseResult)> = futures::stream::iter(shared)
        .map(|(i, case)| async move { (i, run_case(driver, case).await) })
        .buffer_unordered(options.parallel.max(1))
        .collect()
        .await;
    for (i, case) in alone {
        results.push((i, run_case(driver, case).await));
    }
    results.sort_by_key(|(i, _)| *i);
    RunResults {
        kit_version: env!("CARGO_PKG_VERSION").to_owned(),
        started_at,
        target: options.target.clone(),
        environment: driver.environment(),
        filter: options.filter.clone(),
        duration_ms: started.elapsed().as_millis() as u64,
        cases: results.into_iter().map(|(_, r)| r).collect(),
        not_applicable,
    }
}

/// A fresh LRN for one run of a case: `CF` and 16 hex digits (an..22).
fn fresh_lrn() -> String {
    let bytes: [u8; 8] = rand::random();
    let hex: String = bytes.iter().map(|b| format!("{b:02X}")).collect();
    format!("CF{hex}")
}

struct Play<'a, D> {
    driver: &'a D,
    case: &'a Case,
    vars: Vars,
    exchanges: Vec<Exchange>,
    step: usize,
    step_text: String,
    /// Envelopes sent to the hub by this case, by message identification.
    sealed: BTreeMap<String, Vec<u8>>,
    /// Whether the case talks to the hub as a node (its `hub` steps read that hub).
    on_link: bool,
    /// How many delivered envelopes each `hub-expect` filter (with its country) has matched
    /// so far: the next step with the same filter waits for one more.
    consumed: BTreeMap<(String, String, Option<String>, Option<String>), usize>,
}

type StepResult = Result<(), Difference>;

impl<D: Driver> Play<'_, D> {
    fn differ(
        &self,
        what: impl Into<String>,
        expected: impl Into<String>,
        actual: impl Into<String>,
    ) -> Difference {
        Difference {
            step: self.step,
            step_text: self.step_text.clone(),
            what: what.into(),
            expected: expected.into(),
            actual: actual.into(),
        }
    }

    fn render(&self, text: &str, escape: Escape) -> Result<String, Difference> {
        template::render(text, &self.vars, Utc::now(), escape)
            .map_err(|e| self.differ("template", "every variable known", e.to_string()))
    }

    fn within(&self, step: Option<f64>) -> Duration {
        let secs = step
            .or(self.case.manifest.within)
            .unwrap_or(DEFAULT_WITHIN)
            .max(0.1);
        Duration::from_secs_f64(secs)
    }

    fn note(
        &mut self,
        direction: &str,
        country: &str,
        message_type: Option<String>,
        status: Option<u16>,
        body: String,
    ) {
        self.exchanges.push(Exchange {
            step: self.step,
            direction: direction.to_owned(),
            country: country.to_owned(),
            message_type,
            status,
            body,
        });
    }

    fn check(&self, assertions: &[Assertion], doc: Document<'_>) -> StepResult {
        for a in assertions {
            let equals = match &a.equals {
                Some(e) => Some(self.render(e, Escape::None)?),
                None => None,
            };
            let rendered;
            let a = match &a.matches {
                Some(m) if m.contains("{{") => {
                    rendered = Assertion {
                        matches: Some(self.render(m, Escape::None)?),
                        ..a.clone()
                    };
                    &rendered
                }
                _ => a,
            };
            if let Err(m) = a.check(doc, equals.as_deref()) {
                return Err(self.differ(a.pointer.clone(), m.expected, m.actual));
            }
        }
        Ok(())
    }

    fn capture(
        &mut self,
        captures: &BTreeMap<String, String>,
        doc: Document<'_>,
        reply: Option<&Reply>,
    ) -> StepResult {
        for (name, pointer) in captures {
            let found = match (pointer.as_str(), reply) {
                ("header:x-cats-mrn", Some(r)) => r.mrn.clone(),
                ("header:x-cats-lrn", Some(r)) => r.lrn.clone(),
                ("header:x-cats-message-type", Some(r)) => r.message_type.clone(),
                _ => match doc {
                    Document::Xml(root) => pointer::select(root, pointer)
                        .map_err(|e| {
                            self.differ(format!("capture {name}"), "a valid pointer", e.to_string())
                        })?
                        .into_iter()
                        .next(),
                    Document::Json(v) => pointer::select_json(v, pointer).into_iter().next(),
                },
            };
            match found.filter(|v| !v.is_empty()) {
                Some(v) => {
                    self.vars.insert(name.clone(), v);
                }
                None => {
                    return Err(self.differ(
                        format!("capture {name}"),
                        format!("a value at {pointer}"),
                        "nothing",
                    ));
                }
            }
        }
        Ok(())
    }

    async fn send(&mut self, s: &case::Send) -> StepResult {
        let template = self.case.files.get(&s.file).cloned().unwrap_or_default();
        let xml = self.render(&template, Escape::Xml)?;
        let sent_type = pointer::parse(&xml).ok().map(|r| r.name);
        self.note("sent", &s.to, sent_type, None, xml.clone());
        let reply = self
            .driver
            .submit(&s.to, xml)
            .await
            .map_err(|e| self.differ("the node's answer", "an HTTP answer", e.to_string()))?;
        self.note(
            "reply",
            &s.to,
            reply.message_type.clone(),
            Some(reply.status),
            reply.body.clone(),
        );
        let parsed = pointer::parse(&reply.body).ok();
        let json: Option<serde_json::Value> = serde_json::from_str(&reply.body).ok();
        let rejection = || rejection_text(&reply, parsed.as_ref(), json.as_ref());
        let expectation = s.reply.clone().unwrap_or_default();
        if let Some(want) = &expectation.message_type
            && reply.message_type.as_deref() != Some(want.as_str())
        {
            return Err(self.differ("reply message type", want.clone(), rejection()));
        }
        if let Some(want) = expectation.status
            && reply.status != want
        {
            return Err(self.differ("reply HTTP status", want.to_string(), rejection()));
        }
        if let Some(want) = &expectation.code {
            let code = error_code(parsed.as_ref(), json.as_ref());
            if code.as_deref() != Some(want.as_str()) {
                return Err(self.differ("reply functional error code", want.clone(), rejection()));
            }
        }
        let doc = match (&parsed, &json) {
            (Some(root), _) => Some(Document::Xml(root)),
            (None, Some(v)) => Some(Document::Json(v)),
            (None, None) => None,
        };
        match doc {
            Some(doc) => {
                self.check(&expectation.assert, doc)?;
                self.capture(&s.capture, doc, Some(&reply))
            }
            None if expectation.assert.is_empty() && s.capture.is_empty() => Ok(()),
            None => {
                let empty = serde_json::Value::Null;
                self.check(&expectation.assert, Document::Json(&empty))?;
                self.capture(&s.capture, Document::Json(&empty), Some(&reply))
            }
        }
    }

    async fn expect(&mut self, e: &case::Expect) -> StepResult {
        let key = self.render(e.key.as_deref().unwrap_or("{{mrn}}"), Escape::None)?;
        let within = self.within(e.within);
        let got = self
            .driver
            .expect(&e.at, &key, &e.message_type, within)
            .await
            .map_err(|err| {
                self.differ(
                    format!("message to the national system of {}", e.at),
                    format!(
                        "{} for {key} within {:.0} s",
                        e.message_type,
                        within.as_secs_f64()
                    ),
                    err.to_string(),
                )
            })?;
        self.note(
            "received",
            &e.at,
            Some(got.message_type.clone()),
            None,
            got.xml.clone(),
        );
        let root = pointer::parse(&got.xml).map_err(|err| {
            self.differ(
                format!("the {}", e.message_type),
                "well-formed XML",
                err.to_string(),
            )
        })?;
        self.check(&e.assert, Document::Xml(&root))?;
        self.capture(&e.capture, Document::Xml(&root), None)
    }

    async fn action(&mut self, a: &case::Action) -> StepResult {
        let json = serde_json::to_value(&a.action)
            .map_err(|e| self.differ("action", "a JSON action", e.to_string()))?;
        let json = self.render_json(json)?;
        self.note("action", &a.at, None, None, json.to_string());
        let answer = self
            .driver
            .act(&a.at, json)
            .await
            .map_err(|e| self.differ("the node's answer", "an HTTP answer", e.to_string()))?;
        match (answer, &a.refused) {
            (Ok(v), None) => {
                self.note("answer", &a.at, None, Some(200), v.to_string());
                self.check(&a.assert, Document::Json(&v))
            }
            (Ok(v), Some(code)) => {
                self.note("answer", &a.at, None, Some(200), v.to_string());
                Err(self.differ(
                    "officer action",
                    format!("refused with code {code}"),
                    "done (200)",
                ))
            }
            (Err(r), None) => {
                self.note(
                    "answer",
                    &a.at,
                    None,
                    Some(r.status),
                    format!("{} {}", r.code, r.message),
                );
                Err(self.differ(
                    "officer action",
                    "done (200)",
                    format!("refused {} {}: {}", r.status, r.code, r.message),
                ))
            }
            (Err(r), Some(code)) => {
                self.note(
                    "answer",
                    &a.at,
                    None,
                    Some(r.status),
                    format!("{} {}", r.code, r.message),
                );
                if &r.code == code {
                    Ok(())
                } else {
                    Err(self.differ(
                        "officer action refusal code",
                        code.clone(),
                        format!("{} {}: {}", r.status, r.code, r.message),
                    ))
                }
            }
        }
    }

    fn render_json(&self, v: serde_json::Value) -> Result<serde_json::Value, Difference> {
        Ok(match v {
            serde_json::Value::String(s) => {
                serde_json::Value::String(self.render(&s, Escape::None)?)
            }
            serde_json::Value::Array(items) => serde_json::Value::Array(
                items
                    .into_iter()
                    .map(|i| self.render_json(i))
                    .collect::<Result<_, _>>()?,
            ),
            serde_json::Value::Object(map) => serde_json::Value::Object(
                map.into_iter()
                    .map(|(k, v)| Ok((k, self.render_json(v)?)))
                    .collect::<Result<_, Difference>>()?,
            ),
            other => other,
        })
    }

    async fn state(&mut self, s: &case::State) -> StepResult {
        let mrn = self.render(s.mrn.as_deref().unwrap_or("{{mrn}}"), Escape::None)?;
        let wanted: Vec<&str> = s.phase.split('|').map(str::trim).collect();
        let deadline = Instant::now() + self.within(s.within);
        let mut pause = Duration::from_millis(10);
        loop {
            let last = match self.driver.movement(&s.at, &mrn).await {
                Ok(Some(view)) => {
                    let phase = office_phase(&view, &s.office, &s.role);
                    if wanted
                        .iter()
                        .any(|w| phase.as_deref().is_some_and(|p| same_phase(p, w)))
                    {
                        self.note("state", &s.at, None, Some(200), view.to_string());
                        return Ok(());
                    }
                    match phase {
                        Some(p) => format!("phase {p}"),
                        None => format!("the node holds {mrn} but not {} as {}", s.office, s.role),
                    }
                }
                Ok(None) => format!("the {} node does not hold {mrn}", s.at),
                Err(e) => e.to_string(),
            };
            if Instant::now() >= deadline {
                return Err(self.differ(
                    format!("phase of {} ({}) at the {} node", s.office, s.role, s.at),
                    s.phase.clone(),
                    last,
                ));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(200));
        }
    }

    async fn hub(&mut self, h: &case::Hub) -> StepResult {
        let mrn = self.render(h.mrn.as_deref().unwrap_or("{{mrn}}"), Escape::None)?;
        let deadline = Instant::now() + self.within(h.within);
        let mut pause = Duration::from_millis(10);
        loop {
            let found = if self.on_link {
                self.driver.link_hub_movement(&mrn).await
            } else {
                self.driver.hub_movement(&mrn).await
            };
            let last = match found {
                Ok(Some(v)) => match self.check(&h.assert, Document::Json(&v)) {
                    Ok(()) => {
                        self.note("hub", "hub", None, Some(200), v.to_string());
                        return Ok(());
                    }
                    Err(d) => d,
                },
                Ok(None) => self.differ(
                    "the hub's registry",
                    format!("movement {mrn}"),
                    "not registered",
                ),
                Err(e) => self.differ(
                    "the hub's registry",
                    format!("movement {mrn}"),
                    e.to_string(),
                ),
            };
            if Instant::now() >= deadline {
                return Err(last);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(200));
        }
    }

    async fn hub_send(&mut self, s: &case::HubSend) -> StepResult {
        let template = self.case.files.get(&s.file).cloned().unwrap_or_default();
        let xml = self.render(&template, Escape::Xml)?;
        let root = pointer::parse(&xml).map_err(|e| {
            self.differ(
                format!("the body of {}", s.file),
                "well-formed XML",
                e.to_string(),
            )
        })?;
        let field = |p: &str| {
            pointer::select(&root, &format!("/{}/{p}", root.name))
                .ok()
                .and_then(|v| v.into_iter().next())
                .filter(|v| !v.is_empty())
        };
        let message_id = field("messageIdentification").ok_or_else(|| {
            self.differ(
                format!("the body of {}", s.file),
                "a messageIdentification (the envelope's)",
                "none",
            )
        })?;
        let request = HubSendRequest {
            sender: s.sender.clone(),
            signer: s.signer.clone().unwrap_or_else(|| s.sender.clone()),
            to: s.to.clone(),
            message_id: message_id.clone(),
            message_type: field("messageType").unwrap_or_else(|| root.name.clone()),
            mrn: field("TransitOperation/MRN").or_else(|| field("Header/MRN")),
            xml: xml.clone(),
            tamper: s.tamper,
        };
        self.note(
            "hub-sent",
            &s.sender,
            Some(request.message_type.clone()),
            None,
            xml,
        );
        let wire = self.driver.hub_send(request).await.map_err(|e| {
            self.differ(
                "the hub's acknowledgement",
                "the envelope taken",
                e.to_string(),
            )
        })?;
        self.sealed.insert(message_id, wire);
        Ok(())
    }

    async fn hub_expect(&mut self, e: &case::HubExpect) -> StepResult {
        let render = |v: &Option<String>| -> Result<Option<String>, Difference> {
            v.as_deref()
                .map(|t| self.render(t, Escape::None))
                .transpose()
        };
        let filter = HubFilter {
            message_type: e.message_type.clone(),
            id: render(&e.id)?,
            correlates: render(&e.correlates)?,
        };
        let mut described = {
            let mut d = e.message_type.clone();
            if let Some(i) = &filter.id {
                d.push_str(&format!(" {i}"));
            }
            if let Some(c) = &filter.correlates {
                d.push_str(&format!(" answering {c}"));
            }
            d
        };
        let within = self.within(e.within);
        let key = (
            e.at.clone(),
            filter.message_type.clone(),
            filter.id.clone(),
            filter.correlates.clone(),
        );
        let skip = self.consumed.get(&key).copied().unwrap_or(0);
        if skip > 0 {
            described.push_str(&format!(" (again: {} already matched)", skip));
        }
        let got = self
            .driver
            .hub_wait(&e.at, &filter, skip, within)
            .await
            .map_err(|err| {
                self.differ(
                    format!("the hub's link to {}", e.at),
                    described.clone(),
                    err.to_string(),
                )
            })?;
        let d = match (got, e.nothing) {
            (None, true) => return Ok(()),
            (Some(d), true) => {
                self.note(
                    "hub-delivered",
                    &e.at,
                    Some(d.message_type.clone()),
                    None,
                    d.body.clone(),
                );
                return Err(self.differ(
                    format!("envelopes the hub delivers to {}", e.at),
                    format!("no {described} within {:.0} s", within.as_secs_f64()),
                    delivered_text(&d),
                ));
            }
            (None, false) => {
                let came: Vec<String> = self
                    .driver
                    .hub_delivered(&e.at)
                    .iter()
                    .rev()
                    .take(5)
                    .map(delivered_text)
                    .collect();
                return Err(self.differ(
                    format!("envelopes the hub delivers to {}", e.at),
                    format!("{described} within {:.1} s", within.as_secs_f64()),
                    if came.is_empty() {
                        "nothing came".to_owned()
                    } else {
                        format!("only (latest first): {}", came.join("; "))
                    },
                ));
            }
            (Some(d), false) => {
                *self.consumed.entry(key).or_insert(0) += 1;
                d
            }
        };
        self.note(
            "hub-delivered",
            &e.at,
            Some(d.message_type.clone()),
            None,
            d.body.clone(),
        );
        if let Some(why) = &d.refused {
            return Err(self.differ(
                format!("the {} as the {} node checks it", d.message_type, e.at),
                "a valid envelope (signature, signer, recipient, body hash)",
                why.clone(),
            ));
        }
        if let Some(want) = &e.from
            && *want != d.sender
        {
            return Err(self.differ(
                format!("signer of the {}", d.message_type),
                want.clone(),
                d.sender.clone(),
            ));
        }
        if e.unchanged {
            match self.sealed.get(&d.message_id) {
                Some(sent) if *sent == d.wire => {}
                Some(sent) => {
                    return Err(self.differ(
                        format!("the {} delivered", d.message_type),
                        format!("the {} bytes sent", sent.len()),
                        format!("{} bytes that differ", d.wire.len()),
                    ));
                }
                None => {
                    return Err(self.differ(
                        "unchanged",
                        format!("an envelope {} sent earlier in this case", d.message_id),
                        "none was sent",
                    ));
                }
            }
        }
        let root = pointer::parse(&d.body).map_err(|err| {
            self.differ(
                format!("the {}", d.message_type),
                "well-formed XML",
                err.to_string(),
            )
        })?;
        self.check(&e.assert, Document::Xml(&root))?;
        self.capture(&e.capture, Document::Xml(&root), None)
    }

    async fn play(&mut self, step: &Step) -> StepResult {
        match step {
            Step::Send(s) => self.send(s).await,
            Step::Expect(e) => self.expect(e).await,
            Step::Action(a) => self.action(a).await,
            Step::State(s) => self.state(s).await,
            Step::Hub(h) => self.hub(h).await,
            Step::HubSend(s) => self.hub_send(s).await,
            Step::HubExpect(e) => self.hub_expect(e).await,
            Step::Restart(r) => {
                self.note("restart", &r.node, None, None, String::new());
                self.driver.restart(&r.node).await.map_err(|e| {
                    self.differ(
                        "restart",
                        format!("the {} node back", r.node),
                        e.to_string(),
                    )
                })
            }
        }
    }
}

/// The step in words, for differences and reports.
pub fn step_text(step: &Step) -> String {
    match step {
        Step::Send(s) => format!("send {} to {}", s.file, s.to),
        Step::Expect(e) => format!("expect {} at {}", e.message_type, e.at),
        Step::Action(a) => format!(
            "{} at {}",
            a.action
                .get("action")
                .and_then(|v| v.as_str())
                .unwrap_or("action"),
            a.at
        ),
        Step::State(s) => format!("state of {} ({}) at {}", s.office, s.role, s.at),
        Step::Hub(_) => "hub registry".to_owned(),
        Step::Restart(r) => format!("restart the {} node", r.node),
        Step::HubSend(s) => format!(
            "send {} to the hub as {}{}{}",
            s.file,
            s.sender,
            s.signer
                .as_ref()
                .map(|c| format!(", signed by {c}"))
                .unwrap_or_default(),
            match s.tamper {
                Some(case::Tamper::Body) => ", body changed after signing",
                Some(case::Tamper::Signature) => ", signature spoilt",
                None => "",
            }
        ),
        Step::HubExpect(e) if e.nothing => {
            format!("no {} from the hub at {}", e.message_type, e.at)
        }
        Step::HubExpect(e) => format!("{} from the hub at {}", e.message_type, e.at),
    }
}

/// Runs one case.
pub async fn run_case<D: Driver>(driver: &D, case: &Case) -> CaseResult {
    let started = Instant::now();
    let mut vars = Vars::new();
    vars.insert("lrn".into(), fresh_lrn());
    let mut play = Play {
        driver,
        case,
        vars,
        exchanges: Vec::new(),
        step: 0,
        step_text: "vars".into(),
        sealed: BTreeMap::new(),
        consumed: BTreeMap::new(),
        on_link: case
            .manifest
            .steps
            .iter()
            .any(|s| !s.link_identities().is_empty()),
    };
    let mut difference = None;
    for (name, value) in &case.manifest.vars {
        match play.render(value, Escape::None) {
            Ok(v) => {
                play.vars.insert(name.clone(), v);
            }
            Err(d) => {
                difference = Some(d);
                break;
            }
        }
    }
    if difference.is_none() {
        for (i, step) in case.manifest.steps.iter().enumerate() {
            play.step = i + 1;
            play.step_text = step_text(step);
            if let Err(d) = play.play(step).await {
                difference = Some(d);
                break;
            }
        }
    }
    let duration_ms = started.elapsed().as_millis() as u64;
    if let Some(d) = &difference {
        tracing::info!(case = %case.id(), step = d.step, what = %d.what, "case failed");
    }
    CaseResult {
        suite: case.suite.clone(),
        name: case.name.clone(),
        description: case.manifest.description.clone(),
        tags: case.manifest.tags.clone(),
        outcome: if difference.is_some() {
            CaseOutcome::Failed
        } else {
            CaseOutcome::Passed
        },
        duration_ms,
        difference,
        exchanges: play.exchanges,
        vars: play.vars,
    }
}

/// The functional error code of a rejection: `errorCode` / `functionalErrorCode` of a P5
/// message, `error.code` of a JSON error.
pub fn error_code(
    xml: Option<&pointer::Element>,
    json: Option<&serde_json::Value>,
) -> Option<String> {
    if let Some(root) = xml {
        for p in [
            "FunctionalError/errorCode",
            "FunctionalError/functionalErrorCode",
            "XMLError/errorCode",
            "errorCode",
        ] {
            if let Ok(found) = pointer::select(root, &format!("/{}/{p}", root.name))
                && let Some(code) = found.into_iter().next()
            {
                return Some(code);
            }
        }
    }
    json.and_then(|v| pointer::select_json(v, "#/error/code").into_iter().next())
}

/// A delivered envelope in a line: type, identification, what it answers, signer, and for a
/// NACK its first error.
fn delivered_text(d: &Delivered) -> String {
    let mut out = format!("{} {} from {}", d.message_type, d.message_id, d.sender);
    if let Some(c) = &d.correlation_id {
        out.push_str(&format!(" answering {c}"));
    }
    if let Ok(root) = pointer::parse(&d.body) {
        let first = |p: &str| {
            pointer::select(&root, &format!("/{}/{p}", root.name))
                .ok()
                .and_then(|v| v.into_iter().next())
        };
        if let Some(code) =
            first("FunctionalError/errorCode").or_else(|| first("XMLError/errorCode"))
        {
            out.push_str(&format!(", code {code}"));
        }
        for p in ["FunctionalError/errorPointer", "XMLError/errorPointer"] {
            if let Some(v) = first(p) {
                out.push_str(&format!(", pointer {v}"));
            }
        }
        if let Some(t) = first("XMLError/errorText") {
            out.push_str(&format!(", {t}"));
        }
    }
    out
}

/// A reply in a line: type, status, and for a rejection its code, pointer and reason.
fn rejection_text(
    reply: &Reply,
    xml: Option<&pointer::Element>,
    json: Option<&serde_json::Value>,
) -> String {
    let mut out = format!(
        "{} (HTTP {})",
        reply.message_type.as_deref().unwrap_or("no message"),
        reply.status
    );
    if let Some(code) = error_code(xml, json) {
        out.push_str(&format!(", code {code}"));
    }
    if let Some(root) = xml {
        for (label, p) in [
            ("pointer", "FunctionalError/errorPointer"),
            ("reason", "FunctionalError/errorReason"),
            ("pointer", "XMLError/errorPointer"),
            ("reason", "XMLError/errorText"),
        ] {
            if let Ok(found) = pointer::select(root, &format!("/{}/{p}", root.name))
                && let Some(v) = found.into_iter().next()
            {
                out.push_str(&format!(", {label} {v}"));
            }
        }
    } else if let Some(m) = json.and_then(|v| {
        pointer::select_json(v, "#/error/message")
            .into_iter()
            .next()
    }) {
        out.push_str(&format!(": {m}"));
    } else if !reply.body.is_empty() {
        let short: String = reply.body.chars().take(200).collect();
        out.push_str(&format!(": {short}"));
    }
    out
}

/// The phase of `office` in `role` in a node's movement view.
pub fn office_phase(view: &serde_json::Value, office: &str, role: &str) -> Option<String> {
    view.get("offices")?
        .as_array()?
        .iter()
        .find(|o| {
            o.get("office").and_then(|v| v.as_str()) == Some(office)
                && o.get("role").and_then(|v| v.as_str()) == Some(role)
        })
        .and_then(|o| o.get("phase"))
        .and_then(|p| p.as_str())
        .map(str::to_owned)
}

/// Phases compared without regard to case, `_`, `-` and spaces.
pub fn same_phase(a: &str, b: &str) -> bool {
    let norm = |s: &str| -> String {
        s.chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .map(|c| c.to_ascii_lowercase())
            .collect()
    };
    norm(a) == norm(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A target in memory: answers every message with `answer_type`, and has one message on
    /// its stream.
    struct Fake {
        answer_type: &'static str,
        actions: Mutex<Vec<serde_json::Value>>,
    }

    impl Driver for Fake {
        fn countries(&self) -> Vec<String> {
            vec!["KZ".into()]
        }
        fn can_restart(&self) -> bool {
            false
        }
        fn has_hub(&self) -> bool {
            false
        }
        fn environment(&self) -> Vec<(String, String)> {
            vec![("target".into(), "fake".into())]
        }
        async fn submit(&self, _: &str, xml: String) -> Result<Reply, DriverError> {
            let lrn = pointer::parse(&xml)
                .ok()
                .and_then(|r| pointer::select(&r, "/CC015C/TransitOperation/LRN").ok())
                .and_then(|v| v.into_iter().next())
                .unwrap_or_default();
            Ok(Reply {
                status: 200,
                message_type: Some(self.answer_type.into()),
                mrn: None,
                lrn: Some(lrn.clone()),
                body: format!(
                    "<ncts:{t} xmlns:ncts=\"http://ncts.dgtaxud.ec\"><TransitOperation><LRN>{lrn}</LRN></TransitOperation></ncts:{t}>",
                    t = self.answer_type
                ),
            })
        }
        async fn expect(
            &self,
            _: &str,
            key: &str,
            t: &str,
            _: Duration,
        ) -> Result<Received, DriverError> {
            if t == "CC028C" {
                Ok(Received {
                    message_type: t.into(),
                    xml: format!(
                        "<CC028C><TransitOperation><LRN>{key}</LRN><MRN>26KZ00010100000018</MRN></TransitOperation></CC028C>"
                    ),
                })
            } else {
                Err(DriverError(format!("only CC028C came for {key}")))
            }
        }
        async fn act(
            &self,
            _: &str,
            action: serde_json::Value,
        ) -> Result<Result<serde_json::Value, Refusal>, DriverError> {
            if let Ok(mut a) = self.actions.lock() {
                a.push(action);
            }
            Ok(Err(Refusal {
                status: 409,
                code: "92".into(),
                message: "out of sequence".into(),
            }))
        }
        async fn movement(
            &self,
            _: &str,
            _: &str,
        ) -> Result<Option<serde_json::Value>, DriverError> {
            Ok(Some(
                serde_json::json!({"offices": [{"office": "KZ000101", "role": "departure", "phase": "Released"}]}),
            ))
        }
        async fn hub_movement(&self, _: &str) -> Result<Option<serde_json::Value>, DriverError> {
            Ok(None)
        }
        async fn restart(&self, _: &str) -> Result<(), DriverError> {
            Err(DriverError("cannot".into()))
        }
    }

    fn case(manifest: &str) -> Case {
        let manifest: case::Manifest = toml::from_str(manifest).expect("a manifest");
        let mut files = BTreeMap::new();
        files.insert(
            "cc015c.xml".to_owned(),
            "<ncts:CC015C xmlns:ncts=\"http://ncts.dgtaxud.ec\"><TransitOperation><LRN>{{lrn}}</LRN></TransitOperation></ncts:CC015C>".to_owned(),
        );
        Case {
            suite: "s".into(),
            name: "c".into(),
            dir: ".".into(),
            manifest,
            files,
        }
    }

    const CASE: &str = r#"
description = "d"
tags = ["CC015C"]
countries = ["KZ"]
[[step]]
do = "send"
to = "KZ"
file = "cc015c.xml"
reply = { status = 200, type = "CC928C", assert = [{ pointer = "/CC928C/TransitOperation/LRN", equals = "{{lrn}}" }] }
[[step]]
do = "expect"
at = "KZ"
type = "CC028C"
key = "{{lrn}}"
capture = { mrn = "/CC028C/TransitOperation/MRN" }
[[step]]
do = "action"
at = "KZ"
action = { action = "release", mrn = "{{mrn}}" }
refused = "92"
[[step]]
do = "state"
at = "KZ"
office = "KZ000101"
role = "departure"
phase = "Accepted|released"
"#;

    fn block_on<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(f)
    }

    #[test]
    fn a_case_passes_with_templates_captures_and_refusals() {
        let fake = Fake {
            answer_type: "CC928C",
            actions: Mutex::new(Vec::new()),
        };
        let result = block_on(run_case(&fake, &case(CASE)));
        assert_eq!(
            result.outcome,
            CaseOutcome::Passed,
            "{:?}",
            result.difference
        );
        assert_eq!(result.vars["mrn"], "26KZ00010100000018");
        let actions = fake.actions.lock().expect("lock");
        assert_eq!(actions[0]["mrn"], "26KZ00010100000018");
        assert_eq!(
            result.exchanges.first().map(|e| e.direction.as_str()),
            Some("sent")
        );
    }

    #[test]
    fn the_wrong_answer_is_the_first_difference_with_expected_and_actual() {
        let fake = Fake {
            answer_type: "CC056C",
            actions: Mutex::new(Vec::new()),
        };
        let result = block_on(run_case(&fake, &case(CASE)));
        assert_eq!(result.outcome, CaseOutcome::Failed);
        let d = result.difference.expect("a difference");
        assert_eq!(d.step, 1);
        assert_eq!(d.what, "reply message type");
        assert_eq!(d.expected, "CC928C");
        assert!(d.actual.starts_with("CC056C (HTTP 200)"), "{}", d.actual);
    }

    /// A hub in memory: routes every envelope to its recipient unchanged, or (when `refuse`
    /// is set) answers with a CD906C of that code; everything also arrives `extra` more times.
    struct FakeHub {
        refuse: Option<&'static str>,
        extra: usize,
        inbox: Mutex<Vec<(String, Delivered)>>,
    }

    impl Driver for FakeHub {
        fn countries(&self) -> Vec<String> {
            Vec::new()
        }
        fn can_restart(&self) -> bool {
            false
        }
        fn has_hub(&self) -> bool {
            false
        }
        fn environment(&self) -> Vec<(String, String)> {
            Vec::new()
        }
        async fn submit(&self, _: &str, _: String) -> Result<Reply, DriverError> {
            Err(DriverError("no nodes".into()))
        }
        async fn expect(
            &self,
            _: &str,
            _: &str,
            _: &str,
            _: Duration,
        ) -> Result<Received, DriverError> {
            Err(DriverError("no nodes".into()))
        }
        async fn act(
            &self,
            _: &str,
            _: serde_json::Value,
        ) -> Result<Result<serde_json::Value, Refusal>, DriverError> {
            Err(DriverError("no nodes".into()))
        }
        async fn movement(
            &self,
            _: &str,
            _: &str,
        ) -> Result<Option<serde_json::Value>, DriverError> {
            Ok(None)
        }
        async fn hub_movement(&self, _: &str) -> Result<Option<serde_json::Value>, DriverError> {
            Ok(None)
        }
        async fn restart(&self, _: &str) -> Result<(), DriverError> {
            Err(DriverError("cannot".into()))
        }
        fn link_countries(&self) -> Vec<String> {
            vec!["KZ".into(), "GE".into()]
        }
        async fn hub_send(&self, r: HubSendRequest) -> Result<Vec<u8>, DriverError> {
            let wire = format!("envelope of {}", r.xml).into_bytes();
            let d = match self.refuse {
                None => (
                    r.to.clone(),
                    Delivered {
                        wire: wire.clone(),
                        message_id: r.message_id.clone(),
                        message_type: r.message_type.clone(),
                        sender: r.signer.clone(),
                        body: r.xml.clone(),
                        ..Delivered::default()
                    },
                ),
                Some(code) => (
                    r.sender.clone(),
                    Delivered {
                        message_id: "HUB-1".into(),
                        message_type: "CD906C".into(),
                        correlation_id: Some(r.message_id.clone()),
                        sender: "hub".into(),
                        body: format!(
                            "<CD906C><FunctionalError><errorPointer>/CD001C/messageIdentification</errorPointer><errorCode>{code}</errorCode></FunctionalError></CD906C>"
                        ),
                        ..Delivered::default()
                    },
                ),
            };
            if let Ok(mut inbox) = self.inbox.lock() {
                for _ in 0..=self.extra {
                    inbox.push(d.clone());
                }
            }
            Ok(wire)
        }
        async fn hub_wait(
            &self,
            country: &str,
            filter: &HubFilter,
            skip: usize,
            _: Duration,
        ) -> Result<Option<Delivered>, DriverError> {
            Ok(self.inbox.lock().ok().and_then(|i| {
                i.iter()
                    .filter(|(c, d)| c == country && filter.matches(d))
                    .nth(skip)
                    .map(|(_, d)| d.clone())
            }))
        }
        fn hub_delivered(&self, country: &str) -> Vec<Delivered> {
            self.inbox
                .lock()
                .map(|i| {
                    i.iter()
                        .filter(|(c, _)| c == country)
                        .map(|(_, d)| d.clone())
                        .collect()
                })
                .unwrap_or_default()
        }
    }

    const HUB_CASE: &str = r#"
description = "d"
tags = ["CD001C", "hub"]
[vars]
id = "{{uuid}}"
[[step]]
do = "hub-send"
as = "KZ"
to = "GE"
file = "cd001c.xml"
[[step]]
do = "hub-expect"
at = "GE"
type = "CD001C"
id = "{{id}}"
from = "KZ"
unchanged = true
assert = [{ pointer = "/CD001C/messageIdentification", equals = "{{id}}" }]
[[step]]
do = "hub-expect"
at = "GE"
type = "CD001C"
id = "{{id}}"
nothing = true
within = 0.1
"#;

    fn hub_case(manifest: &str) -> Case {
        let mut c = case(manifest);
        c.files.insert(
            "cd001c.xml".to_owned(),
            "<cats:CD001C xmlns:cats=\"urn:carec:cats:common:1\"><messageIdentification>{{id}}</messageIdentification><messageType>CD001C</messageType></cats:CD001C>".to_owned(),
        );
        c
    }

    fn fake_hub(refuse: Option<&'static str>, extra: usize) -> FakeHub {
        FakeHub {
            refuse,
            extra,
            inbox: Mutex::new(Vec::new()),
        }
    }

    #[test]
    fn a_hub_case_routes_unchanged_and_nothing_more_arrives() {
        let hub = fake_hub(None, 0);
        let r = block_on(run_case(&hub, &hub_case(HUB_CASE)));
        assert_eq!(r.outcome, CaseOutcome::Passed, "{:?}", r.difference);
        let directions: Vec<&str> = r.exchanges.iter().map(|e| e.direction.as_str()).collect();
        assert_eq!(directions, ["hub-sent", "hub-delivered"]);
    }

    #[test]
    fn a_second_copy_fails_nothing_with_what_came() {
        let hub = fake_hub(None, 1);
        let r = block_on(run_case(&hub, &hub_case(HUB_CASE)));
        let d = r.difference.expect("the copy is a difference");
        assert_eq!(d.step, 3, "{d:?}");
        assert!(d.expected.starts_with("no CD001C "), "{d:?}");
        assert!(d.expected.contains("(again: 1 already matched)"), "{d:?}");
        assert!(
            d.actual.starts_with("CD001C ") && d.actual.contains("from KZ"),
            "{d:?}"
        );
    }

    #[test]
    fn a_nack_instead_of_the_routed_message_is_the_first_difference() {
        let hub = fake_hub(Some("26"), 0);
        let r = block_on(run_case(&hub, &hub_case(HUB_CASE)));
        let d = r.difference.expect("a difference");
        assert_eq!(
            (d.step, d.what.as_str()),
            (2, "envelopes the hub delivers to GE"),
            "{d:?}"
        );
        assert_eq!(d.actual, "nothing came");
        // Expecting the NACK with another code names both codes.
        let nack = HUB_CASE
            .split("[[step]]\ndo = \"hub-expect\"")
            .next()
            .unwrap_or_default()
            .to_owned()
            + r#"[[step]]
do = "hub-expect"
at = "KZ"
type = "CD906C"
correlates = "{{id}}"
from = "hub"
assert = [{ pointer = "/CD906C/FunctionalError/errorCode", equals = "14" }]
"#;
        let r = block_on(run_case(&hub, &hub_case(&nack)));
        let d = r.difference.expect("a difference");
        assert_eq!(d.what, "/CD906C/FunctionalError/errorCode", "{d:?}");
        assert_eq!(
            (d.expected.as_str(), d.actual.as_str()),
            ("\"14\"", "\"26\"")
        );
        // Without a link the case is not applicable.
        let results = block_on(run(
            &Fake {
                answer_type: "CC928C",
                actions: Mutex::new(Vec::new()),
            },
            &[hub_case(HUB_CASE)],
            &RunOptions {
                parallel: 1,
                filter: vec![],
                target: "fake".into(),
            },
        ));
        assert!(results.cases.is_empty());
        assert!(
            results.not_applicable[0].why.contains("--hub-link"),
            "{:?}",
            results.not_applicable
        );
    }

    #[test]
    fn cases_the_target_cannot_serve_are_not_applicable_and_the_filter_selects() {
        let fake = Fake {
            answer_type: "CC928C",
            actions: Mutex::new(Vec::new()),
        };
        let mut az = case(&CASE.replace("countries = [\"KZ\"]", "countries = [\"KZ\", \"AZ\"]"));
        az.name = "az".into();
        let kz = case(CASE);
        let options = RunOptions {
            parallel: 2,
            filter: vec![],
            target: "fake".into(),
        };
        let results = block_on(run(&fake, &[kz.clone(), az], &options));
        assert_eq!(results.cases.len(), 1);
        assert_eq!(results.not_applicable.len(), 1);
        assert!(results.not_applicable[0].why.contains("AZ"));
        assert!(results.all_passed());
        let filtered = block_on(run(
            &fake,
            &[kz],
            &RunOptions {
                filter: vec!["CC029C".into()],
                ..options
            },
        ));
        assert!(filtered.cases.is_empty());
        assert!(!filtered.all_passed(), "nothing run certifies nothing");
    }
}
