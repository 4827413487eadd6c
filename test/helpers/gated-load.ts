/**
 * A load (a table read, say) that answers only when the test says so, counting its calls: for
 * tests of what concurrent callers share while a read is on its way.
 *
 * @example const gate = gatedLoad(() => "acme"); const p = cache.get("k", gate.load); gate.answer(); await p;
 */
export function gatedLoad<V>(value: () => V) {
  const waiting: Array<() => void> = [];
  let calls = 0;
  return {
    load: () => {
      calls += 1;
      return new Promise<V>((resolve) => waiting.push(() => resolve(value())));
    },
    calls: () => calls,
    /** Answers every call waiting so far, with `value()` as it is now. */
    answer: () => {
      for (const go of waiting.splice(0)) go();
    },
  };
}
