"""Binds a ``ctkPathLineEdit`` to a ``str`` field of the parameter node.

Slicer's own connector binds it to ``pathlib.Path``, whose unset value ``Path()`` shows as "." in
the line edit.  With a ``str`` field an unset path stays empty; ``context.given_path`` turns the
text into a path where a panel needs one.  Registered on import (``NACResponse.py`` imports it).
"""

from __future__ import annotations

import ctk
from slicer.parameterNodeWrapper import GuiConnector, parameterNodeGuiConnector
from slicer.parameterNodeWrapper.util import unannotatedType


@parameterNodeGuiConnector
class PathLineEditToStrConnector(GuiConnector):
    @staticmethod
    def canRepresent(widget, datatype) -> bool:
        return type(widget) is ctk.ctkPathLineEdit and unannotatedType(datatype) is str

    @staticmethod
    def create(widget, datatype):
        return PathLineEditToStrConnector(widget) if PathLineEditToStrConnector.canRepresent(widget, datatype) else None

    def __init__(self, widget) -> None:
        super().__init__()
        self._widget = widget

    def _connect(self) -> None:
        self._widget.currentPathChanged.connect(self.changed)

    def _disconnect(self) -> None:
        self._widget.currentPathChanged.disconnect(self.changed)

    def widget(self):
        return self._widget

    def read(self) -> str:
        return self._widget.currentPath

    def write(self, value) -> None:
        self._widget.currentPath = value or ""
