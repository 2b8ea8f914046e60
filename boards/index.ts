// Every board Wisp knows, by id (the `board` of flash.config.json).
import { esp32DevkitC } from "./esp32-devkitc";
import type { Board } from "./types";

export type { Board } from "./types";
export { esp32DevkitC };

export const boards: Record<string, Board> = { "esp32-devkitc": esp32DevkitC };
