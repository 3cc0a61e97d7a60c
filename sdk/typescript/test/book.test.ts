// The local order book: snapshot, in-sequence updates, removals, stale updates and gaps,
// ordering by exact decimal comparison.
import { describe, expect, it } from "vitest";
import { bookChecksum, compareDecimal, crc32, LocalOrderBook } from "../src/index.js";

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

describe("checksum", () => {
  it("is zlib's CRC-32, unsigned", () => {
    expect(crc32("123456789")).toBe(0xcbf43926);
    expect(crc32("")).toBe(0);
    expect(crc32("99.50:1.20000000:100.25:0.50000000")).toBe(1992868135); // docs/websocket.md's example
  });

  it("interleaves the top 25 levels of both sides; a side that ran out contributes nothing", () => {
    expect(bookChecksum([["2", "1"], ["1", "5"]], [["3", "7"]])).toBe(crc32("2:1:3:7:1:5"));
    const deep = Array.from({ length: 30 }, (_, i) => [`${100 - i}.00`, "1"] as [string, string]);
    expect(bookChecksum(deep, [])).toBe(bookChecksum(deep.slice(0, 25), []));
  });

  it("is checked after each update", () => {
    const book = new LocalOrderBook({ ...snapshot, checksum: undefined });
    expect(book.verify({ checksum: book.checksum() })).toBe(true);
    const next = { market: "BTC-USD", sequence: 11, bids: [["100.5", "0"]] as [string, string][], asks: [] };
    const after = crc32("99.75:1.0:101.00:0.5:9.99:3:1000.00:0.1");
    expect(book.apply({ ...next, checksum: after })).toBe("applied");
    expect(book.apply({ ...next, sequence: 12, bids: [["99.75", "2.0"]], checksum: after })).toBe("checksum_mismatch");
    expect(book.sequence).toBe(12);
  });
});
