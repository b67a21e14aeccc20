"""The module's Logic and Widget behaviour, composed from one module per panel.

``PanelLogic`` (no widgets; the module's Logic and the self-test use it) and ``PanelHandlers`` (the
module's Widget mixes it in: connects the .ui buttons to the panels' handlers).  Quick steps (a
study, a reader-session case, FTV, RECIST lines, prediction, MC edits) call NACResponseLib in-process;
long ones run as ``nacresponse`` commands in a background process.  NACResponseLib is imported inside
methods so the module loads before its dependencies are installed.
"""

from __future__ import annotations

from .features_panel import FeaturesHandlers, FeaturesLogic
from .mc_panel import McHandlers, McLogic
from .panel_base import StudyContext, TaskHandlers
from .prediction_panel import PredictionHandlers, PredictionLogic
from .segmentation_panel import SegmentationHandlers, SegmentationLogic
from .session_panel import READER_ATTRIBUTE, SESSION_ATTRIBUTE, SessionHandlers, SessionLogic
from .study_panel import StudyHandlers, StudyLogic

__all__ = ["PanelLogic", "PanelHandlers", "READER_ATTRIBUTE", "SESSION_ATTRIBUTE"]


class PanelLogic(StudyContext, StudyLogic, SessionLogic, SegmentationLogic, FeaturesLogic, PredictionLogic, McLogic):
    """Every panel's work without widgets."""


class PanelHandlers(TaskHandlers, StudyHandlers, SessionHandlers, SegmentationHandlers, FeaturesHandlers,
                    PredictionHandlers, McHandlers):
    """Every panel's widget handlers; needs ``self.ui``, ``self.logic`` and ``self._parameterNode``."""

    def connectPanels(self) -> None:
        self.connectTaskPanel()
        self.connectStudyPanel()
        self.connectSessionPanel()
        self.connectSegmentationPanel()
        self.connectFeaturesPanel()
        self.connectPredictionPanel()
        self.connectMcPanel()
