"""The quiet terminal: third-party warnings and logs land in the log file, then all is restored."""

from __future__ import annotations

import logging
import warnings

from winback.terminal import log_file, third_party_to_file


def test_warnings_and_library_logs_go_to_the_file_not_the_screen(tmp_path, capsys):
    path = log_file(tmp_path / "out", "demo")
    library = logging.getLogger("mlflow")
    screen = logging.StreamHandler()
    library.addHandler(screen)
    before = (library.handlers[:], library.propagate, logging.getLogger().handlers[:])
    try:
        with third_party_to_file(path) as written:
            warnings.warn("imputer skipped a column", UserWarning, stacklevel=1)
            library.warning("cloudpickle notice")
            logging.getLogger("some_library.runtime").info("running upgrade")
            print("progress line")
        assert written == path == tmp_path / "out" / "logs" / "demo.log"
        captured = capsys.readouterr()
        assert captured.out == "progress line\n"
        assert "imputer" not in captured.err and "cloudpickle" not in captured.err
        text = path.read_text()
        for message in ("imputer skipped a column", "cloudpickle notice", "running upgrade"):
            assert message in text
        after = (library.handlers[:], library.propagate, logging.getLogger().handlers[:])
        assert after == before
    finally:
        library.removeHandler(screen)


def test_verbose_redirects_nothing(tmp_path):
    path = log_file(tmp_path, "train")
    with third_party_to_file(path, verbose=True), warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        warnings.warn("shown", UserWarning, stacklevel=1)
    assert [str(w.message) for w in seen] == ["shown"]
    assert not path.exists()
