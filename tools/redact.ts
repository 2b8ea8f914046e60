// What tools print about brokers: never a password (an error, a log line or a view included).

/** `url` with the password in its user info replaced by `***`: "mqtt://node:secret@host" -> "mqtt://node:***@host". */
export function redactUrl(url: string): string {
  const start = url.indexOf("//") + 2,
    at = url.lastIndexOf("@"),
    colon = url.indexOf(":", start);
  return start > 1 && colon >= 0 && colon < at ? `${url.slice(0, colon + 1)}***${url.slice(at)}` : url;
}
