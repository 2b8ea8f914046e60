#!/usr/bin/env node
// The `wisp` command. The tools are TypeScript; tsx runs them on Node 20 without a compile step.
import { register } from "tsx/esm/api";
register();
await import("./cli.ts");
