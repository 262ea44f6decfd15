// Dense layers for decode rows: bf16 GEMV (vdpbf16ps) and int8 GEMV (per-32 scales), and the
// benchmark's read-bandwidth probe.
#include "kernels.h"

namespace gptoss {
// int8 GEMV with one float scale per 32 weights: out[r, n] = sum_k x[r, k] * q[n, k] * s[n, k/32].
// x is float32 [R, KB*32]; it is quantized per row to int16 (error ~1e-5 of the row's max), so
// the inner loop is vpmaddwd on int16 pairs: one widening load, one multiply-add, one
// conversion and one FMA per 32 weights.
// One int8 weight row against R int16 activation rows (R fixed, so the accumulators stay in
// registers): per 32 weights one widening load, then per row vpmaddwd, a conversion and an FMA.
template <int R>
inline void int8_block(const int8_t* w, float scale, const int16_t* x, int64_t K, __m512* acc) {
  const __m512i wv = _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w)));
  const __m512 sc = _mm512_set1_ps(scale);
  for (int r = 0; r < R; ++r)
    acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_madd_epi16(wv, _mm512_loadu_si512(x + r * K))), sc, acc[r]);
}

template <int R>
inline void int8_row_dot(const int8_t* w, const float* scales, const int16_t* x, int64_t kb,
                         int64_t K, float* res) {
  __m512 even[R], odd[R];  // two chains: the FMA latency, not memory, would otherwise set the pace
  for (int r = 0; r < R; ++r) even[r] = odd[r] = _mm512_setzero_ps();
  int64_t b = 0;
  for (; b + 1 < kb; b += 2) {
    int8_block<R>(w + b * 32, scales[b], x + b * 32, K, even);
    int8_block<R>(w + b * 32 + 32, scales[b + 1], x + b * 32 + 32, K, odd);
  }
  if (b < kb) int8_block<R>(w + b * 32, scales[b], x + b * 32, K, even);
  for (int r = 0; r < R; ++r) res[r] = hsum(_mm512_add_ps(even[r], odd[r]));
}

at::Tensor int8_gemv(const at::Tensor& x, const at::Tensor& q, const at::Tensor& s,
                     const c10::optional<at::Tensor>& bias, bool out_bf16) {
  check_int8(x, q, s);
  const int64_t N = q.size(0), K = q.size(1), KB = K / 32;
  const int64_t R = x.size(0);
  auto xc = x.to(at::kFloat).contiguous();  // bf16 rows widen here: no torch op in Python
  // per-row int16 quantization of the activations
  std::vector<int16_t> xq(R * K);
  const std::vector<float> xs = quantize_rows_int16(xc.data_ptr<float>(), R, K, xq.data());
  GemvOutput out(R, N, x.options(), bias, out_bf16);
  const int8_t* qp = q.data_ptr<int8_t>();
  const float* sp = s.data_ptr<float>();
  at::parallel_for(0, N, 16, [&](int64_t begin, int64_t end) {
    float res[8];
    for (int64_t n = begin; n < end; ++n)
      for (int64_t r0 = 0; r0 < R; r0 += 8) {
        const int16_t* xr = xq.data() + r0 * K;
        const int8_t* w = qp + n * K;
        const float* sc = sp + n * KB;
        const int rows = (int)std::min<int64_t>(8, R - r0);
        switch (rows) {
          case 1: int8_row_dot<1>(w, sc, xr, KB, K, res); break;
          case 2: int8_row_dot<2>(w, sc, xr, KB, K, res); break;
          case 3: int8_row_dot<3>(w, sc, xr, KB, K, res); break;
          case 4: int8_row_dot<4>(w, sc, xr, KB, K, res); break;
          case 5: int8_row_dot<5>(w, sc, xr, KB, K, res); break;
          case 6: int8_row_dot<6>(w, sc, xr, KB, K, res); break;
          case 7: int8_row_dot<7>(w, sc, xr, KB, K, res); break;
          default: int8_row_dot<8>(w, sc, xr, KB, K, res); break;
        }
        for (int r = 0; r < rows; ++r) out.store(r0 + r, n, res[r] * xs[r0 + r]);
      }
  });
  return out.tensor;
}

template <int R>
inline void bf16_row_dot(const __m512bh* wrow, const __m512bh* x, int64_t kb, float* res) {
  __m512 acc[2][R];
  for (int r = 0; r < R; ++r) acc[0][r] = acc[1][r] = _mm512_setzero_ps();
  int64_t b = 0;
  for (; b + 1 < kb; b += 2)
    for (int r = 0; r < R; ++r) {
      acc[0][r] = _mm512_dpbf16_ps(acc[0][r], load_bf16(wrow + b), load_bf16(x + r * kb + b));
      acc[1][r] = _mm512_dpbf16_ps(acc[1][r], load_bf16(wrow + b + 1), load_bf16(x + r * kb + b + 1));
    }
  if (b < kb)
    for (int r = 0; r < R; ++r) acc[0][r] = _mm512_dpbf16_ps(acc[0][r], load_bf16(wrow + b), load_bf16(x + r * kb + b));
  for (int r = 0; r < R; ++r) res[r] = hsum(_mm512_add_ps(acc[0][r], acc[1][r]));
}

// bf16 GEMV for few rows: out[r, n] = sum_k x[r, k] * w[n, k]; x bf16 [R, K], w bf16 [N, K],
// K a multiple of 32. torch's bf16 matmul is tuned for big matrices; for one to a few rows it
// leaves memory bandwidth unused, and the dense layers of one decode step are pure streaming.
// Each weight vector serves up to 8 rows (16 accumulators in registers).
at::Tensor bf16_gemv(const at::Tensor& x, const at::Tensor& w, const c10::optional<at::Tensor>& bias,
                     bool out_bf16) {
  TORCH_CHECK(w.dtype() == at::kBFloat16 && w.dim() == 2 && w.is_contiguous() && w.size(1) % 32 == 0,
              "w must be contiguous bf16 [N, K] with K a multiple of 32");
  TORCH_CHECK(x.dtype() == at::kBFloat16 && x.dim() == 2 && x.is_contiguous() && x.size(1) == w.size(1),
              "x must be contiguous bf16 [R, ", w.size(1), "]");
  const int64_t N = w.size(0), K = w.size(1), KB = K / 32, R = x.size(0);
  GemvOutput out(R, N, x.options(), bias, out_bf16);
  const auto* xb = reinterpret_cast<const __m512bh*>(x.data_ptr<at::BFloat16>());
  const auto* wb = reinterpret_cast<const __m512bh*>(w.data_ptr<at::BFloat16>());
  at::parallel_for(0, N, 64, [&](int64_t begin, int64_t end) {
    float res[8];
    for (int64_t n = begin; n < end; ++n)
      for (int64_t r0 = 0; r0 < R; r0 += 8) {
        const __m512bh* xr = xb + r0 * KB;
        const int rows = (int)std::min<int64_t>(8, R - r0);
        switch (rows) {
          case 1: bf16_row_dot<1>(wb + n * KB, xr, KB, res); break;
          case 2: bf16_row_dot<2>(wb + n * KB, xr, KB, res); break;
          case 3: bf16_row_dot<3>(wb + n * KB, xr, KB, res); break;
          case 4: bf16_row_dot<4>(wb + n * KB, xr, KB, res); break;
          case 5: bf16_row_dot<5>(wb + n * KB, xr, KB, res); break;
          case 6: bf16_row_dot<6>(wb + n * KB, xr, KB, res); break;
          case 7: bf16_row_dot<7>(wb + n * KB, xr, KB, res); break;
          default: bf16_row_dot<8>(wb + n * KB, xr, KB, res); break;
        }
        for (int r = 0; r < rows; ++r) out.store(r0 + r, n, res[r]);
      }
  });
  return out.tensor;
}

// Reads every byte of buf once with AVX-512 loads on all threads (the benchmark's measure of
// the machine's read bandwidth, the bound for decoding). Returns a checksum so it is not elided.
int64_t stream_read(const at::Tensor& buf) {
  TORCH_CHECK(buf.is_contiguous() && buf.nbytes() % 256 == 0, "buffer must be contiguous, a multiple of 256 bytes");
  const auto* p = reinterpret_cast<const __m512i*>(buf.data_ptr());
  const int64_t n = buf.nbytes() / 256;  // 4 vectors per step
  std::vector<int64_t> partial(at::get_num_threads() * 8, 0);
  at::parallel_for(0, n, 4096, [&](int64_t begin, int64_t end) {
    __m512i a = _mm512_setzero_si512(), b = a, c = a, d = a;
    for (int64_t i = begin; i < end; ++i) {
      a = _mm512_add_epi64(a, _mm512_loadu_si512(p + 4 * i));
      b = _mm512_add_epi64(b, _mm512_loadu_si512(p + 4 * i + 1));
      c = _mm512_add_epi64(c, _mm512_loadu_si512(p + 4 * i + 2));
      d = _mm512_add_epi64(d, _mm512_loadu_si512(p + 4 * i + 3));
    }
    partial[at::get_thread_num() * 8] += _mm512_reduce_add_epi64(
        _mm512_add_epi64(_mm512_add_epi64(a, b), _mm512_add_epi64(c, d)));
  });
  int64_t total = 0;
  for (int64_t v : partial) total += v;
  return total;
}

}  // namespace gptoss
