import { describe, expect, it } from "vitest";
import { topicError, topicMatches } from "../../firmware/mqtt/topic";

describe("topic validation", () => {
  it("accepts names and filters the spec allows", () => {
    for (const t of ["a", "a/b", "/", "a//b", "$SYS/x", "€/ü", " "]) expect(topicError(t)).toBe("");
    for (const f of ["#", "+", "a/#", "a/+/b", "+/+", "/+", "+/", "$SYS/#", "sport/tennis/#"]) expect(topicError(f, true)).toBe("");
  });
  it("rejects wildcards in a topic name [MQTT-3.3.2-2]", () => {
    for (const t of ["a/+", "#", "a/#", "a+b"]) expect(topicError(t)).toBe("invalid topic name: " + t);
  });
  it("rejects misplaced wildcards in a filter [MQTT-4.7.1-2, -3]", () => {
    for (const f of ["a/#/b", "a#", "#/", "a+", "+a", "a/b+/c", "##"]) expect(topicError(f, true)).toBe("invalid topic filter: " + f);
  });
  it("rejects empty topics, U+0000 and non-strings [MQTT-4.7.3-1, MQTT-1.5.3-2]", () => {
    expect(topicError("")).toMatch(/invalid topic/);
    expect(topicError("a\0b")).toMatch(/invalid topic/);
    expect(topicError(undefined)).toMatch(/invalid topic/);
    expect(topicError(7)).toMatch(/invalid topic/);
  });
  it("rejects topics over 65535 bytes of UTF-8", () => {
    expect(topicError("a".repeat(65535))).toBe("");
    expect(topicError("é".repeat(32768))).toMatch(/invalid topic/); // 65536 bytes
  });
});

describe("topic matching", () => {
  const cases: [string, string, boolean][] = [
    ["a/b", "a/b", true],
    ["a/b", "a/c", false],
    ["a/+", "a/b", true],
    ["a/+", "a/b/c", false],
    ["a/+", "a", false],
    ["a/+", "a/", true],
    ["+/+", "/x", true],
    ["a/#", "a", true],
    ["a/#", "a/b/c", true],
    ["#", "a/b", true],
    ["#", "/", true],
    ["+", "a/b", false],
    ["sport/+/player1", "sport/tennis/player1", true],
    ["#", "$SYS/uptime", false],
    ["+/uptime", "$SYS/uptime", false],
    ["$SYS/#", "$SYS/uptime", true],
    ["$SYS/+", "$SYS/uptime", true],
    ["a/b", "a/b/", false],
  ];
  for (const [filter, topic, expected] of cases)
    it(`${filter} ${expected ? "matches" : "does not match"} ${topic}`, () => expect(topicMatches(filter, topic)).toBe(expected));
});
