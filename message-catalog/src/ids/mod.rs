//! Identifiers of the NCTS/CATS data model as newtypes: a value of one of these types is valid by
//! construction, so code past the decoding edge never re-checks them.
//!
//! | type | what | format |
//! | --- | --- | --- |
//! | [`CountryCode`] | ISO 3166-1 alpha-2 | `[A-Z]{2}` |
//! | [`CustomsOfficeRef`] | customs office reference number | `[A-Z]{2}[A-Z0-9]{6}` |
//! | [`Mrn`] | movement reference number, with check digit | an18 |
//! | [`Grn`] | guarantee reference number, with check digit | an..24 |
//! | [`Lrn`] | local reference number, chosen by the declarant | an..22 |
//! | [`Tin`] | trader identification number (EORI / TCUIN like) | `[A-Z]{2}[!-~]{1,15}` |
//! | [`MessageId`] | message identification | an..35 |
//! | [`ProcedureLetter`] | the procedure letter in position 17 of an MRN | `J`..`M` |
//!
//! Every type has `parse`, [`std::str::FromStr`], [`std::fmt::Display`], `as_str`, and serde as a
//! string; every type has its own error type.

mod check_digit;
mod country;
mod grn;
mod lrn;
mod message_id;
mod mrn;
mod office;
mod procedure;
mod tin;

pub use country::{CountryCode, InvalidCountryCode};
pub use grn::{Grn, GrnError};
pub use lrn::{InvalidLrn, Lrn};
pub use message_id::{InvalidMessageId, MessageId};
pub use mrn::{Mrn, MrnError};
pub use office::{CustomsOfficeRef, InvalidCustomsOfficeRef};
pub use procedure::{InvalidProcedureLetter, ProcedureLetter};
pub use tin::{InvalidTin, Tin};

/// Implements `FromStr`, `Display`, `Debug`, `Serialize` and `Deserialize` for an identifier
/// that has `fn parse(&str) -> Result<Self, $err>` and `fn as_str(&self) -> &str`.
macro_rules! text_identifier {
    ($ty:ident, $err:ty) => {
        impl ::std::str::FromStr for $ty {
            type Err = $err;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $ty::parse(s)
            }
        }

        impl ::std::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                write!(f, "{}({})", stringify!($ty), self.as_str())
            }
        }

        impl ::serde::Serialize for $ty {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $ty {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <::std::borrow::Cow<'de, str>>::deserialize(d)?;
                $ty::parse(&text).map_err(::serde::de::Error::custom)
            }
        }
    };
}
pub(crate) use text_identifier;
