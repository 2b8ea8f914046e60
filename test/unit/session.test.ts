import { describe, expect, it } from "vitest";
import { encodePublish } from "../../firmware/mqtt/codec";
import { abandon, acknowledge, backoff, newSession, receive, redeliver, track } from "../../firmware/mqtt/session";

import type { Callback, Session } from "../../firmware/mqtt/session";

const noop = () => {};
/** Tracks a PUBLISH as the client does: a new id, then the packet encoded with it. */
function publish(s: Session, topic: string, qos: number, done: Callback = noop) {
  const e = track(s, qos + 3, done);
  e.packet_ = encodePublish(topic, "x", qos, 0, 0, e.id_);
  return e;
}

describe("packet ids", () => {
  it("start at 1 and count up", () => {
    const s = newSession();
    for (let i = 0; i < 3; i++) publish(s, "t", 1, noop);
    expect(s.pending_.map((p) => p.id_)).toEqual([1, 2, 3]);
  });
  it("wrap past 65535 without ever giving 0, skipping ids still in use", () => {
    const s = newSession();
    publish(s, "t", 1, noop); // id 1 stays in flight
    s.lastId_ = 65534;
    publish(s, "t", 1, noop);
    publish(s, "t", 1, noop);
    expect(s.pending_.map((p) => p.id_)).toEqual([1, 65535, 2]);
  });
});

describe("outgoing QoS flows", () => {
  it("QoS 1 completes on PUBACK and calls back once", () => {
    const s = newSession(),
      calls: unknown[] = [];
    publish(s, "t", 1, (err) => calls.push(err));
    const e = acknowledge(s, 4, 1);
    e!.done_(null);
    expect(calls).toEqual([null]);
    expect(s.pending_).toEqual([]);
    expect(acknowledge(s, 4, 1)).toBeUndefined(); // a duplicate PUBACK finds nothing
  });
  it("QoS 2 moves to PUBREL on PUBREC, then completes on PUBCOMP", () => {
    const s = newSession();
    publish(s, "t", 2, noop);
    expect(() => acknowledge(s, 7, 1)).toThrow(/malformed packet: unexpected packet type 7/); // PUBCOMP before PUBREC
    expect(s.pending_).toHaveLength(1);
    const e = acknowledge(s, 5, 1)!;
    expect(e.packet_).toBe("\x62\x02\x00\x01"); // PUBREL
    expect(s.pending_).toHaveLength(1);
    expect(acknowledge(s, 7, 1)).toBe(e);
    expect(s.pending_).toHaveLength(0);
  });
  it("a SUBACK with a return code per filter completes its SUBSCRIBE; one with another count is malformed and completes nothing [MQTT-3.9.3-1]", () => {
    const s = newSession();
    const e = track(s, 9, noop);
    e.filters_ = ["a/+"];
    e.qos_ = 1;
    expect(() => acknowledge(s, 9, 1, [1, 1])).toThrow(/malformed packet: SUBACK for 1 filters with 2 return codes/);
    expect(s.pending_).toEqual([e]);
    expect(acknowledge(s, 9, 1, [1])).toBe(e);
    expect(s.pending_).toEqual([]);
  });
  it("an acknowledgement of the wrong type is malformed and completes nothing; a PUBREC again after PUBREL is a harmless duplicate", () => {
    const s = newSession();
    track(s, 9, noop);
    expect(() => acknowledge(s, 4, 1)).toThrow(/malformed packet/);
    expect(acknowledge(s, 9, 1)).toBeDefined();
    expect(acknowledge(s, 4, 99)).toBeUndefined(); // nothing waits on id 99: a duplicate
    publish(s, "t", 2, noop);
    acknowledge(s, 5, 2);
    expect(acknowledge(s, 5, 2)).toBeUndefined();
    expect(s.pending_).toHaveLength(1);
  });
  it("a SUBACK granting more than was asked is malformed [MQTT-3.9.3-3]; less, or a failure (128), is not", () => {
    const s = newSession();
    const e = track(s, 9, noop);
    e.filters_ = ["a", "b"];
    e.qos_ = [0, 1];
    expect(() => acknowledge(s, 9, 1, [1, 1])).toThrow(/SUBACK grants more than asked/);
    expect(acknowledge(s, 9, 1, [0, 128])).toBe(e);
    const f = track(s, 9, noop);
    f.filters_ = ["c"];
    f.qos_ = 1;
    expect(() => acknowledge(s, 9, 2, [2])).toThrow(/SUBACK grants more than asked/);
    expect(acknowledge(s, 9, 2, [0])).toBe(f);
  });
});

describe("redelivery after reconnect", () => {
  it("sends unacknowledged PUBLISH with DUP=1 and pending PUBREL, in original order", () => {
    const s = newSession();
    publish(s, "a", 1, noop); // 1: QoS 1, unacknowledged
    publish(s, "b", 2, noop); // 2: QoS 2, PUBREC received -> PUBREL pending
    publish(s, "c", 2, noop); // 3: QoS 2, unacknowledged
    publish(s, "d", 1, noop); // 4: acknowledged, gone
    acknowledge(s, 5, 2);
    acknowledge(s, 4, 4);
    const again = redeliver(s);
    expect(again).toEqual([encodePublish("a", "x", 1, 0, 1, 1), "\x62\x02\x00\x02", encodePublish("c", "x", 2, 0, 1, 3)]);
    expect(redeliver(s)).toEqual(again); // DUP is set once, not toggled
  });
});

describe("incoming QoS 2", () => {
  it("delivers once until PUBREL releases the id", () => {
    const s = newSession();
    expect(receive(s, 7)).toBe(true);
    expect(receive(s, 7)).toBe(false); // the broker resent it with DUP
    delete s.received_[7]; // PUBREL
    expect(receive(s, 7)).toBe(true);
  });
});

describe("abandon", () => {
  it("fails every waiting callback with the error, once", () => {
    const s = newSession(),
      errs: unknown[] = [];
    publish(s, "a", 1, (e) => errs.push(e));
    track(s, 9, (e) => errs.push(e));
    const err = new Error("client ended");
    abandon(s, err);
    abandon(s, err);
    expect(errs).toEqual([err, err]);
  });
});

describe("reconnect backoff", () => {
  it("doubles from the base period per attempt, up to a minute", () => {
    expect([0, 1, 2, 3, 10, 30].map((a) => backoff(a, 1000, 1))).toEqual([1000, 2000, 4000, 8000, 60000, 60000]);
  });
  it("jitters over the upper half of the delay", () => {
    for (let a = 0; a < 8; a++) {
      const full = backoff(a, 500, 1);
      expect(backoff(a, 500, 0)).toBe(full / 2);
      for (let i = 0; i < 20; i++) {
        const d = backoff(a, 500, Math.random());
        expect(d).toBeGreaterThanOrEqual(full / 2);
        expect(d).toBeLessThanOrEqual(full);
      }
    }
  });
  it("never goes below a base period longer than the cap", () => {
    expect(backoff(5, 120000, 1)).toBe(120000);
  });
});
