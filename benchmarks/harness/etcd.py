"""A one-member etcd (Debian's etcd-server) on loopback for the cluster scenario."""

import os
import shutil
import subprocess
import time
import urllib.request

from . import procstat
from .nginx import free_port


class Etcd:
    def __init__(self, work_dir):
        self.dir = work_dir
        self.client_port = free_port()
        self.peer_port = free_port()
        self.process = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.client_port}"

    def start(self, timeout=30.0):
        binary = shutil.which("etcd") or "/usr/bin/etcd"
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        peer = f"http://127.0.0.1:{self.peer_port}"
        cmd = [binary, "--name", "bench", "--data-dir", os.path.join(self.dir, "data"),
               "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
               "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
               "--initial-cluster", f"bench={peer}", "--log-level", "warn"]
        self.process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.dir, "etcd.log"), "w"))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"etcd exited with {self.process.returncode}; see {self.dir}/etcd.log")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=0.5) as r:
                    if b'"true"' in r.read():
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"etcd not healthy after {timeout}s; see {self.dir}/etcd.log")

    def stop(self):
        procstat.terminate(self.process)
