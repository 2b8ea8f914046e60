// Espruino's flash file system, required once for the whole firmware.
export const storage = require("Storage");
