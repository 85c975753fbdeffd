/* test_gpu_select.c: backend selection (daemon/backend_select.c) and the device list for /health
 * (gpu/gpu_probe.cu). Runs with or without a GPU: without one, backend "cuda" must fail with the
 * driver's words and "auto" must fall back to the CPU with a note; with one, both open CUDA. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "backend_select.h"
#include "gpu_testutil.h"

#define SPEC(backend, precision)                                                                               \
    "{\"dataset\": {\"kind\": \"spin\", \"n_in\": 20, \"classes\": 3, \"train\": 200, \"test\": 0, "           \
    "\"p_flip\": 0.3, \"seed\": 1}, \"model\": {\"hidden\": [8]}, \"init\": {\"seed\": 2}, "                    \
    "\"sampler\": {\"method\": \"pl\", \"T\": 0.001, \"steps\": 10, \"batch\": 32, \"seed\": 3}, "             \
    "\"backend\": \"" backend "\", \"precision\": \"" precision "\"}"

static int devices(char *why, size_t len) { return gpu_device_count(why, len); }

Test(gpu_select, cuda_backend)
{
    char why[256];
    int n = devices(why, sizeof why);
    gt_problem p;
    gt_problem_load(&p, SPEC("cuda", "fp32"));
    be b;
    char note[512] = "";
    bz_err e;
    bz_err_clear(&e);
    int rc = backend_open(&p.spec, &p.a, &p.d, &b, note, sizeof note, &e);
    if (n == 0) {
        cr_assert_eq(rc, BZ_EBACKEND, "backend cuda without a device must fail");
        cr_assert(strstr(e.msg, "no CUDA device") && strstr(e.msg, why), "the message names the driver's words: %s",
                  e.msg);
        cr_assert_str_eq(e.field, "backend");
    } else {
        cr_assert_eq(rc, 0, "%s", e.msg);
        cr_assert_str_eq(b.ops->name, "cuda");
        cr_assert(strstr(note, "CUDA device 0"), "note: %s", note);
        be_destroy(&b);
    }
    gt_problem_free(&p);
}

Test(gpu_select, auto_backend)
{
    char why[256];
    int n = devices(why, sizeof why);
    gt_problem p;
    gt_problem_load(&p, SPEC("auto", "tf32"));
    be b;
    char note[512] = "";
    bz_err e;
    cr_assert_eq(backend_open(&p.spec, &p.a, &p.d, &b, note, sizeof note, &e), 0, "%s", e.msg);
    if (n == 0) {
        cr_assert_str_eq(b.ops->name, "cpu");
        cr_assert(strstr(note, "using the CPU") && strstr(note, why), "note: %s", note);
    } else {
        cr_assert_str_eq(b.ops->name, "cuda");
        cr_assert(strstr(note, "TF32"), "precision tf32 should show in the note: %s", note);
    }
    be_destroy(&b);
    gt_problem_free(&p);
}

Test(gpu_select, cpu_backend_never_touches_cuda)
{
    gt_problem p;
    gt_problem_load(&p, SPEC("cpu", "fp32"));
    be b;
    char note[512] = "";
    bz_err e;
    cr_assert_eq(backend_open_on(&p.spec, &p.a, &p.d, 7, &b, note, sizeof note, &e), 0, "%s", e.msg);
    cr_assert_str_eq(b.ops->name, "cpu");
    cr_assert_str_eq(note, "backend cpu");
    be_destroy(&b);
    gt_problem_free(&p);
}

#define SWEEP(backend, method)                                                                                 \
    "{\"dataset\": {\"kind\": \"spin\", \"n_in\": 20, \"classes\": 3, \"train\": 200, \"test\": 0, "           \
    "\"p_flip\": 0.3, \"seed\": 1}, \"model\": {\"hidden\": [8]}, \"init\": {\"seed\": 2}, "                    \
    "\"sampler\": {\"method\": " method ", \"T\": [0.001, 0.002, 0.004], \"steps\": 10}, "   \
    "\"batched\": true, \"backend\": \"" backend "\"}"

#define PL "\"pl\", \"batch\": 32"

/* The handles of a batched job: one CUDA group (lockstep) for pl and sgld on a device, else one
 * handle per chain; BOLTZ_BATCH_MODE=threads keeps separate handles. */
static void check_group_open(const char *json, const char *mode, bool expect_group_on_device)
{
    char why[256];
    const int n = devices(why, sizeof why);
    gt_problem p;
    gt_problem_load(&p, json);
    be b[3];
    bool grouped = true;
    char note[512] = "";
    bz_err e;
    if (mode) setenv("BOLTZ_BATCH_MODE", mode, 1);
    int rc = backend_open_group(&p.spec, &p.a, &p.d, 0, 3, b, &grouped, note, sizeof note, &e);
    unsetenv("BOLTZ_BATCH_MODE");
    cr_assert_eq(rc, 0, "%s", e.msg);
    const bool on_device = n > 0 && strcmp(p.spec.backend, "cpu") != 0;
    cr_assert_eq(grouped, on_device && expect_group_on_device, "%s (mode %s): grouped %d; note: %s", json,
                 mode ? mode : "default", grouped, note);
    for (int k = 0; k < 3; k++) {
        cr_assert_str_eq(b[k].ops->name, on_device ? "cuda" : "cpu");
        cr_assert_eq(b[k].layout.n, p.a.n);
    }
    if (grouped) cr_assert(strstr(note, "lockstep") && b[0].ops->grad_batch_group, "note: %s", note);
    for (int k = 0; k < 3; k++) be_destroy(&b[k]);
    gt_problem_free(&p);
}

Test(gpu_select, group_backends)
{
    check_group_open(SWEEP("auto", PL), NULL, true);
    check_group_open(SWEEP("auto", "\"sgld\", \"batch\": 32"), NULL, true);
    check_group_open(SWEEP("auto", "\"hmc\""), NULL, false);
    check_group_open(SWEEP("auto", PL), "threads", false);
    check_group_open(SWEEP("cpu", PL), NULL, false);
}

/* A BOLTZ_BATCH_MODE that is neither lockstep nor threads is refused, naming the variable and
 * the value, whatever the backend. */
Test(gpu_select, bad_batch_mode_refused)
{
    gt_problem p;
    gt_problem_load(&p, SWEEP("cpu", PL));
    be b[3];
    bool grouped = true;
    char note[512] = "";
    bz_err e;
    setenv("BOLTZ_BATCH_MODE", "thread", 1);
    int rc = backend_open_group(&p.spec, &p.a, &p.d, 0, 3, b, &grouped, note, sizeof note, &e);
    unsetenv("BOLTZ_BATCH_MODE");
    cr_assert_eq(rc, BZ_EINVAL, "a misspelt mode must not pick one");
    cr_assert_str_eq(e.field, "BOLTZ_BATCH_MODE");
    cr_assert(strstr(e.msg, "\"thread\"") && strstr(e.msg, "threads"), "%s", e.msg);
    cr_assert(!grouped);
    check_group_open(SWEEP("cpu", PL), "lockstep", false); /* the default, spelt out: accepted */
    gt_problem_free(&p);
}

Test(gpu_select, missing_device_index)
{
    char why[256];
    int n = devices(why, sizeof why);
    if (n == 0) return; /* covered by cuda_backend; this file never skips, so CTest shows it ran */
    gt_problem p;
    gt_problem_load(&p, SPEC("cuda", "fp32"));
    be b;
    char note[512];
    bz_err e;
    cr_assert_eq(backend_open_on(&p.spec, &p.a, &p.d, n, &b, note, sizeof note, &e), BZ_EBACKEND);
    cr_assert(strstr(e.msg, "does not exist"), "message: %s", e.msg);
    gt_problem_free(&p);
}

Test(gpu_select, worker_devices)
{
    bz_err e;
    cr_assert_eq(backend_worker_device("0,1", 0, &e), 0);
    cr_assert_eq(backend_worker_device("0,1", 3, &e), 1);
    cr_assert_eq(backend_worker_device(" 2 , 5 ", 1, &e), 5);
    cr_assert_eq(backend_worker_device("3", 4, &e), 3);
    cr_assert_eq(backend_worker_device("0,x", 0, &e), BZ_EINVAL);
    cr_assert(strstr(e.msg, "entry 2"), "message: %s", e.msg);
    cr_assert_eq(backend_worker_device("-1", 0, &e), BZ_EINVAL);
    int n = devices(NULL, 0);
    cr_assert_eq(backend_worker_device("", 5, &e), n > 0 ? 5 % n : 0);
}

Test(gpu_select, health_device_list)
{
    char json[8192];
    int n = gpu_describe_devices(json, sizeof json);
    cr_assert_eq(n, devices(NULL, 0));
    json_error_t err;
    json_t *arr = json_loads(json, 0, &err);
    cr_assert(arr && json_is_array(arr), "not a JSON array: %s (%s)", json, err.text);
    cr_assert_eq((int)json_array_size(arr), n);
    for (int i = 0; i < n; i++) {
        json_t *d = json_array_get(arr, (size_t)i);
        cr_assert_eq(json_integer_value(json_object_get(d, "index")), i);
        cr_assert(json_is_string(json_object_get(d, "name")));
        cr_assert(json_number_value(json_object_get(d, "memory_total_mib")) > 0, "%s", json);
        cr_assert(json_is_number(json_object_get(d, "memory_free_mib")), "%s", json);
    }
    json_decref(arr);
    char tiny[2];
    cr_assert_eq(gpu_describe_devices(tiny, sizeof tiny), -1);
}
