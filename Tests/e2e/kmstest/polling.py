"""Waiting for a condition without a fixed sleep."""
import time


def wait_for(predicate, timeout=10, interval=0.05):
    """True as soon as `predicate()` holds, False once `timeout` seconds passed without it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False
