#!/usr/bin/env python3
"""Drives a running `svodka serve` with the real LibreTranslate client libraries.

usage: clients.py URL [--api-key KEY]

libretranslatepy (urllib, form-encoded POST bodies) and deep-translator (requests, the
parameters in the query string of a body-less POST) are the two clients most code in the
wild uses against LibreTranslate. The server's model may be a tiny random one, so
translations are checked for being non-empty strings, not for their content. With
--api-key the clients send the key, and raw requests without it (or with a wrong one)
must get 403 with a JSON {"error": ...} body. Prints one line per check; exits 1 when
any fails (scripts/test-serve-clients.sh runs it).
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
import urllib.error

import requests
from deep_translator import LibreTranslator
from deep_translator.exceptions import AuthorizationException
from libretranslatepy import LibreTranslateAPI

TIMEOUT = 120
RU = "Это предложение на русском языке."
EN = "This sentence is written in the English language."
RU_BATCH = [
    "В сингапурском аэропорту Чанги сбежали львы.",
    "Об этом сообщает The Straits Times.",
    "Новый случай заражения человека вирусом птичьего гриппа зафиксирован в Китае.",
]

failures: list[str] = []


def check(name: str, fn) -> None:
    """Runs fn(); it returns a detail string or raises (AssertionError for a failed check)."""
    try:
        detail = fn()
        print(f"ok    {name}" + (f": {detail}" if detail else ""), flush=True)
    except urllib.error.HTTPError as e:
        body = e.read().decode(errors="replace")[:300]
        failures.append(name)
        print(f"FAIL  {name}: HTTP {e.code} {body}", flush=True)
    except AssertionError as e:
        failures.append(name)
        print(f"FAIL  {name}: {e}", flush=True)
    except Exception as e:  # noqa: BLE001 - any error is a failed check
        failures.append(name)
        print(f"FAIL  {name}: {type(e).__name__}: {e}", flush=True)
        traceback.print_exc(limit=3, file=sys.stdout)


def nonempty_str(x, what: str) -> str:
    assert isinstance(x, str), f"{what}: expected a string, got {type(x).__name__}: {x!r}"
    assert x.strip(), f"{what}: empty string"
    return x


def short(s: str, n: int = 60) -> str:
    s = " ".join(s.split())
    return repr(s if len(s) <= n else s[: n - 1] + "…")


def forbidden(resp: requests.Response, what: str) -> str:
    assert resp.status_code == 403, f"{what}: expected HTTP 403, got {resp.status_code}: {resp.text[:200]!r}"
    ctype = resp.headers.get("Content-Type", "")
    assert "json" in ctype, f"{what}: Content-Type {ctype!r}, expected JSON"
    try:
        body = resp.json()
    except ValueError:
        raise AssertionError(f"{what}: body is not JSON: {resp.text[:200]!r}") from None
    assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"], (
        f"{what}: expected {{\"error\": \"...\"}}, got {body!r}"
    )
    return f"403 {body['error']!r}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("url", help="server base URL, e.g. http://127.0.0.1:5000")
    ap.add_argument("--api-key", default=None)
    args = ap.parse_args()
    base = args.url.rstrip("/")
    key = args.api_key

    # --- libretranslatepy -------------------------------------------------------------
    lt = LibreTranslateAPI(base, key)

    def languages():
        langs = lt.languages(timeout=TIMEOUT)
        assert isinstance(langs, list), f"expected a list, got {langs!r}"
        by_code = {l.get("code"): l for l in langs if isinstance(l, dict)}
        for code, other in (("en", "ru"), ("ru", "en")):
            assert code in by_code, f"no {code!r} in {langs!r}"
            entry = by_code[code]
            assert isinstance(entry.get("name"), str) and entry["name"], f"{code}: no name: {entry!r}"
            targets = entry.get("targets")
            assert isinstance(targets, list) and other in targets, f"{code}: targets {targets!r} lack {other!r}"
        return json.dumps(langs, ensure_ascii=False)

    check("libretranslatepy languages()", languages)

    def detect(text: str, want: str):
        def run():
            res = lt.detect(text, timeout=TIMEOUT)
            assert isinstance(res, list) and res, f"expected a non-empty list, got {res!r}"
            first = res[0]
            assert isinstance(first, dict), f"expected objects, got {res!r}"
            assert first.get("language") == want, f"first language {first.get('language')!r}, want {want!r}: {res!r}"
            conf = first.get("confidence")
            assert isinstance(conf, (int, float)) and not isinstance(conf, bool), f"confidence {conf!r} is not a number"
            return json.dumps(res, ensure_ascii=False)

        return run

    check("libretranslatepy detect(ru)", detect(RU, "ru"))
    check("libretranslatepy detect(en)", detect(EN, "en"))

    def lt_translate(text: str, source: str, target: str):
        def run():
            out = nonempty_str(lt.translate(text, source, target, timeout=TIMEOUT), "translatedText")
            return short(out)

        return run

    check("libretranslatepy translate(ru->en)", lt_translate(RU, "ru", "en"))
    check("libretranslatepy translate(en->ru)", lt_translate(EN, "en", "ru"))

    # --- deep-translator ----------------------------------------------------------------
    # LibreTranslator refuses to start without a truthy api_key (ApiKeyException), so
    # against a key-less server it sends a dummy one, which the server must ignore. The
    # endpoint is custom_url (not base_url) and must end in "/": it appends "translate".
    # Languages are checked against deep-translator's own list (en and ru are in it).
    dt_key = key if key is not None else "unused"

    def dt(source: str, target: str) -> LibreTranslator:
        return LibreTranslator(source=source, target=target, api_key=dt_key, use_free_api=False,
                               custom_url=base + "/")

    check("deep-translator translate(ru->en)", lambda: short(nonempty_str(dt("ru", "en").translate(RU), "translation")))
    check("deep-translator translate(en->ru)", lambda: short(nonempty_str(dt("en", "ru").translate(EN), "translation")))

    def dt_batch():
        out = dt("ru", "en").translate_batch(RU_BATCH)
        assert isinstance(out, list) and len(out) == len(RU_BATCH), f"expected {len(RU_BATCH)} strings, got {out!r}"
        for i, s in enumerate(out):
            nonempty_str(s, f"item {i}")
        return ", ".join(short(s, 30) for s in out)

    check("deep-translator translate_batch(3 sentences)", dt_batch)

    # --- raw requests: API shapes the libraries do not reach -----------------------------
    auth = {"api_key": key} if key is not None else {}

    def q_array():
        r = requests.post(base + "/translate", json={"q": RU_BATCH[:2], "source": "ru", "target": "en", **auth},
                          timeout=TIMEOUT)
        assert r.status_code == 200, f"HTTP {r.status_code}: {r.text[:200]!r}"
        out = r.json().get("translatedText")
        assert isinstance(out, list) and len(out) == 2, f"expected translatedText as a list of 2, got {out!r}"
        for i, s in enumerate(out):
            nonempty_str(s, f"item {i}")
        return ", ".join(short(s, 30) for s in out)

    check("requests POST /translate q=[2 strings] (JSON)", q_array)

    def auto_source():
        r = requests.post(base + "/translate", json={"q": RU, "source": "auto", "target": "en", **auth},
                          timeout=TIMEOUT)
        assert r.status_code == 200, f"HTTP {r.status_code}: {r.text[:200]!r}"
        body = r.json()
        nonempty_str(body.get("translatedText"), "translatedText")
        det = body.get("detectedLanguage")
        assert isinstance(det, dict) and det.get("language") == "ru", f"detectedLanguage {det!r}, want ru"
        return json.dumps(det)

    check("requests POST /translate source=auto (JSON)", auto_source)

    # --- API key enforcement ----------------------------------------------------------------
    if key is not None:
        payload = {"q": EN, "source": "en", "target": "ru"}
        check("no key: POST /translate (JSON) -> 403",
              lambda: forbidden(requests.post(base + "/translate", json=payload, timeout=TIMEOUT), "no key"))
        check("no key: POST /translate (form) -> 403",
              lambda: forbidden(requests.post(base + "/translate", data=payload, timeout=TIMEOUT), "no key"))
        check("no key: POST /detect (form) -> 403",
              lambda: forbidden(requests.post(base + "/detect", data={"q": RU}, timeout=TIMEOUT), "no key"))
        check("empty key: POST /translate (JSON) -> 403",
              lambda: forbidden(requests.post(base + "/translate", json={**payload, "api_key": ""}, timeout=TIMEOUT),
                                "empty key"))
        check("wrong key: POST /translate (JSON) -> 403",
              lambda: forbidden(requests.post(base + "/translate", json={**payload, "api_key": key + "x"},
                                              timeout=TIMEOUT), "wrong key"))

        def lt_wrong_key():
            try:
                LibreTranslateAPI(base, key + "x").translate(EN, "en", "ru", timeout=TIMEOUT)
            except urllib.error.HTTPError as e:
                assert e.code == 403, f"HTTP {e.code}, want 403"
                return "HTTPError 403"
            raise AssertionError("translated with a wrong key")

        check("libretranslatepy with a wrong key -> HTTPError 403", lt_wrong_key)

        def dt_wrong_key():
            t = LibreTranslator(source="en", target="ru", api_key=key + "x", use_free_api=False, custom_url=base + "/")
            try:
                t.translate(EN)
            except AuthorizationException:
                return "AuthorizationException"
            raise AssertionError("translated with a wrong key")

        check("deep-translator with a wrong key -> AuthorizationException", dt_wrong_key)

    if failures:
        print(f"{len(failures)} check(s) failed: {', '.join(failures)}", flush=True)
        return 1
    print("all checks passed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
