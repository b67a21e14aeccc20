"""A headless Slicer application on real MRML, started the way Slicer's startup does.

``slicer-core`` (PyPI, Kitware's wheel of Slicer's Qt-free libraries) provides MRML, the
application logic and the module logics.  What Slicer's Qt application does at startup is redone
here from its source (Base/QTCore/qSlicerCoreApplication.cxx, qSlicerAbstractCoreModule::logic(),
qSlicerModuleFactoryManager, qSlicerColorsModule::setup):

* one ``vtkMRMLScene`` and one ``vtkSlicerApplicationLogic`` observing it;
* every module logic the NACResponse module touches, each given the application logic and then
  the scene (in that order, as ``qSlicerAbstractCoreModule::logic()`` does), and registered with
  ``SetModuleLogic`` (as the module factory manager does);
* the colour logic set on the application logic (it makes the default colour nodes);
* a subject-hierarchy item for every data node added (in Slicer, the subject-hierarchy Qt plugins
  do this; headless, nothing else would);
* a ``vtkMRMLLayoutLogic`` on the scene, as Slicer's layout manager has (it makes the layout node
  whose arrangement the views follow);
* ``slicer.app``, ``slicer.mrmlScene`` and ``slicer.modules.<name>.logic()``, which ``slicer.util``
  and scripted code read.

The Qt widgets are not here: ``qt`` and ``slicer.i18n`` get small explicit stand-ins with only what
the Slicer-layer code run in CI uses (``qt.QTimer`` for the background runner, ``tr``/``translate``
returning the text for the panel widgets driven with recording fakes).
"""

from __future__ import annotations

import os
import sys
import types

#: Module logics Slicer creates that the NACResponse module (or slicer.util) uses.
MODULE_LOGICS = {
    "Units": "vtkSlicerUnitsLogic",
    "Colors": "vtkSlicerColorLogic",
    "SubjectHierarchy": "vtkSlicerSubjectHierarchyModuleLogic",
    "Volumes": "vtkSlicerVolumesLogic",
    "Segmentations": "vtkSlicerSegmentationsModuleLogic",
    "Markups": "vtkSlicerMarkupsLogic",
    "Tables": "vtkSlicerTablesLogic",
    "Plots": "vtkSlicerPlotsLogic",
    "Data": "vtkSlicerDataModuleLogic",
}


class _Module:
    """``slicer.modules.<name>``: only ``logic()`` (what scripted code calls)."""

    def __init__(self, name: str, logic) -> None:
        self._name, self._logic = name, logic

    def name(self) -> str:
        return self._name

    def logic(self):
        return self._logic


class _Environment:
    """The ``QProcessEnvironment`` that ``slicer.app.startupEnvironment()`` returns."""

    def __init__(self, values: dict[str, str]) -> None:
        self._values = dict(values)

    def keys(self):
        return list(self._values)

    def value(self, key: str, default: str = "") -> str:
        return self._values.get(key, default)


class HeadlessApplication:
    """The part of ``qSlicerApplication`` the module reads: scene, application logic, testing mode."""

    majorVersion, minorVersion = 5, 13
    applicationName = "Slicer"

    def __init__(self, scene, applicationLogic) -> None:
        self._scene, self._applicationLogic = scene, applicationLogic
        self.temporaryPath = applicationLogic.GetTemporaryPath()

    def mrmlScene(self):
        return self._scene

    def applicationLogic(self):
        return self._applicationLogic

    def layoutManager(self):
        return None  # no main window

    def testingEnabled(self) -> bool:
        return True

    def processEvents(self) -> None:
        pass

    def startupEnvironment(self) -> _Environment:
        return _Environment(os.environ)

    def pauseRender(self) -> None:
        pass

    def resumeRender(self) -> None:
        pass


class _QTimer:
    """``qt.QTimer`` as the background runner uses it; headless, ``waitForCompletion`` polls instead."""

    def __init__(self) -> None:
        self.interval, self.active, self._slots = 0, False, []

    def setInterval(self, milliseconds: int) -> None:
        self.interval = milliseconds

    def connect(self, signal: str, slot) -> None:
        self._slots.append((signal, slot))

    def start(self) -> None:
        self.active = True

    def stop(self) -> None:
        self.active = False


def _standIns() -> None:
    """``qt`` and ``slicer.i18n`` with only what CI-run code uses; never replaces a real one."""
    import slicer

    if "qt" not in sys.modules:
        qt = types.ModuleType("qt")
        qt.QTimer = _QTimer
        sys.modules["qt"] = qt
    if "slicer.i18n" not in sys.modules:
        i18n = types.ModuleType("slicer.i18n")
        i18n.tr = lambda text: text
        i18n.translate = lambda context, text: text
        sys.modules["slicer.i18n"] = i18n
        slicer.i18n = i18n


#: Node classes that Slicer's subject-hierarchy plugins add to the hierarchy (volumes, segmentations,
#: markups, models and transforms are displayable; tables and plots have their own plugins).
_SUBJECT_HIERARCHY_CLASSES = ("vtkMRMLDisplayableNode", "vtkMRMLTableNode", "vtkMRMLPlotChartNode",
                              "vtkMRMLPlotSeriesNode")


def _addSubjectHierarchyItems(scene):
    """Give every data node added to the scene its subject-hierarchy item, as Slicer's
    qSlicerSubjectHierarchyPluginLogic::onNodeAdded does (not while a scene is imported, not for
    nodes hidden from editors)."""
    import slicer
    import vtk

    def onNodeAdded(caller, event, node=None):
        if scene.IsImporting() or node is None or node.GetHideFromEditors():
            return
        if not any(node.IsA(className) for className in _SUBJECT_HIERARCHY_CLASSES):
            return
        shNode = scene.GetSubjectHierarchyNode()
        if shNode and not shNode.GetItemByDataNode(node):
            shNode.CreateItem(shNode.GetSceneItemID(), node)

    onNodeAdded.CallDataType = vtk.VTK_OBJECT
    return scene.AddObserver(slicer.vtkMRMLScene.NodeAddedEvent, onNodeAdded)


def start() -> HeadlessApplication:
    """Create the scene, the application logic and the module logics; install them in ``slicer``."""
    import slicer
    import slicer.util

    _standIns()
    applicationLogic = slicer.vtkSlicerApplicationLogic()
    temporary = os.environ.get("TMPDIR", "/tmp")
    applicationLogic.SetTemporaryPath(temporary)
    scene = slicer.vtkMRMLScene()
    applicationLogic.SetMRMLScene(scene)
    modules = types.SimpleNamespace()
    logics = {}
    for name, className in MODULE_LOGICS.items():
        logic = getattr(slicer, className)()
        logic.SetMRMLApplicationLogic(applicationLogic)
        logic.SetMRMLScene(scene)
        applicationLogic.SetModuleLogic(name, logic)
        logics[name] = logic
        setattr(modules, name.lower(), _Module(name, logic))
    applicationLogic.SetColorLogic(logics["Colors"])
    layoutLogic = slicer.vtkMRMLLayoutLogic()
    layoutLogic.SetMRMLScene(scene)
    app = HeadlessApplication(scene, applicationLogic)
    app._layoutLogic = layoutLogic
    app._logics = logics
    app._shObserver = _addSubjectHierarchyItems(scene)
    slicer.app, slicer.mrmlScene, slicer.modules = app, scene, modules
    return app
