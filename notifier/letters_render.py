"""Rendering letters: Jinja2 templates in a sandbox, and PDFs that must read back.

Templates live in notifier/templates/ (a bureau may override any of them with its own folder). They
run in Jinja2's immutable sandbox with autoescape for HTML and StrictUndefined: a template that names
a value the letter does not have fails that letter with the template, line and variable, and never
prints a blank. Taxpayer data is only ever a value, never template source, so a name such as
`{{ 7*7 }}` or `<script>` is printed as text.

The environment and the compiled templates are made once per renderer and reused for every letter;
that, and letters whose values are already formatted, is what makes thousands of letters a second.
"""

from __future__ import annotations

import io
import logging
import re
import traceback
from collections.abc import Iterable, Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any, ClassVar

from jinja2 import (
    ChoiceLoader,
    FileSystemLoader,
    StrictUndefined,
    Template,
    TemplateError,
    TemplateNotFound,
    TemplateSyntaxError,
    UndefinedError,
    select_autoescape,
)
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from notifier.letters import (
    Authority,
    Incentive,
    Letter,
    LetterError,
    LetterTemplateError,
    OfficeSettings,
    Reminder,
)

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
HTML_TEMPLATE = "letter.html"
TEXT_TEMPLATE = "letter.txt"
SMS_TEMPLATE = "sms.txt"
SUBJECT_TEMPLATE = "email_subject.txt"
INDEX_TEMPLATE = "index.html"
TEMPLATE_NAMES = (HTML_TEMPLATE, TEXT_TEMPLATE, SMS_TEMPLATE, SUBJECT_TEMPLATE, INDEX_TEMPLATE)


class PdfTextError(LetterError):
    """A PDF letter whose text does not extract back to the letter's text: a failed build."""


class LetterSandbox(ImmutableSandboxedEnvironment):
    """Jinja2's immutable sandbox, with a fast path for the data fields of the letter model.

    The sandbox checks every attribute access (is it internal? a method that mutates?), which is
    three quarters of the time a letter takes to render. The fields of the letter dataclasses are
    plain values (text, Decimal, tuples, nested letter dataclasses), so reading one of them is safe
    by construction and skips the check; everything else — methods, properties, any other object —
    still goes through the sandbox.
    """

    _data_fields: ClassVar[dict[type, frozenset[str]]] = {
        cls: frozenset(f.name for f in fields(cls))
        for cls in (Letter, Incentive, Reminder, Authority, OfficeSettings)
    }

    def getattr(self, obj: Any, attribute: str) -> Any:
        names = self._data_fields.get(type(obj))
        if names is not None and attribute in names:
            return getattr(obj, attribute)
        return super().getattr(obj, attribute)


def make_environment(templates: str | Path | None = None) -> ImmutableSandboxedEnvironment:
    """The sandboxed environment: bureau templates first (when given), then the packaged ones."""
    loaders = [FileSystemLoader(str(TEMPLATES_DIR))]
    if templates is not None:
        loaders.insert(0, FileSystemLoader(str(templates)))
    return LetterSandbox(
        loader=ChoiceLoader(loaders),
        autoescape=select_autoescape(enabled_extensions=("html", "htm", "xml"), default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,
    )


_UNDEFINED_PATTERNS = (
    re.compile(r"^'(?P<var>[^']+)' is undefined$"),
    re.compile(r"^'(?P<obj>[^']+)' has no attribute '(?P<var>[^']+)'$"),
    re.compile(r"^'(?P<obj>[^']+)' object has no attribute '(?P<var>[^']+)'$"),
)


def _template_line(exc: BaseException, template: Template) -> int | None:
    """The line of the template that raised (Jinja rewrites tracebacks to template lines)."""
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if template.filename and frame.filename == template.filename:
            line = frame.lineno
    return line


def _undefined_message(exc: UndefinedError, source_line: str) -> str:
    """`变量 letter.signed_on 未定义`: the expression as written in the template where it can be found."""
    message = exc.message or str(exc)
    for pattern in _UNDEFINED_PATTERNS:
        m = pattern.match(message)
        if m:
            var = m.group("var")
            written = re.search(rf"[A-Za-z_][\w.]*\.{re.escape(var)}\b|\b{re.escape(var)}\b", source_line)
            if written:
                return f"变量 {written.group(0)} 未定义"
            obj = (m.groupdict().get("obj") or "").split(".")[-1].removesuffix(" object")
            return f"变量 {obj + '.' if obj else ''}{var} 未定义"
    return f"变量未定义（{message}）"


class LetterRenderer:
    """Renders letters (HTML, text, SMS, e-mail subject, PDF) and the outbox preview page."""

    def __init__(self, templates: str | Path | None = None, office: OfficeSettings | None = None) -> None:
        self.office = office or OfficeSettings()
        self.env = make_environment(templates)
        self.templates: dict[str, Template] = {}
        for name in TEMPLATE_NAMES:
            try:
                self.templates[name] = self.env.get_template(name)
            except TemplateSyntaxError as exc:
                where = exc.filename or name
                raise LetterTemplateError(f"{where}:{exc.lineno}: 模板语法错误：{exc.message}") from exc
            except TemplateNotFound as exc:
                folder = templates or TEMPLATES_DIR
                raise LetterTemplateError(f"找不到信函模板 {exc.name}（模板目录 {folder}）") from exc

    def render(self, name: str, context: Mapping[str, Any]) -> str:
        """Render one template; any template failure becomes a LetterTemplateError naming it."""
        template = self.templates[name]
        try:
            return template.render(context)
        except UndefinedError as exc:
            line = _template_line(exc, template)
            where = f"{name}:{line}" if line else name
            source = self._source_line(name, line)
            raise LetterTemplateError(f"模板 {where}：{_undefined_message(exc, source)}，信函未生成") from exc
        except SecurityError as exc:
            raise LetterTemplateError(f"模板 {name} 试图执行不允许的操作：{exc}") from exc
        except TemplateError as exc:
            line = _template_line(exc, template)
            raise LetterTemplateError(f"模板 {name}{':' + str(line) if line else ''} 渲染失败：{exc}") from exc

    def _source_line(self, name: str, line: int | None) -> str:
        if not line or self.env.loader is None:
            return ""
        source, _, _ = self.env.loader.get_source(self.env, name)
        lines = source.splitlines()
        return lines[line - 1] if 0 < line <= len(lines) else ""

    def _context(self, letter: Letter, **extra: Any) -> dict[str, Any]:
        return {"letter": letter, "office": self.office, **extra}

    def html(self, letter: Letter) -> str:
        return self.render(HTML_TEMPLATE, self._context(letter))

    def text(self, letter: Letter) -> str:
        return self.render(TEXT_TEMPLATE, self._context(letter))

    def subject(self, letter: Letter) -> str:
        return " ".join(self.render(SUBJECT_TEMPLATE, self._context(letter)).split())

    def sms(self, letter: Letter) -> str:
        """The SMS, within `office.sms_limit` characters; a long name is shortened with "…" to fit."""
        limit = self.office.sms_limit
        text = self._sms(letter, letter.name)
        if len(text) > limit:
            keep = len(letter.name) - (len(text) - limit) - 1
            if keep >= 2:
                text = self._sms(letter, letter.name[:keep] + "…")
        if len(text) > limit:
            raise LetterTemplateError(
                f"模板 {SMS_TEMPLATE}：短信 {len(text)} 字，超过 {limit} 字上限（纳税人 {letter.taxpayer_id}）：{text}"
            )
        return text

    def _sms(self, letter: Letter, name: str) -> str:
        return "".join(self.render(SMS_TEMPLATE, self._context(letter, sms_name=name)).split("\n")).strip()

    def index(self, run: Mapping[str, Any], rows: Iterable[Mapping[str, Any]]) -> str:
        return self.render(INDEX_TEMPLATE, {"run": run, "rows": list(rows), "office": self.office})

    def pdf(self, letter: Letter, html: str | None = None) -> bytes:
        """The letter as a PDF, checked to extract back to the letter's key texts."""
        return render_pdf(html if html is not None else self.html(letter), letter.key_texts(),
                          label=f"纳税人 {letter.taxpayer_id}")


# ----------------------------------------------------------------------------------------------- PDF

_font_config: Any = None


def _weasyprint() -> tuple[Any, Any]:
    """WeasyPrint, imported on first use (it takes a second to load) with one shared font configuration."""
    global _font_config
    from weasyprint import HTML
    from weasyprint.text.fonts import FontConfiguration

    if _font_config is None:
        logging.getLogger("weasyprint").setLevel(logging.ERROR)
        logging.getLogger("fontTools").setLevel(logging.ERROR)
        _font_config = FontConfiguration()
    return HTML, _font_config


def render_pdf(html: str, expected: Iterable[str], *, label: str = "") -> bytes:
    """HTML → PDF with WeasyPrint (Noto CJK fonts, embedded subsets), then `check_pdf`."""
    html_cls, font_config = _weasyprint()
    pdf: bytes = html_cls(string=html, base_url=str(TEMPLATES_DIR)).write_pdf(font_config=font_config)
    check_pdf(pdf, expected, label=label)
    return pdf


def pdf_text(pdf: bytes) -> str:
    """All text pypdf extracts from a PDF, page after page."""
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(pdf))
    return "\n".join(page.extract_text() or "" for page in reader.pages)


def _squash(text: str) -> str:
    return "".join(text.split())


def check_pdf(pdf: bytes, expected: Iterable[str], *, label: str = "") -> None:
    """Raise PdfTextError unless every font is embedded and every expected text extracts back.

    Whitespace is ignored in the comparison: line breaks fall where the layout puts them.
    """
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(pdf))
    who = f"{label}的" if label else ""
    for page in reader.pages:
        fonts = (page.get("/Resources") or {}).get("/Font") or {}
        for font in fonts.values():
            font = font.get_object()
            descendants = font.get("/DescendantFonts")
            target = descendants[0].get_object() if descendants else font
            descriptor = target.get("/FontDescriptor")
            descriptor = descriptor.get_object() if descriptor is not None else {}
            if not any(k in descriptor for k in ("/FontFile", "/FontFile2", "/FontFile3")):
                raise PdfTextError(
                    f"{who}PDF 信函未嵌入字体 {font.get('/BaseFont')}：请安装 fonts-noto-cjk（scripts/setup）")
    text = _squash("\n".join(page.extract_text() or "" for page in reader.pages))
    missing = [t for t in expected if t and _squash(t) not in text]
    if missing:
        raise PdfTextError(
            f"{who}PDF 信函的文字无法还原（缺少：{'、'.join(missing)}）；"
            "请确认已安装 Noto CJK 字体（scripts/setup）且模板未改变这些文字"
        )
