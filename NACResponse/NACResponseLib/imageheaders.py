"""What an image file's header claims, checked against the bytes the file holds, before ITK reads it.

ITK fills a short read with zeros and raises nothing, so a truncated ``.nii.gz`` would be
analysed as a whole image with a dark half.  :func:`check_image_file` parses the header of a
NIfTI-1/2 (plain or gzip), NRRD/NHDR (raw, gzip, bzip2) or MetaImage (``.mha``/``.mhd``, plain or
zlib) file, refuses a header that claims more than :data:`MAX_IMAGE_BYTES` (so a 94-byte file
cannot make us allocate gigabytes) and counts the pixel bytes, streaming through compressed
payloads without holding them.  A detached data file (``.mhd``'s ``ElementDataFile``, ``.nhdr``'s
``data file``) must lie inside the header's folder.  Formats or encodings it cannot size (DICOM,
ASCII NRRD, file lists) are left to ITK.
"""

from __future__ import annotations

import bz2
import gzip
import os
import re
import struct
import zlib
from pathlib import Path

from .errors import InputError
from .paths import within

#: The most pixel data one image may claim; NACRESPONSE_MAX_IMAGE_BYTES overrides it.
MAX_IMAGE_BYTES = int(os.environ.get("NACRESPONSE_MAX_IMAGE_BYTES", 4 * 1024**3))
_CHUNK = 1 << 20


def check_image_file(path: str | Path, max_bytes: int | None = None) -> None:
    """Raise :class:`InputError` when the file holds fewer pixel bytes than its header claims."""
    path = Path(path)
    name = path.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        _check_nifti(path, max_bytes)
    elif name.endswith((".nrrd", ".nhdr")):
        _check_nrrd(path, max_bytes)
    elif name.endswith((".mha", ".mhd")):
        _check_meta(path, max_bytes)


def _claim(path: Path, dims: list[int], type_size: float, max_bytes: int | None) -> int:
    if any(d < 0 for d in dims):
        raise InputError(f"{path}: header has a negative image size {dims}")
    n = 1
    for d in dims:
        n *= max(int(d), 1)
    claimed = int(n * type_size)
    limit = MAX_IMAGE_BYTES if max_bytes is None else max_bytes
    if claimed > limit:
        raise InputError(f"{path}: header claims {claimed / 1024**3:.1f} GiB of pixel data ({' x '.join(map(str, dims))} "
                         f"voxels), above the {limit / 1024**3:.1f} GiB limit (NACRESPONSE_MAX_IMAGE_BYTES); "
                         "a corrupt header or the wrong file")
    return claimed


def _short(path: Path, claimed: int, held: int, dims: list[int]) -> InputError:
    return InputError(f"{path}: truncated image: the header claims {claimed} bytes of pixel data "
                      f"({' x '.join(map(str, dims))} voxels) but the file holds {held}")


def _count(stream, needed: int, path: Path) -> int:
    """Bytes readable from ``stream``, stopping once ``needed`` are seen; corrupt streams are errors."""
    held = 0
    try:
        while held < needed:
            block = stream.read(min(_CHUNK, needed - held))
            if not block:
                break
            held += len(block)
    except (EOFError, OSError, zlib.error, ValueError):
        return held  # a compressed stream cut short: what came before counts, the rest is missing
    return held


class _ZlibStream:
    """A read() interface over a raw zlib stream (MetaImage CompressedData)."""

    def __init__(self, fh):
        self._fh, self._z, self._buf = fh, zlib.decompressobj(), b""

    def read(self, n: int) -> bytes:
        while len(self._buf) < n and not self._z.eof:
            raw = self._fh.read(_CHUNK)
            if not raw:
                break
            self._buf += self._z.decompress(raw)
        out, self._buf = self._buf[:n], self._buf[n:]
        return out


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def _open(path: Path):
    return gzip.open(path, "rb") if _is_gzip(path) else open(path, "rb")


#: Deflate expands at most ~1032:1; a file claiming more than this is short whatever its trailer says.
_MAX_DEFLATE_RATIO = 1032


def _gzip_trailer_matches(path: Path, expected: int) -> bool:
    """The fast path for an intact gzip file: its trailer (ISIZE, the uncompressed size mod 2^32)
    equals what the header implies.  A cut file ends in arbitrary deflate bytes instead, so a
    mismatch sends it to the full count that decides."""
    size = path.stat().st_size
    if size < 18 or expected > size * _MAX_DEFLATE_RATIO:
        return False
    with open(path, "rb") as fh:
        fh.seek(-4, 2)
        return struct.unpack("<I", fh.read(4))[0] == expected % 2**32


# ---- NIfTI ------------------------------------------------------------------------------------

def _check_nifti(path: Path, max_bytes: int | None) -> None:
    with _open(path) as fh:
        try:
            head = fh.read(540)
        except (EOFError, OSError, zlib.error):
            raise InputError(f"{path}: cannot read the NIfTI header (corrupt or truncated compressed file)") from None
        for endian in "<>":
            size = struct.unpack(f"{endian}i", head[:4])[0] if len(head) >= 4 else 0
            if size in (348, 540):
                break
        else:
            return  # not a NIfTI header: ITK reports it
        if len(head) < 348:
            raise InputError(f"{path}: truncated NIfTI file ({len(head)} bytes, the header alone has 348)")
        if size == 348:
            dims = list(struct.unpack(f"{endian}8h", head[40:56]))
            bitpix = struct.unpack(f"{endian}h", head[72:74])[0]
            offset = int(struct.unpack(f"{endian}f", head[108:112])[0])
            if head[344:347] != b"n+1":
                return  # a .hdr/.img pair or ANALYZE: ITK reports it
        else:
            if len(head) < 540:
                raise InputError(f"{path}: truncated NIfTI-2 file ({len(head)} bytes, the header alone has 540)")
            bitpix = struct.unpack(f"{endian}h", head[14:16])[0]
            dims = list(struct.unpack(f"{endian}8q", head[16:80]))
            offset = int(struct.unpack(f"{endian}q", head[168:176])[0])
        ndim = dims[0]
        if not 1 <= ndim <= 7 or bitpix <= 0:
            raise InputError(f"{path}: NIfTI header has {ndim} dimensions and {bitpix} bits per voxel")
        dims = dims[1:ndim + 1]
        claimed = _claim(path, dims, bitpix / 8, max_bytes)
        if _is_gzip(path) and _gzip_trailer_matches(path, max(offset, size) + claimed):
            return
        skip = max(offset, size) - len(head)
        if skip < 0:
            fh_rest = head[max(offset, size):]
            held = len(fh_rest) + _count(fh, claimed - len(fh_rest), path)
        else:
            if _count(fh, skip, path) < skip:
                raise _short(path, claimed, 0, dims)
            held = _count(fh, claimed, path)
    if held < claimed:
        raise _short(path, claimed, held, dims)


# ---- NRRD -------------------------------------------------------------------------------------

_NRRD_TYPES = {
    1: ("signed char", "int8", "int8_t", "uchar", "unsigned char", "uint8", "uint8_t"),
    2: ("short", "short int", "signed short", "signed short int", "int16", "int16_t", "ushort", "unsigned short",
        "unsigned short int", "uint16", "uint16_t"),
    4: ("int", "signed int", "int32", "int32_t", "uint", "unsigned int", "uint32", "uint32_t", "float"),
    8: ("longlong", "long long", "long long int", "signed long long", "signed long long int", "int64", "int64_t",
        "ulonglong", "unsigned long long", "unsigned long long int", "uint64", "uint64_t", "double"),
}
_NRRD_SIZE = {name: size for size, names in _NRRD_TYPES.items() for name in names}


def _check_nrrd(path: Path, max_bytes: int | None) -> None:
    fields: dict[str, str] = {}
    with open(path, "rb") as fh:
        if not fh.read(4) == b"NRRD":
            return
        fh.readline()
        while True:
            line = fh.readline()
            if not line or not line.strip():
                break
            text = line.decode("latin-1").rstrip("\r\n")
            if text.startswith("#") or ":=" in text or ":" not in text:
                continue
            key, _, value = text.partition(":")
            fields[key.strip().lower()] = value.strip()
        start = fh.tell()
    size = _NRRD_SIZE.get(fields.get("type", "").lower())
    encoding = fields.get("encoding", "raw").lower()
    try:
        dims = [int(v) for v in fields.get("sizes", "").split()]
    except ValueError:
        raise InputError(f"{path}: NRRD 'sizes' field is not a list of integers ({fields.get('sizes')!r})") from None
    data_file = fields.get("data file", fields.get("datafile"))
    if data_file is not None:
        if data_file.startswith("LIST") or "%" in data_file or len(data_file.split()) > 1:
            return
        data = (path.parent / data_file)
        if not within(path.parent, data):
            raise InputError(f"{path}: its data file {data_file!r} lies outside the header's folder; refused")
        if not data.is_file():
            raise InputError(f"{path}: data file {data_file!r} not found")
        start = 0
    else:
        data = path
    if size is None or not dims or encoding not in ("raw", "gzip", "gz", "bzip2", "bz2"):
        return
    if int(fields.get("line skip", "0") or 0) or int(fields.get("byte skip", "0") or 0) < 0:
        return
    claimed = _claim(path, dims, size, max_bytes)
    skip = int(fields.get("byte skip", "0") or 0)
    if encoding in ("gzip", "gz") and skip == 0 and _gzip_trailer_matches(data, claimed):
        return
    with open(data, "rb") as fh:
        fh.seek(start)
        if encoding == "raw":
            fh.seek(skip, 1)
            held = _count(fh, claimed, path)
        else:
            opener = gzip.GzipFile if encoding in ("gzip", "gz") else bz2.BZ2File
            with opener(fileobj=fh) as stream:
                held = _count(stream, skip, path) - skip
                held = _count(stream, claimed, path) if held >= 0 else 0
    if held < claimed:
        raise _short(path, claimed, held, dims)


# ---- MetaImage --------------------------------------------------------------------------------

_META_SIZE = {"MET_CHAR": 1, "MET_UCHAR": 1, "MET_SHORT": 2, "MET_USHORT": 2, "MET_INT": 4, "MET_UINT": 4,
              "MET_LONG_LONG": 8, "MET_ULONG_LONG": 8, "MET_FLOAT": 4, "MET_DOUBLE": 8}
_META_LINE = re.compile(r"^\s*([A-Za-z0-9_]+)\s*=\s*(.*?)\s*$")


def meta_data_file(path: str | Path) -> str | None:
    """The ``ElementDataFile`` of a MetaImage header (None when absent)."""
    return _meta_header(Path(path))[0].get("ElementDataFile")


def _meta_header(path: Path) -> tuple[dict[str, str], int]:
    fields: dict[str, str] = {}
    with open(path, "rb") as fh:
        for _ in range(200):  # a header is a few dozen lines; ElementDataFile ends it
            line = fh.readline(4096)
            if not line:
                break
            m = _META_LINE.match(line.decode("latin-1"))
            if not m:
                break
            fields[m.group(1)] = m.group(2)
            if m.group(1) == "ElementDataFile":
                break
        return fields, fh.tell()


def _check_meta(path: Path, max_bytes: int | None) -> None:
    fields, start = _meta_header(path)
    data_file = fields.get("ElementDataFile")
    if data_file is None:
        return
    if data_file.upper() == "LOCAL":
        data = path
    elif data_file.upper().startswith("LIST") or "%" in data_file or len(data_file.split()) > 1:
        return
    else:
        data = path.parent / data_file
        if not within(path.parent, data):
            raise InputError(f"{path}: its ElementDataFile {data_file!r} lies outside the header's folder; refused")
        if not data.is_file():
            raise InputError(f"{path}: ElementDataFile {data_file!r} not found")
        start = 0
    size = _META_SIZE.get(fields.get("ElementType", ""))
    try:
        dims = [int(v) for v in fields.get("DimSize", "").split()]
        channels = int(fields.get("ElementNumberOfChannels", "1"))
        header_size = int(fields.get("HeaderSize", "0"))
    except ValueError:
        raise InputError(f"{path}: MetaImage DimSize / ElementNumberOfChannels / HeaderSize are not integers") from None
    if size is None or not dims or header_size < 0:
        return
    claimed = _claim(path, dims, size * channels, max_bytes)
    compressed = fields.get("CompressedData", "False").lower() == "true"
    with open(data, "rb") as fh:
        fh.seek(start + header_size)
        held = _count(_ZlibStream(fh) if compressed else fh, claimed, path)
    if held < claimed:
        raise _short(path, claimed, held, dims)
