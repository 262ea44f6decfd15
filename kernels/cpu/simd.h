// The vector operations every CPU kernel is written over, the one place with AVX2 or AVX-512
// intrinsics (128-bit SSE ones, common to both, appear in the kernels): `Simd` is 64-byte
// AVX-512 with VNNI (vpdpbusd) and BF16 (vdpbf16ps) when the variant's flags allow it, else
// 32-byte AVX2 (vpmaddubsw + vpmaddwd; bf16 pairs widened to float). A kernel written over
// Simd::V and these functions is one source for both.
#pragma once
#include "kernels.h"

namespace gptoss {

// exp(x) for a vector: 2^(x log2 e) split as 2^n * 2^f, |f| <= 1/2, 2^f by a degree-6
// polynomial (relative error ~2e-7)
template <typename F, typename Ops>
inline F exp_poly(F f) {
  F p = Ops::set1f(1.0f / 720);
  for (float c : {1.0f / 120, 1.0f / 24, 1.0f / 6, 0.5f, 1.0f, 1.0f}) p = Ops::fmadd(p, f, Ops::set1f(c));
  return p;
}

// 2^f for |f| <= 1/2 by a degree-4 polynomial (relative error ~4e-5): enough for attention's
// probabilities, which the value product takes rounded to bf16 (2^-9), at 2 FMAs fewer than exp
template <typename F, typename Ops>
inline F exp2_poly4(F f) {
  F p = Ops::set1f(0.0096181291f);  // (ln 2)^k / k!, k = 4 .. 0
  for (float c : {0.0555041087f, 0.2402265070f, 0.6931471806f, 1.0f}) p = Ops::fmadd(p, f, Ops::set1f(c));
  return p;
}

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__) && defined(__AVX512VBMI__)
struct Simd {
  static constexpr int V = 64;  // bytes per vector
  using I = __m512i;
  using F = __m512;
  static I load(const void* p) { return _mm512_loadu_si512(p); }
  // the first `bytes` bytes at p, zeros after (nothing past them is read)
  static I load_first(const void* p, int bytes) {
    return _mm512_maskz_loadu_epi8(bytes >= 64 ? ~0ULL : (1ULL << bytes) - 1, p);
  }
  static I set1_8(char v) { return _mm512_set1_epi8(v); }
  static I set1_32(int v) { return _mm512_set1_epi32(v); }
  static I table16(const int8_t* t) {  // a 16-byte lookup table in every 128-bit lane
    return _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(t)));
  }
  static I and_(I a, I b) { return _mm512_and_si512(a, b); }
  static I srli16(I a, int n) { return _mm512_srli_epi16(a, n); }
  static I srli32(I a, int n) { return _mm512_srli_epi32(a, n); }
  static I shuffle8(I table, I idx) { return _mm512_shuffle_epi8(table, idx); }
  // table16's entries for the low and the high nibble of every byte of v: vpermb reads the
  // low 6 bits of each index and table16 repeats every 16 bytes, so neither nibble needs a mask
  // (vpshufb would zero a byte whose bit 7 is set): 3 instructions where the masks take 5
  static void nibbles(I table, I v, I& lo, I& hi) {
    lo = _mm512_permutexvar_epi8(v, table);
    hi = _mm512_permutexvar_epi8(_mm512_srli_epi16(v, 4), table);
  }
  static I slli32(I a, int n) { return _mm512_slli_epi32(a, n); }
  static I or_(I a, I b) { return _mm512_or_si512(a, b); }
  static I xor_(I a, I b) { return _mm512_xor_si512(a, b); }
  static I iota32(int step) { return _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), _mm512_set1_epi32(step)); }
  static I min32(I a, I b) { return _mm512_min_epi32(a, b); }
  static I gather32(const void* base, I byte_offsets) { return _mm512_i32gather_epi32(byte_offsets, base, 1); }
  static void store(void* p, I a) { _mm512_storeu_si512(p, a); }
  // acc + sum over each 4-byte lane of u*s (u unsigned, s signed bytes)
  static I dot(I acc, I u, I s) { return _mm512_dpbusd_epi32(acc, u, s); }
  // signed int8 weights are made unsigned (value + 128) for dot: no int16 pair sums here to
  // overflow, and one vpdpbusd beats the sign trick's three instructions
  static constexpr bool kSignedDot = false;
  static I dot_signed(I acc, I w, I x) {  // the sign trick, for completeness
    const __m512i neg = _mm512_mask_sub_epi8(x, _mm512_movepi8_mask(w), _mm512_setzero_si512(), x);
    return dot(acc, _mm512_abs_epi8(w), neg);
  }
  static I dot2(I acc, I u1, I s1, I u2, I s2) { return dot(dot(acc, u1, s1), u2, s2); }
  static F cvt(I a) { return _mm512_cvtepi32_ps(a); }
  static F as_float(I a) { return _mm512_castsi512_ps(a); }
  static F zero() { return _mm512_setzero_ps(); }
  static F loadf(const float* p) { return _mm512_loadu_ps(p); }
  static F set1f(float v) { return _mm512_set1_ps(v); }
  static void storef(float* p, F a) { _mm512_storeu_ps(p, a); }
  static F mul(F a, F b) { return _mm512_mul_ps(a, b); }
  static F fmadd(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
  static F add(F a, F b) { return _mm512_add_ps(a, b); }
  static F sub(F a, F b) { return _mm512_sub_ps(a, b); }
  static float hsum(F v) { return _mm512_reduce_add_ps(v); }
  static F minf(F a, F b) { return _mm512_min_ps(a, b); }
  static F div(F a, F b) { return _mm512_div_ps(a, b); }
  // ---- int16 products (the int8 dense GEMV)
  static I widen_i8_i16(const void* p) {  // V / 2 int8 -> int16
    return _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static I madd16(I a, I b) { return _mm512_madd_epi16(a, b); }  // int16 pair sums -> int32
  static I add32(I a, I b) { return _mm512_add_epi32(a, b); }
  // 16 int8 -> floats, L at a time
  static void widen_i8x16(__m128i v, F (&out)[1]) { out[0] = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(v)); }
  // 2L interleaved floats (a then b) -> their even and odd elements
  static void deinterleave(F a, F b, F& even, F& odd) {
    const __m512i evens = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    even = _mm512_permutex2var_ps(a, evens, b);
    odd = _mm512_permutex2var_ps(a, _mm512_add_epi32(evens, _mm512_set1_epi32(1)), b);
  }
  // ---- float and bf16 pieces of the attention kernels
  static constexpr int L = V / 4;  // floats per vector
  static F maxf(F a, F b) { return _mm512_max_ps(a, b); }
  static float hmax(F v) { return _mm512_reduce_max_ps(v); }
  // vscalefps applies 2^n and saturates to 0 / inf; exp(-inf) = 0
  static F exp(F x) {
    const __m512 t = _mm512_mul_ps(_mm512_max_ps(x, _mm512_set1_ps(-200.f)), _mm512_set1_ps(1.44269504088896341f));
    const __m512 n = _mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    return _mm512_scalef_ps(exp_poly<F, Simd>(_mm512_mul_ps(_mm512_sub_ps(t, n), _mm512_set1_ps(0.69314718055994531f))), n);
  }
  // 2^x by exp2_poly4 (attention's probabilities); Masked: lanes may be -inf (they give 0),
  // else every lane must be finite (no clamp)
  template <bool Masked>
  static F exp2_coarse(F x) {
    if constexpr (Masked) x = _mm512_max_ps(x, _mm512_set1_ps(-200.f));
    const __m512 n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    return _mm512_scalef_ps(exp2_poly4<F, Simd>(_mm512_sub_ps(x, n)), n);
  }
  static I bcast32(const void* p) { int32_t v; std::memcpy(&v, p, 4); return _mm512_set1_epi32(v); }
  // r[i] lane j <-> r[j] lane i (a 16 x 16 matrix of 32-bit elements): 4 x 4 blocks within
  // each 128-bit lane by unpacks, then the 4 x 4 matrix of 128-bit lanes by shuffles
  static void transpose32(I (&r)[16]) {
    I t[16];
    for (int i = 0; i < 16; i += 2)
      t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]), t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
    for (int i = 0; i < 16; i += 4) {  // r[i + j]: lane L holds column 4L + j of rows i .. i + 3
      r[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]), r[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
      r[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]), r[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
    }
    for (int j = 0; j < 4; ++j) {
      const I x0 = _mm512_shuffle_i32x4(r[j], r[4 + j], 0x44), x1 = _mm512_shuffle_i32x4(r[j], r[4 + j], 0xEE);
      const I y0 = _mm512_shuffle_i32x4(r[8 + j], r[12 + j], 0x44), y1 = _mm512_shuffle_i32x4(r[8 + j], r[12 + j], 0xEE);
      t[j] = _mm512_shuffle_i32x4(x0, y0, 0x88), t[4 + j] = _mm512_shuffle_i32x4(x0, y0, 0xDD);
      t[8 + j] = _mm512_shuffle_i32x4(x1, y1, 0x88), t[12 + j] = _mm512_shuffle_i32x4(x1, y1, 0xDD);
    }
    for (int i = 0; i < 16; ++i) r[i] = t[i];
  }
  static I widen_u16(const void* p) {  // L uint16 -> L 32-bit lanes
    return _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  // acc + a.lo * b.lo + a.hi * b.hi in each 4-byte lane of bf16 pairs
#if defined(__AVX512BF16__)
  static constexpr bool kBf16Dot = true;
  static F dot_bf16(F acc, I a, I b) { return _mm512_dpbf16_ps(acc, (__m512bh)a, (__m512bh)b); }
  static void store_bf16(void* p, F a) {  // round to nearest even
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), (__m256i)_mm512_cvtneps_pbh(a));
  }
#endif
  // lanes whose index base + lane lies outside [lo, hi) become -inf
  static F keep_range(F s, int64_t base, int64_t lo, int64_t hi) {
    const __m512i j = _mm512_add_epi32(iota32(1), _mm512_set1_epi32((int)base));
    const __mmask16 in = _mm512_cmpge_epi32_mask(j, _mm512_set1_epi32((int)lo)) &
                         _mm512_cmplt_epi32_mask(j, _mm512_set1_epi32((int)hi));
    return _mm512_mask_blend_ps(in, _mm512_set1_ps(-INFINITY), s);
  }
};
#elif defined(__AVX2__) && defined(__FMA__) && !defined(__AVX512F__)
struct Simd {
  static constexpr int V = 32;
  using I = __m256i;
  using F = __m256;
  static I load(const void* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
  static I load_first(const void* p, int bytes) {  // bytes: a multiple of 4
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_maskload_epi32(reinterpret_cast<const int*>(p),
                                 _mm256_cmpgt_epi32(_mm256_set1_epi32(bytes / 4), lane));
  }
  static I set1_8(char v) { return _mm256_set1_epi8(v); }
  static I set1_32(int v) { return _mm256_set1_epi32(v); }
  static I table16(const int8_t* t) {
    return _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(t)));
  }
  static I and_(I a, I b) { return _mm256_and_si256(a, b); }
  static I srli16(I a, int n) { return _mm256_srli_epi16(a, n); }
  static I srli32(I a, int n) { return _mm256_srli_epi32(a, n); }
  static I shuffle8(I table, I idx) { return _mm256_shuffle_epi8(table, idx); }
  static void nibbles(I table, I v, I& lo, I& hi) {  // see the AVX-512 one
    const I low4 = _mm256_set1_epi8(0x0F);
    lo = _mm256_shuffle_epi8(table, _mm256_and_si256(v, low4));
    hi = _mm256_shuffle_epi8(table, _mm256_and_si256(_mm256_srli_epi16(v, 4), low4));
  }
  static I slli32(I a, int n) { return _mm256_slli_epi32(a, n); }
  static I or_(I a, I b) { return _mm256_or_si256(a, b); }
  static I xor_(I a, I b) { return _mm256_xor_si256(a, b); }
  static I iota32(int step) { return _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(step)); }
  static I min32(I a, I b) { return _mm256_min_epi32(a, b); }
  static I gather32(const void* base, I byte_offsets) {
    return _mm256_i32gather_epi32(reinterpret_cast<const int*>(base), byte_offsets, 1);
  }
  static void store(void* p, I a) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), a); }
  // vpmaddubsw saturates int16 pair sums: the callers' products stay far below (|u| <= 24)
  static I dot(I acc, I u, I s) {
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
  }
  // signed int8 weights times signed bytes: |w| times x with w's sign, so that the int16 pair
  // sums of vpmaddubsw stay below 2 * 127 * 127 (w + 128 would overflow them)
  static constexpr bool kSignedDot = true;
  static I dot_signed(I acc, I w, I x) { return dot(acc, _mm256_abs_epi8(w), _mm256_sign_epi8(x, w)); }
  static I dot2(I acc, I u1, I s1, I u2, I s2) {
    const __m256i s16 = _mm256_add_epi16(_mm256_maddubs_epi16(u1, s1), _mm256_maddubs_epi16(u2, s2));
    return _mm256_add_epi32(acc, _mm256_madd_epi16(s16, _mm256_set1_epi16(1)));
  }
  static F cvt(I a) { return _mm256_cvtepi32_ps(a); }
  static F as_float(I a) { return _mm256_castsi256_ps(a); }
  static F zero() { return _mm256_setzero_ps(); }
  static F loadf(const float* p) { return _mm256_loadu_ps(p); }
  static F set1f(float v) { return _mm256_set1_ps(v); }
  static void storef(float* p, F a) { _mm256_storeu_ps(p, a); }
  static F mul(F a, F b) { return _mm256_mul_ps(a, b); }
  static F fmadd(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
  static F add(F a, F b) { return _mm256_add_ps(a, b); }
  static F sub(F a, F b) { return _mm256_sub_ps(a, b); }
  static float hsum(F v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
  }
  static F minf(F a, F b) { return _mm256_min_ps(a, b); }
  static F div(F a, F b) { return _mm256_div_ps(a, b); }
  static I widen_i8_i16(const void* p) {
    return _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static I madd16(I a, I b) { return _mm256_madd_epi16(a, b); }
  static I add32(I a, I b) { return _mm256_add_epi32(a, b); }
  static void widen_i8x16(__m128i v, F (&out)[2]) {
    out[0] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v));
    out[1] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_unpackhi_epi64(v, v)));
  }
  static void deinterleave(F a, F b, F& even, F& odd) {
    const __m256i order = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);  // per half: evens, then odds
    const __m256 x = _mm256_permutevar8x32_ps(a, order), y = _mm256_permutevar8x32_ps(b, order);
    even = _mm256_permute2f128_ps(x, y, 0x20), odd = _mm256_permute2f128_ps(x, y, 0x31);
  }
  // ---- float and bf16 pieces of the attention kernels
  static constexpr int L = V / 4;
  static F maxf(F a, F b) { return _mm256_max_ps(a, b); }
  static float hmax(F v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_max_ss(s, _mm_movehdup_ps(s)));
  }
  // 2^n from its exponent bits, n clamped (results below ~1e-38 flush to 0, above ~1.7e38
  // saturate); exp(-inf) = 0
  static F exp(F x) {
    x = _mm256_max_ps(_mm256_min_ps(x, _mm256_set1_ps(88.0f)), _mm256_set1_ps(-87.0f));
    const __m256 t = _mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f));
    const __m256 n = _mm256_round_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m256 p = exp_poly<F, Simd>(_mm256_mul_ps(_mm256_sub_ps(t, n), _mm256_set1_ps(0.69314718055994531f)));
    const __m256i pow2n = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_and_ps(_mm256_mul_ps(p, _mm256_castsi256_ps(pow2n)), _mm256_cmp_ps(x, _mm256_set1_ps(-87.0f), _CMP_GT_OQ));
  }
  template <bool Masked>
  static F exp2_coarse(F x) {  // see the AVX-512 one; 2^n from exponent bits needs n >= -126
    const __m256 t = _mm256_max_ps(x, _mm256_set1_ps(-126.f));
    const __m256 n = _mm256_round_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m256i pow2n = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    const __m256 p = _mm256_mul_ps(exp2_poly4<F, Simd>(_mm256_sub_ps(t, n)), _mm256_castsi256_ps(pow2n));
    if constexpr (Masked) return _mm256_and_ps(p, _mm256_cmp_ps(x, _mm256_set1_ps(-126.f), _CMP_GT_OQ));
    return p;
  }
  static I bcast32(const void* p) { int32_t v; std::memcpy(&v, p, 4); return _mm256_set1_epi32(v); }
  static void transpose32(I (&r)[8]) {  // an 8 x 8 matrix of 32-bit elements
    I t[8];
    for (int i = 0; i < 8; i += 2)
      t[i] = _mm256_unpacklo_epi32(r[i], r[i + 1]), t[i + 1] = _mm256_unpackhi_epi32(r[i], r[i + 1]);
    for (int i = 0; i < 8; i += 4) {  // r[i + j]: lane L holds column 4L + j of rows i .. i + 3
      r[i] = _mm256_unpacklo_epi64(t[i], t[i + 2]), r[i + 1] = _mm256_unpackhi_epi64(t[i], t[i + 2]);
      r[i + 2] = _mm256_unpacklo_epi64(t[i + 1], t[i + 3]), r[i + 3] = _mm256_unpackhi_epi64(t[i + 1], t[i + 3]);
    }
    for (int j = 0; j < 4; ++j)
      t[j] = _mm256_permute2x128_si256(r[j], r[4 + j], 0x20), t[4 + j] = _mm256_permute2x128_si256(r[j], r[4 + j], 0x31);
    for (int i = 0; i < 8; ++i) r[i] = t[i];
  }
  static I widen_u16(const void* p) {
    return _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  // no bf16 dot product instruction: callers widen each half of the pairs to float, each
  // vector once for all the products it joins
  static constexpr bool kBf16Dot = false;
  // round to nearest even (as at::BFloat16 and vcvtneps2bf16; no NaN inputs)
  static void store_bf16(void* p, F a) {
    const __m256i bits = _mm256_castps_si256(a);
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(1));
    const __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(bits, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7FFF))), 16);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p),
                     _mm_packus_epi32(_mm256_castsi256_si128(rounded), _mm256_extracti128_si256(rounded, 1)));
  }
  static F keep_range(F s, int64_t base, int64_t lo, int64_t hi) {
    const __m256i j = _mm256_add_epi32(iota32(1), _mm256_set1_epi32((int)base));
    const __m256i in = _mm256_andnot_si256(_mm256_cmpgt_epi32(_mm256_set1_epi32((int)lo), j),
                                           _mm256_cmpgt_epi32(_mm256_set1_epi32((int)hi), j));
    return _mm256_blendv_ps(_mm256_set1_ps(-INFINITY), s, _mm256_castsi256_ps(in));
  }
};
#else
#error "simd.h needs AVX-512 F/BW/VNNI or AVX2 + FMA"
#endif

// Simd::L bf16 -> floats (exact: bf16 is the top half of a float)
inline Simd::F load_bf16_ps(const void* p) { return Simd::as_float(Simd::slli32(Simd::widen_u16(p), 16)); }

// the low and high bf16 of each 4-byte lane as floats (exact): bf16 pairs for CPUs without a
// bf16 dot product
inline void split_bf16(Simd::I x, Simd::F& lo, Simd::F& hi) {
  lo = Simd::as_float(Simd::slli32(x, 16));
  hi = Simd::as_float(Simd::and_(x, Simd::set1_32((int)0xFFFF0000u)));
}

}  // namespace gptoss
