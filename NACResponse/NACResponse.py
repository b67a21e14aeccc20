import logging
import os
import pathlib
from typing import Annotated

import qt
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

from NACResponseSlicerLib.panels import PanelLogic

TIMEPOINT_IDS = ["pre", "c2", "c4", "post"]  # NACResponseLib.study.TIMEPOINTS, in chronological order


#
# NACResponse
#


class NACResponse(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("NAC Response")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Quantification")]
        self.parent.dependencies = []
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


#
# Parameter node
#


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

    studyFolder: pathlib.Path
    patientId: str = ""
    timepointA: Annotated[str, Choice(TIMEPOINT_IDS)] = "pre"
    timepointB: Annotated[str, Choice(TIMEPOINT_IDS)] = "post"
    imageKey: str = "dce_early"
    readerId: str = ""
    sessionName: str = ""
    sessionCase: str = ""
    segModelFolder: pathlib.Path
    deepWeightsFile: pathlib.Path
    modelFile: pathlib.Path
    segmentationNode: vtkMRMLSegmentationNode
    roiNode: vtkMRMLMarkupsROINode
    settings: NACResponseSettings


#
# NACResponseWidget
#


class NACResponseWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._task = None
        self._dependenciesChecked = False

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/NACResponse.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = NACResponseLogic()

        self.ui.segmentEditorWidget.setMRMLSegmentEditorNode(self.logic.getSegmentEditorNode())
        self.ui.segmentEditorWidget.setSegmentationNodeSelectorVisible(False)
        self.ui.segmentEditorWidget.setSourceVolumeNodeSelectorVisible(False)
        self.ui.segmentEditorWidget.setSwitchToSegmentationsButtonVisible(False)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        connections = [
            (self.ui.openStudyButton, self.onOpenStudy), (self.ui.importDicomButton, self.onImportDicom),
            (self.ui.installDependenciesButton, self.onInstallDependencies),
            (self.ui.loadTimepointsButton, self.onLoadTimepoints), (self.ui.startSessionButton, self.onStartSession),
            (self.ui.nextCaseButton, self.onNextCase), (self.ui.saveSegmentationButton, self.onSaveSegmentation),
            (self.ui.runMonaiButton, self.onRunMonai), (self.ui.runFtvButton, self.onRunFtv),
            (self.ui.recistButton, self.onShowRecist), (self.ui.radiomicsCaseButton, self.onRadiomicsCase),
            (self.ui.radiomicsStudyButton, self.onRadiomicsStudy), (self.ui.deepFeaturesButton, self.onDeepFeatures),
            (self.ui.agreementButton, self.onAgreement), (self.ui.iccButton, self.onIcc),
            (self.ui.showTableButton, self.onShowTable), (self.ui.predictButton, self.onPredict),
            (self.ui.showEvaluationButton, self.onShowEvaluation), (self.ui.mcDetectButton, self.onMcDetect),
            (self.ui.mcExtentButton, self.onMcExtent), (self.ui.mcCompareButton, self.onMcCompare),
            (self.ui.cancelButton, self.onCancel),
        ]
        for button, handler in connections:
            button.connect("clicked(bool)", lambda checked, h=handler: self._guarded(h))
        self.ui.patientComboBox.connect("currentTextChanged(QString)", self.onPatientChanged)
        self.ui.imageKeyComboBox.connect("currentTextChanged(QString)", self.onImageKeyChanged)

        self.initializeParameterNode()

    def cleanup(self) -> None:
        if self._task is not None and self._task.running:
            self._task.cancel()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()
        self.ui.segmentEditorWidget.installKeyboardShortcuts()

    def exit(self) -> None:
        self.ui.segmentEditorWidget.uninstallKeyboardShortcuts()
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None

    def onSceneStartClose(self, caller, event) -> None:
        self.setParameterNode(None)

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

    # ---- helpers -----------------------------------------------------------------------------
    def _guarded(self, handler) -> None:
        with slicer.util.tryWithErrorDisplay(_("NACResponse: the action failed."), waitCursor=True):
            handler()

    def _store(self):
        if self.logic.store is None:
            raise ValueError(_("Open a study folder first (Study section)."))
        return self.logic.store

    def _patient(self) -> str:
        patientId = self._parameterNode.patientId
        if not patientId:
            raise ValueError(_("Choose a patient first (Study section)."))
        return patientId

    def _ensureDependencies(self) -> None:
        if not self._dependenciesChecked:
            self._dependenciesChecked = self.logic.ensureDependencies(self.resourcePath("requirements.txt"))

    def _runTask(self, arguments, title, onSuccess=None) -> None:
        """Start a background ``nacresponse`` command; one at a time."""
        if self._task is not None and self._task.running:
            raise RuntimeError(_("A background task is already running; wait for it or cancel it."))
        self._ensureDependencies()
        self.ui.logTextEdit.clear()
        self.ui.taskProgressBar.value = 0
        self.ui.taskLabel.text = _("{title}: starting...").format(title=title)
        self.ui.cancelButton.enabled = True

        def onFinished(result):
            self.ui.cancelButton.enabled = False
            self.ui.taskLabel.text = result.message
            if result.state.name in ("SUCCEEDED", "PARTIAL"):
                self.ui.taskProgressBar.value = 100
                if onSuccess is not None:
                    with slicer.util.tryWithErrorDisplay(_("Could not show the results."), waitCursor=True):
                        onSuccess()

        self._task = self.logic.runInBackground(arguments, title, onProgress=self._onTaskProgress,
                                                onLog=self.ui.logTextEdit.appendPlainText, onFinished=onFinished)

    def _onTaskProgress(self, event) -> None:
        self.ui.taskProgressBar.value = int(round(100 * event.fraction))
        self.ui.taskLabel.text = f"{event.stage}: {event.done}/{event.total} {event.message}".strip()

    def onCancel(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def onInstallDependencies(self) -> None:
        self._dependenciesChecked = False
        self._ensureDependencies()
        self.ui.taskLabel.text = _("Python packages: all installed.") if self._dependenciesChecked else \
            _("Python packages: some are missing (see the Python console).")

    # ---- Study -------------------------------------------------------------------------------
    def onOpenStudy(self) -> None:
        store = self.logic.openStudy(self._parameterNode.studyFolder)
        patients = self.logic.patientIds()
        self.ui.patientComboBox.blockSignals(True)
        self.ui.patientComboBox.clear()
        self.ui.patientComboBox.addItems(patients)
        self.ui.patientComboBox.blockSignals(False)
        current = self._parameterNode.patientId if self._parameterNode.patientId in patients else patients[0]
        self.ui.patientComboBox.setCurrentText(current)
        self.onPatientChanged(current)
        self.ui.studySummaryLabel.text = self.logic.studySummary()
        self.ui.loadTimepointsButton.enabled = True
        self.ui.featureTableComboBox.clear()
        self.ui.featureTableComboBox.addItems(self.logic.resultTables())
        logging.info(f"NACResponse: opened {store.root}")

    def onPatientChanged(self, patientId) -> None:
        if not patientId or self.logic.store is None:
            return
        self._parameterNode.patientId = patientId
        keys = self.logic.imageKeys(patientId)
        for combo, wanted in ((self.ui.imageKeyComboBox, [k for k in keys if not k.startswith("mg_")]),
                              (self.ui.mcViewComboBox, [k for k in keys if k.startswith("mg_")])):
            combo.blockSignals(True)
            combo.clear()
            combo.addItems(wanted)
            combo.blockSignals(False)
        if self._parameterNode.imageKey in keys:
            self.ui.imageKeyComboBox.setCurrentText(self._parameterNode.imageKey)

    def onImageKeyChanged(self, imageKey) -> None:
        if imageKey:
            self._parameterNode.imageKey = imageKey

    def onLoadTimepoints(self) -> None:
        p = self._parameterNode
        nodeA, nodeB = self.logic.loadTimepoints(self._patient(), p.timepointA, p.timepointB, p.imageKey)
        self.ui.segmentEditorWidget.setSourceVolumeNode(nodeB or nodeA)

    def onImportDicom(self) -> None:
        destination = qt.QFileDialog.getExistingDirectory(slicer.util.mainWindow(),
                                                          _("Choose an empty folder for the new study"))
        if not destination:
            return
        studyDir = os.path.join(destination, "study")
        staging = self.logic.stageDicomDatabase()

        def opened():
            self._parameterNode.studyFolder = pathlib.Path(studyDir)
            self.onOpenStudy()

        self._runTask(["import", staging, studyDir, "--dicom"], _("Import DICOM"), onSuccess=opened)

    # ---- Reader session ----------------------------------------------------------------------
    def onStartSession(self) -> None:
        p = self._parameterNode
        self.logic.openReaderSession(p.sessionName, p.readerId)
        self.onNextCase()

    def onNextCase(self) -> None:
        p = self._parameterNode
        result = self.logic.loadNextSessionCase(p.readerId)
        if result is None:
            self.ui.sessionProgressLabel.text = self.logic.sessionProgressText(p.readerId) + " " + _("All cases done.")
            self.ui.saveSegmentationButton.enabled = False
            return
        referenceVolume, segmentationNode, caseId = result
        p.sessionCase = caseId
        p.segmentationNode = segmentationNode
        self.ui.segmentEditorWidget.setSegmentationNode(segmentationNode)
        self.ui.segmentEditorWidget.setSourceVolumeNode(referenceVolume)
        self.ui.sessionProgressLabel.text = self.logic.sessionProgressText(p.readerId) + " " + \
            _("Current case: {case}").format(case=caseId)
        self.ui.nextCaseButton.enabled = True
        self.ui.saveSegmentationButton.enabled = True

    def onSaveSegmentation(self) -> None:
        p = self._parameterNode
        path = self.logic.saveSessionSegmentation(p.readerId, p.sessionCase, p.segmentationNode)
        self.ui.sessionProgressLabel.text = self.logic.sessionProgressText(p.readerId) + " " + \
            _("Saved {path}.").format(path=os.path.basename(str(path)))

    # ---- Automatic segmentation --------------------------------------------------------------
    def onRunMonai(self) -> None:
        p = self._parameterNode
        patientId = self._patient()
        timepoints = sorted({p.timepointA, p.timepointB}, key=TIMEPOINT_IDS.index)
        arguments = self.logic.segPredictArguments(p.segModelFolder, patientId, timepoints)

        def show():
            node = self.logic.loadMethodSegmentations(patientId, timepoints, "monai")
            if node is not None:
                p.segmentationNode = node

        self._runTask(arguments, _("MONAI segmentation"), onSuccess=show)

    def onRunFtv(self) -> None:
        p = self._parameterNode
        result = self.logic.runFtv(self._patient(), p.timepointB, p.roiNode, p.settings.peThreshold,
                                   p.settings.serThreshold, p.settings.backgroundPercent)
        p.segmentationNode = result["segmentationNode"]
        self.ui.segmentationResultLabel.text = _("FTV {volume:.2f} cm3 ({voxels} voxels) at {tp}.").format(
            volume=result["volume_cm3"], voxels=result["n_voxels"], tp=p.timepointB)

    def onShowRecist(self) -> None:
        p = self._parameterNode
        lines = self.logic.showRecistLines(p.segmentationNode)
        self.ui.segmentationResultLabel.text = "; ".join(f"{name}: {length:.1f} mm" for name, length in lines)

    # ---- Features ----------------------------------------------------------------------------
    def onRadiomicsCase(self) -> None:
        arguments = self.logic.radiomicsArguments(self._parameterNode.settings.jobs, [self._patient()])
        self._runTask(arguments, _("Radiomics"), onSuccess=lambda: self._showTable("radiomics_wide"))

    def onRadiomicsStudy(self) -> None:
        arguments = self.logic.radiomicsArguments(self._parameterNode.settings.jobs)
        self._runTask(arguments, _("Radiomics"), onSuccess=lambda: self._showTable("radiomics_wide"))

    def onDeepFeatures(self) -> None:
        arguments = self.logic.deepFeaturesArguments(self._parameterNode.deepWeightsFile,
                                                     self._parameterNode.segModelFolder)
        self._runTask(arguments, _("Deep features"))

    def onAgreement(self) -> None:
        self._runTask(self.logic.agreementArguments(self._parameterNode.sessionName), _("Reader agreement"),
                      onSuccess=lambda: self._showTable("agreement"))

    def onIcc(self) -> None:
        p = self._parameterNode
        arguments = self.logic.iccArguments(p.settings.iccThreshold, p.sessionName)
        self._runTask(arguments, _("ICC filter"), onSuccess=lambda: self._showTable("icc_whitelist"))

    def onShowTable(self) -> None:
        self._showTable(self.ui.featureTableComboBox.currentText)

    def _showTable(self, name) -> None:
        self.ui.featureTableComboBox.clear()
        self.ui.featureTableComboBox.addItems(self.logic.resultTables())
        self.logic.showResultTable(name, self._parameterNode.patientId or None)

    # ---- Prediction --------------------------------------------------------------------------
    def onPredict(self) -> None:
        patientId = self._patient()
        arguments, outputPath = self.logic.predictArguments(self._parameterNode.modelFile, patientId)

        def show():
            self.ui.predictionResultLabel.text = self.logic.showPrediction(outputPath, patientId)

        self._runTask(arguments, _("Prediction"), onSuccess=show)

    def onShowEvaluation(self) -> None:
        self.ui.predictionResultLabel.text = self.logic.showEvaluationPlots()

    # ---- Microcalcifications -----------------------------------------------------------------
    def onMcDetect(self) -> None:
        p = self._parameterNode
        patientId, view = self._patient(), self.ui.mcViewComboBox.currentText
        if not view:
            raise ValueError(_("This patient has no mammogram."))

        def show():
            self.ui.mcResultLabel.text = self.logic.showMcDetections(patientId, view, [p.timepointA, p.timepointB])

        self._runTask(self.logic.mcDetectArguments(patientId), _("Microcalcification detection"), onSuccess=show)

    def onMcExtent(self) -> None:
        p = self._parameterNode
        self.ui.mcResultLabel.text = self.logic.recomputeMcExtent(self._patient(), self.ui.mcViewComboBox.currentText,
                                                                  [p.timepointA, p.timepointB])

    def onMcCompare(self) -> None:
        patientId = self._patient()

        def show():
            self.ui.mcResultLabel.text = self.logic.mcComparisonText(patientId)

        self._runTask(self.logic.mcCompareArguments(patientId), _("Microcalcification comparison"), onSuccess=show)


#
# NACResponseLogic
#


class NACResponseLogic(ScriptedLoadableModuleLogic, PanelLogic):
    """Thin adapter: each panel's work is in NACResponseSlicerLib.panels.PanelLogic (scene plumbing)
    and NACResponseLib (the science, in-process for quick steps, in a background process for long ones)."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)

    def getParameterNode(self):
        return NACResponseParameterNode(super().getParameterNode())

    def getSegmentEditorNode(self):
        """The module's own segment editor parameter node (pattern of Slicer's SegmentEditor.py)."""
        tag = "NACResponse"
        segmentEditorNode = slicer.mrmlScene.GetSingletonNode(tag, "vtkMRMLSegmentEditorNode")
        if segmentEditorNode is None:
            segmentEditorNode = slicer.mrmlScene.CreateNodeByClass("vtkMRMLSegmentEditorNode")
            segmentEditorNode.UnRegister(None)
            segmentEditorNode.SetSingletonTag(tag)
            segmentEditorNode = slicer.mrmlScene.AddNode(segmentEditorNode)
        return segmentEditorNode


#
# NACResponseTest
#


class NACResponseTest(ScriptedLoadableModuleTest):
    """Builds a small synthetic study, runs each panel's logic without GUI interaction, checks results."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        import unittest

        from NACResponseSlicerLib import selftest

        for name in selftest.TESTS:
            self.setUp()
            self.delayDisplay(f"NACResponse: {name}")
            try:
                getattr(selftest, name)(self)
            except unittest.SkipTest as reason:
                logging.warning(f"NACResponse self-test {name} skipped: {reason}")
        self.delayDisplay("NACResponse: self-test finished")
