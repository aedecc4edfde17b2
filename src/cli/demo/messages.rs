//! The P5 messages the national systems send in the demo and the journeys: a CC015C built from a
//! [`Consignment`] (route, holder, guarantee, goods), and the CC013C amendment, CC014C
//! invalidation request and CC007C arrival notification that follow it.
//!
//! Every message is written out as text (what a national system sends) and checked by the
//! unit tests below against the catalogue's strict decoder and rules, so the demo never drives a
//! node with a message the node would have to refuse unless the case asks for it.

use chrono::{DateTime, Utc};
use std::fmt::Write as _;

/// A route through the pilot offices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The office of departure.
    pub departure: &'static str,
    /// The offices of exit for transit, in order.
    pub exits: Vec<&'static str>,
    /// The offices of transit (entry), in order.
    pub transits: Vec<&'static str>,
    /// The office of destination.
    pub destination: &'static str,
}

impl Route {
    /// Aktau → exit Aktau → entry Alat → exit Red Bridge (AZ) → entry Red Bridge (GE) → Poti.
    pub fn pilot() -> Route {
        Route {
            departure: "KZ000101",
            exits: vec!["KZ000101", "AZ000201"],
            transits: vec!["AZ000101", "GE000101"],
            destination: "GE000201",
        }
    }

    /// The routes the load run draws from: the pilot journey and shorter ones among the three
    /// countries.
    pub fn all() -> Vec<Route> {
        vec![
            Route::pilot(),
            // Aktau → exit Aktau → Alat (destination).
            Route {
                departure: "KZ000101",
                exits: vec!["KZ000101"],
                transits: vec![],
                destination: "AZ000101",
            },
            // Alat → exit Red Bridge (AZ) → entry Red Bridge (GE) → Tbilisi.
            Route {
                departure: "AZ000101",
                exits: vec!["AZ000201"],
                transits: vec!["GE000101"],
                destination: "GE000301",
            },
            // Poti → entry Alat → Almaty.
            Route {
                departure: "GE000201",
                exits: vec![],
                transits: vec!["AZ000101"],
                destination: "KZ000102",
            },
            // Tbilisi → Poti (one country).
            Route {
                departure: "GE000301",
                exits: vec![],
                transits: vec![],
                destination: "GE000201",
            },
        ]
    }

    /// Every office on the route with its role, in the order the goods meet them: departure,
    /// then exits and entries interleaved by country, then destination.
    pub fn stops(&self) -> Vec<(&'static str, &'static str)> {
        let mut stops = vec![(self.departure, "departure")];
        let mut border: Vec<(&'static str, &'static str)> = Vec::new();
        for c in self.countries() {
            for t in &self.transits {
                if country(t) == c {
                    border.push((t, "transit"));
                }
            }
            for e in &self.exits {
                if country(e) == c {
                    border.push((e, "exit"));
                }
            }
        }
        stops.extend(border);
        stops.push((self.destination, "destination"));
        stops
    }

    /// The countries crossed, in order, without repeats: the country of departure, the
    /// country of each office of transit (entry), the country of destination.
    pub fn countries(&self) -> Vec<&'static str> {
        let mut out: Vec<&'static str> = Vec::new();
        let offices = std::iter::once(&self.departure)
            .chain(self.transits.iter())
            .chain(std::iter::once(&self.destination));
        for &o in offices {
            let c = country(o);
            if !out.contains(&c) {
                out.push(c);
            }
        }
        out
    }
}

/// The country of an office reference (its first two letters).
pub fn country(office: &str) -> &str {
    office.get(..2).unwrap_or(office)
}

/// The holder of the transit procedure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// Its identification number (TIN).
    pub tin: String,
    /// Its name.
    pub name: String,
    /// Its country.
    pub country: String,
    /// Its city.
    pub city: String,
}

/// One guarantee reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuaranteeRef {
    /// The GRN.
    pub grn: String,
    /// The access code.
    pub access_code: String,
    /// The amount to be covered, as decimal text (`25000.00`).
    pub amount: String,
    /// Its currency.
    pub currency: String,
}

/// The goods of one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Goods {
    /// Description.
    pub description: String,
    /// HS sub-heading (6 digits).
    pub hs_code: String,
    /// Gross mass in kg, as decimal text.
    pub gross_mass: String,
    /// Net mass in kg, as decimal text.
    pub net_mass: String,
    /// Number of packages.
    pub packages: u32,
}

/// Everything a CC015C of the demo varies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consignment {
    /// The LRN.
    pub lrn: String,
    /// The route.
    pub route: Route,
    /// The holder.
    pub holder: Holder,
    /// The guarantee.
    pub guarantee: GuaranteeRef,
    /// The goods items (at least one).
    pub goods: Vec<Goods>,
}

fn xml_text(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn p5_time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S").to_string()
}

fn header(
    out: &mut String,
    root: &str,
    sender: &str,
    recipient: &str,
    id: &str,
    at: DateTime<Utc>,
) {
    let _ = write!(
        out,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ncts:{root} xmlns:ncts=\"http://ncts.dgtaxud.ec\">\n  \
         <messageSender>{sender}</messageSender>\n  <messageRecipient>{recipient}</messageRecipient>\n  \
         <preparationDateAndTime>{}</preparationDateAndTime>\n  \
         <messageIdentification>{id}</messageIdentification>\n  <messageType>{root}</messageType>\n",
        p5_time(at)
    );
}

/// Which identifier opens the TransitOperation of a declaration-shaped message.
enum Opening<'a> {
    Lrn(&'a str),
    Mrn(&'a str),
}

fn declaration(
    root: &str,
    c: &Consignment,
    opening: Opening<'_>,
    message_id: &str,
    at: DateTime<Utc>,
) -> String {
    let r = &c.route;
    let dep_country = country(r.departure);
    let mut x = String::with_capacity(6 * 1024);
    header(
        &mut x,
        root,
        &format!("{dep_country}.TRADER.0001"),
        &format!("NTA.{dep_country}"),
        message_id,
        at,
    );
    x.push_str("  <TransitOperation>\n");
    match opening {
        Opening::Lrn(lrn) => {
            let _ = writeln!(x, "    <LRN>{}</LRN>", xml_text(lrn));
        }
        Opening::Mrn(mrn) => {
            let _ = writeln!(x, "    <MRN>{mrn}</MRN>");
        }
    }
    x.push_str(
        "    <declarationType>T1</declarationType>\n    \
         <additionalDeclarationType>A</additionalDeclarationType>\n    \
         <security>1</security>\n    <reducedDatasetIndicator>0</reducedDatasetIndicator>\n    \
         <bindingItinerary>0</bindingItinerary>\n",
    );
    if matches!(opening, Opening::Mrn(_)) {
        x.push_str("    <amendmentTypeFlag>0</amendmentTypeFlag>\n");
    }
    x.push_str("  </TransitOperation>\n");
    let _ = write!(
        x,
        "  <Authorisation>\n    <sequenceNumber>1</sequenceNumber>\n    <type>C523</type>\n    \
         <referenceNumber>{dep_country}-AUTH-SEALS-0001</referenceNumber>\n  </Authorisation>\n  \
         <CustomsOfficeOfDeparture>\n    <referenceNumber>{}</referenceNumber>\n  \
         </CustomsOfficeOfDeparture>\n  <CustomsOfficeOfDestinationDeclared>\n    \
         <referenceNumber>{}</referenceNumber>\n  </CustomsOfficeOfDestinationDeclared>\n",
        r.departure, r.destination
    );
    for (i, t) in r.transits.iter().enumerate() {
        let eta = at + chrono::Duration::days(i as i64 + 1);
        let _ = write!(
            x,
            "  <CustomsOfficeOfTransitDeclared>\n    <sequenceNumber>{}</sequenceNumber>\n    \
             <referenceNumber>{t}</referenceNumber>\n    \
             <arrivalDateAndTimeEstimated>{}</arrivalDateAndTimeEstimated>\n  \
             </CustomsOfficeOfTransitDeclared>\n",
            i + 1,
            p5_time(eta)
        );
    }
    for (i, e) in r.exits.iter().enumerate() {
        let _ = write!(
            x,
            "  <CustomsOfficeOfExitForTransitDeclared>\n    <sequenceNumber>{}</sequenceNumber>\n    \
             <referenceNumber>{e}</referenceNumber>\n  </CustomsOfficeOfExitForTransitDeclared>\n",
            i + 1
        );
    }
    let h = &c.holder;
    let _ = write!(
        x,
        "  <HolderOfTheTransitProcedure>\n    <identificationNumber>{}</identificationNumber>\n    \
         <name>{}</name>\n    <Address>\n      <streetAndNumber>Port Road 1</streetAndNumber>\n      \
         <postcode>130000</postcode>\n      <city>{}</city>\n      <country>{}</country>\n    \
         </Address>\n  </HolderOfTheTransitProcedure>\n",
        h.tin,
        xml_text(&h.name),
        xml_text(&h.city),
        h.country
    );
    let g = &c.guarantee;
    let _ = write!(
        x,
        "  <Guarantee>\n    <sequenceNumber>1</sequenceNumber>\n    <guaranteeType>1</guaranteeType>\n    \
         <GuaranteeReference>\n      <sequenceNumber>1</sequenceNumber>\n      <GRN>{}</GRN>\n      \
         <accessCode>{}</accessCode>\n      <amountToBeCovered>{}</amountToBeCovered>\n      \
         <currency>{}</currency>\n    </GuaranteeReference>\n  </Guarantee>\n",
        g.grn, g.access_code, g.amount, g.currency
    );
    let total_mass = total_mass(&c.goods);
    let dest_country = country(r.destination);
    let _ = write!(
        x,
        "  <Consignment>\n    <countryOfDispatch>{dep_country}</countryOfDispatch>\n    \
         <countryOfDestination>{dest_country}</countryOfDestination>\n    \
         <containerIndicator>1</containerIndicator>\n    <inlandModeOfTransport>3</inlandModeOfTransport>\n    \
         <modeOfTransportAtTheBorder>1</modeOfTransportAtTheBorder>\n    <grossMass>{total_mass}</grossMass>\n    \
         <Consignor>\n      <identificationNumber>{}</identificationNumber>\n    </Consignor>\n    \
         <TransportEquipment>\n      <sequenceNumber>1</sequenceNumber>\n      \
         <containerIdentificationNumber>MSKU1234565</containerIdentificationNumber>\n      \
         <numberOfSeals>2</numberOfSeals>\n      <Seal>\n        <sequenceNumber>1</sequenceNumber>\n        \
         <identifier>{dep_country}SEAL0001</identifier>\n      </Seal>\n      <Seal>\n        \
         <sequenceNumber>2</sequenceNumber>\n        <identifier>{dep_country}SEAL0002</identifier>\n      \
         </Seal>\n",
        h.tin
    );
    for i in 1..=c.goods.len() {
        let _ = write!(
            x,
            "      <GoodsReference>\n        <sequenceNumber>{i}</sequenceNumber>\n        \
             <declarationGoodsItemNumber>{i}</declarationGoodsItemNumber>\n      </GoodsReference>\n"
        );
    }
    let border_office = r.exits.first().copied().unwrap_or(r.departure);
    let _ = write!(
        x,
        "    </TransportEquipment>\n    <LocationOfGoods>\n      <typeOfLocation>A</typeOfLocation>\n      \
         <qualifierOfIdentification>V</qualifierOfIdentification>\n      <CustomsOffice>\n        \
         <referenceNumber>{}</referenceNumber>\n      </CustomsOffice>\n    </LocationOfGoods>\n    \
         <DepartureTransportMeans>\n      <sequenceNumber>1</sequenceNumber>\n      \
         <typeOfIdentification>30</typeOfIdentification>\n      \
         <identificationNumber>123ABC01</identificationNumber>\n      <nationality>{dep_country}</nationality>\n    \
         </DepartureTransportMeans>\n",
        r.departure
    );
    for (i, c) in r.countries().iter().enumerate() {
        let _ = write!(
            x,
            "    <CountryOfRoutingOfConsignment>\n      <sequenceNumber>{}</sequenceNumber>\n      \
             <country>{c}</country>\n    </CountryOfRoutingOfConsignment>\n",
            i + 1
        );
    }
    let _ = write!(
        x,
        "    <ActiveBorderTransportMeans>\n      <sequenceNumber>1</sequenceNumber>\n      \
         <customsOfficeAtBorderReferenceNumber>{border_office}</customsOfficeAtBorderReferenceNumber>\n      \
         <typeOfIdentification>11</typeOfIdentification>\n      \
         <identificationNumber>PROFESSOR GUL</identificationNumber>\n      <nationality>AZ</nationality>\n    \
         </ActiveBorderTransportMeans>\n    <PlaceOfLoading>\n      <UNLocode>{}</UNLocode>\n    \
         </PlaceOfLoading>\n    <PlaceOfUnloading>\n      <UNLocode>{}</UNLocode>\n    </PlaceOfUnloading>\n    \
         <TransportDocument>\n      <sequenceNumber>1</sequenceNumber>\n      <type>N730</type>\n      \
         <referenceNumber>CMR-{}</referenceNumber>\n    </TransportDocument>\n    <HouseConsignment>\n      \
         <sequenceNumber>1</sequenceNumber>\n      <grossMass>{total_mass}</grossMass>\n",
        unlocode(r.departure),
        unlocode(r.destination),
        xml_text(&c.lrn)
    );
    for (i, g) in c.goods.iter().enumerate() {
        let n = i + 1;
        let _ = write!(
            x,
            "      <ConsignmentItem>\n        <goodsItemNumber>{n}</goodsItemNumber>\n        \
             <declarationGoodsItemNumber>{n}</declarationGoodsItemNumber>\n        <Commodity>\n          \
             <descriptionOfGoods>{}</descriptionOfGoods>\n          <CommodityCode>\n            \
             <harmonizedSystemSubHeadingCode>{}</harmonizedSystemSubHeadingCode>\n          \
             </CommodityCode>\n          <GoodsMeasure>\n            <grossMass>{}</grossMass>\n            \
             <netMass>{}</netMass>\n          </GoodsMeasure>\n        </Commodity>\n        <Packaging>\n          \
             <sequenceNumber>1</sequenceNumber>\n          <typeOfPackages>CT</typeOfPackages>\n          \
             <numberOfPackages>{}</numberOfPackages>\n          <shippingMarks>CATS/{n}</shippingMarks>\n        \
             </Packaging>\n      </ConsignmentItem>\n",
            xml_text(&g.description),
            g.hs_code,
            g.gross_mass,
            g.net_mass,
            g.packages
        );
    }
    let _ = write!(
        x,
        "    </HouseConsignment>\n  </Consignment>\n</ncts:{root}>\n"
    );
    x
}

/// The sum of the items' gross masses, as decimal text (integers in tenths, so no float).
fn total_mass(goods: &[Goods]) -> String {
    let tenths: u64 = goods.iter().map(|g| tenths(&g.gross_mass)).sum();
    if tenths.is_multiple_of(10) {
        format!("{}", tenths / 10)
    } else {
        format!("{}.{}", tenths / 10, tenths % 10)
    }
}

/// A mass with at most one decimal, in tenths; anything else counts as zero (the builders only
/// use masses from [`Goods`] values they made).
fn tenths(text: &str) -> u64 {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, "0"));
    let whole: u64 = whole.parse().unwrap_or(0);
    let fraction: u64 = fraction.get(..1).and_then(|f| f.parse().ok()).unwrap_or(0);
    whole * 10 + fraction
}

/// The UN/LOCODE of the place an office serves.
fn unlocode(office: &str) -> &'static str {
    match office {
        "KZ000101" => "KZAKT",
        "KZ000102" => "KZALA",
        "AZ000101" => "AZBAK",
        "AZ000201" => "AZAGS",
        "GE000101" => "GEKVA",
        "GE000201" => "GEPTI",
        _ => "GETBS",
    }
}

/// The declaration (CC015C) the holder's national system sends to the office of departure.
pub fn cc015c(c: &Consignment, message_id: &str, at: DateTime<Utc>) -> String {
    declaration("CC015C", c, Opening::Lrn(&c.lrn), message_id, at)
}

/// An amendment (CC013C) of the declaration of movement `mrn`, with the consignment as amended.
pub fn cc013c(c: &Consignment, mrn: &str, message_id: &str, at: DateTime<Utc>) -> String {
    declaration("CC013C", c, Opening::Mrn(mrn), message_id, at)
}

/// The holder's request to invalidate the declaration of movement `mrn` (CC014C).
pub fn cc014c(
    c: &Consignment,
    mrn: &str,
    justification: &str,
    message_id: &str,
    at: DateTime<Utc>,
) -> String {
    let dep_country = country(c.route.departure);
    let mut x = String::new();
    header(
        &mut x,
        "CC014C",
        &format!("{dep_country}.TRADER.0001"),
        &format!("NTA.{dep_country}"),
        message_id,
        at,
    );
    let _ = write!(
        x,
        "  <TransitOperation>\n    <MRN>{mrn}</MRN>\n  </TransitOperation>\n  <Invalidation>\n    \
         <requestDateAndTime>{}</requestDateAndTime>\n    <initiatedByCustoms>0</initiatedByCustoms>\n    \
         <justification>{}</justification>\n  </Invalidation>\n  <CustomsOfficeOfDeparture>\n    \
         <referenceNumber>{}</referenceNumber>\n  </CustomsOfficeOfDeparture>\n  \
         <HolderOfTheTransitProcedure>\n    <identificationNumber>{}</identificationNumber>\n  \
         </HolderOfTheTransitProcedure>\n</ncts:CC014C>\n",
        p5_time(at),
        xml_text(justification),
        c.route.departure,
        c.holder.tin
    );
    x
}

/// The arrival notification (CC007C) the trader at destination sends for movement `mrn`.
pub fn cc007c(
    mrn: &str,
    destination: &str,
    trader_tin: &str,
    message_id: &str,
    at: DateTime<Utc>,
) -> String {
    let dest_country = country(destination);
    let mut x = String::new();
    header(
        &mut x,
        "CC007C",
        &format!("{dest_country}.TRADER.0001"),
        &format!("NTA.{dest_country}"),
        message_id,
        at,
    );
    let _ = write!(
        x,
        "  <TransitOperation>\n    <MRN>{mrn}</MRN>\n    \
         <arrivalNotificationDateAndTime>{}</arrivalNotificationDateAndTime>\n    \
         <simplifiedProcedure>0</simplifiedProcedure>\n    <incidentFlag>0</incidentFlag>\n  \
         </TransitOperation>\n  <CustomsOfficeOfDestinationActual>\n    \
         <referenceNumber>{destination}</referenceNumber>\n  </CustomsOfficeOfDestinationActual>\n  \
         <TraderAtDestination>\n    <identificationNumber>{trader_tin}</identificationNumber>\n  \
         </TraderAtDestination>\n  <Consignment>\n    <LocationOfGoods>\n      \
         <typeOfLocation>A</typeOfLocation>\n      <qualifierOfIdentification>V</qualifierOfIdentification>\n      \
         <CustomsOffice>\n        <referenceNumber>{destination}</referenceNumber>\n      </CustomsOffice>\n    \
         </LocationOfGoods>\n  </Consignment>\n</ncts:CC007C>\n",
        p5_time(at)
    );
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use message_catalog::Limits;
    use message_catalog::rules::{Level, validate};

    fn consignment(route: Route) -> Consignment {
        Consignment {
            lrn: "DEMO-TEST-000001".into(),
            route,
            holder: Holder {
                tin: "KZ123456789012".into(),
                name: "Caspian Pipes & Co LLP".into(),
                country: "KZ".into(),
                city: "Aktau".into(),
            },
            guarantee: GuaranteeRef {
                grn: "26KZ0001010000017".into(),
                access_code: "1234".into(),
                amount: "25000.00".into(),
                currency: "EUR".into(),
            },
            goods: vec![
                Goods {
                    description: "Seamless steel pipes".into(),
                    hs_code: "730419".into(),
                    gross_mass: "1250.5".into(),
                    net_mass: "1200".into(),
                    packages: 10,
                },
                Goods {
                    description: "Valves".into(),
                    hs_code: "848180".into(),
                    gross_mass: "300".into(),
                    net_mass: "280".into(),
                    packages: 3,
                },
            ],
        }
    }

    fn valid(xml: &str) {
        if let Err(e) = validate(xml.as_bytes(), &Limits::default(), Level::Rules) {
            panic!("{xml}\nis refused: {e:?}");
        }
    }

    #[test]
    fn every_route_gives_a_valid_declaration_amendment_invalidation_and_arrival() {
        let at = Utc::now();
        for route in Route::all() {
            let c = consignment(route.clone());
            valid(&cc015c(&c, "DEMO-MSG-1", at));
            valid(&cc013c(&c, "26KZ000101000001J0", "DEMO-MSG-2", at));
            valid(&cc014c(
                &c,
                "26KZ000101000001J0",
                "wrong lorry",
                "DEMO-MSG-3",
                at,
            ));
            valid(&cc007c(
                "26KZ000101000001J0",
                route.destination,
                "GE987654321",
                "DEMO-MSG-4",
                at,
            ));
        }
    }

    #[test]
    fn the_pilot_route_meets_its_offices_in_travel_order() {
        let stops = Route::pilot().stops();
        assert_eq!(
            stops,
            vec![
                ("KZ000101", "departure"),
                ("KZ000101", "exit"),
                ("AZ000101", "transit"),
                ("AZ000201", "exit"),
                ("GE000101", "transit"),
                ("GE000201", "destination"),
            ]
        );
        assert_eq!(Route::pilot().countries(), vec!["KZ", "AZ", "GE"]);
    }

    #[test]
    fn masses_add_up_in_tenths() {
        let c = consignment(Route::pilot());
        assert_eq!(total_mass(&c.goods), "1550.5");
    }
}
