"""The try-it page (handler/web.py, handler/static/): served by the app, through the Lambda handler under a stage
prefix, and used in a real browser (Debian's chromium, headless, driven by Selenium) against uvicorn.

The browser tests skip when chromium or chromedriver is missing (`make test` installs them where apt-get can),
except under CI=true, where they must run."""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, png_bytes

STATIC = ROOT / "handler" / "static"
ARTIFACTS = ROOT / "test-artifacts"
SAMPLES = json.loads((STATIC / "samples.json").read_text())


# ---- served by the app ----------------------------------------------------------------------------------------
def test_root_serves_the_page_with_relative_urls(client):
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page = r.text
    assert '<base href="/">' in page
    assert 'src="static/app.js"' in page and 'href="static/style.css"' in page
    # every slider gets a <label for>; the page's own controls are labelled too
    for control in re.findall(r'<(?:input|select)[^>]*\bid="([^"]+)"', page):
        wrapped = re.search(rf'<label[^>]*>\s*<input[^>]*id="{control}"', page)  # the label around it
        assert f'for="{control}"' in page or wrapped, f"control #{control} has no label"
    assert 'role="alert"' in page and 'aria-live' in page


@pytest.mark.parametrize("name,kind", [("app.js", "javascript"), ("style.css", "text/css"),
                                       ("samples.json", "application/json")])
def test_static_assets_are_served(client, name, kind):
    r = client.get(f"/static/{name}")
    assert r.status_code == 200 and kind in r.headers["content-type"]
    assert r.content == (STATIC / name).read_bytes()


def test_missing_asset_is_a_json_404(client):
    r = client.get("/static/nope.js")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_page_calls_the_api_only_by_relative_url():
    script = (STATIC / "app.js").read_text()
    assert not re.search(r"""["'`]/(v1|static)/""", script), "absolute paths break under an API Gateway stage"
    for path in ("v1/attributes", "v1/analyze", "v1/edit", "v1/generate", "v1/interpolate"):
        assert f'"{path}"' in script, path


def test_page_explains_every_error_code_the_api_returns():
    from handler import errors

    script = (STATIC / "app.js").read_text()
    explained = set(re.findall(r"^\s+(\w+): \"", script.split("const ERROR_TEXT")[1].split("};")[0], re.M))
    api_codes = {cls.code for cls in vars(errors).values()
                 if isinstance(cls, type) and issubclass(cls, errors.ApiError) and cls is not errors.ApiError}
    template = (ROOT / "template.yaml").read_text()
    gateway_codes = set(re.findall(r'"code": "(\w+)"', template)) - {"not_found"}
    missing = (api_codes | gateway_codes) - explained
    assert not missing, f"no friendly message for {sorted(missing)}"


@pytest.mark.parametrize("sample", SAMPLES, ids=[s["label"] for s in SAMPLES])
def test_sample_faces_are_found_by_the_detector(client, sample):
    r = client.post("/v1/generate", json={"seed": sample["seed"], "attributes": sample["attributes"], "size": 256,
                                          "response": "json"})
    assert r.status_code == 200, r.text
    image = r.json()["images_base64"][0]
    faces = client.post("/v1/analyze", json={"image_base64": image})
    assert faces.status_code == 200, faces.text
    assert len(faces.json()["faces"]) == 1


# ---- through the Lambda handler, under API Gateway's stage prefix -----------------------------------------------
def gateway_event(path: str, public_path: str) -> dict:
    headers = {"Host": "abc123.execute-api.us-east-1.amazonaws.com", "Accept": "text/html,application/xhtml+xml,*/*",
               "X-Forwarded-Proto": "https", "X-Forwarded-Port": "443"}
    return {"resource": path, "path": path, "httpMethod": "GET", "headers": headers,
            "multiValueHeaders": {k: [v] for k, v in headers.items()}, "queryStringParameters": None,
            "multiValueQueryStringParameters": None, "pathParameters": None, "stageVariables": None,
            "requestContext": {"resourcePath": path, "httpMethod": "GET", "path": public_path, "stage": "prod",
                               "requestId": "0f0f0f0f-0000-4000-8000-000000000000", "accountId": "000000000000",
                               "apiId": "abc123", "protocol": "HTTP/1.1", "identity": {"sourceIp": "203.0.113.7"}},
            "body": None, "isBase64Encoded": False}


@pytest.mark.parametrize("public_path", ["/prod/", "/prod"])
def test_page_through_api_gateway_keeps_the_stage_prefix(public_path):
    sys.path.insert(0, str(ROOT / "scripts"))
    from invoke import LocalContext

    from handler.main import handler

    response = handler(gateway_event("/", public_path), LocalContext())
    assert response["statusCode"] == 200
    assert response["isBase64Encoded"] is False, "HTML must pass through API Gateway as text"
    assert response["headers"]["content-type"].startswith("text/html")
    assert '<base href="/prod/">' in response["body"]

    asset = handler(gateway_event("/static/app.js", "/prod/static/app.js"), LocalContext())
    assert asset["statusCode"] == 200 and asset["isBase64Encoded"] is False
    assert "loadPhoto" in asset["body"]


def test_the_lambda_image_gets_the_static_files():
    """The Dockerfile copies handler/ whole; .dockerignore (an allow-list) must not drop the page's files."""
    from fnmatch import fnmatch

    patterns = [p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines()
                if p.strip() and not p.startswith("#")]
    for path in STATIC.iterdir():
        name = f"handler/static/{path.name}"
        excluded = False
        for pattern in patterns:  # last match wins, as in Docker
            negated = pattern.startswith("!")
            bare = pattern.lstrip("!").rstrip("/")
            if fnmatch(name, bare) or name.startswith(bare + "/") or fnmatch(name, bare.replace("**/", "*")):
                excluded = not negated
        assert not excluded, name


# ---- in a real browser ----------------------------------------------------------------------------------------
def _need(reason: str):
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; under CI=true the browser tests must run (`make test` installs chromium)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser_paths() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        _need("chromium and chromedriver are not installed (apt-get install chromium chromium-driver)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        _need("selenium is not installed (pip install -e '.[dev]')")
    return chromium, driver


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(browser_paths):
    """The app under uvicorn on a free loopback port, as `make run` serves it."""
    port = _free_port()
    env = {**os.environ, "POWERTOOLS_METRICS_DISABLED": "true", "POWERTOOLS_TRACE_DISABLED": "true"}
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "handler.app:app", "--host", "127.0.0.1",
                             "--port", str(port)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 90
    while True:
        try:
            urllib.request.urlopen(url + "healthz", timeout=2)
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"uvicorn did not start: {proc.stderr.read().decode()[-2000:]}")
            time.sleep(0.3)
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def driver(browser_paths):
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must never try to download a browser
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, chromedriver = browser_paths
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,1800", "--disable-extensions"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    d.set_page_load_timeout(60)
    yield d
    d.quit()


def _wait(d, condition, timeout=60, what="condition"):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(d, timeout, poll_frequency=0.1).until(condition, message=f"timed out waiting for {what}")


def _severe(d) -> list[dict]:
    return [entry for entry in d.get_log("browser") if entry["level"] == "SEVERE"]


def _upload(d, path: Path, field: str = "file"):
    from selenium.webdriver.common.by import By

    d.find_element(By.ID, field).send_keys(str(path))


def _message(d) -> str:
    from selenium.webdriver.common.by import By

    _wait(d, lambda d: d.find_element(By.ID, "message").is_displayed(), 60, "an error message")
    return d.find_element(By.ID, "message").text


def test_browser_upload_edit_animate(server, driver, astronaut, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    d = driver
    d.get(server)
    _wait(d, lambda d: d.find_elements(By.ID, "attr-Eyeglasses"), 60, "the sliders to be built")
    photo = tmp_path / "astronaut.png"
    photo.write_bytes(png_bytes(astronaut))
    _upload(d, photo)

    _wait(d, lambda d: d.find_element(By.ID, "workspace").is_displayed(), 60, "the photo to be analysed")
    faces = d.find_elements(By.CSS_SELECTOR, ".face-box")
    assert len(faces) == 1 and faces[0].get_attribute("aria-pressed") == "true"
    slider = d.find_element(By.ID, "attr-Eyeglasses")
    measured = float(slider.get_attribute("value"))
    assert 0.0 <= measured < 0.5  # set to the score the model measured: she wears no glasses
    before_src = d.find_element(By.ID, "after-img").get_attribute("src")
    assert before_src == d.find_element(By.ID, "before-img").get_attribute("src")

    # Count the edit requests the page sends: quick key presses must make one request, not one each.
    d.execute_script("""window.__edits = []; const original = window.fetch;
        window.fetch = (url, options) => { if (String(url).endsWith('v1/edit')) window.__edits.push(
          JSON.parse(options.body).edits); return original(url, options); };""")
    # Keyboard: focus the slider by its label, nudge it a few times, then move it to the end.
    d.find_element(By.CSS_SELECTOR, "label[for=attr-Eyeglasses]").click()
    slider.send_keys(Keys.ARROW_RIGHT * 5 + Keys.END)
    assert float(slider.get_attribute("value")) == 1.0
    assert "Glasses: 100%" in slider.get_attribute("aria-valuetext")
    after = _wait(d, lambda d: (d.find_element(By.ID, "after-img").get_attribute("src") != before_src
                                and d.find_element(By.ID, "busy").get_attribute("hidden") is not None
                                and d.find_element(By.ID, "after-img")), 60, "the edited image")
    _wait(d, lambda d: d.execute_script("const i = arguments[0]; return i.complete && i.naturalWidth > 0;", after),
          30, "the edited image to load")
    assert d.execute_script("return [arguments[0].naturalWidth, arguments[0].naturalHeight]", after) == [512, 512]
    # Different pixels from the photo: draw both into canvases and compare.
    differs = d.execute_script("""
        const px = (img) => { const c = document.createElement('canvas'); c.width = img.naturalWidth;
          c.height = img.naturalHeight; const g = c.getContext('2d'); g.drawImage(img, 0, 0);
          return g.getImageData(0, 0, c.width, c.height).data; };
        const a = px(document.getElementById('before-img')), b = px(arguments[0]);
        let n = 0; for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) n++; return n;""", after)
    assert differs > 100, "the displayed result is not edited"
    assert d.find_element(By.ID, "download-result").get_attribute("download").startswith("edited.")
    curl = d.find_element(By.ID, "curl").text
    assert "/v1/edit" in curl and '"edits":{"Eyeglasses":1}' in curl and "$(base64 -w0 'astronaut.png')" in curl
    assert "Glasses" in d.find_element(By.ID, "changes").text
    assert d.execute_script("return window.__edits") == [{"Eyeglasses": 1}], "debounced: one request, final value"
    ARTIFACTS.mkdir(exist_ok=True)
    d.execute_script("window.scrollTo(0, 0)")
    d.save_screenshot(str(ARTIFACTS / "web-after-edit.png"))
    assert _severe(d) == [], "console errors on the page"

    # Animation from the photo to the edit, shown and downloadable.
    d.find_element(By.ID, "frames").clear()
    d.find_element(By.ID, "frames").send_keys("4")
    d.find_element(By.ID, "animate-edit").click()
    _wait(d, lambda d: d.find_element(By.ID, "anim-figure").is_displayed(), 60, "the animation")
    assert d.find_element(By.ID, "download-anim").get_attribute("download") == "animation.gif"
    assert '"end":{"Eyeglasses":1}' in d.find_element(By.ID, "curl").text

    # Morph into a second photo (here the same one): the two-photo interpolation.
    _upload(d, photo, "morph-file")
    _wait(d, lambda d: "image2_base64" in d.find_element(By.ID, "curl").text, 10, "the morph request")
    _wait(d, lambda d: "Animation ready" in d.find_element(By.ID, "status").text, 60, "the morph")
    assert "$(base64 -w0 'astronaut.png')" in d.find_element(By.ID, "curl").text

    # Reset puts the sliders back to the measured values and the photo back.
    d.find_element(By.ID, "reset").send_keys(Keys.ENTER)
    assert float(slider.get_attribute("value")) == pytest.approx(measured)
    assert d.find_element(By.ID, "after-img").get_attribute("src") == before_src
    assert _severe(d) == [], "console errors on the page"


def test_browser_sample_face_and_phone_layout(server, driver):
    from selenium.webdriver.common.by import By

    d = driver
    d.set_window_size(390, 844)
    try:
        d.get(server)
        d.find_element(By.CSS_SELECTOR, ".api-key summary").click()
        d.find_element(By.ID, "api-key").send_keys("local-key")  # harmless locally; sent as x-api-key
        button = _wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, "#samples button"), 30, "the sample buttons")[0]
        button.click()
        _wait(d, lambda d: d.find_element(By.ID, "workspace").is_displayed(), 60, "the sample face to be analysed")
        assert d.find_element(By.ID, "before-img").get_attribute("src").startswith("blob:")
        curl = d.find_element(By.ID, "curl").text
        assert "/v1/analyze" in curl and 'x-api-key: $FACE_API_KEY' in curl and "local-key" not in curl
        viewer, controls = d.find_element(By.CSS_SELECTOR, ".viewer"), d.find_element(By.ID, "controls")
        assert viewer.location["x"] == controls.location["x"], "one column on a phone: sliders under the photos"
        assert d.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1")
        d.execute_script("document.getElementById('workspace').scrollIntoView()")
        d.save_screenshot(str(ARTIFACTS / "web-phone.png"))
        assert _severe(d) == []
    finally:
        d.set_window_size(1280, 1800)


def test_browser_shows_friendly_errors(server, driver, tmp_path):
    from selenium.webdriver.common.by import By

    d = driver
    d.get(server)
    _wait(d, lambda d: d.find_elements(By.ID, "attr-Smiling"), 60, "the sliders to be built")

    text = tmp_path / "notes.txt"
    text.write_text("this is not a photo")
    _upload(d, text)
    assert "not an image" in _message(d)
    assert d.find_element(By.ID, "message").get_attribute("data-code") == "unsupported_image"

    gray = tmp_path / "gray.png"
    gray.write_bytes(png_bytes(np.full((200, 300, 3), 128, np.uint8)))
    _upload(d, gray)
    _wait(d, lambda d: d.find_element(By.ID, "message").get_attribute("data-code") == "no_face", 60, "no_face")
    assert "No face was found" in _message(d)

    big = tmp_path / "huge.jpg"  # refused in the browser, before any upload
    big.write_bytes(b"\xff\xd8" + os.urandom(10 * 1024 * 1024))
    _upload(d, big)
    _wait(d, lambda d: d.find_element(By.ID, "message").get_attribute("data-code") == "payload_too_large", 10,
          "payload_too_large")
    assert "10 MB" in _message(d)
    # the only console errors are the API's refusals (the 415 and the 422), nothing from the page's script
    assert all("Failed to load resource" in e["message"] for e in _severe(d)), _severe(d)



# The measured reliability the page shows beside a slider, whatever the running model card provides: one attribute
# measured as working, one flagged experimental, one with no measurement (no badge).
RELIABILITY = {"Eyeglasses": {"edit_accuracy": 0.91, "experimental": False},
               "Pale_Skin": {"edit_accuracy": 0.07, "experimental": True},
               "Wearing_Hat": {}}
FAKE_RELIABILITY = """
  const overrides = %s;
  const original = window.fetch;
  window.fetch = async (url, options) => {
    const response = await original(url, options);
    if (!String(url).endsWith('v1/attributes') || !response.ok) return response;
    const body = await response.json();
    for (const a of body.attributes) {
      if (!(a.name in overrides)) continue;
      delete a.edit_accuracy; delete a.experimental;
      Object.assign(a, overrides[a.name]);
    }
    return new Response(JSON.stringify(body), {status: response.status, headers: response.headers});
  };""" % json.dumps(RELIABILITY)


def _rect(d, element) -> dict:
    return d.execute_script("const r = arguments[0].getBoundingClientRect();"
                            "return {x: r.left, y: r.top, w: r.width, h: r.height};", element)


def test_browser_compare_view(server, driver, astronaut, tmp_path):
    """The large face-centred before/after view: zoomed to the face, a divider moved by keyboard and by pointer,
    hold to see the original, the whole photo one click away; reliability badges beside the sliders."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    d = driver
    script = d.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": FAKE_RELIABILITY})["identifier"]
    try:
        d.get(server)
        _wait(d, lambda d: d.find_elements(By.ID, "attr-Eyeglasses"), 60, "the sliders to be built")
    finally:
        d.execute_cdp_cmd("Page.removeScriptToEvaluateOnNewDocument", {"identifier": script})

    # Reliability beside the slider's name, read by screen readers as the slider's description (the sliders are
    # built, hidden, before a photo is chosen: read textContent).
    badge = d.find_element(By.ID, "reliability-Eyeglasses")
    assert badge.get_attribute("textContent") == "works 91%" and "good" in badge.get_attribute("class")
    assert d.find_element(By.ID, "attr-Eyeglasses").get_attribute("aria-describedby") == "reliability-Eyeglasses"
    assert d.find_element(By.ID, "reliability-Pale_Skin").get_attribute("textContent") == "experimental · 7%"
    assert not d.find_elements(By.ID, "reliability-Wearing_Hat")
    assert d.find_element(By.ID, "attr-Wearing_Hat").get_attribute("aria-describedby") is None

    photo = tmp_path / "astronaut.png"
    photo.write_bytes(png_bytes(astronaut))
    _upload(d, photo)
    _wait(d, lambda d: d.find_element(By.ID, "workspace").is_displayed(), 60, "the photo to be analysed")
    compare, before = d.find_element(By.ID, "compare"), d.find_element(By.ID, "before-img")
    _wait(d, lambda d: before.get_attribute("style"), 10, "the view to be laid out")

    # Face view: a large square, zoomed in, the selected face in the middle.
    box = _rect(d, compare)
    assert box["w"] >= 500 and abs(box["w"] - box["h"]) <= 2, box  # ~185 px per image before this view
    shown = _rect(d, before)
    assert shown["w"] > 1.5 * box["w"], "the face view is not zoomed in"
    face = d.execute_script("return state.faces.find((f) => f.index === state.face).box")
    natural = d.execute_script("return arguments[0].naturalWidth", before)
    scale = shown["w"] / natural
    centre = (shown["x"] + (face[0] + face[2] / 2) * scale, shown["y"] + (face[1] + face[3] / 2) * scale)
    assert abs(centre[0] - (box["x"] + box["w"] / 2)) < 0.1 * box["w"], "the face is not centred"
    assert abs(centre[1] - (box["y"] + box["h"] / 2)) < 0.1 * box["h"], "the face is not centred"
    assert not d.find_element(By.CSS_SELECTOR, ".face-box").is_displayed()  # boxes only over the whole photo

    # An edit, then the divider: by keyboard to either end, then by pressing a quarter of the way across.
    slider = d.find_element(By.ID, "attr-Eyeglasses")
    d.find_element(By.CSS_SELECTOR, "label[for=attr-Eyeglasses]").click()
    slider.send_keys(Keys.END)
    _wait(d, lambda d: d.find_element(By.ID, "after-img").get_attribute("src")
          != before.get_attribute("src"), 60, "the edited image")
    after_pane, divider = d.find_element(By.ID, "after-pane"), d.find_element(By.ID, "divider")

    def cut() -> float:
        return float(d.execute_script("return getComputedStyle(arguments[0]).getPropertyValue('--cut')",
                                      compare).strip().rstrip("%"))

    assert cut() == 50 and "inset" in d.execute_script("return getComputedStyle(arguments[0]).clipPath", after_pane)
    divider.send_keys(Keys.HOME)
    assert cut() == 0 and divider.get_attribute("aria-valuetext") == "0% before, 100% after"
    divider.send_keys(Keys.END)
    assert cut() == 100
    ActionChains(d).move_to_element_with_offset(divider, -int(box["w"] / 4), 0).click().perform()
    assert 15 <= cut() <= 35, cut()
    line = _rect(d, d.find_element(By.ID, "divider-line"))
    assert abs(line["x"] - (box["x"] + box["w"] * cut() / 100)) <= 3, "the divider line is not at the cut"

    # Hold to see the original: the result is hidden while the button is held.
    hold = d.find_element(By.ID, "hold")
    visibility = "return getComputedStyle(arguments[0]).visibility"
    ActionChains(d).click_and_hold(hold).perform()
    assert "holding" in compare.get_attribute("class") and d.execute_script(visibility, after_pane) == "hidden"
    ActionChains(d).release(hold).perform()
    assert "holding" not in compare.get_attribute("class") and d.execute_script(visibility, after_pane) == "visible"
    d.save_screenshot(str(ARTIFACTS / "web-compare-face.png"))

    # The whole photo, one click away: not zoomed, with the face boxes to pick another face; and back.
    d.find_element(By.ID, "view-photo").click()
    assert d.find_element(By.ID, "view-photo").get_attribute("aria-pressed") == "true"
    box, shown = _rect(d, compare), _rect(d, before)
    assert abs(shown["w"] - box["w"]) <= 2 and abs(shown["x"] - box["x"]) <= 2, (shown, box)
    assert d.find_element(By.CSS_SELECTOR, ".face-box").is_displayed()
    d.save_screenshot(str(ARTIFACTS / "web-compare-photo.png"))
    d.find_element(By.ID, "view-face").click()
    assert _rect(d, before)["w"] > 1.5 * _rect(d, compare)["w"]
    assert _severe(d) == [], "console errors on the page"


def test_browser_picks_another_face_in_the_whole_photo(server, driver, astronaut, tmp_path):
    """Two faces: the whole-photo view shows both boxes; clicking the other one selects it and the face view then
    zooms to it."""
    from selenium.webdriver.common.by import By

    d = driver
    d.get(server)
    _wait(d, lambda d: d.find_elements(By.ID, "attr-Smiling"), 60, "the sliders to be built")
    photo = tmp_path / "two.png"
    photo.write_bytes(png_bytes(np.concatenate([astronaut, astronaut[:, ::-1]], axis=1)))
    _upload(d, photo)
    _wait(d, lambda d: d.find_element(By.ID, "workspace").is_displayed(), 60, "the photo to be analysed")
    assert "2 faces found" in d.find_element(By.ID, "faces-summary").text

    d.find_element(By.ID, "view-photo").click()
    boxes = d.find_elements(By.CSS_SELECTOR, ".face-box")
    assert len(boxes) == 2 and all(b.is_displayed() for b in boxes)
    selected = [b for b in boxes if b.get_attribute("aria-pressed") == "true"]
    other = next(b for b in boxes if b.get_attribute("aria-pressed") == "false")
    assert len(selected) == 1
    other.click()
    assert other.get_attribute("aria-pressed") == "true"
    assert d.execute_script("return state.face") == int(other.get_attribute("data-index"))

    d.find_element(By.ID, "view-face").click()
    compare, before = _rect(d, d.find_element(By.ID, "compare")), _rect(d, d.find_element(By.ID, "before-img"))
    face = d.execute_script("return state.faces.find((f) => f.index === state.face).box")
    scale = before["w"] / 1024
    centre_x = before["x"] + (face[0] + face[2] / 2) * scale
    assert abs(centre_x - (compare["x"] + compare["w"] / 2)) < 0.1 * compare["w"], "not zoomed to the chosen face"
    assert _severe(d) == []
