// dist/firmware.js: the sensor-node application, uploaded to Storage as .bootcde and run at boot.
import { start } from "./node/app";

start();
