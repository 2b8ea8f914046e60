// A SessionStore for the client tests: kept in RAM, every call recorded.

/** A store in RAM that records every call, as a flash-backed one would see them. */
export function memoryStore(entries: [string, string][] = []) {
  const map = new Map<string, string>(entries);
  const calls: string[] = [];
  return {
    map,
    calls,
    put(key: string, packet: string, ref?: unknown) {
      calls.push(`put ${key} ${packet.charCodeAt(0).toString(16)}${ref === undefined ? "" : ` ref ${ref}`}`);
      map.set(key, packet);
    },
    remove(key: string) {
      calls.push(`remove ${key}`);
      map.delete(key);
    },
    load() {
      calls.push("load");
      return [...map].map(([k, v]) => [k, v]);
    },
  };
}
