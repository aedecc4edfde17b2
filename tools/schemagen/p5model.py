"""Read the NCTS P5 reference XSDs into a small in-memory model.

Only what the CATS dialect needs is kept: complexTypes as sequences of
elements (name, type, occurrence, code list, optionality), simpleTypes as a
base plus facets, the MESSAGE header group, and each CC message's root type.
"""

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

XS = "{http://www.w3.org/2001/XMLSchema}"
NCTS = "{http://ncts.dgtaxud.ec}"

FACETS = (
    "pattern", "length", "minLength", "maxLength", "totalDigits", "fractionDigits",
    "minInclusive", "maxInclusive", "minExclusive", "maxExclusive", "enumeration",
    "whiteSpace",
)


@dataclass
class Elem:
    name: str
    type: str
    min: str = "1"
    max: str = "1"
    code_list: str = ""  # business code list id, e.g. CL231
    optionality: str = ""  # R, O or D
    rules: list = field(default_factory=list)
    rules_by_message: list = field(default_factory=list)


@dataclass
class Simple:
    name: str
    base: str
    facets: list  # [(facet, value)]


def _doc(el):
    return el.find(XS + "annotation/" + XS + "documentation")


def _elem(e):
    el = Elem(e.get("name"), e.get("type"), e.get("minOccurs", "1"), e.get("maxOccurs", "1"))
    doc = _doc(e)
    if doc is not None:
        cl = doc.find(NCTS + "codeList")
        if cl is not None and cl.get("type") == "business" and cl.get("code"):
            el.code_list = cl.get("code")
        opt = doc.find(NCTS + "optionality")
        if opt is not None:
            el.optionality = opt.get("value")
    return el


class P5:
    def __init__(self, ref_dir):
        self.dir = os.path.join(ref_dir, "xsd")
        self.complex = {}
        self.simple = {}
        self.used_by = {}
        self.message_group = []
        self.roots = {}
        for f in ("ctypes.xsd", "include-files/custom_ctypes.xsd"):
            root = ET.parse(os.path.join(self.dir, f)).getroot()
            for c in root.findall(XS + "complexType"):
                self.complex[c.get("name")] = [_elem(e) for e in c.find(XS + "sequence").findall(XS + "element")]
                doc = _doc(c)
                u = doc.find(NCTS + "usedBy") if doc is not None else None
                self.used_by[c.get("name")] = u.text if u is not None else ""
        for f in ("stypes.xsd", "tcl.xsd", "htypes.xsd"):
            root = ET.parse(os.path.join(self.dir, f)).getroot()
            for s in root.findall(XS + "simpleType"):
                r = s.find(XS + "restriction")
                facets = []
                for x in r:
                    tag = x.tag.replace(XS, "")
                    if tag in FACETS:
                        facets.append((tag, x.get("value")))
                    elif tag != "annotation":
                        raise ValueError(f"unsupported facet {tag} in {s.get('name')}")
                self.simple[s.get("name")] = Simple(s.get("name"), r.get("base"), facets)
            g = root.find(XS + "group")
            if g is not None:
                self.message_group = [_elem(e) for e in g.find(XS + "sequence").findall(XS + "element")]

    def load_root(self, msg):
        """Root sequence of a CC message (MESSAGE group marked by a None entry)."""
        path = os.path.join(self.dir, msg.lower() + ".xsd")
        root = ET.parse(path).getroot()
        ct = root.find(XS + "complexType")
        out = []
        for x in ct.find(XS + "sequence"):
            if x.tag == XS + "group":
                assert x.get("ref") == "MESSAGE"
                out.append(None)
            elif x.tag == XS + "element":
                out.append(_elem(x))
        attrs = [(a.get("name"), a.get("type")) for a in ct.findall(XS + "attribute")]
        assert attrs == [("PhaseID", "phaseIDtype")], attrs
        return out
