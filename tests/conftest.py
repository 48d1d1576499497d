"Shared fixtures: small data sets written to disk in the real layouts of the data sets the labs use."
import os, warnings
from pathlib import Path
import pytest

os.environ.setdefault('MPLBACKEND', 'Agg')
from dcgan_course.fixtures import noise_png, noise_fixture, digit_folders   # after the backend is set


# the tests' names for the fixture writers of `dcgan_course.fixtures` (05a_fixtures), the one module that writes fake data sets
write_png, make_layout = noise_png, noise_fixture


@pytest.fixture
def digits_folder(tmp_path):
    "The real scikit-learn digits (first 200) written as 32 px PNGs in class sub-folders."
    return digit_folders(tmp_path, n=200, size=32)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    "Each test gets its own image/statistics cache, so tests never see each other's files."
    monkeypatch.setenv('DCGAN_CACHE', str(tmp_path/'_cache'))
