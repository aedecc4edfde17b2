//! The conformance kit, run as a national team runs it: the real `cats conformance` binary.
//!
//! - the standard suites pass against `--target self` (the CI run of the kit), their JUnit XML
//!   counts every case, and their HTML report renders in headless Chromium;
//! - against a deliberately broken node (a small HTTPS server in this test that answers every
//!   message with the wrong message type) the runner fails, exit 1, with a difference a person
//!   can read, and the JUnit XML and the report say so.
//!
//! Screenshots go to `$CARGO_TARGET_DIR/test-artefacts/` (or `target/test-artefacts/`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use cats_conformance::pointer;

#[path = "../src/cli/demo"]
#[allow(dead_code)]
mod demo {
    pub mod client;
    pub mod journey;
    pub mod load;
    pub mod messages;
    pub mod world;
}

fn cats(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cats"))
        .args(args)
        .output()
        .expect("the cats binary runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn suites() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("conformance-tests/suites")
}

fn suite_dirs() -> Vec<String> {
    let mut dirs: Vec<String> = std::fs::read_dir(suites())
        .expect("the suites directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .map(|p| p.display().to_string())
        .collect();
    dirs.sort();
    dirs
}

/// Every case directory of the standard suites.
fn case_count() -> usize {
    suite_dirs()
        .iter()
        .flat_map(|s| {
            std::fs::read_dir(s)
                .expect("a suite")
                .filter_map(|e| e.ok())
        })
        .filter(|e| e.path().join("case.toml").is_file())
        .count()
}

fn artefacts() -> PathBuf {
    let base = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = base.join("test-artefacts");
    std::fs::create_dir_all(&dir).expect("the artefacts directory");
    dir
}

/// `(tests, failures, skipped)` of a JUnit document's root, and its test cases.
fn junit_counts(xml: &str) -> (usize, usize, usize, usize) {
    let root = pointer::parse(xml).expect("the JUnit XML is well formed");
    assert_eq!(root.name, "testsuites");
    let attr = |name: &str| -> usize {
        let needle = format!("{name}=\"");
        let start = xml.find(&needle).expect("the attribute") + needle.len();
        xml[start..]
            .split('"')
            .next()
            .and_then(|v| v.parse().ok())
            .expect("a number")
    };
    let testcases = root
        .children
        .iter()
        .flat_map(|s| s.children.iter())
        .filter(|c| c.name == "testcase")
        .count();
    (attr("tests"), attr("failures"), attr("skipped"), testcases)
}

/// Opens `html` in headless Chromium: a screenshot to the artefacts, and the rendered DOM.
/// `None` when Chromium is not installed, outside CI only.
fn chromium(html: &Path, screenshot: &str) -> Option<String> {
    let binary = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    let Some(binary) = binary else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "chromium is not installed (scripts/test.sh installs it); under CI=true this fails"
        );
        eprintln!("skipping the browser check: chromium is not installed");
        return None;
    };
    let url = format!("file://{}", html.display());
    let profile = tempfile::tempdir().expect("a profile directory");
    let common = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
    ];
    let shot = artefacts().join(screenshot);
    let _ = std::fs::remove_file(&shot);
    let o = Command::new(binary)
        .args(common)
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--screenshot={}", shot.display()))
        .arg("--window-size=1280,1800")
        .arg(&url)
        .output()
        .expect("chromium runs");
    assert!(
        shot.is_file() && std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0) > 10_000,
        "no screenshot at {}: {}",
        shot.display(),
        text(&o)
    );
    let o = Command::new(binary)
        .args(common)
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(&url)
        .output()
        .expect("chromium runs");
    assert!(o.status.success(), "chromium --dump-dom: {}", text(&o));
    Some(String::from_utf8_lossy(&o.stdout).into_owned())
}

#[test]
fn the_standard_suites_pass_against_self_with_junit_and_a_report_that_renders() {
    let dir = tempfile::tempdir().expect("tempdir");
    let junit = dir.path().join("junit.xml");
    let results = dir.path().join("results.json");
    let certs = dir.path().join("certs");
    let mut args: Vec<String> = vec!["conformance".into(), "run".into()];
    args.extend(suite_dirs());
    args.extend(
        [
            "--target",
            "self",
            "--parallel",
            "4",
            "--certs",
            certs.to_str().expect("utf-8"),
            "--junit",
            junit.to_str().expect("utf-8"),
            "--results",
            results.to_str().expect("utf-8"),
        ]
        .map(String::from),
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = cats(&args);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    let cases = case_count();
    assert!(cases >= 30, "the standard suites have {cases} cases");
    assert!(
        out.contains(&format!("{cases} passed, 0 failed, 0 not applicable")),
        "{out}"
    );

    let (tests, failures, skipped, testcases) =
        junit_counts(&std::fs::read_to_string(&junit).expect("the JUnit file"));
    assert_eq!((tests, failures, skipped, testcases), (cases, 0, 0, cases));

    let html = dir.path().join("report.html");
    let o = cats(&[
        "conformance",
        "report",
        results.to_str().expect("utf-8"),
        "--out",
        html.to_str().expect("utf-8"),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    if let Some(dom) = chromium(&html, "conformance-report-self.png") {
        assert!(dom.contains("<table id=\"summary\">"), "{dom}");
        assert!(dom.contains("CONFORMANT: every case passed"));
        assert!(dom.contains(&format!("<td>{cases}</td><td>{cases}</td><td>0</td>")));
        for row in [
            "<td>CC015C</td>",
            "<td>CC029C</td>",
            "<td>departure</td>",
            "<td>destination</td>",
        ] {
            assert!(dom.contains(row), "no summary row {row}");
        }
    }
}

/// A node that answers every message with a CC056C (HTTP 200), has an empty stream, and knows
/// no movement: the wrong message type for every case.
fn broken_node(certs: &Path) -> u16 {
    let pem = |name: &str| std::fs::read(certs.join(name)).expect("a PEM file");
    let chain: Vec<_> = rustls_pemfile::certs(&mut &pem("node-api-kz.pem")[..])
        .collect::<Result<_, _>>()
        .expect("the certificate");
    let key = rustls_pemfile::private_key(&mut &pem("node-api-kz.key.pem")[..])
        .expect("the key")
        .expect("a key");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .expect("the server certificate");
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let config = config.clone();
            std::thread::spawn(move || {
                let Ok(conn) = rustls::ServerConnection::new(config) else {
                    return;
                };
                let mut tls = rustls::StreamOwned::new(conn, stream);
                let _ = serve(&mut tls);
            });
        }
    });
    port
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

fn serve(tls: &mut dyn ReadWrite) -> std::io::Result<()> {
    let mut reader = BufReader::new(tls);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body)?;
    let tls = reader.into_inner();
    let (status, content_type, extra, payload) = if request_line
        .starts_with("POST /api/v1/messages")
    {
        let lrn = String::from_utf8_lossy(&body)
            .split("<LRN>")
            .nth(1)
            .and_then(|r| r.split("</LRN>").next())
            .unwrap_or("")
            .to_owned();
        (
            "200 OK",
            "application/xml",
            "x-cats-message-type: CC056C\r\n",
            format!(
                "<?xml version=\"1.0\"?>\n<ncts:CC056C xmlns:ncts=\"http://ncts.dgtaxud.ec\"><messageType>CC056C</messageType><TransitOperation><LRN>{lrn}</LRN></TransitOperation></ncts:CC056C>"
            ),
        )
    } else if request_line.starts_with("GET /api/v1/messages/stream") {
        (
            "200 OK",
            "text/event-stream",
            "",
            ": nothing\n\n".to_owned(),
        )
    } else if request_line.starts_with("GET /api/v1/messages") {
        (
            "200 OK",
            "application/json",
            "",
            "{\"messages\":[],\"next\":0}".to_owned(),
        )
    } else {
        (
            "404 Not Found",
            "application/json",
            "",
            "{\"error\":{\"code\":\"90\",\"message\":\"unknown\"}}".to_owned(),
        )
    };
    write!(
        tls,
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\n{extra}content-length: {}\r\nconnection: close\r\n\r\n{payload}",
        payload.len()
    )?;
    tls.flush()
}

#[test]
fn a_node_that_answers_the_wrong_message_type_fails_with_a_readable_difference() {
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = dir.path().join("certs");
    let o = cats(&["certs", "init", "--dir", certs.to_str().expect("utf-8")]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let port = broken_node(&certs);
    let junit = dir.path().join("junit.xml");
    let results = dir.path().join("results.json");
    let accepted = suites().join("departure/cc015c-accepted");
    let code_list = suites().join("departure/cc015c-code-list-error");
    let journey = suites().join("journeys/kz-az-ge-aktau-poti");
    let o = cats(&[
        "conformance",
        "run",
        accepted.to_str().expect("utf-8"),
        code_list.to_str().expect("utf-8"),
        journey.to_str().expect("utf-8"),
        "--target",
        &format!("https://localhost:{port}"),
        "--as-country",
        "KZ",
        "--ca",
        certs.join("ca.pem").to_str().expect("utf-8"),
        "--national-token",
        "national",
        "--officer-token",
        "officer",
        "--junit",
        junit.to_str().expect("utf-8"),
        "--results",
        results.to_str().expect("utf-8"),
    ]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    let lines: Vec<&str> = out.lines().collect();
    let fail = lines
        .iter()
        .position(|l| l.starts_with("FAIL") && l.contains("departure/cc015c-accepted"))
        .unwrap_or_else(|| panic!("no FAIL line for cc015c-accepted in\n{out}"));
    assert!(
        lines[fail].ends_with("step 1 (send cc015c.xml to KZ): reply message type"),
        "{out}"
    );
    assert_eq!(lines[fail + 1].trim(), "expected: CC928C", "{out}");
    assert_eq!(
        lines[fail + 2].trim(),
        "actual:   CC056C (HTTP 200)",
        "{out}"
    );
    assert!(
        out.contains("expected: CC906C"),
        "the code-list case's difference: {out}"
    );
    assert!(
        out.contains("N/A")
            && out.contains("journeys/kz-az-ge-aktau-poti")
            && out.contains("needs the nodes of AZ, GE"),
        "{out}"
    );
    assert!(
        out.contains("0 passed, 2 failed, 1 not applicable"),
        "{out}"
    );

    let (tests, failures, skipped, testcases) =
        junit_counts(&std::fs::read_to_string(&junit).expect("the JUnit file"));
    assert_eq!((tests, failures, skipped, testcases), (3, 2, 1, 3));

    let html = dir.path().join("broken.html");
    let o = cats(&[
        "conformance",
        "report",
        results.to_str().expect("utf-8"),
        "--out",
        html.to_str().expect("utf-8"),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    if let Some(dom) = chromium(&html, "conformance-report-broken-node.png") {
        assert!(dom.contains("<table id=\"summary\">"));
        assert!(dom.contains("NOT CONFORMANT"));
        assert!(dom.contains("<td>expected</td><td>CC928C</td>"), "{dom}");
        // The exchanged messages are shown as text, escaped, not as markup.
        assert!(dom.contains("&lt;ncts:CC056C"), "{dom}");
    }
}

/// A movement Aktau → Almaty (KZ only) driven through the KZ node as the demo drives it, then
/// `cats conformance record` from that node, once with the national system's copies of its
/// CC015C and CC007C (`--sent`) and once with the node's own copies of them (its API): the
/// two cases have the same steps and files, and the second, replayed against a fresh
/// `--target self`, passes. The same world, as remote
/// nodes (`--target KZ=URL --target AZ=URL`), passes a journey between them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_movement_becomes_a_case_that_replays() {
    use demo::journey::{Plan, drive};
    use demo::messages::{self, Route};
    use demo::world::{Options, RawOptions, StoreKind, TransportKind, World};

    let dir = tempfile::tempdir().expect("tempdir");
    let certs = dir.path().join("certs");
    let options = Options::resolve(&RawOptions {
        transport: TransportKind::Direct,
        amqp_url: None,
        store: StoreKind::Sqlite,
        database_url: None,
        movements: None,
        keep_running: false,
        seed: 7,
        certs: certs.clone(),
        step_timeout: 30,
        concurrency: 1,
    })
    .expect("options");
    let world = World::start(&options).await.expect("the world starts");
    let lrn = format!("REC{}", chrono::Utc::now().format("%H%M%S%3f"));
    let mut plan = Plan::pilot(&lrn);
    plan.consignment.route = Route {
        departure: "KZ000101",
        exits: vec![],
        transits: vec![],
        destination: "KZ000102",
    };
    plan.trader_at_destination = "KZ123456789012".into();
    let outcome = drive(&world.nodes, &plan, Duration::from_secs(30), None)
        .await
        .expect("the movement completes");
    let mrn = outcome.mrn.expect("an MRN");
    let kz = world
        .running
        .iter()
        .find(|n| n.country == "KZ")
        .expect("the KZ node");
    let (port, token) = (kz.api.port(), kz.national_token.clone());

    // The national system's copies of what it sent.
    let sent = dir.path().join("sent");
    std::fs::create_dir_all(&sent).expect("mkdir");
    let now = chrono::Utc::now();
    std::fs::write(
        sent.join("1-cc015c.xml"),
        messages::cc015c(&plan.consignment, &format!("015-{lrn}"), now),
    )
    .expect("write");
    std::fs::write(
        sent.join("2-cc007c.xml"),
        messages::cc007c(
            &mrn,
            "KZ000102",
            "KZ123456789012",
            &format!("007-{lrn}"),
            now,
        ),
    )
    .expect("write");

    let out = dir.path().join("recorded");
    let from = format!("https://localhost:{port}");
    let ca = certs.join("ca.pem");
    let args = [
        "conformance",
        "record",
        "--from",
        &from,
        "--mrn",
        &mrn,
        "--ca",
        ca.to_str().expect("utf-8"),
        "--token",
        &token,
        "--sent",
        sent.to_str().expect("utf-8"),
        out.to_str().expect("utf-8"),
    ];
    let o = tokio::task::spawn_blocking({
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        move || {
            Command::new(env!("CARGO_BIN_EXE_cats"))
                .args(&args)
                .output()
        }
    })
    .await
    .expect("joined")
    .expect("the cats binary runs");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // Without the national system's copies, the node's own (GET /api/v1/movements/{mrn}/messages)
    // make the same case.
    let o = tokio::task::spawn_blocking({
        let args: Vec<String> = args
            .iter()
            .map(|s| s.to_string())
            .filter(|a| a != "--sent" && a != sent.to_str().expect("utf-8"))
            .map(|a| {
                if a == out.to_str().expect("utf-8") {
                    format!("{a}-2")
                } else {
                    a
                }
            })
            .collect();
        move || {
            Command::new(env!("CARGO_BIN_EXE_cats"))
                .args(&args)
                .output()
        }
    })
    .await
    .expect("joined")
    .expect("the cats binary runs");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let with_copies = std::fs::read_to_string(out.join("case.toml")).expect("case.toml");
    let from_node = std::fs::read_to_string(dir.path().join("recorded-2").join("case.toml"))
        .expect("case.toml");
    let steps = |t: &str| t.lines().filter(|l| l.starts_with("do =")).count();
    assert_eq!(steps(&with_copies), steps(&from_node), "{from_node}");
    for f in std::fs::read_dir(&out)
        .expect("the case")
        .filter_map(|e| e.ok())
    {
        let name = f.file_name();
        if name.to_string_lossy().ends_with(".xml") {
            let ours = std::fs::read_to_string(f.path()).expect("xml");
            let node = std::fs::read_to_string(dir.path().join("recorded-2").join(&name))
                .unwrap_or_else(|e| panic!("{name:?} from the node's copies: {e}"));
            let fields = |x: &str| cats_conformance::pointer::parse(x).map(|r| r.name).ok();
            assert_eq!(fields(&ours), fields(&node), "{name:?}");
        }
    }
    // The same CATS as a pilot environment of remote nodes (CC=URL each, tokens from the
    // environment, the hub's API): a journey between two of them passes.
    let mut journey = Command::new(env!("CARGO_BIN_EXE_cats"));
    journey.args([
        "conformance",
        "run",
        suites()
            .join("journeys/kz-az-aktau-alat")
            .to_str()
            .expect("utf-8"),
        "--ca",
        ca.to_str().expect("utf-8"),
        "--hub",
        &format!("http://{}", world.hub_api()),
    ]);
    journey.env("CATS_HUB_TOKEN", &world.hub_operator_token);
    for n in world.running.iter().filter(|n| n.country != "GE") {
        journey
            .arg("--target")
            .arg(format!("{}=https://localhost:{}", n.country, n.api.port()))
            .env(
                format!("CATS_{}_NATIONAL_TOKEN", n.country),
                &n.national_token,
            )
            .env(
                format!("CATS_{}_OFFICER_TOKEN", n.country),
                &n.officer_token,
            );
    }
    let o = tokio::task::spawn_blocking(move || journey.output())
        .await
        .expect("joined")
        .expect("the cats binary runs");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("1 passed, 0 failed"), "{}", text(&o));
    world.stop().await;

    // The case made from the node's own copies is the one checked and replayed.
    let out = dir.path().join("recorded-2");
    let manifest = std::fs::read_to_string(out.join("case.toml")).expect("case.toml");
    let case = cats_conformance::case::load_case("recorded", &out).expect("the case loads");
    let kinds: Vec<&str> = case.manifest.steps.iter().map(|s| s.kind()).collect();
    assert_eq!(kinds.first(), Some(&"send"), "{manifest}");
    assert!(manifest.contains("type = \"CC028C\"") && manifest.contains("type = \"CC029C\""));
    assert!(manifest.contains("type = \"CC045C\""), "{manifest}");
    assert!(manifest.contains("release-goods"), "{manifest}");
    let cc015c = std::fs::read_to_string(out.join("01-cc015c.xml")).expect("the CC015C");
    assert!(cc015c.contains("<LRN>{{lrn}}</LRN>") && !cc015c.contains(&lrn));

    // Replayed against a CATS of its own, the recorded movement happens again.
    let replay = tokio::task::spawn_blocking({
        let out = out.clone();
        let certs = dir.path().join("replay-certs");
        move || {
            cats(&[
                "conformance",
                "run",
                out.to_str().expect("utf-8"),
                "--target",
                "self",
                "--certs",
                certs.to_str().expect("utf-8"),
            ])
        }
    })
    .await
    .expect("joined");
    assert_eq!(
        replay.status.code(),
        Some(0),
        "{}\n{manifest}",
        text(&replay)
    );
    assert!(text(&replay).contains("1 passed, 0 failed"));
}

/// Every `cats conformance` command the README shows, with each of its flags, is one the
/// binary knows (its `--help` lists the flag).
#[test]
fn the_readme_conformance_commands_exist() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let section = readme
        .split("## Conformance kit")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("a Conformance kit section");
    let mut commands: Vec<(String, Vec<String>)> = Vec::new();
    for line in section.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("cats conformance ") {
            let sub = rest.split_whitespace().next().unwrap_or("").to_owned();
            commands.push((sub, Vec::new()));
        }
        if let Some((_, flags)) = commands.last_mut() {
            let code = line.split('#').next().unwrap_or("");
            for word in code.split(|c: char| c.is_whitespace() || c == '[' || c == ']') {
                if let Some(flag) = word.strip_prefix("--")
                    && !flag.is_empty()
                {
                    flags.push(format!("--{flag}"));
                }
            }
        }
    }
    let subs: Vec<&str> = commands.iter().map(|(s, _)| s.as_str()).collect();
    for wanted in ["run", "report", "record"] {
        assert!(
            subs.contains(&wanted),
            "the README shows no `cats conformance {wanted}`"
        );
    }
    for (sub, flags) in &commands {
        let o = cats(&["conformance", sub, "--help"]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "cats conformance {sub}: {}",
            text(&o)
        );
        let help = text(&o);
        for flag in flags {
            assert!(
                help.contains(flag.as_str()),
                "`cats conformance {sub}` has no {flag}"
            );
        }
    }
}

/// Bad input gets a clear, specific error (exit 2) before anything starts.
#[test]
fn bad_suites_and_targets_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("no-such-suite");
    let o = cats(&[
        "conformance",
        "run",
        missing.to_str().expect("utf-8"),
        "--target",
        "self",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("no-such-suite"), "{}", text(&o));

    let case = dir.path().join("suite/typo");
    std::fs::create_dir_all(&case).expect("mkdir");
    std::fs::write(
        case.join("case.toml"),
        "description = \"d\"\ncountries = [\"KZ\"]\n[[step]]\ndo = \"restart\"\nnode = \"KZ\"\nwithin = 3\n",
    )
    .expect("write");
    let o = cats(&[
        "conformance",
        "run",
        dir.path().join("suite").to_str().expect("utf-8"),
        "--target",
        "self",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("case.toml") && text(&o).contains("within"),
        "{}",
        text(&o)
    );

    let good = suites().join("departure/cc015c-accepted");
    let o = cats(&[
        "conformance",
        "run",
        good.to_str().expect("utf-8"),
        "--target",
        "https://localhost:1",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("needs --as-country"), "{}", text(&o));

    let o = cats(&[
        "conformance",
        "run",
        good.to_str().expect("utf-8"),
        "--target",
        "KZ=https://localhost:1",
        "--target",
        "AZ=https://localhost:2",
        "--ca",
        "ca.pem",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("set CATS_KZ_NATIONAL_TOKEN"),
        "{}",
        text(&o)
    );

    let o = cats(&["conformance", "report", missing.to_str().expect("utf-8")]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("no-such-suite"), "{}", text(&o));
}

/// The committed suites are exactly what `make_suites.py` writes: it is run into a temporary
/// directory and every file is compared, so a template or the script cannot drift from the
/// suites CI runs.
#[test]
fn the_committed_suites_are_what_make_suites_py_writes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("suites");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("conformance-tests/make_suites.py");
    let o = Command::new("python3")
        .arg(&script)
        .arg(&out)
        .output()
        .expect("python3 runs (scripts/test.sh needs it too)");
    assert!(o.status.success(), "make_suites.py: {}", text(&o));
    fn files(root: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
        let mut found = std::collections::BTreeMap::new();
        let mut dirs = vec![root.to_owned()];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d)
                .expect("a directory")
                .filter_map(|e| e.ok())
            {
                let p = e.path();
                if p.is_dir() {
                    dirs.push(p);
                } else {
                    let rel = p.strip_prefix(root).expect("inside").to_owned();
                    found.insert(rel, std::fs::read(&p).expect("a file"));
                }
            }
        }
        found
    }
    let written = files(&out);
    let committed = files(&suites());
    assert!(written.len() > 100, "{} files written", written.len());
    for (path, bytes) in &written {
        match committed.get(path) {
            None => panic!(
                "make_suites.py writes {} but it is not committed: run python3 conformance-tests/make_suites.py",
                path.display()
            ),
            Some(c) => assert!(
                c == bytes,
                "suites/{} differs from what make_suites.py writes: run python3 conformance-tests/make_suites.py",
                path.display()
            ),
        }
    }
    for path in committed.keys() {
        assert!(
            written.contains_key(path),
            "suites/{} is committed but make_suites.py does not write it",
            path.display()
        );
    }
}

/// The hub suite against a hub given by URL (`--hub`, `--hub-link`, `--hub-certs`), as a team
/// certifying a hub runs it: a hub started here on loopback with its own SQLite store, the
/// kit playing KZ, AZ and GE on its direct link. With a certificates directory that has no GE
/// identity, the cases that play GE are not applicable and the others still run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_suite_passes_against_a_hub_url_with_a_certs_dir() {
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = dir.path().join("certs");
    let o = cats(&["certs", "init", "--dir", certs.to_str().expect("utf-8")]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let mut raw = cats_hub::RawConfig::default();
    raw.store.url = format!("sqlite://{}", dir.path().join("hub.db").display());
    raw.http.listen = "127.0.0.1:0".into();
    raw.transport.listen = "127.0.0.1:0".into();
    raw.certs.dir = certs.clone();
    let config = raw.resolve().expect("the hub's configuration");
    let (trigger, shutdown) = cats_transport::shutdown::channel();
    let hub = cats_hub::start(config, shutdown)
        .await
        .expect("the hub starts");
    let api = format!("http://{}", hub.http_addr);
    let token = cats_hub::access::issue(
        &hub.services.store,
        cats_hub::access::Role::Operator,
        "conformance-test",
    )
    .await
    .expect("credential")
    .token;
    let link = hub
        .direct_addr
        .expect("the hub runs the direct link")
        .to_string();
    let junit = dir.path().join("junit.xml");

    let args: Vec<String> = [
        "conformance",
        "run",
        suites().join("hub").to_str().expect("utf-8"),
        "--hub",
        &api,
        "--hub-token",
        &token,
        "--hub-link",
        &link,
        "--hub-certs",
        certs.to_str().expect("utf-8"),
        "--parallel",
        "4",
        "--junit",
        junit.to_str().expect("utf-8"),
    ]
    .map(String::from)
    .to_vec();
    let o = tokio::task::spawn_blocking(move || {
        cats(&args.iter().map(String::as_str).collect::<Vec<_>>())
    })
    .await
    .expect("the run");
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    let cases = std::fs::read_dir(suites().join("hub"))
        .expect("the hub suite")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().join("case.toml").is_file())
        })
        .count();
    assert!(cases >= 20, "the hub suite has {cases} cases");
    assert!(
        out.contains(&format!("{cases} passed, 0 failed, 0 not applicable")),
        "{out}"
    );
    let (tests, failures, _, _) =
        junit_counts(&std::fs::read_to_string(&junit).expect("the JUnit file"));
    assert_eq!((tests, failures), (cases, 0));

    // Without GE's identity: what plays GE is not applicable, the rest runs.
    let partial = dir.path().join("no-ge");
    std::fs::create_dir_all(&partial).expect("mkdir");
    for e in std::fs::read_dir(&certs)
        .expect("certs")
        .filter_map(|e| e.ok())
    {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.contains("-ge.") {
            std::fs::copy(e.path(), partial.join(&name)).expect("copy");
        }
    }
    let args: Vec<String> = [
        "conformance",
        "run",
        suites().join("hub").to_str().expect("utf-8"),
        "--hub",
        &api,
        "--hub-token",
        &token,
        "--hub-link",
        &link,
        "--hub-certs",
        partial.to_str().expect("utf-8"),
        "--filter",
        "hub/cd001c-aar-to-destination",
        "--filter",
        "hub/cd168c-to-departure",
    ]
    .map(String::from)
    .to_vec();
    let o = tokio::task::spawn_blocking(move || {
        cats(&args.iter().map(String::as_str).collect::<Vec<_>>())
    })
    .await
    .expect("the run");
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(
        out.contains("1 passed, 0 failed, 1 not applicable"),
        "{out}"
    );
    assert!(
        out.contains("plays the node of GE on the hub's link (the link has AZ, KZ)"),
        "{out}"
    );

    trigger.trigger();
    tokio::time::timeout(Duration::from_secs(10), hub.stopped())
        .await
        .expect("the hub stops");
}
