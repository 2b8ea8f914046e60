// The simulated board's SPI NOR flash chip (4 MB on an ESP32-WROOM-32), as the ROM bootloader and
// the flasher stub see it: erased bytes read 0xFF, erasing works on 4 KB sectors, and programming
// can only clear bits (what is stored is the old byte AND the new one), as on every NOR flash
// (W25Q32 and GD25Q32 datasheets, "Page Program": bits go from 1 to 0 only).
//
// Sectors nobody wrote are not stored, so a fleet of simulated boards costs little memory.
// Espruino's Storage partition is simulated one level up, as files (storage.ts FlashStorage):
// erasing any part of its area here erases those files too, which is what a real erase does to the
// file system; bytes the ROM programs there are kept here but not read as files.

export const SECTOR_BYTES = 4096;

/**
 * Typical timings (W25Q32JV datasheet, AC characteristics): 4 KB sector erase, 64 KB block erase,
 * chip erase, page program. An erase uses 64 KB blocks where the range covers whole ones, as the
 * flasher stub does.
 */
export const FLASH_TIMING = { sectorEraseUs: 45_000, blockEraseUs: 150_000, chipEraseUs: 10_000_000, pageProgramUs: 700, pageBytes: 256 };
const BLOCK_BYTES = 65536;

export interface FlashFault {
  /** The byte that programs wrong. */
  address: number;
  /** Bits that come out 0 although 1 was written (a weak or stuck cell). */
  mask: number;
  /** "once": the next program of that byte only; "stuck": every one. */
  kind: "once" | "stuck";
}

export class SpiFlash {
  readonly size: number;
  /** Erase and program operations so far, for tests. */
  readonly stats = { sectorErases: 0, bytesProgrammed: 0 };
  /** Bumped by every erase and program: a reader can tell whether what it parsed is still current. */
  generation = 0;
  /** Called with each erased range (address, length), after the erase. */
  onErase: ((address: number, length: number) => void) | undefined;

  private readonly sectors = new Map<number, Uint8Array>();
  private faults: FlashFault[] = [];

  constructor(size: number) {
    this.size = size;
  }

  read(address: number, length: number): Uint8Array {
    this.check(address, length);
    const out = new Uint8Array(length).fill(0xff);
    for (let at = address; at < address + length; ) {
      const index = Math.floor(at / SECTOR_BYTES);
      const start = at - index * SECTOR_BYTES;
      const n = Math.min(SECTOR_BYTES - start, address + length - at);
      const sector = this.sectors.get(index);
      if (sector) out.set(sector.subarray(start, start + n), at - address);
      at += n;
    }
    return out;
  }

  /** Erases every sector the range touches; returns the µs it takes. */
  erase(address: number, length: number): number {
    if (length <= 0) return 0;
    this.check(address, length);
    const first = Math.floor(address / SECTOR_BYTES);
    const last = Math.floor((address + length - 1) / SECTOR_BYTES);
    for (let i = first; i <= last; i++) this.sectors.delete(i);
    this.generation++;
    this.stats.sectorErases += last - first + 1;
    this.onErase?.(first * SECTOR_BYTES, (last - first + 1) * SECTOR_BYTES);
    const start = first * SECTOR_BYTES;
    const end = (last + 1) * SECTOR_BYTES;
    const blocks = Math.max(0, Math.floor(end / BLOCK_BYTES) - Math.ceil(start / BLOCK_BYTES));
    const sectors = last - first + 1 - (blocks * BLOCK_BYTES) / SECTOR_BYTES;
    return blocks * FLASH_TIMING.blockEraseUs + sectors * FLASH_TIMING.sectorEraseUs;
  }

  /** The whole chip (esptool's erase_flash). */
  eraseAll(): number {
    this.sectors.clear();
    this.generation++;
    this.stats.sectorErases += this.size / SECTOR_BYTES;
    this.onErase?.(0, this.size);
    return FLASH_TIMING.chipEraseUs;
  }

  /** Programs `data` at `address` (bits can only be cleared); returns the µs it takes. */
  program(address: number, data: Uint8Array): number {
    this.check(address, data.length);
    for (let i = 0; i < data.length; ) {
      const at = address + i;
      const index = Math.floor(at / SECTOR_BYTES);
      const start = at - index * SECTOR_BYTES;
      const n = Math.min(SECTOR_BYTES - start, data.length - i);
      let sector = this.sectors.get(index);
      if (!sector) {
        sector = new Uint8Array(SECTOR_BYTES).fill(0xff);
        this.sectors.set(index, sector);
      }
      for (let j = 0; j < n; j++) sector[start + j]! &= this.faulty(at + j, data[i + j]!);
      i += n;
    }
    this.generation++;
    this.stats.bytesProgrammed += data.length;
    return Math.ceil(data.length / FLASH_TIMING.pageBytes) * FLASH_TIMING.pageProgramUs;
  }

  /** A byte that will program wrong (see FlashFault); for tests of the MD5 check. */
  injectFault(fault: FlashFault): void {
    this.faults.push(fault);
  }

  private faulty(address: number, byte: number): number {
    if (this.faults.length === 0) return byte;
    const i = this.faults.findIndex((f) => f.address === address);
    if (i < 0) return byte;
    const fault = this.faults[i]!;
    if (fault.kind === "once") this.faults.splice(i, 1);
    return byte & ~fault.mask;
  }

  private check(address: number, length: number): void {
    if (address < 0 || length < 0 || address + length > this.size) {
      throw new RangeError(`flash access 0x${address.toString(16)}+${length} is outside the ${this.size / 1048576} MB chip`);
    }
  }
}
