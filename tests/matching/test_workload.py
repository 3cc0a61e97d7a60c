"""The benchmark workload generator: mix, steadiness, determinism."""

from collections import Counter

from matching import OrderBook, replay, workload


def classify(line):
    f = line.split(",")
    if f[0] == "C":
        return "cancel"
    if f[3] == "M" or f[6] != "GTC":
        return "ioc_fok_market"
    return "limit"


def test_mix_and_steady_book():
    lines = list(workload.generate(40_000, seed=11, target_orders=2_000))
    mix = Counter(classify(line) for line in lines)
    assert abs(mix["cancel"] / len(lines) - 0.25) < 0.01
    assert abs(mix["ioc_fok_market"] / len(lines) - 0.05) < 0.01
    assert abs(mix["limit"] / len(lines) - 0.70) < 0.01  # 55% passive + 15% marketable
    # the book settles around the target after warm-up
    book = OrderBook()
    sizes = []
    for i, line in enumerate(lines):
        book.process(replay.parse_line(line))
        if i > 20_000 and i % 1000 == 0:
            sizes.append(len(book))
    assert min(sizes) > 1_500 and max(sizes) < 3_000


def test_deterministic_per_seed():
    a = list(workload.generate(2_000, seed=5))
    assert a == list(workload.generate(2_000, seed=5))
    assert a != list(workload.generate(2_000, seed=6))
