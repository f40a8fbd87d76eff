#!/usr/bin/env python3
"""check_layers: the engine's layering, checked from its sources.

engine/ has one folder per layer (engine/meson.build):

    core (0)  <  lang (1), cal (1)  <  store (2)  <  app (3)

A source or header may include headers of its own folder and of folders of
a lower level only (lang and cal do not see each other).  Within the engine,
no two modules may depend on each other in a cycle: module x depends on y
when x.c or x.h includes y.h (a header without a .c of the same name, such
as cf_be.h, is a module of its own too).  And LMDB is behind one door: no
`mdb_` call or <lmdb.h> in engine/, adapters/ or cli/ outside
engine/store/store.c.

The build enforces the layers too (each layer's library sees only the
include directories below it); this test also catches what the compiler
cannot: a cycle inside a layer.  It checks itself first on small trees with
an upward include, a cycle and a stray mdb_ call, each of which must fail.

Usage: check_layers.py [SRCDIR]   (default: $CF_SRCDIR or the repo root)
"""
import os
import re
import sys
import tempfile

LEVELS = {"core": 0, "lang": 1, "cal": 1, "store": 2, "app": 3}
GENERATED = {"cf_version.h": "core"}   # made by meson in the build tree
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
MDB = re.compile(r'\bmdb_[a-z0-9_]+\s*\(|<lmdb\.h>')
COMMENT = re.compile(r'/\*.*?\*/|//[^\n]*', re.S)


def engine_files(root):
    """{filename: (layer, path)} of every .c/.h under engine/<layer>/."""
    files = {}
    for layer in LEVELS:
        d = os.path.join(root, "engine", layer)
        if not os.path.isdir(d):
            continue
        for name in sorted(os.listdir(d)):
            if name.endswith((".c", ".h")):
                files[name] = (layer, os.path.join(d, name))
    return files


def check(root):
    """A list of problems (empty when the tree is fine)."""
    problems = []
    files = engine_files(root)
    header_layer = {n: l for n, (l, _) in files.items() if n.endswith(".h")}
    header_layer.update(GENERATED)
    deps = {}
    for name, (layer, path) in files.items():
        text = open(path, encoding="utf-8").read()
        mod = name[:-2]
        for inc in INCLUDE.findall(text):
            if inc not in header_layer:
                problems.append("%s: includes \"%s\", which is not an engine header"
                                % (path, inc))
                continue
            hl = header_layer[inc]
            if hl != layer and LEVELS[hl] >= LEVELS[layer]:
                problems.append("%s (layer %s) includes %s of layer %s: a layer may "
                                "include only its own and lower layers' headers"
                                % (path, layer, inc, hl))
            dep = inc[:-2]
            if dep != mod:
                deps.setdefault(mod, set()).add(dep)
    # Cycles between modules (Tarjan's strongly connected components).
    index, low, stack, on, comps, counter = {}, {}, [], set(), [], [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(deps.get(v, ())):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    for v in sorted(deps):
        if v not in index:
            strong(v)
    for comp in comps:
        problems.append("modules include each other's headers in a cycle: %s"
                        % " <-> ".join(comp))
    # One door to LMDB.
    door = os.path.join(root, "engine", "store", "store.c")
    for top in ("engine", "adapters", "cli"):
        for dirpath, _, names in os.walk(os.path.join(root, top)):
            for n in sorted(names):
                p = os.path.join(dirpath, n)
                if not n.endswith((".c", ".h")) or \
                        os.path.realpath(p) == os.path.realpath(door):
                    continue
                code = COMMENT.sub("", open(p, encoding="utf-8").read())
                if MDB.search(code):
                    problems.append("%s calls LMDB: only engine/store/store.c may" % p)
    return problems


def _tree(files):
    """A temporary tree with the given {relative path: text}."""
    root = tempfile.mkdtemp(prefix="cf-layers-")
    for rel, text in files.items():
        p = os.path.join(root, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(text)
    return root


def self_test():
    good = {"engine/core/a.h": "", "engine/core/a.c": '#include "a.h"\n',
            "engine/store/store.h": "", "engine/store/store.c":
            '#include "store.h"\n#include "a.h"\nint x(void){return mdb_put(0);}\n',
            "engine/app/e.c": '#include "store.h"\n'}
    assert check(_tree(good)) == [], check(_tree(good))
    upward = dict(good, **{"engine/core/a.c": '#include "store.h"\n'})
    p = check(_tree(upward))
    assert any("includes store.h of layer store" in x for x in p), p
    sideways = dict(good, **{"engine/lang/w.h": "", "engine/cal/c.c": '#include "w.h"\n'})
    p = check(_tree(sideways))
    assert any("includes w.h of layer lang" in x for x in p), p
    cycle = dict(good, **{"engine/app/x.h": "", "engine/app/y.h": "",
                          "engine/app/x.c": '#include "y.h"\n',
                          "engine/app/y.c": '#include "x.h"\n'})
    p = check(_tree(cycle))
    assert any("cycle: x <-> y" in x for x in p), p
    stray = dict(good, **{"cli/b.c": "static int f(void) { return mdb_env_copy2(0); }\n"})
    p = check(_tree(stray))
    assert any("b.c calls LMDB" in x for x in p), p


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.environ.get(
        "CF_SRCDIR", os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    self_test()
    problems = check(root)
    for p in problems:
        print("check_layers: " + p)
    n = len(engine_files(root))
    if not problems:
        print("check_layers: %d engine files; layers, cycles and the LMDB door are clean" % n)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
