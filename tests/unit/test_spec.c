/* test_spec.c: job-spec validation (core/spec.c). Every rule gets its own test that checks the
 * error code, the exact dotted field and a key phrase of the message; the defaults are those of
 * ALGORITHM.md §6b; spec_to_json -> spec_parse gives the same spec back for every method and
 * dataset kind; every examples/ *.json file parses; schema/job.schema.json lists the same keys.
 * "batched" and "exchange" (multichain.h): refused for the methods that cannot batch, exchange
 * refused without batched, with one temperature or with temperatures not strictly increasing,
 * each naming its field; both left out of the normalised JSON at their defaults. */
#include <criterion/criterion.h>
#include <glob.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spec.h"
#include "testutil.h"

/* JSON written with single quotes for readability; turned into real JSON here. */
static char *q(const char *text)
{
    static char buf[8192];
    snprintf(buf, sizeof buf, "%s", text);
    for (char *p = buf; *p; p++)
        if (*p == '\'') *p = '"';
    return buf;
}

#define MIN_SAMPLER "'sampler': {'T': 0.001, 'steps': 100}"

static bz_spec parse_ok(const char *text)
{
    bz_spec s;
    bz_err e;
    int rc = spec_parse(q(text), &s, &e);
    cr_assert_eq(rc, 0, "spec_parse failed: %s (field '%s') on %s", e.msg, e.field, text);
    cr_assert_eq(e.code, 0);
    return s;
}

static void expect_err(const char *text, int code, const char *field, const char *phrase)
{
    bz_spec s;
    bz_err e;
    int rc = spec_parse(q(text), &s, &e);
    cr_assert_eq(rc, code, "expected %d, got %d (%s) for %s", code, rc, e.msg, text);
    cr_assert_eq(e.code, code);
    cr_assert_str_eq(e.field, field, "field '%s' != '%s' (%s)", e.field, field, e.msg);
    cr_assert(strstr(e.msg, phrase) != NULL, "message '%s' lacks '%s'", e.msg, phrase);
}

/* ---- unknown fields ---- */

Test(spec, unknown_top_level_field)
{
    expect_err("{" MIN_SAMPLER ", 'nmae': 'x'}", BZ_EINVAL, "nmae",
               "unknown field 'nmae' (did you mean 'name'?)");
}

Test(spec, unknown_nested_field_did_you_mean)
{
    expect_err("{'sampler': {'T': 1, 'steps': 10, 'gama': 0.2}}", BZ_EINVAL, "sampler.gama",
               "unknown field 'sampler.gama' (did you mean 'gamma'?)");
}

Test(spec, unknown_field_without_suggestion_lists_allowed)
{
    expect_err("{" MIN_SAMPLER ", 'record': {'zzzzzz': 1}}", BZ_EINVAL, "record.zzzzzz",
               "allowed here: every, test");
}

Test(spec, unknown_field_that_belongs_in_another_object)
{
    expect_err("{'sampler': {'T': 1, 'steps': 10, 'lambda': 0.1}}", BZ_EINVAL, "sampler.lambda",
               "unknown field 'sampler.lambda' (lambda is a field of model)");
    expect_err("{" MIN_SAMPLER ", 'hidden': [4]}", BZ_EINVAL, "hidden", "hidden is a field of model");
}

Test(spec, unknown_field_short_key_gets_no_wild_guess)
{
    expect_err("{'sampler': {'T': 1, 'steps': 10, 'zz': 1}}", BZ_EINVAL, "sampler.zz",
               "unknown field 'sampler.zz' (allowed here: method, T, steps");
    expect_err("{'sampler': {'t': 1, 'steps': 10}}", BZ_EINVAL, "sampler.t", "did you mean 'T'?");
}

Test(spec, unknown_field_in_nested_object)
{
    expect_err("{'sampler': {'method': 'adam', 'steps': 10, 'early_stopping': {'patiense': 3}}}",
               BZ_EINVAL, "sampler.early_stopping.patiense", "did you mean 'patience'?");
}

Test(spec, param_of_another_method)
{
    expect_err("{'sampler': {'method': 'hmc', 'T': 1, 'steps': 10, 'r0': 0.01}}", BZ_EINVAL,
               "sampler.r0", "sampler.r0 is not a parameter of method hmc");
}

Test(spec, batch_is_not_a_parameter_of_hmc)
{
    expect_err("{'sampler': {'method': 'hmc', 'T': 1, 'steps': 10, 'batch': 8}}", BZ_EINVAL,
               "sampler.batch", "not a parameter of method hmc");
}

Test(spec, T_is_not_a_parameter_of_adam)
{
    expect_err("{'sampler': {'method': 'adam', 'T': 1, 'steps': 10}}", BZ_EINVAL, "sampler.T",
               "sampler.T is not a parameter of method adam");
}

Test(spec, dataset_param_of_another_kind)
{
    expect_err("{" MIN_SAMPLER ", 'dataset': {'kind': 'fashion_mnist', 'p_flip': 0.1}}", BZ_EINVAL,
               "dataset.p_flip", "dataset.p_flip is not a parameter of dataset kind fashion_mnist");
}

/* ---- types ---- */

Test(spec, integer_field_given_a_string)
{
    expect_err("{'sampler': {'T': 1, 'steps': '100'}}", BZ_EINVAL, "sampler.steps",
               "sampler.steps must be an integer");
}

Test(spec, integer_field_given_a_fraction)
{
    expect_err("{'sampler': {'T': 1, 'steps': 10.5}}", BZ_EINVAL, "sampler.steps",
               "must be an integer (got 10.5)");
}

Test(spec, integral_real_accepted_as_integer)
{
    bz_spec s = parse_ok("{'sampler': {'T': 1, 'steps': 1e5}}");
    cr_assert_eq(s.sampler.steps, 100000);
}

Test(spec, number_field_given_a_string)
{
    expect_err("{'sampler': {'T': 1, 'steps': 10, 'gamma': 'fast'}}", BZ_EINVAL, "sampler.gamma",
               "sampler.gamma must be a number");
}

Test(spec, bool_field_given_a_number)
{
    expect_err("{" MIN_SAMPLER ", 'model': {'bias': 1}}", BZ_EINVAL, "model.bias",
               "model.bias must be true or false");
}

Test(spec, string_field_given_a_number)
{
    expect_err("{" MIN_SAMPLER ", 'name': 5}", BZ_EINVAL, "name", "name must be a string");
}

Test(spec, choice_field_given_an_unknown_value)
{
    expect_err("{'sampler': {'method': 'mala', 'T': 1, 'steps': 10}}", BZ_EINVAL, "sampler.method",
               "sampler.method must be one of \"pl\"");
}

Test(spec, choice_field_given_a_number)
{
    expect_err("{" MIN_SAMPLER ", 'backend': 1}", BZ_EINVAL, "backend",
               "backend must be one of \"auto\", \"cpu\", \"cuda\" (got 1)");
}

Test(spec, object_field_given_a_number)
{
    expect_err("{" MIN_SAMPLER ", 'dataset': 3}", BZ_EINVAL, "dataset", "dataset must be an object");
}

Test(spec, array_element_of_wrong_type)
{
    expect_err("{" MIN_SAMPLER ", 'model': {'hidden': [4, 'x']}}", BZ_EINVAL, "model.hidden[1]",
               "model.hidden[1] must be a positive integer");
}

Test(spec, hidden_not_an_array)
{
    expect_err("{" MIN_SAMPLER ", 'model': {'hidden': 5}}", BZ_EINVAL, "model.hidden",
               "must be a list of positive integers");
}

Test(spec, T_of_wrong_type)
{
    expect_err("{'sampler': {'T': 'hot', 'steps': 10}}", BZ_EINVAL, "sampler.T",
               "sampler.T must be a number > 0 or a list of them");
}

Test(spec, mass_floor_of_wrong_type)
{
    expect_err("{'sampler': {'T': 1, 'steps': 10, 'mass_floor': 'low'}}", BZ_EINVAL,
               "sampler.mass_floor", "must be \"auto\" or a number > 0");
}

Test(spec, early_stopping_of_wrong_type)
{
    expect_err("{'sampler': {'method': 'adam', 'steps': 10, 'early_stopping': true}}", BZ_EINVAL,
               "sampler.early_stopping", "must be an object or null");
}

Test(spec, top_level_not_an_object)
{
    expect_err("[1, 2]", BZ_EINVAL, "", "the spec must be a JSON object");
}

Test(spec, invalid_json_reports_line_and_column)
{
    expect_err("{\n  'sampler': {'T': 1,\n  'steps': }\n}", BZ_EINVAL, "", "invalid JSON at line 3");
}

Test(spec, duplicate_key_is_invalid_json)
{
    expect_err("{'sampler': {'T': 1, 'T': 2, 'steps': 10}}", BZ_EINVAL, "", "duplicate");
}

/* ---- temperatures and steps ---- */

Test(spec, T_not_positive)
{
    expect_err("{'sampler': {'T': -1, 'steps': 10}}", BZ_EINVAL, "sampler.T",
               "sampler.T must be > 0 (got -1)");
    expect_err("{'sampler': {'T': 0, 'steps': 10}}", BZ_EINVAL, "sampler.T", "must be > 0 (got 0)");
}

Test(spec, T_list_with_a_bad_element)
{
    expect_err("{'sampler': {'T': [1e-3, 1e-2, -5], 'steps': 10}}", BZ_EINVAL, "sampler.T[2]",
               "sampler.T[2] must be > 0 (got -5)");
    expect_err("{'sampler': {'T': [1e-3, null], 'steps': 10}}", BZ_EINVAL, "sampler.T[1]",
               "must be a number > 0");
}

Test(spec, T_empty_list)
{
    expect_err("{'sampler': {'T': [], 'steps': 10}}", BZ_EINVAL, "sampler.T",
               "must not be an empty list");
}

Test(spec, T_missing)
{
    expect_err("{'sampler': {'steps': 10}}", BZ_EINVAL, "sampler.T", "sampler.T is required");
    expect_err("{}", BZ_EINVAL, "sampler.T", "is required");
}

Test(spec, T_sweep_parsed)
{
    bz_spec s = parse_ok("{'sampler': {'T': [1e-4, 1e-3, 1e-2], 'steps': 10}}");
    cr_assert_eq(s.sampler.n_T, 3);
    cr_assert_eq(s.sampler.T[0], 1e-4);
    cr_assert_eq(s.sampler.T[2], 1e-2);
}

Test(spec, steps_missing)
{
    expect_err("{'sampler': {'T': 1}}", BZ_EINVAL, "sampler.steps", "sampler.steps is required");
}

Test(spec, steps_zero)
{
    expect_err("{'sampler': {'T': 1, 'steps': 0}}", BZ_EINVAL, "sampler.steps",
               "sampler.steps must be >= 1 (got 0)");
}

/* ---- pl rules ---- */

Test(spec, r0_greater_than_r_max)
{
    expect_err("{'sampler': {'T': 1, 'steps': 10, 'r0': 0.2, 'r_max': 0.1}}", BZ_EINVAL,
               "sampler.r0", "sampler.r0 (0.2) must be <= sampler.r_max (0.1)");
}

Test(spec, r_max_not_below_one)
{
    expect_err("{'sampler': {'T': 1, 'steps': 10, 'r_max': 1}}", BZ_EINVAL, "sampler.r_max",
               "sampler.r_max must be in (0, 1) (got 1)");
}

Test(spec, r0_zero)
{
    expect_err("{'sampler': {'T': 1, 'steps': 10, 'r0': 0}}", BZ_EINVAL, "sampler.r0",
               "must be in (0, 1)");
}

Test(spec, h_and_gamma_positive)
{
    expect_err("{'sampler': {'T': 1, 'steps': 10, 'h': 0}}", BZ_EINVAL, "sampler.h",
               "sampler.h must be > 0 (got 0)");
    expect_err("{'sampler': {'T': 1, 'steps': 10, 'gamma': -0.1}}", BZ_EINVAL, "sampler.gamma",
               "sampler.gamma must be > 0");
}

Test(spec, p_reinit_in_unit_interval)
{
    expect_err("{'sampler': {'T': 1, 'steps': 10, 'p_reinit': 1.5}}", BZ_EINVAL,
               "sampler.p_reinit", "must be in [0, 1] (got 1.5)");
}

Test(spec, layer_floor_in_unit_interval)
{
    expect_err("{'sampler': {'T': 1, 'steps': 10, 'layer_floor': -0.1}}", BZ_EINVAL,
               "sampler.layer_floor", "must be in [0, 1]");
}

Test(spec, kappa_positive)
{
    expect_err("{'sampler': {'T': 1, 'steps': 10, 'kappa': 0}}", BZ_EINVAL, "sampler.kappa",
               "must be > 0");
}

Test(spec, z_guard_zero_or_above_one)
{
    expect_err("{'sampler': {'T': 1, 'steps': 10, 'z_guard': 1}}", BZ_EINVAL, "sampler.z_guard",
               "sampler.z_guard must be 0 (guard off) or > 1 (got 1)");
    bz_spec s = parse_ok("{'sampler': {'T': 1, 'steps': 10, 'z_guard': 0}}");
    cr_assert_eq(s.sampler.z_guard, 0.0);
}

Test(spec, update_every_positive)
{
    expect_err("{'sampler': {'T': 1, 'steps': 10, 'update_every': 0}}", BZ_EINVAL,
               "sampler.update_every", "must be >= 1 (got 0)");
}

Test(spec, var_method_choice)
{
    expect_err("{'sampler': {'T': 1, 'steps': 10, 'var_method': 'guess'}}", BZ_EINVAL,
               "sampler.var_method", "must be one of \"exact\", \"minibatch\"");
    bz_spec s = parse_ok("{'sampler': {'T': 1, 'steps': 10, 'var_method': 'minibatch'}}");
    cr_assert_eq(s.sampler.var_method, VAR_MINIBATCH);
}

Test(spec, var_min_batches_at_least_two)
{
    expect_err("{'sampler': {'T': 1, 'steps': 10, 'var_min_batches': 1}}", BZ_EINVAL,
               "sampler.var_min_batches", "must be >= 2 (got 1)");
}

Test(spec, var_max_below_var_min)
{
    expect_err("{'sampler': {'T': 1, 'steps': 10, 'var_min_batches': 32, 'var_max_batches': 16}}",
               BZ_EINVAL, "sampler.var_max_batches",
               "sampler.var_max_batches (16) must be >= sampler.var_min_batches (32)");
}

Test(spec, var_tol_positive)
{
    expect_err("{'sampler': {'T': 1, 'steps': 10, 'var_tol': 0}}", BZ_EINVAL, "sampler.var_tol",
               "must be > 0");
}

Test(spec, mass_floor_auto_or_positive)
{
    expect_err("{'sampler': {'T': 1, 'steps': 10, 'mass_floor': 0}}", BZ_EINVAL,
               "sampler.mass_floor", "must be \"auto\" or a number > 0 (got 0)");
    bz_spec s = parse_ok("{'sampler': {'T': 1, 'steps': 10, 'mass_floor': 2.5}}");
    cr_assert_eq(s.sampler.mass_floor, 2.5);
    s = parse_ok("{'sampler': {'T': 1, 'steps': 10, 'mass_floor': 'auto'}}");
    cr_assert_eq(s.sampler.mass_floor, 0.0);
}

/* ---- other methods ---- */

Test(spec, hmc_leapfrog_mass_jitter)
{
    expect_err("{'sampler': {'method': 'hmc', 'T': 1, 'steps': 10, 'leapfrog': 0}}", BZ_EINVAL,
               "sampler.leapfrog", "must be >= 1");
    expect_err("{'sampler': {'method': 'hmc', 'T': 1, 'steps': 10, 'mass': 0}}", BZ_EINVAL,
               "sampler.mass", "must be > 0");
    expect_err("{'sampler': {'method': 'mbhmc', 'T': 1, 'steps': 10, 'jitter': 1}}", BZ_EINVAL,
               "sampler.jitter", "must be in [0, 1) (got 1)");
}

Test(spec, sgld_lr_positive)
{
    expect_err("{'sampler': {'method': 'sgld', 'T': 1, 'steps': 10, 'lr': 0}}", BZ_EINVAL,
               "sampler.lr", "sampler.lr must be > 0");
}

Test(spec, adam_early_stopping_rules)
{
    expect_err("{'sampler': {'method': 'adam', 'steps': 10, 'early_stopping': {'val_fraction': 1}}}",
               BZ_EINVAL, "sampler.early_stopping.val_fraction", "must be in (0, 1) (got 1)");
    expect_err("{'sampler': {'method': 'adam', 'steps': 10, 'early_stopping': {'patience': 0}}}",
               BZ_EINVAL, "sampler.early_stopping.patience", "must be >= 1 (got 0)");
    bz_spec s = parse_ok("{'sampler': {'method': 'adam', 'steps': 10, 'early_stopping': {}}}");
    cr_assert(s.sampler.early_stopping);
    cr_assert_eq(s.sampler.val_fraction, 0.1);
    cr_assert_eq(s.sampler.patience, 10);
    s = parse_ok("{'sampler': {'method': 'adam', 'steps': 10, 'early_stopping': null}}");
    cr_assert(!s.sampler.early_stopping);
}

Test(spec, adam_has_no_temperature)
{
    bz_spec s = parse_ok("{'sampler': {'method': 'adam', 'steps': 10}}");
    cr_assert_eq(s.sampler.n_T, 1);
    cr_assert_eq(s.sampler.T[0], 0.0);
    cr_assert_eq(s.sampler.lr, 1e-3);
}

Test(spec, batch_larger_than_train)
{
    expect_err("{'sampler': {'T': 1, 'steps': 10, 'batch': 256}, 'dataset': {'train': 200}}",
               BZ_EINVAL, "sampler.batch", "sampler.batch (256) must be <= dataset.train (200)");
    /* hmc has no mini-batch; npy's train 0 (all rows) is unknown until load */
    parse_ok("{'sampler': {'method': 'hmc', 'T': 1, 'steps': 10}, 'dataset': {'train': 20}}");
    parse_ok("{'sampler': {'T': 1, 'steps': 10, 'batch': 4096}, 'dataset': {'kind': 'npy', 'dir': 'd'}}");
}

Test(spec, batch_zero)
{
    expect_err("{'sampler': {'T': 1, 'steps': 10, 'batch': 0}}", BZ_EINVAL, "sampler.batch",
               "sampler.batch must be >= 1 (got 0)");
}

/* ---- dataset and model ---- */

Test(spec, p_flip_range)
{
    expect_err("{" MIN_SAMPLER ", 'dataset': {'p_flip': 0.6}}", BZ_EINVAL, "dataset.p_flip",
               "dataset.p_flip must be in [0, 0.5] (got 0.6)");
}

Test(spec, dataset_kind_unknown)
{
    expect_err("{" MIN_SAMPLER ", 'dataset': {'kind': 'mnist'}}", BZ_EINVAL, "dataset.kind",
               "dataset.kind must be one of \"spin\", \"fashion_mnist\", \"npy\"");
}

Test(spec, fashion_train_and_test_ranges)
{
    expect_err("{" MIN_SAMPLER ", 'dataset': {'kind': 'fashion_mnist', 'train': 70000}}",
               BZ_EINVAL, "dataset.train", "must be in [1, 60000] (got 70000)");
    expect_err("{" MIN_SAMPLER ", 'dataset': {'kind': 'fashion_mnist', 'test': 10001}}",
               BZ_EINVAL, "dataset.test", "must be in [0, 10000]");
}

Test(spec, fashion_classes_only_ten)
{
    expect_err("{" MIN_SAMPLER ", 'dataset': {'kind': 'fashion_mnist', 'classes': 5}}", BZ_EINVAL,
               "dataset.classes", "dataset.classes must be 10 (got 5)");
    bz_spec s = parse_ok("{" MIN_SAMPLER ", 'dataset': {'kind': 'fashion_mnist', 'classes': 10}}");
    cr_assert_eq(s.dataset.classes, 10);
}

Test(spec, fashion_projection)
{
    bz_spec s = parse_ok("{" MIN_SAMPLER ", 'dataset': {'kind': 'fashion_mnist'}}");
    cr_assert_eq(s.dataset.n_in, 784);
    cr_assert_eq(s.dataset.proj_dim, 0);
    cr_assert_str_eq(s.dataset.dir, "/usr/share/datasets/fashion-mnist");
    s = parse_ok("{" MIN_SAMPLER ", 'dataset': {'kind': 'fashion_mnist', 'projection': {'dim': 50}}}");
    cr_assert_eq(s.dataset.n_in, 50);
    cr_assert(!s.dataset.binarize);
    expect_err("{" MIN_SAMPLER ", 'dataset': {'kind': 'fashion_mnist', 'projection': {'binarize': true}}}",
               BZ_EINVAL, "dataset.projection.dim", "dataset.projection.dim is required");
    expect_err("{" MIN_SAMPLER ", 'dataset': {'kind': 'fashion_mnist', 'projection': {'dim': 0}}}",
               BZ_EINVAL, "dataset.projection.dim", "must be >= 1 (got 0)");
}

Test(spec, npy_dir_required)
{
    expect_err("{" MIN_SAMPLER ", 'dataset': {'kind': 'npy'}}", BZ_EINVAL, "dataset.dir",
               "dataset.dir is required for dataset kind");
    expect_err("{" MIN_SAMPLER ", 'dataset': {'kind': 'npy', 'dir': ''}}", BZ_EINVAL, "dataset.dir",
               "must be a string of 1 to 1023 characters");
}

Test(spec, npy_classes_not_one)
{
    expect_err("{" MIN_SAMPLER ", 'dataset': {'kind': 'npy', 'dir': 'd', 'classes': 1}}", BZ_EINVAL,
               "dataset.classes", "must be 0 (infer from the labels) or >= 2");
    bz_spec s = parse_ok("{" MIN_SAMPLER ", 'dataset': {'kind': 'npy', 'dir': 'd'}}");
    cr_assert_eq(s.dataset.n_in, 0);
    cr_assert_eq(s.dataset.classes, 0);
    cr_assert_eq(spec_param_count(&s), 0);
}

Test(spec, hidden_empty)
{
    expect_err("{" MIN_SAMPLER ", 'model': {'hidden': []}}", BZ_EINVAL, "model.hidden",
               "must list 1 to 8 layer widths (got 0)");
}

Test(spec, hidden_too_long)
{
    expect_err("{" MIN_SAMPLER ", 'model': {'hidden': [1,2,3,4,5,6,7,8,9]}}", BZ_EINVAL,
               "model.hidden", "must list 1 to 8 layer widths (got 9)");
}

Test(spec, hidden_zero)
{
    expect_err("{" MIN_SAMPLER ", 'model': {'hidden': [8, 0]}}", BZ_EINVAL, "model.hidden[1]",
               "model.hidden[1] must be a positive integer (got 0)");
}

Test(spec, lambda_not_negative)
{
    expect_err("{" MIN_SAMPLER ", 'model': {'lambda': -1}}", BZ_EINVAL, "model.lambda",
               "model.lambda must be >= 0 (got -1)");
}

Test(spec, init_kind_only_random)
{
    expect_err("{" MIN_SAMPLER ", 'init': {'kind': 'zeros'}}", BZ_EINVAL, "init.kind",
               "must be one of \"random\"");
}

Test(spec, seed_not_negative)
{
    expect_err("{" MIN_SAMPLER ", 'init': {'seed': -1}}", BZ_EINVAL, "init.seed",
               "init.seed must be >= 0 (got -1)");
}

/* ---- the other sections ---- */

Test(spec, record_every_positive)
{
    expect_err("{" MIN_SAMPLER ", 'record': {'every': 0}}", BZ_EINVAL, "record.every",
               "record.every must be >= 1 (got 0)");
}

Test(spec, checkpoint_keep_positive)
{
    expect_err("{" MIN_SAMPLER ", 'checkpoint': {'keep': 0}}", BZ_EINVAL, "checkpoint.keep",
               "must be >= 1 (got 0)");
}

Test(spec, samples_every_not_negative)
{
    expect_err("{" MIN_SAMPLER ", 'samples': {'every': -1}}", BZ_EINVAL, "samples.every",
               "must be >= 0 (got -1)");
}

Test(spec, diagnostics_batches_at_least_two)
{
    expect_err("{" MIN_SAMPLER ", 'diagnostics': {'batches': 1}}", BZ_EINVAL, "diagnostics.batches",
               "must be >= 2 (got 1)");
}

Test(spec, burn_in_fraction)
{
    expect_err("{" MIN_SAMPLER ", 'analysis': {'burn_in': 1}}", BZ_EINVAL, "analysis.burn_in",
               "analysis.burn_in must be in [0, 1) (got 1)");
    bz_spec s = parse_ok("{" MIN_SAMPLER ", 'analysis': {'burn_in': 0.5}}");
    cr_assert_eq(s.burn_in, 0.5);
}

Test(spec, backend_and_precision_choices)
{
    expect_err("{" MIN_SAMPLER ", 'backend': 'gpu'}", BZ_EINVAL, "backend", "must be one of");
    expect_err("{" MIN_SAMPLER ", 'precision': 'fp16'}", BZ_EINVAL, "precision",
               "precision must be one of \"fp32\", \"tf32\"");
    bz_spec s = parse_ok("{" MIN_SAMPLER ", 'backend': 'cuda', 'precision': 'tf32'}");
    cr_assert_str_eq(s.backend, "cuda");
    cr_assert_str_eq(s.precision, "tf32");
}

Test(spec, name_length_and_characters)
{
    char text[512], name[200];
    memset(name, 'a', 128);
    name[128] = '\0';
    snprintf(text, sizeof text, "{" MIN_SAMPLER ", 'name': '%s'}", name);
    expect_err(text, BZ_EINVAL, "name", "name must be a string of 1 to 127 characters (got 128)");
    expect_err("{" MIN_SAMPLER ", 'name': 'a\\tb'}", BZ_EINVAL, "name", "printable");
    name[127] = '\0';
    snprintf(text, sizeof text, "{" MIN_SAMPLER ", 'name': '%s'}", name);
    bz_spec s = parse_ok(text);
    cr_assert_eq(strlen(s.name), 127);
}

/* ---- limits ---- */

Test(spec, limit_n_in)
{
    expect_err("{" MIN_SAMPLER ", 'dataset': {'n_in': 100001}}", BZ_ELIMIT, "dataset.n_in",
               "dataset.n_in is 100001, more than the limit of 100000");
}

Test(spec, limit_classes)
{
    expect_err("{" MIN_SAMPLER ", 'dataset': {'classes': 10001}}", BZ_ELIMIT, "dataset.classes",
               "more than the limit of 10000");
}

Test(spec, limit_hidden_width)
{
    expect_err("{" MIN_SAMPLER ", 'model': {'hidden': [64, 100001]}}", BZ_ELIMIT, "model.hidden[1]",
               "model.hidden[1] is 100001, more than the limit of 100000");
}

Test(spec, limit_params)
{
    /* 100000 * 10000 weights in the first layer alone */
    expect_err("{" MIN_SAMPLER ", 'dataset': {'n_in': 100000, 'train': 200, 'test': 0},"
               " 'model': {'hidden': [10000]}}",
               BZ_ELIMIT, "model.hidden", "more than the limit of 500000000");
}

Test(spec, limit_data_bytes)
{
    expect_err("{" MIN_SAMPLER ", 'dataset': {'n_in': 100000, 'train': 50000, 'test': 0},"
               " 'model': {'hidden': [4]}}",
               BZ_ELIMIT, "dataset.train", "20000000000 bytes as float32, more than the limit");
}

Test(spec, limit_examples)
{
    expect_err("{" MIN_SAMPLER ", 'dataset': {'n_in': 2, 'train': 10000001}}", BZ_ELIMIT,
               "dataset.train", "dataset.train is 10000001, more than the limit of 10000000");
    expect_err("{" MIN_SAMPLER ", 'dataset': {'n_in': 2, 'test': 10000001}}", BZ_ELIMIT,
               "dataset.test", "more than the limit of 10000000");
}

Test(spec, limit_steps)
{
    expect_err("{'sampler': {'T': 1, 'steps': 1000000000001}}", BZ_ELIMIT, "sampler.steps",
               "sampler.steps is 1000000000001, more than the limit of 1000000000000");
}

Test(spec, limit_batch)
{
    expect_err("{'sampler': {'T': 1, 'steps': 10, 'batch': 1000001}}", BZ_ELIMIT, "sampler.batch",
               "more than the limit of 1000000");
}

Test(spec, limit_temperatures)
{
    char text[2048] = "{'sampler': {'steps': 10, 'T': [1";
    for (int i = 0; i < BZ_MAX_TEMPS; i++) strcat(text, ", 1");
    strcat(text, "]}}");
    expect_err(text, BZ_ELIMIT, "sampler.T", "65 temperatures, more than the limit of 64");
}

Test(spec, limit_projection_dim)
{
    expect_err("{" MIN_SAMPLER ", 'dataset': {'kind': 'fashion_mnist', 'projection': {'dim': 200000}}}",
               BZ_ELIMIT, "dataset.projection.dim", "more than the limit of 100000");
}

/* ---- batched chains and replica exchange ---- */

#define TWO_T "'sampler': {'T': [0.01, 0.02], 'steps': 10}"

Test(spec, batched_only_for_pl_hmc_sgld)
{
    expect_err("{'sampler': {'method': 'adam', 'steps': 10}, 'batched': true}", BZ_EINVAL, "batched",
               "batched chains work with sampler.method pl, hmc or sgld (got adam)");
    expect_err("{'sampler': {'method': 'mbhmc', 'T': [1, 2], 'steps': 10}, 'batched': true}", BZ_EINVAL, "batched",
               "(got mbhmc)");
    expect_err("{'sampler': {'method': 'naive_pl', 'T': [1, 2], 'steps': 10}, 'batched': true}", BZ_EINVAL,
               "batched", "(got naive_pl)");
    static const char *const ok[] = {"pl", "hmc", "sgld"};
    for (int i = 0; i < 3; i++) {
        char text[256];
        snprintf(text, sizeof text, "{'sampler': {'method': '%s', 'T': [1, 2], 'steps': 10}, 'batched': true}", ok[i]);
        bz_spec s = parse_ok(text);
        cr_assert(s.batched, "%s", ok[i]);
        cr_assert_eq(s.exchange_every, 0, "%s", ok[i]);
    }
    /* one temperature is a batch of one: allowed, exchange is not asked for */
    bz_spec s = parse_ok("{" MIN_SAMPLER ", 'batched': true}");
    cr_assert(s.batched);
    /* not batched, the other methods are as before */
    s = parse_ok("{'sampler': {'method': 'adam', 'steps': 10}, 'batched': false}");
    cr_assert(!s.batched);
}

Test(spec, batched_and_exchange_types)
{
    expect_err("{" TWO_T ", 'batched': 1}", BZ_EINVAL, "batched", "batched must be true or false");
    expect_err("{" TWO_T ", 'batched': true, 'exchange': 5}", BZ_EINVAL, "exchange", "exchange must be an object");
    expect_err("{" TWO_T ", 'batched': true, 'exchange': {'every': -1}}", BZ_EINVAL, "exchange.every",
               "exchange.every must be >= 0 (got -1)");
    expect_err("{" TWO_T ", 'batched': true, 'exchange': {'every': 2.5}}", BZ_EINVAL, "exchange.every", "integer");
    expect_err("{" TWO_T ", 'batched': true, 'exchange': {'evry': 5}}", BZ_EINVAL, "exchange.evry",
               "did you mean 'every'?");
}

Test(spec, exchange_needs_batched)
{
    expect_err("{" TWO_T ", 'exchange': {'every': 5}}", BZ_EINVAL, "exchange.every",
               "replica exchange needs \"batched\": true");
    expect_err("{" TWO_T ", 'batched': false, 'exchange': {'every': 5}}", BZ_EINVAL, "exchange.every",
               "replica exchange needs \"batched\": true");
    /* every 0 is "off": nothing to need */
    bz_spec s = parse_ok("{" TWO_T ", 'exchange': {'every': 0}}");
    cr_assert_eq(s.exchange_every, 0);
    s = parse_ok("{" TWO_T ", 'batched': true, 'exchange': {'every': 5}}");
    cr_assert(s.batched);
    cr_assert_eq(s.exchange_every, 5);
}

Test(spec, exchange_needs_two_temperatures)
{
    expect_err("{'sampler': {'T': 0.01, 'steps': 10}, 'batched': true, 'exchange': {'every': 5}}", BZ_EINVAL,
               "exchange.every", "replica exchange needs at least 2 temperatures in sampler.T (got 1)");
    expect_err("{'sampler': {'T': [0.01], 'steps': 10}, 'batched': true, 'exchange': {'every': 5}}", BZ_EINVAL,
               "exchange.every", "(got 1)");
}

Test(spec, exchange_needs_increasing_temperatures)
{
    expect_err("{'sampler': {'T': [0.02, 0.01], 'steps': 10}, 'batched': true, 'exchange': {'every': 5}}", BZ_EINVAL,
               "sampler.T", "sampler.T must be strictly increasing for replica exchange (T[1] = 0.01 after 0.02)");
    expect_err("{'sampler': {'T': [0.01, 0.02, 0.02], 'steps': 10}, 'batched': true, 'exchange': {'every': 5}}",
               BZ_EINVAL, "sampler.T", "(T[2] = 0.02 after 0.02)");
    /* without exchange any order is a sweep */
    bz_spec s = parse_ok("{'sampler': {'T': [0.02, 0.01, 0.01], 'steps': 10}, 'batched': true}");
    cr_assert_eq(s.sampler.n_T, 3);
}

/* ---- defaults, helpers, files ---- */

static void assert_algorithm_defaults(const bz_spec *s)
{
    cr_assert_str_eq(s->name, "job");
    cr_assert_eq(s->dataset.kind, DS_SPIN);
    cr_assert_eq(s->dataset.n_in, 100);
    cr_assert_eq(s->dataset.classes, 10);
    cr_assert_eq(s->dataset.train, 2000);
    cr_assert_eq(s->dataset.test, 10000);
    cr_assert_eq(s->dataset.p_flip, 0.3);
    cr_assert_eq(s->dataset.seed, 1);
    cr_assert_eq(s->model.n_hidden, 2);
    cr_assert_eq(s->model.hidden[0], 64);
    cr_assert_eq(s->model.hidden[1], 32);
    cr_assert(s->model.bias);
    cr_assert_eq(s->model.lambda, 1e-3);
    cr_assert_eq(s->init.seed, 2);
    const sampler_spec *p = &s->sampler;
    cr_assert_eq(p->method, SM_PL);
    cr_assert_eq(p->seed, 3);
    cr_assert_eq(p->h, 1.0);
    cr_assert_eq(p->gamma, 0.1);
    cr_assert_eq(p->batch, 128);
    cr_assert_eq(p->r0, 0.01);
    cr_assert_eq(p->r_max, 0.1);
    cr_assert_eq(p->update_every, 1000);
    cr_assert_eq(p->p_reinit, 0.01);
    cr_assert_eq(p->var_method, VAR_EXACT);
    cr_assert_eq(p->var_examples, 16384);
    cr_assert_eq(p->var_min_batches, 16);
    cr_assert_eq(p->var_max_batches, 256);
    cr_assert_eq(p->var_tol, 0.1);
    cr_assert_eq(p->mass_floor, 0.0); /* auto */
    cr_assert_eq(p->layer_floor, 0.1);
    cr_assert_eq(p->kappa, 0.5);
    cr_assert_eq(p->z_guard, 6.0);
    cr_assert_eq(s->record.every, 200);
    cr_assert(s->record.test);
    cr_assert_eq(s->samples_every, 0);
    cr_assert_eq(s->checkpoint_every, 0);
    cr_assert_eq(s->checkpoint_keep, 5);
    cr_assert_eq(s->noise_every, 0);
    cr_assert_eq(s->noise_batches, 64);
    cr_assert_eq(s->burn_in, 0.2);
    cr_assert(!s->batched);
    cr_assert_eq(s->exchange_every, 0);
    cr_assert_str_eq(s->backend, "auto");
    cr_assert_str_eq(s->precision, "fp32");
}

Test(spec, defaults_equal_algorithm_md)
{
    bz_spec s = parse_ok("{" MIN_SAMPLER "}");
    assert_algorithm_defaults(&s);
    cr_assert_eq(s.sampler.n_T, 1);
    cr_assert_eq(s.sampler.T[0], 1e-3);
    cr_assert_eq(s.sampler.steps, 100);
    bz_spec d;
    spec_defaults(&d);
    assert_algorithm_defaults(&d);
    cr_assert_eq(d.sampler.n_T, 1);
    cr_assert_eq(d.sampler.T[0], 0.0);
    cr_assert_eq(d.sampler.steps, 0);
}

Test(spec, method_defaults_equal_algorithm_md)
{
    bz_spec s = parse_ok("{'sampler': {'method': 'hmc', 'T': 1, 'steps': 10}}");
    cr_assert_eq(s.sampler.h, 0.1);
    cr_assert_eq(s.sampler.leapfrog, 20);
    cr_assert_eq(s.sampler.mass, 1.0);
    cr_assert_eq(s.sampler.jitter, 0.1);
    cr_assert_eq(s.sampler.r0, 0.0); /* not a parameter of hmc */
    s = parse_ok("{'sampler': {'method': 'mbhmc', 'T': 1, 'steps': 10}}");
    cr_assert_eq(s.sampler.h, 0.1);
    cr_assert_eq(s.sampler.batch, 128);
    cr_assert_eq(s.sampler.leapfrog, 20);
    s = parse_ok("{'sampler': {'method': 'naive_pl', 'T': 1, 'steps': 10}}");
    cr_assert_eq(s.sampler.h, 0.01);
    cr_assert_eq(s.sampler.gamma, 0.1);
    cr_assert_eq(s.sampler.batch, 128);
    cr_assert_eq(s.sampler.mass, 1.0);
    s = parse_ok("{'sampler': {'method': 'sgld', 'T': 1, 'steps': 10}}");
    cr_assert_eq(s.sampler.lr, 1e-4);
    cr_assert_eq(s.sampler.batch, 128);
    s = parse_ok("{'sampler': {'method': 'adam', 'steps': 10}}");
    cr_assert_eq(s.sampler.lr, 1e-3);
    cr_assert_eq(s.sampler.batch, 128);
    cr_assert(!s.sampler.early_stopping);
}

Test(spec, sampler_defaults_switches_method)
{
    bz_spec s = parse_ok("{'sampler': {'T': [1, 2], 'steps': 10, 'seed': 9, 'r0': 0.05}}");
    spec_sampler_defaults(&s.sampler, SM_HMC);
    cr_assert_eq(s.sampler.method, SM_HMC);
    cr_assert_eq(s.sampler.h, 0.1);
    cr_assert_eq(s.sampler.leapfrog, 20);
    cr_assert_eq(s.sampler.r0, 0.0);
    cr_assert_eq(s.sampler.n_T, 2);
    cr_assert_eq(s.sampler.T[1], 2.0);
    cr_assert_eq(s.sampler.steps, 10);
    cr_assert_eq(s.sampler.seed, 9);
    spec_sampler_defaults(&s.sampler, SM_ADAM);
    cr_assert_eq(s.sampler.n_T, 1);
    cr_assert_eq(s.sampler.T[0], 0.0);
    cr_assert_eq(s.sampler.lr, 1e-3);
}

Test(spec, param_count)
{
    bz_spec s = parse_ok("{" MIN_SAMPLER "}");
    /* [100, 64, 32, 10] with biases */
    cr_assert_eq(spec_param_count(&s), 100 * 64 + 64 + 64 * 32 + 32 + 32 * 10 + 10);
    s = parse_ok("{" MIN_SAMPLER ", 'model': {'bias': false, 'hidden': [5]}}");
    cr_assert_eq(spec_param_count(&s), 100 * 5 + 5 * 10);
}

Test(spec, method_names)
{
    cr_assert_str_eq(spec_method_name(SM_PL), "pl");
    cr_assert_str_eq(spec_method_name(SM_HMC), "hmc");
    cr_assert_str_eq(spec_method_name(SM_MBHMC), "mbhmc");
    cr_assert_str_eq(spec_method_name(SM_NAIVE_PL), "naive_pl");
    cr_assert_str_eq(spec_method_name(SM_SGLD), "sgld");
    cr_assert_str_eq(spec_method_name(SM_ADAM), "adam");
}

Test(spec, error_leaves_output_untouched)
{
    bz_spec s;
    memset(&s, 0x5a, sizeof s);
    bz_err e;
    cr_assert_eq(spec_parse("{\"sampler\": {\"T\": -1, \"steps\": 1}}", &s, &e), BZ_EINVAL);
    unsigned char *b = (unsigned char *)&s;
    for (size_t i = 0; i < sizeof s; i++) cr_assert_eq(b[i], 0x5a);
}

Test(spec, parse_file_missing)
{
    bz_spec s;
    bz_err e;
    const char *path = "/nonexistent/boltzd/spec.json";
    cr_assert_eq(spec_parse_file(path, &s, &e), BZ_EIO);
    cr_assert_str_eq(e.field, path);
    cr_assert(strstr(e.msg, path) != NULL);
}

Test(spec, parse_file_reads_a_file)
{
    char dir[256], path[300];
    cr_assert_not_null(tu_mkdtemp(dir, sizeof dir));
    snprintf(path, sizeof path, "%s/job.json", dir);
    const char *text = q("{'name': 'from-file', " MIN_SAMPLER "}");
    cr_assert_eq(tu_write_file(path, text, strlen(text)), 0);
    bz_spec s;
    bz_err e;
    cr_assert_eq(spec_parse_file(path, &s, &e), 0, "%s", e.msg);
    cr_assert_str_eq(s.name, "from-file");
    remove(path);
    remove(dir);
}

Test(spec, all_examples_parse)
{
    glob_t g;
    cr_assert_eq(glob(BOLTZ_SOURCE_DIR "/examples/*.json", 0, NULL, &g), 0, "no examples found");
    cr_assert_geq(g.gl_pathc, 5);
    for (size_t i = 0; i < g.gl_pathc; i++) {
        bz_spec s;
        bz_err e;
        int rc = spec_parse_file(g.gl_pathv[i], &s, &e);
        cr_assert_eq(rc, 0, "%s: %s (field '%s')", g.gl_pathv[i], e.msg, e.field);
    }
    globfree(&g);
}

Test(spec, example_sizes)
{
    bz_spec s;
    bz_err e;
    cr_assert_eq(spec_parse_file(BOLTZ_SOURCE_DIR "/examples/spin-small.json", &s, &e), 0);
    cr_assert_eq(s.dataset.n_in, 500);
    cr_assert_eq(s.model.hidden[0], 20);
    cr_assert_eq(s.model.hidden[1], 100);
    cr_assert_eq(s.sampler.T[0], 1e-3);
    cr_assert_eq(spec_parse_file(BOLTZ_SOURCE_DIR "/examples/fashion-projected.json", &s, &e), 0);
    cr_assert_eq(s.dataset.n_in, 256);
    cr_assert(s.dataset.binarize);
}

/* ---- round trip ---- */

static void assert_spec_eq(const bz_spec *a, const bz_spec *b)
{
    cr_assert_str_eq(a->name, b->name);
    const ds_spec *da = &a->dataset, *db = &b->dataset;
    cr_assert_eq(da->kind, db->kind);
    cr_assert_eq(da->n_in, db->n_in);
    cr_assert_eq(da->classes, db->classes);
    cr_assert_eq(da->train, db->train);
    cr_assert_eq(da->test, db->test);
    cr_assert_eq(da->p_flip, db->p_flip);
    cr_assert_eq(da->seed, db->seed);
    cr_assert_eq(da->proj_dim, db->proj_dim);
    cr_assert_eq(da->binarize, db->binarize);
    cr_assert_str_eq(da->dir, db->dir);
    cr_assert_eq(a->model.n_hidden, b->model.n_hidden);
    for (int i = 0; i < a->model.n_hidden; i++) cr_assert_eq(a->model.hidden[i], b->model.hidden[i]);
    cr_assert_eq(a->model.bias, b->model.bias);
    cr_assert_eq(a->model.lambda, b->model.lambda);
    cr_assert_eq(a->init.seed, b->init.seed);
    const sampler_spec *p = &a->sampler, *r = &b->sampler;
    cr_assert_eq(p->method, r->method);
    cr_assert_eq(p->n_T, r->n_T);
    for (int i = 0; i < p->n_T; i++) cr_assert_eq(p->T[i], r->T[i]);
    cr_assert_eq(p->steps, r->steps);
    cr_assert_eq(p->seed, r->seed);
    cr_assert_eq(p->batch, r->batch);
    cr_assert_eq(p->h, r->h);
    cr_assert_eq(p->gamma, r->gamma);
    cr_assert_eq(p->r0, r->r0);
    cr_assert_eq(p->r_max, r->r_max);
    cr_assert_eq(p->update_every, r->update_every);
    cr_assert_eq(p->p_reinit, r->p_reinit);
    cr_assert_eq(p->var_method, r->var_method);
    cr_assert_eq(p->var_examples, r->var_examples);
    cr_assert_eq(p->var_min_batches, r->var_min_batches);
    cr_assert_eq(p->var_max_batches, r->var_max_batches);
    cr_assert_eq(p->var_tol, r->var_tol);
    cr_assert_eq(p->mass_floor, r->mass_floor);
    cr_assert_eq(p->layer_floor, r->layer_floor);
    cr_assert_eq(p->kappa, r->kappa);
    cr_assert_eq(p->z_guard, r->z_guard);
    cr_assert_eq(p->leapfrog, r->leapfrog);
    cr_assert_eq(p->jitter, r->jitter);
    cr_assert_eq(p->mass, r->mass);
    cr_assert_eq(p->lr, r->lr);
    cr_assert_eq(p->early_stopping, r->early_stopping);
    cr_assert_eq(p->val_fraction, r->val_fraction);
    cr_assert_eq(p->patience, r->patience);
    cr_assert_eq(a->record.every, b->record.every);
    cr_assert_eq(a->record.test, b->record.test);
    cr_assert_eq(a->samples_every, b->samples_every);
    cr_assert_eq(a->checkpoint_every, b->checkpoint_every);
    cr_assert_eq(a->checkpoint_keep, b->checkpoint_keep);
    cr_assert_eq(a->noise_every, b->noise_every);
    cr_assert_eq(a->noise_batches, b->noise_batches);
    cr_assert_eq(a->burn_in, b->burn_in);
    cr_assert_eq(a->batched, b->batched);
    cr_assert_eq(a->exchange_every, b->exchange_every);
    cr_assert_str_eq(a->backend, b->backend);
    cr_assert_str_eq(a->precision, b->precision);
}

static void round_trip(const char *text)
{
    bz_spec a = parse_ok(text), b;
    char *json = spec_to_json(&a);
    cr_assert_not_null(json);
    bz_err e;
    cr_assert_eq(spec_parse(json, &b, &e), 0, "re-parse failed: %s on %s", e.msg, json);
    assert_spec_eq(&a, &b);
    char *again = spec_to_json(&b);
    cr_assert_str_eq(json, again);
    free(again);
    free(json);
}

Test(spec, round_trip_pl)
{
    round_trip("{'name': 'rt', 'sampler': {'T': [1e-4, 0.1, 0.3], 'steps': 77, 'r0': 0.002,"
               " 'mass_floor': 0.25, 'var_method': 'minibatch', 'z_guard': 0, 'seed': 12345678901},"
               " 'samples': {'every': 10}, 'diagnostics': {'noise_every': 5}, 'analysis': {'burn_in': 0.3}}");
    round_trip("{" MIN_SAMPLER "}");
}

Test(spec, round_trip_hmc)
{
    round_trip("{'sampler': {'method': 'hmc', 'T': 0.01, 'steps': 5, 'leapfrog': 7, 'jitter': 0},"
               " 'dataset': {'train': 100}, 'backend': 'cpu'}");
}

Test(spec, round_trip_mbhmc)
{
    round_trip("{'sampler': {'method': 'mbhmc', 'T': 0.01, 'steps': 5, 'batch': 32, 'h': 1e-4}}");
}

Test(spec, round_trip_naive_pl)
{
    round_trip("{'sampler': {'method': 'naive_pl', 'T': 0.01, 'steps': 5, 'mass': 3}}");
}

Test(spec, round_trip_sgld)
{
    round_trip("{'sampler': {'method': 'sgld', 'T': 0.01, 'steps': 5, 'lr': 3e-5}}");
}

Test(spec, round_trip_adam)
{
    round_trip("{'sampler': {'method': 'adam', 'steps': 5, 'early_stopping': {'patience': 3}}}");
    round_trip("{'sampler': {'method': 'adam', 'steps': 5}}");
}

Test(spec, round_trip_dataset_kinds)
{
    round_trip("{" MIN_SAMPLER ", 'dataset': {'kind': 'fashion_mnist', 'train': 1000,"
               " 'projection': {'dim': 64, 'binarize': true}}, 'precision': 'tf32'}");
    round_trip("{" MIN_SAMPLER ", 'dataset': {'kind': 'fashion_mnist'}}");
    round_trip("{" MIN_SAMPLER ", 'dataset': {'kind': 'npy', 'dir': '/data/x', 'classes': 3}}");
    round_trip("{" MIN_SAMPLER ", 'dataset': {'p_flip': 0.123456789012345678, 'n_in': 7},"
               " 'model': {'hidden': [3, 4, 5], 'bias': false, 'lambda': 0}}");
}

Test(spec, to_json_has_only_the_method_keys)
{
    bz_spec s = parse_ok("{'sampler': {'method': 'hmc', 'T': 1, 'steps': 10}, 'dataset': {'kind': 'npy', 'dir': 'd'}}");
    char *json = spec_to_json(&s);
    cr_assert_not_null(json);
    cr_assert_null(strstr(json, "\"r0\""), "%s", json);
    cr_assert_null(strstr(json, "\"batch\""), "%s", json);
    cr_assert_null(strstr(json, "\"p_flip\""), "%s", json);
    cr_assert_not_null(strstr(json, "\"leapfrog\":20"), "%s", json);
    cr_assert_not_null(strstr(json, "\"h\":0.1,"), "%s", json); /* short form of 0.1 */
    free(json);
}

Test(spec, round_trip_batched_and_exchange)
{
    round_trip("{'sampler': {'T': [0.01, 0.02, 0.04], 'steps': 50}, 'batched': true, 'exchange': {'every': 7}}");
    round_trip("{'sampler': {'method': 'hmc', 'T': [0.01, 0.02], 'steps': 50}, 'batched': true}");
    round_trip("{'sampler': {'method': 'sgld', 'T': [0.01, 0.02], 'steps': 50}, 'batched': true,"
               " 'exchange': {'every': 1}}");
}

/* "batched" and "exchange" are written only when they differ from their defaults (false, every
 * 0), so the normalised text, and with it the spec hash of every earlier job, is unchanged. */
Test(spec, to_json_omits_batched_and_exchange_at_defaults)
{
    static const char *const at_default[] = {
        "{" MIN_SAMPLER "}",
        "{" MIN_SAMPLER ", 'batched': false}",
        "{" MIN_SAMPLER ", 'exchange': {'every': 0}}",
        "{" MIN_SAMPLER ", 'batched': false, 'exchange': {}}",
    };
    char *plain = NULL;
    for (size_t i = 0; i < sizeof at_default / sizeof at_default[0]; i++) {
        bz_spec s = parse_ok(at_default[i]);
        char *json = spec_to_json(&s);
        cr_assert_not_null(json);
        cr_assert_null(strstr(json, "\"batched\""), "%s -> %s", at_default[i], json);
        cr_assert_null(strstr(json, "\"exchange\""), "%s -> %s", at_default[i], json);
        if (!plain) plain = json;
        else {
            cr_assert_str_eq(json, plain, "%s", at_default[i]);
            free(json);
        }
    }
    free(plain);
    bz_spec s = parse_ok("{" MIN_SAMPLER ", 'batched': true}");
    char *json = spec_to_json(&s);
    cr_assert_not_null(strstr(json, "\"batched\":true"), "%s", json);
    cr_assert_null(strstr(json, "\"exchange\""), "%s", json);
    free(json);
    s = parse_ok("{" TWO_T ", 'batched': true, 'exchange': {'every': 5}}");
    json = spec_to_json(&s);
    cr_assert_not_null(strstr(json, "\"batched\":true"), "%s", json);
    cr_assert_not_null(strstr(json, "\"exchange\":{\"every\":5}"), "%s", json);
    free(json);
}

/* ---- schema/job.schema.json documents the same keys ---- */

/* The properties of the oneOf branch of schema_obj whose const variant key is name. */
static json_t *schema_branch(json_t *schema_obj, const char *key, const char *name)
{
    size_t i;
    json_t *b;
    json_array_foreach(json_object_get(schema_obj, "oneOf"), i, b) {
        json_t *props = json_object_get(b, "properties");
        json_t *c = json_object_get(json_object_get(props, key), "const");
        if (c && strcmp(json_string_value(c), name) == 0) return props;
    }
    return NULL;
}

/* Keys spec_to_json leaves out at their defaults (added after the first specs were stored, so
 * those keep their hash). */
static bool omitted_at_default(const char *key)
{
    return !strcmp(key, "batched") || !strcmp(key, "exchange") || !strcmp(key, "noise_rank");
}

/* Every key spec_to_json writes is in the schema's properties, and the other way round (when
 * all_keys is false, except the keys omitted at their defaults). */
static void assert_same_keys(json_t *emitted, json_t *props, const char *what, bool all_keys)
{
    cr_assert_not_null(props, "no schema branch for %s", what);
    const char *k;
    json_t *v;
    json_object_foreach(emitted, k, v)
        cr_assert_not_null(json_object_get(props, k), "%s: '%s' missing from the schema", what, k);
    json_object_foreach(props, k, v)
        cr_assert(json_object_get(emitted, k) || (!all_keys && omitted_at_default(k)),
                  "%s: schema has '%s', spec.c does not", what, k);
}

Test(spec, schema_lists_the_same_keys)
{
    json_error_t je;
    json_t *schema = json_load_file(BOLTZ_SOURCE_DIR "/schema/job.schema.json", 0, &je);
    cr_assert_not_null(schema, "schema: %s line %d", je.text, je.line);
    json_t *top = json_object_get(schema, "properties");
    static const char *methods[] = { "pl", "hmc", "mbhmc", "naive_pl", "sgld", "adam" };
    static const char *kinds[] = { "spin", "fashion_mnist", "npy" };
    for (int m = 0; m < 6; m++) {
        char text[256];
        snprintf(text, sizeof text, "{'sampler': {'method': '%s', %s'steps': 10},"
                 " 'dataset': {'kind': '%s'%s}}", methods[m], m == SM_ADAM ? "" : "'T': 1, ",
                 kinds[m % 3], m % 3 == DS_NPY ? ", 'dir': 'd'" : "");
        bz_spec s = parse_ok(text);
        char *out = spec_to_json(&s);
        json_t *j = json_loads(out, 0, NULL);
        cr_assert_not_null(j);
        assert_same_keys(j, top, "top level", false);
        assert_same_keys(json_object_get(j, "sampler"),
                         schema_branch(json_object_get(top, "sampler"), "method", methods[m]),
                         methods[m], false);
        assert_same_keys(json_object_get(j, "dataset"),
                         schema_branch(json_object_get(top, "dataset"), "kind", kinds[m % 3]),
                         kinds[m % 3], true);
        json_decref(j);
        free(out);
    }
    /* with batched and exchange set, every top-level key is written, and exchange's keys are
     * the schema's */
    bz_spec s = parse_ok("{" TWO_T ", 'batched': true, 'exchange': {'every': 5}}");
    char *out = spec_to_json(&s);
    json_t *j = json_loads(out, 0, NULL);
    cr_assert_not_null(j);
    assert_same_keys(j, top, "top level (batched, exchange)", true);
    assert_same_keys(json_object_get(j, "exchange"), json_object_get(json_object_get(top, "exchange"), "properties"),
                     "exchange", true);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(top, "batched"), "type")), "boolean");
    json_decref(j);
    free(out);
    /* with noise_rank set, every pl key is written */
    s = parse_ok("{'sampler': {'T': 1, 'steps': 10, 'noise_rank': 8}}");
    out = spec_to_json(&s);
    j = json_loads(out, 0, NULL);
    cr_assert_not_null(j);
    assert_same_keys(json_object_get(j, "sampler"), schema_branch(json_object_get(top, "sampler"), "method", "pl"),
                     "pl (noise_rank)", true);
    json_decref(j);
    free(out);
    json_decref(schema);
}

/* sampler.noise_rank (pl only): 0 to 256, left out of the normalised JSON at 0, kept otherwise. */
Test(spec, noise_rank_range_and_omission)
{
    bz_spec s = parse_ok("{'sampler': {'T': 0.01, 'steps': 10, 'noise_rank': 16}}");
    cr_assert_eq(s.sampler.noise_rank, 16);
    char *json = spec_to_json(&s);
    cr_assert(strstr(json, "\"noise_rank\":16"), "%s", json);
    free(json);
    s = parse_ok("{'sampler': {'T': 0.01, 'steps': 10}}");
    cr_assert_eq(s.sampler.noise_rank, 0);
    json = spec_to_json(&s);
    cr_assert_null(strstr(json, "noise_rank"), "%s", json);
    free(json);
    expect_err("{'sampler': {'T': 0.01, 'steps': 10, 'noise_rank': 257}}", BZ_EINVAL, "sampler.noise_rank", "256");
    expect_err("{'sampler': {'T': 0.01, 'steps': 10, 'noise_rank': -1}}", BZ_EINVAL, "sampler.noise_rank", "0");
    expect_err("{'sampler': {'method': 'hmc', 'T': 0.01, 'steps': 10, 'noise_rank': 4}}", BZ_EINVAL,
               "sampler.noise_rank", "noise_rank");
}
