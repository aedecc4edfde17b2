//! The message-set format: a case is a directory with `case.toml` and the XML files it sends;
//! a suite is a directory of cases.
//!
//! ```toml
//! description = "KZ: the declaration is accepted, released and written off"
//! tags = ["CC015C", "CC028C", "departure", "positive"]
//! countries = ["KZ", "AZ", "GE"]     # the nodes the case needs
//! within = 30                        # default time limit of a step, seconds
//!
//! [vars]                             # more variables (templated once, at the start)
//! declaration_id = "{{uuid}}"
//!
//! [[step]]
//! do = "send"                        # the national system of KZ POSTs a message
//! to = "KZ"
//! file = "cc015c.xml"
//! reply = { status = 200, type = "CC928C" }
//!
//! [[step]]
//! do = "expect"                      # a message on KZ's stream to its national system
//! at = "KZ"
//! type = "CC028C"
//! key = "{{lrn}}"                    # the LRN or MRN it is for (default {{mrn}})
//! capture = { mrn = "/CC028C/TransitOperation/MRN" }
//! assert = [{ pointer = "/CC028C/TransitOperation/LRN", equals = "{{lrn}}" }]
//!
//! [[step]]
//! do = "action"                      # an officer action (POST /api/v1/actions)
//! at = "KZ"
//! action = { action = "record-presentation", office = "KZ000101", role = "exit", mrn = "{{mrn}}" }
//!
//! [[step]]
//! do = "state"                       # the node's view of the movement
//! at = "KZ"
//! office = "KZ000101"
//! role = "departure"
//! phase = "WrittenOff"
//!
//! [[step]]
//! do = "hub"                         # the hub's registry
//! assert = [{ pointer = "#/state", equals = "WrittenOff" }]
//!
//! [[step]]
//! do = "restart"                     # stop the node and start it again (--target self)
//! node = "AZ"
//!
//! [[step]]
//! do = "hub-send"                    # a common-domain message to the hub, as KZ's node:
//! as = "KZ"                          # sealed with KZ's signing key, over KZ's TLS identity
//! to = "GE"                          # the envelope's recipient (a country, or "hub")
//! file = "cd001c.xml"
//!
//! [[step]]
//! do = "hub-expect"                  # an envelope the hub delivers to GE's identity
//! at = "GE"
//! type = "CD001C"
//! id = "{{aar_id}}"                  # its message identification (or correlates = ...)
//! from = "KZ"                        # who signed it (a country, or "hub")
//! unchanged = true                   # the very bytes KZ sent
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::pointer::Assertion;

/// The default time limit of a step, seconds.
pub const DEFAULT_WITHIN: f64 = 30.0;

/// `case.toml`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// What the case shows, in a sentence.
    pub description: String,
    /// Message types, office roles (`departure`, `exit`, `transit`, `destination`, `hub`),
    /// `positive` or `negative`, and any other label `--filter` can select on.
    #[serde(default)]
    pub tags: Vec<String>,
    /// The countries whose nodes the case talks to.
    #[serde(default)]
    pub countries: Vec<String>,
    /// The default time limit of a step, seconds.
    #[serde(default)]
    pub within: Option<f64>,
    /// Variables, templated once at the start of the case.
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
    /// The steps, in order.
    #[serde(rename = "step", default)]
    pub steps: Vec<Step>,
}

/// One step of a case.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "do", rename_all = "kebab-case")]
pub enum Step {
    /// The national system sends a message to its node.
    Send(Send),
    /// A message comes on a node's stream to its national system.
    Expect(Expect),
    /// An officer acts.
    Action(Action),
    /// The node's view of the movement.
    State(State),
    /// The hub's registry entry of the movement.
    Hub(Hub),
    /// A node stops and starts again.
    Restart(Restart),
    /// A common-domain envelope sent to the hub as a country's node.
    HubSend(HubSend),
    /// An envelope the hub delivers to a country's node identity (or nothing, in time).
    HubExpect(HubExpect),
}

impl Step {
    /// `send`, `expect` ...
    pub fn kind(&self) -> &'static str {
        match self {
            Step::Send(_) => "send",
            Step::Expect(_) => "expect",
            Step::Action(_) => "action",
            Step::State(_) => "state",
            Step::Hub(_) => "hub",
            Step::Restart(_) => "restart",
            Step::HubSend(_) => "hub-send",
            Step::HubExpect(_) => "hub-expect",
        }
    }

    /// The countries whose node identities this step plays on the hub's link.
    pub fn link_identities(&self) -> Vec<&str> {
        match self {
            Step::HubSend(s) => vec![s.sender.as_str()],
            Step::HubExpect(e) => vec![e.at.as_str()],
            _ => Vec::new(),
        }
    }
}

/// How `hub-send` spoils an envelope after sealing it, to see the hub refuse it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tamper {
    /// One byte of the body changed: its SHA-256 is no longer the signed header's.
    Body,
    /// One byte of the signature changed: it no longer verifies.
    Signature,
}

/// `do = "hub-send"`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HubSend {
    /// The country whose node TLS identity carries the envelope to the hub.
    #[serde(rename = "as")]
    pub sender: String,
    /// The envelope's recipient: a country, or `hub` (guarantee messages).
    pub to: String,
    /// The XML body (templated), relative to the case. The header's message identification,
    /// type and MRN are read from it.
    pub file: String,
    /// Whose signing key seals it (default: the sender's); the header's sender is that
    /// country, so another country's key makes an envelope the transport did not originate.
    #[serde(default)]
    pub signer: Option<String>,
    /// Spoil the sealed envelope.
    #[serde(default)]
    pub tamper: Option<Tamper>,
}

/// `do = "hub-expect"`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HubExpect {
    /// The country whose node identity must receive it.
    pub at: String,
    /// Its message type (the envelope header's).
    #[serde(rename = "type")]
    pub message_type: String,
    /// Its message identification (templated): a routed message keeps the sender's.
    #[serde(default)]
    pub id: Option<String>,
    /// Its correlation identification (templated): what a NACK or a CD205C answers.
    #[serde(default)]
    pub correlates: Option<String>,
    /// Who signed it: a country or `hub`.
    #[serde(default)]
    pub from: Option<String>,
    /// It is byte for byte the envelope sent with this message identification in this case.
    #[serde(default)]
    pub unchanged: bool,
    /// Nothing of this type (and id / correlation) may arrive within the time limit.
    #[serde(default)]
    pub nothing: bool,
    /// Its time limit, seconds.
    #[serde(default)]
    pub within: Option<f64>,
    /// Assertions on the body.
    #[serde(default)]
    pub assert: Vec<Assertion>,
    /// Variables taken from the body: name → pointer.
    #[serde(default)]
    pub capture: BTreeMap<String, String>,
}

/// `do = "send"`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Send {
    /// The country whose node receives it.
    pub to: String,
    /// The XML file (templated), relative to the case.
    pub file: String,
    /// What the synchronous answer must be.
    #[serde(default)]
    pub reply: Option<ReplyExpectation>,
    /// Variables taken from the answer: name → pointer (or `header:x-cats-mrn`).
    #[serde(default)]
    pub capture: BTreeMap<String, String>,
}

/// The synchronous answer to a message.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReplyExpectation {
    /// The HTTP status.
    #[serde(default)]
    pub status: Option<u16>,
    /// The message type of the answer (`CC928C`, `CC056C`, `CC917C` ...).
    #[serde(rename = "type", default)]
    pub message_type: Option<String>,
    /// The functional error code (`12`, `14`, `26`, `90`, `92`, `93`) of a rejection.
    #[serde(default)]
    pub code: Option<String>,
    /// Assertions on the answer.
    #[serde(default)]
    pub assert: Vec<Assertion>,
}

/// `do = "expect"`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// The country whose node sends it to its national system.
    pub at: String,
    /// Its message type.
    #[serde(rename = "type")]
    pub message_type: String,
    /// The MRN or LRN it is for (templated; default `{{mrn}}`).
    #[serde(default)]
    pub key: Option<String>,
    /// Its time limit, seconds.
    #[serde(default)]
    pub within: Option<f64>,
    /// Assertions on it.
    #[serde(default)]
    pub assert: Vec<Assertion>,
    /// Variables taken from it: name → pointer.
    #[serde(default)]
    pub capture: BTreeMap<String, String>,
}

/// `do = "action"`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Action {
    /// The country of the officer's node.
    pub at: String,
    /// The action as the API takes it (string values templated).
    pub action: toml::Table,
    /// The refusal code the node must answer with (`92` ...); unset: it must be done.
    #[serde(default)]
    pub refused: Option<String>,
    /// Assertions on the JSON answer (`#/movement/...`).
    #[serde(default)]
    pub assert: Vec<Assertion>,
}

/// `do = "state"`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    /// The country of the node.
    pub at: String,
    /// The movement (templated; default `{{mrn}}`).
    #[serde(default)]
    pub mrn: Option<String>,
    /// The office.
    pub office: String,
    /// Its role.
    pub role: String,
    /// The phase to reach (`WrittenOff`; `A|B` for either).
    pub phase: String,
    /// The time limit, seconds.
    #[serde(default)]
    pub within: Option<f64>,
}

/// `do = "hub"`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Hub {
    /// The movement (templated; default `{{mrn}}`).
    #[serde(default)]
    pub mrn: Option<String>,
    /// Assertions on the registry's JSON (`#/state` ...), polled until they hold.
    pub assert: Vec<Assertion>,
    /// The time limit, seconds.
    #[serde(default)]
    pub within: Option<f64>,
}

/// `do = "restart"`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Restart {
    /// The country of the node.
    pub node: String,
}

/// A case loaded from its directory.
#[derive(Debug, Clone)]
pub struct Case {
    /// The suite's name (its directory's name).
    pub suite: String,
    /// The case's name (its directory's name).
    pub name: String,
    /// Its directory.
    pub dir: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
    /// The files its send steps name, read.
    pub files: BTreeMap<String, String>,
}

impl Case {
    /// `suite/name`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.suite, self.name)
    }

    /// Whether `tag` selects this case (a tag, the suite's name or the case's id).
    pub fn has_tag(&self, tag: &str) -> bool {
        self.suite == tag
            || self.id() == tag
            || self
                .manifest
                .tags
                .iter()
                .any(|t| t.eq_ignore_ascii_case(tag))
    }
}

/// A suite: its cases, sorted by name.
#[derive(Debug, Clone)]
pub struct Suite {
    /// Its name.
    pub name: String,
    /// Its cases.
    pub cases: Vec<Case>,
}

/// A case or suite that cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A file cannot be read.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// `case.toml` is not a manifest.
    #[error("{path}: {message}")]
    Manifest {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A directory with neither `case.toml` nor cases.
    #[error("{0}: no case.toml here nor in any subdirectory")]
    Empty(PathBuf),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LoadError + '_ {
    move |error| LoadError::Io {
        path: path.to_owned(),
        error,
    }
}

/// `name` inside `dir`, or why not.
fn checked_file(name: &str, dir: &Path) -> Result<PathBuf, String> {
    if name.contains("..") || Path::new(name).is_absolute() {
        return Err(format!("file {name:?} must be inside the case's directory"));
    }
    Ok(dir.join(name))
}

/// Two ASCII capitals.
fn is_country(s: &str) -> bool {
    s.len() == 2 && s.bytes().all(|b| b.is_ascii_uppercase())
}

/// Loads one case from `dir` (which holds `case.toml`), in `suite`.
pub fn load_case(suite: &str, dir: &Path) -> Result<Case, LoadError> {
    let path = dir.join("case.toml");
    let text = std::fs::read_to_string(&path).map_err(io(&path))?;
    let manifest: Manifest = toml::from_str(&text).map_err(|e| LoadError::Manifest {
        path: path.clone(),
        message: e.to_string(),
    })?;
    let bad = |message: String| LoadError::Manifest {
        path: path.clone(),
        message,
    };
    if manifest.steps.is_empty() {
        return Err(bad("a case needs at least one [[step]]".into()));
    }
    let mut files = BTreeMap::new();
    for (i, step) in manifest.steps.iter().enumerate() {
        let country = match step {
            Step::Send(s) => {
                let file =
                    checked_file(&s.file, dir).map_err(|m| bad(format!("step {}: {m}", i + 1)))?;
                let text = std::fs::read_to_string(&file).map_err(io(&file))?;
                files.insert(s.file.clone(), text);
                &s.to
            }
            Step::Expect(e) => &e.at,
            Step::Action(a) => &a.at,
            Step::State(s) => &s.at,
            Step::Restart(r) => &r.node,
            Step::Hub(_) => continue,
            Step::HubSend(s) => {
                let file =
                    checked_file(&s.file, dir).map_err(|m| bad(format!("step {}: {m}", i + 1)))?;
                let text = std::fs::read_to_string(&file).map_err(io(&file))?;
                files.insert(s.file.clone(), text);
                let parties = [Some(&s.sender), s.signer.as_ref()];
                for p in parties.into_iter().flatten() {
                    if !is_country(p) {
                        return Err(bad(format!(
                            "step {} (hub-send): {p:?} is not a two-letter country code",
                            i + 1
                        )));
                    }
                }
                if s.to != "hub" && !is_country(&s.to) {
                    return Err(bad(format!(
                        "step {} (hub-send): to = {:?} is neither a country nor \"hub\"",
                        i + 1,
                        s.to
                    )));
                }
                continue;
            }
            Step::HubExpect(e) => {
                if !is_country(&e.at) {
                    return Err(bad(format!(
                        "step {} (hub-expect): at = {:?} is not a two-letter country code",
                        i + 1,
                        e.at
                    )));
                }
                if let Some(f) = &e.from
                    && f != "hub"
                    && !is_country(f)
                {
                    return Err(bad(format!(
                        "step {} (hub-expect): from = {f:?} is neither a country nor \"hub\"",
                        i + 1
                    )));
                }
                if e.id.is_none() && e.correlates.is_none() {
                    return Err(bad(format!(
                        "step {} (hub-expect): give id or correlates, so that only this case's envelope matches",
                        i + 1
                    )));
                }
                if e.nothing && (!e.assert.is_empty() || !e.capture.is_empty() || e.unchanged) {
                    return Err(bad(format!(
                        "step {} (hub-expect): nothing = true takes no assert, capture or unchanged",
                        i + 1
                    )));
                }
                continue;
            }
        };
        if !manifest.countries.iter().any(|c| c == country) {
            return Err(bad(format!(
                "step {} ({}) talks to {country}, which is not in countries = {:?}",
                i + 1,
                step.kind(),
                manifest.countries
            )));
        }
    }
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "case".into());
    Ok(Case {
        suite: suite.to_owned(),
        name,
        dir: dir.to_owned(),
        manifest,
        files,
    })
}

/// Loads a suite directory (each subdirectory with `case.toml` is a case), or a single case
/// directory (a suite of one).
pub fn load_suite(dir: &Path) -> Result<Suite, LoadError> {
    let name = dir
        .canonicalize()
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| dir.display().to_string());
    if dir.join("case.toml").is_file() {
        let parent = dir
            .canonicalize()
            .ok()
            .and_then(|d| {
                d.parent()
                    .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            })
            .unwrap_or_else(|| "cases".into());
        let case = load_case(&parent, dir)?;
        return Ok(Suite {
            name: parent,
            cases: vec![case],
        });
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("case.toml").is_file())
        .collect();
    dirs.sort();
    if dirs.is_empty() {
        return Err(LoadError::Empty(dir.to_owned()));
    }
    let cases = dirs
        .iter()
        .map(|d| load_case(&name, d))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Suite { name, cases })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = r#"
description = "accepted"
tags = ["CC015C", "departure", "positive"]
countries = ["KZ"]

[vars]
id = "{{uuid}}"

[[step]]
do = "send"
to = "KZ"
file = "cc015c.xml"
reply = { status = 200, type = "CC928C" }

[[step]]
do = "expect"
at = "KZ"
type = "CC028C"
key = "{{lrn}}"
capture = { mrn = "/CC028C/TransitOperation/MRN" }
assert = [{ pointer = "/CC028C/TransitOperation/LRN", equals = "{{lrn}}" }]

[[step]]
do = "action"
at = "KZ"
action = { action = "release", office = "KZ000101", mrn = "{{mrn}}" }
refused = "92"
"#;

    fn write_case(dir: &Path, manifest: &str) {
        std::fs::create_dir_all(dir).expect("mkdir");
        std::fs::write(dir.join("case.toml"), manifest).expect("write");
        std::fs::write(dir.join("cc015c.xml"), "<CC015C/>").expect("write");
    }

    #[test]
    fn a_suite_loads_its_cases_with_their_files_and_tags() {
        let root = tempfile::tempdir().expect("tempdir");
        let suite = root.path().join("departure");
        write_case(&suite.join("b-second"), MANIFEST);
        write_case(&suite.join("a-first"), MANIFEST);
        let loaded = load_suite(&suite).expect("loads");
        assert_eq!(loaded.name, "departure");
        let names: Vec<_> = loaded.cases.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["a-first", "b-second"]);
        let case = &loaded.cases[0];
        assert_eq!(case.id(), "departure/a-first");
        assert_eq!(case.files["cc015c.xml"], "<CC015C/>");
        assert_eq!(case.manifest.steps.len(), 3);
        assert!(
            matches!(&case.manifest.steps[2], Step::Action(a) if a.refused.as_deref() == Some("92"))
        );
        assert!(case.has_tag("cc015c") && case.has_tag("departure") && !case.has_tag("CC029C"));
        let one = load_suite(&suite.join("a-first")).expect("a single case");
        assert_eq!(one.cases.len(), 1);
    }

    #[test]
    fn hub_steps_load_and_bad_ones_say_why() {
        let root = tempfile::tempdir().expect("tempdir");
        let good = r#"
description = "aar"
[[step]]
do = "hub-send"
as = "KZ"
to = "GE"
file = "cc015c.xml"
tamper = "body"
[[step]]
do = "hub-expect"
at = "GE"
type = "CD001C"
id = "x"
nothing = true
"#;
        let dir = root.path().join("good");
        write_case(&dir, good);
        let case = load_case("hub", &dir).expect("loads");
        assert!(case.manifest.countries.is_empty());
        let identities: Vec<&str> = case
            .manifest
            .steps
            .iter()
            .flat_map(|s| s.link_identities())
            .collect();
        assert_eq!(identities, ["KZ", "GE"]);
        assert!(
            matches!(&case.manifest.steps[0], Step::HubSend(s) if s.tamper == Some(Tamper::Body))
        );

        for (name, from, to, why) in [
            ("no-filter", "id = \"x\"\n", "", "give id or correlates"),
            (
                "bad-country",
                "at = \"GE\"",
                "at = \"Georgia\"",
                "not a two-letter country code",
            ),
            (
                "bad-to",
                "to = \"GE\"",
                "to = \"node\"",
                "neither a country nor \"hub\"",
            ),
            (
                "nothing-assert",
                "nothing = true",
                "nothing = true\nunchanged = true",
                "takes no assert",
            ),
            (
                "bad-tamper",
                "tamper = \"body\"",
                "tamper = \"header\"",
                "header",
            ),
        ] {
            let dir = root.path().join(name);
            write_case(&dir, &good.replace(from, to));
            let e = load_case("hub", &dir).expect_err(name);
            assert!(e.to_string().contains(why), "{name}: {e}");
        }
    }

    #[test]
    fn unknown_keys_missing_files_and_undeclared_countries_are_refused_with_the_reason() {
        let root = tempfile::tempdir().expect("tempdir");
        let typo = root.path().join("typo");
        write_case(
            &typo,
            &MANIFEST.replace("refused = \"92\"", "refuse = \"92\""),
        );
        let e = load_case("s", &typo).expect_err("unknown key");
        assert!(e.to_string().contains("refuse"), "{e}");

        let country = root.path().join("country");
        write_case(&country, &MANIFEST.replace("to = \"KZ\"", "to = \"AZ\""));
        let e = load_case("s", &country).expect_err("AZ not declared");
        assert!(e.to_string().contains("talks to AZ"), "{e}");

        let missing = root.path().join("missing");
        write_case(&missing, &MANIFEST.replace("cc015c.xml", "nope.xml"));
        let e = load_case("s", &missing).expect_err("no file");
        assert!(e.to_string().contains("nope.xml"), "{e}");

        let outside = root.path().join("outside");
        write_case(&outside, &MANIFEST.replace("cc015c.xml", "../x.xml"));
        assert!(load_case("s", &outside).is_err());

        let kind = root.path().join("kind");
        write_case(&kind, &MANIFEST.replace("do = \"send\"", "do = \"post\""));
        let e = load_case("s", &kind).expect_err("unknown step");
        assert!(e.to_string().contains("post"), "{e}");

        assert!(matches!(
            load_suite(
                root.path()
                    .join("kind")
                    .parent()
                    .expect("root")
                    .join("nothing")
                    .as_path()
            ),
            Err(LoadError::Io { .. })
        ));
    }
}
