"""The double's object store: every object under one lock, a global resourceVersion,
the change history watches are served from, and label / field selectors."""

from __future__ import annotations

import copy
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from tests.kube.validation import ApiError, bad_request, valid_label_key, valid_label_value

Obj = dict[str, Any]
Key = tuple[str, str, str]  # (resource, namespace or "", name)

HISTORY = 50_000  # changes kept for watches; an older resourceVersion is 410 Gone, as after compaction


def now() -> str:
    """A timestamp as the API writes metadata times (RFC 3339, seconds)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Change:
    version: int
    type: str  # ADDED, MODIFIED, DELETED
    resource: str
    new: Obj
    old: Obj | None


class Store:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.version = 0
        self.objects: dict[Key, Obj] = {}
        self.history: list[Change] = []
        self.closed = False

    # -- writing (call with the lock held, or let these take it) -----------------
    def create(self, resource: str, obj: Obj) -> Obj:
        with self.lock:
            meta = obj.setdefault("metadata", {})
            key = (resource, meta.get("namespace") or "", meta["name"])
            if key in self.objects:
                raise ApiError(409, "AlreadyExists", f'{resource} "{meta["name"]}" already exists',
                               {"name": meta["name"], "kind": resource})
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = now()
            return self._put(key, resource, obj, "ADDED", None)

    def update(self, resource: str, obj: Obj) -> Obj:
        with self.lock:
            meta = obj["metadata"]
            key = (resource, meta.get("namespace") or "", meta["name"])
            old = self.objects.get(key)
            return self._put(key, resource, obj, "MODIFIED", old)

    def modify(self, resource: str, namespace: str, name: str, change: Callable[[Obj], Any]) -> Obj | None:
        """Apply ``change`` to the stored object (if it still exists) as one new version."""
        with self.lock:
            key = (resource, namespace, name)
            current = self.objects.get(key)
            if current is None:
                return None
            updated = copy.deepcopy(current)
            change(updated)
            if updated == current:
                return current
            return self._put(key, resource, updated, "MODIFIED", current)

    def remove(self, resource: str, namespace: str, name: str) -> Obj | None:
        with self.lock:
            key = (resource, namespace, name)
            old = self.objects.pop(key, None)
            if old is None:
                return None
            self.version += 1
            gone = copy.deepcopy(old)
            gone["metadata"]["resourceVersion"] = str(self.version)
            self._record(Change(self.version, "DELETED", resource, gone, old))
            return gone

    def _put(self, key: Key, resource: str, obj: Obj, kind: str, old: Obj | None) -> Obj:
        self.version += 1
        obj["metadata"]["resourceVersion"] = str(self.version)
        self.objects[key] = obj
        self._record(Change(self.version, kind, resource, obj, old))
        return copy.deepcopy(obj)

    def _record(self, change: Change) -> None:
        self.history.append(change)
        if len(self.history) > HISTORY:
            del self.history[: len(self.history) - HISTORY]
        self.changed.notify_all()

    # -- reading -------------------------------------------------------------------
    def get(self, resource: str, namespace: str, name: str) -> Obj | None:
        with self.lock:
            obj = self.objects.get((resource, namespace, name))
            return copy.deepcopy(obj) if obj is not None else None

    def list(self, resource: str, namespace: str | None, match: Callable[[Obj], bool]) -> tuple[list[Obj], str]:
        with self.lock:
            items = [
                copy.deepcopy(o) for (r, ns, _), o in sorted(self.objects.items())
                if r == resource and (namespace is None or ns == namespace) and match(o)
            ]
            return items, str(self.version)

    def watch(
        self, resource: str, namespace: str | None, match: Callable[[Obj], bool], since: str | None,
        timeout: float, stop: Callable[[], bool],
    ) -> Iterator[tuple[str, Obj]]:
        """(type, object) pairs: the current objects as ADDED when ``since`` is empty or "0"
        (as the API does), then every later change of a matching object until ``timeout``."""
        deadline = time.monotonic() + timeout
        with self.lock:
            if since in (None, "", "0"):
                start = self.version
                initial = [("ADDED", o) for o in self.list(resource, namespace, match)[0]]
            else:
                try:
                    start = int(since)
                except ValueError:
                    raise bad_request(f'invalid resource version "{since}"') from None
                oldest = self.history[0].version if self.history else self.version + 1
                if start < oldest - 1 and start < self.version:
                    raise ApiError(410, "Expired", f"too old resource version: {start} ({oldest - 1})")
                initial = []
        yield from initial
        seen = start
        while not self.closed and not stop():
            with self.lock:
                changes = [c for c in self.history if c.version > seen]
                if not changes:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return
                    self.changed.wait(timeout=min(left, 1.0))
                    continue
            for change in changes:
                seen = change.version
                if change.resource != resource:
                    continue
                ns = change.new["metadata"].get("namespace") or ""
                if namespace is not None and ns != namespace:
                    continue
                event = _filtered(change, match)
                if event is not None:
                    yield event
            if time.monotonic() >= deadline:
                return

    def close(self) -> None:
        with self.lock:
            self.closed = True
            self.changed.notify_all()


def _filtered(change: Change, match: Callable[[Obj], bool]) -> tuple[str, Obj] | None:
    """A change as a filtered watch sees it: entering the selection is ADDED, leaving it DELETED."""
    is_in = match(change.new)
    was_in = change.old is not None and match(change.old)
    if change.type == "DELETED":
        return ("DELETED", copy.deepcopy(change.new)) if was_in or is_in else None
    if change.type == "ADDED":
        return ("ADDED", copy.deepcopy(change.new)) if is_in else None
    if is_in and was_in:
        return "MODIFIED", copy.deepcopy(change.new)
    if is_in:
        return "ADDED", copy.deepcopy(change.new)
    if was_in:
        return "DELETED", copy.deepcopy(change.new)
    return None


# ---------------------------------------------------------------------------
# Selectors
# ---------------------------------------------------------------------------

_TERM = re.compile(
    r"\s*(?:(?P<not>!)\s*(?P<nkey>[^\s!=(),]+)"
    r"|(?P<skey>[^\s!=(),]+)\s*(?P<setop>in|notin)\s*\((?P<values>[^)]*)\)"
    r"|(?P<key>[^\s!=(),]+)\s*(?P<op>==|=|!=)\s*(?P<value>[^\s!=(),]*)"
    r"|(?P<ekey>[^\s!=(),]+))\s*"
)


def label_matcher(text: str | None) -> Callable[[Obj], bool]:
    """A label selector (``a=b``, ``a==b``, ``a!=b``, ``a in (x,y)``, ``a notin (x)``, ``a``, ``!a``)."""
    if not text or not text.strip():
        return lambda obj: True
    requirements: list[tuple[str, str, tuple[str, ...]]] = []
    for term in _split_terms(text):
        match = _TERM.fullmatch(term)
        if match is None:
            raise bad_request(f"unable to parse requirement: found '{term}', expected: in, notin, =, ==, !=, gt, lt")
        if match.group("nkey"):
            req = (match.group("nkey"), "!", ())
        elif match.group("skey"):
            values = tuple(v.strip() for v in match.group("values").split(",") if v.strip())
            req = (match.group("skey"), match.group("setop"), values)
        elif match.group("key"):
            req = (match.group("key"), "!=" if match.group("op") == "!=" else "=", (match.group("value"),))
        else:
            req = (match.group("ekey"), "exists", ())
        key, _, values = req
        if not valid_label_key(key):
            raise bad_request(f'unable to parse requirement: <nil>: Invalid value: "{key}": name part must consist '
                              "of alphanumeric characters, '-', '_' or '.', and must start and end with an "
                              "alphanumeric character")
        for value in values:
            if not valid_label_value(value):
                raise bad_request(f'unable to parse requirement: values[0][{key}]: Invalid value: "{value}": '
                                  "a valid label must be an empty string or consist of alphanumeric characters, "
                                  "'-', '_' or '.', and must start and end with an alphanumeric character")
        requirements.append(req)

    def matches(obj: Obj) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        for key, op, values in requirements:
            present = key in labels
            value = labels.get(key)
            if op == "exists" and not present:
                return False
            if op == "!" and present:
                return False
            if op in ("=", "in") and (not present or value not in values):
                return False
            if op in ("!=", "notin") and present and value in values:
                return False
        return True

    return matches


def _split_terms(text: str) -> list[str]:
    terms, depth, current = [], 0, ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += char
    terms.append(current)
    return [t for t in terms if t.strip()] or [text]


# The fields each resource can be selected by, as the API server allows them.
FIELDS: dict[str, dict[str, Callable[[Obj], str]]] = {}


def _path(*parts: str) -> Callable[[Obj], str]:
    def get(obj: Obj) -> str:
        value: Any = obj
        for part in parts:
            value = value.get(part) if isinstance(value, Mapping) else None
        if isinstance(value, bool):
            return "true" if value else "false"
        return "" if value is None else str(value)

    return get


_META = {"metadata.name": _path("metadata", "name"), "metadata.namespace": _path("metadata", "namespace")}
FIELDS["pods"] = {
    **_META,
    "spec.nodeName": _path("spec", "nodeName"),
    "spec.restartPolicy": _path("spec", "restartPolicy"),
    "spec.schedulerName": _path("spec", "schedulerName"),
    "spec.serviceAccountName": _path("spec", "serviceAccountName"),
    "spec.hostNetwork": lambda o: "true" if (o.get("spec") or {}).get("hostNetwork") else "false",
    "status.phase": _path("status", "phase"),
    "status.podIP": _path("status", "podIP"),
    "status.nominatedNodeName": _path("status", "nominatedNodeName"),
}
FIELDS["events"] = {
    **_META,
    **{f"involvedObject.{f}": _path("involvedObject", f)
       for f in ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")},
    "reason": _path("reason"),
    "reportingComponent": _path("reportingComponent"),
    "source": _path("source", "component"),
    "type": _path("type"),
}
FIELDS["secrets"] = {**_META, "type": _path("type")}
FIELDS["configmaps"] = dict(_META)
FIELDS["persistentvolumeclaims"] = dict(_META)
FIELDS["namespaces"] = {"metadata.name": _path("metadata", "name"), "status.phase": _path("status", "phase")}


def field_matcher(resource: str, text: str | None) -> Callable[[Obj], bool]:
    """A field selector (``f=v``, ``f==v``, ``f!=v``, comma-separated)."""
    if not text or not text.strip():
        return lambda obj: True
    known = FIELDS.get(resource, _META)
    requirements: list[tuple[Callable[[Obj], str], bool, str]] = []
    for term in text.split(","):
        match = re.fullmatch(r"\s*([^=!\s]+)\s*(==|=|!=)\s*(.*?)\s*", term)
        if match is None:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{term}'")
        field, op, value = match.groups()
        if field not in known:
            raise bad_request(f'field label not supported: {field}')
        requirements.append((known[field], op == "!=", value))
    return lambda obj: all((get(obj) != value) if negate else (get(obj) == value) for get, negate, value in requirements)
