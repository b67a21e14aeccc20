"""Reader-session panel logic: a blinded session case by case, with only this reader's work in the
scene and versioned saves under the reader (``NACResponseLib.readers.sessions``).

Edits are never thrown away silently: the logic remembers what was last loaded or saved for the
case, so the panel can tell unsaved edits apart and keep them as a draft version before it leaves.
"""

from __future__ import annotations

import hashlib

import slicer

from .naming import segmentation_name, volume_name

READER_ATTRIBUTE = "NACResponse.reader"
SESSION_ATTRIBUTE = "NACResponse.sessionCase"


class SessionLogic:
    def __init__(self, context) -> None:
        self.context = context
        self.session = None  # the open NACResponseLib ReaderSession
        self._savedDigest = {}  # case id -> digest of the mask last loaded or saved

    def getSegmentEditorNode(self):
        """The module's own segment editor parameter node (pattern of Slicer's SegmentEditor.py)."""
        segmentEditorNode = slicer.mrmlScene.GetSingletonNode("NACResponse", "vtkMRMLSegmentEditorNode")
        if segmentEditorNode is None:
            segmentEditorNode = slicer.mrmlScene.CreateNodeByClass("vtkMRMLSegmentEditorNode")
            segmentEditorNode.UnRegister(None)
            segmentEditorNode.SetSingletonTag("NACResponse")
            segmentEditorNode = slicer.mrmlScene.AddNode(segmentEditorNode)
        return segmentEditorNode

    def openReaderSession(self, sessionName: str, readerId: str, token: str | None = None):
        """Open the session for ``readerId``; a session created with tokens needs the reader's token
        (checked now, so a wrong token is said before any work is done)."""
        from NACResponseLib.readers.sessions import ReaderSession

        if not sessionName or not readerId:
            raise ValueError("Enter the session name and your reader id.")
        session = ReaderSession(self.context.requireStore(), sessionName)
        if readerId not in session.spec.readers:
            raise ValueError(f"{readerId!r} is not a reader of session {sessionName!r} ({', '.join(session.spec.readers)})")
        session.authenticate(readerId, token or None)
        self.session = session
        self._savedDigest = {}
        self.removeOtherReadersNodes(readerId)
        return session

    def closeSession(self) -> None:
        self.session = None
        self._savedDigest = {}

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
        self._savedDigest[assignment.case_id] = self._maskDigest(assignment.case_id, segmentationNode)
        showSideBySide(referenceVolume, referenceVolume)
        return referenceVolume, segmentationNode, assignment.case_id

    def clearSessionNodes(self) -> None:
        for className in ("vtkMRMLSegmentationNode", "vtkMRMLScalarVolumeNode"):
            for node in slicer.util.getNodesByClass(className):
                if node.GetAttribute(SESSION_ATTRIBUTE):
                    slicer.mrmlScene.RemoveNode(node)

    def _sessionMask(self, caseId: str, segmentationNode):
        from .segmentations import exportToLabelmapImage, segmentIdsOf

        referenceVolume = self._sessionReferenceVolume(caseId)
        return exportToLabelmapImage(segmentationNode, referenceVolume, segmentIdsOf(segmentationNode))

    def _maskDigest(self, caseId: str, segmentationNode) -> str:
        import SimpleITK as sitk

        array = sitk.GetArrayViewFromImage(self._sessionMask(caseId, segmentationNode)) != 0
        return hashlib.sha256(array.tobytes()).hexdigest()

    def hasUnsavedEdits(self, caseId: str, segmentationNode) -> bool:
        """True when the case's mask differs from what was last loaded or saved."""
        if self.session is None or not caseId or segmentationNode is None or caseId not in self._savedDigest:
            return False
        if slicer.mrmlScene.GetNodeByID(segmentationNode.GetID()) is None:
            return False
        return self._maskDigest(caseId, segmentationNode) != self._savedDigest[caseId]

    def saveSessionSegmentation(self, readerId: str, caseId: str, segmentationNode, finish: bool = True):
        """Store a version under the reader; ``finish=False`` keeps the case open (a draft)."""
        if self.session is None or not caseId or segmentationNode is None:
            raise ValueError("Load a session case first.")
        if segmentationNode.GetAttribute(READER_ATTRIBUTE) != readerId:
            raise ValueError("This segmentation does not belong to the current reader.")
        mask = self._sessionMask(caseId, segmentationNode)
        path = self.session.save(readerId, caseId, mask, finish=finish, source="session" if finish else "draft")
        self._savedDigest[caseId] = self._maskDigest(caseId, segmentationNode)
        return path

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
