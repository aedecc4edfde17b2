//! Identifiers of the NCTS/CATS data model as newtypes: a value of one of these types is valid by
//! construction, so code past the decoding edge never re-checks them.

mod country;

pub use country::{CountryCode, InvalidCountryCode};
