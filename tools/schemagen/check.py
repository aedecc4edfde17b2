#!/usr/bin/env python3
"""Check the schemas and the corpus against xmllint and the P5 XSDs.

1. The committed schemas are what the generator produces.
2. Every corpus case gets its .expect verdict from our schema, and for an
   invalid case xmllint's first error is at the .expect pointer.
3. Every P5 sample and every external-domain corpus case gets the same
   verdict from our schema as from the P5 XSD.
4. Mutants of the valid P5 samples and of our valid external-domain cases
   (each element dropped, duplicated, swapped with its next sibling; each
   leaf given a 36-character value and an empty one) get the same verdict
   from both.
5. Every message has a valid case and at least three invalid ones.
"""

import copy
import filecmp
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from dialect import Namespace  # noqa: E402
import xmlpos  # noqa: E402

REPO = os.path.dirname(os.path.dirname(HERE))
P5_REF = os.environ.get("P5_REF", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared", "reference", "ncts-p5"))
P5_XSD = os.path.join(P5_REF, "xsd")
DATA = os.path.join(REPO, "message-catalog", "tests", "data")
SCHEMAS = os.path.join(REPO, "schemas")
FAMILY = {"cc": "ncts", "cd": "cats", "ca": "admin"}
MESSAGES = {
    "ncts": ["CC004C", "CC007C", "CC009C", "CC013C", "CC014C", "CC015C", "CC019C", "CC025C",
             "CC028C", "CC029C", "CC034C", "CC037C", "CC043C", "CC044C", "CC045C", "CC051C",
             "CC055C", "CC056C", "CC057C", "CC060C", "CC170C", "CC906C", "CC917C", "CC928C"],
    "cats": ["CD001C", "CD006C", "CD010C", "CD018C", "CD050C", "CD094C", "CD095C", "CD118C",
             "CD160C", "CD168C", "CD203C", "CD204C", "CD205C", "CD209C", "CD906C", "CD917C"],
    "admin": ["CA001C", "CA002C", "CA003C", "CA004C", "CA005C", "CA006C"],
}

failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL " + msg)


def validate(schema, files):
    """{file: (valid, stderr lines for that file)} with one xmllint run."""
    out = {}
    for k in range(0, len(files), 500):
        chunk = files[k:k + 500]
        r = subprocess.run(["xmllint", "--noout", "--schema", schema] + chunk,
                           capture_output=True, text=True, errors="replace")
        lines = r.stderr.splitlines()
        for f in chunk:
            mine = [ln for ln in lines if ln.startswith(f + ":") or ln.startswith(f + " ")]
            ok = (f + " validates") in mine
            if not ok and (f + " fails to validate") not in mine and not any(
                    ln.startswith(f + ":") for ln in mine):
                raise RuntimeError(f"xmllint said nothing about {f}: {r.stderr[-500:]}")
            out[f] = (ok, "\n".join(mine))
    return out


def read_expect(path):
    lines = open(path, encoding="utf-8").read().splitlines()
    return lines[0].strip(), (lines[1].strip() if len(lines) > 1 and not lines[1].startswith("#") else None)


# ---------------------------------------------------------------- 1


def check_generated():
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, CATS_SCHEMA_OUT=tmp)
        subprocess.run([sys.executable, os.path.join(HERE, "schemagen.py")], check=True, env=env)
        for nsdir in MESSAGES:
            a, b = os.path.join(tmp, "schemas", nsdir), os.path.join(SCHEMAS, nsdir)
            names = sorted(f for f in os.listdir(a) if f.endswith(".xsd"))
            have = sorted(f for f in os.listdir(b) if f.endswith(".xsd"))
            if names != have:
                fail(f"schemas/{nsdir}: files differ from the generator's: {set(names) ^ set(have)}")
            if nsdir == "ncts":
                names.append("rules.tsv")
                have.append("rules.tsv")
            for f in names:
                if f in have and not filecmp.cmp(os.path.join(a, f), os.path.join(b, f), shallow=False):
                    fail(f"schemas/{nsdir}/{f} is not what schemagen.py generates")
    print("generated schemas: up to date" if not failures else "generated schemas: stale")


# ---------------------------------------------------------------- dialect

XS = "{http://www.w3.org/2001/XMLSchema}"
CM = "{urn:carec:cats:meta}"
BUILTINS = {"xs:string", "xs:token", "xs:normalizedString", "xs:decimal", "xs:integer",
            "xs:date", "xs:dateTime", "xs:gYear"}
FACET_TAGS = {"pattern", "length", "minLength", "maxLength", "totalDigits", "fractionDigits",
              "minInclusive", "maxInclusive", "minExclusive", "maxExclusive", "enumeration",
              "whiteSpace"}


def check_dialect():
    """Every schema stays inside the CATS dialect that the Rust generator reads."""
    import re
    n_files = 0
    for nsdir in MESSAGES:
        d = os.path.join(SCHEMAS, nsdir)
        simple, complex_ = set(), set()
        docs = {}
        for f in sorted(os.listdir(d)):
            if f.endswith(".xsd"):
                docs[f] = ET.parse(os.path.join(d, f)).getroot()
                simple |= {x.get("name") for x in docs[f].findall(XS + "simpleType")}
                complex_ |= {x.get("name") for x in docs[f].findall(XS + "complexType")}
        for f, root in docs.items():
            n_files += 1
            where = f"schemas/{nsdir}/{f}"
            if root.get("elementFormDefault") != "unqualified":
                fail(f"{where}: elementFormDefault must be unqualified")
            tops = [x.tag.replace(XS, "") for x in root]
            if f == "types.xsd":
                if set(tops) - {"simpleType", "complexType"}:
                    fail(f"{where}: only named types belong in types.xsd")
            else:
                msg = f[:-4].upper()
                if tops != ["include", "element", "complexType"] or \
                        root.find(XS + "element").get("name") != msg or \
                        root.find(XS + "element").get("type") != msg + "Type" or \
                        root.find(XS + "complexType").get("name") != msg + "Type":
                    fail(f"{where}: must be include, root element {msg}, {msg}Type")
            for ct in root.findall(XS + "complexType"):
                kids = [x.tag.replace(XS, "") for x in ct if x.tag != XS + "annotation"]
                if kids not in (["sequence"], ["sequence", "attribute"]):
                    fail(f"{where}: {ct.get('name')}: content must be a sequence (+ PhaseID)")
                for a in ct.findall(XS + "attribute"):
                    if (a.get("name"), a.get("type")) != ("PhaseID", "phaseIDtype") or \
                            f == "types.xsd" or nsdir != "ncts":
                        fail(f"{where}: {ct.get('name')}: only PhaseID on ncts root types")
                for e in ct.find(XS + "sequence"):
                    if e.tag != XS + "element":
                        fail(f"{where}: {ct.get('name')}: only xs:element in a sequence")
                        continue
                    extra = set(e.attrib) - {"name", "type", "minOccurs", "maxOccurs", CM + "codeList",
                                             CM + "optionality", CM + "rules", CM + "rulesByMessage"}
                    if extra or len(e):
                        fail(f"{where}: {e.get('name')}: unexpected {extra or 'content'}")
                    if e.get("type") not in simple | complex_:
                        fail(f"{where}: {e.get('name')}: type {e.get('type')} is not defined here")
                    if not re.fullmatch(r"(CL\d{3})?", e.get(CM + "codeList", "")) or \
                            e.get(CM + "optionality", "R") not in ("R", "O", "D") or \
                            not re.fullmatch(r"([A-Z]\d{4}( [A-Z]\d{4})*)?", e.get(CM + "rules", "")) or \
                            not re.fullmatch(r"(C[CD]\d{3}C:[A-Z]\d{4}( C[CD]\d{3}C:[A-Z]\d{4})*)?",
                                             e.get(CM + "rulesByMessage", "")):
                        fail(f"{where}: {e.get('name')}: malformed cm: metadata")
            for st in root.findall(XS + "simpleType"):
                r = st.find(XS + "restriction")
                if r is None or r.get("base") not in BUILTINS | simple:
                    fail(f"{where}: {st.get('name')}: restriction of an unknown base")
                    continue
                for x in r:
                    if x.tag.replace(XS, "") not in FACET_TAGS:
                        fail(f"{where}: {st.get('name')}: facet {x.tag} not in the dialect")
    ns = Namespace(os.path.join(SCHEMAS, "ncts"))
    rows = 0
    for line in open(os.path.join(SCHEMAS, "ncts", "rules.tsv"), encoding="utf-8"):
        if line.startswith("#"):
            continue
        msg, ptr, rules = line.rstrip("\n").split("\t")
        rows += 1
        names = ptr.strip("/").split("/")
        t = ns.roots.get(names[0])
        for n in names[1:]:
            d = next((x for x in ns.complex.get(t, []) if x.name == n), None)
            if d is None:
                fail(f"schemas/ncts/rules.tsv: {ptr} is not a path of {msg}")
                break
            t = d.type
    print(f"dialect: {n_files} schema files checked; rules.tsv: {rows} paths resolve")


# ---------------------------------------------------------------- 2, 3, 5


def check_corpus():
    n_cases = n_p5 = 0
    for nsdir, msgs in MESSAGES.items():
        ns = Namespace(os.path.join(SCHEMAS, nsdir))
        for msg in msgs:
            d = os.path.join(DATA, msg.lower())
            if not os.path.isdir(d):
                fail(f"no corpus for {msg}")
                continue
            files = sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith(".xml"))
            ours = validate(os.path.join(SCHEMAS, nsdir, msg.lower() + ".xsd"), files)
            p5_schema = os.path.join(P5_XSD, msg.lower() + ".xsd")
            theirs = validate(p5_schema, files) if os.path.exists(p5_schema) else None
            valid = invalid = 0
            for f in files:
                n_cases += 1
                verdict, ptr = read_expect(f[:-4] + ".expect")
                ok, err = ours[f]
                valid += verdict == "valid"
                invalid += verdict == "invalid"
                if ok != (verdict == "valid"):
                    fail(f"{rel(f)}: expected {verdict}, xmllint says {'valid' if ok else 'invalid'}")
                    continue
                if not ok:
                    got = xmlpos.pointer_of_first_error(ns, f, err)
                    if got != ptr:
                        fail(f"{rel(f)}: pointer {ptr} expected, xmllint's first error is at {got}")
                departure = "# departure:" in open(f[:-4] + ".expect", encoding="utf-8").read()
                if departure and (theirs is None or theirs[f][0] == ok):
                    fail(f"{rel(f)}: marked as a departure from P5 but P5 agrees")
                if theirs is not None and not departure:
                    n_p5 += 1
                    if theirs[f][0] != ok:
                        fail(f"{rel(f)}: our schema and the P5 XSD disagree")
            if valid < 1 or invalid < 3:
                fail(f"{msg}: {valid} valid and {invalid} invalid cases (want >= 1 and >= 3)")
    print(f"corpus: {n_cases} cases checked, {n_p5} also against the P5 XSD")
    return n_cases, n_p5


def check_samples():
    d = os.path.join(DATA, "p5-samples")
    files = sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith(".xml"))
    if len(files) != len([f for f in os.listdir(os.path.join(P5_REF, "samples")) if f.endswith(".xml")]):
        fail("p5-samples: not every P5 sample is in the corpus")
    ns = Namespace(os.path.join(SCHEMAS, "ncts"))
    for f in files:
        msg = os.path.basename(f).split("-")[0]
        ours = validate(os.path.join(SCHEMAS, "ncts", msg + ".xsd"), [f])[f]
        theirs = validate(os.path.join(P5_XSD, msg + ".xsd"), [f])[f]
        verdict, ptr = read_expect(f[:-4] + ".expect")
        if ours[0] != theirs[0]:
            fail(f"{rel(f)}: our schema and the P5 XSD disagree")
        if theirs[0] != (verdict == "valid"):
            fail(f"{rel(f)}: .expect says {verdict}, the P5 XSD does not")
        if not ours[0] and xmlpos.pointer_of_first_error(ns, f, ours[1]) != ptr:
            fail(f"{rel(f)}: pointer differs")
    print(f"p5-samples: {len(files)} samples, same verdict from both schemas")
    return files


def check_hostile():
    d = os.path.join(DATA, "hostile")
    files = sorted(f for f in os.listdir(d) if f.endswith(".xml"))
    accepted = []
    for f in files:
        verdict, _ = read_expect(os.path.join(d, f[:-4] + ".expect"))
        if verdict != "invalid":
            fail(f"hostile/{f}: verdict must be invalid")
        ok = validate(os.path.join(SCHEMAS, "ncts", "cc015c.xsd"), [os.path.join(d, f)])
        if list(ok.values())[0][0]:
            accepted.append(f)
    print(f"hostile: {len(files)} inputs; xmllint itself accepts {accepted or 'none'} "
          "(CATS rejects any DOCTYPE by policy)")


# ---------------------------------------------------------------- 4


def mutants(path):
    """(label, bytes) for each mutant of a document."""
    ET.register_namespace("ncts", "http://ncts.dgtaxud.ec")
    tree = ET.parse(path)
    root = tree.getroot()
    parents = {c: p for p in root.iter() for c in p}
    elements = [e for e in root.iter() if e is not root]
    out = []

    def emit(label):
        out.append((label, ET.tostring(root, encoding="utf-8", xml_declaration=True)))

    for k, e in enumerate(elements):
        p = parents[e]
        i = list(p).index(e)
        p.remove(e)
        emit(f"drop-{k}-{e.tag}")
        p.insert(i, e)
        dup = copy.deepcopy(e)
        p.insert(i + 1, dup)
        emit(f"dup-{k}-{e.tag}")
        p.remove(dup)
        if i + 1 < len(p) and p[i + 1].tag != e.tag:
            nxt = p[i + 1]
            p.remove(nxt)
            p.insert(i, nxt)
            emit(f"swap-{k}-{e.tag}")
            p.remove(nxt)
            p.insert(i + 1, nxt)
        if len(e) == 0:
            old = e.text
            e.text = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
            emit(f"long-{k}-{e.tag}")
            e.text = ""
            emit(f"empty-{k}-{e.tag}")
            e.text = old
    return out


def check_mutants(sample_files):
    bases = [f for f in sample_files if read_expect(f[:-4] + ".expect")[0] == "valid"]
    for msg in MESSAGES["ncts"]:
        if os.path.exists(os.path.join(P5_XSD, msg.lower() + ".xsd")):
            bases.append(os.path.join(DATA, msg.lower(), "valid-full.xml"))
    total = disagreements = 0
    with tempfile.TemporaryDirectory() as tmp:
        by_msg = {}
        for b in bases:
            msg = os.path.basename(b).split("-")[0].lower()
            if msg == "valid":
                msg = os.path.basename(os.path.dirname(b))
            for label, data in mutants(b):
                name = os.path.join(tmp, f"{len(by_msg.get(msg, []))}-{msg}-{label.replace('/', '_')}.xml")
                with open(name, "wb") as f:
                    f.write(data)
                by_msg.setdefault(msg, []).append(name)
        from concurrent.futures import ThreadPoolExecutor
        jobs = {}
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            for msg, files in by_msg.items():
                for k in range(0, len(files), 250):
                    chunk = files[k:k + 250]
                    jobs[(msg, k)] = (
                        chunk,
                        pool.submit(validate, os.path.join(SCHEMAS, "ncts", msg + ".xsd"), chunk),
                        pool.submit(validate, os.path.join(P5_XSD, msg + ".xsd"), chunk))
        for (msg, _), (files, ours_f, theirs_f) in sorted(jobs.items()):
            ours, theirs = ours_f.result(), theirs_f.result()
            for f in files:
                total += 1
                if ours[f][0] != theirs[f][0]:
                    disagreements += 1
                    fail(f"mutant {os.path.basename(f)}: ours {ours[f][0]}, P5 {theirs[f][0]}")
    print(f"mutants: {total} compared (from {len(bases)} valid documents), "
          f"{disagreements} disagreements")


def check_code_lists():
    """Valid cases use codes the catalogue's complete code lists hold (the
    codec enforces those at decode, xmllint cannot see them)."""
    cl_dir = os.path.join(REPO, "message-catalog", "data", "codelists")
    if not os.path.isdir(cl_dir):
        print("code lists: message-catalog/data/codelists not present, skipped")
        return
    lists = {}
    for f in os.listdir(cl_dir):
        if not f.endswith(".tsv"):
            continue
        complete, values = False, set()
        for line in open(os.path.join(cl_dir, f), encoding="utf-8"):
            if line.startswith("# complete: yes"):
                complete = True
            if line.strip() and not line.startswith("#"):
                values.add(line.split("\t")[0].strip())
        lists[f[:-4]] = (complete, values)
    checked = 0
    for nsdir, msgs in MESSAGES.items():
        ns = Namespace(os.path.join(SCHEMAS, nsdir))
        for msg in msgs:
            for f in sorted(os.listdir(os.path.join(DATA, msg.lower()))):
                if not (f.startswith("valid") and f.endswith(".xml")):
                    continue
                path = os.path.join(DATA, msg.lower(), f)

                def walk(el, t):
                    nonlocal checked
                    for c in el:
                        d = next(x for x in ns.complex[t] if x.name == c.tag)
                        if d.code_list and lists.get(d.code_list, (False,))[0]:
                            checked += 1
                            if c.text not in lists[d.code_list][1]:
                                fail(f"{rel(path)}: {c.tag}={c.text!r} is not in {d.code_list}")
                        if d.type in ns.complex:
                            walk(c, d.type)
                walk(ET.parse(path).getroot(), ns.roots[msg])
    print(f"code lists: {checked} coded values in valid cases are in the catalogue's complete lists")


def rel(f):
    return os.path.relpath(f, REPO)


def main():
    check_generated()
    check_dialect()
    check_corpus()
    samples = check_samples()
    check_hostile()
    check_code_lists()
    check_mutants(samples)
    if failures:
        print(f"{len(failures)} failure(s)")
        sys.exit(1)
    print("all schema checks passed")


if __name__ == "__main__":
    main()
