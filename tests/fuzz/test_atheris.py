"""A CI-sized atheris run over the host input path (the long run is in README)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytest.importorskip("atheris")


def test_atheris_ci_run(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for f in (ROOT / "tests/fuzz/corpus").iterdir():
        (corpus / f.name).write_bytes(f.read_bytes())
    runs = os.environ.get("FUZZ_ATHERIS_RUNS", "30000")
    p = subprocess.run([sys.executable, str(ROOT / "tests/fuzz/atheris_input_path.py"), "-runs=" + runs,
                        "-max_len=300", "-rss_limit_mb=1024", "-timeout=5", str(corpus)],
                       capture_output=True, text=True, cwd=tmp_path, timeout=300)
    tail = p.stderr[-3000:]
    assert p.returncode == 0, tail
    assert "Done %s runs" % runs in p.stderr, tail
    assert not list(tmp_path.glob("crash-*")), tail
