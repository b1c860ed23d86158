#!/usr/bin/env python3
"""Finds import loops between modules inside each crate.

A module is a source file (`a/b.rs` or `a/b/mod.rs` is module `a::b`). Every
path a file names (`crate::x::y`, `super::x`, `self::x`, or a child module's
name used as a path root) is resolved to the deepest module it names; that is
an edge from the file's module to it. Edges are lifted to the level where the
two modules first differ: `a::b::c -> a::d` is an edge `a::b -> a::d`. A
parent's own file counts as a sibling of its children, so a parent that calls
into a child while the child uses items of the parent's file is a loop
(helpers shared by children belong in a leaf module). Re-exports (`pub use`),
test modules (`tests`, `*_tests`, inline `#[cfg(test)]` blocks) and the crate
root (which only declares modules) make no edges.

Loops that existed when this check was written are listed, one per line, in
`scripts/module-loops-allowed.txt` (`crate: a, b, c`); they are being removed.
Exit status 1 when a loop is not listed there, or a listed loop no longer
exists (take it off the list: the list only shrinks).
"""

import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PATH_RE = re.compile(r"\b(crate|super|self)((?:::[A-Za-z_][A-Za-z0-9_]*)+)")
USE_GROUP_RE = re.compile(r"\buse\s+(crate|super|self)((?:::[A-Za-z_][A-Za-z0-9_]*)*)::\{([^;]*)\};", re.S)
COMMENT_RE = re.compile(r"//[^\n]*|/\*.*?\*/", re.S)
REEXPORT_RE = re.compile(r"^\s*pub(?:\([^)]*\))?\s+use\s+[^;]*;", re.M)
STRING_RE = re.compile(r'"(?:\\.|[^"\\])*"')


def module_files(src):
    """Maps module path tuples to files for one crate's `src` directory."""
    modules = {}
    for dirpath, _, files in os.walk(src):
        for name in files:
            if not name.endswith(".rs"):
                continue
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, src)[:-3].split(os.sep)
            if rel in (["lib"], ["main"]):
                path = ()
            elif rel[-1] == "mod":
                path = tuple(rel[:-1])
            else:
                path = tuple(rel)
            if "bin" in rel[:1]:
                continue
            # Test modules (`tests.rs`, `x_tests.rs`, anything under them)
            # use their parent's API by design.
            if any(part == "tests" or part.endswith("_tests") for part in path):
                continue
            modules[path] = full
    return modules


def strip(text):
    text = COMMENT_RE.sub("", text)
    # Re-exports (`pub use child::Item;`) make a module a facade of its
    # children; they are not a dependency of the module's own code.
    text = REEXPORT_RE.sub("", text)
    text = STRING_RE.sub('""', text)
    # Test modules may use anything of their parent.
    cut = re.search(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{", text)
    return text[: cut.start()] if cut else text


def resolve(module, root, segments, modules):
    """The deepest existing module named by a path written in `module`."""
    if root == "crate":
        base = ()
    elif root == "self":
        base = module
    else:  # super, possibly repeated
        base = module[:-1]
        while segments and segments[0] == "super":
            base = base[:-1]
            segments = segments[1:]
    target = base
    for segment in segments:
        candidate = target + (segment,)
        if candidate in modules:
            target = candidate
        else:
            break
    return target


def edges_of(module, text, modules):
    found = set()
    for match in USE_GROUP_RE.finditer(text):
        root, prefix = match.group(1), [s for s in match.group(2).split("::") if s]
        for item in match.group(3).split(","):
            item = item.strip().split(" as ")[0].strip()
            if not item or item == "self" or "{" in item:
                continue
            found.add(resolve(module, root, prefix + item.split("::"), modules))
    for match in PATH_RE.finditer(text):
        root, rest = match.group(1), [s for s in match.group(2).split("::") if s]
        found.add(resolve(module, root, rest, modules))
    # A child module named as a path root (`dml::insert(..)`).
    for child in [m for m in modules if len(m) == len(module) + 1 and m[: len(module)] == module]:
        if re.search(r"(?<![:\w])" + re.escape(child[-1]) + r"::", text):
            found.add(child)
    found.discard(module)
    return found


def lift(source, target):
    """The pair of sibling modules an edge crosses (None inside one unit)."""
    common = 0
    while common < min(len(source), len(target)) and source[common] == target[common]:
        common += 1
    if common == len(source) or common == len(target):
        # One contains the other: parent file <-> its descendant.
        return (source[: common + 1], target[: common + 1]) if source != target else None
    return source[: common + 1], target[: common + 1]


def cycles(nodes, edges):
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    sys.setrecursionlimit(10000)
    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def allowed_loops():
    path = os.path.join(ROOT, "scripts", "module-loops-allowed.txt")
    if not os.path.exists(path):
        return set()
    with open(path, encoding="utf-8") as f:
        return {line.strip() for line in f if line.strip() and not line.startswith("#")}


def crate_loops(src):
    """The import loops of one crate's `src` directory, as sorted module lists."""
    modules = module_files(src)
    graph = {}
    for module, path in modules.items():
        with open(path, encoding="utf-8") as f:
            text = strip(f.read())
        for target in edges_of(module, text, modules):
            pair = lift(module, target)
            # The crate root only declares modules and re-exports.
            if pair is None or () in pair:
                continue
            a, b = pair
            graph.setdefault(a, set()).add(b)
    nodes = set(graph) | {t for ts in graph.values() for t in ts}
    return [["::".join(m) for m in component] for component in cycles(nodes, graph)]


def self_test():
    """The check finds a loop it must find and none where there is none."""
    import tempfile

    def loops_of(files):
        with tempfile.TemporaryDirectory() as src:
            for name, text in files.items():
                os.makedirs(os.path.dirname(os.path.join(src, name)), exist_ok=True)
                with open(os.path.join(src, name), "w", encoding="utf-8") as f:
                    f.write(text)
            return crate_loops(src)

    found = loops_of({
        "lib.rs": "mod a;\nmod b;\n",
        "a.rs": "use crate::b::B;\npub struct A;\n",
        "b.rs": "pub struct B(crate::a::A);\n",
    })
    assert found == [["a", "b"]], found
    # Parent file <-> child counts; a re-export and a test module do not.
    found = loops_of({
        "lib.rs": "mod p;\n",
        "p/mod.rs": "mod c;\nmod tests;\npub use c::C;\npub struct P;\nfn f() { c::g(); }\n",
        "p/c.rs": "pub struct C;\npub fn g() {}\n",
        "p/tests.rs": "use super::P;\n",
    })
    assert found == [], found
    found = loops_of({
        "lib.rs": "mod p;\n",
        "p/mod.rs": "mod c;\npub struct P;\nfn f() { c::g(); }\n",
        "p/c.rs": "use super::P;\npub fn g() {}\n",
    })
    assert found == [["p", "p::c"]], found


def main():
    self_test()
    status = 0
    allowed = allowed_loops()
    seen = set()
    for crate in sorted(os.listdir(ROOT)):
        src = os.path.join(ROOT, crate, "src")
        if not os.path.isfile(os.path.join(ROOT, crate, "Cargo.toml")) or not os.path.isdir(src):
            continue
        for names in crate_loops(src):
            entry = f"{crate}: {', '.join(names)}"
            seen.add(entry)
            if entry not in allowed:
                print(f"import loop between modules (not in module-loops-allowed.txt): {entry}")
                status = 1
    for entry in sorted(allowed - seen):
        print(f"listed loop no longer exists, remove it from module-loops-allowed.txt: {entry}")
        status = 1
    if status == 0:
        print(f"module imports ok ({len(seen)} listed loops left to remove)")
    return status


if __name__ == "__main__":
    sys.exit(main())
