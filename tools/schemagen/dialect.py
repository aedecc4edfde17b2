"""Read back a namespace written in the CATS schema dialect."""

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

XS = "{http://www.w3.org/2001/XMLSchema}"
CM = "{urn:carec:cats:meta}"


@dataclass
class Decl:
    name: str
    type: str
    min: int
    max: int  # -1 for unbounded
    code_list: str = ""


@dataclass
class SimpleT:
    name: str
    base: str
    facets: list = field(default_factory=list)


class Namespace:
    def __init__(self, directory):
        self.dir = directory
        self.complex, self.simple, self.roots = {}, {}, {}
        self.ns = None
        for f in sorted(os.listdir(directory)):
            if not f.endswith(".xsd"):
                continue
            root = ET.parse(os.path.join(directory, f)).getroot()
            self.ns = root.get("targetNamespace")
            for c in root.findall(XS + "complexType"):
                self.complex[c.get("name")] = [
                    Decl(e.get("name"), e.get("type"), int(e.get("minOccurs", "1")),
                         -1 if e.get("maxOccurs") == "unbounded" else int(e.get("maxOccurs", "1")),
                         e.get(CM + "codeList", ""))
                    for e in c.find(XS + "sequence").findall(XS + "element")]
            for s in root.findall(XS + "simpleType"):
                r = s.find(XS + "restriction")
                self.simple[s.get("name")] = SimpleT(
                    s.get("name"), r.get("base"),
                    [(x.tag.replace(XS, ""), x.get("value")) for x in r if x.tag != XS + "annotation"])
            for e in root.findall(XS + "element"):
                self.roots[e.get("name")] = e.get("type")

    def chain(self, type_name):
        """[SimpleT, ...] from the named type down to the built-in base."""
        out = []
        while type_name in self.simple:
            s = self.simple[type_name]
            out.append(s)
            type_name = s.base
        return out, type_name

    def has_phase(self, root):
        path = os.path.join(self.dir, root.lower() + ".xsd")
        return "PhaseID" in open(path, encoding="utf-8").read()
