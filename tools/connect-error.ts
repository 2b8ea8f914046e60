// What a failed connection to a broker means, in words: "connect ECONNREFUSED 127.0.0.1:18838"
// becomes "nothing listens on 127.0.0.1:18838", with what to check. Used wherever a tool connects
// to a broker the user named (wisp sim --broker, wisp hil --broker).

/** The message for `err` from connecting to `url` (a login in the URL is never shown). */
export function describeConnectError(err: unknown, url: string, login?: string): string {
  const e = err as NodeJS.ErrnoException & { code?: string | number; errors?: Error[] };
  // Node reports a host with several addresses as an AggregateError; the first one says enough
  const first = (e.errors?.[0] as NodeJS.ErrnoException | undefined) ?? e;
  const code = (first.code ?? e.code) as string | number | undefined;
  let host = url,
    port = "";
  try {
    const u = new URL(url);
    host = u.hostname.replace(/^\[|\]$/g, "");
    port = u.port || (u.protocol === "mqtts:" ? "8883" : "1883");
  } catch {
    // not a URL: say it as given
  }
  const where = port ? `${host}:${port}` : host;
  const as = login ? ` as ${login}` : "";
  switch (code) {
    case "ECONNREFUSED":
      return `nothing listens on ${where} (connection refused): is the broker running, and on port ${port}? Check the host and port you gave${host === "127.0.0.1" || host === "localhost" ? "; `ss -ltn` lists the ports in use here" : ""}`;
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return `the host name ${host} is not known (DNS lookup failed): check its spelling, or use its IP address`;
    case "ETIMEDOUT":
    case "EHOSTUNREACH":
    case "ENETUNREACH":
      return `${where} cannot be reached (${code}): no route to that host, or a firewall drops the connection`;
    case "ECONNRESET":
      return `${where} closed the connection at once: is it an MQTT broker on that port${port === "8883" ? "" : ", or does it want TLS (mqtts://)"}?`;
    case "DEPTH_ZERO_SELF_SIGNED_CERT":
    case "SELF_SIGNED_CERT_IN_CHAIN":
    case "UNABLE_TO_VERIFY_LEAF_SIGNATURE":
      return `${where}: the broker's TLS certificate is not signed by a CA this tool trusts (${code}): give its CA`;
    case "ERR_TLS_CERT_ALTNAME_INVALID":
      return `${where}: the broker's TLS certificate is not made out for ${host}: connect by a name it has`;
    case 4:
    case 5:
      return `${where} refused the login${as}: ${code === 4 ? "bad user name or password" : "not authorized"}`;
    default:
      return `cannot connect to ${where}${as}: ${e.message}`;
  }
}
