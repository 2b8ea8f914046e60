// Topic names and filters [MQTT-4.7].

import { text } from "./codec";

/**
 * Why `topic` cannot be used, or "" when it can. A name (for PUBLISH) has no wildcards
 * [MQTT-3.3.2-2]; in a filter, `#` stands alone as the last level [MQTT-4.7.1-2] and `+` alone
 * in its level [MQTT-4.7.1-3]. Both are 1 to 65535 bytes of UTF-8 [MQTT-4.7.3-1, -3] without U+0000,
 * control characters or noncharacters (see text()), checked on the bytes, so the same on V8 and Espruino.
 * With `qos`, also why that QoS cannot be (0, 1 and 2 can). Never throws: on V8 a lone surrogate
 * makes utf8Encode throw, and that is an invalid topic too. A topic of plain ASCII without wildcards
 * (most of them) is decided by one native RegExp test.
 */
export function topicError(topic: any, filter?: any, qos?: any): string {
  try {
    if (
      typeof topic == "string" &&
      topic &&
      (/[^\x20-\x22\x24-\x2a\x2c-\x7e]/.test(topic)
        ? // Espruino's RegExp: top-level alternation and classes only, `/` escaped even inside a class, and
          // `[^]` where any character is meant: `.` does not match a line terminator on V8 but does on Espruino
          !(filter ? /#[^]|[^\/][+#]|\+[^\/]/ : /[+#]/).test(topic) && text(topic)
        : topic.length < 65536)
    )
      return qos > 2 || qos < 0 ? "invalid QoS " + qos : "";
  } catch (e) {}
  return "invalid topic " + (filter ? "filter: " : "name: ") + topic;
}

/**
 * Does `filter` match the topic name? A filter starting with a wildcard does not match topics
 * starting with `$` [MQTT-4.7.2-1]; `a/#` also matches `a` [MQTT-4.7.1-2].
 */
export function topicMatches(filter: string, topic: string): boolean {
  if (topic[0] == "$" && (filter[0] == "+" || filter[0] == "#")) return false;
  const f = filter.split("/"),
    t = topic.split("/");
  for (let i = 0; i < f.length; i++) {
    if (f[i] == "#") return true;
    if (i >= t.length || (f[i] != "+" && f[i] != t[i])) return false;
  }
  return f.length == t.length;
}
