// dist/mqtt.js: the client as an Espruino module, `require("wisp-mqtt").connect(url, options)`.
import { connect } from "./client";

exports.connect = connect;
