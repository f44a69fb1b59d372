"""PDF letters laid out in batches (issue 12 §3): a worker lays out several letters as one Typst document
and cuts it into one PDF per letter. Each cut PDF must be the letter alone — its pages, its text, its
title — exactly what laying it out alone gives; a template without the cut mark is laid out letter by
letter; the pool hands letters over without waiting (submit/poll/drain)."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pikepdf
import pytest

from notifier.letters.build import Letter
from notifier.letters.pdf import (
    LETTER_MARK,
    PdfError,
    PdfJob,
    PdfPool,
    TypstPdf,
    check_pdf,
    lay_out,
    pdf_pages,
)
from notifier.letters.render import LetterRenderer
from tests.builders.letters import five_incentives, low_risk_reminder, one_incentive
from tests.test_letters_render import letter_of


@pytest.fixture(scope="module")
def letters() -> list[Letter]:
    return [letter_of(rows()) for rows in (one_incentive, five_incentives, low_risk_reminder)]


def _jobs(letters: list[Letter]) -> list[PdfJob]:
    renderer = LetterRenderer()
    return [PdfJob(x.package_id, renderer.pdf_data(x), tuple(x.key_texts()), label=x.taxpayer_id) for x in letters]


def _title(pdf: bytes) -> tuple[str, str, int]:
    with pikepdf.open(io.BytesIO(pdf)) as doc:
        xmp = doc.Root.Metadata.read_bytes().decode()
        found = re.search(r"<dc:title>.*?<rdf:li[^>]*>(.*?)</rdf:li>", xmp, re.S)
        pages = re.search(r"<xmpTPg:NPages>(\d+)</xmpTPg:NPages>", xmp)
        assert found and pages
        assert int(pages.group(1)) == len(doc.pages)
        return str(doc.docinfo["/Title"]), found.group(1), len(doc.pages)


def test_a_batch_is_cut_into_the_letters_each_as_laid_out_alone(letters: list[Letter]) -> None:
    compiler = TypstPdf()
    assert compiler.batches
    jobs = _jobs(letters)
    batch = compiler.compile_letters(jobs)
    assert [key for key, _, _ in batch] == [job.key for job in jobs]
    for (_, ok, pdf), job, letter in zip(batch, jobs, letters, strict=True):
        assert ok and isinstance(pdf, bytes), pdf
        alone = compiler.compile(job.data)
        # the same pages with the same text (pypdf's own extraction), every font embedded
        assert pdf_pages(pdf) == pdf_pages(alone)
        check_pdf(pdf, [*letter.key_texts(), letter.name], thorough=True)
        # the letter's own title, in the document information and the XMP metadata
        title = f"税费优惠政策提醒函 · {letter.name}"
        assert _title(pdf) == (title, title, len(pdf_pages(alone)))
        assert _title(alone)[:2] == (title, title)
    # the letters do not share pages: each PDF holds its own taxpayer only
    texts = ["".join("".join(pdf_pages(pdf)).split()) for _, _, pdf in batch]  # type: ignore[arg-type]
    for i, letter in enumerate(letters):
        assert [letter.name in text for text in texts].count(True) == 1 and letter.name in texts[i]


def test_a_letter_that_fails_in_a_batch_fails_alone(letters: list[Letter], tmp_path: Path) -> None:
    source = (TypstPdf().main).read_text(encoding="utf-8")
    victim = letters[1].name
    start = "#let O = L.office\n"
    (tmp_path / "letter.typ").write_text(
        source.replace(start, f'{start}#if L.name == "{victim}" {{ panic("坏模板") }}\n', 1), encoding="utf-8")
    results = lay_out(TypstPdf(tmp_path), _jobs(letters))
    assert [ok for _, ok, _ in results] == [True, False, True]
    assert "坏模板" in str(results[1][2])


def test_a_template_without_the_mark_is_laid_out_letter_by_letter(letters: list[Letter], tmp_path: Path) -> None:
    (tmp_path / "letter.typ").write_text(
        '#let L = json(bytes(sys.inputs.letter))\n#set text(font: ("Noto Serif CJK SC",), lang: "zh")\n'
        "#L.name\n\n#L.total_saving_text\n", encoding="utf-8")
    compiler = TypstPdf(tmp_path)
    assert not compiler.batches and LETTER_MARK not in compiler.main.read_text(encoding="utf-8")
    jobs = [PdfJob(j.key, j.data, (x.name,)) for j, x in zip(_jobs(letters), letters, strict=True)]
    results = lay_out(compiler, jobs)
    for (_, ok, pdf), letter in zip(results, letters, strict=True):
        assert ok and isinstance(pdf, bytes)
        assert letter.name in "".join(pdf_pages(pdf)[0].split())


def test_the_pool_hands_letters_over_and_returns_each_once(letters: list[Letter]) -> None:
    jobs = _jobs(letters)
    cover = PdfJob("cover", jobs[0].data, (letters[0].name,))
    with PdfPool(2, batch=2) as pool:
        pool.submit(jobs)  # two make a batch, the third waits for more letters or drain()
        assert pool.pending == 3
        done = pool.poll(wait=True)
        assert set(done) <= {job.key for job in jobs} and done
        done |= pool.drain()
        assert pool.pending == 0 and pool.poll() == {}
        assert set(done) == {job.key for job in jobs}
        assert all(isinstance(pdf, bytes) for pdf in done.values())
        assert set(pool.render([cover])) == {"cover"}


def test_no_worker_means_every_letter_fails_with_the_reason(letters: list[Letter],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: PdfPool) -> None:
        raise PdfError("找不到字体")

    monkeypatch.setattr(PdfPool, "_start", refuse)
    with PdfPool(2) as pool:
        done = pool.render(_jobs(letters))
    assert len(done) == 3 and all(isinstance(e, PdfError) and "找不到字体" in str(e) for e in done.values())
