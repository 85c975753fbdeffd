#!/usr/bin/env python3
"""test_docker_packages.py SRC_DIR [BOLTZD]: keeps the Dockerfile (never built here: no container
engine) in step with scripts/setup and with what the binary links.

scripts/setup installs Debian 12 packages; the Dockerfile's stages install Ubuntu 24.04 packages
(NVIDIA publishes CUDA images for Ubuntu, not Debian). MAPPING below says, for every package in
setup's PKGS, what it is and which Ubuntu packages stand for it in which stage:
  - every PKGS entry must be in MAPPING (a new dependency forces a decision here);
  - every mapped build package must be installed in the build stage, every mapped runtime
    package in the runtime stage;
  - every package the Dockerfile installs must be accounted for (MAPPING or DOCKER_ONLY);
  - with BOLTZD: every shared library the binary needs (readelf NEEDED) comes from a Debian
    package whose runtime counterpart is mapped, from the C runtime, or from the CUDA image.
Prints one line per check and 'N passed, N failed'."""
import os
import re
import subprocess
import sys

# Debian 12 package in scripts/setup -> (role, Ubuntu 24.04 build-stage packages,
#                                       Ubuntu 24.04 runtime-stage packages, Debian runtime package)
# role: build (tools), lib (a -dev package: headers in the build stage, the shared library in the
# runtime stage), data (needed at run time), test (only the test suite or the scripts need it).
MAPPING = {
    "build-essential": ("build", ["build-essential"], [], None),
    "cmake": ("build", ["cmake"], [], None),
    "pkg-config": ("build", ["pkg-config"], [], None),
    "git": ("test", [], [], None),                    # .ci/run prints the commit
    "curl": ("runtime", [], ["curl"], None),          # HEALTHCHECK; the e2e tests
    "ca-certificates": ("runtime", [], ["ca-certificates"], None),
    "libopenblas-dev": ("lib", ["libopenblas-dev"], ["libopenblas0-pthread"], "libopenblas0-pthread"),
    "libmicrohttpd-dev": ("lib", ["libmicrohttpd-dev"], ["libmicrohttpd12t64"], "libmicrohttpd12"),  # t64 rename
    "libjansson-dev": ("lib", ["libjansson-dev"], ["libjansson4"], "libjansson4"),
    "libsqlite3-dev": ("lib", ["libsqlite3-dev"], ["libsqlite3-0"], "libsqlite3-0"),
    "zlib1g-dev": ("lib", ["zlib1g-dev"], ["zlib1g"], "zlib1g"),
    "libcriterion-dev": ("test", [], [], None),       # unit tests (the image builds -DBOLTZ_TESTS=OFF)
    "dataset-fashion-mnist": ("data", [], ["dataset-fashion-mnist"], None),  # dataset kind fashion_mnist
    "python3": ("test", [], [], None),
    "python3-numpy": ("test", [], [], None),
    "python3-jsonschema": ("test", [], [], None),
    "jq": ("test", [], [], None),
    "systemd": ("test", [], [], None),                # systemd-analyze for tests/packaging/test_unit.sh
    "chromium": ("test", [], [], None),               # the dashboard's browser test
    "nodejs": ("test", [], [], None),
    "npm": ("test", [], [], None),
    "fonts-dejavu-core": ("test", [], [], None),      # text in the browser test's screenshots
}
# Installed by the Dockerfile without a setup counterpart (none at present).
DOCKER_ONLY = {}
# Shared libraries the binary may need that no mapped package provides: the C runtime (in every
# image) and the CUDA libraries (in the nvidia/cuda runtime image), and the sanitizer runtimes of
# a sanitizer build.
BASE_PACKAGES = {"libc6", "libgcc-s1", "libstdc++6", "libasan8", "libubsan1", "libgfortran5"}
CUDA_SONAME = re.compile(r"^lib(cudart|cublas|cublasLt|curand|cuda)\.so")

passed = failed = 0


def check(ok, what):
    global passed, failed
    if ok:
        passed += 1
        print("ok   " + what)
    else:
        failed += 1
        print("FAIL " + what)


def setup_packages(path):
    text = open(path).read()
    m = re.search(r"^PKGS=\((.*?)\)", text, re.S | re.M)
    if not m:
        sys.exit("cannot find PKGS=(...) in " + path)
    body = re.sub(r"#[^\n]*", "", m.group(1))
    return body.split()


def docker_stages(path):
    """{stage name: set of apt-get installed packages} of a Dockerfile."""
    lines, cur = [], ""
    for raw in open(path):
        line = raw.rstrip("\n")
        if line.lstrip().startswith("#") and not cur:
            continue
        if line.endswith("\\"):
            cur += line[:-1] + " "
            continue
        lines.append(cur + line)
        cur = ""
    stages, name = {}, None
    for line in lines:
        m = re.match(r"\s*FROM\s+\S+(?:\s+AS\s+(\S+))?", line, re.I)
        if m:
            name = (m.group(1) or "stage%d" % len(stages)).lower()
            stages[name] = set()
            continue
        if name and re.match(r"\s*RUN\b", line):
            for cmd in re.split(r"&&|;|\|\|", line):
                words = cmd.split()
                if "apt-get" in words and "install" in words:
                    for w in words[words.index("install") + 1:]:
                        if not w.startswith("-"):
                            stages[name].add(w)
    return stages


def needed_packages(binary):
    """Debian packages (or CUDA sonames) that provide the binary's NEEDED libraries."""
    out = subprocess.run(["readelf", "-d", binary], capture_output=True, text=True, check=True).stdout
    sonames = re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]", out)
    ldd = subprocess.run(["ldd", binary], capture_output=True, text=True).stdout
    where = dict(re.findall(r"^\s*(\S+) => (\S+)", ldd, re.M))
    result = {}
    for so in sonames:
        if CUDA_SONAME.match(so):
            result[so] = "cuda"
            continue
        path = where.get(so)
        pkg = None
        if path and path != "not":
            real = os.path.realpath(path)
            for p in (real, path, "/usr" + real if not real.startswith("/usr") else real[4:]):
                q = subprocess.run(["dpkg", "-S", p], capture_output=True, text=True)
                if q.returncode == 0:
                    pkg = q.stdout.split(":")[0].strip()
                    break
        result[so] = pkg
    return result


def main():
    src = sys.argv[1]
    binary = sys.argv[2] if len(sys.argv) > 2 else None
    pkgs = setup_packages(os.path.join(src, "scripts", "setup"))
    stages = docker_stages(os.path.join(src, "Dockerfile"))
    check("build" in stages and "runtime" in stages, "Dockerfile has stages 'build' and 'runtime' (%s)" % ", ".join(stages))
    build, runtime = stages.get("build", set()), stages.get("runtime", set())
    for p in pkgs:
        if p not in MAPPING:
            check(False, "setup package %s is in the mapping table of %s (add it, and to the Dockerfile if the "
                         "image needs it)" % (p, os.path.basename(__file__)))
            continue
        role, b, r, _ = MAPPING[p]
        for x in b:
            check(x in build, "%s (%s): build stage installs %s" % (p, role, x))
        for x in r:
            check(x in runtime, "%s (%s): runtime stage installs %s" % (p, role, x))
        if role == "test":
            check(p not in build | runtime, "%s is for tests only and stays out of the image" % p)
    accounted_build = {x for v in MAPPING.values() for x in v[1]} | set(DOCKER_ONLY)
    accounted_runtime = {x for v in MAPPING.values() for x in v[2]} | set(DOCKER_ONLY)
    for x in sorted(build):
        check(x in accounted_build, "build stage package %s is accounted for in the mapping" % x)
    for x in sorted(runtime):
        check(x in accounted_runtime, "runtime stage package %s is accounted for in the mapping" % x)
    check(not any(x.endswith("-dev") for x in runtime), "runtime stage installs no -dev package")
    text = open(os.path.join(src, "Dockerfile")).read()
    check(re.search(r"^FROM nvidia/cuda:\S+-devel-ubuntu\S+ AS build$", text, re.M) is not None,
          "build stage is an NVIDIA CUDA devel image")
    check(re.search(r"^FROM nvidia/cuda:\S+-runtime-ubuntu\S+ AS runtime$", text, re.M) is not None,
          "runtime stage is an NVIDIA CUDA runtime image")
    check(re.search(r"^USER boltzd$", text, re.M) is not None, "runtime runs as the non-root user boltzd")
    check(re.search(r"^VOLUME .*/var/lib/boltzd", text, re.M) is not None, "the data dir is a volume")
    check(re.search(r"^HEALTHCHECK .*\n?.*?/api/v1/health", text, re.M) is not None, "HEALTHCHECK on /api/v1/health")
    check("UNTESTED" in text, "the Dockerfile says it is untested here")
    if binary:
        debian_runtime = {v[3] for v in MAPPING.values() if v[3]}
        for so, pkg in sorted(needed_packages(binary).items()):
            if pkg == "cuda":
                check(True, "%s comes with the nvidia/cuda runtime image" % so)
            elif pkg in BASE_PACKAGES:
                check(True, "%s (%s) is in every base image" % (so, pkg))
            else:
                check(pkg in debian_runtime, "%s (Debian %s) is the runtime counterpart of a mapped package"
                      % (so, pkg))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
