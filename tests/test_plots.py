"""The figures' readability fixes (issue 25, item 14): labels a reader understands, series that stay apart."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from art_ssni import plots  # noqa: E402


def test_point_labels_are_for_readers_not_run_ids():
    assert (
        plots.point_label({"defence": "ssni-n", "t_star": 200, "tau_scale": 0.5}) == "SSNI-N, t* = 200, τ = 0.5 × std"
    )
    assert plots.point_label({"defence": "gns+ssni-l", "t_star": 150, "tau_scale": None}) == "GNS+SSNI-L, t* = 150"
    assert plots.point_label({"defence": "ssni-l", "t_star": 100, "tau_scale": 1.0}) == "SSNI-L, t* = 100"


def test_series_styles_differ_so_coinciding_points_both_show():
    styles = [plots._style(i) for i in range(6)]
    assert len({(s["marker"], s["linestyle"]) for s in styles}) == 6
    assert styles[1]["markerfacecolor"] == "none" and "markerfacecolor" not in styles[0]  # hollow over filled
    assert len(set(plots._LABEL_OFFSETS)) == len(plots._LABEL_OFFSETS)


def test_timestep_figure_marks_the_ceiling_and_says_why(tmp_path, monkeypatch):
    titles: list[str] = []
    real = plots._pyplot()
    monkeypatch.setattr(real.Figure, "suptitle", lambda self, t, **kw: titles.append(t), raising=True)
    levels = {"ssni-n clean": np.array([20, 50, 90]), "ssni-n worst case": np.array([104, 104, 104])}
    plots.timestep_distribution(levels, tmp_path / "t.png", t_star=100, bias=5.0)
    assert (tmp_path / "t.png").stat().st_size > 0
    assert "t* − 1 + b" in titles[-1] and "saturate" in titles[-1]
    plots.timestep_distribution(levels, tmp_path / "u.png", t_star=100)
    assert titles[-1] == "Chosen noise levels"
