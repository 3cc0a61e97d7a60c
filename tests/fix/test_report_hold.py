"""With PendingNewReports (8014=Y) a session holds the reader's reports of an order whose
NewOrderSingle is still being submitted, so that its Pending New goes out first: the engine
can commit the order's batch, and the reader deliver it, before the submitting thread's
answer is back on the event loop."""
from trading.fix.session import Session


def session(pending_new=True):
    s = Session.__new__(Session)  # the hold alone: no connection, no gateway
    s.pending_new, s.submitting, s.submitting_count, s.closing = pending_new, {}, {}, False
    s.sent = []
    s.send_reports = s.sent.extend
    return s


def report(cl, exec_type, orig=None):
    return ("8", [(37, "1"), (11, cl), (41, orig), (150, exec_type)])


def test_an_orders_reports_wait_for_its_submission_and_others_do_not():
    s = session()
    assert s._submitting("a")
    s.deliver_reports([report("a", "0"), report("b", "0"), report("a", "F")])
    assert s.sent == [report("b", "0")]
    s.send_reports([report("a", "A")])  # the submission's own answer (Pending New)
    s._submitted("a")
    assert s.sent == [report("b", "0"), report("a", "A"), report("a", "0"), report("a", "F")]
    assert s.submitting == {} and s.submitting_count == {}
    s.deliver_reports([report("a", "4")])  # after it: straight through
    assert s.sent[-1] == report("a", "4")


def test_a_cancel_naming_the_order_as_orig_is_held_too():
    s = session()
    s._submitting("a")
    s.deliver_reports([report("cxl-a", "4", orig="a")])
    assert s.sent == []
    s._submitted("a")
    assert s.sent == [report("cxl-a", "4", orig="a")]


def test_the_same_clordid_twice_in_flight_releases_after_the_last():
    s = session()
    s._submitting("a")
    s._submitting("a")
    s.deliver_reports([report("a", "0")])
    s._submitted("a")
    assert s.sent == []
    s._submitted("a")
    assert s.sent == [report("a", "0")]


def test_without_pending_new_nothing_is_held():
    s = session(pending_new=False)
    assert not s._submitting("a")
    s.deliver_reports([report("a", "0")])
    assert s.sent == [report("a", "0")]
