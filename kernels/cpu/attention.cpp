// Attention for a few queries over the KV cache (decode), with sinks and a sliding window.
//
// One work item per (batch row, query, kv head): the g query heads sharing that kv head read
// each cached key and value once. Scores in float32 (keys widened from bf16), softmax with
// the sink logit joining the normalisation, values accumulated in float32. torch's fused flash
// kernel spends ~0.28 ms of set-up on one query against 500 keys; this takes a few tens of us.
#include "kernels.h"

namespace gptoss {

namespace {
inline __m512 load_bf16_ps(const at::BFloat16* p) {  // 16 bf16 -> 16 float32
  return _mm512_castsi512_ps(_mm512_slli_epi32(
      _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))), 16));
}
}  // namespace

// q [B, Tq, Hq, D], k, v [B, Tk, Hkv, D] (bf16; rows of k/v may be strided, the last two dims
// contiguous), sinks float32 [Hq], q_positions int64 [B, Tq]. Key slot j is position
// k_offset + j; a query at p sees p - window < j <= p (window <= 0: no window).
// Returns float32 [B, Tq, Hq, D].
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
  const int64_t g = Hq / Hkv, DV = D / 16;
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
      __m512 qv[8][16];  // g <= 8 query heads, D <= 256
      for (int64_t i = 0; i < g; ++i)
        for (int64_t d = 0; d < DV; ++d)
          qv[i][d] = _mm512_mul_ps(load_bf16_ps(qp + ((bt * Hq) + h * g + i) * D + 16 * d),
                                   _mm512_set1_ps((float)scale));
      for (int64_t j = 0; j < n; ++j) {
        const at::BFloat16* kr = kp + b * kb + (lo + j) * kt + h * D;
        __m512 kv[16];
        for (int64_t d = 0; d < DV; ++d) kv[d] = load_bf16_ps(kr + 16 * d);
        for (int64_t i = 0; i < g; ++i) {
          __m512 acc = _mm512_mul_ps(qv[i][0], kv[0]);
          for (int64_t d = 1; d < DV; ++d) acc = _mm512_fmadd_ps(qv[i][d], kv[d], acc);
          scores[i * n + j] = hsum(acc);
        }
      }
      for (int64_t i = 0; i < g; ++i) {
        float* s = scores.data() + i * n;
        const float sink = sp[h * g + i];
        float m = sink;
        for (int64_t j = 0; j < n; ++j) m = std::max(m, s[j]);
        float total = std::exp(sink - m);
        int64_t j = 0;
        for (; j + 16 <= n; j += 16) {
          __m512 e = exp_ps(_mm512_sub_ps(_mm512_loadu_ps(s + j), _mm512_set1_ps(m)));
          _mm512_storeu_ps(s + j, e);
          total += _mm512_reduce_add_ps(e);
        }
        for (; j < n; ++j) { s[j] = std::exp(s[j] - m); total += s[j]; }
        const float inv = 1.f / total;
        for (j = 0; j < n; ++j) s[j] *= inv;
      }
      __m512 acc[8][16];
      for (int64_t i = 0; i < g; ++i)
        for (int64_t d = 0; d < DV; ++d) acc[i][d] = _mm512_setzero_ps();
      for (int64_t j = 0; j < n; ++j) {
        const at::BFloat16* vr = vp + b * vb + (lo + j) * vt + h * D;
        __m512 vv[16];
        for (int64_t d = 0; d < DV; ++d) vv[d] = load_bf16_ps(vr + 16 * d);
        for (int64_t i = 0; i < g; ++i) {
          const __m512 w = _mm512_set1_ps(scores[i * n + j]);
          for (int64_t d = 0; d < DV; ++d) acc[i][d] = _mm512_fmadd_ps(w, vv[d], acc[i][d]);
        }
      }
      for (int64_t i = 0; i < g; ++i)
        for (int64_t d = 0; d < DV; ++d)
          _mm512_storeu_ps(op + ((bt * Hq) + h * g + i) * D + 16 * d, acc[i][d]);
    }
  });
  return out;
}

}  // namespace gptoss
