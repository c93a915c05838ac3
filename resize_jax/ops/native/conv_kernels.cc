// Direct stride-1 convolutions for the narrow layers of the learned resizer, as XLA FFI
// custom calls on CPU.
//
// Why hand-written: XLA:CPU's convolutions run the learned resizer's layers (3 -> 16 and
// 16 -> 3 channels, 7x7; 16 -> 16, 1x1 and 3x3) at 10-25 % of the machine's f32 matmul rate,
// and its YNNPACK path only takes layers wider than 16 channels. These kernels keep one
// vector register of output channels (or input channels) per accumulator, so every FMA does
// useful work whatever the other channel count is.
//
// All arrays are dense row-major f32. The input is already zero-padded by the caller, so the
// kernels never branch on borders:
//   xpad: [B, H + K - 1, W + K - 1, CI]   w: [K, K, CI, CO]   out: [B, H, W, CO]
// Three kernels cover forward, input gradient and weight gradient of such a convolution:
//   conv_vec_out:   out = conv(xpad, w), vectorised over CO (CO % 16 == 0); its variant
//                   conv_vec_out_bias_leaky adds a bias and applies a leaky ReLU on the way out,
//                   and conv_vec_out_bias_leaky_resized also emits that output resized by an
//                   integer factor and its per-channel sums and sums of squares;
//                   conv_vec_out_padded adds a residual after the activation and writes the
//                   output zero-padded, ready for the next layer (the learned resizer's
//                   inference, BatchNorm folded into the weights).
//   conv_vec_in:    out = conv(xpad, w), vectorised over CI (CI % 16 == 0, any CO);
//                   w is passed as wt: [K, K, CO, CI].
//   conv_weight_grad: dw[ky, kx, ci, co] = sum_{b,y,x} xpad[b, y+ky, x+kx, ci] g[b, y, x, co],
//                   vectorised over CO (CO % 16 == 0), one sum per group of examples.
// Two more run the learned resizer's head (a conv + bias + leaky ReLU, then a 1x1 one, whose
// output is needed only resized and through its statistics) from the unpadded input:
//   conv_head_resized (and _keep_first, which also writes the first layer's output), and
//   conv_head_resized_grad: both layers' parameter gradients in one pass.
// Work is split over (batch, row) across XLA's intra-op thread pool.

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "xla/ffi/api/ffi.h"
#include "parallel_for.h"
#include "vector_width.h"

namespace ffi = xla::ffi;

namespace {

using resize_jax::parallel_for;

// One vector register of floats (vector_width.h): 16 lanes with AVX-512, 8 with AVX2, 4
// otherwise.
using resize_jax::kVectorRegisters;
constexpr int kLanes = resize_jax::kVectorLanes;
constexpr bool kManyRegisters = kVectorRegisters >= 32;
// The vectorised channel counts must be multiples of this (the Python side's condition),
// which every kLanes divides.
constexpr int kChannelMultiple = 16;
static_assert(kChannelMultiple % kLanes == 0);
typedef float vec __attribute__((vector_size(kLanes * sizeof(float))));

inline vec load(const float* p) {
  vec v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
inline void store(float* p, vec v) { std::memcpy(p, &v, sizeof(v)); }
inline float hsum(vec v) {
  float s = 0.f;
  for (int i = 0; i < kLanes; ++i) s += v[i];
  return s;
}

struct Geometry {
  int64_t batch, height, width, k, ci, co;
  int64_t padded_width() const { return width + k - 1; }
  int64_t padded_height() const { return height + k - 1; }
};

// Optional epilogue of conv_vec_out: out = leaky_relu(conv + bias, slope), applied to the
// accumulators before they are stored, so the layer's output is written once instead of
// being written, read and written again by a separate elementwise pass.
struct Epilogue {
  const float* bias = nullptr;  // [CO]; nullptr: no epilogue.
  float slope = 1.f;
  // The output row's pixels of an array added after the activation (a residual connection),
  // with the output's pixel stride; nullptr: none.
  const float* residual = nullptr;
};

// ---- conv_vec_out -------------------------------------------------------------------------

// One output row segment of XB pixels, CB vectors of output channels from cob. CI > 0 is the
// input channel count as a constant (CI == 0: read from g), so the XB pixels' inputs are
// constant displacements from one address: with a runtime count GCC keeps one register per
// pixel and, short of registers, reloads some from the stack in the inner loop, which then
// waits on the load ports rather than the FMAs. Without predictive commoning: with 3 channels
// it carries the inputs that neighbouring pixels share across iterations in registers, spills
// them to the stack and makes the loop slower instead of saving loads (it helps vec_in_block,
// below).
template <int XB, int CI, int CB>
__attribute__((optimize("no-predictive-commoning"))) inline void vec_out_block(
    const float* xrow0, const float* w, float* out, const Geometry& g, const Epilogue& e,
    int64_t x0, int64_t cob) {
  const int64_t ci = CI > 0 ? CI : g.ci;
  const int64_t kci = g.k * ci;
  const int64_t row_stride = g.padded_width() * ci;
  vec acc[XB][CB];
  for (int j = 0; j < XB; ++j)
    for (int c = 0; c < CB; ++c) acc[j][c] = vec{};
  for (int64_t ky = 0; ky < g.k; ++ky) {
    const float* xrow = xrow0 + ky * row_stride + x0 * ci;
    const float* wk = w + ky * kci * g.co + cob;
    for (int64_t m = 0; m < kci; ++m) {
      vec wv[CB];
      for (int c = 0; c < CB; ++c) wv[c] = load(wk + m * g.co + c * kLanes);
      for (int j = 0; j < XB; ++j) {
        const float xv = xrow[j * ci + m];
        for (int c = 0; c < CB; ++c) acc[j][c] += xv * wv[c];
      }
    }
  }
  for (int c = 0; c < CB; ++c) {
    const int64_t co = cob + c * kLanes;
    if (e.bias != nullptr) {
      const vec bias = load(e.bias + co);
      for (int j = 0; j < XB; ++j) {
        const vec y = acc[j][c] + bias;
        acc[j][c] = y >= 0 ? y : y * e.slope;
      }
    }
    if (e.residual != nullptr) {
      for (int j = 0; j < XB; ++j) acc[j][c] += load(e.residual + (x0 + j) * g.co + co);
    }
    for (int j = 0; j < XB; ++j) store(out + (x0 + j) * g.co + co, acc[j][c]);
  }
}

template <int CI>
void vec_out_row(const float* xrow0, const float* w, float* orow, const Geometry& g,
                 const Epilogue& e) {
  // XB x CB accumulators, CB weight vectors and the broadcast input in registers. With 32
  // registers, 12 pixels of one vector (measured best with AVX-512); with 16, 6 pixels of
  // two vectors, which load 8 values per 12 FMAs instead of 12 pixels' 13.
  constexpr int CB = kManyRegisters ? 1 : 2;
  constexpr int XB = kManyRegisters ? 12 : 6;
  static_assert(kChannelMultiple % (CB * kLanes) == 0);
  for (int64_t cob = 0; cob < g.co; cob += CB * kLanes) {
    int64_t x = 0;
    for (; x + XB <= g.width; x += XB) vec_out_block<XB, CI, CB>(xrow0, w, orow, g, e, x, cob);
    for (; x + 4 <= g.width; x += 4) vec_out_block<4, CI, CB>(xrow0, w, orow, g, e, x, cob);
    for (; x < g.width; ++x) vec_out_block<1, CI, CB>(xrow0, w, orow, g, e, x, cob);
  }
}

// One output row: xrow0 is the first of the K padded input rows it reads, orow the row. The
// learned resizer's input channel counts (3 and 16) are compiled as constants.
void conv_vec_out_row(const float* xrow0, const float* w, float* orow, const Geometry& g,
                      const Epilogue& e) {
  switch (g.ci) {
    case 3: vec_out_row<3>(xrow0, w, orow, g, e); break;
    case 16: vec_out_row<16>(xrow0, w, orow, g, e); break;
    default: vec_out_row<0>(xrow0, w, orow, g, e); break;
  }
}

// ---- conv_vec_out_bias_leaky_resized ----------------------------------------------------

// One axis of a resize by an integer factor, as a regular band of taps: output o reads the
// `taps` inputs from stride * o + start, weighted by weights[tap * out + o]. With
// 0 <= start and start + taps <= stride, output o reads only inside its own block of `stride`
// inputs, so one task owns a block of rows from the convolution to the resize.
struct Band {
  int64_t start, stride, taps, out;
  const float* weights;  // [taps, out]
  float weight(int64_t tap, int64_t o) const { return weights[tap * out + o]; }
};

// The block of `by.stride` output rows [stride_y * oy, stride_y * (oy + 1)), f[rows, W, CO]:
// its per-channel sums and sums of squares into m[0 | 1, :] and row oy of the resize into r.
// Read while the block is still in cache, so the block is never re-read from memory.
void reduce_and_resize_block(const float* block, float* m, float* r, int64_t width,
                             int64_t channels, const Band& by, const Band& bx, int64_t oy) {
  for (int64_t cob = 0; cob < channels; cob += kLanes) {
    vec sum{}, sum_sq{};
    for (int64_t i = 0; i < by.stride * width; ++i) {
      const vec v = load(block + i * channels + cob);
      sum += v;
      sum_sq += v * v;
    }
    store(m + cob, sum);
    store(m + channels + cob, sum_sq);
    for (int64_t ox = 0; ox < bx.out; ++ox) {
      vec acc{};
      for (int64_t ty = 0; ty < by.taps; ++ty) {
        const float* row = block + (by.start + ty) * width * channels;
        vec line{};
        for (int64_t tx = 0; tx < bx.taps; ++tx) {
          line += bx.weight(tx, ox) *
                  load(row + (ox * bx.stride + bx.start + tx) * channels + cob);
        }
        acc += by.weight(ty, oy) * line;
      }
      store(r + ox * channels + cob, acc);
    }
  }
}

// Task (b, oy) of conv_vec_out_bias_leaky_resized: the convolution's rows of block oy with the
// epilogue, written to `out`, then reduce_and_resize_block on them.
void resized_block(const float* xpad, const float* w, float* out, float* resized,
                   float* moments, const Geometry& g, const Epilogue& e, const Band& by,
                   const Band& bx, int64_t b, int64_t oy) {
  const int64_t first = oy * by.stride;
  for (int64_t y = first; y < first + by.stride; ++y) {
    conv_vec_out_row(xpad + (b * g.padded_height() + y) * g.padded_width() * g.ci, w,
                     out + (b * g.height + y) * g.width * g.co, g, e);
  }
  reduce_and_resize_block(out + (b * g.height + first) * g.width * g.co,
                          moments + ((b * by.out + oy) * 2) * g.co,
                          resized + (b * by.out + oy) * bx.out * g.co, g.width, g.co, by, bx,
                          oy);
}

// Rows [y0 - K/2, y0 + rows + K/2) of example b of x [B, H, W, CI] (g's height, width and
// channels), zero-padded by K/2 on every side, into window [rows + K - 1, W + K - 1, CI]: the
// padded input a task of rows [y0, y0 + rows) reads, made in cache instead of by a separate
// pass that writes the whole padded input.
void padded_rows(const float* x, const Geometry& g, int64_t b, int64_t y0, int64_t rows,
                 float* window) {
  const int64_t pad = g.k / 2, line = g.padded_width() * g.ci;
  for (int64_t r = 0; r < rows + g.k - 1; ++r) {
    float* dst = window + r * line;
    const int64_t y = y0 - pad + r;
    if (y < 0 || y >= g.height) {
      std::fill(dst, dst + line, 0.f);
      continue;
    }
    std::fill(dst, dst + pad * g.ci, 0.f);
    std::memcpy(dst + pad * g.ci, x + (b * g.height + y) * g.width * g.ci,
                g.width * g.ci * sizeof(float));
    std::fill(dst + (pad + g.width) * g.ci, dst + line, 0.f);
  }
}

// Task (b, oy) of conv_head_resized: two layers, the second 1x1, with the second's output never
// written at full resolution. Each of the block's rows goes through the first layer into a row
// of `first_out` (the backward pass keeps it) or, when that is null, of scratch, and through
// the second layer into the block's scratch, which is then reduced and resized.
void head_block(const float* x, const float* w1, const float* w2, float* first_out,
                float* resized, float* moments, const Geometry& g1, const Geometry& g2,
                const Epilogue& e1, const Epilogue& e2, const Band& by, const Band& bx,
                int64_t b, int64_t oy) {
  thread_local std::vector<float> window, scratch, block;
  window.resize((by.stride + g1.k - 1) * g1.padded_width() * g1.ci);
  scratch.resize(g1.width * g1.co);
  block.resize(by.stride * g2.width * g2.co);
  const int64_t first = oy * by.stride;
  padded_rows(x, g1, b, first, by.stride, window.data());
  for (int64_t i = 0; i < by.stride; ++i) {
    const int64_t y = first + i;
    float* row =
        first_out != nullptr ? first_out + (b * g1.height + y) * g1.width * g1.co : scratch.data();
    conv_vec_out_row(window.data() + i * g1.padded_width() * g1.ci, w1, row, g1, e1);
    conv_vec_out_row(row, w2, block.data() + i * g2.width * g2.co, g2, e2);
  }
  reduce_and_resize_block(block.data(), moments + ((b * by.out + oy) * 2) * g2.co,
                          resized + (b * by.out + oy) * bx.out * g2.co, g2.width, g2.co, by,
                          bx, oy);
}

// ---- conv_vec_in --------------------------------------------------------------------------

// XB pixels, CB output channels from co0, vectorised over the input channels; CI > 0 is
// their count as a constant (as in vec_out_block).
template <int XB, int CB, int CI>
inline void vec_in_block(const float* xrow0, const float* wt, float* out, const Geometry& g,
                         int64_t x0, int64_t co0) {
  const int64_t ci = CI > 0 ? CI : g.ci;
  const int64_t row_stride = g.padded_width() * ci;
  vec acc[XB][CB];
  for (int j = 0; j < XB; ++j)
    for (int c = 0; c < CB; ++c) acc[j][c] = vec{};
  for (int64_t ky = 0; ky < g.k; ++ky) {
    const float* xrow = xrow0 + ky * row_stride + x0 * ci;
    for (int64_t kx = 0; kx < g.k; ++kx) {
      const float* wk = wt + ((ky * g.k + kx) * g.co + co0) * ci;
      for (int64_t cib = 0; cib < ci; cib += kLanes) {
        vec wv[CB];
        for (int c = 0; c < CB; ++c) wv[c] = load(wk + c * ci + cib);
        for (int j = 0; j < XB; ++j) {
          const vec xv = load(xrow + (j + kx) * ci + cib);
          for (int c = 0; c < CB; ++c) acc[j][c] += xv * wv[c];
        }
      }
    }
  }
  for (int j = 0; j < XB; ++j)
    for (int c = 0; c < CB; ++c) out[(x0 + j) * g.co + co0 + c] = hsum(acc[j][c]);
}

template <int CB, int CI>
void vec_in_columns(const float* xrow0, const float* wt, float* orow, const Geometry& g,
                    int64_t co0) {
  // XB * CB accumulators, CB weight vectors and one input vector in registers.
  constexpr int XB =
      kManyRegisters ? (CB <= 2 ? 8 : 6) : std::max(1, (kVectorRegisters - 1 - CB) / CB);
  int64_t x = 0;
  for (; x + XB <= g.width; x += XB) vec_in_block<XB, CB, CI>(xrow0, wt, orow, g, x, co0);
  for (; x < g.width; ++x) vec_in_block<1, CB, CI>(xrow0, wt, orow, g, x, co0);
}

template <int CI>
void vec_in_row(const float* xrow0, const float* wt, float* orow, const Geometry& g) {
  // Output channels per block: with 16 registers, 2 x 6 accumulators load fewer values per
  // FMA than 4 x 2.
  constexpr int CB = kManyRegisters ? 4 : 2;
  int64_t co = 0;
  for (; co + CB <= g.co; co += CB) vec_in_columns<CB, CI>(xrow0, wt, orow, g, co);
  switch (g.co - co) {
    case 3: vec_in_columns<3, CI>(xrow0, wt, orow, g, co); break;
    case 2: vec_in_columns<2, CI>(xrow0, wt, orow, g, co); break;
    case 1: vec_in_columns<1, CI>(xrow0, wt, orow, g, co); break;
    default: break;
  }
}

void conv_vec_in_row(const float* xpad, const float* wt, float* out, const Geometry& g,
                     int64_t b, int64_t y) {
  const float* xrow0 = xpad + (b * g.padded_height() + y) * g.padded_width() * g.ci;
  float* orow = out + (b * g.height + y) * g.width * g.co;
  if (g.ci == 16) {
    vec_in_row<16>(xrow0, wt, orow, g);
  } else {
    vec_in_row<0>(xrow0, wt, orow, g);
  }
}

// ---- conv_weight_grad ---------------------------------------------------------------------

// Accumulates MB consecutive (kx, ci) taps of kernel row ky for CB vectors of CO channels
// from cob, over one row of the batch, into dw (a thread's private partial sum).
template <int MB, int CB = 1>
inline void wgrad_block(const float* xrow, const float* grow, float* dw, const Geometry& g,
                        int64_t ky, int64_t m0, int64_t cob) {
  // Fully unrolled, so the accumulators live in registers: left to itself, GCC keeps an
  // array of 21 or 24 of them on the stack and interchanges the loops, one load and one
  // store around every two FMAs.
  vec acc[MB][CB];
#pragma GCC unroll 32
  for (int i = 0; i < MB; ++i)
#pragma GCC unroll 4
    for (int c = 0; c < CB; ++c) acc[i][c] = vec{};
  for (int64_t x = 0; x < g.width; ++x) {
    vec gv[CB];
#pragma GCC unroll 4
    for (int c = 0; c < CB; ++c) gv[c] = load(grow + x * g.co + cob + c * kLanes);
    const float* xp = xrow + x * g.ci + m0;
#pragma GCC unroll 32
    for (int i = 0; i < MB; ++i) {
      const float xv = xp[i];
#pragma GCC unroll 4
      for (int c = 0; c < CB; ++c) acc[i][c] += xv * gv[c];
    }
  }
  float* dwk = dw + (ky * g.k * g.ci + m0) * g.co + cob;
#pragma GCC unroll 32
  for (int i = 0; i < MB; ++i)
#pragma GCC unroll 4
    for (int c = 0; c < CB; ++c) {
      float* d = dwk + i * g.co + c * kLanes;
      store(d, load(d) + acc[i][c]);
    }
}

// wgrad_row_at's blocks for a register file of 16 vectors, over two vectors of CO channels
// from cob: blocks of 6 taps (12 accumulators, the gradient's two vectors and the broadcast
// input), then one block of the rest.
inline void wgrad_taps_few_registers(const float* xrow, const float* grow, float* dw,
                                     const Geometry& g, int64_t ky, int64_t kci, int64_t cob) {
  constexpr int MB = 6, CB = 2;
  int64_t m = 0;
  for (; m + MB <= kci; m += MB) wgrad_block<MB, CB>(xrow, grow, dw, g, ky, m, cob);
  switch (kci - m) {
    case 5: wgrad_block<5, CB>(xrow, grow, dw, g, ky, m, cob); break;
    case 4: wgrad_block<4, CB>(xrow, grow, dw, g, ky, m, cob); break;
    case 3: wgrad_block<3, CB>(xrow, grow, dw, g, ky, m, cob); break;
    case 2: wgrad_block<2, CB>(xrow, grow, dw, g, ky, m, cob); break;
    case 1: wgrad_block<1, CB>(xrow, grow, dw, g, ky, m, cob); break;
    default: break;
  }
}

// Adds one output row's weight gradient to dw: xrow0 is the first of the K padded input rows
// the row reads, grow its gradient [W, CO].
void wgrad_row_at(const float* xrow0, const float* grow, float* dw, const Geometry& g) {
  const int64_t kci = g.k * g.ci;
  const int64_t row_stride = g.padded_width() * g.ci;
  if constexpr (!kManyRegisters) {
    static_assert(kManyRegisters || kChannelMultiple % (2 * kLanes) == 0);
    for (int64_t cob = 0; cob < g.co; cob += 2 * kLanes) {
      for (int64_t ky = 0; ky < g.k; ++ky) {
        wgrad_taps_few_registers(xrow0 + ky * row_stride, grow, dw, g, ky, kci, cob);
      }
    }
    return;
  }
  for (int64_t cob = 0; cob < g.co; cob += kLanes) {
    for (int64_t ky = 0; ky < g.k; ++ky) {
      const float* xrow = xrow0 + ky * row_stride;
      // Blocks of up to 24 taps, each an independent FMA chain. The sizes include the
      // resizer's K * CI = 21 (7x7 over 3 channels) and 16 (1x1 over 16): cut into blocks of
      // 4, those rows had too few chains in flight to hide the FMA latency.
      for (int64_t m = 0; m < kci;) {
        const int64_t left = kci - m;
        if (left >= 24) {
          wgrad_block<24>(xrow, grow, dw, g, ky, m, cob), m += 24;
        } else if (left >= 21) {
          wgrad_block<21>(xrow, grow, dw, g, ky, m, cob), m += 21;
        } else if (left >= 16) {
          wgrad_block<16>(xrow, grow, dw, g, ky, m, cob), m += 16;
        } else if (left >= 12) {
          wgrad_block<12>(xrow, grow, dw, g, ky, m, cob), m += 12;
        } else if (left >= 8) {
          wgrad_block<8>(xrow, grow, dw, g, ky, m, cob), m += 8;
        } else if (left >= 4) {
          wgrad_block<4>(xrow, grow, dw, g, ky, m, cob), m += 4;
        } else {
          wgrad_block<1>(xrow, grow, dw, g, ky, m, cob), m += 1;
        }
      }
    }
  }
}

void wgrad_row(const float* xpad, const float* grad, float* dw, const Geometry& g, int64_t b,
               int64_t y) {
  wgrad_row_at(xpad + (b * g.padded_height() + y) * g.padded_width() * g.ci,
               grad + (b * g.height + y) * g.width * g.co, dw, g);
}

// out[0, n) = the sum over c < chunks of partial[c * stride, c * stride + n), added in chunk
// order: the weight gradients' private per-chunk partial sums reduced in a fixed order, so the
// result depends neither on thread scheduling nor on the thread count.
void sum_chunks(const float* partial, int64_t chunks, int64_t stride, int64_t n, float* out) {
  std::copy(partial, partial + n, out);
  for (int64_t c = 1; c < chunks; ++c) {
    for (int64_t i = 0; i < n; ++i) out[i] += partial[c * stride + i];
  }
}

// ---- conv_head_resized_grad --------------------------------------------------------------

// A task's partial sums of the head's parameter gradients.
struct HeadGrads {
  float* dw1;  // [K, K, CI, C1]
  float* db1;  // [C1]
  float* dw2;  // [C1, C2]
  float* db2;  // [C2]
};

// The layers of the head and the resize its output goes through.
struct Head {
  Geometry g1, g2, g2t;   // conv_in; conv_mix (1x1, C1 -> C2); conv_mix transposed (C2 -> C1)
  const float* w2;        // [C1, C2]
  const float* w2t;       // [C2, C1]
  Epilogue e2;            // conv_mix's bias and slope
  float slope;            // both layers' leaky ReLU slope
  const float* g_moments; // [2, C2]: the gradient of each channel's sum and sum of squares
  Band by, bx;
};

// One full-resolution row of the head's backward pass, accumulated into `acc`:
//   y2 = leaky(y1 w2 + b2)                   recomputed: a 1x1 layer is cheaper than a stored y2
//   g2 = d resize(y2) / d y2 row + g_sum + g_sum_sq * y2, times leaky'(y2); db2 += g2; dw2 += y1' g2
//   g1 = g2 w2' times leaky'(y1); db1 += g1; dw1 += conv_in's weight gradient for the row.
// With slope > 0 the sign of an output is its pre-activation's, so the derivative of each
// leaky ReLU is read from the layer's output. gres is row oy of the resize's gradient [out_w,
// C2]; in_band says whether a vertical tap reads this row, and wy is that tap's weight.
void head_grad_row(const Head& h, const float* xrow0, const float* y1row, const float* gres,
                   bool in_band, float wy, HeadGrads& acc, float* y2row, float* g2row,
                   float* g1row) {
  const int64_t width = h.g1.width, c1 = h.g1.co, c2 = h.g2.co;
  conv_vec_out_row(y1row, h.w2, y2row, h.g2, h.e2);
  for (int64_t x = 0; x < width; ++x) {
    const int64_t ox = x / h.bx.stride, tx = x - ox * h.bx.stride - h.bx.start;
    const bool tapped = in_band && tx >= 0 && tx < h.bx.taps;
    const float w = tapped ? wy * h.bx.weight(tx, ox) : 0.f;
    for (int64_t cob = 0; cob < c2; cob += kLanes) {
      const vec y2 = load(y2row + x * c2 + cob);
      vec g = load(h.g_moments + cob) + load(h.g_moments + c2 + cob) * y2;
      if (tapped) g += w * load(gres + ox * c2 + cob);
      g = y2 >= 0 ? g : g * h.slope;
      store(acc.db2 + cob, load(acc.db2 + cob) + g);
      store(g2row + x * c2 + cob, g);
    }
  }
  wgrad_row_at(y1row, g2row, acc.dw2, h.g2);
  conv_vec_out_row(g2row, h.w2t, g1row, h.g2t, Epilogue{});
  for (int64_t i = 0; i < width * c1; i += kLanes) {
    const vec y1 = load(y1row + i);
    vec g = load(g1row + i);
    g = y1 >= 0 ? g : g * h.slope;
    store(acc.db1 + i % c1, load(acc.db1 + i % c1) + g);
    store(g1row + i, g);
  }
  wgrad_row_at(xrow0, g1row, acc.dw1, h.g1);
}

// Task (b, resized rows [oy0, oy1)) of conv_head_resized_grad: every full-resolution row of
// those blocks, in order, into the task's partial sums.
void head_grad_task(const Head& h, const float* x, const float* y1, const float* g_resized,
                    HeadGrads acc, int64_t b, int64_t oy0, int64_t oy1) {
  thread_local std::vector<float> window, y2row, g2row, g1row;
  const Geometry& g1 = h.g1;
  window.resize((h.by.stride + g1.k - 1) * g1.padded_width() * g1.ci);
  y2row.resize(h.g2.width * h.g2.co);
  g2row.resize(h.g2.width * h.g2.co);
  g1row.resize(g1.width * g1.co);
  for (int64_t oy = oy0; oy < oy1; ++oy) {
    const float* gres = g_resized + (b * h.by.out + oy) * h.bx.out * h.g2.co;
    padded_rows(x, g1, b, oy * h.by.stride, h.by.stride, window.data());
    for (int64_t i = 0; i < h.by.stride; ++i) {
      const int64_t y = oy * h.by.stride + i, ty = i - h.by.start;
      const bool in_band = ty >= 0 && ty < h.by.taps;
      head_grad_row(h, window.data() + i * g1.padded_width() * g1.ci,
                    y1 + (b * g1.height + y) * g1.width * g1.co, gres, in_band,
                    in_band ? h.by.weight(ty, oy) : 0.f, acc, y2row.data(),
                    g2row.data(), g1row.data());
    }
  }
}

// ---- FFI handlers -------------------------------------------------------------------------

ffi::Error check_rank4(const ffi::AnyBuffer& buffer, const char* name) {
  if (buffer.element_type() != ffi::DataType::F32 || buffer.dimensions().size() != 4) {
    return ffi::Error::InvalidArgument(std::string(name) + " must be a rank-4 f32 array");
  }
  return ffi::Error::Success();
}

// xpad: [B, H+K-1, W+K-1, CI]; weights: [K, K, CI, CO] (vec_out) or [K, K, CO, CI] (vec_in).
ffi::Error Convolution(ffi::ThreadPool pool, ffi::AnyBuffer xpad, ffi::AnyBuffer weights,
                       ffi::Result<ffi::AnyBuffer> out, bool vectorise_input,
                       Epilogue epilogue = {}) {
  for (auto [buffer, name] : {std::pair{&xpad, "xpad"}, std::pair{&weights, "weights"}}) {
    if (auto error = check_rank4(*buffer, name); error.failure()) return error;
  }
  auto xd = xpad.dimensions();
  auto wd = weights.dimensions();
  auto od = out->dimensions();
  Geometry g{od[0], od[1], od[2], wd[0], xd[3], od[3]};
  const int64_t wci = vectorise_input ? wd[3] : wd[2];
  const int64_t wco = vectorise_input ? wd[2] : wd[3];
  if (wd[1] != g.k || wci != g.ci || wco != g.co || xd[0] != g.batch ||
      xd[1] != g.padded_height() || xd[2] != g.padded_width()) {
    return ffi::Error::InvalidArgument("inconsistent convolution shapes");
  }
  if ((vectorise_input ? g.ci : g.co) % kChannelMultiple != 0) {
    return ffi::Error::InvalidArgument("vectorised channel count must be a multiple of 16");
  }
  const float* x = reinterpret_cast<const float*>(xpad.untyped_data());
  const float* w = reinterpret_cast<const float*>(weights.untyped_data());
  float* o = reinterpret_cast<float*>(out->untyped_data());
  parallel_for(pool, g.batch * g.height, [&](int64_t task) {
    const int64_t b = task / g.height, y = task % g.height;
    if (vectorise_input) {
      conv_vec_in_row(x, w, o, g, b, y);
    } else {
      conv_vec_out_row(x + (b * g.padded_height() + y) * g.padded_width() * g.ci, w,
                       o + (b * g.height + y) * g.width * g.co, g, epilogue);
    }
  });
  return ffi::Error::Success();
}

ffi::Error ConvVecOut(ffi::ThreadPool pool, ffi::AnyBuffer xpad, ffi::AnyBuffer weights,
                      ffi::Result<ffi::AnyBuffer> out) {
  return Convolution(pool, xpad, weights, out, /*vectorise_input=*/false);
}

// conv_vec_out followed by `+ bias` and a leaky ReLU with `slope`, in the same pass.
ffi::Error ConvVecOutBiasLeaky(ffi::ThreadPool pool, ffi::AnyBuffer xpad, ffi::AnyBuffer weights,
                               ffi::AnyBuffer bias, ffi::Result<ffi::AnyBuffer> out,
                               float slope) {
  auto bd = bias.dimensions();
  if (bias.element_type() != ffi::DataType::F32 || bd.size() != 1 ||
      bd[0] != out->dimensions()[3]) {
    return ffi::Error::InvalidArgument("bias must be f32[CO]");
  }
  Epilogue epilogue;
  epilogue.bias = reinterpret_cast<const float*>(bias.untyped_data());
  epilogue.slope = slope;
  return Convolution(pool, xpad, weights, out, /*vectorise_input=*/false, epilogue);
}

// The two Bands of a resize (weights wy: [Ky, out_h], wx: [Kx, out_w]) onto the output of a
// layer with geometry g, checked against the kernel's condition and the result shapes.
ffi::Error make_bands(const ffi::AnyBuffer& wy, const ffi::AnyBuffer& wx, const Geometry& g,
                      int64_t start_y, int64_t stride_y, int64_t start_x, int64_t stride_x,
                      Band& by, Band& bx) {
  auto yd = wy.dimensions();
  auto xd = wx.dimensions();
  if (wy.element_type() != ffi::DataType::F32 || wx.element_type() != ffi::DataType::F32 ||
      yd.size() != 2 || xd.size() != 2) {
    return ffi::Error::InvalidArgument("resize weights must be f32[K, out]");
  }
  by = Band{start_y, stride_y, yd[0], yd[1], reinterpret_cast<const float*>(wy.untyped_data())};
  bx = Band{start_x, stride_x, xd[0], xd[1], reinterpret_cast<const float*>(wx.untyped_data())};
  for (auto [band, size] : {std::pair{&by, g.height}, std::pair{&bx, g.width}}) {
    if (band->stride < 1 || band->start < 0 || band->start + band->taps > band->stride ||
        band->stride * band->out != size) {
      return ffi::Error::InvalidArgument("resize band must stay inside each block of inputs");
    }
  }
  return ffi::Error::Success();
}

// make_bands, and the shapes of the resized output [B, out_h, out_w, CO] and of its moments
// [B, out_h, 2, CO] checked against them.
ffi::Error make_bands(const ffi::AnyBuffer& wy, const ffi::AnyBuffer& wx,
                      const ffi::AnyBuffer& resized, const ffi::AnyBuffer& moments,
                      const Geometry& g, int64_t start_y, int64_t stride_y, int64_t start_x,
                      int64_t stride_x, Band& by, Band& bx) {
  if (auto error = make_bands(wy, wx, g, start_y, stride_y, start_x, stride_x, by, bx);
      error.failure()) {
    return error;
  }
  auto rd = resized.dimensions();
  auto md = moments.dimensions();
  if (rd.size() != 4 || md.size() != 4 || rd[0] != g.batch || rd[1] != by.out ||
      rd[2] != bx.out || rd[3] != g.co || md[0] != g.batch || md[1] != by.out || md[2] != 2 ||
      md[3] != g.co) {
    return ffi::Error::InvalidArgument("inconsistent resized or moments shapes");
  }
  return ffi::Error::Success();
}

ffi::Error check_bias(const ffi::AnyBuffer& bias, int64_t channels) {
  if (bias.element_type() != ffi::DataType::F32 || bias.dimensions().size() != 1 ||
      bias.dimensions()[0] != channels) {
    return ffi::Error::InvalidArgument("bias must be f32[CO]");
  }
  return ffi::Error::Success();
}

// conv_vec_out_bias_leaky (slope 1: no activation), plus `residual` [B, H + 2 rp, W + 2 rp, CO]
// (its interior, rp = residual_pad; none when residual_pad < 0) added after the activation,
// written into out [B, H + 2 P, W + 2 P, CO] with a zero border of P = out_pad pixels: a chain
// of such layers never writes a padded copy of its features, nor adds a residual or applies
// an activation in a separate pass.
ffi::Error ConvVecOutPadded(ffi::ThreadPool pool, ffi::AnyBuffer xpad, ffi::AnyBuffer weights,
                            ffi::AnyBuffer bias, ffi::AnyBuffer residual,
                            ffi::Result<ffi::AnyBuffer> out, float slope, int64_t residual_pad,
                            int64_t out_pad) {
  for (auto [buffer, name] : {std::pair{&xpad, "xpad"}, std::pair{&weights, "weights"}}) {
    if (auto error = check_rank4(*buffer, name); error.failure()) return error;
  }
  auto xd = xpad.dimensions();
  auto wd = weights.dimensions();
  auto od = out->dimensions();
  const int64_t p = out_pad;
  Geometry g{od[0], od[1] - 2 * p, od[2] - 2 * p, wd[0], xd[3], od[3]};
  if (p < 0 || g.height <= 0 || g.width <= 0 || wd[1] != g.k || wd[2] != g.ci ||
      wd[3] != g.co || xd[0] != g.batch || xd[1] != g.padded_height() ||
      xd[2] != g.padded_width() || g.co % kChannelMultiple != 0) {
    return ffi::Error::InvalidArgument("inconsistent convolution shapes");
  }
  if (auto error = check_bias(bias, g.co); error.failure()) return error;
  const int64_t rp = residual_pad;
  if (rp >= 0) {
    if (auto error = check_rank4(residual, "residual"); error.failure()) return error;
    auto rd = residual.dimensions();
    if (rd[0] != g.batch || rd[1] != g.height + 2 * rp || rd[2] != g.width + 2 * rp ||
        rd[3] != g.co) {
      return ffi::Error::InvalidArgument("residual must be f32[B, H + 2 rp, W + 2 rp, CO]");
    }
  }
  const float* x = reinterpret_cast<const float*>(xpad.untyped_data());
  const float* w = reinterpret_cast<const float*>(weights.untyped_data());
  const float* r = reinterpret_cast<const float*>(residual.untyped_data());
  float* o = reinterpret_cast<float*>(out->untyped_data());
  const int64_t out_line = (g.width + 2 * p) * g.co, border = p * g.co;
  parallel_for(pool, g.batch * g.height, [&](int64_t task) {
    const int64_t b = task / g.height, y = task % g.height;
    float* example = o + b * (g.height + 2 * p) * out_line;
    // Each task zeroes its row's border; the first and last rows' tasks the rows above and
    // below the example.
    if (y == 0) std::fill(example, example + p * out_line, 0.f);
    if (y == g.height - 1) {
      std::fill(example + (g.height + p) * out_line, example + (g.height + 2 * p) * out_line,
                0.f);
    }
    float* line = example + (y + p) * out_line;
    std::fill(line, line + border, 0.f);
    std::fill(line + out_line - border, line + out_line, 0.f);
    Epilogue epilogue;
    epilogue.bias = reinterpret_cast<const float*>(bias.untyped_data());
    epilogue.slope = slope;
    if (rp >= 0) {
      const int64_t residual_line = (g.width + 2 * rp) * g.co;
      epilogue.residual =
          r + (b * (g.height + 2 * rp) + y + rp) * residual_line + rp * g.co;
    }
    conv_vec_out_row(x + (b * g.padded_height() + y) * g.padded_width() * g.ci, w, line + border,
                     g, epilogue);
  });
  return ffi::Error::Success();
}

// conv_vec_out_bias_leaky, plus the output resized along each axis by a Band (weights
// wy: [Ky, H / stride_y], wx: [Kx, W / stride_x]) and its per-(example, resized row) channel
// sums and sums of squares: moments [B, H / stride_y, 2, CO].
ffi::Error ConvVecOutBiasLeakyResized(ffi::ThreadPool pool, ffi::AnyBuffer xpad,
                                      ffi::AnyBuffer weights, ffi::AnyBuffer bias,
                                      ffi::AnyBuffer wy, ffi::AnyBuffer wx,
                                      ffi::Result<ffi::AnyBuffer> out,
                                      ffi::Result<ffi::AnyBuffer> resized,
                                      ffi::Result<ffi::AnyBuffer> moments, float slope,
                                      int64_t start_y, int64_t stride_y, int64_t start_x,
                                      int64_t stride_x) {
  for (auto [buffer, name] : {std::pair{&xpad, "xpad"}, std::pair{&weights, "weights"}}) {
    if (auto error = check_rank4(*buffer, name); error.failure()) return error;
  }
  auto xd = xpad.dimensions();
  auto wd = weights.dimensions();
  auto od = out->dimensions();
  Geometry g{od[0], od[1], od[2], wd[0], xd[3], od[3]};
  if (wd[1] != g.k || wd[2] != g.ci || wd[3] != g.co || xd[0] != g.batch ||
      xd[1] != g.padded_height() || xd[2] != g.padded_width() || g.co % kChannelMultiple != 0) {
    return ffi::Error::InvalidArgument("inconsistent convolution shapes");
  }
  if (auto error = check_bias(bias, g.co); error.failure()) return error;
  Band by, bx;
  if (auto error = make_bands(wy, wx, *resized, *moments, g, start_y, stride_y, start_x,
                              stride_x, by, bx);
      error.failure()) {
    return error;
  }
  Epilogue epilogue;
  epilogue.bias = reinterpret_cast<const float*>(bias.untyped_data());
  epilogue.slope = slope;
  const float* x = reinterpret_cast<const float*>(xpad.untyped_data());
  const float* w = reinterpret_cast<const float*>(weights.untyped_data());
  float* o = reinterpret_cast<float*>(out->untyped_data());
  float* r = reinterpret_cast<float*>(resized->untyped_data());
  float* m = reinterpret_cast<float*>(moments->untyped_data());
  parallel_for(pool, g.batch * by.out, [&](int64_t task) {
    resized_block(x, w, o, r, m, g, epilogue, by, bx, task / by.out, task % by.out);
  });
  return ffi::Error::Success();
}

// Two layers, each conv + bias + leaky ReLU, the second 1x1 (w2: [1, 1, C1, C2]), returning
// only the second's output resized and its per-(example, resized row) channel sums and sums
// of squares, as conv_vec_out_bias_leaky_resized would from the second layer. `first_out`
// [B, H, W, C1], when given, receives the first layer's output (for training); else nothing is
// written at full resolution.
ffi::Error HeadResized(ffi::ThreadPool pool, const ffi::AnyBuffer& x, const ffi::AnyBuffer& w1,
                       const ffi::AnyBuffer& b1, const ffi::AnyBuffer& w2,
                       const ffi::AnyBuffer& b2, const ffi::AnyBuffer& wy,
                       const ffi::AnyBuffer& wx, ffi::AnyBuffer* first_out,
                       ffi::AnyBuffer& resized, ffi::AnyBuffer& moments, float slope,
                       int64_t height, int64_t width, int64_t start_y, int64_t stride_y,
                       int64_t start_x, int64_t stride_x) {
  for (auto [buffer, name] :
       {std::pair{&x, "x"}, std::pair{&w1, "w1"}, std::pair{&w2, "w2"}}) {
    if (auto error = check_rank4(*buffer, name); error.failure()) return error;
  }
  auto xd = x.dimensions();
  auto d1 = w1.dimensions();
  auto d2 = w2.dimensions();
  Geometry g1{xd[0], height, width, d1[0], xd[3], d1[3]};
  Geometry g2{xd[0], height, width, 1, d1[3], d2[3]};
  if (d1[1] != g1.k || d1[2] != g1.ci || xd[1] != height || xd[2] != width || d2[0] != 1 || d2[1] != 1 || d2[2] != g2.ci ||
      g1.co % kChannelMultiple != 0 || g2.co % kChannelMultiple != 0) {
    return ffi::Error::InvalidArgument("inconsistent convolution shapes");
  }
  if (first_out != nullptr) {
    auto fd = first_out->dimensions();
    if (fd.size() != 4 || fd[0] != g1.batch || fd[1] != height || fd[2] != width ||
        fd[3] != g1.co) {
      return ffi::Error::InvalidArgument("first layer's output must be f32[B, H, W, C1]");
    }
  }
  if (auto error = check_bias(b1, g1.co); error.failure()) return error;
  if (auto error = check_bias(b2, g2.co); error.failure()) return error;
  Band by, bx;
  if (auto error = make_bands(wy, wx, resized, moments, g2, start_y, stride_y, start_x,
                              stride_x, by, bx);
      error.failure()) {
    return error;
  }
  Epilogue e1, e2;
  e1.bias = reinterpret_cast<const float*>(b1.untyped_data());
  e2.bias = reinterpret_cast<const float*>(b2.untyped_data());
  e1.slope = e2.slope = slope;
  const float* input = reinterpret_cast<const float*>(x.untyped_data());
  const float* k1 = reinterpret_cast<const float*>(w1.untyped_data());
  const float* k2 = reinterpret_cast<const float*>(w2.untyped_data());
  float* y1 = first_out != nullptr ? reinterpret_cast<float*>(first_out->untyped_data()) : nullptr;
  float* r = reinterpret_cast<float*>(resized.untyped_data());
  float* m = reinterpret_cast<float*>(moments.untyped_data());
  parallel_for(pool, g1.batch * by.out, [&](int64_t task) {
    head_block(input, k1, k2, y1, r, m, g1, g2, e1, e2, by, bx, task / by.out, task % by.out);
  });
  return ffi::Error::Success();
}

// For inference: nothing at full resolution.
ffi::Error ConvHeadResized(ffi::ThreadPool pool, ffi::AnyBuffer x, ffi::AnyBuffer w1,
                           ffi::AnyBuffer b1, ffi::AnyBuffer w2, ffi::AnyBuffer b2,
                           ffi::AnyBuffer wy, ffi::AnyBuffer wx,
                           ffi::Result<ffi::AnyBuffer> resized,
                           ffi::Result<ffi::AnyBuffer> moments, float slope, int64_t height,
                           int64_t width, int64_t start_y, int64_t stride_y, int64_t start_x,
                           int64_t stride_x) {
  return HeadResized(pool, x, w1, b1, w2, b2, wy, wx, nullptr, *resized, *moments, slope,
                     height, width, start_y, stride_y, start_x, stride_x);
}

// For training: also the first layer's output, which conv_head_resized_grad reads.
ffi::Error ConvHeadResizedKeepFirst(ffi::ThreadPool pool, ffi::AnyBuffer x, ffi::AnyBuffer w1,
                                    ffi::AnyBuffer b1, ffi::AnyBuffer w2, ffi::AnyBuffer b2,
                                    ffi::AnyBuffer wy, ffi::AnyBuffer wx,
                                    ffi::Result<ffi::AnyBuffer> first_out,
                                    ffi::Result<ffi::AnyBuffer> resized,
                                    ffi::Result<ffi::AnyBuffer> moments, float slope,
                                    int64_t height, int64_t width, int64_t start_y,
                                    int64_t stride_y, int64_t start_x, int64_t stride_x) {
  return HeadResized(pool, x, w1, b1, w2, b2, wy, wx, &*first_out, *resized, *moments, slope,
                     height, width, start_y, stride_y, start_x, stride_x);
}

// The parameter gradients of conv_head_resized, per example, from the head's input x
// [B, H, W, CI], its first layer's output y1 [B, H, W, C1] and the gradients of its
// results: g_resized [B, out_h, out_w, C2] and g_moments [2, C2] (of each channel's sum and
// sum of squares over the batch). w1 [K, K, CI, C1] gives conv_in's shape; w2 [1, 1, C1, C2],
// w2t [1, 1, C2, C1] and b2 are conv_mix's. Results: dw1 [B, K, K, CI, C1], db1 [B, C1],
// dw2 [B, 1, 1, C1, C2], db2 [B, C2]. Nothing is written at full resolution: the gradient
// reaching conv_in's output lives one row at a time in cache (head_grad_row).
ffi::Error ConvHeadResizedGrad(ffi::ThreadPool pool, ffi::AnyBuffer x, ffi::AnyBuffer y1,
                               ffi::AnyBuffer g_resized, ffi::AnyBuffer w1, ffi::AnyBuffer w2,
                               ffi::AnyBuffer w2t, ffi::AnyBuffer b2, ffi::AnyBuffer g_moments,
                               ffi::AnyBuffer wy, ffi::AnyBuffer wx,
                               ffi::Result<ffi::AnyBuffer> dw1, ffi::Result<ffi::AnyBuffer> db1,
                               ffi::Result<ffi::AnyBuffer> dw2, ffi::Result<ffi::AnyBuffer> db2,
                               float slope, int64_t start_y, int64_t stride_y, int64_t start_x,
                               int64_t stride_x) {
  for (auto [buffer, name] :
       {std::pair{&x, "x"}, std::pair{&y1, "y1"}, std::pair{&g_resized, "g_resized"},
        std::pair{&w1, "w1"}, std::pair{&w2, "w2"}, std::pair{&w2t, "w2t"}}) {
    if (auto error = check_rank4(*buffer, name); error.failure()) return error;
  }
  auto xd = x.dimensions();
  auto yd = y1.dimensions();
  auto d1 = w1.dimensions();
  auto d2 = w2.dimensions();
  auto dt = w2t.dimensions();
  auto md = g_moments.dimensions();
  const int64_t batch = yd[0], height = yd[1], width = yd[2], c1 = yd[3], c2 = d2[3];
  Head h;
  h.g1 = Geometry{batch, height, width, d1[0], xd[3], c1};
  h.g2 = Geometry{batch, height, width, 1, c1, c2};
  h.g2t = Geometry{batch, height, width, 1, c2, c1};
  if (d1[1] != h.g1.k || d1[2] != h.g1.ci || d1[3] != c1 || xd[0] != batch ||
      xd[1] != height || xd[2] != width || d2[0] != 1 ||
      d2[1] != 1 || d2[2] != c1 || dt[0] != 1 || dt[1] != 1 || dt[2] != c2 || dt[3] != c1 ||
      c1 % kChannelMultiple != 0 || c2 % kChannelMultiple != 0) {
    return ffi::Error::InvalidArgument("inconsistent convolution shapes");
  }
  if (g_moments.element_type() != ffi::DataType::F32 || md.size() != 2 || md[0] != 2 ||
      md[1] != c2) {
    return ffi::Error::InvalidArgument("g_moments must be f32[2, C2]");
  }
  if (auto error = check_bias(b2, c2); error.failure()) return error;
  if (auto error = make_bands(wy, wx, h.g2, start_y, stride_y, start_x, stride_x, h.by, h.bx);
      error.failure()) {
    return error;
  }
  auto rd = g_resized.dimensions();
  if (rd[0] != batch || rd[1] != h.by.out || rd[2] != h.bx.out || rd[3] != c2) {
    return ffi::Error::InvalidArgument("g_resized must be f32[B, out_h, out_w, C2]");
  }
  const int64_t size_w1 = h.g1.k * h.g1.k * h.g1.ci * c1, size_w2 = c1 * c2;
  auto dims = [](ffi::Result<ffi::AnyBuffer>& r) { return r->dimensions(); };
  if (dims(dw1).size() != 5 || dims(dw1)[0] != batch || dims(db1).size() != 2 ||
      dims(db1)[0] != batch || dims(db1)[1] != c1 || dims(dw2).size() != 5 ||
      dims(dw2)[0] != batch || dims(db2).size() != 2 || dims(db2)[0] != batch ||
      dims(db2)[1] != c2 || dw1->element_count() != batch * size_w1 ||
      dw2->element_count() != batch * size_w2) {
    return ffi::Error::InvalidArgument("inconsistent gradient shapes");
  }
  h.w2 = reinterpret_cast<const float*>(w2.untyped_data());
  h.w2t = reinterpret_cast<const float*>(w2t.untyped_data());
  h.e2.bias = reinterpret_cast<const float*>(b2.untyped_data());
  h.e2.slope = h.slope = slope;
  h.g_moments = reinterpret_cast<const float*>(g_moments.untyped_data());
  const float* input = reinterpret_cast<const float*>(x.untyped_data());
  const float* first = reinterpret_cast<const float*>(y1.untyped_data());
  const float* gr = reinterpret_cast<const float*>(g_resized.untyped_data());
  // Fixed chunks of resized rows with private partial sums, added in a fixed order
  // (sum_chunks).
  constexpr int64_t kChunkRows = 4;
  const int64_t chunks = (h.by.out + kChunkRows - 1) / kChunkRows;
  const int64_t size = size_w1 + c1 + size_w2 + c2;
  std::vector<float> partial(batch * chunks * size, 0.f);
  parallel_for(pool, batch * chunks, [&](int64_t task) {
    float* p = partial.data() + task * size;
    HeadGrads acc{p, p + size_w1, p + size_w1 + c1, p + size_w1 + c1 + size_w2};
    const int64_t b = task / chunks, oy0 = task % chunks * kChunkRows;
    head_grad_task(h, input, first, gr, acc, b, oy0, std::min(oy0 + kChunkRows, h.by.out));
  });
  float* outs[] = {reinterpret_cast<float*>(dw1->untyped_data()),
                   reinterpret_cast<float*>(db1->untyped_data()),
                   reinterpret_cast<float*>(dw2->untyped_data()),
                   reinterpret_cast<float*>(db2->untyped_data())};
  const int64_t offsets[] = {0, size_w1, size_w1 + c1, size_w1 + c1 + size_w2, size};
  for (int64_t b = 0; b < batch; ++b) {
    for (int part = 0; part < 4; ++part) {
      const int64_t n = offsets[part + 1] - offsets[part];
      sum_chunks(partial.data() + b * chunks * size + offsets[part], chunks, size, n,
                 outs[part] + b * n);
    }
  }
  return ffi::Error::Success();
}

ffi::Error ConvVecIn(ffi::ThreadPool pool, ffi::AnyBuffer xpad, ffi::AnyBuffer weights_t,
                     ffi::Result<ffi::AnyBuffer> out) {
  return Convolution(pool, xpad, weights_t, out, /*vectorise_input=*/true);
}

// xpad: [B, H+K-1, W+K-1, CI]; grad: [B, H, W, CO] -> dw: [G, K, K, CI, CO], the weight
// gradient of each of G consecutive groups of B / G examples. Per-group sums keep the batch
// axis in the output, so an SPMD partitioner splits this call by batch like any batched op
// and sums the groups with its own all-reduce.
ffi::Error ConvWeightGrad(ffi::ThreadPool pool, ffi::AnyBuffer xpad, ffi::AnyBuffer grad,
                          ffi::Result<ffi::AnyBuffer> dw) {
  for (auto [buffer, name] : {std::pair{&xpad, "xpad"}, std::pair{&grad, "grad"}}) {
    if (auto error = check_rank4(*buffer, name); error.failure()) return error;
  }
  auto xd = xpad.dimensions();
  auto gd = grad.dimensions();
  auto dd = dw->dimensions();
  if (dd.size() != 5) return ffi::Error::InvalidArgument("dw must be rank 5");
  Geometry g{gd[0], gd[1], gd[2], dd[1], xd[3], gd[3]};
  const int64_t groups = dd[0];
  if (groups <= 0 || g.batch % groups != 0 || dd[2] != g.k || dd[3] != g.ci ||
      dd[4] != g.co || xd[0] != g.batch || xd[1] != g.padded_height() ||
      xd[2] != g.padded_width()) {
    return ffi::Error::InvalidArgument("inconsistent weight-gradient shapes");
  }
  if (g.co % kChannelMultiple != 0) {
    return ffi::Error::InvalidArgument("gradient channel count must be a multiple of 16");
  }
  const float* x = reinterpret_cast<const float*>(xpad.untyped_data());
  const float* gr = reinterpret_cast<const float*>(grad.untyped_data());
  const int64_t size = g.k * g.k * g.ci * g.co;
  // Each group's rows are cut into fixed blocks with private partial sums, added in a fixed
  // order: the result depends neither on thread scheduling nor on the thread count, so a
  // batch split over devices gives every example the same gradient bits as on one device.
  const int64_t group_rows = g.batch / groups * g.height;
  constexpr int64_t kBlockRows = 8;
  const int64_t chunks = (group_rows + kBlockRows - 1) / kBlockRows;
  std::vector<float> partial(groups * chunks * size, 0.f);
  parallel_for(pool, groups * chunks, [&](int64_t task) {
    const int64_t group = task / chunks, chunk = task % chunks;
    float* acc = partial.data() + task * size;
    const int64_t first = group * group_rows + chunk * kBlockRows;
    const int64_t last = std::min(first + kBlockRows, (group + 1) * group_rows);
    for (int64_t r = first; r < last; ++r) wgrad_row(x, gr, acc, g, r / g.height, r % g.height);
  });
  float* d = reinterpret_cast<float*>(dw->untyped_data());
  for (int64_t group = 0; group < groups; ++group) {
    sum_chunks(partial.data() + group * chunks * size, chunks, size, size, d + group * size);
  }
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(resize_jax_conv_vec_out, ConvVecOut,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>());

XLA_FFI_DEFINE_HANDLER_SYMBOL(resize_jax_conv_vec_out_bias_leaky, ConvVecOutBiasLeaky,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<float>("slope"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(resize_jax_conv_vec_out_padded, ConvVecOutPadded,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<float>("slope")
                                  .Attr<int64_t>("residual_pad")
                                  .Attr<int64_t>("out_pad"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(resize_jax_conv_vec_out_bias_leaky_resized,
                              ConvVecOutBiasLeakyResized,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<float>("slope")
                                  .Attr<int64_t>("start_y")
                                  .Attr<int64_t>("stride_y")
                                  .Attr<int64_t>("start_x")
                                  .Attr<int64_t>("stride_x"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(resize_jax_conv_head_resized, ConvHeadResized,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<float>("slope")
                                  .Attr<int64_t>("height")
                                  .Attr<int64_t>("width")
                                  .Attr<int64_t>("start_y")
                                  .Attr<int64_t>("stride_y")
                                  .Attr<int64_t>("start_x")
                                  .Attr<int64_t>("stride_x"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(resize_jax_conv_head_resized_keep_first, ConvHeadResizedKeepFirst,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<float>("slope")
                                  .Attr<int64_t>("height")
                                  .Attr<int64_t>("width")
                                  .Attr<int64_t>("start_y")
                                  .Attr<int64_t>("stride_y")
                                  .Attr<int64_t>("start_x")
                                  .Attr<int64_t>("stride_x"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(resize_jax_conv_head_resized_grad, ConvHeadResizedGrad,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<float>("slope")
                                  .Attr<int64_t>("start_y")
                                  .Attr<int64_t>("stride_y")
                                  .Attr<int64_t>("start_x")
                                  .Attr<int64_t>("stride_x"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(resize_jax_conv_vec_in, ConvVecIn,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>());

XLA_FFI_DEFINE_HANDLER_SYMBOL(resize_jax_conv_weight_grad, ConvWeightGrad,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>());

// The kernels' vector width in floats, for resize_jax.ops.native.vector_lanes().
extern "C" int resize_jax_vector_lanes() { return resize_jax::kVectorLanes; }
