"""The workbench in a real browser: Debian's chromium with chromium-driver through Selenium, 1366×768.

Logs in, filters the queue, opens a case, assigns and resolves it, and looks at the precision page.
Screenshots are kept in $ZHIXIANG_ARTIFACTS (default test-artifacts/)/workbench/.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from notifier.cases.queries import get_case
from notifier.db import open_state
from tests.test_workbench import PASSWORD, Server, no, server  # noqa: F401 — the live server fixture

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ARTIFACTS = Path(os.environ.get("ZHIXIANG_ARTIFACTS", Path(__file__).resolve().parent.parent / "test-artifacts"))


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not (Path(CHROMIUM).exists() and Path(DRIVER).exists()):
        if os.environ.get("CI"):
            pytest.fail("chromium and chromium-driver are needed (scripts/setup installs them)")
        pytest.skip("chromium / chromium-driver not installed")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1366,768", "--lang=zh-CN"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def test_an_officer_works_a_case_in_the_browser(server: Server, browser: Any) -> None:  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    def after(part: str) -> None:
        WebDriverWait(browser, 30).until(lambda drv: part in drv.current_url and drv.execute_script(
            "return document.readyState") == "complete")

    d = browser
    shots = ARTIFACTS / "workbench"
    shots.mkdir(parents=True, exist_ok=True)
    d.get(server.url + "/queue")
    assert "/login" in d.current_url
    d.find_element(By.NAME, "name").send_keys("wang")
    d.find_element(By.NAME, "password").send_keys(PASSWORD)
    d.find_element(By.ID, "login").click()
    after("/queue")
    assert "案件队列" in d.page_source
    d.save_screenshot(str(shots / "1-queue.png"))

    Select(d.find_element(By.NAME, "sort")).select_by_value("amount")
    d.find_element(By.ID, "filter").click()
    after("sort=amount")
    links = [a.text for a in d.find_elements(By.CSS_SELECTOR, "#cases tbody a[href^='/cases/']")]
    assert links[0] == no(5) and len(links) == 6
    d.save_screenshot(str(shots / "2-filtered.png"))

    d.find_element(By.LINK_TEXT, no(1)).click()
    after("/cases/")
    assert no(1) in d.title
    Select(d.find_element(By.NAME, "officer")).select_by_value("wang")
    d.find_element(By.CSS_SELECTOR, "#assign-form button").click()
    after("done=assigned")
    assert d.find_element(By.ID, "status").text == "核实中"
    Select(d.find_element(By.NAME, "outcome")).select_by_value("已更正")
    d.find_element(By.NAME, "reason").send_keys("纳税人已更正申报")
    d.find_element(By.ID, "resolve").click()
    after("done=resolved")
    assert d.find_element(By.ID, "status").text == "已更正"
    d.save_screenshot(str(shots / "3-case.png"))
    assert get_case(open_state(server.state), no(1)).status == "已更正"

    d.find_element(By.LINK_TEXT, "规则准确率").click()
    after("/precision")
    table = d.find_element(By.ID, "precision").text
    assert "100%" in table
    d.save_screenshot(str(shots / "4-precision.png"))
    assert d.execute_script("return document.documentElement.scrollWidth") <= 1366
