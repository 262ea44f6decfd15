// Attention with sinks and a sliding window over bf16 q, k, v, for any number of queries (the
// runtime's prefill and decode): tiled, with an online softmax (no score matrix beyond one
// tile). Written once over simd.h: AVX512-BF16 dot products (vdpbf16ps) on the AVX-512 variant,
// bf16 pairs widened to float on AVX2.
//
// Per (batch row, kv head) the keys and values are packed for the dot products:
//   keys   [KB/L][D/2][L][2]: a vector holds one pair of head dims of L consecutive keys, so a
//          broadcast pair of one query's dims times it gives L partial scores (packed by
//          L x L transposes in registers);
//   values [KB/2][D][2]:      a vector holds L head dims of two consecutive keys, so a
//          broadcast pair of one query's two probabilities times it adds to L outputs.
// The query rows (a row = one query position x one of the g heads that share the kv head) walk
// the keys in blocks of KB, each block read from L1 by MR-row micro tiles: scores (MR x KB in
// registers), masking only where a tile crosses a row's visible range (whole tiles outside it
// are skipped: a sliding layer reads its window), running max and sum, probabilities rounded
// to bf16, then the MR x D output accumulators.
//   Many rows per kv head (prefill): every key block is packed once, up front, and read by the
//   work items of RB rows each.
//   A few (decode, up to RB rows per kv head): the keys are split into chunks, one work item
//   per (batch row, chunk) over every kv head, packing each block where it is used, so each
//   thread streams a contiguous stretch of the cache; the chunks' partial softmaxes merge.
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

// Keys j0 .. j0 + KB - 1 of one (batch row, kv head), rows `stride` elements apart, packed
// into `out` [NKV][D/2][L] (pairs of bf16 as 32-bit lanes): L keys x L pairs at a time
// transposed in registers, scalar where the block runs past the n keys (zeros there).
void pack_keys(const uint16_t* k, int64_t stride, int64_t n, int64_t D, int64_t j0, uint32_t* out) {
  for (int c = 0; c < NKV; ++c) {
    const int64_t first = j0 + c * L;
    uint32_t* o = out + c * (D / 2) * L;
    if (first + L <= n) {
      for (int64_t dp = 0; dp < D / 2; dp += L) {
        typename S::I r[L];
        for (int lane = 0; lane < L; ++lane) r[lane] = S::load(k + (first + lane) * stride + 2 * dp);
        S::transpose32(r);
        for (int i = 0; i < L; ++i) S::store(o + (dp + i) * L, r[i]);
      }
      continue;
    }
    for (int64_t dp = 0; dp < D / 2; ++dp)
      for (int lane = 0; lane < L; ++lane) {
        uint32_t pair = 0;
        if (first + lane < n) std::memcpy(&pair, k + (first + lane) * stride + 2 * dp, 4);
        o[dp * L + lane] = pair;
      }
  }
}

// Values j0 .. j0 + KB - 1 -> `out` [KB/2][D][2]: each 32-bit lane the same dim of two
// consecutive keys (zeros past n).
void pack_values(const uint16_t* v, int64_t stride, int64_t n, int64_t D, int64_t j0, uint16_t* out) {
  for (int64_t j = j0; j < j0 + KB; j += 2) {
    uint16_t* o = out + (j - j0) * D;
    if (j + 1 < n) {
      const uint16_t *even = v + j * stride, *odd = even + stride;
      for (int64_t d = 0; d < D; d += L)
        S::store(o + 2 * d, S::or_(S::widen_u16(even + d), S::slli32(S::widen_u16(odd + d), 16)));
      continue;
    }
    for (int64_t d = 0; d < D; ++d) {
      o[2 * d] = j < n ? v[j * stride + d] : 0;
      o[2 * d + 1] = 0;
    }
  }
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
  float* o;                // [RB][D] running outputs (weighted by exp(score - max))
  int n;                   // rows in use (the rest pad the last micro tile and see nothing)
  int64_t key_lo, key_hi;  // the union of the rows' visible keys

  // rows first .. first + n - 1 of kv head h of batch row b (row = query t x head i of the g)
  void start(const uint16_t* qp, const int64_t* pos, int64_t b, int64_t h, int64_t first, int count,
             int64_t Tq, int64_t Hq, int64_t g, int64_t D, int64_t Tk, int64_t k_offset,
             int64_t window, float* out) {
    n = count, o = out, key_lo = Tk, key_hi = 0;
    std::memset(o, 0, RB * D * sizeof(float));
    for (int r = 0; r < RB; ++r) {
      m[r] = -INFINITY, l[r] = 0.f;
      if (r >= n) {
        q[r] = q[0], lo[r] = hi[r] = 0;
        continue;
      }
      const int64_t t = (first + r) / g, i = (first + r) % g;
      q[r] = qp + ((b * Tq + t) * Hq + h * g + i) * D;
      visible_keys(pos[b * Tq + t] - k_offset, Tk, window, lo[r], hi[r]);
      if (lo[r] < hi[r]) key_lo = std::min(key_lo, lo[r]), key_hi = std::max(key_hi, hi[r]);
    }
  }
};

// Scores are kept in base 2 (times log2 e, folded into the scale): a row's running max m is
// in those units, and its probabilities are 2^(score - m).
constexpr float kLog2e = 1.44269504088896341f;

// a row's output from its state: softmax over [its keys, the sink] (0 when it saw no key)
inline void finish_row(const float* o, float m, float l, float sink, int64_t D, uint16_t* dst) {
  const float denom = m == -INFINITY ? INFINITY : l + std::exp2(sink * kLog2e - m);
  const typename S::F inv = S::set1f(1.f / denom);
  for (int64_t d = 0; d < D; d += L) S::store_bf16(dst + d, S::mul(S::loadf(o + d), inv));
}

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
    for (int c = 0; c < C; ++c) split_bf16(col[c], lo[c], hi[c]);
    for (int r = 0; r < R; ++r) {
      typename Ops::F plo, phi;
      split_bf16(pair(r), plo, phi);
      for (int c = 0; c < C; ++c) acc[r][c] = Ops::fmadd(phi, hi[c], Ops::fmadd(plo, lo[c], acc[r][c]));
    }
  }
}

// One MR-row micro tile against keys [jb, jb + KB), packed in `keys` and `values`; `scale`
// includes log2 e.
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
  const uint32_t* kb = keys;
  for (int64_t dp = 0; dp < D / 2; ++dp) {
    typename S::I kv[NKV];
    for (int c = 0; c < NKV; ++c) kv[c] = S::load(kb + (c * (D / 2) + dp) * L);
    pair_products<MR, NKV>(acc, kv, [&](int r) { return S::bcast32(rows.q[r0 + r] + 2 * dp); });
  }
  alignas(64) uint16_t probs[MR][KB];
  float alpha[MR];
  for (int r = 0; r < MR; ++r) {
    const int row = r0 + r;
    if (!whole)
      for (int c = 0; c < NKV; ++c) acc[r][c] = S::keep_range(acc[r][c], jb + c * L, rows.lo[row], rows.hi[row]);
    typename S::F top = acc[r][0];
    for (int c = 1; c < NKV; ++c) top = S::maxf(top, acc[r][c]);
    const float block_max = S::hmax(top) * scale;  // scale > 0: the max of the scaled scores
    if (block_max == -INFINITY) {  // this row sees no key of the block
      std::memset(probs[r], 0, sizeof(probs[r]));
      alpha[r] = 1.f;
      continue;
    }
    const float m = std::max(rows.m[row], block_max);
    alpha[r] = std::exp2(rows.m[row] - m);  // 0 on the row's first block (m was -inf)
    typename S::F sum = S::zero();
    for (int c = 0; c < NKV; ++c) {
      const typename S::F x = S::fmadd(acc[r][c], S::set1f(scale), S::set1f(-m));
      const typename S::F p = whole ? S::template exp2_coarse<false>(x) : S::template exp2_coarse<true>(x);
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
        out[r][c] = S::mul(S::loadf(rows.o + (r0 + r) * D + d0 + c * L), S::set1f(alpha[r]));
    const uint16_t* vb = values + d0 * 2;
#pragma GCC unroll 2
    for (int kp = 0; kp < KB / 2; ++kp) {
      typename S::I vv[NDV];
      for (int c = 0; c < NDV; ++c) vv[c] = S::load(vb + kp * D * 2 + c * L * 2);
      pair_products<MR, NDV>(out, vv, [&](int r) { return S::bcast32(probs[r] + 2 * kp); });
    }
    for (int r = 0; r < MR; ++r)
      for (int c = 0; c < NDV; ++c) S::storef(rows.o + (r0 + r) * D + d0 + c * L, out[r][c]);
  }
}
}  // namespace

// q [B, Tq, Hq, D], k, v [B, Tk, Hkv, D] bf16 (rows of k/v may be strided, the last two dims
// contiguous), sinks [Hq], q_positions int64 [B, Tq]. Key slot j is position k_offset + j; a
// query at p sees p - window < j <= p (window <= 0: no window); one that sees no key gets 0.
// D a multiple of NDV * L (64 on AVX-512, 16 on AVX2), at most 256. Returns bf16 [B, Tq, Hq, D].
at::Tensor attention_bf16(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                          const at::Tensor& sinks, const at::Tensor& q_positions, int64_t k_offset,
                          int64_t window, double scale) {
  TORCH_CHECK(q.dtype() == at::kBFloat16 && k.dtype() == at::kBFloat16 && v.dtype() == at::kBFloat16,
              "attention_bf16: q, k, v must be bf16");
  TORCH_CHECK(q.dim() == 4 && k.dim() == 4 && v.sizes() == k.sizes(), "attention_bf16: bad shapes");
  const int64_t B = q.size(0), Tq = q.size(1), Hq = q.size(2), D = q.size(3);
  const int64_t Tk = k.size(1), Hkv = k.size(2);
  TORCH_CHECK(D % (NDV * L) == 0 && D <= 256 && k.size(3) == D && Hq % Hkv == 0 && k.size(0) == B &&
                  q_positions.numel() == B * Tq && sinks.numel() == Hq,
              "attention_bf16: head_dim must be a multiple of ", NDV * L,
              " (<= 256), heads a multiple of kv heads");
  TORCH_CHECK(k.stride(3) == 1 && k.stride(2) == D && v.stride(3) == 1 && v.stride(2) == D,
              "attention_bf16: k, v must be contiguous over (heads, head_dim)");
  const int64_t g = Hq / Hkv, NK = (Tk + KB - 1) / KB * KB;
  auto qc = q.contiguous();
  auto sc = sinks.to(at::kFloat).contiguous();
  auto pc = q_positions.to(at::kLong).contiguous();
  auto out = at::empty({B, Tq, Hq, D}, q.options());
  const auto* qp = reinterpret_cast<const uint16_t*>(qc.data_ptr<at::BFloat16>());
  const auto* kp = reinterpret_cast<const uint16_t*>(k.data_ptr<at::BFloat16>());
  const auto* vp = reinterpret_cast<const uint16_t*>(v.data_ptr<at::BFloat16>());
  auto* op = reinterpret_cast<uint16_t*>(out.data_ptr<at::BFloat16>());
  const float* sp = sc.data_ptr<float>();
  const int64_t* pos = pc.data_ptr<int64_t>();
  const int64_t rows_per_head = Tq * g, items = (rows_per_head + RB - 1) / RB;
  const int64_t kb_stride = k.stride(0), kt_stride = k.stride(1);
  const int64_t vb_stride = v.stride(0), vt_stride = v.stride(1);
  auto pack = [&](int64_t b, int64_t h, int64_t jb, uint32_t* keys, uint16_t* values) {
    const uint16_t* kh = kp + b * kb_stride + h * D;
    const uint16_t* vh = vp + b * vb_stride + h * D;
    // the next block's rows of this head, into L2: short strided streams (one head's row is
    // D * 2 bytes of every Hkv * D * 2) that the hardware prefetchers learn too late
    for (int64_t j = jb + KB; j < std::min(jb + 2 * KB, Tk); ++j)
      for (int64_t byte = 0; byte < D * 2; byte += 64) {
        _mm_prefetch(reinterpret_cast<const char*>(kh + j * kt_stride) + byte, _MM_HINT_T1);
        _mm_prefetch(reinterpret_cast<const char*>(vh + j * vt_stride) + byte, _MM_HINT_T1);
      }
    pack_keys(kh, kt_stride, Tk, D, jb, keys);
    pack_values(vh, vt_stride, Tk, D, jb, values);
  };
  auto sink = [&](int64_t h, int64_t row) { return sp[h * g + row % g]; };
  auto dst = [&](int64_t b, int64_t h, int64_t row) {
    return op + ((b * Tq + row / g) * Hq + h * g + row % g) * D;
  };
  if (items == 1) {
    // a few queries (decode): chunks of keys over every kv head, then the merge
    const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(2 * at::get_num_threads(), NK / KB));
    const int64_t parts = B * chunks * Hkv;
    std::vector<float> part_m(parts * RB), part_l(parts * RB), part_o(parts * RB * D);
    at::parallel_for(0, B * chunks, 1, [&](int64_t begin, int64_t end) {
      std::vector<Rows> rows(Hkv);
      std::vector<uint32_t> block_k(KB * D / 2);
      std::vector<uint16_t> block_v(KB * D);
      for (int64_t item = begin; item < end; ++item) {
        const int64_t b = item / chunks, c = item % chunks;
        int64_t lo = Tk, hi = 0;
        for (int64_t h = 0; h < Hkv; ++h) {
          const int64_t part = item * Hkv + h;
          rows[h].start(qp, pos, b, h, 0, (int)rows_per_head, Tq, Hq, g, D, Tk, k_offset, window,
                        part_o.data() + part * RB * D);
          lo = std::min(lo, rows[h].key_lo), hi = std::max(hi, rows[h].key_hi);
        }
        const int64_t first = lo / KB, blocks = std::max<int64_t>(0, (hi + KB - 1) / KB - first);
        for (int64_t blk = first + blocks * c / chunks; blk < first + blocks * (c + 1) / chunks; ++blk)
          for (int64_t h = 0; h < Hkv; ++h) {
            pack(b, h, blk * KB, block_k.data(), block_v.data());
            for (int r0 = 0; r0 < rows[h].n; r0 += MR)
              tile(rows[h], r0, blk * KB, D, (float)(scale * kLog2e), block_k.data(), block_v.data());
          }
        for (int64_t h = 0; h < Hkv; ++h) {
          std::copy(rows[h].m, rows[h].m + RB, part_m.data() + (item * Hkv + h) * RB);
          std::copy(rows[h].l, rows[h].l + RB, part_l.data() + (item * Hkv + h) * RB);
        }
      }
    });
    at::parallel_for(0, B * Hkv * rows_per_head, 16, [&](int64_t begin, int64_t end) {
      std::vector<float> o(D);
      for (int64_t i = begin; i < end; ++i) {
        const int64_t b = i / (Hkv * rows_per_head), h = i / rows_per_head % Hkv, r = i % rows_per_head;
        auto at = [&](int64_t c) { return ((b * chunks + c) * Hkv + h) * RB + r; };
        float m = -INFINITY, l = 0.f;
        for (int64_t c = 0; c < chunks; ++c) m = std::max(m, part_m[at(c)]);
        std::fill(o.begin(), o.end(), 0.f);
        for (int64_t c = 0; c < chunks && m != -INFINITY; ++c) {
          const float w = std::exp2(part_m[at(c)] - m);  // 0 for a chunk the row saw nothing of
          l += part_l[at(c)] * w;
          for (int64_t d = 0; d < D; ++d) o[d] += part_o[at(c) * D + d] * w;
        }
        finish_row(o.data(), m, l, sink(h, r), D, dst(b, h, r));
      }
    });
    return out;
  }
  // many queries (prefill): pack every block once, then items of RB rows
  auto packed_k = at::empty({B * Hkv, NK * D / 2}, q.options().dtype(at::kInt));
  auto packed_v = at::empty({B * Hkv, NK * D}, q.options());
  auto* pk = reinterpret_cast<uint32_t*>(packed_k.data_ptr<int32_t>());
  auto* pv = reinterpret_cast<uint16_t*>(packed_v.data_ptr<at::BFloat16>());
  int64_t seen_lo = Tk, seen_hi = 0;  // only the keys some query sees (a sliding layer's window)
  for (int64_t i = 0; i < B * Tq; ++i) {
    int64_t lo, hi;
    visible_keys(pos[i] - k_offset, Tk, window, lo, hi);
    if (lo < hi) seen_lo = std::min(seen_lo, lo), seen_hi = std::max(seen_hi, hi);
  }
  const int64_t first = seen_lo / KB, blocks = std::max<int64_t>(0, (seen_hi + KB - 1) / KB - first);
  at::parallel_for(0, B * Hkv * blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      const int64_t bh = item / blocks, jb = (first + item % blocks) * KB;
      pack(bh / Hkv, bh % Hkv, jb, pk + (bh * NK + jb) * D / 2, pv + (bh * NK + jb) * D);
    }
  });
  at::parallel_for(0, B * Hkv * items, 1, [&](int64_t begin, int64_t end) {
    Rows rows;
    std::vector<float> o(RB * D);
    for (int64_t item = begin; item < end; ++item) {
      const int64_t bh = item / items, b = bh / Hkv, h = bh % Hkv, first_row = item % items * RB;
      rows.start(qp, pos, b, h, first_row, (int)std::min<int64_t>(RB, rows_per_head - first_row), Tq,
                 Hq, g, D, Tk, k_offset, window, o.data());
      for (int64_t jb = rows.key_lo / KB * KB; jb < rows.key_hi; jb += KB)
        for (int r0 = 0; r0 < rows.n; r0 += MR)
          tile(rows, r0, jb, D, (float)(scale * kLog2e), pk + (bh * NK + jb) * D / 2, pv + (bh * NK + jb) * D);
      for (int r = 0; r < rows.n; ++r)
        finish_row(rows.o + r * D, rows.m[r], rows.l[r], sink(h, first_row + r), D,
                   dst(b, h, first_row + r));
    }
  });
  return out;
}

}  // namespace gptoss
