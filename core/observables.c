/* observables.c: observable names and their NDJSON/CSV serialisation. */
#include "observables.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

const char *const obs_names[OBS_COUNT] = {
    "U", "loss", "w2", "train_err", "test_err", "test_loss", "val_err", "val_loss",
    "kin_T", "msd0",
    "r_mean", "r_max", "grad_var", "grad_var_12",
    "n_raise", "n_reinit", "n_guard", "n_floor", "n_stab", "var_cost", "var_batches",
    "acc_rate", "dH",
    "noise_ks_frac", "noise_corr", "noise_acf1",
    "ex_acc", "replica", "round_trips",
};

void obs_clear(obs_record *r, int64_t step, double t_wall, double T, int32_t chain)
{
    r->step = step;
    r->t_wall = t_wall;
    r->T = T;
    r->chain = chain;
    for (int i = 0; i < OBS_COUNT; i++) r->v[i] = NAN;
}

int obs_lookup(const char *name)
{
    for (int i = 0; i < OBS_COUNT; i++)
        if (!strcmp(obs_names[i], name)) return i;
    return -1;
}

/* Append printf output at *pos; returns 0, or -1 when it did not fit. */
static int append(char *buf, size_t len, size_t *pos, const char *fmt, double v, const char *name)
{
    int k = name ? snprintf(buf + *pos, len - *pos, fmt, name, v) : snprintf(buf + *pos, len - *pos, fmt, v);
    if (k < 0 || (size_t)k >= len - *pos) return -1;
    *pos += (size_t)k;
    return 0;
}

int obs_to_ndjson(const obs_record *r, char *buf, size_t len)
{
    int k = snprintf(buf, len, "{\"step\":%lld,\"t_wall\":%.6f,\"T\":%.9g,\"chain\":%d", (long long)r->step,
                     r->t_wall, r->T, (int)r->chain);
    if (k < 0 || (size_t)k >= len) return -1;
    size_t pos = (size_t)k;
    for (int i = 0; i < OBS_COUNT; i++) {
        int rc = isfinite(r->v[i]) ? append(buf, len, &pos, ",\"%s\":%.10g", r->v[i], obs_names[i])
                                   : append(buf, len, &pos, ",\"%s\":null", 0.0, obs_names[i]);
        if (rc) return -1;
    }
    if (pos + 3 > len) return -1;
    memcpy(buf + pos, "}\n", 3);
    return (int)pos + 2;
}

int obs_csv_header(char *buf, size_t len)
{
    int k = snprintf(buf, len, "step,t_wall,T,chain");
    if (k < 0 || (size_t)k >= len) return -1;
    size_t pos = (size_t)k;
    for (int i = 0; i < OBS_COUNT; i++)
        if (append(buf, len, &pos, ",%s", 0.0, obs_names[i])) return -1;
    if (pos + 2 > len) return -1;
    memcpy(buf + pos, "\n", 2);
    return (int)pos + 1;
}

int obs_to_csv(const obs_record *r, char *buf, size_t len)
{
    int k = snprintf(buf, len, "%lld,%.6f,%.9g,%d", (long long)r->step, r->t_wall, r->T, (int)r->chain);
    if (k < 0 || (size_t)k >= len) return -1;
    size_t pos = (size_t)k;
    for (int i = 0; i < OBS_COUNT; i++) {
        int rc = isfinite(r->v[i]) ? append(buf, len, &pos, ",%.10g", r->v[i], NULL)
                                   : append(buf, len, &pos, ",", 0.0, NULL);
        if (rc) return -1;
    }
    if (pos + 2 > len) return -1;
    memcpy(buf + pos, "\n", 2);
    return (int)pos + 1;
}
