"""Templating: sandbox, strict undefined, shell quoting of every value, secrets, unknowns."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from opsconsole.redact import secrets
from opsconsole.templating import (
    TemplateRenderError,
    Unknown,
    UnknownValue,
    evaluate,
    render,
    render_obj,
    secret_functions,
)

INJECTIONS = [
    "x; touch PWNED",
    "$(touch PWNED)",
    "`touch PWNED`",
    "a && touch PWNED",
    "a || touch PWNED",
    "| touch PWNED",
    "'; touch PWNED; '",
    '"; touch PWNED; "',
    "a\ntouch PWNED",
    "> PWNED",
    "$HOME ${HOME} *",
    "{{ 7 * 7 }}",
    "-rf --no-preserve-root",
    "\\'; touch PWNED #",
]


@pytest.mark.parametrize("payload", INJECTIONS)
def test_shell_rendering_makes_every_value_one_argument(payload: str, tmp_path: Path) -> None:
    cmd = render("printf '%s|' {{ x }} {{ y }}", {"x": payload, "y": "second"}, shell=True)
    out = subprocess.run(["/bin/sh", "-c", cmd], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"{payload}|second|"
    assert not (tmp_path / "PWNED").exists()


def test_values_containing_template_syntax_are_not_evaluated_again() -> None:
    assert render("{{ x }}", {"x": "{{ 7 * 7 }}"}) == "{{ 7 * 7 }}"


def test_list_values_in_shell_context_are_quoted_element_wise() -> None:
    assert render("run {{ argv }}", {"argv": ["a b", "c;d"]}, shell=True) == "run 'a b' 'c;d'"


def test_undefined_names_are_errors_not_empty_strings() -> None:
    with pytest.raises(TemplateRenderError, match="'regoin' is undefined"):
        render("failover {{ regoin }}", {"region": "x"})
    with pytest.raises(TemplateRenderError):
        evaluate("vars.nope == 1", {"vars": {}})


def test_sandbox_refuses_python_internals() -> None:
    with pytest.raises(TemplateRenderError, match="unsafe"):
        render("{{ ''.__class__.__mro__ }}", {})
    with pytest.raises(TemplateRenderError):
        render("{{ cycler.__init__.__globals__ }}", {})


def test_single_expression_keeps_native_type() -> None:
    assert render_obj(
        {"n": "{{ n }}", "s": "n={{ n }}", "l": ["{{ flag }}"]}, {"n": 3, "flag": True}
    ) == {"n": 3, "s": "n=3", "l": [True]}


def test_secret_file_and_env_register_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = tmp_path / "key"
    key.write_text("file-secret-123\n")
    monkeypatch.setenv("DB_PASSWORD", "env-secret-456")
    monkeypatch.setenv("CUSTOM", "listed-secret-789")
    monkeypatch.setenv("PLAIN", "not-a-secret")
    fns = secret_functions(frozenset({"CUSTOM"}))
    out = render(
        "{{ secret_file(k) }} {{ env('DB_PASSWORD') }} {{ env('CUSTOM') }} {{ env('PLAIN') }}",
        {"k": str(key), **fns},
    )
    assert out == "file-secret-123 env-secret-456 listed-secret-789 not-a-secret"
    assert secrets.scrub(out) == "*** *** *** not-a-secret"


def test_unknown_renders_as_placeholder_and_decisions_on_it_raise() -> None:
    ctx = {"steps": {"a": Unknown("steps.a")}}
    assert render("x {{ steps.a.json.n }}", ctx) == "x <unknown: steps.a.json.n>"
    with pytest.raises(UnknownValue) as err:
        evaluate("steps.a.rc == 0 and true", ctx)
    assert err.value.path == "steps.a.rc"


def test_syntax_error_names_the_problem_without_rendering() -> None:
    from opsconsole.templating import syntax_error

    assert syntax_error("echo {{ region }}") is None
    assert syntax_error("awk '{print $1}'") is None
    assert syntax_error("echo {{ region }") == "template syntax error: unexpected '}'"
    assert syntax_error("{{ x == }}", expression=True) is not None
    assert syntax_error("region != 'x'", expression=True) is None


def test_render_url_names_an_undefined_value_instead_of_crashing() -> None:
    """`{{ vars.router_url }}` with no such var: the template error every other render
    gives (a one-line user error), not jinja2's UndefinedError escaping as a traceback."""
    from opsconsole.templating import TemplateRenderError, render_url

    with pytest.raises(TemplateRenderError, match="router_url"):
        render_url("{{ vars.router_url }}/routes", {"vars": {}})
    with pytest.raises(TemplateRenderError, match="regoin"):
        render_url("http://x/{{ regoin }}", {"region": "a"})
