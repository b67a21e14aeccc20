"""The module's logic, composed: one logic object per panel, all sharing one open study.

Widget-free (neither Qt nor ``slicer.i18n``), so the self-test and CI drive every panel's scene work
on real MRML.  ``widgets.PanelWidgets`` composes the matching panel widgets around these objects.
"""

from __future__ import annotations

from .context import StudyContext
from .features_logic import FeaturesLogic
from .mc_logic import McLogic
from .prediction_logic import PredictionLogic
from .segmentation_logic import SegmentationLogic
from .session_logic import SessionLogic
from .study_logic import StudyLogic

PANELS = ("study", "session", "segmentation", "features", "prediction", "mc")


class PanelLogic:
    """``study``, ``session``, ``segmentation``, ``features``, ``prediction`` and ``mc``: each a panel's
    logic with the shared ``context`` (the open study)."""

    def __init__(self, context: StudyContext | None = None) -> None:
        self.context = context if context is not None else StudyContext()
        self.study = StudyLogic(self.context)
        self.session = SessionLogic(self.context)
        self.segmentation = SegmentationLogic(self.context)
        self.features = FeaturesLogic(self.context)
        self.prediction = PredictionLogic(self.context)
        self.mc = McLogic(self.context)

    def reset(self) -> None:
        """Forget the open study and session (scene closed, module reloaded)."""
        self.session.closeSession()
        self.context.close()
