from typing import Annotated

import slicer
from slicer import vtkMRMLMarkupsROINode, vtkMRMLSegmentationNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper, parameterPack
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

from NACResponseSlicerLib import path_connector  # noqa: F401  (registers the str <-> ctkPathLineEdit binding)
from NACResponseSlicerLib.naming import TIMEPOINTS
from NACResponseSlicerLib.panels import PanelLogic


class NACResponse(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("NAC Response")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Quantification")]
        # Modules whose logic the panels use (loaded first); torch comes from the PyTorch extension.
        self.parent.dependencies = ["Units", "Colors", "SubjectHierarchy", "Volumes", "Segmentations", "Markups",
                                    "Tables", "Plots", "Data"]
        self.parent.contributors = ["NACResponse developers"]
        self.parent.helpText = _("""
Imaging of breast-cancer response to neoadjuvant chemotherapy (NAC): open a study folder, compare
timepoints side by side, delineate tumours in blinded reader sessions, segment automatically (MONAI,
DCE functional tumour volume), compute radiomics and deep features, predict response with a saved
model, and measure microcalcification extent before and after NAC (RESMIN).
Long computations run in a background process with progress and Cancel.
See <a href="https://github.com/nacresponse/NACResponse#the-slicer-module">the module documentation</a>.
""")
        self.parent.acknowledgementText = _("""
Built on 3D Slicer, pyradiomics, MONAI, SimpleITK and scikit-learn. The module layout follows Slicer's
scripted module template; the background processing follows SlicerMONAIAuto3DSeg.
""")


@parameterPack
class NACResponseSettings:
    jobs: Annotated[int, WithinRange(1, 256)] = 2
    peThreshold: Annotated[float, WithinRange(0.0, 1000.0)] = 70.0
    serThreshold: Annotated[float, WithinRange(0.0, 10.0)] = 0.0
    backgroundPercent: Annotated[float, WithinRange(0.0, 100.0)] = 30.0
    iccThreshold: Annotated[float, WithinRange(0.0, 1.0)] = 0.8


@parameterNodeWrapper
class NACResponseParameterNode:
    """Current study, case and reader, model files, node selections and settings (saved with the scene)."""

    studyFolder: str = ""  # paths are str: unset stays empty, not "." (NACResponseSlicerLib/path_connector.py)
    patientId: str = ""
    timepointA: Annotated[str, Choice(TIMEPOINTS)] = "pre"
    timepointB: Annotated[str, Choice(TIMEPOINTS)] = "post"
    imageKey: str = "dce_early"
    readerId: str = ""
    sessionName: str = ""
    sessionCase: str = ""
    segModelFolder: str = ""
    deepWeightsFile: str = ""
    modelFile: str = ""
    segmentationNode: vtkMRMLSegmentationNode
    roiNode: vtkMRMLMarkupsROINode
    settings: NACResponseSettings


class NACResponseWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """Binds the .ui to the parameter node; the panels are objects in NACResponseSlicerLib (widgets.py)
    composed around the logic's panel objects (panels.py)."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self.panels = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None

    def setup(self) -> None:
        from NACResponseSlicerLib.widgets import PanelWidgets

        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/NACResponse.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = NACResponseLogic()
        self.panels = PanelWidgets(self.ui, self.logic.panels, lambda: self._parameterNode,
                                   self.resourcePath("requirements.txt"))
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.panels.connect()
        self.initializeParameterNode()

    def cleanup(self) -> None:
        self.panels.cleanup()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()
        self.panels.enter()

    def exit(self) -> None:
        self.panels.exit()
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None

    def onReload(self) -> None:
        """Reload the core and the Slicer layer too (``imp`` is gone in Python 3.12), then the module."""
        from NACResponseSlicerLib.reloading import reloadPackages

        self.panels.cleanup()
        reloadPackages(("NACResponseLib", "NACResponseSlicerLib"))
        ScriptedLoadableModuleWidget.onReload(self)

    def onSceneStartClose(self, caller, event) -> None:
        self.setParameterNode(None)
        self.panels.onSceneStartClose()
        self.logic.panels.reset()

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())

    def setParameterNode(self, inputParameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            # The .ui sets the "SlicerParameterName" dynamic property on every bound widget.
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)


class NACResponseLogic(ScriptedLoadableModuleLogic):
    """The parameter node, and ``panels``: one logic object per panel (NACResponseSlicerLib/panels.py);
    the science is in NACResponseLib (in-process for quick steps, a background process for long ones)."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        self.panels = PanelLogic()

    def getParameterNode(self):
        return NACResponseParameterNode(super().getParameterNode())


class NACResponseTest(ScriptedLoadableModuleTest):
    """Builds a small synthetic study, runs each panel's logic without GUI interaction, checks results
    (the tests are in NACResponseSlicerLib/selftest.py)."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        from NACResponseSlicerLib import selftest

        results = selftest.runAll(self, report=self.delayDisplay)
        failed = [r for r in results if r.status == "failed"]
        self.assertEqual(failed, [], selftest.summary(results))
