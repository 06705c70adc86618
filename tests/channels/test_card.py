"""Share cards: 1200x630 PNGs drawn with the bundled font, non-Latin titles included."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

PIL = pytest.importorskip("PIL", reason="share cards need Pillow: pip install 'distrib[card]'")
from PIL import Image  # noqa: E402

from distrib.render import card  # noqa: E402
from distrib.share import run_shares  # noqa: E402
from tests.channels.conftest import make_post  # noqa: E402

MATH_FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuMathTeXGyre.ttf")


def _open(png: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(png))
    img.load()
    return img


def _ink_columns(img: Image.Image, top: int, bottom: int) -> tuple[int, int]:
    """Leftmost and rightmost columns with title-coloured (white) pixels in a band."""
    band = img.crop((0, top, img.width, bottom)).convert("L").point(lambda v: 255 if v > 200 else 0)
    box = band.getbbox()
    assert box is not None, "nothing drawn in the title band"
    return box[0], box[2]


@pytest.mark.parametrize(
    "title",
    [
        "Harbour council votes on the new ferry line",
        "Українська недільна школа відкриває новий клас",
        "Η νέα γραμμή του πορθμείου",
        "מועצת הנמל מצביעה על קו המעבורת",
        "مجلس الميناء يصوت على خط العبارة الجديد",
    ],
)
def test_the_bundled_font_draws_these_scripts(title):
    assert card.missing_glyphs(card.BOLD, title) == set()
    png = card.make_card(make_post(1, title=title), "Harbour Light")
    img = _open(png)
    assert img.format == "PNG" and img.size == (1200, 630)
    left, right = _ink_columns(img, 150, 460)
    if card._rtl(title):
        assert right > 1200 - card.MARGIN - 10  # right-aligned
    else:
        assert left < card.MARGIN + 10


def test_a_long_title_is_wrapped_and_shrunk_to_fit():
    post = make_post(1, title=" ".join(["ferry"] * 60))
    img = _open(card.make_card(post, "Harbour Light"))
    left, right = _ink_columns(img, 150, 470)
    assert right <= 1200 - card.MARGIN + 2


def test_a_script_missing_from_the_bundled_font_uses_a_font_that_has_it():
    if not MATH_FONT.exists():
        pytest.skip(f"{MATH_FONT} missing: apt-get install fonts-dejavu-extra")
    title = "𝔄𝔫𝔫𝔬𝔲𝔫𝔠𝔢𝔪𝔢𝔫𝔱"
    assert card.missing_glyphs(card.BOLD, title)
    assert card.font_for(title, card.BOLD, MATH_FONT) == MATH_FONT
    assert _open(
        card.make_card(make_post(1, title=title), "Harbour Light", font=MATH_FONT)
    ).size == (1200, 630)


def test_no_font_for_the_title_is_a_clear_error_not_a_card_of_boxes(monkeypatch, tmp_path):
    monkeypatch.setattr(card, "SYSTEM_FONT_DIRS", (tmp_path,))
    with pytest.raises(card.CardError) as e:
        card.make_card(make_post(1, title="港の新しいフェリー"), "Harbour Light")
    assert "fonts-noto-cjk" in str(e.value) and "card_font" in str(e.value)


def test_coverage_reads_the_cmap():
    starts, ends = card.coverage(str(card.REGULAR))
    assert starts and len(starts) == len(ends)
    assert not card.missing_glyphs(card.REGULAR, "AzЖжאب")


def test_mastodon_attaches_the_card_when_the_post_has_no_image(env, httpserver, monkeypatch):
    monkeypatch.setenv("MASTODON_TOKEN", "t")
    httpserver.expect_request("/api/v2/instance").respond_with_json(
        {"configuration": {"statuses": {"max_characters": 500, "characters_reserved_per_url": 23}}}
    )
    httpserver.expect_request("/api/v2/media", method="POST").respond_with_json(
        {"id": "77", "type": "image"}
    )
    httpserver.expect_request("/api/v1/statuses", method="POST").respond_with_json(
        {"id": "1", "url": "https://social.example/@n/1"}
    )
    ctx, channels = env.channels(
        {
            "name": "masto",
            "type": "mastodon",
            "instance": httpserver.url_for("/"),
            "token_env": "MASTODON_TOKEN",
            "share_card": True,
        }
    )
    post = make_post(1, title="Пором через затоку")
    report = run_shares(ctx, channels, [post], dry_run=False)
    assert len(report.sent) == 1
    [media] = [r for r, _ in httpserver.log if r.path == "/api/v2/media"]
    png = media.files["file"].read()
    assert _open(png).size == (1200, 630)
    assert media.form["description"] == "Пором через затоку"
