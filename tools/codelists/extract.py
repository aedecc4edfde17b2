#!/usr/bin/env python3
"""Builds the code-list data files of the message catalogue (message-catalog/data/codelists/).

Sources, in order of precedence:
  1. manual/<ID>.tsv: lists entered by hand from the NCTS P5 DDNTA and CATS's own lists
     (CATS001..CATS004), each with its header;
  2. the CS/RD2 generic extract COL-Generic-*.zip of the P5 reference (CL008 countries, CL192
     languages, and the lists derived from CL008);
  3. tcl.xsd of the P5 XSDs (CL024, CL027, CL030, CL060, CL070, CL180);
  4. ISO 4217 from the iso-codes package (/usr/share/iso-codes/json/iso_4217.json) for CL048;
  5. every other list named by a cm:codeList attribute in schemas/: an empty, incomplete file,
     so that the registry knows the list and the catalogue does not reject its values (they are
     reference data, checked by the node or the hub).

Output format, one file per list, UTF-8, LF:
  # id: CL231
  # name: DeclarationType
  # source: <where the values come from>
  # complete: yes|no      (yes: a value outside the file is an error 12; no: it is not judged)
  <code>\t<English description>

Usage: python3 tools/codelists/extract.py [--reference DIR] [--out DIR]
Standard library only.
"""

import argparse
import json
import os
import re
import sys
import xml.etree.ElementTree as ET
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

# CL008-derived lists: the full country list is a superset of each, so using it never rejects a
# valid code (it may accept a country the narrower list lacks; the node checks with reference data).
DERIVED_FROM_CL008 = {
    "CL165": "Nationality",
    "CL248": "CountryCodesForAddress",
    "CL199": "CountryCodesCATS (CATS common domain addresses)",
}

TCL_TYPES = {
    "ModificationType": "CL024",
    "Flag": "CL027",
    "XmlErrorCodes": "CL030",
    "MessageTypes": "CL060",
    "CountryCodesCustomsOfficeLists": "CL070",
    "AesNctsP5FunctionalErrorCodes": "CL180",
}

XS = "{http://www.w3.org/2001/XMLSchema}"


def clean(text):
    """One line of text: tabs, newlines and non-breaking spaces become single spaces."""
    return re.sub(r"\s+", " ", (text or "").replace("\xa0", " ")).strip()


def write_list(out, list_id, name, source, complete, entries):
    path = os.path.join(out, f"{list_id}.tsv")
    seen = set()
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(f"# id: {list_id}\n# name: {name}\n# source: {source}\n")
        f.write(f"# complete: {'yes' if complete else 'no'}\n")
        for code, desc in sorted(entries):
            if code in seen:
                continue
            seen.add(code)
            f.write(f"{code}\t{clean(desc)}\n")
    return len(seen)


def read_manual(path):
    header, entries = {}, []
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    for i, line in enumerate(lines):
        if line.startswith("#"):
            body = line[1:].strip()
            if body.startswith("source:"):
                header["source"] = body[len("source:"):].strip()
            elif body.startswith("complete:"):
                header["complete"] = body[len("complete:"):].strip() == "yes"
            elif i == 0:
                header["name"] = body
        elif line.strip():
            code, _, desc = line.partition("\t")
            entries.append((code.strip(), desc))
    return header, entries


def zip_entities(zip_path, wanted):
    """{entity name: [(code, English description)]} for the valid entries of `wanted`."""
    result = {name: [] for name in wanted}
    with zipfile.ZipFile(zip_path) as z:
        member = next(n for n in z.namelist() if n.endswith(".xml"))
        with z.open(member) as f:
            for _, el in ET.iterparse(f, events=("end",)):
                if not el.tag.endswith("}RDEntity"):
                    continue
                name = el.get("name")
                if name in result:
                    for entry in el:
                        if not entry.tag.endswith("}RDEntry"):
                            continue
                        states = [s.text for s in entry.iter() if s.tag.endswith("}state")]
                        if states and states[0] != "valid":
                            continue
                        items = [d.text for d in entry.iter() if d.tag.endswith("}dataItem")]
                        en = [d.text for d in entry.iter()
                              if d.tag.endswith("}description") and d.get("lang") == "en"]
                        if items:
                            result[name].append((clean(items[0]), en[0] if en else ""))
                el.clear()
    return result


def tcl_lists(tcl_path):
    tree = ET.parse(tcl_path)
    lists = {}
    for st in tree.getroot().iter(f"{XS}simpleType"):
        list_id = TCL_TYPES.get(st.get("name"))
        if not list_id:
            continue
        entries = []
        for en in st.iter(f"{XS}enumeration"):
            doc = en.find(f"{XS}annotation/{XS}documentation")
            entries.append((en.get("value"), doc.text if doc is not None else ""))
        lists[list_id] = (st.get("name"), entries)
    return lists


def codelist_names(ctypes_path):
    """{CLxxx: name} from the codeList annotations of the P5 ctypes.xsd."""
    names = {}
    with open(ctypes_path, encoding="utf-8") as f:
        for m in re.finditer(r'codeList code="(CL\d+)"[^>]*name="([^"]*)"', f.read()):
            names.setdefault(m.group(1), m.group(2))
    return names


def schema_codelists(schemas_dir):
    ids = set()
    for root, _, files in os.walk(schemas_dir):
        for fn in files:
            if fn.endswith(".xsd"):
                with open(os.path.join(root, fn), encoding="utf-8") as f:
                    ids.update(re.findall(r'cm:codeList="([^"]+)"', f.read()))
    return ids


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference", default=os.path.join(os.path.dirname(REPO), "shared", "reference", "ncts-p5"))
    ap.add_argument("--out", default=os.path.join(REPO, "message-catalog", "data", "codelists"))
    ap.add_argument("--iso4217", default="/usr/share/iso-codes/json/iso_4217.json")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    ref = args.reference
    written = {}

    names = codelist_names(os.path.join(ref, "xsd", "ctypes.xsd"))

    zips = sorted(p for p in os.listdir(os.path.join(ref, "codelists")) if p.endswith(".zip"))
    zip_path = os.path.join(ref, "codelists", zips[-1])
    ents = zip_entities(zip_path, {"CountryCodesFullList", "LanguageCodes"})
    src = f"CS/RD2 generic extract {zips[-1]}"
    countries = ents["CountryCodesFullList"]
    written["CL008"] = write_list(args.out, "CL008", "CountryCodesFullList", src, True, countries)
    for list_id, name in DERIVED_FROM_CL008.items():
        written[list_id] = write_list(args.out, list_id, name,
                                      f"{src}, CountryCodesFullList (superset of this list)", True, countries)
    # The P5 LanguageCodeType accepts [A-Za-z]{2}; CS/RD2 writes the codes in capitals, messages
    # carry either case, so both are listed.
    languages = ents["LanguageCodes"]
    languages = languages + [(code.lower(), desc) for code, desc in languages]
    written["CL192"] = write_list(args.out, "CL192", "LanguageByCustoms",
                                  f"{src}, LanguageCodes (superset of this list; capitals and small letters)",
                                  True, languages)

    for list_id, (name, entries) in tcl_lists(os.path.join(ref, "xsd", "tcl.xsd")).items():
        written[list_id] = write_list(args.out, list_id, name, "P5 XSD tcl.xsd", True, entries)

    if os.path.exists(args.iso4217):
        with open(args.iso4217, encoding="utf-8") as f:
            iso = json.load(f)["4217"]
        written["CL048"] = write_list(args.out, "CL048", "CurrencyCodes", "ISO 4217 (iso-codes package)",
                                      True, [(c["alpha_3"], c["name"]) for c in iso])
    else:
        print(f"warning: {args.iso4217} missing, CL048 left as it is", file=sys.stderr)
        written["CL048"] = -1

    manual_dir = os.path.join(HERE, "manual")
    for fn in sorted(os.listdir(manual_dir)):
        if not fn.endswith(".tsv"):
            continue
        list_id = fn[:-4]
        header, entries = read_manual(os.path.join(manual_dir, fn))
        written[list_id] = write_list(args.out, list_id, header.get("name", names.get(list_id, "")),
                                      header.get("source", "CATS"), header.get("complete", False), entries)

    for list_id in sorted(schema_codelists(os.path.join(REPO, "schemas")) - set(written)):
        written[list_id] = write_list(args.out, list_id, names.get(list_id, list_id),
                                      "reference data (not in the catalogue: checked by the node or the hub)",
                                      False, [])

    write_embedded_table(args.out)
    for list_id in sorted(written):
        print(f"{list_id}\t{written[list_id]}")


def write_embedded_table(out):
    """Regenerates message-catalog/src/codelists/embedded.rs: one include_str! per data file."""
    ids = sorted(f[:-4] for f in os.listdir(out) if f.endswith(".tsv"))
    rows = "\n".join(f'    ("{i}", include_str!("../../data/codelists/{i}.tsv")),' for i in ids)
    path = os.path.join(REPO, "message-catalog", "src", "codelists", "embedded.rs")
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("//! The code-list files embedded in the crate (`data/codelists/*.tsv`, written by\n"
                "//! `tools/codelists/extract.py`, which also writes this file). A test checks that this\n"
                "//! table names every file there.\n\n"
                "/// `(list id, file contents)` for every embedded list.\n"
                f"pub(super) const FILES: &[(&str, &str)] = &[\n{rows}\n];\n")


if __name__ == "__main__":
    main()
