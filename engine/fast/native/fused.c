/* Fused CPU kernels for the recurrences (engine/decoder_loop.py, engine/gru_scan.py, through
 * engine/step_kernels.py) and for Adam (engine/train/optim.py): one pass over memory where torch
 * would run five to eight elementwise kernels, each a separate dispatch and a separate trip
 * through the cache.
 *
 * Plain C99, no torch headers: engine/native/__init__.py compiles it with the system's cc
 * in well under a second and calls it through ctypes with the tensors' data pointers. The
 * callers check float32, the shapes and unit stride along the last dimension; row strides
 * are passed in elements.
 *
 * exp is a branch-free Cephes-style polynomial, so that the compiler can vectorise every
 * loop (glibc's expf would stop it); its error is about 1 ulp. NaN propagates through it
 * (the clamps are written so that a NaN input stays NaN), so a diverging run still shows a
 * non-finite loss. No -ffast-math, for the same reason.
 *
 * Shapes: B batch, H hidden, S source positions, A attention size, K encoder output size.
 */
#include <stdint.h>
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define LANES8 1
#endif

static inline float exp_(float x) {
    /* clamp so that 2^n below is a normal float; written so that NaN passes through */
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    float n = __builtin_floorf(x * 1.44269504088896341f + 0.5f);
    float r = x - n * 0.693359375f + n * 2.12194440e-4f; /* x - n ln2, in two parts */
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    union { int32_t i; float f; } scale = {((int32_t)n + 127) << 23}; /* 2^n */
    return p * scale.f;
}

/* Rows are split over `threads` threads (OpenMP: torch's own libgomp, already loaded; the
 * caller passes torch.get_num_threads(), since OpenMP's own default is per calling thread
 * and the app trains in a worker thread) only where the work pays for the hand-off. */
#define PARALLEL(elements) ((elements) >= 8192)

static inline float sigmoid_(float x) { return 1.0f / (1.0f + exp_(-x)); }
static inline float tanh_(float x) { return 2.0f / (1.0f + exp_(-2.0f * x)) - 1.0f; }

#ifdef LANES8
/* exp_ and sigmoid_ on eight lanes, for the attention's rows (its widest elementwise work):
 * the same polynomial and clamps (a NaN still passes), and 1/d as the reciprocal estimate and
 * one Newton step (~23 bits) in place of a division, whose latency was a quarter of the
 * attention's forward pass when the compiler vectorised exp_ itself. */
static inline __m256 exp8(__m256 x) {
    const __m256 lo = _mm256_set1_ps(-87.0f), hi = _mm256_set1_ps(88.0f);
    x = _mm256_blendv_ps(x, lo, _mm256_cmp_ps(x, lo, _CMP_LT_OQ));
    x = _mm256_blendv_ps(x, hi, _mm256_cmp_ps(x, hi, _CMP_GT_OQ));
    __m256 n = _mm256_floor_ps(_mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f)));
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fmadd_ps(n, _mm256_set1_ps(2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i scale = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvttps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(scale));
}

static inline __m256 sigmoid8(__m256 x) {
    __m256 d = _mm256_add_ps(_mm256_set1_ps(1.0f), exp8(_mm256_sub_ps(_mm256_setzero_ps(), x)));
    __m256 r = _mm256_rcp_ps(d);
    return _mm256_mul_ps(r, _mm256_fnmadd_ps(d, r, _mm256_set1_ps(2.0f)));
}

static inline float sum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}
#endif

/* Every kernel below is a parallel loop over batch rows that calls a row function. The row
 * functions take restrict pointers and are always inlined: OpenMP outlines the loop body,
 * and without the restrict promises the compiler would no longer vectorise it. */
#define ROW static inline __attribute__((always_inline)) void

/* One GRU update (torch.nn.GRU's equations, gates r, z, n):
 *   r, z = sigmoid(gi[:, :2H] + gh[:, :2H]);  n = tanh(gi_n + r * gh_n);  h' = n + z (h - n) */
ROW gru_forward_row(int H, const float *restrict gi, const float *restrict gh,
                    const float *restrict h, float *restrict out, float *restrict rz,
                    float *restrict n) {
    for (int j = 0; j < 2 * H; j++)
        rz[j] = sigmoid_(gi[j] + gh[j]);
    for (int j = 0; j < H; j++) {
        float nj = tanh_(gi[2 * H + j] + rz[j] * gh[2 * H + j]);
        n[j] = nj;
        out[j] = nj + rz[H + j] * (h[j] - nj);
    }
}

/* gi, gh (B, 3H) with row strides; h, out (B, H), rz (B, 2H), n (B, H) contiguous. */
void gru_forward(int threads, int B, int H, const float *gi, int gi_rs, const float *gh, int gh_rs,
                 const float *h, float *out, float *rz, float *n) {
#pragma omp parallel for num_threads(threads) if (PARALLEL(B * 3 * H))
    for (int b = 0; b < B; b++)
        gru_forward_row(H, gi + (int64_t)b * gi_rs, gh + (int64_t)b * gh_rs, h + (int64_t)b * H,
                        out + (int64_t)b * H, rz + (int64_t)b * 2 * H, n + (int64_t)b * H);
}

/* Its gradients for one row, given dL/dh' = dh (+ dh_extra). Called with dh_extra either a
 * pointer or a literal NULL, so that each inlined copy's loop is branch-free (a test of a
 * maybe-NULL pointer inside the loop made it six times slower). */
ROW gru_backward_row(int H, const float *restrict dh, const float *restrict dh_extra,
                     const float *restrict h, const float *restrict r, const float *restrict z,
                     const float *restrict n, const float *restrict gh_n, float *restrict dgi,
                     float *restrict dgh, float *restrict direct) {
    for (int j = 0; j < H; j++) {
        float d = dh_extra ? dh[j] + dh_extra[j] : dh[j];
        float nj = n[j];
        direct[j] = d * z[j];
        float dn = d * (1.0f - z[j]) * (1.0f - nj * nj);        /* through n = tanh(.) */
        float dz = d * (h[j] - nj) * z[j] * (1.0f - z[j]);     /* through z's sigmoid */
        float dr = dn * gh_n[j] * r[j] * (1.0f - r[j]);         /* through r's sigmoid */
        dgi[j] = dr;
        dgi[H + j] = dz;
        dgi[2 * H + j] = dn;
        dgh[j] = dr;
        dgh[H + j] = dz;
        dgh[2 * H + j] = dn * r[j];
    }
}

/* Writes dL/dgi and dL/dgh (B, 3H, row strides) and the part of dL/dh that flows straight
 * through z into direct (B, H); the part through gh is the caller's matmul. dh_extra (B, H)
 * or NULL is added to dh; gh_n points at gh's n block. */
void gru_backward(int threads, int B, int H, const float *dh, int dh_rs, const float *dh_extra, int extra_rs,
                  const float *h, const float *rz, const float *n, const float *gh_n, int ghn_rs,
                  float *dgi, int dgi_rs, float *dgh, int dgh_rs, float *direct) {
#pragma omp parallel for num_threads(threads) if (PARALLEL(B * 3 * H))
    for (int b = 0; b < B; b++) {
        const float *dh_b = dh + (int64_t)b * dh_rs, *r_b = rz + (int64_t)b * 2 * H;
        const float *h_b = h + (int64_t)b * H, *n_b = n + (int64_t)b * H;
        const float *ghn_b = gh_n + (int64_t)b * ghn_rs;
        float *dgi_b = dgi + (int64_t)b * dgi_rs, *dgh_b = dgh + (int64_t)b * dgh_rs;
        float *direct_b = direct + (int64_t)b * H;
        if (dh_extra)
            gru_backward_row(H, dh_b, dh_extra + (int64_t)b * extra_rs, h_b, r_b, r_b + H, n_b,
                             ghn_b, dgi_b, dgh_b, direct_b);
        else
            gru_backward_row(H, dh_b, 0, h_b, r_b, r_b + H, n_b, ghn_b, dgi_b, dgh_b, direct_b);
    }
}

/* One source position's score, (2v) . sigmoid(keys2 + 2q [+ loc]), keeping the sigmoids. The
 * location term is computed here from the previous step's weights: loc_a = sum_j
 * wloc2[j][a] taps[j], taps the k weights around s (zero outside the sentence), k FMAs a
 * component where the band matrix's matmul spent S; k = 0 without it. */
ROW score_row(int A, int k, const float *restrict keys2, const float *restrict q, const float *restrict taps,
              const float *restrict wloc2, const float *restrict v2, float *restrict sig, float *restrict score) {
#ifdef LANES8
    if (A % 8 == 0) { /* the energies stay in registers from the taps to the score */
        __m256 total = _mm256_setzero_ps(), two = _mm256_set1_ps(2.0f);
        for (int a = 0; a < A; a += 8) {
            __m256 e = _mm256_fmadd_ps(two, _mm256_loadu_ps(q + a), _mm256_loadu_ps(keys2 + a));
            for (int j = 0; j < k; j++)
                e = _mm256_fmadd_ps(_mm256_set1_ps(taps[j]), _mm256_loadu_ps(wloc2 + (int64_t)j * A + a), e);
            __m256 g = sigmoid8(e);
            _mm256_storeu_ps(sig + a, g);
            total = _mm256_fmadd_ps(_mm256_loadu_ps(v2 + a), g, total);
        }
        *score = sum8(total);
        return;
    }
#endif
    for (int a = 0; a < A; a++)
        sig[a] = keys2[a] + 2.0f * q[a];
    for (int j = 0; j < k; j++) {
        float p = taps[j];
        const float *restrict wj = wloc2 + (int64_t)j * A;
        for (int a = 0; a < A; a++)
            sig[a] += p * wj[a];
    }
    float total = 0.0f;
#pragma omp simd reduction(+ : total)
    for (int a = 0; a < A; a++) {
        float g = sigmoid_(sig[a]);
        sig[a] = g;
        total += v2[a] * g;
    }
    *score = total;
}

#ifdef LANES8
/* score_row for two neighbouring positions at once (A % 8 == 0): their two chains of
 * dependent operations (the taps' FMAs, exp's polynomial) interleave, which a single row's
 * eight-lane loop left the FMA units waiting on. keys2 and sig are two rows apart by A,
 * taps by one. */
ROW score_row2(int A, int k, const float *restrict keys2, const float *restrict q, const float *restrict taps,
               const float *restrict wloc2, const float *restrict v2, float *restrict sig, float *restrict score) {
    __m256 total0 = _mm256_setzero_ps(), total1 = _mm256_setzero_ps(), two = _mm256_set1_ps(2.0f);
    for (int a = 0; a < A; a += 8) {
        __m256 q2 = _mm256_mul_ps(two, _mm256_loadu_ps(q + a));
        __m256 e0 = _mm256_add_ps(q2, _mm256_loadu_ps(keys2 + a));
        __m256 e1 = _mm256_add_ps(q2, _mm256_loadu_ps(keys2 + A + a));
        for (int j = 0; j < k; j++) {
            __m256 wj = _mm256_loadu_ps(wloc2 + (int64_t)j * A + a);
            e0 = _mm256_fmadd_ps(_mm256_set1_ps(taps[j]), wj, e0);
            e1 = _mm256_fmadd_ps(_mm256_set1_ps(taps[j + 1]), wj, e1);
        }
        __m256 g0 = sigmoid8(e0), g1 = sigmoid8(e1);
        _mm256_storeu_ps(sig + a, g0);
        _mm256_storeu_ps(sig + A + a, g1);
        __m256 v = _mm256_loadu_ps(v2 + a);
        total0 = _mm256_fmadd_ps(v, g0, total0);
        total1 = _mm256_fmadd_ps(v, g1, total1);
    }
    score[0] = sum8(total0);
    score[1] = sum8(total1);
}
#endif
/* ctx = sum_s w_s enc_s for one sentence */
ROW context_row(int S, int K, const float *restrict w, const float *restrict enc,
                float *restrict ctx) {
    for (int k = 0; k < K; k++)
        ctx[k] = 0.0f;
    for (int s = 0; s < S; s++)
        for (int k = 0; k < K; k++)
            ctx[k] += w[s] * enc[(int64_t)s * K + k];
}

/* Additive attention for one decoder step, in the decoder loop's sigmoid form:
 *   sig = sigmoid(keys2 + 2 q [+ 2 loc]);  score_s = v2 . sig_s;  w = softmax over real s;
 *   ctx = sum_s w_s enc_s
 * keys2 (B, S, A) = 2 W_h h; q (B, A) with row stride; prev (B, S) the previous step's
 * weights or NULL (no location term), wloc2 (k, A) twice the location weights, transposed;
 * v2 (A) = 2 v; mask (B, S) nonzero on real positions; enc (B, S, K).
 * Writes sig (B, S, A), w (B, S), ctx (B, K). Every sig is written (padding too), so that
 * the backward pass's matmuls over it never read garbage. */
void attend_forward(int threads, int B, int S, int A, int K, const float *keys2, const float *q, int q_rs,
                    const float *prev, const float *wloc2, int k, const float *v2, const uint8_t *mask,
                    const float *enc, float *sig, float *w, float *ctx) {
#pragma omp parallel for num_threads(threads) if (PARALLEL(B * S * A))
    for (int b = 0; b < B; b++) {
        const float *q_b = q + (int64_t)b * q_rs;
        const uint8_t *m_b = mask + (int64_t)b * S;
        float *w_b = w + (int64_t)b * S;
        int taps = prev ? k : 0;
        float padded[S + taps]; /* the previous weights with k/2 zeros each side */
        for (int i = 0; i < S + taps; i++) {
            int at = i - taps / 2;
            padded[i] = taps && at >= 0 && at < S ? prev[(int64_t)b * S + at] : 0.0f;
        }
        int s = 0;
#ifdef LANES8
        if (A % 8 == 0)
            for (; s + 1 < S; s += 2) {
                int64_t row = ((int64_t)b * S + s) * A;
                score_row2(A, taps, keys2 + row, q_b, padded + s, wloc2, v2, sig + row, w_b + s);
            }
#endif
        for (; s < S; s++) {
            int64_t row = ((int64_t)b * S + s) * A;
            score_row(A, taps, keys2 + row, q_b, padded + s, wloc2, v2, sig + row, w_b + s);
        }
        float top = -3.0e38f;
        for (s = 0; s < S; s++)
            if (m_b[s] && !(w_b[s] <= top)) /* NaN wins, so that it propagates */
                top = w_b[s];
        float total = 0.0f;
        for (int s = 0; s < S; s++) {
            w_b[s] = m_b[s] ? exp_(w_b[s] - top) : 0.0f;
            total += w_b[s];
        }
        for (int s = 0; s < S; s++)
            w_b[s] /= total;
        context_row(S, K, w_b, enc + (int64_t)b * S * K, ctx + (int64_t)b * K);
    }
}

/* dL/dw_s = enc_s . dc (+ dw_extra_s), for one sentence */
ROW weight_grad_row(int S, int K, const float *restrict dc, const float *restrict enc,
                    const float *restrict dw_extra, float *restrict dw) {
    for (int s = 0; s < S; s++) {
        float total = dw_extra ? dw_extra[s] : 0.0f;
#pragma omp simd reduction(+ : total)
        for (int k = 0; k < K; k++)
            total += enc[(int64_t)s * K + k] * dc[k];
        dw[s] = total;
    }
}

/* dL/denergy for one source position from dL/dscore d, into x (A), and added to d_keys and dq */
ROW energy_grad_row(int A, float d, const float *restrict v4, const float *restrict sig,
                    float *restrict d_keys, float *restrict dq, float *restrict x) {
    for (int a = 0; a < A; a++) {
        float xa = d * v4[a] * sig[a] * (1.0f - sig[a]);
        x[a] = xa;
        d_keys[a] += xa;
        dq[a] += xa;
    }
}

/* The location term's gradients at one source position s, from its dL/denergy x (A): to the
 * previous step's weights, dprev[s + j - k/2] += wloc[j] . x, and to the weights, per
 * sentence, dwloc[j] += prev[s + j - k/2] x (each row its own, so threads never share one). */
ROW location_grad_row(int S, int s, int A, int k, const float *restrict x, const float *restrict prev,
                      const float *restrict wloc, float *restrict dprev, float *restrict dwloc) {
    for (int j = 0; j < k; j++) {
        int at = s + j - k / 2;
        if (at < 0 || at >= S)
            continue;
        const float *restrict wj = wloc + (int64_t)j * A;
        float *restrict dj = dwloc + (int64_t)j * A;
        float p = prev[at], total = 0.0f;
#pragma omp simd reduction(+ : total)
        for (int a = 0; a < A; a++) {
            total += wj[a] * x[a];
            dj[a] += p * x[a];
        }
        dprev[at] += total;
    }
}

/* Its gradients. dc (B, K) = dL/dctx; dw_extra (B, S) or NULL: more dL/dw (through the
 * next step's location term). Writes dL/dscore into dscore (B, S); adds dL/denergy to
 * d_keys (B, S, A); writes dL/dq (the sum over s) into dq (B, A, row stride). v4 (A) = 4 v:
 * d/de of (2v).sigmoid(2e). With the location term (prev (B, S) the previous step's
 * weights, not NULL; wloc (k, A) its weights, transposed): writes dL/dprev into dprev
 * (B, S) and adds each sentence's dL/dwloc into dwloc (B, k, A). */
void attend_backward(int threads, int B, int S, int A, int K, const float *dc, const float *enc,
                     const float *dw_extra, const float *w, const float *sig, const float *v4,
                     const float *prev, const float *wloc, int k, float *dscore, float *d_keys,
                     float *dq, int dq_rs, float *dprev, float *dwloc) {
#pragma omp parallel for num_threads(threads) if (PARALLEL(B * S * A))
    for (int b = 0; b < B; b++) {
        const float *w_b = w + (int64_t)b * S;
        float *ds_b = dscore + (int64_t)b * S, *dq_b = dq + (int64_t)b * dq_rs;
        float x[A]; /* dL/denergy at one position */
        if (dw_extra)
            weight_grad_row(S, K, dc + (int64_t)b * K, enc + (int64_t)b * S * K,
                            dw_extra + (int64_t)b * S, ds_b);
        else
            weight_grad_row(S, K, dc + (int64_t)b * K, enc + (int64_t)b * S * K, 0, ds_b);
        float dot = 0.0f;
        for (int s = 0; s < S; s++)
            dot += w_b[s] * ds_b[s];
        for (int a = 0; a < A; a++)
            dq_b[a] = 0.0f;
        if (prev)
            for (int s = 0; s < S; s++)
                dprev[(int64_t)b * S + s] = 0.0f;
        for (int s = 0; s < S; s++) {
            ds_b[s] = w_b[s] * (ds_b[s] - dot); /* softmax backward */
            int64_t row = ((int64_t)b * S + s) * A;
            energy_grad_row(A, ds_b[s], v4, sig + row, d_keys + row, dq_b, x);
            if (prev)
                location_grad_row(S, s, A, k, x, prev + (int64_t)b * S, wloc, dprev + (int64_t)b * S,
                                  dwloc + (int64_t)b * k * A);
        }
    }
}

/* One Adam step over n elements of one parameter, in torch.optim.Adam's order of
 * operations (tests/test_loss_and_optim.py holds the two equal over 100 steps):
 *   m = lerp(m, g, 1 - b1);  v = b2 v + (1 - b2) g^2;  p += step_size m / (sqrt(v) / bias2_sqrt + eps)
 * where step_size = -lr / (1 - b1^t) and bias2_sqrt = sqrt(1 - b2^t). One pass over memory
 * instead of torch's seven. */
ROW adam_chunk(int64_t n, float *restrict p, const float *restrict g, float *restrict m,
               float *restrict v, float b1, float b2, float step_size, float bias2_sqrt,
               float eps) {
    float w = 1.0f - b1;
    for (int64_t i = 0; i < n; i++) {
        float gi = g[i];
        /* torch's lerp: from the nearer end, for accuracy */
        float mi = w < 0.5f ? m[i] + w * (gi - m[i]) : gi - (gi - m[i]) * (1.0f - w);
        float vi = v[i] * b2 + (1.0f - b2) * (gi * gi);
        m[i] = mi;
        v[i] = vi;
        p[i] = p[i] + step_size * (mi / (__builtin_sqrtf(vi) / bias2_sqrt + eps));
    }
}

void adam_step(int threads, int64_t n, float *p, const float *g, float *m, float *v, float b1, float b2,
               float step_size, float bias2_sqrt, float eps) {
    const int64_t chunk = 16384;
#pragma omp parallel for num_threads(threads) if (PARALLEL(n / 8))
    for (int64_t start = 0; start < n; start += chunk) {
        int64_t len = n - start < chunk ? n - start : chunk;
        adam_chunk(len, p + start, g + start, m + start, v + start, b1, b2, step_size, bias2_sqrt, eps);
    }
}
