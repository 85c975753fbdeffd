/* select.h: order statistics without a full sort (mass floors need a percentile and medians). */
#ifndef BZ_SELECT_H
#define BZ_SELECT_H

#include <stdint.h>

/* The k-th smallest (0-based) of a[0..n), n > 0, 0 <= k < n. Reorders a. Expected O(n). */
double select_kth(double *a, int64_t n, int64_t k);

#endif
