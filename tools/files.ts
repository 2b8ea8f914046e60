// The user's files as every command reads them: one way to show a path, one set of messages for a
// file that is missing, unreadable or not valid JSON (with its line, column and the line itself).

import { readFileSync } from "node:fs";
import * as path from "node:path";
import { type ParseError, parse as parseJsonc, printParseErrorCode } from "jsonc-parser";

/**
 * A path as the user would type it from where they are: relative to the working directory when
 * the file is inside it (`flash.config.json`, `broker/passwords.json`), absolute otherwise.
 */
export function displayPath(file: string, cwd = process.cwd()): string {
  const absolute = path.resolve(cwd, file);
  const relative = path.relative(cwd, absolute);
  return relative === "" ? "." : relative.startsWith("..") || path.isAbsolute(relative) ? absolute : relative;
}

/** A file that cannot be read or is not valid JSON; the message says which and where. */
export class FileError extends Error {
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Reads a text file the user named. `what` names it in messages ("the config", "the scenario"),
 * `hint` says how to name another one (e.g. "-c FILE picks another").
 */
export function readUserFile(file: string, what: string, hint = ""): string {
  try {
    return readFileSync(file, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const shown = displayPath(file);
    const where = shown === path.resolve(file) ? "" : ` (${path.resolve(file)})`;
    const more = hint ? `; ${hint}` : "";
    switch (code) {
      case "ENOENT":
        throw new FileError(file, `${what} ${shown} does not exist${where}${more}`);
      case "EISDIR":
        throw new FileError(file, `${what} ${shown} is a folder, not a file${more}`);
      case "EACCES":
      case "EPERM":
        throw new FileError(file, `${what} ${shown} cannot be read: permission denied (ls -l ${shown})`);
      default:
        throw new FileError(file, `${what} ${shown} cannot be read: ${(err as Error).message}`);
    }
  }
}

/** Line and column (both from 1) of a character offset. */
export function lineColumn(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, offset);
  const line = before.split("\n").length;
  return { line, column: offset - (before.lastIndexOf("\n") + 1) + 1 };
}

/** The line at `line` with the one before it and a caret under `column`, for an error message. */
export function codeFrame(text: string, line: number, column: number): string {
  const lines = text.split("\n");
  const width = String(line).length;
  const show = (n: number) => `  ${String(n).padStart(width)} | ${(lines[n - 1] ?? "").replace(/\t/g, " ").replace(/\r$/, "")}`;
  const frame = line > 1 ? [show(line - 1), show(line)] : [show(line)];
  frame.push(`  ${" ".repeat(width)} | ${" ".repeat(Math.max(0, column - 1))}^`);
  return frame.join("\n");
}

/**
 * JSON.parse with an error a person can act on: where (line, column, the line with a caret) and
 * what, in words, with the usual causes (a trailing comma, a missing comma or quote, a comment)
 * named. V8's own message gives no position for some mistakes, so jsonc-parser (the JSON scanner
 * of VS Code) locates the first one. Throws FileError; its message starts with "<file>:<line>:<column>: ".
 */
export function parseJson(text: string, file: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    // located below
  }
  const shown = displayPath(file);
  if (text.trim() === "") throw new FileError(file, `${shown} is empty: it must hold a JSON object`);
  const errors: ParseError[] = [];
  parseJsonc(text, errors, { disallowComments: true, allowTrailingComma: false });
  const first = errors[0] ?? { error: 0, offset: 0, length: 0 };
  // jsonc-parser's error codes are a const enum; their names are what it exports at run time
  const code = errors[0] ? printParseErrorCode(first.error) : "ValueExpected";
  let offset = first.offset;
  const at = text[offset];
  let prev = offset - 1;
  while (prev >= 0 && /\s/.test(text[prev]!)) prev--;
  const atEnd = text.slice(offset + Math.max(1, first.length)).trim() === "";
  let what: string;
  switch (code) {
    case "PropertyNameExpected":
    case "ValueExpected":
      if (text[prev] === "," && (at === "}" || at === "]")) {
        offset = prev;
        what = `a trailing comma: JSON allows no comma after the last ${at === "}" ? "field" : "item"}; remove it`;
      } else if (offset >= text.trimEnd().length) {
        what = "the file ends too early: a closing } or ] is missing";
      } else if (code === "PropertyNameExpected") {
        what = 'a field name in double quotes was expected here ("name": value)';
      } else {
        what = "a value was expected here (a number, a \"string\", true, false, null, { } or [ ])";
      }
      break;
    case "InvalidSymbol":
      what =
        at === "'"
          ? "strings and names in JSON take double quotes, not single ones"
          : /[A-Za-z_$]/.test(at ?? "")
            ? "names and strings need double quotes (JSON has no bare words but true, false and null)"
            : `${JSON.stringify(at)} cannot stand here`;
      break;
    case "CommaExpected":
      what = at === "}" || at === "]" ? `this ${at} does not close what is open here: a ${at === "}" ? "]" : "}"} is missing before it` : "a comma is missing before this";
      break;
    case "ColonExpected":
      what = 'a colon is missing after the field name ("name": value)';
      break;
    case "CloseBraceExpected":
    case "CloseBracketExpected": {
      const close = code === "CloseBraceExpected" ? "}" : "]";
      if (atEnd) {
        offset = text.trimEnd().length;
        what = `the file ends too early: a closing ${close} is missing`;
      } else what = `a comma or a closing ${close} was expected here`;
      break;
    }
    case "InvalidCommentToken":
      what = "JSON has no comments: remove it (a \"description\" field can say the same)";
      break;
    case "UnexpectedEndOfString":
      what = 'a string is not closed on its line (a missing ")';
      break;
    case "EndOfFileExpected":
      what = "something follows the end of the JSON value: an extra } or ], or two objects in one file";
      break;
    case "InvalidNumberFormat":
      what = "not a number JSON allows (no leading zeros, no hex, no trailing dot)";
      break;
    default:
      what = code;
  }
  const { line, column } = lineColumn(text, offset);
  throw new FileError(file, `${shown}:${line}:${column}: not valid JSON: ${what}\n${codeFrame(text, line, column)}`);
}

/** readUserFile + parseJson. */
export function readJsonFile(file: string, what: string, hint = ""): unknown {
  return parseJson(readUserFile(file, what, hint), file);
}
