"""Radiomics through pyradiomics: per-ROI extraction, cohort extraction on the runner, tables.

Public API::

    extract(image, mask, params=None, label=None)            -> {feature: value}   (one ROI)
    load_params(source=None)                                  -> parameter dict
    plan_rois(store, ...)                                     -> [RoiSpec]
    extract_cohort(store, params=None, jobs=None, ...)        -> CohortRadiomics (writes tables)
    extract_case(store, patient_id, params=None, jobs=None)   -> long DataFrame of one patient
    wide_table(long, timepoints=None, deltas=True)            -> wide per-(patient, reader) table
"""

from .cohort import CohortRadiomics, RoiSpec, extract_case, extract_cohort, make_tasks, plan_rois
from .extractor import extract, get_extractor
from .params import (
           DEFAULT,
           DEFAULT_2D,
           SHIPPED,
           is_2d,
           load_params,
           params_hash,
           quiet_pyradiomics,
           shipped_path,
)
from .tables import delta_abs, delta_rel, long_table, wide_table

__all__ = ["DEFAULT", "DEFAULT_2D", "SHIPPED", "CohortRadiomics", "RoiSpec", "delta_abs", "delta_rel",
           "extract", "extract_case", "extract_cohort", "get_extractor", "is_2d", "load_params", "long_table",
           "make_tasks", "params_hash", "plan_rois", "quiet_pyradiomics", "shipped_path",
           "wide_table"]
