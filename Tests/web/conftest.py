"""On a failure, keep what the browsers showed: a screenshot of each and their console logs."""
import os

import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        env = item.funcargs.get("env")
        if not env:
            return
        _, alice, bob = env
        folder = os.environ.get("VESTNIK_SCREENSHOTS", "artifacts/screenshots")
        os.makedirs(folder, exist_ok=True)
        for name, driver in (("alice", alice), ("bob", bob)):
            try:
                driver.save_screenshot(os.path.join(folder, f"FAILED-{item.name}-{name}.png"))
                for entry in driver.get_log("browser"):
                    print(f"[{name} console] {entry['level']} {entry['message']}")
            except Exception as error:  # the browser itself may be gone
                print(f"[{name}] no diagnostics: {error}")
