// The probe `npm run bench:device` runs ON the interpreter (a Linux build of Espruino, or a board over
// its console), one phase per run, the same for every MQTT module. Plain ES5 for Espruino. The bench
// puts one line before this text: `var CFG = {...}` (see device.ts, ProbeConfig). Every function is
// top-level and every variable exists before the baseline is read, so what the JsVar figures count is
// the module and what it allocates, not the probe. Results are console lines `BENCH <phase> <json>`.
//
// Modules ("kind"): "wisp" (dist/mqtt.js: connect(url, options), callbacks), "espruino" (EspruinoDocs
// MQTT: create(host, options), connect(), events "connected", "subscribed", "puback"), "tiny" (tinyMQTT:
// create(host, options), events "connected", "message" with one {topic, message} argument).

var M, C, base = 0, mem = { require: 0, connected: 0, blocksize: 0 }, n = 0, intact = 0, acked = 0, sent = 0, t0 = 0, t1 = 0, last = 0, subs = 0, waiting = 0,
  sync = 0, watch = 0, BATCH = 0, COUNT = 0, LAST = 0, TOPIC = "", O0 = { qos: 0 }, O1 = { qos: 1 }, PAY = "21.5;48.2;1013.2", TAIL = ";21.5;48.2;1013.2";

function report(phase, o) {
  console.log("BENCH " + phase + " " + JSON.stringify(o));
}

function usage() {
  return typeof process != "undefined" && process.memory ? process.memory().usage : -1;
}

function quitSoon() {
  if (typeof quit == "function") setTimeout(quit, 100);
}

function fail(e) {
  report("error", { message: "" + (e && e.message ? e.message : e) });
  quitSoon();
}

/** The module's source as a string in RAM, for Modules.addCached. */
function source() {
  if (CFG.file) return require("fs").readFileSync(CFG.file);
  // on a board: copy the Storage file (memory-mapped flash) into RAM, as an upload would hand it over
  return E.toString(E.toUint8Array(require("Storage").read(CFG.name)));
}

function load() {
  var src;
  if (CFG.load == "cached") {
    src = source();
    Modules.addCached(CFG.name, src);
    src = undefined;
  }
  M = require(CFG.name);
}

function open(cb) {
  if (CFG.kind == "wisp") {
    C = M.connect("mqtt://" + CFG.host + ":" + CFG.port, { clientId: CFG.id, keepalive: 60, reconnectPeriod: 0 });
    C.on("connect", cb);
  } else {
    C = M.create(CFG.host, { port: CFG.port, client_id: CFG.id, keep_alive: 60 });
    C.on("connected", cb);
    C.connect();
  }
  C.on("error", fail);
}

/** Subscribes to each of `topics` at QoS 0; `cb` once all are acknowledged (tinyMQTT: once sent). */
function subscribe(topics, cb) {
  subs = topics.length;
  waiting = cb;
  if (CFG.kind == "espruino") C.on("subscribed", subscribed);
  for (var i = 0; i < topics.length; i++) {
    if (CFG.kind == "wisp") C.subscribe(topics[i], O0, subscribed);
    else C.subscribe(topics[i], O0);
  }
  if (CFG.kind == "tiny") setTimeout(waiting, 500);
}

function subscribed(err) {
  if (err) return fail(err);
  if (!--subs) waiting();
}

// --- JsVars: require, connect, two subscriptions ---------------------------------------------------

/** JsVars in use since the baseline; -1 where the interpreter cannot say (a simulated board) */
function used() {
  return base < 0 ? -1 : usage() - base;
}

function memStart() {
  base = usage();
  load();
  mem.require = used();
  open(memConnected);
}

function memConnected() {
  subscribe(["bench/a", "bench/b"], memSubscribed);
}

function memSubscribed() {
  // read once the acknowledgement has been handled: what stays, not what the call in progress holds
  setTimeout(memSettled, 200);
}

function memSettled() {
  mem.connected = used();
  mem.blocksize = typeof process != "undefined" && process.memory ? process.memory().blocksize : 0;
  report("mem", mem);
  quitSoon();
}

// --- QoS 0 publish: as fast as the module takes them; a subscriber on the host counts them -------

function q0Start() {
  // the loops below read these, the same for every module
  BATCH = CFG.batch;
  COUNT = CFG.count;
  LAST = COUNT - 1;
  TOPIC = CFG.topic;
  load();
  open(q0Connected);
}

function q0Connected() {
  report("ready", {});
  t0 = getTime();
  if (CFG.kind == "wisp") q0Wisp();
  else {
    // no flow control in these modules: a batch, then wait until the socket has sent it all
    C.client ? C.client.on("drain", q0Batch) : 0;
    C.cl ? C.cl.on("drain", q0Batch) : 0;
    q0Batch();
  }
}

/**
 * Wisp: a batch at a time with a callback on its last message, then the event loop runs (the socket
 * sends) before the next batch, as the other modules wait for their socket's "drain". When that last
 * call has to wait (the socket still holds sendBuffer bytes), its callback starts the next batch.
 */
function q0Wisp() {
  var k;
  sync = waiting = 1;
  for (k = 1; k < BATCH && sent < LAST; k++, sent++) C.publish(TOPIC, PAY, O0);
  sent++;
  C.publish(TOPIC, PAY, O0, q0Written);
  sync = 0;
  if (!waiting) q0Next();
}

function q0Written(err) {
  if (err) return fail(err);
  waiting = 0;
  if (!sync) q0Next();
}

function q0Next() {
  if (sent < CFG.count) setTimeout(q0Wisp, 0);
  else q0Done();
}

function q0Batch() {
  if (sent >= CFG.count) return;
  for (var k = 0; k < BATCH && sent < COUNT; k++, sent++) C.publish(TOPIC, PAY, O0);
  if (sent >= CFG.count) q0Done();
}

function q0Done() {
  report("sent", { count: sent, s: getTime() - t0 });
  if (CFG.quit) setTimeout(quit, CFG.quit);
  // the host says when its subscriber has them all (or gives up) by ending this process
}

// --- receive burst: the host publishes CFG.count messages at once; count the intact ones --------

function rxStart() {
  load();
  open(rxConnected);
}

function rxConnected() {
  C.on("message", rxMessage);
  subscribe([CFG.topic], rxReady);
}

function rxReady() {
  watch = setInterval(rxWatch, 250);
  report("ready", {});
}

function rxMessage(topic, payload) {
  // tinyMQTT emits one {topic, message} object
  if (typeof topic == "object") {
    payload = topic.message;
    topic = topic.topic;
  }
  last = getTime();
  if (!n++) {
    t0 = last;
    // the host starts its CPU-time clock here: both rates are timed from the first message to the last
    report("first", {});
  }
  if (topic == CFG.topic && payload.charAt(0) == "m" && payload.substr(6) == TAIL) intact++;
  if (n == CFG.count) rxDone();
}

function rxWatch() {
  if (n && getTime() - last > 2) rxDone();
}

function rxDone() {
  clearInterval(watch);
  report("rx", { count: n, intact: intact, s: last - t0 });
  quitSoon();
}

// --- QoS 1 publish: CFG.window in flight; the clock stops at the last PUBACK -----------------------

function q1Start() {
  load();
  open(q1Connected);
}

function q1Connected() {
  if (CFG.kind == "espruino") C.on("puback", q1Acked);
  report("ready", {});
  t0 = getTime();
  q1Pump();
}

function q1Pump() {
  while (sent < CFG.count && sent - acked < CFG.window) {
    sent++;
    if (CFG.kind == "wisp") C.publish(CFG.topic, PAY, O1, q1Acked);
    else C.publish(CFG.topic, PAY, O1);
  }
}

function q1Acked(err) {
  if (err && CFG.kind == "wisp") return fail(err);
  if (++acked == CFG.count) {
    report("q1", { count: acked, s: getTime() - t0 });
    quitSoon();
  } else q1Pump();
}

// --- Storage: write the module as a file (the run before a "storage" measurement) ------------------

function storeStart() {
  var s = require("Storage");
  s.erase(CFG.name);
  s.write(CFG.name, require("fs").readFileSync(CFG.file));
  report("stored", { bytes: s.read(CFG.name).length });
  quitSoon();
}

function identify() {
  report("interpreter", { version: process.env.VERSION, commit: process.env.GIT_COMMIT, board: process.env.BOARD, blocksize: usage() < 0 ? 0 : process.memory().blocksize });
}

function start() {
  try {
    ({ mem: memStart, q0: q0Start, rx: rxStart, q1: q1Start, store: storeStart })[CFG.phase]();
  } catch (e) {
    fail(e);
  }
}

/** On a board: joins CFG.ssid first, unless the board is on a network already (its IP is set). */
function online() {
  var w;
  try {
    w = CFG.ssid && require("Wifi");
  } catch (e) {}
  if (!w || w.getStatus().station == "connected") return start();
  w.connect(CFG.ssid, { password: CFG.pass }, joined);
}

function joined(err) {
  if (err) fail("Wi-Fi " + CFG.ssid + ": " + err);
  else setTimeout(start, 500);
}

// The baseline is read in a timer: until the top level has run, the interpreter holds this text.
setTimeout(function () {
  identify();
  online();
}, 100);
