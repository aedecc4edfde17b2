//! `cats certs init`: the development PKI.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use cats_trust::pki::{DevPki, Outcome};
use message_catalog::ids::CountryCode;

/// Creates the CATS development CA and the certificates it signs, printing one line per file
/// pair: `created` or `kept`, the name, and the certificate's SHA-256 fingerprint.
pub fn init(dir: &Path, countries: &[String], force: bool) -> anyhow::Result<ExitCode> {
    let countries = countries
        .iter()
        .map(|c| CountryCode::parse(c.trim()))
        .collect::<Result<Vec<_>, _>>()
        .context("--countries")?;
    let files = DevPki::init(dir, &countries, force)
        .with_context(|| format!("creating the development PKI in {}", dir.display()))?;
    for cert in files.all() {
        let what = match cert.outcome {
            Outcome::Created => "created",
            Outcome::Kept => "kept   ",
        };
        println!("{what} {:<16} {}", cert.name, cert.fingerprint);
    }
    println!("allow-list      {}", files.allow_list.display());
    Ok(ExitCode::SUCCESS)
}
