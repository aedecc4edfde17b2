"""CATS's own message definitions: CC034C/CC037C (no public P5 XSD), the
common domain (urn:carec:cats:common:1) and administration
(urn:carec:cats:admin:1).

Messages are built from P5 data groups (complexTypes of ctypes.xsd) where
P5 has them, and from the CATS types below where it does not. The order of
the top-level groups in the CD messages is CATS's choice (P5 does not publish
the CD XSDs); schemas/README.md explains it.
"""

import copy
import os

from p5model import Elem, Simple
import xsdwriter

COMMON_NS = "urn:carec:cats:common:1"
ADMIN_NS = "urn:carec:cats:admin:1"


def E(name, type_, occ="1", opt="R", cl=""):
    """Element shorthand: occ is "1", "0..1", "1..99", ..."""
    lo, _, hi = occ.partition("..")
    hi = hi or lo
    return Elem(name, type_, lo, hi, cl, opt)


DOCS = {
    "CC034C": "Guarantee query (CATS design on P5 data groups; P5 publishes no XSD).",
    "CC037C": "Guarantee query response (CATS design on P5 data groups; P5 publishes no XSD).",
}

# ------------------------------------------------------------ CC034C/CC037C


def ncts_extra(hdr):
    return {
        # Query: who asks, and for each guarantee its GRN, what is asked and the access code.
        "CC034C": hdr + [
            E("Requester", "RequesterType01"),
            E("GuaranteeReference", "GuaranteeReferenceType06", "1..99"),
        ],
        # Response: per GRN the guarantee type, holder (Owner), exposure
        # (balance + currency) and the rest of what P5's E_GUA_RSP groups carry.
        "CC037C": hdr + [
            E("Requester", "RequesterType02"),
            E("CustomsOfficeOfGuarantee", "CustomsOfficeOfGuaranteeType02", "0..1", "O"),
            E("GuaranteeReference", "GuaranteeReferenceType07", "1..99"),
        ],
    }


# ------------------------------------------------------------ common domain

CD_MESSAGES = [
    "CD001C", "CD006C", "CD010C", "CD018C", "CD050C", "CD094C", "CD095C", "CD118C",
    "CD160C", "CD168C", "CD203C", "CD204C", "CD205C", "CD209C", "CD906C", "CD917C",
]

CA_MESSAGES = ["CA001C", "CA002C", "CA003C", "CA004C", "CA005C", "CA006C"]


def enum(name, values, base="xs:token"):
    return Simple(name, base, [("enumeration", v) for v in values])


COMMON_SIMPLE = {
    "CatsCommonMessageTypes": enum("CatsCommonMessageTypes", CD_MESSAGES),
    "GuaranteeRefusalReasonCode": enum(
        "GuaranteeRefusalReasonCode",
        ["expired", "suspended", "holderNotCovered", "insufficientBalance", "unknownGrn"]),
    "OfficeRoleCode": enum("OfficeRoleCode", ["DEP", "TRA", "EXT", "ENT", "DES"]),
    "ExchangeRateContentType": Simple("ExchangeRateContentType", "xs:decimal", [
        ("totalDigits", "18"), ("fractionDigits", "9"), ("minExclusive", "0"),
        ("pattern", "(0|[1-9]\\d*)(\\.\\d+)?")]),
    "StatusDateAndTimeContentType": Simple("StatusDateAndTimeContentType", "DateTimeType", []),
}

COMMON_COMPLEX = {
    # CD205C: result of a guarantee use request, per GRN.
    "GuaranteeUseResultType": [
        E("sequenceNumber", "SequenceNumberContentType"),
        E("guaranteeType", "GuaranteeTypeContentType", cl="CL286"),
        E("GuaranteeReference", "GuaranteeReferenceUseResultType", "1..99"),
    ],
    "GuaranteeReferenceUseResultType": [
        E("sequenceNumber", "SequenceNumberContentType"),
        E("GRN", "GrnContentType"),
        E("accepted", "Flag"),
        E("refusalReason", "GuaranteeRefusalReasonCode", "0..1", "D"),
        E("amountReserved", "AmountConcernedContentType", "0..1", "D"),
        E("contractCurrency", "CurrencyContentType", "0..1", "D", "CL048"),
        E("exchangeRate", "ExchangeRateContentType", "0..1", "D"),
    ],
    # CD095C: state of the movement at each office that answers.
    "CustomsOfficeStateType": [
        E("sequenceNumber", "SequenceNumberContentType"),
        E("referenceNumber", "ReferenceNumberContentType05", cl="CL141"),
        E("role", "OfficeRoleCode"),
        E("status", "StatusContentType02", cl="CL258"),
        E("statusDateAndTime", "StatusDateAndTimeContentType", "0..1", "O"),
    ],
}

# Top-level order: CD001C/CD050C/CD160C follow CC029C; CD010C follows CC014C;
# the notifications put TransitOperation, then the office of departure, then
# the office that acts; CD906C/CD917C follow CC906C/CC917C.
_OFFICES_DECLARED = lambda transit, exit_: [  # noqa: E731
    E("CustomsOfficeOfDeparture", "CustomsOfficeOfDepartureType03"),
    E("CustomsOfficeOfDestinationDeclared", "CustomsOfficeOfDestinationDeclaredType01"),
    E("CustomsOfficeOfTransitDeclared", transit, "0..9", "D"),
    E("CustomsOfficeOfExitForTransitDeclared", exit_, "0..9", "D"),
]


def _anticipated(transit_op, transit, exit_, holder, consignment):
    return [E("TransitOperation", transit_op)] + _OFFICES_DECLARED(transit, exit_) + [
        E("HolderOfTheTransitProcedure", holder),
        E("ControlResult", "ControlResultType06", "0..1", "O"),
        E("RiskAnalysisIdentification", "RiskAnalysisIdentificationType", "0..1", "O"),
        E("Consignment", consignment),
    ]


CD_BODIES = {
    "CD001C": _anticipated("TransitOperationType27", "CustomsOfficeOfTransitDeclaredType04",
                           "CustomsOfficeOfExitForTransitDeclaredType02",
                           "HolderOfTheTransitProcedureType11", "ConsignmentType10"),
    "CD050C": _anticipated("TransitOperationType34", "CustomsOfficeOfTransitDeclaredType01",
                           "CustomsOfficeOfExitForTransitDeclaredType02",
                           "HolderOfTheTransitProcedureType17", "ConsignmentType15"),
    "CD160C": _anticipated("TransitOperationType40", "CustomsOfficeOfTransitDeclaredType01",
                           "CustomsOfficeOfExitForTransitDeclaredType01",
                           "HolderOfTheTransitProcedureType17", "ConsignmentType18"),
    "CD168C": [
        E("TransitOperation", "TransitOperationType46"),
        E("CustomsOfficeOfDeparture", "CustomsOfficeOfDepartureType03"),
        E("CustomsOfficeOfExitForTransitActual", "CustomsOfficeOfExitForTransitActualType02"),
    ],
    "CD118C": [
        E("TransitOperation", "TransitOperationType46"),
        E("CustomsOfficeOfDeparture", "CustomsOfficeOfDepartureType03"),
        E("CustomsOfficeOfTransitActual", "CustomsOfficeOfTransitActualType03"),
    ],
    "CD006C": [
        E("TransitOperation", "TransitOperationType45"),
        E("CustomsOfficeOfDeparture", "CustomsOfficeOfDepartureType03"),
        E("CustomsOfficeOfDestinationActual", "CustomsOfficeOfDestinationActualType03"),
    ],
    "CD018C": [
        E("TransitOperation", "TransitOperationType30"),
        E("CustomsOfficeOfDeparture", "CustomsOfficeOfDepartureType03"),
        E("CustomsOfficeOfDestinationActual", "CustomsOfficeOfDestinationActualType03"),
        E("ControlResult", "ControlResultType05"),
        E("Consignment", "ConsignmentType13", "0..1", "O"),
    ],
    "CD010C": [
        E("TransitOperation", "TransitOperationType43"),
        E("Invalidation", "InvalidationType03"),
    ] + _OFFICES_DECLARED("CustomsOfficeOfTransitDeclaredType03",
                          "CustomsOfficeOfExitForTransitDeclaredType02"),
    "CD203C": [
        E("TransitOperation", "TransitOperationType48"),
        E("CustomsOfficeOfDeparture", "CustomsOfficeOfDepartureType03"),
        E("CustomsOfficeOfDestinationDeclared", "CustomsOfficeOfDestinationDeclaredType02"),
        E("CountryInvolved", "CountryInvolvedType", "0..99", "O"),
        E("HolderOfTheTransitProcedure", "HolderOfTheTransitProcedureType01"),
        E("Guarantee", "GuaranteeType06", "1..9"),
        E("Consignment", "ConsignmentType21", "0..1", "O"),
    ],
    "CD205C": [
        E("TransitOperation", "TransitOperationType43"),
        E("CustomsOfficeOfDeparture", "CustomsOfficeOfDepartureType03"),
        E("HolderOfTheTransitProcedure", "HolderOfTheTransitProcedureType01"),
        E("Guarantee", "GuaranteeUseResultType", "1..9"),
    ],
    "CD204C": [
        E("TransitOperation", "TransitOperationType42"),
        E("CustomsOfficeOfDeparture", "CustomsOfficeOfDepartureType03"),
        E("Guarantee", "GuaranteeType04", "1..9"),
    ],
    "CD209C": [
        E("TransitOperation", "TransitOperationType45"),
        E("CustomsOfficeOfDeparture", "CustomsOfficeOfDepartureType03"),
        E("Guarantee", "GuaranteeType05", "1..9"),
    ],
    "CD094C": [
        E("TransitOperation", "TransitOperationType37"),
        E("CustomsOfficeOfDeparture", "CustomsOfficeOfDepartureType01"),
        E("CustomsOfficeOfDestination", "CustomsOfficeOfDestinationType01", "0..1", "O"),
        E("CustomsOfficeOfTransit", "CustomsOfficeOfTransitType", "0..9", "O"),
        E("CustomsOfficeOfExitForTransit", "CustomsOfficeOfExitForTransitType", "0..9", "O"),
    ],
    "CD095C": [
        E("TransitOperation", "TransitOperationType43"),
        E("CustomsOfficeOfDeparture", "CustomsOfficeOfDepartureType01"),
        E("CustomsOfficeState", "CustomsOfficeStateType", "1..99"),
    ],
    "CD906C": [
        E("Header", "HeaderType03"),
        E("FunctionalError", "FunctionalErrorType03", "1..9999"),
    ],
    "CD917C": [
        E("Header", "HeaderType04", "0..1", "O"),
        E("XMLError", "XMLErrorType", "1..9999"),
    ],
}

CD_DOCS = {
    "CD001C": "Anticipated arrival record (AAR).",
    "CD050C": "Anticipated transit record (ATR).",
    "CD160C": "Anticipated exit record (AXR).",
    "CD168C": "Notification of exit (transit proceeded).",
    "CD118C": "Notification crossing frontier (entry).",
    "CD006C": "Arrival advice.",
    "CD018C": "Destination control results.",
    "CD010C": "Cancellation (invalidation) notification.",
    "CD203C": "Guarantee use request.",
    "CD205C": "Guarantee use result.",
    "CD204C": "Guarantee use cancellation.",
    "CD209C": "Guarantee credit (write-off release).",
    "CD094C": "Movement status request.",
    "CD095C": "Movement status response: the state at each office.",
    "CD906C": "Functional NACK.",
    "CD917C": "XML NACK.",
}

# ------------------------------------------------------------ administration

ADMIN_SIMPLE = {
    "CatsAdminMessageTypes": enum("CatsAdminMessageTypes", CA_MESSAGES),
    "ContractIdentifierContentType": Simple("ContractIdentifierContentType", "xs:token", [
        ("pattern", "[A-Za-z0-9\\-/.]{1,35}")]),
    "ContractTermsContentType": Simple("ContractTermsContentType", "xs:string", [
        ("minLength", "1"), ("maxLength", "4000")]),
    "ContractStatusCode": enum("ContractStatusCode", ["approved", "refused", "suspended", "expired"]),
    "TraderRoleCode": enum("TraderRoleCode", ["AEO", "authorisedTrader", "insurer"]),
    "RegistrationDecisionCode": enum("RegistrationDecisionCode",
                                     ["approved", "refused", "suspended", "revoked"]),
    "ReasonContentType": Simple("ReasonContentType", "AlphaNumeric_MAX512", []),
    "VersionNumberContentType": Simple("VersionNumberContentType", "xs:integer", [
        ("minInclusive", "1"), ("maxInclusive", "999999999"), ("pattern", "[1-9][0-9]{0,8}")]),
    "OfficeRoleCode": enum("OfficeRoleCode", ["DEP", "TRA", "EXT", "ENT", "DES"]),
    "CatsLanguageCode": enum("CatsLanguageCode", ["en", "ru", "kk", "az", "ka"]),
    "OfficeNameContentType": Simple("OfficeNameContentType", "Alphanumeric_Max70", []),
    "TimeZoneContentType": Simple("TimeZoneContentType", "xs:token", [
        ("pattern", "[A-Za-z]+(/[A-Za-z0-9_+\\-]+){1,2}")]),
    "HsCodePrefixContentType": Simple("HsCodePrefixContentType", "xs:token", [
        ("pattern", "[0-9]{2,10}")]),
    "RestrictionConditionCode": enum("RestrictionConditionCode",
                                     ["prohibited", "licenceRequired", "alwaysInspect"]),
    "ExchangeRateContentType": COMMON_SIMPLE["ExchangeRateContentType"],
    "TraderStatusCode": enum("TraderStatusCode", ["active", "suspended", "revoked"]),
    "ReferenceSectionCode": enum("ReferenceSectionCode", [
        "country", "office", "trader", "insurer", "contract", "restrictedGoods"]),
    "ReferenceKeyContentType": Simple("ReferenceKeyContentType", "xs:token", [
        ("pattern", ".{1,70}")]),
}

ADMIN_COMPLEX = {
    "InsuranceContractType": [
        E("contractIdentifier", "ContractIdentifierContentType"),
        E("GRN", "GrnContentType"),
        E("insurerIdentificationNumber", "IdentificationNumberContentType04"),
        E("Holder", "ContractHolderType", "1..99"),
        E("policyStartDate", "ValidityStartDateContentType"),
        E("policyEndDate", "ValidityEndDateContentType"),
        E("insuredAmount", "GuaranteeAmountContentType"),
        E("currency", "CurrencyContentType", cl="CL048"),
        E("terms", "ContractTermsContentType", "0..1", "O"),
    ],
    "ContractHolderType": [
        E("sequenceNumber", "SequenceNumberContentType"),
        E("identificationNumber", "IdentificationNumberContentType04"),
    ],
    "InsuranceContractStatusType": [
        E("contractIdentifier", "ContractIdentifierContentType"),
        E("GRN", "GrnContentType"),
        E("status", "ContractStatusCode"),
        E("statusDateAndTime", "DecisionDateAndTimeContentType"),
        E("reason", "ReasonContentType", "0..1", "D"),
    ],
    "TraderApplicationType": [
        E("role", "TraderRoleCode"),
        E("identificationNumber", "IdentificationNumberContentType04"),
        E("name", "NameContentType01"),
        E("Address", "AddressType17"),
        E("country", "CountryContentType", cl="CL008"),
        E("validityStartDate", "ValidityStartDateContentType"),
        E("validityEndDate", "ValidityEndDateContentType", "0..1", "O"),
    ],
    "TraderDecisionType": [
        E("role", "TraderRoleCode"),
        E("identificationNumber", "IdentificationNumberContentType04"),
        E("decision", "RegistrationDecisionCode"),
        E("decisionDateAndTime", "DecisionDateAndTimeContentType"),
        E("reason", "ReasonContentType", "0..1", "D"),
        E("validityStartDate", "ValidityStartDateContentType", "0..1", "D"),
        E("validityEndDate", "ValidityEndDateContentType", "0..1", "D"),
    ],
    # previousVersionNumber: the version a change applies to (absent: the whole set, which
    # replaces what the receiver holds).
    "ReferenceDataVersionType": [
        E("versionNumber", "VersionNumberContentType"),
        E("effectiveDateAndTime", "DecisionDateAndTimeContentType"),
        E("previousVersionNumber", "VersionNumberContentType", "0..1", "D"),
    ],
    "CountryDataType": [
        E("sequenceNumber", "SequenceNumberContentType"),
        E("countryCode", "CountryContentType", cl="CL008"),
        E("currency", "CurrencyContentType", cl="CL048"),
        E("timeZone", "TimeZoneContentType"),
        E("Name", "OfficeNameType", "1..5"),
    ],
    # AEOs, authorised traders and approved insurers as registered.
    "TraderDataType": [
        E("sequenceNumber", "SequenceNumberContentType"),
        E("role", "TraderRoleCode"),
        E("identificationNumber", "IdentificationNumberContentType04"),
        E("name", "NameContentType01"),
        E("country", "CountryContentType", cl="CL008"),
        E("status", "TraderStatusCode"),
        E("validityStartDate", "ValidityStartDateContentType", "0..1", "O"),
        E("validityEndDate", "ValidityEndDateContentType", "0..1", "O"),
    ],
    "RegisteredContractType": [
        E("sequenceNumber", "SequenceNumberContentType"),
        E("contractIdentifier", "ContractIdentifierContentType"),
        E("GRN", "GrnContentType"),
        E("insurerIdentificationNumber", "IdentificationNumberContentType04"),
        E("Holder", "ContractHolderType", "1..99"),
        E("policyStartDate", "ValidityStartDateContentType"),
        E("policyEndDate", "ValidityEndDateContentType"),
        E("insuredAmount", "GuaranteeAmountContentType"),
        E("currency", "CurrencyContentType", cl="CL048"),
        E("status", "ContractStatusCode"),
    ],
    "RemovedEntryType": [
        E("sequenceNumber", "SequenceNumberContentType"),
        E("section", "ReferenceSectionCode"),
        E("key", "ReferenceKeyContentType"),
    ],
    "ReferenceDataRequestType": [
        E("versionNumber", "VersionNumberContentType"),
    ],
    "CustomsOfficeDataType": [
        E("sequenceNumber", "SequenceNumberContentType"),
        E("referenceNumber", "ReferenceNumberContentType05"),
        E("countryCode", "CountryContentType", cl="CL008"),
        E("role", "OfficeRoleCode", "1..9"),
        E("Name", "OfficeNameType", "1..5"),
        E("timeZone", "TimeZoneContentType"),
        E("latitude", "LatitudeContentType", "0..1", "O"),
        E("longitude", "LongitudeContentType", "0..1", "O"),
    ],
    "OfficeNameType": [
        E("language", "CatsLanguageCode"),
        E("name", "OfficeNameContentType"),
    ],
    "RestrictedGoodsType": [
        E("sequenceNumber", "SequenceNumberContentType"),
        E("hsCodePrefix", "HsCodePrefixContentType"),
        E("condition", "RestrictionConditionCode"),
    ],
    "ExchangeRateType": [
        E("sequenceNumber", "SequenceNumberContentType"),
        E("currency", "CurrencyContentType", cl="CL048"),
        E("rate", "ExchangeRateContentType"),
        E("validFrom", "ValidityStartDateContentType"),
    ],
}

CA_BODIES = {
    "CA001C": [E("InsuranceContract", "InsuranceContractType")],
    "CA002C": [E("InsuranceContractStatus", "InsuranceContractStatusType")],
    "CA003C": [E("TraderApplication", "TraderApplicationType")],
    "CA004C": [E("TraderDecision", "TraderDecisionType")],
    "CA005C": [
        E("ReferenceData", "ReferenceDataVersionType"),
        E("CustomsOffice", "CustomsOfficeDataType", "0..9999", "O"),
        E("RestrictedGoods", "RestrictedGoodsType", "0..9999", "O"),
        E("ExchangeRate", "ExchangeRateType", "0..999", "O"),
        E("Country", "CountryDataType", "0..99", "O"),
        E("Trader", "TraderDataType", "0..9999", "O"),
        E("InsuranceContract", "RegisteredContractType", "0..9999", "O"),
        E("Removed", "RemovedEntryType", "0..9999", "O"),
    ],
    "CA006C": [E("ReferenceDataRequest", "ReferenceDataRequestType")],
}

CA_DOCS = {
    "CA001C": "Insurance contract registration.",
    "CA002C": "Insurance contract status notification.",
    "CA003C": "Trader registration application (AEO, authorised trader or insurer).",
    "CA004C": "Trader registration decision.",
    "CA005C": "Reference-data update.",
    "CA006C": "Reference-data request: the version a node holds, to get what it lacks.",
}


def _namespace(p5, header, closure, own_simple, own_complex, bodies, docs, msg_types):
    for n in list(own_simple) + list(own_complex):
        assert n not in p5.simple and n not in p5.complex, f"CATS type {n} shadows a P5 type"
    all_complex = dict(p5.complex)
    all_complex.update(own_complex)
    all_simple = dict(p5.simple)
    all_simple.update(own_simple)
    messages = {}
    for m, body in bodies.items():
        messages[m] = (header(p5, msg_types) + copy.deepcopy(body), False, docs.get(m))
    cx, sx = closure([v[0] for v in messages.values()], all_complex, all_simple)
    # The CD/CA types carry no TIS rules: TIS tables exist for CC messages only.
    cx = copy.deepcopy(cx)
    for elems in cx.values():
        for e in elems:
            e.rules = []
            e.rules_by_message = []
    type_docs = {n: d for n, d in docs.items() if n in cx or n in sx}
    return messages, cx, sx, type_docs


def build_common_and_admin(p5, header, closure, repo, version):
    messages, cx, sx, docs = _namespace(p5, header, closure, COMMON_SIMPLE, COMMON_COMPLEX,
                                        CD_BODIES, CD_DOCS, "CatsCommonMessageTypes")
    xsdwriter.write_namespace(os.path.join(repo, "schemas", "cats"), COMMON_NS, version,
                              sx, cx, docs, messages)
    messages, cx, sx, docs = _namespace(p5, header, closure, ADMIN_SIMPLE, ADMIN_COMPLEX,
                                        CA_BODIES, CA_DOCS, "CatsAdminMessageTypes")
    xsdwriter.write_namespace(os.path.join(repo, "schemas", "admin"), ADMIN_NS, version,
                              sx, cx, docs, messages)
