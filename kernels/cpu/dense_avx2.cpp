// Dense layers for decode rows on AVX2 + FMA: bf16 GEMV and int8 GEMV (per-32 scales), and the
// benchmark's read-bandwidth probe; same contracts as dense.cpp.
#include "avx2.h"

namespace gptoss {
namespace {

// software prefetch this many bytes ahead in the weight stream: one core's sequential reads are
// latency-bound on the EPYC VM without it (as in mxfp4_avx2.cpp)
constexpr int kPrefetch = 2048;

// bf16 weights are widened by interleaving zero words below them (vpunpck{l,h}wd): a float
// per weight, in the order [0-3, 8-11] and [4-7, 12-15] of each 16. The activations are
// widened the same way once per call, so each 16 weights cost one load, two unpacks and two
// FMAs per row.
template <int R>
inline void bf16_row_dot(const uint16_t* w, const float* x, int64_t K, float* res) {
  __m256 acc[4][R];  // four chains: 32 weights per step, the FMA latency hidden
  for (int a = 0; a < 4; ++a)
    for (int r = 0; r < R; ++r) acc[a][r] = _mm256_setzero_ps();
  const __m256i zero = _mm256_setzero_si256();
  for (int64_t k = 0; k < K; k += 32) {
    _mm_prefetch(reinterpret_cast<const char*>(w + k) + kPrefetch, _MM_HINT_T0);
    for (int h = 0; h < 2; ++h) {
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + k + 16 * h));
      const __m256 lo = _mm256_castsi256_ps(_mm256_unpacklo_epi16(zero, v));
      const __m256 hi = _mm256_castsi256_ps(_mm256_unpackhi_epi16(zero, v));
      for (int r = 0; r < R; ++r) {
        acc[2 * h][r] = _mm256_fmadd_ps(lo, _mm256_loadu_ps(x + r * K + k + 16 * h), acc[2 * h][r]);
        acc[2 * h + 1][r] = _mm256_fmadd_ps(hi, _mm256_loadu_ps(x + r * K + k + 16 * h + 8), acc[2 * h + 1][r]);
      }
    }
  }
  for (int r = 0; r < R; ++r)
    res[r] = hsum8(_mm256_add_ps(_mm256_add_ps(acc[0][r], acc[1][r]), _mm256_add_ps(acc[2][r], acc[3][r])));
}

// One int8 weight row against R int16 activation rows: per 32 weights two widening loads, then
// per row two vpmaddwd, an add, a conversion and an FMA with the block's scale.
template <int R>
inline void int8_row_dot(const int8_t* w, const float* scales, const int16_t* x, int64_t kb,
                         int64_t K, float* res) {
  __m256 acc[2][R];  // two chains: the FMA latency would otherwise set the pace
  for (int r = 0; r < R; ++r) acc[0][r] = acc[1][r] = _mm256_setzero_ps();
  for (int64_t b = 0; b < kb; ++b) {
    if (!(b & 1)) _mm_prefetch(reinterpret_cast<const char*>(w + 32 * b) + kPrefetch, _MM_HINT_T0);
    const __m256i w0 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + 32 * b)));
    const __m256i w1 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + 32 * b + 16)));
    const __m256 sc = _mm256_broadcast_ss(scales + b);
    for (int r = 0; r < R; ++r) {
      const int16_t* xr = x + r * K + 32 * b;
      const __m256i p = _mm256_add_epi32(
          _mm256_madd_epi16(w0, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xr))),
          _mm256_madd_epi16(w1, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xr + 16))));
      acc[b & 1][r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), sc, acc[b & 1][r]);
    }
  }
  for (int r = 0; r < R; ++r) res[r] = hsum8(_mm256_add_ps(acc[0][r], acc[1][r]));
}

}  // namespace

// int8 GEMV with one float scale per 32 weights: out[r, n] = sum_k x[r, k] * q[n, k] * s[n, k/32].
// x float32 [R, K] is quantized per row to int16 (error ~1e-5 of the row's max).
at::Tensor int8_gemv(const at::Tensor& x, const at::Tensor& q, const at::Tensor& s,
                     const c10::optional<at::Tensor>& bias, bool out_bf16) {
  check_int8(x, q, s);
  const int64_t N = q.size(0), K = q.size(1), KB = K / 32;
  const int64_t R = x.size(0);
  auto xc = x.to(at::kFloat).contiguous();  // bf16 rows widen here: no torch op in Python
  std::vector<int16_t> xq(R * K);
  const std::vector<float> xs = quantize_rows_int16(xc.data_ptr<float>(), R, K, xq.data());
  GemvOutput out(R, N, x.options(), bias, out_bf16);
  const int8_t* qp = q.data_ptr<int8_t>();
  const float* sp = s.data_ptr<float>();
  at::parallel_for(0, N, 16, [&](int64_t begin, int64_t end) {
    float res[4];
    for (int64_t n = begin; n < end; ++n)
      for (int64_t r0 = 0; r0 < R; r0 += 4) {
        const int16_t* xr = xq.data() + r0 * K;
        const int8_t* w = qp + n * K;
        const float* sc = sp + n * KB;
        const int rows = (int)std::min<int64_t>(4, R - r0);
        switch (rows) {
          case 1: int8_row_dot<1>(w, sc, xr, KB, K, res); break;
          case 2: int8_row_dot<2>(w, sc, xr, KB, K, res); break;
          case 3: int8_row_dot<3>(w, sc, xr, KB, K, res); break;
          default: int8_row_dot<4>(w, sc, xr, KB, K, res); break;
        }
        for (int r = 0; r < rows; ++r) out.store(r0 + r, n, res[r] * xs[r0 + r]);
      }
  });
  return out.tensor;
}

// bf16 GEMV for few rows: out[r, n] = sum_k x[r, k] * w[n, k]; x bf16 [R, K], w bf16 [N, K],
// K a multiple of 32 (torch's bf16 matmul has no fast path on AVX2 at all).
at::Tensor bf16_gemv(const at::Tensor& x, const at::Tensor& w, const c10::optional<at::Tensor>& bias,
                     bool out_bf16) {
  TORCH_CHECK(w.dtype() == at::kBFloat16 && w.dim() == 2 && w.is_contiguous() && w.size(1) % 32 == 0,
              "w must be contiguous bf16 [N, K] with K a multiple of 32");
  TORCH_CHECK(x.dtype() == at::kBFloat16 && x.dim() == 2 && x.is_contiguous() && x.size(1) == w.size(1),
              "x must be contiguous bf16 [R, ", w.size(1), "]");
  const int64_t N = w.size(0), K = w.size(1), R = x.size(0);
  // activations widened in the weights' unpack order
  std::vector<float> xf(R * K);
  const auto* xb = reinterpret_cast<const uint16_t*>(x.data_ptr<at::BFloat16>());
  for (int64_t r = 0; r < R; ++r)
    for (int64_t k = 0; k < K; k += 16) {
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb + r * K + k));
      const __m256i zero = _mm256_setzero_si256();
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(&xf[r * K + k]), _mm256_unpacklo_epi16(zero, v));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(&xf[r * K + k + 8]), _mm256_unpackhi_epi16(zero, v));
    }
  GemvOutput out(R, N, x.options(), bias, out_bf16);
  const auto* wb = reinterpret_cast<const uint16_t*>(w.data_ptr<at::BFloat16>());
  at::parallel_for(0, N, 64, [&](int64_t begin, int64_t end) {
    float res[4];
    for (int64_t n = begin; n < end; ++n)
      for (int64_t r0 = 0; r0 < R; r0 += 4) {
        const float* xr = xf.data() + r0 * K;
        const int rows = (int)std::min<int64_t>(4, R - r0);
        switch (rows) {
          case 1: bf16_row_dot<1>(wb + n * K, xr, K, res); break;
          case 2: bf16_row_dot<2>(wb + n * K, xr, K, res); break;
          case 3: bf16_row_dot<3>(wb + n * K, xr, K, res); break;
          default: bf16_row_dot<4>(wb + n * K, xr, K, res); break;
        }
        for (int r = 0; r < rows; ++r) out.store(r0 + r, n, res[r]);
      }
  });
  return out.tensor;
}

// Reads every byte of buf once with AVX2 loads on all threads (the benchmark's measure of the
// machine's read bandwidth). Returns a checksum so it is not elided.
int64_t stream_read(const at::Tensor& buf) {
  TORCH_CHECK(buf.is_contiguous() && buf.nbytes() % 256 == 0, "buffer must be contiguous, a multiple of 256 bytes");
  const auto* p = reinterpret_cast<const __m256i*>(buf.data_ptr());
  const int64_t n = buf.nbytes() / 256;  // 8 vectors per step
  std::vector<int64_t> partial(at::get_num_threads() * 8, 0);
  at::parallel_for(0, n, 4096, [&](int64_t begin, int64_t end) {
    __m256i a[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256()};
    for (int64_t i = begin; i < end; ++i)
      for (int j = 0; j < 8; ++j) a[j % 4] = _mm256_add_epi64(a[j % 4], _mm256_loadu_si256(p + 8 * i + j));
    const __m256i s = _mm256_add_epi64(_mm256_add_epi64(a[0], a[1]), _mm256_add_epi64(a[2], a[3]));
    alignas(32) int64_t lanes[4];
    _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), s);
    partial[at::get_thread_num() * 8] += lanes[0] + lanes[1] + lanes[2] + lanes[3];
  });
  int64_t total = 0;
  for (int64_t v : partial) total += v;
  return total;
}

}  // namespace gptoss
