"""The typed views of the core sections name exactly the options their tables declare."""

from __future__ import annotations

import keyword
import types
import typing
from datetime import timedelta
from pathlib import Path

import pytest

from distrib import config
from distrib.schema import Opt, Section

CORE = dict(config.VIEWS)


def _annotations(view: type[Section]) -> dict[str, object]:
    out: dict[str, object] = {}
    for cls in reversed(view.__mro__):
        if issubclass(cls, Section) and cls is not Section:
            out.update(typing.get_type_hints(cls, vars(config)))
    return {k: v for k, v in out.items() if k != "tables"}


@pytest.mark.parametrize("section", sorted(CORE))
def test_each_view_names_its_tables_options(section: str) -> None:
    table, view = CORE[section]
    declared = {k for k in table.options if not keyword.iskeyword(k)}
    assert set(_annotations(view)) == declared


def test_the_root_lists_every_view() -> None:
    assert set(CORE) == set(config.ROOT.options)


@pytest.mark.parametrize("section", sorted(CORE))
def test_defaults_have_the_declared_types(section: str, tmp_path: Path) -> None:
    """Each option's default (declared once, in its Opt) fits the view's annotation."""
    table, view = CORE[section]
    hints = _annotations(view)
    for key, spec in table.options.items():
        if not isinstance(spec, Opt) or key not in hints or spec.default is None:
            continue
        expected = hints[key]
        origin = typing.get_origin(expected)
        kinds = (
            typing.get_args(expected) if origin in (typing.Union, types.UnionType) else (expected,)
        )
        kinds = tuple(typing.get_origin(k) or k for k in kinds)
        assert isinstance(spec.default, kinds), (section, key, spec.default, expected)


def test_a_loaded_config_reads_through_the_views(tmp_path: Path) -> None:
    path = tmp_path / "distrib.toml"
    path.write_text(
        '[site]\nname = "Harbour Light"\nurl = "https://news.example/"\n'
        '[[sources]]\nname = "blog"\ntype = "sample"\n'
        '[email]\nfrom = "News <news@news.example>"\nmailer = "smtp"\n'
        '[email.smtp]\nhost = "127.0.0.1"\nconnections = 4\n'
        '[[theme.social]]\nname = "Mastodon"\nurl = "https://social.example/@news"\n',
        encoding="utf-8",
    )
    settings = config.load_config(path)
    assert isinstance(settings.site, config.SiteSection) and settings.site.language == "en"
    assert isinstance(settings.email, config.EmailSection)
    assert (
        isinstance(settings.email.dkim, config.DkimSection) and settings.email.dkim.selector == ""
    )
    assert settings.email["from"] == "News <news@news.example>"
    assert settings.email[settings.email.mailer]["connections"] == 4
    assert isinstance(settings.digest.window, timedelta)
    assert [type(s) for s in settings.sources] == [config.SourceSection]
    assert settings.sources[0].where == "sources[0]"
    [social] = settings.theme.social
    assert isinstance(social, config.SocialSection) and social.where == "theme.social[0]"
    assert settings.ledger.path is None and settings.check.dns_timeout == 5.0
