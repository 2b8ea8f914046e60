// Where the project is, for every tool (a module of its own so build.ts and config.ts can import
// each other's functions without a circular top-level import).
import * as path from "node:path";
import { fileURLToPath } from "node:url";

export const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
