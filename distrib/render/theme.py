"""The theme (``[theme]``, declared in distrib.config) and the site's locale: colours,
fonts, layout, wording.

The digest is written in the site's language ([site] language) and direction
([site] direction, "auto" meaning right-to-left for Arabic, Hebrew, Persian, Urdu ...).
Dates are formatted by Babel in that locale; the few fixed phrases a template prints
("Read more", "Unsubscribe" ...) come from the small catalogue below, falling back to
English for a language it does not have.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from ..config import THEME
from ..schema import Ctx, validate_table

if TYPE_CHECKING:
    from ..config import Settings

#: Languages written right to left (ISO 639-1 and a few 639-3 codes).
RTL_LANGUAGES = frozenset(
    {"ar", "he", "iw", "fa", "ur", "ps", "sd", "yi", "dv", "ckb", "ug", "syr"}
)

#: The fixed phrases of the default templates.  ``{n}`` is a number.
MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        "and_more": "and {n} more",
        "archive": "Newsletter archive",
        "read_more": "Read more",
        "unsubscribe": "Unsubscribe",
        "preferences": "Preferences",
        "minute_read": "{n} min read",
        "view_in_browser": "View in browser",
        "by": "by {author}",
        "more_stories": "More in this edition",
        "sponsored": "Sponsored",
        "n_more_stories": "{n} more stories on the site",
        "other": "More stories",
        "sent_to": "This email was sent to {email}.",
        "why": "You are receiving it because you subscribed to {site}.",
        "in_this_edition": "{n} new posts",
        "follow": "Follow us",
    },
    "uk": {
        "and_more": "та ще {n}",
        "archive": "Архів розсилки",
        "read_more": "Читати далі",
        "unsubscribe": "Відписатися",
        "preferences": "Налаштування розсилки",
        "minute_read": "{n} хв читання",
        "view_in_browser": "Відкрити в браузері",
        "by": "{author}",
        "more_stories": "Також у цьому випуску",
        "sponsored": "Реклама",
        "n_more_stories": "Ще {n} матеріалів на сайті",
        "other": "Інші матеріали",
        "sent_to": "Цей лист надіслано на {email}.",
        "why": "Ви отримали його, бо підписалися на {site}.",
        "in_this_edition": "Нових матеріалів: {n}",
        "follow": "Ми в мережах",
    },
    "ar": {
        "and_more": "و{n} أخرى",
        "archive": "أرشيف النشرة",
        "read_more": "اقرأ المزيد",
        "unsubscribe": "إلغاء الاشتراك",
        "preferences": "تفضيلات البريد",
        "minute_read": "قراءة في {n} د",
        "view_in_browser": "اعرض في المتصفح",
        "by": "بقلم {author}",
        "more_stories": "المزيد في هذا العدد",
        "sponsored": "محتوى مموَّل",
        "n_more_stories": "{n} مقالات أخرى على الموقع",
        "other": "مقالات أخرى",
        "sent_to": "أُرسلت هذه الرسالة إلى {email}.",
        "why": "تصلك لأنك مشترك في {site}.",
        "in_this_edition": "منشورات جديدة: {n}",
        "follow": "تابعنا",
    },
    "es": {
        "and_more": "y {n} más",
        "archive": "Archivo del boletín",
        "read_more": "Seguir leyendo",
        "unsubscribe": "Darse de baja",
        "preferences": "Preferencias",
        "minute_read": "{n} min de lectura",
        "view_in_browser": "Ver en el navegador",
        "by": "por {author}",
        "more_stories": "Más en este número",
        "sponsored": "Patrocinado",
        "n_more_stories": "{n} artículos más en el sitio",
        "other": "Más artículos",
        "sent_to": "Este correo se envió a {email}.",
        "why": "Lo recibes porque te suscribiste a {site}.",
        "in_this_edition": "{n} publicaciones nuevas",
        "follow": "Síguenos",
    },
    "ja": {
        "and_more": "ほか{n}件",
        "archive": "ニュースレターのアーカイブ",
        "read_more": "続きを読む",
        "unsubscribe": "配信停止",
        "preferences": "配信設定",
        "minute_read": "{n}分で読めます",
        "view_in_browser": "ブラウザで表示",
        "by": "{author}",
        "more_stories": "今号のその他の記事",
        "sponsored": "スポンサー",
        "n_more_stories": "サイトにほか{n}件の記事",
        "other": "その他の記事",
        "sent_to": "このメールは {email} 宛に送信されました。",
        "why": "{site} のニュースレターに登録いただいているため、お届けしています。",
        "in_this_edition": "新着記事 {n} 件",
        "follow": "フォローする",
    },
    "de": {
        "and_more": "und {n} weitere",
        "archive": "Newsletter-Archiv",
        "read_more": "Weiterlesen",
        "unsubscribe": "Abmelden",
        "preferences": "Einstellungen",
        "minute_read": "{n} Min. Lesezeit",
        "view_in_browser": "Im Browser ansehen",
        "by": "von {author}",
        "more_stories": "Außerdem in dieser Ausgabe",
        "sponsored": "Anzeige",
        "n_more_stories": "{n} weitere Beiträge auf der Website",
        "other": "Weitere Beiträge",
        "sent_to": "Diese E-Mail wurde an {email} gesendet.",
        "why": "Sie erhalten sie, weil Sie {site} abonniert haben.",
        "in_this_edition": "{n} neue Beiträge",
        "follow": "Folgen Sie uns",
    },
    "fr": {
        "and_more": "et {n} autres",
        "archive": "Archives de la lettre",
        "read_more": "Lire la suite",
        "unsubscribe": "Se désabonner",
        "preferences": "Préférences",
        "minute_read": "{n} min de lecture",
        "view_in_browser": "Voir dans le navigateur",
        "by": "par {author}",
        "more_stories": "Aussi dans ce numéro",
        "sponsored": "Sponsorisé",
        "n_more_stories": "{n} autres articles sur le site",
        "other": "Autres articles",
        "sent_to": "Cet e-mail a été envoyé à {email}.",
        "why": "Vous le recevez car vous êtes abonné·e à {site}.",
        "in_this_edition": "{n} nouveaux articles",
        "follow": "Suivez-nous",
    },
}


def language_code(language: str) -> str:
    """'pt-BR' -> 'pt'; the primary subtag, lower case."""
    return re.split(r"[-_]", language.strip() or "en")[0].lower()


def text_direction(language: str, direction: str = "auto") -> str:
    if direction in ("ltr", "rtl"):
        return direction
    return "rtl" if language_code(language) in RTL_LANGUAGES else "ltr"


def babel_locale(language: str) -> Any:
    """The Babel Locale for a BCP 47 tag, falling back to the bare language, then English."""
    from babel import Locale, UnknownLocaleError

    for tag in (language.replace("-", "_"), language_code(language), "en"):
        try:
            return Locale.parse(tag)
        except (UnknownLocaleError, ValueError):
            continue
    return Locale.parse("en")


@dataclass(frozen=True)
class Theme:
    """The resolved look and locale of one site's emails, as templates see it."""

    brand_color: str
    accent_color: str
    background_color: str
    text_color: str
    logo: str | None
    logo_width: int
    font_family: str
    heading_font_family: str
    web_font_name: str | None
    web_font_url: str | None
    dark_mode: bool
    layout: str
    lead_story: bool
    images: bool
    excerpt_chars: int
    date_format: str
    social: tuple[tuple[str, str], ...]
    archive_url: str | None
    language: str
    direction: str
    timezone: str

    @property
    def rtl(self) -> bool:
        return self.direction == "rtl"

    @property
    def align(self) -> str:
        """The start edge: 'left' in LTR, 'right' in RTL (MJML align attributes)."""
        return "right" if self.rtl else "left"

    @property
    def fonts(self) -> dict[str, str]:
        """mjml2html's ``fonts``: empty unless a web font is configured (no extra request)."""
        if self.web_font_name and self.web_font_url:
            return {self.web_font_name: self.web_font_url}
        return {}

    def t(self, key: str, **kwargs: Any) -> str:
        """A fixed phrase in the site's language (English when the catalogue lacks it)."""
        table = MESSAGES.get(language_code(self.language), MESSAGES["en"])
        text = table.get(key) or MESSAGES["en"][key]
        return text.format(**kwargs) if kwargs else text

    def format_date(self, value: datetime | date | None, fmt: str | None = None) -> str:
        """A date in the site's zone and locale, such as '28 лист. 2026 р.'."""
        if value is None:
            return ""
        from babel.dates import format_date

        if isinstance(value, datetime):
            if value.tzinfo is not None:
                value = value.astimezone(ZoneInfo(self.timezone))
            value = value.date()
        return format_date(
            value, format=fmt or self.date_format, locale=babel_locale(self.language)
        )

    def format_number(self, n: int) -> str:
        from babel.numbers import format_decimal

        return format_decimal(n, locale=babel_locale(self.language))

    def local_date(self, value: datetime) -> date:
        return value.astimezone(ZoneInfo(self.timezone)).date() if value.tzinfo else value.date()


def theme_for(settings: Settings) -> Theme:
    """The Theme of these settings; defaults when the config has no [theme] table."""
    data = settings.data.get("theme")
    if not data:
        data = validate_table(THEME, {}, "theme", Ctx(base_dir=settings.base_dir))
    site = settings.data.get("site") or {}
    language = site.get("language") or "en"
    return Theme(
        brand_color=data["brand_color"],
        accent_color=data["accent_color"],
        background_color=data["background_color"],
        text_color=data["text_color"],
        logo=data.get("logo") or site.get("logo"),
        logo_width=data["logo_width"],
        font_family=data["font_family"],
        heading_font_family=data.get("heading_font_family") or data["font_family"],
        web_font_name=data.get("web_font_name"),
        web_font_url=data.get("web_font_url"),
        dark_mode=data["dark_mode"],
        layout=data["layout"],
        lead_story=data["lead_story"],
        images=data["images"],
        excerpt_chars=data["excerpt_chars"],
        date_format=data["date_format"],
        social=tuple((s["name"], s["url"]) for s in data.get("social") or ()),
        archive_url=data.get("archive_url"),
        language=language,
        direction=text_direction(language, site.get("direction") or "auto"),
        timezone=site.get("timezone") or "UTC",
    )


_CJK_RE = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")


def reading_minutes(text: str) -> int:
    """Minutes to read ``text``: 200 words a minute; CJK text, which has no spaces
    between words, at 500 characters a minute."""
    cjk = len(_CJK_RE.findall(text))
    words = len(_CJK_RE.sub(" ", text).split())
    return max(1, math.ceil(words / 200 + cjk / 500))
