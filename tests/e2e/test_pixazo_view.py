"""
The Pixazo view in a real Airflow UI, in headless Chromium, and who may see it.

1. The "Pixazo" tab of the daily pipeline's mapped task instances (generate, wait, store): the
   thumbnails load, and beside them the prompt, model, size, quality, format, n, request id, status
   and timeline; on the store task the stored files with sizes and SHA-256 equal to the sidecar's.
2. The "Pixazo gallery" tab of the run: every image of the four mapped prompts, captioned, linked to
   its task instance (a click moves the UI there).
3. Fifty mapped prompts (``pixazo_ui_fifty``): the gallery loads all fifty thumbnails in under a
   second from a warm api-server; the hostile prompt is shown as text and never runs.
4. Stored copies: the transfer's images are served by the plugin's stored-copy route and preferred
   to Pixazo's CDN URL; when the stored copy is gone the CDN URL stands in; when neither loads, a
   placeholder with the stored URI.
5. Access control, against a second api-server on the same database whose auth is real (users with
   passwords, one DAG hidden from one user): no token, an expired token and a forged token get
   nothing; a user Airflow refuses a DAG gets nothing for that DAG.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.e2e.conftest import AIRFLOW, CHROMIUM, ROOT, AirflowStack, _free_port, _Processes, _wait_until_healthy

if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is absent: run scripts/install-browser.sh", allow_module_level=True)

import httpx
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from tests.e2e.dags.pixazo_ui_fifty import HOSTILE_PROMPT
from tests.e2e.dags.pixazo_ui_fifty import PROMPTS as FIFTY_PROMPTS
from tests.e2e.pixazo_auth import HIDDEN_DAG, OUTSIDER

pytestmark = pytest.mark.e2e

DAILY = "pixazo_daily_content"
FIFTY = "pixazo_ui_fifty"
DAILY_PROMPTS = [
    "A lighthouse on a basalt cliff at dawn, watercolour",
    "A bowl of ramen seen from above, studio lighting",
    "An isometric city block made of paper, soft shadows",
    "A red fox asleep in fresh snow, telephoto photograph",
]
WAIT = 30
#: The issue's bar for fifty mapped prompts from a warm api-server.
GALLERY_BUDGET_S = 1.0


def _wait(driver: Any, timeout: float = WAIT, poll: float = 0.1) -> WebDriverWait:
    return WebDriverWait(driver, timeout, poll_frequency=poll)


def _run_path(dag_id: str, run_id: str) -> str:
    return f"/dags/{dag_id}/runs/{quote(run_id, safe='')}"


def _open_tab(driver: Any, url: str, tab_name: str) -> None:
    """Open a UI page ending in /plugin/<route>, check the tab is offered, and enter its iframe."""
    driver.switch_to.default_content()
    driver.get(url)
    _wait(driver).until(EC.presence_of_element_located((By.XPATH, f"//a[normalize-space()='{tab_name}']")))
    frame = _wait(driver).until(EC.presence_of_element_located((By.CSS_SELECTOR, f"iframe[title='{tab_name}']")))
    driver.switch_to.frame(frame)
    _wait(driver).until(lambda d: d.find_element(By.ID, "pixazo").get_attribute("aria-busy") == "false")


def _stored_src(run_id: str, task_id: str, map_index: int) -> str:
    return f"/pixazo/api{_run_path(DAILY, run_id)}/tasks/{task_id}/stored/0?map_index={map_index}"


def _sources(driver: Any) -> list[str]:
    return driver.execute_script("return [...document.querySelectorAll('.thumb img')].map(i => i.currentSrc)")


def _loaded_widths(driver: Any) -> list[int]:
    return driver.execute_script(
        "return [...document.querySelectorAll('.thumb img')].map(i => i.complete ? i.naturalWidth : 0)"
    )


def _wait_images(driver: Any, count: int, poll: float = 0.1) -> list[int]:
    _wait(driver, poll=poll).until(lambda d: len(w := _loaded_widths(d)) == count and all(w))
    return _loaded_widths(driver)


def _facts(section: Any) -> dict[str, str]:
    rows = section.find_elements(By.CSS_SELECTOR, "table.facts tr")
    return {
        row.find_element(By.TAG_NAME, "th").text: row.find_element(By.TAG_NAME, "td").get_attribute("textContent")
        for row in rows
    }


def _xcom(stack: AirflowStack, dag_id: str, run_id: str, task_id: str, key: str, map_index: int) -> Any:
    with stack.api() as api:
        url = f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}/xcomEntries/{key}"
        return api.get(url, params={"map_index": map_index, "deserialize": True}).raise_for_status().json()["value"]


# -- the task-instance tab ----------------------------------------------------------------------


def test_task_tab_on_generate_wait_and_store(browser: Any, airflow_stack: AirflowStack, screenshots: Path) -> None:
    driver, stack = browser, airflow_stack
    run = stack.daily_run_id
    assert run is not None
    assert stack.stored is not None
    base = f"{stack.ui_url}{_run_path(DAILY, run)}/tasks"
    request_id = _xcom(stack, DAILY, run, "one_image.generate", "return_value", 1)
    result = _xcom(stack, DAILY, run, "one_image.wait", "pixazo_result", 1)
    assert result["request_id"] == request_id

    for task in ("generate", "wait", "store"):
        _open_tab(driver, f"{base}/one_image.{task}/mapped/1/plugin/pixazo-task", "Pixazo")
        widths = _wait_images(driver, 1)
        assert widths == [1024], f"{task}: {widths}"
        section = driver.find_element(By.CSS_SELECTOR, "section.request")
        assert section.get_attribute("data-request-id") == request_id
        facts = _facts(section)
        assert facts["Prompt"] == DAILY_PROMPTS[1]
        assert facts["Model"] == "gpt-image-2"
        assert facts["Size"] == "1024x1024"
        assert facts["Quality"] == "low"
        assert facts["Format"] == "png"
        assert facts["Images (n)"] == "1"
        assert facts["Request id"] == request_id
        assert facts["Status"] == "COMPLETED"
        assert facts["Submitted"] == result["created_at"]
        assert facts["Completed"] == result["completed_at"]
        assert facts["Duration"].endswith(" s")
        assert "Pixazo error" not in facts
        # The image shown is the stored copy, streamed by the plugin, not Pixazo's CDN URL.
        assert _sources(driver) == [f"{stack.ui_url}{_stored_src(run, 'one_image.store', 1)}"], task
        title = driver.find_element(By.CSS_SELECTOR, ".thumb img").get_attribute("title")
        assert title == f"Stored copy: file://{stack.stored}/{request_id}/0.png", task

    # The store task: the stored files with the sizes and checksums its provenance sidecar records.
    sidecar = json.loads((stack.stored / request_id / "provenance.json").read_text())
    rows = driver.find_elements(By.CSS_SELECTOR, "table.stored tbody tr")
    shown = [[cell.text for cell in row.find_elements(By.TAG_NAME, "td")] for row in rows]
    assert [[r[0], r[1], r[3]] for r in shown] == [[str(f["index"]), f["uri"], f["sha256"]] for f in sidecar["files"]]
    assert all(r[2].endswith(("B", "KiB", "MiB")) for r in shown)
    assert [r[4] for r in shown] == ["Open"]
    href = driver.find_element(By.CSS_SELECTOR, "table.stored a.open-stored").get_attribute("href")
    assert href == f"{stack.ui_url}{_stored_src(run, 'one_image.store', 1)}"
    provenance = driver.find_element(By.XPATH, "//p[starts-with(normalize-space(), 'Provenance:')]/code").text
    assert provenance == f"file://{stack.stored}/{request_id}/provenance.json"

    # Click for full size: a lightbox with the full image.
    driver.find_element(By.CSS_SELECTOR, ".thumb img").click()
    full = _wait(driver).until(EC.visibility_of_element_located((By.CSS_SELECTOR, ".lightbox img")))
    _wait(driver).until(lambda d: d.execute_script("return arguments[0].naturalWidth", full) == 1024)
    driver.find_element(By.CSS_SELECTOR, ".lightbox").click()
    _wait(driver).until(EC.invisibility_of_element_located((By.CSS_SELECTOR, ".lightbox")))

    driver.switch_to.default_content()
    driver.save_screenshot(str(screenshots / "task-gallery.png"))


def test_task_tab_on_a_task_without_pixazo_data(browser: Any, airflow_stack: AirflowStack) -> None:
    """The one-task DAG's task shows its own images; a run without the task answers plainly."""
    driver, stack = browser, airflow_stack
    url = f"{stack.ui_url}{_run_path('pixazo_one_task', stack.run_id)}/tasks/generate_and_wait/plugin/pixazo-task"
    _open_tab(driver, url, "Pixazo")
    assert _wait_images(driver, 2) == [1536, 1536]
    facts = _facts(driver.find_element(By.CSS_SELECTOR, "section.request"))
    assert facts["Prompt"] == "A paper boat on a transparent background, product shot"
    assert facts["Images (n)"] == "2"
    driver.switch_to.default_content()


# -- the run gallery ----------------------------------------------------------------------------


def test_run_gallery_of_the_daily_pipeline(browser: Any, airflow_stack: AirflowStack, screenshots: Path) -> None:
    driver, stack = browser, airflow_stack
    assert stack.daily_run_id is not None
    run_path = _run_path(DAILY, stack.daily_run_id)
    _open_tab(driver, f"{stack.ui_url}{run_path}/plugin/pixazo-gallery", "Pixazo gallery")
    assert _wait_images(driver, 4) == [1024] * 4
    assert _sources(driver) == [
        f"{stack.ui_url}{_stored_src(stack.daily_run_id, 'one_image.store', i)}" for i in range(4)
    ]
    captions = driver.find_elements(By.CSS_SELECTOR, ".gallery figcaption")
    assert [c.find_element(By.CLASS_NAME, "prompt").text for c in captions] == DAILY_PROMPTS
    links = [c.find_element(By.CLASS_NAME, "task-link") for c in captions]
    assert [link.text for link in links] == [f"one_image.generate [{i}]" for i in range(4)]
    assert links[2].get_attribute("href") == f"{stack.ui_url}{run_path}/tasks/one_image.generate/mapped/2"
    driver.switch_to.default_content()
    driver.save_screenshot(str(screenshots / "run-gallery.png"))

    # A caption's link moves the UI (not the frame) to that task instance.
    driver.switch_to.frame(driver.find_element(By.CSS_SELECTOR, "iframe[title='Pixazo gallery']"))
    driver.find_elements(By.CSS_SELECTOR, ".gallery .task-link")[2].click()
    driver.switch_to.default_content()
    _wait(driver).until(EC.url_to_be(f"{stack.ui_url}{run_path}/tasks/one_image.generate/mapped/2"))


def test_fifty_mapped_prompts_load_under_a_second(browser: Any, airflow_stack: AirflowStack) -> None:
    driver, stack = browser, airflow_stack
    assert stack.fifty_run_id is not None
    page = f"{stack.ui_url}/pixazo/ui{_run_path(FIFTY, stack.fifty_run_id)}"
    driver.switch_to.default_content()
    driver.get(page)  # warm-up: the api-server's first request builds caches
    _wait_images(driver, 50)

    timings = []
    for _ in range(3):
        started = time.perf_counter()
        driver.get(page)
        _wait_images(driver, 50, poll=0.01)
        timings.append(time.perf_counter() - started)
    best, worst = min(timings), max(timings)
    sys.stderr.write(f"\n[e2e] gallery of 50 mapped prompts: {', '.join(f'{t:.3f}s' for t in timings)}\n")
    record = os.environ.get("PIXAZO_E2E_TIMINGS")
    if record:
        Path(record).write_text(json.dumps({"gallery_50_seconds": timings}))
    assert worst < GALLERY_BUDGET_S, f"50 thumbnails took {timings} (best {best:.3f}s)"

    prompts = [el.get_attribute("textContent") for el in driver.find_elements(By.CSS_SELECTOR, ".gallery .prompt")]
    assert prompts == FIFTY_PROMPTS
    # The hostile prompt is text: no script ran, no element was made from it.
    assert driver.execute_script("return window.__pixazo_pwned") is None
    assert driver.find_elements(By.CSS_SELECTOR, "img[src='x'], .gallery script") == []
    first = driver.find_element(By.CSS_SELECTOR, ".gallery .prompt")
    assert first.get_attribute("textContent") == HOSTILE_PROMPT
    assert first.find_elements(By.XPATH, "./*") == []


def test_cdn_url_stands_in_for_a_missing_copy_then_a_placeholder(browser: Any, airflow_stack: AirflowStack) -> None:
    """Stored copy unreachable: Pixazo's CDN URL is shown. Both gone (expired CDN object too): a placeholder."""
    driver, stack = browser, airflow_stack
    assert stack.daily_run_id is not None
    page = f"{stack.ui_url}/pixazo/ui{_run_path(DAILY, stack.daily_run_id)}/tasks/one_image.store?map_index=3"
    driver.switch_to.default_content()
    driver.execute_cdp_cmd("Network.enable", {})
    try:
        driver.execute_cdp_cmd("Network.setBlockedURLs", {"urls": ["*/stored/*"]})
        driver.get(page)
        assert _wait_images(driver, 1) == [1024]
        assert "/media/" in _sources(driver)[0]
        assert driver.find_element(By.CSS_SELECTOR, ".thumb img").get_attribute("title") == "Pixazo's URL"

        driver.execute_cdp_cmd("Network.setBlockedURLs", {"urls": ["*/stored/*", "*/media/*"]})
        driver.get(page)
        stored_uri = _wait(driver).until(EC.presence_of_element_located((By.CSS_SELECTOR, "table.stored td.uri"))).text
        placeholder = _wait(driver).until(EC.visibility_of_element_located((By.CSS_SELECTOR, ".thumb .placeholder")))
    finally:
        driver.execute_cdp_cmd("Network.setBlockedURLs", {"urls": []})
    assert "Image no longer available" in placeholder.text
    assert f"Stored at {stored_uri}" in placeholder.text
    assert driver.find_elements(By.CSS_SELECTOR, ".thumb img") == []


# -- access control -------------------------------------------------------------------------------

PASSWORDS = {"reader": "reader-password", OUTSIDER: "outsider-password"}


@pytest.fixture(scope="module")
def secured_url(airflow_stack: AirflowStack) -> Iterator[str]:
    """A second api-server on the same database with real logins and one DAG hidden from ``outsider``."""
    assert airflow_stack.env is not None
    port = _free_port()
    passwords = airflow_stack.home / "secured-passwords.json"
    passwords.write_text(json.dumps(PASSWORDS))
    env = {
        **airflow_stack.env,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), airflow_stack.env.get("PYTHONPATH", "")])),
        "AIRFLOW__CORE__AUTH_MANAGER": "tests.e2e.pixazo_auth.OneDagHiddenAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"reader:viewer,{OUTSIDER}:viewer",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
    }
    procs = _Processes(env, airflow_stack.logs)
    try:
        server = procs.start("api-server-secured", AIRFLOW, "api-server", "--host", "127.0.0.1", "--port", str(port))
        url = f"http://127.0.0.1:{port}"
        _wait_until_healthy(url, server, airflow_stack.logs / "api-server-secured.log")
        yield url
    finally:
        procs.stop_all()


def _login(url: str, username: str) -> str:
    response = httpx.post(f"{url}/auth/token", json={"username": username, "password": PASSWORDS[username]})
    response.raise_for_status()
    return str(response.json()["access_token"])


def _signed(secret: str, username: str, valid_for: float) -> str:
    from airflow.api_fastapi.auth.tokens import JWTGenerator

    generator = JWTGenerator(secret_key=secret, valid_for=valid_for, audience="apache-airflow", issuer=None)
    return generator.generate(extras={"sub": username, "role": "viewer"})


def _pixazo_paths(stack: AirflowStack) -> list[str]:
    assert stack.daily_run_id is not None
    run = _run_path(DAILY, stack.daily_run_id)
    return [
        f"/pixazo/api{run}",
        f"/pixazo/api{run}/tasks/one_image.generate?map_index=0",
        f"/pixazo/ui{run}",
        f"/pixazo/ui{run}/tasks/one_image.store?map_index=0",
        f"/pixazo/api{run}/tasks/one_image.store/stored/0?map_index=0",
    ]


def _assert_nothing(response: httpx.Response, expected: int) -> None:
    assert response.status_code == expected, response.text
    for prompt in DAILY_PROMPTS:
        assert prompt not in response.text
    assert "/media/" not in response.text


def test_a_signed_in_user_sees_the_run(airflow_stack: AirflowStack, secured_url: str) -> None:
    token = _login(secured_url, "reader")
    for path in _pixazo_paths(airflow_stack):
        response = httpx.get(f"{secured_url}{path}", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, (path, response.text[:200])
    # The stored copy is the stored file, byte for byte, read by the api-server from where the transfer wrote it.
    assert airflow_stack.daily_run_id is not None
    stored = _xcom(airflow_stack, DAILY, airflow_stack.daily_run_id, "one_image.store", "pixazo_stored", 0)
    copy = httpx.get(f"{secured_url}{_pixazo_paths(airflow_stack)[-1]}", headers={"Authorization": f"Bearer {token}"})
    assert copy.headers["content-type"] == "image/png"
    assert hashlib.sha256(copy.content).hexdigest() == stored["files"][0]["sha256"]
    # The UI's session cookie works the same way (it is what the iframe sends).
    data = httpx.get(f"{secured_url}{_pixazo_paths(airflow_stack)[0]}", cookies={"_token": token}).json()
    assert sorted(image["prompt"] for image in data["images"]) == sorted(DAILY_PROMPTS)


def test_no_token_gets_nothing(airflow_stack: AirflowStack, secured_url: str) -> None:
    for path in _pixazo_paths(airflow_stack):
        _assert_nothing(httpx.get(f"{secured_url}{path}"), 401)


def test_expired_token_gets_nothing(airflow_stack: AirflowStack, secured_url: str) -> None:
    assert airflow_stack.env is not None
    expired = _signed(airflow_stack.env["AIRFLOW__API_AUTH__JWT_SECRET"], "reader", valid_for=-3600)
    for path in _pixazo_paths(airflow_stack):
        response = httpx.get(f"{secured_url}{path}", headers={"Authorization": f"Bearer {expired}"})
        _assert_nothing(response, 401)
        assert response.json()["detail"] == "Token Expired"
        _assert_nothing(httpx.get(f"{secured_url}{path}", cookies={"_token": expired}), 401)


def test_forged_token_gets_nothing(airflow_stack: AirflowStack, secured_url: str) -> None:
    forged = _signed("not-the-deployment-secret-" + "x" * 40, "reader", valid_for=3600)
    genuine = _login(secured_url, "reader")
    header, payload, _signature = genuine.split(".")
    tampered = f"{header}.{payload}.{'A' * 86}"
    for token in (forged, tampered, "not-a-jwt"):
        for path in _pixazo_paths(airflow_stack):
            _assert_nothing(httpx.get(f"{secured_url}{path}", headers={"Authorization": f"Bearer {token}"}), 403)
            _assert_nothing(httpx.get(f"{secured_url}{path}", cookies={"_token": token}), 403)


def test_a_user_refused_the_dag_gets_nothing(airflow_stack: AirflowStack, secured_url: str) -> None:
    token = _login(secured_url, OUTSIDER)
    headers = {"Authorization": f"Bearer {token}"}
    # Airflow's own API refuses them this DAG and grants them another: the view follows it.
    assert httpx.get(f"{secured_url}/api/v2/dags/{HIDDEN_DAG}", headers=headers).status_code == 403
    for path in _pixazo_paths(airflow_stack):
        _assert_nothing(httpx.get(f"{secured_url}{path}", headers=headers), 403)
    assert airflow_stack.fifty_run_id is not None
    other = httpx.get(f"{secured_url}/pixazo/api{_run_path(FIFTY, airflow_stack.fifty_run_id)}", headers=headers)
    assert other.status_code == 200
    assert len(other.json()["images"]) == 50
