/* spec.h: the job spec (DESIGN.md "Jobs"), parsed and validated from JSON with jansson.
 *
 * Every field has its default from ALGORITHM.md; unknown fields are rejected; every violation
 * is reported with the dotted field name and the rule ("sampler.T must be > 0"). Limits that
 * protect the machine (widths, sizes, steps, memory) are checked here, before any allocation. */
#ifndef BZ_SPEC_H
#define BZ_SPEC_H

#include <stdbool.h>
#include <stdint.h>

#include "bz_error.h"

#define BZ_MAX_HIDDEN 8          /* hidden layers */
#define BZ_MAX_TEMPS 64          /* temperatures in a sweep */
#define BZ_PATH_MAX 1024

/* Limits that protect the machine (checked before any allocation). */
#define BZ_LIMIT_WIDTH 100000         /* any layer width, N0 included */
#define BZ_LIMIT_CLASSES 10000
#define BZ_LIMIT_PARAMS 500000000LL   /* total weights n */
#define BZ_LIMIT_EXAMPLES 10000000LL  /* train or test examples */
#define BZ_LIMIT_DATA_BYTES (16LL << 30) /* float32 inputs of train + test */
#define BZ_LIMIT_STEPS 1000000000000LL
#define BZ_LIMIT_BATCH 1000000

typedef enum { DS_SPIN = 0, DS_FASHION_MNIST, DS_NPY } ds_kind;

typedef struct ds_spec {
    ds_kind kind;
    int32_t n_in;        /* N0: spin: given; fashion: 784 or projection.dim; npy: from the file */
    int32_t classes;     /* C: spin: given; fashion: 10; npy: given or max label + 1 (0 = infer) */
    int64_t train;       /* P; npy: 0 = all rows of the file */
    int64_t test;        /* test examples (0 = none); npy: 0 = all rows of x_test if present */
    double p_flip;       /* spin only */
    uint64_t seed;
    int32_t proj_dim;    /* fashion: 0 = no projection */
    bool binarize;       /* fashion with projection: sign(x) */
    char dir[BZ_PATH_MAX]; /* fashion: IDX folder; npy: folder with x_train.npy, y_train.npy, ... */
} ds_spec;

typedef struct model_spec {
    int32_t n_hidden;
    int32_t hidden[BZ_MAX_HIDDEN];
    bool bias;
    double lambda;
} model_spec;

typedef enum { INIT_RANDOM = 0, INIT_NPY } init_kind;

typedef struct init_spec {
    init_kind kind;      /* "random": He from seed; "npy": a flat float32 weights file */
    uint64_t seed;       /* random */
    char path[BZ_PATH_MAX]; /* npy: e.g. a pre-equilibrated state (boltzd samples / eval output) */
} init_spec;

typedef enum { SM_PL = 0, SM_HMC, SM_MBHMC, SM_NAIVE_PL, SM_SGLD, SM_ADAM, SM_COUNT } sampler_method;
typedef enum { VAR_EXACT = 0, VAR_MINIBATCH } var_method;

typedef struct sampler_spec {
    sampler_method method;
    int32_t n_T;                 /* number of temperatures (1 unless a sweep) */
    double T[BZ_MAX_TEMPS];      /* temperatures; adam: unused (n_T = 1, T[0] = 0) */
    int64_t steps;
    uint64_t seed;
    int32_t batch;               /* pl, mbhmc, naive_pl, sgld, adam */
    double h;                    /* pl 1, hmc/mbhmc 0.1, naive_pl 0.01 */
    double gamma;                /* pl, naive_pl: 0.1 */
    /* pl */
    double r0, r_max;            /* 0.01, 0.1 */
    int64_t update_every;        /* 1000 */
    double p_reinit;             /* 0.01 */
    var_method var_method;       /* exact */
    int64_t var_examples;        /* 16384 */
    int32_t var_min_batches, var_max_batches; /* 16, 256 */
    double var_tol;              /* 0.1 */
    double mass_floor;           /* 0 = auto (1st percentile of positive masses) */
    double layer_floor;          /* 0.1 */
    double kappa;                /* 0.5 */
    double max_disp;             /* 0.2: displacement floor (smp_pl.c), 0 = off */
    int32_t noise_rank;          /* 0: low-rank noise compensation off (pl_lowrank.h), else its rank k */
    double z_guard;              /* 6; 0 = guard off (tests only) */
    /* hmc, mbhmc */
    int32_t leapfrog;            /* 20 */
    double jitter;               /* 0.1 */
    double mass;                 /* hmc, mbhmc, naive_pl: 1 */
    /* sgld, adam */
    double lr;                   /* sgld 1e-4, adam 1e-3 */
    /* adam early stopping */
    bool early_stopping;
    double val_fraction;         /* 0.1 */
    int32_t patience;            /* 10 records */
} sampler_spec;

typedef struct record_spec {
    int64_t every;               /* 200 (steps between observable records) */
    bool test;                   /* evaluate test_err/test_loss when a test set exists (true) */
} record_spec;

typedef struct bz_spec {
    char name[128];
    ds_spec dataset;
    model_spec model;
    init_spec init;
    sampler_spec sampler;
    record_spec record;
    int64_t samples_every;       /* 0 = no weight samples */
    int64_t checkpoint_every;    /* 0 = only at the end */
    int32_t checkpoint_keep;     /* 5 */
    int64_t noise_every;         /* diagnostics.noise_every, 0 = off */
    int32_t noise_batches;       /* diagnostics.batches (D), 64 */
    double burn_in;              /* analysis.burn_in: fraction of records discarded, in [0, 1), 0.2 */
    bool batched;                /* all temperatures as one job (multichain.h); pl, hmc, sgld */
    int64_t exchange_every;      /* exchange.every: replica exchange every so many steps, 0 = off */
    char backend[16];            /* "auto" | "cpu" | "cuda" */
    char precision[8];           /* "fp32" | "tf32" */
} bz_spec;

/* Fill s with every default (dataset spin 100/10/2000/10000, p_flip 0.3; model [64,32]; pl).
 * T and steps have no default: they come out as n_T = 1, T[0] = 0 and steps = 0, to be set by
 * the caller. Parameters that do not belong to the method (or dataset kind) are 0. */
void spec_defaults(bz_spec *s);

/* Set sp->method to m and every parameter of m to its ALGORITHM.md §6b default (parameters of
 * other methods to 0); T, steps and seed are kept (adam: n_T = 1, T[0] = 0). */
void spec_sampler_defaults(sampler_spec *sp, sampler_method m);

/* Parse and validate a JSON text. On error returns BZ_EINVAL (or BZ_ELIMIT for a protective
 * limit) with e->field the dotted name of the first offending field and e->msg the rule; out is
 * left untouched. Integer fields also accept a JSON real that is exactly integral (1e5). Duplicate
 * keys are invalid JSON. For dataset kind npy, n_in (and classes when 0) stay 0 until the files
 * are read, so the width, parameter and memory limits must be checked again by the loader. */
int spec_parse(const char *json_text, bz_spec *out, bz_err *e);
int spec_parse_file(const char *path, bz_spec *out, bz_err *e);

/* The normalised spec with every default filled in, as a compact JSON text (caller frees with
 * free()); only the keys valid for the method and dataset kind. spec_parse(spec_to_json(s))
 * gives back s for any s that spec_parse produced. NULL if out of memory or a number is not
 * finite. */
char *spec_to_json(const bz_spec *s);

const char *spec_method_name(sampler_method m);

/* Total weights n for a spec whose dataset dims are known (n_in, classes > 0). */
int64_t spec_param_count(const bz_spec *s);

#endif
