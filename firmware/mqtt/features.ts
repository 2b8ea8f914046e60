// Features of the client chosen at build time. tools/build.ts (clientFeatures, clientDefines) gives
// esbuild a `define` for each name below, true or false, from what a node's flash.config.json can use;
// esbuild then leaves out the code of the features set to false, so the same source yields a smaller
// client for a node that cannot use them. dist/mqtt.js has every one.
//
// The client (bundled only) uses the names as they are. Code that also runs unbundled (codec.ts and
// session.ts, which the tests and host tools import) writes `(typeof WISP_QOS2 == "undefined" ||
// WISP_QOS2)`: true where nothing is defined, and folded away by esbuild where something is.

export {};

declare global {
  /** QoS 2 both ways: PUBREC, PUBREL, PUBCOMP, and delivering a resent incoming message once. Without it, QoS 2 is refused. */
  const WISP_QOS2: boolean;
  /** mqtts:// through require("tls"). Without it, an mqtts:// URL is refused. */
  const WISP_TLS: boolean;
  /** The will in CONNECT. Without it, a `will` option is refused. */
  const WISP_WILL: boolean;
  /** A user name and password in the URL (mqtt://user:password@host). Without it, such a URL is refused. */
  const WISP_URL_LOGIN: boolean;
  /**
   * The session store (`store` with `clean: false`: the session outlives a reboot). Without it, a
   * `store` option is refused. The firmware has it when its config keeps an outbox (firmwareDefines).
   */
  const WISP_STORE: boolean;
}
