import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { checkFlashConfig, ConfigError, loadFlashConfig, renderDeviceConfig, validateFlashConfig } from "../../tools/config.ts";
import { PROJECT_ROOT } from "../../tools/paths.ts";
import { redactUrl } from "../../tools/redact.ts";
import { configError, expand } from "../../firmware/node/config";

const good = () => ({
  board: "esp32-devkitc",
  wifi: { ssid: "lab", password: { env: "WIFI_PW" } },
  mqtt: { url: "mqtt://10.0.0.2:1883", password: "s3cret", username: "node" },
  prefix: "wisp/{id}",
  interval: 10,
  sensors: [{ name: "climate", type: "bme280" }],
});

describe("flash.config.json validation", () => {
  it("accepts the project's own flash.config.json", () => {
    expect(() => loadFlashConfig()).not.toThrow();
  });
  it("names each bad field and what is allowed", () => {
    const c: any = good();
    c.board = "esp8266";
    c.mqtt.url = "http://x";
    c.interval = 0;
    c.sensors[0].address = 0x40;
    c.sensors.push({ name: "climate", type: "bme280" });
    expect(validateFlashConfig(c)).toEqual([
      'board: must be one of "esp32-devkitc", got "esp8266"',
      'mqtt.url: "http://x" does not have the right form (mqtt://host:port or mqtts://host:port)',
      "interval: must be a whole number from 1 to 86400 (seconds between samples), got 0",
      "sensors[0].address: must be one of 118, 119, got 64",
      'sensors[1].name: "climate" is used twice; each sensor needs its own topic',
    ]);
  });
  it("a missing field is called a field (with what it is), a missing section a section", () => {
    const c: any = good();
    delete c.prefix;
    delete c.interval;
    delete c.mqtt;
    expect(validateFlashConfig(c)).toEqual(['(top level): missing section "mqtt"', '(top level): missing field "prefix"', '(top level): missing field "interval" (seconds between samples)']);
  });
  it("reports a missing section, an unknown field and a bad secret", () => {
    const c: any = good();
    delete c.wifi;
    c.mqtt.pasword = "x";
    c.mqtt.password = { var: "X" };
    expect(validateFlashConfig(c)).toEqual([
      '(top level): missing section "wifi"',
      'mqtt: unknown field "pasword" (did you mean "password"?)',
      'mqtt.password: must be a string or {"env": "VARIABLE_NAME"}, got an object',
    ]);
  });
  it("says what a field takes and what it got, for each of a dozen broken configs", () => {
    const broken: [string, (c: any) => void, string][] = [
      ["a quoted number", (c) => (c.interval = "10"), 'interval: must be a whole number from 1 to 86400 (seconds between samples), got the string "10" (write 10 without quotes)'],
      ["a fraction", (c) => (c.interval = 2.5), "interval: must be a whole number from 1 to 86400 (seconds between samples), got 2.5"],
      ["a day and a second", (c) => (c.interval = 86401), "interval: must be a whole number from 1 to 86400 (seconds between samples), got 86401"],
      ["a port past 65535", (c) => (c.mqtt.url = "mqtt://192.168.1.10:99999"), "mqtt.url: port 99999 is out of range (1 to 65535; MQTT is 1883, over TLS 8883)"],
      ["port 0", (c) => (c.mqtt.url = "mqtt://192.168.1.10:0"), "mqtt.url: port 0 is out of range (1 to 65535; MQTT is 1883, over TLS 8883)"],
      ["an IPv4 part over 255", (c) => (c.mqtt.url = "mqtt://192.168.1.300:1883"), 'mqtt.url: "192.168.1.300" is not an IPv4 address (four numbers 0 to 255, like 192.168.1.10)'],
      ["three IPv4 parts", (c) => (c.mqtt.url = "mqtt://192.168.1:1883"), 'mqtt.url: "192.168.1" is not an IPv4 address (four numbers 0 to 255, like 192.168.1.10)'],
      ["an underscore in a host name", (c) => (c.mqtt.url = "mqtts://my_broker.lan"), 'mqtt.url: "my_broker.lan" is not a valid host name (letters, digits and "-" between dots, like broker.lan)'],
      ["a path after the port", (c) => (c.mqtt.url = "mqtt://broker.lan:1883/x"), 'mqtt.url: "mqtt://broker.lan:1883/x" does not have the right form (mqtt://host:port or mqtts://host:port)'],
      ["QoS 3", (c) => (c.qos = 3), "qos: must be one of 0, 1, 2, got 3"],
      ["an empty SSID", (c) => (c.wifi.ssid = ""), "wifi.ssid: must have 1 to 32 characters, got 0"],
      ["a keepalive as text", (c) => (c.mqtt.keepalive = "30s"), 'mqtt.keepalive: must be a whole number from 0 to 65535 (seconds), got the string "30s"'],
      ["sensors as an object", (c) => (c.sensors = { name: "climate" }), "sensors: must be a list [ ... ], got an object"],
      ["a misspelt field", (c) => (c.intervall = 10), '(top level): unknown field "intervall" (did you mean "interval"?)'],
    ];
    for (const [what, breakIt, message] of broken) {
      const c: any = good();
      breakIt(c);
      expect(validateFlashConfig(c), what).toEqual([message]);
    }
  });

  it("wisp build's check: every field, and the secrets it did not read named as such", () => {
    const dir = mkdtempSync(join(tmpdir(), "wisp-"));
    const file = join(dir, "flash.config.json");
    writeFileSync(file, JSON.stringify({ ...good(), mqtt: { url: "mqtt://127.0.0.1:1883", clientId: "kitchen", password: { env: "MQTT_PW" } }, prefix: "kitchen" }));
    const { notes } = checkFlashConfig(file, { MQTT_PW: "x" });
    expect(notes).toEqual([
      "not checked: wifi.password comes from $WIFI_PW, which is not set here; wisp flash and wisp hil read it when they write wisp.json for a board, and stop without it",
      "mqtt.password comes from $MQTT_PW (set here; read again when wisp flash writes wisp.json)",
      'prefix "kitchen" has no {id}: every node flashed with this file gets the same one (fine for a single node)',
      'mqtt.clientId "kitchen" has no {id}: every node flashed with this file gets the same one, and the broker drops one node when another connects',
      "mqtt.url points at 127.0.0.1: on a board that is the board itself, not this computer (fine for a simulated board)",
    ]);
  });

  it("outbox: false or an object, and a wrong maxBytes named as maxBytes (it was called a bad secret)", () => {
    const bad = (outbox: unknown) => validateFlashConfig({ ...good(), outbox });
    expect(bad({ maxBytes: 5000 })).toEqual(["outbox.maxBytes: must be a whole number of at least 8192, got 5000", "outbox.maxBytes: must be a multiple of 4,096, got 5000"]);
    expect(bad({ maxBytes: "65536" })).toEqual(['outbox.maxBytes: must be a whole number of at least 8192, got the string "65536" (write 65536 without quotes)']);
    expect(bad({ maxbytes: 65536 })).toEqual(['outbox: unknown field "maxbytes" (did you mean "maxBytes"?)']);
    expect(bad({ maxBytes: 10000 })).toEqual(["outbox.maxBytes: must be a multiple of 4,096, got 10000"]);
    expect(bad(true)).toEqual(['outbox: must be false or an object with "maxBytes", got true']);
    expect(bad(false)).toEqual([]);
    expect(bad({ maxBytes: 65536 })).toEqual([]);
  });
  it("rejects two sensors with one name", () => {
    const c: any = good();
    c.sensors.push({ name: "climate", type: "bme280", address: 119 });
    expect(validateFlashConfig(c)).toEqual(['sensors[1].name: "climate" is used twice; each sensor needs its own topic']);
  });
  it("accepts examples/garden.json, every sensor type with its options", () => {
    expect(() => loadFlashConfig(join(PROJECT_ROOT, "examples", "garden.json"))).not.toThrow();
  });
  it("has a valid one-sensor example per sensor type, on flash.config.json's prefix and client id (one broker folder serves them all)", () => {
    const types = loadFlashConfig(join(PROJECT_ROOT, "examples", "garden.json")).sensors.map((s) => s.type);
    const base = loadFlashConfig(join(PROJECT_ROOT, "flash.config.json"));
    for (const type of new Set(types)) {
      const c = loadFlashConfig(join(PROJECT_ROOT, "examples", `${type}.json`));
      expect(c.sensors.map((s) => s.type), type).toEqual([type]);
      expect([c.prefix, c.mqtt.clientId], type).toEqual([base.prefix, base.mqtt.clientId]);
    }
  });
  it("names a field that belongs to another sensor type, once, with the type's own fields", () => {
    const c: any = good();
    c.sensors = [
      { name: "a", type: "bme280", rom: "28ff" },
      { name: "b", type: "sht3x", address: 118 },
      { name: "c", type: "battery" },
      { name: "d", type: "ds18b20", resolution: 8 },
    ];
    expect(validateFlashConfig(c)).toEqual([
      'sensors[0]: "rom" is not a field of a bme280 sensor (its fields: name, type, address)',
      "sensors[1].address: must be one of 68, 69, got 118",
      'sensors[2]: missing field "pin"',
      "sensors[3].resolution: must be one of 9, 10, 11, 12, got 8",
    ]);
  });
  it("rejects what the schema cannot see: shared I2C addresses, DS18B20s sharing a pin without ROMs, bad ROM CRCs, pins the board lacks", () => {
    const c: any = good();
    c.sensors = [
      { name: "a", type: "sht3x" },
      { name: "b", type: "sht4x", address: 68 },
      { name: "c", type: "ds18b20" },
      { name: "d", type: "ds18b20", pin: 4 },
      { name: "e", type: "ds18b20", pin: 5, rom: "28ff4a1d931603d2" },
      { name: "f", type: "battery", pin: 4 },
      { name: "g", type: "ds18b20", pin: 21, rom: "28ff4a1d931603d1" },
      { name: "h", type: "battery", pin: 35, curve: [[3.3, 0], [3.2, 50]] },
    ];
    expect(validateFlashConfig(c)).toEqual([
      "sensors[1].address: 68 (0x44) is taken by sensors[0] (sht3x); two chips cannot answer at one address",
      "sensors[4].rom: 28ff4a1d931603d2 fails its CRC (the last two digits); copy it again from the node's log",
      "sensors[5].pin: GPIO 4 is not an ADC1 input of esp32-devkitc (32, 33, 34, 35, 36, 39); ADC2 does not work while Wi-Fi is on",
      "sensors[6].pin: GPIO 21 is the I2C bus's SDA",
      "sensors[7].curve[1]: volts must rise from point to point",
      'sensors[2].rom: 2 DS18B20 sensors share GPIO 4: give each its "rom" (the node logs the ROM codes it finds when one is missing)',
      "sensors[2].pin: GPIO 4 is also a battery input",
    ]);
  });
  it("throws a ConfigError naming the file for bad JSON", () => {
    const file = join(mkdtempSync(join(tmpdir(), "wisp-")), "flash.config.json");
    writeFileSync(file, "{ nope");
    expect(() => loadFlashConfig(file)).toThrow(ConfigError);
    expect(() => loadFlashConfig(file)).toThrow(`${file}:1:3: not valid JSON`);
  });
});

describe("wisp.json rendering", () => {
  it("takes secrets from the environment and pins from the board", () => {
    const device = renderDeviceConfig(good() as any, { env: { WIFI_PW: "pw" } });
    expect(device.wifi).toEqual({ ssid: "lab", password: "pw" });
    expect(device.mqtt.password).toBe("s3cret");
    expect(device.i2c).toEqual({ sda: 21, scl: 22, bitrate: 100000 });
    expect(device.sensors).toEqual([{ name: "climate", type: "bme280", address: 0x76 }]);
    expect(configError(device)).toBe("");
  });
  it("fills every sensor's defaults from its type and the board, and folds the battery's divider into one line", () => {
    const c: any = good();
    c.sensors = [
      { name: "a", type: "sht4x" },
      { name: "b", type: "bh1750", address: 92 },
      { name: "c", type: "ds18b20", rom: "28FF4A1D931603D1" },
      { name: "d", type: "battery", pin: 35, divider: 3 },
    ];
    c.homeAssistant = { discovery: true };
    const device = renderDeviceConfig(c, { env: { WIFI_PW: "pw" } });
    expect(device.sensors).toEqual([
      { name: "a", type: "sht4x", address: 0x44 },
      { name: "b", type: "bh1750", address: 0x5c },
      { name: "c", type: "ds18b20", pin: 4, rom: "28ff4a1d931603d1", resolution: 12 },
      { name: "d", type: "battery", pin: 35, divider: 3, scale: expect.closeTo(3 * 3.2999, 3), offset: expect.closeTo(0.426, 6), curve: expect.any(Array) },
    ]);
    expect(device.homeAssistant).toEqual({ discovery: true, prefix: "homeassistant", name: "wisp-{id}", model: "ESP32-DevKitC (ESP32-WROOM-32)" });
    expect(configError(device)).toBe("");
  });
  it("says which variable is missing", () => {
    expect(() => renderDeviceConfig(good() as any, { env: {}, file: "/x/flash.config.json" })).toThrow(
      "/x/flash.config.json cannot be written to the board as wisp.json:\n  wifi.password: environment variable WIFI_PW is not set (export WIFI_PW=... first, or write the value in the file)",
    );
    expect(() => renderDeviceConfig(good() as any, { env: { WIFI_PW: "" } })).toThrow("wifi.password: environment variable WIFI_PW is empty");
  });
  it("lets the simulator replace the network and the broker", () => {
    const device = renderDeviceConfig(good() as any, { env: {}, wifi: { ssid: "sim", password: "x" }, mqttUrl: "mqtt://127.0.0.1:1999" });
    expect(device.wifi.ssid).toBe("sim");
    expect(device.mqtt.url).toBe("mqtt://127.0.0.1:1999");
  });
});

describe("device-side checks", () => {
  it("explains what is wrong with a hand-written wisp.json", () => {
    expect(configError(undefined)).toBe("missing or not JSON");
    expect(configError({ wifi: { ssid: "x" }, mqtt: { url: "mqtt://h" }, prefix: "p", interval: 0, sensors: [] })).toBe("interval must be 1 to 86400 seconds");
  });
  it("expands {id} everywhere", () => {
    expect(expand("wisp/{id}/x/{id}", "abc")).toBe("wisp/abc/x/abc");
  });
});

describe("passwords in broker URLs", () => {
  it("are never printed: a bad mqtt.url names the field and shows the URL without its password", () => {
    const c: any = good();
    c.mqtt.url = "mqtt://node:hunter2@broker.lan:1883";
    const problems = validateFlashConfig(c);
    expect(problems.join("\n")).toMatch(/^mqtt\.url: "mqtt:\/\/node:\*\*\*@broker\.lan:1883" does not have the right form/);
    expect(problems.join("\n")).not.toContain("hunter2");
  });
  it("redactUrl keeps everything else", () => {
    expect(redactUrl("mqtt://u:p%40ss:w@h:1883/x")).toBe("mqtt://u:***@h:1883/x");
    expect(redactUrl("mqtt://user@h:1883")).toBe("mqtt://user@h:1883");
    expect(redactUrl("mqtt://h:1883")).toBe("mqtt://h:1883");
    expect(redactUrl("not a url")).toBe("not a url");
  });
});
