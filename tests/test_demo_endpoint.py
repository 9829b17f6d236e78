"""The demo's main job against an OpenAI-compatible server on 127.0.0.1 that answers like an LLM
(scripted), as a user with their own endpoint runs it; a re-run is paid from the cache. (A module of its
own: the suite's slowest test runs beside the others.)"""

from typer.testing import CliRunner

from cli import app

runner = CliRunner()


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def test_demo_end_to_end_with_an_endpoint(endpoint, tmp_path):
    out = invoke("demo", "--dir", tmp_path)
    assert "Report:" in out and "embedded" not in out
    report = (tmp_path / "report" / "report.md").read_text()
    assert "## human" in report and "## judge-verbose" in report and "stub-model" in report
    assert len(list((tmp_path / "report").glob("*.png"))) == 2
    requests = endpoint.requests
    invoke("demo", "--dir", tmp_path)
    assert endpoint.requests == requests  # everything cached: a re-run costs no calls
