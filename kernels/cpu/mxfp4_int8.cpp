// Products on int8 dot products, one source for every variant, written over simd.h (AVX-512
// VNNI or AVX2): the grouped MXFP4 GEMV of decode (rows x[offsets[g]:offsets[g+1]] times expert
// experts[g]), the grouped MXFP4 GEMM for experts with many rows (prefill), and the int8 dense
// GEMM that shares its register tiles.
//
// Why integer arithmetic: one decoded token is memory-bound only if the kernel consumes the
// packed bytes as fast as DRAM delivers them, on two cores. E2M1 values times two are the
// integers -12..12, so a vector of packed bytes becomes two vectors of int8 weights with one
// table lookup per nibble (no widening), and the activations are quantized to int8 per 32-block
// (absmax / 127, as llama.cpp's Q8_0). The unsigned operand of vpdpbusd / vpmaddubsw is the
// weight: the table holds 2 * E2M1 + 12 (0..24), and the 12 * sum(x) this adds is subtracted by
// starting each accumulator at a precomputed -12 * sum. Per vector of weight bytes (4 blocks
// on AVX-512, 2 on AVX2): a shift and 2 lookups (vpermb; AVX2: 3 logic ops, 2 vpshufb), 2 dot
// products (VNNI), one conversion and one FMA with the blocks' e8m0 scales (made from their
// exponent bits) times the activations'.
// Several weight rows share each activation load (row tiles of 4 for one activation row).
//
// Layout (Hugging Face gpt-oss): blocks [E, N, KB, 16] uint8, byte j of block b holds element
// 2j in its low nibble and 2j+1 in its high nibble; scales [E, N, KB] uint8 are E8M0
// exponents (value 2^(s-127); 255, NaN in the format, reads as infinity in the GEMV).
#include "simd.h"

namespace gptoss {
namespace {

constexpr int V = Simd::V;       // weight bytes per vector
constexpr int G = V / 16;        // 32-blocks per vector of weight bytes
constexpr int kLanes = V / 4;    // int32 lanes; lane i covers block i / 4 of its group
constexpr int kOffset = 12;      // added to 2 * E2M1 so the weights are unsigned
// vpshufb control: byte k of the broadcast scale bytes into the top byte of each int32 lane of
// 128-bit lane k (zeros elsewhere)
struct Spread {
  alignas(64) int8_t bytes[V];
  Spread() {
    for (int i = 0; i < V; ++i) bytes[i] = i % 4 == 3 ? (int8_t)(i / 16) : (int8_t)0x80;
  }
};
const Spread kSpread;

struct Fp4Offset {  // kFp4x2 + kOffset: the weights as unsigned bytes (0..24)
  int8_t v[16];
  Fp4Offset() {
    for (int i = 0; i < 16; ++i) v[i] = (int8_t)(kFp4x2[i] + kOffset);
  }
};
const Fp4Offset kFp4x2Offset;

// Activation rows quantized for the kernel, per group of G blocks: V bytes of the blocks'
// even elements (matching the weights' low nibbles), V bytes of their odd ones; per lane the
// scale d (absmax / 127 / 2, the 2 undoing the table's doubling) and -12 * the sum of the 8
// activations the lane covers. Blocks past K are zeros (a masked weight load meets them).
struct QuantRows {
  int64_t groups;
  std::vector<int8_t> q;
  std::vector<float> d;
  std::vector<int32_t> ncorr;
  QuantRows(const at::BFloat16* x, int64_t R, int64_t KB)
      : groups((KB + G - 1) / G), q(R * groups * 2 * V, 0), d(R * groups * kLanes, 0.f),
        ncorr(R * groups * kLanes, 0) {
    at::parallel_for(0, R, 4, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r)
        for (int64_t b = 0; b < KB; ++b) quantize_block(x + (r * KB + b) * 32, r * groups + b / G, b % G);
    });
  }
  void quantize_block(const at::BFloat16* src, int64_t group, int64_t slot) {
    int8_t steps[32];
    const float amax = quantize_block32(src, steps);
    int8_t* even = q.data() + group * 2 * V + slot * 16;
    int8_t* odd = even + V;
    for (int j = 0; j < 16; ++j) even[j] = steps[2 * j], odd[j] = steps[2 * j + 1];
    for (int lane = 0; lane < 4; ++lane) {
      int32_t sum = 0;
      for (int j = 4 * lane; j < 4 * lane + 4; ++j) sum += even[j] + odd[j];
      d[group * kLanes + slot * 4 + lane] = amax / 127.f / 2.f;
      ncorr[group * kLanes + slot * 4 + lane] = -kOffset * sum;
    }
  }
  const int8_t* qrow(int64_t r) const { return q.data() + r * groups * 2 * V; }
  const float* drow(int64_t r) const { return d.data() + r * groups * kLanes; }
  const int32_t* crow(int64_t r) const { return ncorr.data() + r * groups * kLanes; }
};

// res[r][j] = sum_k x[r0 + r, k] * W[row j, k] for R activation rows and NR weight rows (at
// w + j * KB * 16, their scales at s + j * KB).
template <int R, int NR>
inline void tile_dot(const uint8_t* w, const uint8_t* s, int64_t KB, const QuantRows& xq, int64_t r0,
                     float res[][4]) {
  using I = Simd::I;
  using F = Simd::F;
  const I table = Simd::table16(kFp4x2Offset.v);
  const I spread = Simd::load(kSpread.bytes);
  const int8_t* q[R];
  const float* d[R];
  const int32_t* c[R];
  for (int r = 0; r < R; ++r) q[r] = xq.qrow(r0 + r), d[r] = xq.drow(r0 + r), c[r] = xq.crow(r0 + r);
  F acc[R][NR];
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < NR; ++j) acc[r][j] = Simd::zero();
  const int64_t full = KB / G, row_bytes = KB * 16;
  auto group = [&](int64_t g, auto tail) {  // tail: a std::bool_constant
    const int blocks = tail ? (int)(KB % G) : G;
    for (int j = 0; j < NR; ++j) {
      const uint8_t* wg = w + j * row_bytes + g * V;
      const I v = tail ? Simd::load_first(wg, blocks * 16) : Simd::load(wg);
      I wl, wh;
      Simd::nibbles(table, v, wl, wh);
      uint32_t sbytes = 0;
      if (tail) std::memcpy(&sbytes, s + j * KB + g * G, blocks);
      else std::memcpy(&sbytes, s + j * KB + g * G, G);
      // 2^(s-127) as float bits: s << 23 (s = 0 gives 0 rather than 2^-127)
      const F sw = Simd::as_float(Simd::srli32(Simd::shuffle8(Simd::set1_32((int)sbytes), spread), 1));
      for (int r = 0; r < R; ++r) {
        const I dot = Simd::dot2(Simd::load(c[r] + g * kLanes), wl, Simd::load(q[r] + g * 2 * V), wh,
                                 Simd::load(q[r] + g * 2 * V + V));
        acc[r][j] = Simd::fmadd(Simd::cvt(dot), Simd::mul(sw, Simd::loadf(d[r] + g * kLanes)), acc[r][j]);
      }
    }
  };
  for (int64_t g = 0; g < full; ++g) {
    // software prefetch: each core's stream is latency-bound on the development VM
    // Software prefetch of the tile after next, in address order, NR * V bytes a step (its NR
    // rows are one contiguous run). The tile's own NR rows are NR short streams (1440 bytes
    // each at 20b shapes) that the hardware prefetcher barely learns; measured on the 2-core
    // EPYC VM, 4 of 32 20b experts, two threads: 23-25 GB/s (the bf16 kernel this replaced),
    // 28-29 (one row at a time, no prefetch), 25-38 (the next tile), 34-35 (this; a plain
    // two-thread read got 29 in the same run, 41-44 in others).
    for (int j = 0; j < NR * V / 64; ++j)
      _mm_prefetch(reinterpret_cast<const char*>(w + 2 * NR * row_bytes + (g * NR * V / 64 + j) * 64), _MM_HINT_T0);
    group(g, std::false_type{});
  }
  if (KB % G) group(full, std::true_type{});
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < NR; ++j) res[r][j] = Simd::hsum(acc[r][j]);
}

// Weight rows per tile for R activation rows: enough to share each activation load, few
// enough that the accumulators stay in registers (16 on AVX2, 32 on AVX-512).
template <int R>
constexpr int tile_rows() { return R == 1 ? (V == 64 ? 4 : 2) : R == 2 ? 2 : 1; }


// ---- many rows per expert (prefill): a GEMM on int8 dot products ----------------------------
//
// The weights of a tile of output columns are decoded once into int8 in the dot-product
// layout (vector lane = output column, its 4 bytes = 4 consecutive k), then every activation
// row of the expert is multiplied with them: per 32-block and pair (rows, column vector) 8
// vpdpbusd with the row's 4 bytes broadcast, then one conversion and one FMA with the
// weights' scales (a vector over the columns) times the row's. Against torch's bf16 matmul
// on dequantized tiles (the path this replaces where rows are many): twice the multiply-adds
// per instruction (vpdpbusd: 64, vdpbf16ps: 32), and no bf16 copy of the weights.
constexpr int kCols = V / 4;                 // output columns per vector
constexpr int kTileVecs = 2;                 // column vectors per tile
constexpr int kTileCols = kCols * kTileVecs;
constexpr int kGemmRows = 4;                 // activation rows per register tile

// Activation rows for the GEMM: int8 per 32-block in natural order, except that the middle two
// of every 4 elements swap places (the order decode_tile gives the weights' nibbles); per row
// and block the step d (absmax / 127 times `unit`, the weights' value per integer step) and
// -offset * the block's sum (the weights are stored as unsigned bytes, value + offset).
struct GemmRows {
  int64_t KB;
  std::vector<int8_t> q;
  std::vector<float> d;
  std::vector<int32_t> ncorr;
  template <typename T>
  GemmRows(const T* x, int64_t R, int64_t KB, int offset, float unit)
      : KB(KB), q(R * KB * 32), d(R * KB), ncorr(R * KB) {
    at::parallel_for(0, R, 8, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r)
        for (int64_t b = 0; b < KB; ++b) {
          int8_t steps[32];
          const float amax = quantize_block32(x + (r * KB + b) * 32, steps);
          int8_t* dst = q.data() + (r * KB + b) * 32;
          int32_t sum = 0;
          for (int i = 0; i < 32; ++i) {
            dst[(i & ~3) | ((i & 1) << 1) | ((i & 2) >> 1)] = steps[i];  // 0 1 2 3 -> 0 2 1 3
            sum += steps[i];
          }
          d[r * KB + b] = amax / 127.f * unit;
          ncorr[r * KB + b] = -offset * sum;
        }
    });
  }
};

// Byte offsets, from the first column of vector c of a tile, of the vector's columns (rows
// row_bytes apart); past the tile's last valid column (cols), the last again (never stored).
inline Simd::I column_offsets(int c, int cols, int64_t row_bytes) {
  const int valid = std::max(1, std::min(kCols, cols - c * kCols));
  return Simd::min32(Simd::iota32((int)row_bytes), Simd::set1_32((int)((valid - 1) * row_bytes)));
}

// Weights of columns n0 .. n0 + cols - 1 (cols <= kTileCols; the others repeat the last) of one
// expert into wbuf [KB][8 k4][kTileVecs][kCols] int32 (4 unsigned bytes, 2 * E2M1 + 12) and
// their scales into sbuf [KB][kTileVecs][kCols] float. A gathered int32 of a column holds 8
// nibbles, elements 8g .. 8g + 7 of a block; each 16-bit half becomes one lane of 4 bytes in
// the order 0 2 1 3 (low nibbles of both bytes, then high ones).
inline void decode_tile(const uint8_t* blocks, const uint8_t* scales, int64_t n0, int cols,
                        int64_t KB, int32_t* wbuf, float* sbuf) {
  using I = Simd::I;
  const I table = Simd::table16(kFp4x2Offset.v), nib = Simd::set1_32(0x0F0F);
  for (int c = 0; c < kTileVecs; ++c) {
    const int first = c * kCols;
    const I offsets = column_offsets(c, cols, KB * 16);
    const int64_t n = n0 + std::min(first, cols - 1);
    const uint8_t* base = blocks + n * KB * 16;
    for (int64_t b = 0; b < KB; ++b) {
      for (int g = 0; g < 4; ++g) {
        const I v = Simd::gather32(base + b * 16 + 4 * g, offsets);
        const I lo = Simd::or_(Simd::and_(v, nib), Simd::slli32(Simd::and_(Simd::srli32(v, 4), nib), 16));
        const I hi = Simd::or_(Simd::and_(Simd::srli32(v, 16), nib),
                               Simd::slli32(Simd::and_(Simd::srli32(v, 20), nib), 16));
        Simd::store(wbuf + ((b * 8 + 2 * g) * kTileVecs + c) * kCols, Simd::shuffle8(table, lo));
        Simd::store(wbuf + ((b * 8 + 2 * g + 1) * kTileVecs + c) * kCols, Simd::shuffle8(table, hi));
      }
      for (int lane = 0; lane < kCols; ++lane) {
        const int64_t col = n0 + std::min(first + lane, cols - 1);
        sbuf[(b * kTileVecs + c) * kCols + lane] = e8m0(scales[col * KB + b]);
      }
    }
  }
}

// The int8 weights q [N, K] (float16 scales s [N, K/32]) of columns n0 .. n0 + cols - 1 into
// the same layout: 4 consecutive bytes per lane, middle two swapped, plus 128 (unsigned) where
// the dot product needs unsigned weights (Simd::kSignedDot false).
inline void decode_int8_tile(const int8_t* q, const at::Half* s, int64_t n0, int cols, int64_t KB,
                             int32_t* wbuf, float* sbuf) {
  using I = Simd::I;
  alignas(64) int8_t swap_bytes[V];
  for (int i = 0; i < V; ++i) swap_bytes[i] = (int8_t)((i & ~3) | ((i & 1) << 1) | ((i & 2) >> 1));
  const I swap = Simd::load(swap_bytes), flip = Simd::set1_8((char)0x80);
  for (int c = 0; c < kTileVecs; ++c) {
    const int first = c * kCols;
    const I offsets = column_offsets(c, cols, KB * 32);
    const int64_t n = n0 + std::min(first, cols - 1);
    const int8_t* base = q + n * KB * 32;
    for (int64_t b = 0; b < KB; ++b) {
      for (int k4 = 0; k4 < 8; ++k4) {
        const I v = Simd::gather32(base + b * 32 + 4 * k4, offsets);
        const I w = Simd::shuffle8(v, swap);
        Simd::store(wbuf + ((b * 8 + k4) * kTileVecs + c) * kCols, Simd::kSignedDot ? w : Simd::xor_(w, flip));
      }
      for (int lane = 0; lane < kCols; ++lane)
        sbuf[(b * kTileVecs + c) * kCols + lane] =
            half_to_float(s[(n0 + std::min(first + lane, cols - 1)) * KB + b]);
    }
  }
}

// out rows r0 .. r0 + R - 1, columns of the decoded tile (float32, before the bias); Signed:
// the tile holds signed weights (decode_int8_tile where Simd::kSignedDot)
template <int R, bool Signed = false>
inline void gemm_tile(const GemmRows& xq, int64_t r0, const int32_t* wbuf, const float* sbuf,
                      float res[][kTileCols]) {
  using I = Simd::I;
  using F = Simd::F;
  const int64_t KB = xq.KB;
  F acc[R][kTileVecs];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < kTileVecs; ++c) acc[r][c] = Simd::zero();
  const int8_t* q[R];
  for (int r = 0; r < R; ++r) q[r] = xq.q.data() + (r0 + r) * KB * 32;
  for (int64_t b = 0; b < KB; ++b) {
    I dot[R][kTileVecs];
    for (int r = 0; r < R; ++r)
      for (int c = 0; c < kTileVecs; ++c) dot[r][c] = Simd::set1_32(xq.ncorr[(r0 + r) * KB + b]);
    for (int k4 = 0; k4 < 8; ++k4) {
      I w[kTileVecs];
      for (int c = 0; c < kTileVecs; ++c) w[c] = Simd::load(wbuf + ((b * 8 + k4) * kTileVecs + c) * kCols);
      for (int r = 0; r < R; ++r) {
        int32_t four;
        std::memcpy(&four, q[r] + b * 32 + 4 * k4, 4);
        const I x = Simd::set1_32(four);
        for (int c = 0; c < kTileVecs; ++c) {
          if constexpr (Signed) dot[r][c] = Simd::dot_signed(dot[r][c], w[c], x);
          else dot[r][c] = Simd::dot(dot[r][c], w[c], x);
        }
      }
    }
    for (int c = 0; c < kTileVecs; ++c) {
      const F ws = Simd::loadf(sbuf + (b * kTileVecs + c) * kCols);
      for (int r = 0; r < R; ++r)
        acc[r][c] = Simd::fmadd(Simd::cvt(dot[r][c]), Simd::mul(ws, Simd::set1f(xq.d[(r0 + r) * KB + b])), acc[r][c]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < kTileVecs; ++c) Simd::storef(res[r] + c * kCols, acc[r][c]);
}
}  // namespace

at::Tensor moe_mxfp4_gemv(const at::Tensor& x, const at::Tensor& blocks, const at::Tensor& scales,
                          const at::Tensor& bias, const at::Tensor& experts,
                          const at::Tensor& offsets) {
  const GroupedMxfp4 args(x, blocks, scales, bias, experts, offsets);
  const int64_t N = args.N, KB = args.KB, R = args.R, NG = args.groups;
  const int64_t* ex = args.experts;
  const int64_t* off = args.offsets;
  auto out = at::empty({R, N}, x.options().dtype(at::kFloat));
  const QuantRows xq(x.data_ptr<at::BFloat16>(), R, KB);

  // Work items: (expert, chunk of output rows); chunks keep both threads busy on one expert.
  constexpr int64_t kChunk = 32;
  const int64_t chunks = (N + kChunk - 1) / kChunk;
  const uint8_t* wb = blocks.data_ptr<uint8_t>();
  const uint8_t* sb = scales.data_ptr<uint8_t>();
  float* op = out.data_ptr<float>();
  at::parallel_for(0, NG * chunks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      const int64_t g = item / chunks, e = ex[g];
      const int64_t n0 = (item % chunks) * kChunk, n1 = std::min(N, n0 + kChunk);
      for (int64_t r0 = off[g]; r0 < off[g + 1]; r0 += kMaxRows) {
        const int rows = (int)std::min<int64_t>(kMaxRows, off[g + 1] - r0);
        for (int64_t n = n0; n < n1;) {
          const uint8_t* w = wb + (e * N + n) * KB * 16;
          const uint8_t* s = sb + (e * N + n) * KB;
          float res[kMaxRows][4];
          int nr = 1;
          auto tile = [&](auto r_tag) {
            constexpr int Rc = decltype(r_tag)::value, NR = tile_rows<Rc>();
            if (n + NR <= n1) tile_dot<Rc, NR>(w, s, KB, xq, r0, res), nr = NR;
            else tile_dot<Rc, 1>(w, s, KB, xq, r0, res);
          };
          switch (rows) {
            case 1: tile(std::integral_constant<int, 1>{}); break;
            case 2: tile(std::integral_constant<int, 2>{}); break;
            case 3: tile(std::integral_constant<int, 3>{}); break;
            default: tile(std::integral_constant<int, 4>{}); break;
          }
          for (int j = 0; j < nr; ++j)
            for (int r = 0; r < rows; ++r) op[(r0 + r) * N + n + j] = res[r][j] + args.bias(e, n + j);
          n += nr;
        }
      }
    }
  });
  return out;
}

}  // namespace gptoss

namespace gptoss {

// Grouped MXFP4 GEMM: the contract of moe_mxfp4_gemv, for experts with many rows each.
at::Tensor moe_mxfp4_gemm(const at::Tensor& x, const at::Tensor& blocks, const at::Tensor& scales,
                          const at::Tensor& bias, const at::Tensor& experts,
                          const at::Tensor& offsets) {
  const GroupedMxfp4 args(x, blocks, scales, bias, experts, offsets);
  const int64_t N = args.N, KB = args.KB, R = args.R, NG = args.groups;
  const int64_t* ex = args.experts;
  const int64_t* off = args.offsets;
  TORCH_CHECK(N * KB * 16 < (int64_t)1 << 31, "expert too large for 32-bit gather offsets");
  auto out = at::empty({R, N}, x.options().dtype(at::kFloat));
  const GemmRows xq(x.data_ptr<at::BFloat16>(), R, KB, kOffset, 0.5f);  // table: 2 * E2M1
  const int64_t tiles = (N + kTileCols - 1) / kTileCols;
  const uint8_t* wb = blocks.data_ptr<uint8_t>();
  const uint8_t* sb = scales.data_ptr<uint8_t>();
  float* op = out.data_ptr<float>();
  at::parallel_for(0, NG * tiles, 1, [&](int64_t begin, int64_t end) {
    std::vector<int32_t> wbuf(KB * 8 * kTileCols);
    std::vector<float> sbuf(KB * kTileCols);
    for (int64_t item = begin; item < end; ++item) {
      const int64_t g = item / tiles, e = ex[g];
      if (off[g] == off[g + 1]) continue;
      const int64_t n0 = (item % tiles) * kTileCols;
      const int cols = (int)std::min<int64_t>(kTileCols, N - n0);
      decode_tile(wb + e * N * KB * 16, sb + e * N * KB, n0, cols, KB, wbuf.data(), sbuf.data());
      for (int64_t r0 = off[g]; r0 < off[g + 1]; r0 += kGemmRows) {
        const int rows = (int)std::min<int64_t>(kGemmRows, off[g + 1] - r0);
        float res[kGemmRows][kTileCols];
        switch (rows) {
          case 1: gemm_tile<1>(xq, r0, wbuf.data(), sbuf.data(), res); break;
          case 2: gemm_tile<2>(xq, r0, wbuf.data(), sbuf.data(), res); break;
          case 3: gemm_tile<3>(xq, r0, wbuf.data(), sbuf.data(), res); break;
          default: gemm_tile<4>(xq, r0, wbuf.data(), sbuf.data(), res); break;
        }
        for (int r = 0; r < rows; ++r)
          for (int j = 0; j < cols; ++j) op[(r0 + r) * N + n0 + j] = res[r][j] + args.bias(e, n0 + j);
      }
    }
  });
  return out;
}

}  // namespace gptoss

namespace gptoss {

// int8 GEMM for many rows (prefill): out[r, n] = sum_k x[r, k] * q[n, k] * s[n, k/32] (+ bias),
// the activations int8 per 32-block as in the MXFP4 GEMM (same register tiles).
at::Tensor int8_gemm(const at::Tensor& x, const at::Tensor& q, const at::Tensor& s, double unit,
                     const c10::optional<at::Tensor>& bias, bool out_bf16) {
  check_int8(x, q, s);
  TORCH_CHECK(x.is_contiguous(), "x must be contiguous");
  const int64_t N = q.size(0), K = q.size(1), KB = K / 32;
  TORCH_CHECK(N * K < (int64_t)1 << 31, "matrix too large for 32-bit gather offsets");
  const int64_t R = x.size(0);
  constexpr bool kSigned = Simd::kSignedDot;
  const int offset = kSigned ? 0 : 128;
  const float u = (float)unit;  // the scales' unit joins each row's step
  const GemmRows xq = x.dtype() == at::kFloat ? GemmRows(x.data_ptr<float>(), R, KB, offset, u)
                                              : GemmRows(x.data_ptr<at::BFloat16>(), R, KB, offset, u);
  GemvOutput out(R, N, x.options(), bias, out_bf16);
  const int64_t tiles = (N + kTileCols - 1) / kTileCols;
  const int8_t* qp = q.data_ptr<int8_t>();
  const at::Half* sp = s.data_ptr<at::Half>();
  at::parallel_for(0, tiles, 1, [&](int64_t begin, int64_t end) {
    std::vector<int32_t> wbuf(KB * 8 * kTileCols);
    std::vector<float> sbuf(KB * kTileCols);
    for (int64_t tile = begin; tile < end; ++tile) {
      const int64_t n0 = tile * kTileCols;
      const int cols = (int)std::min<int64_t>(kTileCols, N - n0);
      decode_int8_tile(qp, sp, n0, cols, KB, wbuf.data(), sbuf.data());
      for (int64_t r0 = 0; r0 < R; r0 += kGemmRows) {
        const int rows = (int)std::min<int64_t>(kGemmRows, R - r0);
        float res[kGemmRows][kTileCols];
        switch (rows) {
          case 1: gemm_tile<1, kSigned>(xq, r0, wbuf.data(), sbuf.data(), res); break;
          case 2: gemm_tile<2, kSigned>(xq, r0, wbuf.data(), sbuf.data(), res); break;
          case 3: gemm_tile<3, kSigned>(xq, r0, wbuf.data(), sbuf.data(), res); break;
          default: gemm_tile<4, kSigned>(xq, r0, wbuf.data(), sbuf.data(), res); break;
        }
        for (int r = 0; r < rows; ++r)
          for (int j = 0; j < cols; ++j) out.store(r0 + r, n0 + j, res[r][j]);
      }
    }
  });
  return out.tensor;
}

}  // namespace gptoss
