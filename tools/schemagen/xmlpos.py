"""Element positions in a document, pointers, and xmllint's first error."""

import re
import xml.parsers.expat


class PNode:
    def __init__(self, name, line, parent):
        self.name, self.line, self.parent = name, line, parent
        self.children = []


def parse(path):
    """Tree of PNode (local names, start lines); None if not well-formed."""
    root_holder = PNode("#document", 0, None)
    stack = [root_holder]
    p = xml.parsers.expat.ParserCreate()

    def start(name, attrs):
        n = PNode(name.split(":")[-1], p.CurrentLineNumber, stack[-1])
        stack[-1].children.append(n)
        stack.append(n)

    def end(name):
        stack.pop()

    p.StartElementHandler = start
    p.EndElementHandler = end
    try:
        with open(path, "rb") as f:
            p.ParseFile(f)
    except xml.parsers.expat.ExpatError:
        return None
    if not root_holder.children:
        return None
    top = root_holder.children[0]
    top.parent = None
    return top


def _decl(ns, names):
    """Decl of the element at the path of local names, or None if unknown."""
    t = ns.roots.get(names[0])
    decl = None
    for n in names[1:]:
        if t not in ns.complex:
            return None
        decl = next((d for d in ns.complex[t] if d.name == n), None)
        if decl is None:
            return None
        t = decl.type
    return decl


def pointer_of(ns, node):
    chain = []
    while node is not None:
        chain.append(node)
        node = node.parent
    chain.reverse()
    names = [n.name for n in chain]
    out = "/" + names[0]
    for i in range(1, len(chain)):
        out += "/" + names[i]
        d = _decl(ns, names[: i + 1])
        if d is not None and d.max != 1:
            same = [c for c in chain[i - 1].children if c.name == names[i]]
            out += f"[{same.index(chain[i]) + 1}]"
    return out


def find(tree, ptr):
    """The PNode a pointer names, or None."""
    parts = ptr.strip("/").split("/")
    if not tree or parts[0] != tree.name:
        return None
    node = tree
    for part in parts[1:]:
        if part.startswith("@"):
            return node
        m = re.fullmatch(r"([^\[]+)(?:\[(\d+)\])?", part)
        name, k = m.group(1), int(m.group(2) or 1)
        same = [c for c in node.children if c.name == name]
        if len(same) < k:
            return None
        node = same[k - 1]
    return node


ERR = re.compile(r"^(?P<file>.*?):(?P<line>\d+): element (?P<el>\S+): Schemas validity error : "
                 r"(?P<kind>Element|Attribute) '(?P<name>[^']+)'(?P<rest>.*)$")


def first_error(stderr):
    for line in stderr.splitlines():
        m = ERR.match(line)
        if m:
            return int(m.group("line")), m.group("kind"), m.group("el"), m.group("name"), m.group("rest")
    return None


def pointer_of_first_error(ns, path, stderr):
    """The pointer of the first offending element, by the corpus conventions."""
    tree = parse(path)
    err = first_error(stderr)
    if tree is None or err is None:
        return "/"
    line, kind, el, name, rest = err
    if kind == "Attribute":
        local_el = re.sub(r"^\{[^}]*\}", "", el).split(":")[-1]
        nodes = [n for n in _all(tree) if n.line == line and n.name == local_el]
        return (pointer_of(ns, nodes[-1]) if nodes else "/" + local_el) + "/@" + name
    local = re.sub(r"^\{[^}]*\}", "", name)
    m = re.match(r", attribute '([^']+)'", rest)
    if m:
        return pointer_of(ns, tree) + "/@" + m.group(1) if tree.name == local else "/"
    if ": No matching global declaration" in rest:
        return "/" + local
    candidates = [n for n in _all(tree) if n.line == line and n.name == local]
    if not candidates:
        return "/"
    node = candidates[-1]
    m = re.search(r"Missing child element\(s\)\. Expected is (?:one of )?\( ([^)]*) \)", rest)
    if m:
        miss = _mandatory_absent(ns, node, m.group(1))
        return _child_pointer(ns, node, miss) if miss else pointer_of(ns, node)
    m = re.search(r"This element is not expected\. Expected is (?:one of )?\( ([^)]*) \)", rest)
    if m and node.parent is not None:
        miss = _mandatory_absent(ns, node.parent, m.group(1))
        if miss:
            return _child_pointer(ns, node.parent, miss)
    return pointer_of(ns, node)


def _names_to(n):
    names = []
    while n is not None:
        names.append(n.name)
        n = n.parent
    return names[::-1]


def _mandatory_absent(ns, parent, expected):
    """The first mandatory element of xmllint's expected list that the parent lacks."""
    present = {c.name for c in parent.children}
    for x in [e.strip() for e in expected.split(",")]:
        x = re.sub(r"^\{[^}]*\}", "", x)
        d = _decl(ns, _names_to(parent) + [x])
        if d is not None and d.min >= 1 and x not in present:
            return x
    return None


def _child_pointer(ns, parent, name):
    names = []
    n = parent
    while n is not None:
        names.append(n.name)
        n = n.parent
    names.reverse()
    d = _decl(ns, names + [name])
    return pointer_of(ns, parent) + "/" + name + ("[1]" if d is not None and d.max != 1 else "")


def _all(n):
    yield n
    for c in n.children:
        yield from _all(c)
