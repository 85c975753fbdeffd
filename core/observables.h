/* observables.h: one record of a chain's observables (ALGORITHM.md §2 table), the names used in
 * the API and in files, and their NDJSON/CSV forms. A value that does not apply to a method (or
 * was not computed) is NaN and is written as null (NDJSON) or an empty cell (CSV). */
#ifndef BZ_OBSERVABLES_H
#define BZ_OBSERVABLES_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    OBS_U = 0, OBS_LOSS, OBS_W2, OBS_TRAIN_ERR, OBS_TEST_ERR, OBS_TEST_LOSS, OBS_VAL_ERR, OBS_VAL_LOSS,
    OBS_KIN_T, OBS_MSD0,
    OBS_R_MEAN, OBS_R_MAX, OBS_GRAD_VAR, OBS_GRAD_VAR_12,
    OBS_N_RAISE, OBS_N_REINIT, OBS_N_GUARD, OBS_N_FLOOR, OBS_N_STAB, OBS_VAR_COST, OBS_VAR_BATCHES,
    OBS_ACC_RATE, OBS_DH,
    OBS_NOISE_KS_FRAC, OBS_NOISE_CORR, OBS_NOISE_ACF1,
    OBS_EX_ACC, OBS_REPLICA, OBS_ROUND_TRIPS,
    OBS_COUNT
} obs_id;

typedef struct obs_record {
    int64_t step;      /* completed steps (trajectories for hMC) */
    double t_wall;     /* seconds of sampling since the chain started (summed over resumes) */
    double T;          /* temperature of the chain */
    int32_t chain;     /* index within a sweep */
    double v[OBS_COUNT];
} obs_record;

extern const char *const obs_names[OBS_COUNT];

/* All values NaN; step, t_wall, T, chain as given. */
void obs_clear(obs_record *r, int64_t step, double t_wall, double T, int32_t chain);
/* Index of a name, or -1. */
int obs_lookup(const char *name);

/* One NDJSON line (with '\n') into buf; returns the length, or -1 if buf is too small. */
int obs_to_ndjson(const obs_record *r, char *buf, size_t len);
/* CSV header line and one row (with '\n'), same columns: step,t_wall,T,chain,<obs_names>. */
int obs_csv_header(char *buf, size_t len);
int obs_to_csv(const obs_record *r, char *buf, size_t len);

#endif
