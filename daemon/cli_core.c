/* cli_core.c: the core-engine subcommands: check, dataset, init, eval. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "dataset.h"
#include "npy.h"
#include "potential.h"
#include "setup.h"
#include "spec.h"

/* cli_parse: 0 go on, 3 help printed (exit 0), else usage error (exit 2). */
static int parse_or_exit(int rc) { return rc == 3 ? 0 : 2; }

static int load_spec(const char *path, bz_spec *s)
{
    bz_err e;
    bz_err_clear(&e);
    if (spec_parse_file(path, s, &e)) return cli_report(&e);
    return 0;
}

static void print_json(json_t *j)
{
    char *text = json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
    if (text) printf("%s\n", text);
    free(text);
    json_decref(j);
}

/* A JSON number, or null for NaN (no test set). */
static json_t *num_or_null(double v) { return isfinite(v) ? json_real(v) : json_null(); }

int cli_check(int argc, char **argv)
{
    const char *spec_path = NULL;
    const cli_opt opts[] = {{NULL, NULL, 0}};
    int rc = cli_parse(argc, argv, opts, &spec_path, 1, "boltzd check SPEC.json");
    if (rc) return parse_or_exit(rc);
    bz_spec s;
    if (load_spec(spec_path, &s)) return 1;
    char *text = spec_to_json(&s);
    if (!text) return 1;
    printf("%s\n", text);
    free(text);
    return 0;
}

static json_t *class_counts_json(const int32_t *y, int64_t rows, int32_t classes)
{
    int64_t *counts = calloc((size_t)classes, sizeof *counts);
    json_t *arr = json_array();
    if (!counts) return arr;
    ds_class_counts(y, rows, classes, counts);
    for (int32_t c = 0; c < classes; c++) json_array_append_new(arr, json_integer(counts[c]));
    free(counts);
    return arr;
}

static int write_dataset(const ds_data *d, const char *dir, bz_err *e)
{
    char path[BZ_PATH_MAX + 32];
    int64_t shape[2];
    struct {
        const char *name;
        npy_dtype dt;
        int nd;
        int64_t rows;
        int64_t cols;
        const void *data;
    } files[] = {
        {"x_train.npy", NPY_F32, 2, d->n_train, d->n_in, d->x_train},
        {"y_train.npy", NPY_I32, 1, d->n_train, 0, d->y_train},
        {"x_test.npy", NPY_F32, 2, d->n_test, d->n_in, d->x_test},
        {"y_test.npy", NPY_I32, 1, d->n_test, 0, d->y_test},
    };
    int n_files = d->n_test > 0 ? 4 : 2;
    for (int i = 0; i < n_files; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i].name);
        shape[0] = files[i].rows;
        shape[1] = files[i].cols;
        int rc = npy_write(path, files[i].dt, files[i].nd, shape, files[i].data, e);
        if (rc) return rc;
    }
    return 0;
}

static int ensure_dir(const char *dir, bz_err *e)
{
    if (mkdir(dir, 0755) == 0 || errno == EEXIST) return 0;
    return bz_fail(e, BZ_EIO, dir, "cannot create folder %s: %s", dir, strerror(errno));
}

int cli_dataset(int argc, char **argv)
{
    const char *spec_path = NULL, *out = NULL;
    const cli_opt opts[] = {{"--out", &out, 0}, {NULL, NULL, 0}};
    int rc = cli_parse(argc, argv, opts, &spec_path, 1,
                       "boltzd dataset SPEC.json --out DIR   (writes x_train.npy y_train.npy [x_test.npy y_test.npy])");
    if (rc) return parse_or_exit(rc);
    if (!out) {
        fprintf(stderr, "boltzd: dataset needs --out DIR\n");
        return 2;
    }
    bz_spec s;
    if (load_spec(spec_path, &s)) return 1;
    bz_err e;
    bz_err_clear(&e);
    ds_data d;
    if (ds_load(&s.dataset, &d, &e) || ensure_dir(out, &e) || write_dataset(&d, out, &e)) {
        ds_free(&d);
        return cli_report(&e);
    }
    json_t *j = json_pack("{s:s, s:i, s:i, s:I, s:I, s:o, s:o, s:o}", "dir", out, "n_in", (int)d.n_in,
                          "classes", (int)d.classes, "train", (json_int_t)d.n_train, "test",
                          (json_int_t)d.n_test, "train_class_counts",
                          class_counts_json(d.y_train, d.n_train, d.classes), "test_class_counts",
                          class_counts_json(d.y_test, d.n_test, d.classes), "geometric_bound",
                          d.geometric_bound >= 0 ? json_real(d.geometric_bound) : json_null());
    print_json(j);
    ds_free(&d);
    return 0;
}

/* Architecture without loading the data when its dimensions are in the spec (not npy). */
static int spec_arch(const bz_spec *s, nn_arch *a, bz_err *e)
{
    ds_data d;
    memset(&d, 0, sizeof d);
    if (s->dataset.kind == DS_NPY) {
        int rc = ds_load(&s->dataset, &d, e);
        if (rc) return rc;
    } else {
        d.n_in = s->dataset.n_in;
        d.classes = s->dataset.classes;
    }
    int rc = setup_arch(s, &d, a, e);
    ds_free(&d);
    return rc;
}

int cli_init(int argc, char **argv)
{
    const char *spec_path = NULL, *out = NULL;
    const cli_opt opts[] = {{"--out", &out, 0}, {NULL, NULL, 0}};
    int rc = cli_parse(argc, argv, opts, &spec_path, 1, "boltzd init SPEC.json --out w.npy");
    if (rc) return parse_or_exit(rc);
    if (!out) {
        fprintf(stderr, "boltzd: init needs --out FILE.npy\n");
        return 2;
    }
    bz_spec s;
    if (load_spec(spec_path, &s)) return 1;
    bz_err e;
    bz_err_clear(&e);
    nn_arch a;
    if (spec_arch(&s, &a, &e)) return cli_report(&e);
    float *w = malloc(sizeof(float) * (size_t)a.n);
    if (!w) return cli_report(&(bz_err){BZ_ENOMEM, "", "out of memory for the weights"});
    int64_t shape[1] = {a.n};
    rc = setup_initial_weights(&s, &a, w, &e);
    if (!rc) rc = npy_write(out, NPY_F32, 1, shape, w, &e);
    free(w);
    if (rc) return cli_report(&e);
    printf("{\"n\": %lld, \"out\": \"%s\"}\n", (long long)a.n, out);
    return 0;
}

static json_t *observables_json(const pot_obs *o, int64_t n)
{
    return json_pack("{s:I, s:o, s:o, s:o, s:o, s:o, s:o}", "n", (json_int_t)n, "U", json_real(o->U), "loss",
                     json_real(o->loss), "w2", json_real(o->w2), "train_err", json_real(o->train_err),
                     "test_err", num_or_null(o->test_err), "test_loss", num_or_null(o->test_loss));
}

int cli_eval(int argc, char **argv)
{
    const char *spec_path = NULL, *wpath = NULL, *grad_out = NULL;
    const cli_opt opts[] = {{"--weights", &wpath, 0}, {"--grad-out", &grad_out, 0}, {NULL, NULL, 0}};
    int rc = cli_parse(argc, argv, opts, &spec_path, 1,
                       "boltzd eval SPEC.json --weights w.npy [--grad-out g.npy]");
    if (rc) return parse_or_exit(rc);
    if (!wpath) {
        fprintf(stderr, "boltzd: eval needs --weights FILE.npy\n");
        return 2;
    }
    bz_spec s;
    if (load_spec(spec_path, &s)) return 1;
    bz_err e;
    bz_err_clear(&e);
    ds_data d;
    nn_arch a;
    if (setup_load(&s, &d, &a, &e)) return cli_report(&e);
    float *w = NULL, *g = NULL;
    pot_ctx p;
    memset(&p, 0, sizeof p);
    rc = setup_read_weights(wpath, &a, &w, &e);
    if (!rc) rc = pot_init(&p, &a, &d, s.model.lambda, 1, &e);
    if (!rc) {
        pot_obs o;
        pot_observe(&p, w, s.record.test, &o);
        if (grad_out) {
            g = malloc(sizeof(float) * (size_t)a.n);
            if (!g) rc = bz_fail(&e, BZ_ENOMEM, NULL, "out of memory for the gradient");
            if (!rc) pot_grad_full(&p, w, g);
            int64_t shape[1] = {a.n};
            if (!rc) rc = npy_write(grad_out, NPY_F32, 1, shape, g, &e);
        }
        if (!rc) print_json(observables_json(&o, a.n));
    }
    free(w);
    free(g);
    pot_free(&p);
    ds_free(&d);
    return rc ? cli_report(&e) : 0;
}
