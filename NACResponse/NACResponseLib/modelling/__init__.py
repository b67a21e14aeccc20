"""Response models: targets, leakage-free feature selection, clinical / radiomics / deep / combined
classifiers, evaluation (bootstrap CIs, DeLong, calibration, decision curves, .632+ and Harrell
bootstrap validation, permutation), stepwise prediction across NAC courses, RCB regression, a safe
model artefact and per-case prediction.

Every heavy import (scikit-learn, matplotlib) happens inside functions; importing this package is cheap.
"""
