//! The strict XML codec: bytes → typed [`Message`] or a precise [`Rejection`], and back.
//!
//! [`decode`] runs, in one streaming pass over the borrowed input (quick-xml, no copies):
//! size limit → UTF-8 → no DOCTYPE / entity declarations / processing instructions → root element
//! and namespace → typed decode (unknown, missing, out-of-order or repeated elements, stray text,
//! undeclared attributes, facet violations) with the nesting depth capped. It stops at the first
//! problem and reports it with line, column, pointer, NCTS code and stable label. Simple elements
//! written `<name>text</name>` are read straight from the input, everything else through
//! quick-xml's events; a test holds both ways to the same results on the corpus and its variants.
//!
//! [`encode`] writes the canonical form: `ncts:`/`cd:`/`ca:` prefixed root, unqualified
//! children in schema order, two-space indentation. `decode(encode(m)) == m`.
//!
//! [`locate`] finds the line and column of a pointer in the original bytes (for the rules
//! stage), [`element_at`] the schema entry (code list, optionality, rules) of a pointer, and
//! [`nack`] renders a rejection as CC917C/CC906C/CD917C/CD906C.

pub mod error;
pub mod nack;
pub mod rt;

use quick_xml::events::Event;

pub use error::{ErrorCode, Problem, Rejection, RejectionKind, XmlError, line_column};
pub use rt::{ElementInfo, Pointer, TypeInfo};

use crate::generated::{FAMILIES, Message, ROOTS};
use rt::{Decoder, Fail, FailInner, Writer};

/// Resource limits applied before and during decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted document, in bytes (default 8 MiB).
    pub max_bytes: usize,
    /// Deepest accepted element nesting, the root being 1 (default 64).
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 8 * 1024 * 1024,
            max_depth: 64,
        }
    }
}

fn reject(bytes: &[u8], f: Fail, message_type: Option<&str>) -> Rejection {
    let FailInner {
        offset,
        error,
        pointer,
        reason,
    } = *f.0;
    let (line, column) = line_column(bytes, offset);
    Rejection {
        kind: RejectionKind::Xml,
        problems: vec![Problem {
            line,
            column,
            pointer,
            code: error.code(),
            label: error.label(),
            rule: None,
            reason,
        }],
        message_type: message_type.map(str::to_string),
    }
}

/// Decodes and checks a message against its schema. See the module documentation for the
/// order of checks. Never panics.
pub fn decode(bytes: &[u8], limits: &Limits) -> Result<Message, Rejection> {
    decode_with(bytes, limits, true)
}

/// [`decode`], with or without reading simple elements straight from the input (see
/// [`rt::Decoder::next_child`]); both ways must give the same result.
fn decode_with(bytes: &[u8], limits: &Limits, inline_leaves: bool) -> Result<Message, Rejection> {
    let early = |offset: u64, error: XmlError, pointer: &str, reason: String| {
        reject(
            bytes,
            Fail(Box::new(FailInner {
                offset,
                error,
                pointer: pointer.to_string(),
                reason,
            })),
            None,
        )
    };
    if bytes.len() > limits.max_bytes {
        return Err(early(
            0,
            XmlError::TooLarge,
            "/",
            format!(
                "the document has {} bytes; the limit is {}",
                bytes.len(),
                limits.max_bytes
            ),
        ));
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            return Err(early(
                e.valid_up_to() as u64,
                XmlError::Utf8,
                "/",
                "the document is not valid UTF-8".into(),
            ));
        }
    };
    if let Some(at) = rt::first_bad_char(bytes) {
        return Err(early(
            at as u64,
            XmlError::Syntax,
            "/",
            "a character that XML does not allow".into(),
        ));
    }
    let (body, base) = match text.strip_prefix('\u{FEFF}') {
        Some(rest) => (rest, 3),
        None => (text, 0),
    };
    let mut d = Decoder::new(body, limits.max_depth, base);
    d.set_inline(inline_leaves);
    let mut root_name: Option<&'static str> = None;
    match document(&mut d, &mut root_name) {
        Ok(m) => Ok(m),
        Err(f) => Err(reject(bytes, f, root_name)),
    }
}

fn document(d: &mut Decoder<'_>, root_name: &mut Option<&'static str>) -> Result<Message, Fail> {
    // Prolog.
    let (start, empty) = loop {
        let ev = d.read()?;
        match ev {
            Event::Decl(decl) => {
                if d.event_start != 0 {
                    return Err(d.fail_at(
                        d.event_start,
                        XmlError::Syntax,
                        "/".into(),
                        "the XML declaration must come first".into(),
                    ));
                }
                let version_ok = decl.version().is_ok_and(|v| v.as_ref() == b"1.0");
                let encoding_ok = match decl.encoding() {
                    None => true,
                    Some(Ok(e)) => e.eq_ignore_ascii_case(b"utf-8"),
                    Some(Err(_)) => false,
                };
                if !version_ok || !encoding_ok {
                    return Err(d.fail_at(
                        d.event_start,
                        XmlError::Encoding,
                        "/".into(),
                        "only XML 1.0 in UTF-8 is accepted".into(),
                    ));
                }
            }
            Event::Text(t) if t.iter().all(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r')) => {}
            Event::Comment(_) => {}
            Event::Start(e) => break (e, false),
            Event::Empty(e) => break (e, true),
            Event::DocType(_) => {
                return Err(d.fail_at(
                    d.event_start,
                    XmlError::Doctype,
                    "/".into(),
                    "a document type declaration (and with it any entity declaration) is not allowed".into(),
                ));
            }
            // No element is open: quick-xml's error for an unmatched end tag.
            Event::End(e) => {
                d.check_end(e.name().as_ref())?;
            }
            Event::PI(_) => {
                return Err(d.fail_at(
                    d.event_start,
                    XmlError::ProcessingInstruction,
                    "/".into(),
                    "processing instructions are not allowed".into(),
                ));
            }
            Event::Eof => {
                return Err(d.fail_at(
                    d.event_start,
                    XmlError::Empty,
                    "/".into(),
                    "the document has no root element".into(),
                ));
            }
            _ => {
                return Err(d.fail_at(
                    d.event_start,
                    XmlError::Syntax,
                    "/".into(),
                    "content before the root element".into(),
                ));
            }
        }
    };

    // Root element and namespace.
    let qname = start.name();
    let local = qname.local_name();
    let local_text = String::from_utf8_lossy(local.as_ref()).into_owned();
    let prefix = qname.prefix();
    let mut ns: Option<Vec<u8>> = None;
    for a in start.attributes().with_checks(true) {
        let a = a.map_err(|e| {
            d.fail_at(
                d.event_start,
                XmlError::Syntax,
                "/".into(),
                format!("malformed attribute: {e}"),
            )
        })?;
        let key = a.key.as_ref();
        let declares = match &prefix {
            Some(p) => key.strip_prefix(b"xmlns:") == Some(p.as_ref()),
            None => key == b"xmlns",
        };
        if declares {
            ns = Some(a.value.to_vec());
        }
    }
    let ns = match (ns, &prefix) {
        (Some(n), _) => String::from_utf8_lossy(&n).into_owned(),
        (None, None) => String::new(),
        (None, Some(p)) => {
            return Err(d.fail_at(
                d.event_start,
                XmlError::Namespace,
                format!("/{local_text}"),
                format!(
                    "namespace prefix '{}' is not declared",
                    String::from_utf8_lossy(p.as_ref())
                ),
            ));
        }
    };
    let Some((_, name, _)) = ROOTS
        .iter()
        .find(|(n, l, _)| *n == ns && l.as_bytes() == local.as_ref())
    else {
        let reason = match ROOTS
            .iter()
            .find(|(_, l, _)| l.as_bytes() == local.as_ref())
        {
            Some((want, _, _)) => {
                return Err(d.fail_at(
                    d.event_start,
                    XmlError::Namespace,
                    format!("/{local_text}"),
                    format!("{local_text} must be in namespace '{want}', not '{ns}'"),
                ));
            }
            None => format!("'{local_text}' in namespace '{ns}' is not a CATS message"),
        };
        return Err(d.fail_at(
            d.event_start,
            XmlError::UnknownRoot,
            format!("/{local_text}"),
            reason,
        ));
    };
    *root_name = Some(name);
    if !empty {
        d.opened(qname.as_ref().len());
    }
    d.path = Pointer::root(name);
    d.depth = 1;
    d.element_start = d.event_start;
    let msg = match Message::decode_root(d, &ns, local.as_ref(), &start, empty)? {
        Some(m) => m,
        None => {
            return Err(d.fail_at(
                d.event_start,
                XmlError::UnknownRoot,
                format!("/{local_text}"),
                "unknown message".into(),
            ));
        }
    };

    // Epilog.
    loop {
        let ev = d.read()?;
        match ev {
            Event::Eof => return Ok(msg),
            Event::Text(t) if t.iter().all(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r')) => {}
            Event::Comment(_) => {}
            Event::PI(_) => {
                return Err(d.fail_at(
                    d.event_start,
                    XmlError::ProcessingInstruction,
                    "/".into(),
                    "processing instructions are not allowed".into(),
                ));
            }
            Event::End(e) => {
                d.check_end(e.name().as_ref())?;
            }
            Event::Start(_) | Event::Empty(_) => {
                return Err(d.fail_at(
                    d.event_start,
                    XmlError::MultipleRoots,
                    "/".into(),
                    "a document has exactly one root element".into(),
                ));
            }
            Event::DocType(_) => {
                return Err(d.fail_at(
                    d.event_start,
                    XmlError::Doctype,
                    "/".into(),
                    "a document type declaration is not allowed".into(),
                ));
            }
            _ => {
                return Err(d.fail_at(
                    d.event_start,
                    XmlError::Syntax,
                    "/".into(),
                    "content after the root element".into(),
                ));
            }
        }
    }
}

/// Writes the canonical XML of a message.
pub fn encode(m: &Message) -> Vec<u8> {
    let mut w = Writer::with_capacity(4096);
    w.raw("<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
    let name = format!("{}:{}", m.prefix(), m.message_type());
    w.open(&name);
    w.attribute(&format!("xmlns:{}", m.prefix()), m.namespace());
    m.encode_body(&mut w);
    w.close(&name);
    w.raw("\n");
    w.buf
}

/// The schema entry of the element a pointer designates (`/CC015C/Guarantee[2]/guaranteeType`):
/// its code list, optionality and `cm:rules`. `None` for the root, attributes and unknown paths.
pub fn element_at(pointer: &str) -> Option<&'static ElementInfo> {
    let mut segs = pointer.strip_prefix('/')?.split('/');
    let root = segs.next()?;
    let mut ty: &TypeInfo = ROOTS.iter().find(|(_, l, _)| *l == root)?.2;
    let mut found = None;
    for seg in segs {
        let name = seg.split_once('[').map_or(seg, |(n, _)| n);
        let el = ty.element(name)?;
        found = Some(el);
        if let Some(c) = el.complex {
            ty = c;
        }
    }
    found
}

/// The `cm:rules` of a complex type's element, by type and element name (the type name is
/// looked up in every family; names are unique within a family).
pub fn rules_of(type_name: &str, element: &str) -> &'static [&'static str] {
    FAMILIES
        .iter()
        .flat_map(|(_, _, _, types)| types.iter())
        .find(|t| t.name == type_name)
        .and_then(|t| t.element(element))
        .map_or(&[], |e| e.rules)
}

/// Children seen so far at one open level (name, count), and whether the path matches.
type Level = (Vec<(Vec<u8>, u32)>, bool);

/// The 1-based line and column of the start tag a pointer designates in `bytes`, by a fresh scan
/// (segments without `[n]` mean the first occurrence). `None` when the pointer is not found or
/// the bytes cannot be scanned that far.
pub fn locate(bytes: &[u8], pointer: &str) -> Option<(u32, u32)> {
    let mut want: Vec<(&str, u32)> = Vec::new();
    for seg in pointer.strip_prefix('/')?.split('/') {
        if seg.starts_with('@') {
            break;
        }
        match seg.split_once('[') {
            Some((n, rest)) => want.push((n, rest.strip_suffix(']')?.parse().ok()?)),
            None => want.push((seg, 1)),
        }
    }
    let mut reader = quick_xml::Reader::from_reader(bytes);
    // Per open level: how many children of each name have been seen, and whether the path to
    // here matches `want`.
    let mut levels: Vec<Level> = vec![(Vec::new(), true)];
    loop {
        let pos = reader.buffer_position();
        let ev = reader.read_event().ok()?;
        let (e, is_empty) = match ev {
            Event::Start(e) => (e, false),
            Event::Empty(e) => (e, true),
            Event::End(_) => {
                levels.pop();
                if levels.is_empty() {
                    return None;
                }
                continue;
            }
            Event::Eof => return None,
            _ => continue,
        };
        let depth = levels.len();
        let local = e.local_name().as_ref().to_vec();
        let (counts, parent_match) = levels.last_mut()?;
        let n = match counts.iter_mut().find(|(n, _)| *n == local) {
            Some((_, c)) => {
                *c += 1;
                *c
            }
            None => {
                counts.push((local.clone(), 1));
                1
            }
        };
        let matches = *parent_match
            && want
                .get(depth - 1)
                .is_some_and(|(w, i)| w.as_bytes() == local && *i == n);
        if matches && depth == want.len() {
            return Some(line_column(bytes, pos));
        }
        if !is_empty {
            levels.push((Vec::new(), matches));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_stable() {
        let labels: Vec<&str> = XmlError::ALL.iter().map(|e| e.label()).collect();
        assert_eq!(
            labels,
            [
                "xml.too-large",
                "xml.utf8",
                "xml.encoding",
                "xml.doctype",
                "xml.pi",
                "xml.entity",
                "xml.syntax",
                "xml.truncated",
                "xml.empty",
                "xml.depth",
                "xml.namespace",
                "xml.unknown-root",
                "xml.multiple-roots",
                "xml.unknown-element",
                "xml.missing-element",
                "xml.out-of-order",
                "xml.too-many",
                "xml.unexpected-text",
                "xml.unknown-attribute",
                "xml.missing-attribute",
                "xml.pattern",
                "xml.length",
                "xml.enumeration",
                "xml.range",
                "xml.digits",
                "xml.datatype",
            ]
        );
        for e in XmlError::ALL {
            assert_eq!(e.to_string(), e.label());
        }
    }

    /// Every corpus file, and variants of the valid ones with text, blanks, references, carriage
    /// returns, comments, attributes or emptiness put into an element, decode to the same
    /// message or the same rejection (line, column, pointer, code, reason) whether simple
    /// elements are read straight from the input or through quick-xml's events.
    #[test]
    fn reading_leaves_directly_changes_nothing() {
        fn files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return;
            };
            for e in entries.flatten() {
                let p = e.path();
                if p.is_dir() {
                    files(&p, out);
                } else if p.extension().is_some_and(|x| x == "xml") {
                    out.push(p);
                }
            }
        }
        let limits = Limits::default();
        let same = |bytes: &[u8], what: &str| {
            let fast = format!("{:?}", decode_with(bytes, &limits, true));
            let slow = format!("{:?}", decode_with(bytes, &limits, false));
            assert_eq!(fast, slow, "{what}");
        };
        let mut all = Vec::new();
        files(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data"),
            &mut all,
        );
        all.sort();
        assert!(
            all.len() > 500,
            "the corpus is missing: {} files",
            all.len()
        );
        let mut variants = 0;
        for path in &all {
            let Ok(bytes) = std::fs::read(path) else {
                continue;
            };
            if bytes.len() > 1 << 20 {
                continue;
            }
            let what = path.display().to_string();
            same(&bytes, &what);
            let valid = path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("valid"));
            let Ok(text) = std::str::from_utf8(&bytes) else {
                continue;
            };
            if !valid {
                continue;
            }
            // Start tags of child elements (not the root), a dozen spread over the document.
            let starts: Vec<usize> = text
                .match_indices('<')
                .map(|(i, _)| i)
                .filter(|&i| text[i + 1..].starts_with(|c: char| c.is_ascii_alphabetic()))
                .skip(1)
                .collect();
            // End tags that close nothing, before and after the root element.
            if let Some(first) = starts.first().and_then(|_| text.find("?>")) {
                let mut v = String::from(&text[..first + 2]);
                v.push_str("</x>");
                v.push_str(&text[first + 2..]);
                same(v.as_bytes(), &format!("{what}: </x> before the root"));
            }
            let mut v = String::from(text.trim_end());
            v.push_str("\n</x>\n");
            same(v.as_bytes(), &format!("{what}: </x> after the root"));
            variants += 2;
            let step = (starts.len() / 12).max(1);
            for &at in starts.iter().step_by(step) {
                let Some(gt) = text[at..].find('>').map(|g| at + g) else {
                    continue;
                };
                let name_end = text[at + 1..gt].find([' ', '/']).map_or(gt, |n| at + 1 + n);
                let name = &text[at + 1..name_end];
                let end_tag = format!("</{name}>");
                let close = text[gt..].find(&end_tag).map(|c| gt + c);
                let put = |insert: &str| {
                    let mut v = String::with_capacity(text.len() + insert.len());
                    v.push_str(&text[..=gt]);
                    v.push_str(insert);
                    v.push_str(&text[gt + 1..]);
                    same(v.as_bytes(), &format!("{what} + {insert:?} after {name}"));
                };
                for insert in [
                    "x", " ", "\n  ", "&amp;", "&#65;", "\r\n", "<!--c-->", "]]>",
                ] {
                    put(insert);
                }
                variants += 8;
                // An attribute, blanks inside the end tag, the element emptied.
                let mut v = String::from(&text[..at + 1 + name.len()]);
                v.push_str(" a=\"1\"");
                v.push_str(&text[at + 1 + name.len()..]);
                same(v.as_bytes(), &format!("{what}: attribute on {name}"));
                if let Some(c) = close {
                    // A wrong end tag (quick-xml's end-name check, or the decoder's own).
                    let mut v = String::from(&text[..c + end_tag.len() - 1]);
                    v.push_str("x>");
                    v.push_str(&text[c + end_tag.len()..]);
                    same(v.as_bytes(), &format!("{what}: </{name}x>"));
                    variants += 1;
                    let mut v = String::from(&text[..c + end_tag.len() - 1]);
                    v.push_str("  >");
                    v.push_str(&text[c + end_tag.len()..]);
                    same(v.as_bytes(), &format!("{what}: blanks in </{name}>"));
                    let mut v = String::from(&text[..=gt]);
                    v.push_str(&text[c..]);
                    same(v.as_bytes(), &format!("{what}: {name} emptied"));
                    variants += 2;
                }
                variants += 1;
            }
        }
        assert!(variants > 1000, "only {variants} variants");
    }

    #[test]
    fn line_columns() {
        assert_eq!(line_column(b"ab\ncd", 4), (2, 2));
        assert_eq!(line_column("é\nxé<".as_bytes(), 6), (2, 3));
    }
}
