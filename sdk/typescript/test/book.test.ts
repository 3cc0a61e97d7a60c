// The local order book: snapshot, in-sequence updates, removals, stale updates and gaps,
// ordering by exact decimal comparison.
import { describe, expect, it } from "vitest";
import { compareDecimal, LocalOrderBook } from "../src/index.js";

const snapshot = {
  market: "BTC-USD", sequence: 10,
  bids: [["99.75", "1.0"], ["100.5", "0.2"], ["9.99", "3"]] as [string, string][],
  asks: [["1000.00", "0.1"], ["101.00", "0.5"]] as [string, string][],
};

describe("compareDecimal", () => {
  it.each([
    ["100.5", "99.75", 1], ["99.75", "100.5", -1], ["1000", "999.999", 1], ["1.10", "1.1", 0],
    ["0.0001", "0.001", -1], ["007.5", "7.50", 0], ["12", "12.000001", -1],
  ])("%s vs %s", (a, b, expected) => {
    expect(Math.sign(compareDecimal(a, b))).toBe(expected);
  });
});

describe("LocalOrderBook", () => {
  it("orders levels best first by decimal value, not by string or float", () => {
    const book = new LocalOrderBook(snapshot);
    expect(book.bids().map(([p]) => p)).toEqual(["100.5", "99.75", "9.99"]);
    expect(book.asks().map(([p]) => p)).toEqual(["101.00", "1000.00"]);
    expect(book.bestBid()).toEqual(["100.5", "0.2"]);
    expect(book.bestAsk()).toEqual(["101.00", "0.5"]);
    expect(book.bids(1)).toHaveLength(1);
  });

  it("applies the next update: changed totals, new levels, zero removes", () => {
    const book = new LocalOrderBook(snapshot);
    expect(book.apply({ market: "BTC-USD", sequence: 11, bids: [["100.5", "0"], ["100.6", "0.3"]], asks: [["101.00", "0.25"]] })).toBe("applied");
    expect(book.sequence).toBe(11);
    expect(book.bids()).toEqual([["100.6", "0.3"], ["99.75", "1.0"], ["9.99", "3"]]);
    expect(book.bestAsk()).toEqual(["101.00", "0.25"]);
    expect(book.apply({ market: "BTC-USD", sequence: 12, bids: [], asks: [["101.00", "0.00000000"]] })).toBe("applied");
    expect(book.bestAsk()).toEqual(["1000.00", "0.1"]);
  });

  it("ignores an update it already has and reports a gap without applying it", () => {
    const book = new LocalOrderBook(snapshot);
    expect(book.apply({ market: "BTC-USD", sequence: 10, bids: [["1", "1"]], asks: [] })).toBe("stale");
    expect(book.apply({ market: "BTC-USD", sequence: 12, bids: [["1", "1"]], asks: [] })).toBe("gap");
    expect(book.sequence).toBe(10);
    expect(book.bids().map(([p]) => p)).toEqual(["100.5", "99.75", "9.99"]);
  });
});
