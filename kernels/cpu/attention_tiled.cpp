// Prefill attention: many queries against the cached keys, tiled, with an online softmax
// (no score matrix beyond one tile), sinks and a sliding window. Written once over simd.h:
// AVX512-BF16 dot products (vdpbf16ps) on the AVX-512 variant, bf16 pairs widened to float on
// AVX2.
//
// Per (batch row, kv head) the keys and values are first packed for the dot products:
//   keys   [Tk/L][D/2][L][2]: a vector holds one pair of head dims of L consecutive keys, so a
//          broadcast pair of one query's dims times it gives L partial scores;
//   values [Tk/2][D][2]:      a vector holds L head dims of two consecutive keys, so a
//          broadcast pair of one query's two probabilities times it adds to L outputs.
// A work item is RB query rows (a row = one query position x one of the g heads that share the
// kv head); it walks the keys in blocks of KB, each block read from L1 by the rows' MR-row
// micro tiles: scores (MR x KB in registers), masking only where a tile crosses a row's
// visible range (whole tiles outside it are skipped: a sliding layer reads its window),
// running max and sum, probabilities rounded to bf16, then the MR x D output accumulators.
#include "simd.h"

namespace gptoss {

namespace {
using S = Simd;
constexpr int L = S::L;                   // floats per vector
constexpr int NKV = S::V == 64 ? 4 : 2;   // score vectors per row of a micro tile
constexpr int KB = NKV * L;               // keys per block
constexpr int NDV = S::V == 64 ? 4 : 2;   // output vectors per row accumulated at once
constexpr int MR = 4;                     // query rows per micro tile
constexpr int RB = 32;                    // query rows per work item

// keys j of one (batch row, kv head), rows `stride` elements apart -> the packed layout above,
// zeros past n up to NK
void pack_keys(const uint16_t* k, int64_t stride, int64_t n, int64_t D, int64_t j0, int64_t j1,
               uint32_t* out) {
  for (int64_t j = j0; j < j1; ++j) {
    const int64_t block = j / L, lane = j % L;
    for (int64_t dp = 0; dp < D / 2; ++dp) {
      uint32_t pair = 0;
      if (j < n) std::memcpy(&pair, k + j * stride + 2 * dp, 4);
      out[(block * (D / 2) + dp) * L + lane] = pair;
    }
  }
}

void pack_values(const uint16_t* v, int64_t stride, int64_t n, int64_t D, int64_t j0, int64_t j1,
                 uint16_t* out) {
  for (int64_t j = j0; j < j1; ++j)
    for (int64_t d = 0; d < D; ++d)
      out[((j / 2) * D + d) * 2 + (j & 1)] = j < n ? v[j * stride + d] : 0;
}

// the keys [lo, hi) a query at slot p (its position minus k_offset) sees; lo == hi: none
inline void visible_keys(int64_t p, int64_t Tk, int64_t window, int64_t& lo, int64_t& hi) {
  hi = std::clamp<int64_t>(p + 1, 0, Tk);
  lo = window > 0 ? std::clamp<int64_t>(p - window + 1, 0, hi) : 0;
}

struct Rows {  // the query rows of one work item and their state
  const uint16_t* q[RB];
  int64_t lo[RB], hi[RB];  // visible keys [lo, hi) (lo == hi: none)
  float m[RB], l[RB];      // running max and sum of exp(score - max)
  alignas(64) float o[RB][256];
};

// acc[r][c] += the pair dot products of row r's broadcast pair (pair(r)) with column vector
// col[c]: one vdpbf16ps each, or (without it) both halves widened, each vector once
// (Ops is S; a template parameter so that only the branch this ISA takes is compiled)
template <int R, int C, typename Pair, typename Ops = S>
inline void pair_products(typename Ops::F (&acc)[R][C], const typename Ops::I (&col)[C], Pair pair) {
  if constexpr (Ops::kBf16Dot) {
    for (int r = 0; r < R; ++r) {
      const typename Ops::I p = pair(r);
      for (int c = 0; c < C; ++c) acc[r][c] = Ops::dot_bf16(acc[r][c], p, col[c]);
    }
  } else {
    typename Ops::F lo[C], hi[C];
    for (int c = 0; c < C; ++c) Ops::split_bf16(col[c], lo[c], hi[c]);
    for (int r = 0; r < R; ++r) {
      typename Ops::F plo, phi;
      Ops::split_bf16(pair(r), plo, phi);
      for (int c = 0; c < C; ++c) acc[r][c] = Ops::fmadd(phi, hi[c], Ops::fmadd(plo, lo[c], acc[r][c]));
    }
  }
}

// One MR-row micro tile against keys [jb, jb + KB).
void tile(Rows& rows, int r0, int64_t jb, int64_t D, float scale, const uint32_t* keys,
          const uint16_t* values) {
  bool any = false, whole = true;
  for (int r = r0; r < r0 + MR; ++r) {
    any |= rows.lo[r] < rows.hi[r] && rows.lo[r] < jb + KB && rows.hi[r] > jb;
    whole &= rows.lo[r] <= jb && rows.hi[r] >= jb + KB;
  }
  if (!any) return;
  typename S::F acc[MR][NKV];
  for (int r = 0; r < MR; ++r)
    for (int c = 0; c < NKV; ++c) acc[r][c] = S::zero();
  const uint32_t* kb = keys + (jb / L) * (D / 2) * L;
  for (int64_t dp = 0; dp < D / 2; ++dp) {
    typename S::I kv[NKV];
    for (int c = 0; c < NKV; ++c) kv[c] = S::load(kb + (c * (D / 2) + dp) * L);
    pair_products<MR, NKV>(acc, kv, [&](int r) { return S::bcast32(rows.q[r0 + r] + 2 * dp); });
  }
  alignas(64) uint16_t probs[MR][KB];
  float alpha[MR];
  for (int r = 0; r < MR; ++r) {
    const int row = r0 + r;
    typename S::F s[NKV];
    for (int c = 0; c < NKV; ++c) {
      s[c] = S::mul(acc[r][c], S::set1f(scale));
      if (!whole) s[c] = S::keep_range(s[c], jb + c * L, rows.lo[row], rows.hi[row]);
    }
    typename S::F top = s[0];
    for (int c = 1; c < NKV; ++c) top = S::maxf(top, s[c]);
    const float block_max = S::hmax(top);
    if (block_max == -INFINITY) {  // this row sees no key of the block
      std::memset(probs[r], 0, sizeof(probs[r]));
      alpha[r] = 1.f;
      continue;
    }
    const float m = std::max(rows.m[row], block_max);
    alpha[r] = std::exp(rows.m[row] - m);  // 0 on the row's first block (m was -inf)
    typename S::F sum = S::zero();
    for (int c = 0; c < NKV; ++c) {
      const typename S::F p = S::exp(S::add(s[c], S::set1f(-m)));
      sum = S::add(sum, p);
      S::store_bf16(probs[r] + c * L, p);
    }
    rows.l[row] = rows.l[row] * alpha[r] + S::hsum(sum);
    rows.m[row] = m;
  }
  for (int64_t d0 = 0; d0 < D; d0 += NDV * L) {
    typename S::F out[MR][NDV];
    for (int r = 0; r < MR; ++r)
      for (int c = 0; c < NDV; ++c)
        out[r][c] = S::mul(S::loadf(rows.o[r0 + r] + d0 + c * L), S::set1f(alpha[r]));
    const uint16_t* vb = values + (jb / 2) * D * 2 + d0 * 2;
    for (int kp = 0; kp < KB / 2; ++kp) {
      typename S::I vv[NDV];
      for (int c = 0; c < NDV; ++c) vv[c] = S::load(vb + kp * D * 2 + c * L * 2);
      pair_products<MR, NDV>(out, vv, [&](int r) { return S::bcast32(probs[r] + 2 * kp); });
    }
    for (int r = 0; r < MR; ++r)
      for (int c = 0; c < NDV; ++c) S::storef(rows.o[r0 + r] + d0 + c * L, out[r][c]);
  }
}
}  // namespace

// Same contract as attention_decode (q [B, Tq, Hq, D], k, v [B, Tk, Hkv, D] bf16, rows of k/v
// may be strided), for any number of queries; D a multiple of 2 * NDV * L (64 on AVX-512).
// Returns bf16 [B, Tq, Hq, D].
at::Tensor attention_prefill(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                             const at::Tensor& sinks, const at::Tensor& q_positions, int64_t k_offset,
                             int64_t window, double scale) {
  TORCH_CHECK(q.dtype() == at::kBFloat16 && k.dtype() == at::kBFloat16 && v.dtype() == at::kBFloat16,
              "attention_prefill: q, k, v must be bf16");
  TORCH_CHECK(q.dim() == 4 && k.dim() == 4 && v.sizes() == k.sizes(), "attention_prefill: bad shapes");
  const int64_t B = q.size(0), Tq = q.size(1), Hq = q.size(2), D = q.size(3);
  const int64_t Tk = k.size(1), Hkv = k.size(2);
  TORCH_CHECK(D % (NDV * L) == 0 && D <= 256 && k.size(3) == D && Hq % Hkv == 0 && k.size(0) == B &&
                  q_positions.numel() == B * Tq && sinks.numel() == Hq,
              "attention_prefill: head_dim must be a multiple of ", NDV * L,
              " (<= 256), heads a multiple of kv heads");
  TORCH_CHECK(k.stride(3) == 1 && k.stride(2) == D && v.stride(3) == 1 && v.stride(2) == D,
              "attention_prefill: k, v must be contiguous over (heads, head_dim)");
  const int64_t g = Hq / Hkv, NK = (Tk + KB - 1) / KB * KB;
  auto qc = q.contiguous();
  auto sc = sinks.to(at::kFloat).contiguous();
  auto pc = q_positions.to(at::kLong).contiguous();
  auto packed_k = at::empty({B * Hkv, NK * D / 2}, q.options().dtype(at::kInt));
  auto packed_v = at::empty({B * Hkv, NK * D}, q.options());
  auto out = at::empty({B, Tq, Hq, D}, q.options());
  const auto* qp = reinterpret_cast<const uint16_t*>(qc.data_ptr<at::BFloat16>());
  const auto* kp = reinterpret_cast<const uint16_t*>(k.data_ptr<at::BFloat16>());
  const auto* vp = reinterpret_cast<const uint16_t*>(v.data_ptr<at::BFloat16>());
  auto* pk = reinterpret_cast<uint32_t*>(packed_k.data_ptr<int32_t>());
  auto* pv = reinterpret_cast<uint16_t*>(packed_v.data_ptr<at::BFloat16>());
  auto* op = reinterpret_cast<uint16_t*>(out.data_ptr<at::BFloat16>());
  const float* sp = sc.data_ptr<float>();
  const int64_t* pos = pc.data_ptr<int64_t>();
  // only the keys some query sees are packed (a sliding layer's window)
  int64_t seen_lo = Tk, seen_hi = 0;
  for (int64_t i = 0; i < B * Tq; ++i) {
    int64_t lo, hi;
    visible_keys(pos[i] - k_offset, Tk, window, lo, hi);
    if (lo < hi) seen_lo = std::min(seen_lo, lo), seen_hi = std::max(seen_hi, hi);
  }
  const int64_t first_block = seen_lo / KB, blocks = std::max<int64_t>(0, (seen_hi + KB - 1) / KB - first_block);
  at::parallel_for(0, B * Hkv * blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      const int64_t bh = item / blocks, j0 = (first_block + item % blocks) * KB, b = bh / Hkv, h = bh % Hkv;
      pack_keys(kp + b * k.stride(0) + h * D, k.stride(1), Tk, D, j0, j0 + KB, pk + bh * NK * D / 2);
      pack_values(vp + b * v.stride(0) + h * D, v.stride(1), Tk, D, j0, j0 + KB, pv + bh * NK * D);
    }
  });
  const int64_t rows_per_head = Tq * g, items = (rows_per_head + RB - 1) / RB;
  at::parallel_for(0, B * Hkv * items, 1, [&](int64_t begin, int64_t end) {
    Rows rows;
    for (int64_t item = begin; item < end; ++item) {
      const int64_t bh = item / items, b = bh / Hkv, h = bh % Hkv, first = item % items * RB;
      const int n = (int)std::min<int64_t>(RB, rows_per_head - first);
      int64_t lo = Tk, hi = 0;
      for (int r = 0; r < RB; ++r) {
        rows.m[r] = -INFINITY, rows.l[r] = 0.f;
        std::memset(rows.o[r], 0, D * sizeof(float));
        if (r >= n) {  // padding: a row that sees nothing
          rows.q[r] = rows.q[0], rows.lo[r] = rows.hi[r] = 0;
          continue;
        }
        const int64_t t = (first + r) / g, i = (first + r) % g;
        rows.q[r] = qp + ((b * Tq + t) * Hq + h * g + i) * D;
        visible_keys(pos[b * Tq + t] - k_offset, Tk, window, rows.lo[r], rows.hi[r]);
        if (rows.lo[r] < rows.hi[r]) lo = std::min(lo, rows.lo[r]), hi = std::max(hi, rows.hi[r]);
      }
      const int tiles = (n + MR - 1) / MR * MR;
      for (int64_t jb = lo / KB * KB; jb < hi; jb += KB)
        for (int r0 = 0; r0 < tiles; r0 += MR)
          tile(rows, r0, jb, D, (float)scale, pk + bh * NK * D / 2, pv + bh * NK * D);
      for (int r = 0; r < n; ++r) {
        const int64_t t = (first + r) / g, i = (first + r) % g;
        uint16_t* dst = op + ((b * Tq + t) * Hq + h * g + i) * D;
        // softmax over [keys, sink]; a row that saw no key gets 0
        const float denom = rows.m[r] == -INFINITY ? INFINITY
                            : rows.l[r] + std::exp(sp[h * g + i] - rows.m[r]);
        const typename S::F inv = S::set1f(1.f / denom);
        for (int64_t d = 0; d < D; d += L) S::store_bf16(dst + d, S::mul(S::loadf(rows.o[r] + d), inv));
      }
    }
  });
  return out;
}

}  // namespace gptoss
