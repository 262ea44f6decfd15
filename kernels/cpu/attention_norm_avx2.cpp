// Decode attention, RMSNorm and RoPE on AVX2 + FMA: the algorithms of attention.cpp and
// norm_rope.cpp (see there for why each is one call) with 8-wide vectors.
#include "avx2.h"

namespace gptoss {

// q [B, Tq, Hq, D], k, v [B, Tk, Hkv, D] bf16 (rows of k/v may be strided, the last two dims
// contiguous), sinks [Hq], q_positions int64 [B, Tq]. Key slot j is position k_offset + j; a
// query at p sees p - window < j <= p (window <= 0: no window). Returns float32 [B, Tq, Hq, D].
at::Tensor attention_decode(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            const at::Tensor& sinks, const at::Tensor& q_positions, int64_t k_offset,
                            int64_t window, double scale) {
  TORCH_CHECK(q.dtype() == at::kBFloat16 && k.dtype() == at::kBFloat16 && v.dtype() == at::kBFloat16,
              "attention_decode: q, k, v must be bf16");
  TORCH_CHECK(q.dim() == 4 && k.dim() == 4 && v.sizes() == k.sizes(), "attention_decode: bad shapes");
  const int64_t B = q.size(0), Tq = q.size(1), Hq = q.size(2), D = q.size(3);
  const int64_t Tk = k.size(1), Hkv = k.size(2);
  TORCH_CHECK(D % 16 == 0 && D <= 256 && k.size(3) == D && Hq % Hkv == 0 && k.size(0) == B,
              "attention_decode: head_dim must be a multiple of 16 (<= 256), heads a multiple of kv heads");
  TORCH_CHECK(k.stride(3) == 1 && k.stride(2) == D && v.stride(3) == 1 && v.stride(2) == D,
              "attention_decode: k, v must be contiguous over (heads, head_dim)");
  const int64_t g = Hq / Hkv, DV = D / 8;
  TORCH_CHECK(g <= 8, "attention_decode: at most 8 query heads per kv head");
  auto qc = q.contiguous();
  auto sc = sinks.to(at::kFloat).contiguous();
  auto pc = q_positions.to(at::kLong).contiguous();
  auto out = at::zeros({B, Tq, Hq, D}, q.options().dtype(at::kFloat));
  const auto* qp = qc.data_ptr<at::BFloat16>();
  const auto* kp = k.data_ptr<at::BFloat16>();
  const auto* vp = v.data_ptr<at::BFloat16>();
  const float* sp = sc.data_ptr<float>();
  const int64_t* pp = pc.data_ptr<int64_t>();
  float* op = out.data_ptr<float>();
  const int64_t kb = k.stride(0), kt = k.stride(1), vb = v.stride(0), vt = v.stride(1);
  at::parallel_for(0, B * Tq * Hkv, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> scores;
    for (int64_t item = begin; item < end; ++item) {
      const int64_t h = item % Hkv, bt = item / Hkv, b = bt / Tq;
      const int64_t pos = pp[bt];
      int64_t hi = std::min(Tk, pos - k_offset + 1), lo = 0;
      if (window > 0) lo = std::max<int64_t>(0, pos - window + 1 - k_offset);
      const int64_t n = std::max<int64_t>(0, hi - lo);
      scores.assign(g * std::max<int64_t>(n, 1), 0.f);
      __m256 qv[8][32];  // g <= 8 query heads, D <= 256
      for (int64_t i = 0; i < g; ++i)
        for (int64_t d = 0; d < DV; ++d)
          qv[i][d] = _mm256_mul_ps(bf16x8_to_ps(qp + ((bt * Hq) + h * g + i) * D + 8 * d),
                                   _mm256_set1_ps((float)scale));
      for (int64_t j = 0; j < n; ++j) {
        const at::BFloat16* kr = kp + b * kb + (lo + j) * kt + h * D;
        __m256 kv[32];
        for (int64_t d = 0; d < DV; ++d) kv[d] = bf16x8_to_ps(kr + 8 * d);
        for (int64_t i = 0; i < g; ++i) {
          __m256 acc = _mm256_mul_ps(qv[i][0], kv[0]);
          for (int64_t d = 1; d < DV; ++d) acc = _mm256_fmadd_ps(qv[i][d], kv[d], acc);
          scores[i * n + j] = hsum8(acc);
        }
      }
      for (int64_t i = 0; i < g; ++i) {
        float* s = scores.data() + i * n;
        const float sink = sp[h * g + i];
        float m = sink;
        for (int64_t j = 0; j < n; ++j) m = std::max(m, s[j]);
        float total = std::exp(sink - m);
        int64_t j = 0;
        for (; j + 8 <= n; j += 8) {
          const __m256 e = exp8_ps(_mm256_sub_ps(_mm256_loadu_ps(s + j), _mm256_set1_ps(m)));
          _mm256_storeu_ps(s + j, e);
          total += hsum8(e);
        }
        for (; j < n; ++j) { s[j] = std::exp(s[j] - m); total += s[j]; }
        const float inv = 1.f / total;
        for (j = 0; j < n; ++j) s[j] *= inv;
      }
      __m256 acc[8][32];
      for (int64_t i = 0; i < g; ++i)
        for (int64_t d = 0; d < DV; ++d) acc[i][d] = _mm256_setzero_ps();
      for (int64_t j = 0; j < n; ++j) {
        const at::BFloat16* vr = vp + b * vb + (lo + j) * vt + h * D;
        __m256 vv[32];
        for (int64_t d = 0; d < DV; ++d) vv[d] = bf16x8_to_ps(vr + 8 * d);
        for (int64_t i = 0; i < g; ++i) {
          const __m256 w = _mm256_set1_ps(scores[i * n + j]);
          for (int64_t d = 0; d < DV; ++d) acc[i][d] = _mm256_fmadd_ps(w, vv[d], acc[i][d]);
        }
      }
      for (int64_t i = 0; i < g; ++i)
        for (int64_t d = 0; d < DV; ++d)
          _mm256_storeu_ps(op + ((bt * Hq) + h * g + i) * D + 8 * d, acc[i][d]);
    }
  });
  return out;
}

// out = bf16(w * x * rsqrt(mean(x^2) + eps)), in float32, per row of x bf16 [R, H].
at::Tensor rms_norm_bf16(const at::Tensor& x, const at::Tensor& w, double eps) {
  TORCH_CHECK(x.dtype() == at::kBFloat16 && x.is_contiguous() && x.size(-1) % 16 == 0,
              "x must be contiguous bf16 [..., H] with H a multiple of 16");
  const int64_t H = x.size(-1), R = x.numel() / H;
  TORCH_CHECK(w.dtype() == at::kFloat && w.is_contiguous() && w.numel() == H, "weight must be float32 [", H, "]");
  auto out = at::empty_like(x);
  const auto* xp = reinterpret_cast<const uint16_t*>(x.data_ptr<at::BFloat16>());
  auto* op = reinterpret_cast<uint16_t*>(out.data_ptr<at::BFloat16>());
  const float* wp = w.data_ptr<float>();
  at::parallel_for(0, R, 16, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const uint16_t* row = xp + r * H;
      __m256 sq = _mm256_setzero_ps();
      for (int64_t i = 0; i < H; i += 8) {
        const __m256 v = bf16x8_to_ps(row + i);
        sq = _mm256_fmadd_ps(v, v, sq);
      }
      const __m256 inv = _mm256_set1_ps(1.0f / std::sqrt(hsum8(sq) / H + (float)eps));
      for (int64_t i = 0; i < H; i += 8) {
        const __m256 v = _mm256_mul_ps(_mm256_mul_ps(bf16x8_to_ps(row + i), inv), _mm256_loadu_ps(wp + i));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(op + r * H + i), ps_to_bf16x8(v));
      }
    }
  });
  return out;
}

// Half-split rotation of x bf16 [B, T, heads, D] by cos/sin float32 [B, T, D/2]: pairs
// (i, i + D/2) -> (a cos - b sin, b cos + a sin); cos and sin rounded to bf16 first, as the
// reference does, the products kept in float32 and rounded once.
at::Tensor rope_bf16(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  TORCH_CHECK(x.dtype() == at::kBFloat16 && x.dim() == 4 && x.is_contiguous() && x.size(3) % 32 == 0,
              "x must be contiguous bf16 [B, T, heads, D] with D a multiple of 32");
  const int64_t B = x.size(0), T = x.size(1), heads = x.size(2), half = x.size(3) / 2;
  TORCH_CHECK(cos.dtype() == at::kFloat && sin.dtype() == at::kFloat && cos.is_contiguous() &&
                  sin.is_contiguous() && cos.numel() == B * T * half && sin.numel() == B * T * half,
              "cos and sin must be contiguous float32 [B, T, ", half, "]");
  auto out = at::empty_like(x);
  const auto* xp = reinterpret_cast<const uint16_t*>(x.data_ptr<at::BFloat16>());
  auto* op = reinterpret_cast<uint16_t*>(out.data_ptr<at::BFloat16>());
  const float* cp = cos.data_ptr<float>();
  const float* sp = sin.data_ptr<float>();
  at::parallel_for(0, B * T, 16, [&](int64_t begin, int64_t end) {
    for (int64_t bt = begin; bt < end; ++bt)
      for (int64_t i = 0; i < half; i += 8) {
        alignas(16) uint16_t cb[8], sb[8];
        _mm_store_si128(reinterpret_cast<__m128i*>(cb), ps_to_bf16x8(_mm256_loadu_ps(cp + bt * half + i)));
        _mm_store_si128(reinterpret_cast<__m128i*>(sb), ps_to_bf16x8(_mm256_loadu_ps(sp + bt * half + i)));
        const __m256 c = bf16x8_to_ps(cb), s = bf16x8_to_ps(sb);
        for (int64_t h = 0; h < heads; ++h) {
          const int64_t base = (bt * heads + h) * 2 * half;
          const __m256 a = bf16x8_to_ps(xp + base + i), b = bf16x8_to_ps(xp + base + half + i);
          const __m256 first = _mm256_sub_ps(_mm256_mul_ps(a, c), _mm256_mul_ps(b, s));
          const __m256 second = _mm256_add_ps(_mm256_mul_ps(b, c), _mm256_mul_ps(a, s));
          _mm_storeu_si128(reinterpret_cast<__m128i*>(op + base + i), ps_to_bf16x8(first));
          _mm_storeu_si128(reinterpret_cast<__m128i*>(op + base + half + i), ps_to_bf16x8(second));
        }
      }
  });
  return out;
}

}  // namespace gptoss
