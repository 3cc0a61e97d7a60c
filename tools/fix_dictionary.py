"""Writes docs/fix44-bourse.xml, the QuickFIX data dictionary of exactly what Bourse's FIX 4.4
gateway supports (docs/fix.md): its messages, their fields, the enum values it sends and
accepts, and its custom tags 8013 CancelOnDisconnect and 8014 PendingNewReports. Field names
and types come from the FIX 4.4 dictionary that ships with quickfix-py; everything else is
declared here.

    .venv/bin/python tools/fix_dictionary.py        # rewrite docs/fix44-bourse.xml
    .venv/bin/python tools/fix_dictionary.py --check  # exit 1 if the committed file differs

tests/fix/test_dictionary.py runs --check and compares the enums with the gateway's tables.
"""
from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "fix44-bourse.xml"
STANDARD = Path(sys.executable).resolve().parent.parent / "share" / "quickfix" / "FIX44.xml"
if not STANDARD.exists():
    STANDARD = Path(sys.executable).parent.parent / "share" / "quickfix" / "FIX44.xml"

HEADER = [("BeginString", "Y"), ("BodyLength", "Y"), ("MsgType", "Y"), ("SenderCompID", "Y"), ("TargetCompID", "Y"),
          ("MsgSeqNum", "Y"), ("PossDupFlag", "N"), ("SendingTime", "Y"), ("OrigSendingTime", "N")]
TRAILER = [("CheckSum", "Y")]

# name, msgtype, msgcat, [(field, required)]
MESSAGES = [
    ("Heartbeat", "0", "admin", [("TestReqID", "N")]),
    ("TestRequest", "1", "admin", [("TestReqID", "Y")]),
    ("ResendRequest", "2", "admin", [("BeginSeqNo", "Y"), ("EndSeqNo", "Y")]),
    ("Reject", "3", "admin", [("RefSeqNum", "Y"), ("RefTagID", "N"), ("RefMsgType", "N"), ("SessionRejectReason", "N"),
                              ("Text", "N")]),
    ("SequenceReset", "4", "admin", [("GapFillFlag", "N"), ("NewSeqNo", "Y")]),
    ("Logout", "5", "admin", [("Text", "N")]),
    ("Logon", "A", "admin", [("EncryptMethod", "Y"), ("HeartBtInt", "Y"), ("RawDataLength", "N"), ("RawData", "N"),
                             ("ResetSeqNumFlag", "N"), ("CancelOnDisconnect", "N"), ("PendingNewReports", "N")]),
    ("ExecutionReport", "8", "app", [
        ("OrderID", "Y"), ("ClOrdID", "N"), ("OrigClOrdID", "N"), ("OrdStatusReqID", "N"), ("Account", "N"),
        ("ExecID", "Y"), ("ExecType", "Y"), ("OrdStatus", "Y"), ("OrdRejReason", "N"), ("Symbol", "Y"), ("Side", "Y"),
        ("OrdType", "N"), ("Price", "N"), ("OrderQty", "N"), ("CashOrderQty", "N"), ("TimeInForce", "N"),
        ("StopPx", "N"), ("ExpireTime", "N"),
        ("ExecInst", "N"), ("LastQty", "N"), ("LastPx", "N"), ("LeavesQty", "Y"), ("CumQty", "Y"), ("AvgPx", "Y"),
        ("TransactTime", "N"), ("Commission", "N"), ("CommType", "N"), ("CommCurrency", "N"),
        ("LastLiquidityInd", "N"), ("Text", "N")]),
    ("OrderCancelReject", "9", "app", [
        ("OrderID", "Y"), ("ClOrdID", "Y"), ("OrigClOrdID", "N"), ("Account", "N"), ("OrdStatus", "Y"),
        ("CxlRejResponseTo", "Y"), ("CxlRejReason", "N"), ("TransactTime", "N"), ("Text", "N")]),
    ("NewOrderSingle", "D", "app", [
        ("ClOrdID", "Y"), ("ExecInst", "N"), ("Symbol", "Y"), ("Side", "Y"), ("TransactTime", "Y"), ("OrderQty", "N"),
        ("CashOrderQty", "N"), ("OrdType", "Y"), ("Price", "N"), ("StopPx", "N"), ("TimeInForce", "N"),
        ("ExpireTime", "N")]),
    ("OrderCancelReplaceRequest", "G", "app", [
        ("OrderID", "N"), ("OrigClOrdID", "Y"), ("ClOrdID", "Y"), ("Symbol", "Y"), ("Side", "Y"), ("TransactTime", "Y"),
        ("OrderQty", "Y"), ("OrdType", "Y"), ("Price", "N")]),
    ("OrderCancelRequest", "F", "app", [
        ("OrigClOrdID", "N"), ("OrderID", "N"), ("ClOrdID", "Y"), ("Symbol", "Y"), ("Side", "Y"),
        ("TransactTime", "Y")]),
    ("OrderStatusRequest", "H", "app", [
        ("OrderID", "N"), ("ClOrdID", "N"), ("OrdStatusReqID", "N"), ("Symbol", "Y"), ("Side", "Y")]),
    ("OrderMassCancelRequest", "q", "app", [
        ("ClOrdID", "Y"), ("MassCancelRequestType", "Y"), ("Symbol", "N"), ("TransactTime", "Y")]),
    ("OrderMassCancelReport", "r", "app", [
        ("ClOrdID", "N"), ("OrderID", "Y"), ("MassCancelRequestType", "Y"), ("MassCancelResponse", "Y"),
        ("MassCancelRejectReason", "N"), ("TotalAffectedOrders", "N"), ("Symbol", "N"), ("TransactTime", "N"),
        ("Text", "N")]),
    ("BusinessMessageReject", "j", "app", [
        ("RefSeqNum", "N"), ("RefMsgType", "Y"), ("BusinessRejectReason", "Y"), ("Text", "N")]),
]

# Enum values Bourse sends or accepts (a subset of FIX 4.4's); the descriptions are FIX's.
ENUMS = {
    "Side": ["1", "2"],
    "OrdType": ["1", "2", "3", "4"],
    "TimeInForce": ["1", "3", "4", "6"],  # Day (0) is refused: Bourse has no session end
    "ExecInst": ["6"],
    "ExecType": ["0", "4", "5", "8", "A", "F", "I"],
    "OrdStatus": ["0", "1", "2", "4", "8", "A"],
    "OrdRejReason": ["1", "2", "3", "5", "6", "13", "99"],
    "CxlRejReason": ["0", "1", "99"],
    "CxlRejResponseTo": ["1", "2"],
    "CommType": ["3"],
    "LastLiquidityInd": ["1", "2"],
    "EncryptMethod": ["0"],
    "SessionRejectReason": ["0", "1", "4", "5", "6", "9", "10", "13", "14", "16", "99"],
    "BusinessRejectReason": ["0", "3"],
    "MassCancelRequestType": ["1", "2", "3", "4", "5", "6", "7"],  # 1 and 7 done, the others answered 531=0
    "MassCancelResponse": ["0", "1", "7"],
    "MassCancelRejectReason": ["0", "1", "99"],
}
ENUMS["MsgType"] = [msg_type for _, msg_type, _, _ in MESSAGES]
CUSTOM = [("8013", "CancelOnDisconnect", "BOOLEAN"), ("8014", "PendingNewReports", "BOOLEAN")]


def build() -> str:
    standard = ET.parse(STANDARD).getroot()
    fields = {f.get("name"): f for f in standard.find("fields")}
    used = [name for name, _ in HEADER + TRAILER] + [name for *_, body in MESSAGES for name, _ in body]
    used = list(dict.fromkeys(used))

    root = ET.Element("fix", {"type": "FIX", "major": "4", "minor": "4", "servicepack": "0"})
    for section, items in (("header", HEADER),):
        node = ET.SubElement(root, section)
        for name, required in items:
            ET.SubElement(node, "field", {"name": name, "required": required})
    messages = ET.SubElement(root, "messages")
    for name, msg_type, category, body in MESSAGES:
        node = ET.SubElement(messages, "message", {"name": name, "msgtype": msg_type, "msgcat": category})
        for field, required in body:
            ET.SubElement(node, "field", {"name": field, "required": required})
    trailer = ET.SubElement(root, "trailer")
    for name, required in TRAILER:
        ET.SubElement(trailer, "field", {"name": name, "required": required})
    ET.SubElement(root, "components")
    out_fields = ET.SubElement(root, "fields")
    custom = {name: (number, kind) for number, name, kind in CUSTOM}
    for name in sorted(used, key=lambda n: int(custom[n][0]) if n in custom else int(fields[n].get("number"))):
        if name in custom:
            number, kind = custom[name]
            ET.SubElement(out_fields, "field", {"number": number, "name": name, "type": kind})
            continue
        source = fields[name]
        node = ET.SubElement(out_fields, "field", {"number": source.get("number"), "name": name, "type": source.get("type")})
        if name in ENUMS:
            descriptions = {v.get("enum"): v.get("description") for v in source.findall("value")}
            for value in ENUMS[name]:
                ET.SubElement(node, "value", {"enum": value, "description": descriptions.get(value, "OTHER")})
        else:
            for value in source.findall("value"):  # booleans and the like: keep FIX's values
                ET.SubElement(node, "value", dict(value.attrib))
    ET.indent(root, space=" ")
    comment = ("<!-- Bourse's FIX 4.4 order entry (docs/fix.md): exactly the messages, fields and values the gateway "
               "supports.\n     Generated by tools/fix_dictionary.py; do not edit by hand. -->\n")
    return comment + ET.tostring(root, encoding="unicode") + "\n"


if __name__ == "__main__":
    text = build()
    if "--check" in sys.argv:
        sys.exit(0 if OUT.read_text() == text else 1)
    OUT.write_text(text)
    print(f"wrote {OUT}")
