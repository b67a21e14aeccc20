"""Automatic-segmentation panel widgets: MONAI (background), FTV in a ROI box and RECIST lines.
Every result is opened in the embedded Segment Editor, so the user can correct it."""

from __future__ import annotations

from slicer.i18n import tr as _

from .naming import TIMEPOINTS
from .panel_base import Panel


class SegmentationPanel(Panel):
    def __init__(self, ui, logic, tasks, parameterNode, edit) -> None:
        super().__init__(ui, logic, tasks, parameterNode)
        self.edit = edit  # SessionPanel.edit: segmentation + reference volume into the Segment Editor

    def connect(self) -> None:
        self.connectButtons([(self.ui.runMonaiButton, self.onRunMonai), (self.ui.runFtvButton, self.onRunFtv),
                             (self.ui.recistButton, self.onShowRecist)])

    def onRunMonai(self) -> None:
        p = self.params
        patientId = self.patient()
        timepoints = sorted({p.timepointA, p.timepointB}, key=TIMEPOINTS.index)
        arguments = self.logic.segPredictArguments(p.segModelFolder, patientId, timepoints)
        inViews = list(dict.fromkeys([p.timepointA, p.timepointB]))  # A left, B right

        def show():
            loaded = self.logic.loadMethodSegmentations(patientId, inViews, "monai")
            if loaded is not None:
                self.edit(*loaded)

        self.tasks.run(arguments, _("MONAI segmentation"), needs=("core", "deep"), onSuccess=show)

    def onRunFtv(self) -> None:
        p = self.params
        self.tasks.ensure(("core",))
        result = self.logic.runFtv(self.patient(), p.timepointB, p.roiNode, p.settings.peThreshold,
                                   p.settings.serThreshold, p.settings.backgroundPercent)
        self.edit(result["segmentationNode"], result["referenceVolume"])
        self.ui.segmentationResultLabel.text = _("FTV {volume:.2f} cm3 ({voxels} voxels) at {tp}.").format(
            volume=result["volume_cm3"], voxels=result["n_voxels"], tp=p.timepointB)

    def onShowRecist(self) -> None:
        self.tasks.ensure(("core",))
        lines = self.logic.showRecistLines(self.params.segmentationNode)
        self.ui.segmentationResultLabel.text = "; ".join(f"{name}: {length:.1f} mm" for name, length in lines)
