"""The replay harness: exact file formats, and a generated mixed workload
whose trade file is checked against the reference model."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from matching import BUY, CANCEL_NEWEST, FOK, LIMIT, MARKET, SELL, Cancel, NewOrder, OrderBook, Trade, replay, workload

from .reference import ReferenceBook

ROOT = Path(__file__).resolve().parents[2]


def reference_trade_lines(commands):
    ref = ReferenceBook()
    lines = []
    for cmd in commands:
        for e in ref.process(cmd):
            if type(e) is Trade:
                lines.append(f"{e.taker_id},{e.maker_id},{e.price},{e.size}")
    return lines, ref


def test_parse_line_formats():
    assert replay.parse_line("N,7,B,L,10050,3,GTC,0,42") == NewOrder(
        7, 42, BUY, LIMIT, 10050, 3, "GTC", False, CANCEL_NEWEST, None
    )
    assert replay.parse_line("N,8,S,M,0,5,FOK,0,1") == NewOrder(8, 1, SELL, MARKET, 0, 5, FOK, False)
    assert replay.parse_line("N,9,S,L,1,1,IOC,1,1").post_only is True
    assert replay.parse_line("C,7") == Cancel(7)


@pytest.mark.parametrize(
    "line", ["X,1", "C", "C,1,2", "N,1,B,L,100,1,GTC,0", "N,1,B,Z,100,1,GTC,0,1", "N,1,B,L,1.5,1,GTC,0,1",
             "N,1,B,L,100,1,GTC,2,1", "N,a,B,L,100,1,GTC,0,1"]
)
def test_parse_line_rejects_malformed(line):
    with pytest.raises(replay.ReplayFormatError):
        replay.parse_line(line)


def test_load_skips_blank_and_comment_lines_and_reports_line_numbers(tmp_path):
    f = tmp_path / "cmds.csv"
    f.write_text("# header\n\nN,1,B,L,100,1,GTC,0,1\nC,1\n")
    assert replay.load(f) == [NewOrder(1, 1, BUY, LIMIT, 100, 1), Cancel(1)]
    f.write_text("N,1,B,L,100,1,GTC,0,1\nbogus\n")
    with pytest.raises(replay.ReplayFormatError, match=":2:"):
        replay.load(f)


def test_run_goes_through_process_and_hands_over_every_event_list():
    commands = [NewOrder(1, 1, SELL, LIMIT, 100, 2), NewOrder(2, 2, BUY, LIMIT, 100, 1), Cancel(5)]
    seen = []
    book = OrderBook()
    elapsed, n_events, cpu = replay.run(commands, book, seen.extend)
    expected = [OrderBook().process(c) for c in commands[:1]]
    assert seen[0] == expected[0]
    assert len(seen) == 3 and n_events == sum(map(len, seen)) and elapsed >= 0 and cpu >= 0
    book.check_invariants()


def test_replay_cli_small_file(tmp_path):
    f = tmp_path / "cmds.csv"
    f.write_text(
        "N,1,S,L,101,5,GTC,0,1\n"
        "N,2,S,L,100,2,GTC,0,2\n"
        "N,3,B,L,101,4,GTC,0,3\n"  # takes 2 @100 from 2, then 2 @101 from 1
        "N,4,B,M,0,9,IOC,0,3\n"  # takes the last 3 @101 from 1
        "C,1\n"
    )
    out = tmp_path / "trades.csv"
    proc = subprocess.run(
        [sys.executable, "-m", "matching.replay", str(f), "--trades", str(out)],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )
    assert re.fullmatch(r"\d+ commands/s\n", proc.stdout)
    assert out.read_text() == "3,2,100,2\n3,1,101,2\n4,1,101,3\n"


def test_replay_cli_reports_bad_file(tmp_path):
    f = tmp_path / "cmds.csv"
    f.write_text("N,1,B,L,100\n")
    proc = subprocess.run([sys.executable, "-m", "matching.replay", str(f)], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "cmds.csv:1" in proc.stderr


def test_generated_workload_trades_match_reference_model(tmp_path):
    # given a generated mixed workload (limits, cancels, takers, IOC/FOK/market)
    f = tmp_path / "workload.csv"
    workload.write(f, 6000, seed=7, target_orders=250)
    commands = replay.load(f)
    assert {type(c) for c in commands} == {NewOrder, Cancel}
    # when the harness replays it
    out = tmp_path / "trades.csv"
    proc = subprocess.run(
        [sys.executable, "-m", "matching.replay", str(f), "--trades", str(out)],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )
    assert proc.stdout.endswith(" commands/s\n")
    # then its trade file is exactly what the reference model trades
    got = out.read_text().splitlines()
    want, ref = reference_trade_lines(commands)
    assert len(want) > 1000
    assert got == want
    # and the book it ends with is the reference model's
    book = OrderBook()
    replay.run(commands, book)
    assert book.resting_orders() == ref.resting_orders()


def test_replay_main_in_process(tmp_path, capsys):
    f = tmp_path / "w.csv"
    workload.write(f, 500, seed=3, target_orders=50)
    out = tmp_path / "t.csv"
    assert replay.main([str(f), "--trades", str(out)]) == 0
    assert re.fullmatch(r"\d+ commands/s\n", capsys.readouterr().out)
    want, _ = reference_trade_lines(replay.load(f))
    assert out.read_text().splitlines() == want
