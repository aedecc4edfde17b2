//! Code lists: the NCTS P5 lists that the messages and the rules use, and CATS's own.
//!
//! The values are data, not code: `data/codelists/<ID>.tsv`, produced by
//! `tools/codelists/extract.py` from the P5 reference (the CS/RD2 generic extract, the P5
//! `tcl.xsd`, ISO 4217, and lists entered from the DDNTA under `tools/codelists/manual/`), embedded
//! with `include_str!` and parsed once, lazily, into the [`CodeLists`] registry.
//!
//! Each file says whether it is **complete**. A value outside a complete list is NCTS functional
//! error 12; a list that is not complete (most of the big EU lists, and the office lists, which are
//! reference data in CATS) is known by name but its values are not judged here: the node and the
//! hub check them against their reference data. [`CodeLists::admits`] is the question the rules
//! stage asks.
//!
//! CATS's own lists:
//!
//! | id | what |
//! | --- | --- |
//! | `CATS001` | pilot countries (KZ, AZ, GE) |
//! | `CATS002` | CATS currencies (KZT, AZN, GEL, USD, EUR) |
//! | `CATS003` | office roles (CS/RD2 role codes: DEP, DES, TRA, ENT, EXT, GUA) |
//! | `CATS004` | guarantee refusal reasons (CL252 G-codes and CATS C-codes) |

mod embedded;

use std::collections::BTreeMap;
use std::sync::OnceLock;

/// One code list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeList {
    id: &'static str,
    name: &'static str,
    source: &'static str,
    complete: bool,
    entries: BTreeMap<&'static str, &'static str>,
}

impl CodeList {
    /// The list id (`CL231`, `CATS001`).
    pub fn id(&self) -> &'static str {
        self.id
    }

    /// The list name (`DeclarationType`).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Where the values come from.
    pub fn source(&self) -> &'static str {
        self.source
    }

    /// Whether the file holds every valid code, so that any other value is an error.
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// Whether `code` is in the list.
    pub fn contains(&self, code: &str) -> bool {
        self.entries.contains_key(code)
    }

    /// The English description of `code`.
    pub fn description(&self, code: &str) -> Option<&'static str> {
        self.entries.get(code).copied()
    }

    /// The codes, in order.
    pub fn codes(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.entries.keys().copied()
    }

    /// The number of codes.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the list holds no code.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// A malformed code-list file (only ever an error in the crate's own data, pinned by a test).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("code list {list}: line {line}: {reason}")]
pub struct CodeListFileError {
    /// The list id.
    pub list: String,
    /// One-based line number.
    pub line: usize,
    /// What is wrong.
    pub reason: &'static str,
}

/// Parses one code-list file (see `tools/codelists/extract.py` for the format).
pub fn parse_file(id: &'static str, text: &'static str) -> Result<CodeList, CodeListFileError> {
    let mut list = CodeList {
        id,
        name: "",
        source: "",
        complete: false,
        entries: BTreeMap::new(),
    };
    let mut seen_complete = false;
    let err = |line, reason| CodeListFileError {
        list: id.to_owned(),
        line,
        reason,
    };
    for (n, line) in text.lines().enumerate() {
        let n = n + 1;
        if let Some(header) = line.strip_prefix('#') {
            let header = header.trim();
            if let Some(v) = header.strip_prefix("id:") {
                if v.trim() != id {
                    return Err(err(n, "id header differs from the file name"));
                }
            } else if let Some(v) = header.strip_prefix("name:") {
                list.name = v.trim();
            } else if let Some(v) = header.strip_prefix("source:") {
                list.source = v.trim();
            } else if let Some(v) = header.strip_prefix("complete:") {
                list.complete = match v.trim() {
                    "yes" => true,
                    "no" => false,
                    _ => return Err(err(n, "complete: must be yes or no")),
                };
                seen_complete = true;
            }
            continue;
        }
        if line.trim().is_empty() {
            continue;
        }
        let (code, description) = line.split_once('\t').unwrap_or((line, ""));
        if code.is_empty() || code.trim() != code {
            return Err(err(n, "empty code or code with surrounding spaces"));
        }
        if list.entries.insert(code, description).is_some() {
            return Err(err(n, "duplicate code"));
        }
    }
    if !seen_complete {
        return Err(err(0, "missing '# complete:' header"));
    }
    Ok(list)
}

/// The registry of code lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeLists {
    lists: BTreeMap<&'static str, CodeList>,
}

impl CodeLists {
    /// The lists embedded in the crate, parsed on first use.
    pub fn embedded() -> &'static CodeLists {
        static LISTS: OnceLock<CodeLists> = OnceLock::new();
        LISTS.get_or_init(|| {
            CodeLists::from_files(embedded::FILES)
                .expect("the embedded code lists are well formed (pinned by a unit test)")
        })
    }

    /// Builds a registry from `(id, contents)` pairs.
    pub fn from_files(
        files: &[(&'static str, &'static str)],
    ) -> Result<CodeLists, CodeListFileError> {
        let mut lists = BTreeMap::new();
        for (id, text) in files {
            lists.insert(*id, parse_file(id, text)?);
        }
        Ok(CodeLists { lists })
    }

    /// The list `list_id`, if known.
    pub fn get(&self, list_id: &str) -> Option<&CodeList> {
        self.lists.get(list_id)
    }

    /// Whether `code` is in the list `list_id` (false when the list is unknown).
    pub fn contains(&self, list_id: &str, code: &str) -> bool {
        self.get(list_id).is_some_and(|l| l.contains(code))
    }

    /// The English description of `code` in the list `list_id`.
    pub fn description(&self, list_id: &str, code: &str) -> Option<&'static str> {
        self.get(list_id).and_then(|l| l.description(code))
    }

    /// Whether the catalogue accepts `code` for the list `list_id`: true when the code is in the
    /// list, or when the list is not complete here (its values are reference data, judged by the
    /// node or the hub). False for a code outside a complete list, or for an unknown list.
    pub fn admits(&self, list_id: &str, code: &str) -> bool {
        self.get(list_id)
            .is_some_and(|l| !l.is_complete() || l.contains(code))
    }

    /// Whether the list `list_id` is known and complete.
    pub fn is_complete(&self, list_id: &str) -> bool {
        self.get(list_id).is_some_and(CodeList::is_complete)
    }

    /// The ids of all lists, in order.
    pub fn ids(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.lists.keys().copied()
    }

    /// All lists, in id order.
    pub fn lists(&self) -> impl Iterator<Item = &CodeList> + '_ {
        self.lists.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_lists_parse() {
        let lists = CodeLists::from_files(embedded::FILES).expect("well formed");
        assert!(lists.ids().count() >= 70);
    }

    #[test]
    fn every_data_file_is_embedded() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/data/codelists");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .expect("data/codelists exists")
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                e.file_name()
                    .to_str()
                    .and_then(|n| n.strip_suffix(".tsv"))
                    .map(str::to_owned)
            })
            .collect();
        on_disk.sort();
        let embedded: Vec<String> = embedded::FILES
            .iter()
            .map(|(id, _)| (*id).to_owned())
            .collect();
        assert_eq!(
            on_disk, embedded,
            "update src/codelists/embedded.rs after running extract.py"
        );
    }

    #[test]
    fn every_list_the_schemas_name_is_present() {
        let schemas = concat!(env!("CARGO_MANIFEST_DIR"), "/../schemas");
        let mut missing = Vec::new();
        let mut named = 0;
        let mut stack = vec![std::path::PathBuf::from(schemas)];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir)
                .expect("schemas/ is readable")
                .filter_map(|e| e.ok())
            {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "xsd") {
                    let text = std::fs::read_to_string(&path).expect("schema is UTF-8");
                    for part in text.split("cm:codeList=\"").skip(1) {
                        let id = part.split('"').next().unwrap_or_default();
                        named += 1;
                        if CodeLists::embedded().get(id).is_none() {
                            missing.push(format!("{id} ({})", path.display()));
                        }
                    }
                }
            }
        }
        assert!(named > 0, "no cm:codeList found under {schemas}");
        missing.sort();
        missing.dedup();
        assert!(missing.is_empty(), "code lists missing: {missing:?}");
    }

    #[test]
    fn looks_up_codes() {
        let lists = CodeLists::embedded();
        assert!(lists.contains("CL231", "TIR"));
        assert!(!lists.contains("CL231", "T3"));
        assert!(!lists.admits("CL231", "T3"));
        assert_eq!(
            lists.description("CL217", "0"),
            Some("Not used for safety and security purposes")
        );
        for c in ["KZ", "AZ", "GE"] {
            assert!(lists.contains("CL008", c));
            assert!(lists.contains("CATS001", c));
        }
        for c in ["KZT", "AZN", "GEL", "USD", "EUR"] {
            assert!(lists.contains("CL048", c), "{c}");
            assert!(lists.contains("CATS002", c));
        }
        assert!(lists.contains("CL180", "93"));
        assert!(lists.contains("CL060", "CC015C"));
        // An incomplete list admits anything; an unknown list admits nothing.
        assert!(!lists.is_complete("CL017"));
        assert!(lists.admits("CL017", "ZZ"));
        assert!(!lists.admits("CL999", "1"));
    }

    #[test]
    fn malformed_files_are_rejected() {
        assert!(parse_file("X", "# id: X\n# complete: maybe\n").is_err());
        assert!(parse_file("X", "# id: Y\n# complete: yes\n").is_err());
        assert!(parse_file("X", "# complete: yes\nA\ta\nA\tb\n").is_err());
        assert!(parse_file("X", "A\ta\n").is_err());
        let ok = parse_file("X", "# complete: yes\nA\ta\nB\n").expect("well formed");
        assert_eq!(ok.len(), 2);
        assert_eq!(ok.description("B"), Some(""));
    }
}
