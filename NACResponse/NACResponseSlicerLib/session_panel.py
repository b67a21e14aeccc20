"""Reader-session panel widgets: the session case by case in an embedded Segment Editor.

Leaving a case (*Next case*, *Start / resume*) with unsaved edits asks first: the edits are kept
as a draft version (the case stays open and resumes with them) or, if the reader says so, dropped.
"""

from __future__ import annotations

import os

import slicer
from slicer.i18n import tr as _

from .panel_base import Panel


class SessionPanel(Panel):
    def connect(self) -> None:
        """The embedded Segment Editor edits the session's segmentation on its reference volume only."""
        editor = self.ui.segmentEditorWidget
        editor.setMRMLSegmentEditorNode(self.logic.getSegmentEditorNode())
        editor.setSegmentationNodeSelectorVisible(False)
        editor.setSourceVolumeNodeSelectorVisible(False)
        editor.setSwitchToSegmentationsButtonVisible(False)
        self.connectButtons([(self.ui.startSessionButton, self.onStartSession),
                             (self.ui.nextCaseButton, self.onNextCase),
                             (self.ui.saveSegmentationButton, self.onSaveSegmentation)])

    # ---- module enter / exit, as Slicer's SegmentEditor.py does for its editor -------------------
    def enter(self) -> None:
        editor = self.ui.segmentEditorWidget
        editor.setMRMLSegmentEditorNode(self.logic.getSegmentEditorNode())
        editor.installKeyboardShortcuts()
        editor.updateWidgetFromMRML()

    def exit(self) -> None:
        editor = self.ui.segmentEditorWidget
        editor.setActiveEffect(None)
        editor.uninstallKeyboardShortcuts()
        editor.removeViewObservations()

    def onSceneStartClose(self) -> None:
        self.ui.segmentEditorWidget.setSegmentationNode(None)
        self.ui.segmentEditorWidget.removeViewObservations()
        self.logic.closeSession()

    # ---- editing results of other panels ----------------------------------------------------------
    def edit(self, segmentationNode, referenceVolume) -> None:
        """Put a segmentation in the embedded editor: segmentation first, then its source volume
        (qMRMLSegmentEditorWidget needs the segmentation to accept a source volume)."""
        self.ui.segmentEditorWidget.setSegmentationNode(segmentationNode)
        self.ui.segmentEditorWidget.setSourceVolumeNode(referenceVolume)
        self.params.segmentationNode = segmentationNode

    # ---- the session ------------------------------------------------------------------------------
    def keepUnsavedEdits(self) -> None:
        """Before leaving the current case: unsaved edits become a draft, unless the reader drops them."""
        p = self.params
        if not self.logic.hasUnsavedEdits(p.sessionCase, p.segmentationNode):
            return
        keep = slicer.util.confirmYesNoDisplay(
            _("{case} has unsaved edits. Keep them as a draft? (No discards them.)").format(case=p.sessionCase),
            windowTitle=_("NACResponse - unsaved edits"))
        if keep:
            self.logic.saveSessionSegmentation(p.readerId, p.sessionCase, p.segmentationNode, finish=False)

    def onStartSession(self) -> None:
        p = self.params
        self.keepUnsavedEdits()
        self.logic.openReaderSession(p.sessionName, p.readerId, self.ui.readerTokenLineEdit.text)
        self.loadNextCase()

    def onNextCase(self) -> None:
        self.keepUnsavedEdits()
        self.loadNextCase()

    def loadNextCase(self) -> None:
        p = self.params
        result = self.logic.loadNextSessionCase(p.readerId)
        if result is None:
            self.ui.sessionProgressLabel.text = self.logic.sessionProgressText(p.readerId) + " " + _("All cases done.")
            self.ui.saveSegmentationButton.enabled = False
            return
        referenceVolume, segmentationNode, caseId = result
        p.sessionCase = caseId
        self.edit(segmentationNode, referenceVolume)
        self.ui.sessionProgressLabel.text = self.logic.sessionProgressText(p.readerId) + " " + \
            _("Current case: {case}").format(case=caseId)
        self.ui.nextCaseButton.enabled = True
        self.ui.saveSegmentationButton.enabled = True

    def onSaveSegmentation(self) -> None:
        p = self.params
        path = self.logic.saveSessionSegmentation(p.readerId, p.sessionCase, p.segmentationNode)
        self.ui.sessionProgressLabel.text = self.logic.sessionProgressText(p.readerId) + " " + \
            _("Saved {path}.").format(path=os.path.basename(str(path)))
