"""The Open4mError hierarchy: user errors that still behave as the builtins they replace."""

import subprocess
import sys

import pytest

from open4m import errors
from open4m.errors import CheckpointError, ConfigError, DataError, NotFound, Open4mError, OutputExists, UnknownNameError


@pytest.mark.parametrize("cls, builtin", [(ConfigError, ValueError), (DataError, ValueError), (NotFound, FileNotFoundError),
                                          (OutputExists, FileExistsError), (CheckpointError, ValueError),
                                          (UnknownNameError, KeyError)])
def test_each_error_is_also_the_builtin_it_replaces(cls, builtin):
    err = cls("what is wrong; how to fix it")
    assert isinstance(err, Open4mError) and isinstance(err, builtin) and err.exit_code == 2
    assert str(err) == "what is wrong; how to fix it"  # KeyError's quotes and OSError's errno prefix stay out
    with pytest.raises(builtin):
        raise err


def test_library_error_classes_join_the_hierarchy():
    from open4m.sources.world import MissingModelError
    from open4m.hub import HubFileMissing
    from open4m.modalities import UnknownModalityError, get
    from open4m.weights import CheckpointError as WeightsCheckpointError

    assert issubclass(HubFileMissing, NotFound) and issubclass(MissingModelError, NotFound)
    assert issubclass(UnknownModalityError, UnknownNameError) and WeightsCheckpointError is CheckpointError
    with pytest.raises(UnknownNameError, match="Did you mean 'depth'"):
        get("dpeth")


def test_errors_is_the_bottom_of_the_package():
    code = "import sys, open4m.errors; print(sorted(m for m in sys.modules if m.startswith('open4m')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['open4m', 'open4m.errors']"
    assert set(errors.__all__) == {n for n, v in vars(errors).items() if isinstance(v, type) and issubclass(v, Open4mError)}
