//! The `cats` command line, run as a newcomer runs it: the real binary, real files, exit codes
//! and output lines pinned.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn cats(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cats"))
        .args(args)
        .output()
        .expect("the cats binary runs")
}

fn corpus(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("message-catalog/tests/data")
        .join(rel)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The first `valid` case of a message directory.
fn valid_case(message: &str) -> PathBuf {
    let dir = corpus(message);
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("corpus directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "expect"))
        .filter(|p| {
            std::fs::read_to_string(p)
                .map(|t| t.lines().next() == Some("valid"))
                .unwrap_or(false)
        })
        .map(|p| p.with_extension("xml"))
        .collect();
    cases.sort();
    cases.into_iter().next().expect("a valid case")
}

#[test]
fn validate_ok_prints_ok_line_and_exits_0() {
    let file = corpus("rules/cc015c/valid.xml");
    let o = cats(&["validate", file.to_str().expect("utf-8 path")]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert_eq!(stdout(&o), format!("OK {} CC015C\n", file.display()));
}

#[test]
fn validate_invalid_prints_fail_line_with_pointer_and_exits_1() {
    let bad = corpus("cc015c/missing-lrn.xml");
    let o = cats(&[
        "validate",
        "--level",
        "xml",
        bad.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    let mut lines = out.lines();
    assert_eq!(
        lines.next(),
        Some(format!("FAIL {} CC015C", bad.display()).as_str())
    );
    let error = lines.next().expect("an error line");
    // `  <line>:<column> <pointer> <code> <rule-or-dash> <reason>`
    let fields: Vec<&str> = error.trim_start().splitn(5, ' ').collect();
    assert!(error.starts_with("  "), "{error:?}");
    assert!(fields[0].split_once(':').is_some(), "{error:?}");
    assert!(
        fields[1].starts_with("/CC015C/TransitOperation"),
        "{error:?}"
    );
    assert_eq!(fields[3], "-", "{error:?}");
}

#[test]
fn validate_mixed_files_exits_1_and_reports_each() {
    let good = corpus("rules/cc014c/valid.xml");
    let bad = corpus("hostile/billion-laughs.xml");
    let o = cats(&[
        "validate",
        good.to_str().expect("utf-8"),
        bad.to_str().expect("utf-8"),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(
        out.contains(&format!("OK {} CC014C", good.display())),
        "{out}"
    );
    assert!(out.contains(&format!("FAIL {} ?", bad.display())), "{out}");
}

#[test]
fn validate_missing_file_is_a_usage_error() {
    let o = cats(&["validate", "/nonexistent/cats/file.xml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/cats/file.xml"));
}

#[test]
fn validate_level_xml_stops_before_the_rules() {
    // Schema-valid, but breaks a rule: valid at --level xml, invalid at the default level.
    let file = corpus("rules/cc015c/c0101-reduced-dataset-without-authorisation.xml");
    let path = file.to_str().expect("utf-8");
    assert_eq!(
        cats(&["validate", "--level", "xml", path]).status.code(),
        Some(0)
    );
    let o = cats(&["validate", path]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains(" 13 C0101 "), "{}", stdout(&o));
}

#[test]
fn validate_json_gives_one_object_per_file() {
    let bad = corpus("cc015c/missing-lrn.xml");
    let o = cats(&["validate", "--format", "json", bad.to_str().expect("utf-8")]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).expect("json");
    assert_eq!(v["valid"], false);
    assert_eq!(v["messageType"], "CC015C");
    assert!(
        v["errors"][0]["pointer"]
            .as_str()
            .is_some_and(|p| p.starts_with("/CC015C/"))
    );
}

#[test]
fn validate_xml_prints_the_nack_message() {
    let bad = corpus("cc015c/missing-lrn.xml");
    let o = cats(&["validate", "--format", "xml", bad.to_str().expect("utf-8")]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(out.contains("CC917C"), "{out}");
    // The NACK itself validates.
    let dir = tempfile::tempdir().expect("tempdir");
    let nack = dir.path().join("nack.xml");
    std::fs::write(&nack, out.trim()).expect("write");
    let o = cats(&["validate", nack.to_str().expect("utf-8")]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
}

#[test]
fn normalize_round_trips_and_the_result_validates() {
    let file = valid_case("cc015c");
    let o = cats(&["normalize", file.to_str().expect("utf-8")]);
    assert_eq!(o.status.code(), Some(0));
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("normalized.xml");
    std::fs::write(&out, &o.stdout).expect("write");
    let again = cats(&["normalize", out.to_str().expect("utf-8")]);
    assert_eq!(again.status.code(), Some(0));
    assert_eq!(again.stdout, o.stdout, "normalize is idempotent");
}

#[test]
fn normalize_invalid_exits_1_with_the_errors() {
    let bad = corpus("cc015c/missing-lrn.xml");
    let o = cats(&["normalize", bad.to_str().expect("utf-8")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
    assert!(String::from_utf8_lossy(&o.stderr).contains("FAIL"));
}

#[test]
fn mrn_new_is_valid_and_carries_the_country() {
    let o = cats(&[
        "mrn",
        "new",
        "--office",
        "KZ000101",
        "--year",
        "26",
        "--sequence",
        "42",
    ]);
    assert_eq!(o.status.code(), Some(0));
    let mrn = stdout(&o).trim().to_owned();
    assert_eq!(mrn.len(), 18);
    assert_eq!(&mrn[..4], "26KZ");
    assert_eq!(&mrn[16..17], "J");
    let check = cats(&["mrn", "check", &mrn]);
    assert_eq!(check.status.code(), Some(0), "{}", stdout(&check));
}

#[test]
fn mrn_check_names_the_bad_ones() {
    let good = stdout(&cats(&[
        "mrn", "new", "--office", "GE000201", "--year", "26",
    ]))
    .trim()
    .to_owned();
    // Change the check digit.
    let last = good.chars().last().expect("18 chars");
    let wrong = format!("{}{}", &good[..17], if last == '0' { '1' } else { '0' });
    let o = cats(&["mrn", "check", &good, &wrong, "NOT-AN-MRN"]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(out.contains(&format!("OK {good}")), "{out}");
    assert!(out.contains(&format!("BAD {wrong} (93")), "{out}");
    assert!(out.contains("BAD NOT-AN-MRN"), "{out}");
}

#[test]
fn mrn_new_rejects_a_bad_office() {
    let o = cats(&["mrn", "new", "--office", "kz01"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn certs_init_twice_keeps_the_ca() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().join("pki");
    let d = d.to_str().expect("utf-8");
    let first = cats(&["certs", "init", "--dir", d, "--countries", "KZ,AZ"]);
    assert_eq!(
        first.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(stdout(&first).contains("created ca"));
    let second = cats(&["certs", "init", "--dir", d, "--countries", "KZ,AZ"]);
    assert!(
        stdout(&second).contains("kept    ca"),
        "{}",
        stdout(&second)
    );
    let forced = cats(&[
        "certs",
        "init",
        "--dir",
        d,
        "--countries",
        "KZ,AZ",
        "--force",
    ]);
    assert!(stdout(&forced).contains("created ca"));
}

#[test]
fn readme_commands_exist() {
    // The README's test command must be the script CI runs.
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    assert!(readme.contains("bash scripts/test.sh"));
    // The run command is the demo, which tests/journey.rs runs as a binary.
    assert!(readme.contains("cargo run --release -- demo"));
    let ci = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/run"))
        .expect(".ci/run");
    assert!(ci.contains("scripts/test.sh"));
}

/// A hub configuration in `dir` on SQLite, both listeners on port 0.
fn hub_config(dir: &Path) -> PathBuf {
    let pki = dir.join("pki");
    let o = cats(&["certs", "init", "--dir", pki.to_str().expect("utf-8")]);
    assert_eq!(o.status.code(), Some(0));
    let config = dir.join("hub.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\nurl = \"sqlite://{}\"\n[http]\nlisten = \"127.0.0.1:0\"\n\
             [transport]\nlisten = \"127.0.0.1:0\"\n[certs]\ndir = \"{}\"\n",
            dir.join("hub.db").display(),
            pki.display()
        ),
    )
    .expect("write config");
    config
}

fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out
}

#[test]
fn hub_runs_serves_health_and_stops_on_sigterm() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = hub_config(dir.path());
    let mut child = Command::new(env!("CARGO_BIN_EXE_cats"))
        .args(["hub", "--config", config.to_str().expect("utf-8")])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn cats hub");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("first line");
    // `hub listening: direct link A, HTTP API http://B`
    let http = line
        .trim()
        .rsplit_once("http://")
        .map(|(_, a)| a.to_owned())
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    assert!(http_get(&http, "/healthz").starts_with("HTTP/1.1 200"));
    assert!(http_get(&http, "/readyz").starts_with("HTTP/1.1 200"));
    let metrics = http_get(&http, "/metrics");
    assert!(metrics.contains("# TYPE"), "{metrics}");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let exit = child.wait().expect("wait");
    assert_eq!(exit.code(), Some(0));
    let o = cats(&[
        "hub",
        "--config",
        config.to_str().expect("utf-8"),
        "verify-journal",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(stdout(&o).starts_with("journal OK: 0 entries"));
}

#[test]
fn hub_issues_credentials_for_approved_insurers_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = format!("sqlite://{}", dir.path().join("hub.db").display());
    let o = cats(&[
        "hub",
        "issue-credential",
        "--database",
        &db,
        "--insurer",
        "KZ990140000123",
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let token = stdout(&o);
    assert_eq!(token.trim().len(), 64, "{token}");
    assert!(
        token.trim().chars().all(|c| c.is_ascii_hexdigit()),
        "{token}"
    );
    let o = cats(&[
        "hub",
        "issue-credential",
        "--database",
        &db,
        "--administrator",
        "ops",
    ]);
    assert_eq!(o.status.code(), Some(0));
    let o = cats(&[
        "hub",
        "issue-credential",
        "--database",
        &db,
        "--insurer",
        "KZ000000000000",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("contract.insurer"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn hub_lists_and_revokes_credentials() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = format!("sqlite://{}", dir.path().join("hub.db").display());
    let issue = |flag: &str, name: &str| {
        let o = cats(&["hub", "issue-credential", "--database", &db, flag, name]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let id = String::from_utf8_lossy(&o.stderr)
            .trim()
            .strip_prefix("credential ")
            .expect("the id on stderr")
            .to_owned();
        (id, stdout(&o).trim().to_owned())
    };
    let (alice1, token1) = issue("--operator", "alice");
    let (alice2, _) = issue("--operator", "alice");
    let (ops, _) = issue("--administrator", "ops");
    let o = cats(&["hub", "credentials", "--database", &db]);
    assert_eq!(o.status.code(), Some(0));
    let list = stdout(&o);
    for id in [&alice1, &alice2, &ops] {
        assert!(list.contains(id.as_str()), "{list}");
    }
    assert!(!list.contains(&token1), "a token was listed: {list}");
    assert!(
        list.contains("operator") && list.contains("administrator"),
        "{list}"
    );

    let o = cats(&["hub", "revoke-credential", "--database", &db, &alice1]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = cats(&["hub", "revoke-credential", "--database", &db, &alice1]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("credential.revoked"));
    let o = cats(&["hub", "revoke-credential", "--database", &db, "not-an-id"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("credential.bad-request"));
    let o = cats(&[
        "hub",
        "revoke-credential",
        "--database",
        &db,
        "--all-for",
        "operator:alice",
    ]);
    assert_eq!(o.status.code(), Some(0));
    assert!(
        stdout(&o).contains("1 credential(s) of operator:alice revoked"),
        "{}",
        stdout(&o)
    );
    let o = cats(&[
        "hub",
        "revoke-credential",
        "--database",
        &db,
        "--all-for",
        "operator:alice",
    ]);
    assert_eq!(o.status.code(), Some(2), "nothing left to revoke");
    let o = cats(&["hub", "credentials", "--database", &db]);
    let list = stdout(&o);
    let line = |id: &str| {
        list.lines()
            .find(|l| l.starts_with(id))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(line(&alice1).contains("by command-line:"), "{list}");
    assert!(line(&alice2).contains("by command-line:"), "{list}");
    assert!(line(&ops).ends_with(" -"), "{list}");
}

#[test]
fn hub_config_with_an_unknown_key_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("hub.toml");
    std::fs::write(
        &config,
        "[store]\nurl = \"sqlite::memory:\"\nspeed = \"fast\"\n",
    )
    .expect("write");
    let o = cats(&["config", "--hub", config.to_str().expect("utf-8")]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("speed"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn config_prints_the_effective_hub_configuration_with_environment_overrides() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = hub_config(dir.path());
    let o = Command::new(env!("CARGO_BIN_EXE_cats"))
        .args(["config", "--hub", config.to_str().expect("utf-8")])
        .env("CATS_HUB__HTTP__LISTEN", "127.0.0.1:9999")
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(0));
    let out = stdout(&o);
    assert!(out.contains("listen = \"127.0.0.1:9999\""), "{out}");
    assert!(out.contains("freshness_seconds = 300"), "{out}");
}
