"""The ctypes declarations (engine/fast/native/__init__.py, DECLARATIONS) against the C prototypes
in fused.c: same kernels, same argument names and types, in the same order. ctypes trusts
the declaration, so a slip there would corrupt memory, not raise; this test is the check."""
import ctypes
import re

import pytest

from engine.fast import native

# C parameter type -> the ctypes type that passes it; every pointer travels as c_void_p
C_TYPES = {"int": ctypes.c_int, "int64_t": ctypes.c_int64, "float": ctypes.c_float}
PROTOTYPE = re.compile(r"^void\s+(\w+)\s*\(([^)]*)\)\s*\{", re.MULTILINE)  # exported: no `static`
PARAMETER = re.compile(r"^(?:const\s+)?(\w+)\s*(\*?)\s*(?:restrict\s+)?(\w+)$")


def prototypes(source: str) -> dict[str, list[tuple[str, type]]]:
    """Every exported `void name(...)` of a C source -> [(argument name, ctypes type)]."""
    found = {}
    for name, params in PROTOTYPE.findall(source):
        args = []
        for param in " ".join(params.split()).split(","):
            m = PARAMETER.match(param.strip())
            assert m, f"{name}: cannot read the parameter {param.strip()!r}"
            base, star, arg = m.groups()
            args.append((arg, ctypes.c_void_p if star else C_TYPES[base]))
        found[name] = args
    return found


def mismatches(source: str, declarations: dict) -> list[str]:
    """What differs between the C source's prototypes and the Python declarations."""
    c = prototypes(source)
    problems = [f"{name}: in fused.c, not declared" for name in c.keys() - declarations.keys()]
    problems += [f"{name}: declared, not in fused.c" for name in declarations.keys() - c.keys()]
    for name in c.keys() & declarations.keys():
        ours = [(arg, ctype) for arg, ctype in declarations[name]]
        if ours != c[name]:
            problems.append(f"{name}: declared {[(a, t.__name__) for a, t in ours]}, "
                            f"fused.c {[(a, t.__name__) for a, t in c[name]]}")
    return problems


SOURCE = native.SOURCE.read_text()


def test_every_declaration_equals_its_c_prototype():
    assert set(prototypes(SOURCE)) == {"gru_forward", "gru_backward", "attend_forward",
                                       "attend_backward", "adam_step"}
    assert mismatches(SOURCE, native.DECLARATIONS) == []


def edited(declarations: dict, name: str, change) -> dict:
    return {**declarations, name: tuple(change(list(declarations[name])))}


@pytest.mark.parametrize("change", [
    lambda a: a[:3] + [a[4], a[3]] + a[5:],                 # two arguments swapped
    lambda a: a[:-1],                                        # one left out
    lambda a: a + [("extra", ctypes.c_int)],                 # one added
    lambda a: [("gates", a[0][1])] + a[1:],                  # one renamed
    lambda a: [(a[0][0], ctypes.c_float)] + a[1:],           # one retyped
])
def test_a_changed_declaration_is_reported(change):
    assert mismatches(SOURCE, edited(native.DECLARATIONS, "gru_forward", change))


@pytest.mark.parametrize("old,new", [
    ("const float *gi, int gi_rs, const float *gh, int gh_rs",      # reordered in C
     "const float *gh, int gh_rs, const float *gi, int gi_rs"),
    ("float *rz, float *n) {", "float *rz, float *n, int extra) {"),  # added in C
    ("float *rz, float *n) {", "float *rz) {"),                       # removed in C
    ("float *rz, float *n) {", "float *rz, float *gates) {"),         # renamed in C
    ("float *rz, float *n) {", "float *rz, int n) {"),                # retyped in C
    ("void adam_step(", "void adam_step_v2("),                        # a kernel renamed
])
def test_a_changed_c_prototype_is_reported(old, new):
    assert SOURCE.count(old) == 1
    assert mismatches(SOURCE.replace(old, new), native.DECLARATIONS)


@pytest.mark.skipif(native.kernels() is None, reason="no C kernels here")
def test_a_kernel_takes_every_argument_by_name_exactly_once():
    k = native.kernels().adam_step
    args = {name: 0 for name in k.names}
    with pytest.raises(TypeError, match="missing \\['eps'\\]"):
        k(**{n: v for n, v in args.items() if n != "eps"})
    with pytest.raises(TypeError, match="unexpected \\['epsilon'\\]"):
        k(**args, epsilon=0)
