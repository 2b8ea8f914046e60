import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError, loadFlashConfig, renderDeviceConfig, validateFlashConfig } from "../../tools/config.ts";
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
      'board: must be one of "esp32-devkitc"',
      'mqtt.url: "http://x" does not have the right form (mqtt://host:port or mqtts://host:port)',
      "interval: must be >= 1",
      "sensors[0].address: must be one of 118, 119",
    ]);
  });
  it("reports a missing section, an unknown field and a bad secret", () => {
    const c: any = good();
    delete c.wifi;
    c.mqtt.pasword = "x";
    c.mqtt.password = { var: "X" };
    expect(validateFlashConfig(c)).toEqual([
      '(top level): missing section "wifi"',
      'mqtt: unknown field "pasword" (check its spelling against flash.schema.json)',
      'mqtt.password: must be a string or {"env": "VARIABLE_NAME"}',
    ]);
  });
  it("rejects two sensors with one name", () => {
    const c: any = good();
    c.sensors.push({ name: "climate", type: "bme280", address: 119 });
    expect(validateFlashConfig(c)).toEqual(['sensors[1].name: "climate" is used twice; each sensor needs its own topic']);
  });
  it("throws a ConfigError naming the file for bad JSON", () => {
    const file = join(mkdtempSync(join(tmpdir(), "wisp-")), "flash.config.json");
    writeFileSync(file, "{ nope");
    expect(() => loadFlashConfig(file)).toThrow(ConfigError);
    expect(() => loadFlashConfig(file)).toThrow(file);
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
  it("says which variable is missing", () => {
    expect(() => renderDeviceConfig(good() as any, { env: {} })).toThrow("wifi.password: environment variable WIFI_PW is not set");
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
