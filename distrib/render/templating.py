"""The Jinja2 environment every email and share template is rendered in.

Users override any template from their own folder (``[templates] dir``); the built-in
templates stay reachable under the ``!default/`` prefix so an override can extend the
file it replaces, as pelican does with ``!simple/``::

    {% extends "!default/email/digest.mjml.j2" %}

Every Jinja error (syntax, undefined variable, missing template) becomes a
:class:`~distrib.errors.TemplateError` whose one line names the file, the line and the
problem, so ``distrib check`` and ``distrib run`` can exit 2 with something a person can fix.
"""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2

from .. import paths
from ..errors import TemplateError
from .css import css_value

if TYPE_CHECKING:
    from ..config import Settings

DEFAULT_PREFIX = "!default"

#: Templates whose output is plain text are not HTML-escaped; everything else is
#: (MJML, HTML, XML).  Unknown extensions are escaped: the safe choice.
_TEXT_EXTENSIONS = ("txt", "txt.j2", "text.j2")
_MARKUP_EXTENSIONS = ("html", "htm", "xml", "mjml", "html.j2", "xml.j2", "mjml.j2")


def _search_dirs(settings: Settings | None) -> list[Path]:
    dirs: list[Path] = []
    user = _user_dir(settings)
    if user is not None:
        dirs.append(user)
    dirs.append(paths.templates_dir())
    return dirs


def _user_dir(settings: Settings | None) -> Path | None:
    if settings is None:
        return None
    templates = settings.data.get("templates") or {}
    d = templates.get("dir")
    return Path(d) if d else None


class _Loader(jinja2.ChoiceLoader):
    """ChoiceLoader whose "not found" error lists every file it looked at."""

    def __init__(self, user: Path | None, builtin: Path):
        self.user = user
        self.builtin = builtin
        loaders: list[jinja2.BaseLoader] = []
        if user is not None:
            loaders.append(jinja2.FileSystemLoader(str(user)))
        loaders.append(
            jinja2.PrefixLoader({DEFAULT_PREFIX: jinja2.FileSystemLoader(str(builtin))}, "/")
        )
        loaders.append(jinja2.FileSystemLoader(str(builtin)))
        super().__init__(loaders)

    def get_source(self, environment: jinja2.Environment, template: str) -> Any:
        try:
            return super().get_source(environment, template)
        except jinja2.TemplateNotFound:
            raise self._not_found(template) from None

    def load(
        self, environment: jinja2.Environment, name: str, globals: Any = None
    ) -> jinja2.Template:
        try:
            return super().load(environment, name, globals)
        except jinja2.TemplateNotFound as e:
            if e.name != name:
                raise  # a template included by this one is missing: report that one
            raise self._not_found(name) from None

    def _not_found(self, template: str) -> jinja2.TemplateNotFound:
        return jinja2.TemplateNotFound(
            template,
            f"template {template!r} not found; looked in: {', '.join(self.searched(template))}",
        )

    def searched(self, template: str) -> list[str]:
        if template.startswith(DEFAULT_PREFIX + "/"):
            return [str(self.builtin / template[len(DEFAULT_PREFIX) + 1 :])]
        out = [str(self.user / template)] if self.user is not None else []
        out.append(str(self.builtin / template))
        return out


def make_env(settings: Settings | None) -> jinja2.Environment:
    """The environment: user folder first, then the built-in templates; strict and escaped."""
    env = jinja2.Environment(
        loader=_Loader(_user_dir(settings), paths.templates_dir()),
        autoescape=jinja2.select_autoescape(
            enabled_extensions=_MARKUP_EXTENSIONS,
            disabled_extensions=_TEXT_EXTENSIONS,
            # Strings come from the config (subject, preheader): they are plain
            # text, escaped later by whichever template shows them.
            default_for_string=False,
            default=True,
        ),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=True,
    )
    env.filters["wrap"] = wrap_text
    env.filters["tagify"] = tagify
    env.filters["css"] = css_value
    return env


def wrap_text(text: str, width: int = 72) -> str:
    """Text-part paragraphs wrapped at ``width`` columns, never inside a word or URL."""
    import textwrap

    return "\n\n".join(
        textwrap.fill(para, width, break_long_words=False, break_on_hyphens=False)
        for para in str(text).split("\n\n")
    )


def tagify(tag: str) -> str:
    """'Climate policy' -> '#ClimatePolicy' for the text part's tag line."""
    words = str(tag).replace("#", " ").split()
    if len(words) == 1:
        return "#" + words[0]
    return "#" + "".join(w[:1].upper() + w[1:] for w in words)


def get_template(env: jinja2.Environment, name: str) -> jinja2.Template:
    """``env.get_template`` with every failure turned into a one-line TemplateError."""
    try:
        return env.get_template(name)
    except jinja2.TemplateError as e:
        raise template_error(e, name) from None


def render(env: jinja2.Environment, name: str, **ctx: Any) -> str:
    """Render the template ``name``; any Jinja error becomes a TemplateError naming file:line."""
    template = get_template(env, name)
    try:
        return template.render(**ctx)
    except jinja2.TemplateError as e:
        raise template_error(e, name) from None
    except TemplateError:
        raise
    except (TypeError, ValueError, AttributeError, KeyError, IndexError, ZeroDivisionError) as e:
        # An error inside a template expression (a filter given the wrong type...):
        # still the template's fault, so name the line that raised it.
        raise template_error(e, name) from None


def render_string(
    env: jinja2.Environment, source: str, *, what: str = "template", **ctx: Any
) -> str:
    """Render a template given as a string (a config value); errors name ``what``.

    ``what`` is the config key the string came from, such as ``digest.subject``.
    """
    try:
        return env.from_string(source).render(**ctx)
    except jinja2.TemplateSyntaxError as e:
        raise TemplateError(
            f"{what}: {e.message} (line {e.lineno}); fix the template in the config"
        ) from None
    except jinja2.TemplateError as e:
        raise TemplateError(f"{what}: {_message(e)}; fix the template in the config") from None
    except (TypeError, ValueError, AttributeError, KeyError, IndexError, ZeroDivisionError) as e:
        raise TemplateError(
            f"{what}: {type(e).__name__}: {e}; fix the template in the config"
        ) from None


def _message(e: BaseException) -> str:
    msg = getattr(e, "message", None) or str(e) or type(e).__name__
    return " ".join(str(msg).split())


def template_error(e: BaseException, name: str) -> TemplateError:
    """A one-line TemplateError: ``<file>:<line>: <problem>``."""
    if isinstance(e, jinja2.TemplateNotFound):
        return TemplateError(_message(e))
    if isinstance(e, jinja2.TemplateSyntaxError):
        where = e.filename or e.name or name
        return TemplateError(f"{where}:{e.lineno}: {_message(e)}; fix the template syntax")
    where = _template_frame(e) or name
    if isinstance(e, jinja2.UndefinedError):
        # StrictUndefined: almost always a misspelt name; the built-in templates are
        # the reference for what each template is given.
        return TemplateError(
            f"{where}: {_message(e)}; check the spelling against the variables the built-in templates use"
        )
    return TemplateError(f"{where}: {_message(e)}")


def _template_frame(e: BaseException) -> str | None:
    """``file:line`` of the innermost template frame in the traceback.

    Jinja rewrites tracebacks so template frames carry the template file's name and
    line (jinja2.debug.rewrite_traceback_stack), so the innermost such frame is the
    line that failed, even inside an included or extended template.
    """
    found = None
    for frame in traceback.extract_tb(e.__traceback__):
        if frame.filename.endswith(".j2") or "/templates/" in frame.filename:
            found = f"{frame.filename}:{frame.lineno}"
    return found
