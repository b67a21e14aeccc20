"""The classifier menu and the small hyper-parameter grids used for nested tuning."""

from __future__ import annotations

from typing import Any

from ..errors import InputError

CLASSIFIERS = ("logistic", "naive_bayes", "svm", "knn", "random_forest", "lightgbm",
               "gradient_boosting", "adaboost", "mlp")

#: Grids searched by the inner cross-validation when tuning (keys are the classifier's params).
PARAM_GRIDS: dict[str, dict[str, list[Any]]] = {
    "logistic": {"C": [0.1, 1.0, 10.0]},
    "naive_bayes": {"var_smoothing": [1e-9, 1e-6, 1e-3]},
    "svm": {"estimator__C": [0.3, 1.0, 3.0]},
    "knn": {"n_neighbors": [3, 5, 9]},
    "random_forest": {"max_depth": [None, 3], "min_samples_leaf": [1, 3]},
    "lightgbm": {"num_leaves": [7, 15], "learning_rate": [0.05, 0.1]},
    "gradient_boosting": {"learning_rate": [0.05, 0.1], "max_depth": [1, 2]},
    "adaboost": {"learning_rate": [0.5, 1.0]},
    "mlp": {"alpha": [1e-3, 1e-1]},
}


def make_classifier(name: str, random_state: int = 0, task: str = "classification", **params):
    """A fresh, unfitted estimator.  ``task='regression'`` is offered for random forest (RCB)."""
    if task == "regression":
        if name != "random_forest":
            raise InputError(f"regression (RCB index) supports classifier 'random_forest', not {name!r}")
        from sklearn.ensemble import RandomForestRegressor

        return RandomForestRegressor(**{"n_estimators": 200, "min_samples_leaf": 2, "random_state": random_state,
                                        **params})
    if name == "logistic":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(**{"C": 1.0, "max_iter": 5000, **params})
    if name == "naive_bayes":
        from sklearn.naive_bayes import GaussianNB

        return GaussianNB(**params)
    if name == "svm":
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.svm import SVC

        # Platt scaling on internal folds (SVC(probability=True) is deprecated)
        svc = SVC(**{"C": 1.0, "kernel": "rbf", "random_state": random_state,
                     **{k.removeprefix("estimator__"): v for k, v in params.items()}})
        return CalibratedClassifierCV(svc, method="sigmoid", cv=3, ensemble=False)
    if name == "knn":
        from sklearn.neighbors import KNeighborsClassifier

        return KNeighborsClassifier(**{"n_neighbors": 5, **params})
    if name == "random_forest":
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(**{"n_estimators": 200, "min_samples_leaf": 2,
                                         "random_state": random_state, **params})
    if name == "lightgbm":
        try:
            from lightgbm import LGBMClassifier
        except ImportError as exc:
            raise InputError("classifier 'lightgbm' needs the optional package lightgbm "
                             "(pip install lightgbm)") from exc
        return LGBMClassifier(**{"n_estimators": 100, "random_state": random_state, "verbose": -1, **params})
    if name == "gradient_boosting":
        from sklearn.ensemble import GradientBoostingClassifier

        return GradientBoostingClassifier(**{"n_estimators": 100, "max_depth": 2, "random_state": random_state,
                                             **params})
    if name == "adaboost":
        from sklearn.ensemble import AdaBoostClassifier

        return AdaBoostClassifier(**{"n_estimators": 100, "random_state": random_state, **params})
    if name == "mlp":
        from sklearn.neural_network import MLPClassifier

        return MLPClassifier(**{"hidden_layer_sizes": (16,), "alpha": 1e-2, "max_iter": 3000,
                                "random_state": random_state, **params})
    raise InputError(f"unknown classifier {name!r}; choose one of {', '.join(CLASSIFIERS)}")
