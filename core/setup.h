/* setup.h: turning a validated spec and its loaded data set into the objects a job runs on
 * (architecture, initial weights). Shared by the CLI, the samplers and the daemon. */
#ifndef BZ_SETUP_H
#define BZ_SETUP_H

#include "dataset.h"
#include "nn.h"
#include "spec.h"

/* Architecture [N0, hidden..., C] from the spec's model and the data's dimensions. Re-checks the
 * parameter limit, since for npy data N0 is only known after loading. */
int setup_arch(const bz_spec *s, const ds_data *d, nn_arch *a, bz_err *e);

/* Load the data set and build the architecture. On error nothing stays allocated. */
int setup_load(const bz_spec *s, ds_data *d, nn_arch *a, bz_err *e);

/* Read a flat float32 weights file of exactly a->n values ((n,), (1, n) or (n, 1)); *w is
 * malloc'ed. A wrong length or dtype is BZ_EFORMAT naming the file and both lengths. */
int setup_read_weights(const char *path, const nn_arch *a, float **w, bz_err *e);

/* The spec's initial weights into w (a->n floats): He from init.seed, or init.path. */
int setup_initial_weights(const bz_spec *s, const nn_arch *a, float *w, bz_err *e);

/* Hold the last round(fraction * P) training rows out as a validation set (at least 1, and at
 * least 1 row left for training): n_train shrinks, x_val/y_val point at the tail. The data sets
 * are shuffled at build time, so the tail is a random split. */
int setup_hold_out(ds_data *d, double fraction, bz_err *e);

#endif
