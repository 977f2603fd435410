"""Drives Cairn's dashboard in headless Chromium (Debian's, through Playwright's library) for
the browser test in ../api/dashboard.rs, which prepares the data and passes it as JSON on
argv[1]: log in with a key, check the overview's numbers against the API's, open a trace's
waterfall, give feedback, retry a dead job, approve a pending run, check the failed ingestion
and the evaluation are listed; then log in as another tenant and see none of it. A screenshot
of every page goes to the folder named in the input. Exits non-zero on the first failure."""

import json
import os
import sys
import time

from playwright.sync_api import expect, sync_playwright

cfg = json.loads(sys.argv[1])
BASE, SHOTS = cfg["base"], cfg["shots"]
os.makedirs(SHOTS, exist_ok=True)


def api(page, key, path):
    r = page.request.get(BASE + path, headers={"authorization": "Bearer " + key})
    assert r.ok, f"{path}: {r.status} {r.text()}"
    return r.json()


def shot(page, name):
    page.screenshot(path=os.path.join(SHOTS, name + ".png"), full_page=True)


def login(page, key):
    page.goto(BASE + "/ui/#/login")
    page.fill("[data-test=key]", key)
    page.click("[data-test=login]")
    expect(page.locator("[data-test=calls]")).to_be_visible()


def until(check, what, seconds=30):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError("timed out waiting for " + what)


def tenant_a(page):
    key = cfg["key_a"]
    # A bad key is refused on the login page.
    page.goto(BASE + "/ui/")
    page.fill("[data-test=key]", "sk-cairn-not-a-key")
    page.click("[data-test=login]")
    expect(page.locator("[data-test=error]")).to_be_visible()
    shot(page, "login")

    login(page, key)
    expect(page.locator("[data-test=who]")).to_have_text(cfg["tenant_a"] + " · admin")
    now = int(time.time() * 1000)
    stats = api(page, key, f"/v1/traces/stats?from_ms={now - 24 * 3600 * 1000}&to_ms={now + 60000}&bucket=hour")
    t = stats["totals"]
    expect(page.locator("[data-test=calls]")).to_have_text(f"{t['calls']:,}")
    expect(page.locator("[data-test=errors]")).to_have_text(f"{t['errors']:,}")
    assert t["calls"] >= 3, stats
    expect(page.locator("[data-test=model-row]")).to_have_count(len(stats["by_model"]))
    expect(page.locator("[data-test=key-row]")).to_have_count(len(stats["by_key"]))
    cost = page.inner_text("[data-test=cost]")
    assert cost.startswith("$") and abs(float(cost[1:]) - t["cost_usd"]) < 0.01, (cost, t)
    shot(page, "overview")

    # Traces: the list, then the chat's waterfall with its spans; a span's details; feedback.
    page.click("[data-test=nav-traces]")
    row = page.locator(f"[data-test=trace-row][data-trace='{cfg['trace']}']")
    expect(row).to_be_visible()
    shot(page, "traces")
    row.locator("a").click()
    detail = api(page, key, "/v1/traces/" + cfg["trace"])
    expect(page.locator("[data-test=span-row]")).to_have_count(detail["trace"]["span_count"])
    page.locator("[data-test=span-row]", has_text="chat chain").click()
    expect(page.locator("[data-test=span-details]")).to_contain_text("gen_ai.request.model")
    expect(page.locator("[data-test=span-details]")).to_contain_text("Prompt")
    page.fill("[data-test=feedback-comment]", "clear answer")
    page.click("[data-test=thumbs-up]")
    expect(page.locator("[data-test=feedback-row]")).to_have_count(1)
    expect(page.locator("[data-test=feedback-row]")).to_contain_text("clear answer")
    shot(page, "trace")

    # Usage and budgets: the key that made the calls, with its budget.
    page.click("[data-test=nav-usage]")
    expect(page.locator(f"[data-test=usage-row][data-key='{cfg['key_a_id']}']")).to_contain_text("$")
    shot(page, "usage")

    # A dead job, retried from the page; the API sees it leave the dead letters.
    page.click("[data-test=nav-jobs]")
    job = page.locator(f"[data-test=job-row][data-job='{cfg['dead_job']}']")
    expect(job).to_be_visible()
    shot(page, "jobs")
    job.locator("[data-test=retry]").click()
    expect(job).to_have_count(0)
    until(lambda: api(page, key, "/v1/jobs/" + cfg["dead_job"])["state"] != "dead", "the job to leave 'dead'")

    # Collections: the failed ingestion is flagged and listed with its error.
    page.click("[data-test=nav-knowledge]")
    page.locator("[data-test=collection-row] a").first.click()
    expect(page.locator("[data-test=failed-note]")).to_be_visible()
    page.click("[data-test=failed-note] a")
    expect(page.locator("[data-test=document-row][data-state=failed]")).to_have_count(1)
    shot(page, "knowledge")

    # A run waiting for approval, approved from the page; the run moves on.
    page.click("[data-test=nav-runs]")
    run = page.locator(f"[data-test=run][data-run='{cfg['run']}']")
    expect(run.locator("[data-test=pending]")).to_contain_text("refund")
    shot(page, "runs")
    run.locator("[data-test=approve]").click()
    expect(run).to_have_count(0)
    until(lambda: api(page, key, "/v1/runs/" + cfg["run"])["state"] == "succeeded", "the run to finish")

    page.click("[data-test=nav-evals]")
    expect(page.locator("[data-test=eval-row]")).to_have_count(1)
    shot(page, "evals")
    page.click("[data-test=logout]")
    expect(page.locator("[data-test=key]")).to_be_visible()


def tenant_b(page):
    login(page, cfg["key_b"])
    expect(page.locator("[data-test=calls]")).to_have_text("0")
    expect(page.locator("[data-test=model-row]")).to_have_count(0)
    page.click("[data-test=nav-traces]")
    expect(page.locator("h1")).to_have_text("Traces")
    # Its own page loads are traced (every request is); none of the first tenant's are listed.
    expect(page.locator(f"[data-test=trace-row][data-trace='{cfg['trace']}']")).to_have_count(0)
    expect(page.locator("[data-test=trace-row]", has_text="POST /v1/chat/completions")).to_have_count(0)
    page.goto(BASE + "/ui/#/trace/" + cfg["trace"])
    expect(page.locator("[data-test=error]")).to_be_visible()
    shot(page, "other-tenant-trace")
    for nav, row in [("jobs", "job-row"), ("knowledge", "collection-row"), ("evals", "eval-row")]:
        page.click(f"[data-test=nav-{nav}]")
        expect(page.locator("h1")).to_be_visible()
        expect(page.locator(f"[data-test={row}]")).to_have_count(0)
    page.goto(BASE + "/ui/#/runs?state=all")
    expect(page.locator("[data-test=no-runs]")).to_be_visible()
    shot(page, "other-tenant-runs")


with sync_playwright() as p:
    browser = p.chromium.launch(executable_path=cfg["chromium"], args=["--no-sandbox"])
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    page = ctx.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    expect.set_options(timeout=15000)
    tenant_a(page)
    tenant_b(page)
    browser.close()
    # The refused key (401) and another tenant's trace (404) log the browser's own console
    # errors for those responses; nothing else may.
    expected = ("status of 401", "status of 404")
    unexpected = [e for e in errors if not any(x in e for x in expected)]
    assert not unexpected, unexpected
print("dashboard: every check passed")
