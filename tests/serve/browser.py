#!/usr/bin/env python3
"""Drives the `svodka serve` web page in headless Chromium (Selenium 4).

usage: browser.py URL [--shots DIR] [--chromium PATH] [--chromedriver PATH] [--wait S]

Runs, each on a freshly loaded `/`:
  (a) summarize: task=summarize, the seed article in #text, submit; #result must show a
      summary whose first sentence is a sentence of the article (the test server's
      summary engine is extractive);
  (b) translate: task=translate, to=en, two Russian paragraphs (the bodies of the two
      WMT22 Russian fixtures; the seed article is English) in #text, submit; #result must
      hold table.side-by-side with a row per paragraph whose first cell is the paragraph;
  (c) (a) again in a second browser with JavaScript switched off (the plain form post).
The page must have <meta name="viewport">. With JavaScript the page may fill #result in
place (fetch) or load a new page; the checks poll #result in whatever page is current.
Screenshots go to DIR (default target/serve-browser): summarize.png, translate.png,
summarize-nojs.png. Prints one line per check; exits 1 when any fails
(scripts/test-serve-browser.sh runs it).
"""

from __future__ import annotations

import argparse
import base64
import re
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

from selenium import webdriver
from selenium.common.exceptions import (
    NoSuchElementException,
    StaleElementReferenceException,
    WebDriverException,
)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

ROOT = Path(__file__).resolve().parents[2]
ARTICLES = ROOT / "tests" / "fixtures" / "articles"
SEED = ARTICLES / "seed-article.txt"
RU_ARTICLES = [ARTICLES / "wmt22-ru-lenta.ru.89832.txt", ARTICLES / "wmt22-ru-belta.by.15655.txt"]
WAIT_S = 60

failures: list[str] = []


def check(name: str, fn) -> None:
    try:
        detail = fn()
        print(f"ok    {name}" + (f": {detail}" if detail else ""), flush=True)
    except AssertionError as e:
        failures.append(name)
        print(f"FAIL  {name}: {e}", flush=True)
    except Exception as e:  # noqa: BLE001 - any error is a failed check
        failures.append(name)
        print(f"FAIL  {name}: {type(e).__name__}: {e}", flush=True)
        traceback.print_exc(limit=4, file=sys.stdout)


def norm(s: str) -> str:
    """Plain text for comparisons: markdown links and emphasis dropped, whitespace collapsed."""
    s = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", s)
    s = s.replace("**", "").replace("__", "")
    s = s.replace("\u00a0", " ")
    return " ".join(s.split())


def short(s: str, n: int = 80) -> str:
    s = " ".join(s.split())
    return repr(s if len(s) <= n else s[: n - 1] + "…")


def paragraphs(text: str) -> list[str]:
    return [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]


def first_sentence(line: str) -> str:
    # Splits after . ! ? … (and a closing quote) before whitespace and a capital letter.
    parts = re.split(r"(?<=[.!?…])[\"”»’]?\s+(?=[\"“«]?[A-ZА-ЯЁ0-9])", line, maxsplit=1)
    return parts[0].strip()


def make_driver(args, user_data: Path, javascript: bool) -> webdriver.Chrome:
    opts = webdriver.ChromeOptions()
    opts.binary_location = args.chromium
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              f"--user-data-dir={user_data}", "--window-size=1200,1600"):
        opts.add_argument(a)
    if not javascript:
        opts.add_experimental_option("prefs", {"profile.managed_default_content_settings.javascript": 2})
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(args.chromedriver), options=opts)
    driver.set_page_load_timeout(WAIT_S)
    return driver


def result_text(driver) -> str | None:
    """#result's rendered text in the current page, None while there is none (or mid-load)."""
    try:
        return driver.find_element(By.ID, "result").text
    except (NoSuchElementException, StaleElementReferenceException):
        return None
    except WebDriverException:
        return None


def wait_for(driver, what: str, cond):
    """Polls cond() (returns a value or None) for up to WAIT_S; fails with #result's text."""
    deadline = time.monotonic() + WAIT_S
    last_err = None
    while True:
        try:
            v = cond()
            if v is not None:
                return v
        except (StaleElementReferenceException, NoSuchElementException) as e:
            last_err = e
        except WebDriverException as e:  # a page load in progress
            last_err = e
        if time.monotonic() > deadline:
            text = result_text(driver)
            raise AssertionError(
                f"no {what} within {WAIT_S}s; page {driver.current_url!r}; #result: "
                f"{short(text, 400) if text is not None else 'absent'}"
                + (f"; last error {type(last_err).__name__}" if last_err else "")
            )
        time.sleep(0.25)


def choose(driver, select_id: str, value: str) -> None:
    el = driver.find_element(By.ID, select_id)
    try:
        Select(el).select_by_value(value)
    except (WebDriverException, NotImplementedError):
        # Hidden or styled-over select: set it the way a script would.
        driver.execute_script(
            "arguments[0].value = arguments[1];"
            "arguments[0].dispatchEvent(new Event('change', {bubbles: true}));", el, value)
    got = driver.execute_script("return arguments[0].value;", el)
    assert got == value, f"#{select_id} is {got!r} after choosing {value!r}"


def fill_and_submit(driver, text: str) -> None:
    area = driver.find_element(By.ID, "text")
    # A paste: the value set at once, then the events an editor sends.
    driver.execute_script(
        "arguments[0].focus(); arguments[0].value = arguments[1];"
        "arguments[0].dispatchEvent(new Event('input', {bubbles: true}));"
        "arguments[0].dispatchEvent(new Event('change', {bubbles: true}));", area, text)
    button = driver.find_element(By.ID, "submit")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", button)
    button.click()


def screenshot(driver, path: Path) -> None:
    """Whole page when Chromium's DevTools allow it, else the window."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        m = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
        size = m.get("cssContentSize") or m["contentSize"]
        w, h = int(size["width"]), min(int(size["height"]), 12000)
        shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": w, "height": h, "scale": 1}})
        path.write_bytes(base64.b64decode(shot["data"]))
    except Exception:  # noqa: BLE001
        driver.save_screenshot(str(path))
    print(f"      screenshot {path}", flush=True)


def open_page(driver, base: str) -> str:
    driver.get(base + "/")
    for el_id in ("form", "task", "text", "submit"):
        driver.find_element(By.ID, el_id)
    form = driver.find_element(By.ID, "form")
    method = (form.get_attribute("method") or "").lower()
    action = form.get_attribute("action") or ""
    assert method == "post" and action.rstrip("/").endswith("/ui"), \
        f"#form is method={method!r} action={action!r}, want post /ui"
    return result_text(driver) or ""


def run_summarize(driver, base: str, shot: Path) -> str:
    before = open_page(driver, base)
    choose(driver, "task", "summarize")
    article = SEED.read_text(encoding="utf-8")
    fill_and_submit(driver, article)
    art = norm(article)

    state = {}

    def summary_sentence():
        text = result_text(driver)
        if not text or text == before:
            return None
        state["text"] = text
        # The summary's first sentence: the first sentence of the first line of five or
        # more words that ends like a sentence (headings and labels do not). A loading
        # message fails the test only if it is still there at the deadline.
        for raw in text.splitlines():
            line = norm(re.sub(r"^\s*(?:[-*•·]|\d+[.)])\s+", "", raw))
            sent = first_sentence(line)
            if len(line.split()) < 5 or not re.search(r"[.!?…][\"”»’]?$", sent):
                continue
            state["first"] = sent
            return sent if sent in art else None
        return None

    try:
        sent = wait_for(driver, "summary in #result whose first sentence is in the article", summary_sentence)
    except AssertionError as e:
        if "first" in state:
            raise AssertionError(f"{e}; first sentence {short(state['first'])} is not in the article") from None
        raise
    finally:
        screenshot(driver, shot)
    return f"{short(sent)} (of {len(state['text'])} chars in #result)"


def run_translate(driver, base: str, shot: Path) -> str:
    before = open_page(driver, base)
    choose(driver, "task", "translate")
    choose(driver, "to", "en")
    # The body paragraph (after the headline) of each Russian fixture: two long paragraphs
    # that no reader rule takes for a title, dateline or caption.
    paras = [paragraphs(p.read_text(encoding="utf-8"))[1] for p in RU_ARTICLES]
    fill_and_submit(driver, "\n\n".join(paras))
    want = [norm(p) for p in paras]

    def table_rows():
        if result_text(driver) in (None, before):
            return None
        tables = driver.find_elements(By.CSS_SELECTOR, "#result table.side-by-side")
        if not tables:
            return None
        firsts = []
        for tr in tables[0].find_elements(By.CSS_SELECTOR, "tr"):
            cells = tr.find_elements(By.CSS_SELECTOR, "td")
            if cells:
                firsts.append(norm(cells[0].text))
        if len(firsts) < 2:
            return None
        missing = [p for p in want if not any(p == f or p in f for f in firsts)]
        if missing:
            return None
        return firsts

    try:
        rows = wait_for(driver, "table.side-by-side in #result with a row per source paragraph", table_rows)
    finally:
        screenshot(driver, shot)
    return f"{len(rows)} rows, first cells {', '.join(short(f, 30) for f in rows[:3])}"


def console_errors(driver) -> None:
    try:
        logs = driver.get_log("browser")
    except Exception:  # noqa: BLE001
        return
    for entry in logs:
        if entry.get("level") == "SEVERE" and "favicon" not in entry.get("message", ""):
            print(f"      warning: browser console: {entry.get('message')}", flush=True)


def main() -> int:
    global WAIT_S
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("url")
    ap.add_argument("--shots", type=Path, default=ROOT / "target" / "serve-browser")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--chromedriver", default="/usr/bin/chromedriver")
    ap.add_argument("--wait", type=float, default=WAIT_S, help="seconds to wait for each result (60)")
    args = ap.parse_args()
    WAIT_S = args.wait
    base = args.url.rstrip("/")
    args.shots.mkdir(parents=True, exist_ok=True)

    tmp = Path(tempfile.mkdtemp(prefix="svodka-browser-"))
    try:
        driver = make_driver(args, tmp / "profile-js", javascript=True)
        try:
            def viewport():
                driver.get(base + "/")
                metas = driver.find_elements(By.CSS_SELECTOR, 'meta[name="viewport"]')
                assert metas, "no <meta name=\"viewport\"> in /"
                return repr(metas[0].get_attribute("content"))

            check("page / has <meta name=viewport>", viewport)
            check("(a) summarize the seed article", lambda: run_summarize(driver, base, args.shots / "summarize.png"))
            check("(b) translate two Russian paragraphs to en",
                  lambda: run_translate(driver, base, args.shots / "translate.png"))
            console_errors(driver)
        finally:
            driver.quit()

        driver = make_driver(args, tmp / "profile-nojs", javascript=False)
        try:
            check("(c) summarize with JavaScript off (form post)",
                  lambda: run_summarize(driver, base, args.shots / "summarize-nojs.png"))
        finally:
            driver.quit()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    if failures:
        print(f"{len(failures)} check(s) failed: {', '.join(failures)}", flush=True)
        return 1
    print("all checks passed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
