//! A read-only element tree of a decoded message, for the rules.
//!
//! The rules of the TIS are written over paths (`/*/Consignment/HouseConsignment/grossMass`) that
//! run through 22 messages whose generated types differ in name at every level
//! (`ConsignmentType20` in CC015C, `ConsignmentType23` in CC013C, ...). So the rules read the
//! message through this view: built once from the typed [`Message`] by re-encoding it (the
//! canonical encoding is exact: `decode(encode(m)) == m`), with every node carrying the same
//! XPath-style pointer the codec uses (repeatable elements always indexed, others never).

use std::collections::HashMap;
use std::str::FromStr;

use quick_xml::events::Event;

use crate::codec::{self, TypeInfo};
use crate::generated::Message;

/// One element: its name, pointer, text and child elements.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Node {
    /// Local name (`Consignment`).
    pub name: String,
    /// XPath-style pointer (`/CC015C/Consignment/HouseConsignment[1]`).
    pub pointer: String,
    /// Text content (empty for element-only content).
    pub text: String,
    /// Child elements, in document order.
    pub children: Vec<Node>,
}

impl Node {
    /// The first child called `name`.
    pub fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Every child called `name`.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// Whether a child called `name` is present.
    pub fn has(&self, name: &str) -> bool {
        self.child(name).is_some()
    }

    /// The text of the first child called `name`.
    pub fn text_of(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.as_str())
    }

    /// The text of the child at `path` (first match at every level).
    pub fn text_at(&self, path: &[&str]) -> Option<&str> {
        self.first(path).map(|n| n.text.as_str())
    }

    /// The first node at `path` below this one.
    pub fn first(&self, path: &[&str]) -> Option<&Node> {
        let mut node = self;
        for name in path {
            node = node.child(name)?;
        }
        Some(node)
    }

    /// Every node at `path` below this one (all matches at every level, in document order).
    pub fn every(&self, path: &[&str]) -> Vec<&Node> {
        let mut nodes = vec![self];
        for name in path {
            let mut next = Vec::new();
            for n in nodes {
                next.extend(n.children.iter().filter(|c| c.name == *name));
            }
            nodes = next;
        }
        nodes
    }

    /// The text of the child `name` as a number, if present and numeric.
    pub fn number_of<T: FromStr>(&self, name: &str) -> Option<T> {
        self.text_of(name).and_then(|t| t.trim().parse().ok())
    }

    /// The pointer a missing child `name` would have (no index: it does not exist).
    pub fn pointer_of_missing(&self, name: &str) -> String {
        format!("{}/{name}", self.pointer)
    }

    /// Whether two nodes carry the same data: same name, text and children, pointers aside.
    pub fn same_content(&self, other: &Node) -> bool {
        self.name == other.name
            && self.text.trim() == other.text.trim()
            && self.children.len() == other.children.len()
            && self
                .children
                .iter()
                .zip(&other.children)
                .all(|(a, b)| a.same_content(b))
    }

    /// Every node of the subtree, this one first, in document order.
    pub fn descendants(&self) -> Vec<&Node> {
        let mut out = vec![self];
        let mut i = 0;
        while let Some(node) = out.get(i).copied() {
            out.extend(node.children.iter());
            i += 1;
        }
        out
    }
}

/// Builds the tree of a message. `None` only if the canonical encoding cannot be read back,
/// which `decode(encode(m)) == m` rules out.
pub fn of(message: &Message) -> Option<Node> {
    let bytes = codec::encode(message);
    build(&bytes, message.type_info())
}

struct Open {
    node: Node,
    ty: Option<&'static TypeInfo>,
    counts: HashMap<String, u32>,
}

fn local(name: &[u8]) -> String {
    let name = String::from_utf8_lossy(name);
    match name.split_once(':') {
        Some((_, l)) => l.to_owned(),
        None => name.into_owned(),
    }
}

fn build(bytes: &[u8], root_type: &'static TypeInfo) -> Option<Node> {
    let mut reader = quick_xml::Reader::from_reader(bytes);
    let mut stack: Vec<Open> = Vec::new();
    loop {
        let event = reader.read_event().ok()?;
        let (start, empty) = match event {
            Event::Start(s) => (Some(s), false),
            Event::Empty(s) => (Some(s), true),
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    top.node.text.push_str(&t.decode().ok()?);
                }
                (None, false)
            }
            Event::GeneralRef(r) => {
                if let Some(top) = stack.last_mut() {
                    let name = r.decode().ok()?;
                    let resolved = quick_xml::escape::resolve_predefined_entity(&name)
                        .map(str::to_owned)
                        .or_else(|| r.resolve_char_ref().ok().flatten().map(|c| c.to_string()))?;
                    top.node.text.push_str(&resolved);
                }
                (None, false)
            }
            Event::CData(c) => {
                if let Some(top) = stack.last_mut() {
                    top.node.text.push_str(&String::from_utf8_lossy(&c));
                }
                (None, false)
            }
            Event::End(_) => {
                let done = stack.pop()?;
                match stack.last_mut() {
                    Some(parent) => parent.node.children.push(done.node),
                    None => return Some(done.node),
                }
                (None, false)
            }
            Event::Eof => return None,
            _ => (None, false),
        };
        let Some(start) = start else { continue };
        let name = local(start.name().as_ref());
        let open = match stack.last_mut() {
            None => Open {
                node: Node {
                    pointer: format!("/{name}"),
                    name,
                    ..Node::default()
                },
                ty: Some(root_type),
                counts: HashMap::new(),
            },
            Some(parent) => {
                let info = parent.ty.and_then(|t| t.element(&name));
                let count = parent.counts.entry(name.clone()).or_insert(0);
                *count += 1;
                let repeatable = info.is_none_or(|i| i.max > 1);
                let pointer = if repeatable {
                    format!("{}/{name}[{count}]", parent.node.pointer)
                } else {
                    format!("{}/{name}", parent.node.pointer)
                };
                Open {
                    node: Node {
                        pointer,
                        name,
                        ..Node::default()
                    },
                    ty: info.and_then(|i| i.complex),
                    counts: HashMap::new(),
                }
            }
        };
        if empty {
            match stack.last_mut() {
                Some(parent) => parent.node.children.push(open.node),
                None => return Some(open.node),
            }
        } else {
            stack.push(open);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{Limits, decode};

    const DOC: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<ncts:CC014C xmlns:ncts="http://ncts.dgtaxud.ec">
  <messageSender>KZ.TRADER.0001</messageSender>
  <messageRecipient>NTA.KZ</messageRecipient>
  <preparationDateAndTime>2026-03-16T11:00:00</preparationDateAndTime>
  <messageIdentification>TREE-1</messageIdentification>
  <messageType>CC014C</messageType>
  <TransitOperation>
    <LRN>A&amp;B</LRN>
  </TransitOperation>
  <Invalidation>
    <requestDateAndTime>2026-03-16T10:55:00</requestDateAndTime>
    <initiatedByCustoms>0</initiatedByCustoms>
    <justification>x</justification>
  </Invalidation>
  <CustomsOfficeOfDeparture>
    <referenceNumber>KZ000101</referenceNumber>
  </CustomsOfficeOfDeparture>
  <HolderOfTheTransitProcedure>
    <identificationNumber>KZ123456789012</identificationNumber>
  </HolderOfTheTransitProcedure>
</ncts:CC014C>
"#;

    #[test]
    fn builds_the_tree_with_codec_pointers_and_unescaped_text() {
        let message = decode(DOC.as_bytes(), &Limits::default()).expect("valid CC014C");
        let root = of(&message).expect("tree");
        assert_eq!(root.name, "CC014C");
        assert_eq!(root.pointer, "/CC014C");
        let lrn = root.first(&["TransitOperation", "LRN"]).expect("LRN");
        assert_eq!(lrn.pointer, "/CC014C/TransitOperation/LRN");
        assert_eq!(lrn.text, "A&B");
        assert_eq!(
            root.text_at(&["Invalidation", "initiatedByCustoms"]),
            Some("0")
        );
        assert_eq!(
            root.pointer_of_missing("Representative"),
            "/CC014C/Representative"
        );
        assert!(root.descendants().len() > 10);
        assert!(root.same_content(&root.clone()));
    }
}
