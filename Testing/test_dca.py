"""Decision-curve net benefit against the Vickers & Elkin (2006) formula computed by hand."""

import numpy as np
import pytest

from NACResponseLib.modelling.dca import net_benefit


def test_net_benefit_by_hand():
    # 10 patients, 4 events; at pt = 0.25: called positive p >= 0.25 -> ids 2..9
    y = np.array([0, 0, 1, 0, 1, 0, 1, 0, 1, 0])
    p = np.array([0.05, 0.1, 0.3, 0.25, 0.8, 0.4, 0.6, 0.9, 0.7, 0.5])
    t = net_benefit(y, p, [0.25, 0.5])
    # pt=0.25: TP = 4 (ids 2,4,6,8), FP = 4 (ids 3,5,7,9); NB = 4/10 - 4/10 * (0.25/0.75)
    assert t.loc[0, "net_benefit"] == pytest.approx(0.4 - 0.4 / 3)
    # pt=0.5: called ids 4,6,7,8,9 -> TP 3 (4,6,8), FP 2 (7,9); NB = 0.3 - 0.2 * 1
    assert t.loc[1, "net_benefit"] == pytest.approx(0.1)
    # treat all: prevalence 0.4 - 0.6 * odds
    assert t.loc[0, "treat_all"] == pytest.approx(0.4 - 0.6 / 3)
    assert t.loc[1, "treat_all"] == pytest.approx(-0.2)
    assert (t["treat_none"] == 0).all()


def test_perfect_model_net_benefit_equals_prevalence():
    y = np.array([0, 1] * 20)
    t = net_benefit(y, y * 0.98 + 0.01, np.arange(0.05, 0.95, 0.05))
    np.testing.assert_allclose(t["net_benefit"], 0.5)


def test_thresholds_validated():
    with pytest.raises(ValueError, match="strictly between"):
        net_benefit([0, 1], [0.2, 0.8], [0.0, 0.5])
