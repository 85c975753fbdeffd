/* pl_lowrank.c: pL's low-rank noise compensation (see pl_lowrank.h). */
#include "pl_lowrank.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* LAPACK (in libopenblas): eigenvalues and vectors of a symmetric matrix, ascending. */
extern void dsyevd_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda, double *w,
                    double *work, const int *lwork, int *iwork, const int *liwork, int *info);

struct pl_lowrank {
    int64_t n;
    int32_t k, max_rows, rows;
    double *d;        /* (max_rows, n): per-example deviations d_mu (then scaled to y in plr_factor) */
    double *y;        /* (max_rows, n): y_mu,i */
    double *gram;     /* (max_rows, max_rows) */
    double *evals;    /* max_rows */
    double *q;        /* (k, n): R's top eigenvectors, rows */
    double *lam;      /* k */
    double *diag;     /* n: R_ii */
    double *s;        /* n: sqrt(1 - d_res_i) */
    double *u;        /* (k, n): left singular vectors of W, rows */
    double *shrink;   /* k: 1 - sqrt(1 - sigma_j^2) */
    double *small;    /* (k, k) scratch */
    double *proj;     /* k */
    double *gsum, *qsum; /* n: moments scratch */
};

pl_lowrank *plr_new(int64_t n, int32_t k, int32_t rows)
{
    pl_lowrank *l = calloc(1, sizeof *l);
    if (!l) return NULL;
    l->n = n;
    l->k = k;
    l->max_rows = rows;
    const size_t N = (size_t)n, R = (size_t)rows, K = (size_t)k;
    l->d = calloc(R * N, sizeof(double));
    l->y = calloc(R * N, sizeof(double));
    l->gram = calloc(R * R, sizeof(double));
    l->evals = calloc(R, sizeof(double));
    l->q = calloc(K * N, sizeof(double));
    l->lam = calloc(K, sizeof(double));
    l->diag = calloc(N, sizeof(double));
    l->s = calloc(N, sizeof(double));
    l->u = calloc(K * N, sizeof(double));
    l->shrink = calloc(K, sizeof(double));
    l->small = calloc(K * K, sizeof(double));
    l->proj = calloc(K, sizeof(double));
    l->gsum = calloc(N, sizeof(double));
    l->qsum = calloc(N, sizeof(double));
    if (!l->d || !l->y || !l->gram || !l->evals || !l->q || !l->lam || !l->diag || !l->s || !l->u || !l->shrink ||
        !l->small || !l->proj || !l->gsum || !l->qsum) {
        plr_free(l);
        return NULL;
    }
    for (int64_t i = 0; i < n; i++) l->s[i] = 1.0;
    return l;
}

void plr_free(pl_lowrank *l)
{
    if (!l) return;
    free(l->d);
    free(l->y);
    free(l->gram);
    free(l->evals);
    free(l->q);
    free(l->lam);
    free(l->diag);
    free(l->s);
    free(l->u);
    free(l->shrink);
    free(l->small);
    free(l->proj);
    free(l->gsum);
    free(l->qsum);
    free(l);
}

int plr_measure(pl_lowrank *l, be *b, const float *w, const int32_t *idx, int32_t rows, bz_err *e)
{
    if (rows < 2 || rows > l->max_rows)
        return bz_fail(e, BZ_EINVAL, "sampler.noise_rank", "low-rank noise estimate needs 2 to %d examples (got %d)",
                       (int)l->max_rows, (int)rows);
    const int64_t n = l->n;
    double *mean = l->gsum;
    l->rows = rows;
    for (int32_t mu = 0; mu < rows; mu++) {
        double *g = l->d + (size_t)mu * (size_t)n;
        memset(g, 0, sizeof(double) * (size_t)n);
        memset(l->qsum, 0, sizeof(double) * (size_t)n);
        b->ops->moments(b->ctx, w, &idx[mu], 1, g, l->qsum); /* g = the example's data gradient */
    }
    memset(mean, 0, sizeof(double) * (size_t)n);
    for (int32_t mu = 0; mu < rows; mu++)
        for (int64_t i = 0; i < n; i++) mean[i] += l->d[(size_t)mu * (size_t)n + (size_t)i] / rows;
    for (int32_t mu = 0; mu < rows; mu++)
        for (int64_t i = 0; i < n; i++) l->d[(size_t)mu * (size_t)n + (size_t)i] -= mean[i];
    return 0;
}

/* Symmetric eigen-decomposition in place: a (m x m, row-major = column-major for symmetric)
 * becomes the eigenvectors (columns in LAPACK's column-major: a[j*m + i] is component i of
 * eigenvector j), w the eigenvalues ascending. 0 on success. */
static int sym_eig(double *a, int m, double *w)
{
    int info = 0, lwork = -1, liwork = -1, iwq = 0;
    double wq = 0;
    dsyevd_("V", "U", &m, a, &m, w, &wq, &lwork, &iwq, &liwork, &info);
    if (info) return info;
    lwork = (int)wq;
    liwork = iwq;
    double *work = malloc(sizeof(double) * (size_t)lwork);
    int *iwork = malloc(sizeof(int) * (size_t)liwork);
    if (!work || !iwork) {
        free(work);
        free(iwork);
        return -1;
    }
    dsyevd_("V", "U", &m, a, &m, w, work, &lwork, iwork, &liwork, &info);
    free(work);
    free(iwork);
    return info;
}

/* y = d sqrt(A kB / ((rows-1) m_i)); gram = y y^T; diag_i = sum_mu y_mu,i^2. */
static void scale_and_gram(pl_lowrank *l, const double *m, double A_kB)
{
    const int64_t n = l->n;
    const int32_t R = l->rows;
    memset(l->diag, 0, sizeof(double) * (size_t)n);
    for (int32_t mu = 0; mu < R; mu++)
        for (int64_t i = 0; i < n; i++) {
            const size_t at = (size_t)mu * (size_t)n + (size_t)i;
            double y = l->d[at] * sqrt(A_kB / ((double)(R - 1) * m[i]));
            l->y[at] = y;
            l->diag[i] += y * y;
        }
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, R, R, (int)n, 1.0, l->y, (int)n, l->y, (int)n, 0.0, l->gram,
                R);
}

/* q_j = Y^T v_j / sqrt(lambda_j) for the top k eigenpairs of the Gram matrix. */
static void top_vectors(pl_lowrank *l)
{
    const int64_t n = l->n;
    const int32_t R = l->rows, k = l->k < R ? l->k : R;
    for (int32_t j = 0; j < l->k; j++) {
        double *q = l->q + (size_t)j * (size_t)n;
        memset(q, 0, sizeof(double) * (size_t)n);
        l->lam[j] = 0;
        if (j >= k) continue;
        const int32_t col = R - 1 - j; /* ascending order: the largest last */
        const double lam = l->evals[col];
        if (!(lam > 0)) continue;
        l->lam[j] = lam;
        for (int32_t mu = 0; mu < R; mu++) {
            double v = l->gram[(size_t)col * (size_t)R + (size_t)mu] / sqrt(lam);
            const double *y = l->y + (size_t)mu * (size_t)n;
            for (int64_t i = 0; i < n; i++) q[i] += v * y[i];
        }
    }
}

/* S from the residual diagonal; W = S^-1 Q Lambda^1/2; thin SVD of W through W^T W. */
static int factor_w(pl_lowrank *l)
{
    const int64_t n = l->n;
    const int32_t k = l->k;
    for (int64_t i = 0; i < n; i++) {
        double res = l->diag[i];
        for (int32_t j = 0; j < k; j++) res -= l->lam[j] * l->q[(size_t)j * (size_t)n + (size_t)i] * l->q[(size_t)j * (size_t)n + (size_t)i];
        res = res > 0 ? res : 0;
        l->s[i] = sqrt(res < 0.99 ? 1.0 - res : 0.01);
    }
    /* W columns w_j = S^-1 q_j sqrt(lambda_j), stored as rows in u for now */
    for (int32_t j = 0; j < k; j++)
        for (int64_t i = 0; i < n; i++)
            l->u[(size_t)j * (size_t)n + (size_t)i] = l->q[(size_t)j * (size_t)n + (size_t)i] * sqrt(l->lam[j]) / l->s[i];
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, k, k, (int)n, 1.0, l->u, (int)n, l->u, (int)n, 0.0, l->small,
                k);
    double sig2[256];
    if (k > 256 || sym_eig(l->small, k, sig2)) return -1;
    /* U = W V Sigma^-1: row j of the new u = sum_a V[a][j] w_a / sigma_j */
    double *w_rows = malloc(sizeof(double) * (size_t)k * (size_t)n);
    if (!w_rows) return -1;
    memcpy(w_rows, l->u, sizeof(double) * (size_t)k * (size_t)n);
    for (int32_t j = 0; j < k; j++) {
        double *uj = l->u + (size_t)j * (size_t)n;
        memset(uj, 0, sizeof(double) * (size_t)n);
        l->shrink[j] = 0;
        if (!(sig2[j] > 1e-300)) continue;
        const double sg = sqrt(sig2[j]);
        for (int32_t a = 0; a < k; a++) {
            double v = l->small[(size_t)j * (size_t)k + (size_t)a] / sg; /* column j of V, component a */
            const double *wa = w_rows + (size_t)a * (size_t)n;
            for (int64_t i = 0; i < n; i++) uj[i] += v * wa[i];
        }
        double s2 = sig2[j] < 0.99 ? sig2[j] : 0.99;
        l->shrink[j] = 1.0 - sqrt(1.0 - s2);
    }
    free(w_rows);
    return 0;
}

double plr_factor(pl_lowrank *l, const double *m, double A_kB)
{
    scale_and_gram(l, m, A_kB);
    if (sym_eig(l->gram, l->rows, l->evals)) return -1.0;
    double lam_max = l->evals[l->rows - 1];
    if (lam_max > PLR_CAP) return lam_max;
    top_vectors(l);
    return factor_w(l) ? -1.0 : lam_max;
}

void plr_apply(const pl_lowrank *l, double *z)
{
    const int64_t n = l->n;
    for (int32_t j = 0; j < l->k; j++) {
        const double *uj = l->u + (size_t)j * (size_t)n;
        double dot = 0;
        for (int64_t i = 0; i < n; i++) dot += uj[i] * z[i];
        l->proj[j] = dot * l->shrink[j];
    }
    for (int32_t j = 0; j < l->k; j++) {
        const double *uj = l->u + (size_t)j * (size_t)n;
        const double p = l->proj[j];
        if (p != 0) for (int64_t i = 0; i < n; i++) z[i] -= p * uj[i];
    }
    for (int64_t i = 0; i < n; i++) z[i] *= l->s[i];
}

const double *plr_diag(const pl_lowrank *l) { return l->diag; }

int plr_save(const pl_lowrank *l, ckpt_writer *w, bz_err *e)
{
    const uint64_t nb = sizeof(double) * (uint64_t)l->n, kb = sizeof(double) * (uint64_t)l->k;
    int rc = ckpt_put(w, "plr_u", l->u, kb * (uint64_t)l->n, e);
    if (!rc) rc = ckpt_put(w, "plr_shrink", l->shrink, kb, e);
    if (!rc) rc = ckpt_put(w, "plr_s", l->s, nb, e);
    if (!rc) rc = ckpt_put(w, "plr_diag", l->diag, nb, e);
    return rc;
}

int plr_load(pl_lowrank *l, ckpt_reader *r, bz_err *e)
{
    const uint64_t nb = sizeof(double) * (uint64_t)l->n, kb = sizeof(double) * (uint64_t)l->k;
    int rc = ckpt_get(r, "plr_u", l->u, kb * (uint64_t)l->n, e);
    if (!rc) rc = ckpt_get(r, "plr_shrink", l->shrink, kb, e);
    if (!rc) rc = ckpt_get(r, "plr_s", l->s, nb, e);
    if (!rc) rc = ckpt_get(r, "plr_diag", l->diag, nb, e);
    return rc;
}
