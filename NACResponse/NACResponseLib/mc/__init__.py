"""Microcalcifications (MCs) on 2D mammograms: detection, clusters, extent and RESMIN assessment.

Modules, one responsibility each:

- :mod:`.phantom`      synthetic mammograms with known MCs (validation, demo, cohort generator)
- :mod:`.breast`       breast region (background, labels, pectoral muscle on MLO)
- :mod:`.detect`       classical multi-scale detector in mm units (no weights)
- :mod:`.classifier`   optional learned second stage on candidate features: apply a saved model
- :mod:`.classifier_training` its training on phantoms and on the user's edits
- :mod:`.clusters`     distance-based clustering, Feret extent, convex hull, distribution
- :mod:`.longitudinal` pre/post cluster matching, RESMIN categories and the RESMIN flag
- :mod:`.editing`      user-corrected detections -> recompute clusters and extent
- :mod:`.overlays`     PNG overlays for reports
- :mod:`.evaluation`   FROC-style sensitivity, cluster hits and extent error against truth
- :mod:`.cohort`       running all of the above on the mammograms of a study

Everything is in millimetres: pixel sizes only enter when converting to and from pixel indices.
"""
