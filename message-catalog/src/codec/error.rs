//! What a rejection says: stable labels, NCTS error codes, problems with their place, and the
//! [`Rejection`] that the codec (and the later stages) return.
//!
//! Labels are part of the contract with other systems (they appear in NACK texts and in the
//! command line output): never rename one; a test pins them.

use std::fmt;

/// Schema-level and well-formedness errors found by the codec. `Display` gives the stable label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum XmlError {
    /// The document is larger than [`super::Limits::max_bytes`].
    #[error("xml.too-large")]
    TooLarge,
    /// The bytes are not UTF-8.
    #[error("xml.utf8")]
    Utf8,
    /// The XML declaration names an encoding other than UTF-8, or a version other than 1.0.
    #[error("xml.encoding")]
    Encoding,
    /// A `<!DOCTYPE` (and with it any entity declaration).
    #[error("xml.doctype")]
    Doctype,
    /// A processing instruction other than the XML declaration.
    #[error("xml.pi")]
    ProcessingInstruction,
    /// A reference to an undefined entity.
    #[error("xml.entity")]
    Entity,
    /// Not well-formed.
    #[error("xml.syntax")]
    Syntax,
    /// The document ends before the root element is closed.
    #[error("xml.truncated")]
    Truncated,
    /// No root element at all.
    #[error("xml.empty")]
    Empty,
    /// Nesting deeper than [`super::Limits::max_depth`].
    #[error("xml.depth")]
    Depth,
    /// The root element is in the wrong namespace, or a child is in a namespace.
    #[error("xml.namespace")]
    Namespace,
    /// The root element is not a known message.
    #[error("xml.unknown-root")]
    UnknownRoot,
    /// Something other than whitespace or comments after the root element.
    #[error("xml.multiple-roots")]
    MultipleRoots,
    /// An element the schema does not declare in that place.
    #[error("xml.unknown-element")]
    UnknownElement,
    /// A mandatory element is missing.
    #[error("xml.missing-element")]
    MissingElement,
    /// An element out of schema order.
    #[error("xml.out-of-order")]
    OutOfOrder,
    /// More occurrences than `maxOccurs`.
    #[error("xml.too-many")]
    TooMany,
    /// Text in element-only content.
    #[error("xml.unexpected-text")]
    UnexpectedText,
    /// An attribute the schema does not declare.
    #[error("xml.unknown-attribute")]
    UnknownAttribute,
    /// A required attribute is missing.
    #[error("xml.missing-attribute")]
    MissingAttribute,
    /// A pattern facet is violated.
    #[error("xml.pattern")]
    Pattern,
    /// A length facet is violated.
    #[error("xml.length")]
    Length,
    /// An enumeration facet is violated.
    #[error("xml.enumeration")]
    Enumeration,
    /// A range facet (min/max inclusive/exclusive) is violated.
    #[error("xml.range")]
    Range,
    /// totalDigits or fractionDigits is violated.
    #[error("xml.digits")]
    Digits,
    /// Not a valid lexical value of the built-in type (decimal, integer, date...).
    #[error("xml.datatype")]
    Datatype,
}

impl XmlError {
    /// Every label, for tests and documentation.
    pub const ALL: &'static [XmlError] = &[
        XmlError::TooLarge,
        XmlError::Utf8,
        XmlError::Encoding,
        XmlError::Doctype,
        XmlError::ProcessingInstruction,
        XmlError::Entity,
        XmlError::Syntax,
        XmlError::Truncated,
        XmlError::Empty,
        XmlError::Depth,
        XmlError::Namespace,
        XmlError::UnknownRoot,
        XmlError::MultipleRoots,
        XmlError::UnknownElement,
        XmlError::MissingElement,
        XmlError::OutOfOrder,
        XmlError::TooMany,
        XmlError::UnexpectedText,
        XmlError::UnknownAttribute,
        XmlError::MissingAttribute,
        XmlError::Pattern,
        XmlError::Length,
        XmlError::Enumeration,
        XmlError::Range,
        XmlError::Digits,
        XmlError::Datatype,
    ];

    /// The NCTS XML error code (CL030) reported in CC917C/CD917C.
    pub fn code(self) -> ErrorCode {
        match self {
            XmlError::Enumeration => ErrorCode::XML_ENUMERATION,
            XmlError::MissingElement | XmlError::MissingAttribute => ErrorCode::XML_MISSING,
            XmlError::UnknownElement
            | XmlError::OutOfOrder
            | XmlError::UnexpectedText
            | XmlError::UnknownAttribute
            | XmlError::UnknownRoot
            | XmlError::Namespace => ErrorCode::XML_NOT_SUPPORTED_IN_POSITION,
            XmlError::TooMany => ErrorCode::XML_TOO_MANY,
            XmlError::Length => ErrorCode::XML_TOO_LONG,
            XmlError::Pattern | XmlError::Range | XmlError::Digits | XmlError::Datatype => {
                ErrorCode::XML_INVALID_VALUE
            }
            _ => ErrorCode::XML_OTHER,
        }
    }

    /// The stable label, e.g. `xml.unknown-element`.
    pub fn label(self) -> &'static str {
        match self {
            XmlError::TooLarge => "xml.too-large",
            XmlError::Utf8 => "xml.utf8",
            XmlError::Encoding => "xml.encoding",
            XmlError::Doctype => "xml.doctype",
            XmlError::ProcessingInstruction => "xml.pi",
            XmlError::Entity => "xml.entity",
            XmlError::Syntax => "xml.syntax",
            XmlError::Truncated => "xml.truncated",
            XmlError::Empty => "xml.empty",
            XmlError::Depth => "xml.depth",
            XmlError::Namespace => "xml.namespace",
            XmlError::UnknownRoot => "xml.unknown-root",
            XmlError::MultipleRoots => "xml.multiple-roots",
            XmlError::UnknownElement => "xml.unknown-element",
            XmlError::MissingElement => "xml.missing-element",
            XmlError::OutOfOrder => "xml.out-of-order",
            XmlError::TooMany => "xml.too-many",
            XmlError::UnexpectedText => "xml.unexpected-text",
            XmlError::UnknownAttribute => "xml.unknown-attribute",
            XmlError::MissingAttribute => "xml.missing-attribute",
            XmlError::Pattern => "xml.pattern",
            XmlError::Length => "xml.length",
            XmlError::Enumeration => "xml.enumeration",
            XmlError::Range => "xml.range",
            XmlError::Digits => "xml.digits",
            XmlError::Datatype => "xml.datatype",
        }
    }
}

/// An NCTS error code: CL030 (XML errors) or CL180 (functional errors), depending on the
/// rejection's [`RejectionKind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub struct ErrorCode(pub u8);

impl ErrorCode {
    /// CL030 12: incorrect enumeration.
    pub const XML_ENUMERATION: ErrorCode = ErrorCode(12);
    /// CL030 13: missing.
    pub const XML_MISSING: ErrorCode = ErrorCode(13);
    /// CL030 15: not supported in this position.
    pub const XML_NOT_SUPPORTED_IN_POSITION: ErrorCode = ErrorCode(15);
    /// CL030 18: unspecified error / other.
    pub const XML_OTHER: ErrorCode = ErrorCode(18);
    /// CL030 35: too many repetitions.
    pub const XML_TOO_MANY: ErrorCode = ErrorCode(35);
    /// CL030 39: element too long.
    pub const XML_TOO_LONG: ErrorCode = ErrorCode(39);
    /// CL030 40: element too short.
    pub const XML_TOO_SHORT: ErrorCode = ErrorCode(40);
    /// CL030 50: invalid value for the specific type.
    pub const XML_INVALID_VALUE: ErrorCode = ErrorCode(50);
    /// CL180 12: code list.
    pub const CODE_LIST: ErrorCode = ErrorCode(12);
    /// CL180 13: condition.
    pub const CONDITION: ErrorCode = ErrorCode(13);
    /// CL180 14: rule.
    pub const RULE: ErrorCode = ErrorCode(14);
    /// CL180 15: condition (missing/not allowed).
    pub const CONDITION_15: ErrorCode = ErrorCode(15);
    /// CL180 26: duplicate message identification.
    pub const DUPLICATE: ErrorCode = ErrorCode(26);
    /// CL180 90: unknown MRN.
    pub const UNKNOWN_MRN: ErrorCode = ErrorCode(90);
    /// CL180 92: message out of sequence.
    pub const OUT_OF_SEQUENCE: ErrorCode = ErrorCode(92);
    /// CL180 93: invalid MRN.
    pub const INVALID_MRN: ErrorCode = ErrorCode(93);
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}", self.0)
    }
}

/// Which NACK a rejection turns into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum RejectionKind {
    /// Schema or well-formedness: CC917C / CD917C.
    Xml,
    /// Functional (codes 12, 13, 14, 15, 26, 90, 92, 93): CC906C / CD906C.
    Functional,
}

/// One thing wrong with a message, and where.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// 1-based line (0 when unknown).
    pub line: u32,
    /// 1-based column, in characters (0 when unknown).
    pub column: u32,
    /// XPath-style pointer, e.g. `/CC015C/Guarantee[2]/guaranteeType`.
    pub pointer: String,
    /// NCTS error code.
    pub code: ErrorCode,
    /// Stable label, e.g. `xml.pattern` or a rules-stage label.
    pub label: &'static str,
    /// Rule or condition id, when one applies.
    pub rule: Option<String>,
    /// Human-readable reason.
    pub reason: String,
}

/// A message refused: its class and its problems (the codec reports the first one it finds).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, thiserror::Error)]
pub struct Rejection {
    /// XML or functional.
    pub kind: RejectionKind,
    /// What is wrong, in document order where known.
    pub problems: Vec<Problem>,
    /// The root element name when it was recognised (`None` when the document did not get that
    /// far).
    pub message_type: Option<String>,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.problems.first() {
            Some(p) => write!(
                f,
                "{}:{} {} {} {}",
                p.line, p.column, p.pointer, p.label, p.reason
            ),
            None => f.write_str("rejected"),
        }
    }
}

impl Rejection {
    /// The label of the first problem.
    pub fn label(&self) -> Option<&'static str> {
        self.problems.first().map(|p| p.label)
    }
}

/// Maps a quick-xml error to a label and a reason.
pub(crate) fn classify_syntax(e: &quick_xml::Error) -> (XmlError, String) {
    use quick_xml::errors::{IllFormedError, SyntaxError};
    let label = match e {
        quick_xml::Error::IllFormed(IllFormedError::MissingEndTag(_)) => XmlError::Truncated,
        quick_xml::Error::Syntax(
            SyntaxError::UnclosedTag
            | SyntaxError::UnclosedCData
            | SyntaxError::UnclosedComment
            | SyntaxError::UnclosedPIOrXmlDecl
            | SyntaxError::UnclosedDoctype,
        ) => XmlError::Truncated,
        quick_xml::Error::Encoding(_) => XmlError::Utf8,
        quick_xml::Error::Escape(_) => XmlError::Entity,
        _ => XmlError::Syntax,
    };
    (label, format!("not well-formed: {e}"))
}

/// 1-based (line, column) of a byte offset; the column counts characters.
pub fn line_column(bytes: &[u8], offset: u64) -> (u32, u32) {
    let end = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(bytes.len());
    let head = bytes.get(..end).unwrap_or_default();
    let line = head.iter().filter(|b| **b == b'\n').count() + 1;
    let line_start = head.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let col = head
        .get(line_start..)
        .unwrap_or_default()
        .iter()
        .filter(|b| (**b & 0xC0) != 0x80)
        .count()
        + 1;
    (
        u32::try_from(line).unwrap_or(u32::MAX),
        u32::try_from(col).unwrap_or(u32::MAX),
    )
}
