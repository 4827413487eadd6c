/**
 * `value` without its `undefined` properties, for merging options over their defaults: an option
 * given as `undefined` keeps its default (`{ ...DEFAULTS, ...withoutUndefined(options) }`), where a
 * plain spread would overwrite the default with `undefined`.
 *
 * @example withoutUndefined({ a: 1, b: undefined }) // { a: 1 }
 */
export function withoutUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
