//! The reference data as files for administrators (`cats refs export|import`), no I/O here:
//! the functions turn a [`ReferenceSet`] into file contents and back.
//!
//! **CSV**: one file per section, a header line then one record per line (RFC 4180 quoting;
//! lists such as office roles and contract holders are `;`-separated in one field):
//!
//! | file | columns |
//! | --- | --- |
//! | `countries.csv` | code, currency, time_zone, name_en, name_ru, name_kk, name_az, name_ka |
//! | `offices.csv` | reference_number, country, roles, time_zone, latitude, longitude, name_en … name_ka |
//! | `insurers.csv` | tin, name, country, status |
//! | `contracts.csv` | contract_id, grn, insurer, holders, valid_from, valid_until, insured_amount, currency, status |
//! | `traders.csv` | role, tin, name, country, status, valid_from, valid_until |
//! | `restricted_goods.csv` | hs_prefix, condition |
//! | `exchange_rates.csv` | currency, rate, valid_from |
//!
//! **XML**: one file, `reference-data.xml`, the CA005C carrying the whole set (the message the
//! hub sends a node that asks for it), strictly decoded on import.
//!
//! An import error names the file, the line and the field ([`FileError`]); a set that reads but
//! is not consistent gets the reference error, which names the record.

use std::collections::BTreeMap;

use super::update::{Update, UpdateHeader, read_update, update_message};
use super::*;
use crate::Message;
use crate::codec::{Limits, decode, encode};

/// The CSV files, in the order they are written.
pub const CSV_FILES: [&str; 7] = [
    "countries.csv",
    "offices.csv",
    "insurers.csv",
    "contracts.csv",
    "traders.csv",
    "restricted_goods.csv",
    "exchange_rates.csv",
];

/// The XML file.
pub const XML_FILE: &str = "reference-data.xml";

/// An import that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    /// A field (or a line) is wrong.
    #[error("refs.field: {file} line {line}, field {field}: {reason}")]
    Field {
        /// The file.
        file: String,
        /// The line (1 is the header).
        line: usize,
        /// The column.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// The XML is not a valid CA005C.
    #[error("refs.xml: {0}")]
    Xml(String),
    /// The set read is not consistent.
    #[error(transparent)]
    Reference(#[from] ReferenceError),
}

impl FileError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            FileError::Field { .. } => "refs.field",
            FileError::Xml(_) => "refs.xml",
            FileError::Reference(e) => e.code(),
        }
    }
}

const LANGS: [&str; 5] = ["en", "ru", "kk", "az", "ka"];

fn quote(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_owned()
    }
}

fn line(fields: &[String]) -> String {
    let mut s = fields
        .iter()
        .map(|f| quote(f))
        .collect::<Vec<_>>()
        .join(",");
    s.push('\n');
    s
}

fn names(n: &Names) -> Vec<String> {
    LANGS.iter().map(|l| n.get(l).to_owned()).collect()
}

fn name_columns() -> Vec<String> {
    LANGS.iter().map(|l| format!("name_{l}")).collect()
}

fn file(header: &[&str], extra: Vec<String>, rows: Vec<Vec<String>>) -> String {
    let mut h: Vec<String> = header.iter().map(|s| (*s).to_owned()).collect();
    h.extend(extra);
    let mut out = line(&h);
    for r in rows {
        out.push_str(&line(&r));
    }
    out
}

/// The CSV files of `set`: (file name, contents).
pub fn to_csv(set: &ReferenceSet) -> Vec<(&'static str, String)> {
    let opt = |d: Option<NaiveDate>| d.map(|d| d.to_string()).unwrap_or_default();
    vec![
        (
            CSV_FILES[0],
            file(
                &["code", "currency", "time_zone"],
                name_columns(),
                set.countries
                    .iter()
                    .map(|c| {
                        let mut r =
                            vec![c.code.to_string(), c.currency.clone(), c.time_zone.clone()];
                        r.extend(names(&c.names));
                        r
                    })
                    .collect(),
            ),
        ),
        (
            CSV_FILES[1],
            file(
                &[
                    "reference_number",
                    "country",
                    "roles",
                    "time_zone",
                    "latitude",
                    "longitude",
                ],
                name_columns(),
                set.offices
                    .iter()
                    .map(|o| {
                        let roles: Vec<String> = o
                            .roles
                            .iter()
                            .map(|r| {
                                serde_json::to_value(r)
                                    .ok()
                                    .and_then(|v| v.as_str().map(str::to_owned))
                                    .unwrap_or_default()
                            })
                            .collect();
                        let mut r = vec![
                            o.reference_number.to_string(),
                            o.country.to_string(),
                            roles.join(";"),
                            o.time_zone.clone(),
                            o.coordinates
                                .map(|c| c.latitude.to_string())
                                .unwrap_or_default(),
                            o.coordinates
                                .map(|c| c.longitude.to_string())
                                .unwrap_or_default(),
                        ];
                        r.extend(names(&o.names));
                        r
                    })
                    .collect(),
            ),
        ),
        (
            CSV_FILES[2],
            file(
                &["tin", "name", "country", "status"],
                Vec::new(),
                set.insurers
                    .iter()
                    .map(|i| {
                        vec![
                            i.tin.to_string(),
                            i.name.clone(),
                            i.country.to_string(),
                            i.status.as_str().to_owned(),
                        ]
                    })
                    .collect(),
            ),
        ),
        (
            CSV_FILES[3],
            file(
                &[
                    "contract_id",
                    "grn",
                    "insurer",
                    "holders",
                    "valid_from",
                    "valid_until",
                    "insured_amount",
                    "currency",
                    "status",
                ],
                Vec::new(),
                set.insurance_contracts
                    .iter()
                    .map(|c| {
                        vec![
                            c.contract_id.clone(),
                            c.grn.to_string(),
                            c.insurer.to_string(),
                            c.holders
                                .iter()
                                .map(|h| h.to_string())
                                .collect::<Vec<_>>()
                                .join(";"),
                            c.valid_from.to_string(),
                            c.valid_until.to_string(),
                            c.insured_amount.to_string(),
                            c.currency.clone(),
                            match c.status {
                                ContractStatus::Active => "active",
                                ContractStatus::Suspended => "suspended",
                                ContractStatus::Expired => "expired",
                            }
                            .to_owned(),
                        ]
                    })
                    .collect(),
            ),
        ),
        (
            CSV_FILES[4],
            file(
                &[
                    "role",
                    "tin",
                    "name",
                    "country",
                    "status",
                    "valid_from",
                    "valid_until",
                ],
                Vec::new(),
                set.traders
                    .iter()
                    .map(|t| {
                        vec![
                            t.role.as_str().to_owned(),
                            t.tin.to_string(),
                            t.name.clone(),
                            t.country.to_string(),
                            t.status.as_str().to_owned(),
                            t.valid_from.to_string(),
                            opt(t.valid_until),
                        ]
                    })
                    .collect(),
            ),
        ),
        (
            CSV_FILES[5],
            file(
                &["hs_prefix", "condition"],
                Vec::new(),
                set.restricted_goods
                    .iter()
                    .map(|g| vec![g.hs_prefix.clone(), g.condition.as_str().to_owned()])
                    .collect(),
            ),
        ),
        (
            CSV_FILES[6],
            file(
                &["currency", "rate", "valid_from"],
                Vec::new(),
                set.exchange_rates
                    .iter()
                    .map(|r| {
                        vec![
                            r.currency.clone(),
                            r.rate.to_string(),
                            r.valid_from.to_string(),
                        ]
                    })
                    .collect(),
            ),
        ),
    ]
}

/// Splits CSV text into records of fields, each with its line number.
fn records(file: &str, text: &str) -> Result<Vec<(usize, Vec<String>)>, FileError> {
    let mut out = Vec::new();
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut line = 1;
    let mut start = 1;
    let mut chars = text.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        any = true;
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, '\n') => {
                line += 1;
                field.push('\n');
            }
            (true, c) => field.push(c),
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => fields.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                fields.push(std::mem::take(&mut field));
                if !(fields.len() == 1 && fields[0].is_empty()) {
                    out.push((start, std::mem::take(&mut fields)));
                }
                fields.clear();
                line += 1;
                start = line;
                any = false;
            }
            (false, c) => field.push(c),
        }
    }
    if quoted {
        return Err(FileError::Field {
            file: file.to_owned(),
            line: start,
            field: "-".into(),
            reason: "a quoted field is not closed".into(),
        });
    }
    if any {
        fields.push(field);
        out.push((start, fields));
    }
    Ok(out)
}

struct Row<'a> {
    file: &'a str,
    line: usize,
    values: BTreeMap<&'a str, String>,
}

impl Row<'_> {
    fn bad(&self, field: &str, reason: String) -> FileError {
        FileError::Field {
            file: self.file.to_owned(),
            line: self.line,
            field: field.to_owned(),
            reason,
        }
    }

    fn text(&self, field: &str) -> String {
        self.values.get(field).cloned().unwrap_or_default()
    }

    fn required(&self, field: &str) -> Result<String, FileError> {
        let v = self.text(field);
        if v.trim().is_empty() {
            return Err(self.bad(field, "is empty".into()));
        }
        Ok(v)
    }

    fn parse<T, E: std::fmt::Display>(
        &self,
        field: &str,
        f: impl Fn(&str) -> Result<T, E>,
    ) -> Result<T, FileError> {
        let v = self.required(field)?;
        f(v.trim()).map_err(|e| self.bad(field, format!("{v:?}: {e}")))
    }

    fn date(&self, field: &str) -> Result<NaiveDate, FileError> {
        self.parse(field, |s| s.parse::<NaiveDate>())
    }

    fn optional_date(&self, field: &str) -> Result<Option<NaiveDate>, FileError> {
        if self.text(field).trim().is_empty() {
            return Ok(None);
        }
        self.date(field).map(Some)
    }

    fn names(&self) -> Result<Names, FileError> {
        Ok(Names {
            en: self.required("name_en")?,
            ru: self.required("name_ru")?,
            kk: self.required("name_kk")?,
            az: self.required("name_az")?,
            ka: self.required("name_ka")?,
        })
    }

    fn country(&self, field: &str) -> Result<CountryCode, FileError> {
        self.parse(field, CountryCode::parse)
    }

    fn tin(&self, field: &str) -> Result<Tin, FileError> {
        self.parse(field, Tin::parse)
    }
}

fn rows<'a>(file: &'a str, text: &str, columns: &[&'a str]) -> Result<Vec<Row<'a>>, FileError> {
    let mut recs = records(file, text)?.into_iter();
    let Some((_, header)) = recs.next() else {
        return Err(FileError::Field {
            file: file.to_owned(),
            line: 1,
            field: "-".into(),
            reason: "the file is empty: it needs at least the header line".into(),
        });
    };
    let mut index = Vec::new();
    for c in columns {
        let Some(i) = header.iter().position(|h| h.trim() == *c) else {
            return Err(FileError::Field {
                file: file.to_owned(),
                line: 1,
                field: (*c).to_owned(),
                reason: "the column is missing from the header".into(),
            });
        };
        index.push((*c, i));
    }
    if let Some(extra) = header.iter().find(|h| !columns.contains(&h.trim())) {
        return Err(FileError::Field {
            file: file.to_owned(),
            line: 1,
            field: extra.clone(),
            reason: "unknown column".into(),
        });
    }
    recs.map(|(line, fields)| {
        if fields.len() != header.len() {
            return Err(FileError::Field {
                file: file.to_owned(),
                line,
                field: "-".into(),
                reason: format!("{} fields, the header has {}", fields.len(), header.len()),
            });
        }
        Ok(Row {
            file,
            line,
            values: index
                .iter()
                .map(|(c, i)| (*c, fields.get(*i).cloned().unwrap_or_default()))
                .collect(),
        })
    })
    .collect()
}

fn with_names<'a>(cols: &[&'a str]) -> Vec<&'a str> {
    let mut v = cols.to_vec();
    v.extend(["name_en", "name_ru", "name_kk", "name_az", "name_ka"]);
    v
}

/// Reads the CSV files (`files`: name → contents; every file of [`CSV_FILES`] is required)
/// into a set at `version`, checked.
pub fn from_csv(files: &BTreeMap<String, String>, version: u64) -> Result<ReferenceSet, FileError> {
    let get = |name: &str| {
        files.get(name).ok_or_else(|| FileError::Field {
            file: name.to_owned(),
            line: 0,
            field: "-".into(),
            reason: "the file is missing".into(),
        })
    };
    let mut set = ReferenceSet {
        version,
        countries: Vec::new(),
        offices: Vec::new(),
        insurers: Vec::new(),
        insurance_contracts: Vec::new(),
        traders: Vec::new(),
        restricted_goods: Vec::new(),
        exchange_rates: Vec::new(),
    };
    let f = CSV_FILES[0];
    for r in rows(f, get(f)?, &with_names(&["code", "currency", "time_zone"]))? {
        set.countries.push(Country {
            code: r.country("code")?,
            currency: r.required("currency")?,
            time_zone: r.required("time_zone")?,
            names: r.names()?,
        });
    }
    let f = CSV_FILES[1];
    let cols = with_names(&[
        "reference_number",
        "country",
        "roles",
        "time_zone",
        "latitude",
        "longitude",
    ]);
    for r in rows(f, get(f)?, &cols)? {
        let roles = r
            .required("roles")?
            .split(';')
            .map(|x| {
                serde_json::from_value::<Role>(serde_json::Value::String(x.trim().to_owned()))
                    .map_err(|_| {
                        r.bad(
                            "roles",
                            format!("{x:?} is not departure, exit, transit or destination"),
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let coordinates = match (
            r.text("latitude").trim().is_empty(),
            r.text("longitude").trim().is_empty(),
        ) {
            (true, true) => None,
            _ => Some(Coordinates {
                latitude: r.parse("latitude", |s| s.parse::<f64>())?,
                longitude: r.parse("longitude", |s| s.parse::<f64>())?,
            }),
        };
        set.offices.push(Office {
            reference_number: r.parse("reference_number", CustomsOfficeRef::parse)?,
            country: r.country("country")?,
            roles,
            names: r.names()?,
            time_zone: r.required("time_zone")?,
            coordinates,
        });
    }
    let status = |r: &Row<'_>| {
        r.parse("status", |s| {
            TraderStatus::parse(s).ok_or("not active, suspended or revoked")
        })
    };
    let f = CSV_FILES[2];
    for r in rows(f, get(f)?, &["tin", "name", "country", "status"])? {
        set.insurers.push(Insurer {
            tin: r.tin("tin")?,
            name: r.required("name")?,
            country: r.country("country")?,
            status: status(&r)?,
        });
    }
    let f = CSV_FILES[3];
    let cols = [
        "contract_id",
        "grn",
        "insurer",
        "holders",
        "valid_from",
        "valid_until",
        "insured_amount",
        "currency",
        "status",
    ];
    for r in rows(f, get(f)?, &cols)? {
        set.insurance_contracts.push(InsuranceContract {
            contract_id: r.required("contract_id")?,
            grn: r.parse("grn", Grn::parse)?,
            insurer: r.tin("insurer")?,
            holders: r
                .required("holders")?
                .split(';')
                .map(|h| Tin::parse(h.trim()).map_err(|e| r.bad("holders", format!("{h:?}: {e}"))))
                .collect::<Result<_, _>>()?,
            valid_from: r.date("valid_from")?,
            valid_until: r.date("valid_until")?,
            insured_amount: r.parse("insured_amount", |s| s.parse::<rust_decimal::Decimal>())?,
            currency: r.required("currency")?,
            status: r.parse("status", |s| match s {
                "active" => Ok(ContractStatus::Active),
                "suspended" => Ok(ContractStatus::Suspended),
                "expired" => Ok(ContractStatus::Expired),
                _ => Err("not active, suspended or expired"),
            })?,
        });
    }
    let f = CSV_FILES[4];
    let cols = [
        "role",
        "tin",
        "name",
        "country",
        "status",
        "valid_from",
        "valid_until",
    ];
    for r in rows(f, get(f)?, &cols)? {
        set.traders.push(Trader {
            role: r.parse("role", |s| {
                TraderRole::parse(s).ok_or("not aeo or authorised-trader")
            })?,
            tin: r.tin("tin")?,
            name: r.required("name")?,
            country: r.country("country")?,
            status: status(&r)?,
            valid_from: r.date("valid_from")?,
            valid_until: r.optional_date("valid_until")?,
        });
    }
    let f = CSV_FILES[5];
    for r in rows(f, get(f)?, &["hs_prefix", "condition"])? {
        set.restricted_goods.push(RestrictedGoods {
            hs_prefix: r.required("hs_prefix")?.trim().to_owned(),
            condition: r.parse("condition", |s| {
                Restriction::parse(s).ok_or("not prohibited, licence-required or always-inspect")
            })?,
        });
    }
    let f = CSV_FILES[6];
    for r in rows(f, get(f)?, &["currency", "rate", "valid_from"])? {
        set.exchange_rates.push(ExchangeRate {
            currency: r.required("currency")?.trim().to_owned(),
            rate: r.parse("rate", |s| s.parse::<rust_decimal::Decimal>())?,
            valid_from: r.date("valid_from")?,
        });
    }
    Ok(ReferenceData::from_set(set)?.to_set())
}

/// The XML file of `set`: the CA005C carrying the whole set.
pub fn to_xml(set: &ReferenceSet, prepared_at: chrono::NaiveDateTime) -> Vec<u8> {
    let header = UpdateHeader {
        sender: "CATS.HUB".into(),
        recipient: "CATS.ADMIN".into(),
        message_id: format!("REFS-EXPORT-{}", set.version),
        prepared_at,
        correlation: None,
    };
    encode(&update_message(&header, &Update::whole(set, prepared_at)))
}

/// Reads the XML file back into a set, checked.
pub fn from_xml(bytes: &[u8]) -> Result<ReferenceSet, FileError> {
    let message = decode(bytes, &Limits::default())
        .map_err(|r| FileError::Xml(format!("{XML_FILE}: {r}")))?;
    let Message::CA005C(m) = message else {
        return Err(FileError::Xml(format!(
            "{XML_FILE}: a {} is not a reference-data update (CA005C)",
            message.message_type()
        )));
    };
    let update = read_update(&m)?;
    if update.previous.is_some() {
        return Err(FileError::Xml(format!(
            "{XML_FILE}: the CA005C is a change from version {}, not the whole set",
            update.previous.unwrap_or_default()
        )));
    }
    let empty = ReferenceSet {
        version: 0,
        countries: Vec::new(),
        offices: Vec::new(),
        insurers: Vec::new(),
        insurance_contracts: Vec::new(),
        traders: Vec::new(),
        restricted_goods: Vec::new(),
        exchange_rates: Vec::new(),
    };
    Ok(update.applied_to(&empty)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csv_files(set: &ReferenceSet) -> BTreeMap<String, String> {
        to_csv(set)
            .into_iter()
            .map(|(n, t)| (n.to_owned(), t))
            .collect()
    }

    #[test]
    fn csv_round_trip() {
        let set = ReferenceData::pilot().to_set();
        let back = from_csv(&csv_files(&set), set.version).expect("reads back");
        assert_eq!(back, set);
    }

    #[test]
    fn xml_round_trip() {
        let set = ReferenceData::pilot().to_set();
        let at = "2026-11-21T10:00:00".parse().expect("time");
        let back = from_xml(&to_xml(&set, at)).expect("reads back");
        assert_eq!(back, set);
    }

    #[test]
    fn bad_csv_names_the_line_and_field() {
        let set = ReferenceData::pilot().to_set();
        let mut files = csv_files(&set);
        let offices =
            files["offices.csv"].replacen(",KZ,departure;exit,", ",KZ,departure;moon,", 1);
        files.insert("offices.csv".into(), offices);
        let e = from_csv(&files, 1).expect_err("bad role");
        assert_eq!(
            (
                e.code(),
                e.to_string().contains("offices.csv line 7, field roles")
            ),
            ("refs.field", true),
            "{e}"
        );
        let mut files = csv_files(&set);
        let traders = files["traders.csv"].replacen("2026-01-01", "2026-13-01", 1);
        files.insert("traders.csv".into(), traders);
        let e = from_csv(&files, 1).expect_err("bad date");
        assert!(
            e.to_string()
                .contains("traders.csv line 2, field valid_from"),
            "{e}"
        );
        let mut files = csv_files(&set);
        files.remove("countries.csv");
        let e = from_csv(&files, 1).expect_err("missing file");
        assert!(e.to_string().contains("countries.csv"), "{e}");
        let e = from_xml(b"<not-xml").expect_err("bad XML");
        assert_eq!(e.code(), "refs.xml");
    }
}
