"""The module's widget, composed: one panel object per section of the .ui, each with its injected
logic (``panels.PanelLogic``), the shared background-task area and the current parameter node."""

from __future__ import annotations

from .features_panel import FeaturesPanel
from .mc_panel import McPanel
from .panel_base import TaskPanel
from .prediction_panel import PredictionPanel
from .segmentation_panel import SegmentationPanel
from .session_panel import SessionPanel
from .study_panel import StudyPanel


class PanelWidgets:
    def __init__(self, ui, logic, parameterNode, requirementsPath: str) -> None:
        self.tasks = TaskPanel(ui, requirementsPath)
        self.study = StudyPanel(ui, logic.study, self.tasks, parameterNode)
        self.session = SessionPanel(ui, logic.session, self.tasks, parameterNode)
        self.segmentation = SegmentationPanel(ui, logic.segmentation, self.tasks, parameterNode,
                                              edit=self.session.edit)
        self.features = FeaturesPanel(ui, logic.features, self.tasks, parameterNode)
        self.prediction = PredictionPanel(ui, logic.prediction, self.tasks, parameterNode)
        self.mc = McPanel(ui, logic.mc, self.tasks, parameterNode)

    @property
    def panels(self) -> list:
        return [self.tasks, self.study, self.session, self.segmentation, self.features, self.prediction, self.mc]

    def connect(self) -> None:
        for panel in self.panels:
            panel.connect()

    def enter(self) -> None:
        self.session.enter()

    def exit(self) -> None:
        self.session.exit()

    def onSceneStartClose(self) -> None:
        self.session.onSceneStartClose()

    def cleanup(self) -> None:
        self.tasks.cancel()
