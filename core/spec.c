/* spec.c: the job spec (DESIGN.md "Jobs") parsed from JSON, validated and printed back.
 *
 * Every key of every object is one row of a table: its type, where it lives in bz_spec, which
 * variants (sampler methods, dataset kinds) it belongs to, its default per variant (ALGORITHM.md
 * §6b) and its allowed range. The same tables drive parsing, defaults and spec_to_json, so the
 * three cannot disagree. Rules that involve two fields live in the per-section check functions;
 * the limits that protect the machine are checked last, in spec_parse, before anything is
 * allocated.
 *
 * Choices written down here: integer fields accept a JSON real that is exactly integral (1e5);
 * a T list of one element is the same as a number; the name is 1..127 characters with no control
 * characters; a temperature list longer than BZ_MAX_TEMPS is BZ_ELIMIT (one chain each). */
#include "spec.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(sizeof(ds_kind) == sizeof(int), "enum fields are stored as int");
_Static_assert(sizeof(sampler_method) == sizeof(int), "enum fields are stored as int");
_Static_assert(sizeof(var_method) == sizeof(int), "enum fields are stored as int");

#define FASHION_DIR "/usr/share/datasets/fashion-mnist"
#define FASHION_PIXELS 784
#define FASHION_TRAIN 60000
#define FASHION_TEST 10000
#define FASHION_CLASSES 10
#define SPEC_FILE_MAX (16L << 20) /* a spec file larger than this is not a spec */

/* ---- the tables ---- */

typedef enum { F_INT32, F_INT64, F_U64, F_REAL, F_BOOL, F_STR, F_ENUM, F_OBJ, F_CUSTOM } ftype;

enum {
    R_LO_OPEN = 1,   /* x > lo (default x >= lo) */
    R_HI_OPEN = 2,   /* x < hi (default x <= hi) */
    R_HI_LIMIT = 4,  /* x > hi is BZ_ELIMIT (a limit that protects the machine) */
    R_NO_HI = 8      /* hi is only the type's maximum: the rule states the lower bound */
};

struct section;

/* A custom field: parse v (NULL = absent: set the default) into s; emit the JSON value of s. */
typedef int (*parse_fn)(json_t *v, const char *path, bz_spec *s, bz_err *e);
typedef json_t *(*emit_fn)(const bz_spec *s);

typedef struct field {
    const char *key;
    ftype type;
    size_t off;                 /* offset in bz_spec; SIZE_MAX = not stored (init.kind) */
    unsigned variants;          /* bit v set: the key belongs to variant v */
    unsigned required;          /* bit v set: the key must be given for variant v */
    double def[SM_COUNT];       /* default per variant (numbers, bools, enum index) */
    double lo, hi;              /* allowed range (numbers) */
    unsigned flags;             /* R_* */
    const char *const *choices; /* F_STR (NULL = any string), F_ENUM: NULL-terminated */
    size_t cap;                 /* F_STR: buffer size in bz_spec */
    const char *sdef;           /* F_STR: default */
    const struct section *sub;  /* F_OBJ */
    parse_fn parse;             /* F_CUSTOM */
    emit_fn emit;               /* F_CUSTOM */
    bool (*omit)(const bz_spec *s); /* true: spec_to_json leaves the key out (a key added later
                                       that is at its default, so older specs keep their hash) */
} field;

typedef struct section {
    const field *fields;
    size_t n;
    const char *variant_key;            /* "kind", "method" or NULL */
    const char *variant_word;           /* "dataset kind", "method" */
    const char *const *variant_names;   /* indexed by variant */
    int (*variant_of)(const bz_spec *s);
    int (*check)(const char *path, bz_spec *s, bz_err *e); /* rules across fields, or NULL */
} section;

#define ALL 0xffffu
#define V(x) (1u << (x))
#define OFF(m) offsetof(bz_spec, m)
#define I32MAX 2147483647.0
#define I64MAX 9223372036854775807.0
#define NOHI(x) .lo = (x), .hi = I64MAX, .flags = R_NO_HI

static const char *const ds_names[] = { "spin", "fashion_mnist", "npy", NULL };
static const char *const method_names[] = { "pl", "hmc", "mbhmc", "naive_pl", "sgld", "adam", NULL };
static const char *const var_names[] = { "exact", "minibatch", NULL };
static const char *const init_names[] = { "random", "npy", NULL };
static const char *const backend_names[] = { "auto", "cpu", "cuda", NULL };
static const char *const precision_names[] = { "fp32", "tf32", NULL };

static int parse_T(json_t *v, const char *path, bz_spec *s, bz_err *e);
static json_t *emit_T(const bz_spec *s);
static int parse_hidden(json_t *v, const char *path, bz_spec *s, bz_err *e);
static json_t *emit_hidden(const bz_spec *s);
static int parse_mass_floor(json_t *v, const char *path, bz_spec *s, bz_err *e);
static json_t *emit_mass_floor(const bz_spec *s);
static int parse_z_guard(json_t *v, const char *path, bz_spec *s, bz_err *e);
static json_t *emit_z_guard(const bz_spec *s);
static int parse_early_stopping(json_t *v, const char *path, bz_spec *s, bz_err *e);
static json_t *emit_early_stopping(const bz_spec *s);
static int parse_projection(json_t *v, const char *path, bz_spec *s, bz_err *e);
static json_t *emit_projection(const bz_spec *s);
static int check_dataset(const char *path, bz_spec *s, bz_err *e);
static int check_sampler(const char *path, bz_spec *s, bz_err *e);
static int dataset_variant(const bz_spec *s) { return (int)s->dataset.kind; }
static int sampler_variant(const bz_spec *s) { return (int)s->sampler.method; }

#define SPIN V(DS_SPIN)
#define FASHION V(DS_FASHION_MNIST)
#define NPY V(DS_NPY)

static const field dataset_fields[] = {
    { .key = "kind", .type = F_ENUM, .off = OFF(dataset.kind), .variants = ALL,
      .def = { DS_SPIN }, .choices = ds_names },
    /* spin */
    { .key = "n_in", .type = F_INT32, .off = OFF(dataset.n_in), .variants = SPIN,
      .def = { [DS_SPIN] = 100 }, .lo = 1, .hi = BZ_LIMIT_WIDTH, .flags = R_HI_LIMIT },
    { .key = "classes", .type = F_INT32, .off = OFF(dataset.classes), .variants = SPIN,
      .def = { [DS_SPIN] = 10 }, .lo = 2, .hi = BZ_LIMIT_CLASSES, .flags = R_HI_LIMIT },
    { .key = "classes", .type = F_INT32, .off = OFF(dataset.classes), .variants = FASHION,
      .def = { [DS_FASHION_MNIST] = FASHION_CLASSES }, .lo = FASHION_CLASSES, .hi = FASHION_CLASSES },
    { .key = "classes", .type = F_INT32, .off = OFF(dataset.classes), .variants = NPY,
      .def = { [DS_NPY] = 0 }, .lo = 0, .hi = BZ_LIMIT_CLASSES, .flags = R_HI_LIMIT },
    { .key = "train", .type = F_INT64, .off = OFF(dataset.train), .variants = SPIN,
      .def = { [DS_SPIN] = 2000 }, .lo = 1, .hi = BZ_LIMIT_EXAMPLES, .flags = R_HI_LIMIT },
    { .key = "train", .type = F_INT64, .off = OFF(dataset.train), .variants = FASHION,
      .def = { [DS_FASHION_MNIST] = FASHION_TRAIN }, .lo = 1, .hi = FASHION_TRAIN },
    { .key = "train", .type = F_INT64, .off = OFF(dataset.train), .variants = NPY,
      .def = { [DS_NPY] = 0 }, .lo = 0, .hi = BZ_LIMIT_EXAMPLES, .flags = R_HI_LIMIT },
    { .key = "test", .type = F_INT64, .off = OFF(dataset.test), .variants = SPIN | NPY,
      .def = { [DS_SPIN] = 10000, [DS_NPY] = 0 }, .lo = 0, .hi = BZ_LIMIT_EXAMPLES,
      .flags = R_HI_LIMIT },
    { .key = "test", .type = F_INT64, .off = OFF(dataset.test), .variants = FASHION,
      .def = { [DS_FASHION_MNIST] = FASHION_TEST }, .lo = 0, .hi = FASHION_TEST },
    { .key = "p_flip", .type = F_REAL, .off = OFF(dataset.p_flip), .variants = SPIN,
      .def = { [DS_SPIN] = 0.3 }, .lo = 0, .hi = 0.5 },
    { .key = "seed", .type = F_U64, .off = OFF(dataset.seed), .variants = ALL,
      .def = { 1, 1, 1 }, NOHI(0) },
    /* fashion_mnist, npy */
    { .key = "dir", .type = F_STR, .off = OFF(dataset.dir), .variants = FASHION | NPY,
      .required = NPY, .cap = BZ_PATH_MAX, .sdef = FASHION_DIR },
    { .key = "projection", .type = F_CUSTOM, .variants = FASHION,
      .parse = parse_projection, .emit = emit_projection },
};

static const field projection_fields[] = {
    { .key = "dim", .type = F_INT32, .off = OFF(dataset.proj_dim), .variants = ALL, .required = ALL,
      .lo = 1, .hi = BZ_LIMIT_WIDTH, .flags = R_HI_LIMIT },
    { .key = "binarize", .type = F_BOOL, .off = OFF(dataset.binarize), .variants = ALL },
};

static const field model_fields[] = {
    { .key = "hidden", .type = F_CUSTOM, .variants = ALL, .parse = parse_hidden, .emit = emit_hidden },
    { .key = "bias", .type = F_BOOL, .off = OFF(model.bias), .variants = ALL, .def = { 1 } },
    { .key = "lambda", .type = F_REAL, .off = OFF(model.lambda), .variants = ALL, .def = { 1e-3 },
      .lo = 0, .hi = INFINITY, .flags = R_NO_HI },
};

static const field init_fields[] = {
    { .key = "kind", .type = F_ENUM, .off = OFF(init.kind), .variants = ALL, .def = { INIT_RANDOM },
      .choices = init_names },
    { .key = "seed", .type = F_U64, .off = OFF(init.seed), .variants = V(INIT_RANDOM), .def = { 2 }, NOHI(0) },
    { .key = "path", .type = F_STR, .off = OFF(init.path), .variants = V(INIT_NPY), .required = V(INIT_NPY),
      .cap = BZ_PATH_MAX },
};

#define PL V(SM_PL)
#define HMC V(SM_HMC)
#define MBHMC V(SM_MBHMC)
#define NAIVE V(SM_NAIVE_PL)
#define SGLD V(SM_SGLD)
#define ADAM V(SM_ADAM)
#define TEMPERED (PL | HMC | MBHMC | NAIVE | SGLD)
#define REAL_POS .lo = 0, .hi = INFINITY, .flags = R_LO_OPEN | R_NO_HI

static bool no_noise_rank(const bz_spec *s) { return s->sampler.noise_rank == 0; }

static const field sampler_fields[] = {
    { .key = "method", .type = F_ENUM, .off = OFF(sampler.method), .variants = ALL,
      .def = { SM_PL }, .choices = method_names },
    { .key = "T", .type = F_CUSTOM, .variants = TEMPERED, .required = TEMPERED,
      .parse = parse_T, .emit = emit_T },
    { .key = "steps", .type = F_INT64, .off = OFF(sampler.steps), .variants = ALL, .required = ALL,
      .lo = 1, .hi = (double)BZ_LIMIT_STEPS, .flags = R_HI_LIMIT },
    { .key = "seed", .type = F_U64, .off = OFF(sampler.seed), .variants = ALL,
      .def = { 3, 3, 3, 3, 3, 3 }, NOHI(0) },
    { .key = "batch", .type = F_INT32, .off = OFF(sampler.batch),
      .variants = PL | MBHMC | NAIVE | SGLD | ADAM,
      .def = { [SM_PL] = 128, [SM_MBHMC] = 128, [SM_NAIVE_PL] = 128, [SM_SGLD] = 128, [SM_ADAM] = 128 },
      .lo = 1, .hi = BZ_LIMIT_BATCH, .flags = R_HI_LIMIT },
    { .key = "h", .type = F_REAL, .off = OFF(sampler.h), .variants = PL | HMC | MBHMC | NAIVE,
      .def = { [SM_PL] = 1.0, [SM_HMC] = 0.1, [SM_MBHMC] = 0.1, [SM_NAIVE_PL] = 0.01 }, REAL_POS },
    { .key = "gamma", .type = F_REAL, .off = OFF(sampler.gamma), .variants = PL | NAIVE,
      .def = { [SM_PL] = 0.1, [SM_NAIVE_PL] = 0.1 }, REAL_POS },
    /* pl */
    { .key = "r0", .type = F_REAL, .off = OFF(sampler.r0), .variants = PL, .def = { 0.01 },
      .lo = 0, .hi = 1, .flags = R_LO_OPEN | R_HI_OPEN },
    { .key = "r_max", .type = F_REAL, .off = OFF(sampler.r_max), .variants = PL, .def = { 0.1 },
      .lo = 0, .hi = 1, .flags = R_LO_OPEN | R_HI_OPEN },
    { .key = "update_every", .type = F_INT64, .off = OFF(sampler.update_every), .variants = PL,
      .def = { 1000 }, NOHI(1) },
    { .key = "p_reinit", .type = F_REAL, .off = OFF(sampler.p_reinit), .variants = PL,
      .def = { 0.01 }, .lo = 0, .hi = 1 },
    { .key = "var_method", .type = F_ENUM, .off = OFF(sampler.var_method), .variants = PL,
      .def = { VAR_EXACT }, .choices = var_names },
    { .key = "var_examples", .type = F_INT64, .off = OFF(sampler.var_examples), .variants = PL,
      .def = { 16384 }, .lo = 1, .hi = BZ_LIMIT_EXAMPLES, .flags = R_HI_LIMIT },
    { .key = "var_min_batches", .type = F_INT32, .off = OFF(sampler.var_min_batches),
      .variants = PL, .def = { 16 }, .lo = 2, .hi = I32MAX, .flags = R_NO_HI },
    { .key = "var_max_batches", .type = F_INT32, .off = OFF(sampler.var_max_batches),
      .variants = PL, .def = { 256 }, .lo = 2, .hi = I32MAX, .flags = R_NO_HI },
    { .key = "var_tol", .type = F_REAL, .off = OFF(sampler.var_tol), .variants = PL,
      .def = { 0.1 }, REAL_POS },
    { .key = "mass_floor", .type = F_CUSTOM, .variants = PL, .parse = parse_mass_floor,
      .emit = emit_mass_floor },
    { .key = "layer_floor", .type = F_REAL, .off = OFF(sampler.layer_floor), .variants = PL,
      .def = { 0.1 }, .lo = 0, .hi = 1 },
    { .key = "kappa", .type = F_REAL, .off = OFF(sampler.kappa), .variants = PL, .def = { 0.5 },
      REAL_POS },
    { .key = "noise_rank", .type = F_INT32, .off = OFF(sampler.noise_rank), .variants = PL,
      .lo = 0, .hi = 256, .omit = no_noise_rank },
    { .key = "max_disp", .type = F_REAL, .off = OFF(sampler.max_disp), .variants = PL,
      .def = { 0.2 }, .lo = 0, .hi = 1 },
    { .key = "z_guard", .type = F_CUSTOM, .variants = PL, .parse = parse_z_guard,
      .emit = emit_z_guard },
    /* hmc, mbhmc, naive_pl */
    { .key = "leapfrog", .type = F_INT32, .off = OFF(sampler.leapfrog), .variants = HMC | MBHMC,
      .def = { [SM_HMC] = 20, [SM_MBHMC] = 20 }, .lo = 1, .hi = I32MAX, .flags = R_NO_HI },
    { .key = "mass", .type = F_REAL, .off = OFF(sampler.mass), .variants = HMC | MBHMC | NAIVE,
      .def = { [SM_HMC] = 1, [SM_MBHMC] = 1, [SM_NAIVE_PL] = 1 }, REAL_POS },
    { .key = "jitter", .type = F_REAL, .off = OFF(sampler.jitter), .variants = HMC | MBHMC,
      .def = { [SM_HMC] = 0.1, [SM_MBHMC] = 0.1 }, .lo = 0, .hi = 1, .flags = R_HI_OPEN },
    /* sgld, adam */
    { .key = "lr", .type = F_REAL, .off = OFF(sampler.lr), .variants = SGLD | ADAM,
      .def = { [SM_SGLD] = 1e-4, [SM_ADAM] = 1e-3 }, REAL_POS },
    { .key = "early_stopping", .type = F_CUSTOM, .variants = ADAM, .parse = parse_early_stopping,
      .emit = emit_early_stopping },
};

static const field early_stopping_fields[] = {
    { .key = "val_fraction", .type = F_REAL, .off = OFF(sampler.val_fraction), .variants = ALL,
      .def = { 0.1 }, .lo = 0, .hi = 1, .flags = R_LO_OPEN | R_HI_OPEN },
    { .key = "patience", .type = F_INT32, .off = OFF(sampler.patience), .variants = ALL,
      .def = { 10 }, .lo = 1, .hi = I32MAX, .flags = R_NO_HI },
};

static const field record_fields[] = {
    { .key = "every", .type = F_INT64, .off = OFF(record.every), .variants = ALL, .def = { 200 },
      NOHI(1) },
    { .key = "test", .type = F_BOOL, .off = OFF(record.test), .variants = ALL, .def = { 1 } },
};

static const field samples_fields[] = {
    { .key = "every", .type = F_INT64, .off = OFF(samples_every), .variants = ALL, NOHI(0) },
};

static const field checkpoint_fields[] = {
    { .key = "every", .type = F_INT64, .off = OFF(checkpoint_every), .variants = ALL, NOHI(0) },
    { .key = "keep", .type = F_INT32, .off = OFF(checkpoint_keep), .variants = ALL, .def = { 5 },
      .lo = 1, .hi = I32MAX, .flags = R_NO_HI },
};

static const field diagnostics_fields[] = {
    { .key = "noise_every", .type = F_INT64, .off = OFF(noise_every), .variants = ALL, NOHI(0) },
    { .key = "batches", .type = F_INT32, .off = OFF(noise_batches), .variants = ALL, .def = { 64 },
      .lo = 2, .hi = I32MAX, .flags = R_NO_HI },
};

static const field exchange_fields[] = {
    { .key = "every", .type = F_INT64, .off = OFF(exchange_every), .variants = ALL, NOHI(0) },
};

static const field analysis_fields[] = {
    { .key = "burn_in", .type = F_REAL, .off = OFF(burn_in), .variants = ALL, .def = { 0.2 },
      .lo = 0, .hi = 1, .flags = R_HI_OPEN },
};

#define NF(a) (sizeof(a) / sizeof((a)[0]))
#define SECTION(a) { .fields = (a), .n = NF(a) }

static const section sec_dataset = {
    .fields = dataset_fields, .n = NF(dataset_fields), .variant_key = "kind",
    .variant_word = "dataset kind", .variant_names = ds_names, .variant_of = dataset_variant, .check = check_dataset
};
static const section sec_sampler = {
    .fields = sampler_fields, .n = NF(sampler_fields), .variant_key = "method",
    .variant_word = "method", .variant_names = method_names, .variant_of = sampler_variant, .check = check_sampler
};
static const section sec_projection = SECTION(projection_fields);
static const section sec_early_stopping = SECTION(early_stopping_fields);
static const section sec_model = SECTION(model_fields);
static int init_variant(const bz_spec *s) { return (int)s->init.kind; }
static const section sec_init = {
    .fields = init_fields, .n = NF(init_fields), .variant_key = "kind", .variant_word = "init kind",
    .variant_names = init_names, .variant_of = init_variant
};
static const section sec_record = SECTION(record_fields);
static const section sec_samples = SECTION(samples_fields);
static const section sec_checkpoint = SECTION(checkpoint_fields);
static const section sec_diagnostics = SECTION(diagnostics_fields);
static const section sec_analysis = SECTION(analysis_fields);
static const section sec_exchange = SECTION(exchange_fields);
static bool not_batched(const bz_spec *s) { return !s->batched; }
static bool no_exchange(const bz_spec *s) { return s->exchange_every == 0; }

static const field top_fields[] = {
    { .key = "name", .type = F_STR, .off = OFF(name), .variants = ALL, .cap = 128, .sdef = "job" },
    { .key = "dataset", .type = F_OBJ, .variants = ALL, .sub = &sec_dataset },
    { .key = "model", .type = F_OBJ, .variants = ALL, .sub = &sec_model },
    { .key = "init", .type = F_OBJ, .variants = ALL, .sub = &sec_init },
    { .key = "sampler", .type = F_OBJ, .variants = ALL, .sub = &sec_sampler },
    { .key = "record", .type = F_OBJ, .variants = ALL, .sub = &sec_record },
    { .key = "samples", .type = F_OBJ, .variants = ALL, .sub = &sec_samples },
    { .key = "checkpoint", .type = F_OBJ, .variants = ALL, .sub = &sec_checkpoint },
    { .key = "diagnostics", .type = F_OBJ, .variants = ALL, .sub = &sec_diagnostics },
    { .key = "analysis", .type = F_OBJ, .variants = ALL, .sub = &sec_analysis },
    { .key = "batched", .type = F_BOOL, .off = OFF(batched), .variants = ALL, .omit = not_batched },
    { .key = "exchange", .type = F_OBJ, .variants = ALL, .sub = &sec_exchange, .omit = no_exchange },
    { .key = "backend", .type = F_STR, .off = OFF(backend), .variants = ALL, .cap = 16,
      .choices = backend_names, .sdef = "auto" },
    { .key = "precision", .type = F_STR, .off = OFF(precision), .variants = ALL, .cap = 8,
      .choices = precision_names, .sdef = "fp32" },
};
static const section sec_top = SECTION(top_fields);

/* ---- small helpers ---- */

static void *at(bz_spec *s, size_t off) { return (char *)s + off; }
static const void *cat(const bz_spec *s, size_t off) { return (const char *)s + off; }

static void join(char *buf, size_t len, const char *path, const char *key)
{
    if (path[0]) snprintf(buf, len, "%s.%s", path, key);
    else snprintf(buf, len, "%s", key);
}

/* A short description of a JSON value for "(got ...)": "abc" in quotes, numbers, or the type. */
static const char *describe(const json_t *v, char *buf, size_t len)
{
    switch (json_typeof(v)) {
    case JSON_STRING: snprintf(buf, len, "\"%.40s\"", json_string_value(v)); break;
    case JSON_INTEGER: snprintf(buf, len, "%lld", (long long)json_integer_value(v)); break;
    case JSON_REAL: snprintf(buf, len, "%g", json_real_value(v)); break;
    case JSON_TRUE: snprintf(buf, len, "true"); break;
    case JSON_FALSE: snprintf(buf, len, "false"); break;
    case JSON_NULL: snprintf(buf, len, "null"); break;
    case JSON_ARRAY: snprintf(buf, len, "an array"); break;
    case JSON_OBJECT: snprintf(buf, len, "an object"); break;
    }
    return buf;
}

static const char *fmt_num(double x, bool is_int, char *buf, size_t len)
{
    if (is_int && fabs(x) < 9e18) snprintf(buf, len, "%lld", (long long)x);
    else snprintf(buf, len, "%g", x);
    return buf;
}

static bool is_int_type(ftype t) { return t == F_INT32 || t == F_INT64 || t == F_U64; }

/* Check x against the row's range; the message states the rule and the value. */
static int check_range(const field *f, double x, const char *path, bz_err *e)
{
    bool isint = is_int_type(f->type);
    bool lo_bad = (f->flags & R_LO_OPEN) ? !(x > f->lo) : !(x >= f->lo);
    bool hi_bad = (f->flags & R_HI_OPEN) ? !(x < f->hi) : !(x <= f->hi);
    if (!lo_bad && !hi_bad) return 0;
    char xs[32], los[32], his[32];
    fmt_num(x, isint, xs, sizeof xs);
    fmt_num(f->lo, isint, los, sizeof los);
    fmt_num(f->hi, isint, his, sizeof his);
    if (hi_bad && (f->flags & R_HI_LIMIT))
        return bz_fail(e, BZ_ELIMIT, path, "%s is %s, more than the limit of %s", path, xs, his);
    if (f->lo == f->hi) return bz_fail(e, BZ_EINVAL, path, "%s must be %s (got %s)", path, los, xs);
    if (lo_bad && (f->flags & (R_NO_HI | R_HI_LIMIT)))
        return bz_fail(e, BZ_EINVAL, path, "%s must be %s %s (got %s)", path,
                       (f->flags & R_LO_OPEN) ? ">" : ">=", los, xs);
    if (hi_bad && (f->flags & R_NO_HI))
        return bz_fail(e, BZ_EINVAL, path, "%s must be <= %s (got %s)", path, his, xs);
    return bz_fail(e, BZ_EINVAL, path, "%s must be in %c%s, %s%c (got %s)", path,
                   (f->flags & R_LO_OPEN) ? '(' : '[', los, his, (f->flags & R_HI_OPEN) ? ')' : ']',
                   xs);
}

/* An integer value: a JSON integer, or a real that is exactly integral. */
static int get_int(json_t *v, const char *path, const char *what, int64_t *out, bz_err *e)
{
    char got[64];
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return 0;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (d == floor(d) && fabs(d) < 9.2e18) {
            *out = (int64_t)d;
            return 0;
        }
    }
    return bz_fail(e, BZ_EINVAL, path, "%s must be %s (got %s)", path, what,
                   describe(v, got, sizeof got));
}

static int get_number(json_t *v, const char *path, double *out, bz_err *e)
{
    char got[64];
    if (!json_is_number(v))
        return bz_fail(e, BZ_EINVAL, path, "%s must be a number (got %s)", path,
                       describe(v, got, sizeof got));
    *out = json_number_value(v);
    return 0;
}

/* Index of v among choices, or an error listing them. */
static int get_choice(json_t *v, const char *const *choices, const char *path, int *out, bz_err *e)
{
    char got[64], list[256] = "";
    if (json_is_string(v)) {
        for (int i = 0; choices[i]; i++)
            if (strcmp(json_string_value(v), choices[i]) == 0) {
                *out = i;
                return 0;
            }
    }
    for (int i = 0; choices[i]; i++) {
        size_t n = strlen(list);
        snprintf(list + n, sizeof list - n, "%s\"%s\"", i ? ", " : "", choices[i]);
    }
    return bz_fail(e, BZ_EINVAL, path, "%s must be one of %s (got %s)", path, list,
                   describe(v, got, sizeof got));
}

static int check_string(const field *f, const char *str, size_t len, const char *path, bz_err *e)
{
    if (len == 0 || len >= f->cap)
        return bz_fail(e, BZ_EINVAL, path, "%s must be a string of 1 to %zu characters (got %zu)",
                       path, f->cap - 1, len);
    if (strlen(str) != len)
        return bz_fail(e, BZ_EINVAL, path, "%s must not contain a NUL character", path);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)str[i];
        if (c < 0x20 || c == 0x7f)
            return bz_fail(e, BZ_EINVAL, path,
                           "%s must contain only printable characters (control character at %zu)",
                           path, i);
    }
    return 0;
}

/* ---- one field: default, parse, emit ---- */

static void set_default(const field *f, int variant, bz_spec *s);
static void section_defaults(const section *sec, int variant, bz_spec *s);
static int parse_section(json_t *obj, const section *sec, const char *path, bz_spec *s, bz_err *e);
static json_t *emit_section(const section *sec, const bz_spec *s);

static void store_int(const field *f, int64_t x, bz_spec *s)
{
    if (f->type == F_INT32) {
        int32_t y = (int32_t)x;
        memcpy(at(s, f->off), &y, sizeof y);
    } else if (f->type == F_INT64) {
        memcpy(at(s, f->off), &x, sizeof x);
    } else {
        uint64_t y = (uint64_t)x;
        memcpy(at(s, f->off), &y, sizeof y);
    }
}

static int variant_default(const section *sec)
{
    for (size_t i = 0; i < sec->n; i++)
        if (sec->variant_key && strcmp(sec->fields[i].key, sec->variant_key) == 0)
            return (int)sec->fields[i].def[0];
    return 0;
}

static void set_default(const field *f, int variant, bz_spec *s)
{
    double d = f->def[variant];
    switch (f->type) {
    case F_INT32: case F_INT64: case F_U64: store_int(f, (int64_t)d, s); break;
    case F_REAL: memcpy(at(s, f->off), &d, sizeof d); break;
    case F_BOOL: *(bool *)at(s, f->off) = d != 0; break;
    case F_ENUM: { int k = (int)d; memcpy(at(s, f->off), &k, sizeof k); break; }
    case F_STR:
        if (f->off != SIZE_MAX) snprintf((char *)at(s, f->off), f->cap, "%s", f->sdef);
        break;
    case F_OBJ: section_defaults(f->sub, variant_default(f->sub), s); break;
    case F_CUSTOM: f->parse(NULL, "", s, NULL); break;
    }
}

static int parse_value(const field *f, json_t *v, const char *path, bz_spec *s, bz_err *e)
{
    char got[64];
    int64_t x = 0;
    double d = 0;
    int k, rc;
    switch (f->type) {
    case F_INT32: case F_INT64: case F_U64:
        if ((rc = get_int(v, path, "an integer", &x, e))) return rc;
        if ((rc = check_range(f, (double)x, path, e))) return rc;
        store_int(f, x, s);
        return 0;
    case F_REAL:
        if ((rc = get_number(v, path, &d, e)) || (rc = check_range(f, d, path, e))) return rc;
        memcpy(at(s, f->off), &d, sizeof d);
        return 0;
    case F_BOOL:
        if (!json_is_boolean(v))
            return bz_fail(e, BZ_EINVAL, path, "%s must be true or false (got %s)", path,
                           describe(v, got, sizeof got));
        *(bool *)at(s, f->off) = json_is_true(v);
        return 0;
    case F_ENUM:
        if ((rc = get_choice(v, f->choices, path, &k, e))) return rc;
        memcpy(at(s, f->off), &k, sizeof k);
        return 0;
    case F_STR:
        if (f->choices) {
            if ((rc = get_choice(v, f->choices, path, &k, e))) return rc;
        } else if (!json_is_string(v)) {
            return bz_fail(e, BZ_EINVAL, path, "%s must be a string (got %s)", path,
                           describe(v, got, sizeof got));
        } else if ((rc = check_string(f, json_string_value(v), json_string_length(v), path, e))) {
            return rc;
        }
        if (f->off != SIZE_MAX) snprintf((char *)at(s, f->off), f->cap, "%s", json_string_value(v));
        return 0;
    case F_OBJ:
        return parse_section(v, f->sub, path, s, e);
    case F_CUSTOM:
        return f->parse(v, path, s, e);
    }
    return bz_fail(e, BZ_EINVAL, path, "%s has an unknown type", path);
}

static json_t *emit_value(const field *f, const bz_spec *s)
{
    int32_t i32;
    int64_t i64;
    uint64_t u64;
    double d;
    int k;
    switch (f->type) {
    case F_INT32: memcpy(&i32, cat(s, f->off), sizeof i32); return json_integer(i32);
    case F_INT64: memcpy(&i64, cat(s, f->off), sizeof i64); return json_integer(i64);
    case F_U64: memcpy(&u64, cat(s, f->off), sizeof u64); return json_integer((json_int_t)u64);
    case F_REAL: memcpy(&d, cat(s, f->off), sizeof d); return json_real(d);
    case F_BOOL: return json_boolean(*(const bool *)cat(s, f->off));
    case F_ENUM:
        memcpy(&k, cat(s, f->off), sizeof k);
        for (int i = 0; f->choices[i]; i++)
            if (i == k) return json_string(f->choices[i]);
        return NULL;
    case F_STR: return json_string(f->off == SIZE_MAX ? f->sdef : (const char *)cat(s, f->off));
    case F_OBJ: return emit_section(f->sub, s);
    case F_CUSTOM: return f->emit(s);
    }
    return NULL;
}

/* ---- one object: unknown keys, variants, defaults ---- */

/* Edit distance with adjacent transpositions (optimal string alignment), ignoring case. */
static size_t edit_distance(const char *a, const char *b)
{
    enum { MAXK = 64 };
    size_t la = strlen(a), lb = strlen(b), d[MAXK + 1][MAXK + 1];
    if (la > MAXK || lb > MAXK) return SIZE_MAX;
    for (size_t i = 0; i <= la; i++) d[i][0] = i;
    for (size_t j = 0; j <= lb; j++) d[0][j] = j;
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            int ca = tolower((unsigned char)a[i - 1]), cb = tolower((unsigned char)b[j - 1]);
            size_t best = d[i - 1][j - 1] + (ca != cb);
            if (d[i - 1][j] + 1 < best) best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best) best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && ca == tolower((unsigned char)b[j - 2]) &&
                tolower((unsigned char)a[i - 2]) == cb && d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    }
    return d[la][lb];
}

/* A close enough key to suggest: at most 2 edits, and fewer than half the letters of the two. */
static bool is_close(const char *key, const char *cand, size_t d)
{
    return d <= 2 && 4 * d < strlen(key) + strlen(cand);
}

static bool applies(const field *f, int variant) { return (f->variants >> variant) & 1u; }

/* The one other top-level object that has key, or NULL (none, or several: no hint). */
static const char *home_of(const char *key, const section *self)
{
    const char *home = NULL;
    for (size_t i = 0; i < NF(top_fields); i++) {
        const section *sec = top_fields[i].sub;
        if (!sec || sec == self) continue;
        for (size_t j = 0; j < sec->n; j++) {
            if (strcmp(sec->fields[j].key, key) != 0) continue;
            if (home && home != top_fields[i].key) return NULL;
            home = top_fields[i].key;
        }
    }
    return home;
}

static int unknown_key(const section *sec, int variant, const char *key, const char *path,
                       bz_err *e)
{
    const char *best = NULL;
    size_t best_d = 3;
    char list[320] = "";
    for (size_t i = 0; i < sec->n; i++) {
        const field *f = &sec->fields[i];
        if (!applies(f, variant)) continue;
        size_t d = edit_distance(key, f->key);
        if (is_close(key, f->key, d) && d < best_d) {
            best_d = d;
            best = f->key;
        }
        size_t n = strlen(list);
        snprintf(list + n, sizeof list - n, "%s%s", n ? ", " : "", f->key);
    }
    if (best) return bz_fail(e, BZ_EINVAL, path, "unknown field '%s' (did you mean '%s'?)", path, best);
    const char *home = home_of(key, sec);
    if (home)
        return bz_fail(e, BZ_EINVAL, path, "unknown field '%s' (%s is a field of %s)", path, key, home);
    return bz_fail(e, BZ_EINVAL, path, "unknown field '%s' (allowed here: %s)", path, list);
}

static int wrong_variant(const section *sec, int variant, const char *key, const char *path,
                         bz_err *e)
{
    const char *const *names = sec->variant_names;
    unsigned owners = 0;
    for (size_t i = 0; i < sec->n; i++)
        if (strcmp(sec->fields[i].key, key) == 0) owners |= sec->fields[i].variants;
    char list[128] = "";
    for (int v = 0; names[v]; v++) {
        if (!((owners >> v) & 1u)) continue;
        size_t n = strlen(list);
        snprintf(list + n, sizeof list - n, "%s%s", n ? ", " : "", names[v]);
    }
    return bz_fail(e, BZ_EINVAL, path, "%s is not a parameter of %s %s (only of %s)", path,
                   sec->variant_word, names[variant], list);
}

/* Every key of obj must be a row of the section that belongs to the variant. */
static int check_keys(json_t *obj, const section *sec, int variant, const char *path, bz_err *e)
{
    const char *key;
    json_t *v;
    char sub[128];
    json_object_foreach(obj, key, v) {
        bool known = false, ok = false;
        for (size_t i = 0; i < sec->n; i++) {
            if (strcmp(sec->fields[i].key, key) != 0) continue;
            known = true;
            ok = ok || applies(&sec->fields[i], variant);
        }
        join(sub, sizeof sub, path, key);
        if (!known) return unknown_key(sec, variant, key, sub, e);
        if (!ok) return wrong_variant(sec, variant, key, sub, e);
    }
    return 0;
}

static int read_variant(json_t *obj, const section *sec, const char *path, int *variant, bz_err *e)
{
    *variant = variant_default(sec);
    if (!sec->variant_key) return 0;
    json_t *v = json_object_get(obj, sec->variant_key);
    if (!v) return 0;
    char sub[128];
    join(sub, sizeof sub, path, sec->variant_key);
    return get_choice(v, sec->variant_names, sub, variant, e);
}

static void section_defaults(const section *sec, int variant, bz_spec *s)
{
    for (size_t i = 0; i < sec->n; i++) {
        const field *f = &sec->fields[i];
        if (!applies(f, variant)) continue;
        if (sec->variant_key && strcmp(f->key, sec->variant_key) == 0)
            memcpy(at(s, f->off), &variant, sizeof variant); /* the variant asked for */
        else
            set_default(f, variant, s);
    }
    if (sec->check) sec->check("", s, NULL);
}

/* Parse obj (NULL = absent: every default) into s, following the section's table. */
static int parse_section(json_t *obj, const section *sec, const char *path, bz_spec *s, bz_err *e)
{
    char got[64], sub[128];
    int variant, rc;
    json_t *empty = NULL;
    if (obj && !json_is_object(obj)) {
        if (!path[0])
            return bz_fail(e, BZ_EINVAL, "", "the spec must be a JSON object (got %s)",
                           describe(obj, got, sizeof got));
        return bz_fail(e, BZ_EINVAL, path, "%s must be an object (got %s)", path,
                       describe(obj, got, sizeof got));
    }
    if (!obj) obj = empty = json_object();
    if (!obj) return bz_fail(e, BZ_ENOMEM, path, "out of memory parsing %s", path);
    rc = read_variant(obj, sec, path, &variant, e);
    if (!rc) rc = check_keys(obj, sec, variant, path, e);
    for (size_t i = 0; i < sec->n && !rc; i++) {
        const field *f = &sec->fields[i];
        if (!applies(f, variant)) continue;
        json_t *v = json_object_get(obj, f->key);
        join(sub, sizeof sub, path, f->key);
        if (v || f->type == F_OBJ) rc = parse_value(f, v, sub, s, e); /* absent object: {} */
        else if ((f->required >> variant) & 1u)
            rc = bz_fail(e, BZ_EINVAL, sub, "%s is required%s%s%s%s", sub,
                         sec->variant_key ? " for " : "",
                         sec->variant_key ? sec->variant_word : "",
                         sec->variant_key ? " " : "",
                         sec->variant_key ? sec->variant_names[variant] : "");
        else set_default(f, variant, s);
    }
    if (!rc && sec->check) rc = sec->check(path, s, e);
    json_decref(empty);
    return rc;
}

static json_t *emit_section(const section *sec, const bz_spec *s)
{
    int variant = sec->variant_of ? sec->variant_of(s) : 0;
    json_t *obj = json_object();
    if (!obj) return NULL;
    for (size_t i = 0; i < sec->n; i++) {
        const field *f = &sec->fields[i];
        if (!applies(f, variant) || (f->omit && f->omit(s))) continue;
        if (json_object_set_new(obj, f->key, emit_value(f, s))) {
            json_decref(obj);
            return NULL;
        }
    }
    return obj;
}

/* ---- custom fields ---- */

static int parse_one_T(json_t *v, const char *path, double *out, bz_err *e)
{
    char got[64];
    if (!json_is_number(v))
        return bz_fail(e, BZ_EINVAL, path, "%s must be a number > 0 (got %s)", path,
                       describe(v, got, sizeof got));
    double t = json_number_value(v);
    if (!(t > 0) || !isfinite(t))
        return bz_fail(e, BZ_EINVAL, path, "%s must be > 0 (got %g)", path, t);
    *out = t;
    return 0;
}

static int parse_T(json_t *v, const char *path, bz_spec *s, bz_err *e)
{
    sampler_spec *sp = &s->sampler;
    char got[64], sub[128];
    if (!v) { /* adam, or spec_defaults: no temperature */
        sp->n_T = 1;
        memset(sp->T, 0, sizeof sp->T);
        return 0;
    }
    if (json_is_number(v)) {
        sp->n_T = 1;
        return parse_one_T(v, path, &sp->T[0], e);
    }
    if (!json_is_array(v))
        return bz_fail(e, BZ_EINVAL, path,
                       "%s must be a number > 0 or a list of them (got %s)", path,
                       describe(v, got, sizeof got));
    size_t n = json_array_size(v);
    if (n == 0)
        return bz_fail(e, BZ_EINVAL, path, "%s must not be an empty list", path);
    if (n > BZ_MAX_TEMPS)
        return bz_fail(e, BZ_ELIMIT, path, "%s has %zu temperatures, more than the limit of %d",
                       path, n, BZ_MAX_TEMPS);
    for (size_t i = 0; i < n; i++) {
        snprintf(sub, sizeof sub, "%s[%zu]", path, i);
        int rc = parse_one_T(json_array_get(v, i), sub, &sp->T[i], e);
        if (rc) return rc;
    }
    sp->n_T = (int32_t)n;
    return 0;
}

static json_t *emit_T(const bz_spec *s)
{
    const sampler_spec *sp = &s->sampler;
    if (sp->n_T == 1) return json_real(sp->T[0]);
    json_t *a = json_array();
    for (int32_t i = 0; a && i < sp->n_T; i++)
        if (json_array_append_new(a, json_real(sp->T[i]))) {
            json_decref(a);
            return NULL;
        }
    return a;
}

static int parse_hidden(json_t *v, const char *path, bz_spec *s, bz_err *e)
{
    model_spec *m = &s->model;
    char got[64], sub[128];
    if (!v) {
        m->n_hidden = 2;
        m->hidden[0] = 64;
        m->hidden[1] = 32;
        return 0;
    }
    if (!json_is_array(v))
        return bz_fail(e, BZ_EINVAL, path, "%s must be a list of positive integers (got %s)",
                       path, describe(v, got, sizeof got));
    size_t n = json_array_size(v);
    if (n < 1 || n > BZ_MAX_HIDDEN)
        return bz_fail(e, BZ_EINVAL, path, "%s must list 1 to %d layer widths (got %zu)", path,
                       BZ_MAX_HIDDEN, n);
    for (size_t i = 0; i < n; i++) {
        int64_t x = 0;
        snprintf(sub, sizeof sub, "%s[%zu]", path, i);
        int rc = get_int(json_array_get(v, i), sub, "a positive integer", &x, e);
        if (rc) return rc;
        if (x < 1)
            return bz_fail(e, BZ_EINVAL, sub, "%s must be a positive integer (got %lld)", sub,
                           (long long)x);
        if (x > BZ_LIMIT_WIDTH)
            return bz_fail(e, BZ_ELIMIT, sub, "%s is %lld, more than the limit of %d", sub,
                           (long long)x, BZ_LIMIT_WIDTH);
        m->hidden[i] = (int32_t)x;
    }
    m->n_hidden = (int32_t)n;
    return 0;
}

static json_t *emit_hidden(const bz_spec *s)
{
    json_t *a = json_array();
    for (int32_t i = 0; a && i < s->model.n_hidden; i++)
        if (json_array_append_new(a, json_integer(s->model.hidden[i]))) {
            json_decref(a);
            return NULL;
        }
    return a;
}

static int parse_mass_floor(json_t *v, const char *path, bz_spec *s, bz_err *e)
{
    char got[64];
    if (!v || (json_is_string(v) && strcmp(json_string_value(v), "auto") == 0)) {
        s->sampler.mass_floor = 0; /* auto */
        return 0;
    }
    if (!json_is_number(v))
        return bz_fail(e, BZ_EINVAL, path, "%s must be \"auto\" or a number > 0 (got %s)", path,
                       describe(v, got, sizeof got));
    double x = json_number_value(v);
    if (!(x > 0))
        return bz_fail(e, BZ_EINVAL, path, "%s must be \"auto\" or a number > 0 (got %g)", path, x);
    s->sampler.mass_floor = x;
    return 0;
}

static json_t *emit_mass_floor(const bz_spec *s)
{
    return s->sampler.mass_floor > 0 ? json_real(s->sampler.mass_floor) : json_string("auto");
}

static int parse_z_guard(json_t *v, const char *path, bz_spec *s, bz_err *e)
{
    double x = 6.0;
    int rc;
    if (v && (rc = get_number(v, path, &x, e))) return rc;
    if (!(x == 0 || x > 1))
        return bz_fail(e, BZ_EINVAL, path, "%s must be 0 (guard off) or > 1 (got %g)", path, x);
    s->sampler.z_guard = x;
    return 0;
}

static json_t *emit_z_guard(const bz_spec *s) { return json_real(s->sampler.z_guard); }

static int parse_early_stopping(json_t *v, const char *path, bz_spec *s, bz_err *e)
{
    char got[64];
    sampler_spec *sp = &s->sampler;
    sp->early_stopping = false;
    sp->val_fraction = 0;
    sp->patience = 0;
    if (!v || json_is_null(v)) return 0;
    if (!json_is_object(v))
        return bz_fail(e, BZ_EINVAL, path, "%s must be an object or null (got %s)", path,
                       describe(v, got, sizeof got));
    sp->early_stopping = true;
    return parse_section(v, &sec_early_stopping, path, s, e);
}

static json_t *emit_early_stopping(const bz_spec *s)
{
    return s->sampler.early_stopping ? emit_section(&sec_early_stopping, s) : json_null();
}

static int parse_projection(json_t *v, const char *path, bz_spec *s, bz_err *e)
{
    char got[64];
    s->dataset.proj_dim = 0;
    s->dataset.binarize = false;
    if (!v || json_is_null(v)) return 0;
    if (!json_is_object(v))
        return bz_fail(e, BZ_EINVAL, path, "%s must be an object or null (got %s)", path,
                       describe(v, got, sizeof got));
    return parse_section(v, &sec_projection, path, s, e);
}

static json_t *emit_projection(const bz_spec *s)
{
    return s->dataset.proj_dim > 0 ? emit_section(&sec_projection, s) : json_null();
}

/* ---- rules across fields ---- */

static int check_dataset(const char *path, bz_spec *s, bz_err *e)
{
    ds_spec *d = &s->dataset;
    char sub[128];
    (void)path;
    switch (d->kind) {
    case DS_SPIN:
        d->proj_dim = 0;
        d->binarize = false;
        memset(d->dir, 0, sizeof d->dir);
        break;
    case DS_FASHION_MNIST:
        d->n_in = d->proj_dim > 0 ? d->proj_dim : FASHION_PIXELS;
        d->classes = FASHION_CLASSES;
        break;
    case DS_NPY:
        d->n_in = 0; /* from the files */
        if (d->classes == 1) {
            join(sub, sizeof sub, path, "classes");
            return bz_fail(e, BZ_EINVAL, sub, "%s must be 0 (infer from the labels) or >= 2 (got 1)",
                           sub);
        }
        break;
    }
    return 0;
}

static int check_sampler(const char *path, bz_spec *s, bz_err *e)
{
    sampler_spec *sp = &s->sampler;
    char sub[128];
    if (sp->method == SM_PL && sp->r0 > sp->r_max) {
        join(sub, sizeof sub, path, "r0");
        return bz_fail(e, BZ_EINVAL, sub, "%s (%g) must be <= %s.r_max (%g)", sub, sp->r0, path,
                       sp->r_max);
    }
    if (sp->method == SM_PL && sp->var_max_batches < sp->var_min_batches) {
        join(sub, sizeof sub, path, "var_max_batches");
        return bz_fail(e, BZ_EINVAL, sub, "%s (%d) must be >= %s.var_min_batches (%d)", sub,
                       sp->var_max_batches, path, sp->var_min_batches);
    }
    if (sp->method == SM_ADAM) {
        sp->n_T = 1;
        memset(sp->T, 0, sizeof sp->T);
    }
    return 0;
}

static bool has_batch(sampler_method m) { return m != SM_HMC; }

/* The limits that protect the machine, once the dimensions are known. */
static int check_limits(const bz_spec *s, bz_err *e)
{
    const ds_spec *d = &s->dataset;
    if (d->n_in > 0) {
        int64_t bytes = (d->train + d->test) * (int64_t)d->n_in * 4;
        if (bytes > BZ_LIMIT_DATA_BYTES)
            return bz_fail(e, BZ_ELIMIT, "dataset.train",
                           "dataset.train + dataset.test = %lld examples of %d inputs take %lld "
                           "bytes as float32, more than the limit of %lld bytes",
                           (long long)(d->train + d->test), d->n_in, (long long)bytes,
                           (long long)BZ_LIMIT_DATA_BYTES);
    }
    int64_t n = spec_param_count(s);
    if (n > BZ_LIMIT_PARAMS)
        return bz_fail(e, BZ_ELIMIT, "model.hidden",
                       "the network has %lld weights, more than the limit of %lld; "
                       "make model.hidden narrower", (long long)n, (long long)BZ_LIMIT_PARAMS);
    return 0;
}

/* Batched chains and replica exchange (multichain.h). */
static int check_batched(const bz_spec *s, bz_err *e)
{
    const sampler_spec *sp = &s->sampler;
    const sampler_method m = sp->method;
    if (s->batched && m != SM_PL && m != SM_HMC && m != SM_SGLD)
        return bz_fail(e, BZ_EINVAL, "batched", "batched chains work with sampler.method pl, hmc or sgld (got %s)",
                       spec_method_name(m));
    if (s->exchange_every == 0) return 0;
    if (!s->batched)
        return bz_fail(e, BZ_EINVAL, "exchange.every", "replica exchange needs \"batched\": true");
    if (sp->n_T < 2)
        return bz_fail(e, BZ_EINVAL, "exchange.every",
                       "replica exchange needs at least 2 temperatures in sampler.T (got %d)", (int)sp->n_T);
    for (int32_t i = 1; i < sp->n_T; i++)
        if (!(sp->T[i] > sp->T[i - 1]))
            return bz_fail(e, BZ_EINVAL, "sampler.T",
                           "sampler.T must be strictly increasing for replica exchange (T[%d] = %g after %g)",
                           (int)i, sp->T[i], sp->T[i - 1]);
    return 0;
}

static int check_across(const bz_spec *s, bz_err *e)
{
    const sampler_spec *sp = &s->sampler;
    int rc = check_batched(s, e);
    if (rc) return rc;
    if (has_batch(sp->method) && s->dataset.train > 0 && sp->batch > s->dataset.train)
        return bz_fail(e, BZ_EINVAL, "sampler.batch",
                       "sampler.batch (%d) must be <= dataset.train (%lld)", sp->batch,
                       (long long)s->dataset.train);
    return check_limits(s, e);
}

/* ---- public ---- */

void spec_defaults(bz_spec *s)
{
    memset(s, 0, sizeof *s);
    section_defaults(&sec_top, 0, s);
}

void spec_sampler_defaults(sampler_spec *sp, sampler_method m)
{
    bz_spec tmp;
    memset(&tmp, 0, sizeof tmp);
    tmp.sampler.method = m;
    section_defaults(&sec_sampler, (int)m, &tmp); /* adam: n_T = 1, T[0] = 0 */
    tmp.sampler.steps = sp->steps;
    tmp.sampler.seed = sp->seed;
    if (m != SM_ADAM) {
        tmp.sampler.n_T = sp->n_T;
        memcpy(tmp.sampler.T, sp->T, sizeof sp->T);
    }
    *sp = tmp.sampler;
}

int spec_parse(const char *json_text, bz_spec *out, bz_err *e)
{
    bz_err_clear(e);
    if (!json_text || !out) return bz_fail(e, BZ_EINVAL, "", "no spec text was given");
    json_error_t jerr;
    json_t *root = json_loads(json_text, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return bz_fail(e, BZ_EINVAL, "", "invalid JSON at line %d, column %d: %s", jerr.line,
                       jerr.column, jerr.text);
    bz_spec s;
    memset(&s, 0, sizeof s);
    int rc = parse_section(root, &sec_top, "", &s, e);
    json_decref(root);
    if (!rc) rc = check_across(&s, e);
    if (!rc) *out = s;
    return rc;
}

int spec_parse_file(const char *path, bz_spec *out, bz_err *e)
{
    bz_err_clear(e);
    if (!path) return bz_fail(e, BZ_EINVAL, "", "no spec file was given");
    FILE *f = fopen(path, "rb");
    if (!f) return bz_fail(e, BZ_EIO, path, "cannot open spec file '%s': %s", path, strerror(errno));
    char *buf = malloc((size_t)SPEC_FILE_MAX + 1);
    if (!buf) {
        fclose(f);
        return bz_fail(e, BZ_ENOMEM, path, "out of memory reading spec file '%s'", path);
    }
    size_t n = fread(buf, 1, (size_t)SPEC_FILE_MAX + 1, f);
    int bad = ferror(f);
    fclose(f);
    int rc;
    if (bad) rc = bz_fail(e, BZ_EIO, path, "cannot read spec file '%s'", path);
    else if (n > (size_t)SPEC_FILE_MAX)
        rc = bz_fail(e, BZ_ELIMIT, path, "spec file '%s' is larger than the limit of %ld bytes",
                     path, SPEC_FILE_MAX);
    else {
        buf[n] = '\0';
        rc = spec_parse(buf, out, e);
    }
    free(buf);
    return rc;
}

/* True when every real in j prints back exactly with 15 significant digits. */
static bool reals_short(json_t *j)
{
    const char *key;
    json_t *v;
    size_t i;
    char buf[40];
    switch (json_typeof(j)) {
    case JSON_REAL:
        snprintf(buf, sizeof buf, "%.15g", json_real_value(j));
        return strtod(buf, NULL) == json_real_value(j);
    case JSON_OBJECT:
        json_object_foreach(j, key, v) if (!reals_short(v)) return false;
        return true;
    case JSON_ARRAY:
        json_array_foreach(j, i, v) if (!reals_short(v)) return false;
        return true;
    default:
        return true;
    }
}

char *spec_to_json(const bz_spec *s)
{
    if (!s) return NULL;
    json_t *root = emit_section(&sec_top, s);
    if (!root) return NULL;
    int prec = reals_short(root) ? 15 : 17; /* "0.1" rather than "0.10000000000000001" */
    char *text = json_dumps(root, JSON_COMPACT | JSON_REAL_PRECISION(prec));
    json_decref(root);
    return text;
}

const char *spec_method_name(sampler_method m)
{
    if ((int)m < 0 || m >= SM_COUNT) return "unknown";
    return method_names[m];
}

int64_t spec_param_count(const bz_spec *s)
{
    int64_t prev = s->dataset.n_in, n = 0;
    if (prev <= 0 || s->dataset.classes <= 0) return 0;
    for (int32_t l = 0; l <= s->model.n_hidden; l++) {
        int64_t w = l < s->model.n_hidden ? s->model.hidden[l] : s->dataset.classes;
        n += w * prev + (s->model.bias ? w : 0);
        prev = w;
    }
    return n;
}
