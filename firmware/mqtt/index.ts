// dist/mqtt.js: the client as an Espruino module, `require("wisp-mqtt").connect(url, options)`.
import { Client, ClientOptions } from "./client";

exports.connect = function (url: string, options?: ClientOptions) {
  return new Client(url, options);
};
