// firmware/store/outbox.ts as an Espruino module, for npm run bench:outbox (the same source the
// firmware bundles, on its own so it can be measured apart from the node).
import { encodePublish } from "../../firmware/mqtt/codec";
import { openOutbox, outboxAdd, outboxHanded, outboxNext, outboxSent, outboxState, sessionStore } from "../../firmware/store/outbox";

exports.openOutbox = function (maxBytes: number, problem: (text: string) => void) {
  openOutbox(maxBytes, problem, function (topic: string, payload: string, qos: number, id: number) {
    return encodePublish("wisp/240ac4c1-0eda/" + topic, payload, qos, 0, 0, id);
  });
};
exports.outboxAdd = outboxAdd;
exports.outboxNext = outboxNext;
exports.outboxHanded = outboxHanded;
exports.outboxSent = outboxSent;
exports.outboxState = outboxState;
exports.sessionStore = sessionStore;
