"""docs/fix44-bourse.xml, the QuickFIX data dictionary of what the gateway supports: current,
loadable by QuickFIX, equal to the gateway's own value tables, and strict enough that a value
Bourse does not send fails validation. The QuickFIX tests (test_quickfix.py) run with it and
with docs/fix.md's initiator configuration, which QuickFIX loads as written."""
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
import quickfix as fix

from tests.fix.support import BOURSE_DICTIONARY, ROOT_DIR, documented_initiator_config, initiator_config
from trading.fix import reports
from trading.fix.codec import encode

DD = fix.DataDictionary(str(BOURSE_DICTIONARY))
HEADER = [(49, "BOURSE"), (56, "bk_x"), (34, 2), (52, "20261124-18:00:00.000")]
ORDER = {"order_id": "1042", "client_order_id": "mm-7f3a", "market": "BTC-USD", "side": "buy", "type": "limit",
         "time_in_force": "gtc", "post_only": True, "price": "100.00", "quantity": "0.5000", "quote_quantity": None,
         "filled_quantity": "0.2000", "average_price": "99.99", "status": "partially_filled"}


def validate(msg_type, fields):
    message = fix.Message(encode(msg_type, HEADER, fields).decode("latin-1"), DD, False)
    DD.validate(message)


def values(name):
    number = {"Side": 54, "OrdType": 40, "TimeInForce": 59, "OrdStatus": 39, "OrdRejReason": 103, "ExecType": 150}[name]
    return {v for v in [str(i) for i in range(200)] + [chr(c) for c in range(65, 91)] if DD.isFieldValue(number, v)}


def test_committed_dictionary_is_current():
    result = subprocess.run([sys.executable, "tools/fix_dictionary.py", "--check"], cwd=ROOT_DIR)
    assert result.returncode == 0, "stale: run `.venv/bin/python tools/fix_dictionary.py` and commit the result"


def test_enums_are_exactly_the_gateways_tables():
    assert values("Side") == set(reports.SIDE.values())
    assert values("OrdType") == set(reports.ORD_TYPE.values())
    assert values("TimeInForce") == set(reports.TIF_FROM_FIX)
    assert values("OrdStatus") == set(reports.ORD_STATUS.values())
    assert values("OrdRejReason") == {*reports.ORD_REJ_REASON.values(), "99"}
    assert values("ExecType") == {reports.EXEC_NEW, reports.EXEC_CANCELED, reports.EXEC_REJECTED,
                                  reports.EXEC_TRADE, reports.EXEC_STATUS, reports.EXEC_REPLACED,
                                  reports.EXEC_PENDING_NEW}
    fields = ET.parse(BOURSE_DICTIONARY).getroot().find("fields")
    for number, name in ((8013, "CancelOnDisconnect"), (8014, "PendingNewReports")):
        custom = fields.find(f"field[@number='{number}']")
        assert DD.isField(number) and custom.get("name") == name and custom.get("type") == "BOOLEAN"


def test_the_gateways_reports_validate():
    validate("8", reports.status_report(ORDER, account_id=7, req_id="q1"))
    validate("8", reports.pending_new_report({**ORDER, "status": "pending", "filled_quantity": "0",
                                              "average_price": None}, account_id=7))
    validate("8", reports.rejected_report(account_id=7, cl_ord_id="c1", symbol="BTC-USD", side="1",
                                          code="insufficient_balance", message="Needs 50 USD."))
    validate("9", reports.cancel_reject(account_id=7, cl_ord_id="x1", orig_cl_ord_id="c1", order=ORDER, reason="0",
                                        code="order_closed", message="closed"))


@pytest.mark.parametrize("msg_type, fields, tag", [
    ("8", [(37, "1"), (17, "E1"), (150, "Z"), (39, "0"), (55, "BTC-USD"), (54, "1"), (151, "0"), (14, "0"), (6, "0")], 150),
    ("8", [(37, "1"), (17, "E1"), (150, "0"), (39, "0"), (55, "BTC-USD"), (54, "5"), (151, "0"), (14, "0"), (6, "0")], 54),
    ("D", [(11, "c1"), (55, "BTC-USD"), (54, "1"), (60, "20261124-18:00:00.000"), (40, "P")], 40),  # pegged: no
    ("AE", [(571, "r1")], 35),  # a message type Bourse does not support
])
def test_values_bourse_does_not_support_fail_validation(msg_type, fields, tag):
    with pytest.raises(fix.FIXException) as refused:
        validate(msg_type, fields)
    assert tag == 35 or str(refused.value).endswith(f": {tag}"), refused.value


def test_the_documented_configuration_loads_as_written(tmp_path):
    documented = documented_initiator_config()
    for line in documented.splitlines():
        if "=" in line:
            assert ";" not in line and "#" not in line, f"an inline comment would become part of the value: {line}"
    (tmp_path / "fix44-bourse.xml").write_bytes(BOURSE_DICTIONARY.read_bytes())
    config = tmp_path / "initiator.cfg"
    config.write_text(documented)
    settings = fix.SessionSettings(str(config))
    session = settings.get(fix.SessionID("FIX.4.4", "bk_yourkeyid", "BOURSE"))
    assert session.getString("DataDictionary") == "fix44-bourse.xml"
    assert session.getString("ResetOnLogon") == "N" and session.getString("SocketConnectPort") == "9878"
    # The tests change only the run's own values.
    tested = initiator_config("bk_k", 1234, str(tmp_path)).splitlines()
    changed = {line.split("=")[0] for line in set(tested) - set(documented.splitlines())}
    assert changed <= {"ReconnectInterval", "FileStorePath", "FileLogPath", "DataDictionary", "SenderCompID",
                       "SocketConnectPort"}
