#!/usr/bin/env python3
"""Generate the CATS XML Schemas (schemas/ncts, schemas/cats, schemas/admin).

Run from the repository root:  python3 tools/schemagen/schemagen.py
The NCTS P5 reference is read from $P5_REF (default: ../shared/reference/ncts-p5 beside the repository).
Standard library only.
"""

import copy
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from p5model import P5, Elem, Simple  # noqa: E402
import xsdwriter  # noqa: E402
import catsdefs  # noqa: E402

REPO = os.path.dirname(os.path.dirname(HERE))
P5_REF = os.environ.get("P5_REF", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared", "reference", "ncts-p5"))
VERSION = "1.0"

NCTS_NS = "http://ncts.dgtaxud.ec"

# External-domain messages taken from the P5 XSDs as they are.
P5_MESSAGES = [
    "CC004C", "CC007C", "CC009C", "CC013C", "CC014C", "CC015C", "CC019C", "CC025C",
    "CC028C", "CC029C", "CC043C", "CC044C", "CC045C", "CC051C", "CC055C", "CC056C",
    "CC057C", "CC060C", "CC170C", "CC906C", "CC917C", "CC928C",
]


def header(p5, message_type="MessageTypes"):
    """The P5 MESSAGE group, inlined; messageType may be narrowed."""
    out = []
    for e in p5.message_group:
        e = copy.deepcopy(e)
        if e.name == "messageType":
            e.type = message_type
        # TIS: the header fields are required, the correlation identifier dependent.
        e.optionality = "R" if e.min == "1" else "D"
        out.append(e)
    return out


# ---------------------------------------------------------------- TIS rules

def read_tis(msg):
    """Rows (depth, rules) of derived/tis_message_tables/IExxx.tsv, or None."""
    path = os.path.join(P5_REF, "derived", "tis_message_tables", "IE" + msg[2:5] + ".tsv")
    if not os.path.exists(path):
        return None
    rows = []
    with open(path, encoding="utf-8") as f:
        next(f)
        for line in f:
            line = line.rstrip("\n")
            if not line.strip():
                continue
            cols = line.split("\t")
            name = cols[0]
            depth = (len(name) - len(name.lstrip(" "))) // 2
            rules = cols[4].split() if len(cols) > 4 else []
            rows.append((depth, cols[1], rules))
    return rows


def flatten(p5_complex, root_elems, msg_header):
    """Depth-first (depth, owner, index) list matching the TIS table layout.

    The TIS tables put the MESSAGE row at depth 0 and both the header fields
    and the message's top-level groups at depth 1.

    owner is ("ROOT", None) for root-level elements, ("HEADER", None) for the
    header group, or ("TYPE", type name); path is the element names below the root.
    """
    out = []

    def walk(type_name, depth, path):
        for i, e in enumerate(p5_complex[type_name]):
            out.append((depth, ("TYPE", type_name), i, path + [e.name]))
            if e.type in p5_complex:
                walk(e.type, depth + 1, path + [e.name])

    for i, e in enumerate(root_elems):
        if e is None:
            out.append((0, ("GROUP", None), None, []))
            for j, h in enumerate(msg_header):
                out.append((1, ("HEADER", None), j, [h.name]))
        else:
            out.append((1, ("ROOT", None), i, [e.name]))
            if e.type in p5_complex:
                walk(e.type, 2, [e.name])
    return out


def opt_of(root, hdr, p5_complex, kind, tname, i):
    if kind == "ROOT":
        return root[i].optionality
    if kind == "TYPE":
        return p5_complex[tname][i].optionality
    return ""


# ---------------------------------------------------------------- closure

def closure(roots, complex_all, simple_all):
    """Named types reachable from the given root element lists."""
    cx, sx = {}, {}

    def simple(n):
        if n.startswith("xs:") or n in sx:
            return
        s = simple_all[n]
        sx[n] = s
        simple(s.base)

    def visit(t):
        if t in complex_all:
            if t in cx:
                return
            cx[t] = complex_all[t]
            for e in cx[t]:
                visit(e.type)
        else:
            simple(t)

    for elems in roots:
        for e in elems:
            visit(e.type)
    return cx, sx


# ---------------------------------------------------------------- ncts

def build_ncts(p5):
    messages = {}
    rule_sets = {}  # (type, index) -> [(msg, rules)] for every place it occurs
    rule_rows = []  # (msg, pointer without indices, rules): exact, per place
    conflicts = []
    for msg in P5_MESSAGES:
        root = p5.load_root(msg)
        hdr = header(p5)
        tis = read_tis(msg)
        flat = flatten(p5.complex, root, hdr)
        if tis is not None:
            # The tables list the fields in XSD order; their indentation has
            # a few slips, so rows are matched by position and checked by count
            # and optionality.
            prio = [pr for _, pr, _ in tis]
            mine = [opt_of(root, hdr, p5.complex, k, t, i) for _, (k, t), i, _ in flat]
            bad = [k for k, (a, b) in enumerate(zip(prio, mine)) if b and a != b]
            if len(flat) != len(tis) or bad:
                print(f"warning: {msg}: TIS table does not line up with the XSD "
                      f"({len(flat)} vs {len(tis)} rows, {len(bad)} optionality mismatches); "
                      "rules left out", file=sys.stderr)
            else:
                for (depth, (kind, tname), i, path), (_, _, rules) in zip(flat, tis):
                    if rules and path:
                        rule_rows.append((msg, "/" + "/".join([msg] + path), rules))
                    if kind == "ROOT":
                        root[i].rules = rules
                    elif kind == "HEADER":
                        hdr[i].rules = rules
                    elif kind == "TYPE":
                        rule_sets.setdefault((tname, i), []).append((msg, rules))
        elems = []
        for e in root:
            elems.extend(hdr if e is None else [e])
        messages[msg] = (elems, True, None)

    for msg, elems in catsdefs.ncts_extra(header(p5)).items():
        messages[msg] = (elems, True, catsdefs.DOCS.get(msg))

    cx, sx = closure([m[0] for m in messages.values()], p5.complex, p5.simple)
    sx["phaseIDtype"] = p5.simple["phaseIDtype"]
    cx = copy.deepcopy(cx)
    # A complexType is shared by several messages and places, and TIS
    # sometimes gives the same field different rules at different places:
    # cm:rules holds the rules that apply wherever the element occurs (in the
    # messages that have a TIS table), cm:rulesByMessage the rest as
    # "CC015C:E1104" (applies somewhere in that message); rules.tsv has
    # the exact rules per message and path.
    for (tname, i), uses in rule_sets.items():
        if tname not in cx:
            continue
        common = set.intersection(*(set(r) for _, r in uses))
        e = cx[tname][i]
        e.rules = sorted(common)
        extra = sorted({f"{m}:{r}" for m, rs in uses for r in rs if r not in common})
        e.rules_by_message = extra
        if extra:
            conflicts.append((tname, e.name, extra))
    return messages, cx, sx, conflicts, rule_rows


def write_rules(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        f.write("# Generated by tools/schemagen/schemagen.py from the TIS message tables.\n"
                "# The TIS rules and conditions of every element, per message and place\n"
                "# (pointer without [n] indices). Columns: message, pointer, rule ids.\n")
        for msg, ptr, rules in rows:
            f.write(f"{msg}\t{ptr}\t{' '.join(rules)}\n")


def main():
    p5 = P5(P5_REF)
    messages, cx, sx, conflicts, rule_rows = build_ncts(p5)
    # CATS_SCHEMA_OUT lets check.py generate into a scratch directory.
    out = os.environ.get("CATS_SCHEMA_OUT", REPO)
    xsdwriter.write_namespace(os.path.join(out, "schemas", "ncts"), NCTS_NS, VERSION,
                              sx, cx, catsdefs.DOCS, messages)
    write_rules(os.path.join(out, "schemas", "ncts", "rules.tsv"), rule_rows)
    if "--conflicts" in sys.argv:
        for c in conflicts:
            print(c)
    catsdefs.build_common_and_admin(p5, header, closure, out, VERSION)


if __name__ == "__main__":
    main()
