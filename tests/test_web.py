"""The web app in a real browser: Debian's headless Chromium driven by Playwright, against the
real server (uvicorn) on the embedded database. Each test saves a screenshot (to
$VERIFIER_SCREENSHOT_DIR when set, else the test's tmp dir)."""

from __future__ import annotations

import io
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest
from PIL import Image, ImageDraw

from manifests.signing import ManifestDefinition, SignerCredentials, sign_image
from tests.conftest import auth, live_server
from tests.helpers import encode
from verifier.api import create_app
from verifier.service import Service

playwright_api = pytest.importorskip("playwright.sync_api")
skdata = pytest.importorskip("skimage.data")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium package is not installed")

XSS = "<img src=x onerror=alert(1)>"


def photo(name: str) -> Image.Image:
    return Image.fromarray(getattr(skdata, name)()).convert("RGB")


def jpeg(img: Image.Image, quality: int = 85) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


@pytest.fixture
def server(service: Service) -> Iterator[str]:
    with live_server(create_app(service=service)) as (host, port):
        yield f"http://{host}:{port}"


@pytest.fixture
def originals(server: str, publisher_key: str, signer: SignerCredentials) -> dict[str, bytes]:
    out = {}
    for name in ("astronaut", "coffee"):
        data = sign_image(jpeg(photo(name), 92), "image/jpeg", signer, ManifestDefinition(title=f"{name}.jpg"))
        r = httpx.post(f"{server}/v1/originals", files={"file": (f"{name}.jpg", data, "image/jpeg")}, headers=auth(publisher_key))
        assert r.status_code == 201, r.text
        out[name] = data
    return out


@pytest.fixture
def browser() -> Iterator[object]:
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    out = Path(os.environ.get("VERIFIER_SCREENSHOT_DIR", tmp_path))
    out.mkdir(parents=True, exist_ok=True)
    return out


def open_page(browser, base: str, key: str | None, path: str = "/", width: int = 1200):  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": width, "height": 900})
    if key:
        context.add_init_script(f"sessionStorage.setItem('pv-api-key', {key!r})")
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    outside: list[str] = []
    page.on("request", lambda r: None if r.url.startswith((base, "blob:", "data:")) else outside.append(r.url))
    page.goto(base + path)
    page.dialogs, page.js_errors, page.outside = dialogs, errors, outside  # type: ignore[attr-defined]
    return page


def verify_file(page, tmp_path: Path, name: str, data: bytes) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / name
    path.write_bytes(data)
    page.set_input_files("#file-input", str(path))
    page.wait_for_selector("#verdict", timeout=60_000)


def loaded(page, selector: str) -> bool:  # type: ignore[no-untyped-def]
    page.wait_for_function(f"() => document.querySelector('{selector}') && document.querySelector('{selector}').naturalWidth > 0",
                           timeout=30_000)
    return True


def test_stripped_copy_shows_benign_changes_beside_the_original(server: str, browser, originals, verifier_key: str,
                                                                tmp_path: Path, shots: Path) -> None:
    page = open_page(browser, server, verifier_key)
    copy = photo("astronaut").resize((400, 400))
    verify_file(page, tmp_path, "copy.jpg", jpeg(copy, 80))
    assert page.get_attribute("#verdict", "data-verdict") == "match_benign"
    assert "Benign changes" in page.inner_text("#verdict") and "Daily Planet" in page.inner_text("#verdict")
    assert loaded(page, "#query-img") and loaded(page, "#original-img")
    assert page.is_visible("#original-img") and page.is_visible("#query-img")
    assert "astronaut.jpg" in page.inner_text("#result")  # recovered credentials: the original's title
    # the slider mode puts the original over the query
    page.check("#mode-slider")
    assert page.is_visible("#overlay-img") and page.is_visible("#reveal")
    page.screenshot(path=str(shots / "web-benign.png"), full_page=True)
    assert not page.dialogs and not page.js_errors and not page.outside  # type: ignore[attr-defined]


def test_a_heic_copy_is_searched_and_the_page_says_what_the_browser_cannot_show(server: str, browser, originals,
                                                                              verifier_key: str, tmp_path: Path) -> None:
    page = open_page(browser, server, verifier_key)
    copy = photo("astronaut").resize((400, 400))
    verify_file(page, tmp_path, "copy.heic", encode(copy, "HEIF", quality=80))
    assert page.get_attribute("#verdict", "data-verdict") == "match_benign"
    assert loaded(page, "#original-img")
    page.wait_for_function("() => document.querySelector('#compare figcaption').textContent.includes('cannot show')")
    assert "image/heic" in page.inner_text("#compare")
    assert not page.dialogs and not page.js_errors  # type: ignore[attr-defined]


def test_edited_copy_shows_manipulated_with_the_heatmap_where_the_patch_is(server: str, browser, originals,
                                                                           verifier_key: str, tmp_path: Path, shots: Path) -> None:
    page = open_page(browser, server, verifier_key)
    edited = photo("coffee").copy()
    ImageDraw.Draw(edited).rectangle((380, 60, 540, 200), fill=(230, 20, 30))
    verify_file(page, tmp_path, "edited.jpg", jpeg(edited, 90))
    assert page.get_attribute("#verdict", "data-verdict") == "match_manipulated"
    assert "Manipulated" in page.inner_text("#verdict")
    assert loaded(page, "#heat-query") and page.is_visible("#heat-query")
    # the layer is opaque where the patch is and transparent far from it
    alpha = page.evaluate("""() => {
        const img = document.querySelector('#heat-query');
        const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight;
        const g = c.getContext('2d'); g.drawImage(img, 0, 0);
        const at = (x, y) => g.getImageData(Math.floor(x * c.width), Math.floor(y * c.height), 1, 1).data[3];
        return [at(460 / 600, 130 / 400), at(0.05, 0.9)];
    }""")
    assert alpha[0] > 60 and alpha[1] < 20, alpha
    page.uncheck("#heat-toggle")
    assert not page.is_visible("#heat-query")
    page.check("#heat-toggle")
    page.screenshot(path=str(shots / "web-manipulated.png"), full_page=True)
    assert not page.dialogs and not page.js_errors  # type: ignore[attr-defined]


def test_an_animation_matched_in_a_later_frame_says_which_and_shows_that_frame(server: str, browser, originals,
                                                                              verifier_key: str, tmp_path: Path) -> None:
    edited = photo("coffee").copy()
    ImageDraw.Draw(edited).rectangle((380, 60, 540, 200), fill=(230, 20, 30))
    frames = [photo("rocket").resize(edited.size), photo("chelsea").resize(edited.size), edited]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=300, loop=0)
    page = open_page(browser, server, verifier_key)
    verify_file(page, tmp_path, "slideshow.gif", buf.getvalue())
    assert page.get_attribute("#verdict", "data-verdict") == "match_manipulated"
    assert "frame 3 of the 3" in page.inner_text("#frame-note")
    assert loaded(page, "#query-img")
    assert "frame 3" in page.inner_text("#compare figcaption")
    assert not page.dialogs and not page.js_errors  # type: ignore[attr-defined]


def test_signed_original_shows_trusted_banner_signer_and_ingredients(server: str, browser, originals, verifier_key: str,
                                                                     signer: SignerCredentials, tmp_path: Path, shots: Path) -> None:
    page = open_page(browser, server, verifier_key)
    parent = sign_image(jpeg(photo("rocket")), "image/jpeg", signer, ManifestDefinition(title="rocket-raw.jpg"))
    data = sign_image(jpeg(photo("rocket").resize((300, 200))), "image/jpeg", signer,
                      ManifestDefinition(title="rocket-edit.jpg"), parents=[(parent, "image/jpeg")])
    verify_file(page, tmp_path, "signed.jpg", data)
    assert page.get_attribute("#verdict", "data-verdict") == "c2pa_trusted"
    text = page.inner_text("#result")
    assert "trusted signer" in text and "Daily Planet Photo Desk" in text
    assert page.is_visible(".tree") and "parent-0" in page.inner_text(".tree")
    page.screenshot(path=str(shots / "web-trusted.png"), full_page=True)


def test_unrelated_image_is_not_found(server: str, browser, originals, verifier_key: str, tmp_path: Path, shots: Path) -> None:
    page = open_page(browser, server, verifier_key, width=375)  # phone width
    verify_file(page, tmp_path, "other.jpg", jpeg(photo("chelsea")))
    assert page.get_attribute("#verdict", "data-verdict") == "no_match"
    assert "Not found" in page.inner_text("#verdict")
    # the closest registered originals as leads, as stage 2 ranked them, each with the pairwise network's word
    assert "Closest registered originals (none is a match)" in page.inner_text("#candidates")
    rows = page.locator("#candidates tbody tr")
    assert rows.count() >= 1 and rows.nth(0).locator("td").nth(0).inner_text() == "1"
    assert page.locator("#candidates thead th").nth(3).inner_text() == "Same image (PSEN)"
    assert loaded(page, "#candidates img.thumb")  # each lead's picture, to be checked by eye ...
    page.wait_for_function("() => document.querySelector('#candidates tbody td:nth-child(3)').innerText.includes('Daily Planet')")
    assert ".jpg" in page.locator("#candidates tbody td:nth-child(3)").first.inner_text()  # ... its title and publisher
    assert page.evaluate("document.documentElement.scrollWidth") <= 375 + 1  # no sideways scrolling
    page.screenshot(path=str(shots / "web-not-found-375.png"), full_page=True)


def test_a_publishers_mark_on_the_query_is_named_as_not_counted(service: Service, server: str, browser, originals,
                                                                verifier_key: str, tmp_path: Path, shots: Path) -> None:
    from tests.test_marks import mark_file, stamped
    from verifier.storage.accounts import create_publisher

    with service.db.session() as session:
        newswire, _ = create_publisher(session, "Newswire <b>wire</b>")
        newswire_id = newswire.id
    service.matcher.marks.enroll(newswire_id, jpeg_png(mark_file()), "centre <i>name</i>")
    marked, _ = stamped(photo("rocket"), mark_file())
    page = open_page(browser, server, verifier_key)
    verify_file(page, tmp_path, "marked.jpg", jpeg(marked))
    assert page.get_attribute("#verdict", "data-verdict") == "no_match"
    text = page.inner_text("#marks")
    assert "Newswire <b>wire</b> (centre <i>name</i>)" in text and "not counted" in text  # names as text, not markup
    page.screenshot(path=str(shots / "web-marks.png"), full_page=True)
    assert not page.dialogs and not page.js_errors and not page.outside  # type: ignore[attr-defined]
    verify_file(page, tmp_path, "plain.jpg", jpeg(photo("rocket")))
    assert page.locator("#marks").count() == 0


def jpeg_png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def test_errors_are_said_in_words(server: str, browser, verifier_key: str, tmp_path: Path) -> None:
    page = open_page(browser, server, verifier_key)
    (tmp_path / "notes.txt").write_text("not an image")
    page.set_input_files("#file-input", str(tmp_path / "notes.txt"))
    page.wait_for_selector("#verify-status.error")
    assert "not a supported image" in page.inner_text("#verify-status")


def test_xss_in_titles_and_filenames_is_text(server: str, browser, publisher_key: str, verifier_key: str, signer: SignerCredentials,
                                            tmp_path: Path, shots: Path) -> None:
    data = sign_image(jpeg(photo("astronaut")), "image/jpeg", signer, ManifestDefinition(title=XSS))
    meta = '{"title": "' + XSS + '", "source_url": "https://example.org/story?a=1"}'
    r = httpx.post(f"{server}/v1/originals", files={"file": ("x.jpg", data, "image/jpeg")}, data={"metadata": meta},
                   headers=auth(publisher_key))
    assert r.status_code == 201, r.text
    page = open_page(browser, server, verifier_key)
    verify_file(page, tmp_path, "copy.jpg", jpeg(photo("astronaut").resize((300, 300)), 80))
    assert XSS in page.inner_text("#result")
    page.wait_for_function("() => document.querySelector('#candidates') && document.querySelector('#candidates').innerText.includes('Daily Planet')")
    assert XSS in page.inner_text("#candidates")  # the candidates' titles, fetched apart, are text too
    assert page.locator("#result img[src='x']").count() == 0
    assert page.locator("a[href^='javascript']").count() == 0
    page.wait_for_selector("a[href='https://example.org/story?a=1']")  # the registry's metadata comes in a second fetch
    link = page.locator("a[href='https://example.org/story?a=1']")  # http(s) only; javascript: is refused at ingest
    assert link.count() == 1 and "noopener" in (link.get_attribute("rel") or "")
    console = open_page(browser, server, publisher_key, "/console")
    console.wait_for_selector("#originals li")
    assert XSS in console.inner_text("#originals")
    console.screenshot(path=str(shots / "web-xss.png"), full_page=True)
    for p in (page, console):
        assert not p.dialogs and not p.js_errors  # type: ignore[attr-defined]
    csp = httpx.get(server + "/").headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp


def test_publisher_registers_two_files_and_sees_them(server: str, browser, publisher_key: str, signer: SignerCredentials,
                                                    tmp_path: Path, shots: Path) -> None:
    files = []
    for name in ("camera", "rocket"):
        path = tmp_path / f"{name}.jpg"
        path.write_bytes(sign_image(jpeg(photo(name)), "image/jpeg", signer, ManifestDefinition(title=f"{name}.jpg")))
        files.append(str(path))
    (tmp_path / "unsigned.jpg").write_bytes(jpeg(photo("coffee")))
    page = open_page(browser, server, publisher_key, "/console")
    page.wait_for_selector("#register-form:not([hidden])")
    page.click("#register-form summary")  # the optional metadata is folded away
    page.fill("#meta-caption", "Launch day")
    page.set_input_files("#register-files", [*files, str(tmp_path / "unsigned.jpg")])
    page.wait_for_function("() => document.querySelectorAll('#register-results li.ok, #register-results li.bad').length === 3",
                           timeout=60_000)
    results = page.inner_text("#register-results")
    assert results.count("registered") >= 2 and "refused" in results and "Content Credentials" in results
    page.wait_for_function("() => document.querySelectorAll('#originals li').length === 2", timeout=30_000)
    assert "camera.jpg" in page.inner_text("#originals") and "rocket.jpg" in page.inner_text("#originals")
    assert loaded(page, "#originals li img")
    # search by title, then delete with confirmation
    page.fill("#search-input", "rock")
    page.click("#search-form button")
    page.wait_for_function("() => document.querySelectorAll('#originals li').length === 1")
    page.screenshot(path=str(shots / "web-console.png"), full_page=True)
    page.click("#originals li button:has-text('Delete')")
    page.click("#originals li button:has-text('Yes, delete')")
    page.wait_for_function("() => document.querySelectorAll('#originals li').length === 0")
    assert httpx.get(f"{server}/v1/originals", headers=auth(publisher_key)).json()["total"] == 1


def test_publisher_sees_its_marks_and_the_overlay_its_photos_share(service: Service, server: str, browser,
                                                                  publisher_key: str, signer: SignerCredentials,
                                                                  shots: Path) -> None:
    from tests.test_marks import mark_file, stamped_set

    for k, img in enumerate(stamped_set()):
        data = sign_image(jpeg(img, 90), "image/jpeg", signer, ManifestDefinition(title=f"p{k}.jpg"))
        r = httpx.post(f"{server}/v1/originals", files={"file": (f"p{k}.jpg", data, "image/jpeg")}, headers=auth(publisher_key))
        assert r.status_code == 201, r.text
    pid = uuid.UUID(httpx.get(f"{server}/v1/me", headers=auth(publisher_key)).json()["publisher"]["id"])
    service.matcher.marks.enroll(pid, jpeg_png(mark_file()), "centre <i>name</i>")
    page = open_page(browser, server, publisher_key, "/console")
    page.wait_for_selector("#marks-list li[data-id]")
    assert "centre <i>name</i>" in page.inner_text("#marks-list")  # a label is text, not markup
    page.fill("#find-sample", "16")
    page.click("#find-marks-form button")
    page.wait_for_selector("#suggestions li", timeout=60_000)
    assert page.locator("#suggestions li").count() == 1
    assert "On 12 of 16 photos" in page.inner_text("#suggestions") and "recur" in page.inner_text("#find-status")
    assert loaded(page, "#suggestions li img")
    page.screenshot(path=str(shots / "web-find-marks.png"), full_page=True)
    assert not page.dialogs and not page.js_errors and not page.outside  # type: ignore[attr-defined]


def test_operator_enrols_a_suggested_mark_and_removes_it(service: Service, server: str, browser, publisher_key: str,
                                                        signer: SignerCredentials, tmp_path: Path, shots: Path) -> None:
    from tests.test_marks import mark_file, stamped_set
    from verifier.storage.accounts import Scope, create_publisher, issue_key

    for k, img in enumerate(stamped_set()):
        data = sign_image(jpeg(img, 90), "image/jpeg", signer, ManifestDefinition(title=f"p{k}.jpg"))
        r = httpx.post(f"{server}/v1/originals", files={"file": (f"p{k}.jpg", data, "image/jpeg")}, headers=auth(publisher_key))
        assert r.status_code == 201, r.text
    with service.db.session() as session:
        _, admin = issue_key(session, Scope.ADMIN, label="ops")
        create_publisher(session, "Gotham <b>Gazette</b>")
    page = open_page(browser, server, admin, "/operator")
    page.wait_for_selector("#nav-operator:not([hidden])")
    page.wait_for_function("() => document.querySelectorAll('#publisher-select option').length === 2")
    assert page.locator("#publisher-select option").all_inner_texts() == ["Daily Planet", "Gotham <b>Gazette</b>"]
    page.wait_for_selector("#marks-list li:has-text('none enrolled')")
    page.fill("#find-sample", "16")
    page.click("#find-marks-form button")
    page.wait_for_selector("#suggestions li button:has-text('Enrol as a mark')", timeout=60_000)
    assert "On 12 of 16 photos" in page.inner_text("#suggestions")
    page.click("#suggestions li button:has-text('Enrol as a mark')")
    page.wait_for_selector("#marks-list li[data-id]")
    assert "suggested: 12 of 16 photos" in page.inner_text("#marks-list")
    assert len(service.matcher.marks.current()) == 1  # counted by verifications from now on
    page.screenshot(path=str(shots / "web-operator.png"), full_page=True)
    page.select_option("#publisher-select", label="Gotham <b>Gazette</b>")  # another publisher: its own list
    page.wait_for_selector("#marks-list li:has-text('none enrolled')")
    page.select_option("#publisher-select", label="Daily Planet")
    page.click("#marks-list li button:has-text('Remove')")
    page.wait_for_selector("#marks-list li:has-text('none enrolled')")
    assert service.matcher.marks.current() == []
    (tmp_path / "junk.png").write_bytes(b"not an image at all")  # refused in words, nothing enrolled
    page.set_input_files("#enrol-file", str(tmp_path / "junk.png"))
    page.click("#enrol-form button")
    page.wait_for_function("() => document.querySelector('#enrol-status').textContent.startsWith('refused')")
    assert "not a supported image format" in page.inner_text("#enrol-status") and service.matcher.marks.current() == []
    (tmp_path / "mark.png").write_bytes(jpeg_png(mark_file()))  # the publisher's own file, uploaded
    page.set_input_files("#enrol-file", str(tmp_path / "mark.png"))
    page.fill("#enrol-label", "centre <i>name</i>")
    page.click("#enrol-form button")
    page.wait_for_selector("#marks-list li[data-id]")
    assert "centre <i>name</i>" in page.inner_text("#marks-list") and "enrolled" in page.inner_text("#enrol-status")
    assert not page.dialogs and not page.js_errors and not page.outside  # type: ignore[attr-defined]
    # a publisher key sees no operator page, and its console cannot enrol
    console = open_page(browser, server, publisher_key, "/operator")
    console.wait_for_function("() => document.querySelector('#operator-who').textContent.length > 0")
    assert "needs an admin key" in console.inner_text("#operator-who") and not console.is_visible("#nav-operator")
    assert not console.is_visible("#marks-panel")


def test_verifier_key_gets_no_console_and_permalinks_rerender(server: str, browser, originals, verifier_key: str,
                                                             tmp_path: Path) -> None:
    page = open_page(browser, server, verifier_key)
    assert not page.is_visible("#nav-console")
    verify_file(page, tmp_path, "copy.jpg", jpeg(photo("coffee").resize((300, 200)), 80))
    link = page.get_attribute("#permalink", "href")
    assert link and link.startswith("/reports/")
    again = open_page(browser, server, verifier_key, link)
    again.wait_for_selector("#verdict")
    assert again.get_attribute("#verdict", "data-verdict") == "match_benign"
    console = open_page(browser, server, verifier_key, "/console")
    console.wait_for_function("() => document.querySelector('#console-who').textContent.length > 0")
    assert "needs a publisher key" in console.inner_text("#console-who")
    assert not console.is_visible("#register-form")
    assert not console.is_visible("#marks-panel")
    # without a key the page asks for one, and a wrong key is said so
    anon = open_page(browser, server, None)
    anon.wait_for_selector("#key-panel", state="visible")  # after the page asked /v1/me (asynchronous)
    anon.fill("#key-input", "pv_ver_wrong")
    anon.click("#key-form button[type=submit]")
    anon.wait_for_function("() => document.querySelector('#key-error').textContent.length > 0")
    assert "not accepted" in anon.inner_text("#key-error")
    assert "pv_ver_wrong" not in anon.url


def test_open_deployment_needs_no_key(service: Service, server: str, browser, originals, tmp_path: Path) -> None:
    """VERIFIER_VERIFY_REQUIRES_KEY=false: the page verifies without asking for a key."""
    service.settings.verify_requires_key = False
    page = open_page(browser, server, None)
    page.wait_for_function("() => document.querySelector('#key-status').textContent.includes('verification is open')")
    assert not page.is_visible("#key-panel")
    verify_file(page, tmp_path, "copy.jpg", jpeg(photo("coffee").resize((300, 200)), 80))
    assert page.get_attribute("#verdict", "data-verdict") == "match_benign"
    assert loaded(page, "#original-img")  # the anonymous report's aligned original is readable anonymously
