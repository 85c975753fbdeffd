/* setup.c: spec + data -> architecture, with the limits that depend on the loaded data. */
#include "setup.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "npy.h"

int setup_arch(const bz_spec *s, const ds_data *d, nn_arch *a, bz_err *e)
{
    int32_t sizes[NN_MAX_LAYERS + 1];
    int32_t n = 0;
    sizes[n++] = d->n_in;
    for (int32_t i = 0; i < s->model.n_hidden; i++) sizes[n++] = s->model.hidden[i];
    sizes[n++] = d->classes;
    int64_t params = 0;
    for (int32_t l = 1; l < n; l++) params += (int64_t)sizes[l] * sizes[l - 1] + (s->model.bias ? sizes[l] : 0);
    if (params > BZ_LIMIT_PARAMS)
        return bz_fail(e, BZ_ELIMIT, "model.hidden",
                       "the network has %lld weights, above the limit of %lld", (long long)params,
                       (long long)BZ_LIMIT_PARAMS);
    return nn_arch_init(a, sizes, n, s->model.bias, e);
}

int setup_load(const bz_spec *s, ds_data *d, nn_arch *a, bz_err *e)
{
    int rc = ds_load(&s->dataset, d, e);
    if (rc) return rc;
    rc = setup_arch(s, d, a, e);
    if (rc) ds_free(d);
    return rc;
}

int setup_hold_out(ds_data *d, double fraction, bz_err *e)
{
    int64_t n_val = (int64_t)llround(fraction * (double)d->n_train);
    if (n_val < 1) n_val = 1;
    if (n_val >= d->n_train)
        return bz_fail(e, BZ_EINVAL, "sampler.early_stopping.val_fraction",
                       "sampler.early_stopping.val_fraction %g leaves no training rows out of %lld", fraction,
                       (long long)d->n_train);
    d->n_train -= n_val;
    d->n_val = n_val;
    d->x_val = d->x_train + (size_t)d->n_train * (size_t)d->n_in;
    d->y_val = d->y_train + d->n_train;
    return 0;
}

int setup_read_weights(const char *path, const nn_arch *a, float **w, bz_err *e)
{
    npy_array arr;
    int rc = npy_read_f32(path, &arr, e);
    if (rc) return rc;
    if (arr.count != a->n || arr.ndim > 2 || (arr.ndim == 2 && arr.shape[0] != 1 && arr.shape[1] != 1)) {
        rc = bz_fail(e, BZ_EFORMAT, path,
                     "%s holds %lld floats in %d dimension(s); this spec's network needs a flat vector of %lld",
                     path, (long long)arr.count, (int)arr.ndim, (long long)a->n);
        npy_free(&arr);
        return rc;
    }
    *w = arr.data;
    return 0;
}

int setup_initial_weights(const bz_spec *s, const nn_arch *a, float *w, bz_err *e)
{
    if (s->init.kind == INIT_RANDOM) {
        nn_init_he(a, w, s->init.seed);
        return 0;
    }
    float *loaded;
    int rc = setup_read_weights(s->init.path, a, &loaded, e);
    if (rc) return rc;
    for (int64_t i = 0; i < a->n; i++)
        if (!isfinite(loaded[i])) {
            free(loaded);
            return bz_fail(e, BZ_EFORMAT, "init.path", "%s: weight %lld is not finite", s->init.path, (long long)i);
        }
    memcpy(w, loaded, sizeof(float) * (size_t)a->n);
    free(loaded);
    return 0;
}
