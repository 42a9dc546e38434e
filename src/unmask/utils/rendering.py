"""Pages and documents from Jinja2 templates kept as package data (``<package>/templates/``).

HTML templates (``*.html``) escape every value unless it is marked safe; Markdown ones (``*.md``)
are left as written. A value missing from the context is an error, not an empty string.
"""

from __future__ import annotations

import functools

import jinja2


def fixed(x, digits: int = 4) -> str:
    """``x`` with ``digits`` decimals, or ``-`` for ``None`` (a figure not measured)."""
    return "-" if x is None else f"{x:.{digits}f}"


@functools.cache
def environment(package: str) -> jinja2.Environment:
    """The Jinja2 environment of the templates in ``package``'s ``templates`` folder."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader(package, "templates"),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["fixed"] = fixed
    return env


def render(package: str, template: str, **context) -> str:
    """``template`` of ``package`` (e.g. ``"unmask.evaluation"``, ``"report.html"``) filled with ``context``."""
    return environment(package).get_template(template).render(**context)
