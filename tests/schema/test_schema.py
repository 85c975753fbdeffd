#!/usr/bin/python3
"""tests/schema/test_schema.py BOLTZD SRC: schema/job.schema.json and the C validator agree.

Every example spec and a set of valid variants must pass both; every invalid case must be
rejected by both (`boltzd check` exits 1 naming the field). Rules that span several fields
(r0 <= r_max, batch <= train, the memory and weight-count limits, strictly increasing
temperatures for replica exchange) are beyond JSON Schema: those cases are checked against the
C validator alone, as the schema's description says."""
import copy, glob, json, os, subprocess, sys, tempfile

import jsonschema

boltzd, src = sys.argv[1], sys.argv[2]
schema = json.load(open(os.path.join(src, "schema/job.schema.json")))
validator = jsonschema.Draft202012Validator(schema)
passed = failed = 0


def c_check(spec):
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(spec, f)
    r = subprocess.run([boltzd, "check", f.name], capture_output=True, text=True)
    os.unlink(f.name)
    return r.returncode == 0, r.stderr.strip()


def report(ok, what):
    global passed, failed
    passed, failed = passed + ok, failed + (not ok)
    print(("ok   " if ok else "FAIL ") + what)


base = {"dataset": {"kind": "spin", "n_in": 20, "classes": 3, "train": 300, "test": 50},
        "model": {"hidden": [8]}, "sampler": {"method": "pl", "T": 0.01, "steps": 10}}


def variant(path, value):
    s = copy.deepcopy(base)
    node = s
    for key in path[:-1]:
        node = node.setdefault(key, {})
    if value is DELETE:
        node.pop(path[-1], None)
    else:
        node[path[-1]] = value
    return s


DELETE = object()
ladder = {**base, "sampler": {"method": "pl", "T": [0.01, 0.02, 0.04], "steps": 10}}
valid = [json.load(open(p)) for p in sorted(glob.glob(os.path.join(src, "examples/*.json")))] + [
    base,
    variant(["sampler", "T"], [0.001, 0.01, 0.1]),
    {**base, "sampler": {"method": "hmc", "T": 0.01, "steps": 5, "h": 0.05, "leapfrog": 10}},
    {**base, "sampler": {"method": "adam", "steps": 5, "early_stopping": {"val_fraction": 0.2, "patience": 3}}},
    {**base, "init": {"kind": "npy", "path": "w.npy"}},
    {**base, "dataset": {"kind": "fashion_mnist", "train": 300, "test": 10, "projection": {"dim": 64, "binarize": True}}},
    {**ladder, "batched": True, "exchange": {"every": 5}},
    {**base, "sampler": {"method": "hmc", "T": [0.01, 0.02], "steps": 5}, "batched": True},
    {**base, "sampler": {"method": "sgld", "T": [0.01, 0.02], "steps": 5}, "batched": True, "exchange": {"every": 1}},
    {**base, "batched": True},
    {**ladder, "batched": False, "exchange": {"every": 0}},
    {**base, "sampler": {"method": "adam", "steps": 5}, "batched": False},
]
invalid = {  # name: spec (both must reject)
    "unknown top-level field": {**base, "smapler": {}},
    "unknown sampler field": variant(["sampler", "gama"], 0.1),
    "T negative": variant(["sampler", "T"], -1),
    "T zero": variant(["sampler", "T"], 0),
    "T string": variant(["sampler", "T"], "hot"),
    "T empty list": variant(["sampler", "T"], []),
    "steps missing": variant(["sampler", "steps"], DELETE),
    "steps fractional": variant(["sampler", "steps"], 1.5),
    "method unknown": variant(["sampler", "method"], "mcmc"),
    "r0 of hmc": {**base, "sampler": {"method": "hmc", "T": 1, "steps": 1, "r0": 0.01}},
    "r0 above 1": variant(["sampler", "r0"], 2),
    "gamma zero": variant(["sampler", "gamma"], 0),
    "batch zero": variant(["sampler", "batch"], 0),
    "var_method unknown": variant(["sampler", "var_method"], "magic"),
    "hidden empty": variant(["model", "hidden"], []),
    "hidden zero width": variant(["model", "hidden"], [8, 0]),
    "hidden not a list": variant(["model", "hidden"], 8),
    "lambda negative": variant(["model", "lambda"], -1),
    "p_flip above 0.5": variant(["dataset", "p_flip"], 0.7),
    "dataset kind unknown": variant(["dataset", "kind"], "cifar"),
    "fashion train too large": {**base, "dataset": {"kind": "fashion_mnist", "train": 70000}},
    "npy without dir": {**base, "dataset": {"kind": "npy"}},
    "init kind unknown": {**base, "init": {"kind": "zeros"}},
    "init npy without path": {**base, "init": {"kind": "npy"}},
    "record every zero": {**base, "record": {"every": 0}},
    "backend unknown": {**base, "backend": "tpu"},
    "name too long": {**base, "name": "x" * 200},
    "top level not an object": [base],
    "batched with adam": {**base, "sampler": {"method": "adam", "steps": 5}, "batched": True},
    "batched with mbhmc": {**base, "sampler": {"method": "mbhmc", "T": [0.01, 0.02], "steps": 5}, "batched": True},
    "batched with naive_pl": {**base, "sampler": {"method": "naive_pl", "T": [0.01, 0.02], "steps": 5},
                              "batched": True},
    "batched not a boolean": {**ladder, "batched": 1},
    "exchange without batched": {**ladder, "exchange": {"every": 5}},
    "exchange with batched false": {**ladder, "batched": False, "exchange": {"every": 5}},
    "exchange with one temperature": {**base, "batched": True, "exchange": {"every": 5}},
    "exchange with a one-element T list": {**variant(["sampler", "T"], [0.01]), "batched": True,
                                           "exchange": {"every": 5}},
    "exchange every negative": {**ladder, "batched": True, "exchange": {"every": -1}},
    "exchange every fractional": {**ladder, "batched": True, "exchange": {"every": 2.5}},
    "exchange unknown field": {**ladder, "batched": True, "exchange": {"evry": 5}},
    "exchange not an object": {**ladder, "batched": True, "exchange": 5},
}
c_only = {  # rules across fields: the C validator alone
    "r0 above r_max": variant(["sampler", "r0"], 0.5),
    "batch above train": variant(["sampler", "batch"], 1000),
    "too many weights": variant(["model", "hidden"], [100000, 100000]),
    "exchange with decreasing T": {**base, "sampler": {"method": "pl", "T": [0.02, 0.01], "steps": 10},
                                   "batched": True, "exchange": {"every": 5}},
    "exchange with equal T": {**base, "sampler": {"method": "hmc", "T": [0.01, 0.02, 0.02], "steps": 10},
                              "batched": True, "exchange": {"every": 5}},
}

for spec in valid:
    ok_c, err = c_check(spec)
    errs = list(validator.iter_errors(spec))
    report(ok_c and not errs, f"valid spec {spec.get('name', '')!r} accepted by both"
           + (f" (C: {err})" if not ok_c else "") + (f" (schema: {errs[0].message})" if errs else ""))
for name, spec in invalid.items():
    ok_c, err = c_check(spec)
    schema_rejects = not validator.is_valid(spec)
    report(not ok_c and err.startswith("boltzd: ") and schema_rejects,
           f"{name}: rejected by both" + ("" if not ok_c else " (C accepted)") + ("" if schema_rejects else " (schema accepted)"))
for name, spec in c_only.items():
    ok_c, err = c_check(spec)
    report(not ok_c, f"{name}: rejected by the C validator ({err})")
print(f"schema: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
