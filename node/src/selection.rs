//! Selection for control: rules, country profiles, then deterministic random sampling.
//!
//! [`Selector::select`] is a pure function of the configuration and the [`Facts`] of a
//! movement at one office: the same facts and seed always give the same answer, with the reason
//! the national API shows. In order, the first that applies decides:
//!
//! 1. a country **profile** from the configuration (office, role, holder, HS code prefix; every
//!    criterion given must match);
//! 2. **restricted goods**: an HS code starting with a configured prefix, or one the CATS
//!    restricted goods list (reference data) marks licence required or always inspect;
//! 3. **declared gross mass** above the configured maximum;
//! 4. **declared value** (the guarantee amounts to be covered) above the configured maximum;
//! 5. **route**: an office on the route that is on the configured watch list;
//! 6. **holder not AEO**, when that rule is switched on;
//! 7. **random sampling**: SHA-256 of `seed | movement | office | role` read as a fraction of
//!    2^64, selected when below the rate for the holder (`aeo_rate` for AEOs, `rate` otherwise).
//!
//! Who is an AEO: the reference data's AEO register when the holder is on it (in force, or
//! suspended or revoked: then not an AEO, whatever the configuration says), else the
//! configured list.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// A country profile: every criterion given must match; at least one must be given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Profile {
    /// Its name (shown as the reason).
    pub name: String,
    /// Only at this office.
    pub office: Option<String>,
    /// Only in this role (`departure`, `exit`, `transit`, `destination`).
    pub role: Option<String>,
    /// Only for this holder TIN.
    pub holder: Option<String>,
    /// Only when an HS code starts with this.
    pub hs_prefix: Option<String>,
}

/// `[selection]`: the rules and the sampling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SelectionConfig {
    /// Seed of the random sampling.
    pub seed: u64,
    /// Sampling rate for holders that are not AEOs, 0.0 to 1.0.
    pub rate: f64,
    /// Sampling rate for AEOs, 0.0 to 1.0.
    pub aeo_rate: f64,
    /// TINs of authorised economic operators (until the reference data has the register).
    pub aeo: Vec<String>,
    /// Select every holder that is not an AEO.
    pub select_non_aeo: bool,
    /// HS code prefixes of restricted goods.
    pub restricted_hs_prefixes: Vec<String>,
    /// Largest declared gross mass (kg) not selected; empty for no limit.
    pub max_gross_mass: String,
    /// Largest declared value (sum of the amounts to be covered) not selected; empty for none.
    pub max_value: String,
    /// Offices whose presence on the route selects.
    pub watched_offices: Vec<String>,
    /// Country profiles.
    pub profiles: Vec<Profile>,
}

impl Default for SelectionConfig {
    fn default() -> Self {
        SelectionConfig {
            seed: 2026,
            rate: 0.0,
            aeo_rate: 0.0,
            aeo: Vec::new(),
            select_non_aeo: false,
            restricted_hs_prefixes: Vec::new(),
            max_gross_mass: String::new(),
            max_value: String::new(),
            watched_offices: Vec::new(),
            profiles: Vec::new(),
        }
    }
}

/// The configuration could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("selection.{key}: {problem}")]
pub struct SelectionConfigError {
    /// The key.
    pub key: &'static str,
    /// What is wrong.
    pub problem: String,
}

/// What selection looks at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// The movement (MRN, or the declaration key before one).
    pub movement: String,
    /// The office deciding.
    pub office: String,
    /// Its role name.
    pub role: String,
    /// The holder's TIN.
    pub holder: Option<String>,
    /// Every office on the route.
    pub route: Vec<String>,
    /// The HS codes declared.
    pub hs_codes: Vec<String>,
    /// The declared gross mass.
    pub gross_mass: Option<Decimal>,
    /// The declared value.
    pub value: Decimal,
    /// What the reference data says of the holder: `Some(true)` an AEO in force, `Some(false)`
    /// a registration suspended or revoked; `None`: not on its registers, the configured list
    /// decides.
    pub aeo: Option<bool>,
    /// Why the CATS restricted goods list selects the goods (licence required, always
    /// inspect), when it does.
    pub restricted: Option<String>,
}

/// The resolved selection rules.
#[derive(Debug, Clone)]
pub struct Selector {
    config: SelectionConfig,
    max_gross_mass: Option<Decimal>,
    max_value: Option<Decimal>,
}

/// The decision and its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Selected for control.
    pub selected: bool,
    /// Why.
    pub reason: String,
}

fn decimal(key: &'static str, text: &str) -> Result<Option<Decimal>, SelectionConfigError> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    text.trim()
        .parse::<Decimal>()
        .map(Some)
        .map_err(|e| SelectionConfigError {
            key,
            problem: format!("{text:?} is not a decimal: {e}"),
        })
}

impl Selector {
    /// Checks and resolves `config`.
    pub fn new(config: SelectionConfig) -> Result<Selector, SelectionConfigError> {
        for (key, rate) in [("rate", config.rate), ("aeo_rate", config.aeo_rate)] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(SelectionConfigError {
                    key,
                    problem: format!("{rate} is not between 0 and 1"),
                });
            }
        }
        for p in &config.profiles {
            if p.office.is_none() && p.role.is_none() && p.holder.is_none() && p.hs_prefix.is_none()
            {
                return Err(SelectionConfigError {
                    key: "profiles",
                    problem: format!("profile {:?} has no criterion", p.name),
                });
            }
        }
        Ok(Selector {
            max_gross_mass: decimal("max_gross_mass", &config.max_gross_mass)?,
            max_value: decimal("max_value", &config.max_value)?,
            config,
        })
    }

    /// Whether `holder` is an AEO.
    pub fn is_aeo(&self, holder: Option<&str>) -> bool {
        holder.is_some_and(|h| self.config.aeo.iter().any(|a| a == h))
    }

    /// Decides (see the module documentation).
    pub fn select(&self, f: &Facts) -> Verdict {
        let selected = |reason: String| Verdict {
            selected: true,
            reason,
        };
        for p in &self.config.profiles {
            let matches = p.office.as_ref().is_none_or(|o| *o == f.office)
                && p.role.as_ref().is_none_or(|r| *r == f.role)
                && p.holder
                    .as_ref()
                    .is_none_or(|h| f.holder.as_deref() == Some(h.as_str()))
                && p.hs_prefix
                    .as_ref()
                    .is_none_or(|x| f.hs_codes.iter().any(|c| c.starts_with(x.as_str())));
            if matches {
                return selected(format!("profile {}", p.name));
            }
        }
        for prefix in &self.config.restricted_hs_prefixes {
            if let Some(code) = f.hs_codes.iter().find(|c| c.starts_with(prefix.as_str())) {
                return selected(format!(
                    "restricted goods: HS code {code} (prefix {prefix})"
                ));
            }
        }
        if let Some(why) = &f.restricted {
            return selected(why.clone());
        }
        if let (Some(max), Some(mass)) = (self.max_gross_mass, f.gross_mass)
            && mass > max
        {
            return selected(format!("declared gross mass {mass} kg above {max} kg"));
        }
        if let Some(max) = self.max_value
            && f.value > max
        {
            return selected(format!("declared value {} above {max}", f.value));
        }
        if let Some(office) = f
            .route
            .iter()
            .find(|o| self.config.watched_offices.contains(o))
        {
            return selected(format!("route through watched office {office}"));
        }
        let aeo = f.aeo.unwrap_or_else(|| self.is_aeo(f.holder.as_deref()));
        if self.config.select_non_aeo && !aeo {
            return selected("holder is not an AEO".to_owned());
        }
        let rate = if aeo {
            self.config.aeo_rate
        } else {
            self.config.rate
        };
        let draw = self.draw(f);
        let who = if aeo { "AEO" } else { "non-AEO" };
        if draw < rate {
            selected(format!(
                "random sampling: drew {draw:.4} below the {who} rate {rate}"
            ))
        } else {
            Verdict {
                selected: false,
                reason: format!(
                    "no rule applies; random sampling drew {draw:.4}, {who} rate {rate}"
                ),
            }
        }
    }

    /// The deterministic draw in `[0, 1)` for these facts.
    fn draw(&self, f: &Facts) -> f64 {
        let text = format!(
            "{}|{}|{}|{}",
            self.config.seed, f.movement, f.office, f.role
        );
        let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(digest.as_ref().get(..8).unwrap_or(&[0u8; 8]));
        // 53 bits: exactly representable in an f64.
        (u64::from_be_bytes(first) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The text of every element named `name` in `xml` (HS codes, gross mass), in order. Never
/// fails: a document that does not parse gives what was read before the error.
pub fn element_texts(xml: &[u8], name: &str) -> Vec<String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut out = Vec::new();
    let mut inside = false;
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => inside = e.local_name().as_ref() == name.as_bytes(),
            Ok(Event::Text(t)) if inside => {
                if let Ok(text) = t.xml_content() {
                    out.push(text.trim().to_owned());
                }
                inside = false;
            }
            Ok(Event::End(_)) => inside = false,
            Ok(Event::Eof) | Err(_) => break,
            Ok(_) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts {
        Facts {
            movement: "26KZ000101000001J0".into(),
            office: "KZ000101".into(),
            role: "departure".into(),
            holder: Some("KZ123456789012".into()),
            route: vec!["KZ000101".into(), "AZ000101".into(), "GE000201".into()],
            hs_codes: vec!["870323".into()],
            gross_mass: Some(Decimal::new(12505, 1)),
            value: Decimal::new(12505, 1),
            ..Facts::default()
        }
    }

    #[test]
    fn the_reference_data_decides_who_is_an_aeo_and_restricted_goods() {
        let s = Selector::new(SelectionConfig {
            select_non_aeo: true,
            aeo: vec!["KZ123456789012".into()],
            ..SelectionConfig::default()
        })
        .expect("valid");
        assert!(!s.select(&facts()).selected, "on the configured list");
        // A registration suspended in the reference data wins over the configured list.
        let suspended = Facts {
            aeo: Some(false),
            ..facts()
        };
        let v = s.select(&suspended);
        assert_eq!(
            (v.selected, v.reason.as_str()),
            (true, "holder is not an AEO")
        );
        let registered = Facts {
            holder: Some("GE123456789".into()),
            aeo: Some(true),
            ..facts()
        };
        assert!(!s.select(&registered).selected);
        let restricted = Facts {
            restricted: Some(
                "restricted goods: HS code 240220 (always-inspect, prefix 2402)".into(),
            ),
            ..facts()
        };
        let v = s.select(&restricted);
        assert!(
            v.selected && v.reason.starts_with("restricted goods"),
            "{v:?}"
        );
    }

    #[test]
    fn defaults_select_nothing() {
        let s = Selector::new(SelectionConfig::default()).expect("valid");
        let v = s.select(&facts());
        assert!(!v.selected, "{v:?}");
        assert!(v.reason.starts_with("no rule applies"), "{}", v.reason);
    }

    #[test]
    fn each_rule_selects_with_its_reason() {
        let base = SelectionConfig::default();
        let cases: Vec<(SelectionConfig, &str)> = vec![
            (
                SelectionConfig {
                    restricted_hs_prefixes: vec!["8703".into()],
                    ..base.clone()
                },
                "restricted goods: HS code 870323 (prefix 8703)",
            ),
            (
                SelectionConfig {
                    max_gross_mass: "1000".into(),
                    ..base.clone()
                },
                "declared gross mass 1250.5 kg above 1000 kg",
            ),
            (
                SelectionConfig {
                    max_value: "1000".into(),
                    ..base.clone()
                },
                "declared value 1250.5 above 1000",
            ),
            (
                SelectionConfig {
                    watched_offices: vec!["AZ000101".into()],
                    ..base.clone()
                },
                "route through watched office AZ000101",
            ),
            (
                SelectionConfig {
                    select_non_aeo: true,
                    ..base.clone()
                },
                "holder is not an AEO",
            ),
            (
                SelectionConfig {
                    profiles: vec![Profile {
                        name: "cars-at-aktau".into(),
                        office: Some("KZ000101".into()),
                        hs_prefix: Some("87".into()),
                        ..Profile::default()
                    }],
                    ..base.clone()
                },
                "profile cars-at-aktau",
            ),
        ];
        for (config, reason) in cases {
            let v = Selector::new(config).expect("valid").select(&facts());
            assert_eq!(
                v,
                Verdict {
                    selected: true,
                    reason: reason.into()
                }
            );
        }
    }

    #[test]
    fn sampling_is_deterministic_and_follows_the_rate() {
        let s = Selector::new(SelectionConfig {
            rate: 0.3,
            aeo_rate: 0.0,
            aeo: vec!["KZ999999999999".into()],
            ..SelectionConfig::default()
        })
        .expect("valid");
        let mut selected = 0;
        let mut aeo_selected = 0;
        for i in 0..2000 {
            let mut f = facts();
            f.movement = format!("M{i}");
            let v = s.select(&f);
            assert_eq!(v, s.select(&f), "same facts, same verdict");
            if v.selected {
                selected += 1;
            }
            f.holder = Some("KZ999999999999".into());
            if s.select(&f).selected {
                aeo_selected += 1;
            }
        }
        assert!((500..700).contains(&selected), "{selected} of 2000 at 0.3");
        assert_eq!(aeo_selected, 0);
    }

    #[test]
    fn bad_configuration_is_refused() {
        let e = Selector::new(SelectionConfig {
            rate: 1.5,
            ..SelectionConfig::default()
        })
        .expect_err("rate above 1");
        assert_eq!(e.key, "rate");
        let e = Selector::new(SelectionConfig {
            max_value: "lots".into(),
            ..SelectionConfig::default()
        })
        .expect_err("not a decimal");
        assert_eq!(e.key, "max_value");
        let e = Selector::new(SelectionConfig {
            profiles: vec![Profile::default()],
            ..SelectionConfig::default()
        })
        .expect_err("empty profile");
        assert_eq!(e.key, "profiles");
    }

    #[test]
    fn reads_element_texts() {
        let xml = b"<a><Commodity><harmonizedSystemSubHeadingCode>870323</harmonizedSystemSubHeadingCode></Commodity><grossMass>12.5</grossMass><x><harmonizedSystemSubHeadingCode> 9301 </harmonizedSystemSubHeadingCode></x></a>";
        assert_eq!(
            element_texts(xml, "harmonizedSystemSubHeadingCode"),
            vec!["870323", "9301"]
        );
        assert_eq!(element_texts(xml, "grossMass"), vec!["12.5"]);
        assert!(element_texts(b"<a><b>", "b").is_empty());
    }
}
