// Attention with sinks and a sliding window over bf16 q, k, v, for any number of queries (the
// runtime's prefill and decode): tiled, with an online softmax (no score matrix beyond one
// tile). Written once over simd.h: AVX512-BF16 dot products (vdpbf16ps) on the AVX-512 variant,
// bf16 pairs widened to float on AVX2.
//
// Per (batch row, kv head) the keys and values are packed for the dot products, in layouts
// that do not depend on the ISA, so a KV cache can hold them (kv_store_packed):
//   keys   [T/16][D/2][16][2]: 16 consecutive keys' pair p of head dims are 64 bytes, so a
//          broadcast pair of one query's dims times a vector of them gives L partial scores
//          (packed by L x L transposes in registers);
//   values [T/2][D][2]:        a vector holds L head dims of two consecutive keys, so a
//          broadcast pair of one query's two probabilities times it adds to L outputs.
// Over a cache in these layouts (attention_bf16_packed) decode does no packing at all.
// The query rows (a row = one query position x one of the g heads that share the kv head) walk
// the keys in blocks of KB, each block read from L1 by MR-row micro tiles: scores (MR x KB in
// registers), masking only where a tile crosses a row's visible range (whole tiles outside it
// are skipped: a sliding layer reads its window), running max and sum, probabilities rounded
// to bf16, then the MR x D output accumulators.
//   Many rows per kv head (prefill): every key block is packed once, up front, and read by the
//   work items of RB rows each.
//   A few (decode, up to RB rows per kv head): the keys are split into chunks, one work item
//   per (batch row, chunk) over every kv head, so each thread streams a stretch of the cache
//   (on position-major rows, packing each block where it is used); the chunks' partial
//   softmaxes merge.
#include <memory>
#include <type_traits>

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
constexpr int G = 16;                     // keys per group of the packed key layout
static_assert(KB % G == 0 && G % L == 0, "a key block is whole groups, a group whole vectors");

// where the vector of pair dp of keys j0 + c * L .. + L - 1 sits in block j0's packed keys
inline int64_t key_vector(int c, int64_t dp, int64_t D) {
  return (c * L / G) * (D / 2 * G) + dp * G + (c * L) % G;
}

// Keys j0 .. j0 + KB - 1 of one (batch row, kv head), rows `stride` elements apart, packed
// into `out` (pairs of bf16 as 32-bit lanes, see key_vector): L keys x L pairs at a time
// transposed in registers, scalar where the block runs past the n keys (zeros there).
void pack_keys(const uint16_t* k, int64_t stride, int64_t n, int64_t D, int64_t j0, uint32_t* out) {
  for (int c = 0; c < NKV; ++c) {
    const int64_t first = j0 + c * L;
    if (first + L <= n) {
      for (int64_t dp = 0; dp < D / 2; dp += L) {
        typename S::I r[L];
        for (int lane = 0; lane < L; ++lane) r[lane] = S::load(k + (first + lane) * stride + 2 * dp);
        S::transpose32(r);
        for (int i = 0; i < L; ++i) S::store(out + key_vector(c, dp + i, D), r[i]);
      }
      continue;
    }
    for (int64_t dp = 0; dp < D / 2; ++dp)
      for (int lane = 0; lane < L; ++lane) {
        uint32_t pair = 0;
        if (first + lane < n) std::memcpy(&pair, k + (first + lane) * stride + 2 * dp, 4);
        out[key_vector(c, dp, D) + lane] = pair;
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
    for (int c = 0; c < NKV; ++c) kv[c] = S::load(kb + key_vector(c, dp, D));
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

// The keys and values of block jb of (batch row b, kv head h), packed.
struct PackedSource {  // already in the packed layouts: [B, Hkv, cap, ...] (a cache)
  const uint32_t* k;
  const uint16_t* v;
  int64_t Hkv, cap, D;
  int64_t slot(int64_t b, int64_t h, int64_t jb) const { return (b * Hkv + h) * cap + jb; }
  const uint32_t* keys(int64_t b, int64_t h, int64_t jb, uint32_t*) const {
    return k + slot(b, h, jb) * D / 2;
  }
  const uint16_t* values(int64_t b, int64_t h, int64_t jb, uint16_t*) const {
    return v + slot(b, h, jb) * D;
  }
};

struct RowSource {  // rows of [B, Tk, Hkv, D] tensors (strided), packed into the caller's scratch
  const uint16_t *k, *v;
  int64_t kb_stride, kt_stride, vb_stride, vt_stride, Tk, D;
  const uint32_t* keys(int64_t b, int64_t h, int64_t jb, uint32_t* scratch) const {
    const uint16_t* kh = k + b * kb_stride + h * D;
    const uint16_t* vh = v + b * vb_stride + h * D;
    // the next block's rows of this head, into L2: short strided streams (one head's row is
    // D * 2 bytes of every Hkv * D * 2) that the hardware prefetchers learn too late
    for (int64_t j = jb + KB; j < std::min(jb + 2 * KB, Tk); ++j)
      for (int64_t byte = 0; byte < D * 2; byte += 64) {
        _mm_prefetch(reinterpret_cast<const char*>(kh + j * kt_stride) + byte, _MM_HINT_T1);
        _mm_prefetch(reinterpret_cast<const char*>(vh + j * vt_stride) + byte, _MM_HINT_T1);
      }
    pack_keys(kh, kt_stride, Tk, D, jb, scratch);
    return scratch;
  }
  const uint16_t* values(int64_t b, int64_t h, int64_t jb, uint16_t* scratch) const {
    pack_values(v + b * vb_stride + h * D, vt_stride, Tk, D, jb, scratch);
    return scratch;
  }
};

struct Problem {
  const uint16_t* q;  // [B, Tq, Hq, D]
  const int64_t* pos; // [B, Tq]
  const float* sinks; // [Hq]
  uint16_t* out;      // [B, Tq, Hq, D]
  int64_t B, Tq, Hq, Hkv, D, Tk, k_offset, window;
  float scale;        // times log2 e
};

template <typename Source>
void attend(const Problem& p, const Source& src) {
  const int64_t B = p.B, Tq = p.Tq, Hq = p.Hq, Hkv = p.Hkv, D = p.D, Tk = p.Tk;
  const int64_t g = Hq / Hkv, NK = (Tk + KB - 1) / KB * KB;
  const int64_t rows_per_head = Tq * g, items = (rows_per_head + RB - 1) / RB;
  auto sink = [&](int64_t h, int64_t row) { return p.sinks[h * g + row % g]; };
  auto dst = [&](int64_t b, int64_t h, int64_t row) {
    return p.out + ((b * Tq + row / g) * Hq + h * g + row % g) * D;
  };
  auto start = [&](Rows& rows, int64_t b, int64_t h, int64_t first, int count, float* o) {
    rows.start(p.q, p.pos, b, h, first, count, Tq, Hq, g, D, Tk, p.k_offset, p.window, o);
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
          start(rows[h], b, h, 0, (int)rows_per_head, part_o.data() + (item * Hkv + h) * RB * D);
          lo = std::min(lo, rows[h].key_lo), hi = std::max(hi, rows[h].key_hi);
        }
        const int64_t first = lo / KB, blocks = std::max<int64_t>(0, (hi + KB - 1) / KB - first);
        const int64_t blk_lo = first + blocks * c / chunks, blk_hi = first + blocks * (c + 1) / chunks;
        auto step = [&](int64_t blk, int64_t h) {
          const uint32_t* keys = src.keys(b, h, blk * KB, block_k.data());
          const uint16_t* values = src.values(b, h, blk * KB, block_v.data());
          for (int r0 = 0; r0 < rows[h].n; r0 += MR) tile(rows[h], r0, blk * KB, D, p.scale, keys, values);
        };
        // a thread's stretch of the cache in address order: position-major rows hold every
        // head of a position together, the packed layouts one head's positions
        if constexpr (std::is_same_v<Source, RowSource>) {
          for (int64_t blk = blk_lo; blk < blk_hi; ++blk)
            for (int64_t h = 0; h < Hkv; ++h) step(blk, h);
        } else {
          for (int64_t h = 0; h < Hkv; ++h)
            for (int64_t blk = blk_lo; blk < blk_hi; ++blk) step(blk, h);
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
    return;
  }
  if constexpr (std::is_same_v<Source, RowSource>) {
    // many queries (prefill) on rows: pack every block some query sees once, then as a cache
    // (a block more per head: a power-of-two stride would put every head on the same cache sets)
    const int64_t cap = NK + KB;
    auto packed_k = std::make_unique<uint32_t[]>(B * Hkv * cap * D / 2);
    auto packed_v = std::make_unique<uint16_t[]>(B * Hkv * cap * D);
    const PackedSource packed{packed_k.get(), packed_v.get(), Hkv, cap, D};
    int64_t seen_lo = Tk, seen_hi = 0;  // a sliding layer's window, not the whole cache
    for (int64_t i = 0; i < B * Tq; ++i) {
      int64_t lo, hi;
      visible_keys(p.pos[i] - p.k_offset, Tk, p.window, lo, hi);
      if (lo < hi) seen_lo = std::min(seen_lo, lo), seen_hi = std::max(seen_hi, hi);
    }
    const int64_t first = seen_lo / KB, blocks = std::max<int64_t>(0, (seen_hi + KB - 1) / KB - first);
    at::parallel_for(0, B * Hkv * blocks, 1, [&](int64_t begin, int64_t end) {
      for (int64_t item = begin; item < end; ++item) {
        const int64_t bh = item / blocks, b = bh / Hkv, h = bh % Hkv, jb = (first + item % blocks) * KB;
        src.keys(b, h, jb, packed_k.get() + packed.slot(b, h, jb) * D / 2);
        src.values(b, h, jb, packed_v.get() + packed.slot(b, h, jb) * D);
      }
    });
    attend(p, packed);
    return;
  } else {
    // many queries (prefill): work items of RB rows
    at::parallel_for(0, B * Hkv * items, 1, [&](int64_t begin, int64_t end) {
      Rows rows;
      std::vector<float> o(RB * D);
      for (int64_t item = begin; item < end; ++item) {
        const int64_t bh = item / items, b = bh / Hkv, h = bh % Hkv, first_row = item % items * RB;
        start(rows, b, h, first_row, (int)std::min<int64_t>(RB, rows_per_head - first_row), o.data());
        for (int64_t jb = rows.key_lo / KB * KB; jb < rows.key_hi; jb += KB)
          for (int r0 = 0; r0 < rows.n; r0 += MR)
            tile(rows, r0, jb, D, p.scale, src.keys(b, h, jb, nullptr), src.values(b, h, jb, nullptr));
        for (int r = 0; r < rows.n; ++r)
          finish_row(rows.o + r * D, rows.m[r], rows.l[r], sink(h, first_row + r), D,
                     dst(b, h, first_row + r));
      }
    });
  }
}

// The queries' side of a call (checked by check_queries) against `src`: bf16 [B, Tq, Hq, D].
template <typename Source>
at::Tensor run(const at::Tensor& q, const at::Tensor& sinks, const at::Tensor& positions,
               int64_t Hkv, int64_t Tk, int64_t k_offset, int64_t window, double scale,
               const Source& src) {
  auto qc = q.contiguous();
  auto sc = sinks.to(at::kFloat).contiguous();
  auto pc = positions.to(at::kLong).contiguous();
  auto out = at::empty(q.sizes(), q.options());
  attend(Problem{reinterpret_cast<const uint16_t*>(qc.data_ptr<at::BFloat16>()),
                 pc.data_ptr<int64_t>(), sc.data_ptr<float>(),
                 reinterpret_cast<uint16_t*>(out.data_ptr<at::BFloat16>()), q.size(0), q.size(1),
                 q.size(2), Hkv, q.size(3), Tk, k_offset, window, (float)(scale * kLog2e)},
         src);
  return out;
}

void check_queries(const at::Tensor& q, const at::Tensor& sinks, const at::Tensor& positions,
                   int64_t Hkv, const char* name) {
  TORCH_CHECK(q.dtype() == at::kBFloat16 && q.dim() == 4, name, ": q must be bf16 [B, Tq, Hq, D]");
  const int64_t D = q.size(3);
  TORCH_CHECK(D % (NDV * L) == 0 && D <= 256 && q.size(2) % Hkv == 0 &&
                  positions.numel() == q.size(0) * q.size(1) && sinks.numel() == q.size(2),
              name, ": head_dim must be a multiple of ", NDV * L,
              " (<= 256), heads a multiple of kv heads");
}
}  // namespace

// q [B, Tq, Hq, D], k, v [B, Tk, Hkv, D] bf16 (rows of k/v may be strided, the last two dims
// contiguous), sinks [Hq], q_positions int64 [B, Tq]. Key slot j is position k_offset + j; a
// query at p sees p - window < j <= p (window <= 0: no window); one that sees no key gets 0.
// D a multiple of NDV * L (64 on AVX-512, 16 on AVX2), at most 256. Returns bf16 [B, Tq, Hq, D].
at::Tensor attention_bf16(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                          const at::Tensor& sinks, const at::Tensor& q_positions, int64_t k_offset,
                          int64_t window, double scale) {
  TORCH_CHECK(k.dtype() == at::kBFloat16 && v.dtype() == at::kBFloat16, "attention_bf16: k, v must be bf16");
  TORCH_CHECK(k.dim() == 4 && v.sizes() == k.sizes() && k.size(0) == q.size(0) && k.size(3) == q.size(3),
              "attention_bf16: bad shapes");
  check_queries(q, sinks, q_positions, k.size(2), "attention_bf16");
  const int64_t D = q.size(3);
  TORCH_CHECK(k.stride(3) == 1 && k.stride(2) == D && v.stride(3) == 1 && v.stride(2) == D,
              "attention_bf16: k, v must be contiguous over (heads, head_dim)");
  const RowSource rows{reinterpret_cast<const uint16_t*>(k.data_ptr<at::BFloat16>()),
                       reinterpret_cast<const uint16_t*>(v.data_ptr<at::BFloat16>()),
                       k.stride(0), k.stride(1), v.stride(0), v.stride(1), k.size(1), D};
  return run(q, sinks, q_positions, k.size(2), k.size(1), k_offset, window, scale, rows);
}

namespace {
// a packed cache's source after checking its layout (kv_store_packed's and the kernel's)
PackedSource packed_cache(const at::Tensor& pk, const at::Tensor& pv, const char* name) {
  TORCH_CHECK(pk.dtype() == at::kBFloat16 && pv.dtype() == at::kBFloat16 && pk.is_contiguous() &&
                  pv.is_contiguous() && pk.dim() == 6 && pv.dim() == 5,
              name, ": the cache must be contiguous bf16 in the packed layouts");
  const int64_t B = pk.size(0), Hkv = pk.size(1), cap = pk.size(2) * G, D = pk.size(3) * 2;
  TORCH_CHECK(pk.size(4) == G && pk.size(5) == 2 && pv.size(0) == B && pv.size(1) == Hkv &&
                  pv.size(2) * 2 == cap && pv.size(3) == D && pv.size(4) == 2 && cap % 64 == 0,
              name, ": bad cache shapes");
  return PackedSource{reinterpret_cast<const uint32_t*>(pk.data_ptr<at::BFloat16>()),
                      reinterpret_cast<const uint16_t*>(pv.data_ptr<at::BFloat16>()), Hkv, cap, D};
}
}  // namespace

// The same over a cache in the packed layouts (kv_store_packed): pk bf16 [B, Hkv, cap/16, D/2,
// 16, 2], pv bf16 [B, Hkv, cap/2, D, 2], cap a multiple of 64; key slot j is position j, and
// the slots [0, length) are the keys (a query sees those up to its own position).
at::Tensor attention_bf16_packed(const at::Tensor& q, const at::Tensor& pk, const at::Tensor& pv,
                                 const at::Tensor& sinks, const at::Tensor& q_positions,
                                 int64_t length, int64_t window, double scale) {
  const PackedSource packed = packed_cache(pk, pv, "attention_bf16_packed");
  TORCH_CHECK(q.dim() == 4 && q.size(0) == pk.size(0) && q.size(3) == packed.D && length >= 0 &&
                  length <= packed.cap,
              "attention_bf16_packed: bad cache shapes");
  check_queries(q, sinks, q_positions, packed.Hkv, "attention_bf16_packed");
  return run(q, sinks, q_positions, packed.Hkv, length, 0, window, scale, packed);
}

// Writes k, v bf16 [B, T, Hkv, D] at positions int64 [B, T] into a packed cache (above).
void kv_store_packed(at::Tensor& pk, at::Tensor& pv, const at::Tensor& k, const at::Tensor& v,
                     const at::Tensor& positions) {
  const PackedSource packed = packed_cache(pk, pv, "kv_store_packed");
  const int64_t B = pk.size(0), Hkv = packed.Hkv, cap = packed.cap, D = packed.D;
  TORCH_CHECK(k.dtype() == at::kBFloat16 && v.dtype() == at::kBFloat16 && k.dim() == 4 &&
                  v.sizes() == k.sizes() && k.size(0) == B && k.size(2) == Hkv && k.size(3) == D &&
                  positions.numel() == B * k.size(1),
              "kv_store_packed: k, v must be bf16 [B, T, Hkv, D] matching the cache");
  auto kc = k.contiguous(), vc = v.contiguous();
  auto pc = positions.to(at::kLong).contiguous();
  const int64_t T = k.size(1);
  const int64_t* pos = pc.data_ptr<int64_t>();
  for (int64_t i = 0; i < B * T; ++i)
    TORCH_CHECK(pos[i] >= 0 && pos[i] < cap, "kv_store_packed: position ", pos[i], " outside the cache");
  const auto* ks = reinterpret_cast<const uint32_t*>(kc.data_ptr<at::BFloat16>());
  const auto* vs = reinterpret_cast<const uint16_t*>(vc.data_ptr<at::BFloat16>());
  auto* kd = reinterpret_cast<uint32_t*>(pk.data_ptr<at::BFloat16>());
  auto* vd = reinterpret_cast<uint16_t*>(pv.data_ptr<at::BFloat16>());
  at::parallel_for(0, B * T, 16, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t b = i / T, j = pos[i];
      for (int64_t h = 0; h < Hkv; ++h) {
        const uint32_t* kp = ks + (i * Hkv + h) * D / 2;
        const uint16_t* vp = vs + (i * Hkv + h) * D;
        uint32_t* kh = kd + packed.slot(b, h, j / G * G) * D / 2 + j % G;
        uint16_t* vh = vd + packed.slot(b, h, j / 2 * 2) * D + j % 2;
        for (int64_t dp = 0; dp < D / 2; ++dp) kh[dp * G] = kp[dp];
        for (int64_t d = 0; d < D; ++d) vh[2 * d] = vp[d];
      }
    }
  });
}

}  // namespace gptoss
