//! `cats refs export|import`: the real binary against a real hub (SQLite), round trip in both
//! formats, a change imported, a bad file refused with its line and field.

use std::process::{Command, Output};

use cats_transport::contract::CountryCode;
use cats_transport::shutdown;
use cats_trust::pki::DevPki;

/// The binary with `token` in `CATS_HUB_TOKEN` (none: the variable removed).
fn cats(token: Option<String>, args: Vec<String>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cats"));
    c.args(args)
        .env_remove("CATS_HUB_URL")
        .env_remove("CATS_HUB_TOKEN");
    if let Some(t) = token {
        c.env("CATS_HUB_TOKEN", t);
    }
    c.output().expect("the cats binary runs")
}

async fn run_as(token: Option<&str>, args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    let token = token.map(str::to_owned);
    tokio::task::spawn_blocking(move || cats(token, args))
        .await
        .expect("joined")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_import_round_trip_and_refusal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = DevPki::init(
        &dir.path().join("pki"),
        &[CountryCode::KZ, CountryCode::AZ, CountryCode::GE],
        false,
    )
    .expect("dev PKI");
    let mut raw = cats_hub::RawConfig::default();
    raw.store.url = format!("sqlite://{}", dir.path().join("hub.db").display());
    raw.http.listen = "127.0.0.1:0".into();
    raw.transport.listen = "127.0.0.1:0".into();
    raw.certs.dir = files.dir.clone();
    let (_trigger, stop) = shutdown::channel();
    let hub = cats_hub::start(raw.resolve().expect("hub config"), stop)
        .await
        .expect("hub starts");
    let url = format!("http://{}", hub.http_addr);
    let issue = |role| {
        let store = hub.services.store.clone();
        async move {
            cats_hub::access::issue(&store, role, "refs-test")
                .await
                .expect("credential")
                .token
        }
    };
    let admin = issue(cats_hub::access::Role::Administrator).await;
    let operator = issue(cats_hub::access::Role::Operator).await;
    let pilot = message_catalog::reference::ReferenceData::pilot().version();

    // CSV: export, import unchanged (nothing to do), import one more restricted good.
    let csv = dir.path().join("csv");
    let csv_s = csv.to_str().expect("utf-8");
    let o = run_as(
        Some(&admin),
        &["refs", "--hub", &url, "export", "--format", "csv", csv_s],
    )
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains(&format!("version {pilot}")),
        "{}",
        text(&o)
    );
    let o = run_as(Some(&admin), &["refs", "--hub", &url, "import", csv_s]).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("nothing to import"), "{}", text(&o));
    let goods = csv.join("restricted_goods.csv");
    let mut g = std::fs::read_to_string(&goods).expect("read");
    g.push_str("8711,always-inspect\n");
    std::fs::write(&goods, g).expect("write");
    let o = run_as(
        Some(&admin),
        &[
            "refs",
            "--hub",
            &url,
            "import",
            "--reason",
            "motorcycles",
            csv_s,
        ],
    )
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains(&format!(
            "version {} (from {pilot}): 1 records changed",
            pilot + 1
        )),
        "{}",
        text(&o)
    );
    let current = cats_hub::refdata::current(&hub.services);
    assert_eq!(current.version(), pilot + 1);
    assert!(current.restriction("871190").is_some());

    // XML: export, and the export imports back as nothing to do.
    let xml = dir.path().join("xml");
    let xml_s = xml.to_str().expect("utf-8");
    let o = run_as(
        Some(&admin),
        &["refs", "--hub", &url, "export", "--format", "xml", xml_s],
    )
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = run_as(
        Some(&admin),
        &["refs", "--hub", &url, "import", "--format", "xml", xml_s],
    )
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("nothing to import"), "{}", text(&o));

    // A bad field: refused with file, line and field; the hub unchanged.
    let offices = csv.join("offices.csv");
    let o_text = std::fs::read_to_string(&offices).expect("read");
    std::fs::write(&offices, o_text.replacen(",Asia/Baku,", ",,", 1)).expect("write");
    let o = run_as(Some(&admin), &["refs", "--hub", &url, "import", csv_s]).await;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("offices.csv line 2, field time_zone: is empty"),
        "{}",
        text(&o)
    );
    // A consistent-looking file the hub refuses: an office of a country that is not there.
    std::fs::write(&offices, o_text.replacen("AZ000101,AZ,", "AZ000101,TR,", 1)).expect("write");
    let o = run_as(Some(&admin), &["refs", "--hub", &url, "import", csv_s]).await;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("reference.office-country"),
        "{}",
        text(&o)
    );
    assert_eq!(
        cats_hub::refdata::current(&hub.services).version(),
        pilot + 1
    );

    // The credential: none (advice, exit 2), an operator's (exports, may not import), a
    // revoked one (refused); the hub unchanged.
    let o = run_as(None, &["refs", "--hub", &url, "export", csv_s]).await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("--token TOKEN or set CATS_HUB_TOKEN"),
        "{}",
        text(&o)
    );
    let o = run_as(Some(&operator), &["refs", "--hub", &url, "export", csv_s]).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    std::fs::write(
        &goods,
        std::fs::read_to_string(&goods).expect("read") + "8712,always-inspect\n",
    )
    .expect("write");
    let o = run_as(Some(&operator), &["refs", "--hub", &url, "import", csv_s]).await;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("auth.forbidden"), "{}", text(&o));
    cats_hub::access::revoke_all_for(
        &hub.services.store,
        cats_hub::access::Role::Operator,
        "refs-test",
        "test",
    )
    .await
    .expect("revoked");
    let o = run_as(Some(&operator), &["refs", "--hub", &url, "export", csv_s]).await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("auth.revoked-token"), "{}", text(&o));
    assert_eq!(
        cats_hub::refdata::current(&hub.services).version(),
        pilot + 1
    );
}
