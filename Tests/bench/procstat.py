"""What /proc says about a process: CPU time (utime + stime), resident memory, open fds."""
import os

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """utime + stime of `pid` in seconds (fields 14 and 15 of /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as handle:
        text = handle.read()
    fields = text[text.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_kib(pid):
    """VmRSS of `pid` in KiB."""
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def memory_kib(pid):
    """{"pss_kib", "anon_kib", "shared_clean_kib"} from /proc/PID/smaps_rollup: RSS counts every
    resident page of the shared libraries; PSS divides shared pages among their users."""
    wanted = {"Pss:": "pss_kib", "Pss_Anon:": "anon_kib", "Shared_Clean:": "shared_clean_kib"}
    found = {}
    with open(f"/proc/{pid}/smaps_rollup") as handle:
        for line in handle:
            parts = line.split()
            if parts and parts[0] in wanted:
                found[wanted[parts[0]]] = int(parts[1])
    return found


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


class CPUMeter:
    """CPU seconds used by each named pid between `start()` and `stop()`."""

    def __init__(self, pids):
        self.pids = dict(pids)
        self.before = {}
        self.used = {}

    def start(self):
        self.before = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        return self

    def stop(self):
        self.used = {name: cpu_seconds(pid) - self.before[name] for name, pid in self.pids.items()}
        return self.used


def snapshot(pids):
    """{name: {"rss_kib", "fds"}} for each named pid."""
    return {name: {"rss_kib": rss_kib(pid), "fds": fd_count(pid), **memory_kib(pid)} for name, pid in pids.items()}
