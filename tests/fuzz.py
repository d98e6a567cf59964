"""A small, deterministic mutation engine for fuzzing the loaders.

Cases are mutations of REAL inputs — the KFP corpus's compiled pipelines and
components, the fixtures, a ``kfx.yaml`` — so they get past the first byte and
reach deep into the parsers. A case is a pure function of ``(family, seed,
index)``: the same three numbers give the same bytes on any machine, so a failure
is reproduced with ``python -m tests.fuzz_worker run FAMILY INDEX --seed SEED``.

Families (what is fuzzed, and which loader reads it — see ``tests/fuzz_worker.py``):

- ``pipeline``: v2 IR pipelines (.yaml/.json) → ``load_pipeline_file``
- ``component``: v1 ``component.yaml`` and compiled v2 components → ``load_component_from_file``
- ``archive``: pipelines packaged as .zip/.tar.gz, and broken packages → ``load_pipeline_file``
- ``settings``: a DAG folder's ``kfx.yaml`` → ``loading._folder_settings``

A case is built in three steps, each optional: *tree* mutations on the parsed
YAML (delete/retype/rename keys, dangling references, cycles, grafts, huge DAGs),
serialisation (YAML or JSON), then *text* mutations on the bytes (truncation,
binary noise, wrong encodings, alias bombs, deep nesting, huge values). A few
*whole-file* mutations replace the input outright (empty files, pure binary).
"""

from __future__ import annotations

import copy
import gzip
import io
import json
import random
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

import yaml

from tests.support import CORPUS, FIXTURES, corpus_files

FAMILIES = ("pipeline", "component", "archive", "settings")

# A kfx.yaml using every kind of setting (the base of the settings family).
SETTINGS_BASE = """\
defaults:
  runtime: kubernetes
  namespace: ml
  tags: [ml, nightly]
pipelines:
  train.yaml:
    dag_id: nightly_training
    schedule: "@daily"
    tags: [ml]
    deferrable: true
  nested/other.yaml:
    experiment: exp
    pipeline_root: s3://bucket/root
    image_pull_policy: Always
"""

# Keys whose values name something else in the file: renaming the value dangles it.
REFERENCE_KEYS = {
    "producerTask", "producerSubtask", "outputParameterKey", "outputArtifactKey",
    "componentInputParameter", "componentInputArtifact", "executorLabel", "inputParameter",
    "inputArtifact", "itemInput", "inputValue", "inputPath", "inputUri", "outputPath",
    "outputUri", "isPresent", "name",
}
# A value standing for something the text step fills in (it survives YAML and JSON dumping).
MARKER = "KFXFUZZMARK"


@dataclass(frozen=True)
class Case:
    family: str
    seed: int
    index: int
    base: str  # where the input came from (a corpus path or a label)
    mutations: tuple[str, ...]
    data: bytes
    suffix: str  # the file name's ending: .yaml, .json, .zip, .tar.gz

    @property
    def id(self) -> str:
        return f"{self.family}#{self.index}"

    @property
    def file_name(self) -> str:
        return "kfx.yaml" if self.family == "settings" else f"case-{self.index:05d}{self.suffix}"

    def head(self, size: int = 200) -> str:
        """The beginning of the input, printable, for failure messages."""
        return repr(self.data[:size].decode("utf-8", "replace"))

    def describe(self) -> str:
        return (
            f"case {self.id} (seed {self.seed}): {' + '.join(self.mutations) or 'unmutated'} "
            f"of {self.base} ({len(self.data)} bytes); starts {self.head()}\n"
            f"    reproduce: .venv/bin/python -m tests.fuzz_worker run {self.family} {self.index} --seed {self.seed}"
        )


def make_case(family: str, seed: int, index: int) -> Case:
    """The case ``index`` of ``family``: deterministic in its three arguments."""
    rng = random.Random(f"{seed}/{family}/{index}")  # str seeds hash with SHA-512: stable everywhere
    if family == "archive":
        return _archive_case(rng, seed, index)
    base, text = rng.choice(_bases(family))
    data, suffix, mutations = mutate(rng, text)
    return Case(family, seed, index, base, tuple(mutations), data, suffix)


def cases(family: str, seed: int, start: int, stop: int) -> Iterator[Case]:
    for index in range(start, stop):
        yield make_case(family, seed, index)


@cache
def _bases(family: str) -> tuple[tuple[str, str], ...]:
    if family == "settings":
        return (("<kfx.yaml>", SETTINGS_BASE),)
    if family == "component":
        paths = corpus_files("v1 component", "v2 component")
    else:
        paths = corpus_files("v2 pipeline IR") + sorted(FIXTURES.glob("*.yaml"))
    found = []
    for path in sorted(paths):
        label = str(path.relative_to(CORPUS)) if path.is_relative_to(CORPUS) else path.name
        found.append((label, path.read_text(encoding="utf-8")))
    return tuple(found)


# ---------------------------------------------------------------------------
# The three steps
# ---------------------------------------------------------------------------


def mutate(rng: random.Random, text: str) -> tuple[bytes, str, list[str]]:
    """(bytes, file suffix, names of the mutations applied) for one case."""
    if rng.random() < 0.06:
        name = rng.choice(sorted(WHOLE_FILE))
        return WHOLE_FILE[name](rng), ".yaml", [name]
    applied: list[str] = []
    documents = [d for d in yaml.load_all(text, Loader=yaml.CSafeLoader) if d is not None]
    snippets: list[str] = []
    for _ in range(rng.choice((0, 1, 1, 1, 2, 3))):
        name = rng.choice(sorted(TREE))
        if TREE[name](rng, documents, snippets):
            applied.append(name)
    for _ in range(rng.choice((0, 0, 1, 1, 2))):
        name = rng.choice(sorted(SNIPPETS))
        if _place_marker(rng, documents, len(snippets)):
            snippets.append(SNIPPETS[name](rng))
            applied.append(name)
    as_json = len(documents) == 1 and rng.random() < 0.2
    rendered, suffix = _serialise(rng, documents, as_json)
    for number, snippet in enumerate(snippets):
        rendered = _fill_marker(rendered, number, snippet)
    data = rendered.encode("utf-8", "surrogatepass")
    for _ in range(rng.choice((0, 0, 0, 1, 1, 2))):
        name = rng.choice(sorted(TEXT))
        data = TEXT[name](rng, data)
        applied.append(name)
    return data, suffix, applied


def _serialise(rng: random.Random, documents: list[Any], as_json: bool) -> tuple[str, str]:
    if as_json:
        return json.dumps(documents[0], indent=rng.choice((None, 1, 2))), ".json"
    text = yaml.dump_all(
        documents, Dumper=yaml.CSafeDumper, sort_keys=False, allow_unicode=rng.random() < 0.5,
        width=rng.choice((80, 10**6)),
    )
    return text, ".yaml"


def _marker(number: int) -> str:
    return f"{MARKER}{number}X"


def _fill_marker(text: str, number: int, snippet: str) -> str:
    marker = _marker(number)
    return text.replace(f'"{marker}"', snippet).replace(marker, snippet)


def _place_marker(rng: random.Random, documents: list[Any], number: int) -> bool:
    slot = _pick_slot(rng, documents)
    if slot is None:
        return False
    container, key = slot
    container[key] = _marker(number)
    return True


# ---------------------------------------------------------------------------
# Walking the parsed documents
# ---------------------------------------------------------------------------


def _slots(documents: list[Any]) -> list[tuple[Any, Any]]:
    """Every (container, key) holding a value, documents themselves included."""
    found: list[tuple[Any, Any]] = []
    stack: list[Any] = [documents]
    while stack:
        container = stack.pop()
        keys = list(container) if isinstance(container, dict) else range(len(container))
        for key in keys:
            found.append((container, key))
            if isinstance(container[key], (dict, list)):
                stack.append(container[key])
    return found


def _pick_slot(
    rng: random.Random, documents: list[Any], where: Callable[[Any, Any], bool] | None = None
) -> tuple[Any, Any] | None:
    slots = [s for s in _slots(documents) if where is None or where(*s)]
    return rng.choice(slots) if slots else None


def _dags(documents: list[Any]) -> list[dict[str, Any]]:
    """The ``tasks`` mappings of every DAG in the documents."""
    return [
        c[k] for c, k in _slots(documents)
        if k == "tasks" and isinstance(c[k], dict) and c[k] and isinstance(c, dict)
    ]


def _odd_value(rng: random.Random) -> Any:
    return rng.choice([
        None, True, False, 0, -1, 2**63, 1.5, float("nan"), float("inf"), "", "x", " ", "nope",
        "{{$.inputs.parameters['x']}}", "{{$}}", [], {}, [1, "a", None], {"k": "v"}, {"": None},
        [[[]]], "ün\u00efcode \u2603", "a" * 300, "30s", "-1", "1e400",
    ])


# ---------------------------------------------------------------------------
# Tree mutations: f(rng, documents, snippets) -> whether anything changed
# ---------------------------------------------------------------------------


def _delete_key(rng: random.Random, documents: list[Any], _: list[str]) -> bool:
    slot = _pick_slot(rng, documents, lambda c, k: isinstance(c, dict))
    if slot:
        del slot[0][slot[1]]
    return slot is not None


def _retype(rng: random.Random, documents: list[Any], _: list[str]) -> bool:
    slot = _pick_slot(rng, documents, lambda c, k: c is not documents)
    if slot:
        slot[0][slot[1]] = _odd_value(rng)
    return slot is not None


def _rename_key(rng: random.Random, documents: list[Any], _: list[str]) -> bool:
    slot = _pick_slot(rng, documents, lambda c, k: isinstance(c, dict))
    if slot is None:
        return False
    container, old = slot
    text = str(old)
    new = rng.choice([text.upper(), text + "x", text[:-1], "", " ", 1, True, None, 1.5, f"{text}_{text}"])
    items = [(new if k == old else k, v) for k, v in container.items()]
    container.clear()
    container.update(items)
    return True


def _dangle(rng: random.Random, documents: list[Any], _: list[str]) -> bool:
    """A reference (task, output, input, executor, component) to something that does not exist."""
    slots = _slots(documents)
    dependency_lists = {id(c[k]) for c, k in slots if k == "dependentTasks" and isinstance(c[k], list)}

    def is_reference(container: Any, key: Any) -> bool:
        named = key in REFERENCE_KEYS and isinstance(container[key], str)
        return named or id(container) in dependency_lists

    slot = _pick_slot(rng, documents, is_reference)
    if slot:
        slot[0][slot[1]] = f"nope-{rng.randrange(100)}"
    return slot is not None


def _cycle(rng: random.Random, documents: list[Any], _: list[str]) -> bool:
    """Tasks that wait for each other (by dependency or data), or a component that contains itself."""
    dags = _dags(documents)
    if not dags:
        return False
    tasks = rng.choice(dags)
    names = list(tasks)
    first, second = rng.choice(names), rng.choice(names)
    how = rng.choice(("dependency", "data", "recursion"))
    for this, other in ((first, second), (second, first)):
        task = tasks[this]
        if not isinstance(task, dict):
            return False
        if how == "dependency" and isinstance(task.setdefault("dependentTasks", []), list):
            task["dependentTasks"].append(other)
        elif how == "data" and isinstance(task.setdefault("inputs", {}), dict):
            task["inputs"].setdefault("parameters", {})["fuzz_in"] = {
                "taskOutputParameter": {"producerTask": other, "outputParameterKey": "Output"}}
    if how == "recursion":
        components = documents[0].get("components") if isinstance(documents[0], dict) else None
        if not isinstance(components, dict) or not components:
            return False
        name = rng.choice(list(components))
        component = components[name]
        if isinstance(component, dict):
            component["dag"] = {"tasks": {"self": {"componentRef": {"name": name}, "taskInfo": {"name": "self"}}}}
    return True


def _swap(rng: random.Random, documents: list[Any], _: list[str]) -> bool:
    slots = _slots(documents)
    if len(slots) < 2:
        return False
    (a, ka), (b, kb) = rng.sample(slots, 2)
    first, second = copy.deepcopy(a[ka]), copy.deepcopy(b[kb])  # copies: never a value inside itself
    a[ka], b[kb] = second, first
    return True


def _graft(rng: random.Random, documents: list[Any], _: list[str]) -> bool:
    """A copy of one subtree somewhere else (a task in another DAG, an executor as a task, …)."""
    slots = _slots(documents)
    source, target = rng.choice(slots), rng.choice(slots)
    value = copy.deepcopy(source[0][source[1]])
    container = target[0][target[1]]
    if isinstance(container, dict):
        container[f"graft{rng.randrange(10)}"] = value
    elif isinstance(container, list):
        container.insert(rng.randrange(len(container) + 1), value)
    else:
        target[0][target[1]] = value
    return True


def _long_chain(rng: random.Random, documents: list[Any], _: list[str]) -> bool:
    """Hundreds or thousands of copies of a task, each waiting for the one before."""
    dags = _dags(documents)
    if not dags:
        return False
    tasks = rng.choice(dags)
    name = rng.choice(list(tasks))
    previous = name
    for number in range(rng.choice((300, 1500))):
        task = copy.deepcopy(tasks[name])
        if isinstance(task, dict):
            task["dependentTasks"] = [previous]
            task["taskInfo"] = {"name": f"chain-{number}"}
        tasks[f"chain-{number}"] = task
        previous = f"chain-{number}"
    return True


def _nested_components(rng: random.Random, documents: list[Any], _: list[str]) -> bool:
    """Components nested as a long chain, or as a diamond (each uses the next one twice:
    2**depth tasks once expanded)."""
    document = documents[0] if documents else None
    if not isinstance(document, dict) or not isinstance(document.get("root"), dict):
        return False
    components = document.setdefault("components", {})
    if not isinstance(components, dict) or not components:
        return False
    leaf = rng.choice(list(components))
    diamond = rng.random() < 0.5
    depth = rng.choice((30, 45)) if diamond else rng.choice((60, 2000))
    below = leaf
    for level in range(depth):
        name = f"comp-nest-{level}"
        copies = ("a", "b") if diamond else ("a",)
        components[name] = {"dag": {"tasks": {
            f"{name}-{c}": {"componentRef": {"name": below}, "taskInfo": {"name": c}} for c in copies}}}
        below = name
    document["root"]["dag"] = {"tasks": {"top": {"componentRef": {"name": below}, "taskInfo": {"name": "top"}}}}
    return True


def _snake_case(rng: random.Random, documents: list[Any], _: list[str]) -> bool:
    """Proto field-name JSON (``pipeline_info``): the loader's other spelling of the IR."""
    def snake(key: Any) -> Any:
        if not isinstance(key, str) or not key[:1].islower():
            return key
        return "".join(f"_{c.lower()}" if c.isupper() else c for c in key)

    mappings = {id(c): c for c, _ in _slots(documents) if isinstance(c, dict)}
    for mapping in mappings.values():
        if rng.random() < 0.9:
            items = [(snake(k), v) for k, v in mapping.items()]
            mapping.clear()
            mapping.update(items)
    return True


TREE: dict[str, Callable[[random.Random, list[Any], list[str]], bool]] = {
    "delete-key": _delete_key,
    "retype": _retype,
    "rename-key": _rename_key,
    "dangling-reference": _dangle,
    "cycle": _cycle,
    "swap": _swap,
    "graft": _graft,
    "long-chain": _long_chain,
    "nested-components": _nested_components,
    "snake-case": _snake_case,
}


# ---------------------------------------------------------------------------
# Snippets: YAML text placed where a value was (flow style works in block context)
# ---------------------------------------------------------------------------


def _deep_nesting(rng: random.Random) -> str:
    depth = rng.choice((60, 150, 1000, 30000, 200000))
    opener, closer = rng.choice((("[", "]"), ("{a: ", "}"), ('{"a": ', "}")))
    return opener * depth + "1" + closer * depth


def _huge_value(rng: random.Random) -> str:
    size = rng.choice((10**5, 2 * 10**6, 8 * 10**6))
    kind = rng.choice(("string", "digits", "placeholders", "list", "mapping", "key"))
    if kind == "string":
        return '"' + "x" * size + '"'
    if kind == "digits":  # regexes that backtrack on long runs of digits
        return "'" + "1" * (size // 10) + "x'"
    if kind == "placeholders":
        return json.dumps("{{$.inputs.parameters['a']}}" * (size // 300))
    if kind == "list":
        return "[" + ", ".join(["1"] * (size // 100)) + "]"
    if kind == "mapping":
        return "{" + ", ".join(f"k{n}: {n}" for n in range(size // 100)) + "}"
    return "{" + "k" * size + ": 1}"


def _alias_bomb(rng: random.Random) -> str:
    """Billion laughs: each level aliases the previous one nine times."""
    levels = rng.choice((3, 9, 20))
    parts = ["&l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for level in range(1, levels + 1):
        parts.append(f"&l{level} [" + ", ".join([f"*l{level - 1}"] * 9) + "]")
    if rng.random() < 0.5:  # a mapping bomb through merge keys
        parts.append("{<<: [" + ", ".join(f"{{k{n}: *l{levels}}}" for n in range(3)) + "]}")
    return "[" + ", ".join(parts) + "]"


def _odd_yaml(rng: random.Random) -> str:
    """Tags, timestamps, aliases and keys that PyYAML's safe loader turns into surprises."""
    return rng.choice([
        "!!binary aGVsbG8=", "!!set {a, b}", "!!timestamp 2001-13-45", "2001-12-14",
        "2001-12-14 21:59:43.10 -5", "!!python/object/apply:os.system [echo hi]", "!!omap [{a: 1}]",
        "!!pairs [[a, 1]]", "!custom x", "!!float nan", "!!float abc", "!!int abc", "!!bool maybe",
        "!!null x", "!!map [1]", "!!seq {a: 1}", "*undefined", "&r [*r]", "&m {a: *m}", "{? [a, b] : c}",
        "{? {a: 1} : c}", "{1: a, 2: b}", "{null: a}", "{true: a}", "{1.5: a}", "{2001-12-14: a}",
        "!!str", "{<<: 5}", "{<<: [1]}", "!!merge x",
    ])


def _big_number(rng: random.Random) -> str:
    return rng.choice([
        "9" * 5000, "-" + "9" * 10000, "1e999", "-1e999", "0x" + "f" * 5000, "0o777", "1_000",
        ".inf", "-.inf", ".nan", "1e-999", "1" * 4301 + ".5", "0b" + "1" * 20000, "190:20:30",
    ])


SNIPPETS: dict[str, Callable[[random.Random], str]] = {
    "deep-nesting": _deep_nesting,
    "huge-value": _huge_value,
    "alias-bomb": _alias_bomb,
    "odd-yaml": _odd_yaml,
    "big-number": _big_number,
}


# ---------------------------------------------------------------------------
# Text mutations: f(rng, bytes) -> bytes
# ---------------------------------------------------------------------------


def _truncate(rng: random.Random, data: bytes) -> bytes:
    return data[: rng.randrange(len(data) + 1)]


def _byte_noise(rng: random.Random, data: bytes) -> bytes:
    buffer = bytearray(data)
    for _ in range(rng.randrange(1, 9)):
        if buffer:
            buffer[rng.randrange(len(buffer))] = rng.randrange(256)
    return bytes(buffer)


def _insert_binary(rng: random.Random, data: bytes) -> bytes:
    at = rng.randrange(len(data) + 1)
    return data[:at] + rng.randbytes(rng.randrange(1, 64)) + data[at:]


def _encoding(rng: random.Random, data: bytes) -> bytes:
    text = data.decode("utf-8", "replace")
    at = rng.randrange(len(text) + 1)
    text = text[:at] + "é€" + text[at:]
    how = rng.choice(("utf-16", "utf-16-le", "utf-32", "latin-1", "bom", "surrogate", "overlong"))
    if how == "bom":
        return b"\xef\xbb\xbf" + data
    if how == "surrogate":
        return data[:at] + b"\xed\xa0\x80" + data[at:]
    if how == "overlong":
        return data[:at] + b"\xc0\xaf" + data[at:]
    return text.encode(how, "replace")


def _line_edit(rng: random.Random, data: bytes) -> bytes:
    lines = data.split(b"\n")
    at = rng.randrange(len(lines))
    how = rng.choice(("delete", "duplicate", "swap", "indent", "dedent", "tab"))
    if how == "delete":
        del lines[at]
    elif how == "duplicate":
        lines.insert(at, lines[at])
    elif how == "swap":
        other = rng.randrange(len(lines))
        lines[at], lines[other] = lines[other], lines[at]
    elif how == "indent":
        lines[at] = b" " * rng.choice((1, 2, 3)) + lines[at]
    elif how == "dedent":
        lines[at] = lines[at][rng.choice((1, 2)):]
    else:
        lines[at] = b"\t" + lines[at]
    return b"\n".join(lines)


def _control_chars(rng: random.Random, data: bytes) -> bytes:
    at = rng.randrange(len(data) + 1)
    char = rng.choice(("\x00", "\x07", "\x1b", "\u2028", "\ufeff", "\x85", "\ud800", "\\ud800", "\\x00"))
    return data[:at] + char.encode("utf-8", "surrogatepass") + data[at:]


def _extra_document(rng: random.Random, data: bytes) -> bytes:
    extra = rng.choice([
        "platforms: 5", "platforms: {kubernetes: 5}", "platforms: {other: {}}", "x: 1", "- 1", "'s'",
        "platforms: {kubernetes: {deploymentSpec: {executors: {x: {podMetadata: 1}}}}}",
        "platforms: {kubernetes: {deploymentSpec: {executors: {x: {tolerations: [{tolerationSeconds: x}]}}}}}",
        "platforms: {kubernetes: {pipelineConfig: {workspace: {size: '" + "1" * 100000 + "x'}}}}",
        "---\n" * 5000 + "a: 1",
    ])
    return data + b"\n---\n" + extra.encode()


TEXT: dict[str, Callable[[random.Random, bytes], bytes]] = {
    "truncate": _truncate,
    "byte-noise": _byte_noise,
    "insert-binary": _insert_binary,
    "encoding": _encoding,
    "line-edit": _line_edit,
    "control-chars": _control_chars,
    "extra-document": _extra_document,
}


# ---------------------------------------------------------------------------
# Whole-file replacements: f(rng) -> bytes
# ---------------------------------------------------------------------------


def _empty(rng: random.Random) -> bytes:
    return rng.choice([b"", b" \n\t\n", b"---", b"--- \n...\n", b"# only a comment\n", b"null", b"~",
                       b"[]", b"{}", b"0", b'""', b"\n" * 100000, b"\xef\xbb\xbf"])


def _pure_binary(rng: random.Random) -> bytes:
    how = rng.choice(("random", "gzip", "png", "nul"))
    if how == "gzip":
        return gzip.compress(b"pipelineInfo: {name: x}\n" * 100)
    if how == "png":
        return b"\x89PNG\r\n\x1a\n" + rng.randbytes(200)
    if how == "nul":
        return b"\x00" * rng.randrange(1, 5000)
    return rng.randbytes(rng.randrange(1, 5000))


def _bomb_document(rng: random.Random) -> bytes:
    """The classic billion laughs as a whole file, in block style."""
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for level in range(1, rng.choice((9, 30)) + 1):
        lines.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * 9) + "]")
    return ("\n".join(lines) + "\n").encode()


def _deep_document(rng: random.Random) -> bytes:
    depth = rng.choice((150, 5000, 100000))
    if rng.random() < 0.5:
        return ("- " * depth + "x\n").encode()  # block sequences nested on one line
    return "".join(" " * level + f"k{level}:\n" for level in range(min(depth, 3000))).encode()


WHOLE_FILE: dict[str, Callable[[random.Random], bytes]] = {
    "empty": _empty,
    "pure-binary": _pure_binary,
    "bomb-document": _bomb_document,
    "deep-document": _deep_document,
}


# ---------------------------------------------------------------------------
# Packages
# ---------------------------------------------------------------------------


def _archive_case(rng: random.Random, seed: int, index: int) -> Case:
    base, text = rng.choice(_bases("pipeline"))
    mutations: list[str] = []
    member, suffix = text.encode(), ".yaml"
    if rng.random() < 0.5:
        member, suffix, mutations = mutate(rng, text)
    fmt = rng.choice((".zip", ".tar.gz", ".tgz"))
    how = rng.choice(sorted(PACKAGING))
    data = PACKAGING[how](rng, fmt, f"pipeline{suffix}", member)
    return Case("archive", seed, index, base, (*mutations, f"package{fmt}:{how}"), data, fmt)


def _pack(fmt: str, members: list[tuple[str, bytes]], *, links: dict[str, tuple[bytes, str]] | None = None,
          compress: int = zipfile.ZIP_DEFLATED) -> bytes:
    """An archive of ``members`` (name, content); ``links``: name → (tar type, target)."""
    buffer = io.BytesIO()
    if fmt == ".zip":
        with zipfile.ZipFile(buffer, "w", compression=compress) as archive:
            for name, content in members:
                archive.writestr(name, content)
            for name, (_, target) in (links or {}).items():
                info = zipfile.ZipInfo(name)
                info.external_attr = 0o120777 << 16  # a symbolic link
                archive.writestr(info, target)
        return buffer.getvalue()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, content in members:
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
        for name, (kind, target) in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, target
            archive.addfile(info)
    return buffer.getvalue()


def _packaged(rng: random.Random, fmt: str, name: str, member: bytes) -> bytes:
    return _pack(fmt, [(name, member)])


def _broken_package(rng: random.Random, fmt: str, name: str, member: bytes) -> bytes:
    data = _pack(fmt, [(name, member)])
    return rng.choice((_truncate, _byte_noise, _insert_binary))(rng, data)


def _odd_members(rng: random.Random, fmt: str, name: str, member: bytes) -> bytes:
    how = rng.choice(("two", "none", "readme-only", "traversal", "absolute", "directory", "nested", "many"))
    members = {
        "two": [(name, member), ("other.yaml", member)],
        "none": [],
        "readme-only": [("README.md", b"hi")],
        "traversal": [("../" + name, member)],
        "absolute": [("/tmp/" + name, member)],
        "directory": [(name + "/inner.txt", b"x")],
        "nested": [("inner.zip", _pack(".zip", [(name, member)]))],
        "many": [(f"f{n}.txt", b"") for n in range(1200)] + [(name, member)],
    }[how]
    return _pack(fmt, members)


def _links(rng: random.Random, fmt: str, name: str, member: bytes) -> bytes:
    kind = rng.choice((tarfile.SYMTYPE, tarfile.LNKTYPE))
    return _pack(fmt, [("real.txt", member)], links={name: (kind, rng.choice(("/etc/passwd", "real.txt")))})


def _bomb_package(rng: random.Random, fmt: str, name: str, member: bytes) -> bytes:
    """A member that decompresses to far more than a pipeline (zeros compress ~1000:1)."""
    return _pack(fmt, [(name, member + b"\n#" + b"0" * rng.choice((2 * 10**6, 40 * 10**6)))])


def _odd_compression(rng: random.Random, fmt: str, name: str, member: bytes) -> bytes:
    how = rng.choice(("stored", "bzip2", "lzma", "encrypted-flag", "unknown-method", "wrong-format"))
    if how == "wrong-format":  # a zip named .tar.gz, a tar.gz named .zip, plain text named either
        return rng.choice((_pack(".zip" if fmt != ".zip" else ".tar.gz", [(name, member)]), member))
    if fmt != ".zip":
        return _pack(fmt, [(name, member)])
    methods = {"stored": zipfile.ZIP_STORED, "bzip2": zipfile.ZIP_BZIP2, "lzma": zipfile.ZIP_LZMA}
    data = bytearray(_pack(fmt, [(name, member)], compress=methods.get(how, zipfile.ZIP_DEFLATED)))
    if how in ("encrypted-flag", "unknown-method"):
        # Patch the central directory entry: general-purpose flag bit 0 / compression method 99.
        at = data.rfind(b"PK\x01\x02")
        offset, value = (8, b"\x01\x00") if how == "encrypted-flag" else (10, b"\x63\x00")
        data[at + offset: at + offset + 2] = value
    return bytes(data)


PACKAGING: dict[str, Callable[[random.Random, str, str, bytes], bytes]] = {
    "packaged": _packaged,
    "broken": _broken_package,
    "odd-members": _odd_members,
    "links": _links,
    "bomb": _bomb_package,
    "odd-compression": _odd_compression,
}
