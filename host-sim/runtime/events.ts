// Espruino's EventEmitter, which every object has (src/jswrap_object.c, src/jsinteractive.c, 2v29):
// - on/addListener/prependListener store listeners in a hidden own property "#on<event>", always a
//   *new* array, so a listener added while an event is being handled is not called for it.
// - emit does not call listeners: it queues {this, listeners array, args} on the interpreter's event
//   queue (jsiQueueEvents), which runs on the next idle loop. Espruino's own test says so
//   (tests/test_eventemitter_removeListener.js: "events are processed in the next idle loop").
//   At most 4 arguments. removeListener splices the array in place (a queued event that has not run
//   yet skips the removed listener); removeAllListeners drops the property (a queued event still
//   runs the old array).
// - A listener that throws: the error is printed ("Uncaught ...") and the next listener still runs.
// - E.stopEventPropagation() inside a listener skips the remaining listeners of that event.
//
// The methods are compiled inside the device's context so they, and the errors they throw, belong
// to the device's realm. The queue is the host's: a native promise job per event, so events run
// after the code that emitted them, in FIFO order with the device's own promise callbacks (Espruino
// keeps both in one queue), and independently of any fake clock.

export interface EventHost {
  /** Queue a run of `listeners` (a live array) on `target` with `args`. */
  queue(target: object, listeners: unknown, args: unknown[]): void;
}

export const EVENT_PREFIX = "#on";

/** Source of a function (hostHooks) => void that installs the methods on the context's Object.prototype. */
export const INSTALL_EVENTS_SOURCE = `(function (host) {
  "use strict";
  var hasOwn = Object.prototype.hasOwnProperty;
  function checkParent(o) {
    if (o === null || (typeof o !== "object" && typeof o !== "function"))
      throw new TypeError("Parent must be an object - not a String, Integer, etc");
  }
  function checkEvent(event) {
    if (typeof event !== "string") throw new TypeError("First argument must be String");
  }
  function hidden(o, key, value) {
    Object.defineProperty(o, key, { value: value, writable: true, configurable: true, enumerable: false });
  }
  function add(o, event, listener, first) {
    checkParent(o);
    checkEvent(event);
    if (typeof listener !== "function" && typeof listener !== "string")
      throw new TypeError("Second argument must be a function or a String");
    var key = "#on" + event;
    var old = hasOwn.call(o, key) ? o[key] : undefined;
    var list = first ? [listener] : [];
    if (Array.isArray(old)) for (var i = 0; i < old.length; i++) list.push(old[i]);
    else if (old !== undefined) list.push(old);
    if (!first) list.push(listener);
    hidden(o, key, list);
    // Streams keep data that arrived before anyone listened (jswrap_object_on, STREAM_BUFFER_NAME).
    if (event === "data" && hasOwn.call(o, "#buffer") && typeof o["#buffer"] === "string") {
      var buffered = o["#buffer"];
      delete o["#buffer"];
      host.queue(o, list, [buffered]);
    }
  }
  var methods = {
    on: function on(event, listener) { add(this, event, listener, false); },
    addListener: function addListener(event, listener) { add(this, event, listener, false); },
    prependListener: function prependListener(event, listener) { add(this, event, listener, true); },
    emit: function emit(event) {
      checkParent(this);
      checkEvent(event);
      if (arguments.length - 1 > 4) throw new TypeError("Too many arguments (>4)");
      var key = "#on" + event;
      if (!hasOwn.call(this, key)) return;
      var args = [];
      for (var i = 1; i < arguments.length; i++) args.push(arguments[i]);
      host.queue(this, this[key], args);
    },
    removeListener: function removeListener(event, listener) {
      checkParent(this);
      checkEvent(event);
      var key = "#on" + event;
      var list = hasOwn.call(this, key) ? this[key] : undefined;
      if (Array.isArray(list)) {
        var idx = list.indexOf(listener);
        if (idx >= 0) list.splice(idx, 1);
      }
    },
    removeAllListeners: function removeAllListeners(event) {
      checkParent(this);
      if (typeof event === "string") {
        delete this["#on" + event];
      } else if (event === undefined) {
        var keys = Object.getOwnPropertyNames(this);
        for (var i = 0; i < keys.length; i++) if (keys[i].indexOf("#on") === 0) delete this[keys[i]];
      } else {
        throw new TypeError("First argument must be String or undefined");
      }
    }
  };
  Object.keys(methods).forEach(function (name) {
    hidden(Object.prototype, name, methods[name]);
  });
})`;
