"""Our extraction path reproduces pyradiomics' own baseline values (../shared/data/pyradiomics/baseline).

Every configuration column for breast1 and brain1 is run through ``NACResponseLib.radiomics.extract``
with the settings recorded in the CSV's diagnostics rows, and every feature must match to 1e-6
relative.  The 2D-shape baseline uses pyradiomics' single-slice masks (``<case>_2D``), rebuilt
here from the 3D label and verified against the mask hash recorded in the baseline.
"""

from __future__ import annotations

import ast
import csv
import json
from collections import defaultdict

import numpy as np
import pytest

CASES = ("breast1", "brain1")
RTOL = 1e-6

# pyradiomics 3.0.1's own mesh for brain1 (non-identity direction matrix) differs by < 0.2 % from the
# baseline generated with pyradiomics 2.0.1; pyradiomics' own test suite allows 3 %.  For these we
# require agreement with pyradiomics' shape class called directly (our path adds nothing) and the
# baseline within 0.2 %.
KNOWN_DEVIATIONS = {
    ("brain1", "original_shape_MeshVolume"), ("brain1", "original_shape_SurfaceArea"),
    ("brain1", "original_shape_Sphericity"), ("brain1", "original_shape_SurfaceVolumeRatio"),
}
TWO_D_SLICE = {"breast1": 9, "brain1": 16}


def _read_baselines(folder):
    out = {}
    for path in sorted(folder.glob("baseline_*.csv")):
        cls = path.stem[len("baseline_"):]
        with open(path, newline="") as fh:
            rows = list(csv.reader(fh))
        header = rows[0][1:]
        out[cls] = {col: {r[0]: r[i + 1] for r in rows[1:]} for i, col in enumerate(header)}
    return out


def _configurations(folder):
    """(case, config, testcase) -> {class: column dict}, grouped so identical settings run once."""
    groups = defaultdict(dict)
    for cls, columns in _read_baselines(folder).items():
        for config, column in columns.items():
            case = column["diagnostics_Configuration_TestCase"]
            if case.split("_")[0] not in CASES:
                continue
            groups[(case.split("_")[0], config, case)][cls] = column
    return groups


@pytest.fixture(scope="module")
def baseline(shared_data):
    return _configurations(shared_data / "pyradiomics" / "baseline")


def _params(column, cls):
    settings = ast.literal_eval(column["diagnostics_Configuration_Settings"])
    image_types = ast.literal_eval(column["diagnostics_Configuration_EnabledImageTypes"])
    if cls == "shape":
        settings["resegmentRange"] = None  # as pyradiomics' own tests: no resegmentation for shape
    return image_types, settings


def _mask(shared_data, case, testcase):
    import SimpleITK as sitk

    mask = sitk.ReadImage(str(shared_data / "pyradiomics" / f"{case}_label.nrrd"), sitk.sitkUInt32)
    if testcase.endswith("_2D"):
        size = mask.GetSize()
        mask = sitk.Extract(mask, (size[0], size[1], 1), (0, 0, TWO_D_SLICE[case]))
    return mask


def test_all_configurations_reproduced(shared_data, baseline):
    import SimpleITK as sitk

    from NACResponseLib.radiomics import extract

    checked, configs = 0, set()
    failures = []
    for (case, config, testcase), classes in sorted(baseline.items()):
        # group classes whose settings are identical into one extraction
        by_settings = defaultdict(list)
        for cls, column in classes.items():
            image_types, settings = _params(column, cls)
            by_settings[json.dumps([image_types, settings], sort_keys=True, default=str)].append(cls)
        image = str(shared_data / "pyradiomics" / f"{case}_image.nrrd")
        mask = _mask(shared_data, case, testcase)
        for key, group in by_settings.items():
            image_types, settings = json.loads(key)
            column0 = classes[group[0]]
            if "diagnostics_Mask-original_Hash" in column0:
                assert sitk.Hash(mask) == column0["diagnostics_Mask-original_Hash"], f"{config}: mask rebuilt wrongly"
            params = {"imageType": image_types, "featureClass": {c: None for c in group}, "setting": settings}
            ours = extract(image, mask, params)
            for cls in group:
                for name, value in classes[cls].items():
                    if name.startswith("diagnostics") or value in ("", "nan"):
                        continue
                    expected = float(value)
                    checked += 1
                    configs.add(config)
                    if (case, name) in KNOWN_DEVIATIONS and config == case:
                        continue
                    if not np.isclose(ours[name], expected, rtol=RTOL, atol=0):
                        failures.append(f"{config} {name}: ours {ours[name]!r} baseline {expected!r}")
    assert not failures, "\n".join(failures)
    # every configuration named in the issue, for both cases, was exercised
    for case in CASES:
        for suffix in ("", "_2d", "_FBN", "_combined", "_flatRegion", "_normalization", "_resampling",
                       "_resegmentation", "_shape2D"):
            assert f"{case}{suffix}" in configs
    assert checked > 1300  # 1348 baseline values for breast1 + brain1


def test_known_shape_deviation_is_pyradiomics_itself(shared_data, baseline):
    """The pinned brain1 mesh deviations come from pyradiomics' shape class, not from our path."""
    import SimpleITK as sitk
    from radiomics import imageoperations, shape

    from NACResponseLib.radiomics import extract

    column = baseline[("brain1", "brain1", "brain1")]["shape"]
    image_types, settings = _params(column, "shape")
    image_path = shared_data / "pyradiomics" / "brain1_image.nrrd"
    mask = _mask(shared_data, "brain1", "brain1")
    ours = extract(str(image_path), mask, {"imageType": image_types, "featureClass": {"shape": None},
                                           "setting": settings})
    image = sitk.ReadImage(str(image_path))
    bb, _ = imageoperations.checkMask(image, mask)
    ci, cm = imageoperations.cropToTumorMask(image, mask, bb)
    direct = shape.RadiomicsShape(ci, cm)
    direct.enableAllFeatures()
    direct_values = {f"original_shape_{k}": float(np.real(v)) for k, v in direct.execute().items()}
    for _, name in KNOWN_DEVIATIONS:
        assert ours[name] == pytest.approx(direct_values[name], rel=1e-12)
        assert ours[name] == pytest.approx(float(column[name]), rel=2e-3)
