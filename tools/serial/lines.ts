// The board's console output as the lines a terminal would show: `\r` returns to the start of the
// line, `\b` steps back, `ESC [ J` erases what follows, other escape sequences and control bytes
// (ACK, NAK, XON, XOFF) show nothing, and packet-protocol replies (DLE SOH, header, data) are not
// text. What is left of a line when `\n` comes is one line of the node's log.

const DLE = 0x10;
const SOH = 0x01;

export class ConsoleLines {
  private line: number[] = [];
  private cursor = 0;
  private state: "text" | "esc" | "csi" | "dle" | "header0" | "header1" | "packet" = "text";
  private remaining = 0;

  constructor(private readonly emit: (line: string) => void) {}

  write(bytes: Uint8Array): void {
    for (const b of bytes) this.byte(b);
  }

  private byte(b: number): void {
    switch (this.state) {
      case "esc":
        this.state = b === 0x5b ? "csi" : "text";
        return;
      case "csi":
        if (b >= 0x40 && b <= 0x7e) {
          if (b === 0x4a || b === 0x4b) this.line.length = this.cursor; // J, K: erase to the end
          this.state = "text";
        }
        return;
      case "dle":
        this.state = b === SOH ? "header0" : "text";
        if (this.state === "text") this.byte(b);
        return;
      case "header0":
        this.remaining = (b & 0x1f) << 8;
        this.state = "header1";
        return;
      case "header1":
        this.remaining |= b;
        this.state = this.remaining > 0 ? "packet" : "text";
        return;
      case "packet":
        if (--this.remaining === 0) this.state = "text";
        return;
    }
    if (b === 0x0a) {
      this.emit(Buffer.from(this.line).toString("latin1").trimEnd());
      this.line = [];
      this.cursor = 0;
    } else if (b === 0x0d) this.cursor = 0;
    else if (b === 0x08) this.cursor = Math.max(0, this.cursor - 1);
    else if (b === 0x1b) this.state = "esc";
    else if (b === DLE) this.state = "dle";
    else if (b >= 0x20 || b === 0x09) {
      while (this.line.length < this.cursor) this.line.push(0x20);
      this.line[this.cursor++] = b === 0x09 ? 0x20 : b;
    }
  }
}
