"""Write the schema-level test corpus under message-catalog/tests/data/.

Per message: valid-full.xml, valid-minimal.xml and invalid cases named for
what is wrong, each with a .expect verdict (see message-catalog/tests/data/README.md).
Also the P5 samples with the P5 XSD's verdict, and the hostile inputs.
"""

import os
import re
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from dialect import Namespace  # noqa: E402
from instances import Builder, Node, render, pointer, sample_values, max_length, PREFIX  # noqa: E402
import xmlpos  # noqa: E402

REPO = os.path.dirname(os.path.dirname(HERE))
P5_REF = os.environ.get("P5_REF", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared", "reference", "ncts-p5"))
DATA = os.path.join(REPO, "message-catalog", "tests", "data")
NAMESPACES = ["ncts", "cats", "admin"]


def kebab(name):
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1-\2", name)
    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1-\2", s)
    return s.lower()


def plural(s):
    return s if s.endswith("s") else s + "s"


def write_case(directory, case, text, verdict, ptr=None, note=None):
    os.makedirs(directory, exist_ok=True)
    mode = "wb" if isinstance(text, bytes) else "w"
    with open(os.path.join(directory, case + ".xml"), mode) as f:
        f.write(text)
    lines = [verdict]
    if ptr:
        lines.append(ptr)
    if note:
        lines.append("# note: " + note)
    with open(os.path.join(directory, case + ".expect"), "w") as f:
        f.write("\n".join(lines) + "\n")


# ---------------------------------------------------------------- tree walks


def walk(node, path=None):
    """Yield (path, node) depth-first; path is the list of nodes from the root."""
    path = (path or []) + [node]
    yield path, node
    for c in node.children:
        yield from walk(c, path)


def decl_of(ns, path):
    """The Decl of the last node of a path (None for the root)."""
    t = ns.roots[path[0].name]
    decl = None
    for n in path[1:]:
        decl = next(d for d in ns.complex[t] if d.name == n.name)
        t = decl.type
    return decl


def builtin_of(ns, decl):
    return ns.chain(decl.type)[1]


HEADER = {"messageSender", "messageRecipient", "preparationDateAndTime",
          "messageIdentification", "messageType", "correlationIdentifier"}


def body_leaves(ns, tree):
    for path, n in walk(tree):
        if n.text is not None and not (len(path) == 2 and n.name in HEADER):
            yield path, n


# ---------------------------------------------------------------- cases


def cases_for(ns, b, root):
    """[(case, tree, verdict, pointer, phase)] for one message.

    Each kind of fault is applied to the minimal instance when it can be
    (small files, one fault), else to the full one.
    """
    phase_ok = ns.has_phase(root)
    full, minimal = b.full(root), b.minimal(root)
    out = [("valid-full", full, "valid", None, "NCTS5.1" if phase_ok else None),
           ("valid-minimal", minimal, "valid", None, None)]
    from_min = _mutations(ns, root, minimal, phase_ok)
    from_full = _mutations(ns, root, full, phase_ok)
    kinds = [k for k, *_ in from_min] + [k for k, *_ in from_full]
    for k in dict.fromkeys(kinds):
        case = next((c for kk, *c in from_min if kk == k), None) or \
            next(c for kk, *c in from_full if kk == k)
        out.append(tuple(case))
    return out


def _mutations(ns, root, full, phase_ok):
    out = []

    def mutant():
        return full.copy()

    # missing: the first mandatory body group, and the first mandatory leaf inside a group
    body = [c for c in full.children if c.name not in HEADER]
    rootdecls = ns.complex[ns.roots[root]]
    first_group = next((c for c in body if c.children), None)
    mandatory_top = next((c for c in body if decl_of(ns, [full, c]).min >= 1), None)
    if mandatory_top is not None:
        t = mutant()
        idx = [c.name for c in t.children].index(mandatory_top.name)
        gone = t.children[idx]
        n_same = len([c for c in t.children if c.name == gone.name])
        ptr = pointer([t, gone])
        # remove every occurrence so the element is really missing
        t.children = [c for c in t.children if c.name != gone.name]
        if n_same:
            out.append(('missing-top', "missing-" + kebab(gone.name), t, "invalid", ptr, None))
    for path, n in walk(full):
        if len(path) >= 3 and n.text is not None and decl_of(ns, path).min >= 1 \
                and n.name not in ("sequenceNumber",):
            t = mutant()
            tp = follow(t, path)
            ptr = pointer(tp)
            tp[-2].children.remove(tp[-1])
            out.append(('missing-leaf', "missing-" + kebab(n.name), t, "invalid", ptr, None))
            break
    else:
        t = mutant()
        ptr = pointer([t, t.children[0]])
        del t.children[0]
        out.append(('missing-leaf', "missing-message-sender", t, "invalid", ptr, None))

    # unknown element: second child of the first group, else after messageType
    t = mutant()
    if first_group is not None:
        g = follow(t, [full, first_group])[-1]
        g.children.insert(1, Node("unknownElement", text="x"))
        out.append(('unknown', "unknown-element", t, "invalid", pointer([t, g, g.children[1]]), None))
    else:
        k = [c.name for c in t.children].index("messageType") + 1
        t.children.insert(k, Node("unknownElement", text="x"))
        out.append(('unknown', "unknown-element", t, "invalid", pointer([t, t.children[k]]), None))

    # out of order: messageRecipient before messageSender
    t = mutant()
    t.children[0], t.children[1] = t.children[1], t.children[0]
    out.append(('order', "elements-out-of-order", t, "invalid", pointer([t, t.children[0]]), None))

    # too long: the first body leaf with a length bound
    for path, n in body_leaves(ns, full):
        ml = max_length(ns, decl_of(ns, path).type)
        if ml:
            t = mutant()
            tp = follow(t, path)
            tp[-1].text = "A" * (ml + 1)
            out.append(('too-long', kebab(n.name) + "-too-long", t, "invalid", pointer(tp), None))
            break

    # a bad date (or the header's date and time)
    done = False
    for path, n in body_leaves(ns, full):
        if builtin_of(ns, decl_of(ns, path)) == "xs:date":
            t = mutant()
            tp = follow(t, path)
            tp[-1].text = "2026-02-30"
            out.append(('bad-date', "bad-date", t, "invalid", pointer(tp), None))
            done = True
            break
    t = mutant()
    tp = [t, next(c for c in t.children if c.name == "preparationDateAndTime")]
    tp[-1].text = "2026-03-16 09:30:00"
    out.append(('bad-prep', "bad-preparation-date-and-time", t, "invalid", pointer(tp), None))

    # too many: the repeatable element with the smallest bound (<= 99)
    best = None
    for path, n in walk(full):
        if len(path) < 2:
            continue
        d = decl_of(ns, path)
        if 1 < d.max <= 99 and (best is None or d.max < best[0]) \
                and [c.name for c in path[-2].children].count(n.name) >= 1:
            if best is None or len(path) <= len(best[1]) or d.max < best[0]:
                best = (d.max, path)
    if best is not None:
        mx, path = best
        t = mutant()
        tp = follow(t, path)
        parent, el = tp[-2], tp[-1]
        k = parent.children.index(el)
        extra = mx + 1 - [c.name for c in parent.children].count(el.name)
        for _ in range(extra):
            parent.children.insert(k + 1, el.copy())
        last = [c for c in parent.children if c.name == el.name][mx]
        out.append(('too-many', "too-many-" + plural(kebab(el.name)), t, "invalid",
                    pointer(tp[:-1] + [last]), None))

    # wrong message type
    t = mutant()
    tp = [t, next(c for c in t.children if c.name == "messageType")]
    tp[-1].text = "CC999C"
    out.append(('bad-type', "bad-message-type", t, "invalid", pointer(tp), None))

    # empty mandatory leaf
    for path, n in body_leaves(ns, full):
        if decl_of(ns, path).min >= 1 and n.name != "sequenceNumber":
            t = mutant()
            tp = follow(t, path)
            tp[-1].text = ""
            out.append(('empty', "empty-" + kebab(n.name), t, "invalid", pointer(tp), None))
            break

    # kind-specific values
    specials = [
        ("bad-flag", lambda d: d.type == "Flag", "2"),
        ("bad-mrn", lambda d: d.type.startswith("MrnContentType"),
         "26kz00010100000#J5"),
        ("too-many-decimals", lambda d: builtin_of(ns, d) == "xs:decimal", "1.12345678901"),
        ("negative-sequence-number", lambda d: d.name == "sequenceNumber", "-1"),
    ]
    for case, pred, value in specials:
        for path, n in body_leaves(ns, full):
            d = decl_of(ns, path)
            if pred(d):
                t = mutant()
                tp = follow(t, path)
                tp[-1].text = value
                out.append((case, case, t, "invalid", pointer(tp), None))
                break

    # wrong namespace and a bad PhaseID are rendered specially
    out.append(('wrong-ns', "wrong-namespace", full, "invalid", "/" + root, "WRONG-NS"))
    if phase_ok:
        out.append(('phase', "bad-phase-id", full, "invalid", f"/{root}/@PhaseID", "NCTS4.0"))
    return out


def follow(tree, path):
    """The nodes of `tree` at the same positions as `path` (from another tree)."""
    out = [tree]
    for parent, n in zip(path, path[1:]):
        k = parent.children.index(n)
        out.append(out[-1].children[k])
    return out


# Deliberate departures from what the P5 XSDs accept (schemas/README.md).
DEPARTURES = {
    "cc015c": [(
        "annotation-element-as-root",
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<ncts:description xmlns:ncts="http://ncts.dgtaxud.ec" value="not a message"/>\n',
        "/description",
        "departure: P5's doc.xsd declares its annotation elements (description, rule, "
        "condition, codeList) as global elements, so every P5 message XSD accepts a "
        "document that is only one of them; CATS accepts messages only",
    )],
}


def message_corpus():
    samples = sample_values(P5_REF)
    count = 0
    for nsdir in NAMESPACES:
        ns = Namespace(os.path.join(REPO, "schemas", nsdir))
        b = Builder(ns, samples)
        for root in sorted(ns.roots):
            d = os.path.join(DATA, root.lower())
            if os.path.isdir(d):
                shutil.rmtree(d)
            for case, tree, verdict, ptr, phase in cases_for(ns, b, root):
                if phase == "WRONG-NS":
                    text = render(tree, "urn:carec:cats:wrong:1", None, prefix=PREFIX[ns.ns])
                else:
                    text = render(tree, ns.ns, phase)
                write_case(d, case, text, verdict, ptr)
                count += 1
            for case, text, ptr, note in DEPARTURES.get(root.lower(), []):
                with open(os.path.join(d, case + ".xml"), "w") as f:
                    f.write(text)
                with open(os.path.join(d, case + ".expect"), "w") as f:
                    f.write(f"invalid\n{ptr}\n# {note}\n")
                count += 1
    return count


# ---------------------------------------------------------------- P5 samples


def xmllint(schema, path):
    r = subprocess.run(["xmllint", "--noout", "--schema", schema, path],
                       capture_output=True, text=True)
    return r.returncode == 0, r.stderr


def p5_samples():
    ns = Namespace(os.path.join(REPO, "schemas", "ncts"))
    d = os.path.join(DATA, "p5-samples")
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    n = 0
    for f in sorted(os.listdir(os.path.join(P5_REF, "samples"))):
        src = os.path.join(P5_REF, "samples", f)
        msg = f.split("-")[0]
        ok, err = xmllint(os.path.join(P5_REF, "xsd", msg + ".xsd"), src)
        shutil.copy(src, os.path.join(d, f))
        case = f[:-4]
        says_valid = "-valid" in f
        note = None
        if ok != says_valid:
            note = "the file name says %s; the P5 XSD says %s" % (
                "valid" if says_valid else "invalid", "valid" if ok else "invalid")
            if ok:
                note += " (the fault is a business rule, not the schema)"
            else:
                first = next(ln for ln in err.splitlines() if "validity error" in ln)
                note += " (" + first.split("Schemas validity error : ", 1)[1] + ")"
        ptr = None if ok else xmlpos.pointer_of_first_error(ns, src, err)
        write_case(d, case, open(src, "rb").read(), "valid" if ok else "invalid", ptr, note)
        n += 1
    return n


# ---------------------------------------------------------------- hostile


def hostile():
    d = os.path.join(DATA, "hostile")
    if os.path.isdir(d):
        for f in os.listdir(d):
            if f.endswith((".xml", ".expect")):
                os.remove(os.path.join(d, f))
    ns = Namespace(os.path.join(REPO, "schemas", "ncts"))
    b = Builder(ns, sample_values(P5_REF))
    valid = render(b.minimal("CC015C"), ns.ns)
    decl, rest = valid.split("\n", 1)
    lrn = "<LRN>LRN-2026-000001</LRN>"
    assert lrn in rest
    cases = {}
    lol = ['<!ENTITY lol "lol">'] + [
        f'<!ENTITY lol{i} "{("&lol%s;" % (i - 1 if i > 1 else "")) * 10}">' for i in range(1, 10)]
    cases["billion-laughs"] = (decl + "\n<!DOCTYPE ncts:CC015C [\n  " + "\n  ".join(lol) + "\n]>\n"
                               + rest.replace(lrn, "<LRN>&lol9;</LRN>"), "/")
    cases["external-entity"] = (decl + '\n<!DOCTYPE ncts:CC015C [\n  <!ENTITY xxe SYSTEM "file:///etc/passwd">\n]>\n'
                                + rest.replace(lrn, "<LRN>&xxe;</LRN>"), "/")
    cases["doctype"] = (decl + "\n<!DOCTYPE ncts:CC015C>\n" + rest, "/")
    cases["internal-dtd-subset"] = (decl + '\n<!DOCTYPE ncts:CC015C [\n  <!ELEMENT LRN (#PCDATA)>\n]>\n' + rest, "/")
    depth = 100_000
    deep = "<a>" * depth + "x" + "</a>" * depth
    cases["deep-nesting"] = (decl + "\n" + rest.replace(lrn, "<LRN>" + deep + "</LRN>"), "/")
    raw = (decl + "\n" + rest).encode("utf-8").replace(b"LRN-2026-000001", b"LRN-\xff\xfe-\xc3\x28")
    cases["invalid-utf8"] = (raw, "/")
    whole = decl + "\n" + rest
    cases["truncated"] = (whole[: len(whole) // 2], "/")
    cases["wrong-namespace"] = (whole.replace('xmlns:ncts="http://ncts.dgtaxud.ec"',
                                              'xmlns:ncts="http://ncts.dgtaxud.ec/wrong"'), "/CC015C")
    cases["no-namespace"] = (whole.replace(' xmlns:ncts="http://ncts.dgtaxud.ec"', "")
                             .replace("ncts:CC015C", "CC015C"), "/CC015C")
    cases["two-roots"] = (whole + rest, "/")
    inner = rest.replace(' xmlns:ncts="http://ncts.dgtaxud.ec"', "").rstrip("\n")
    nested = whole.replace("</ncts:CC015C>", inner + "\n</ncts:CC015C>")
    cases["root-inside-root"] = (nested, "/CC015C/CC015C")
    cases["empty-file"] = ("", "/")
    cases["not-xml"] = ("CC015C,LRN-2026-000001,KZ000101\n", "/")
    for name, (text, ptr) in cases.items():
        write_case(d, name, text, "invalid", ptr)
    return len(cases)


def main():
    n = message_corpus()
    s = p5_samples()
    h = hostile()
    print(f"corpus: {n} message cases, {s} P5 samples, {h} hostile inputs")


if __name__ == "__main__":
    main()
