//! Changes to the reference data and the CA005C that carries them.
//!
//! A [`Change`] writes records (new or replacing the one with the same key) and removes keys,
//! section by section. [`ReferenceSet::apply`] makes the next version from one;
//! [`ReferenceSet::diff`] finds the change between two versions and [`ReferenceSet::audit`]
//! lists it record by record (old and new value), which is what the hub audits.
//!
//! An [`Update`] is a version of the reference data as it travels in a CA005C: either the
//! change from `previous` to `version` (a node applies it only to exactly `previous`), or,
//! with no `previous`, the whole set (a node replaces what it holds: the answer to a CA006C).
//! [`update_message`] and [`read_update`] convert between the two; the round trip is exact.
//!
//! Keys: a country by code, an office by reference number, a trader by `register:TIN`
//! (`aeo:KZ123456789012`), an insurer by TIN, a contract by contract id, restricted goods by HS
//! prefix.

use std::collections::BTreeMap;

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::*;
use crate::Message;
use crate::generated::admin::{
    CA005CType, CatsAdminMessageTypes, ContractHolderType, ContractStatusCode, CountryDataType,
    CustomsOfficeDataType, ExchangeRateType, OfficeNameType, OfficeRoleCode,
    ReferenceDataVersionType, ReferenceSectionCode, RegisteredContractType, RemovedEntryType,
    RestrictedGoodsType, RestrictionConditionCode, TraderDataType, TraderRoleCode,
    TraderStatusCode,
};

/// A section of the reference data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Section {
    /// Participating countries.
    Country,
    /// Customs offices.
    Office,
    /// AEOs and authorised traders.
    Trader,
    /// Approved insurers.
    Insurer,
    /// Insurance contracts.
    Contract,
    /// The restricted goods list.
    RestrictedGoods,
}

impl Section {
    /// Every section.
    pub const ALL: [Section; 6] = [
        Section::Country,
        Section::Office,
        Section::Trader,
        Section::Insurer,
        Section::Contract,
        Section::RestrictedGoods,
    ];

    /// `country`, `office`, `trader`, `insurer`, `contract`, `restricted-goods`.
    pub fn as_str(self) -> &'static str {
        match self {
            Section::Country => "country",
            Section::Office => "office",
            Section::Trader => "trader",
            Section::Insurer => "insurer",
            Section::Contract => "contract",
            Section::RestrictedGoods => "restricted-goods",
        }
    }

    /// Parses [`Section::as_str`].
    pub fn parse(s: &str) -> Option<Section> {
        Section::ALL.into_iter().find(|x| x.as_str() == s)
    }

    fn code(self) -> ReferenceSectionCode {
        match self {
            Section::Country => ReferenceSectionCode::Country,
            Section::Office => ReferenceSectionCode::Office,
            Section::Trader => ReferenceSectionCode::Trader,
            Section::Insurer => ReferenceSectionCode::Insurer,
            Section::Contract => ReferenceSectionCode::Contract,
            Section::RestrictedGoods => ReferenceSectionCode::RestrictedGoods,
        }
    }

    fn of_code(c: ReferenceSectionCode) -> Section {
        match c {
            ReferenceSectionCode::Country => Section::Country,
            ReferenceSectionCode::Office => Section::Office,
            ReferenceSectionCode::Trader => Section::Trader,
            ReferenceSectionCode::Insurer => Section::Insurer,
            ReferenceSectionCode::Contract => Section::Contract,
            ReferenceSectionCode::RestrictedGoods => Section::RestrictedGoods,
        }
    }

    /// The field of [`ReferenceSet`] (and of [`Change`]) that holds it.
    fn field(self) -> &'static str {
        match self {
            Section::Country => "countries",
            Section::Office => "offices",
            Section::Trader => "traders",
            Section::Insurer => "insurers",
            Section::Contract => "insurance_contracts",
            Section::RestrictedGoods => "restricted_goods",
        }
    }

    /// The key of a record of this section, in its JSON form.
    fn key(self, record: &Value) -> String {
        let text = |name: &str| record.get(name).and_then(Value::as_str).unwrap_or("");
        match self {
            Section::Country => text("code").to_owned(),
            Section::Office => text("reference_number").to_owned(),
            Section::Trader => format!("{}:{}", text("role"), text("tin")),
            Section::Insurer => text("tin").to_owned(),
            Section::Contract => text("contract_id").to_owned(),
            Section::RestrictedGoods => text("hs_prefix").to_owned(),
        }
    }
}

/// A key removed from a section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Removal {
    /// The section.
    pub section: Section,
    /// The key (see the module documentation).
    pub key: String,
}

/// Records written and keys removed, per section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Change {
    /// Countries written.
    pub countries: Vec<Country>,
    /// Offices written.
    pub offices: Vec<Office>,
    /// Insurers written.
    pub insurers: Vec<Insurer>,
    /// Contracts written.
    pub insurance_contracts: Vec<InsuranceContract>,
    /// Traders written.
    pub traders: Vec<Trader>,
    /// Restricted goods written.
    pub restricted_goods: Vec<RestrictedGoods>,
    /// Keys removed.
    pub removed: Vec<Removal>,
    /// The rate table, whole, when it changes (empty: unchanged).
    pub exchange_rates: Vec<ExchangeRate>,
}

impl Change {
    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.countries.is_empty()
            && self.offices.is_empty()
            && self.insurers.is_empty()
            && self.insurance_contracts.is_empty()
            && self.traders.is_empty()
            && self.restricted_goods.is_empty()
            && self.removed.is_empty()
            && self.exchange_rates.is_empty()
    }

    /// The whole of `set`, as records written.
    pub fn everything(set: &ReferenceSet) -> Change {
        Change {
            countries: set.countries.clone(),
            offices: set.offices.clone(),
            insurers: set.insurers.clone(),
            insurance_contracts: set.insurance_contracts.clone(),
            traders: set.traders.clone(),
            restricted_goods: set.restricted_goods.clone(),
            removed: Vec::new(),
            exchange_rates: set.exchange_rates.clone(),
        }
    }
}

/// One record changed between two versions, for the audit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    /// The section.
    pub section: Section,
    /// The record's key.
    pub key: String,
    /// Its value before (`None`: added).
    pub old: Option<Value>,
    /// Its value after (`None`: removed).
    pub new: Option<Value>,
}

fn sections(value: &Value) -> BTreeMap<Section, BTreeMap<String, Value>> {
    Section::ALL
        .into_iter()
        .map(|s| {
            let records = value
                .get(s.field())
                .and_then(Value::as_array)
                .map(|list| list.iter().map(|r| (s.key(r), r.clone())).collect())
                .unwrap_or_default();
            (s, records)
        })
        .collect()
}

fn to_value<T: Serialize>(t: &T) -> Result<Value, ReferenceError> {
    serde_json::to_value(t).map_err(|e| ReferenceError::Syntax(e.to_string()))
}

impl ReferenceSet {
    /// The set at `version` that `change` makes of this one, checked. Removing a key that is
    /// not there is an error (`reference.unknown-key`); so is anything
    /// [`ReferenceData::from_set`] refuses.
    pub fn apply(&self, change: &Change, version: u64) -> Result<ReferenceSet, ReferenceError> {
        let mut current = sections(&to_value(self)?);
        let written = sections(&to_value(change)?);
        for r in &change.removed {
            let known = current
                .get_mut(&r.section)
                .and_then(|records| records.remove(&r.key));
            if known.is_none() {
                return Err(ReferenceError::UnknownKey {
                    section: r.section.as_str(),
                    key: r.key.clone(),
                });
            }
        }
        for (section, records) in written {
            current.entry(section).or_default().extend(records);
        }
        // What is not a keyed section (the rate table) is kept, or replaced whole.
        let mut out = match to_value(self)? {
            Value::Object(m) => m,
            _ => serde_json::Map::new(),
        };
        out.insert("version".into(), Value::from(version));
        if !change.exchange_rates.is_empty() {
            out.insert("exchange_rates".into(), to_value(&change.exchange_rates)?);
        }
        for (section, records) in current {
            out.insert(
                section.field().into(),
                Value::Array(records.into_values().collect()),
            );
        }
        let set: ReferenceSet = serde_json::from_value(Value::Object(out))
            .map_err(|e| ReferenceError::Syntax(e.to_string()))?;
        // Checked, and in the canonical order.
        Ok(ReferenceData::from_set(set)?.to_set())
    }

    /// Every record that differs between this set and `newer`.
    pub fn audit(&self, newer: &ReferenceSet) -> Result<Vec<AuditEntry>, ReferenceError> {
        let old = sections(&to_value(self)?);
        let new = sections(&to_value(newer)?);
        let mut out = Vec::new();
        for section in Section::ALL {
            let empty = BTreeMap::new();
            let a = old.get(&section).unwrap_or(&empty);
            let b = new.get(&section).unwrap_or(&empty);
            for (key, before) in a {
                match b.get(key) {
                    None => out.push(AuditEntry {
                        section,
                        key: key.clone(),
                        old: Some(before.clone()),
                        new: None,
                    }),
                    Some(after) if after != before => out.push(AuditEntry {
                        section,
                        key: key.clone(),
                        old: Some(before.clone()),
                        new: Some(after.clone()),
                    }),
                    Some(_) => {}
                }
            }
            for (key, after) in b {
                if !a.contains_key(key) {
                    out.push(AuditEntry {
                        section,
                        key: key.clone(),
                        old: None,
                        new: Some(after.clone()),
                    });
                }
            }
        }
        Ok(out)
    }

    /// The change that makes `newer` of this set.
    pub fn diff(&self, newer: &ReferenceSet) -> Result<Change, ReferenceError> {
        let mut written: BTreeMap<Section, Vec<Value>> = BTreeMap::new();
        let mut removed = Vec::new();
        for e in self.audit(newer)? {
            match e.new {
                Some(v) => written.entry(e.section).or_default().push(v),
                None => removed.push(Removal {
                    section: e.section,
                    key: e.key,
                }),
            }
        }
        let mut out = serde_json::Map::new();
        for (section, records) in written {
            out.insert(section.field().into(), Value::Array(records));
        }
        let mut change: Change = serde_json::from_value(Value::Object(out))
            .map_err(|e| ReferenceError::Syntax(e.to_string()))?;
        change.removed = removed;
        if newer.exchange_rates != self.exchange_rates {
            change.exchange_rates = newer.exchange_rates.clone();
        }
        Ok(change)
    }
}

/// A version of the reference data as a CA005C carries it.
#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    /// The version it makes.
    pub version: u64,
    /// The version it applies to; `None`: `change` is the whole set.
    pub previous: Option<u64>,
    /// When the version took effect at the hub (UTC).
    pub effective: NaiveDateTime,
    /// The records.
    pub change: Change,
}

impl Update {
    /// The whole set at `set.version`.
    pub fn whole(set: &ReferenceSet, effective: NaiveDateTime) -> Update {
        Update {
            version: set.version,
            previous: None,
            effective,
            change: Change::everything(set),
        }
    }

    /// What the update makes of `held` (which must be at `previous` for a change), checked.
    pub fn applied_to(&self, held: &ReferenceSet) -> Result<ReferenceSet, ReferenceError> {
        match self.previous {
            None => {
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
                empty.apply(&self.change, self.version)
            }
            Some(p) if p == held.version => held.apply(&self.change, self.version),
            Some(p) => Err(ReferenceError::Message(format!(
                "the update makes version {} from version {p}, but the set held is version {}",
                self.version, held.version
            ))),
        }
    }
}

/// The header of a CA005C the hub sends.
#[derive(Debug, Clone)]
pub struct UpdateHeader {
    /// `messageSender` (the hub's address).
    pub sender: String,
    /// `messageRecipient` (`NTA.<country>`).
    pub recipient: String,
    /// `messageIdentification`.
    pub message_id: String,
    /// `preparationDateAndTime` (UTC, whole seconds).
    pub prepared_at: NaiveDateTime,
    /// `correlationIdentifier` (the CA006C answered).
    pub correlation: Option<String>,
}

fn seq(i: usize) -> i64 {
    i64::try_from(i + 1).unwrap_or(i64::MAX)
}

fn names_xml(n: &Names) -> Vec<OfficeNameType> {
    use crate::generated::admin::CatsLanguageCode as L;
    [
        (L::En, &n.en),
        (L::Ru, &n.ru),
        (L::Kk, &n.kk),
        (L::Az, &n.az),
        (L::Ka, &n.ka),
    ]
    .into_iter()
    .map(|(language, name)| OfficeNameType {
        language,
        name: name.clone(),
    })
    .collect()
}

fn names_of(list: &[OfficeNameType], what: &str) -> Result<Names, ReferenceError> {
    use crate::generated::admin::CatsLanguageCode as L;
    let get = |l: L| {
        list.iter()
            .find(|n| n.language == l)
            .map(|n| n.name.clone())
            .ok_or_else(|| ReferenceError::Message(format!("{what} has no name in {}", l.as_str())))
    };
    Ok(Names {
        en: get(L::En)?,
        ru: get(L::Ru)?,
        kk: get(L::Kk)?,
        az: get(L::Az)?,
        ka: get(L::Ka)?,
    })
}

fn role_code(r: Role) -> OfficeRoleCode {
    match r {
        Role::Departure => OfficeRoleCode::DEP,
        Role::Exit => OfficeRoleCode::EXT,
        Role::Transit => OfficeRoleCode::TRA,
        Role::Destination => OfficeRoleCode::DES,
    }
}

fn role_of(c: OfficeRoleCode) -> Role {
    match c {
        OfficeRoleCode::DEP => Role::Departure,
        OfficeRoleCode::EXT => Role::Exit,
        OfficeRoleCode::TRA | OfficeRoleCode::ENT => Role::Transit,
        OfficeRoleCode::DES => Role::Destination,
    }
}

fn status_code(s: TraderStatus) -> TraderStatusCode {
    match s {
        TraderStatus::Active => TraderStatusCode::Active,
        TraderStatus::Suspended => TraderStatusCode::Suspended,
        TraderStatus::Revoked => TraderStatusCode::Revoked,
    }
}

fn status_of(c: TraderStatusCode) -> TraderStatus {
    match c {
        TraderStatusCode::Active => TraderStatus::Active,
        TraderStatusCode::Suspended => TraderStatus::Suspended,
        TraderStatusCode::Revoked => TraderStatus::Revoked,
    }
}

fn condition_code(r: Restriction) -> RestrictionConditionCode {
    match r {
        Restriction::Prohibited => RestrictionConditionCode::Prohibited,
        Restriction::LicenceRequired => RestrictionConditionCode::LicenceRequired,
        Restriction::AlwaysInspect => RestrictionConditionCode::AlwaysInspect,
    }
}

fn condition_of(c: RestrictionConditionCode) -> Restriction {
    match c {
        RestrictionConditionCode::Prohibited => Restriction::Prohibited,
        RestrictionConditionCode::LicenceRequired => Restriction::LicenceRequired,
        RestrictionConditionCode::AlwaysInspect => Restriction::AlwaysInspect,
    }
}

fn bad(what: String) -> ReferenceError {
    ReferenceError::Message(what)
}

fn country(text: &str) -> Result<CountryCode, ReferenceError> {
    CountryCode::parse(text).map_err(|e| bad(format!("country {text:?}: {e}")))
}

fn tin(text: &str) -> Result<Tin, ReferenceError> {
    Tin::parse(text).map_err(|e| bad(format!("identification number {text:?}: {e}")))
}

fn version_number(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The CA005C carrying `update`.
pub fn update_message(header: &UpdateHeader, update: &Update) -> Message {
    let c = &update.change;
    let mut traders: Vec<TraderDataType> = c
        .traders
        .iter()
        .map(|t| TraderDataType {
            sequence_number: 0,
            role: match t.role {
                TraderRole::Aeo => TraderRoleCode::AEO,
                TraderRole::AuthorisedTrader => TraderRoleCode::AuthorisedTrader,
            },
            identification_number: t.tin.as_str().to_owned(),
            name: t.name.clone(),
            country: t.country.to_string(),
            status: status_code(t.status),
            validity_start_date: Some(t.valid_from),
            validity_end_date: t.valid_until,
        })
        .collect();
    traders.extend(c.insurers.iter().map(|i| TraderDataType {
        sequence_number: 0,
        role: TraderRoleCode::Insurer,
        identification_number: i.tin.as_str().to_owned(),
        name: i.name.clone(),
        country: i.country.to_string(),
        status: status_code(i.status),
        validity_start_date: None,
        validity_end_date: None,
    }));
    for (i, t) in traders.iter_mut().enumerate() {
        t.sequence_number = seq(i);
    }
    Message::CA005C(Box::new(CA005CType {
        message_sender: header.sender.clone(),
        message_recipient: header.recipient.clone(),
        preparation_date_and_time: header.prepared_at,
        message_identification: header.message_id.clone(),
        message_type: CatsAdminMessageTypes::CA005C,
        correlation_identifier: header.correlation.clone(),
        reference_data: ReferenceDataVersionType {
            version_number: version_number(update.version),
            effective_date_and_time: update.effective,
            previous_version_number: update.previous.map(version_number),
        },
        customs_office: c
            .offices
            .iter()
            .enumerate()
            .map(|(i, o)| CustomsOfficeDataType {
                sequence_number: seq(i),
                reference_number: o.reference_number.to_string(),
                country_code: o.country.to_string(),
                role: o.roles.iter().map(|r| role_code(*r)).collect(),
                name: names_xml(&o.names),
                time_zone: o.time_zone.clone(),
                latitude: o.coordinates.map(|c| format!("{:.6}", c.latitude)),
                longitude: o.coordinates.map(|c| format!("{:.6}", c.longitude)),
            })
            .collect(),
        restricted_goods: c
            .restricted_goods
            .iter()
            .enumerate()
            .map(|(i, g)| RestrictedGoodsType {
                sequence_number: seq(i),
                hs_code_prefix: g.hs_prefix.clone(),
                condition: condition_code(g.condition),
            })
            .collect(),
        exchange_rate: c
            .exchange_rates
            .iter()
            .enumerate()
            .map(|(i, r)| ExchangeRateType {
                sequence_number: seq(i),
                currency: r.currency.clone(),
                rate: r.rate,
                valid_from: r.valid_from,
            })
            .collect(),
        country: c
            .countries
            .iter()
            .enumerate()
            .map(|(i, k)| CountryDataType {
                sequence_number: seq(i),
                country_code: k.code.to_string(),
                currency: k.currency.clone(),
                time_zone: k.time_zone.clone(),
                name: names_xml(&k.names),
            })
            .collect(),
        trader: traders,
        insurance_contract: c
            .insurance_contracts
            .iter()
            .enumerate()
            .map(|(i, k)| RegisteredContractType {
                sequence_number: seq(i),
                contract_identifier: k.contract_id.clone(),
                grn: k.grn.as_str().to_owned(),
                insurer_identification_number: k.insurer.as_str().to_owned(),
                holder: k
                    .holders
                    .iter()
                    .enumerate()
                    .map(|(j, h)| ContractHolderType {
                        sequence_number: seq(j),
                        identification_number: h.as_str().to_owned(),
                    })
                    .collect(),
                policy_start_date: k.valid_from,
                policy_end_date: k.valid_until,
                insured_amount: k.insured_amount,
                currency: k.currency.clone(),
                status: match k.status {
                    ContractStatus::Active => ContractStatusCode::Approved,
                    ContractStatus::Suspended => ContractStatusCode::Suspended,
                    ContractStatus::Expired => ContractStatusCode::Expired,
                },
            })
            .collect(),
        removed: c
            .removed
            .iter()
            .enumerate()
            .map(|(i, r)| RemovedEntryType {
                sequence_number: seq(i),
                section: r.section.code(),
                key: r.key.clone(),
            })
            .collect(),
    }))
}

/// The update a CA005C carries (its records read into the model; whether they make a valid
/// set is [`Update::applied_to`]'s to say).
pub fn read_update(m: &CA005CType) -> Result<Update, ReferenceError> {
    let version =
        |v: i64| u64::try_from(v).map_err(|_| bad(format!("version {v} is not a version number")));
    let mut change = Change::default();
    for k in &m.country {
        change.countries.push(Country {
            code: country(&k.country_code)?,
            currency: k.currency.clone(),
            time_zone: k.time_zone.clone(),
            names: names_of(&k.name, &format!("country {}", k.country_code))?,
        });
    }
    for o in &m.customs_office {
        let reference = CustomsOfficeRef::parse(&o.reference_number)
            .map_err(|e| bad(format!("office {:?}: {e}", o.reference_number)))?;
        let coordinates = match (&o.latitude, &o.longitude) {
            (Some(a), Some(b)) => Some(Coordinates {
                latitude: a
                    .parse()
                    .map_err(|_| bad(format!("office {reference}: latitude {a:?}")))?,
                longitude: b
                    .parse()
                    .map_err(|_| bad(format!("office {reference}: longitude {b:?}")))?,
            }),
            (None, None) => None,
            _ => {
                return Err(bad(format!(
                    "office {reference} has only one of latitude and longitude"
                )));
            }
        };
        change.offices.push(Office {
            reference_number: reference,
            country: country(&o.country_code)?,
            roles: o.role.iter().map(|r| role_of(*r)).collect(),
            names: names_of(&o.name, &format!("office {reference}"))?,
            time_zone: o.time_zone.clone(),
            coordinates,
        });
    }
    for t in &m.trader {
        let id = tin(&t.identification_number)?;
        let role = match t.role {
            TraderRoleCode::AEO => TraderRole::Aeo,
            TraderRoleCode::AuthorisedTrader => TraderRole::AuthorisedTrader,
            TraderRoleCode::Insurer => {
                change.insurers.push(Insurer {
                    tin: id,
                    name: t.name.clone(),
                    country: country(&t.country)?,
                    status: status_of(t.status),
                });
                continue;
            }
        };
        let Some(valid_from) = t.validity_start_date else {
            return Err(bad(format!(
                "{} {id} has no validityStartDate",
                role.as_str()
            )));
        };
        change.traders.push(Trader {
            role,
            tin: id,
            name: t.name.clone(),
            country: country(&t.country)?,
            status: status_of(t.status),
            valid_from,
            valid_until: t.validity_end_date,
        });
    }
    for k in &m.insurance_contract {
        let grn = Grn::parse(&k.grn).map_err(|e| bad(format!("GRN {:?}: {e}", k.grn)))?;
        let status = match k.status {
            ContractStatusCode::Approved => ContractStatus::Active,
            ContractStatusCode::Suspended => ContractStatus::Suspended,
            ContractStatusCode::Expired => ContractStatus::Expired,
            ContractStatusCode::Refused => {
                return Err(bad(format!(
                    "contract {} is refused: a refused contract is not reference data",
                    k.contract_identifier
                )));
            }
        };
        change.insurance_contracts.push(InsuranceContract {
            contract_id: k.contract_identifier.clone(),
            grn,
            insurer: tin(&k.insurer_identification_number)?,
            holders: k
                .holder
                .iter()
                .map(|h| tin(&h.identification_number))
                .collect::<Result<_, _>>()?,
            valid_from: k.policy_start_date,
            valid_until: k.policy_end_date,
            insured_amount: k.insured_amount,
            currency: k.currency.clone(),
            status,
        });
    }
    for g in &m.restricted_goods {
        change.restricted_goods.push(RestrictedGoods {
            hs_prefix: g.hs_code_prefix.clone(),
            condition: condition_of(g.condition),
        });
    }
    for r in &m.exchange_rate {
        change.exchange_rates.push(ExchangeRate {
            currency: r.currency.clone(),
            rate: r.rate,
            valid_from: r.valid_from,
        });
    }
    for r in &m.removed {
        change.removed.push(Removal {
            section: Section::of_code(r.section),
            key: r.key.clone(),
        });
    }
    Ok(Update {
        version: version(m.reference_data.version_number)?,
        previous: m
            .reference_data
            .previous_version_number
            .map(version)
            .transpose()?,
        effective: m.reference_data.effective_date_and_time,
        change,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{Limits, decode, encode};

    fn header() -> UpdateHeader {
        UpdateHeader {
            sender: "CATS.HUB".into(),
            recipient: "NTA.GE".into(),
            message_id: "HUB-REF-1".into(),
            prepared_at: "2026-11-21T10:00:00".parse().expect("time"),
            correlation: None,
        }
    }

    fn through_xml(update: &Update) -> Update {
        let bytes = encode(&update_message(&header(), update));
        match decode(&bytes, &Limits::default()) {
            Ok(Message::CA005C(m)) => read_update(&m).expect("reads back"),
            other => panic!("not a CA005C: {other:?}"),
        }
    }

    #[test]
    fn the_whole_set_round_trips_through_a_ca005c() {
        let set = ReferenceData::pilot().to_set();
        let whole = Update::whole(&set, header().prepared_at);
        let back = through_xml(&whole);
        assert_eq!(back, whole);
        let made = back.applied_to(&set).expect("applies");
        assert_eq!(made, set);
    }

    #[test]
    fn a_change_applies_only_to_its_previous_version() {
        let set = ReferenceData::pilot().to_set();
        let mut newer = set.clone();
        newer.version = set.version + 1;
        newer.traders[0].status = TraderStatus::Suspended;
        newer
            .offices
            .retain(|o| o.reference_number.as_str() != "GE000301");
        let change = set.diff(&newer).expect("diff");
        assert_eq!(change.traders.len(), 1);
        assert_eq!(change.removed.len(), 1);
        let audit = set.audit(&newer).expect("audit");
        assert_eq!(audit.len(), 2);
        let update = Update {
            version: newer.version,
            previous: Some(set.version),
            effective: header().prepared_at,
            change,
        };
        let back = through_xml(&update);
        assert_eq!(back, update);
        assert_eq!(back.applied_to(&set).expect("applies"), newer);
        let e = back
            .applied_to(&newer)
            .expect_err("not its previous version");
        assert_eq!(e.code(), "reference.message");
    }

    #[test]
    fn removing_an_unknown_key_is_refused() {
        let set = ReferenceData::pilot().to_set();
        let change = Change {
            removed: vec![Removal {
                section: Section::Office,
                key: "KZ999999".into(),
            }],
            ..Change::default()
        };
        let e = set.apply(&change, 9).expect_err("unknown office");
        assert_eq!(e.code(), "reference.unknown-key");
    }
}
