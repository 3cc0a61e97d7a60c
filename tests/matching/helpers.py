"""Small helpers shared by the engine tests."""

from matching import LevelUpdate, OrderBook


def step(book, command):
    """Process one command with ``check_invariants()`` before and after."""
    book.check_invariants()
    events = book.process(command)
    book.check_invariants()
    return events


def run(book, *commands):
    """Process several commands; return the concatenated events."""
    out = []
    for c in commands:
        out.extend(step(book, c))
    return out


def kinds(events):
    return [e.kind for e in events]


def non_level(events):
    return [e for e in events if type(e) is not LevelUpdate]


def levels(events):
    return [e for e in events if type(e) is LevelUpdate]


def book_with(*commands):
    book = OrderBook()
    run(book, *commands)
    return book
