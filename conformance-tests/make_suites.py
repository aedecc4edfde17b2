#!/usr/bin/env python3
"""Writes the standard suites (suites/<suite>/<case>/case.toml + XML) from the message
templates in messages/ (r<N>-<type>.xml, one per route of the demo: r0 Aktau -> Alat -> Red
Bridge -> Poti, r1 Aktau -> Alat, r2 Alat -> Red Bridge -> Tbilisi, r3 Poti -> Alat -> Almaty,
r4 Tbilisi -> Poti).

The hub suite (suites/hub/) is made from messages/hub/<type>.xml, common-domain messages of
route r0 that the kit sends to the hub as a node would (signed envelopes over the hub's direct
link), and pins what the hub answers (hub/src/pipeline.rs, hub/src/routing.rs).

The suites are data: each case directory is complete in itself (its manifest and the messages
it sends), so a national team can read, copy and change one without this script. Re-run it
after changing a template: python3 conformance-tests/make_suites.py [OUT_DIR] (default: the
committed suites/; tests/conformance.rs regenerates into a temporary directory and compares).
"""

import os
import re
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
MESSAGES = os.path.join(HERE, "messages")
SUITES = os.path.join(HERE, "suites")

# Offices, routes and the goods the development nodes select for control (see
# src/cli/demo/world.rs `selection`).
ROUTES = {
    0: dict(departure="KZ000101", exits=["KZ000101", "AZ000201"], transits=["AZ000101", "GE000101"], destination="GE000201"),
    1: dict(departure="KZ000101", exits=["KZ000101"], transits=[], destination="AZ000101"),
    2: dict(departure="AZ000101", exits=["AZ000201"], transits=["GE000101"], destination="GE000301"),
    3: dict(departure="GE000201", exits=[], transits=["AZ000101"], destination="KZ000102"),
    4: dict(departure="GE000301", exits=[], transits=[], destination="GE000201"),
}
RIFLES = ("Sporting rifles", "930320", "150", "150")  # controlled at departure in KZ
CARS = ("Passenger cars", "870323", "3000", "3000")  # controlled at the office of transit in AZ
COGNAC = ("Cognac", "220820", "2100", "2100")  # controlled at destination in GE
UNKNOWN_MRN = "26KZ00010100LFLRJ0"  # well formed, check digit right, never allocated
INVALID_MRN = "26KZ00010100LFLRJ1"  # check digit wrong


def country(office):
    return office[:2]


def countries(route):
    out = []
    for o in [route["departure"]] + route["transits"] + [route["destination"]]:
        if country(o) not in out:
            out.append(country(o))
    return out


def stops(route):
    border = []
    for c in countries(route):
        border += [(t, "transit") for t in route["transits"] if country(t) == c]
        border += [(e, "exit") for e in route["exits"] if country(e) == c]
    return border


def message(route, kind):
    with open(os.path.join(MESSAGES, f"r{route}-{kind}.xml")) as f:
        return f.read()


def with_goods(xml, goods):
    name, hs, gross, net = goods
    xml = xml.replace("Seamless steel pipes", name).replace(">730419<", f">{hs}<")
    xml = re.sub(r"<grossMass>1250.5</grossMass>", f"<grossMass>{gross}</grossMass>", xml)
    xml = xml.replace("<netMass>1200</netMass>", f"<netMass>{net}</netMass>")
    return xml


def q(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def inline(d):
    parts = []
    for k, v in d.items():
        if isinstance(v, bool):
            parts.append(f"{k} = {'true' if v else 'false'}")
        elif isinstance(v, int):
            parts.append(f"{k} = {v}")
        elif isinstance(v, list):
            parts.append(f"{k} = [" + ", ".join(inline_table(x) for x in v) + "]")
        else:
            parts.append(f"{k} = {q(v)}")
    return ", ".join(parts)


def inline_table(d):
    return "{ " + inline(d) + " }"


class Case:
    def __init__(self, suite, name, description, tags, countries):
        self.suite, self.name = suite, name
        self.description, self.tags, self.countries = description, tags, countries
        self.steps, self.files, self.vars = [], {}, {}

    def step(self, **kw):
        self.steps.append(kw)
        return self

    def send(self, to, file, xml, reply=None, capture=None):
        self.files[file] = xml
        s = {"do": "send", "to": to, "file": file}
        if reply:
            s["reply"] = reply
        if capture:
            s["capture"] = capture
        return self.step(**s)

    def expect(self, at, type_, key="{{mrn}}", asserts=None, capture=None, within=None):
        s = {"do": "expect", "at": at, "type": type_, "key": key}
        if within:
            s["within"] = within
        if capture:
            s["capture"] = capture
        if asserts:
            s["assert"] = asserts
        return self.step(**s)

    def action(self, at, refused=None, **action):
        s = {"do": "action", "at": at, "action": action}
        if refused:
            s["refused"] = refused
        return self.step(**s)

    def state(self, at, office, role, phase):
        return self.step(do="state", at=at, office=office, role=role, phase=phase)

    def write(self):
        d = os.path.join(SUITES, self.suite, self.name)
        os.makedirs(d, exist_ok=True)
        lines = [f"description = {q(self.description)}",
                 "tags = [" + ", ".join(q(t) for t in self.tags) + "]",
                 "countries = [" + ", ".join(q(c) for c in self.countries) + "]"]
        if self.vars:
            lines.append("\n[vars]")
            for k, v in self.vars.items():
                lines.append(f"{k} = {q(v)}")
        for s in self.steps:
            lines.append("\n[[step]]")
            for k, v in s.items():
                if isinstance(v, dict):
                    lines.append(f"{k} = {inline_table(v)}")
                elif isinstance(v, list):
                    lines.append(f"{k} = [" + ", ".join(inline_table(x) for x in v) + "]")
                elif isinstance(v, bool):
                    lines.append(f"{k} = {'true' if v else 'false'}")
                elif isinstance(v, (int, float)):
                    lines.append(f"{k} = {v}")
                else:
                    lines.append(f"{k} = {q(v)}")
        with open(os.path.join(d, "case.toml"), "w") as f:
            f.write("\n".join(lines) + "\n")
        for name, xml in self.files.items():
            with open(os.path.join(d, name), "w") as f:
                f.write(xml)


def eq(pointer, value):
    return {"pointer": pointer, "equals": value}


def present(pointer):
    return {"pointer": pointer, "present": True}


def accepted(case, route_no, xml=None, controlled_departure=False):
    """CC015C in, CC928C back, CC028C (MRN), control at departure if selected, CC029C."""
    route = ROUTES[route_no]
    dep = route["departure"]
    c = country(dep)
    case.send(c, "cc015c.xml", xml or message(route_no, "cc015c"),
              reply={"status": 200, "type": "CC928C",
                     "assert": [eq("/CC928C/TransitOperation/LRN", "{{lrn}}")]})
    case.expect(c, "CC028C", key="{{lrn}}",
                capture={"mrn": "/CC028C/TransitOperation/MRN"},
                asserts=[eq("/CC028C/TransitOperation/LRN", "{{lrn}}"),
                         {"pointer": "/CC028C/TransitOperation/MRN", "matches": f"^[0-9]{{2}}{c}"}])
    if controlled_departure:
        case.expect(c, "CC060C", asserts=[eq("/CC060C/TransitOperation/MRN", "{{mrn}}")])
        case.state(c, dep, "departure", "UnderControl")
    return case


def released(case, route_no, controlled_departure=False):
    route = ROUTES[route_no]
    dep = route["departure"]
    c = country(dep)
    if controlled_departure:
        case.action(c, action="record-control-result", office=dep, role="departure", mrn="{{mrn}}",
                    outcome="satisfactory", remarks="seals and documents checked")
    case.expect(c, "CC029C", asserts=[eq("/CC029C/TransitOperation/MRN", "{{mrn}}"),
                                      eq("/CC029C/TransitOperation/LRN", "{{lrn}}"),
                                      eq("/CC029C/CustomsOfficeOfDeparture/referenceNumber", dep)])
    case.state(c, dep, "departure", "Released")
    return case


def border(case, route_no, controlled_transit=None, restart=None):
    route = ROUTES[route_no]
    for office, role in stops(route):
        c = country(office)
        if restart == office:
            case.step(do="restart", node=c)
        case.state(c, office, role, "Anticipated")
        case.action(c, action="record-presentation", office=office, role=role, mrn="{{mrn}}")
        if controlled_transit == office:
            case.state(c, office, role, "UnderControl")
            case.action(c, action="record-control-result", office=office, role=role, mrn="{{mrn}}",
                        outcome="satisfactory", remarks="seals intact")
        else:
            case.state(c, office, role, "Cleared")
        case.action(c, action="record-exit" if role == "exit" else "record-entry",
                    office=office, role=role, mrn="{{mrn}}")
    return case


def arrival(case, route_no, controlled=None):
    route = ROUTES[route_no]
    dest = route["destination"]
    c = country(dest)
    case.state(c, dest, "destination", "Anticipated")
    case.send(c, "cc007c.xml", message(route_no, "cc007c"), reply={"status": 202})
    if controlled:
        case.state(c, dest, "destination", "UnderControl")
        case.action(c, action="record-control-result", office=dest, role="destination", mrn="{{mrn}}",
                    outcome=controlled,
                    remarks="as declared" if controlled == "satisfactory" else "two packages missing")
    else:
        case.state(c, dest, "destination", "ReadyForRelease")
    case.action(c, action="release-goods", office=dest, role="destination", mrn="{{mrn}}")
    case.expect(c, "CC025C", asserts=[eq("/CC025C/TransitOperation/MRN", "{{mrn}}")])
    return case


def write_off(case, route_no, discrepancies=False):
    route = ROUTES[route_no]
    dep = route["departure"]
    c = country(dep)
    if discrepancies:
        case.expect(c, "CC019C", asserts=[eq("/CC019C/TransitOperation/MRN", "{{mrn}}")])
        case.action(c, action="write-off", office=dep, role="departure", mrn="{{mrn}}")
    case.expect(c, "CC045C", asserts=[eq("/CC045C/TransitOperation/MRN", "{{mrn}}")])
    case.state(c, dep, "departure", "WrittenOff")
    case.steps.append({"do": "hub", "assert": [eq("#/state", "written_off")] + hub_journal(route)})
    return case


def hub_journal(route):
    """The common-domain messages the hub must have journalled and routed for a completed
    movement on `route` (the registry's history, keys in alphabetical order)."""
    dep = country(route["departure"])
    expected = [("CD203C", "hub"), ("CD205C", f"node:{dep}"),
                ("CD001C", f"node:{country(route['destination'])}")]
    expected += [("CD050C", f"node:{country(t)}") for t in route["transits"]]
    expected += [("CD160C", f"node:{country(e)}") for e in route["exits"]]
    expected += [("CD168C", f"node:{dep}") for _ in route["exits"]]
    expected += [("CD118C", f"node:{dep}") for _ in route["transits"]]
    expected += [("CD006C", f"node:{dep}"), ("CD018C", f"node:{dep}"), ("CD209C", "hub")]
    out = []
    for ty, to in dict.fromkeys(expected):
        out.append({"pointer": "#/history", "matches": f'"message_type":"{ty}","recipients":\\["{to}"\\]'})
    return out


def hub_types(route):
    types = ["CD203C", "CD205C", "CD001C", "CD006C", "CD018C", "CD209C"]
    if route["transits"]:
        types += ["CD050C", "CD118C"]
    if route["exits"]:
        types += ["CD160C", "CD168C"]
    return types


def roles_of(route):
    tags = ["departure"]
    if route["exits"]:
        tags.append("exit")
    if route["transits"]:
        tags.append("transit")
    return tags + ["destination"]


JOURNEY_TYPES = ["CC015C", "CC928C", "CC028C", "CC029C", "CC007C", "CC025C", "CC045C"]


def journeys():
    names = {
        0: ("kz-az-ge-aktau-poti", "the pilot journey Aktau (KZ) -> Alat -> Red Bridge (AZ) -> Red Bridge (GE) -> Poti"),
        1: ("kz-az-aktau-alat", "Aktau (KZ) -> Alat (AZ)"),
        2: ("az-ge-alat-tbilisi", "Alat (AZ) -> Red Bridge -> Tbilisi (GE)"),
        3: ("ge-az-kz-poti-almaty", "Poti (GE) -> Alat (AZ) -> Almaty (KZ)"),
        4: ("ge-tbilisi-poti", "Tbilisi -> Poti (GE), one country"),
    }
    for r, (name, text) in names.items():
        route = ROUTES[r]
        case = Case("journeys", name, f"{text}: declared, accepted, released, presented and crossed at every border office, arrived, goods released, written off; the hub journalled and routed every common-domain message",
                    ["journey", "positive"] + JOURNEY_TYPES + roles_of(route) + ["hub"] + hub_types(route), countries(route))
        accepted(case, r)
        released(case, r)
        border(case, r)
        arrival(case, r)
        write_off(case, r)
        case.write()

    # Controls: at departure (rifles, KZ), at transit (cars, AZ), at destination with
    # discrepancies (cognac, GE).
    xml = with_goods(message(0, "cc015c"), RIFLES)
    case = Case("journeys", "control-at-departure", "rifles are selected for control at Aktau (CC060C); the officer records a satisfactory result and the movement is released and completed",
                ["journey", "control", "positive", "CC060C", "CC029C", "departure"] + roles_of(ROUTES[0])[1:], countries(ROUTES[0]))
    case.files["cc015c.xml"] = xml
    accepted(case, 0, xml=xml, controlled_departure=True)
    released(case, 0, controlled_departure=True)
    border(case, 0)
    arrival(case, 0)
    write_off(case, 0)
    case.write()

    xml = with_goods(message(0, "cc015c"), CARS)
    case = Case("journeys", "control-in-transit", "cars are selected for control at the office of transit Alat (AZ) on presentation; the officer's result lets them enter",
                ["journey", "control", "positive", "transit", "CD118C"], countries(ROUTES[0]))
    accepted(case, 0, xml=xml)
    released(case, 0)
    border(case, 0, controlled_transit="AZ000101")
    arrival(case, 0)
    write_off(case, 0)
    case.write()

    xml = with_goods(message(0, "cc015c"), COGNAC)
    case = Case("journeys", "control-with-discrepancies", "cognac is selected for control at Poti (GE); the officer finds major discrepancies, the office of departure gets them (CC019C to the holder) and an officer writes the movement off",
                ["journey", "control", "discrepancies", "positive", "CC019C", "CC045C", "destination", "departure"], countries(ROUTES[0]))
    accepted(case, 0, xml=xml)
    released(case, 0)
    border(case, 0)
    arrival(case, 0, controlled="major-discrepancies")
    write_off(case, 0, discrepancies=True)
    case.write()

    # Node restart mid-journey: AZ stops and starts again before the goods reach Alat.
    case = Case("journeys", "node-restart-mid-journey", "the AZ node is restarted while the goods are on the way to Alat: it keeps the anticipated record and the journey completes",
                ["journey", "restart", "positive", "transit", "exit"], countries(ROUTES[0]))
    accepted(case, 0)
    released(case, 0)
    border(case, 0, restart="AZ000101")
    arrival(case, 0)
    write_off(case, 0)
    case.write()

    # Guarantee refused: a GRN the hub's ledger does not know.
    xml = message(0, "cc015c").replace("26KZ0001010000017", "26KZ000101CG00056")
    case = Case("journeys", "guarantee-refused", "a guarantee the hub's ledger does not know: CC055C to the holder, the officer refuses release (CC051C)",
                ["journey", "guarantee", "negative", "CC055C", "CC051C", "departure"], ["KZ"])
    accepted(case, 0, xml=xml)
    case.expect("KZ", "CC055C", asserts=[eq("/CC055C/TransitOperation/MRN", "{{mrn}}")])
    case.action("KZ", action="refuse-release", office="KZ000101", role="departure", mrn="{{mrn}}",
                motivation="03", text="guarantee not valid")
    case.expect("KZ", "CC051C", asserts=[eq("/CC051C/TransitOperation/MRN", "{{mrn}}")])
    case.write()

    # Invalidation before release (held for control so that it is not released yet).
    xml = with_goods(message(0, "cc015c"), RIFLES)
    case = Case("journeys", "invalidation", "the holder asks for invalidation (CC014C) while the goods are held for control: CC009C, the movement is invalidated and the offices on the route are told",
                ["journey", "invalidation", "positive", "CC014C", "CC009C", "departure"], ["KZ"])
    accepted(case, 0, xml=xml, controlled_departure=True)
    case.send("KZ", "cc014c.xml", message(0, "cc014c"),
              reply={"status": 200, "type": "CC009C", "assert": [eq("/CC009C/TransitOperation/MRN", "{{mrn}}")]})
    case.expect("KZ", "CC009C")
    case.state("KZ", "KZ000101", "departure", "Invalidated")
    case.write()

    # Amendment before release: one more package; the CC029C carries the amended count.
    xml = with_goods(message(0, "cc015c"), RIFLES)
    amended = with_goods(message(0, "cc013c"), RIFLES).replace(
        "<numberOfPackages>10</numberOfPackages>", "<numberOfPackages>11</numberOfPackages>")
    case = Case("journeys", "amendment", "the holder amends the declaration (CC013C) while the goods are held for control: CC004C, and the release (CC029C) carries the amended number of packages",
                ["journey", "amendment", "positive", "CC013C", "CC004C", "CC029C", "departure"], ["KZ"])
    accepted(case, 0, xml=xml, controlled_departure=True)
    case.send("KZ", "cc013c.xml", amended,
              reply={"status": 200, "type": "CC004C", "assert": [eq("/CC004C/TransitOperation/MRN", "{{mrn}}")]})
    case.action("KZ", action="record-control-result", office="KZ000101", role="departure", mrn="{{mrn}}",
                outcome="satisfactory", remarks="amended packages counted")
    case.expect("KZ", "CC029C", asserts=[eq("/CC029C/TransitOperation/MRN", "{{mrn}}"),
                                          eq("/CC029C/Consignment/HouseConsignment/ConsignmentItem/Packaging/numberOfPackages", "11")])
    case.write()


def replace_once(xml, old, new):
    assert old in xml, old
    return xml.replace(old, new, 1)


def rejections():
    """Each external message the national API takes, with each kind of rejection."""
    base15 = message(0, "cc015c")
    # CC015C: positive, schema, code list, rule/condition, duplicate message identification.
    case = Case("departure", "cc015c-accepted", "a valid declaration: CC928C at once, then the MRN (CC028C) and the release (CC029C)",
                ["CC015C", "CC928C", "CC028C", "CC029C", "departure", "positive"], ["KZ"])
    accepted(case, 0)
    released(case, 0)
    case.write()

    case = Case("departure", "cc015c-schema-error", "an element the schema does not have: CC917C with the pointer to it, and no movement",
                ["CC015C", "CC917C", "departure", "negative", "schema"], ["KZ"])
    case.send("KZ", "cc015c.xml", replace_once(base15, "<declarationType>", "<unknownElement>1</unknownElement>\n    <declarationType>"),
              reply={"status": 400, "type": "CC917C",
                     "assert": [eq("/CC917C/XMLError/errorPointer", "/CC015C/TransitOperation/unknownElement")]})
    case.write()

    case = Case("departure", "cc015c-code-list-error", "a declaration type outside its code list: CC906C with code 12 and the pointer",
                ["CC015C", "CC906C", "departure", "negative", "code-list"], ["KZ"])
    case.send("KZ", "cc015c.xml", replace_once(base15, "<declarationType>T1<", "<declarationType>T9<"),
              reply={"status": 422, "type": "CC906C", "code": "12",
                     "assert": [eq("/CC906C/FunctionalError/errorPointer", "/CC015C/TransitOperation/declarationType")]})
    case.write()

    case = Case("departure", "cc015c-rule-error", "net mass above gross mass (rule R0223): CC906C with the rule's code and pointer",
                ["CC015C", "CC906C", "departure", "negative", "rule"], ["KZ"])
    case.send("KZ", "cc015c.xml", replace_once(base15, "<netMass>1200</netMass>", "<netMass>1300</netMass>"),
              reply={"status": 422, "type": "CC906C", "code": "14",
                     "assert": [{"pointer": "/CC906C/FunctionalError/errorPointer", "matches": "netMass"}]})
    case.write()

    case = Case("departure", "cc015c-condition-error", "a GRN without its access code (condition C0086): CC906C with the condition's code and pointer",
                ["CC015C", "CC906C", "departure", "negative", "condition"], ["KZ"])
    case.send("KZ", "cc015c.xml", replace_once(base15, "<accessCode>1234</accessCode>", ""),
              reply={"status": 422, "type": "CC906C", "code": "13",
                     "assert": [{"pointer": "/CC906C/FunctionalError/errorPointer", "matches": "accessCode"}]})
    case.write()

    case = Case("departure", "cc015c-duplicate", "the same declaration sent again with the same message identification: refused as a duplicate (26)",
                ["CC015C", "CC056C", "departure", "negative", "duplicate"], ["KZ"])
    case.vars["declaration_id"] = "{{uuid}}"
    dup = base15.replace("{{uuid}}", "{{declaration_id}}")
    case.send("KZ", "cc015c.xml", dup, reply={"status": 200, "type": "CC928C"})
    case.expect("KZ", "CC028C", key="{{lrn}}", capture={"mrn": "/CC028C/TransitOperation/MRN"})
    case.send("KZ", "cc015c.xml", dup, reply={"code": "26"})
    case.write()

    # Messages about an existing movement: CC013C, CC014C at departure (KZ); CC007C at
    # destination (GE); each with unknown MRN, invalid MRN, out of sequence, and an XML error.
    for kind, office_country, text in [("cc013c", "KZ", "amendment"), ("cc014c", "KZ", "invalidation request"), ("cc007c", "GE", "arrival notification")]:
        T = kind.upper()
        role = "destination" if kind == "cc007c" else "departure"
        base = message(0, kind)
        case = Case("departure" if role == "departure" else "destination", f"{kind}-unknown-mrn",
                    f"an {text} for an MRN no movement has: CC056C/CC906C with code 90", [T, role, "negative", "unknown-mrn"], [office_country])
        case.vars["mrn"] = UNKNOWN_MRN
        case.send(office_country, f"{kind}.xml", base, reply={"code": "90"})
        case.write()

        case = Case(case.suite, f"{kind}-invalid-mrn", f"an {text} whose MRN has a wrong check digit: code 93 at the MRN",
                    [T, role, "negative", "invalid-mrn"], [office_country])
        case.vars["mrn"] = INVALID_MRN
        case.send(office_country, f"{kind}.xml", base, reply={"code": "93"})
        case.write()

        case = Case(case.suite, f"{kind}-schema-error", f"an {text} with an element the schema does not have: CC917C",
                    [T, "CC917C", role, "negative", "schema"], [office_country])
        case.vars["mrn"] = UNKNOWN_MRN
        case.send(office_country, f"{kind}.xml", replace_once(base, "</TransitOperation>", "  <unknownElement>1</unknownElement>\n  </TransitOperation>"),
                  reply={"status": 400, "type": "CC917C"})
        case.write()

    # Out of sequence: amendment and invalidation after release (KZ); arrival before the
    # goods crossed (GE holds the anticipated record... the arrival is allowed there), so an
    # arrival notified twice.
    for kind, text in [("cc013c", "an amendment"), ("cc014c", "an invalidation request")]:
        T = kind.upper()
        case = Case("departure", f"{kind}-out-of-sequence", f"{text} after the goods were released: refused as out of sequence (92)",
                    [T, "departure", "negative", "out-of-sequence"], ["KZ"])
        accepted(case, 0)
        released(case, 0)
        case.send("KZ", f"{kind}.xml", message(0, kind), reply={"code": "92"})
        case.write()

    case = Case("destination", "cc007c-out-of-sequence", "an arrival notification for goods already released at destination: refused as out of sequence (92)",
                ["CC007C", "destination", "negative", "out-of-sequence"], ["KZ", "AZ", "GE"])
    accepted(case, 0)
    released(case, 0)
    border(case, 0)
    arrival(case, 0)
    case.files["cc007c-again.xml"] = message(0, "cc007c")
    case.step(do="send", to="GE", file="cc007c-again.xml", reply={"code": "92"})
    case.write()

    # Officer actions out of sequence and on unknown movements.
    case = Case("departure", "action-out-of-sequence", "an officer records exit for a movement that is not released: refused with 92, nothing changes",
                ["action", "departure", "negative", "out-of-sequence"], ["KZ"])
    xml = with_goods(base15, RIFLES)
    accepted(case, 0, xml=xml, controlled_departure=True)
    case.action("KZ", refused="92", action="record-exit", office="KZ000101", role="exit", mrn="{{mrn}}")
    case.state("KZ", "KZ000101", "departure", "UnderControl")
    case.write()

    case = Case("departure", "action-unknown-mrn", "an officer action for an MRN the node does not hold: refused with 90",
                ["action", "departure", "negative", "unknown-mrn"], ["KZ"])
    case.vars["mrn"] = UNKNOWN_MRN
    case.action("KZ", refused="90", action="record-presentation", office="KZ000101", role="exit", mrn="{{mrn}}")
    case.write()


def more_rejections():
    """Code-list, rule and duplicate rejections of the messages about a movement, CC044C and
    CC170C, and a declaration refused on reference data (CC056C)."""
    # CC013C: the amendment is a declaration: same code lists and rules as the CC015C.
    base = message(0, "cc013c")
    case = Case("departure", "cc013c-code-list-error", "an amendment with a declaration type outside its code list: CC906C with code 12 and the pointer",
                ["CC013C", "CC906C", "departure", "negative", "code-list"], ["KZ"])
    case.vars["mrn"] = UNKNOWN_MRN
    case.send("KZ", "cc013c.xml", replace_once(base, "<declarationType>T1<", "<declarationType>T9<"),
              reply={"status": 422, "type": "CC906C", "code": "12",
                     "assert": [eq("/CC906C/FunctionalError/errorPointer", "/CC013C/TransitOperation/declarationType")]})
    case.write()

    case = Case("departure", "cc013c-rule-error", "an amendment with net mass above gross mass (R0223): CC906C with code 14",
                ["CC013C", "CC906C", "departure", "negative", "rule"], ["KZ"])
    case.vars["mrn"] = UNKNOWN_MRN
    case.send("KZ", "cc013c.xml", replace_once(base, "<netMass>1200</netMass>", "<netMass>1300</netMass>"),
              reply={"status": 422, "type": "CC906C", "code": "14",
                     "assert": [{"pointer": "/CC906C/FunctionalError/errorPointer", "matches": "netMass"}]})
    case.write()

    case = Case("departure", "cc013c-duplicate", "the same amendment sent twice with one message identification: the second is refused as a duplicate (26)",
                ["CC013C", "CC004C", "departure", "negative", "duplicate"], ["KZ"])
    case.vars["amendment_id"] = "{{uuid}}"
    xml = with_goods(message(0, "cc015c"), RIFLES)
    accepted(case, 0, xml=xml, controlled_departure=True)
    amended = with_goods(base, RIFLES).replace("{{uuid}}", "{{amendment_id}}")
    case.send("KZ", "cc013c.xml", amended, reply={"status": 200, "type": "CC004C"})
    case.step(do="send", to="KZ", file="cc013c.xml", reply={"code": "26"})
    case.write()

    # CC014C: the invalidation request sent twice.
    case = Case("departure", "cc014c-duplicate", "the same invalidation request sent twice with one message identification: the second is refused as a duplicate (26)",
                ["CC014C", "CC009C", "departure", "negative", "duplicate"], ["KZ"])
    case.vars["request_id"] = "{{uuid}}"
    accepted(case, 0, xml=with_goods(message(0, "cc015c"), RIFLES), controlled_departure=True)
    request = message(0, "cc014c").replace("{{uuid}}", "{{request_id}}")
    case.send("KZ", "cc014c.xml", request, reply={"status": 200, "type": "CC009C"})
    case.step(do="send", to="KZ", file="cc014c.xml", reply={"code": "26"})
    case.write()

    # CC007C: code list, condition, duplicate.
    base = message(0, "cc007c")
    case = Case("destination", "cc007c-code-list-error", "an arrival notification with a type of location outside its code list: CC906C with code 12",
                ["CC007C", "CC906C", "destination", "negative", "code-list"], ["GE"])
    case.vars["mrn"] = UNKNOWN_MRN
    case.send("GE", "cc007c.xml", replace_once(base, "<typeOfLocation>A<", "<typeOfLocation>Q<"),
              reply={"status": 422, "type": "CC906C", "code": "12",
                     "assert": [{"pointer": "/CC906C/FunctionalError/errorPointer", "matches": "typeOfLocation"}]})
    case.write()

    case = Case("destination", "cc007c-condition-error", "a simplified-procedure arrival without its authorisation (C0102): CC906C with code 13 at /CC007C/Authorisation",
                ["CC007C", "CC906C", "destination", "negative", "condition"], ["GE"])
    case.vars["mrn"] = UNKNOWN_MRN
    case.send("GE", "cc007c.xml", replace_once(base, "<simplifiedProcedure>0<", "<simplifiedProcedure>1<"),
              reply={"status": 422, "type": "CC906C", "code": "13",
                     "assert": [eq("/CC906C/FunctionalError/errorPointer", "/CC007C/Authorisation")]})
    case.write()

    case = Case("destination", "cc007c-duplicate", "the same arrival notification sent twice with one message identification: the second is refused as a duplicate (26)",
                ["CC007C", "destination", "negative", "duplicate"], ["KZ", "AZ", "GE"])
    case.vars["arrival_id"] = "{{uuid}}"
    accepted(case, 0)
    released(case, 0)
    border(case, 0)
    case.state("GE", "GE000201", "destination", "Anticipated")
    arrival_xml = base.replace("{{uuid}}", "{{arrival_id}}")
    case.send("GE", "cc007c.xml", arrival_xml, reply={"status": 202})
    case.step(do="send", to="GE", file="cc007c.xml", reply={"code": "26"})
    case.write()

    # CC044C unloading remarks: only after an unloading permission (simplified procedure).
    base = message(0, "cc044c")
    for name, mrn, code, text in [("unknown-mrn", UNKNOWN_MRN, "90", "for an MRN no movement has: code 90"),
                                  ("invalid-mrn", INVALID_MRN, "93", "whose MRN has a wrong check digit: code 93")]:
        case = Case("destination", f"cc044c-{name}", f"unloading remarks {text}",
                    ["CC044C", "destination", "negative", name], ["GE"])
        case.vars["mrn"] = mrn
        case.send("GE", "cc044c.xml", base, reply={"code": code})
        case.write()
    case = Case("destination", "cc044c-schema-error", "unloading remarks with an element the schema does not have: CC917C",
                ["CC044C", "CC917C", "destination", "negative", "schema"], ["GE"])
    case.vars["mrn"] = UNKNOWN_MRN
    case.send("GE", "cc044c.xml", replace_once(base, "</TransitOperation>", "  <unknownElement>1</unknownElement>\n  </TransitOperation>"),
              reply={"status": 400, "type": "CC917C", "assert": [eq("/CC917C/XMLError/errorPointer", "/CC044C/TransitOperation/unknownElement")]})
    case.write()
    case = Case("destination", "cc044c-out-of-sequence", "unloading remarks for goods that arrived under the normal procedure (no unloading permission): refused as out of sequence (92)",
                ["CC044C", "destination", "negative", "out-of-sequence"], ["KZ", "AZ", "GE"])
    accepted(case, 0)
    released(case, 0)
    border(case, 0)
    case.state("GE", "GE000201", "destination", "Anticipated")
    case.send("GE", "cc007c.xml", message(0, "cc007c"), reply={"status": 202})
    case.state("GE", "GE000201", "destination", "ReadyForRelease")
    case.send("GE", "cc044c.xml", base, reply={"code": "92"})
    case.write()

    # CC170C presentation notification (for a pre-lodged declaration), by LRN.
    base = message(0, "cc170c")
    case = Case("departure", "cc170c-unknown-lrn", "a presentation notification for an LRN no declaration has: code 90",
                ["CC170C", "departure", "negative", "unknown-mrn"], ["KZ"])
    case.send("KZ", "cc170c.xml", base, reply={"code": "90"})
    case.write()
    case = Case("departure", "cc170c-out-of-sequence", "a presentation notification for a declaration that was not pre-lodged and is released: refused as out of sequence (92)",
                ["CC170C", "departure", "negative", "out-of-sequence"], ["KZ"])
    accepted(case, 0)
    released(case, 0)
    case.send("KZ", "cc170c.xml", base, reply={"code": "92"})
    case.write()
    case = Case("departure", "cc170c-schema-error", "a presentation notification with an element the schema does not have: CC917C",
                ["CC170C", "CC917C", "departure", "negative", "schema"], ["KZ"])
    case.send("KZ", "cc170c.xml", replace_once(base, "</TransitOperation>", "  <unknownElement>1</unknownElement>\n  </TransitOperation>"),
              reply={"status": 400, "type": "CC917C"})
    case.write()

    # CC056C: a declaration whose office of destination has no destination role.
    xml = message(1, "cc015c")
    xml = replace_once(xml, "<referenceNumber>AZ000101</referenceNumber>\n  </CustomsOfficeOfDestinationDeclared>",
                       "<referenceNumber>KZ000101</referenceNumber>\n  </CustomsOfficeOfDestinationDeclared>")
    xml = re.sub(r"  <CustomsOfficeOfExitForTransitDeclared>.*?</CustomsOfficeOfExitForTransitDeclared>\n", "", xml, flags=re.S)
    xml = replace_once(xml, "<countryOfDestination>AZ<", "<countryOfDestination>KZ<")
    xml = re.sub(r"    <CountryOfRoutingOfConsignment>\n      <sequenceNumber>2</sequenceNumber>.*?</CountryOfRoutingOfConsignment>\n", "", xml, flags=re.S)
    xml = replace_once(xml, "<UNLocode>AZBAK<", "<UNLocode>KZAKT<")
    case = Case("departure", "cc015c-rejected-reference-data", "a declared office of destination that is not a destination office in the reference data: CC928C, then the declaration is rejected (CC056C) and gets no MRN",
                ["CC015C", "CC056C", "departure", "negative", "reference-data"], ["KZ"])
    case.send("KZ", "cc015c.xml", xml, reply={"status": 200, "type": "CC928C"})
    case.expect("KZ", "CC056C", key="{{lrn}}", asserts=[eq("/CC056C/TransitOperation/LRN", "{{lrn}}"),
                                                       {"pointer": "/CC056C/TransitOperation/MRN", "absent": True},
                                                       eq("/CC056C/FunctionalError/errorPointer", "/CC015C/CustomsOfficeOfDestinationDeclared/referenceNumber")])
    case.write()


def more_positive():
    """The positive paths of CC170C (pre-lodged declaration) and CC044C (simplified procedure
    at destination)."""
    xml = replace_once(message(0, "cc015c"), "<additionalDeclarationType>A<", "<additionalDeclarationType>D<")
    case = Case("departure", "cc170c-presentation", "a pre-lodged declaration (type D) waits for the goods; the presentation notification (CC170C) lets it be accepted (CC028C) and released (CC029C)",
                ["CC015C", "CC170C", "CC028C", "CC029C", "departure", "positive"], ["KZ"])
    case.send("KZ", "cc015c.xml", xml, reply={"status": 200, "type": "CC928C"})
    case.send("KZ", "cc170c.xml", message(0, "cc170c"), reply={"status": 202})
    case.expect("KZ", "CC028C", key="{{lrn}}", capture={"mrn": "/CC028C/TransitOperation/MRN"},
                asserts=[eq("/CC028C/TransitOperation/LRN", "{{lrn}}")])
    released(case, 0)
    case.write()

    simplified = replace_once(message(0, "cc007c"), "<simplifiedProcedure>0<", "<simplifiedProcedure>1<")
    simplified = replace_once(simplified, "  <CustomsOfficeOfDestinationActual>",
                              "  <Authorisation>\n    <sequenceNumber>1</sequenceNumber>\n    <type>C521</type>\n    <referenceNumber>GE-AUTH-ACE-0001</referenceNumber>\n  </Authorisation>\n  <CustomsOfficeOfDestinationActual>")
    remarks = message(0, "cc044c").replace("<conform>0</conform>", "<conform>1</conform>").replace(
        "<unloadingCompletion>0</unloadingCompletion>", "<unloadingCompletion>1</unloadingCompletion>")
    case = Case("destination", "cc044c-unloading-remarks", "an authorised consignee (simplified procedure) notifies arrival: unloading permission (CC043C), unloading remarks conform and complete (CC044C), goods released, written off",
                ["CC007C", "CC043C", "CC044C", "CC025C", "CC045C", "destination", "positive", "simplified"], countries(ROUTES[0]))
    accepted(case, 0)
    released(case, 0)
    border(case, 0)
    case.state("GE", "GE000201", "destination", "Anticipated")
    case.send("GE", "cc007c.xml", simplified, reply={"status": 202})
    case.expect("GE", "CC043C", asserts=[eq("/CC043C/TransitOperation/MRN", "{{mrn}}")])
    case.state("GE", "GE000201", "destination", "UnloadingPermitted")
    case.send("GE", "cc044c.xml", remarks, reply={"status": 202})
    case.state("GE", "GE000201", "destination", "ReadyForRelease")
    case.action("GE", action="release-goods", office="GE000201", role="destination", mrn="{{mrn}}")
    case.expect("GE", "CC025C", asserts=[eq("/CC025C/TransitOperation/MRN", "{{mrn}}")])
    write_off(case, 0)
    case.write()


def cc170c_rules():
    """CC170C's code-list, condition and rule rejections."""
    base = message(0, "cc170c")
    for name, old, new, code, pointer, text in [
        ("code-list-error", "<typeOfLocation>A<", "<typeOfLocation>Q<", "12", "/CC170C/Consignment/LocationOfGoods/typeOfLocation",
         "a type of location outside its code list: CC906C with code 12"),
        ("condition-error", "    <PlaceOfLoading>\n      <UNLocode>KZAKT</UNLocode>\n    </PlaceOfLoading>\n", "", "13", "/CC170C/Consignment/PlaceOfLoading",
         "no place of loading (condition C0404): CC906C with code 13"),
        ("rule-error", "<identificationNumber>123ABC01<", "<identificationNumber>123abc01<", "14", "/CC170C/Consignment/DepartureTransportMeans[1]/identificationNumber",
         "a number plate in lower case (rule R0473): CC906C with code 14"),
    ]:
        case = Case("departure", f"cc170c-{name}", f"a presentation notification with {text}",
                    ["CC170C", "CC906C", "departure", "negative", name.split("-error")[0]], ["KZ"])
        case.send("KZ", "cc170c.xml", replace_once(base, old, new),
                  reply={"status": 422, "type": "CC906C", "code": code,
                         "assert": [eq("/CC906C/FunctionalError/errorPointer", pointer)]})
        case.write()


HUB_MESSAGES = os.path.join(MESSAGES, "hub")
SAMPLE_MRN = "26KZ000101000001J0"  # the MRN in messages/hub/*.xml


def cd(kind, id_var="id"):
    """messages/hub/<kind>.xml with its identification {{<id_var>}}, the case's fresh MRN
    {{mrn}} and preparation time {{prepared}} (both fixed for the case: a message sent twice
    is the same body)."""
    with open(os.path.join(HUB_MESSAGES, f"{kind}.xml")) as f:
        xml = f.read()
    xml = replace_once(xml, f">{kind.upper()}-MESS-0001<", ">{{%s}}<" % id_var)
    xml = xml.replace(SAMPLE_MRN, "{{mrn}}")
    return replace_once(xml, "<preparationDateAndTime>2026-03-16T09:30:00<", "<preparationDateAndTime>{{prepared}}<")


class HubCase(Case):
    """A case that talks to the hub as the countries' nodes (no national API)."""

    def __init__(self, name, description, tags, mrn="{{mrn:KZ000101}}", **ids):
        super().__init__("hub", name, description, tags + ["hub"], [])
        self.vars = {"mrn": mrn, "prepared": "{{now}}"}
        for v in ids:
            self.vars[v] = "{{uuid}}"

    def hub_send(self, as_, to, file, xml, signer=None, tamper=None):
        self.files[file] = xml
        s = {"do": "hub-send", "as": as_, "to": to, "file": file}
        if signer:
            s["signer"] = signer
        if tamper:
            s["tamper"] = tamper
        return self.step(**s)

    def hub_expect(self, at, type_, id=None, correlates=None, from_=None, unchanged=False,
                   nothing=False, within=None, asserts=None):
        s = {"do": "hub-expect", "at": at, "type": type_}
        if id:
            s["id"] = id
        if correlates:
            s["correlates"] = correlates
        if from_:
            s["from"] = from_
        if unchanged:
            s["unchanged"] = True
        if nothing:
            s["nothing"] = True
            within = within or 2
        if within:
            s["within"] = within
        if asserts:
            s["assert"] = asserts
        return self.step(**s)

    def routed(self, as_, to, kind, id_var, file=None):
        """`as_` sends messages/hub/<kind>.xml to `to`; `to` receives the very envelope."""
        file = file or f"{kind}.xml"
        t = kind.upper()
        self.hub_send(as_, to, file, cd(kind, id_var))
        return self.hub_expect(to, t, id="{{%s}}" % id_var, from_=as_, unchanged=True,
                               asserts=[eq(f"/{t}/TransitOperation/MRN", "{{mrn}}"),
                                        eq(f"/{t}/messageIdentification", "{{%s}}" % id_var)])

    def nack(self, at, type_, answering, code=None, pointer=None, text=None, nothing_at=None,
             routed_type="CD001C"):
        """The hub's NACK to `at`, signed by the hub, answering {{answering}}; and nothing of
        the refused message at `nothing_at`."""
        asserts = [eq(f"/{type_}/messageRecipient", f"NTA.{at}"),
                   eq(f"/{type_}/correlationIdentifier", "{{%s}}" % answering)]
        if type_ == "CD906C":
            asserts.append(eq("/CD906C/Header/MRN", "{{mrn}}"))
            if code:
                asserts.append(eq("/CD906C/FunctionalError/errorCode", code))
            if pointer:
                asserts.append(eq("/CD906C/FunctionalError/errorPointer", pointer))
        else:
            if code:
                asserts.append(eq("/CD917C/XMLError/errorCode", code))
            if pointer:
                asserts.append(eq("/CD917C/XMLError/errorPointer", pointer))
            if text:
                asserts.append({"pointer": "/CD917C/XMLError/errorText", "matches": text})
        self.hub_expect(at, type_, correlates="{{%s}}" % answering, from_="hub", asserts=asserts)
        if nothing_at:
            self.hub_expect(nothing_at, routed_type, id="{{%s}}" % answering, nothing=True)
        return self

    def registry(self, *asserts):
        return self.step(do="hub", assert_=list(asserts))

    def write(self):
        # `assert` is a Python keyword: stored as assert_.
        for st in self.steps:
            if "assert_" in st:
                st["assert"] = st.pop("assert_")
        super().write()


def journal(type_, id_var, status, recipients, sender, code=None):
    """A registry history entry (keys in alphabetical order, as the runner prints JSON)."""
    code_part = f'"error_code":"{code}",' if code else ""
    to = ",".join(f'"{r}"' for r in recipients)
    return {"pointer": "#/history",
            "matches": f'{code_part}"message_id":"{{{{{id_var}}}}}","message_type":"{type_}",'
                       f'"recipients":\\[{to}\\],"recorded_at":"[^"]+","sender":"{sender}",'
                       f'"sequence":[0-9]+,"status":"{status}"'}


def journal_emitted(type_, answering, to):
    """The hub's own message (a NACK, a CD205C) in the history, answering {{answering}}."""
    return {"pointer": "#/history",
            "matches": f'"message_type":"{type_}","recipients":\\["node:{to}"\\],'
                       f'"recorded_at":"[^"]+","sender":"urn:cats:hub","sequence":[0-9]+,"status":"emitted"'}


def hub():
    """The hub's common-domain side: routing of each message, and each rejection it gives."""
    node = lambda c: f"urn:cats:node:{c}"

    # Positive routing, route r0: Aktau (KZ000101) -> Alat (AZ000101) -> Red Bridge
    # (AZ000201 exit, GE000101 entry) -> Poti (GE000201).
    c = HubCase("cd001c-aar-to-destination", "an anticipated arrival record (CD001C) from the departure country reaches the destination country's node, byte for byte as signed, and the hub registers the movement",
                ["CD001C", "departure", "destination", "positive"], aar_id=1)
    c.routed("KZ", "GE", "cd001c", "aar_id")
    c.registry(eq("#/state", "released"), eq("#/departure_office", "KZ000101"), eq("#/destination_office", "GE000201"),
               journal("CD001C", "aar_id", "accepted", ["node:GE"], node("KZ")))
    c.write()

    c = HubCase("cd050c-atr-to-each-transit-country", "an anticipated transit record (CD050C), one envelope per country of an office of transit, reaches AZ and GE",
                ["CD050C", "departure", "transit", "positive"], atr_az_id=1, atr_ge_id=1)
    c.routed("KZ", "AZ", "cd050c", "atr_az_id", file="cd050c-az.xml")
    c.routed("KZ", "GE", "cd050c", "atr_ge_id", file="cd050c-ge.xml")
    c.registry(journal("CD050C", "atr_az_id", "accepted", ["node:AZ"], node("KZ")),
               journal("CD050C", "atr_ge_id", "accepted", ["node:GE"], node("KZ")))
    c.write()

    c = HubCase("cd160c-axr-to-exit", "an anticipated exit record (CD160C) reaches the country of each office of exit: AZ, and KZ itself (Aktau is also an office of exit)",
                ["CD160C", "departure", "exit", "positive"], axr_az_id=1, axr_kz_id=1)
    c.routed("KZ", "AZ", "cd160c", "axr_az_id", file="cd160c-az.xml")
    c.routed("KZ", "KZ", "cd160c", "axr_kz_id", file="cd160c-kz.xml")
    c.registry(journal("CD160C", "axr_az_id", "accepted", ["node:AZ"], node("KZ")))
    c.write()

    for kind, sender, office, role, state, what in [
        ("cd168c", "AZ", "AZ000201", "exit", "in_transit", "the notification of exit (CD168C) from the office of exit at Red Bridge"),
        ("cd118c", "AZ", "AZ000101", "transit", "in_transit", "the notification of crossing the frontier (CD118C) from the office of transit at Alat"),
        ("cd006c", "GE", "GE000201", "destination", "arrived", "the arrival advice (CD006C) from the office of destination at Poti"),
        ("cd018c", "GE", "GE000201", "destination", "control_results_sent", "the control results (CD018C) from the office of destination at Poti"),
    ]:
        t = kind.upper()
        c = HubCase(f"{kind}-to-departure", f"{what} goes back to the departure country's node (KZ)",
                    [t, role, "departure", "positive"], msg_id=1)
        c.routed(sender, "KZ", kind, "msg_id")
        c.registry(eq("#/state", state), journal(t, "msg_id", "accepted", ["node:KZ"], node(sender)))
        c.write()

    c = HubCase("cd203c-guarantee-use-and-credit", "a guarantee use (CD203C) stops at the hub's ledger, which answers the departure node with a CD205C signed by the hub; the credit (CD209C) at write-off releases it",
                ["CD203C", "CD205C", "CD209C", "departure", "guarantee", "positive"], use_id=1, credit_id=1)
    c.hub_send("KZ", "hub", "cd203c.xml", cd("cd203c", "use_id"))
    c.hub_expect("KZ", "CD205C", correlates="{{use_id}}", from_="hub",
                 asserts=[eq("/CD205C/TransitOperation/MRN", "{{mrn}}"), eq("/CD205C/messageRecipient", "NTA.KZ"),
                          eq("/CD205C/Guarantee/GuaranteeReference/GRN", "26KZ0001010000017")])
    c.hub_send("KZ", "hub", "cd209c.xml", cd("cd209c", "credit_id"))
    c.hub_expect("KZ", "CD906C", correlates="{{credit_id}}", nothing=True)
    c.registry(journal("CD203C", "use_id", "accepted", ["hub"], node("KZ")),
               journal_emitted("CD205C", "use_id", "KZ"),
               journal("CD209C", "credit_id", "accepted", ["hub"], node("KZ")))
    c.write()

    # Rejections: the hub's NACK goes to the node that delivered the message, signed by the
    # hub, and the message goes nowhere.
    aar = cd("cd001c")
    c = HubCase("cd001c-schema-error", "an anticipated arrival record with an element the schema does not have: CD917C with its pointer to KZ, nothing to GE",
                ["CD001C", "CD917C", "negative", "schema"], id=1)
    c.hub_send("KZ", "GE", "cd001c.xml", replace_once(aar, "<messageType>CD001C</messageType>\n", "<messageType>CD001C</messageType>\n  <colour>red</colour>\n"))
    c.nack("KZ", "CD917C", "id", pointer="/CD001C/colour", nothing_at="GE")
    c.write()

    c = HubCase("cd001c-code-list-error", "an anticipated arrival record with a declaration type outside its code list (CL231): CD906C with code 12 and its pointer",
                ["CD001C", "CD906C", "negative", "code-list"], id=1)
    c.hub_send("KZ", "GE", "cd001c.xml", replace_once(aar, "<declarationType>T1<", "<declarationType>TQ<"))
    c.nack("KZ", "CD906C", "id", code="12", pointer="/CD001C/TransitOperation/declarationType", nothing_at="GE")
    c.write()

    c = HubCase("cd001c-invalid-mrn", "an anticipated arrival record whose MRN has a wrong check digit: CD906C with code 93 at the MRN",
                ["CD001C", "CD906C", "negative", "invalid-mrn"], mrn=INVALID_MRN, id=1)
    c.hub_send("KZ", "GE", "cd001c.xml", aar)
    c.nack("KZ", "CD906C", "id", code="93", pointer="/CD001C/TransitOperation/MRN", nothing_at="GE")
    c.write()

    c = HubCase("cd001c-office-role-error", "an anticipated arrival record naming, as office of destination, an office that has no destination role (AZ000201, exit only): CD906C with code 14 (rule)",
                ["CD001C", "CD906C", "negative", "rule"], id=1)
    xml = replace_once(aar, "<referenceNumber>GE000201</referenceNumber>\n  </CustomsOfficeOfDestinationDeclared>",
                       "<referenceNumber>AZ000201</referenceNumber>\n  </CustomsOfficeOfDestinationDeclared>")
    c.hub_send("KZ", "AZ", "cd001c.xml", replace_once(xml, "<messageRecipient>NTA.GE<", "<messageRecipient>NTA.AZ<"))
    c.nack("KZ", "CD906C", "id", code="14", pointer="/CD001C/CustomsOfficeOfDestinationDeclared/referenceNumber", nothing_at="AZ")
    c.write()

    c = HubCase("cd001c-unknown-office", "an anticipated arrival record naming an office of destination the reference data does not have (GE999999): CD906C with code 12",
                ["CD001C", "CD906C", "negative", "reference-data"], id=1)
    c.hub_send("KZ", "GE", "cd001c.xml", replace_once(aar, "<referenceNumber>GE000201</referenceNumber>\n  </CustomsOfficeOfDestinationDeclared>",
                                                      "<referenceNumber>GE999999</referenceNumber>\n  </CustomsOfficeOfDestinationDeclared>"))
    c.nack("KZ", "CD906C", "id", code="12", pointer="/CD001C/CustomsOfficeOfDestinationDeclared/referenceNumber", nothing_at="GE")
    c.write()

    c = HubCase("cd001c-sender-not-the-signer", "an anticipated arrival record signed and delivered by KZ whose messageSender says GE: CD906C with code 14 at messageSender",
                ["CD001C", "CD906C", "negative", "sender"], id=1)
    c.hub_send("KZ", "GE", "cd001c.xml", replace_once(aar, "<messageSender>NTA.KZ<", "<messageSender>NTA.GE<"))
    c.nack("KZ", "CD906C", "id", code="14", pointer="/CD001C/messageSender", nothing_at="GE")
    c.write()

    c = HubCase("cd006c-office-of-another-country", "AZ sends an arrival advice for Poti (GE000201): the sending office is not in the sender's country, CD906C with code 14 to AZ, nothing to KZ",
                ["CD006C", "CD906C", "negative", "sender"], id=1)
    c.hub_send("AZ", "KZ", "cd006c.xml", replace_once(cd("cd006c"), "<messageSender>NTA.GE<", "<messageSender>NTA.AZ<"))
    c.nack("AZ", "CD906C", "id", code="14", pointer="/CD006C/CustomsOfficeOfDestinationActual/referenceNumber",
           nothing_at="KZ", routed_type="CD006C")
    c.write()

    c = HubCase("cd001c-wrong-recipient", "an anticipated arrival record for Poti addressed to AZ: the route does not send it there, CD906C with code 14 at messageRecipient, nothing to AZ",
                ["CD001C", "CD906C", "negative", "routing"], id=1)
    c.hub_send("KZ", "AZ", "cd001c.xml", replace_once(aar, "<messageRecipient>NTA.GE<", "<messageRecipient>NTA.AZ<"))
    c.nack("KZ", "CD906C", "id", code="14", pointer="/CD001C/messageRecipient", nothing_at="AZ")
    c.write()

    c = HubCase("cd001c-duplicate-other-body", "a second anticipated arrival record with the identification of the first and another body: CD906C with code 26, journalled as rejected; GE has only the first",
                ["CD001C", "CD906C", "negative", "duplicate"], id=1)
    c.routed("KZ", "GE", "cd001c", "id")
    c.hub_send("KZ", "GE", "cd001c-other-body.xml", replace_once(aar, "Seamless steel pipes", "Steel sheets"))
    c.nack("KZ", "CD906C", "id", code="26", pointer="/CD001C/messageIdentification")
    c.hub_expect("GE", "CD001C", id="{{id}}", nothing=True)
    c.registry(journal("CD001C", "id", "accepted", ["node:GE"], node("KZ")),
               journal("CD001C", "id", "rejected", [], node("KZ"), code="26"),
               journal_emitted("CD906C", "id", "KZ"))
    c.write()

    c = HubCase("cd001c-sent-twice", "the same anticipated arrival record sent again (a node's retry): acknowledged, not answered, not routed a second time",
                ["CD001C", "negative", "duplicate", "redelivery"], id=1)
    c.routed("KZ", "GE", "cd001c", "id")
    c.hub_send("KZ", "GE", "cd001c.xml", aar)
    c.hub_expect("GE", "CD001C", id="{{id}}", nothing=True)
    c.hub_expect("KZ", "CD906C", correlates="{{id}}", nothing=True, within=1)
    c.hub_expect("KZ", "CD917C", correlates="{{id}}", nothing=True, within=1)
    c.write()

    for tamper, code, what in [
        ("body", "envelope.body-hash", "whose body was changed after it was signed (the body's SHA-256 is not the signed header's)"),
        ("signature", "envelope.signature", "whose signature does not verify"),
    ]:
        c = HubCase(f"envelope-{tamper}-tampered", f"an envelope {what}: CD917C to KZ naming {code}, nothing to GE",
                    ["CD001C", "CD917C", "negative", "signature"], id=1)
        c.hub_send("KZ", "GE", "cd001c.xml", aar, tamper=tamper)
        c.nack("KZ", "CD917C", "id", pointer="/", text="^" + code.replace(".", "\\.") + ":", nothing_at="GE")
        c.write()

    c = HubCase("envelope-signed-by-another-country", "AZ's node delivers an envelope signed by GE as GE: the transport identity is not the sender, CD917C to AZ naming envelope.transport-mismatch, nothing to GE",
                ["CD001C", "CD917C", "negative", "signature"], id=1)
    c.hub_send("AZ", "GE", "cd001c.xml", replace_once(aar, "<messageSender>NTA.KZ<", "<messageSender>NTA.GE<"), signer="GE")
    c.nack("AZ", "CD917C", "id", pointer="/", text="^envelope\\.transport-mismatch:", nothing_at="GE")
    c.write()

    c = HubCase("cd209c-unknown-movement", "a guarantee credit (CD209C) for a movement that never asked to use the guarantee: CD906C with code 14 at the GRN; the ledger changes nothing",
                ["CD209C", "CD906C", "negative", "unknown-mrn", "guarantee"], id=1)
    c.hub_send("KZ", "hub", "cd209c.xml", cd("cd209c"))
    c.nack("KZ", "CD906C", "id", code="14", pointer="/CD209C/Guarantee[1]/GuaranteeReference[1]/GRN")
    c.write()


def main():
    global SUITES
    if len(sys.argv) > 1:
        SUITES = os.path.abspath(sys.argv[1])
    if os.path.isdir(SUITES):
        shutil.rmtree(SUITES)
    journeys()
    rejections()
    more_rejections()
    more_positive()
    cc170c_rules()
    hub()


if __name__ == "__main__":
    main()
