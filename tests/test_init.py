"""`import open4m` is light: every public name is resolved on first access."""

import subprocess
import sys

import pytest

import open4m


def test_import_open4m_imports_no_torch():
    code = "import sys, open4m; assert 'torch' not in sys.modules and 'numpy' not in sys.modules; print(open4m.__version__)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def test_every_public_name_resolves_and_is_listed():
    for name in open4m.__all__:
        assert getattr(open4m, name) is not None, name
    assert set(open4m.__all__) <= set(dir(open4m))
    assert open4m.FourM.__name__ == "FourM" and open4m.modalities.get("rgb@224").name == "rgb@224"
    assert callable(open4m.pipeline) and callable(open4m.load_model) and open4m.FOURM_7


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        open4m.nope  # noqa: B018
