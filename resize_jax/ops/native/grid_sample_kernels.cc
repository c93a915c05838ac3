// Bilinear sampling of NHWC images at arbitrary points (resize_jax.ops.grid_sample), as XLA
// FFI custom calls on CPU.
//
// Why hand-written: XLA:CPU gathers each of a point's four corners separately, and for the
// derivative with respect to the grid computes the samples and their slopes along x and y
// in fusions that gather the corners again. One pass that reads each point's corners once
// and writes what is needed is faster on a quiet machine (figures in grid_sample.py). The
// reads are scattered over an image larger than the caches; benchmarks/bound_grid_sample.py
// measures the memory-traffic lower bound beside this kernel's time.
//
// The arithmetic is `linear_taps` / `_taps_slopes` of grid_sample.py, point by point:
//   images: f32[B, H, W, C]   grid: f32[B, h, w, 2] (x, y in [-1, 1], -1/+1 = centres of the
//   first/last pixel)   out: f32[B, h, w, C]
// grid_sample:        out = the bilinear samples.
// grid_sample_slopes: out, and d out / d x, d out / d y (the same shape), for the
//                     derivative with respect to the grid.
// `zeros` (attribute): 0 for "border" padding (clamped coordinates), 1 for "zeros" padding
// (taps outside the image read zero). A NaN coordinate gives NaN samples; an infinite one is
// clamped like any other far outside the image.
// Work is split over (batch, 8 output rows) across XLA's intra-op thread pool. With "border"
// padding a row goes one vector register of points at a time (taps in vector registers; the
// corners read with AVX-512 gathers, except where 4-float vectors per corner pair were
// faster: four points to a register with AVX-512, point by point without;
// software prefetch 16 points ahead into the first-level cache and 64 points ahead into the
// outer levels, across the task's rows), the rest of the row one scalar point at a time.

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#ifdef __AVX512F__
#include <immintrin.h>
#endif

#include "parallel_for.h"
#include "vector_width.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

using resize_jax::parallel_for;

// Taps of one coordinate along an axis of n pixels: indices (always inside [0, n-1]),
// weights, and the weights' derivatives with respect to the coordinate.
struct Taps {
  int64_t i0, i1;
  float w0, w1, d0, d1;
};

inline Taps linear_taps(float coord, int64_t n, bool zeros) {
  if (n == 1) return {0, 0, 1.f, 0.f, 0.f, 0.f};
  if (std::isnan(coord)) {
    const float nan = std::numeric_limits<float>::quiet_NaN();
    return {0, 0, nan, nan, nan, nan};
  }
  const float last = static_cast<float>(n - 1);
  const float scale = 0.5f * last;
  const float raw = (coord + 1.f) * scale;
  if (!zeros) {
    const float pos = raw < 0.f ? 0.f : (raw > last ? last : raw);
    float base = std::floor(pos);
    base = base > last - 1.f ? last - 1.f : base;
    const float frac = pos - base;
    const float slope = (raw >= 0.f && raw <= last) ? scale : 0.f;
    const int64_t i0 = static_cast<int64_t>(base);
    return {i0, i0 + 1, 1.f - frac, frac, -slope, slope};
  }
  const float hi = static_cast<float>(n + 1);
  const float pos = raw < -2.f ? -2.f : (raw > hi ? hi : raw);
  const float base = std::floor(pos);
  const float frac = pos - base;
  const int64_t i0 = static_cast<int64_t>(base), i1 = i0 + 1;
  const bool in0 = i0 >= 0 && i0 <= n - 1, in1 = i1 >= 0 && i1 <= n - 1;
  const float slope = (raw > -2.f && raw < hi) ? scale : 0.f;
  auto clip = [n](int64_t i) { return i < 0 ? 0 : (i > n - 1 ? n - 1 : i); };
  return {clip(i0), clip(i1), in0 ? 1.f - frac : 0.f, in1 ? frac : 0.f, in0 ? -slope : 0.f,
          in1 ? slope : 0.f};
}

constexpr int64_t kPrefetchDistance = 8;  // points
constexpr int64_t kRowsPerTask = 8;

struct Shapes {
  int64_t batch, height, width, channels, out_height, out_width;
};

ffi::Error check_shapes(const ffi::AnyBuffer& images, const ffi::AnyBuffer& grid, Shapes* s) {
  auto id = images.dimensions();
  auto gd = grid.dimensions();
  if (images.element_type() != ffi::DataType::F32 || id.size() != 4) {
    return ffi::Error::InvalidArgument("images must be a rank-4 f32 array");
  }
  if (grid.element_type() != ffi::DataType::F32 || gd.size() != 4 || gd[3] != 2 ||
      gd[0] != id[0]) {
    return ffi::Error::InvalidArgument("grid must be f32[B, h, w, 2] with the images' batch");
  }
  *s = {id[0], id[1], id[2], id[3], gd[1], gd[2]};
  return ffi::Error::Success();
}

// ---- kBlock points at a time ("border" padding) ------------------------------------------

// Points per block: one vector register of floats (vector_width.h): 16 with AVX-512, 8 with
// AVX2, 4 otherwise.
constexpr int kBlock = resize_jax::kVectorLanes;
// Prefetch distances in blocks: 16 and 64 points ahead.
constexpr int kNearBlocks = 16 / kBlock;
constexpr int kFarBlocks = 64 / kBlock;
typedef float vf __attribute__((vector_size(kBlock * sizeof(float))));
typedef int32_t vi __attribute__((vector_size(kBlock * sizeof(int32_t))));

// base[idx[l]] for each lane l.
inline vf gather(const float* base, vi idx) {
#ifdef __AVX512F__
  return reinterpret_cast<vf>(_mm512_i32gather_ps(reinterpret_cast<__m512i>(idx), base, 4));
#else
  vf v;
  for (int l = 0; l < kBlock; ++l) v[l] = base[idx[l]];
  return v;
#endif
}

// The kBlock points' C channels, one vector per channel, written as [kBlock, C]. One and three
// channels are interleaved in registers: element by element, the stores of three channels
// took half the time of a block whose image is in cache.
template <int C>
inline void store_interleaved(float* dst, const vf (&channels)[C]) {
  if constexpr (C == 1) {
    std::memcpy(dst, &channels[0], sizeof(vf));
  } else if constexpr (C == 3) {
    // Output vector k holds elements j = kBlock k .. kBlock (k + 1) - 1 of the [kBlock, 3]
    // block: channel j % 3 of point j / 3. First the two first channels' elements into
    // place, then the third's.
    static const struct Masks {
      vi first[3], second[3];
      Masks() {
        for (int k = 0; k < 3; ++k) {
          for (int i = 0; i < kBlock; ++i) {
            const int j = kBlock * k + i, point = j / 3, channel = j % 3;
            first[k][i] = channel == 1 ? kBlock + point : point;
            second[k][i] = channel == 2 ? kBlock + point : i;
          }
        }
      }
    } masks;
    for (int k = 0; k < 3; ++k) {
      const vf two = __builtin_shuffle(channels[0], channels[1], masks.first[k]);
      const vf all = __builtin_shuffle(two, channels[2], masks.second[k]);
      std::memcpy(dst + kBlock * k, &all, sizeof(vf));
    }
  } else {
    for (int l = 0; l < kBlock; ++l) {
      for (int c = 0; c < C; ++c) dst[l * C + c] = channels[c][l];
    }
  }
}

// linear_taps' "border" case for kBlock coordinates on an axis of n >= 2 pixels, none NaN: the
// first index (the second is the next pixel), the second tap's weight (the first's is
// 1 - it) and its derivative (the first's is minus it).
struct BorderTaps {
  vi i0;
  vf w1, d1;
};

inline BorderTaps border_taps(vf coord, int64_t n) {
  const float last = static_cast<float>(n - 1);
  const vf zero{}, last_v = zero + last, scale_v = zero + 0.5f * last;
  const vf raw = (coord + 1.f) * scale_v;
  vf pos = raw < zero ? zero : raw;
  pos = pos > last_v ? last_v : pos;
  vi base = __builtin_convertvector(pos, vi);  // pos >= 0: truncation is the floor.
  const vi top = vi{} + static_cast<int32_t>(n - 2);
  base = base > top ? top : base;
  const vf frac = pos - __builtin_convertvector(base, vf);
  const vf slope = ((raw >= zero) & (raw <= last_v)) ? scale_v : zero;
  return {base, frac, slope};
}

// The two x taps' C channels of kBlock points in one row: 2·C contiguous floats from each
// offset, flattened as [tap][channel]. With AVX-512, C gathers of 8 float pairs per half block,
// whose even and odd floats are two values each: half the element loads of one 16-lane
// gather per value. Measured single-threaded (batch 16, 224² points, 3 channels): 8.4-10.0
// → 4.5-5.2 ms on 800² images, 3.8-4.0 → 3.5 ms on 100² ones (in cache); the element loads
// that miss the cache, several per line, had bounded the scattered reads.
template <int C>
inline void load_taps(const float* image, vi offsets, vf (&taps)[2][C]) {
#ifdef __AVX512F__
  if constexpr (C <= 4) {
    const __m512i all = reinterpret_cast<__m512i>(offsets);
    const __m256i lo = _mm512_castsi512_si256(all), hi = _mm512_extracti64x4_epi64(all, 1);
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26,
                                           28, 30);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    vf* flat = &taps[0][0];
    for (int k = 0; k < C; ++k) {
      const __m256i step = _mm256_set1_epi32(2 * k);
      const __m512 a = _mm512_castpd_ps(_mm512_i32gather_pd(_mm256_add_epi32(lo, step), image, 4));
      const __m512 b = _mm512_castpd_ps(_mm512_i32gather_pd(_mm256_add_epi32(hi, step), image, 4));
      flat[2 * k] = reinterpret_cast<vf>(_mm512_permutex2var_ps(a, even, b));
      flat[2 * k + 1] = reinterpret_cast<vf>(_mm512_permutex2var_ps(a, odd, b));
    }
    return;
  }
#endif
  for (int c = 0; c < C; ++c) {
    taps[0][c] = gather(image, offsets + c);
    taps[1][c] = gather(image, offsets + (C + c));
  }
}

template <int C>
inline void load_corners(const float* image, vi c00, vi c10, vf (&corners)[2][2][C]) {
  load_taps<C>(image, c00, corners[0]);
  load_taps<C>(image, c10, corners[1]);
}

// Whether the block path applies: "border" padding, both axes longer than one pixel, and an
// image's element offsets in int32.
inline bool blocks_apply(const Shapes& s, bool zeros) {
  return !zeros && s.height > 1 && s.width > 1 &&
         s.height * s.width * s.channels < (int64_t{1} << 31);
}

// The x and y coordinates of points [p, p + kBlock).
inline void coordinates(const float* grid, int64_t p, vf& gx, vf& gy) {
  vf a, b;
  std::memcpy(&a, grid + 2 * p, sizeof(a));
  std::memcpy(&b, grid + 2 * p + kBlock, sizeof(b));
  vi even;
  for (int l = 0; l < kBlock; ++l) even[l] = 2 * l;
  gx = __builtin_shuffle(a, b, even);
  gy = __builtin_shuffle(a, b, even + 1);
}

// Prefetches, with the given locality (3: into every cache level, 1: into the outer ones),
// the top-left corners of the points [q, q + kBlock) and the pixels below them, when those
// points end by `end` (the end of the task's rows of one image: a block may span two rows).
template <int kChannels, int kLocality>
__attribute__((always_inline)) inline void prefetch_block(const Shapes& s, const float* image,
                                                          const float* grid, int64_t q,
                                                          int64_t end, int32_t line) {
  if (q + kBlock > end) return;
  vf gx, gy;
  coordinates(grid, q, gx, gy);
  // Clamped to [-1, 1], NaN to -1: any address inside the image will do.
  const vf bound = vf{} + 1.f;
  gx = gx >= -bound ? (gx <= bound ? gx : bound) : -bound;
  gy = gy >= -bound ? (gy <= bound ? gy : bound) : -bound;
  const vi ahead = border_taps(gy, s.height).i0 * line + border_taps(gx, s.width).i0 * kChannels;
  for (int l = 0; l < kBlock; ++l) {
    __builtin_prefetch(image + ahead[l], 0, kLocality);
    __builtin_prefetch(image + ahead[l] + line, 0, kLocality);
  }
}

// ---- Point by point, without AVX-512 ---------------------------------------------------------
// Without AVX-512 a gather is emulated with one scalar load and one insertion per lane: 12
// per point with three channels, so that sampling images that fit in the caches took 60 % of
// the time of ones that do not (AVX2, 2 threads, 16 × 100² or 800² → 224²: 6.4 against
// 10.9 ms). Here each point reads its two rows' x-tap pairs as four 4-float vectors (C <= 4
// channels, then 4 - C floats beyond them that it does not use) and blends all channels at
// once. Paired calls on an AVX2 machine (16 images → 224² on a saliency grid, 2 threads, median
// ratio of 20-40 pairs): three channels 1.5-1.6x faster on 100² images, 1.10-1.14x on 800²
// ones (whose time is then nearly all memory: the loads alone took 95 % of it), four channels
// 1.86x and 1.14x; with the slopes 1.27x and 1.07x (three), 1.63x and 1.04x (four).
typedef float v4 __attribute__((vector_size(4 * sizeof(float))));

inline v4 load4(const float* p) {
  v4 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

// Whether every point's 4-float loads from the lower row (`lower`: its x0 offsets) stay inside
// the image: only points at the last pixels would read past its end.
template <int C>
inline bool point_rows_apply(vi lower, const Shapes& s) {
  const int32_t limit = static_cast<int32_t>(s.height * s.width * C - C - 4);
  for (int l = 0; l < kBlock; ++l) {
    if (lower[l] > limit) return false;
  }
  return true;
}

// Writes the first C floats of v at dst: all four when the next point's store will overwrite
// the rest (`more`), else only C.
template <int C>
inline void store_point(float* dst, v4 v, bool more) {
  if (more || C == 4) {
    std::memcpy(dst, &v, sizeof(v));
  } else {
    std::memcpy(dst, &v, C * sizeof(float));
  }
}

// The kBlock points whose top-left corners are at `c00`, with taps tx, ty: their samples (with
// kSlopes, and their slopes) written as [kBlock, C] at out (slope_x, slope_y).
template <int C, bool kSlopes>
inline void sample_points(const float* image, int32_t line, vi c00, const BorderTaps& tx,
                          const BorderTaps& ty, float* out, float* slope_x, float* slope_y) {
  for (int l = 0; l < kBlock; ++l) {
    const float* upper = image + c00[l];
    const float* lower = upper + line;
    const v4 v00 = load4(upper), v01 = load4(upper + C);
    const v4 v10 = load4(lower), v11 = load4(lower + C);
    const v4 wx1 = v4{} + tx.w1[l], wy1 = v4{} + ty.w1[l];
    const v4 wx0 = 1.f - wx1, wy0 = 1.f - wy1;
    const v4 top = wx0 * v00 + wx1 * v01, bottom = wx0 * v10 + wx1 * v11;
    const bool more = l + 1 < kBlock;
    store_point<C>(out + l * C, wy0 * top + wy1 * bottom, more);
    if constexpr (kSlopes) {
      const v4 dx1 = v4{} + tx.d1[l], dy1 = v4{} + ty.d1[l];
      store_point<C>(slope_x + l * C,
                     wy0 * (-dx1 * v00 + dx1 * v01) + wy1 * (-dx1 * v10 + dx1 * v11), more);
      store_point<C>(slope_y + l * C, -dy1 * top + dy1 * bottom, more);
    }
  }
}

#ifdef __AVX512F__
// ---- Four points to a register, with AVX-512 ---------------------------------------------
// Zen 4's AVX-512 gathers cost more than the loads they replace: with three or four channels
// each point's x-tap pairs are read as 4-float vectors instead, as without AVX-512
// (sample_points), and four points share a register. Paired calls on an AMD EPYC Zen 4
// (16 images → 224² on a saliency grid, 2 threads, median ratio of 60 pairs against the
// gathers): three channels 0.86x the time on 100² images (in cache), 0.94-0.98x on 800²
// ones, 0.79x on 1600² ones; four channels 0.67x, 0.80x, 0.60x; with the slopes, three
// channels 0.76x, 0.90x, 0.74x and four 0.71x, 0.80x, 0.67x. Two channels kept the gathers
// (1.02-1.09x).

// The 4-float vectors at a, b, c, d, one per 128-bit lane.
inline __m512 load_quad(const float* a, const float* b, const float* c, const float* d) {
  __m512 v = _mm512_castps128_ps512(_mm_loadu_ps(a));
  v = _mm512_insertf32x4(v, _mm_loadu_ps(b), 1);
  v = _mm512_insertf32x4(v, _mm_loadu_ps(c), 2);
  return _mm512_insertf32x4(v, _mm_loadu_ps(d), 3);
}

// Writes the first C (3 or 4) floats of each 128-bit lane of v at dst, packed: all 16 floats
// when the next store will overwrite those beyond the 4 C (`more`), else only 4 C.
template <int C>
inline void store_quad(float* dst, __m512 v, bool more) {
  static_assert(C == 3 || C == 4);
  if constexpr (C == 4) {
    _mm512_storeu_ps(dst, v);
  } else {
    const __m512 packed = _mm512_maskz_compress_ps(0x7777, v);
    if (more) {
      _mm512_storeu_ps(dst, packed);
    } else {
      _mm512_mask_storeu_ps(dst, 0x0fff, packed);
    }
  }
}

// As sample_points, four points at a time.
template <int C, bool kSlopes>
inline void sample_quads(const float* image, int32_t line, vi c00, const BorderTaps& tx,
                         const BorderTaps& ty, float* out, float* slope_x, float* slope_y) {
  const __m512i quarter = _mm512_srli_epi32(
      _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), 2);
  const __m512 one = _mm512_set1_ps(1.f);
  for (int q = 0; q < kBlock / 4; ++q) {
    // Lane l of a point weight: its value for point 4 q + l / 4.
    const __m512i spread = _mm512_add_epi32(quarter, _mm512_set1_epi32(4 * q));
    auto point_weight = [&](vf w) {
      return _mm512_permutexvar_ps(spread, reinterpret_cast<__m512>(w));
    };
    const float* u[4];
    for (int k = 0; k < 4; ++k) u[k] = image + c00[4 * q + k];
    const __m512 v00 = load_quad(u[0], u[1], u[2], u[3]);
    const __m512 v01 = load_quad(u[0] + C, u[1] + C, u[2] + C, u[3] + C);
    const __m512 v10 = load_quad(u[0] + line, u[1] + line, u[2] + line, u[3] + line);
    const __m512 v11 =
        load_quad(u[0] + line + C, u[1] + line + C, u[2] + line + C, u[3] + line + C);
    const __m512 wx1 = point_weight(tx.w1), wy1 = point_weight(ty.w1);
    const __m512 wx0 = _mm512_sub_ps(one, wx1), wy0 = _mm512_sub_ps(one, wy1);
    const __m512 top = _mm512_add_ps(_mm512_mul_ps(wx0, v00), _mm512_mul_ps(wx1, v01));
    const __m512 bottom = _mm512_add_ps(_mm512_mul_ps(wx0, v10), _mm512_mul_ps(wx1, v11));
    const bool more = q + 1 < kBlock / 4;
    store_quad<C>(out + 4 * q * C,
                  _mm512_add_ps(_mm512_mul_ps(wy0, top), _mm512_mul_ps(wy1, bottom)), more);
    if constexpr (kSlopes) {
      const __m512 dx1 = point_weight(tx.d1), dy1 = point_weight(ty.d1);
      // As sample_points: -dx1 v00 + dx1 v01 along each row.
      const __m512 minus_dx1 = _mm512_sub_ps(_mm512_setzero_ps(), dx1);
      const __m512 across_top =
          _mm512_add_ps(_mm512_mul_ps(minus_dx1, v00), _mm512_mul_ps(dx1, v01));
      const __m512 across_bottom =
          _mm512_add_ps(_mm512_mul_ps(minus_dx1, v10), _mm512_mul_ps(dx1, v11));
      store_quad<C>(slope_x + 4 * q * C,
                    _mm512_add_ps(_mm512_mul_ps(wy0, across_top),
                                  _mm512_mul_ps(wy1, across_bottom)),
                    more);
      const __m512 minus_dy1 = _mm512_sub_ps(_mm512_setzero_ps(), dy1);
      store_quad<C>(slope_y + 4 * q * C,
                    _mm512_add_ps(_mm512_mul_ps(minus_dy1, top), _mm512_mul_ps(dy1, bottom)),
                    more);
    }
  }
}
#endif

// Whether a block of C channels reads each corner pair as one 4-float vector (sample_quads
// with AVX-512, sample_points without) instead of gathering the corners: the channel counts
// where that was measured faster (the notes above each).
template <int C, bool kSlopes>
constexpr bool reads_pairs() {
#ifdef __AVX512F__
  return C >= 3 && C <= 4;
#else
  return C >= (kSlopes ? 3 : 2) && C <= 4;
#endif
}

// Points [p, p + kBlock) of one image (`task_end`: the end of the task's points, as far as
// the prefetches may look ahead): the taps of all of them in vector registers, then each corner
// of each channel read with one gather and the results interleaved in registers (for the
// channel counts of `reads_pairs`, sample_quads or sample_points instead). Returns false,
// having done nothing, when a coordinate is NaN.
template <int kChannels, bool kSlopes>
inline bool sample_block(const Shapes& s, const float* image, const float* grid, int64_t p,
                         int64_t task_end, float* out, float* slope_x, float* slope_y) {
  constexpr int C = kChannels;
  const int32_t line = static_cast<int32_t>(s.width * C);
  // The reads are scattered over an image larger than the caches: start fetching the corners
  // of the points 16 ahead into the first-level cache now, and of those 64 ahead into the
  // outer levels, which keep more misses in flight than the first-level cache (measured with
  // 16-point blocks). Against one prefetch two blocks ahead, shortest of 25 calls in 3
  // alternating rounds, 2 threads: 16 images 800² sampled at 224² on a saliency grid
  // 7.1-7.2 → 5.6-6.5 ms, 4 images 1792² on the uniform grid 2.3-2.6 → 1.5-1.8 ms. On an AVX2
  // machine other distances (near 8 or 32, far 32 to 256 points, or no far one) took
  // 0.97-1.06x the time of these (paired calls).
  prefetch_block<C, 3>(s, image, grid, p + kNearBlocks * kBlock, task_end, line);
  prefetch_block<C, 1>(s, image, grid, p + kFarBlocks * kBlock, task_end, line);
  vf gx, gy;
  coordinates(grid, p, gx, gy);
  const vi nan = (gx != gx) | (gy != gy);
  for (int l = 0; l < kBlock; ++l) {
    if (nan[l]) return false;
  }
  const BorderTaps tx = border_taps(gx, s.width), ty = border_taps(gy, s.height);
  const vi c00 = ty.i0 * line + tx.i0 * C, c10 = c00 + line;
  if constexpr (reads_pairs<C, kSlopes>()) {
    if (point_rows_apply<C>(c10, s)) {
      float* const block_dx = kSlopes ? slope_x + p * C : nullptr;
      float* const block_dy = kSlopes ? slope_y + p * C : nullptr;
#ifdef __AVX512F__
      sample_quads<C, kSlopes>(image, line, c00, tx, ty, out + p * C, block_dx, block_dy);
#else
      sample_points<C, kSlopes>(image, line, c00, tx, ty, out + p * C, block_dx, block_dy);
#endif
      return true;
    }
  }
  const vf one = vf{} + 1.f, wx1 = tx.w1, wx0 = one - wx1, wy1 = ty.w1, wy0 = one - wy1;
  vf sample[C], dx[C], dy[C];
  vf corners[2][2][C];  // [row][x tap][channel]
  load_corners<C>(image, c00, c10, corners);
  for (int c = 0; c < C; ++c) {
    const vf v00 = corners[0][0][c], v01 = corners[0][1][c];
    const vf v10 = corners[1][0][c], v11 = corners[1][1][c];
    const vf top = wx0 * v00 + wx1 * v01, bottom = wx0 * v10 + wx1 * v11;
    sample[c] = wy0 * top + wy1 * bottom;
    if constexpr (kSlopes) {
      dx[c] = wy0 * (-tx.d1 * v00 + tx.d1 * v01) + wy1 * (-tx.d1 * v10 + tx.d1 * v11);
      dy[c] = -ty.d1 * top + ty.d1 * bottom;
    }
  }
  store_interleaved<C>(out + p * C, sample);
  if constexpr (kSlopes) {
    store_interleaved<C>(slope_x + p * C, dx);
    store_interleaved<C>(slope_y + p * C, dy);
  }
  return true;
}

// Samples (with kSlopes, and their derivatives) of every point.
// kChannels > 0 fixes the channel count at compile time (2-3x faster for the usual 1-4
// channels, whose loop the compiler then unrolls); 0 reads it from `s`.
template <int kChannels, bool kSlopes>
void sample(ffi::ThreadPool& pool, const Shapes& s, const float* images, const float* grid,
            bool zeros, float* out, float* slope_x, float* slope_y) {
  const int64_t channels = kChannels > 0 ? kChannels : s.channels;
  const int64_t height = s.height, width = s.width, out_height = s.out_height;
  const int64_t out_width = s.out_width;
  const bool blocks = blocks_apply(s, zeros);
  // Tasks of kRowsPerTask consecutive output rows of one image: a thread then reads one
  // region of the image, its successive rows a few input rows apart, instead of rows handed
  // out one at a time alternately to the threads. Alternating runs, batch 16, 800² → 224²,
  // 2 threads, shortest call with the grid: forward 8.5-9.1 → 7.3-8.6 ms, with the
  // derivatives 11.3-13.0 → 10.4-10.5 ms.
  const int64_t chunks = (out_height + kRowsPerTask - 1) / kRowsPerTask;
  parallel_for(pool, s.batch * chunks, [=](int64_t task) {
    const int64_t b = task / chunks, row0 = (task % chunks) * kRowsPerTask;
    const float* image = images + b * height * width * channels;
    const int64_t row_end = std::min(out_height, row0 + kRowsPerTask);
    const int64_t task_begin = (b * out_height + row0) * out_width;
    const int64_t task_end = (b * out_height + row_end) * out_width;
    if constexpr (kChannels > 0) {
      // The blocks' prefetches run ahead across the task's rows, and the task's first blocks,
      // which no earlier block fetches, are requested here: at 224 points a row, stopping the
      // prefetches at each row's end had left 4 of its 14 blocks without the far one. Seven
      // alternating pairs of runs, 16 images 800² → 224² on a saliency grid, shortest of 25
      // calls: the sampling alone 3.3-4.7 → 2.7-3.5 ms, with the grid 3.9-5.6 → 3.3-4.9 ms.
      if (blocks) {
        const int32_t line = static_cast<int32_t>(width * kChannels);
        prefetch_block<kChannels, 3>(s, image, grid, task_begin, task_end, line);
        for (int k = 1; k < kFarBlocks; ++k) {
          prefetch_block<kChannels, 1>(s, image, grid, task_begin + k * kBlock, task_end, line);
        }
      }
    }
    for (int64_t row = row0; row < row_end; ++row) {
      const int64_t first = (b * out_height + row) * out_width;  // the row's first point
      int64_t p = first;
      if constexpr (kChannels > 0) {
        if (blocks) {
          for (; p + kBlock <= first + out_width; p += kBlock) {
            if (!sample_block<kChannels, kSlopes>(s, image, grid, p, task_end, out, slope_x,
                                                  slope_y)) {
              break;
            }
          }
        }
      }
      for (; p < first + out_width; ++p) {
        // The reads are scattered over an image that does not fit in cache: start fetching a
        // later point's top-left corner and the row below it now (~10 % faster, measured). Its
        // taps are computed again when its turn comes: a few flops, against a cache miss saved.
        if (p + kPrefetchDistance < first + out_width) {
          const Taps ax = linear_taps(grid[2 * (p + kPrefetchDistance)], width, zeros);
          const Taps ay = linear_taps(grid[2 * (p + kPrefetchDistance) + 1], height, zeros);
          const float* ahead = image + (ay.i0 * width + ax.i0) * channels;
          __builtin_prefetch(ahead);
          __builtin_prefetch(ahead + width * channels);
        }
        const Taps tx = linear_taps(grid[2 * p], width, zeros);
        const Taps ty = linear_taps(grid[2 * p + 1], height, zeros);
        const float* c00 = image + (ty.i0 * width + tx.i0) * channels;
        const float* c01 = image + (ty.i0 * width + tx.i1) * channels;
        const float* c10 = image + (ty.i1 * width + tx.i0) * channels;
        const float* c11 = image + (ty.i1 * width + tx.i1) * channels;
        float* o = out + p * channels;
        for (int64_t c = 0; c < channels; ++c) {
          const float top = tx.w0 * c00[c] + tx.w1 * c01[c];
          const float bottom = tx.w0 * c10[c] + tx.w1 * c11[c];
          o[c] = ty.w0 * top + ty.w1 * bottom;
          if constexpr (kSlopes) {
            slope_x[p * channels + c] = ty.w0 * (tx.d0 * c00[c] + tx.d1 * c01[c]) +
                                        ty.w1 * (tx.d0 * c10[c] + tx.d1 * c11[c]);
            slope_y[p * channels + c] = ty.d0 * top + ty.d1 * bottom;
          }
        }
      }
    }
  });
}

template <bool kSlopes>
void sample_any(ffi::ThreadPool& pool, const Shapes& s, const float* images, const float* grid,
                bool zeros, float* out, float* slope_x, float* slope_y) {
  switch (s.channels) {
    case 1:
      return sample<1, kSlopes>(pool, s, images, grid, zeros, out, slope_x, slope_y);
    case 2:
      return sample<2, kSlopes>(pool, s, images, grid, zeros, out, slope_x, slope_y);
    case 3:
      return sample<3, kSlopes>(pool, s, images, grid, zeros, out, slope_x, slope_y);
    case 4:
      return sample<4, kSlopes>(pool, s, images, grid, zeros, out, slope_x, slope_y);
    default:
      return sample<0, kSlopes>(pool, s, images, grid, zeros, out, slope_x, slope_y);
  }
}

ffi::Error GridSample(ffi::ThreadPool pool, ffi::AnyBuffer images, ffi::AnyBuffer grid,
                      ffi::Result<ffi::AnyBuffer> out, int32_t zeros) {
  Shapes s;
  if (auto error = check_shapes(images, grid, &s); error.failure()) return error;
  sample_any<false>(pool, s, reinterpret_cast<const float*>(images.untyped_data()),
                    reinterpret_cast<const float*>(grid.untyped_data()), zeros != 0,
                    reinterpret_cast<float*>(out->untyped_data()), nullptr, nullptr);
  return ffi::Error::Success();
}

ffi::Error GridSampleSlopes(ffi::ThreadPool pool, ffi::AnyBuffer images, ffi::AnyBuffer grid,
                            ffi::Result<ffi::AnyBuffer> out, ffi::Result<ffi::AnyBuffer> slope_x,
                            ffi::Result<ffi::AnyBuffer> slope_y, int32_t zeros) {
  Shapes s;
  if (auto error = check_shapes(images, grid, &s); error.failure()) return error;
  sample_any<true>(pool, s, reinterpret_cast<const float*>(images.untyped_data()),
         reinterpret_cast<const float*>(grid.untyped_data()), zeros != 0,
         reinterpret_cast<float*>(out->untyped_data()),
         reinterpret_cast<float*>(slope_x->untyped_data()),
         reinterpret_cast<float*>(slope_y->untyped_data()));
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(resize_jax_grid_sample, GridSample,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<int32_t>("zeros"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(resize_jax_grid_sample_slopes, GridSampleSlopes,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<int32_t>("zeros"));
