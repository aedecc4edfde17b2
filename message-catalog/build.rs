//! Schema-driven code generator.
//!
//! Reads every `../schemas/<family>/*.xsd` (the CATS schema dialect: named simple and complex
//! types, `xs:sequence` of `xs:element` only, optional attributes, facets on restrictions, and
//! `cm:` metadata attributes) and writes `catalog.rs` into `OUT_DIR`: one Rust module per family
//! with a struct per complex type, an enum per enumerated simple type, static schema tables,
//! decoders, encoders and code-list visitors, plus the `Message` enum over every root element.
//!
//! It also generates `fixture.rs` from `tests/fixtures/schemas/` so the dialect can be tested
//! before (and independently of) the real schemas.
//!
//! Anything outside the dialect, or an XSD regex construct that cannot be translated, fails the
//! build with a message naming the file and the construct.

#![allow(clippy::unwrap_used)] // a build script: a panic is the loud build failure we want
#![allow(clippy::collapsible_if)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use quick_xml::events::{BytesStart, Event};
use quick_xml::reader::Reader;

const XS_NS: &str = "http://www.w3.org/2001/XMLSchema";
const META_NS: &str = "urn:carec:cats:meta";

type R<T> = Result<T, String>;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let jobs = [
        (manifest.join("../schemas"), out.join("catalog.rs")),
        (
            manifest.join("tests/fixtures/schemas"),
            out.join("fixture.rs"),
        ),
    ];
    for (dir, target) in jobs {
        // A path that does not exist would make Cargo rerun this script on every build.
        if dir.exists() {
            println!("cargo:rerun-if-changed={}", dir.display());
        }
        match generate(&dir) {
            Ok(code) => std::fs::write(&target, code).unwrap(),
            Err(e) => panic!("schema code generation failed for {}: {e}", dir.display()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Schema model
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Default, Clone)]
struct FacetsDef {
    patterns: Vec<String>,
    length: Option<u32>,
    min_length: Option<u32>,
    max_length: Option<u32>,
    total_digits: Option<u32>,
    fraction_digits: Option<u32>,
    min_inclusive: Option<String>,
    max_inclusive: Option<String>,
    min_exclusive: Option<String>,
    max_exclusive: Option<String>,
    enumeration: Vec<String>,
    white_space: Option<String>,
}

#[derive(Debug, Clone)]
struct SimpleDef {
    name: String,
    /// `Ok(builtin local name)` or `Err(named base)`.
    base: Result<String, String>,
    facets: FacetsDef,
    file: String,
}

#[derive(Debug, Clone)]
struct ElemDef {
    name: String,
    ty: TypeRef,
    min: u32,
    max: Option<u32>,
    code_list: Option<String>,
    optionality: Option<String>,
    rules: Vec<String>,
}

#[derive(Debug, Clone)]
struct AttrDef {
    name: String,
    ty: TypeRef,
    required: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum TypeRef {
    Builtin(String),
    Named(String),
}

#[derive(Debug, Clone, Default)]
struct ComplexDef {
    name: String,
    elements: Vec<ElemDef>,
    attributes: Vec<AttrDef>,
}

#[derive(Debug, Default)]
struct Family {
    dir: String,
    ns: String,
    simple: BTreeMap<String, SimpleDef>,
    complex: BTreeMap<String, ComplexDef>,
    roots: BTreeMap<String, String>,
}

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

fn generate(dir: &Path) -> R<String> {
    let mut families = Vec::new();
    if dir.is_dir() {
        let mut subdirs: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| e.to_string())?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .collect();
        subdirs.sort();
        for sub in subdirs {
            let mut files: Vec<PathBuf> = std::fs::read_dir(&sub)
                .map_err(|e| e.to_string())?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "xsd"))
                .collect();
            if files.is_empty() {
                continue;
            }
            files.sort();
            let mut fam = Family {
                dir: sub.file_name().unwrap().to_string_lossy().into_owned(),
                ..Family::default()
            };
            for f in files {
                println!("cargo:rerun-if-changed={}", f.display());
                let text =
                    std::fs::read_to_string(&f).map_err(|e| format!("{}: {e}", f.display()))?;
                parse_xsd(&text, &f.display().to_string(), &mut fam)
                    .map_err(|e| format!("{}: {e}", f.display()))?;
            }
            families.push(fam);
        }
    }
    emit(&families)
}

struct Ctx {
    xs_prefix: Vec<u8>,
    meta_prefix: Option<Vec<u8>>,
}

fn attr(e: &BytesStart<'_>, name: &[u8]) -> R<Option<String>> {
    for a in e.attributes() {
        let a = a.map_err(|e| e.to_string())?;
        if a.key.as_ref() == name {
            return Ok(Some(
                a.unescape_value().map_err(|e| e.to_string())?.into_owned(),
            ));
        }
    }
    Ok(None)
}

fn type_ref(ctx: &Ctx, v: &str) -> TypeRef {
    match v.split_once(':') {
        Some((p, l)) if p.as_bytes() == ctx.xs_prefix.as_slice() => TypeRef::Builtin(l.to_string()),
        Some((_, l)) => TypeRef::Named(l.to_string()),
        None => TypeRef::Named(v.to_string()),
    }
}

fn parse_xsd(text: &str, file: &str, fam: &mut Family) -> R<()> {
    let mut reader = Reader::from_str(text);
    let mut ctx = Ctx {
        xs_prefix: b"xs".to_vec(),
        meta_prefix: None,
    };
    // Open-element stack of XSD local names.
    let mut stack: Vec<String> = Vec::new();
    let mut cur_simple: Option<SimpleDef> = None;
    let mut cur_complex: Option<ComplexDef> = None;
    loop {
        let ev = reader.read_event().map_err(|e| e.to_string())?;
        let (e, empty) = match ev {
            Event::Start(e) => (e, false),
            Event::Empty(e) => (e, true),
            Event::End(_) => {
                let closed = stack.pop().unwrap_or_default();
                match closed.as_str() {
                    "simpleType" if !stack.iter().any(|s| s == "element" || s == "attribute") => {
                        if let Some(s) = cur_simple.take() {
                            fam.simple.insert(s.name.clone(), s);
                        }
                    }
                    "complexType" => {
                        if let Some(c) = cur_complex.take() {
                            fam.complex.insert(c.name.clone(), c);
                        }
                    }
                    _ => {}
                }
                continue;
            }
            Event::Eof => break,
            _ => continue,
        };
        let qn = e.name();
        let raw = qn.as_ref();
        let (prefix, local) = match raw.iter().position(|b| *b == b':') {
            Some(i) => (&raw[..i], &raw[i + 1..]),
            None => (&raw[..0], raw),
        };
        let local = String::from_utf8_lossy(local).into_owned();
        if local == "schema" {
            for a in e.attributes() {
                let a = a.map_err(|e| e.to_string())?;
                let key = a.key.as_ref();
                let val = a.unescape_value().map_err(|e| e.to_string())?.into_owned();
                if let Some(p) = key.strip_prefix(b"xmlns:") {
                    if val == XS_NS {
                        ctx.xs_prefix = p.to_vec();
                    } else if val == META_NS {
                        ctx.meta_prefix = Some(p.to_vec());
                    }
                } else if key == b"targetNamespace" {
                    if !fam.ns.is_empty() && fam.ns != val {
                        return Err(format!(
                            "two target namespaces in one folder: {} and {val}",
                            fam.ns
                        ));
                    }
                    fam.ns = val;
                } else if key == b"elementFormDefault" && val != "unqualified" {
                    return Err("elementFormDefault must be unqualified".into());
                }
            }
        } else if prefix != ctx.xs_prefix.as_slice() {
            // Foreign content (documentation, appinfo): skip.
        } else {
            match local.as_str() {
                "include" | "annotation" | "documentation" | "appinfo" | "import" => {}
                "simpleType" => {
                    let in_decl = stack.iter().any(|s| s == "element" || s == "attribute");
                    if in_decl {
                        return Err("anonymous simpleType is outside the dialect".into());
                    }
                    let name = attr(&e, b"name")?.ok_or("simpleType without a name")?;
                    cur_simple = Some(SimpleDef {
                        name,
                        base: Ok(String::new()),
                        facets: FacetsDef::default(),
                        file: file.to_string(),
                    });
                }
                "restriction" => {
                    let s = cur_simple
                        .as_mut()
                        .ok_or("restriction outside simpleType")?;
                    let base = attr(&e, b"base")?.ok_or("restriction without base")?;
                    s.base = match type_ref(&ctx, &base) {
                        TypeRef::Builtin(b) => Ok(b),
                        TypeRef::Named(n) => Err(n),
                    };
                }
                "pattern" | "length" | "minLength" | "maxLength" | "totalDigits"
                | "fractionDigits" | "minInclusive" | "maxInclusive" | "minExclusive"
                | "maxExclusive" | "enumeration" | "whiteSpace" => {
                    let s = cur_simple.as_mut().ok_or("facet outside simpleType")?;
                    let v = attr(&e, b"value")?.ok_or("facet without value")?;
                    let f = &mut s.facets;
                    let num = |v: &str| {
                        v.trim()
                            .parse::<u32>()
                            .map_err(|_| format!("bad facet value {v}"))
                    };
                    match local.as_str() {
                        "pattern" => f.patterns.push(v),
                        "length" => f.length = Some(num(&v)?),
                        "minLength" => f.min_length = Some(num(&v)?),
                        "maxLength" => f.max_length = Some(num(&v)?),
                        "totalDigits" => f.total_digits = Some(num(&v)?),
                        "fractionDigits" => f.fraction_digits = Some(num(&v)?),
                        "minInclusive" => f.min_inclusive = Some(v),
                        "maxInclusive" => f.max_inclusive = Some(v),
                        "minExclusive" => f.min_exclusive = Some(v),
                        "maxExclusive" => f.max_exclusive = Some(v),
                        "enumeration" => f.enumeration.push(v),
                        _ => f.white_space = Some(v),
                    }
                }
                "complexType" => {
                    if stack.iter().any(|s| s == "element") {
                        return Err("anonymous complexType is outside the dialect".into());
                    }
                    let name = attr(&e, b"name")?.ok_or("complexType without a name")?;
                    if attr(&e, b"mixed")?.is_some_and(|m| m == "true") {
                        return Err(format!("{name}: mixed content is outside the dialect"));
                    }
                    cur_complex = Some(ComplexDef {
                        name,
                        ..ComplexDef::default()
                    });
                }
                "sequence" => {
                    if stack.last().map(String::as_str) != Some("complexType") {
                        return Err("nested or misplaced xs:sequence is outside the dialect".into());
                    }
                    for k in [&b"minOccurs"[..], b"maxOccurs"] {
                        if attr(&e, k)?.is_some_and(|v| v != "1") {
                            return Err(
                                "occurrence constraints on xs:sequence are outside the dialect"
                                    .into(),
                            );
                        }
                    }
                }
                "element" => {
                    let name = attr(&e, b"name")?
                        .ok_or("element without a name (ref= is outside the dialect)")?;
                    let ty = attr(&e, b"type")?
                        .ok_or_else(|| format!("element {name} without a type"))?;
                    let ty = type_ref(&ctx, &ty);
                    if let Some(c) = cur_complex.as_mut() {
                        let min = match attr(&e, b"minOccurs")? {
                            Some(v) => v
                                .parse()
                                .map_err(|_| format!("{name}: bad minOccurs {v}"))?,
                            None => 1,
                        };
                        let max = match attr(&e, b"maxOccurs")?.as_deref() {
                            Some("unbounded") => None,
                            Some(v) => Some(
                                v.parse()
                                    .map_err(|_| format!("{name}: bad maxOccurs {v}"))?,
                            ),
                            None => Some(1),
                        };
                        let mut code_list = None;
                        let mut optionality = None;
                        let mut rules = Vec::new();
                        if let Some(mp) = &ctx.meta_prefix {
                            for a in e.attributes() {
                                let a = a.map_err(|e| e.to_string())?;
                                let key = a.key.as_ref();
                                let Some(l) = key
                                    .strip_prefix(mp.as_slice())
                                    .and_then(|k| k.strip_prefix(b":"))
                                else {
                                    continue;
                                };
                                let v = a.unescape_value().map_err(|e| e.to_string())?.into_owned();
                                match l {
                                    b"codeList" => code_list = Some(v),
                                    b"optionality" => optionality = Some(v),
                                    b"rules" => {
                                        rules = v.split_whitespace().map(str::to_string).collect()
                                    }
                                    _ => {}
                                }
                            }
                        }
                        if c.elements.iter().any(|x| x.name == name) {
                            return Err(format!(
                                "{}: element {name} appears twice in one sequence",
                                c.name
                            ));
                        }
                        c.elements.push(ElemDef {
                            name,
                            ty,
                            min,
                            max,
                            code_list,
                            optionality,
                            rules,
                        });
                    } else {
                        match ty {
                            TypeRef::Named(t) => {
                                fam.roots.insert(name, t);
                            }
                            TypeRef::Builtin(_) => {
                                return Err(format!("root {name} with a built-in type"));
                            }
                        }
                    }
                }
                "attribute" => {
                    let c = cur_complex
                        .as_mut()
                        .ok_or("attribute outside complexType")?;
                    let name = attr(&e, b"name")?.ok_or("attribute without a name")?;
                    let ty = attr(&e, b"type")?
                        .ok_or_else(|| format!("attribute {name} without a type"))?;
                    let required = attr(&e, b"use")?.is_some_and(|u| u == "required");
                    c.attributes.push(AttrDef {
                        name,
                        ty: type_ref(&ctx, &ty),
                        required,
                    });
                }
                other => return Err(format!("xs:{other} is outside the dialect")),
            }
        }
        if !empty {
            stack.push(local);
        } else if local == "simpleType" {
            if let Some(s) = cur_simple.take() {
                fam.simple.insert(s.name.clone(), s);
            }
        } else if local == "complexType" {
            if let Some(c) = cur_complex.take() {
                fam.complex.insert(c.name.clone(), c);
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Simple type resolution
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Builtin {
    String,
    NormalizedString,
    Token,
    Decimal,
    Integer,
    Date,
    DateTime,
    GYear,
}

impl Builtin {
    fn from_name(n: &str) -> R<Builtin> {
        Ok(match n {
            "string" => Builtin::String,
            "normalizedString" => Builtin::NormalizedString,
            "token" => Builtin::Token,
            "decimal" => Builtin::Decimal,
            "integer" => Builtin::Integer,
            "date" => Builtin::Date,
            "dateTime" => Builtin::DateTime,
            "gYear" => Builtin::GYear,
            other => return Err(format!("built-in type xs:{other} is outside the dialect")),
        })
    }
    fn rt(self) -> &'static str {
        match self {
            Builtin::String => "Builtin::String",
            Builtin::NormalizedString => "Builtin::NormalizedString",
            Builtin::Token => "Builtin::Token",
            Builtin::Decimal => "Builtin::Decimal",
            Builtin::Integer => "Builtin::Integer",
            Builtin::Date => "Builtin::Date",
            Builtin::DateTime => "Builtin::DateTime",
            Builtin::GYear => "Builtin::GYear",
        }
    }
    fn default_ws(self) -> &'static str {
        match self {
            Builtin::String => "preserve",
            Builtin::NormalizedString => "replace",
            _ => "collapse",
        }
    }
}

struct Resolved {
    builtin: Builtin,
    ws: String,
    /// Most derived first.
    levels: Vec<String>,
    /// Rust type of values of this simple type.
    rust: RustLeaf,
}

#[derive(Clone, Debug, PartialEq)]
enum RustLeaf {
    Text,
    Enum(String),
    Decimal,
    Integer,
    Date,
    DateTime,
}

impl RustLeaf {
    fn ty(&self) -> String {
        match self {
            RustLeaf::Text => "String".into(),
            RustLeaf::Enum(n) => n.clone(),
            RustLeaf::Decimal => "rust_decimal::Decimal".into(),
            RustLeaf::Integer => "i64".into(),
            RustLeaf::Date => "chrono::NaiveDate".into(),
            RustLeaf::DateTime => "chrono::NaiveDateTime".into(),
        }
    }
}

fn resolve(fam: &Family, name: &str) -> R<Resolved> {
    let mut levels = Vec::new();
    let mut cur = name.to_string();
    let mut ws_override: Option<String> = None;
    let mut enum_owner: Option<String> = None;
    loop {
        let s = fam
            .simple
            .get(&cur)
            .ok_or_else(|| format!("unknown simple type {cur}"))?;
        if levels.len() > 32 || levels.contains(&cur) {
            return Err(format!("simple type derivation loop at {cur}"));
        }
        levels.push(cur.clone());
        if ws_override.is_none() {
            ws_override.clone_from(&s.facets.white_space);
        }
        if enum_owner.is_none() && !s.facets.enumeration.is_empty() {
            enum_owner = Some(s.name.clone());
        }
        match &s.base {
            Ok(b) => {
                let builtin = Builtin::from_name(b).map_err(|e| format!("{}: {e}", s.file))?;
                let ws = ws_override.unwrap_or_else(|| builtin.default_ws().to_string());
                let rust = match (builtin, enum_owner) {
                    (
                        Builtin::String
                        | Builtin::NormalizedString
                        | Builtin::Token
                        | Builtin::GYear,
                        Some(o),
                    ) => RustLeaf::Enum(o),
                    (_, Some(o)) => {
                        return Err(format!(
                            "{o}: enumeration on a non-text type is outside the dialect"
                        ));
                    }
                    (
                        Builtin::String
                        | Builtin::NormalizedString
                        | Builtin::Token
                        | Builtin::GYear,
                        None,
                    ) => RustLeaf::Text,
                    (Builtin::Decimal, None) => RustLeaf::Decimal,
                    (Builtin::Integer, None) => RustLeaf::Integer,
                    (Builtin::Date, None) => RustLeaf::Date,
                    (Builtin::DateTime, None) => RustLeaf::DateTime,
                };
                return Ok(Resolved {
                    builtin,
                    ws,
                    levels,
                    rust,
                });
            }
            Err(n) => cur = n.clone(),
        }
    }
}

fn normalize_ws(ws: &str, v: &str) -> String {
    match ws {
        "preserve" => v.to_string(),
        "replace" => v.replace(['\t', '\n', '\r'], " "),
        _ => v
            .split([' ', '\t', '\n', '\r'])
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" "),
    }
}

// ---------------------------------------------------------------------------------------------
// XSD regular expressions
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Node {
    Alt(Vec<Node>),
    Seq(Vec<Node>),
    Repeat(Box<Node>, u32, Option<u32>),
    Group(Box<Node>),
    /// A set of characters, already in Rust regex syntax (without brackets when `simple`).
    Class(ClassAst),
}

#[derive(Debug, Clone)]
struct ClassAst {
    /// Rust regex text for this class, bracketed when needed.
    regex: String,
    /// Runtime fast-path description, when expressible.
    fast: Option<String>,
}

struct RxParser<'a> {
    chars: Vec<char>,
    pos: usize,
    src: &'a str,
}

fn hex(c: char) -> String {
    format!("\\x{{{:X}}}", c as u32)
}

fn lit(c: char) -> String {
    if c.is_ascii_alphanumeric() {
        c.to_string()
    } else {
        hex(c)
    }
}

impl RxParser<'_> {
    fn err<T>(&self, what: &str) -> R<T> {
        Err(format!(
            "XSD pattern {:?}: {what} at {}",
            self.src, self.pos
        ))
    }
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }
    fn bump(&mut self) -> Option<char> {
        let c = self.peek();
        self.pos += 1;
        c
    }
    fn alt(&mut self) -> R<Node> {
        let mut alts = vec![self.seq()?];
        while self.peek() == Some('|') {
            self.pos += 1;
            alts.push(self.seq()?);
        }
        Ok(if alts.len() == 1 {
            alts.pop().unwrap()
        } else {
            Node::Alt(alts)
        })
    }
    fn seq(&mut self) -> R<Node> {
        let mut items = Vec::new();
        while let Some(c) = self.peek() {
            if c == '|' || c == ')' {
                break;
            }
            let atom = self.atom()?;
            items.push(self.quant(atom)?);
        }
        Ok(Node::Seq(items))
    }
    fn quant(&mut self, atom: Node) -> R<Node> {
        let (min, max) = match self.peek() {
            Some('?') => (0, Some(1)),
            Some('*') => (0, None),
            Some('+') => (1, None),
            Some('{') => {
                self.pos += 1;
                let mut a = String::new();
                while let Some(c) = self.peek().filter(char::is_ascii_digit) {
                    a.push(c);
                    self.pos += 1;
                }
                let min: u32 = a.parse().or_else(|_| self.err("bad quantifier"))?;
                let max = if self.peek() == Some(',') {
                    self.pos += 1;
                    let mut b = String::new();
                    while let Some(c) = self.peek().filter(char::is_ascii_digit) {
                        b.push(c);
                        self.pos += 1;
                    }
                    if b.is_empty() {
                        None
                    } else {
                        Some(b.parse().or_else(|_| self.err("bad quantifier"))?)
                    }
                } else {
                    Some(min)
                };
                if self.peek() != Some('}') {
                    return self.err("unclosed quantifier");
                }
                self.pos += 1;
                return Ok(Node::Repeat(Box::new(atom), min, max));
            }
            _ => return Ok(atom),
        };
        self.pos += 1;
        Ok(Node::Repeat(Box::new(atom), min, max))
    }
    fn atom(&mut self) -> R<Node> {
        match self.bump() {
            Some('(') => {
                let inner = self.alt()?;
                if self.bump() != Some(')') {
                    return self.err("unclosed group");
                }
                Ok(Node::Group(Box::new(inner)))
            }
            Some('[') => Ok(Node::Class(self.class_expr()?)),
            Some('.') => Ok(Node::Class(ClassAst {
                regex: "[^\\n\\r]".into(),
                fast: Some("Class::Dot".into()),
            })),
            Some('\\') => Ok(Node::Class(self.escape()?)),
            Some(c @ ('?' | '*' | '+' | '{' | '}' | ']')) => self.err(&format!("unexpected {c}")),
            Some(c) => Ok(Node::Class(ClassAst {
                regex: lit(c),
                fast: Some(format!("Class::Ranges(&[({c:?}, {c:?})])")),
            })),
            None => self.err("unexpected end"),
        }
    }
    /// After a backslash. Returns a class (single char escapes become one-char classes).
    fn escape(&mut self) -> R<ClassAst> {
        let c = match self.bump() {
            Some(c) => c,
            None => return self.err("dangling backslash"),
        };
        let single = |ch: char| ClassAst {
            regex: lit(ch),
            fast: Some(format!("Class::Ranges(&[({ch:?}, {ch:?})])")),
        };
        Ok(match c {
            'n' => single('\n'),
            'r' => single('\r'),
            't' => single('\t'),
            '\\' | '|' | '.' | '-' | '^' | '?' | '*' | '+' | '{' | '}' | '(' | ')' | '[' | ']' => {
                single(c)
            }
            'd' => ClassAst {
                regex: "\\p{Nd}".into(),
                fast: Some("Class::Digit".into()),
            },
            'D' => ClassAst {
                regex: "\\P{Nd}".into(),
                fast: None,
            },
            's' => ClassAst {
                regex: "[\\x{20}\\t\\n\\r]".into(),
                fast: None,
            },
            'S' => ClassAst {
                regex: "[^\\x{20}\\t\\n\\r]".into(),
                fast: None,
            },
            'i' => ClassAst {
                regex: "[\\p{L}_:]".into(),
                fast: None,
            },
            'I' => ClassAst {
                regex: "[^\\p{L}_:]".into(),
                fast: None,
            },
            'c' => ClassAst {
                regex: "[\\p{L}\\p{Nd}\\p{Mn}\\p{Mc}\\x{2E}\\x{2D}_:\\x{B7}]".into(),
                fast: None,
            },
            'C' => ClassAst {
                regex: "[^\\p{L}\\p{Nd}\\p{Mn}\\p{Mc}\\x{2E}\\x{2D}_:\\x{B7}]".into(),
                fast: None,
            },
            'w' => ClassAst {
                regex: "[^\\p{P}\\p{Z}\\p{C}]".into(),
                fast: None,
            },
            'W' => ClassAst {
                regex: "[\\p{P}\\p{Z}\\p{C}]".into(),
                fast: None,
            },
            'p' | 'P' => {
                if self.bump() != Some('{') {
                    return self.err("\\p without {");
                }
                let mut name = String::new();
                loop {
                    match self.bump() {
                        Some('}') => break,
                        Some(ch) => name.push(ch),
                        None => return self.err("unclosed \\p{"),
                    }
                }
                let neg = c == 'P';
                let body = if let Some(block) = name.strip_prefix("Is") {
                    match block {
                        "BasicLatin" => "\\x00-\\x7F".to_string(),
                        "Latin-1Supplement" => "\\x{80}-\\x{FF}".to_string(),
                        _ => return self.err(&format!("unsupported Unicode block {name}")),
                    }
                } else {
                    const CATS: &[&str] = &[
                        "L", "Lu", "Ll", "Lt", "Lm", "Lo", "M", "Mn", "Mc", "Me", "N", "Nd", "Nl",
                        "No", "P", "Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po", "Z", "Zs", "Zl", "Zp",
                        "S", "Sm", "Sc", "Sk", "So", "C", "Cc", "Cf", "Co", "Cn",
                    ];
                    if !CATS.contains(&name.as_str()) {
                        return self.err(&format!("unsupported category {name}"));
                    }
                    format!("\\p{{{name}}}")
                };
                let fast = match (name.as_str(), neg) {
                    ("Z", true) => Some("Class::NotZ".to_string()),
                    ("IsBasicLatin", false) => {
                        Some("Class::Ranges(&[('\\u{0}', '\\u{7f}')])".to_string())
                    }
                    _ => None,
                };
                ClassAst {
                    regex: format!("[{}{body}]", if neg { "^" } else { "" }),
                    fast,
                }
            }
            other => return self.err(&format!("unsupported escape \\{other}")),
        })
    }
    /// After `[`: a positive or negative character group, with optional subtraction.
    fn class_expr(&mut self) -> R<ClassAst> {
        let neg = if self.peek() == Some('^') {
            self.pos += 1;
            true
        } else {
            false
        };
        let mut parts = String::new();
        let mut ranges: Vec<(char, char)> = Vec::new();
        let mut fast_ok = true;
        let mut first = true;
        let mut sub: Option<ClassAst> = None;
        loop {
            let c = match self.bump() {
                Some(c) => c,
                None => return self.err("unclosed ["),
            };
            match c {
                ']' if !first => break,
                '-' if self.peek() == Some('[') => {
                    self.pos += 1;
                    sub = Some(self.class_expr()?);
                    if self.bump() != Some(']') {
                        return self.err("subtraction must end the group");
                    }
                    break;
                }
                '\\' => {
                    let esc = self.escape()?;
                    let single = esc.fast.as_deref().and_then(single_char_of);
                    if let (Some(lo), Some('-')) = (single, self.peek()) {
                        if self
                            .chars
                            .get(self.pos + 1)
                            .is_some_and(|c| *c != ']' && *c != '[')
                        {
                            self.pos += 1;
                            let hi = self.range_end()?;
                            parts.push_str(&format!("{}-{}", hex(lo), hex(hi)));
                            ranges.push((lo, hi));
                            first = false;
                            continue;
                        }
                    }
                    match single {
                        Some(ch) => {
                            parts.push_str(&hex(ch));
                            ranges.push((ch, ch));
                        }
                        None => {
                            fast_ok = false;
                            parts.push_str(&esc.regex);
                        }
                    }
                }
                '[' => return self.err("nested [ is not XSD syntax"),
                c => {
                    if self.peek() == Some('-')
                        && self
                            .chars
                            .get(self.pos + 1)
                            .is_some_and(|c| *c != ']' && *c != '[')
                    {
                        self.pos += 1;
                        let hi = self.range_end()?;
                        parts.push_str(&format!("{}-{}", hex(c), hex(hi)));
                        ranges.push((c, hi));
                    } else {
                        parts.push_str(&hex(c));
                        ranges.push((c, c));
                    }
                }
            }
            first = false;
        }
        let mut regex = format!("[{}{}]", if neg { "^" } else { "" }, parts);
        let mut fast = if fast_ok {
            let list = ranges
                .iter()
                .map(|(a, b)| format!("({a:?}, {b:?})"))
                .collect::<Vec<_>>()
                .join(", ");
            Some(if neg {
                format!("Class::NotRanges(&[{list}])")
            } else {
                format!("Class::Ranges(&[{list}])")
            })
        } else {
            None
        };
        if let Some(s) = sub {
            regex = format!("[{regex}--{}]", s.regex);
            fast = None;
        }
        Ok(ClassAst { regex, fast })
    }
    fn range_end(&mut self) -> R<char> {
        match self.bump() {
            Some('\\') => {
                let e = self.escape()?;
                e.fast
                    .as_deref()
                    .and_then(single_char_of)
                    .map_or_else(|| self.err("bad range end"), Ok)
            }
            Some(c) => Ok(c),
            None => self.err("unclosed range"),
        }
    }
}

fn single_char_of(fast: &str) -> Option<char> {
    // Parses the output of `single` above: Class::Ranges(&[('x', 'x')])
    let inner = fast
        .strip_prefix("Class::Ranges(&[(")?
        .strip_suffix(")])")?;
    let (a, b) = inner.split_once(", ")?;
    if a != b {
        return None;
    }
    let a = a.strip_prefix('\'')?.strip_suffix('\'')?;
    let mut it = a.chars();
    match (it.next(), it.next()) {
        (Some(c), None) => Some(c),
        (Some('\\'), Some(_)) => match a {
            "\\n" => Some('\n'),
            "\\r" => Some('\r'),
            "\\t" => Some('\t'),
            "\\\\" => Some('\\'),
            "\\'" => Some('\''),
            _ => {
                let h = a.strip_prefix("\\u{")?.strip_suffix('}')?;
                char::from_u32(u32::from_str_radix(h, 16).ok()?)
            }
        },
        _ => None,
    }
}

fn to_regex(n: &Node) -> String {
    match n {
        Node::Alt(v) => v.iter().map(to_regex).collect::<Vec<_>>().join("|"),
        Node::Seq(v) => v.iter().map(to_regex).collect(),
        Node::Group(g) => format!("(?:{})", to_regex(g)),
        Node::Class(c) => c.regex.clone(),
        Node::Repeat(a, min, max) => {
            let inner = match a.as_ref() {
                Node::Class(c) => c.regex.clone(),
                Node::Group(_) => to_regex(a),
                other => format!("(?:{})", to_regex(other)),
            };
            match max {
                Some(m) if m == min => format!("{inner}{{{min}}}"),
                Some(m) => format!("{inner}{{{min},{m}}}"),
                None => format!("{inner}{{{min},}}"),
            }
        }
    }
}

/// Fast path: a flat sequence of classes with counts, at most one of them variable; or the
/// "no surrounding blanks" shape `A(B*A)?`.
fn to_fast(n: &Node) -> Option<String> {
    // A top-level alternation (`A|B`, `(A|B)`) whose branches all have a fast path.
    let mut top = n;
    loop {
        top = match top {
            Node::Group(g) => g,
            Node::Seq(v) if v.len() == 1 && matches!(v[0], Node::Group(_) | Node::Alt(_)) => &v[0],
            _ => break,
        };
    }
    if let Node::Alt(branches) = top {
        let parts = branches.iter().map(to_fast).collect::<Option<Vec<_>>>()?;
        return Some(format!("Fast::Either(&[{}])", parts.join(", ")));
    }
    let items: Vec<&Node> = match n {
        Node::Seq(v) => v.iter().collect(),
        _ => return None,
    };
    // Shape A(B*A)?
    if let [Node::Class(a), Node::Repeat(g, 0, Some(1))] = items.as_slice() {
        if let Node::Group(inner) = g.as_ref() {
            if let Node::Seq(v) = inner.as_ref() {
                if let [Node::Repeat(b, 0, None), Node::Class(a2)] = v.as_slice() {
                    if let Node::Class(b) = b.as_ref() {
                        if a.regex == a2.regex {
                            return Some(format!(
                                "Fast::Trimmed {{ ends: {}, middle: {} }}",
                                a.fast.as_ref()?,
                                b.fast.as_ref()?
                            ));
                        }
                    }
                }
            }
        }
    }
    let mut atoms = Vec::new();
    let mut variable = 0;
    for it in items {
        let (c, min, max) = match it {
            Node::Class(c) => (c, 1, Some(1)),
            Node::Repeat(a, min, max) => match a.as_ref() {
                Node::Class(c) => (c, *min, *max),
                _ => return None,
            },
            _ => return None,
        };
        if max != Some(min) {
            variable += 1;
        }
        let max = max.map_or("u32::MAX".to_string(), |m| m.to_string());
        atoms.push(format!(
            "Atom {{ class: {}, min: {min}, max: {max} }}",
            c.fast.as_ref()?
        ));
    }
    if variable > 1 {
        return None;
    }
    Some(format!("Fast::Atoms(&[{}])", atoms.join(", ")))
}

/// General fast path: the whole regex as a static tree for the small backtracking matcher.
fn to_tree(n: &Node) -> Option<String> {
    Some(match n {
        Node::Class(c) => format!("FNode::Class({})", c.fast.as_ref()?),
        Node::Group(g) => return to_tree(g),
        Node::Seq(v) => {
            let parts = v.iter().map(to_tree).collect::<Option<Vec<_>>>()?;
            format!("FNode::Seq(&[{}])", parts.join(", "))
        }
        Node::Alt(v) => {
            let parts = v.iter().map(to_tree).collect::<Option<Vec<_>>>()?;
            format!("FNode::Alt(&[{}])", parts.join(", "))
        }
        Node::Repeat(a, min, max) => {
            format!(
                "FNode::Repeat(&{}, {min}, {})",
                to_tree(a)?,
                max.map_or("u32::MAX".to_string(), |m| m.to_string())
            )
        }
    })
}

/// ASCII membership of a class, decided by the class's own `regex` translation (the reference
/// the runtime falls back to), so the DFA agrees with it on every ASCII character.
fn ascii_set(c: &ClassAst, cache: &mut BTreeMap<String, [bool; 128]>) -> R<[bool; 128]> {
    if let Some(set) = cache.get(&c.regex) {
        return Ok(*set);
    }
    let rx = regex::Regex::new(&format!("^(?:{})$", c.regex))
        .map_err(|e| format!("class {:?} does not compile: {e}", c.regex))?;
    let mut set = [false; 128];
    for (b, slot) in set.iter_mut().enumerate() {
        let ch = char::from(u8::try_from(b).unwrap());
        *slot = rx.is_match(ch.encode_utf8(&mut [0u8; 4]));
    }
    cache.insert(c.regex.clone(), set);
    Ok(set)
}

/// Thompson NFA over ASCII: per state, epsilon moves and at most one class move.
#[derive(Default)]
struct Nfa {
    eps: Vec<Vec<usize>>,
    step: Vec<Option<(usize, usize)>>,
    sets: Vec<[bool; 128]>,
}

impl Nfa {
    fn state(&mut self) -> usize {
        self.eps.push(Vec::new());
        self.step.push(None);
        self.eps.len() - 1
    }
    fn frag(&mut self, n: &Node, cache: &mut BTreeMap<String, [bool; 128]>) -> R<(usize, usize)> {
        if self.eps.len() > 20_000 {
            return Err("too large".into());
        }
        Ok(match n {
            Node::Class(c) => {
                let set = ascii_set(c, cache)?;
                let id = match self.sets.iter().position(|s| *s == set) {
                    Some(i) => i,
                    None => {
                        self.sets.push(set);
                        self.sets.len() - 1
                    }
                };
                let (s, e) = (self.state(), self.state());
                self.step[s] = Some((id, e));
                (s, e)
            }
            Node::Group(g) => self.frag(g, cache)?,
            Node::Seq(v) => {
                let s = self.state();
                let mut cur = s;
                for item in v {
                    let (a, b) = self.frag(item, cache)?;
                    self.eps[cur].push(a);
                    cur = b;
                }
                (s, cur)
            }
            Node::Alt(v) => {
                let (s, e) = (self.state(), self.state());
                for item in v {
                    let (a, b) = self.frag(item, cache)?;
                    self.eps[s].push(a);
                    self.eps[b].push(e);
                }
                (s, e)
            }
            Node::Repeat(a, min, max) => {
                let s = self.state();
                let mut cur = s;
                for _ in 0..*min {
                    let (x, y) = self.frag(a, cache)?;
                    self.eps[cur].push(x);
                    cur = y;
                }
                match max {
                    None => {
                        let l = self.state();
                        self.eps[cur].push(l);
                        let (x, y) = self.frag(a, cache)?;
                        self.eps[l].push(x);
                        self.eps[y].push(l);
                        (s, l)
                    }
                    Some(m) => {
                        let e = self.state();
                        for _ in *min..*m {
                            self.eps[cur].push(e);
                            let (x, y) = self.frag(a, cache)?;
                            self.eps[cur].push(x);
                            cur = y;
                        }
                        self.eps[cur].push(e);
                        (s, e)
                    }
                }
            }
        })
    }
    fn close(&self, set: &mut BTreeSet<usize>) {
        let mut todo: Vec<usize> = set.iter().copied().collect();
        while let Some(s) = todo.pop() {
            for &t in &self.eps[s] {
                if set.insert(t) {
                    todo.push(t);
                }
            }
        }
    }
}

/// A DFA deciding the whole pattern on ASCII values, as a static `Dfa` expression; `None` when
/// it would be too large (the runtime then uses the other paths).
fn to_dfa(n: &Node, cache: &mut BTreeMap<String, [bool; 128]>) -> R<Option<String>> {
    let mut nfa = Nfa::default();
    let (start, accept) = match nfa.frag(n, cache) {
        Ok(f) => f,
        Err(e) if e == "too large" => return Ok(None),
        Err(e) => return Err(e),
    };
    // Bytes with the same membership in every class behave alike.
    let mut class_of = [0u8; 128];
    let mut reps: Vec<usize> = Vec::new();
    let mut sigs: Vec<Vec<bool>> = Vec::new();
    for b in 0..128 {
        let sig: Vec<bool> = nfa.sets.iter().map(|s| s[b]).collect();
        let id = match sigs.iter().position(|x| *x == sig) {
            Some(i) => i,
            None => {
                sigs.push(sig);
                reps.push(b);
                sigs.len() - 1
            }
        };
        class_of[b] = u8::try_from(id).map_err(|_| "too many byte classes".to_string())?;
    }
    let mut first = BTreeSet::from([start]);
    nfa.close(&mut first);
    let mut ids: BTreeMap<BTreeSet<usize>, usize> = BTreeMap::from([(first.clone(), 0)]);
    let mut states = vec![first];
    let mut trans: Vec<u16> = Vec::new();
    let mut i = 0;
    while i < states.len() {
        for &rep in &reps {
            let mut next = BTreeSet::new();
            for &s in &states[i] {
                if let Some((set, to)) = nfa.step[s] {
                    if nfa.sets[set][rep] {
                        next.insert(to);
                    }
                }
            }
            if next.is_empty() {
                trans.push(u16::MAX);
                continue;
            }
            nfa.close(&mut next);
            let id = match ids.get(&next) {
                Some(&id) => id,
                None => {
                    states.push(next.clone());
                    ids.insert(next, states.len() - 1);
                    states.len() - 1
                }
            };
            if id >= 4096 {
                return Ok(None);
            }
            trans.push(u16::try_from(id).unwrap());
        }
        i += 1;
    }
    let accepting: Vec<bool> = states.iter().map(|s| s.contains(&accept)).collect();
    Ok(Some(format!(
        "Dfa {{ classes: &{class_of:?}, stride: {}, trans: &{trans:?}, accept: &{accepting:?} }}",
        reps.len()
    )))
}

fn translate_pattern(
    p: &str,
    cache: &mut BTreeMap<String, [bool; 128]>,
) -> R<(String, Option<String>, Option<String>)> {
    let mut parser = RxParser {
        chars: p.chars().collect(),
        pos: 0,
        src: p,
    };
    let ast = parser.alt()?;
    if parser.pos < parser.chars.len() {
        return parser.err("unbalanced )");
    }
    let rx = format!("^(?:{})$", to_regex(&ast));
    regex::Regex::new(&rx)
        .map_err(|e| format!("XSD pattern {p:?} translated to {rx:?} does not compile: {e}"))?;
    Ok((
        rx,
        to_fast(&ast).or_else(|| to_tree(&ast).map(|t| format!("Fast::Tree(&{t})"))),
        to_dfa(&ast, cache)?,
    ))
}

// ---------------------------------------------------------------------------------------------
// Emission
// ---------------------------------------------------------------------------------------------

fn snake(name: &str) -> String {
    let mut out = String::new();
    let chars: Vec<char> = name.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() {
            let prev_lower =
                i > 0 && (chars[i - 1].is_ascii_lowercase() || chars[i - 1].is_ascii_digit());
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            let prev_upper = i > 0 && chars[i - 1].is_ascii_uppercase();
            if i > 0 && (prev_lower || (prev_upper && next_lower)) {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else if c.is_ascii_alphanumeric() {
            out.push(c);
        } else {
            out.push('_');
        }
    }
    const KW: &[&str] = &[
        "type", "match", "ref", "mod", "fn", "struct", "enum", "use", "self", "super", "crate",
        "loop", "move", "in", "for", "if", "else", "let", "const", "static", "impl", "trait",
        "where", "as", "box", "dyn", "true", "false", "return", "break", "continue", "while",
        "pub", "unsafe", "extern", "async", "await", "try", "yield", "priv", "final", "macro",
        "override", "virtual", "abstract", "become", "do", "typeof", "unsized",
    ];
    if KW.contains(&out.as_str()) {
        out.push('_');
    }
    out
}

fn rust_ident(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn variant_name(v: &str) -> String {
    let mut s = String::new();
    let mut upper = true;
    for c in v.chars() {
        if c.is_ascii_alphanumeric() {
            if upper {
                s.push(c.to_ascii_uppercase());
            } else {
                s.push(c);
            }
            upper = false;
        } else {
            if !s.is_empty() && !s.ends_with('_') {
                s.push('_');
            }
            upper = true;
        }
    }
    let s = s.trim_end_matches('_').to_string();
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
        format!("V{s}")
    } else {
        s
    }
}

fn st_static(name: &str) -> String {
    format!("ST_{}", rust_ident(name).to_uppercase())
}

fn ct_static(name: &str) -> String {
    format!("CT_{}", rust_ident(name).to_uppercase())
}

fn opt_str(v: &Option<String>) -> String {
    match v {
        Some(s) => format!("Some({s:?})"),
        None => "None".into(),
    }
}

fn opt_u32(v: Option<u32>) -> String {
    match v {
        Some(s) => format!("Some({s})"),
        None => "None".into(),
    }
}

fn prefix_for(dir: &str) -> &str {
    match dir {
        "ncts" => "ncts",
        "cats" => "cd",
        "admin" => "ca",
        other => other,
    }
}

/// What a field holds.
enum FieldKind {
    Complex(String),
    Leaf(String /* simple type */, RustLeaf),
}

fn field_kind(fam: &Family, ty: &TypeRef) -> R<FieldKind> {
    match ty {
        TypeRef::Builtin(b) => Err(format!(
            "element of built-in type xs:{b}: declare a named simple type"
        )),
        TypeRef::Named(n) => {
            if fam.complex.contains_key(n) {
                Ok(FieldKind::Complex(n.clone()))
            } else if fam.simple.contains_key(n) {
                Ok(FieldKind::Leaf(n.clone(), resolve(fam, n)?.rust))
            } else {
                Err(format!("unknown type {n}"))
            }
        }
    }
}

fn emit(families: &[Family]) -> R<String> {
    let mut o = String::new();
    o.push_str("// @generated by message-catalog/build.rs from the XSDs. Do not edit.\n\n");
    let mut all_roots: Vec<(String, String, String)> = Vec::new(); // (root, family module, type)
    for fam in families {
        if fam.ns.is_empty() {
            return Err(format!("{}: no targetNamespace", fam.dir));
        }
        emit_family(fam, &mut o)?;
        for (root, ty) in &fam.roots {
            if all_roots.iter().any(|(r, _, _)| r == root) {
                return Err(format!("root element {root} declared in two families"));
            }
            all_roots.push((root.clone(), rust_ident(&fam.dir), ty.clone()));
        }
    }
    emit_message(families, &all_roots, &mut o)?;
    Ok(o)
}

fn emit_family(fam: &Family, o: &mut String) -> R<()> {
    let m = rust_ident(&fam.dir);
    writeln!(
        o,
        "/// Types generated from `schemas/{}/` (namespace `{}`).",
        fam.dir, fam.ns
    )
    .unwrap();
    writeln!(o, "pub mod {m} {{").unwrap();
    o.push_str("#![allow(clippy::all, clippy::pedantic, non_camel_case_types, non_snake_case, missing_docs, unused_imports, unused_mut, unused_variables)]\n");
    o.push_str("use crate::codec::rt::*;\nuse crate::codec::rt;\n\n");
    writeln!(
        o,
        "/// Target namespace of this family.\npub const NAMESPACE: &str = {:?};",
        fam.ns
    )
    .unwrap();
    writeln!(
        o,
        "/// Prefix used on the root element when encoding.\npub const PREFIX: &str = {:?};\n",
        prefix_for(&fam.dir)
    )
    .unwrap();

    // Patterns, deduplicated.
    let mut patterns: BTreeMap<String, usize> = BTreeMap::new();
    for s in fam.simple.values() {
        for p in &s.facets.patterns {
            let n = patterns.len();
            patterns.entry(p.clone()).or_insert(n);
        }
    }
    let mut cache = BTreeMap::new();
    for (p, i) in &patterns {
        let (rx, fast, dfa) =
            translate_pattern(p, &mut cache).map_err(|e| format!("{} ({})", e, fam.dir))?;
        writeln!(
            o,
            "static P_{i}: Pattern = Pattern {{ xsd: {p:?}, regex: {rx:?}, dfa: {}, fast: {}, cell: std::sync::OnceLock::new() }};",
            dfa.map_or("None".to_string(), |f| format!("Some({f})")),
            fast.map_or("None".to_string(), |f| format!("Some({f})"))
        )
        .unwrap();
    }

    // Simple types.
    let mut enums: BTreeSet<String> = BTreeSet::new();
    let mut bound_statics: BTreeSet<String> = BTreeSet::new();
    for s in fam.simple.values() {
        let r = resolve(fam, &s.name)?;
        let mut levels = Vec::new();
        for lname in &r.levels {
            let l = &fam.simple[lname].facets;
            let has_bounds = l.min_inclusive.is_some()
                || l.max_inclusive.is_some()
                || l.min_exclusive.is_some()
                || l.max_exclusive.is_some();
            let bounds = if has_bounds {
                let b = format!("B_{}", st_static(lname));
                if bound_statics.insert(b.clone()) {
                    writeln!(
                        o,
                        "static {b}: std::sync::OnceLock<crate::codec::rt::Bounds> = std::sync::OnceLock::new();"
                    )
                    .unwrap();
                }
                format!("Some(&{b})")
            } else {
                "None".to_string()
            };
            let pats = l
                .patterns
                .iter()
                .map(|p| format!("&P_{}", patterns[p]))
                .collect::<Vec<_>>()
                .join(", ");
            let mut enumv: Vec<String> = Vec::new();
            for v in &l.enumeration {
                let v = normalize_ws(&r.ws, v);
                if !enumv.contains(&v) {
                    enumv.push(v);
                }
            }
            levels.push(format!(
                "Facets {{ patterns: &[{pats}], length: {}, min_length: {}, max_length: {}, total_digits: {}, fraction_digits: {}, min_inclusive: {}, max_inclusive: {}, min_exclusive: {}, max_exclusive: {}, enumeration: &{:?}, bounds: {bounds} }}",
                opt_u32(l.length),
                opt_u32(l.min_length),
                opt_u32(l.max_length),
                opt_u32(l.total_digits),
                opt_u32(l.fraction_digits),
                opt_str(&l.min_inclusive),
                opt_str(&l.max_inclusive),
                opt_str(&l.min_exclusive),
                opt_str(&l.max_exclusive),
                enumv
            ));
        }
        let ws = match r.ws.as_str() {
            "preserve" => "WhiteSpace::Preserve",
            "replace" => "WhiteSpace::Replace",
            "collapse" => "WhiteSpace::Collapse",
            other => return Err(format!("{}: bad whiteSpace {other}", s.name)),
        };
        writeln!(
            o,
            "/// Simple type `{}`.\npub static {}: SimpleType = SimpleType {{ name: {:?}, builtin: {}, ws: {ws}, levels: &[{}] }};",
            s.name,
            st_static(&s.name),
            s.name,
            r.builtin.rt(),
            levels.join(", ")
        )
        .unwrap();
        if let RustLeaf::Enum(owner) = &r.rust {
            if owner == &s.name && enums.insert(owner.clone()) {
                let mut values: Vec<String> = Vec::new();
                for v in &s.facets.enumeration {
                    let v = normalize_ws(&r.ws, v);
                    if !values.contains(&v) {
                        values.push(v);
                    }
                }
                emit_enum(&s.name, &values, o)?;
            }
        }
    }

    // Complex types: tables first.
    for c in fam.complex.values() {
        let mut elems = Vec::new();
        for e in &c.elements {
            let (complex, simple) = match field_kind(fam, &e.ty)
                .map_err(|x| format!("{}/{}: {x}", c.name, e.name))?
            {
                FieldKind::Complex(n) => (format!("Some(&{})", ct_static(&n)), "None".to_string()),
                FieldKind::Leaf(n, _) => ("None".to_string(), format!("Some(&{})", st_static(&n))),
            };
            elems.push(format!(
                "ElementInfo {{ name: {:?}, min: {}, max: {}, complex: {complex}, simple: {simple}, code_list: {}, optionality: {}, rules: &{:?} }}",
                e.name,
                e.min,
                e.max.map_or("u32::MAX".to_string(), |m| m.to_string()),
                opt_str(&e.code_list),
                opt_str(&e.optionality),
                e.rules
            ));
        }
        let attrs = c
            .attributes
            .iter()
            .map(|a| match &a.ty {
                TypeRef::Named(n) if fam.simple.contains_key(n) => Ok(format!(
                    "AttributeInfo {{ name: {:?}, simple: &{}, required: {} }}",
                    a.name,
                    st_static(n),
                    a.required
                )),
                other => Err(format!(
                    "{}: attribute {} has unsupported type {other:?}",
                    c.name, a.name
                )),
            })
            .collect::<R<Vec<_>>>()?;
        writeln!(
            o,
            "/// Schema table of complex type `{}`.\npub static {}: TypeInfo = TypeInfo {{ name: {:?}, namespace: {:?}, elements: &[{}], attributes: &[{}] }};",
            c.name,
            ct_static(&c.name),
            c.name,
            fam.ns,
            elems.join(", "),
            attrs.join(", ")
        )
        .unwrap();
    }

    for c in fam.complex.values() {
        emit_struct(fam, c, o)?;
    }

    // Family-wide table of types, for rule look-ups.
    let list = fam
        .complex
        .values()
        .map(|c| format!("&{}", ct_static(&c.name)))
        .collect::<Vec<_>>()
        .join(", ");
    writeln!(
        o,
        "/// Every complex type of this family.\npub static TYPES: &[&TypeInfo] = &[{list}];"
    )
    .unwrap();
    o.push_str("}\n\n");
    Ok(())
}

fn emit_enum(name: &str, values: &[String], o: &mut String) -> R<()> {
    let mut variants: Vec<String> = Vec::new();
    for v in values {
        let mut n = variant_name(v);
        while variants.contains(&n) {
            n.push('_');
        }
        variants.push(n);
    }
    writeln!(o, "/// Enumeration `{name}`.").unwrap();
    o.push_str("#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]\n");
    writeln!(o, "pub enum {name} {{").unwrap();
    for (v, n) in values.iter().zip(&variants) {
        writeln!(
            o,
            "    /// `{}`\n    #[serde(rename = {v:?})]\n    {n},",
            v.replace('`', "'")
        )
        .unwrap();
    }
    o.push_str("}\n");
    writeln!(o, "impl {name} {{").unwrap();
    o.push_str("    /// Every value, in schema order.\n    pub const ALL: &'static [Self] = &[");
    o.push_str(
        &variants
            .iter()
            .map(|v| format!("Self::{v}"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    o.push_str("];\n");
    o.push_str("    /// The lexical value.\n    pub fn as_str(self) -> &'static str {\n        match self {\n");
    for (v, n) in values.iter().zip(&variants) {
        writeln!(o, "            Self::{n} => {v:?},").unwrap();
    }
    o.push_str("        }\n    }\n");
    o.push_str("    /// Parses a (whitespace-normalised) lexical value.\n    pub fn from_lexical(s: &str) -> Option<Self> {\n        match s {\n");
    for (v, n) in values.iter().zip(&variants) {
        writeln!(o, "            {v:?} => Some(Self::{n}),").unwrap();
    }
    o.push_str("            _ => None,\n        }\n    }\n}\n");
    writeln!(o, "impl std::fmt::Display for {name} {{ fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {{ f.write_str(self.as_str()) }} }}").unwrap();
    writeln!(o, "impl LeafValue for {name} {{ fn lexical(&self) -> std::borrow::Cow<'_, str> {{ std::borrow::Cow::Borrowed(self.as_str()) }} }}\n").unwrap();
    Ok(())
}

fn leaf_from(rust: &RustLeaf, st: &str) -> String {
    match rust {
        RustLeaf::Text => format!("rt::to_text(d, &{st}, raw)?"),
        RustLeaf::Enum(n) => format!("rt::to_enum(d, &{st}, raw, {n}::from_lexical)?"),
        RustLeaf::Decimal => format!("rt::to_decimal(d, &{st}, raw)?"),
        RustLeaf::Integer => format!("rt::to_integer(d, &{st}, raw)?"),
        RustLeaf::Date => format!("rt::to_date(d, &{st}, raw)?"),
        RustLeaf::DateTime => format!("rt::to_date_time(d, &{st}, raw)?"),
    }
}

fn emit_struct(fam: &Family, c: &ComplexDef, o: &mut String) -> R<()> {
    let name = &c.name;
    let ct = ct_static(name);
    writeln!(o, "/// Complex type `{name}`.").unwrap();
    o.push_str("#[derive(Debug, Clone, PartialEq, serde::Serialize)]\n");
    writeln!(o, "pub struct {name} {{").unwrap();
    let mut kinds = Vec::new();
    for a in &c.attributes {
        let TypeRef::Named(t) = &a.ty else {
            unreachable!()
        };
        let r = resolve(fam, t)?.rust;
        let ty = if a.required {
            r.ty()
        } else {
            format!("Option<{}>", r.ty())
        };
        writeln!(
            o,
            "    /// Attribute `{}`.\n    pub {}: {ty},",
            a.name,
            snake(&a.name)
        )
        .unwrap();
    }
    for e in &c.elements {
        let k = field_kind(fam, &e.ty)?;
        let inner = match &k {
            FieldKind::Complex(n) => n.clone(),
            FieldKind::Leaf(_, r) => r.ty(),
        };
        let ty = if e.max != Some(1) {
            format!("Vec<{inner}>")
        } else if e.min == 0 {
            format!("Option<{inner}>")
        } else {
            inner
        };
        let mut doc = format!(
            "Element `{}` [{}..{}]",
            e.name,
            e.min,
            e.max.map_or("n".to_string(), |m| m.to_string())
        );
        if let Some(cl) = &e.code_list {
            write!(doc, ", code list {cl}").unwrap();
        }
        if !e.rules.is_empty() {
            write!(doc, ", rules {}", e.rules.join(" ")).unwrap();
        }
        writeln!(o, "    /// {doc}.\n    pub {}: {ty},", snake(&e.name)).unwrap();
        kinds.push(k);
    }
    o.push_str("}\n\n");

    // Decoder.
    writeln!(o, "impl {name} {{").unwrap();
    o.push_str(
        "    /// Decodes the content of an element of this type; `start` is its start tag.\n",
    );
    o.push_str("    pub(crate) fn decode_content(d: &mut Decoder<'_>, start: &quick_xml::events::BytesStart<'_>, empty: bool) -> Result<Self, Fail> {\n");
    for a in &c.attributes {
        writeln!(o, "        let mut a_{}: Option<_> = None;", snake(&a.name)).unwrap();
    }
    if c.attributes.is_empty() {
        writeln!(o, "        d.no_attributes(start)?;").unwrap();
    } else {
        writeln!(o, "        for (key, raw) in d.attributes(start)? {{").unwrap();
        o.push_str("            let raw = std::borrow::Cow::<str>::Owned(raw);\n");
        o.push_str("            match key.as_str() {\n");
        for a in &c.attributes {
            let TypeRef::Named(t) = &a.ty else {
                unreachable!()
            };
            let r = resolve(fam, t)?.rust;
            writeln!(
                o,
                "                {:?} => {{ d.enter_attribute({:?}); let v = {}; d.leave(); a_{} = Some(v); }}",
                a.name,
                format!("@{}", a.name),
                leaf_from(&r, &st_static(t)),
                snake(&a.name)
            )
            .unwrap();
        }
        o.push_str("                _ => return Err(d.unknown_attribute(&key)),\n            }\n        }\n");
    }
    let n = c.elements.len();
    for (i, (e, k)) in c.elements.iter().zip(&kinds).enumerate() {
        let inner = match k {
            FieldKind::Complex(n) => n.clone(),
            FieldKind::Leaf(_, r) => r.ty(),
        };
        if e.max != Some(1) {
            writeln!(o, "        let mut f{i}: Vec<{inner}> = Vec::new();").unwrap();
        } else {
            writeln!(o, "        let mut f{i}: Option<{inner}> = None;").unwrap();
        }
    }
    writeln!(
        o,
        "        let mut counts = [0u32; {n}];\n        let mut pos = 0usize;"
    )
    .unwrap();
    o.push_str("        if !empty {\n            while let Some((child, child_empty)) = d.next_child()? {\n");
    o.push_str(
        "                let local = child.name();\n                match local.as_ref() {\n",
    );
    for (i, (e, k)) in c.elements.iter().zip(&kinds).enumerate() {
        writeln!(o, "                    b{:?} => {{", e.name).unwrap();
        writeln!(o, "                        let index = d.step(&{ct}, {i}, &mut counts, &mut pos, child_empty)?;").unwrap();
        writeln!(o, "                        d.enter({:?}, index);", e.name).unwrap();
        let value = match k {
            FieldKind::Complex(t) => format!("{t}::decode_content(d, &child, child_empty)?"),
            FieldKind::Leaf(st, r) => {
                writeln!(
                    o,
                    "                        let raw = d.leaf_text(&child, child_empty)?;"
                )
                .unwrap();
                leaf_from(r, &st_static(st))
            }
        };
        writeln!(o, "                        let v = {value};").unwrap();
        o.push_str("                        d.leave_child(child_empty);\n");
        if e.max != Some(1) {
            writeln!(o, "                        f{i}.push(v);").unwrap();
        } else {
            writeln!(o, "                        f{i} = Some(v);").unwrap();
        }
        o.push_str("                    }\n");
    }
    writeln!(
        o,
        "                    _ => return Err(d.unexpected_element(&{ct}, &child, pos)),"
    )
    .unwrap();
    o.push_str("                }\n            }\n        }\n");
    writeln!(o, "        d.finish(&{ct}, &counts)?;").unwrap();
    for a in &c.attributes {
        if a.required {
            writeln!(
                o,
                "        let Some(a_{0}) = a_{0} else {{ return Err(d.missing_attribute({1:?})); }};",
                snake(&a.name),
                a.name
            )
            .unwrap();
        }
    }
    o.push_str("        Ok(Self {\n");
    for a in &c.attributes {
        writeln!(o, "            {0}: a_{0},", snake(&a.name)).unwrap();
    }
    for (i, e) in c.elements.iter().enumerate() {
        if e.max != Some(1) || e.min == 0 {
            writeln!(o, "            {}: f{i},", snake(&e.name)).unwrap();
        } else {
            writeln!(o, "            {}: match f{i} {{ Some(v) => v, None => return Err(d.missing_after(&{ct}, {i})) }},", snake(&e.name)).unwrap();
        }
    }
    o.push_str("        })\n    }\n\n");

    // Encoder.
    o.push_str("    /// Writes the attributes (name, lexical value) of this element.\n");
    o.push_str("    pub(crate) fn encode_attributes(&self, w: &mut Writer) {\n");
    for a in &c.attributes {
        if a.required {
            writeln!(
                o,
                "        w.attribute({:?}, &self.{}.lexical());",
                a.name,
                snake(&a.name)
            )
            .unwrap();
        } else {
            writeln!(
                o,
                "        if let Some(v) = &self.{} {{ w.attribute({:?}, &v.lexical()); }}",
                snake(&a.name),
                a.name
            )
            .unwrap();
        }
    }
    o.push_str("    }\n\n");
    o.push_str("    /// Writes the child elements of this element, in schema order.\n");
    o.push_str("    pub(crate) fn encode_content(&self, w: &mut Writer) {\n");
    for (e, k) in c.elements.iter().zip(&kinds) {
        let f = snake(&e.name);
        let one = match k {
            FieldKind::Complex(_) => format!(
                "{{ w.open({:?}); v.encode_attributes(w); w.open_end(); v.encode_content(w); w.close({:?}); }}",
                e.name, e.name
            ),
            FieldKind::Leaf(..) => format!("{{ w.leaf({:?}, &v.lexical()); }}", e.name),
        };
        if e.max != Some(1) {
            writeln!(o, "        for v in &self.{f} {one}").unwrap();
        } else if e.min == 0 {
            writeln!(o, "        if let Some(v) = &self.{f} {one}").unwrap();
        } else {
            writeln!(o, "        {{ let v = &self.{f}; {one} }}").unwrap();
        }
    }
    o.push_str("    }\n\n");

    // Code-list visitor.
    o.push_str("    /// Calls `f(pointer, code list id, value)` for every element of this subtree that carries a\n    /// `cm:codeList`, in document order. `ptr` is the pointer of `self`, restored on return.\n");
    o.push_str("    pub fn visit_code_lists(&self, ptr: &mut Pointer, f: &mut dyn FnMut(&Pointer, &'static str, &str)) {\n");
    for (e, k) in c.elements.iter().zip(&kinds) {
        let f = snake(&e.name);
        let body = match (k, &e.code_list) {
            (FieldKind::Complex(_), _) => "v.visit_code_lists(ptr, f);".to_string(),
            (FieldKind::Leaf(..), Some(cl)) => format!("f(ptr, {cl:?}, &v.lexical());"),
            (FieldKind::Leaf(..), None) => continue,
        };
        if e.max != Some(1) {
            writeln!(o, "        for (i, v) in self.{f}.iter().enumerate() {{ ptr.push({:?}, rt::index_of(i)); {body} ptr.pop(); }}", e.name).unwrap();
        } else if e.min == 0 {
            writeln!(
                o,
                "        if let Some(v) = &self.{f} {{ ptr.push({:?}, 0); {body} ptr.pop(); }}",
                e.name
            )
            .unwrap();
        } else {
            writeln!(
                o,
                "        {{ let v = &self.{f}; ptr.push({:?}, 0); {body} ptr.pop(); }}",
                e.name
            )
            .unwrap();
        }
    }
    o.push_str("    }\n}\n\n");
    Ok(())
}

fn emit_message(families: &[Family], roots: &[(String, String, String)], o: &mut String) -> R<()> {
    o.push_str("/// Every message of every family: one variant per root element.\n");
    o.push_str("#[derive(Debug, Clone, PartialEq, serde::Serialize)]\n#[allow(clippy::large_enum_variant)]\npub enum Message {\n");
    for (r, m, t) in roots {
        writeln!(o, "    /// `{r}` ({m}).\n    {r}(Box<{m}::{t}>),").unwrap();
    }
    if roots.is_empty() {
        o.push_str("    /// Placeholder: no schemas were found.\n    None,\n");
    }
    o.push_str("}\n\n");

    // Root table.
    o.push_str("/// Root elements: (namespace, local name, type table).\npub static ROOTS: &[(&str, &str, &crate::codec::rt::TypeInfo)] = &[\n");
    for (r, m, t) in roots {
        writeln!(o, "    ({m}::NAMESPACE, {r:?}, &{m}::{}),", ct_static(t)).unwrap();
    }
    o.push_str("];\n\n");
    o.push_str("/// Every family: (folder, namespace, prefix, complex types).\npub static FAMILIES: &[(&str, &str, &str, &[&crate::codec::rt::TypeInfo])] = &[\n");
    for f in families {
        let m = rust_ident(&f.dir);
        writeln!(
            o,
            "    ({:?}, {m}::NAMESPACE, {m}::PREFIX, {m}::TYPES),",
            f.dir
        )
        .unwrap();
    }
    o.push_str("];\n\n");

    o.push_str("#[allow(unreachable_code, unused_variables, unused_mut, clippy::match_single_binding)]\nimpl Message {\n");
    o.push_str(
        "    /// Decodes the root element `local` (already checked to be in namespace `ns`).\n",
    );
    o.push_str("    pub(crate) fn decode_root(d: &mut crate::codec::rt::Decoder<'_>, ns: &str, local: &[u8], start: &quick_xml::events::BytesStart<'_>, empty: bool) -> Result<Option<Self>, crate::codec::rt::Fail> {\n        Ok(Some(match (ns, local) {\n");
    for (r, m, t) in roots {
        writeln!(o, "            ({m}::NAMESPACE, b{r:?}) => Message::{r}(Box::new({m}::{t}::decode_content(d, start, empty)?)),").unwrap();
    }
    o.push_str("            _ => return Ok(None),\n        }))\n    }\n\n");

    o.push_str("    /// The root element name, e.g. `CC015C`.\n    pub fn message_type(&self) -> &'static str {\n        match self {\n");
    for (r, _, _) in roots {
        writeln!(o, "            Message::{r}(_) => {r:?},").unwrap();
    }
    if roots.is_empty() {
        o.push_str("            Message::None => \"\",\n");
    }
    o.push_str("        }\n    }\n\n");
    o.push_str("    /// The namespace of the root element.\n    pub fn namespace(&self) -> &'static str {\n        match self {\n");
    for (r, m, _) in roots {
        writeln!(o, "            Message::{r}(_) => {m}::NAMESPACE,").unwrap();
    }
    if roots.is_empty() {
        o.push_str("            Message::None => \"\",\n");
    }
    o.push_str("        }\n    }\n\n");
    o.push_str("    /// The prefix the encoder gives the root element.\n    pub fn prefix(&self) -> &'static str {\n        match self {\n");
    for (r, m, _) in roots {
        writeln!(o, "            Message::{r}(_) => {m}::PREFIX,").unwrap();
    }
    if roots.is_empty() {
        o.push_str("            Message::None => \"\",\n");
    }
    o.push_str("        }\n    }\n\n");
    o.push_str("    /// The schema table of the root type.\n    pub fn type_info(&self) -> &'static crate::codec::rt::TypeInfo {\n        match self {\n");
    for (r, m, t) in roots {
        writeln!(o, "            Message::{r}(_) => &{m}::{},", ct_static(t)).unwrap();
    }
    if roots.is_empty() {
        o.push_str("            Message::None => &crate::codec::rt::EMPTY_TYPE,\n");
    }
    o.push_str("        }\n    }\n\n");

    o.push_str("    /// Writes the root's attributes and content.\n    pub(crate) fn encode_body(&self, w: &mut crate::codec::rt::Writer) {\n        match self {\n");
    for (r, _, _) in roots {
        writeln!(o, "            Message::{r}(m) => {{ m.encode_attributes(w); w.open_end(); m.encode_content(w); }}").unwrap();
    }
    if roots.is_empty() {
        o.push_str("            Message::None => w.open_end(),\n");
    }
    o.push_str("        }\n    }\n\n");

    o.push_str("    /// Walks every code-list element of the message: `f(pointer, code list id, value)`.\n");
    o.push_str("    pub fn visit_code_lists(&self, f: &mut dyn FnMut(&crate::codec::rt::Pointer, &'static str, &str)) {\n        let mut ptr = crate::codec::rt::Pointer::root(self.message_type());\n        match self {\n");
    for (r, _, _) in roots {
        writeln!(
            o,
            "            Message::{r}(m) => m.visit_code_lists(&mut ptr, f),"
        )
        .unwrap();
    }
    if roots.is_empty() {
        o.push_str("            Message::None => {}\n");
    }
    o.push_str("        }\n    }\n\n");

    // Header accessors.
    let header: [(&str, &str); 5] = [
        ("messageIdentification", "message_identification"),
        ("messageSender", "message_sender"),
        ("messageRecipient", "message_recipient"),
        ("correlationIdentifier", "correlation_identifier"),
        ("preparationDateAndTime", "preparation_date_and_time"),
    ];
    for (el, acc) in header {
        let is_time = el == "preparationDateAndTime";
        let ret = if is_time {
            "Option<chrono::NaiveDateTime>"
        } else {
            "Option<&str>"
        };
        writeln!(o, "    /// Header element `{el}`, when the message has one.\n    pub fn {acc}(&self) -> {ret} {{\n        match self {{").unwrap();
        for (r, _, t) in roots {
            let fam = families
                .iter()
                .find(|f| f.roots.contains_key(r))
                .ok_or("root family")?;
            let c = &fam.complex[t];
            let arm = match c.elements.iter().find(|e| e.name == el) {
                Some(e) if e.max == Some(1) => {
                    let k = field_kind(fam, &e.ty)?;
                    let f = snake(el);
                    match (k, is_time, e.min) {
                        (FieldKind::Leaf(_, RustLeaf::DateTime), true, 1) => format!("Some(m.{f})"),
                        (FieldKind::Leaf(_, RustLeaf::DateTime), true, _) => format!("m.{f}"),
                        (FieldKind::Leaf(_, RustLeaf::Text), false, 1) => {
                            format!("Some(m.{f}.as_str())")
                        }
                        (FieldKind::Leaf(_, RustLeaf::Text), false, _) => {
                            format!("m.{f}.as_deref()")
                        }
                        (FieldKind::Leaf(_, RustLeaf::Enum(_)), false, 1) => {
                            format!("Some(m.{f}.as_str())")
                        }
                        (FieldKind::Leaf(_, RustLeaf::Enum(_)), false, _) => {
                            format!("m.{f}.map(|v| v.as_str())")
                        }
                        _ => "None".to_string(),
                    }
                }
                _ => "None".to_string(),
            };
            writeln!(o, "            Message::{r}(m) => {arm},").unwrap();
        }
        if roots.is_empty() {
            o.push_str("            Message::None => None,\n");
        }
        o.push_str("        }\n    }\n\n");
    }
    o.push_str("}\n");
    Ok(())
}
