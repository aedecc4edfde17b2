//! CATS reference data: customs offices, countries, approved insurers and their insurance
//! contracts (comprehensive guarantees), as pure data with lookups.
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
//!
//! Insurance contracts are the comprehensive guarantees of CATS: a contract has a GRN, the
//! approved insurer that issued it, the holders (TINs) it covers, a policy period, an insured
//! amount in one currency, and a status. [`ReferenceData::guarantee_cover`] answers whether a
//! contract may be used for a holder, a currency and a day, with a [`GuaranteeRefusal`]
//! otherwise; the balance is not reference data (the hub's ledger keeps it).
//!
//! ## Refusal reasons: CATS004 and the CD205C
//!
//! The code list `CATS004` names refusals by code (the P5 CL252 `G..` codes and CATS's own
//! `C..` codes); the CD205C's `refusalReason` names them by word (`unknownGrn`, `expired`, …).
//! [`GuaranteeRefusal`] is the one list both are read from: [`GuaranteeRefusal::cats004`] and
//! [`GuaranteeRefusal::cd205c`] give each side, [`GuaranteeRefusal::cats004_of_cd205c`] turns
//! a received CD205C reason into the code the office of departure puts in its CC055C.
//!
//! | refusal | CATS004 | CD205C `refusalReason` |
//! | --- | --- | --- |
//! | unknown GRN | `G01` | `unknownGrn` |
//! | contract expired (outside its policy period) | `C01` | `expired` |
//! | contract suspended | `C01` | `suspended` |
//! | holder not covered | `G04` | `holderNotCovered` |
//! | currency is not the contract's | `G02` | none: the CD205C gives `contractCurrency` |
//! | insufficient available balance | `G09` | `insufficientBalance` |
//! | currency with no exchange rate on the day | `G02` | none: the CD205C gives `contractCurrency` |
//!
//! ## Exchange rates
//!
//! The rate table ([`ExchangeRate`], `exchange_rates` in the JSON) is reference data too: for
//! each currency, how many units of it one US dollar buys ([`RATE_BASE`]), from a first day
//! (UTC) until the next entry for the same currency. [`ReferenceData::convert`] turns an amount
//! into another currency: the cross rate `rate(to) / rate(from)` is rounded half away from
//! zero to 9 decimal places (the `exchangeRate` of the CD205C), the amount times that rate is
//! rounded **up** (away from zero) to 2 decimal places, so that a reservation never covers less
//! than the amount declared. A currency with no rate on the day is refused
//! ([`GuaranteeRefusal::UnknownCurrency`]); an amount already in the target currency is kept
//! as it is, at rate 1.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::generated::cats::GuaranteeRefusalReasonCode;
use crate::ids::{CountryCode, CustomsOfficeRef, Grn, Tin};

pub mod files;
pub mod update;

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

/// An insurer approved to issue comprehensive guarantees in CATS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Insurer {
    /// Its identification number.
    pub tin: Tin,
    /// Its name.
    pub name: String,
    /// The country where it is registered.
    pub country: CountryCode,
    /// Its standing as an approved insurer (active when not given).
    #[serde(default)]
    pub status: TraderStatus,
}

/// The register a trader is on (approved insurers have their own section, [`Insurer`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TraderRole {
    /// Authorised economic operator.
    Aeo,
    /// Authorised trader (authorised consignor or consignee).
    AuthorisedTrader,
}

impl TraderRole {
    /// Both registers.
    pub const ALL: [TraderRole; 2] = [TraderRole::Aeo, TraderRole::AuthorisedTrader];

    /// The name used in keys and files (`aeo`, `authorised-trader`).
    pub fn as_str(self) -> &'static str {
        match self {
            TraderRole::Aeo => "aeo",
            TraderRole::AuthorisedTrader => "authorised-trader",
        }
    }

    /// Parses [`TraderRole::as_str`].
    pub fn parse(s: &str) -> Option<TraderRole> {
        TraderRole::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// The standing of a registration.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum TraderStatus {
    /// In force.
    #[default]
    Active,
    /// Suspended: no treatment as registered until it is reinstated.
    Suspended,
    /// Revoked for good.
    Revoked,
}

impl TraderStatus {
    /// `active`, `suspended`, `revoked`.
    pub fn as_str(self) -> &'static str {
        match self {
            TraderStatus::Active => "active",
            TraderStatus::Suspended => "suspended",
            TraderStatus::Revoked => "revoked",
        }
    }

    /// Parses [`TraderStatus::as_str`].
    pub fn parse(s: &str) -> Option<TraderStatus> {
        [
            TraderStatus::Active,
            TraderStatus::Suspended,
            TraderStatus::Revoked,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

/// A registered AEO or authorised trader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trader {
    /// The register.
    pub role: TraderRole,
    /// Its identification number.
    pub tin: Tin,
    /// Its name.
    pub name: String,
    /// The country where it is established.
    pub country: CountryCode,
    /// Its standing.
    pub status: TraderStatus,
    /// First day of validity (UTC).
    pub valid_from: NaiveDate,
    /// Last day of validity, inclusive; open-ended when absent.
    #[serde(default)]
    pub valid_until: Option<NaiveDate>,
}

impl Trader {
    /// Whether the registration is active and `day` is within its validity.
    pub fn in_force(&self, day: NaiveDate) -> bool {
        self.status == TraderStatus::Active
            && self.valid_from <= day
            && self.valid_until.is_none_or(|u| day <= u)
    }
}

/// What the CATS restricted goods list says of goods under an HS prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Restriction {
    /// May not move under CATS transit: the declaration is refused.
    Prohibited,
    /// Moves only under a licence: always selected for a documentary check.
    LicenceRequired,
    /// Always selected for control.
    AlwaysInspect,
}

impl Restriction {
    /// `prohibited`, `licence-required`, `always-inspect`.
    pub fn as_str(self) -> &'static str {
        match self {
            Restriction::Prohibited => "prohibited",
            Restriction::LicenceRequired => "licence-required",
            Restriction::AlwaysInspect => "always-inspect",
        }
    }

    /// Parses [`Restriction::as_str`].
    pub fn parse(s: &str) -> Option<Restriction> {
        [
            Restriction::Prohibited,
            Restriction::LicenceRequired,
            Restriction::AlwaysInspect,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

/// An entry of the CATS restricted goods list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestrictedGoods {
    /// HS code prefix, 2 to 10 digits.
    pub hs_prefix: String,
    /// The condition.
    pub condition: Restriction,
}

/// Whether a contract may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContractStatus {
    /// In force (within its policy period).
    Active,
    /// Suspended by the insurer or the administrator: no new reservation.
    Suspended,
    /// Ended before its policy period did.
    Expired,
}

/// An insurance contract: a comprehensive guarantee.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InsuranceContract {
    /// The insurer's contract number.
    pub contract_id: String,
    /// The guarantee reference number declarations quote.
    pub grn: Grn,
    /// The approved insurer that issued it ([`Insurer::tin`]).
    pub insurer: Tin,
    /// The holders of the transit procedure it covers.
    pub holders: Vec<Tin>,
    /// First day of the policy period (UTC).
    pub valid_from: NaiveDate,
    /// Last day of the policy period, inclusive (UTC).
    pub valid_until: NaiveDate,
    /// The insured amount, in `currency`.
    pub insured_amount: Decimal,
    /// ISO 4217, one of the CATS currencies (code list CATS002).
    pub currency: String,
    /// Its status.
    pub status: ContractStatus,
}

impl InsuranceContract {
    /// Whether `day` is within the policy period.
    pub fn covers_day(&self, day: NaiveDate) -> bool {
        self.valid_from <= day && day <= self.valid_until
    }

    /// Whether `holder` is one of the holders covered.
    pub fn covers_holder(&self, holder: &str) -> bool {
        self.holders.iter().any(|h| h.as_str() == holder)
    }
}

/// The currency every rate of the table is quoted against: a rate is how many units of its
/// currency one unit of `RATE_BASE` buys.
pub const RATE_BASE: &str = "USD";

/// One entry of the rate table (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExchangeRate {
    /// ISO 4217.
    pub currency: String,
    /// Units of `currency` for one [`RATE_BASE`]; positive.
    pub rate: Decimal,
    /// First day (UTC) the rate applies; it applies until the next entry for the currency.
    pub valid_from: NaiveDate,
}

/// An amount converted to another currency ([`ReferenceData::convert`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conversion {
    /// The amount in the target currency, rounded up to 2 decimal places (unchanged when no
    /// conversion was needed).
    pub amount: Decimal,
    /// Units of the target currency per unit of the source currency, 9 decimal places at most
    /// (1 when the currencies are the same).
    pub rate: Decimal,
}

/// Why an amount could not be converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConversionError {
    /// No rate for this currency on the day.
    #[error("guarantee.unknown-currency: no exchange rate for {currency} on {day}")]
    UnknownCurrency {
        /// The currency.
        currency: String,
        /// The day.
        day: NaiveDate,
    },
    /// The converted amount does not fit a decimal.
    #[error("guarantee.amount-overflow: {0} cannot be converted without overflow")]
    Overflow(Decimal),
}

/// Why a guarantee cannot be used. The one list of refusal reasons (see the module
/// documentation for the table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GuaranteeRefusal {
    /// No contract has this GRN.
    UnknownGrn,
    /// The day is outside the contract's policy period, or the contract has expired.
    Expired,
    /// The contract is suspended.
    Suspended,
    /// The holder of the transit procedure is not one the contract covers.
    HolderNotCovered,
    /// The amount is not in the contract's currency.
    CurrencyMismatch,
    /// The available balance is less than the amount.
    InsufficientBalance,
    /// The amount's currency has no exchange rate to the contract's on the day.
    UnknownCurrency,
}

impl GuaranteeRefusal {
    /// Every reason.
    pub const ALL: [GuaranteeRefusal; 7] = [
        GuaranteeRefusal::UnknownGrn,
        GuaranteeRefusal::Expired,
        GuaranteeRefusal::Suspended,
        GuaranteeRefusal::HolderNotCovered,
        GuaranteeRefusal::CurrencyMismatch,
        GuaranteeRefusal::InsufficientBalance,
        GuaranteeRefusal::UnknownCurrency,
    ];

    /// The stable label (`guarantee.unknown-grn`, …).
    pub fn label(self) -> &'static str {
        match self {
            GuaranteeRefusal::UnknownGrn => "guarantee.unknown-grn",
            GuaranteeRefusal::Expired => "guarantee.expired",
            GuaranteeRefusal::Suspended => "guarantee.suspended",
            GuaranteeRefusal::HolderNotCovered => "guarantee.holder-not-covered",
            GuaranteeRefusal::CurrencyMismatch => "guarantee.currency-mismatch",
            GuaranteeRefusal::InsufficientBalance => "guarantee.insufficient-balance",
            GuaranteeRefusal::UnknownCurrency => "guarantee.unknown-currency",
        }
    }

    /// The code in code list CATS004.
    pub fn cats004(self) -> &'static str {
        match self {
            GuaranteeRefusal::UnknownGrn => "G01",
            GuaranteeRefusal::Expired | GuaranteeRefusal::Suspended => "C01",
            GuaranteeRefusal::HolderNotCovered => "G04",
            GuaranteeRefusal::CurrencyMismatch | GuaranteeRefusal::UnknownCurrency => "G02",
            GuaranteeRefusal::InsufficientBalance => "G09",
        }
    }

    /// The CD205C `refusalReason`; `None` for a currency mismatch, which the schema has no word
    /// for (the CD205C then carries the contract's currency in `contractCurrency`).
    pub fn cd205c(self) -> Option<GuaranteeRefusalReasonCode> {
        match self {
            GuaranteeRefusal::UnknownGrn => Some(GuaranteeRefusalReasonCode::UnknownGrn),
            GuaranteeRefusal::Expired => Some(GuaranteeRefusalReasonCode::Expired),
            GuaranteeRefusal::Suspended => Some(GuaranteeRefusalReasonCode::Suspended),
            GuaranteeRefusal::HolderNotCovered => {
                Some(GuaranteeRefusalReasonCode::HolderNotCovered)
            }
            GuaranteeRefusal::CurrencyMismatch | GuaranteeRefusal::UnknownCurrency => None,
            GuaranteeRefusal::InsufficientBalance => {
                Some(GuaranteeRefusalReasonCode::InsufficientBalance)
            }
        }
    }

    /// The CATS004 code of a refusal received in a CD205C (`None`: no `refusalReason`, which
    /// the hub sends only for a currency mismatch, `G02`).
    pub fn cats004_of_cd205c(reason: Option<GuaranteeRefusalReasonCode>) -> &'static str {
        match reason {
            Some(GuaranteeRefusalReasonCode::UnknownGrn) => GuaranteeRefusal::UnknownGrn,
            Some(GuaranteeRefusalReasonCode::Expired) => GuaranteeRefusal::Expired,
            Some(GuaranteeRefusalReasonCode::Suspended) => GuaranteeRefusal::Suspended,
            Some(GuaranteeRefusalReasonCode::HolderNotCovered) => {
                GuaranteeRefusal::HolderNotCovered
            }
            Some(GuaranteeRefusalReasonCode::InsufficientBalance) => {
                GuaranteeRefusal::InsufficientBalance
            }
            None => GuaranteeRefusal::CurrencyMismatch,
        }
        .cats004()
    }
}

impl std::fmt::Display for GuaranteeRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
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
    /// The same insurer twice.
    #[error("reference.duplicate-insurer: insurer {0} is listed twice")]
    DuplicateInsurer(Tin),
    /// The same contract id twice.
    #[error("reference.duplicate-contract: contract {0} is listed twice")]
    DuplicateContract(String),
    /// Two contracts with the same GRN whose policy periods overlap.
    #[error(
        "reference.contract-overlap: contracts {first} and {second} both hold GRN {grn} on overlapping periods"
    )]
    ContractOverlap {
        /// The GRN.
        grn: Grn,
        /// One contract.
        first: String,
        /// The other.
        second: String,
    },
    /// A country that is not a participating country (of a trader or an insurer).
    #[error(
        "reference.unknown-country: {what} names country {country}, which is not a participating country"
    )]
    UnknownCountry {
        /// What names it.
        what: String,
        /// The country.
        country: CountryCode,
    },
    /// The same trader twice on one register.
    #[error("reference.duplicate-trader: {tin} is listed twice as {role}")]
    DuplicateTrader {
        /// The register (`aeo`, `authorised-trader`).
        role: &'static str,
        /// The trader.
        tin: Tin,
    },
    /// A trader registration that is wrong on its own (name, validity).
    #[error("reference.trader: {tin}: {reason}")]
    Trader {
        /// The trader.
        tin: Tin,
        /// What is wrong.
        reason: String,
    },
    /// A restricted goods entry whose prefix is not 2 to 10 digits, or listed twice.
    #[error("reference.restricted-goods: HS prefix {prefix:?}: {reason}")]
    RestrictedGoods {
        /// The prefix as written.
        prefix: String,
        /// What is wrong.
        reason: String,
    },
    /// A change removes a key its section does not have.
    #[error("reference.unknown-key: there is no {section} {key:?} to remove")]
    UnknownKey {
        /// The section.
        section: &'static str,
        /// The key.
        key: String,
    },
    /// A CA005C whose content cannot be read into the model, or does not follow the set held.
    #[error("reference.message: {0}")]
    Message(String),
    /// A contract that is wrong on its own (period, amount, currency, holders, insurer).
    #[error("reference.contract: contract {contract}: {reason}")]
    Contract {
        /// The contract id.
        contract: String,
        /// What is wrong.
        reason: String,
    },
    /// An entry of the rate table that is wrong (currency, rate, the same day twice).
    #[error("reference.exchange-rate: {currency}: {reason}")]
    ExchangeRate {
        /// The currency.
        currency: String,
        /// What is wrong.
        reason: String,
    },
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
            ReferenceError::DuplicateInsurer(_) => "reference.duplicate-insurer",
            ReferenceError::DuplicateContract(_) => "reference.duplicate-contract",
            ReferenceError::ContractOverlap { .. } => "reference.contract-overlap",
            ReferenceError::Contract { .. } => "reference.contract",
            ReferenceError::UnknownCountry { .. } => "reference.unknown-country",
            ReferenceError::DuplicateTrader { .. } => "reference.duplicate-trader",
            ReferenceError::Trader { .. } => "reference.trader",
            ReferenceError::RestrictedGoods { .. } => "reference.restricted-goods",
            ReferenceError::UnknownKey { .. } => "reference.unknown-key",
            ReferenceError::Message(_) => "reference.message",
            ReferenceError::ExchangeRate { .. } => "reference.exchange-rate",
        }
    }
}

/// A reference data set as written (`pilot.json`, the hub's store, `cats refs`): the sections
/// as lists, unchecked. [`ReferenceData::from_set`] checks it; [`ReferenceData::to_set`] gives
/// it back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferenceSet {
    /// The version.
    pub version: u64,
    /// Participating countries: the country codes a transit route may name.
    pub countries: Vec<Country>,
    /// Customs offices.
    pub offices: Vec<Office>,
    /// Approved insurers.
    #[serde(default)]
    pub insurers: Vec<Insurer>,
    /// Insurance contracts.
    #[serde(default)]
    pub insurance_contracts: Vec<InsuranceContract>,
    /// The AEO register and the authorised traders.
    #[serde(default)]
    pub traders: Vec<Trader>,
    /// The CATS restricted goods list.
    #[serde(default)]
    pub restricted_goods: Vec<RestrictedGoods>,
    /// The exchange rate table.
    #[serde(default)]
    pub exchange_rates: Vec<ExchangeRate>,
}

/// One version of the reference data, indexed for lookups.
#[derive(Debug, Clone, PartialEq)]
pub struct ReferenceData {
    version: u64,
    countries: BTreeMap<CountryCode, Country>,
    offices: BTreeMap<CustomsOfficeRef, Office>,
    insurers: BTreeMap<Tin, Insurer>,
    /// By contract id.
    contracts: BTreeMap<String, InsuranceContract>,
    /// Contract ids per GRN, in order of policy period.
    by_grn: BTreeMap<Grn, Vec<String>>,
    /// AEOs and authorised traders.
    traders: BTreeMap<(TraderRole, Tin), Trader>,
    /// Restricted goods by HS prefix.
    restricted: BTreeMap<String, RestrictedGoods>,
    /// The rate table: per currency, `(first day, rate)` in order of day.
    rates: BTreeMap<String, BTreeMap<NaiveDate, Decimal>>,
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
        let raw: ReferenceSet =
            serde_json::from_slice(bytes).map_err(|e| ReferenceError::Syntax(e.to_string()))?;
        ReferenceData::from_set(raw)
    }

    /// The set as lists, in key order (what [`ReferenceData::from_set`] reads back).
    pub fn to_set(&self) -> ReferenceSet {
        let mut contracts: Vec<InsuranceContract> = self.contracts.values().cloned().collect();
        contracts.sort_by(|a, b| a.contract_id.cmp(&b.contract_id));
        ReferenceSet {
            version: self.version,
            countries: self.countries.values().cloned().collect(),
            offices: self.offices.values().cloned().collect(),
            insurers: self.insurers.values().cloned().collect(),
            insurance_contracts: contracts,
            traders: self.traders.values().cloned().collect(),
            restricted_goods: self.restricted.values().cloned().collect(),
            exchange_rates: self.exchange_rates().collect(),
        }
    }

    /// Checks a set: no duplicates, offices in their listed country, traders and insurers of
    /// participating countries, sound contracts, periods and HS prefixes.
    pub fn from_set(raw: ReferenceSet) -> Result<ReferenceData, ReferenceError> {
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
        let mut insurers = BTreeMap::new();
        for i in raw.insurers {
            if !countries.contains_key(&i.country) {
                return Err(ReferenceError::UnknownCountry {
                    what: format!("insurer {}", i.tin),
                    country: i.country,
                });
            }
            let tin = i.tin.clone();
            if insurers.insert(tin.clone(), i).is_some() {
                return Err(ReferenceError::DuplicateInsurer(tin));
            }
        }
        let mut contracts = BTreeMap::new();
        let mut by_grn: BTreeMap<Grn, Vec<String>> = BTreeMap::new();
        for c in raw.insurance_contracts {
            check_contract(&c, &insurers)?;
            let id = c.contract_id.clone();
            by_grn.entry(c.grn.clone()).or_default().push(id.clone());
            if contracts.insert(id.clone(), c).is_some() {
                return Err(ReferenceError::DuplicateContract(id));
            }
        }
        for (grn, ids) in &mut by_grn {
            let mut periods: Vec<(&InsuranceContract, &String)> = ids
                .iter()
                .filter_map(|id| contracts.get(id).map(|c| (c, id)))
                .collect();
            periods.sort_by_key(|(c, _)| c.valid_from);
            for pair in periods.windows(2) {
                if let [(a, a_id), (b, b_id)] = pair
                    && b.valid_from <= a.valid_until
                {
                    return Err(ReferenceError::ContractOverlap {
                        grn: grn.clone(),
                        first: (*a_id).clone(),
                        second: (*b_id).clone(),
                    });
                }
            }
            *ids = periods.into_iter().map(|(_, id)| id.clone()).collect();
        }
        let mut traders = BTreeMap::new();
        for t in raw.traders {
            if !countries.contains_key(&t.country) {
                return Err(ReferenceError::UnknownCountry {
                    what: format!("{} {}", t.role.as_str(), t.tin),
                    country: t.country,
                });
            }
            if t.name.trim().is_empty() {
                return Err(ReferenceError::Trader {
                    tin: t.tin.clone(),
                    reason: "the name is empty".into(),
                });
            }
            if let Some(until) = t.valid_until
                && until < t.valid_from
            {
                return Err(ReferenceError::Trader {
                    tin: t.tin.clone(),
                    reason: format!(
                        "its validity ends ({until}) before it begins ({})",
                        t.valid_from
                    ),
                });
            }
            let key = (t.role, t.tin.clone());
            if traders.insert(key, t.clone()).is_some() {
                return Err(ReferenceError::DuplicateTrader {
                    role: t.role.as_str(),
                    tin: t.tin,
                });
            }
        }
        let mut restricted = BTreeMap::new();
        for g in raw.restricted_goods {
            let p = &g.hs_prefix;
            if !(2..=10).contains(&p.len()) || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ReferenceError::RestrictedGoods {
                    prefix: p.clone(),
                    reason: "not 2 to 10 digits".into(),
                });
            }
            if restricted.insert(p.clone(), g.clone()).is_some() {
                return Err(ReferenceError::RestrictedGoods {
                    prefix: g.hs_prefix,
                    reason: "listed twice".into(),
                });
            }
        }
        let mut rates: BTreeMap<String, BTreeMap<NaiveDate, Decimal>> = BTreeMap::new();
        for r in raw.exchange_rates {
            check_rate(&r)?;
            if rates
                .entry(r.currency.clone())
                .or_default()
                .insert(r.valid_from, r.rate)
                .is_some()
            {
                return Err(ReferenceError::ExchangeRate {
                    currency: r.currency,
                    reason: format!("two rates from {}", r.valid_from),
                });
            }
        }
        Ok(ReferenceData {
            version: raw.version,
            countries,
            offices,
            insurers,
            contracts,
            by_grn,
            traders,
            restricted,
            rates,
        })
    }

    /// The rate of `currency` (units per [`RATE_BASE`]) on `day`: the entry with the latest first
    /// day not after `day`. `None`: no rate.
    pub fn rate_on(&self, currency: &str, day: NaiveDate) -> Option<Decimal> {
        self.rates
            .get(currency)?
            .range(..=day)
            .next_back()
            .map(|(_, r)| *r)
    }

    /// Every entry of the rate table, by currency and first day.
    pub fn exchange_rates(&self) -> impl Iterator<Item = ExchangeRate> + '_ {
        self.rates.iter().flat_map(|(currency, days)| {
            days.iter().map(move |(day, rate)| ExchangeRate {
                currency: currency.clone(),
                rate: *rate,
                valid_from: *day,
            })
        })
    }

    /// Converts `amount` from currency `from` to currency `to` at the rates of `day` (see the
    /// module documentation for the rounding).
    pub fn convert(
        &self,
        amount: Decimal,
        from: &str,
        to: &str,
        day: NaiveDate,
    ) -> Result<Conversion, ConversionError> {
        if from == to {
            return Ok(Conversion {
                amount,
                rate: Decimal::ONE,
            });
        }
        let rate = |currency: &str| {
            self.rate_on(currency, day)
                .ok_or_else(|| ConversionError::UnknownCurrency {
                    currency: currency.to_owned(),
                    day,
                })
        };
        let (from_rate, to_rate) = (rate(from)?, rate(to)?);
        let cross = to_rate
            .checked_div(from_rate)
            .ok_or(ConversionError::Overflow(amount))?
            .round_dp_with_strategy(9, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
            .normalize();
        let converted = amount
            .checked_mul(cross)
            .ok_or(ConversionError::Overflow(amount))?
            .round_dp_with_strategy(2, rust_decimal::RoundingStrategy::AwayFromZero);
        Ok(Conversion {
            amount: converted,
            rate: cross,
        })
    }

    /// The version of this set (a later set has a higher version).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Every AEO and authorised trader, by register and TIN.
    pub fn traders(&self) -> impl Iterator<Item = &Trader> {
        self.traders.values()
    }

    /// The registration of `tin` on register `role`.
    pub fn trader(&self, role: TraderRole, tin: &str) -> Option<&Trader> {
        let tin = Tin::parse(tin).ok()?;
        self.traders.get(&(role, tin))
    }

    /// Whether `tin` is an AEO in force on `day` (a suspended or revoked AEO is not).
    pub fn is_aeo(&self, tin: &str, day: NaiveDate) -> bool {
        self.trader(TraderRole::Aeo, tin)
            .is_some_and(|t| t.in_force(day))
    }

    /// The first registration of `tin` (AEO, then authorised trader) that is suspended or
    /// revoked: such a holder loses the treatment of its registration, comprehensive
    /// guarantees included.
    pub fn withdrawn_registration(&self, tin: &str) -> Option<&Trader> {
        TraderRole::ALL
            .into_iter()
            .filter_map(|r| self.trader(r, tin))
            .find(|t| t.status != TraderStatus::Active)
    }

    /// The restricted goods list, by HS prefix.
    pub fn restricted_goods(&self) -> impl Iterator<Item = &RestrictedGoods> {
        self.restricted.values()
    }

    /// The entry of the restricted goods list that applies to `hs_code`: the longest prefix
    /// it starts with.
    pub fn restriction(&self, hs_code: &str) -> Option<&RestrictedGoods> {
        self.restricted
            .values()
            .filter(|g| hs_code.starts_with(g.hs_prefix.as_str()))
            .max_by_key(|g| g.hs_prefix.len())
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

    /// The approved insurer with this TIN.
    pub fn insurer(&self, tin: &Tin) -> Option<&Insurer> {
        self.insurers.get(tin)
    }

    /// Every approved insurer, by TIN.
    pub fn insurers(&self) -> impl Iterator<Item = &Insurer> {
        self.insurers.values()
    }

    /// The insurance contract with this id.
    pub fn contract(&self, contract_id: &str) -> Option<&InsuranceContract> {
        self.contracts.get(contract_id)
    }

    /// Every insurance contract, by contract id.
    pub fn contracts(&self) -> impl Iterator<Item = &InsuranceContract> {
        self.contracts.values()
    }

    /// The contracts with this GRN, in order of policy period (they never overlap).
    pub fn contracts_for(&self, grn: &Grn) -> impl Iterator<Item = &InsuranceContract> {
        self.by_grn
            .get(grn)
            .into_iter()
            .flatten()
            .filter_map(|id| self.contracts.get(id))
    }

    /// The contract that `grn` names on `day`: the one whose policy period holds the day, else
    /// the last one that began before it, else the first one. `None`: unknown GRN.
    pub fn contract_on(&self, grn: &Grn, day: NaiveDate) -> Option<&InsuranceContract> {
        let all: Vec<&InsuranceContract> = self.contracts_for(grn).collect();
        all.iter()
            .find(|c| c.covers_day(day))
            .or_else(|| all.iter().rev().find(|c| c.valid_from <= day))
            .or_else(|| all.first())
            .copied()
    }

    /// Whether `grn` may guarantee a movement of `holder` in `currency` on `day`, checked in this
    /// order: known GRN, status (suspended, expired), policy period, holder, currency. The
    /// balance is the ledger's to check.
    pub fn guarantee_cover(
        &self,
        grn: &Grn,
        holder: &str,
        currency: &str,
        day: NaiveDate,
    ) -> Result<&InsuranceContract, (GuaranteeRefusal, Option<&InsuranceContract>)> {
        let Some(c) = self.contract_on(grn, day) else {
            return Err((GuaranteeRefusal::UnknownGrn, None));
        };
        let refusal = match c.status {
            ContractStatus::Suspended => Some(GuaranteeRefusal::Suspended),
            ContractStatus::Expired => Some(GuaranteeRefusal::Expired),
            ContractStatus::Active if !c.covers_day(day) => Some(GuaranteeRefusal::Expired),
            ContractStatus::Active if !c.covers_holder(holder) => {
                Some(GuaranteeRefusal::HolderNotCovered)
            }
            ContractStatus::Active if c.currency != currency => {
                Some(GuaranteeRefusal::CurrencyMismatch)
            }
            ContractStatus::Active => None,
        };
        match refusal {
            Some(r) => Err((r, Some(c))),
            None => Ok(c),
        }
    }
}

fn check_rate(r: &ExchangeRate) -> Result<(), ReferenceError> {
    let bad = |reason: String| ReferenceError::ExchangeRate {
        currency: r.currency.clone(),
        reason,
    };
    if !crate::codelists::CodeLists::embedded().contains("CL048", &r.currency) {
        return Err(bad("not an ISO 4217 currency (code list CL048)".into()));
    }
    if r.rate <= Decimal::ZERO {
        return Err(bad(format!("rate {} is not positive", r.rate)));
    }
    if r.rate.scale() > 9 {
        return Err(bad(format!(
            "rate {} has more than 9 decimal places",
            r.rate
        )));
    }
    if r.currency == RATE_BASE && r.rate != Decimal::ONE {
        return Err(bad(format!(
            "{RATE_BASE} is the base of the table: its rate is 1, not {}",
            r.rate
        )));
    }
    Ok(())
}

fn check_contract(
    c: &InsuranceContract,
    insurers: &BTreeMap<Tin, Insurer>,
) -> Result<(), ReferenceError> {
    let bad = |reason: String| ReferenceError::Contract {
        contract: c.contract_id.clone(),
        reason,
    };
    if c.contract_id.trim().is_empty() {
        return Err(bad("the contract id is empty".into()));
    }
    if !insurers.contains_key(&c.insurer) {
        return Err(bad(format!(
            "insurer {} is not an approved insurer",
            c.insurer
        )));
    }
    if c.holders.is_empty() {
        return Err(bad("it covers no holder".into()));
    }
    if c.valid_until < c.valid_from {
        return Err(bad(format!(
            "its policy period ends ({}) before it begins ({})",
            c.valid_until, c.valid_from
        )));
    }
    if c.insured_amount <= Decimal::ZERO {
        return Err(bad(format!(
            "the insured amount {} is not positive",
            c.insured_amount
        )));
    }
    if !crate::codelists::CodeLists::embedded().contains("CATS002", &c.currency) {
        return Err(bad(format!(
            "currency {:?} is not a CATS currency (code list CATS002)",
            c.currency
        )));
    }
    Ok(())
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
        assert_eq!(r.version(), 3);
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

    fn grn(s: &str) -> Grn {
        Grn::parse(s).expect("valid GRN")
    }

    fn day(s: &str) -> NaiveDate {
        s.parse().expect("valid date")
    }

    #[test]
    fn pilot_contracts() {
        let r = ReferenceData::pilot();
        assert_eq!(r.insurers().count(), 3);
        assert_eq!(r.contracts().count(), 6);
        let today = day("2026-11-21");
        // One large active contract per country's holder.
        for (g, holder) in [
            ("26KZ0001010000017", "KZ123456789012"),
            ("26AZ000101CG00010", "AZ1234567890"),
            ("26GE000201CG00014", "GE123456789"),
        ] {
            let c = r
                .guarantee_cover(&grn(g), holder, "USD", today)
                .expect("pilot contract usable");
            assert!(c.insured_amount >= Decimal::from(100_000_000), "{g}");
            assert!(r.insurer(&c.insurer).is_some());
        }
        let small = r
            .guarantee_cover(&grn("26KZ000101CG00029"), "KZ555000111222", "USD", today)
            .expect("small contract usable");
        assert_eq!(small.insured_amount, Decimal::from(30_000));
    }

    #[test]
    fn each_refusal_reason() {
        let r = ReferenceData::pilot();
        let today = day("2026-11-21");
        let why = |g: &str, holder: &str, currency: &str, on: NaiveDate| {
            r.guarantee_cover(&grn(g), holder, currency, on)
                .err()
                .map(|(w, _)| w)
        };
        assert_eq!(
            why("26KZ000101CG00056", "KZ555000111222", "USD", today),
            Some(GuaranteeRefusal::UnknownGrn)
        );
        assert_eq!(
            why("26KZ000101CG00038", "KZ555000111222", "USD", today),
            Some(GuaranteeRefusal::Expired)
        );
        // The same contract on a day of its policy period.
        assert_eq!(
            why(
                "26KZ000101CG00038",
                "KZ555000111222",
                "USD",
                day("2025-06-01")
            ),
            None
        );
        assert_eq!(
            why("26KZ000101CG00047", "KZ555000111222", "USD", today),
            Some(GuaranteeRefusal::Suspended)
        );
        assert_eq!(
            why("26KZ0001010000017", "AZ1234567890", "USD", today),
            Some(GuaranteeRefusal::HolderNotCovered)
        );
        assert_eq!(
            why("26KZ0001010000017", "KZ123456789012", "EUR", today),
            Some(GuaranteeRefusal::CurrencyMismatch)
        );
        assert_eq!(
            why(
                "26KZ0001010000017",
                "KZ123456789012",
                "USD",
                day("2031-01-01")
            ),
            Some(GuaranteeRefusal::Expired)
        );
    }

    #[test]
    fn refusal_reasons_agree_with_cats004_and_the_cd205c_schema() {
        let lists = crate::codelists::CodeLists::embedded();
        for r in GuaranteeRefusal::ALL {
            assert!(lists.contains("CATS004", r.cats004()), "{r}");
            // What the hub sends in a CD205C comes back to the same CATS004 code.
            assert_eq!(GuaranteeRefusal::cats004_of_cd205c(r.cd205c()), r.cats004());
        }
        // Every word the schema has is produced by one refusal.
        for w in [
            GuaranteeRefusalReasonCode::UnknownGrn,
            GuaranteeRefusalReasonCode::Expired,
            GuaranteeRefusalReasonCode::Suspended,
            GuaranteeRefusalReasonCode::HolderNotCovered,
            GuaranteeRefusalReasonCode::InsufficientBalance,
        ] {
            assert!(
                GuaranteeRefusal::ALL.iter().any(|r| r.cd205c() == Some(w)),
                "{w:?}"
            );
        }
    }

    #[test]
    fn converts_at_the_rate_of_the_day_rounding_up() {
        let r = ReferenceData::pilot();
        let d = day("2026-11-21");
        let same = r
            .convert(Decimal::new(10_000, 2), "USD", "USD", d)
            .expect("same");
        assert_eq!(
            (same.amount, same.rate),
            (Decimal::new(10_000, 2), Decimal::ONE)
        );
        // 1,000,000.00 KZT at 480.50 KZT/USD: cross 0.002081165 (9 places, half away from
        // zero), 2081.165 rounded up to 2081.17.
        let kzt = r
            .convert(Decimal::new(100_000_000, 2), "KZT", "USD", d)
            .expect("KZT");
        assert_eq!(kzt.rate.to_string(), "0.002081165");
        assert_eq!(kzt.amount.to_string(), "2081.17");
        // EUR to USD at 0.92 EUR/USD: cross 1.086956522, 100.00 EUR is 108.6956522 → 108.70.
        let eur = r
            .convert(Decimal::new(10_000, 2), "EUR", "USD", d)
            .expect("EUR");
        assert_eq!(eur.rate.to_string(), "1.086956522");
        assert_eq!(eur.amount.to_string(), "108.70");
        // Before the table's first day, and a currency with no rate.
        assert_eq!(
            r.convert(Decimal::ONE, "EUR", "USD", day("2020-01-01")),
            Err(ConversionError::UnknownCurrency {
                currency: "EUR".into(),
                day: day("2020-01-01")
            })
        );
        let e = r.convert(Decimal::ONE, "CHF", "USD", d).expect_err("CHF");
        assert!(
            e.to_string().starts_with("guarantee.unknown-currency"),
            "{e}"
        );
        assert_eq!(r.exchange_rates().count(), 5);
    }

    #[test]
    fn a_later_rate_replaces_an_earlier_one_from_its_day() {
        let json = br#"{"version":1,"countries":[],"offices":[],"exchange_rates":[
            {"currency":"USD","rate":"1","valid_from":"2026-01-01"},
            {"currency":"GEL","rate":"2.70","valid_from":"2026-01-01"},
            {"currency":"GEL","rate":"2.75","valid_from":"2026-07-01"}]}"#;
        let r = ReferenceData::from_json(json).expect("rates");
        assert_eq!(
            r.rate_on("GEL", day("2026-06-30")),
            Some(Decimal::new(270, 2))
        );
        assert_eq!(
            r.rate_on("GEL", day("2026-07-01")),
            Some(Decimal::new(275, 2))
        );
        assert_eq!(r.rate_on("GEL", day("2025-12-31")), None);
        for (bad, why) in [
            (
                r#"{"currency":"GEL","rate":"0","valid_from":"2026-01-01"}"#,
                "not positive",
            ),
            (
                r#"{"currency":"GEL","rate":"-2.7","valid_from":"2026-01-01"}"#,
                "not positive",
            ),
            (
                r#"{"currency":"XQQ","rate":"2.7","valid_from":"2026-01-01"}"#,
                "ISO 4217",
            ),
            (
                r#"{"currency":"USD","rate":"1.1","valid_from":"2026-01-01"}"#,
                "base",
            ),
            (
                r#"{"currency":"GEL","rate":"2.7","valid_from":"2026-01-01"},{"currency":"GEL","rate":"2.8","valid_from":"2026-01-01"}"#,
                "two rates",
            ),
        ] {
            let json =
                format!(r#"{{"version":1,"countries":[],"offices":[],"exchange_rates":[{bad}]}}"#);
            let e = ReferenceData::from_json(json.as_bytes()).expect_err(bad);
            assert_eq!(e.code(), "reference.exchange-rate", "{bad}");
            assert!(e.to_string().contains(why), "{e}");
        }
    }

    fn with_contracts(contracts: &str) -> Result<ReferenceData, ReferenceError> {
        let json = format!(
            r#"{{"version":1,"countries":[{{"code":"KZ","currency":"KZT","time_zone":"Asia/Almaty",
            "names":{{"en":"a","ru":"a","kk":"a","az":"a","ka":"a"}}}}],"offices":[],
            "insurers":[{{"tin":"KZ990140000123","name":"i","country":"KZ"}}],
            "insurance_contracts":[{contracts}]}}"#
        );
        ReferenceData::from_json(json.as_bytes())
    }

    fn contract(id: &str, from: &str, until: &str, amount: &str, currency: &str) -> String {
        format!(
            r#"{{"contract_id":"{id}","grn":"26KZ0001010000017","insurer":"KZ990140000123",
            "holders":["KZ123456789012"],"valid_from":"{from}","valid_until":"{until}",
            "insured_amount":"{amount}","currency":"{currency}","status":"active"}}"#
        )
    }

    #[test]
    fn refuses_bad_contracts() {
        let ok = contract("A", "2026-01-01", "2026-12-31", "10.00", "USD");
        let next = contract("B", "2027-01-01", "2027-12-31", "10.00", "USD");
        let r = with_contracts(&format!("{ok},{next}")).expect("two periods, one GRN");
        let g = grn("26KZ0001010000017");
        assert_eq!(
            r.contract_on(&g, day("2027-03-01"))
                .map(|c| c.contract_id.as_str()),
            Some("B")
        );
        assert_eq!(
            r.contract_on(&g, day("2026-03-01"))
                .map(|c| c.contract_id.as_str()),
            Some("A")
        );
        let cases = [
            (
                format!(
                    "{ok},{}",
                    contract("B", "2026-12-31", "2027-12-31", "1", "USD")
                ),
                "reference.contract-overlap",
            ),
            (format!("{ok},{ok}"), "reference.duplicate-contract"),
            (
                contract("C", "2026-01-01", "2026-12-31", "0", "USD"),
                "reference.contract",
            ),
            (
                contract("C", "2026-01-01", "2026-12-31", "-5.00", "USD"),
                "reference.contract",
            ),
            (
                contract("C", "2026-01-01", "2026-12-31", "5.00", "XXX"),
                "reference.contract",
            ),
            (
                contract("C", "2026-12-31", "2026-01-01", "5.00", "USD"),
                "reference.contract",
            ),
            (
                contract("C", "2026-01-01", "2026-12-31", "5.00", "USD")
                    .replace("KZ990140000123", "KZ000000000000"),
                "reference.contract",
            ),
            (
                contract("C", "2026-01-01", "2026-12-31", "5.00", "USD")
                    .replace("26KZ0001010000017", "26KZ0001010000018"),
                "reference.syntax",
            ),
        ];
        for (json, code) in cases {
            let e = with_contracts(&json).expect_err(&json);
            assert_eq!(e.code(), code, "{json}: {e}");
        }
    }

    #[test]
    fn registers_and_restricted_goods() {
        let r = ReferenceData::pilot();
        let today = day("2026-11-21");
        assert!(r.is_aeo("KZ123456789012", today));
        assert!(
            !r.is_aeo("KZ987654321098", today),
            "an authorised trader, not an AEO"
        );
        assert!(
            !r.is_aeo("KZ123456789012", day("2031-01-01")),
            "validity ended"
        );
        assert!(r.withdrawn_registration("KZ123456789012").is_none());
        assert_eq!(
            r.restriction("930190").map(|g| g.condition),
            Some(Restriction::Prohibited)
        );
        assert_eq!(r.restriction("930320"), None);
        // The set goes back to lists and reads again unchanged.
        let again = ReferenceData::from_set(r.to_set()).expect("round trip");
        assert_eq!(again, r);
        let mut suspended = r.to_set();
        for t in &mut suspended.traders {
            if t.tin.as_str() == "KZ123456789012" {
                t.status = TraderStatus::Suspended;
            }
        }
        let s = ReferenceData::from_set(suspended).expect("valid");
        assert!(!s.is_aeo("KZ123456789012", today));
        assert_eq!(
            s.withdrawn_registration("KZ123456789012").map(|t| t.status),
            Some(TraderStatus::Suspended)
        );
    }

    #[test]
    fn refuses_bad_registers() {
        let base = ReferenceData::pilot().to_set();
        let mut unknown_country = base.clone();
        unknown_country.traders[0].country = CountryCode::parse("TR").expect("code");
        let mut twice = base.clone();
        twice.traders.push(base.traders[0].clone());
        let mut period = base.clone();
        period.traders[0].valid_until = Some(day("2025-01-01"));
        let mut prefix = base.clone();
        prefix.restricted_goods[0].hs_prefix = "93A".into();
        for (set, code) in [
            (unknown_country, "reference.unknown-country"),
            (twice, "reference.duplicate-trader"),
            (period, "reference.trader"),
            (prefix, "reference.restricted-goods"),
        ] {
            let e = ReferenceData::from_set(set).expect_err(code);
            assert_eq!(e.code(), code, "{e}");
        }
    }
}
