#!/usr/bin/env python3
"""Writes the standard suites (suites/<suite>/<case>/case.toml + XML) from the message
templates in messages/ (r<N>-<type>.xml, one per route of the demo: r0 Aktau -> Alat -> Red
Bridge -> Poti, r1 Aktau -> Alat, r2 Alat -> Red Bridge -> Tbilisi, r3 Poti -> Alat -> Almaty,
r4 Tbilisi -> Poti).

The suites are data: each case directory is complete in itself (its manifest and the messages
it sends), so a national team can read, copy and change one without this script. Re-run it
after changing a template: python3 conformance-tests/make_suites.py
"""

import os
import re
import shutil

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
                elif isinstance(v, (int, float)) and not isinstance(v, bool):
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
    case.steps.append({"do": "hub", "assert": [eq("#/state", "control_results_sent")] + hub_journal(route)})
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


def main():
    if os.path.isdir(SUITES):
        shutil.rmtree(SUITES)
    journeys()
    rejections()
    more_rejections()
    more_positive()
    cc170c_rules()


if __name__ == "__main__":
    main()
