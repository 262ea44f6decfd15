// Dense layers for decode rows, one source for every variant (written over simd.h): the bf16
// GEMV and the int8 GEMV with per-32 scales, and the benchmark's read-bandwidth probe.
//
// Both GEMVs work in register tiles of NR weight rows x R activation rows: each weight vector
// loaded serves R rows and each activation vector NR weight rows (a batch of 8 decode rows
// costs 1.6-2.3x one row on AVX-512, where one weight row at a time made it 2.6-3.6x). The NR rows of a tile are one contiguous stretch of
// memory read as NR short streams, which the hardware prefetcher learns late: software prefetch
// runs through the tile after next in address order (as mxfp4_int8.cpp does for the experts).
#include "simd.h"

namespace gptoss {
namespace {

using S = Simd;
constexpr int V = S::V;
constexpr int kMaxR = V == 64 ? 8 : 4;  // activation rows per tile

// Weight rows per tile for R activation rows: the R x NR accumulators and NR weight vectors
// (two each on AVX2, whose bf16 weights are split into floats) fit the registers (32 / 16).
// One activation row reads one weight row at a time, a single stream: on the EPYC VM 2 and 4
// streams read the unembedding 3-15% slower (the tiles then alternate two accumulator sets).
template <int R>
constexpr int tile_rows() {
  constexpr int per_row = V == 64 ? R + 1 : R + 2, budget = V == 64 ? 28 : 14;
  return R == 1 ? 1 : std::min(4, std::max(1, budget / per_row));
}

// Prefetch of the tile after next: `done` of the tile's `bytes` read so far, `step` more now.
inline void prefetch_ahead(const void* tile, int64_t bytes, int64_t done, int step) {
  const char* p = static_cast<const char*>(tile) + 2 * bytes + done;
  for (int i = 0; i < step; i += 64) _mm_prefetch(p + i, _MM_HINT_T0);
}

// bf16 activation rows as the tiles read them: AVX-512 dots bf16 pairs (vdpbf16ps), so a row
// is used as it is; AVX2 has no bf16 product, so each row is widened once per call, every V
// bytes as the floats of its even then its odd elements (what split_bf16 makes of a weight
// vector).
struct Bf16Rows {
  const at::BFloat16* raw;
  int64_t K;
  std::vector<float> split;
  Bf16Rows(const at::BFloat16* x, int64_t R, int64_t K) : raw(x), K(K) {
    if constexpr (!S::kBf16Dot) {
      split.resize(R * K);
      for (int64_t i = 0; i < R * K; i += 2 * S::L) {
        S::F even, odd;
        split_bf16(S::load(x + i), even, odd);
        S::storef(&split[i], even), S::storef(&split[i + S::L], odd);
      }
    }
  }
};

template <int R, int NR, typename Ops = S>
inline void bf16_tile(const at::BFloat16* w, const Bf16Rows& x, int64_t r0, float (&res)[R][NR]) {
  using F = typename Ops::F;
  using I = typename Ops::I;
  constexpr int E = V / 2;  // bf16 per vector
  const int64_t K = x.K;
  F acc[R][NR], more[R][NR];
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < NR; ++j) acc[r][j] = more[r][j] = Ops::zero();
  // the products of one vector of each weight row into a (AVX2: the odd elements' into b)
  auto step = [&](int64_t k, F (&a)[R][NR], F (&b)[R][NR]) {
    prefetch_ahead(w, NR * K * 2, NR * k * 2, NR * V);
    I wv[NR];
    for (int j = 0; j < NR; ++j) wv[j] = Ops::load(w + j * K + k);
    if constexpr (Ops::kBf16Dot) {
      for (int r = 0; r < R; ++r) {
        const I xv = Ops::load(x.raw + (r0 + r) * K + k);
        for (int j = 0; j < NR; ++j) a[r][j] = Ops::dot_bf16(a[r][j], wv[j], xv);
      }
    } else {
      F lo[NR], hi[NR];
      for (int j = 0; j < NR; ++j) split_bf16(wv[j], lo[j], hi[j]);
      for (int r = 0; r < R; ++r) {
        const float* xr = x.split.data() + (r0 + r) * K + k;
        const F even = Ops::loadf(xr), odd = Ops::loadf(xr + Ops::L);
        for (int j = 0; j < NR; ++j) a[r][j] = Ops::fmadd(lo[j], even, a[r][j]), b[r][j] = Ops::fmadd(hi[j], odd, b[r][j]);
      }
    }
  };
  // A second set of accumulators where the registers allow, so that a product need not wait for
  // the one before it: over alternate vectors (one product each) or for the odd elements (AVX2).
  constexpr bool kAlternate = Ops::kBf16Dot && R * NR <= 2;
  constexpr bool kOddApart = !Ops::kBf16Dot && 2 * R * NR + 2 * NR <= 14;
  int64_t k = 0;
  if constexpr (kAlternate)
    for (; k + 2 * E <= K; k += 2 * E) step(k, acc, acc), step(k + E, more, more);
  for (; k < K; k += E) step(k, acc, kOddApart ? more : acc);
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < NR; ++j) res[r][j] = Ops::hsum(Ops::add(acc[r][j], more[r][j]));
}

// int8 weights with a float16 scale per 32: each block widened to int16 (one vector on AVX-512,
// two on AVX2) meets the rows' int16 activations in vpmaddwd, then one conversion and one FMA
// with the block's scale per row.
template <int R, int NR>
inline void int8_tile(const int8_t* w, const at::Half* scales, const int16_t* x, int64_t K,
                      float (&res)[R][NR]) {
  constexpr int H = 64 / V;  // int16 vectors per 32-block
  const int64_t KB = K / 32;
  S::F acc[R][NR], more[R][NR];
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < NR; ++j) acc[r][j] = more[r][j] = S::zero();
  auto block = [&](int64_t b, S::F (&a)[R][NR]) {
    prefetch_ahead(w, NR * K, NR * b * 32, NR * 32);
    for (int j = 0; j < NR; ++j) {
      S::I wv[H];
      for (int h = 0; h < H; ++h) wv[h] = S::widen_i8_i16(w + j * K + b * 32 + h * V / 2);
      const S::F scale = S::set1f(half_to_float(scales[j * KB + b]));
      for (int r = 0; r < R; ++r) {
        const int16_t* xr = x + r * K + b * 32;
        S::I p = S::madd16(wv[0], S::load(xr));
        if constexpr (H == 2) p = S::add32(p, S::madd16(wv[1], S::load(xr + 16)));
        a[r][j] = S::fmadd(S::cvt(p), scale, a[r][j]);
      }
    }
  };
  int64_t b = 0;
  if constexpr (R * NR <= 2)  // a second chain over alternate blocks: the FMAs' latency hidden
    for (; b + 2 <= KB; b += 2) block(b, acc), block(b + 1, more);
  for (; b < KB; ++b) block(b, acc);
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < NR; ++j) res[r][j] = S::hsum(S::add(acc[r][j], more[r][j]));
}

// Calls tile(R, NR, n, r0, res) (R and NR as std::integral_constant) over the tiles of weight
// rows [n_begin, n_end) x activation rows [r0, r0 + R), then out(r, n, value) per result.
template <int R, typename Tile, typename Out>
inline void tiles_of(int64_t n_begin, int64_t n_end, int64_t r0, const Tile& tile, const Out& out) {
  constexpr int NR = tile_rows<R>();
  const std::integral_constant<int, R> rows;
  int64_t n = n_begin;
  for (; n + NR <= n_end; n += NR) {
    float res[R][NR];
    tile(rows, std::integral_constant<int, NR>{}, n, r0, res);
    for (int r = 0; r < R; ++r)
      for (int j = 0; j < NR; ++j) out(r0 + r, n + j, res[r][j]);
  }
  for (; n < n_end; ++n) {  // the last rows, one at a time
    float res[R][1];
    tile(rows, std::integral_constant<int, 1>{}, n, r0, res);
    for (int r = 0; r < R; ++r) out(r0 + r, n, res[r][0]);
  }
}

template <int R = 1, typename Tile, typename Out>
inline void tiles_for(int rows, int64_t n_begin, int64_t n_end, int64_t r0, const Tile& tile, const Out& out) {
  if constexpr (R < kMaxR) {
    if (rows != R) return tiles_for<R + 1>(rows, n_begin, n_end, r0, tile, out);
  }
  tiles_of<R>(n_begin, n_end, r0, tile, out);
}

// The GEMV over N weight rows and R activation rows: weight rows split across threads in
// multiples of 4, activation rows in groups of up to kMaxR.
template <typename Tile, typename Out>
inline void gemv(int64_t N, int64_t R, const Tile& tile, const Out& out) {
  at::parallel_for(0, (N + 3) / 4, 16, [&](int64_t begin, int64_t end) {
    for (int64_t r0 = 0; r0 < R; r0 += kMaxR)
      tiles_for((int)std::min<int64_t>(kMaxR, R - r0), begin * 4, std::min(N, end * 4), r0, tile, out);
  });
}

}  // namespace

// int8 GEMV with one float16 scale per 32 weights:
// out[r, n] = sum_k x[r, k] * q[n, k] * s[n, k/32] * unit.
// x [R, K] (float32 or bf16) is quantized per row to int16 (error ~1e-5 of the row's max).
at::Tensor int8_gemv(const at::Tensor& x, const at::Tensor& q, const at::Tensor& s, double unit,
                     const c10::optional<at::Tensor>& bias, bool out_bf16) {
  check_int8(x, q, s);
  const int64_t N = q.size(0), K = q.size(1), R = x.size(0);
  auto xc = x.to(at::kFloat).contiguous();  // bf16 rows widen here: no torch op in Python
  std::vector<int16_t> xq(R * K);
  std::vector<float> steps = quantize_rows_int16(xc.data_ptr<float>(), R, K, xq.data());
  for (float& step : steps) step *= (float)unit;
  GemvOutput result(R, N, x.options(), bias, out_bf16);
  const int8_t* qp = q.data_ptr<int8_t>();
  const at::Half* sp = s.data_ptr<at::Half>();
  gemv(N, R,
       [&](auto rows, auto nr, int64_t n, int64_t r0, auto& res) {
         int8_tile<decltype(rows)::value, decltype(nr)::value>(qp + n * K, sp + n * (K / 32),
                                                               xq.data() + r0 * K, K, res);
       },
       [&](int64_t r, int64_t n, float v) { result.store(r, n, v * steps[r]); });
  return result.tensor;
}

// bf16 GEMV for few rows: out[r, n] = sum_k x[r, k] * w[n, k]; x bf16 [R, K], w bf16 [N, K],
// K a multiple of 32. torch's bf16 matmul is tuned for big matrices (on AVX2 it has no fast
// path at all); the dense layers of a decode step are pure streaming.
at::Tensor bf16_gemv(const at::Tensor& x, const at::Tensor& w, const c10::optional<at::Tensor>& bias,
                     bool out_bf16) {
  TORCH_CHECK(w.dtype() == at::kBFloat16 && w.dim() == 2 && w.is_contiguous() && w.size(1) % 32 == 0,
              "w must be contiguous bf16 [N, K] with K a multiple of 32");
  TORCH_CHECK(x.dtype() == at::kBFloat16 && x.dim() == 2 && x.is_contiguous() && x.size(1) == w.size(1),
              "x must be contiguous bf16 [R, ", w.size(1), "]");
  const int64_t N = w.size(0), K = w.size(1), R = x.size(0);
  const Bf16Rows rows(x.data_ptr<at::BFloat16>(), R, K);
  GemvOutput result(R, N, x.options(), bias, out_bf16);
  const at::BFloat16* wp = w.data_ptr<at::BFloat16>();
  gemv(N, R,
       [&](auto tile_r, auto nr, int64_t n, int64_t r0, auto& res) {
         bf16_tile<decltype(tile_r)::value, decltype(nr)::value>(wp + n * K, rows, r0, res);
       },
       [&](int64_t r, int64_t n, float v) { result.store(r, n, v); });
  return result.tensor;
}

// Reads every byte of buf once on all threads (the benchmark's measure of the machine's read
// bandwidth, the bound for decoding). Returns a checksum so that the reads are not elided.
int64_t stream_read(const at::Tensor& buf) {
  TORCH_CHECK(buf.is_contiguous() && buf.nbytes() % 256 == 0, "buffer must be contiguous, a multiple of 256 bytes");
  const auto* p = static_cast<const uint8_t*>(buf.data_ptr());
  const int64_t steps = buf.nbytes() / 256;  // 256 / V vectors per step
  std::vector<int64_t> partial(at::get_num_threads() * 8, 0);
  at::parallel_for(0, steps, 4096, [&](int64_t begin, int64_t end) {
    S::I acc[4] = {S::set1_32(0), S::set1_32(0), S::set1_32(0), S::set1_32(0)};
    for (int64_t i = begin; i < end; ++i)
      for (int j = 0; j < 256 / V; ++j) acc[j % 4] = S::xor_(acc[j % 4], S::load(p + 256 * i + j * V));
    alignas(64) int64_t lanes[V / 8];
    S::store(lanes, S::xor_(S::xor_(acc[0], acc[1]), S::xor_(acc[2], acc[3])));
    for (int64_t v : lanes) partial[at::get_thread_num() * 8] ^= v;
  });
  int64_t total = 0;
  for (int64_t v : partial) total ^= v;
  return total;
}

}  // namespace gptoss
