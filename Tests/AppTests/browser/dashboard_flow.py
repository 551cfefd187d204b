"""Drives the wahost dashboard in headless Chromium (Debian chromium + chromium-driver, PyPI selenium).

Run by Tests/AppTests/DashboardBrowserTests.swift against a real `wahost serve` and the simulator; every
argument comes from the environment it sets. Exits non-zero with a message on the first failed check.
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import pyotp
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

BASE = os.environ["WAHOST_BASE_URL"]
TENANT = os.environ["WAHOST_TENANT"]
TOKEN = os.environ["WAHOST_TOKEN"]
TOTP = pyotp.TOTP(os.environ["WAHOST_OTP_SECRET"])
OPERATOR_TOKEN = os.environ["WAHOST_OPERATOR_TOKEN"]
CONTROL = os.environ["WAHOST_SIM_CONTROL"]
SHOTS = os.environ.get("WAHOST_SCREENSHOT_DIR")
FIXTURE_SUBJECTS = json.loads(os.environ["WAHOST_FIXTURE_SUBJECTS"])
MFA_PEER = os.environ["WAHOST_MFA_PEER"]
used_steps = set()


def notice_says(driver, words):
    """Whether the page's notice says `words`; false while the page is being replaced (the old notice goes stale)."""
    try:
        return any(words in element.text for element in driver.find_elements(By.ID, "notice"))
    except StaleElementReferenceException:
        return False


def check(condition, message):
    if not condition:
        raise SystemExit("dashboard check failed: " + message)


def fresh_otp():
    """A code for a TOTP step not used before (each code is single-use), waiting for time to move on if needed."""
    while True:
        now = time.time()
        step = int(now // 30)
        for candidate in (step, step + 1):
            if all(candidate > used for used in used_steps):
                used_steps.add(candidate)
                return TOTP.at(candidate * 30)
        time.sleep(1)


def http(method, url, headers=None, body=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}, **({"content-type": "application/json"} if data else {})))
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def shot(driver, name):
    if SHOTS:
        os.makedirs(SHOTS, exist_ok=True)
        driver.save_screenshot(os.path.join(SHOTS, name + ".png"))


def main():
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1000,1300"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    wait = WebDriverWait(driver, 25)
    try:
        run(driver, wait)
    finally:
        driver.quit()


def sign_in(driver, otp):
    driver.get(BASE + "/dashboard/")
    form = driver.find_element(By.ID, "tenant-sign-in")
    form.find_element(By.NAME, "tenant").send_keys(TENANT)
    form.find_element(By.NAME, "token").send_keys(TOKEN)
    form.find_element(By.NAME, "otp").send_keys(otp)
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()


def run(driver, wait):
    # A wrong OTP shows an error, not a blank page.
    sign_in(driver, "000000")
    WebDriverWait(driver, 25).until(lambda d: d.find_elements(By.ID, "error"))
    error = driver.find_element(By.ID, "error").text
    check("one-time code" in error, "wrong OTP at sign-in should explain itself, got: " + error)
    shot(driver, "dashboard-sign-in-error")

    # "Send me a code on WhatsApp" checks the token first; an unlinked tenant without a notifier has no channel yet.
    driver.get(BASE + "/dashboard/")
    form = driver.find_element(By.ID, "tenant-sign-in")
    form.find_element(By.NAME, "tenant").send_keys(TENANT)
    form.find_element(By.NAME, "token").send_keys(TOKEN)
    driver.find_element(By.ID, "send-sign-in-code").click()
    wait.until(lambda d: d.find_elements(By.ID, "error"))
    error = driver.find_element(By.ID, "error").text
    check("No code sent" in error and "no connected session" in error, "a code without a channel should explain itself, got: " + error)
    check(driver.find_element(By.NAME, "tenant").get_attribute("value") == TENANT, "the tenant stays filled in")

    sign_in(driver, fresh_otp())
    wait.until(lambda d: d.find_elements(By.ID, "status-card"))
    cookie = driver.get_cookie("wahost_session")
    check(cookie is not None and cookie.get("httpOnly") and cookie.get("sameSite") == "Strict", "session cookie must be HttpOnly, SameSite=Strict: %r" % cookie)

    driver.find_element(By.ID, "start-button").click()
    wait.until(lambda d: d.find_elements(By.ID, "qr-box") and d.find_element(By.ID, "qr-box").is_displayed() and d.find_elements(By.CSS_SELECTOR, "#qr svg"))
    wait.until(lambda d: d.find_element(By.ID, "live-state").text == "on")
    shot(driver, "dashboard-tenant-qr")

    # Decode the QR code from the page's pixels with zbarimg and compare with the API's.
    with tempfile.NamedTemporaryFile(suffix=".png") as image:
        image.write(driver.find_element(By.ID, "qr").screenshot_as_png)
        image.flush()
        decoded = subprocess.run(["zbarimg", "--raw", "-q", image.name], capture_output=True, text=True).stdout.strip()
    check(decoded.startswith("https://wa.me/settings/linked_devices#"), "zbarimg read %r from the page's QR" % decoded)
    status, body = http("GET", "%s/tenants/%s/session/qr" % (BASE, TENANT), {"x-admin-token": TOKEN, "x-otp": fresh_otp()})
    check(status == 200 and body["qr"] == decoded, "the API's QR (%s %r) differs from the page's" % (status, body))

    # The simulated phone scans it; the page turns connected without a reload.
    driver.execute_script("window.__notReloaded = true")
    status, body = http("POST", CONTROL + "/scan", body={"qr": decoded})
    check(status == 200, "simulator scan failed: %r" % body)
    wait.until(lambda d: d.find_element(By.ID, "state").get_attribute("data-state") == "connected")
    check(driver.execute_script("return window.__notReloaded === true"), "the page reloaded")
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#groups-table tbody tr")) == len(FIXTURE_SUBJECTS))
    subjects = [row.find_element(By.TAG_NAME, "td").text for row in driver.find_elements(By.CSS_SELECTOR, "#groups-table tbody tr")]
    check(subjects == FIXTURE_SUBJECTS, "groups table shows %r" % subjects)
    check(driver.find_element(By.ID, "pairing-card").is_displayed() is False, "pairing controls hidden once connected")
    shot(driver, "dashboard-tenant-connected")

    # A peer's message appears in the list without a reload; the form sends a text the peer reads.
    account = http("GET", "%s/tenants/%s/session/status" % (BASE, TENANT), {"x-admin-token": TOKEN})[1]["me"].split(":")[0].split("@")[0]
    # The peer starts its Signal session from one of the account's prekeys: wait for the companion's upload, which
    # follows the login (a clean-clone run sent too early: "no session ... and no prekey bundle").
    deadline = time.time() + 30
    while http("GET", CONTROL + "/state")[1].get("preKeys", {}).get(account, 0) == 0:
        check(time.time() < deadline, "the companion uploaded no prekeys within 30 s of connecting")
        time.sleep(0.2)
    status, body = http("POST", CONTROL + "/peers/15557770009/messages", body={"to": account, "text": "hello from a peer"})
    check(status == 200, "simulator peer message failed: %r" % body)
    wait.until(lambda d: "hello from a peer" in d.find_element(By.ID, "messages").text)
    check(driver.execute_script("return window.__notReloaded === true"), "the page reloaded for a message")
    driver.find_element(By.ID, "send-to").send_keys("15557770009")
    driver.find_element(By.ID, "send-text").send_keys("hello from the dashboard")
    driver.find_element(By.ID, "send-button").click()
    wait.until(lambda d: notice_says(d, "Sent to"))
    check("Sent to 15557770009@s.whatsapp.net" in driver.find_element(By.ID, "notice").text, "send notice: %r" % driver.find_element(By.ID, "notice").text)
    status, body = http("GET", CONTROL + "/peers/15557770009/messages")
    check(status == 200 and [m["text"] for m in body["messages"]] == ["hello from the dashboard"], "the peer read %r" % body)
    check("hello from the dashboard" in driver.find_element(By.ID, "messages").text, "the sent text is listed")
    shot(driver, "dashboard-tenant-messages")

    # A forged cross-site POST is refused, and the session stays connected.
    forged = ("<form method='post' action='%s/dashboard/logout'><input name='tenant' value='%s'><input name='confirm' value='yes'></form>"
              "<script>document.forms[0].submit()</script>") % (BASE, TENANT)
    driver.get("data:text/html;charset=utf-8," + forged)
    time.sleep(1.5)
    check("Session cleared" not in driver.page_source and "Logged out" not in driver.page_source, "forged POST was accepted")
    status, body = http("GET", "%s/tenants/%s/session/status" % (BASE, TENANT))
    check(body["connected"] is True, "after the forged POST the session must still be connected: %r" % body)

    # Logout: a wrong OTP is an error on the page; the right one logs out.
    driver.get(BASE + "/dashboard/tenant")
    wait.until(lambda d: d.find_element(By.ID, "state").get_attribute("data-state") == "connected")
    driver.find_element(By.ID, "logout-otp").send_keys("000000")
    driver.find_element(By.ID, "logout-confirm").click()
    driver.find_element(By.CSS_SELECTOR, "#logout-form button.danger").click()
    wait.until(lambda d: d.find_elements(By.ID, "error"))
    check("one-time code" in driver.find_element(By.ID, "error").text, "wrong OTP at logout should show an error")
    # The code comes on WhatsApp this time: the tenant's own session sends it to its mfa_number, a simulator peer.
    driver.find_element(By.ID, "send-logout-code").click()
    wait.until(lambda d: notice_says(d, "sent on WhatsApp"))
    notice = driver.find_element(By.ID, "notice").text
    check("sent on WhatsApp to +1" in notice and MFA_PEER[-4:] in notice and MFA_PEER not in notice, "code notice: %r" % notice)
    texts = [m["text"] or "" for m in http("GET", CONTROL + "/peers/%s/messages" % MFA_PEER)[1]["messages"]]
    found = [re.search(r"wahost: (\d{3}) (\d{3}) is your code for tenant %s\." % TENANT, text) for text in texts]
    codes = [match.group(1) + match.group(2) for match in found if match]
    check(len(codes) == 1, "the peer should have read one code, got %r" % texts)
    shot(driver, "dashboard-logout-whatsapp-code")
    driver.find_element(By.ID, "logout-otp").send_keys(codes[0])
    driver.find_element(By.ID, "logout-confirm").click()
    driver.find_element(By.CSS_SELECTOR, "#logout-form button.danger").click()
    # The page before it had a notice too (the code was sent): wait for the new page's.
    wait.until(lambda d: notice_says(d, "Logged out"))
    status, body = http("GET", "%s/tenants/%s/session/status" % (BASE, TENANT))
    check(body["connected"] is False and body["state"] == "logged_out", "status after logout: %r" % body)

    # The operator sees every tenant.
    driver.find_element(By.CSS_SELECTOR, "header form button").click()
    wait.until(lambda d: d.find_elements(By.ID, "operator-sign-in"))
    form = driver.find_element(By.ID, "operator-sign-in")
    form.find_element(By.NAME, "token").send_keys(OPERATOR_TOKEN)
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(lambda d: d.find_elements(By.ID, "tenants-table"))
    check(TENANT in driver.find_element(By.ID, "tenants-table").text, "operator table lists the tenant")
    shot(driver, "dashboard-operator")
    print("dashboard flow: all checks passed")


if __name__ == "__main__":
    main()
