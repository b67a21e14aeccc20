"""Reader-session panel: a blinded session case by case, with only this reader's work in the scene,
an embedded Segment Editor and versioned saves under the reader (``NACResponseLib.readers.sessions``)."""

from __future__ import annotations

import os

import slicer
from slicer.i18n import tr as _

from .naming import segmentation_name, volume_name

READER_ATTRIBUTE = "NACResponse.reader"
SESSION_ATTRIBUTE = "NACResponse.sessionCase"


class SessionLogic:
    session = None

    def getSegmentEditorNode(self):
        """The module's own segment editor parameter node (pattern of Slicer's SegmentEditor.py)."""
        segmentEditorNode = slicer.mrmlScene.GetSingletonNode("NACResponse", "vtkMRMLSegmentEditorNode")
        if segmentEditorNode is None:
            segmentEditorNode = slicer.mrmlScene.CreateNodeByClass("vtkMRMLSegmentEditorNode")
            segmentEditorNode.UnRegister(None)
            segmentEditorNode.SetSingletonTag("NACResponse")
            segmentEditorNode = slicer.mrmlScene.AddNode(segmentEditorNode)
        return segmentEditorNode

    def openReaderSession(self, sessionName: str, readerId: str):
        from NACResponseLib.readers.sessions import ReaderSession

        if not sessionName or not readerId:
            raise ValueError("Enter the session name and your reader id.")
        session = ReaderSession(self._requireStore(), sessionName)
        if readerId not in session.spec.readers:
            raise ValueError(f"{readerId!r} is not a reader of session {sessionName!r} ({', '.join(session.spec.readers)})")
        self.session = session
        self.removeOtherReadersNodes(readerId)
        return session

    def removeOtherReadersNodes(self, readerId: str) -> int:
        """Blinding: remove every node another reader's session work created from the scene."""
        removed = 0
        for className in ("vtkMRMLSegmentationNode", "vtkMRMLScalarVolumeNode"):
            for node in slicer.util.getNodesByClass(className):
                owner = node.GetAttribute(READER_ATTRIBUTE)
                if owner and owner != readerId:
                    slicer.mrmlScene.RemoveNode(node)
                    removed += 1
        return removed

    def loadNextSessionCase(self, readerId: str):
        """Start this reader's next case; load its images and only this reader's own mask.

        Returns (reference volume, segmentation node, case id) or None when every case is done.
        """
        from .segmentations import loadMaskFile, newSegmentationNode
        from .study_view import placeInFolder, showSideBySide
        from .volumes import loadImageFile, setWindowLevelFromData

        if self.session is None:
            raise ValueError("Start the session first.")
        assignment = self.session.next_case(readerId)
        if assignment is None:
            return None
        assignment = self.session.start(readerId, assignment.case_id)
        self.clearSessionNodes()
        referenceVolume = None
        for key, path in sorted(assignment.images.items()):
            node = loadImageFile(str(path), volume_name(assignment.patient_id, assignment.timepoint, key))
            setWindowLevelFromData(node)
            node.SetAttribute(READER_ATTRIBUTE, readerId)
            node.SetAttribute(SESSION_ATTRIBUTE, assignment.case_id)
            placeInFolder(node, assignment.patient_id, assignment.timepoint)
            if key == assignment.reference:
                referenceVolume = node
        segmentationNode = newSegmentationNode(
            segmentation_name(assignment.patient_id, assignment.timepoint, readerId), referenceVolume)
        segmentationNode.SetAttribute(READER_ATTRIBUTE, readerId)
        segmentationNode.SetAttribute(SESSION_ATTRIBUTE, assignment.case_id)
        placeInFolder(segmentationNode, assignment.patient_id, assignment.timepoint)
        if assignment.own_segmentation is not None:  # resume: this reader's latest version
            from NACResponseLib.imageio import read_image

            loadMaskFile(str(assignment.own_segmentation), segmentationNode, referenceVolume,
                         read_image(str(assignment.images[assignment.reference])))
        else:
            segmentationNode.GetSegmentation().AddEmptySegment("tumour", "tumour", [0.9, 0.3, 0.2])
        showSideBySide(referenceVolume, referenceVolume)
        return referenceVolume, segmentationNode, assignment.case_id

    def clearSessionNodes(self) -> None:
        for className in ("vtkMRMLSegmentationNode", "vtkMRMLScalarVolumeNode"):
            for node in slicer.util.getNodesByClass(className):
                if node.GetAttribute(SESSION_ATTRIBUTE):
                    slicer.mrmlScene.RemoveNode(node)

    def saveSessionSegmentation(self, readerId: str, caseId: str, segmentationNode):
        from .segmentations import exportToLabelmapImage, segmentIdsOf

        if self.session is None or not caseId or segmentationNode is None:
            raise ValueError("Load a session case first.")
        if segmentationNode.GetAttribute(READER_ATTRIBUTE) != readerId:
            raise ValueError("This segmentation does not belong to the current reader.")
        referenceVolume = self._sessionReferenceVolume(caseId)
        mask = exportToLabelmapImage(segmentationNode, referenceVolume, segmentIdsOf(segmentationNode))
        return self.session.save(readerId, caseId, mask)

    def _sessionReferenceVolume(self, caseId: str):
        patientId, timepoint = caseId.split("/", 1)
        name = volume_name(patientId, timepoint, self.session.spec.reference)
        for node in slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode"):
            if node.GetName() == name and node.GetAttribute(SESSION_ATTRIBUTE) == caseId:
                return node
        raise ValueError(f"the reference image of {caseId} is no longer in the scene; load the case again")

    def sessionProgressText(self, readerId: str) -> str:
        if self.session is None:
            return ""
        status = self.session.status()[readerId]
        return f"{readerId}: {status['done']}/{status['total']} cases done."


class SessionHandlers:
    def connectSessionPanel(self) -> None:
        """The embedded Segment Editor edits the session's segmentation on its reference volume only."""
        self.ui.segmentEditorWidget.setMRMLSegmentEditorNode(self.logic.getSegmentEditorNode())
        self.ui.segmentEditorWidget.setSegmentationNodeSelectorVisible(False)
        self.ui.segmentEditorWidget.setSourceVolumeNodeSelectorVisible(False)
        self.ui.segmentEditorWidget.setSwitchToSegmentationsButtonVisible(False)
        self._connectButtons([(self.ui.startSessionButton, self.onStartSession),
                              (self.ui.nextCaseButton, self.onNextCase),
                              (self.ui.saveSegmentationButton, self.onSaveSegmentation)])

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
