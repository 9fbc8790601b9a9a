/* turbo_basis.c — top eigenvectors of a symmetric matrix: Householder
 * reduction to tridiagonal form, then the implicit QL algorithm (the
 * EISPACK tred2/tql2 pair, as in the public-domain JAMA library), about
 * 4 n^3 flops instead of Jacobi's ~30 n^3. */
#include "turbo_basis.h"
#include "turbo_dvec.h"

#include <math.h>
#include <string.h>

#define MAX_QL_ITER 60

/* Element (r, c) of the algorithms' n x n matrix V, stored transposed (at
 * row c, column r of the memory): their O(n^3) loops walk down a column of
 * V (for k: V[k][j]), which transposed storage makes a contiguous row. The
 * input is symmetric, so its transpose is itself, and every element goes
 * through the same operations in the same order as with V stored by rows:
 * the results are the same bits. Column j of V (an eigenvector) is then
 * the contiguous row j of the memory. (Stored by rows, the QL rotations
 * touched one cache line per element pair; tql2 and tred2 were 2.1% of a
 * tq4 prefill profile, 8B-attention shape, 64 bases of d = 128.) */
#define AT(r, c) V[(size_t)(c) * N + (size_t)(r)]

/* The element-wise updates of rows of V (contiguous, see AT) run two
 * doubles at a time (turbo_dvec.h): the same bits as element by element.
 * Only the sums over k (reductions) stay scalar, as their order would
 * change. */

/* The plane rotation of tql2 on rows a, b of n: b' = s a + c b, a' = c a -
 * s b. */
static void rotate_rows(double *a, double *b, size_t n, double c, double s) {
    size_t k = 0;
    for (; k + 2 <= n; k += 2) {
        const v2d va = dvec_load(a + k), vb = dvec_load(b + k);
        dvec_store(b + k, s * va + c * vb);
        dvec_store(a + k, c * va - s * vb);
    }
    for (; k < n; k++) {
        const double h = b[k];
        b[k] = s * a[k] + c * h;
        a[k] = c * a[k] - s * h;
    }
}

/* V (n x n, in: the matrix, out: the orthogonal reduction), d the
 * diagonal, e the subdiagonal (e[i] couples i-1 and i). */
static void tred2(double *V, int32_t n, double *d, double *e) {
    const size_t N = (size_t)n;
    for (int32_t j = 0; j < n; j++) d[j] = AT(N - 1, j);
    for (int32_t i = n - 1; i > 0; i--) {
        double scale = 0, h = 0;
        for (int32_t k = 0; k < i; k++) scale += fabs(d[k]);
        if (scale == 0) {
            e[i] = d[i - 1];
            for (int32_t j = 0; j < i; j++) {
                d[j] = AT(i - 1, j);
                AT(i, j) = 0;
                AT(j, i) = 0;
            }
        } else {
            for (int32_t k = 0; k < i; k++) {
                d[k] /= scale;
                h += d[k] * d[k];
            }
            double f = d[i - 1], g = sqrt(h);
            if (f > 0) g = -g;
            e[i] = scale * g;
            h -= f * g;
            d[i - 1] = f - g;
            for (int32_t j = 0; j < i; j++) e[j] = 0;
            for (int32_t j = 0; j < i; j++) {
                f = d[j];
                AT(j, i) = f;
                g = e[j] + AT(j, j) * f;
                for (int32_t k = j + 1; k <= i - 1; k++) g += AT(k, j) * d[k];
                if (j + 1 <= i - 1) dvec_add_scaled(e + j + 1, (size_t)(i - 1 - j), &AT(j + 1, j), f);
                e[j] = g;
            }
            f = 0;
            for (int32_t j = 0; j < i; j++) {
                e[j] /= h;
                f += e[j] * d[j];
            }
            const double hh = f / (h + h);
            for (int32_t j = 0; j < i; j++) e[j] -= hh * d[j];
            for (int32_t j = 0; j < i; j++) {
                f = d[j];
                g = e[j];
                dvec_sub_rank2(&AT(j, j), (size_t)(i - j), f, e + j, g, d + j);
                d[j] = AT(i - 1, j);
                AT(i, j) = 0;
            }
        }
        d[i] = h;
    }
    /* Accumulate the transformations. */
    for (int32_t i = 0; i < n - 1; i++) {
        AT(N - 1, i) = AT(i, i);
        AT(i, i) = 1;
        const double h = d[i + 1];
        if (h != 0) {
            for (int32_t k = 0; k <= i; k++) d[k] = AT(k, i + 1) / h;
            for (int32_t j = 0; j <= i; j++) {
                double g = 0;
                for (int32_t k = 0; k <= i; k++)
                    g += AT(k, i + 1) * AT(k, j);
                dvec_sub_scaled(&AT(0, j), (size_t)i + 1, g, d);
            }
        }
        for (int32_t k = 0; k <= i; k++) AT(k, i + 1) = 0;
    }
    for (int32_t j = 0; j < n; j++) {
        d[j] = AT(N - 1, j);
        AT(N - 1, j) = 0;
    }
    AT(N - 1, N - 1) = 1;
    e[0] = 0;
}

/* Diagonalizes the tridiagonal (d, e), rotating V's columns along. */
static void tql2(double *V, int32_t n, double *d, double *e) {
    const size_t N = (size_t)n;
    for (int32_t i = 1; i < n; i++) e[i - 1] = e[i];
    e[n - 1] = 0;
    double f = 0, tst1 = 0;
    const double eps = 0x1p-52;
    for (int32_t l = 0; l < n; l++) {
        const double t = fabs(d[l]) + fabs(e[l]);
        tst1 = t > tst1 ? t : tst1;
        int32_t m = l;
        while (m < n && fabs(e[m]) > eps * tst1) m++;
        if (m == n) m = n - 1;
        if (m > l) {
            for (int iter = 0; iter < MAX_QL_ITER; iter++) {
                double g = d[l];
                double p = (d[l + 1] - g) / (2 * e[l]);
                double r = hypot(p, 1);
                if (p < 0) r = -r;
                d[l] = e[l] / (p + r);
                d[l + 1] = e[l] * (p + r);
                const double dl1 = d[l + 1];
                double h = g - d[l];
                for (int32_t i = l + 2; i < n; i++) d[i] -= h;
                f += h;
                p = d[m];
                double c = 1, c2 = 1, c3 = 1, s = 0, s2 = 0;
                const double el1 = e[l + 1];
                for (int32_t i = m - 1; i >= l; i--) {
                    c3 = c2;
                    c2 = c;
                    s2 = s;
                    g = c * e[i];
                    h = c * p;
                    r = hypot(p, e[i]);
                    e[i + 1] = s * r;
                    s = e[i] / r;
                    c = p / r;
                    p = c * d[i] - s * g;
                    d[i + 1] = h + s * (c * g + s * d[i]);
                    rotate_rows(&AT(0, i), &AT(0, i + 1), N, c, s);
                }
                p = -s * s2 * c3 * el1 * e[l] / dl1;
                e[l] = s * p;
                d[l] = c * p;
                if (!(fabs(e[l]) > eps * tst1)) break;
            }
        }
        d[l] += f;
        e[l] = 0;
    }
}

int turbo_top_eigvecs(double *a, int32_t n, int32_t r, double *work, float *out, double *lambda) {
    const size_t N = (size_t)n;
    double *d = work, *e = work + N;
    for (size_t i = 0; i < N * N; i++)
        if (!isfinite(a[i])) return 1;
    tred2(a, n, d, e); /* a becomes the eigenvector matrix (columns of V, rows of a: AT) */
    tql2(a, n, d, e);
    for (int32_t k = 0; k < r; k++) { /* the r largest, largest first */
        size_t best = N;
        for (size_t i = 0; i < N; i++)
            if (d[i] != -HUGE_VAL && (best == N || d[i] > d[best])) best = i;
        if (lambda) lambda[k] = d[best];
        for (size_t i = 0; i < N; i++) out[(size_t)k * N + i] = (float)a[best * N + i]; /* column best of V */
        d[best] = -HUGE_VAL; /* taken */
    }
    return 0;
}
