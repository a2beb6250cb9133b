"""The defence registry: built-in names, exact matching, register(), entry-point discovery."""

from __future__ import annotations

import sys
import textwrap

import pytest

from art_ssni import GDMP, GNS, DiffPure, SSNIPreprocessor, defences


def test_builtin_names_build_the_right_preprocessor(model, reference):
    assert {"diffpure", "ssni-n", "ssni-l"} <= set(defences.available())
    assert defences.make("diffpure", model, device_type="cpu").reweight == "constant"
    pre = defences.make("ssni-n", model, reference=reference, device_type="cpu", t_star=50)
    assert isinstance(pre, SSNIPreprocessor) and pre.reweight == "sigmoid" and pre.t_star == 50
    assert pre.reference is reference
    assert defences.make("ssni-l", model, reference=reference, device_type="cpu").reweight == "linear"


def test_base_presets(model, reference):
    expected = {"gns", "gns+ssni-n", "gns+ssni-l", "gdmp", "gdmp+ssni-n", "gdmp+ssni-l"}
    assert expected <= set(defences.available())
    gns = defences.make("gns+ssni-l", model, reference=reference, device_type="cpu")
    assert gns.base == GNS() and gns.reweight == "linear"
    gdmp = defences.make("gdmp", model, reference=reference, device_type="cpu")
    assert gdmp.base == GDMP() and gdmp.reweight == "constant" and gdmp.t_star == 36 and gdmp.reference is None
    assert defences.make("gdmp+ssni-n", model, reference=reference, device_type="cpu", t_star=20).t_star == 20


def test_spec_tells_base_reweight_and_reference_need():
    for name in defences.available():
        if name in defences._BUILTIN:
            spec = defences.spec(name)
            assert spec.needs_reference == (spec.reweight != "constant")
            assert spec.needs_reference == name.startswith("ssni") or "+ssni" in name
    assert defences.spec("diffpure").base == DiffPure() and not defences.spec("diffpure").needs_reference
    assert defences.spec("gns+ssni-n").base == GNS() and defences.spec("gns+ssni-n").reweight == "sigmoid"
    assert defences.spec("gdmp").base.single_stage is False and defences.spec("gdmp").t_star == 36
    assert defences.spec("ssni-l").base.single_stage is True
    with pytest.raises(ValueError, match=r"defence must be one of .*got 'nope'"):
        defences.spec("nope")


def test_spec_of_registered_names(model):
    def factory(m, *, reference=None, **kw):
        return SSNIPreprocessor(m, reweight="constant", t_star=3, device_type="cpu")

    defences.register("test-spec", factory)
    try:
        with pytest.raises(ValueError, match="registered without a spec"):
            defences.spec("test-spec")
        declared = defences.DefenceSpec(GNS(stages=(3,)), "constant", 3)
        defences.register("test-spec", factory, overwrite=True, spec=declared)
        assert defences.spec("test-spec") is declared
    finally:
        defences._REGISTERED.pop("test-spec", None)
        defences._REGISTERED_SPECS.pop("test-spec", None)


def test_diffpure_ignores_reference(model, reference):
    assert defences.make("diffpure", model, reference=reference, device_type="cpu").reference is None


def test_unknown_name_lists_valid_ones(model):
    with pytest.raises(ValueError, match=r"defence must be one of \[.*'diffpure'.*\], got 'SSNI-N'"):
        defences.make("SSNI-N", model)
    with pytest.raises(ValueError, match="got 'ssni'"):
        defences.make("ssni", model)  # no prefix matching


def test_register_and_overwrite(model):
    def factory(m, *, reference=None, **kw):
        return SSNIPreprocessor(m, reweight="constant", t_star=3, device_type="cpu")

    defences.register("test-const3", factory)
    try:
        assert "test-const3" in defences.available()
        assert defences.make("test-const3", model).t_star == 3
        with pytest.raises(ValueError, match="already registered"):
            defences.register("test-const3", factory)
        defences.register("test-const3", factory, overwrite=True)
    finally:
        defences._REGISTERED.pop("test-const3", None)
    with pytest.raises(TypeError, match="factory must be callable"):
        defences.register("x", 3)  # type: ignore[arg-type]


def test_entry_point_group_is_discovered(tmp_path, model, monkeypatch):
    """A tiny installed distribution declaring an ``art_ssni.defences`` entry point."""
    pkg = tmp_path / "dummy_defence_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        textwrap.dedent(
            """
            from art_ssni import SSNIPreprocessor

            def make_t7(model, *, reference=None, **overrides):
                return SSNIPreprocessor(model, reweight="constant", t_star=7, device_type="cpu", **overrides)
            """
        )
    )
    dist = tmp_path / "dummy_defence_pkg-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: dummy-defence-pkg\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[art_ssni.defences]\ndummy-t7 = dummy_defence_pkg:make_t7\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "dummy-t7" in defences.available()
    assert defences.make("dummy-t7", model).t_star == 7
    monkeypatch.delitem(sys.modules, "dummy_defence_pkg", raising=False)


def test_sized_for_adapts_gdmp_scale_to_the_image_size():
    """GDMP's preset scale is CIFAR-10's; evaluate, the leaderboard runner and the frontier all build GDMP through
    ``sized_for`` (on 8x8 digits the CIFAR scale made the frontier's GDMP point diverge to NaN)."""
    from art_ssni.ssni.bases import gdmp_scale_for

    assert defences.sized_for("gdmp", (1, 8, 8)) == {"base": GDMP(scale=gdmp_scale_for((1, 8, 8)))}
    assert defences.sized_for("gdmp+ssni-n", (3, 32, 32)) == {"base": GDMP()}  # CIFAR-10: the preset itself
    assert gdmp_scale_for((1, 8, 8)) == GDMP().scale * 64 / 3072
    assert defences.sized_for("diffpure", (1, 8, 8)) == {} and defences.sized_for("gns", (1, 8, 8)) == {}
