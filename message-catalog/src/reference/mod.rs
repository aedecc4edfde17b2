//! CATS reference data: customs offices and countries, as pure data with lookups.
//!
//! The pilot set of `DESIGN.md` ("Pilot reference data") is embedded ([`ReferenceData::pilot`],
//! from `pilot.json` next to this file). Every set carries a `version`: the hub will hold the
//! master copy and distribute numbered versions to the nodes (issue 6), so the type is
//! deserialisable from the same JSON shape and comparable by version.
//!
//! Office roles are the NCTS ones: departure, exit (office of exit for transit), transit (the
//! office of transit, i.e. the office of entry into a country on the route) and destination.
//! Time zones are IANA names (Kazakhstan has used one zone, UTC+5, since 1 March 2024:
//! `Asia/Almaty` and `Asia/Aqtau` both mean UTC+5 in current tz data).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::{CountryCode, CustomsOfficeRef};

/// The role an office can play in a movement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Office of departure.
    Departure,
    /// Office of exit for transit (leaving a country on the route).
    Exit,
    /// Office of transit: entry into a country on the route.
    Transit,
    /// Office of destination.
    Destination,
}

/// A name in each CATS language (English, Russian, Kazakh, Azerbaijani, Georgian).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Names {
    /// English.
    pub en: String,
    /// Russian.
    pub ru: String,
    /// Kazakh.
    pub kk: String,
    /// Azerbaijani.
    pub az: String,
    /// Georgian.
    pub ka: String,
}

impl Names {
    /// The name in `language` (ISO 639-1: `en`, `ru`, `kk`, `az`, `ka`), English otherwise.
    pub fn get(&self, language: &str) -> &str {
        match language {
            "ru" => &self.ru,
            "kk" => &self.kk,
            "az" => &self.az,
            "ka" => &self.ka,
            _ => &self.en,
        }
    }
}

/// WGS 84 coordinates, in decimal degrees.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Coordinates {
    /// Latitude, north positive.
    pub latitude: f64,
    /// Longitude, east positive.
    pub longitude: f64,
}

/// A customs office.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Office {
    /// Its reference number.
    pub reference_number: CustomsOfficeRef,
    /// Its country (always the first two characters of the reference number).
    pub country: CountryCode,
    /// The roles it may play.
    pub roles: Vec<Role>,
    /// Its name in each language.
    pub names: Names,
    /// IANA time zone.
    pub time_zone: String,
    /// Where it is, when known.
    #[serde(default)]
    pub coordinates: Option<Coordinates>,
}

/// A participating country.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Country {
    /// ISO 3166-1 alpha-2.
    pub code: CountryCode,
    /// Its national currency (ISO 4217).
    pub currency: String,
    /// Main IANA time zone.
    pub time_zone: String,
    /// Its name in each language.
    pub names: Names,
}

/// What a reference data set may not contain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// The JSON does not describe a reference data set.
    #[error("reference.syntax: {0}")]
    Syntax(String),
    /// The same office twice.
    #[error("reference.duplicate-office: {0} is listed twice")]
    DuplicateOffice(CustomsOfficeRef),
    /// The same country twice.
    #[error("reference.duplicate-country: {0} is listed twice")]
    DuplicateCountry(CountryCode),
    /// An office's country is not its reference number's prefix, or is not a listed country.
    #[error("reference.office-country: office {office} says country {country}")]
    OfficeCountry {
        /// The office.
        office: CustomsOfficeRef,
        /// The country it names.
        country: CountryCode,
    },
    /// An office with no role.
    #[error("reference.no-role: office {0} has no role")]
    NoRole(CustomsOfficeRef),
}

impl ReferenceError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            ReferenceError::Syntax(_) => "reference.syntax",
            ReferenceError::DuplicateOffice(_) => "reference.duplicate-office",
            ReferenceError::DuplicateCountry(_) => "reference.duplicate-country",
            ReferenceError::OfficeCountry { .. } => "reference.office-country",
            ReferenceError::NoRole(_) => "reference.no-role",
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSet {
    version: u64,
    countries: Vec<Country>,
    offices: Vec<Office>,
}

/// One version of the reference data, indexed for lookups.
#[derive(Debug, Clone, PartialEq)]
pub struct ReferenceData {
    version: u64,
    countries: BTreeMap<CountryCode, Country>,
    offices: BTreeMap<CustomsOfficeRef, Office>,
}

const PILOT: &str = include_str!("pilot.json");

impl ReferenceData {
    /// The pilot development set of `DESIGN.md` (seven offices in KZ, AZ and GE).
    pub fn pilot() -> ReferenceData {
        ReferenceData::from_json(PILOT.as_bytes())
            .expect("the embedded pilot reference data is checked by a unit test")
    }

    /// Reads and checks a set in the JSON shape of `pilot.json`.
    pub fn from_json(bytes: &[u8]) -> Result<ReferenceData, ReferenceError> {
        let raw: RawSet =
            serde_json::from_slice(bytes).map_err(|e| ReferenceError::Syntax(e.to_string()))?;
        let mut countries = BTreeMap::new();
        for c in raw.countries {
            let code = c.code;
            if countries.insert(code, c).is_some() {
                return Err(ReferenceError::DuplicateCountry(code));
            }
        }
        let mut offices = BTreeMap::new();
        for o in raw.offices {
            let office = o.reference_number;
            if o.country != office.country() || !countries.contains_key(&o.country) {
                return Err(ReferenceError::OfficeCountry {
                    office,
                    country: o.country,
                });
            }
            if o.roles.is_empty() {
                return Err(ReferenceError::NoRole(office));
            }
            if offices.insert(office, o).is_some() {
                return Err(ReferenceError::DuplicateOffice(office));
            }
        }
        Ok(ReferenceData {
            version: raw.version,
            countries,
            offices,
        })
    }

    /// The version of this set (a later set has a higher version).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The office with this reference number.
    pub fn office(&self, reference: &CustomsOfficeRef) -> Option<&Office> {
        self.offices.get(reference)
    }

    /// The country of a known office.
    pub fn country_of(&self, reference: &CustomsOfficeRef) -> Option<CountryCode> {
        self.office(reference).map(|o| o.country)
    }

    /// Whether the office is known and may play `role`.
    pub fn has_role(&self, reference: &CustomsOfficeRef, role: Role) -> bool {
        self.office(reference)
            .is_some_and(|o| o.roles.contains(&role))
    }

    /// The participating country with this code.
    pub fn country(&self, code: CountryCode) -> Option<&Country> {
        self.countries.get(&code)
    }

    /// Every office, by reference number.
    pub fn offices(&self) -> impl Iterator<Item = &Office> {
        self.offices.values()
    }

    /// Every participating country, by code.
    pub fn countries(&self) -> impl Iterator<Item = &Country> {
        self.countries.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn office(s: &str) -> CustomsOfficeRef {
        CustomsOfficeRef::parse(s).expect("valid office reference")
    }

    #[test]
    fn pilot_set_matches_design() {
        let r = ReferenceData::pilot();
        assert_eq!(r.version(), 1);
        assert_eq!(r.offices().count(), 7);
        assert_eq!(r.countries().count(), 3);
        assert_eq!(r.country_of(&office("AZ000201")), Some(CountryCode::AZ));
        assert!(r.has_role(&office("KZ000101"), Role::Departure));
        assert!(r.has_role(&office("KZ000101"), Role::Exit));
        assert!(!r.has_role(&office("KZ000101"), Role::Destination));
        assert!(r.has_role(&office("AZ000101"), Role::Transit));
        assert!(r.has_role(&office("GE000101"), Role::Transit));
        assert!(r.has_role(&office("GE000201"), Role::Destination));
        assert!(!r.has_role(&office("GE999999"), Role::Destination));
        assert_eq!(
            r.office(&office("GE000201")).map(|o| o.names.get("ka")),
            Some("ფოთის პორტი")
        );
        assert_eq!(
            r.office(&office("KZ000101")).map(|o| o.time_zone.as_str()),
            Some("Asia/Aqtau")
        );
        assert_eq!(
            r.country(CountryCode::GE).map(|c| c.currency.as_str()),
            Some("GEL")
        );
    }

    #[test]
    fn refuses_inconsistent_sets() {
        let bad_country = br#"{"version":1,"countries":[{"code":"KZ","currency":"KZT","time_zone":"Asia/Almaty",
            "names":{"en":"a","ru":"a","kk":"a","az":"a","ka":"a"}}],
            "offices":[{"reference_number":"AZ000101","country":"KZ","roles":["exit"],"time_zone":"Asia/Baku",
            "names":{"en":"a","ru":"a","kk":"a","az":"a","ka":"a"}}]}"#;
        let e = ReferenceData::from_json(bad_country).expect_err("office in the wrong country");
        assert_eq!(e.code(), "reference.office-country");
        let e = ReferenceData::from_json(b"{\"version\":1}").expect_err("incomplete");
        assert_eq!(e.code(), "reference.syntax");
    }
}
