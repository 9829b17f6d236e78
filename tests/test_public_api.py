"""The Python API a notebook imports: the README's example runs as written, and every public name
resolves (lazily: importing the store does not load scikit-learn)."""

import re
import subprocess
import sys
from pathlib import Path

import tools
from tools.demo_data import write_demo_set

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_example_runs_as_written(tmp_path):
    section = README.read_text(encoding="utf-8").split("## Architecture", 1)[1]
    example = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert example is not None, "the README's architecture section has no Python example"
    write_demo_set(tmp_path / "whypref-demo" / "demo_pairs.jsonl", 40)  # what `whypref demo` writes
    done = subprocess.run(
        [sys.executable, "-c", example.group(1)], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines[0].startswith("hmdr explains more than length:")
    assert {line.split(" ", 1)[0] for line in lines[1:]} == {"coding", "cooking", "health"}


def test_every_public_name_resolves_and_loads_lazily():
    for name in tools.__all__:
        assert getattr(tools, name).__name__ == name
    probe = "import sys; from tools import ConceptStore; print('sklearn' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
