"""Truncated and short image files are refused before ITK pads them with zeros.

References: the NIfTI-1 header layout (nifti1.h: sizeof_hdr at 0, dim[8] at 40, bitpix at 72,
vox_offset at 108, magic at 344), the NRRD and MetaImage header fields; the expected payload is
re-derived as dims x type size, independent of our reader.
"""

from __future__ import annotations

import gzip
import struct
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import SimpleITK as sitk

from NACResponseLib.errors import InputError
from NACResponseLib.imageheaders import check_image_file
from NACResponseLib.imageio import read_image

FORMATS = [(".nii", False), (".nii.gz", True), (".nrrd", False), (".nrrd", True), (".mha", False), (".mha", True),
           (".mhd", False)]


def _image() -> sitk.Image:
    rng = np.random.default_rng(0)
    return sitk.GetImageFromArray(rng.integers(1, 1000, size=(16, 32, 32)).astype(np.int16))


def _write(tmp_path, suffix, compress):
    path = tmp_path / f"img{suffix}"
    sitk.WriteImage(_image(), str(path), compress)
    return path


def _data_file(path):
    return path.with_suffix(".raw") if path.suffix == ".mhd" else path


@pytest.mark.parametrize(("suffix", "compress"), FORMATS)
def test_whole_files_read(tmp_path, suffix, compress):
    path = _write(tmp_path, suffix, compress)
    image = read_image(path)
    assert np.array_equal(sitk.GetArrayFromImage(image), sitk.GetArrayFromImage(_image()))


@pytest.mark.parametrize(("suffix", "compress"), FORMATS)
def test_file_cut_to_half_is_refused(tmp_path, suffix, compress):
    path = _write(tmp_path, suffix, compress)
    data = _data_file(path)
    blob = data.read_bytes()
    data.write_bytes(blob[: len(blob) // 2])
    # ITK itself does not always notice (it pads a short read with zeros): we must.
    with pytest.raises(InputError, match=r"img\.(nii|nrrd|mha|mhd).*(truncated|cannot read)"):
        read_image(path)


def _nifti_header(dims, bitpix=16, datatype=4) -> bytes:
    """A NIfTI-1 single-file header (nifti1.h layout), without pixel data."""
    hdr = bytearray(352)
    struct.pack_into("<i", hdr, 0, 348)
    full = [len(dims), *dims] + [1] * (7 - len(dims))
    struct.pack_into("<8h", hdr, 40, *full)
    struct.pack_into("<hh", hdr, 70, datatype, bitpix)
    struct.pack_into("<8f", hdr, 76, 1, 1, 1, 1, 1, 1, 1, 1)
    struct.pack_into("<f", hdr, 108, 352.0)
    hdr[344:348] = b"n+1\0"
    return bytes(hdr)


def test_header_only_nifti_is_refused(tmp_path):
    path = tmp_path / "header_only.nii.gz"
    path.write_bytes(gzip.compress(_nifti_header([64, 64, 32])))
    assert len(path.read_bytes()) < 300
    with pytest.raises(InputError, match=r"truncated image: the header claims 262144 bytes .* holds 0"):
        read_image(path)


def test_small_file_claiming_a_huge_volume_allocates_nothing(tmp_path):
    """The probe: a ~94-byte file whose header claims 1024^3 voxels must fail before any allocation."""
    path = tmp_path / "bomb.nii.gz"
    blob = gzip.compress(_nifti_header([1024, 1024, 1024], bitpix=8, datatype=2), 9)
    # a forged gzip trailer claiming the full size must not open the fast path
    path.write_bytes(blob[:-4] + struct.pack("<I", (352 + 1024**3) % 2**32))
    assert path.stat().st_size < 120
    code = textwrap.dedent(f"""
        import resource, sys
        from NACResponseLib.errors import InputError
        from NACResponseLib.imageio import read_image
        try:
            read_image({str(path)!r})
        except InputError as exc:
            print("refused:", exc)
        # The child's own peak (VmHWM of its address space).  ru_maxrss is not: Linux keeps the
        # high-water mark of the address space exec() replaced, which under vfork is pytest's.
        peak = [line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:")]
        print("maxrss_kb", peak[0] if peak else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True).stdout
    assert "refused:" in out and "truncated" in out
    assert int(out.split("maxrss_kb")[1]) < 600_000  # well under the 1 GiB a read would allocate


def test_header_claim_above_the_limit_is_refused(tmp_path):
    path = _write(tmp_path, ".nii.gz", True)
    with pytest.raises(InputError, match="above the 0.0 GiB limit"):
        check_image_file(path, max_bytes=1000)


def test_mhd_data_file_outside_its_folder_is_refused(tmp_path):
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret" / "data.raw").write_bytes(b"\0" * 8)
    (tmp_path / "src").mkdir()
    header = tmp_path / "src" / "img.mhd"
    header.write_text("ObjectType = Image\nNDims = 3\nDimSize = 2 2 2\nElementType = MET_UCHAR\n"
                      "ElementDataFile = ../secret/data.raw\n")
    with pytest.raises(InputError, match="outside the header's folder"):
        read_image(header)
