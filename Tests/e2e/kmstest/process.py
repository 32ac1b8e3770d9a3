"""The one wrapper of a child process the suites start: stdout and stderr in a log file the test can
read while it runs, the JSON log events, and a stop that signals, waits and kills when the wait
runs out. The plugin in each topology (plugin, splitplugin, oneuid) and the front alone
(kms/test_front_grpc.py) run their processes through it."""
import json
import signal
import subprocess
import time


class Logged:
    """A child process whose stdout and stderr go to a file."""

    def __init__(self, args, log_path, append=True, **kwargs):
        """`kwargs` go to subprocess.Popen (env, pass_fds); `append=False` starts the log afresh."""
        self.args = args
        self.log_path = log_path
        self.log = open(log_path, "ab" if append else "wb")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, **kwargs)

    def text(self):
        return read_log(self.log, self.log_path)

    def events(self, name=None):
        """The JSON log events so far; with `name`, only those of that event."""
        found = json_events(self.text())
        return found if name is None else [e for e in found if e.get("event") == name]

    def wait_event(self, name, timeout=10, count=1):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if sum(1 for e in self.events() if e.get("event") == name) >= count:
                return
            time.sleep(0.05)
        raise AssertionError(f"no {name} event after {timeout}s:\n{self.text()}")

    def stop(self, sig=signal.SIGTERM, timeout=15):
        """Sends `sig` if the process still runs, waits up to `timeout` s (then SIGKILL), closes the
        log; returns the exit code (negative: the signal that ended it)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


def read_log(handle, path):
    """Everything a child wrote to its log file so far."""
    if not handle.closed:
        handle.flush()
    with open(path, "rb") as reader:
        return reader.read().decode(errors="replace")


def json_events(text):
    """The JSON log lines of `text` as dicts (other lines, e.g. a crash message, are skipped)."""
    events = []
    for line in text.splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    return events
