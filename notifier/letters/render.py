"""Rendering letters: Jinja2 templates in a sandbox, and PDFs that must read back.

Templates live in notifier/templates/ (a bureau may override any of them with its own folder). They
run in Jinja2's immutable sandbox with autoescape for HTML and StrictUndefined: a template that names
a value the letter does not have fails that letter with the template, line and variable, and never
prints a blank. Taxpayer data is only ever a value, never template source, so a name such as
`{{ 7*7 }}` or `<script>` is printed as text.

The bundled templates are the project's own code and run in a plain Jinja2 environment (same
autoescape, StrictUndefined and whitespace settings, so the same bytes); the sandbox, with its
per-letter time and size bounds, is for a bureau's templates: a bundled template runs sandboxed as
soon as the bureau's folder holds it or anything it includes. Either way a template that fails fails
that letter alone.

The environments and the compiled templates are made once per renderer and reused for every letter;
that, and letters whose values are already formatted, is what makes thousands of letters a second.
"""

from __future__ import annotations

import re
import signal
import threading
import time
import traceback
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any, ClassVar

from jinja2 import (
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    StrictUndefined,
    Template,
    TemplateError,
    TemplateNotFound,
    TemplateSyntaxError,
    UndefinedError,
    select_autoescape,
)
from jinja2.meta import find_referenced_templates
from jinja2.runtime import LoopContext
from jinja2.sandbox import MAX_RANGE, ImmutableSandboxedEnvironment, SecurityError

from notifier.letters.build import (
    Authority,
    Incentive,
    IncentivePeriod,
    Letter,
    LetterTemplateError,
    OfficeSettings,
    Reminder,
)
from notifier.letters.pdf import TEMPLATES_DIR, PdfTextError, check_pdf, letter_json, pdf_text, render_pdf

HTML_TEMPLATE = "letter.html"
TEXT_TEMPLATE = "letter.txt"
SMS_TEMPLATE = "sms.txt"
SUBJECT_TEMPLATE = "email_subject.txt"
INDEX_TEMPLATE = "index.html"
RENDER_TIMEOUT = 2.0  # seconds one letter's template may take (a letter takes ~0.1 ms)
MAX_LETTER_CHARS = 2_000_000  # characters one rendered letter may have (a letter has ~10,000)
TEMPLATE_NAMES = (HTML_TEMPLATE, TEXT_TEMPLATE, SMS_TEMPLATE, SUBJECT_TEMPLATE, INDEX_TEMPLATE)


_DICT_ATTRIBUTES = frozenset(dir(dict))


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
        for cls in (Letter, Incentive, IncentivePeriod, Reminder, Authority, OfficeSettings)
    }

    # `"x" * 10**9` and `9 ** 9 ** 9` go through call_binop, where their size is bounded
    intercepted_binops = frozenset({"*", "**"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.deadline = float("inf")  # time.monotonic() by which the letter being rendered must be done
        self.globals["range"] = self._range

    #: Jinja's own loop object: its counters and neighbours are plain reads (`loop.last`).
    _loop_fields: ClassVar[frozenset[str]] = frozenset({
        "index", "index0", "revindex", "revindex0", "first", "last", "length", "depth", "depth0",
        "previtem", "nextitem"})

    def getattr(self, obj: Any, attribute: str) -> Any:
        cls = type(obj)
        names = self._data_fields.get(cls)
        if names is not None and attribute in names:
            return getattr(obj, attribute)
        if cls is dict and attribute not in _DICT_ATTRIBUTES:
            # a plain dict (the preview page's rows): Jinja would find no such attribute and read the item
            try:
                return obj[attribute]
            except KeyError:
                return self.undefined(obj=obj, name=attribute)
        if cls is LoopContext and attribute in self._loop_fields:
            return getattr(obj, attribute)
        return super().getattr(obj, attribute)

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise RenderLimitError(f"渲染超过 {RENDER_TIMEOUT:g} 秒上限，已中止")

    def call(self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        self.check_time()
        return super().call(__context, __obj, *args, **kwargs)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(n, int) and len(seq) * n > MAX_LETTER_CHARS:
                    raise RenderLimitError(f"模板生成的内容超过 {MAX_LETTER_CHARS:,} 字上限")
        if operator == "**" and isinstance(right, (int, float)) and abs(right) > 64 and not -1 <= left <= 1:
            raise RenderLimitError("模板中的乘方过大")
        return super().call_binop(context, operator, left, right)

    def _range(self, *args: int) -> _TimedRange:
        """range(), at most MAX_RANGE long (as Jinja's sandbox), and checking the letter's time as it goes."""
        items = range(*args)
        if len(items) > MAX_RANGE:
            raise RenderLimitError(f"range() 过大（{len(items):,} 项，上限 {MAX_RANGE:,}）")
        return _TimedRange(items, self)


class _TimedRange:
    """A range that checks the renderer's deadline every 256 items, each time it is looped over."""

    def __init__(self, items: range, env: LetterSandbox) -> None:
        self.items = items
        self.env = env

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[int]:
        for i in self.items:
            if not i & 0xFF:
                self.env.check_time()
            yield i


class RenderLimitError(LetterTemplateError):
    """A template ran past the time or size bound of one letter."""


_ENV_OPTIONS: dict[str, Any] = {
    "undefined": StrictUndefined,
    "trim_blocks": True,
    "lstrip_blocks": True,
    "keep_trailing_newline": True,
    "auto_reload": False,
}


def _autoescape() -> Any:
    return select_autoescape(enabled_extensions=("html", "htm", "xml"), default_for_string=True)


def make_environment(templates: str | Path | None = None) -> LetterSandbox:
    """The sandboxed environment: bureau templates first (when given), then the packaged ones."""
    loaders = [FileSystemLoader(str(TEMPLATES_DIR))]
    if templates is not None:
        loaders.insert(0, FileSystemLoader(str(templates)))
    return LetterSandbox(loader=ChoiceLoader(loaders), autoescape=_autoescape(), **_ENV_OPTIONS)


def make_trusted_environment() -> Environment:
    """The bundled templates only, outside the sandbox (they are the project's code, not a bureau's)."""
    return Environment(loader=FileSystemLoader(str(TEMPLATES_DIR)), autoescape=_autoescape(), **_ENV_OPTIONS)


def bundled_closure(env: Environment, name: str) -> frozenset[str] | None:
    """`name` and every template it includes, imports or extends, transitively (None: a name that is
    only known when the template runs, so the closure cannot be told)."""
    seen: set[str] = set()
    todo = [name]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        source = env.loader.get_source(env, current)[0] if env.loader is not None else ""
        for ref in find_referenced_templates(env.parse(source)):
            if ref is None:
                return None
            todo.append(ref)
    return frozenset(seen)


_UNDEFINED_PATTERNS = (
    re.compile(r"^'(?P<var>[^']+)' is undefined$"),
    re.compile(r"^'(?P<obj>[^']+)' has no attribute '(?P<var>[^']+)'$"),
    re.compile(r"^'(?P<obj>[^']+)' object has no attribute '(?P<var>[^']+)'$"),
)


def _alarm(signum: int, frame: Any) -> None:
    raise RenderLimitError(f"渲染超过 {RENDER_TIMEOUT:g} 秒上限，已中止")


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
        self.folder = Path(templates) if templates is not None else None
        self.env = make_environment(templates)
        trusted_env = make_trusted_environment()
        self.templates: dict[str, Template] = {}
        #: templates that run outside the sandbox: bundled ones the bureau's folder neither overrides nor
        #: reaches through an include
        self.trusted: frozenset[str] = frozenset(
            name for name in TEMPLATE_NAMES if self._untouched(trusted_env, name))
        for name in TEMPLATE_NAMES:
            try:
                env = trusted_env if name in self.trusted else self.env
                self.templates[name] = env.get_template(name)
            except TemplateSyntaxError as exc:
                where = exc.filename or name
                raise LetterTemplateError(f"{where}:{exc.lineno}: 模板语法错误：{exc.message}") from exc
            except TemplateNotFound as exc:
                folder = templates or TEMPLATES_DIR
                raise LetterTemplateError(f"找不到信函模板 {exc.name}（模板目录 {folder}）") from exc

    def _untouched(self, trusted_env: Environment, name: str) -> bool:
        """Whether the bundled `name` and all it includes are what a letter would use (no bureau file)."""
        if self.folder is not None and (self.folder / name).exists():
            return False
        try:
            closure = bundled_closure(trusted_env, name)
        except (TemplateError, OSError):
            return False  # reported by get_template, with the sandboxed environment
        return closure is not None and not (
            self.folder is not None and any((self.folder / ref).exists() for ref in closure))

    def render(self, name: str, context: Mapping[str, Any]) -> str:
        """Render one template within the letter's time and size bounds.

        Any failure — a missing variable, `{{ 1/0 }}`, a runaway loop, a forbidden operation — becomes a
        LetterTemplateError naming the template (and line), which fails this letter alone.
        """
        template = self.templates[name]
        if name in self.trusted:
            return self._render_trusted(name, template, context)
        env = self.env
        env.deadline = time.monotonic() + RENDER_TIMEOUT
        alarm = threading.current_thread() is threading.main_thread()
        if alarm:  # a loop that neither calls nor prints is stopped by the clock itself
            previous = signal.signal(signal.SIGALRM, _alarm)
            signal.setitimer(signal.ITIMER_REAL, RENDER_TIMEOUT + 0.5)
        try:
            text = template.render(context)  # loops are bounded in time (above), so the text in size
            env.check_time()
            if len(text) > MAX_LETTER_CHARS:
                raise RenderLimitError(f"模板生成的内容超过 {MAX_LETTER_CHARS:,} 字上限（{len(text):,} 字）")
            return text
        except UndefinedError as exc:
            line = _template_line(exc, template)
            where = f"{name}:{line}" if line else name
            source = self._source_line(name, line)
            raise LetterTemplateError(f"模板 {where}：{_undefined_message(exc, source)}，信函未生成") from exc
        except SecurityError as exc:
            raise LetterTemplateError(f"模板 {name} 试图执行不允许的操作：{exc}") from exc
        except RenderLimitError as exc:
            line = _template_line(exc, template)
            raise RenderLimitError(f"模板 {name}{':' + str(line) if line else ''} {exc}，信函未生成") from exc
        except Exception as exc:  # TemplateError, ZeroDivisionError, RecursionError...: this letter only
            line = _template_line(exc, template)
            reason = str(exc) if isinstance(exc, TemplateError) else f"{type(exc).__name__}: {exc}"
            raise LetterTemplateError(f"模板 {name}{':' + str(line) if line else ''} 渲染失败：{reason}") from exc
        finally:
            env.deadline = float("inf")
            if alarm:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, previous)

    def _render_trusted(self, name: str, template: Template, context: Mapping[str, Any]) -> str:
        """A bundled template: no clock (its loops are over the letter's own items), the same failures."""
        try:
            return template.render(context)
        except UndefinedError as exc:
            line = _template_line(exc, template)
            where = f"{name}:{line}" if line else name
            raise LetterTemplateError(f"模板 {where}：{_undefined_message(exc, self._source_line(name, line))}，"
                                      "信函未生成") from exc
        except Exception as exc:
            line = _template_line(exc, template)
            reason = str(exc) if isinstance(exc, TemplateError) else f"{type(exc).__name__}: {exc}"
            raise LetterTemplateError(f"模板 {name}{':' + str(line) if line else ''} 渲染失败：{reason}") from exc

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

    def pdf_data(self, letter: Letter) -> str:
        """What the PDF template (letter.typ) reads: the letter and the office settings, as JSON."""
        return letter_json(letter, self.office)

    def pdf(self, letter: Letter) -> bytes:
        """The letter as a PDF (Typst, in this process), checked to extract back to the letter's key texts."""
        return render_pdf(self.pdf_data(letter), letter.key_texts(), label=f"纳税人 {letter.taxpayer_id}",
                          templates=self.folder)


# ----------------------------------------------------------------------------------------------- PDF
# notifier/letters/pdf.py lays PDFs out with Typst; these names are kept here for callers of this module.
__all__ = ["PdfTextError", "check_pdf", "pdf_text", "render_pdf"]
