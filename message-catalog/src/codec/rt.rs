//! Runtime support for the generated code: schema tables, simple-type checking, the streaming
//! decoder state and the writer.
//!
//! The generated decoders (see `build.rs`) call into [`Decoder`] for every child element and
//! every text value, and into the `to_*` functions to turn a text into a typed value after its
//! facets have been checked against a [`SimpleType`]. Nothing here allocates on the happy path
//! except the values themselves.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use quick_xml::events::{BytesStart, Event};
use quick_xml::reader::Reader;
use rust_decimal::Decimal;

use super::error::XmlError;

// ---------------------------------------------------------------------------------------------
// Schema tables
// ---------------------------------------------------------------------------------------------

/// The XSD built-in type at the bottom of a simple type's derivation chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    /// `xs:string`
    String,
    /// `xs:normalizedString`
    NormalizedString,
    /// `xs:token`
    Token,
    /// `xs:decimal`
    Decimal,
    /// `xs:integer`
    Integer,
    /// `xs:date`
    Date,
    /// `xs:dateTime`
    DateTime,
    /// `xs:gYear`
    GYear,
}

/// The XSD `whiteSpace` facet in force for a simple type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhiteSpace {
    /// Keep the text as it is.
    Preserve,
    /// Tab, line feed and carriage return become spaces.
    Replace,
    /// Replace, then trim and squeeze runs of spaces.
    Collapse,
}

/// The facets of one restriction step.
#[derive(Debug)]
pub struct Facets {
    /// Patterns of this step: the value must match one of them (when any).
    pub patterns: &'static [&'static Pattern],
    /// `length`, in characters.
    pub length: Option<u32>,
    /// `minLength`, in characters.
    pub min_length: Option<u32>,
    /// `maxLength`, in characters.
    pub max_length: Option<u32>,
    /// `totalDigits`.
    pub total_digits: Option<u32>,
    /// `fractionDigits`.
    pub fraction_digits: Option<u32>,
    /// `minInclusive`, lexical.
    pub min_inclusive: Option<&'static str>,
    /// `maxInclusive`, lexical.
    pub max_inclusive: Option<&'static str>,
    /// `minExclusive`, lexical.
    pub min_exclusive: Option<&'static str>,
    /// `maxExclusive`, lexical.
    pub max_exclusive: Option<&'static str>,
    /// `enumeration` values (whitespace-normalised); empty when the step has none.
    pub enumeration: &'static [&'static str],
    /// The four bounds parsed, on first use (`None` when the step has none).
    pub bounds: Option<&'static OnceLock<Bounds>>,
}

/// `minInclusive`, `maxInclusive`, `minExclusive` and `maxExclusive` of a [`Facets`] step,
/// parsed once: as `xs:integer` (when they are integers) and as `xs:decimal`.
#[derive(Debug)]
pub struct Bounds {
    int: [Option<i64>; 4],
    dec: [Option<Decimal>; 4],
}

impl Facets {
    fn bounds(&self) -> &Bounds {
        static NONE: Bounds = Bounds {
            int: [None; 4],
            dec: [None; 4],
        };
        let Some(cell) = self.bounds else {
            return &NONE;
        };
        cell.get_or_init(|| {
            let all = [
                self.min_inclusive,
                self.max_inclusive,
                self.min_exclusive,
                self.max_exclusive,
            ];
            Bounds {
                int: all.map(|b| b.and_then(parse_integer)),
                dec: all.map(|b| b.and_then(parse_decimal)),
            }
        })
    }
}

/// A named simple type: its built-in base, whitespace rule and every restriction step, most
/// derived first. All steps apply.
#[derive(Debug)]
pub struct SimpleType {
    /// XSD name.
    pub name: &'static str,
    /// Built-in base.
    pub builtin: Builtin,
    /// Whitespace handling.
    pub ws: WhiteSpace,
    /// Restriction steps, most derived first.
    pub levels: &'static [Facets],
}

/// One element of a complex type's sequence.
#[derive(Debug)]
pub struct ElementInfo {
    /// Element name.
    pub name: &'static str,
    /// `minOccurs`.
    pub min: u32,
    /// `maxOccurs` (`u32::MAX` for unbounded).
    pub max: u32,
    /// The element's complex type, when it has one.
    pub complex: Option<&'static TypeInfo>,
    /// The element's simple type, when it has one.
    pub simple: Option<&'static SimpleType>,
    /// `cm:codeList` (e.g. `CL231`).
    pub code_list: Option<&'static str>,
    /// `cm:optionality` (`R`, `O` or `D`).
    pub optionality: Option<&'static str>,
    /// `cm:rules` (rule and condition ids).
    pub rules: &'static [&'static str],
}

/// An attribute of a complex type.
#[derive(Debug)]
pub struct AttributeInfo {
    /// Attribute name.
    pub name: &'static str,
    /// Its simple type.
    pub simple: &'static SimpleType,
    /// `use="required"`.
    pub required: bool,
}

/// The schema table of a complex type.
#[derive(Debug)]
pub struct TypeInfo {
    /// XSD name.
    pub name: &'static str,
    /// Target namespace of the family the type belongs to.
    pub namespace: &'static str,
    /// The sequence, in order.
    pub elements: &'static [ElementInfo],
    /// Attributes.
    pub attributes: &'static [AttributeInfo],
}

impl TypeInfo {
    /// The element called `name` in this type's sequence.
    pub fn element(&self, name: &str) -> Option<&'static ElementInfo> {
        self.elements.iter().find(|e| e.name == name)
    }
}

/// A type with no content (used only when no schema was found at build time).
pub static EMPTY_TYPE: TypeInfo = TypeInfo {
    name: "",
    namespace: "",
    elements: &[],
    attributes: &[],
};

// ---------------------------------------------------------------------------------------------
// Patterns
// ---------------------------------------------------------------------------------------------

/// A character class usable by the fast pattern path.
#[derive(Debug)]
pub enum Class {
    /// `.`: anything but line feed and carriage return.
    Dot,
    /// `\d`.
    Digit,
    /// `\P{Z}`: not a separator.
    NotZ,
    /// `[...]`: inclusive ranges.
    Ranges(&'static [(char, char)]),
    /// `[^...]`.
    NotRanges(&'static [(char, char)]),
}

impl Class {
    /// `None` when the fast path cannot decide (non-ASCII digits).
    #[inline]
    fn matches(&self, c: char) -> Option<bool> {
        Some(match self {
            Class::Dot => c != '\n' && c != '\r',
            Class::Digit => {
                if c.is_ascii() {
                    c.is_ascii_digit()
                } else {
                    return None;
                }
            }
            Class::NotZ => !is_separator(c),
            Class::Ranges(r) => r.iter().any(|(a, b)| *a <= c && c <= *b),
            Class::NotRanges(r) => !r.iter().any(|(a, b)| *a <= c && c <= *b),
        })
    }

    /// Whether every byte of an ASCII run is in the class, one tight loop per class.
    #[inline]
    fn all_ascii(&self, run: &[u8]) -> bool {
        let in_ranges = |r: &[(char, char)], b: u8| {
            let c = char::from(b);
            r.iter().any(|(a, z)| *a <= c && c <= *z)
        };
        match self {
            Class::Dot => !run.iter().any(|&b| b == b'\n' || b == b'\r'),
            Class::Digit => run.iter().all(u8::is_ascii_digit),
            // The only ASCII separator is the space.
            Class::NotZ => !run.contains(&b' '),
            Class::Ranges(r) => run.iter().all(|&b| in_ranges(r, b)),
            Class::NotRanges(r) => !run.iter().any(|&b| in_ranges(r, b)),
        }
    }
}

/// Unicode category Z (Zs, Zl, Zp).
fn is_separator(c: char) -> bool {
    matches!(
        c,
        ' ' | '\u{A0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200A}' | '\u{2028}' | '\u{2029}' | '\u{202F}' | '\u{205F}' | '\u{3000}'
    )
}

/// A class repeated `min..=max` times.
#[derive(Debug)]
pub struct Atom {
    /// The class.
    pub class: Class,
    /// Minimum count.
    pub min: u32,
    /// Maximum count (`u32::MAX` for unbounded).
    pub max: u32,
}

/// Directly checkable pattern shapes.
#[derive(Debug)]
pub enum Fast {
    /// A sequence of atoms, at most one with a variable count.
    Atoms(&'static [Atom]),
    /// Any other pattern whose classes the fast path knows, by backtracking.
    Tree(&'static FNode),
    /// Any of these (a top-level alternation such as `0|[1-9][0-9]{0,7}`).
    Either(&'static [Fast]),
    /// `E(M*E)?`: a non-empty value whose first and last characters are in `ends` and the rest
    /// in `middle` (the P5 "no leading or trailing blanks" shape).
    Trimmed {
        /// Class of the first and last character.
        ends: Class,
        /// Class of the characters between.
        middle: Class,
    },
}

/// A pattern as a tree, for [`Fast::Tree`].
#[derive(Debug)]
pub enum FNode {
    /// One character of a class.
    Class(Class),
    /// Everything in order.
    Seq(&'static [FNode]),
    /// One of the branches.
    Alt(&'static [FNode]),
    /// `node{min,max}` (`u32::MAX` for unbounded), greedy.
    Repeat(&'static FNode, u32, u32),
}

/// What remains to match after the current node.
enum Cont<'c> {
    Items(&'c [FNode], Option<&'c Cont<'c>>),
    Repeat(&'static FNode, u32, u32, u32, Option<&'c Cont<'c>>),
}

/// Work budget of one match: beyond it the regex decides.
const TREE_BUDGET: u32 = 20_000;

fn next_char(s: &str, pos: usize) -> Option<char> {
    s.get(pos..).and_then(|t| t.chars().next())
}

fn run_cont(c: Option<&Cont<'_>>, s: &str, pos: usize, budget: &mut u32) -> Option<bool> {
    match c {
        None => Some(pos == s.len()),
        Some(Cont::Items(items, next)) => run_items(items, *next, s, pos, budget),
        Some(Cont::Repeat(node, min, max, count, next)) => {
            run_repeat(node, *min, *max, *count, *next, s, pos, budget)
        }
    }
}

fn run_items(
    items: &[FNode],
    next: Option<&Cont<'_>>,
    s: &str,
    pos: usize,
    budget: &mut u32,
) -> Option<bool> {
    *budget = budget.checked_sub(1)?;
    let Some((first, rest)) = items.split_first() else {
        return run_cont(next, s, pos, budget);
    };
    let cont = Cont::Items(rest, next);
    match first {
        FNode::Class(c) => match next_char(s, pos) {
            Some(ch) if c.matches(ch)? => run_items(rest, next, s, pos + ch.len_utf8(), budget),
            _ => Some(false),
        },
        FNode::Seq(v) => run_items(v, Some(&cont), s, pos, budget),
        FNode::Alt(v) => {
            for b in *v {
                if run_items(std::slice::from_ref(b), Some(&cont), s, pos, budget)? {
                    return Some(true);
                }
            }
            Some(false)
        }
        FNode::Repeat(node, min, max) => {
            run_repeat(node, *min, *max, 0, Some(&cont), s, pos, budget)
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn run_repeat(
    node: &'static FNode,
    min: u32,
    max: u32,
    count: u32,
    next: Option<&Cont<'_>>,
    s: &str,
    pos: usize,
    budget: &mut u32,
) -> Option<bool> {
    *budget = budget.checked_sub(1)?;
    if let FNode::Class(c) = node {
        // Single class: take greedily, then give back.
        let mut p = pos;
        let mut n = count;
        while n < max {
            match next_char(s, p) {
                Some(ch) if c.matches(ch)? => {
                    p += ch.len_utf8();
                    n += 1;
                }
                _ => break,
            }
        }
        loop {
            if n < min {
                return Some(false);
            }
            if run_cont(next, s, p, budget)? {
                return Some(true);
            }
            if n == count {
                return Some(false);
            }
            let back = s.get(pos..p).and_then(|t| t.chars().next_back())?;
            p -= back.len_utf8();
            n -= 1;
        }
    }
    if count < max {
        let again = Cont::Repeat(node, min, max, count + 1, next);
        let guard = Cont::Items(&[], Some(&again));
        // One more iteration, which must consume something.
        let start = pos;
        let r = run_items_nonempty(node, &guard, s, start, budget)?;
        if r {
            return Some(true);
        }
    }
    if count >= min {
        run_cont(next, s, pos, budget)
    } else {
        Some(false)
    }
}

fn run_items_nonempty(
    node: &'static FNode,
    then: &Cont<'_>,
    s: &str,
    pos: usize,
    budget: &mut u32,
) -> Option<bool> {
    // A zero-length iteration cannot help a greedy loop; the continuation checks progress by
    // refusing to start another iteration at the same place.
    let _ = pos;
    run_items(std::slice::from_ref(node), Some(then), s, pos, budget)
}

impl Fast {
    fn matches(&self, s: &str) -> Option<bool> {
        match self {
            Fast::Either(branches) => {
                let mut undecided = false;
                for b in *branches {
                    match b.matches(s) {
                        Some(true) => return Some(true),
                        Some(false) => {}
                        None => undecided = true,
                    }
                }
                if undecided { None } else { Some(false) }
            }
            Fast::Tree(t) => {
                let mut budget = TREE_BUDGET;
                run_items(std::slice::from_ref(*t), None, s, 0, &mut budget)
            }
            Fast::Atoms(atoms) => {
                let ascii = s.is_ascii();
                let n = if ascii { s.len() } else { s.chars().count() } as u64;
                let fixed: u64 = atoms
                    .iter()
                    .filter(|a| a.min == a.max)
                    .map(|a| u64::from(a.min))
                    .sum();
                let var = atoms.iter().find(|a| a.min != a.max);
                let var_count = match var {
                    None if n == fixed => 0,
                    None => return Some(false),
                    Some(v) => {
                        let Some(k) = n.checked_sub(fixed) else {
                            return Some(false);
                        };
                        if k < u64::from(v.min) || k > u64::from(v.max) {
                            return Some(false);
                        }
                        k
                    }
                };
                if ascii {
                    // One byte per character: check by byte slices.
                    let mut rest = s.as_bytes();
                    for a in *atoms {
                        let count = if a.min == a.max {
                            u64::from(a.min)
                        } else {
                            var_count
                        };
                        let (run, tail) = rest.split_at_checked(usize::try_from(count).ok()?)?;
                        rest = tail;
                        if !a.class.all_ascii(run) {
                            return Some(false);
                        }
                    }
                    return Some(true);
                }
                let mut chars = s.chars();
                for a in *atoms {
                    let count = if a.min == a.max {
                        u64::from(a.min)
                    } else {
                        var_count
                    };
                    for _ in 0..count {
                        let c = chars.next()?;
                        if !a.class.matches(c)? {
                            return Some(false);
                        }
                    }
                }
                Some(true)
            }
            Fast::Trimmed { ends, middle } if s.is_ascii() => {
                // One byte per character: the same checks, in the same order, on bytes.
                let Some((&first, rest)) = s.as_bytes().split_first() else {
                    return Some(false);
                };
                if !ends.matches(char::from(first))? {
                    return Some(false);
                }
                let Some((&last, mid)) = rest.split_last() else {
                    return Some(true);
                };
                if !ends.matches(char::from(last))? {
                    return Some(false);
                }
                Some(middle.all_ascii(mid))
            }
            Fast::Trimmed { ends, middle } => {
                let mut it = s.chars();
                let Some(first) = it.next() else {
                    return Some(false);
                };
                if !ends.matches(first)? {
                    return Some(false);
                }
                let Some(last) = it.next_back() else {
                    return Some(true);
                };
                if !ends.matches(last)? {
                    return Some(false);
                }
                for c in it {
                    if !middle.matches(c)? {
                        return Some(false);
                    }
                }
                Some(true)
            }
        }
    }
}

/// A deterministic automaton deciding a whole pattern on ASCII values, built from the pattern at
/// build time (`build.rs`, character classes decided by the pattern's `regex` translation).
#[derive(Debug)]
pub struct Dfa {
    /// Byte class of each ASCII byte.
    pub classes: &'static [u8; 128],
    /// Number of byte classes (the width of a row of `trans`).
    pub stride: usize,
    /// Next state per (state, class), row by row; `u16::MAX` when no match is possible.
    pub trans: &'static [u16],
    /// Whether each state accepts (state 0 is the start).
    pub accept: &'static [bool],
}

impl Dfa {
    /// Whether the whole of `s` matches; `None` on a non-ASCII byte (undecided).
    #[inline]
    pub fn matches(&self, s: &[u8]) -> Option<bool> {
        let mut state = 0usize;
        for &b in s {
            let class = *self.classes.get(usize::from(b))?;
            match self.trans.get(state * self.stride + usize::from(class)) {
                Some(&next) if next != u16::MAX => state = usize::from(next),
                _ => {
                    // No match whatever follows, unless a later byte is not ASCII (which the
                    // automaton does not decide).
                    return if s.is_ascii() { Some(false) } else { None };
                }
            }
        }
        self.accept.get(state).copied()
    }
}

/// An XSD pattern facet: an ASCII automaton, else a direct check when the shape allows,
/// otherwise a lazily compiled `regex::Regex` (anchored translation of the XSD regex).
#[derive(Debug)]
pub struct Pattern {
    /// The XSD regex as written in the schema.
    pub xsd: &'static str,
    /// Its translation into `regex` syntax, anchored.
    pub regex: &'static str,
    /// The automaton, for ASCII values.
    pub dfa: Option<Dfa>,
    /// The direct check, when the shape allows one.
    pub fast: Option<Fast>,
    /// The compiled regex, built on first use.
    pub cell: OnceLock<Option<regex::Regex>>,
}

impl Pattern {
    /// Whether `s` matches the whole pattern.
    pub fn matches(&self, s: &str) -> bool {
        if let Some(d) = &self.dfa
            && let Some(b) = d.matches(s.as_bytes())
        {
            return b;
        }
        if let Some(f) = &self.fast
            && let Some(b) = f.matches(s)
        {
            return b;
        }
        // The translation was compiled once at build time; `None` cannot happen, but if it did
        // the value is rejected rather than accepted.
        self.cell
            .get_or_init(|| regex::Regex::new(self.regex).ok())
            .as_ref()
            .is_some_and(|r| r.is_match(s))
    }
}

// ---------------------------------------------------------------------------------------------
// Simple-type checking
// ---------------------------------------------------------------------------------------------

/// Why a value does not satisfy its simple type.
#[derive(Debug)]
pub struct FacetError {
    /// Stable label.
    pub error: XmlError,
    /// Human-readable detail.
    pub reason: String,
}

fn needs_collapse(s: &str) -> bool {
    let b = s.as_bytes();
    // Most values have no blank at all: eight bytes at a time, any byte below `!` (0x21) sends
    // the value to the exact check below.
    let mut words = b.chunks_exact(8);
    let mut low = false;
    for w in &mut words {
        let mut a = [0u8; 8];
        a.copy_from_slice(w);
        let x = u64::from_le_bytes(a);
        low |= x.wrapping_sub(ONES * 0x21) & !x & HIGHS != 0;
    }
    low |= words.remainder().iter().any(|&c| c < 0x21);
    if !low {
        return false;
    }
    if b.first() == Some(&b' ') || b.last() == Some(&b' ') {
        return true;
    }
    let mut prev_space = false;
    for &c in b {
        match c {
            b'\t' | b'\n' | b'\r' => return true,
            b' ' if prev_space => return true,
            b' ' => prev_space = true,
            _ => prev_space = false,
        }
    }
    false
}

/// Applies an XSD whitespace rule.
pub fn normalize_whitespace(ws: WhiteSpace, s: Cow<'_, str>) -> Cow<'_, str> {
    match ws {
        WhiteSpace::Preserve => s,
        WhiteSpace::Replace => {
            if s.bytes().any(|c| matches!(c, b'\t' | b'\n' | b'\r')) {
                Cow::Owned(s.replace(['\t', '\n', '\r'], " "))
            } else {
                s
            }
        }
        WhiteSpace::Collapse => {
            if needs_collapse(&s) {
                let mut out = String::with_capacity(s.len());
                for part in s.split([' ', '\t', '\n', '\r']).filter(|p| !p.is_empty()) {
                    if !out.is_empty() {
                        out.push(' ');
                    }
                    out.push_str(part);
                }
                Cow::Owned(out)
            } else {
                s
            }
        }
    }
}

fn short(s: &str) -> String {
    if s.chars().count() > 60 {
        let mut t: String = s.chars().take(57).collect();
        t.push_str("...");
        t
    } else {
        s.to_string()
    }
}

/// A value parsed by [`SimpleType::check_parsed`] while checking its built-in type, so the
/// `to_*` conversions need not parse it again.
#[derive(Debug, Clone, Copy)]
pub enum Parsed {
    /// A string-based type: nothing parsed.
    Nothing,
    /// `xs:decimal`.
    Decimal(Decimal),
    /// `xs:integer`.
    Integer(i64),
    /// `xs:date`.
    Date(chrono::NaiveDate),
    /// `xs:dateTime`.
    DateTime(chrono::NaiveDateTime),
}

impl SimpleType {
    /// Normalises `raw` per the whitespace rule and checks every facet of every step. Returns
    /// the normalised value.
    pub fn check<'s>(&self, raw: Cow<'s, str>) -> Result<Cow<'s, str>, FacetError> {
        self.check_parsed(raw).map(|(v, _)| v)
    }

    /// [`SimpleType::check`], also returning the value its built-in type parsed.
    pub fn check_parsed<'s>(
        &self,
        raw: Cow<'s, str>,
    ) -> Result<(Cow<'s, str>, Parsed), FacetError> {
        let v = normalize_whitespace(self.ws, raw);
        let mut parsed = Parsed::Nothing;
        let fail = |error: XmlError, reason: String| Err(FacetError { error, reason });
        let numeric = matches!(self.builtin, Builtin::Decimal | Builtin::Integer);
        let num: Option<Number> = match self.builtin {
            Builtin::Decimal => match parse_decimal(&v) {
                Some(d) => {
                    parsed = Parsed::Decimal(d);
                    Some(Number::Decimal(d))
                }
                None => {
                    return fail(
                        XmlError::Datatype,
                        format!("'{}' is not a valid xs:decimal", short(&v)),
                    );
                }
            },
            Builtin::Integer => match parse_integer(&v) {
                Some(i) => {
                    parsed = Parsed::Integer(i);
                    Some(Number::Integer(i))
                }
                None => {
                    return fail(
                        XmlError::Datatype,
                        format!("'{}' is not a valid xs:integer", short(&v)),
                    );
                }
            },
            Builtin::Date => {
                let Some(x) = parse_date(&v) else {
                    return fail(
                        XmlError::Datatype,
                        format!("'{}' is not a valid xs:date", short(&v)),
                    );
                };
                parsed = Parsed::Date(x);
                None
            }
            Builtin::DateTime => {
                let Some(x) = parse_date_time(&v) else {
                    return fail(
                        XmlError::Datatype,
                        format!("'{}' is not a valid xs:dateTime", short(&v)),
                    );
                };
                parsed = Parsed::DateTime(x);
                None
            }
            Builtin::GYear => {
                if !valid_g_year(&v) {
                    return fail(
                        XmlError::Datatype,
                        format!("'{}' is not a valid xs:gYear", short(&v)),
                    );
                }
                None
            }
            _ => None,
        };
        let mut chars: Option<u32> = None;
        for l in self.levels {
            if !l.enumeration.is_empty() && !l.enumeration.contains(&&*v) {
                return fail(
                    XmlError::Enumeration,
                    format!("'{}' is not a value of {}", short(&v), self.name),
                );
            }
            if !numeric && (l.length.is_some() || l.min_length.is_some() || l.max_length.is_some())
            {
                let n = *chars.get_or_insert_with(|| {
                    let n = if v.is_ascii() {
                        v.len()
                    } else {
                        v.chars().count()
                    };
                    u32::try_from(n).unwrap_or(u32::MAX)
                });
                if let Some(len) = l.length
                    && n != len
                {
                    return fail(
                        XmlError::Length,
                        format!(
                            "'{}' has {n} characters; {} requires exactly {len}",
                            short(&v),
                            self.name
                        ),
                    );
                }
                if let Some(min) = l.min_length
                    && n < min
                {
                    return fail(
                        XmlError::Length,
                        format!(
                            "'{}' has {n} characters; {} requires at least {min}",
                            short(&v),
                            self.name
                        ),
                    );
                }
                if let Some(max) = l.max_length
                    && n > max
                {
                    return fail(
                        XmlError::Length,
                        format!(
                            "'{}' has {n} characters; {} allows at most {max}",
                            short(&v),
                            self.name
                        ),
                    );
                }
            }
            if !l.patterns.is_empty() && !l.patterns.iter().any(|p| p.matches(&v)) {
                let pats: Vec<&str> = l.patterns.iter().map(|p| p.xsd).collect();
                return fail(
                    XmlError::Pattern,
                    format!(
                        "'{}' does not match the pattern '{}' of {}",
                        short(&v),
                        pats.join("' or '"),
                        self.name
                    ),
                );
            }
            if let Some(d) = num {
                let counted =
                    (l.total_digits.is_some() || l.fraction_digits.is_some()).then(|| digits(&v));
                if let (Some(t), Some((total, _))) = (l.total_digits, counted)
                    && total > t
                {
                    return fail(
                        XmlError::Digits,
                        format!("'{}' has more than {t} digits", short(&v)),
                    );
                }
                if let (Some(f), Some((_, frac))) = (l.fraction_digits, counted)
                    && frac > f
                {
                    return fail(
                        XmlError::Digits,
                        format!("'{}' has more than {f} fraction digits", short(&v)),
                    );
                }
                // The bound as the messages show it (error path only).
                let shown = |b: Option<&str>| {
                    b.and_then(parse_decimal)
                        .map_or_else(String::new, |b| b.to_string())
                };
                let b = l.bounds();
                if d.cmp_bound(b, 0) == Some(Ordering::Less) {
                    return fail(
                        XmlError::Range,
                        format!("'{}' is less than {}", short(&v), shown(l.min_inclusive)),
                    );
                }
                if d.cmp_bound(b, 1) == Some(Ordering::Greater) {
                    return fail(
                        XmlError::Range,
                        format!("'{}' is greater than {}", short(&v), shown(l.max_inclusive)),
                    );
                }
                if d.cmp_bound(b, 2).is_some_and(|o| o != Ordering::Greater) {
                    return fail(
                        XmlError::Range,
                        format!(
                            "'{}' is not greater than {}",
                            short(&v),
                            shown(l.min_exclusive)
                        ),
                    );
                }
                if d.cmp_bound(b, 3).is_some_and(|o| o != Ordering::Less) {
                    return fail(
                        XmlError::Range,
                        format!(
                            "'{}' is not less than {}",
                            short(&v),
                            shown(l.max_exclusive)
                        ),
                    );
                }
            } else if !numeric {
                // Dates and times in the restricted (zone-less, fixed-width) form compare
                // lexically.
                let out = |lo: Option<&str>, hi: Option<&str>, strict: bool| {
                    lo.is_some_and(|b| if strict { *v <= *b } else { *v < *b })
                        || hi.is_some_and(|b| if strict { *v >= *b } else { *v > *b })
                };
                if matches!(
                    self.builtin,
                    Builtin::Date | Builtin::DateTime | Builtin::GYear
                ) && (out(l.min_inclusive, l.max_inclusive, false)
                    || out(l.min_exclusive, l.max_exclusive, true))
                {
                    return fail(
                        XmlError::Range,
                        format!("'{}' is out of range for {}", short(&v), self.name),
                    );
                }
            }
        }
        Ok((v, parsed))
    }
}

/// A numeric value being checked against its bounds.
#[derive(Debug, Clone, Copy)]
enum Number {
    Integer(i64),
    Decimal(Decimal),
}

impl Number {
    /// How the value compares with bound `k` of `b` (see [`Bounds`]); `None` when there is no
    /// bound or it is not a number. An integer bound of an integer value compares as `i64`,
    /// without going through `Decimal`.
    #[inline]
    fn cmp_bound(self, b: &Bounds, k: usize) -> Option<Ordering> {
        let int = b.int.get(k).copied().flatten();
        let dec = b.dec.get(k).copied().flatten();
        match self {
            Number::Integer(i) => match int {
                Some(x) => Some(i.cmp(&x)),
                None => dec.map(|x| Decimal::from(i).cmp(&x)),
            },
            Number::Decimal(d) => dec.map(|x| d.cmp(&x)),
        }
    }
}

/// (total digits, fraction digits) of a valid decimal lexical value, as XSD counts them
/// (leading zeros of the integer part and trailing zeros of the fraction do not count).
fn digits(s: &str) -> (u32, u32) {
    let s = s.trim_start_matches(['+', '-']);
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    let total = u32::try_from(int.len() + frac.len()).unwrap_or(u32::MAX);
    (total.max(1), u32::try_from(frac.len()).unwrap_or(u32::MAX))
}

/// Parses an `xs:decimal` lexical value, keeping its scale.
pub fn parse_decimal(s: &str) -> Option<Decimal> {
    let b = s.as_bytes();
    let body = b
        .strip_prefix(b"+")
        .or_else(|| b.strip_prefix(b"-"))
        .unwrap_or(b);
    let mut dot = false;
    let mut digits = 0;
    for &c in body {
        match c {
            b'0'..=b'9' => digits += 1,
            b'.' if !dot => dot = true,
            _ => return None,
        }
    }
    if digits == 0 {
        return None;
    }
    let t = s.strip_prefix('+').unwrap_or(s);
    let t: Cow<'_, str> = if t.ends_with('.') {
        Cow::Owned(t.trim_end_matches('.').to_string())
    } else if t.starts_with('.') || t.starts_with("-.") {
        Cow::Owned(t.replacen('.', "0.", 1))
    } else {
        Cow::Borrowed(t)
    };
    Decimal::from_str_exact(&t).ok()
}

/// Parses an `xs:integer` lexical value (within `i64`).
pub fn parse_integer(s: &str) -> Option<i64> {
    // Up to 18 plain digits cannot overflow: one pass, no second parse.
    if (1..=18).contains(&s.len()) && s.bytes().all(|c| c.is_ascii_digit()) {
        return Some(s.bytes().fold(0i64, |n, c| n * 10 + i64::from(c - b'0')));
    }
    let body = s.strip_prefix('+').unwrap_or(s);
    let digits = body.strip_prefix('-').unwrap_or(body);
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    i64::from_str(body).ok()
}

fn num2(b: &[u8]) -> Option<u32> {
    let mut v = 0u32;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(c - b'0');
    }
    Some(v)
}

/// Parses `YYYY-MM-DD` (four-digit year, no zone).
pub fn parse_date(s: &str) -> Option<chrono::NaiveDate> {
    let b = s.as_bytes();
    if b.len() != 10 || b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    let y = num2(b.get(0..4)?)?;
    let m = num2(b.get(5..7)?)?;
    let d = num2(b.get(8..10)?)?;
    chrono::NaiveDate::from_ymd_opt(i32::try_from(y).ok()?, m, d)
}

/// Parses `YYYY-MM-DDThh:mm:ss(.s+)?` (no zone).
pub fn parse_date_time(s: &str) -> Option<chrono::NaiveDateTime> {
    let b = s.as_bytes();
    if b.len() < 19
        || b.get(10) != Some(&b'T')
        || b.get(13) != Some(&b':')
        || b.get(16) != Some(&b':')
    {
        return None;
    }
    let date = parse_date(s.get(0..10)?)?;
    let h = num2(b.get(11..13)?)?;
    let mi = num2(b.get(14..16)?)?;
    let sec = num2(b.get(17..19)?)?;
    let nanos = match b.get(19..) {
        None | Some([]) => 0,
        Some([b'.', frac @ ..]) if !frac.is_empty() && frac.iter().all(u8::is_ascii_digit) => {
            let mut n = 0u32;
            for i in 0..9 {
                n = n * 10 + frac.get(i).map_or(0, |c| u32::from(c - b'0'));
            }
            n
        }
        _ => return None,
    };
    if h == 24 && mi == 0 && sec == 0 && nanos == 0 {
        // 24:00:00 is the first instant of the next day.
        return date.succ_opt()?.and_hms_opt(0, 0, 0);
    }
    date.and_hms_nano_opt(h, mi, sec, nanos)
}

fn valid_g_year(s: &str) -> bool {
    let body = s.strip_prefix('-').unwrap_or(s);
    let digits = body.bytes().take_while(u8::is_ascii_digit).count();
    let zone = body.get(digits..).unwrap_or("");
    digits >= 4
        && (body.len() == digits || digits == 4 || !body.starts_with('0'))
        && (zone.is_empty() || zone == "Z" || (zone.len() == 6 && zone.starts_with(['+', '-'])))
}

/// A leaf value's canonical lexical form, as written by the encoder.
pub trait LeafValue {
    /// The text written into the element.
    fn lexical(&self) -> Cow<'_, str>;
}

impl LeafValue for String {
    fn lexical(&self) -> Cow<'_, str> {
        Cow::Borrowed(self)
    }
}

impl LeafValue for Decimal {
    fn lexical(&self) -> Cow<'_, str> {
        Cow::Owned(self.to_string())
    }
}

impl LeafValue for i64 {
    fn lexical(&self) -> Cow<'_, str> {
        Cow::Owned(self.to_string())
    }
}

impl LeafValue for chrono::NaiveDate {
    fn lexical(&self) -> Cow<'_, str> {
        Cow::Owned(self.format("%Y-%m-%d").to_string())
    }
}

/// Every dateTime of the CATS and P5 schemas has the pattern `\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}`:
/// whole seconds. A value with a fraction (a clock reading put into a message) is written
/// without it, so that what the encoder writes always decodes.
impl LeafValue for chrono::NaiveDateTime {
    fn lexical(&self) -> Cow<'_, str> {
        Cow::Owned(self.format("%Y-%m-%dT%H:%M:%S").to_string())
    }
}

/// Checks and converts a text value.
#[inline]
pub fn to_text(d: &Decoder<'_>, st: &SimpleType, raw: Cow<'_, str>) -> Result<String, Fail> {
    st.check(raw).map(Cow::into_owned).map_err(|e| d.facet(e))
}

/// Checks and converts an enumerated value.
pub fn to_enum<T>(
    d: &Decoder<'_>,
    st: &SimpleType,
    raw: Cow<'_, str>,
    parse: fn(&str) -> Option<T>,
) -> Result<T, Fail> {
    let v = st.check(raw).map_err(|e| d.facet(e))?;
    parse(&v).ok_or_else(|| {
        d.facet(FacetError {
            error: XmlError::Enumeration,
            reason: format!("'{}' is not a value of {}", short(&v), st.name),
        })
    })
}

/// Checks and converts a decimal value (keeping its scale).
pub fn to_decimal(d: &Decoder<'_>, st: &SimpleType, raw: Cow<'_, str>) -> Result<Decimal, Fail> {
    let (v, parsed) = st.check_parsed(raw).map_err(|e| d.facet(e))?;
    if let Parsed::Decimal(x) = parsed {
        return Ok(x);
    }
    parse_decimal(&v).ok_or_else(|| d.datatype(&v, st))
}

/// Checks and converts an integer value.
pub fn to_integer(d: &Decoder<'_>, st: &SimpleType, raw: Cow<'_, str>) -> Result<i64, Fail> {
    let (v, parsed) = st.check_parsed(raw).map_err(|e| d.facet(e))?;
    if let Parsed::Integer(x) = parsed {
        return Ok(x);
    }
    parse_integer(&v).ok_or_else(|| d.datatype(&v, st))
}

/// Checks and converts a date.
pub fn to_date(
    d: &Decoder<'_>,
    st: &SimpleType,
    raw: Cow<'_, str>,
) -> Result<chrono::NaiveDate, Fail> {
    let (v, parsed) = st.check_parsed(raw).map_err(|e| d.facet(e))?;
    if let Parsed::Date(x) = parsed {
        return Ok(x);
    }
    parse_date(&v).ok_or_else(|| d.datatype(&v, st))
}

/// Checks and converts a date and time.
pub fn to_date_time(
    d: &Decoder<'_>,
    st: &SimpleType,
    raw: Cow<'_, str>,
) -> Result<chrono::NaiveDateTime, Fail> {
    let (v, parsed) = st.check_parsed(raw).map_err(|e| d.facet(e))?;
    if let Parsed::DateTime(x) = parsed {
        return Ok(x);
    }
    parse_date_time(&v).ok_or_else(|| d.datatype(&v, st))
}

/// 1-based pointer index of the `i`th (0-based) item of a repeated element.
pub fn index_of(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX - 1).saturating_add(1)
}

// ---------------------------------------------------------------------------------------------
// Pointer
// ---------------------------------------------------------------------------------------------

/// An XPath-style location from the root: `/CC015C/Guarantee[2]/guaranteeType`. Repeatable
/// elements (maxOccurs > 1) always carry their 1-based index; others carry none. An attribute is
/// a last segment `@name`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pointer {
    segs: Vec<(&'static str, u32)>,
}

impl Pointer {
    /// The pointer of a root element.
    pub fn root(name: &'static str) -> Pointer {
        Pointer {
            segs: vec![(name, 0)],
        }
    }
    /// Descends into `name`; `index` is 1-based, or 0 for a non-repeatable element.
    #[inline]
    pub fn push(&mut self, name: &'static str, index: u32) {
        self.segs.push((name, index));
    }
    /// Goes back up one level.
    #[inline]
    pub fn pop(&mut self) {
        self.segs.pop();
    }
    /// The segments: (element name, index or 0).
    pub fn segments(&self) -> &[(&'static str, u32)] {
        &self.segs
    }
    /// The pointer extended by one more segment, as text.
    pub fn child_text(&self, name: &str, index: u32) -> String {
        let mut s = self.to_string();
        s.push('/');
        s.push_str(name);
        if index > 0 {
            s.push_str(&format!("[{index}]"));
        }
        s
    }
}

impl fmt::Display for Pointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, index) in &self.segs {
            write!(f, "/{name}")?;
            if *index > 0 {
                write!(f, "[{index}]")?;
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Decoder
// ---------------------------------------------------------------------------------------------

/// The first problem found by the decoder: where (byte offset, pointer), what and why.
#[derive(Debug)]
pub struct Fail(pub(crate) Box<FailInner>);

#[derive(Debug)]
pub(crate) struct FailInner {
    pub offset: u64,
    pub error: XmlError,
    pub pointer: String,
    pub reason: String,
}

/// Streaming decoder state shared by the generated decoders.
#[derive(Debug)]
pub struct Decoder<'a> {
    pub(crate) reader: Reader<&'a [u8]>,
    pub(crate) path: Pointer,
    pub(crate) depth: usize,
    pub(crate) max_depth: usize,
    /// Offset of the start of the last event read.
    pub(crate) event_start: u64,
    /// The input (after the BOM), known to be UTF-8.
    pub(crate) input: &'a str,
    /// Offset of the start tag of the element whose value is being checked.
    pub(crate) element_start: u64,
    /// Offset of the BOM we skipped (positions are relative to the original bytes).
    pub(crate) base: u64,
    /// Whether unprefixed elements are (wrongly) in a non-empty default namespace, per depth
    /// where an `xmlns` attribute changed it.
    pub(crate) default_ns: Vec<(usize, bool)>,
    /// The child [`Decoder::next_child`] just returned, when it was read whole (start tag, text
    /// and end tag) without going through quick-xml events.
    inline: Option<InlineLeaf<'a>>,
    /// Whether [`Decoder::next_child`] may read `<name>text</name>`, `<name>` and `</name>`
    /// straight from the input (always, except in the test that compares both ways).
    pub(crate) inline_leaves: bool,
    /// Qualified names of the open elements (those whose end tag is still to be read), innermost
    /// last. quick-xml's own end-name check cannot see the start tags read straight from the
    /// input, so the decoder checks end tags against this stack itself, with quick-xml's errors.
    pub(crate) open: Vec<&'a [u8]>,
}

/// An element `<name>text</name>` read straight from the input: no attributes, no markup,
/// references or carriage returns in its text. Such an element gives quick-xml's reader the same
/// events whichever way it is read, and skipping them is most of the decoder's speed.
#[derive(Debug, Clone, Copy)]
struct InlineLeaf<'a> {
    /// The text, borrowed from the input.
    text: &'a str,
    /// Offset of the text.
    text_offset: u64,
    /// Offset of the end tag.
    end_offset: u64,
}

/// Byte classes of the fast path, one table lookup per byte.
const BLANK: u8 = 1;
/// What ends a text the fast path can take as it is: markup, a reference, a carriage return.
const TEXT_END: u8 = 4;
/// What ends the name of a bare start tag (see `find_name_end`).
const NAME_END: u8 = 8;

static CLASSES: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        if matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
            t[i] |= BLANK;
        }
        if matches!(c, b'<' | b'&' | b'\r') {
            t[i] |= TEXT_END;
        }
        if c < 0x21 || matches!(c, b'>' | b'"' | b'\'' | b'/') {
            t[i] |= NAME_END;
        }
        i += 1;
    }
    t
};

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte of `w` that equals `c` is set in the result, exactly for the lowest
/// such byte (higher ones may be false positives, which the callers never look at).
#[inline(always)]
fn eq_bytes(w: u64, c: u8) -> u64 {
    let x = w ^ (ONES * u64::from(c));
    x.wrapping_sub(ONES) & !x & HIGHS
}

/// Eight bytes of `b` from `i` on, as a little-endian word.
#[inline(always)]
fn word(b: &[u8], i: usize) -> Option<u64> {
    let chunk: [u8; 8] = b.get(i..i.checked_add(8)?)?.try_into().ok()?;
    Some(u64::from_le_bytes(chunk))
}

/// The index of the first byte from `i` on that is not a blank, eight bytes at a time. The
/// decoder only runs on input without the control characters XML forbids (see
/// [`first_bad_char`]), so every byte below `!` (0x21) is a blank.
#[inline(always)]
fn skip_blanks(b: &[u8], mut i: usize) -> Option<usize> {
    while let Some(w) = word(b, i) {
        // High bit of each byte above 0x20 (exact per byte: no carry crosses bytes).
        let m = (((w & !HIGHS) + ONES * 0x5F) | w) & HIGHS;
        if m != 0 {
            return Some(i + (m.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    scan(b, i, BLANK, false)
}

/// The index of the first byte from `i` on that ends a start tag's name when the tag is a bare
/// `<name>`: `>`, or anything that would make it something else to quick-xml (a blank, a quote,
/// `/`), eight bytes at a time.
#[inline(always)]
fn find_name_end(b: &[u8], mut i: usize) -> Option<usize> {
    while let Some(w) = word(b, i) {
        // As in `find_text_end`, the lowest bit of the union is exact; bytes below `!` are
        // blanks (see `skip_blanks`).
        let m = eq_bytes(w, b'>')
            | eq_bytes(w, b'"')
            | eq_bytes(w, b'\'')
            | eq_bytes(w, b'/')
            | (w.wrapping_sub(ONES * 0x21) & !w & HIGHS);
        if m != 0 {
            return Some(i + (m.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    scan(b, i, NAME_END, true)
}

/// The index of the first `<`, `&` or carriage return from `i` on, eight bytes at a time.
#[inline(always)]
fn find_text_end(b: &[u8], mut i: usize) -> Option<usize> {
    while let Some(w) = word(b, i) {
        // The lowest bit set in the union is exact: a false positive sits above a true match
        // of the same byte, whose own bit is lower.
        let m = eq_bytes(w, b'<') | eq_bytes(w, b'&') | eq_bytes(w, b'\r');
        if m != 0 {
            return Some(i + (m.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    scan(b, i, TEXT_END, true)
}

/// The index of the first byte of `b` from `from` on that is (`want`) or is not (`!want`) in
/// `class`; `None` at the end of the input.
#[inline(always)]
fn scan(b: &[u8], from: usize, class: u8, want: bool) -> Option<usize> {
    b.get(from..)?
        .iter()
        .position(|&c| (CLASSES[usize::from(c)] & class != 0) == want)
        .map(|p| p + from)
}

/// Attributes as (name, normalised value).
pub type Attributes = Vec<(String, String)>;

#[inline]
fn is_blank(b: &[u8]) -> bool {
    b.iter().all(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r'))
}

/// XML 1.0 end-of-line handling: CR LF and lone CR become LF.
fn normalize_eol(s: &str) -> String {
    s.replace("\r\n", "\n").replace('\r', "\n")
}

fn has_bad_chars(s: &str) -> bool {
    first_bad_char(s.as_bytes()).is_some()
}

/// Offset of the first character XML 1.0 does not allow (C0 controls other than tab, line feed
/// and carriage return; U+FFFE, U+FFFF) in UTF-8 bytes.
pub(crate) fn first_bad_char(b: &[u8]) -> Option<usize> {
    // Branch-free screening (vectorises); the exact search only runs on a suspicious document.
    let mut suspicious = false;
    for &c in b {
        suspicious |= ((c < 0x20) & (c != b'\t') & (c != b'\n') & (c != b'\r')) | (c == 0xEF);
    }
    if !suspicious {
        return None;
    }
    b.iter().enumerate().find_map(|(i, &c)| {
        let bad = (c < 0x20 && !matches!(c, b'\t' | b'\n' | b'\r'))
            || (c == 0xEF
                && b.get(i + 1) == Some(&0xBF)
                && matches!(b.get(i + 2), Some(0xBE | 0xBF)));
        bad.then_some(i)
    })
}

impl<'a> Decoder<'a> {
    /// The text of an event borrowed from the input as `&str` without validating it again (the
    /// whole input was checked to be UTF-8), line ends normalised as XML 1.0 requires.
    #[inline]
    fn content(&self, b: &[u8]) -> Result<Cow<'a, str>, Fail> {
        let off = (b.as_ptr() as usize).wrapping_sub(self.input.as_ptr() as usize);
        let s: &'a str = match self.input.get(off..off.saturating_add(b.len())) {
            Some(s) if s.as_ptr() == b.as_ptr() => s,
            _ => {
                return match std::str::from_utf8(b) {
                    Ok(s) => Ok(Cow::Owned(normalize_eol(s))),
                    Err(_) => Err(self.fail(XmlError::Utf8, "invalid UTF-8".into())),
                };
            }
        };
        Ok(if s.contains('\r') {
            Cow::Owned(normalize_eol(s))
        } else {
            Cow::Borrowed(s)
        })
    }

    pub(crate) fn new(text: &'a str, max_depth: usize, base: u64) -> Decoder<'a> {
        let mut reader = Reader::from_reader(text.as_bytes());
        let c = reader.config_mut();
        c.trim_text(false);
        c.check_end_names = true;
        c.check_comments = true;
        c.expand_empty_elements = false;
        c.allow_dangling_amp = false;
        Decoder {
            input: text,
            reader,
            path: Pointer::default(),
            depth: 0,
            max_depth,
            event_start: 0,
            element_start: 0,
            base,
            default_ns: Vec::new(),
            inline: None,
            inline_leaves: true,
            open: Vec::with_capacity(16),
        }
    }

    /// Chooses whether elements may be read straight from the input (see
    /// [`Decoder::inline_leaves`]). Without, quick-xml checks end tags itself; with, the decoder
    /// does ([`Decoder::check_end`]) and quick-xml's check is off.
    pub(crate) fn set_inline(&mut self, on: bool) {
        self.inline_leaves = on;
        let c = self.reader.config_mut();
        c.check_end_names = !on;
        c.allow_unmatched_ends = on;
    }

    /// Records the start tag just read by quick-xml (at `event_start`) as open.
    #[inline]
    pub(crate) fn opened(&mut self, name_len: usize) {
        let at = usize::try_from(self.event_start).unwrap_or(usize::MAX);
        let name = self
            .input
            .as_bytes()
            .get(at.saturating_add(1)..at.saturating_add(1).saturating_add(name_len))
            .unwrap_or_default();
        self.open.push(name);
    }

    /// Checks an end tag read by quick-xml (at `event_start`) against the innermost open
    /// element and closes it: the same error, at the same place, as quick-xml's own check
    /// (`check_end_names`, `allow_unmatched_ends = false`).
    #[inline]
    pub(crate) fn check_end(&mut self, name: &[u8]) -> Result<(), Fail> {
        use quick_xml::errors::IllFormedError;
        let ill = match self.open.pop() {
            Some(open) if open == name => return Ok(()),
            Some(open) => IllFormedError::MismatchedEndTag {
                expected: String::from_utf8_lossy(open).into_owned(),
                found: String::from_utf8_lossy(name).into_owned(),
            },
            None => IllFormedError::UnmatchedEndTag(String::from_utf8_lossy(name).into_owned()),
        };
        let (error, reason) = super::error::classify_syntax(&quick_xml::Error::IllFormed(ill));
        Err(self.fail_at(self.event_start, error, self.path.to_string(), reason))
    }

    pub(crate) fn fail_at(
        &self,
        offset: u64,
        error: XmlError,
        pointer: String,
        reason: String,
    ) -> Fail {
        Fail(Box::new(FailInner {
            offset: offset + self.base,
            error,
            pointer,
            reason,
        }))
    }

    fn fail(&self, error: XmlError, reason: String) -> Fail {
        self.fail_at(self.event_start, error, self.path.to_string(), reason)
    }

    #[inline]
    pub(crate) fn read(&mut self) -> Result<Event<'a>, Fail> {
        self.event_start = self.reader.buffer_position();
        match self.reader.read_event() {
            Ok(e) => Ok(e),
            Err(e) => {
                let pos = self.reader.error_position();
                let (error, reason) = super::error::classify_syntax(&e);
                Err(self.fail_at(pos, error, self.path.to_string(), reason))
            }
        }
    }

    fn other_event(&self, e: &Event<'_>) -> Fail {
        match e {
            Event::DocType(_) => self.fail(
                XmlError::Doctype,
                "a document type declaration is not allowed".into(),
            ),
            Event::PI(_) => self.fail(
                XmlError::ProcessingInstruction,
                "processing instructions are not allowed".into(),
            ),
            Event::Decl(_) => self.fail(
                XmlError::Syntax,
                "an XML declaration is only allowed at the start".into(),
            ),
            Event::Eof => self.fail(
                XmlError::Truncated,
                "the document ends inside an element".into(),
            ),
            _ => self.fail(XmlError::Syntax, "unexpected markup".into()),
        }
    }

    /// Reads up to the next child element of the current element; `None` at its end tag.
    /// Returns the child's start tag and whether it is empty (`<x/>`).
    ///
    /// A child written `<name>text</name>` (blanks before it allowed) is read whole, straight
    /// from the input, and its text kept for [`Decoder::text`]; anything else goes through
    /// quick-xml's events. Both ways give the same results, errors and positions.
    pub fn next_child(&mut self) -> Result<Option<(BytesStart<'a>, bool)>, Fail> {
        if let Some(leaf) = self.inline.take() {
            // The current element was read whole: its content is that text and nothing else
            // (the decoder of an element-only type asks for children, not for text).
            if is_blank(leaf.text.as_bytes()) {
                self.event_start = leaf.end_offset;
                self.end_element();
                return Ok(None);
            }
            self.event_start = leaf.text_offset;
            return Err(self.fail(
                XmlError::UnexpectedText,
                "text is not allowed here: the element has element-only content".into(),
            ));
        }
        if self.inline_leaves
            && let Some(markup) = self.inline_markup()
        {
            return Ok(markup);
        }
        loop {
            let ev = self.read()?;
            match ev {
                Event::Start(e) => {
                    self.check_child()?;
                    self.opened(e.name().as_ref().len());
                    self.element_start = self.event_start;
                    self.depth += 1;
                    return Ok(Some((e, false)));
                }
                Event::Empty(e) => {
                    self.check_child()?;
                    self.element_start = self.event_start;
                    self.depth += 1;
                    return Ok(Some((e, true)));
                }
                Event::End(e) => {
                    self.check_end(e.name().as_ref())?;
                    self.end_element();
                    return Ok(None);
                }
                Event::Text(t) => {
                    if !is_blank(&t) {
                        return Err(self.fail(
                            XmlError::UnexpectedText,
                            "text is not allowed here: the element has element-only content".into(),
                        ));
                    }
                }
                Event::CData(_) | Event::GeneralRef(_) => {
                    return Err(self.fail(
                        XmlError::UnexpectedText,
                        "text is not allowed here: the element has element-only content".into(),
                    ));
                }
                Event::Comment(_) => {}
                other => return Err(self.other_event(&other)),
            }
        }
    }

    /// The fast path of [`Decoder::next_child`], straight from the input. quick-xml's reader is
    /// between two markup events here (its next read starts with text), so consuming bytes up to
    /// the end of a markup leaves it in the state reading the same events would. Blanks followed
    /// by markup are consumed (the text event they make is skipped anyway, and the markup starts
    /// at the same offset). Then, when the input continues with
    /// - `<name>text</name>` (see [`InlineLeaf`]): the whole element, returning its start tag;
    /// - `<name>` followed by anything else: that start tag;
    /// - `</name>` closing the current element: that end tag, returning `Some(None)`.
    ///
    /// The name is everything between `<` and `>` when that holds no blank, quote or `/` (what
    /// quick-xml would take as the name, with no attributes). Anything else (attributes, blanks
    /// in a tag, comments, a wrong end name...) is left to quick-xml: `None`.
    #[inline]
    fn inline_markup(&mut self) -> Option<Option<(BytesStart<'a>, bool)>> {
        let pos = usize::try_from(self.reader.buffer_position()).ok()?;
        let b = self.input.as_bytes();
        let lt = skip_blanks(b, pos)?;
        if b.get(lt) != Some(&b'<') {
            return None;
        }
        if lt > pos {
            std::io::BufRead::consume(&mut self.reader.stream(), lt - pos);
        }
        let first = *b.get(lt + 1)?;
        if first == b'/' {
            let name = *self.open.last()?;
            let close = lt + 2 + name.len();
            if b.get(lt + 2..close) != Some(name) || b.get(close) != Some(&b'>') {
                return None;
            }
            std::io::BufRead::consume(&mut self.reader.stream(), close + 1 - lt);
            self.open.pop();
            self.event_start = lt as u64;
            self.end_element();
            return Some(None);
        }
        if !first.is_ascii_alphabetic() || self.depth >= self.max_depth {
            return None;
        }
        let gt = find_name_end(b, lt + 2)?;
        if b.get(gt) != Some(&b'>') {
            return None;
        }
        let name = self.input.get(lt + 1..gt)?;
        let text_end = find_text_end(b, gt + 1)?;
        let close = text_end + 2 + name.len();
        let leaf = if b.get(text_end..text_end + 2) == Some(b"</")
            && b.get(text_end + 2..close) == Some(name.as_bytes())
            && b.get(close) == Some(&b'>')
        {
            Some(self.input.get(gt + 1..text_end)?)
        } else {
            None
        };
        self.event_start = lt as u64;
        self.element_start = self.event_start;
        self.depth += 1;
        if let Some(text) = leaf {
            std::io::BufRead::consume(&mut self.reader.stream(), close + 1 - lt);
            self.inline = Some(InlineLeaf {
                text,
                text_offset: (gt + 1) as u64,
                end_offset: text_end as u64,
            });
        } else {
            std::io::BufRead::consume(&mut self.reader.stream(), gt + 1 - lt);
            self.open.push(name.as_bytes());
        }
        Some(Some((BytesStart::from_content(name, name.len()), false)))
    }

    #[inline]
    fn end_element(&mut self) {
        while self
            .default_ns
            .last()
            .is_some_and(|(d, _)| *d >= self.depth)
        {
            self.default_ns.pop();
        }
        self.depth = self.depth.saturating_sub(1);
    }

    #[inline]
    fn check_child(&self) -> Result<(), Fail> {
        if self.depth + 1 > self.max_depth {
            return Err(self.fail(
                XmlError::Depth,
                format!("elements are nested deeper than {}", self.max_depth),
            ));
        }
        Ok(())
    }

    /// Error path: a child start tag with a prefix (names in the schema tables have none, so a
    /// prefixed child never matches one and always ends up here).
    fn prefixed_child(&self, e: &BytesStart<'_>) -> Option<Fail> {
        e.name().prefix()?;
        let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
        Some(self.fail_at(
            self.event_start,
            XmlError::UnknownElement,
            self.path.child_text(&name, 0),
            format!("element '{name}' is not expected: child elements are unqualified"),
        ))
    }

    /// [`Decoder::no_attributes`] then [`Decoder::text`] for a simple-typed child: the
    /// same checks in the same order, in one call for a child read whole.
    #[inline]
    pub fn leaf_text(&mut self, start: &BytesStart<'_>, empty: bool) -> Result<Cow<'a, str>, Fail> {
        if let Some(leaf) = self.inline {
            // `<name>text</name>`: no attributes.
            self.apply_default_ns(None)?;
            self.inline = None;
            self.event_start = leaf.end_offset;
            self.end_element();
            return Ok(Cow::Borrowed(leaf.text));
        }
        self.no_attributes(start)?;
        self.text(empty)
    }

    /// Reads the text content of a simple-typed element up to its end tag (entities and
    /// character references resolved, line ends normalised).
    pub fn text(&mut self, empty: bool) -> Result<Cow<'a, str>, Fail> {
        if empty {
            return Ok(Cow::Borrowed(""));
        }
        if let Some(leaf) = self.inline.take() {
            self.event_start = leaf.end_offset;
            self.end_element();
            return Ok(Cow::Borrowed(leaf.text));
        }
        // One text event (or none) and the end tag, the text borrowed from the input.
        let mut first: Option<Cow<'a, str>> = None;
        let mut pending = match self.read()? {
            Event::Text(t) => {
                let s = self.content(&t)?;
                match self.read()? {
                    Event::End(e) => {
                        self.check_end(e.name().as_ref())?;
                        self.end_element();
                        return Ok(s);
                    }
                    other => {
                        first = Some(s);
                        Some(other)
                    }
                }
            }
            Event::End(e) => {
                self.check_end(e.name().as_ref())?;
                self.end_element();
                return Ok(Cow::Borrowed(""));
            }
            other => Some(other),
        };
        let mut acc: Option<String> = None;
        let push = |first: &mut Option<Cow<'a, str>>, acc: &mut Option<String>, s: Cow<'a, str>| {
            if let Some(a) = acc.as_mut() {
                a.push_str(&s);
            } else if let Some(f) = first.take() {
                let mut a = f.into_owned();
                a.push_str(&s);
                *acc = Some(a);
            } else {
                *first = Some(s);
            }
        };
        loop {
            let ev = match pending.take() {
                Some(ev) => ev,
                None => self.read()?,
            };
            match ev {
                Event::Text(t) => {
                    let s = self.content(&t)?;
                    push(&mut first, &mut acc, s);
                }
                Event::CData(c) => {
                    let s = self.content(&c)?;
                    push(&mut first, &mut acc, s);
                }
                Event::GeneralRef(r) => {
                    let ch = self.resolve_ref(&r)?;
                    let mut buf = [0u8; 4];
                    push(
                        &mut first,
                        &mut acc,
                        Cow::Owned(ch.encode_utf8(&mut buf).to_string()),
                    );
                }
                Event::Comment(_) => {}
                Event::End(e) => {
                    self.check_end(e.name().as_ref())?;
                    self.end_element();
                    break;
                }
                Event::Start(e) | Event::Empty(e) => {
                    let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                    return Err(self.fail_at(
                        self.event_start,
                        XmlError::UnknownElement,
                        self.path.child_text(&name, 0),
                        format!("element '{name}' is not expected: the parent has a simple type"),
                    ));
                }
                other => return Err(self.other_event(&other)),
            }
        }
        Ok(match acc {
            Some(a) => Cow::Owned(a),
            None => first.unwrap_or(Cow::Borrowed("")),
        })
    }

    fn resolve_ref(&self, r: &quick_xml::events::BytesRef<'_>) -> Result<char, Fail> {
        if r.is_char_ref() {
            return match r.resolve_char_ref() {
                Ok(Some(c))
                    if c != '\u{0}'
                        && (!c.is_control()
                            || matches!(c, '\t' | '\n' | '\r')
                            || u32::from(c) >= 0x7F) =>
                {
                    Ok(c)
                }
                _ => Err(self.fail(XmlError::Syntax, "invalid character reference".into())),
            };
        }
        match r.as_ref() {
            b"amp" => Ok('&'),
            b"lt" => Ok('<'),
            b"gt" => Ok('>'),
            b"quot" => Ok('"'),
            b"apos" => Ok('\''),
            other => Err(self.fail(
                XmlError::Entity,
                format!("undefined entity '&{};'", String::from_utf8_lossy(other)),
            )),
        }
    }

    fn attr_iter(
        &self,
        start: &BytesStart<'_>,
        root: bool,
    ) -> Result<(Attributes, Option<bool>), Fail> {
        let mut out = Vec::new();
        let mut default_ns: Option<bool> = None;
        for a in start.attributes().with_checks(true) {
            let a =
                a.map_err(|e| self.fail(XmlError::Syntax, format!("malformed attribute: {e}")))?;
            let key = a.key.as_ref();
            if key == b"xmlns" {
                default_ns = Some(!a.value.is_empty());
                continue;
            }
            if key.starts_with(b"xmlns:") {
                continue;
            }
            let val = match a.unescape_value() {
                Ok(v) => v.into_owned(),
                Err(e) => {
                    let pos = if matches!(e, quick_xml::Error::Escape(_)) {
                        XmlError::Entity
                    } else {
                        XmlError::Syntax
                    };
                    return Err(self.fail(pos, format!("attribute value: {e}")));
                }
            };
            if has_bad_chars(&val) {
                return Err(self.fail(
                    XmlError::Syntax,
                    "a character that XML does not allow".into(),
                ));
            }
            if root && (key == b"xsi:schemaLocation" || key == b"xsi:noNamespaceSchemaLocation") {
                continue;
            }
            // Attribute value normalisation (XML 1.0 §3.3.3, CDATA attributes).
            let val = val.replace(['\t', '\n', '\r'], " ");
            out.push((String::from_utf8_lossy(key).into_owned(), val));
        }
        Ok((out, default_ns))
    }

    #[inline]
    fn apply_default_ns(&mut self, set: Option<bool>) -> Result<(), Fail> {
        if let Some(nonempty) = set {
            self.default_ns.push((self.depth, nonempty));
        }
        if self.depth > 1 && self.default_ns.last().is_some_and(|(_, ne)| *ne) {
            return Err(self.fail(
                XmlError::Namespace,
                "child elements must be in no namespace (a default namespace is in force)".into(),
            ));
        }
        Ok(())
    }

    /// Checks that an element carries no attributes (namespace declarations aside).
    #[inline]
    pub fn no_attributes(&mut self, start: &BytesStart<'_>) -> Result<(), Fail> {
        if is_blank(start.attributes_raw()) {
            return self.apply_default_ns(None);
        }
        let (attrs, ns) = self.attr_iter(start, self.depth <= 1)?;
        if let Some((k, _)) = attrs.first() {
            return Err(self.unknown_attribute(k));
        }
        self.apply_default_ns(ns)
    }

    /// The attributes of an element (namespace declarations and `xsi:schemaLocation` on the
    /// root left out), unescaped and normalised.
    pub fn attributes(&mut self, start: &BytesStart<'_>) -> Result<Vec<(String, String)>, Fail> {
        let (attrs, ns) = self.attr_iter(start, self.depth <= 1)?;
        self.apply_default_ns(ns)?;
        Ok(attrs)
    }

    /// Error: an attribute the schema does not declare.
    pub fn unknown_attribute(&self, key: &str) -> Fail {
        self.fail_at(
            self.event_start,
            XmlError::UnknownAttribute,
            format!("{}/@{key}", self.path),
            format!("attribute '{key}' is not allowed here"),
        )
    }

    /// Error: a required attribute is missing.
    pub fn missing_attribute(&self, key: &str) -> Fail {
        self.fail_at(
            self.event_start,
            XmlError::MissingAttribute,
            format!("{}/@{key}", self.path),
            format!("attribute '{key}' is required"),
        )
    }

    /// Descends into a child element (`index` 1-based for repeatable elements, else 0).
    #[inline]
    pub fn enter(&mut self, name: &'static str, index: u32) {
        self.path.push(name, index);
    }

    /// Descends into an attribute, for error pointers.
    pub fn enter_attribute(&mut self, name: &'static str) {
        self.path.push(name, 0);
    }

    /// Leaves a child element; `empty` when it was written `<x/>` (no end tag was read).
    #[inline]
    pub fn leave_child(&mut self, empty: bool) {
        self.path.pop();
        if empty {
            self.end_element();
        }
    }

    /// Goes back up.
    #[inline]
    pub fn leave(&mut self) {
        self.path.pop();
    }

    /// Checks order and occurrences for child `i` of `ty` and counts it; returns the pointer
    /// index to use for it.
    #[inline]
    pub fn step(
        &self,
        ty: &TypeInfo,
        i: usize,
        counts: &mut [u32],
        pos: &mut usize,
        child_empty: bool,
    ) -> Result<u32, Fail> {
        // Fast path: in order, nothing mandatory skipped, not too many. Anything else goes to
        // `step_slow`, which checks again and reports the problem.
        if let (Some(el), Some(&count)) = (ty.elements.get(i), counts.get(i))
            && i >= *pos
            && count < el.max
            && (*pos..i).all(|j| {
                matches!((ty.elements.get(j), counts.get(j)), (Some(e), Some(n)) if *n >= e.min)
            })
        {
            *pos = i;
            if let Some(c) = counts.get_mut(i) {
                *c += 1;
            }
            return Ok(if el.max > 1 { count + 1 } else { 0 });
        }
        self.step_slow(ty, i, counts, pos, child_empty)
    }

    #[cold]
    #[inline(never)]
    fn step_slow(
        &self,
        ty: &TypeInfo,
        i: usize,
        counts: &mut [u32],
        pos: &mut usize,
        child_empty: bool,
    ) -> Result<u32, Fail> {
        let Some(el) = ty.elements.get(i) else {
            return Err(self.fail(XmlError::UnknownElement, "schema table mismatch".into()));
        };
        let count = counts.get(i).copied().unwrap_or(0);
        if i < *pos {
            let after = ty.elements.get(*pos).map_or("", |e| e.name);
            return Err(self.fail_at(
                self.event_start,
                XmlError::OutOfOrder,
                self.path
                    .child_text(el.name, if el.max > 1 { count + 1 } else { 0 }),
                format!(
                    "element '{}' is not expected here: it must come before '{after}'",
                    el.name
                ),
            ));
        }
        for j in *pos..i {
            if let (Some(e), Some(n)) = (ty.elements.get(j), counts.get(j))
                && *n < e.min
            {
                if self.later_sibling(e.name, child_empty) {
                    return Err(self.fail_at(
                        self.event_start,
                        XmlError::OutOfOrder,
                        self.path
                            .child_text(el.name, if el.max > 1 { count + 1 } else { 0 }),
                        format!(
                            "element '{}' is not expected here: '{}' must come first",
                            el.name, e.name
                        ),
                    ));
                }
                return Err(self.fail_at(
                    self.event_start,
                    XmlError::MissingElement,
                    self.path
                        .child_text(e.name, if e.max > 1 { n + 1 } else { 0 }),
                    format!("element '{}' is missing before '{}'", e.name, el.name),
                ));
            }
        }
        *pos = i;
        if count >= el.max {
            return Err(self.fail_at(
                self.event_start,
                XmlError::TooMany,
                self.path
                    .child_text(el.name, if el.max > 1 { count + 1 } else { 0 }),
                format!("element '{}' occurs more than {} times", el.name, el.max),
            ));
        }
        if let Some(c) = counts.get_mut(i) {
            *c += 1;
        }
        Ok(if el.max > 1 { count + 1 } else { 0 })
    }

    /// Error path only: whether a later sibling of the current child (whose start tag was just
    /// read) is called `name`, i.e. whether a "missing" element is really out of order.
    fn later_sibling(&self, name: &str, child_empty: bool) -> bool {
        let mut r = self.reader.clone();
        // Inside the current child unless it was `<x/>` or read whole.
        let mut depth = usize::from(!child_empty && self.inline.is_none());
        // The names opened in the scan (quick-xml's end-name check, when it is off: a mismatched
        // end tag ends the scan as quick-xml's error would).
        let mut opened: Vec<Vec<u8>> = Vec::new();
        if depth == 1 {
            opened.push(self.open.last().map_or_else(Vec::new, |n| n.to_vec()));
        }
        let mut scanned = 0usize;
        loop {
            scanned += 1;
            if scanned > 100_000 {
                return false;
            }
            match r.read_event() {
                Ok(Event::Start(e)) => {
                    if depth == 0 && e.name().as_ref() == name.as_bytes() {
                        return true;
                    }
                    opened.push(e.name().as_ref().to_vec());
                    depth += 1;
                }
                Ok(Event::Empty(e)) => {
                    if depth == 0 && e.name().as_ref() == name.as_bytes() {
                        return true;
                    }
                }
                Ok(Event::End(e)) => {
                    if depth == 0 || opened.pop().as_deref() != Some(e.name().as_ref()) {
                        return false;
                    }
                    depth -= 1;
                }
                Ok(Event::Eof) | Err(_) => return false,
                Ok(_) => {}
            }
        }
    }

    /// Checks, at the end tag of an element of type `ty`, that no mandatory child is missing.
    pub fn finish(&self, ty: &TypeInfo, counts: &[u32]) -> Result<(), Fail> {
        for (e, n) in ty.elements.iter().zip(counts) {
            if *n < e.min {
                return Err(self.fail_at(
                    self.event_start,
                    XmlError::MissingElement,
                    self.path
                        .child_text(e.name, if e.max > 1 { n + 1 } else { 0 }),
                    format!("element '{}' is missing", e.name),
                ));
            }
        }
        Ok(())
    }

    /// Error: a mandatory child missing (normally caught by [`Decoder::finish`]).
    pub fn missing_after(&self, ty: &TypeInfo, i: usize) -> Fail {
        let name = ty.elements.get(i).map_or("", |e| e.name);
        self.fail_at(
            self.event_start,
            XmlError::MissingElement,
            self.path.child_text(name, 0),
            format!("element '{name}' is missing"),
        )
    }

    /// Error: a child element the type does not declare.
    pub fn unexpected_element(&self, ty: &TypeInfo, child: &BytesStart<'_>, _pos: usize) -> Fail {
        if let Some(f) = self.prefixed_child(child) {
            return f;
        }
        let name = String::from_utf8_lossy(child.name().as_ref()).into_owned();
        self.fail_at(
            self.event_start,
            XmlError::UnknownElement,
            self.path.child_text(&name, 0),
            format!("element '{name}' is not allowed in {}", ty.name),
        )
    }

    /// Error from a facet check, at the current element.
    pub fn facet(&self, e: FacetError) -> Fail {
        self.fail_at(self.element_start, e.error, self.path.to_string(), e.reason)
    }

    fn datatype(&self, v: &str, st: &SimpleType) -> Fail {
        self.facet(FacetError {
            error: XmlError::Datatype,
            reason: format!("'{}' is not a valid {}", short(v), st.name),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Writer
// ---------------------------------------------------------------------------------------------

/// An indenting XML writer for the generated encoders.
#[derive(Debug, Default)]
pub struct Writer {
    pub(crate) buf: Vec<u8>,
    depth: usize,
}

fn escape_into(buf: &mut Vec<u8>, s: &str, attr: bool) {
    let mut last = 0;
    for (i, b) in s.bytes().enumerate() {
        let rep: &[u8] = match b {
            b'&' => b"&amp;",
            b'<' => b"&lt;",
            b'>' => b"&gt;",
            b'\r' => b"&#13;",
            b'"' if attr => b"&quot;",
            b'\t' if attr => b"&#9;",
            b'\n' if attr => b"&#10;",
            _ => continue,
        };
        buf.extend_from_slice(s.as_bytes().get(last..i).unwrap_or_default());
        buf.extend_from_slice(rep);
        last = i + 1;
    }
    buf.extend_from_slice(s.as_bytes().get(last..).unwrap_or_default());
}

impl Writer {
    /// A writer with room for `cap` bytes.
    pub fn with_capacity(cap: usize) -> Writer {
        Writer {
            buf: Vec::with_capacity(cap),
            depth: 0,
        }
    }
    fn indent(&mut self) {
        self.buf.push(b'\n');
        for _ in 0..self.depth {
            self.buf.extend_from_slice(b"  ");
        }
    }
    /// Writes `<name` (attributes may follow; finish with [`Writer::open_end`]).
    pub fn open(&mut self, name: &str) {
        self.indent();
        self.buf.push(b'<');
        self.buf.extend_from_slice(name.as_bytes());
    }
    /// Writes ` name="value"`.
    pub fn attribute(&mut self, name: &str, value: &str) {
        self.buf.push(b' ');
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.extend_from_slice(b"=\"");
        escape_into(&mut self.buf, value, true);
        self.buf.push(b'"');
    }
    /// Ends a start tag.
    pub fn open_end(&mut self) {
        self.buf.push(b'>');
        self.depth += 1;
    }
    /// Writes `</name>`.
    pub fn close(&mut self, name: &str) {
        self.depth = self.depth.saturating_sub(1);
        self.indent();
        self.buf.extend_from_slice(b"</");
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.push(b'>');
    }
    /// Writes `<name>text</name>`.
    pub fn leaf(&mut self, name: &str, text: &str) {
        self.indent();
        self.buf.push(b'<');
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.push(b'>');
        escape_into(&mut self.buf, text, false);
        self.buf.extend_from_slice(b"</");
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.push(b'>');
    }
    /// Writes raw bytes.
    pub fn raw(&mut self, s: &str) {
        self.buf.extend_from_slice(s.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: a CD006C composed from a clock reading carried nanoseconds, the hub refused
    /// it (CD917C), and no movement could be written off.
    #[test]
    fn date_time_is_written_in_whole_seconds_and_decodes() {
        let t = chrono::NaiveDate::from_ymd_opt(2026, 11, 21)
            .and_then(|d| d.and_hms_nano_opt(9, 30, 15, 123_456_789))
            .expect("a valid date and time");
        let text = t.lexical();
        assert_eq!(text, "2026-11-21T09:30:15");
        assert_eq!(
            parse_date_time(&text),
            chrono::NaiveDate::from_ymd_opt(2026, 11, 21).and_then(|d| d.and_hms_opt(9, 30, 15))
        );
    }

    #[test]
    fn collapse() {
        assert_eq!(
            normalize_whitespace(WhiteSpace::Collapse, Cow::Borrowed("  a \t b\n")),
            "a b"
        );
        assert!(matches!(
            normalize_whitespace(WhiteSpace::Collapse, Cow::Borrowed("a b")),
            Cow::Borrowed(_)
        ));
        assert_eq!(
            normalize_whitespace(WhiteSpace::Replace, Cow::Borrowed(" a\tb ")),
            " a b "
        );
    }

    #[test]
    fn integers() {
        assert_eq!(parse_integer("007"), Some(7));
        assert_eq!(parse_integer("+5"), Some(5));
        assert_eq!(parse_integer("-5"), Some(-5));
        assert_eq!(
            parse_integer("123456789012345678"),
            Some(123_456_789_012_345_678)
        );
        assert_eq!(parse_integer("9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_integer("9223372036854775808"), None);
        assert_eq!(parse_integer(""), None);
        assert_eq!(parse_integer("1a"), None);
        assert_eq!(parse_integer("1.0"), None);
    }

    #[test]
    fn decimals() {
        assert_eq!(
            parse_decimal("1.50").map(|d| d.to_string()),
            Some("1.50".into())
        );
        assert_eq!(
            parse_decimal("+.5").map(|d| d.to_string()),
            Some("0.5".into())
        );
        assert_eq!(parse_decimal("5.").map(|d| d.to_string()), Some("5".into()));
        assert_eq!(parse_decimal("."), None);
        assert_eq!(parse_decimal("1e5"), None);
        assert_eq!(digits("0012.3400"), (4, 2));
        assert_eq!(digits("0.000"), (1, 0));
    }

    #[test]
    fn dates() {
        assert!(parse_date("2024-02-29").is_some());
        assert!(parse_date("2023-02-29").is_none());
        assert!(parse_date_time("2024-01-01T10:00:00").is_some());
        assert!(parse_date_time("2024-01-01T10:00:00.5").is_some());
        assert!(parse_date_time("2024-01-01T10:00:00Z").is_none());
        assert!(parse_date_time("2024-01-01T25:00:00").is_none());
    }

    #[test]
    fn fast_patterns() {
        static A: [Atom; 2] = [
            Atom {
                class: Class::Ranges(&[('A', 'Z')]),
                min: 2,
                max: 2,
            },
            Atom {
                class: Class::Dot,
                min: 1,
                max: 33,
            },
        ];
        let f = Fast::Atoms(&A);
        assert_eq!(f.matches("GBx"), Some(true));
        assert_eq!(f.matches("GB"), Some(false));
        assert_eq!(f.matches("gBx"), Some(false));
        let t = Fast::Trimmed {
            ends: Class::NotZ,
            middle: Class::Dot,
        };
        assert_eq!(t.matches("a"), Some(true));
        assert_eq!(t.matches("a b"), Some(true));
        assert_eq!(t.matches(" a"), Some(false));
        assert_eq!(t.matches(""), Some(false));
    }
}

#[cfg(test)]
mod tree_tests {
    use super::*;

    static DEC: FNode = FNode::Seq(&[
        FNode::Alt(&[
            FNode::Class(Class::Ranges(&[('0', '0')])),
            FNode::Seq(&[
                FNode::Class(Class::Ranges(&[('1', '9')])),
                FNode::Repeat(&FNode::Class(Class::Digit), 0, u32::MAX),
            ]),
        ]),
        FNode::Repeat(
            &FNode::Seq(&[
                FNode::Class(Class::Ranges(&[('.', '.')])),
                FNode::Repeat(&FNode::Class(Class::Digit), 1, u32::MAX),
            ]),
            0,
            1,
        ),
    ]);

    #[test]
    fn either_matches_like_the_regex() {
        static BRANCHES: [Fast; 2] = [
            Fast::Atoms(&[Atom {
                class: Class::Ranges(&[('0', '0')]),
                min: 1,
                max: 1,
            }]),
            Fast::Atoms(&[
                Atom {
                    class: Class::Ranges(&[('1', '9')]),
                    min: 1,
                    max: 1,
                },
                Atom {
                    class: Class::Ranges(&[('0', '9')]),
                    min: 0,
                    max: 7,
                },
            ]),
        ];
        let f = Fast::Either(&BRANCHES);
        let rx = regex::Regex::new(r"^(?:0|[1-9][0-9]{0,7})$").expect("a valid test regex");
        for s in [
            "0",
            "00",
            "7",
            "10",
            "12345678",
            "123456789",
            "01",
            "",
            "1a",
            "٣",
        ] {
            assert_eq!(
                f.matches(s).unwrap_or_else(|| rx.is_match(s)),
                rx.is_match(s),
                "{s}"
            );
        }
    }

    #[test]
    fn tree_matches_like_the_regex() {
        let f = Fast::Tree(&DEC);
        let rx = regex::Regex::new(r"^(?:(?:0|[1-9]\d*)(?:\.\d+)?)$").expect("a valid test regex");
        for s in [
            "0",
            "10",
            "1.5",
            "0.25",
            "01",
            "1.",
            ".5",
            "",
            "12.3.4",
            "9999999.000001",
            "a",
        ] {
            assert_eq!(f.matches(s), Some(rx.is_match(s)), "{s}");
        }
    }
}
