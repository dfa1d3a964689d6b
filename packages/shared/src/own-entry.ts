/**
 * A table's entry for a name that came from outside (an option, a command, a device, a URL): only
 * the table's own keys count. Indexing a plain object with `constructor`, `toString` or `__proto__`
 * finds what every object inherits, which callers would take for an entry of theirs.
 */
export function ownEntry<T>(table: Readonly<Record<string, T>>, key: string): T | undefined {
  return Object.hasOwn(table, key) ? table[key] : undefined;
}
