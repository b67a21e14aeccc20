"""Render what the module's slice views draw, offscreen, with Slicer's own slice-view pipeline.

slicer-core (the test extra) has Slicer's MRML, slice logic and displayable managers but not its Qt
widgets, so these are real pictures of the views' content (images, segments, markups lines and
point lists) without Slicer's window around them.  The panels' logic makes the scene, exactly as in
the module: a synthetic study, two timepoints side by side with FTV segments and RECIST lines; the
pre and post mammograms with the detected MCs and the largest cluster's extent line.

    PYTHONPATH=NACResponse .venv/bin/python Resources/Screenshots/render_slice_views.py

writes ``Resources/Screenshots/views_ftv_recist.png`` and ``views_mc_extent.png``.  Needs an
offscreen OpenGL (the vtk wheel's EGL or OSMesa).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "Testing"))
sys.path.insert(0, str(ROOT / "NACResponse"))

SIZE = 420  # pixels of one view
SLICE_DISPLAYABLE_MANAGERS = ("vtkMRMLSegmentationsDisplayableManager2D", "vtkMRMLMarkupsDisplayableManager")


def renderSliceView(layoutName: str, volumeNode, centreRAS=None) -> np.ndarray:
    """One axial slice view (background volume + displayable managers) as an RGB array."""
    import slicer
    import vtk
    from vtk.util.numpy_support import vtk_to_numpy

    scene = slicer.mrmlScene
    sliceNode = scene.GetSingletonNode(layoutName, "vtkMRMLSliceNode")
    if sliceNode is None:
        sliceNode = slicer.vtkMRMLSliceNode()
        sliceNode.SetLayoutName(layoutName)
        sliceNode.SetSingletonTag(layoutName)
        sliceNode = scene.AddNode(sliceNode)
    sliceNode.SetOrientationToAxial()
    sliceLogic = slicer.vtkMRMLSliceLogic()
    sliceLogic.SetMRMLApplicationLogic(slicer.app.applicationLogic())
    sliceLogic.SetMRMLScene(scene)
    sliceLogic.SetSliceNode(sliceNode)
    sliceLogic.UpdateSliceNode()
    sliceLogic.UpdateSliceCompositeNode()
    sliceLogic.GetSliceCompositeNode().SetBackgroundVolumeID(volumeNode.GetID())
    sliceNode.SetDimensions(SIZE, SIZE, 1)
    sliceLogic.FitSliceToBackground()
    if centreRAS is not None:
        sliceNode.JumpSliceByCentering(*centreRAS)

    window = vtk.vtkRenderWindow()
    window.SetOffScreenRendering(1)
    window.SetSize(SIZE, SIZE)
    window.SetMultiSamples(0)
    renderer = vtk.vtkRenderer()
    window.AddRenderer(renderer)
    window.SetInteractor(vtk.vtkRenderWindowInteractor())  # the displayable managers need one
    mapper = vtk.vtkImageMapper()  # the slice image, as Slicer's slice view shows it
    mapper.SetInputConnection(sliceLogic.GetImageDataConnection())
    mapper.SetColorWindow(255)
    mapper.SetColorLevel(127.5)
    image = vtk.vtkActor2D()
    image.SetMapper(mapper)
    renderer.AddViewProp(image)
    factory = slicer.vtkMRMLSliceViewDisplayableManagerFactory.GetInstance()
    factory.SetMRMLApplicationLogic(slicer.app.applicationLogic())
    for name in SLICE_DISPLAYABLE_MANAGERS:
        if not factory.IsDisplayableManagerRegistered(name):
            factory.RegisterDisplayableManager(name)
    managers = factory.InstantiateDisplayableManagers(renderer)
    managers.SetMRMLDisplayableNode(sliceNode)
    camera = renderer.GetActiveCamera()
    camera.ParallelProjectionOn()
    camera.SetParallelScale(SIZE / 2.0)
    camera.SetFocalPoint(SIZE / 2.0, SIZE / 2.0, 0.0)
    camera.SetPosition(SIZE / 2.0, SIZE / 2.0, 1000.0)
    window.Render()
    window.Render()
    grab = vtk.vtkWindowToImageFilter()
    grab.SetInput(window)
    grab.Update()
    width, height, _ = grab.GetOutput().GetDimensions()
    pixels = vtk_to_numpy(grab.GetOutput().GetPointData().GetScalars()).reshape(height, width, -1)[::-1, :, :3]
    return pixels.copy()


def centreOf(node) -> list[float]:
    bounds = [0.0] * 6
    node.GetRASBounds(bounds)
    return [(bounds[0] + bounds[1]) / 2, (bounds[2] + bounds[3]) / 2, (bounds[4] + bounds[5]) / 2]


def sideBySide(left: np.ndarray, right: np.ndarray, path: Path) -> None:
    from PIL import Image

    gap = np.full((left.shape[0], 4, 3), 60, np.uint8)
    Image.fromarray(np.hstack([left, gap, right])).save(path)
    print(f"wrote {path}")


def main() -> None:
    import headless_slicer

    headless_slicer.start()
    import slicer

    from NACResponseLib.cli import main as cli
    from NACResponseLib.demo.synthetic import generate_cohort
    from NACResponseLib.study.importers import import_folder
    from NACResponseSlicerLib.mc_logic import mcExtentLineName
    from NACResponseSlicerLib.panels import PanelLogic
    from NACResponseSlicerLib.study_view import SIDE_BY_SIDE_VIEWS, showOnlyInView

    root = Path(tempfile.mkdtemp(prefix="nacresponse-views-"))
    source = generate_cohort(root / "source", n_patients=1, seed=3, mc_fraction=1.0)
    store = import_folder(source, root / "study")
    logic = PanelLogic()
    logic.study.openStudy(store.root)
    patient = logic.study.patientIds()[0]

    views = []
    for timepoint in ("pre", "post"):
        volume, _ = logic.study.loadTimepoints(patient, timepoint, timepoint, "dce_early")
        ftv = logic.segmentation.runFtv(patient, timepoint, None, 70.0, 0.0, 30.0)
        view = SIDE_BY_SIDE_VIEWS[len(views)]  # each timepoint's results in its own view, as MONAI's are
        showOnlyInView(ftv["segmentationNode"], view)
        for name, _length in logic.segmentation.showRecistLines(ftv["segmentationNode"]):
            showOnlyInView(slicer.mrmlScene.GetFirstNodeByName(name), view)
        views.append((volume, ftv["segmentationNode"] if ftv["n_voxels"] else None))
    centre = centreOf(views[0][1])
    sideBySide(*(renderSliceView(name, volume, centreOf(seg) if seg is not None else centre)
                 for name, (volume, seg) in zip(("Red", "Yellow"), views)), HERE / "views_ftv_recist.png")

    image = [k for k in logic.study.imageKeys(patient) if k.startswith("mg_cc")][0]
    for command in (["mc", "detect", str(store.root)], ["mc", "extent", str(store.root)]):
        if cli(["--progress", "none", *command]) not in (0, 1):
            raise SystemExit(f"nacresponse {' '.join(command)} failed")
    print(logic.mc.showMcResults(patient, image, ["pre", "post"]))
    mammograms = [logic.mc._mammogram(patient, tp, image)[0] for tp in ("pre", "post")]
    lines = [slicer.mrmlScene.GetFirstNodeByName(mcExtentLineName(patient, tp, image)) for tp in ("pre", "post")]
    centres = [centreOf(line) if line is not None else None for line in lines]
    sideBySide(*(renderSliceView(name, volume, centre)
                 for name, volume, centre in zip(("Red", "Yellow"), mammograms, centres)), HERE / "views_mc_extent.png")


if __name__ == "__main__":
    main()
