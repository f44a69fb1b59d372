"""Rendering: the sandbox, strict undefined, injection, the SMS limit, PDFs that read back, a real browser."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from pypdf import PdfReader

from notifier.letters.build import Letter, LetterTemplateError, build_letter
from notifier.letters.render import TEMPLATES_DIR, LetterRenderer, PdfTextError, check_pdf, pdf_text
from tests.builders.letters import (
    ALL_CASES,
    AS_OF,
    catalogue,
    compare,
    finding,
    one_incentive,
    scope,
    sms_taxpayer,
    taxpayer,
)


def letter_of(rows: list[dict]) -> Letter:  # type: ignore[type-arg]
    letter = build_letter(rows, catalogue(), as_of=AS_OF)
    assert isinstance(letter, Letter)
    return letter


@pytest.fixture(scope="module")
def renderer() -> LetterRenderer:
    return LetterRenderer()


HOSTILE_NAME = "<script>alert('x')</script>{{ 7*7 }}{% raw %}公司"


def hostile_letter() -> Letter:
    ctx = taxpayer("91330106MA2B3C4D11", HOSTILE_NAME, district="西湖区<b>", tax_authority="13301060000")
    evil = compare("taxable_income", "x", "应纳税所得额<img src=x onerror=alert(1)>", "1860000.00", "元",
                   "3000000.00")
    return letter_of([finding(ctx, "small_low_profit_cit", "unclaimed", [scope(), evil], amount="372000.00")])


def test_taxpayer_data_cannot_inject_markup_or_template_code(renderer: LetterRenderer) -> None:
    letter = hostile_letter()
    html = renderer.html(letter)
    assert "<script>" not in html and "<img" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;{{ 7*7 }}{% raw %}公司" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert ">49<" not in html and "{{ 7*7 }}" in html  # data is printed, never evaluated
    text = renderer.text(letter)
    assert f"{HOSTILE_NAME}：" in text  # plain text carries the name as it is
    index = renderer.index({"date_text": "x", "dry_run": False, "packages": 1, "by_channel": [], "opted_out": 0,
                            "suppressed": 0, "failed": 0},
                           [{"taxpayer_id": "1", "name": HOSTILE_NAME, "authority": "", "channel_label": "",
                             "incentives": ["<i>x</i>"], "reminders": 0, "total": "", "status": "queued",
                             "status_label": "", "files": ["etax/1.html\"><script>"]}])
    assert "<script>" not in index and "<i>x</i>" not in index


def _custom(tmp_path: Path, name: str, body: str) -> Path:
    folder = tmp_path / "templates"
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(body, encoding="utf-8")
    return folder


def test_missing_value_fails_the_letter_naming_template_line_and_variable(tmp_path: Path) -> None:
    original = (TEMPLATES_DIR / "letter.txt").read_text(encoding="utf-8")
    folder = _custom(tmp_path, "letter.txt", original.replace("{{ letter.date_text }}", "{{ letter.signed_on }}"))
    renderer = LetterRenderer(folder)
    with pytest.raises(LetterTemplateError) as err:
        renderer.text(letter_of(one_incentive()))
    message = str(err.value)
    line = next(i for i, text in enumerate(original.splitlines(), 1) if "{{ letter.date_text }}" in text)
    assert f"letter.txt:{line}" in message and "letter.signed_on" in message and "未定义" in message
    # the packaged HTML template is untouched and still renders
    assert "杭州云栖数据服务有限公司" in renderer.html(letter_of(one_incentive()))


def test_undefined_top_level_variable_and_conditional_use_fail_too(tmp_path: Path) -> None:
    renderer = LetterRenderer(_custom(tmp_path, "sms.txt", "{% if bureau_motto %}x{% endif %}{{ letter.name }}"))
    with pytest.raises(LetterTemplateError, match=r"sms\.txt:1.*bureau_motto"):
        renderer.sms(letter_of(one_incentive()))


def test_template_syntax_error_is_reported_with_file_and_line(tmp_path: Path) -> None:
    folder = _custom(tmp_path, "letter.html", "<p>\n{% for x in letter.incentives %}\n{{ x.name }}\n")
    with pytest.raises(LetterTemplateError, match=r"letter\.html:\d+: 模板语法错误"):
        LetterRenderer(folder)


@pytest.mark.parametrize("body", [
    "{{ letter.__class__.__mro__ }}",
    "{{ office.__init__.__globals__ }}",
    "{{ letter.key_texts.__func__.__code__ }}",
    "{{ ''.__class__.__subclasses__() }}",
])
def test_templates_run_in_the_sandbox(tmp_path: Path, body: str) -> None:
    renderer = LetterRenderer(_custom(tmp_path, "email_subject.txt", body))
    with pytest.raises(LetterTemplateError):
        renderer.subject(letter_of(one_incentive()))


def test_sms_within_70_characters_and_points_to_the_etax_bureau(renderer: LetterRenderer) -> None:
    for make in (*ALL_CASES.values(), sms_taxpayer):
        result = build_letter(make(), catalogue(), as_of=AS_OF)
        if isinstance(result, Letter):
            sms = renderer.sms(result)
            assert len(sms) <= 70, sms
            assert "电子税务局" in sms and "\n" not in sms


def test_long_name_is_shortened_to_fit_the_sms(renderer: LetterRenderer) -> None:
    name = "杭州市余杭区未来科技城某某某某某某数字经济产业投资发展集团股份有限公司第一分公司"
    letter = letter_of(sms_taxpayer(name))
    sms = renderer.sms(letter)
    assert len(sms) == 70
    assert name not in sms and name[:10] in sms and "…：" in sms
    assert sms.endswith("详见浙江省电子税务局。")


def test_sms_template_too_long_for_any_name_fails(tmp_path: Path) -> None:
    renderer = LetterRenderer(_custom(tmp_path, "sms.txt", "{{ sms_name }}" + "很长的短信" * 20))
    with pytest.raises(LetterTemplateError, match="超过 70 字上限"):
        renderer.sms(letter_of(one_incentive()))


def test_pdf_embeds_cjk_fonts_and_reads_back(renderer: LetterRenderer) -> None:
    letter = letter_of(ALL_CASES["low_risk_reminder"]())
    pdf = renderer.pdf(letter)
    reader = PdfReader(io.BytesIO(pdf))
    fonts = [f.get_object() for page in reader.pages for f in page["/Resources"]["/Font"].values()]
    names = {str(f["/BaseFont"]) for f in fonts}
    assert any("NotoSerifCJKsc" in n for n in names) and any("NotoSansCJKsc" in n for n in names)
    for font in fonts:
        descriptor = font["/DescendantFonts"][0].get_object()["/FontDescriptor"].get_object()
        assert {"/FontFile", "/FontFile2", "/FontFile3"} & set(descriptor), f"{font['/BaseFont']} not embedded"
    text = "".join(pdf_text(pdf).split())
    for expected in ("杭州钱塘精工机械有限公司", "研发费用税前加计扣除（100%）", "1.16万元", "低风险预提醒",
                     "您2025年度在职职工人数45人，超过30人上限", "2026年11月27日", "9133**********1T00"):
        assert expected in text, expected
    assert "91330110MA2H5R1T00" not in text  # the full id is not needed in a letter
    assert reader.pages[0].mediabox.width == pytest.approx(595.28, abs=0.5)  # A4 portrait
    assert reader.pages[0].mediabox.height == pytest.approx(841.89, abs=0.5)


def test_pdf_whose_text_does_not_read_back_is_a_failed_build(renderer: LetterRenderer, tmp_path: Path) -> None:
    letter = letter_of(one_incentive())
    pdf = renderer.pdf(letter)
    with pytest.raises(PdfTextError, match="缺少：不在信函里的文字"):
        check_pdf(pdf, [*letter.key_texts(), "不在信函里的文字"])
    # a template that hides the amount makes the build fail, not a silent PDF
    source = (TEMPLATES_DIR / "letter.typ").read_text(encoding="utf-8")
    hidden = source.replace("#text(weight: \"bold\", fill: red, amount)", "").replace("L.total_saving_text", "\"\"")
    assert hidden != source
    folder = tmp_path / "bureau"
    folder.mkdir()
    (folder / "letter.typ").write_text(hidden, encoding="utf-8")
    with pytest.raises(PdfTextError, match=r"37\.20 万元"):
        LetterRenderer(folder).pdf(letter)


# --------------------------------------------------------------------------------- headless browser

def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: run scripts/test (it installs it)")
        pytest.skip("chromium is not installed (scripts/test installs it)")
    return found


def _chromium_run(args: list[str], profile: Path) -> subprocess.CompletedProcess[str]:
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
           f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


class _Texts(HTMLParser):
    """Text by element id, and the list items of the reasons lists."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str | None] = []
        self.by_id: dict[str, str] = {}
        self.sections: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "section" and a.get("class") == "incentive":
            self.sections.append(a.get("id") or "")
        if tag not in ("br", "hr", "meta", "img", "link"):
            self.stack.append(a.get("id"))

    def handle_endtag(self, tag: str) -> None:
        if tag not in ("br", "hr", "meta", "img", "link") and self.stack:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        for ident in self.stack:
            if ident:
                self.by_id[ident] = self.by_id.get(ident, "") + data


@pytest.mark.browser
def test_letter_renders_in_headless_chromium(tmp_path: Path, renderer: LetterRenderer) -> None:
    letter = letter_of(ALL_CASES["five_incentives"]())
    page = tmp_path / "letter.html"
    page.write_text(renderer.html(letter), encoding="utf-8")
    result = _chromium_run(["--dump-dom", page.as_uri()], tmp_path / "profile")
    assert result.returncode == 0, result.stderr[-2000:]
    dom = result.stdout
    parser = _Texts()
    parser.feed(dom)
    assert parser.by_id["addressee"] == "杭州星河智能科技有限公司："
    assert parser.by_id["total"] == "87.60 万元"
    # five incentives, largest saving first, as the browser built them
    assert [s.split("-")[1] for s in parser.sections] == [
        "small_low_profit_cit", "equipment_one_off_deduction", "rd_super_deduction", "six_taxes_two_fees_half",
        "disability_fund_relief"]
    assert "您 2025 年度应纳税所得额 186.00 万元，未超过 300 万元上限" in dom
    assert re.search(r'<main class="sheet" id="letter" data-package="[0-9a-f]{16}">', dom)

    shot = tmp_path / "letter.png"
    result = _chromium_run([f"--screenshot={shot}", "--window-size=900,1300", "--hide-scrollbars", page.as_uri()],
                           tmp_path / "profile2")
    assert result.returncode == 0 and shot.exists(), result.stderr[-2000:]
    png = shot.read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(png) > 20_000  # a blank page compresses to a few kB; text and the red rules do not
