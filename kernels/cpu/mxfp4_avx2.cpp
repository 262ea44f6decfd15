// MXFP4 experts on AVX2 + FMA (no AVX-512, no VNNI): the grouped GEMV for decode, the
// dequantizers for prefill tiles and the fused clamped SwiGLU; same contracts as mxfp4.cpp.
//
// Why integer arithmetic: AVX2 has no bf16 dot product, and widening every 4-bit weight to
// float costs more instructions than the memory system gives time for. E2M1 values times two
// are the integers -12..12, so the activations are quantized to int8 per 32-block (one float
// scale each, the block's absmax / 127) and a weight block becomes 32 int8 through one vpshufb
// on its nibbles. vpmaddubsw needs one unsigned operand: the table holds 2*E2M1 + 12 (0..24),
// and the 12 * sum(x) that this adds is subtracted per block from a sum precomputed with the
// activations. Per two blocks (32 bytes): two lookups, two vpmaddubsw, one vpmaddwd, and one
// FMA with the weights' e8m0 scales (built from their exponent bits) times the activations'.
//
// Layout (Hugging Face gpt-oss): blocks [E, N, KB, 16] uint8, byte j of block b holds element
// 2j in its low nibble and 2j+1 in its high nibble; scales [E, N, KB] uint8 are E8M0
// exponents (value 2^(s-127)).
#include "avx2.h"

namespace gptoss {
namespace {

constexpr int kOffset = 12;  // added to 2*E2M1 so vpmaddubsw sees unsigned weights
constexpr int kPrefetch = 2048;  // bytes ahead in the weight stream
// E2M1 code -> 2 * value + 12: 0, .5, 1, 1.5, 2, 3, 4, 6, then the same negated
constexpr int8_t kFp4x2[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};
constexpr float kFp4[16] = {0.f, .5f, 1.f, 1.5f, 2.f, 3.f, 4.f, 6.f,
                            -0.f, -.5f, -1.f, -1.5f, -2.f, -3.f, -4.f, -6.f};

inline float e8m0(uint8_t s) { return s == 255 ? NAN : std::ldexp(1.0f, s - 127); }

inline __m256i offset_table() {
  alignas(32) int8_t t[32];
  for (int i = 0; i < 32; ++i) t[i] = (int8_t)(kFp4x2[i & 15] + kOffset);
  return _mm256_load_si256(reinterpret_cast<const __m256i*>(t));
}

// One activation row quantized for the kernel. Blocks are taken in pairs (2p, 2p+1); a pair is
// 64 bytes: the even elements of both blocks (16 + 16, the weights' low nibbles), then the odd
// ones. An odd last block is 32 bytes: its even elements, then its odd ones. Per pair, the 8
// int32 lanes of vpmaddwd's result cover 4 lanes per block, so the scale vector is
// [d(2p) x 4, d(2p+1) x 4] (d = absmax / 127 / 2, the 2 undoing the table's doubling) and
// corr holds 12 * (sum of the activations each lane covers).
struct QuantRows {
  int64_t KB, P, stride_q, stride_v;  // per row: q bytes, 8-lane vectors
  at::Tensor q, d, corr;
  QuantRows(const at::BFloat16* x, int64_t R, int64_t KB) : KB(KB), P(KB / 2) {
    stride_q = KB * 32;
    stride_v = (KB + 1) / 2;
    q = at::empty({R * stride_q}, at::kChar);
    d = at::empty({R * stride_v * 8}, at::kFloat);
    corr = at::empty({R * stride_v * 8}, at::kInt);
    int8_t* qp = q.data_ptr<int8_t>();
    float* dp = d.data_ptr<float>();
    int32_t* cp = corr.data_ptr<int32_t>();
    for (int64_t r = 0; r < R; ++r)
      for (int64_t b = 0; b < KB; ++b) {
        const at::BFloat16* src = x + (r * KB + b) * 32;
        float v[32], amax = 0.f;
        for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(v[i] = static_cast<float>(src[i])));
        const float inv = amax > 0 ? 127.f / amax : 0.f;
        const int64_t p = b / 2, half = b % 2;
        const bool paired = p < P;
        int8_t* even = qp + r * stride_q + p * 64 + (paired ? half * 16 : 0);
        int8_t* odd = even + (paired ? 32 : 16);
        int32_t sums[4] = {0, 0, 0, 0};  // per 4 even + 4 odd elements (one vpmaddwd lane)
        for (int j = 0; j < 16; ++j) {  // cvtss2si: nearest-even, inline (lrintf is a call)
          even[j] = (int8_t)_mm_cvtss_si32(_mm_set_ss(v[2 * j] * inv));
          odd[j] = (int8_t)_mm_cvtss_si32(_mm_set_ss(v[2 * j + 1] * inv));
          sums[j / 4] += even[j] + odd[j];
        }
        const float scale = amax / 127.f / 2.f;
        float* dv = dp + (r * stride_v + p) * 8;
        int32_t* cv = cp + (r * stride_v + p) * 8;
        for (int lane = 0; lane < 4; ++lane) {
          if (paired) {
            dv[half * 4 + lane] = scale;
            cv[half * 4 + lane] = kOffset * sums[lane];
          } else {  // lone block: its 8 lanes are 4 over the even and 4 over the odd elements
            dv[lane] = dv[4 + lane] = scale;
          }
        }
        if (!paired) {
          for (int lane = 0; lane < 8; ++lane) {
            int32_t s = 0;
            const int8_t* src8 = lane < 4 ? even + 4 * lane : odd + 4 * (lane - 4);
            for (int j = 0; j < 4; ++j) s += src8[j];
            cv[lane] = kOffset * s;
          }
        }
      }
  }
  const int8_t* qrow(int64_t r) const { return q.data_ptr<int8_t>() + r * stride_q; }
  const float* drow(int64_t r) const { return d.data_ptr<float>() + r * stride_v * 8; }
  const int32_t* crow(int64_t r) const { return corr.data_ptr<int32_t>() + r * stride_v * 8; }
};

// out[r] = sum_k x[r, k] * W[n, k] for R <= kMaxRows quantized rows, one weight row n.
template <int R>
inline void mxfp4_row_dot(const uint8_t* wrow, const uint8_t* srow, int64_t KB, const QuantRows& xq,
                          int64_t r0, float* res, __m256i table) {
  constexpr int A = R == 1 ? 2 : 1;  // independent chains for one row (FMA latency)
  const __m256i low4 = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1);
  // e8m0 bytes 0, 1 (2, 3) of four into the top byte of the low and high four int32 lanes
  const __m256i spread[2] = {
      _mm256_setr_epi8(-1, -1, -1, 0, -1, -1, -1, 0, -1, -1, -1, 0, -1, -1, -1, 0,
                       -1, -1, -1, 1, -1, -1, -1, 1, -1, -1, -1, 1, -1, -1, -1, 1),
      _mm256_setr_epi8(-1, -1, -1, 2, -1, -1, -1, 2, -1, -1, -1, 2, -1, -1, -1, 2,
                       -1, -1, -1, 3, -1, -1, -1, 3, -1, -1, -1, 3, -1, -1, -1, 3)};
  const int8_t* q[R];
  const float* d[R];
  const int32_t* c[R];
  for (int r = 0; r < R; ++r) q[r] = xq.qrow(r0 + r), d[r] = xq.drow(r0 + r), c[r] = xq.crow(r0 + r);
  __m256 acc[A][R];
  for (int a = 0; a < A; ++a)
    for (int r = 0; r < R; ++r) acc[a][r] = _mm256_setzero_ps();
  const int64_t P = KB / 2;
  // pair p with its scale bytes (in the lane layout of vpmaddwd's result) already in e
  auto pair = [&](int64_t p, __m256i e, int half, __m256* acc_a) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wrow + 32 * p));
    const __m256i wl = _mm256_shuffle_epi8(table, _mm256_and_si256(v, low4));
    const __m256i wh = _mm256_shuffle_epi8(table, _mm256_and_si256(_mm256_srli_epi16(v, 4), low4));
    // 2^(s-127) as float bits: s << 23 (s = 0 gives 0 rather than 2^-127)
    const __m256 sw = _mm256_castsi256_ps(_mm256_srli_epi32(_mm256_shuffle_epi8(e, spread[half]), 1));
    for (int r = 0; r < R; ++r) {
      const __m256i xl = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q[r] + 64 * p));
      const __m256i xh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q[r] + 64 * p + 32));
      const __m256i s16 = _mm256_add_epi16(_mm256_maddubs_epi16(wl, xl), _mm256_maddubs_epi16(wh, xh));
      const __m256i s32 = _mm256_sub_epi32(_mm256_madd_epi16(s16, ones),
                                           _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c[r] + 8 * p)));
      acc_a[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s32), _mm256_mul_ps(sw, _mm256_loadu_ps(d[r] + 8 * p)), acc_a[r]);
    }
  };
  int64_t p = 0;
  for (; p + 2 <= P; p += 2) {  // two pairs: 64 bytes of weights, 4 scale bytes
    // software prefetch 2 KB ahead: one core's sequential stream is latency-bound on the
    // EPYC VM (4-of-32 20b experts, one thread: 11.8 -> 13.7 GB/s; plain reads get 17)
    _mm_prefetch(reinterpret_cast<const char*>(wrow + 32 * p + kPrefetch), _MM_HINT_T0);
    uint32_t four;
    std::memcpy(&four, srow + 2 * p, 4);
    const __m256i e = _mm256_set1_epi32((int)four);
    pair(p, e, 0, acc[0]);
    pair(p + 1, e, 1, acc[A - 1]);
  }
  if (p < P) {
    uint16_t two;
    std::memcpy(&two, srow + 2 * p, 2);
    pair(p, _mm256_set1_epi16((int16_t)two), 0, acc[0]);
  }
  if (KB % 2) {  // a lone last block: [even | odd] elements in one vector
    const int64_t b = KB - 1;
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(wrow + 16 * b));
    const __m128i l4 = _mm_set1_epi8(0x0F);
    const __m256i idx = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(v, 4), l4), _mm_and_si128(v, l4));
    const __m256i w = _mm256_shuffle_epi8(table, idx);
    const __m256 sw = _mm256_set1_ps(e8m0(srow[b]));
    for (int r = 0; r < R; ++r) {
      const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q[r] + 64 * P));
      const __m256i s32 = _mm256_sub_epi32(_mm256_madd_epi16(_mm256_maddubs_epi16(w, x), ones),
                                           _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c[r] + 8 * P)));
      acc[0][r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s32), _mm256_mul_ps(sw, _mm256_loadu_ps(d[r] + 8 * P)), acc[0][r]);
    }
  }
  for (int r = 0; r < R; ++r) {
    __m256 sum = acc[0][r];
    for (int a = 1; a < A; ++a) sum = _mm256_add_ps(sum, acc[a][r]);
    res[r] = hsum8(sum);
  }
}

}  // namespace

// Grouped MXFP4 GEMV: rows x[offsets[g]:offsets[g+1]] are multiplied by expert experts[g].
// x: bf16 [R, KB*32] (zero-padded), bias: float32 or bf16 [E, N] or empty. Returns float32 [R, N].
at::Tensor moe_mxfp4_gemv(const at::Tensor& x, const at::Tensor& blocks, const at::Tensor& scales,
                          const at::Tensor& bias, const at::Tensor& experts,
                          const at::Tensor& offsets) {
  check_mxfp4(blocks, scales);
  const int64_t E = blocks.size(0), N = blocks.size(1), KB = blocks.size(2);
  TORCH_CHECK(x.dtype() == at::kBFloat16 && x.dim() == 2 && x.size(1) == KB * 32 && x.is_contiguous(),
              "x must be contiguous bf16 [R, ", KB * 32, "], got ", x.sizes());
  TORCH_CHECK(experts.dtype() == at::kLong && offsets.dtype() == at::kLong &&
                  offsets.numel() == experts.numel() + 1,
              "experts must be int64 [G] and offsets int64 [G+1]");
  const bool has_bias = bias.defined() && bias.numel() > 0;
  if (has_bias)
    TORCH_CHECK((bias.dtype() == at::kFloat || bias.dtype() == at::kBFloat16) &&
                    bias.is_contiguous() && bias.numel() == E * N,
                "bias must be contiguous float32 or bf16 [E, N]");
  const int64_t R = x.size(0), G = experts.numel();
  auto out = at::empty({R, N}, x.options().dtype(at::kFloat));
  const int64_t* ex = experts.data_ptr<int64_t>();
  const int64_t* off = offsets.data_ptr<int64_t>();
  for (int64_t g = 0; g < G; ++g)
    TORCH_CHECK(ex[g] >= 0 && ex[g] < E && off[g] <= off[g + 1] && off[g + 1] <= R,
                "expert index ", ex[g], " or row offsets out of range");
  TORCH_CHECK(G == 0 || off[0] >= 0, "row offsets out of range");
  const QuantRows xq(x.data_ptr<at::BFloat16>(), R, KB);

  constexpr int64_t kChunk = 32;  // output rows per work item (both threads busy on one expert)
  const int64_t chunks_per_group = (N + kChunk - 1) / kChunk;
  const uint8_t* wb = blocks.data_ptr<uint8_t>();
  const uint8_t* sb = scales.data_ptr<uint8_t>();
  const bool bias_bf16 = has_bias && bias.dtype() == at::kBFloat16;
  const float* bp = has_bias && !bias_bf16 ? bias.data_ptr<float>() : nullptr;
  const at::BFloat16* bph = bias_bf16 ? bias.data_ptr<at::BFloat16>() : nullptr;
  float* op = out.data_ptr<float>();
  at::parallel_for(0, G * chunks_per_group, 1, [&](int64_t begin, int64_t end) {
    const __m256i table = offset_table();
    for (int64_t item = begin; item < end; ++item) {
      const int64_t g = item / chunks_per_group, e = ex[g];
      const int64_t n0 = (item % chunks_per_group) * kChunk, n1 = std::min(N, n0 + kChunk);
      for (int64_t r0 = off[g]; r0 < off[g + 1]; r0 += kMaxRows) {
        const int rows = (int)std::min<int64_t>(kMaxRows, off[g + 1] - r0);
        for (int64_t n = n0; n < n1; ++n) {
          const uint8_t* wrow = wb + ((e * N + n) * KB) * 16;
          const uint8_t* srow = sb + (e * N + n) * KB;
          float res[kMaxRows];
          switch (rows) {
            case 1: mxfp4_row_dot<1>(wrow, srow, KB, xq, r0, res, table); break;
            case 2: mxfp4_row_dot<2>(wrow, srow, KB, xq, r0, res, table); break;
            case 3: mxfp4_row_dot<3>(wrow, srow, KB, xq, r0, res, table); break;
            default: mxfp4_row_dot<4>(wrow, srow, KB, xq, r0, res, table); break;
          }
          const float b = bp ? bp[e * N + n] : bph ? static_cast<float>(bph[e * N + n]) : 0.0f;
          for (int r = 0; r < rows; ++r) op[(r0 + r) * N + n] = res[r] + b;
        }
      }
    }
  });
  return out;
}

namespace {
// One expert (blocks [N, KB, 16], scales [N, KB]) -> bf16 [N, KB*32], 32 values per block:
// vpshufb gives 2 * E2M1 as int8, widened to float and scaled by 2^(s-127) / 2.
at::Tensor dequantize(const at::Tensor& blocks, const at::Tensor& scales) {
  TORCH_CHECK(blocks.dtype() == at::kByte && blocks.dim() == 3 && blocks.size(2) == 16 &&
                  blocks.is_contiguous(), "blocks must be contiguous uint8 [N, K/32, 16]");
  TORCH_CHECK(scales.dtype() == at::kByte && scales.dim() == 2 && scales.size(0) == blocks.size(0) &&
                  scales.size(1) == blocks.size(1) && scales.is_contiguous(),
              "scales must be contiguous uint8 [N, K/32] matching blocks");
  const int64_t N = blocks.size(0), KB = blocks.size(1);
  auto out = at::empty({N, KB * 32}, blocks.options().dtype(at::kBFloat16));
  const uint8_t* wb = blocks.data_ptr<uint8_t>();
  const uint8_t* sb = scales.data_ptr<uint8_t>();
  void* base = out.data_ptr();
  at::parallel_for(0, N, 16, [&](int64_t begin, int64_t end) {
    alignas(16) int8_t t[16];
    for (int i = 0; i < 16; ++i) t[i] = kFp4x2[i];
    const __m128i table = _mm_load_si128(reinterpret_cast<const __m128i*>(t)), l4 = _mm_set1_epi8(0x0F);
    for (int64_t n = begin; n < end; ++n)
      for (int64_t b = 0; b < KB; ++b) {
        const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(wb + (n * KB + b) * 16));
        const __m128i lo = _mm_shuffle_epi8(table, _mm_and_si128(v, l4));
        const __m128i hi = _mm_shuffle_epi8(table, _mm_and_si128(_mm_srli_epi16(v, 4), l4));
        const __m128i part[2] = {_mm_unpacklo_epi8(lo, hi), _mm_unpackhi_epi8(lo, hi)};  // element order
        const __m256 sc = _mm256_set1_ps(e8m0(sb[n * KB + b]) * 0.5f);
        for (int h = 0; h < 4; ++h) {
          const __m128i eight = h % 2 ? _mm_srli_si128(part[h / 2], 8) : part[h / 2];
          const __m256 f = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(eight)), sc);
          const int64_t at = (n * KB + b) * 32 + 8 * h;
          _mm_storeu_si128(reinterpret_cast<__m128i*>(static_cast<uint16_t*>(base) + at), ps_to_bf16x8(f));
        }
      }
  });
  return out;
}
}  // namespace

at::Tensor mxfp4_dequantize_bf16(const at::Tensor& blocks, const at::Tensor& scales) {
  return dequantize(blocks, scales);
}

// Clamped SwiGLU on interleaved float32 [R, 2I] (gate at even, linear at odd columns) ->
// bf16 [R, width] (zero-padded from I to width, ready for the down projection):
// gate' = min(gate, limit), linear' = clamp(linear, -limit, limit),
// out = gate' * sigmoid(alpha * gate') * (linear' + 1).
at::Tensor swiglu_bf16(const at::Tensor& h, double alpha, double limit, int64_t width) {
  TORCH_CHECK(h.dtype() == at::kFloat && h.dim() == 2 && h.is_contiguous() && h.size(1) % 2 == 0,
              "h must be contiguous float32 [R, 2I]");
  const int64_t R = h.size(0), I = h.size(1) / 2;
  TORCH_CHECK(width >= I && width % 16 == 0 && I % 16 == 0, "swiglu width must be >= I, both multiples of 16");
  auto out = at::zeros({R, width}, h.options().dtype(at::kBFloat16));
  const float* hp = h.data_ptr<float>();
  auto* op = reinterpret_cast<uint16_t*>(out.data_ptr<at::BFloat16>());
  const __m256 lim = _mm256_set1_ps((float)limit), neg_lim = _mm256_set1_ps((float)-limit);
  const __m256 neg_alpha = _mm256_set1_ps((float)-alpha), one = _mm256_set1_ps(1.0f);
  const __m256i evens = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);  // per half: evens, then odds
  at::parallel_for(0, R, 1, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r)
      for (int64_t i = 0; i < I; i += 8) {
        const __m256 a = _mm256_permutevar8x32_ps(_mm256_loadu_ps(hp + r * 2 * I + 2 * i), evens);
        const __m256 b = _mm256_permutevar8x32_ps(_mm256_loadu_ps(hp + r * 2 * I + 2 * i + 8), evens);
        __m256 gate = _mm256_permute2f128_ps(a, b, 0x20), lin = _mm256_permute2f128_ps(a, b, 0x31);
        gate = _mm256_min_ps(gate, lim);
        lin = _mm256_max_ps(_mm256_min_ps(lin, lim), neg_lim);
        const __m256 sig = _mm256_div_ps(one, _mm256_add_ps(one, exp8_ps(_mm256_mul_ps(gate, neg_alpha))));
        const __m256 v = _mm256_mul_ps(_mm256_mul_ps(gate, sig), _mm256_add_ps(lin, one));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(op + r * width + i), ps_to_bf16x8(v));
      }
  });
  return out;
}

}  // namespace gptoss
