"""Start the Kubernetes API double for a test and talk to it.

    from tests.kube.fixtures import kube_double

    @pytest.fixture(scope="module")
    def kube(tmp_path_factory):
        with kube_double(tmp_path_factory.mktemp("kube")) as double:
            yield double

    def test_x(kube):
        kube.api().list_namespaced_pod("default")
        assert "create pods" in kube.rules()
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SERVER = Path(__file__).with_name("server.py")


@dataclass
class KubeDouble:
    """A running double: its URL, kubeconfig (a file), and clients for it."""

    url: str
    kubeconfig: Path
    volume_root: Path
    process: subprocess.Popen[bytes]
    log_file: Path
    _clients: list[Any] = field(default_factory=list)

    def config_dict(self) -> dict[str, Any]:
        """The kubeconfig as a dict (``AsyncKubernetesHook(config_dict=...)``)."""
        return json.loads(self.kubeconfig.read_text())

    @property
    def token(self) -> str:
        return self.config_dict()["users"][0]["user"]["token"]

    def api(self) -> Any:
        """A ``kubernetes.client.CoreV1Api`` for the double (the global config untouched)."""
        from kubernetes import client, config

        api_client = config.new_client_from_config(config_file=str(self.kubeconfig))
        self._clients.append(api_client)
        return client.CoreV1Api(api_client)

    def airflow_environment(self) -> dict[str, str]:
        """What points Airflow at the double: ``[kfx] runtime = kubernetes`` and a
        ``kubernetes_default`` connection with this kubeconfig. Not ``KUBECONFIG`` too: the
        pod operator hands that file to its trigger as a config dict beside the connection's
        path, and the trigger refuses two configurations (deferrable mode then only
        "succeeds" by the provider's fallback of reading the pod once more)."""
        connection = {"conn_type": "kubernetes", "extra": {"kube_config_path": str(self.kubeconfig), "namespace": "default"}}
        return {
            "AIRFLOW__KFX__RUNTIME": "kubernetes",
            "AIRFLOW_CONN_KUBERNETES_DEFAULT": json.dumps(connection),
        }

    def audit(self, *, clear: bool = False) -> list[dict[str, Any]]:
        """Every request so far: ``verb``, ``resource``, ``subresource``, ``namespace``,
        ``name``, ``code`` and ``rule`` ("create pods", "get pods/log", "watch events")."""
        request = urllib.request.Request(f"{self.url}/kfx-double/audit", method="DELETE" if clear else "GET")
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())["items"]

    def rules(self) -> set[str]:
        """The distinct ``verb resource[/subresource]`` pairs requested: what an RBAC Role needs."""
        return {entry["rule"] for entry in self.audit() if "rule" in entry}

    def output(self) -> str:
        """What the server printed (its start line; every request with ``verbose``)."""
        return self.log_file.read_text(errors="replace")

    def close(self) -> None:
        for api_client in self._clients:
            with contextlib.suppress(Exception):
                api_client.close()
        self._clients.clear()


@contextlib.contextmanager
def kube_double(folder: Path, *, volume_root: Path | None = None, verbose: bool = False,
                timeout: float = 30) -> Iterator[KubeDouble]:
    """Run ``tests/kube/server.py`` as a subprocess until the block ends (then SIGTERM:
    its pods' processes are killed)."""
    folder.mkdir(parents=True, exist_ok=True)
    kubeconfig = folder / "kubeconfig"
    volumes = volume_root or folder / "volumes"
    log_file = folder / "kube-double.log"
    kubeconfig.unlink(missing_ok=True)
    command = [sys.executable, str(SERVER), "--port", "0", "--kubeconfig", str(kubeconfig),
               "--volume-root", str(volumes), *(["--verbose"] if verbose else [])]
    with open(log_file, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   cwd=str(SERVER.parents[2]))
    double: KubeDouble | None = None
    try:
        url = _wait_until_up(process, kubeconfig, log_file, timeout)
        double = KubeDouble(url, kubeconfig, volumes, process, log_file)
        yield double
    finally:
        if double is not None:
            double.close()
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_until_up(process: subprocess.Popen[bytes], kubeconfig: Path, log_file: Path, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the Kubernetes double exited ({process.returncode}):\n{log_file.read_text()}")
        if kubeconfig.exists():
            url = json.loads(kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
            try:
                with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:
                    if response.status == 200:
                        return url
            except (urllib.error.URLError, OSError):
                pass
        time.sleep(0.05)
    raise RuntimeError(f"the Kubernetes double did not answer within {timeout} s:\n{log_file.read_text()}")


if __name__ == "__main__":  # pragma: no cover - manual use: python -m tests.kube.fixtures
    with kube_double(Path(os.environ.get("TMPDIR", "/tmp")) / "kfx-double") as running:
        print(running.url, running.kubeconfig)
