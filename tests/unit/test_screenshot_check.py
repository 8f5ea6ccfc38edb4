"""The screenshot check decodes PNGs with every row filter and tells a blank image from one
that shows something."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest

from tests.fixtures.browser import _paeth, assert_not_blank, read_png

WHITE = b"\xff\xff\xff"
INK = b"\x20\x30\x40"
EDGE = b"\x90\x98\xa0"


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def filtered(kind: int, row: bytes, previous: bytes, bpp: int) -> bytes:
    """`row` as a PNG encoder writes it with filter `kind`."""
    out = bytearray()
    for i, value in enumerate(row):
        left = row[i - bpp] if i >= bpp else 0
        up_left = previous[i - bpp] if i >= bpp else 0
        predicted = [0, left, previous[i], (left + previous[i]) >> 1][kind] if kind < 4 else 0
        if kind == 4:
            predicted = _paeth(left, previous[i], up_left)
        out.append((value - predicted) & 0xFF)
    return bytes([kind]) + bytes(out)


def write_png(path: Path, rows: list[bytes], width: int, channels: int = 3) -> Path:
    colour = {3: 2, 4: 6}[channels]
    previous = bytes(width * channels)
    raw = b""
    for y, row in enumerate(rows):
        raw += filtered(y % 5, row, previous, channels)
        previous = row
    header = struct.pack(">IIBBBBB", width, len(rows), 8, colour, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )
    return path


def page_with_text(width: int = 60, height: int = 40) -> list[bytes]:
    """White, with a dark block of 'text' whose edges are anti-aliased grey."""
    rows = []
    for y in range(height):
        row = bytearray(WHITE * width)
        if 10 <= y < 30:
            for x in range(5, 55):
                row[x * 3 : x * 3 + 3] = EDGE if x in (5, 54) or y in (10, 29) else INK
        rows.append(bytes(row))
    return rows


def test_every_filter_decodes_to_the_pixels_written(tmp_path: Path):
    rows = [
        bytes((x * 7 + y * 13 + c * 50) % 256 for x in range(9) for c in range(4))
        for y in range(10)
    ]
    image = read_png(write_png(tmp_path / "rgba.png", rows, width=9, channels=4))
    assert (image.width, image.height, image.channels) == (9, 10, 4)
    assert image.rows == rows


def test_a_page_with_text_is_not_blank(tmp_path: Path):
    marks = assert_not_blank(write_png(tmp_path / "text.png", page_with_text(), width=60))
    assert marks.background == WHITE
    assert marks.marked == 50 * 20
    assert marks.colours == 3


@pytest.mark.parametrize("colour", [WHITE, b"\x00\x00\x00", INK])
def test_a_uniform_image_is_blank(tmp_path: Path, colour: bytes):
    png = write_png(tmp_path / "blank.png", [colour * 60] * 40, width=60)
    with pytest.raises(AssertionError, match="is blank: 0 of 2400 pixels"):
        assert_not_blank(png)


def test_a_single_box_without_edges_is_blank(tmp_path: Path):
    rows = [WHITE * 60] * 10 + [WHITE * 5 + INK * 50 + WHITE * 5] * 20 + [WHITE * 60] * 10
    with pytest.raises(AssertionError, match="in 2 colours"):
        assert_not_blank(write_png(tmp_path / "box.png", rows, width=60))


def test_what_is_not_a_png_is_refused(tmp_path: Path):
    (tmp_path / "page.html").write_text("<h1>not an image</h1>")
    with pytest.raises(ValueError, match="is not a PNG"):
        read_png(tmp_path / "page.html")


def test_the_background_is_the_most_common_colour_not_a_corner(tmp_path: Path):
    toolbar = [INK * 60] * 4
    marks = assert_not_blank(write_png(tmp_path / "bar.png", toolbar + page_with_text()[4:], 60))
    assert marks.background == WHITE
    assert marks.marked == 4 * 60 + 50 * 20
