import struct
import tempfile
import zlib

from cog import BasePredictor, Input, Path


def _chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def write_png(path: str, width: int, height: int, rows: list) -> None:
    """8-bit RGB PNG; ``rows`` is a list of ``bytes`` of length 3 * width."""
    raw = b"".join(b"\x00" + row for row in rows)  # filter type 0 per scanline
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    with open(path, "wb") as fh:
        fh.write(b"\x89PNG\r\n\x1a\n")
        fh.write(_chunk(b"IHDR", header))
        fh.write(_chunk(b"IDAT", zlib.compress(raw, 6)))
        fh.write(_chunk(b"IEND", b""))


def _hex_color(value: str) -> tuple:
    value = value.lstrip("#")
    if len(value) != 6:
        raise ValueError("color must look like #rrggbb")
    return tuple(int(value[i : i + 2], 16) for i in (0, 2, 4))


class Predictor(BasePredictor):
    def predict(
        self,
        width: int = Input(description="Image width in pixels", default=256, ge=8, le=1024),
        height: int = Input(description="Image height in pixels", default=256, ge=8, le=1024),
        color: str = Input(description="Colour of the set, #rrggbb", default="#3a7bd5"),
        iterations: int = Input(description="Escape-time iterations", default=40, ge=1, le=500),
    ) -> Path:
        """A Mandelbrot set, shaded by escape time."""
        red, green, blue = _hex_color(color)
        rows = []
        for y in range(height):
            ci = (y / height) * 2.4 - 1.2
            row = bytearray()
            for x in range(width):
                cr = (x / width) * 3.2 - 2.2
                zr = zi = 0.0
                n = 0
                while n < iterations and zr * zr + zi * zi <= 4.0:
                    zr, zi = zr * zr - zi * zi + cr, 2 * zr * zi + ci
                    n += 1
                shade = n / iterations
                row += bytes((int(red * shade), int(green * shade), int(blue * shade)))
            rows.append(bytes(row))
        out = Path(tempfile.mkdtemp()) / "mandelbrot.png"
        write_png(str(out), width, height, rows)
        return out
