/* CPU kernels of LSTM LM scoring (AVX2 + FMA), called through ctypes by rescorer/lm/native_kernel.py.
 *
 * 1. lse_rows: the log-normaliser of the output layer, fused: for each row h_r of an (n, K) matrix
 *
 *     out[r] = shift[r] + log sum_{v < V} exp(h_r . w_v + b_v - shift[r])
 *
 * computed without writing the (n, V) logits: the weight matrix W (V, K) is stored as panels of
 * 16 output columns (lse_pack), a 6-row x 16-column block of logits is accumulated in 12 AVX2
 * registers over K (fused multiply-adds), then exponentiated there and summed into per-row double
 * accumulators.  mode 1 returns the row maxima of the logits instead (for rows whose sum over- or
 * underflowed with the given shift; the caller retries them with shift = their maximum).
 *
 * 2. affine_rows: out = add + bias + a W^T for the LSTM's gate pre-activations (same panels and block).
 * 3. lstm_pointwise: the LSTM cell from the gate pre-activations (PyTorch's order i, f, g, o).
 *
 * Built by rescorer/lm/native_kernel.py with -O3 -mavx2 -mfma; single threaded.  Written for admmq.
 */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MR 6
#define NR 16
#define H_BLOCK_BYTES (192 * 1024)  /* rows of h packed at once: they stay in L2 while W streams */

int lse_abi_version(void) { return 2; }

/* W (V, K) row-major -> panels[(p * K + k) * NR + j] = W[p * NR + j, k], zero past V. */
void lse_pack(const float *w, int64_t V, int64_t K, float *panels) {
    int64_t P = (V + NR - 1) / NR;
    for (int64_t p = 0; p < P; p++) {
        float *dst = panels + p * K * NR;
        for (int64_t k = 0; k < K; k++)
            for (int64_t j = 0; j < NR; j++) {
                int64_t v = p * NR + j;
                dst[k * NR + j] = v < V ? w[v * K + k] : 0.0f;
            }
    }
}

/* e^x for 8 floats, x clamped to [-87, 88] (so 2^n stays a normal float); relative error ~2e-7.
 * x = n ln2 + r with |r| <= ln2 / 2 (ln2 in two parts), e^r by the degree-7 polynomial of
 * Cephes' expf, 2^n by writing n + 127 into the exponent bits. */
static inline __m256 exp8(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.0f)), _mm256_set1_ps(88.0f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

/* Add the 8 floats of s to the 8 doubles at acc. */
static inline void add_wide(double *acc, __m256 s) {
    __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(s));
    __m256d hi = _mm256_cvtps_pd(_mm256_extractf128_ps(s, 1));
    _mm256_storeu_pd(acc, _mm256_add_pd(_mm256_loadu_pd(acc), lo));
    _mm256_storeu_pd(acc + 4, _mm256_add_pd(_mm256_loadu_pd(acc + 4), hi));
}

/* One 6 x 16 block: hp (K, 6) packed rows, wp (K, 16) one panel, b the panel's 16 biases
 * (-inf past V).  mode 0: exp(logit - shift) summed per row into sums (rows x 8 doubles);
 * mode 1: running maxima per row into maxs (rows x 8 floats). */
static void block(const float *hp, const float *wp, int64_t K, const float *b, const float *shift,
                  int rows, int mode, double *sums, float *maxs) {
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    for (int64_t k = 0; k < K; k++) {
        const __m256 w0 = _mm256_loadu_ps(wp + k * NR), w1 = _mm256_loadu_ps(wp + k * NR + 8);
        const float *a = hp + k * MR;
        __m256 x;
        x = _mm256_broadcast_ss(a + 0); c00 = _mm256_fmadd_ps(x, w0, c00); c01 = _mm256_fmadd_ps(x, w1, c01);
        x = _mm256_broadcast_ss(a + 1); c10 = _mm256_fmadd_ps(x, w0, c10); c11 = _mm256_fmadd_ps(x, w1, c11);
        x = _mm256_broadcast_ss(a + 2); c20 = _mm256_fmadd_ps(x, w0, c20); c21 = _mm256_fmadd_ps(x, w1, c21);
        x = _mm256_broadcast_ss(a + 3); c30 = _mm256_fmadd_ps(x, w0, c30); c31 = _mm256_fmadd_ps(x, w1, c31);
        x = _mm256_broadcast_ss(a + 4); c40 = _mm256_fmadd_ps(x, w0, c40); c41 = _mm256_fmadd_ps(x, w1, c41);
        x = _mm256_broadcast_ss(a + 5); c50 = _mm256_fmadd_ps(x, w0, c50); c51 = _mm256_fmadd_ps(x, w1, c51);
    }
    const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
    __m256 acc[MR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
    for (int i = 0; i < rows; i++) {
        __m256 l0 = _mm256_add_ps(acc[i][0], b0), l1 = _mm256_add_ps(acc[i][1], b1);
        if (mode == 0) {
            const __m256 s = _mm256_set1_ps(shift[i]);
            add_wide(sums + i * 8, _mm256_add_ps(exp8(_mm256_sub_ps(l0, s)), exp8(_mm256_sub_ps(l1, s))));
        } else {
            _mm256_storeu_ps(maxs + i * 8, _mm256_max_ps(_mm256_loadu_ps(maxs + i * 8), _mm256_max_ps(l0, l1)));
        }
    }
}

/* h (n, K) row-major; panels from lse_pack (P = ceil(V / 16) panels); bias (P * 16), -inf past V;
 * shift (n).  mode 0: out[r] = shift[r] + log(sum); mode 1: out[r] = max logit of row r.
 * Returns 0, or -1 when memory ran out. */
int lse_rows(const float *h, int64_t n, int64_t K, const float *panels, int64_t P, const float *bias,
             const float *shift, int mode, double *out) {
    int64_t rb = (H_BLOCK_BYTES / (K * (int64_t)sizeof(float))) / MR * MR;
    if (rb < MR) rb = MR;
    if (rb > n) rb = (n + MR - 1) / MR * MR;
    float *hp = aligned_alloc(64, ((size_t)(rb * K * sizeof(float)) + 63) / 64 * 64);
    double *sums = malloc((size_t)rb * 8 * sizeof(double));
    float *maxs = malloc((size_t)rb * 8 * sizeof(float));
    if (!hp || !sums || !maxs) { free(hp); free(sums); free(maxs); return -1; }
    for (int64_t r0 = 0; r0 < n; r0 += rb) {
        int64_t m = n - r0 < rb ? n - r0 : rb;
        int64_t blocks = (m + MR - 1) / MR;
        for (int64_t q = 0; q < blocks; q++)  /* rows of h into (K, 6) micro-panels, zero rows past n */
            for (int64_t k = 0; k < K; k++)
                for (int i = 0; i < MR; i++) {
                    int64_t r = q * MR + i;
                    hp[(q * K + k) * MR + i] = r < m ? h[(r0 + r) * K + k] : 0.0f;
                }
        memset(sums, 0, (size_t)m * 8 * sizeof(double));
        for (int64_t i = 0; i < m * 8; i++) maxs[i] = -INFINITY;
        for (int64_t p = 0; p < P; p++)
            for (int64_t q = 0; q < blocks; q++) {
                int rows = (int)(m - q * MR < MR ? m - q * MR : MR);
                block(hp + q * K * MR, panels + p * K * NR, K, bias + p * NR, shift + r0 + q * MR, rows, mode,
                      sums + q * MR * 8, maxs + q * MR * 8);
            }
        for (int64_t r = 0; r < m; r++) {
            if (mode == 0) {
                double s = 0.0;
                for (int j = 0; j < 8; j++) s += sums[r * 8 + j];
                out[r0 + r] = (double)shift[r0 + r] + log(s);
            } else {
                float x = -INFINITY;
                for (int j = 0; j < 8; j++) x = maxs[r * 8 + j] > x ? maxs[r * 8 + j] : x;
                out[r0 + r] = x;
            }
        }
    }
    free(hp); free(sums); free(maxs);
    return 0;
}

/* out (n, P * 16) = add (n, P * 16; NULL: 0) + bias (P * 16; NULL: 0) + a (n, K) W^T, W as lse_pack panels.
 * out may be add.  Returns 0, or -1 when memory ran out. */
int affine_rows(const float *a, int64_t n, int64_t K, const float *panels, int64_t P, const float *bias,
                const float *add, float *out) {
    int64_t N = P * NR;
    int64_t blocks = (n + MR - 1) / MR;
    float *hp = aligned_alloc(64, ((size_t)(blocks * MR * K * sizeof(float)) + 63) / 64 * 64);
    if (!hp) return -1;
    for (int64_t q = 0; q < blocks; q++)
        for (int64_t k = 0; k < K; k++)
            for (int i = 0; i < MR; i++) {
                int64_t r = q * MR + i;
                hp[(q * K + k) * MR + i] = r < n ? a[r * K + k] : 0.0f;
            }
    for (int64_t p = 0; p < P; p++)
        for (int64_t q = 0; q < blocks; q++) {
            const float *hq = hp + q * K * MR, *wp = panels + p * K * NR;
            __m256 c[MR][2];
            for (int i = 0; i < MR; i++) c[i][0] = c[i][1] = _mm256_setzero_ps();
            for (int64_t k = 0; k < K; k++) {
                const __m256 w0 = _mm256_loadu_ps(wp + k * NR), w1 = _mm256_loadu_ps(wp + k * NR + 8);
                for (int i = 0; i < MR; i++) {
                    const __m256 x = _mm256_broadcast_ss(hq + k * MR + i);
                    c[i][0] = _mm256_fmadd_ps(x, w0, c[i][0]);
                    c[i][1] = _mm256_fmadd_ps(x, w1, c[i][1]);
                }
            }
            __m256 b0 = _mm256_setzero_ps(), b1 = b0;
            if (bias) { b0 = _mm256_loadu_ps(bias + p * NR); b1 = _mm256_loadu_ps(bias + p * NR + 8); }
            for (int i = 0; i < MR && q * MR + i < n; i++) {
                int64_t o = (q * MR + i) * N + p * NR;
                __m256 v0 = _mm256_add_ps(c[i][0], b0), v1 = _mm256_add_ps(c[i][1], b1);
                if (add) { v0 = _mm256_add_ps(v0, _mm256_loadu_ps(add + o)); v1 = _mm256_add_ps(v1, _mm256_loadu_ps(add + o + 8)); }
                _mm256_storeu_ps(out + o, v0);
                _mm256_storeu_ps(out + o + 8, v1);
            }
        }
    free(hp);
    return 0;
}

static inline __m256 recip8(__m256 d) {  /* 1 / d for d >= 1: the 12-bit estimate and one Newton step */
    __m256 r = _mm256_rcp_ps(d);
    return _mm256_mul_ps(r, _mm256_fnmadd_ps(d, r, _mm256_set1_ps(2.0f)));
}

static inline __m256 sigmoid8(__m256 x) {  /* 1 / (1 + e^-x) */
    const __m256 one = _mm256_set1_ps(1.0f);
    return recip8(_mm256_add_ps(one, exp8(_mm256_sub_ps(_mm256_setzero_ps(), x))));
}

static inline __m256 tanh8(__m256 x) {  /* sign(x) (1 - e^-2|x|) / (1 + e^-2|x|): no cancellation near 0 beyond e^ */
    const __m256 one = _mm256_set1_ps(1.0f), sign = _mm256_set1_ps(-0.0f);
    __m256 ax = _mm256_andnot_ps(sign, x);
    __m256 e = exp8(_mm256_mul_ps(ax, _mm256_set1_ps(-2.0f)));
    __m256 t = _mm256_mul_ps(_mm256_sub_ps(one, e), recip8(_mm256_add_ps(one, e)));
    return _mm256_or_ps(t, _mm256_and_ps(sign, x));
}

static inline float sigmoid1(float x) { return 1.0f / (1.0f + expf(-x)); }

/* gates (n, ld) with columns [i | f | g | o] of H each; c_prev (n, H) or NULL (zero state);
 * c_out = sigmoid(f) c_prev + sigmoid(i) tanh(g), h_out = sigmoid(o) tanh(c_out), both (n, H). */
void lstm_pointwise(const float *gates, int64_t n, int64_t H, int64_t ld, const float *c_prev, float *h_out,
                    float *c_out) {
    for (int64_t r = 0; r < n; r++) {
        const float *g = gates + r * ld;
        int64_t j = 0;
        for (; j + 8 <= H; j += 8) {
            __m256 ig = sigmoid8(_mm256_loadu_ps(g + j)), gg = tanh8(_mm256_loadu_ps(g + 2 * H + j));
            __m256 c = _mm256_mul_ps(ig, gg);
            if (c_prev) c = _mm256_fmadd_ps(sigmoid8(_mm256_loadu_ps(g + H + j)), _mm256_loadu_ps(c_prev + r * H + j), c);
            _mm256_storeu_ps(c_out + r * H + j, c);
            _mm256_storeu_ps(h_out + r * H + j, _mm256_mul_ps(sigmoid8(_mm256_loadu_ps(g + 3 * H + j)), tanh8(c)));
        }
        for (; j < H; j++) {
            float c = sigmoid1(g[j]) * tanhf(g[2 * H + j]);
            if (c_prev) c += sigmoid1(g[H + j]) * c_prev[r * H + j];
            c_out[r * H + j] = c;
            h_out[r * H + j] = sigmoid1(g[3 * H + j]) * tanhf(c);
        }
    }
}
