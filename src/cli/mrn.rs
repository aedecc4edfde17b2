//! `cats mrn new` and `cats mrn check`.

use std::process::ExitCode;

use anyhow::{Context, bail};
use message_catalog::ids::{CustomsOfficeRef, Mrn, ProcedureLetter};

/// `cats mrn new`: allocates one MRN and prints it.
pub fn new(
    office: &str,
    procedure: &str,
    year: Option<u8>,
    sequence: Option<u64>,
) -> anyhow::Result<ExitCode> {
    let office = CustomsOfficeRef::parse(office).context("--office")?;
    let procedure = ProcedureLetter::parse(procedure).context("--procedure")?;
    let year = match year {
        Some(y) => y,
        None => current_two_digit_year()?,
    };
    // Without an explicit sequence, derive one from the clock: unique per office for the
    // sub-second resolution a person typing the command needs. Services allocate from a stored
    // counter instead.
    let sequence = match sequence {
        Some(s) => s,
        None => clock_sequence(),
    };
    let mrn = Mrn::generate(year, &office, sequence, procedure)?;
    println!("{mrn}");
    Ok(ExitCode::SUCCESS)
}

/// `cats mrn check`: exit 0 when every MRN is valid, 1 otherwise, naming the bad ones.
pub fn check(mrns: &[String]) -> anyhow::Result<ExitCode> {
    if mrns.is_empty() {
        bail!("give at least one MRN");
    }
    let mut bad = 0usize;
    for text in mrns {
        match Mrn::parse(text) {
            Ok(mrn) => println!("OK {mrn}"),
            Err(e) => {
                bad += 1;
                println!("BAD {text} ({} {e})", e.ncts_code());
            }
        }
    }
    Ok(if bad == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn current_two_digit_year() -> anyhow::Result<u8> {
    use chrono::Datelike;
    let year = chrono::Utc::now().year();
    u8::try_from(year.rem_euclid(100)).context("year")
}

fn clock_sequence() -> u64 {
    // Six base-36 characters hold 36^6 = 2,176,782,336 values; tenths of a second since the start
    // of the year fit (a year has about 315 million).
    use chrono::Datelike;
    let now = chrono::Utc::now();
    let start = chrono::NaiveDate::from_ymd_opt(now.year(), 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc())
        .unwrap_or(now);
    let tenths = (now - start).num_milliseconds().max(0) / 100;
    u64::try_from(tenths).unwrap_or(0)
}
