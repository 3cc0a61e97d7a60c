/**
 * Cursor pagination (`?limit=&cursor=` → `{results, next_cursor}`) as an async iterable:
 * `for await (const order of client.orders.list())` walks every page lazily.
 */

export interface Page<T> {
  results: T[];
  next_cursor: string | null;
}

export class Paginator<T> implements AsyncIterable<T> {
  readonly #fetchPage: (cursor: string | undefined) => Promise<Page<T>>;

  constructor(fetchPage: (cursor: string | undefined) => Promise<Page<T>>) {
    this.#fetchPage = fetchPage;
  }

  /** One page: the first, or the one `cursor` (a previous `next_cursor`) points at. */
  page(cursor?: string | null): Promise<Page<T>> {
    return this.#fetchPage(cursor ?? undefined);
  }

  /** Every page in order, following `next_cursor` until it is null. */
  async *pages(): AsyncGenerator<Page<T>, void, undefined> {
    let cursor: string | undefined;
    const seen = new Set<string>();
    for (;;) {
      const page = await this.#fetchPage(cursor);
      yield page;
      if (!page.next_cursor) return;
      // A cursor that comes back twice would loop forever; the server never does this, so it
      // is a bug worth surfacing rather than silently spinning.
      if (seen.has(page.next_cursor)) throw new Error(`pagination cursor repeated: ${page.next_cursor}`);
      seen.add(page.next_cursor);
      cursor = page.next_cursor;
    }
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    for await (const page of this.pages()) yield* page.results;
  }

  /** Collects items into an array, stopping after `max` items (default: all of them). */
  async toArray(max = Number.POSITIVE_INFINITY): Promise<T[]> {
    const out: T[] = [];
    if (max <= 0) return out;
    for await (const item of this) {
      out.push(item);
      if (out.length >= max) break;
    }
    return out;
  }
}
