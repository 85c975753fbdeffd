/* smp_pl.h: read-only views of a pL chain's mass control, for tests and diagnostics. */
#ifndef BZ_SMP_PL_H
#define BZ_SMP_PL_H

#include "sampler.h"

typedef struct pl_view {
    const double *m;    /* masses (n) */
    const double *s2v;  /* s_i^2 estimate (n) */
    double A;           /* r_i = A s_i^2 / m_i */
    double mass_floor;  /* floor in force */
    int64_t n_raise, n_reinit, n_guard, n_floor, n_stab;
} pl_view;

/* Fill v from a chain whose method is pl; returns BZ_EINVAL otherwise. */
int pl_inspect(smp_chain *c, pl_view *v);

#endif
