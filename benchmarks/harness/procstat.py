"""What the kernel says about a process: CPU time, resident memory, children, and the machine."""

import os
import platform
import signal
import subprocess
import time

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """utime + stime of a process (all its threads), in seconds, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # Field 3 (state) is fields[0]; utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def status_kib(pid, key):
    """A "kB" line of /proc/PID/status (VmRSS, VmHWM), in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def children(pid):
    """Direct children of a process (nginx workers of a master)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry))
    return found


def tree_cpu_seconds(pid):
    """CPU seconds of a process and its direct children (an nginx master and its workers)."""
    total = 0.0
    for p in [pid] + children(pid):
        try:
            total += cpu_seconds(p)
        except OSError:
            pass
    return total


def du_bytes(path):
    """Disk use of a directory as du reports it (allocated blocks, not apparent size)."""
    out = subprocess.run(["du", "-s", "-B1", path], capture_output=True, text=True, check=True).stdout
    return int(out.split()[0])


def _run(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def load_average():
    return _run(["uptime"])


def machine(data_path):
    """The facts RESULTS.md starts with."""
    mem_kib = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    cpu_model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model,
        "mem_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "df": _run(["df", "-h", data_path]),
        "lsblk": _run(["lsblk", "-d", "-o", "NAME,SIZE,ROTA,TYPE,MODEL"]),
        "mount": _run(["findmnt", "-n", "-o", "SOURCE,FSTYPE,OPTIONS", "--target", data_path]),
    }


def fdatasync_probe(directory, count=200, size=1400):
    """Latency of append + fdatasync on the data disk right now, in ms (p50, p99, max): the floor
    of one durable commit, which moves a lot on a shared virtual disk."""
    path = os.path.join(directory, "fdatasync-probe")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    record = b"r" * size
    times = []
    try:
        for _ in range(count):
            t = time.perf_counter()
            os.write(fd, record)
            os.fdatasync(fd)
            times.append((time.perf_counter() - t) * 1000)
    finally:
        os.close(fd)
        os.unlink(path)
    times.sort()
    return {"p50_ms": times[len(times) // 2], "p99_ms": times[int(len(times) * 0.99) - 1], "max_ms": times[-1]}


def terminate(process, timeout=10.0):
    """SIGTERM, then SIGKILL after `timeout` seconds; nothing when it is not running."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
