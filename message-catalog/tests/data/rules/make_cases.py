#!/usr/bin/env python3
"""Writes the rules corpus: <message>/<case>.xml and <case>.expect, from the base documents
(base-<message>.xml.in) and one textual edit list per case. Each edit (old, new) must match the
base exactly once. Run from anywhere; then `cargo test -p cats-message-catalog --test rules`
checks the verdicts and that every case is schema-valid (xmllint).

.expect format: line 1 `valid` or `invalid`; for invalid, line 2 the pointer and line 3
`<code> <rule-id>` of one problem the rules stage must report."""

import os
import shutil

HERE = os.path.dirname(os.path.abspath(__file__))
MRN = "26KZ000101000001J0"       # valid check digit
MRN_BAD = "26KZ000101000001J5"   # wrong check digit

BASES = {}


def base(name):
    if name not in BASES:
        with open(os.path.join(HERE, f"base-{name}.xml.in"), encoding="utf-8") as f:
            BASES[name] = f.read()
    return BASES[name]


def cc013c():
    text = base("cc015c").replace("CC015C", "CC013C")
    text = text.replace("<LRN>LRN-2026-000001</LRN>", f"<MRN>{MRN}</MRN>")
    return text.replace("<bindingItinerary>0</bindingItinerary>",
                        "<bindingItinerary>0</bindingItinerary>\n    <amendmentTypeFlag>0</amendmentTypeFlag>")


CC014C = f"""<?xml version="1.0" encoding="UTF-8"?>
<ncts:CC014C xmlns:ncts="http://ncts.dgtaxud.ec">
  <messageSender>KZ.TRADER.0001</messageSender>
  <messageRecipient>NTA.KZ</messageRecipient>
  <preparationDateAndTime>2026-03-16T11:00:00</preparationDateAndTime>
  <messageIdentification>RULES-CC014C-0001</messageIdentification>
  <messageType>CC014C</messageType>
  <TransitOperation>
    <MRN>{MRN}</MRN>
  </TransitOperation>
  <Invalidation>
    <requestDateAndTime>2026-03-16T10:55:00</requestDateAndTime>
    <initiatedByCustoms>0</initiatedByCustoms>
    <justification>Goods will not travel</justification>
  </Invalidation>
  <CustomsOfficeOfDeparture>
    <referenceNumber>KZ000101</referenceNumber>
  </CustomsOfficeOfDeparture>
  <HolderOfTheTransitProcedure>
    <identificationNumber>KZ123456789012</identificationNumber>
  </HolderOfTheTransitProcedure>
</ncts:CC014C>
"""

CC007C = f"""<?xml version="1.0" encoding="UTF-8"?>
<ncts:CC007C xmlns:ncts="http://ncts.dgtaxud.ec">
  <messageSender>GE.TRADER.0001</messageSender>
  <messageRecipient>NTA.GE</messageRecipient>
  <preparationDateAndTime>2026-03-19T08:00:00</preparationDateAndTime>
  <messageIdentification>RULES-CC007C-0001</messageIdentification>
  <messageType>CC007C</messageType>
  <TransitOperation>
    <MRN>{MRN}</MRN>
    <arrivalNotificationDateAndTime>2026-03-19T07:55:00</arrivalNotificationDateAndTime>
    <simplifiedProcedure>0</simplifiedProcedure>
    <incidentFlag>1</incidentFlag>
  </TransitOperation>
  <CustomsOfficeOfDestinationActual>
    <referenceNumber>GE000201</referenceNumber>
  </CustomsOfficeOfDestinationActual>
  <TraderAtDestination>
    <identificationNumber>GE987654321</identificationNumber>
  </TraderAtDestination>
  <Consignment>
    <LocationOfGoods>
      <typeOfLocation>A</typeOfLocation>
      <qualifierOfIdentification>V</qualifierOfIdentification>
      <CustomsOffice>
        <referenceNumber>GE000201</referenceNumber>
      </CustomsOffice>
    </LocationOfGoods>
    <Incident>
      <sequenceNumber>1</sequenceNumber>
      <code>2</code>
      <text>Seal broken on the ferry</text>
      <Location>
        <qualifierOfIdentification>U</qualifierOfIdentification>
        <UNLocode>AZBAK</UNLocode>
        <country>AZ</country>
      </Location>
      <TransportEquipment>
        <sequenceNumber>1</sequenceNumber>
        <containerIdentificationNumber>MSKU1234565</containerIdentificationNumber>
        <numberOfSeals>1</numberOfSeals>
        <Seal>
          <sequenceNumber>1</sequenceNumber>
          <identifier>AZSEAL0001</identifier>
        </Seal>
      </TransportEquipment>
    </Incident>
  </Consignment>
</ncts:CC007C>
"""

CC060C = f"""<?xml version="1.0" encoding="UTF-8"?>
<ncts:CC060C xmlns:ncts="http://ncts.dgtaxud.ec">
  <messageSender>NTA.KZ</messageSender>
  <messageRecipient>KZ.TRADER.0001</messageRecipient>
  <preparationDateAndTime>2026-03-16T10:00:00</preparationDateAndTime>
  <messageIdentification>RULES-CC060C-0001</messageIdentification>
  <messageType>CC060C</messageType>
  <TransitOperation>
    <MRN>{MRN}</MRN>
    <controlNotificationDateAndTime>2026-03-16T10:00:00</controlNotificationDateAndTime>
    <notificationType>0</notificationType>
  </TransitOperation>
  <CustomsOfficeOfDeparture>
    <referenceNumber>KZ000101</referenceNumber>
  </CustomsOfficeOfDeparture>
  <HolderOfTheTransitProcedure>
    <identificationNumber>KZ123456789012</identificationNumber>
  </HolderOfTheTransitProcedure>
  <TypeOfControls>
    <sequenceNumber>1</sequenceNumber>
    <type>10</type>
  </TypeOfControls>
</ncts:CC060C>
"""

CC056C = """<?xml version="1.0" encoding="UTF-8"?>
<ncts:CC056C xmlns:ncts="http://ncts.dgtaxud.ec">
  <messageSender>NTA.KZ</messageSender>
  <messageRecipient>KZ.TRADER.0001</messageRecipient>
  <preparationDateAndTime>2026-03-16T10:00:00</preparationDateAndTime>
  <messageIdentification>RULES-CC056C-0001</messageIdentification>
  <messageType>CC056C</messageType>
  <TransitOperation>
    <LRN>LRN-2026-000001</LRN>
    <businessRejectionType>015</businessRejectionType>
    <rejectionDateAndTime>2026-03-16T10:00:00</rejectionDateAndTime>
    <rejectionCode>12</rejectionCode>
  </TransitOperation>
  <CustomsOfficeOfDeparture>
    <referenceNumber>KZ000101</referenceNumber>
  </CustomsOfficeOfDeparture>
  <HolderOfTheTransitProcedure>
    <identificationNumber>KZ123456789012</identificationNumber>
  </HolderOfTheTransitProcedure>
</ncts:CC056C>
"""

CC170C = """<?xml version="1.0" encoding="UTF-8"?>
<ncts:CC170C xmlns:ncts="http://ncts.dgtaxud.ec">
  <messageSender>KZ.TRADER.0001</messageSender>
  <messageRecipient>NTA.KZ</messageRecipient>
  <preparationDateAndTime>2026-03-16T12:00:00</preparationDateAndTime>
  <messageIdentification>RULES-CC170C-0001</messageIdentification>
  <messageType>CC170C</messageType>
  <TransitOperation>
    <LRN>LRN-2026-000001</LRN>
  </TransitOperation>
  <CustomsOfficeOfDeparture>
    <referenceNumber>KZ000101</referenceNumber>
  </CustomsOfficeOfDeparture>
  <HolderOfTheTransitProcedure>
    <identificationNumber>KZ123456789012</identificationNumber>
  </HolderOfTheTransitProcedure>
  <Consignment>
    <containerIndicator>1</containerIndicator>
    <inlandModeOfTransport>3</inlandModeOfTransport>
    <TransportEquipment>
      <sequenceNumber>1</sequenceNumber>
      <containerIdentificationNumber>MSKU1234565</containerIdentificationNumber>
      <numberOfSeals>1</numberOfSeals>
      <Seal>
        <sequenceNumber>1</sequenceNumber>
        <identifier>KZSEAL0001</identifier>
      </Seal>
      <GoodsReference>
        <sequenceNumber>1</sequenceNumber>
        <declarationGoodsItemNumber>1</declarationGoodsItemNumber>
      </GoodsReference>
    </TransportEquipment>
    <LocationOfGoods>
      <typeOfLocation>A</typeOfLocation>
      <qualifierOfIdentification>V</qualifierOfIdentification>
      <CustomsOffice>
        <referenceNumber>KZ000101</referenceNumber>
      </CustomsOffice>
    </LocationOfGoods>
    <DepartureTransportMeans>
      <sequenceNumber>1</sequenceNumber>
      <typeOfIdentification>30</typeOfIdentification>
      <identificationNumber>123ABC01</identificationNumber>
      <nationality>KZ</nationality>
    </DepartureTransportMeans>
    <PlaceOfLoading>
      <UNLocode>KZAKT</UNLocode>
    </PlaceOfLoading>
    <HouseConsignment>
      <sequenceNumber>1</sequenceNumber>
    </HouseConsignment>
  </Consignment>
</ncts:CC170C>
"""

P = "/CC015C"
HC = f"{P}/Consignment/HouseConsignment[1]"
IT = f"{HC}/ConsignmentItem[1]"
TE = f"{P}/Consignment/TransportEquipment[1]"
TE2 = """    <TransportEquipment>
      <sequenceNumber>2</sequenceNumber>
      <containerIdentificationNumber>MSKU7654321</containerIdentificationNumber>
      <numberOfSeals>1</numberOfSeals>
      <Seal>
        <sequenceNumber>1</sequenceNumber>
        <identifier>KZSEAL0003</identifier>
      </Seal>
    </TransportEquipment>
    <LocationOfGoods>"""
ABTM2 = """    <ActiveBorderTransportMeans>
      <sequenceNumber>2</sequenceNumber>
      <typeOfIdentification>11</typeOfIdentification>
      <identificationNumber>MERCURI 1</identificationNumber>
      <nationality>AZ</nationality>
    </ActiveBorderTransportMeans>
    <PlaceOfLoading>"""
DTM2 = """    <DepartureTransportMeans>
      <sequenceNumber>2</sequenceNumber>
      <typeOfIdentification>40</typeOfIdentification>
      <identificationNumber>KC123</identificationNumber>
      <nationality>KZ</nationality>
    </DepartureTransportMeans>
    <CountryOfRoutingOfConsignment>"""
TRANSIT_OFFICES = """  <CustomsOfficeOfTransitDeclared>
    <sequenceNumber>1</sequenceNumber>
    <referenceNumber>AZ000101</referenceNumber>
    <arrivalDateAndTimeEstimated>2026-03-17T10:00:00</arrivalDateAndTimeEstimated>
  </CustomsOfficeOfTransitDeclared>
  <CustomsOfficeOfTransitDeclared>
    <sequenceNumber>2</sequenceNumber>
    <referenceNumber>GE000101</referenceNumber>
    <arrivalDateAndTimeEstimated>2026-03-18T10:00:00</arrivalDateAndTimeEstimated>
  </CustomsOfficeOfTransitDeclared>
"""
ROUTING = """    <CountryOfRoutingOfConsignment>
      <sequenceNumber>1</sequenceNumber>
      <country>KZ</country>
    </CountryOfRoutingOfConsignment>
    <CountryOfRoutingOfConsignment>
      <sequenceNumber>2</sequenceNumber>
      <country>AZ</country>
    </CountryOfRoutingOfConsignment>
    <CountryOfRoutingOfConsignment>
      <sequenceNumber>3</sequenceNumber>
      <country>GE</country>
    </CountryOfRoutingOfConsignment>
"""
SEALS = """      <Seal>
        <sequenceNumber>1</sequenceNumber>
        <identifier>KZSEAL0001</identifier>
      </Seal>
      <Seal>
        <sequenceNumber>2</sequenceNumber>
        <identifier>KZSEAL0002</identifier>
      </Seal>
"""

HOUSE2 = """    <HouseConsignment>
      <sequenceNumber>2</sequenceNumber>
      <grossMass>1250.5</grossMass>
      <Consignee>
        <identificationNumber>CONSIGNEE</identificationNumber>
      </Consignee>
      <ConsignmentItem>
        <goodsItemNumber>1</goodsItemNumber>
        <declarationGoodsItemNumber>2</declarationGoodsItemNumber>
        <Commodity>
          <descriptionOfGoods>Steel pipe fittings</descriptionOfGoods>
          <CommodityCode>
            <harmonizedSystemSubHeadingCode>730799</harmonizedSystemSubHeadingCode>
          </CommodityCode>
        </Commodity>
        <Packaging>
          <sequenceNumber>1</sequenceNumber>
          <typeOfPackages>CT</typeOfPackages>
          <numberOfPackages>5</numberOfPackages>
          <shippingMarks>CPL/2026/2</shippingMarks>
        </Packaging>
      </ConsignmentItem>
    </HouseConsignment>
"""
HOUSE1_CONSIGNEE = ("      <grossMass>1250.5</grossMass>\n      <ConsignmentItem>",
                    "      <grossMass>1250.5</grossMass>\n      <Consignee>\n        <identificationNumber>GE000000000001</identificationNumber>\n      </Consignee>\n      <ConsignmentItem>")
ITEM2 = """      <ConsignmentItem>
        <goodsItemNumber>2</goodsItemNumber>
        <declarationGoodsItemNumber>2</declarationGoodsItemNumber>
        <referenceNumberUCR>UCR-1</referenceNumberUCR>
        <Commodity>
          <descriptionOfGoods>Steel pipe fittings</descriptionOfGoods>
          <CommodityCode>
            <harmonizedSystemSubHeadingCode>730799</harmonizedSystemSubHeadingCode>
          </CommodityCode>
        </Commodity>
        <Packaging>
          <sequenceNumber>1</sequenceNumber>
          <typeOfPackages>CT</typeOfPackages>
          <numberOfPackages>5</numberOfPackages>
        </Packaging>
      </ConsignmentItem>
    </HouseConsignment>"""

# (message, case, base text, edits, expected) with expected None for a valid case.
CASES = [
    ("cc015c", "valid", base("cc015c"), [], None),
    ("cc015c", "valid-two-houses", base("cc015c"), [
        ("    <grossMass>1250.5</grossMass>\n    <Consignor>", "    <grossMass>2501</grossMass>\n    <Consignor>"),
        ("  </Consignment>\n", HOUSE2.replace("CONSIGNEE", "GE000000000002") + "  </Consignment>\n"),
    ], None),
    ("cc015c", "valid-no-security", base("cc015c"), [
        ("<security>1</security>", "<security>0</security>"),
        ("    <PlaceOfUnloading>\n      <UNLocode>GEPTI</UNLocode>\n    </PlaceOfUnloading>\n", ""),
    ], None),
    ("cc015c", "code-list-declaration-type", base("cc015c"), [
        ("<declarationType>T1</declarationType>", "<declarationType>TX</declarationType>"),
    ], (f"{P}/TransitOperation/declarationType", "12 CL231")),
    ("cc015c", "r0987-transit-office-sequence-gap", base("cc015c"), [
        ("<sequenceNumber>2</sequenceNumber>\n    <referenceNumber>GE000101", "<sequenceNumber>3</sequenceNumber>\n    <referenceNumber>GE000101"),
    ], (f"{P}/CustomsOfficeOfTransitDeclared[2]/sequenceNumber", "14 R0987")),
    ("cc015c", "r0988-goods-item-number-not-1", base("cc015c"), [
        ("<goodsItemNumber>1</goodsItemNumber>", "<goodsItemNumber>2</goodsItemNumber>"),
    ], (f"{IT}/goodsItemNumber", "14 R0988")),
    ("cc015c", "r0007-declaration-goods-item-number-not-1", base("cc015c"), [
        ("<goodsItemNumber>1</goodsItemNumber>\n        <declarationGoodsItemNumber>1</declarationGoodsItemNumber>",
         "<goodsItemNumber>1</goodsItemNumber>\n        <declarationGoodsItemNumber>2</declarationGoodsItemNumber>"),
    ], (f"{IT}/declarationGoodsItemNumber", "14 R0007")),
    ("cc015c", "r0003-transit-office-twice", base("cc015c"), [
        ("<referenceNumber>GE000101</referenceNumber>", "<referenceNumber>AZ000101</referenceNumber>"),
    ], (f"{P}/CustomsOfficeOfTransitDeclared[2]/referenceNumber", "14 R0003")),
    ("cc015c", "r0107-seal-twice", base("cc015c"), [
        ("<identifier>KZSEAL0002</identifier>", "<identifier>KZSEAL0001</identifier>"),
    ], (f"{TE}/Seal[2]/identifier", "14 R0107")),
    ("cc015c", "r0106-number-of-seals-not-last-seal", base("cc015c"), [
        ("<numberOfSeals>2</numberOfSeals>", "<numberOfSeals>3</numberOfSeals>"),
    ], (f"{TE}/numberOfSeals", "14 R0106")),
    ("cc015c", "c0045-type-t-without-item-type", base("cc015c"), [
        ("<declarationType>T1</declarationType>", "<declarationType>T</declarationType>"),
    ], (f"{IT}/declarationType", "13 C0045")),
    ("cc015c", "c0101-reduced-dataset-without-authorisation", base("cc015c"), [
        ("<reducedDatasetIndicator>0</reducedDatasetIndicator>", "<reducedDatasetIndicator>1</reducedDatasetIndicator>"),
        ("  <Authorisation>\n    <sequenceNumber>1</sequenceNumber>\n    <type>C523</type>\n    <referenceNumber>KZ-AUTH-SEALS-0001</referenceNumber>\n  </Authorisation>\n", ""),
    ], (f"{P}/Authorisation", "13 C0101")),
    ("cc015c", "c0411-tir-carnet-without-tir", base("cc015c"), [
        ("<additionalDeclarationType>A</additionalDeclarationType>",
         "<additionalDeclarationType>A</additionalDeclarationType>\n    <TIRCarnetNumber>XA30123456</TIRCarnetNumber>"),
    ], (f"{P}/TransitOperation/TIRCarnetNumber", "15 C0411")),
    ("cc015c", "c0839-limit-date-without-authorised-consignor", base("cc015c"), [
        ("<bindingItinerary>0</bindingItinerary>", "<bindingItinerary>0</bindingItinerary>\n    <limitDate>2026-03-25</limitDate>"),
    ], (f"{P}/TransitOperation/limitDate", "15 C0839")),
    ("cc015c", "r0849-tir-with-reduced-dataset", base("cc015c"), [
        ("<declarationType>T1</declarationType>\n    <additionalDeclarationType>A</additionalDeclarationType>",
         "<declarationType>TIR</declarationType>\n    <additionalDeclarationType>A</additionalDeclarationType>\n    <TIRCarnetNumber>XA30123456</TIRCarnetNumber>"),
        ("<reducedDatasetIndicator>0</reducedDatasetIndicator>", "<reducedDatasetIndicator>1</reducedDatasetIndicator>"),
    ], (f"{P}/TransitOperation/reducedDatasetIndicator", "14 R0849")),
    ("cc015c", "r0859-reduced-dataset-without-c524", base("cc015c"), [
        ("<reducedDatasetIndicator>0</reducedDatasetIndicator>", "<reducedDatasetIndicator>1</reducedDatasetIndicator>"),
    ], (f"{P}/TransitOperation/reducedDatasetIndicator", "14 R0859")),
    ("cc015c", "c0186-transport-charges-without-security", base("cc015c"), [
        ("<security>1</security>", "<security>0</security>"),
        ("    <HouseConsignment>", "    <TransportCharges>\n      <methodOfPayment>A</methodOfPayment>\n    </TransportCharges>\n    <HouseConsignment>"),
    ], (f"{P}/Consignment/TransportCharges", "15 C0186")),
    ("cc015c", "c0191-no-place-of-unloading-with-ens", base("cc015c"), [
        ("    <PlaceOfUnloading>\n      <UNLocode>GEPTI</UNLocode>\n    </PlaceOfUnloading>\n", ""),
    ], (f"{P}/Consignment/PlaceOfUnloading", "13 C0191")),
    ("cc015c", "c0542-consignor-twice", base("cc015c"), [
        ("      <grossMass>1250.5</grossMass>\n      <ConsignmentItem>",
         "      <grossMass>1250.5</grossMass>\n      <Consignor>\n        <identificationNumber>KZ123456789012</identificationNumber>\n      </Consignor>\n      <ConsignmentItem>"),
    ], (f"{HC}/Consignor", "15 C0542")),
    ("cc015c", "c0586-no-routing-with-security", base("cc015c"), [
        (ROUTING, ""),
    ], (f"{P}/Consignment/CountryOfRoutingOfConsignment", "13 C0586")),
    ("cc015c", "c0599-no-border-mode-with-security", base("cc015c"), [
        ("    <modeOfTransportAtTheBorder>1</modeOfTransportAtTheBorder>\n", ""),
    ], (f"{P}/Consignment/modeOfTransportAtTheBorder", "13 C0599")),
    ("cc015c", "c0806-border-means-for-mail", base("cc015c"), [
        ("<modeOfTransportAtTheBorder>1</modeOfTransportAtTheBorder>", "<modeOfTransportAtTheBorder>5</modeOfTransportAtTheBorder>"),
    ], (f"{P}/Consignment/ActiveBorderTransportMeans[1]", "15 C0806")),
    ("cc015c", "c0086-grn-without-access-code", base("cc015c"), [
        ("      <accessCode>1234</accessCode>\n", ""),
    ], (f"{P}/Guarantee[1]/GuaranteeReference[1]/accessCode", "13 C0086")),
    ("cc015c", "c0130-other-reference-for-type-1", base("cc015c"), [
        ("<guaranteeType>1</guaranteeType>", "<guaranteeType>1</guaranteeType>\n    <otherGuaranteeReference>OTHER-1</otherGuaranteeReference>"),
    ], (f"{P}/Guarantee[1]/otherGuaranteeReference", "15 C0130")),
    ("cc015c", "r0318-voucher-grn-too-short", base("cc015c"), [
        ("<guaranteeType>1</guaranteeType>", "<guaranteeType>4</guaranteeType>"),
    ], (f"{P}/Guarantee[1]/GuaranteeReference[1]/GRN", "14 R0318")),
    ("cc015c", "c0055-container-number-without-containers", base("cc015c"), [
        ("<containerIndicator>1</containerIndicator>", "<containerIndicator>0</containerIndicator>"),
    ], (f"{TE}/containerIdentificationNumber", "15 C0055")),
    ("cc015c", "c0569-seals-listed-for-zero-seals", base("cc015c"), [
        ("<numberOfSeals>2</numberOfSeals>", "<numberOfSeals>0</numberOfSeals>"),
    ], (f"{TE}/Seal[1]", "15 C0569")),
    ("cc015c", "c0670-second-equipment-without-goods-reference", base("cc015c"), [
        ("    <LocationOfGoods>", TE2),
    ], (f"{P}/Consignment/TransportEquipment[2]/GoodsReference", "13 C0670")),
    ("cc015c", "c0822-no-container-indicator", base("cc015c"), [
        ("    <containerIndicator>1</containerIndicator>\n", ""),
    ], (f"{P}/Consignment/containerIndicator", "13 C0822")),
    ("cc015c", "c0823-equipment-without-container-indicator", base("cc015c"), [
        ("<additionalDeclarationType>A</additionalDeclarationType>", "<additionalDeclarationType>D</additionalDeclarationType>"),
        ("    <containerIndicator>1</containerIndicator>\n", ""),
    ], (f"{TE}", "15 C0823")),
    ("cc015c", "c0826-departure-means-for-mail", base("cc015c"), [
        ("<inlandModeOfTransport>3</inlandModeOfTransport>", "<inlandModeOfTransport>5</inlandModeOfTransport>"),
    ], (f"{P}/Consignment/DepartureTransportMeans[1]", "15 C0826")),
    ("cc015c", "r0448-no-seals-without-container", base("cc015c"), [
        ("<containerIndicator>1</containerIndicator>", "<containerIndicator>0</containerIndicator>"),
        ("      <containerIdentificationNumber>MSKU1234565</containerIdentificationNumber>\n", ""),
        ("<numberOfSeals>2</numberOfSeals>", "<numberOfSeals>0</numberOfSeals>"),
        (SEALS, ""),
    ], (f"{TE}/numberOfSeals", "14 R0448")),
    ("cc015c", "r0474-road-first-means-not-vehicle", base("cc015c"), [
        ("<typeOfIdentification>30</typeOfIdentification>", "<typeOfIdentification>31</typeOfIdentification>"),
    ], (f"{P}/Consignment/DepartureTransportMeans[1]/typeOfIdentification", "14 R0474")),
    ("cc015c", "r0789-two-border-means-without-transit", base("cc015c"), [
        (TRANSIT_OFFICES, ""),
        ("    <PlaceOfLoading>", ABTM2),
    ], (f"{P}/Consignment/ActiveBorderTransportMeans[2]", "14 R0789")),
    ("cc015c", "r0855-two-departure-means-by-air", base("cc015c"), [
        ("<inlandModeOfTransport>3</inlandModeOfTransport>", "<inlandModeOfTransport>4</inlandModeOfTransport>"),
        ("    <CountryOfRoutingOfConsignment>\n      <sequenceNumber>1</sequenceNumber>", DTM2 + "\n      <sequenceNumber>1</sequenceNumber>"),
    ], (f"{P}/Consignment/DepartureTransportMeans[2]", "14 R0855")),
    ("cc015c", "c0387-place-of-loading-without-location", base("cc015c"), [
        ("<PlaceOfLoading>\n      <UNLocode>KZAKT</UNLocode>", "<PlaceOfLoading>\n      <country>KZ</country>"),
    ], (f"{P}/Consignment/PlaceOfLoading/location", "13 C0387")),
    ("cc015c", "c0394-office-location-with-unlocode", base("cc015c"), [
        ("<qualifierOfIdentification>V</qualifierOfIdentification>", "<qualifierOfIdentification>V</qualifierOfIdentification>\n      <UNLocode>KZAKT</UNLocode>"),
    ], (f"{P}/Consignment/LocationOfGoods/UNLocode", "15 C0394")),
    ("cc015c", "c0403-no-place-of-loading", base("cc015c"), [
        ("    <PlaceOfLoading>\n      <UNLocode>KZAKT</UNLocode>\n    </PlaceOfLoading>\n", ""),
    ], (f"{P}/Consignment/PlaceOfLoading", "13 C0403")),
    ("cc015c", "c0337-transport-charges-twice", base("cc015c"), [
        ("    <HouseConsignment>", "    <TransportCharges>\n      <methodOfPayment>A</methodOfPayment>\n    </TransportCharges>\n    <HouseConsignment>"),
        ("      <grossMass>1250.5</grossMass>\n      <ConsignmentItem>",
         "      <grossMass>1250.5</grossMass>\n      <TransportCharges>\n        <methodOfPayment>A</methodOfPayment>\n      </TransportCharges>\n      <ConsignmentItem>"),
    ], (f"{HC}/TransportCharges", "15 C0337")),
    ("cc015c", "c0343-destination-twice", base("cc015c"), [
        ("      <sequenceNumber>1</sequenceNumber>\n      <grossMass>1250.5</grossMass>",
         "      <sequenceNumber>1</sequenceNumber>\n      <countryOfDestination>GE</countryOfDestination>\n      <grossMass>1250.5</grossMass>"),
    ], (f"{HC}/countryOfDestination", "15 C0343")),
    ("cc015c", "c0909-dispatch-twice", base("cc015c"), [
        ("<declarationGoodsItemNumber>1</declarationGoodsItemNumber>\n        <Commodity>",
         "<declarationGoodsItemNumber>1</declarationGoodsItemNumber>\n        <countryOfDispatch>KZ</countryOfDispatch>\n        <Commodity>"),
    ], (f"{IT}/countryOfDispatch", "15 C0909")),
    ("cc015c", "r0223-net-above-gross", base("cc015c"), [
        ("<netMass>1200</netMass>", "<netMass>1300</netMass>"),
    ], (f"{IT}/Commodity/GoodsMeasure/netMass", "14 R0223")),
    ("cc015c", "r0983-house-lighter-than-items", base("cc015c"), [
        ("      <grossMass>1250.5</grossMass>\n      <ConsignmentItem>", "      <grossMass>1000</grossMass>\n      <ConsignmentItem>"),
    ], (f"{HC}/grossMass", "14 R0983")),
    ("cc015c", "r0994-consignment-lighter-than-houses", base("cc015c"), [
        ("    <grossMass>1250.5</grossMass>\n    <Consignor>", "    <grossMass>1000</grossMass>\n    <Consignor>"),
    ], (f"{P}/Consignment/grossMass", "14 R0994")),
    ("cc015c", "r3061-item-information-30600", base("cc015c"), [
        ("          <shippingMarks>CPL/2026/1</shippingMarks>\n        </Packaging>",
         "          <shippingMarks>CPL/2026/1</shippingMarks>\n        </Packaging>\n        <AdditionalInformation>\n          <sequenceNumber>1</sequenceNumber>\n          <code>30600</code>\n        </AdditionalInformation>"),
    ], (f"{IT}/AdditionalInformation[1]/code", "14 R3061")),
    ("cc015c", "r0005-arrival-before-preparation", base("cc015c"), [
        ("2026-03-17T10:00:00", "2026-03-16T09:00:00"),
    ], (f"{P}/CustomsOfficeOfTransitDeclared[1]/arrivalDateAndTimeEstimated", "14 R0005")),
    ("cc015c", "r0103-exit-office-is-transit-office", base("cc015c"), [
        ("<referenceNumber>AZ000201</referenceNumber>", "<referenceNumber>GE000101</referenceNumber>"),
    ], (f"{P}/CustomsOfficeOfExitForTransitDeclared[1]/referenceNumber", "14 R0103")),
    ("cc015c", "c0904-tir-holder-id-without-tir", base("cc015c"), [
        ("<identificationNumber>KZ123456789012</identificationNumber>\n    <name>Caspian Pipes LLP</name>",
         "<identificationNumber>KZ123456789012</identificationNumber>\n    <TIRHolderIdentificationNumber>KZ/001/0001</TIRHolderIdentificationNumber>\n    <name>Caspian Pipes LLP</name>"),
    ], (f"{P}/HolderOfTheTransitProcedure/TIRHolderIdentificationNumber", "15 C0904")),
    ("cc015c", "r0350-reduced-dataset-by-air-without-c524", base("cc015c"), [
        ("<reducedDatasetIndicator>0</reducedDatasetIndicator>", "<reducedDatasetIndicator>1</reducedDatasetIndicator>"),
        ("<inlandModeOfTransport>3</inlandModeOfTransport>", "<inlandModeOfTransport>4</inlandModeOfTransport>"),
        ("<typeOfIdentification>30</typeOfIdentification>", "<typeOfIdentification>40</typeOfIdentification>"),
    ], (f"{P}/TransitOperation/reducedDatasetIndicator", "14 R0350")),
    ("cc015c", "c0531-air-border-without-conveyance-reference", base("cc015c"), [
        ("<modeOfTransportAtTheBorder>1</modeOfTransportAtTheBorder>", "<modeOfTransportAtTheBorder>4</modeOfTransportAtTheBorder>"),
    ], (f"{P}/Consignment/ActiveBorderTransportMeans[1]/conveyanceReferenceNumber", "13 C0531")),
    ("cc015c", "c0671-additional-identifier-without-operator", base("cc015c"), [
        ("<qualifierOfIdentification>V</qualifierOfIdentification>", "<qualifierOfIdentification>V</qualifierOfIdentification>\n      <additionalIdentifier>A1</additionalIdentifier>"),
    ], (f"{P}/Consignment/LocationOfGoods/additionalIdentifier", "15 C0671")),
    ("cc015c", "c0153-no-commodity-code", base("cc015c"), [
        ("          <CommodityCode>\n            <harmonizedSystemSubHeadingCode>730419</harmonizedSystemSubHeadingCode>\n          </CommodityCode>\n", ""),
    ], (f"{IT}/Commodity/CommodityCode", "13 C0153")),
    ("cc015c", "c0837-net-mass-in-reduced-dataset", base("cc015c"), [
        ("<reducedDatasetIndicator>0</reducedDatasetIndicator>", "<reducedDatasetIndicator>1</reducedDatasetIndicator>"),
    ], (f"{IT}/Commodity/GoodsMeasure/netMass", "15 C0837")),
    ("cc015c", "c0298-quantity-without-unit", base("cc015c"), [
        ("          <shippingMarks>CPL/2026/1</shippingMarks>\n        </Packaging>",
         "          <shippingMarks>CPL/2026/1</shippingMarks>\n        </Packaging>\n        <PreviousDocument>\n          <sequenceNumber>1</sequenceNumber>\n          <type>N741</type>\n          <referenceNumber>KZ-2026-0042</referenceNumber>\n          <quantity>10</quantity>\n        </PreviousDocument>"),
    ], (f"{IT}/PreviousDocument[1]/measurementUnitAndQualifier", "13 C0298")),
    ("cc015c", "r0076-lowercase-imo-number", base("cc015c"), [
        ("<typeOfIdentification>11</typeOfIdentification>\n      <identificationNumber>PROFESSOR GUL</identificationNumber>",
         "<typeOfIdentification>10</typeOfIdentification>\n      <identificationNumber>imo9123456</identificationNumber>"),
    ], (f"{P}/Consignment/ActiveBorderTransportMeans[1]/identificationNumber", "14 R0076")),
    ("cc015c", "r0473-lowercase-plate", base("cc015c"), [
        ("<identificationNumber>123ABC01</identificationNumber>", "<identificationNumber>123abc01</identificationNumber>"),
    ], (f"{P}/Consignment/DepartureTransportMeans[1]/identificationNumber", "14 R0473")),
    ("cc015c", "r0472-rail-with-road-vehicle", base("cc015c"), [
        ("<inlandModeOfTransport>3</inlandModeOfTransport>", "<inlandModeOfTransport>2</inlandModeOfTransport>"),
    ], (f"{P}/Consignment/DepartureTransportMeans[1]/typeOfIdentification", "14 R0472")),
    ("cc015c", "r0476-second-road-means-not-trailer", base("cc015c"), [
        ("    <CountryOfRoutingOfConsignment>\n      <sequenceNumber>1</sequenceNumber>",
         DTM2.replace("<typeOfIdentification>40</typeOfIdentification>", "<typeOfIdentification>30</typeOfIdentification>").replace("KC123", "456DEF02") + "\n      <sequenceNumber>1</sequenceNumber>"),
    ], (f"{P}/Consignment/DepartureTransportMeans[2]/typeOfIdentification", "14 R0476")),
    ("cc007c", "c0460-unlocode-location-with-gnss", CC007C, [
        ("<country>AZ</country>\n      </Location>",
         "<country>AZ</country>\n        <GNSS>\n          <latitude>40.35000</latitude>\n          <longitude>49.83000</longitude>\n        </GNSS>\n      </Location>"),
    ], ("/CC007C/Consignment/Incident[1]/Location/GNSS", "15 C0460")),
    ("cc015c", "c0502-ucr-twice", base("cc015c"), [
        ("    <grossMass>1250.5</grossMass>\n    <Consignor>", "    <grossMass>1250.5</grossMass>\n    <referenceNumberUCR>UCR-1</referenceNumberUCR>\n    <Consignor>"),
        ("      <grossMass>1250.5</grossMass>\n      <ConsignmentItem>", "      <grossMass>1250.5</grossMass>\n      <referenceNumberUCR>UCR-1</referenceNumberUCR>\n      <ConsignmentItem>"),
    ], (f"{HC}/referenceNumberUCR", "15 C0502")),
    ("cc015c", "r0506-same-consignee-in-every-house", base("cc015c"), [
        ("    <grossMass>1250.5</grossMass>\n    <Consignor>", "    <grossMass>2501</grossMass>\n    <Consignor>"),
        ("  </Consignment>\n", HOUSE2.replace("CONSIGNEE", "GE000000000001") + "  </Consignment>\n"),
        HOUSE1_CONSIGNEE,
    ], (f"{P}/Consignment/HouseConsignment[2]/Consignee", "14 R0506")),
    ("cc015c", "r0507-same-ucr-on-every-item", base("cc015c"), [
        ("<declarationGoodsItemNumber>1</declarationGoodsItemNumber>\n        <Commodity>",
         "<declarationGoodsItemNumber>1</declarationGoodsItemNumber>\n        <referenceNumberUCR>UCR-1</referenceNumberUCR>\n        <Commodity>"),
        ("      </ConsignmentItem>\n    </HouseConsignment>", "      </ConsignmentItem>\n" + ITEM2),
    ], (f"{HC}/ConsignmentItem[2]/referenceNumberUCR", "14 R0507")),
    ("cc015c", "r0219-zero-and-non-zero-packages", base("cc015c"), [
        ("          <shippingMarks>CPL/2026/1</shippingMarks>\n        </Packaging>",
         "          <shippingMarks>CPL/2026/1</shippingMarks>\n        </Packaging>\n        <Packaging>\n          <sequenceNumber>2</sequenceNumber>\n          <typeOfPackages>CT</typeOfPackages>\n          <numberOfPackages>0</numberOfPackages>\n          <shippingMarks>CPL/2026/1</shippingMarks>\n        </Packaging>"),
    ], (f"{IT}/Packaging[1]/numberOfPackages", "14 R0219")),
    ("cc015c", "r0221-zero-packages-with-mass", base("cc015c"), [
        ("<numberOfPackages>10</numberOfPackages>", "<numberOfPackages>0</numberOfPackages>"),
    ], (f"{IT}/Commodity/GoodsMeasure/grossMass", "14 R0221")),
    ("cc015c", "r0906-andorra-without-andorran-transit", base("cc015c"), [
        ("<referenceNumber>GE000201</referenceNumber>\n  </CustomsOfficeOfDestinationDeclared>", "<referenceNumber>AD000201</referenceNumber>\n  </CustomsOfficeOfDestinationDeclared>"),
    ], (f"{P}/CustomsOfficeOfTransitDeclared[1]/referenceNumber", "14 R0906")),
    # CC013C
    ("cc013c", "valid", cc013c(), [], None),
    ("cc013c", "c0467-both-mrn-and-lrn", cc013c(), [
        (f"<MRN>{MRN}</MRN>", f"<LRN>LRN-2026-000001</LRN>\n    <MRN>{MRN}</MRN>"),
    ], ("/CC013C/TransitOperation/LRN", "15 C0467")),
    ("cc013c", "c0467-neither-mrn-nor-lrn", cc013c(), [
        (f"    <MRN>{MRN}</MRN>\n", ""),
    ], ("/CC013C/TransitOperation/MRN", "13 C0467")),
    ("cc013c", "r0028-mrn-check-digit", cc013c(), [
        (f"<MRN>{MRN}</MRN>", f"<MRN>{MRN_BAD}</MRN>"),
    ], ("/CC013C/TransitOperation/MRN", "93 R0028")),
    # CC014C
    ("cc014c", "valid", CC014C, [], None),
    ("cc014c", "valid-initiated-by-customs", CC014C, [
        ("<messageSender>KZ.TRADER.0001</messageSender>\n  <messageRecipient>NTA.KZ</messageRecipient>",
         "<messageSender>NTA.KZ</messageSender>\n  <messageRecipient>KZ.TRADER.0001</messageRecipient>"),
        ("    <requestDateAndTime>2026-03-16T10:55:00</requestDateAndTime>\n",
         "    <decisionDateAndTime>2026-03-16T10:58:00</decisionDateAndTime>\n    <decision>1</decision>\n"),
        ("<initiatedByCustoms>0</initiatedByCustoms>", "<initiatedByCustoms>1</initiatedByCustoms>"),
    ], None),
    ("cc014c", "c0128-decision-in-a-request", CC014C, [
        ("<initiatedByCustoms>0</initiatedByCustoms>", "<decision>1</decision>\n    <initiatedByCustoms>0</initiatedByCustoms>"),
    ], ("/CC014C/Invalidation/decision", "15 C0128")),
    ("cc014c", "c0129-no-request-date", CC014C, [
        ("    <requestDateAndTime>2026-03-16T10:55:00</requestDateAndTime>\n", ""),
    ], ("/CC014C/Invalidation/requestDateAndTime", "13 C0129")),
    ("cc014c", "c0137-no-justification", CC014C, [
        ("    <justification>Goods will not travel</justification>\n", ""),
    ], ("/CC014C/Invalidation/justification", "13 C0137")),
    ("cc014c", "c0870-decision-date-in-a-request", CC014C, [
        ("<requestDateAndTime>2026-03-16T10:55:00</requestDateAndTime>",
         "<requestDateAndTime>2026-03-16T10:55:00</requestDateAndTime>\n    <decisionDateAndTime>2026-03-16T10:58:00</decisionDateAndTime>"),
    ], ("/CC014C/Invalidation/decisionDateAndTime", "15 C0870")),
    ("cc014c", "c0467-both-mrn-and-lrn", CC014C, [
        (f"<MRN>{MRN}</MRN>", f"<LRN>LRN-2026-000001</LRN>\n    <MRN>{MRN}</MRN>"),
    ], ("/CC014C/TransitOperation/LRN", "15 C0467")),
    # CC007C
    ("cc007c", "valid", CC007C, [], None),
    ("cc007c", "r0028-mrn-check-digit", CC007C, [
        (f"<MRN>{MRN}</MRN>", f"<MRN>{MRN_BAD}</MRN>"),
    ], ("/CC007C/TransitOperation/MRN", "93 R0028")),
    ("cc007c", "c0102-simplified-without-authorisation", CC007C, [
        ("<simplifiedProcedure>0</simplifiedProcedure>", "<simplifiedProcedure>1</simplifiedProcedure>"),
    ], ("/CC007C/Authorisation", "13 C0102")),
    ("cc007c", "c0240-equipment-for-deviation", CC007C, [
        ("<code>2</code>", "<code>1</code>"),
    ], ("/CC007C/Consignment/Incident[1]/TransportEquipment[1]", "15 C0240")),
    ("cc007c", "c0396-broken-seal-without-seal-count", CC007C, [
        ("        <numberOfSeals>1</numberOfSeals>\n        <Seal>\n          <sequenceNumber>1</sequenceNumber>\n          <identifier>AZSEAL0001</identifier>\n        </Seal>\n", ""),
    ], ("/CC007C/Consignment/Incident[1]/TransportEquipment[1]/numberOfSeals", "13 C0396")),
    ("cc007c", "c0040-transhipped-into-containers-without-equipment", CC007C, [
        ("<code>2</code>", "<code>3</code>"),
        ("      <TransportEquipment>\n        <sequenceNumber>1</sequenceNumber>\n        <containerIdentificationNumber>MSKU1234565</containerIdentificationNumber>\n        <numberOfSeals>1</numberOfSeals>\n        <Seal>\n          <sequenceNumber>1</sequenceNumber>\n          <identifier>AZSEAL0001</identifier>\n        </Seal>\n      </TransportEquipment>\n",
         "      <Transhipment>\n        <containerIndicator>1</containerIndicator>\n        <TransportMeans>\n          <typeOfIdentification>30</typeOfIdentification>\n          <identificationNumber>99AZ999</identificationNumber>\n          <nationality>AZ</nationality>\n        </TransportMeans>\n      </Transhipment>\n"),
    ], ("/CC007C/Consignment/Incident[1]/TransportEquipment", "13 C0040")),
    ("cc007c", "c0820-transhipped-container-without-number", CC007C, [
        ("<code>2</code>", "<code>3</code>"),
        ("        <containerIdentificationNumber>MSKU1234565</containerIdentificationNumber>\n", ""),
        ("      </TransportEquipment>\n",
         "      </TransportEquipment>\n      <Transhipment>\n        <containerIndicator>1</containerIndicator>\n        <TransportMeans>\n          <typeOfIdentification>30</typeOfIdentification>\n          <identificationNumber>99AZ999</identificationNumber>\n          <nationality>AZ</nationality>\n        </TransportMeans>\n      </Transhipment>\n"),
    ], ("/CC007C/Consignment/Incident[1]/TransportEquipment[1]/containerIdentificationNumber", "13 C0820")),
    # CC060C
    ("cc060c", "valid", CC060C, [], None),
    ("cc060c", "c0451-control-50-without-text", CC060C, [
        ("<type>10</type>", "<type>50</type>"),
    ], ("/CC060C/TypeOfControls[1]/text", "13 C0451")),
    ("cc060c", "c0452-controls-for-documents-only", CC060C, [
        ("<notificationType>0</notificationType>", "<notificationType>2</notificationType>"),
    ], ("/CC060C/TypeOfControls[1]", "15 C0452")),
    ("cc060c", "c0455-documents-requested-but-none-listed", CC060C, [
        ("<notificationType>0</notificationType>", "<notificationType>1</notificationType>"),
    ], ("/CC060C/RequestedDocument", "13 C0455")),
    ("cc060c", "c0685-both-mrn-and-lrn", CC060C, [
        (f"<MRN>{MRN}</MRN>", f"<LRN>LRN-2026-000001</LRN>\n    <MRN>{MRN}</MRN>"),
    ], ("/CC060C/TransitOperation/LRN", "15 C0685")),
    # CC170C
    ("cc170c", "valid", CC170C, [], None),
    ("cc170c", "c0404-no-place-of-loading", CC170C, [
        ("    <PlaceOfLoading>\n      <UNLocode>KZAKT</UNLocode>\n    </PlaceOfLoading>\n", ""),
    ], ("/CC170C/Consignment/PlaceOfLoading", "13 C0404")),
    ("cc170c", "r0473-lowercase-plate", CC170C, [
        ("<identificationNumber>123ABC01</identificationNumber>", "<identificationNumber>123abc01</identificationNumber>"),
    ], ("/CC170C/Consignment/DepartureTransportMeans[1]/identificationNumber", "14 R0473")),
    # CC056C
    ("cc056c", "valid", CC056C, [], None),
    ("cc056c", "c0492-code-4-without-reason", CC056C, [
        ("<rejectionCode>12</rejectionCode>", "<rejectionCode>4</rejectionCode>"),
    ], ("/CC056C/TransitOperation/rejectionReason", "13 C0492")),
]


def main():
    for msg in {c[0] for c in CASES}:
        shutil.rmtree(os.path.join(HERE, msg), ignore_errors=True)
    for msg, case, text, edits, expected in CASES:
        for old, new in edits:
            n = text.count(old)
            if n != 1:
                raise SystemExit(f"{msg}/{case}: edit matches {n} times: {old[:60]!r}")
            text = text.replace(old, new)
        d = os.path.join(HERE, msg)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"{case}.xml"), "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        with open(os.path.join(d, f"{case}.expect"), "w", encoding="utf-8", newline="\n") as f:
            if expected is None:
                f.write("valid\n")
            else:
                f.write(f"invalid\n{expected[0]}\n{expected[1]}\n")
    print(f"{len(CASES)} cases")


if __name__ == "__main__":
    main()
