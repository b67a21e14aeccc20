"""NACResponseLib: the Slicer-free core of NACResponse.

Everything scientific lives here and is importable without 3D Slicer, VTK or Qt.
Heavy dependencies (torch, monai, radiomics, sklearn) are imported lazily inside functions.
"""

__version__ = "0.1.0"
