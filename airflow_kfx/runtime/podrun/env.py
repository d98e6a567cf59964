"""A container's environment, as the kubelet and a container runtime make it.

``envFrom`` and ``env`` (values, secrets, config maps, the downward API's ``fieldRef``
and ``resourceFieldRef``), ``$(VAR)`` expansion, and what a runtime adds: PATH, HOME,
TMPDIR, LANG, HOSTNAME. Never anything of this process's own environment.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import sys
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from airflow_kfx.runtime.podrun.model import (
    CONFIG_ERROR,
    CONFIG_MAP,
    SECRET,
    ClusterObjects,
    Problem,
    all_containers,
    container_named,
    pod_namespace,
)

_VAR_NAME_BAD = re.compile(r"[=\x00]")


def pod_env(
    pod: Mapping[str, Any], container: Mapping[str, Any], cluster: ClusterObjects
) -> tuple[dict[str, str], list[Problem]]:
    """The container's env as the kubelet makes it: ``envFrom`` in order, then ``env`` in
    order (which wins), each value's ``$(VAR)`` references expanded against what came
    before. Nothing else: :func:`container_env` adds what a container runtime adds."""
    env: dict[str, str] = {}
    problems: list[Problem] = []
    several = sum(1 for _ in all_containers(pod)) > 1
    of = f" of container '{container.get('name')}'" if several else ""
    for source in container.get("envFrom") or []:
        kind = SECRET if SECRET.env_from_key in source else CONFIG_MAP
        ref = source.get(kind.env_from_key)
        if ref is None:
            continue
        name = ref.get("name", "")
        values = kind.text(cluster, name)
        if values is None:
            if not ref.get("optional"):
                problems.append(Problem(f"the {kind.label} '{name}' (all keys as env vars{of})", CONFIG_ERROR,
                                        f'{kind.kind} "{name}" not found'))
            continue
        prefix = source.get("prefix") or ""
        for key, value in values.items():
            if not _VAR_NAME_BAD.search(prefix + key):  # the kubelet skips invalid names
                env[prefix + key] = value
    for variable in container.get("env") or []:
        name = variable.get("name", "")
        source = variable.get("valueFrom")
        if source is None:
            env[name] = expand(str(variable.get("value") or ""), env)
            continue
        value, problem = _value_from(pod, container, source, name, cluster, of)
        if problem is not None:
            problems.append(problem)
        elif value is not None:
            env[name] = value
    return env, problems


def _value_from(
    pod: Mapping[str, Any], container: Mapping[str, Any], source: Mapping[str, Any], variable: str,
    cluster: ClusterObjects, of: str,
) -> tuple[str | None, Problem | None]:
    if "fieldRef" in source:
        return field_value(pod, source["fieldRef"].get("fieldPath", "")), None
    if "resourceFieldRef" in source:
        return resource_value(pod, container, source["resourceFieldRef"]), None
    for kind in (SECRET, CONFIG_MAP):
        if kind.env_key not in source:
            continue
        ref = source[kind.env_key]
        name, item = ref.get("name", ""), ref.get("key", "")
        values = kind.text(cluster, name)
        if values is None:
            if ref.get("optional"):
                return None, None
            return None, Problem(f"the {kind.label} '{name}' (key '{item}' as env var {variable}{of})",
                                 CONFIG_ERROR, f'{kind.kind} "{name}" not found')
        if item not in values:
            if ref.get("optional"):
                return None, None
            return None, Problem(
                f"the key '{item}' of the {kind.label} '{name}' (as env var {variable}{of})",
                CONFIG_ERROR, f"couldn't find key {item} in {kind.title} {pod_namespace(pod)}/{name}",
            )
        return values[item], None
    return None, None


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion (env values, command, args): a defined variable is
    replaced, ``$$`` is a literal ``$``, anything else is left as written."""
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char != "$" or i + 1 >= len(text):
            out.append(char)
            i += 1
            continue
        following = text[i + 1]
        if following == "$":
            out.append("$")
            i += 2
        elif following == "(":
            end = text.find(")", i + 2)
            if end < 0:
                out.append("$(")
                i += 2
            else:
                name = text[i + 2:end]
                out.append(env[name] if name in env else f"$({name})")
                i = end + 1
        else:
            out.append("$" + following)
            i += 2
    return "".join(out)


def container_env(pod: Mapping[str, Any], scratch: str, env: Mapping[str, str]) -> dict[str, str]:
    """The pod's ``env`` for a container plus what a container runtime adds (its HOME and
    TMPDIR are folders of the pod's ``scratch``), and nothing of this process's."""
    home = os.path.join(scratch, "home")
    tmp = os.path.join(scratch, "tmp")
    os.makedirs(home, exist_ok=True)
    os.makedirs(tmp, exist_ok=True)
    runtime_env = {
        "PATH": default_path(),
        "HOSTNAME": (pod.get("metadata") or {}).get("name") or "pod",
        "HOME": home,
        "TMPDIR": tmp,
        "LANG": "C.UTF-8",
    }
    runtime_env.update(env)
    return runtime_env


def default_path() -> str:
    """PATH of a container that sets none: this interpreter's folder first (so ``python``
    and ``python3`` are the one running here, with its packages), then this machine's."""
    machine = os.environ.get("PATH") or os.defpath
    return os.pathsep.join([os.path.dirname(sys.executable), machine])


# ---------------------------------------------------------------------------
# The downward API (env values here, files of downwardAPI volumes in volumes.py)
# ---------------------------------------------------------------------------


def field_value(pod: Mapping[str, Any], path: str) -> str:
    """The downward API (``fieldRef``) as Kubernetes fills it, for the pod that runs here;
    a label or annotation the pod does not have is ``""``, as in Kubernetes."""
    metadata = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    keyed = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if keyed:
        return str((metadata.get(keyed.group(1)) or {}).get(keyed.group(2), ""))
    simple = {
        "metadata.name": metadata.get("name") or "",
        "metadata.namespace": metadata.get("namespace") or "",
        "metadata.uid": metadata.get("uid") or "",
        "spec.nodeName": spec.get("nodeName") or os.uname().nodename,
        "spec.serviceAccountName": spec.get("serviceAccountName") or "default",
        "status.hostIP": "127.0.0.1",
        "status.podIP": "127.0.0.1",
    }
    return simple.get(path, "")


def resource_value(pod: Mapping[str, Any], container: Mapping[str, Any], ref: Mapping[str, Any]) -> str:
    """``resourceFieldRef``: the container's limit or request; an unset limit is what this
    machine has (a node's allocatable), an unset request the limit or 0, as in Kubernetes.
    ``container`` is the one asking, which the reference may override by name."""
    target = container
    if ref.get("containerName"):
        target = container_named(pod, ref["containerName"]) or container
    kind, _, resource = str(ref.get("resource", "")).partition(".")
    resources = target.get("resources") or {}
    value = _quantity((resources.get(kind) or {}).get(resource, "")) if kind in ("limits", "requests") else None
    if value is None and kind == "requests":
        value = _quantity((resources.get("limits") or {}).get(resource, "")) or Decimal(0)
    if value is None:
        value = Decimal(_machine_capacity(resource))
    divisor = _quantity(ref.get("divisor") or "1") or Decimal(1)
    return str(math.ceil(value / divisor))


_QUANTITY = re.compile(r"([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?")
_FACTORS = {
    None: 1, "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "k": 10**3, "M": 10**6,
    "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
    "Pi": 2**50, "Ei": 2**60,
}


def _quantity(text: Any) -> Decimal | None:
    """A Kubernetes quantity ("500m", "2Gi", "1e3") as a number; None if it is not one."""
    match = _QUANTITY.fullmatch(str(text).strip())
    if not match:
        return None
    try:
        return Decimal(match.group(1)) * _FACTORS[match.group(2)]
    except InvalidOperation:
        return None


def _machine_capacity(resource: str) -> int:
    if resource == "cpu":
        return os.cpu_count() or 1
    if resource == "memory":
        try:
            with open("/proc/meminfo", encoding="ascii") as handle:
                for line in handle:
                    if line.startswith("MemTotal:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0
    if resource == "ephemeral-storage":
        return shutil.disk_usage("/").total
    return 0
