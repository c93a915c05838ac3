// Separable resize of NHWC images by banded interpolation matrices (resize_jax.ops.resize),
// as an XLA FFI custom call on CPU.
//
// Why hand-written: a resize by an irregular factor (the saliency sampler's 266 -> 224 copy of
// an 800-pixel image) has no regular band, so XLA runs it as two dense matrix products, each
// behind a transposing copy of the images: `in` multiply-adds per output instead of the
// band's K, and two passes that move the batch around. Here each output row is the K rows it
// reads mixed as contiguous vectors, then resized along the row by its band (or, when the
// output has more rows than the image, the image rows are resized along x first).
//
//   x: f32[B, H, W, C]   starts_y: s32[h], weights_y: f32[h, Ky]   starts_x: s32[w],
//   weights_x: f32[w, Kx]   out: f32[B, h, w, C]
//   out[b, o, p, c] = sum_{i < Ky} weights_y[o, i] *
//                     sum_{j < Kx} weights_x[p, j] * x[b, starts_y[o] + i, starts_x[p] + j, c]
// Every band lies inside the image (0 <= start, start + K <= size): the caller shifts bands
// that would run past a border and gives the shifted-in taps zero weight.
// Work is split over (batch, block of output rows) across XLA's intra-op thread pool.

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "parallel_for.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

using resize_jax::parallel_for;

struct Band {
  const int32_t* starts;
  const float* weights;  // [out, taps]
  int64_t out, taps;
};

ffi::Error band_of(const ffi::AnyBuffer& starts, const ffi::AnyBuffer& weights, int64_t in_size,
                   const char* axis, Band* band) {
  auto sd = starts.dimensions();
  auto wd = weights.dimensions();
  if (starts.element_type() != ffi::DataType::S32 || sd.size() != 1 ||
      weights.element_type() != ffi::DataType::F32 || wd.size() != 2 || wd[0] != sd[0] ||
      wd[1] < 1 || wd[1] > in_size) {
    return ffi::Error::InvalidArgument(std::string("bad band along ") + axis);
  }
  *band = {reinterpret_cast<const int32_t*>(starts.untyped_data()),
           reinterpret_cast<const float*>(weights.untyped_data()), sd[0], wd[1]};
  for (int64_t o = 0; o < band->out; ++o) {
    if (band->starts[o] < 0 || band->starts[o] + band->taps > in_size) {
      return ffi::Error::InvalidArgument(std::string("band outside the image along ") + axis);
    }
  }
  return ffi::Error::Success();
}

// One line resized along x by its band: out_line[p] = sum_j wx[p, j] * line[starts[p] + j].
template <int kChannels>
void resize_line(const float* line, const Band& bx, int64_t channels_rt, float* out_line) {
  const int64_t channels = kChannels > 0 ? kChannels : channels_rt;
  for (int64_t p = 0; p < bx.out; ++p) {
    const float* wx = bx.weights + p * bx.taps;
    const float* pixel = line + int64_t{bx.starts[p]} * channels;
    if constexpr (kChannels > 0) {
      float acc[kChannels];
      for (int c = 0; c < kChannels; ++c) acc[c] = wx[0] * pixel[c];
      for (int64_t j = 1; j < bx.taps; ++j) {
        for (int c = 0; c < kChannels; ++c) acc[c] += wx[j] * pixel[j * kChannels + c];
      }
      std::memcpy(out_line + p * kChannels, acc, sizeof(acc));
    } else {
      for (int64_t c = 0; c < channels; ++c) {
        float sum = wx[0] * pixel[c];
        for (int64_t j = 1; j < bx.taps; ++j) sum += wx[j] * pixel[j * channels + c];
        out_line[p * channels + c] = sum;
      }
    }
  }
}

// out = sum_i weights[i] * rows[i * stride ...], `length` contiguous floats (vectorised).
void mix_rows(const float* rows, int64_t stride, const float* weights, int64_t taps,
              int64_t length, float* out) {
  for (int64_t e = 0; e < length; ++e) out[e] = weights[0] * rows[e];
  for (int64_t i = 1; i < taps; ++i) {
    const float* row = rows + i * stride;
    const float weight = weights[i];
    for (int64_t e = 0; e < length; ++e) out[e] += weight * row[e];
  }
}

// Output rows [o_begin, o_end), mixing along y first: each output row is its band's image
// rows mixed as contiguous vectors (`mixed`), then resized along x. The cheaper order when
// the image has more rows than the output (downsampling).
template <int kChannels>
void rows_y_first(const float* image, const Band& by, const Band& bx, int64_t width,
                  int64_t channels, int64_t o_begin, int64_t o_end, std::vector<float>& mixed,
                  float* out) {
  const int64_t line = width * channels, out_line = bx.out * channels;
  mixed.resize(line);
  for (int64_t o = o_begin; o < o_end; ++o) {
    mix_rows(image + int64_t{by.starts[o]} * line, line, by.weights + o * by.taps, by.taps, line,
             mixed.data());
    resize_line<kChannels>(mixed.data(), bx, channels, out + (o - o_begin) * out_line);
  }
}

// The same rows resizing along x first: the image rows the block reads, each resized along x
// once (`resized`), then mixed along y as vectors of the output's width. The cheaper order
// when the output has more rows than the image (upsampling, e.g. a 31-cell grid to 224):
// the per-pixel x pass runs on H rows instead of h.
template <int kChannels>
void rows_x_first(const float* image, const Band& by, const Band& bx, int64_t width,
                  int64_t channels, int64_t o_begin, int64_t o_end, std::vector<float>& resized,
                  float* out) {
  const int64_t line = width * channels, out_line = bx.out * channels;
  int64_t lo = by.starts[o_begin], hi = lo;
  for (int64_t o = o_begin; o < o_end; ++o) {
    lo = std::min<int64_t>(lo, by.starts[o]);
    hi = std::max<int64_t>(hi, int64_t{by.starts[o]} + by.taps);
  }
  resized.resize((hi - lo) * out_line);
  for (int64_t r = lo; r < hi; ++r) {
    resize_line<kChannels>(image + r * line, bx, channels, resized.data() + (r - lo) * out_line);
  }
  for (int64_t o = o_begin; o < o_end; ++o) {
    mix_rows(resized.data() + (by.starts[o] - lo) * out_line, out_line, by.weights + o * by.taps,
             by.taps, out_line, out + (o - o_begin) * out_line);
  }
}

ffi::Error BandedResize(ffi::ThreadPool pool, ffi::AnyBuffer x, ffi::AnyBuffer starts_y,
                        ffi::AnyBuffer weights_y, ffi::AnyBuffer starts_x,
                        ffi::AnyBuffer weights_x, ffi::Result<ffi::AnyBuffer> out) {
  auto xd = x.dimensions();
  auto od = out->dimensions();
  if (x.element_type() != ffi::DataType::F32 || xd.size() != 4 || od.size() != 4 ||
      od[0] != xd[0] || od[3] != xd[3]) {
    return ffi::Error::InvalidArgument("x must be f32[B, H, W, C], out f32[B, h, w, C]");
  }
  const int64_t batch = xd[0], height = xd[1], width = xd[2], channels = xd[3];
  Band by, bx;
  if (auto error = band_of(starts_y, weights_y, height, "y", &by); error.failure()) return error;
  if (auto error = band_of(starts_x, weights_x, width, "x", &bx); error.failure()) return error;
  if (by.out != od[1] || bx.out != od[2]) {
    return ffi::Error::InvalidArgument("the bands' output sizes must be out's h and w");
  }
  const float* images = reinterpret_cast<const float*>(x.untyped_data());
  float* o = reinterpret_cast<float*>(out->untyped_data());
  const int64_t out_line = bx.out * channels;
  // Multiply-adds per image in each order, a vectorised one counted as 1/8 of a per-pixel one.
  const double y_first = (double(by.out) * by.taps * width * channels) / 8 +
                         double(by.out) * bx.out * bx.taps * channels;
  const double x_first = double(height) * bx.out * bx.taps * channels +
                         (double(by.out) * by.taps * out_line) / 8;
  const bool along_x_first = x_first < y_first;
  // Blocks of output rows of ~16K outputs each: enough work per task to hide its
  // scheduling, and few enough x-first rows recomputed at the blocks' edges.
  const int64_t block = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, out_line));
  const int64_t blocks = (by.out + block - 1) / block;
  parallel_for(pool, batch * blocks, [&](int64_t task) {
    thread_local std::vector<float> scratch;
    const int64_t b = task / blocks, o_begin = (task % blocks) * block;
    const int64_t o_end = std::min(by.out, o_begin + block);
    const float* image = images + b * height * width * channels;
    float* out_rows = o + (b * by.out + o_begin) * out_line;
    auto run = [&](auto rows) {
      rows(image, by, bx, width, channels, o_begin, o_end, scratch, out_rows);
    };
    switch (channels * 2 + along_x_first) {
      case 2: return run(rows_y_first<1>);
      case 3: return run(rows_x_first<1>);
      case 4: return run(rows_y_first<2>);
      case 5: return run(rows_x_first<2>);
      case 6: return run(rows_y_first<3>);
      case 7: return run(rows_x_first<3>);
      default: return along_x_first ? run(rows_x_first<0>) : run(rows_y_first<0>);
    }
  });
  return ffi::Error::Success();
}

// out_row[p, c] = scale · sum_{j < kw} acc[p·kw + j, c]: the block sums along a row. The
// channel count is a compile-time constant where it can be, so that the sums are registers
// (a runtime channel loop over a buffer the compiler must assume aliased cost as much as
// reading the rows).
template <int kChannels>
void block_sums(const float* acc, int64_t out_width, int32_t kw, int64_t channels_rt,
                float scale, float* out_row) {
  const int64_t channels = kChannels > 0 ? kChannels : channels_rt;
  for (int64_t p = 0; p < out_width; ++p) {
    const float* block = acc + p * kw * channels;
    if constexpr (kChannels > 0) {
      float total[kChannels];
      for (int c = 0; c < kChannels; ++c) total[c] = block[c];
      for (int32_t j = 1; j < kw; ++j) {
        for (int c = 0; c < kChannels; ++c) total[c] += block[j * kChannels + c];
      }
      for (int c = 0; c < kChannels; ++c) out_row[p * kChannels + c] = total[c] * scale;
    } else {
      for (int64_t c = 0; c < channels; ++c) {
        float total = block[c];
        for (int32_t j = 1; j < kw; ++j) total += block[j * channels + c];
        out_row[p * channels + c] = total * scale;
      }
    }
  }
}

// Means of kh×kw blocks: x f32[B, H, W, C] → out f32[B, h, w, C], the blocks starting at row
// `top` and column `left` (a crop read in place: a sliced operand would be copied first).
// Why hand-written: XLA fuses its block means (strided slices added) into whatever reads
// them, and a consumer that pads or reorders the small result (a strided convolution's
// space-to-depth copy) turned the one read of the input into a pass about twice as slow as
// the block means alone. Per output row: the kh input rows summed as contiguous vectors,
// then the kw pixels of each block of that sum, scaled once.
ffi::Error BlockMean(ffi::ThreadPool pool, ffi::AnyBuffer x, ffi::Result<ffi::AnyBuffer> out,
                     int32_t kh, int32_t kw, int32_t top, int32_t left) {
  auto xd = x.dimensions();
  auto od = out->dimensions();
  if (x.element_type() != ffi::DataType::F32 || xd.size() != 4 || od.size() != 4 || kh < 1 ||
      kw < 1 || top < 0 || left < 0 || od[0] != xd[0] || od[3] != xd[3] ||
      top + od[1] * kh > xd[1] || left + od[2] * kw > xd[2]) {
    return ffi::Error::InvalidArgument(
        "x must be f32[B, H, W, C] and out f32[B, h, w, C] with top + h·kh <= H and "
        "left + w·kw <= W");
  }
  const int64_t height = xd[1], width = xd[2], channels = xd[3];
  const int64_t out_height = od[1], out_width = od[2];
  const int64_t line = width * channels, out_line = out_width * channels;
  const int64_t used = out_width * kw * channels;  // the floats of a row the blocks cover
  const float* images = reinterpret_cast<const float*>(x.untyped_data());
  float* o = reinterpret_cast<float*>(out->untyped_data());
  const float scale = 1.f / (static_cast<float>(kh) * static_cast<float>(kw));
  parallel_for(pool, xd[0] * out_height, [&](int64_t task) {
    thread_local std::vector<float> sum;
    sum.resize(used);
    const int64_t b = task / out_height, row = task % out_height;
    const float* first = images + (b * height + top + row * kh) * line + left * channels;
    float* acc = sum.data();
    // The kh rows a chunk at a time, the chunk's partial sums in registers: one pass over
    // the rows instead of kh passes over `acc`. At most kGroup rows per pass, added to the
    // previous passes' sums in `acc` (in cache): the hardware prefetcher follows a few
    // sequential streams, not one per row of a tall block (k = 28, 1792² → 64²: 6.9-7.2 ms
    // read all 28 rows at once, against 4.8-5.0 ms for k = 8's 8 rows of the same input).
    constexpr int64_t kChunk = 64;
    constexpr int32_t kGroup = 8;
    for (int32_t i0 = 0; i0 < kh; i0 += kGroup) {
      const int32_t i1 = std::min(kh, i0 + kGroup);
      const float* rows = first + i0 * line;
      int64_t e = 0;
      for (; e + kChunk <= used; e += kChunk) {
        float part[kChunk];
        for (int64_t l = 0; l < kChunk; ++l) {
          part[l] = i0 == 0 ? rows[e + l] : acc[e + l] + rows[e + l];
        }
        for (int32_t i = 1; i < i1 - i0; ++i) {
          const float* next = rows + i * line + e;
          for (int64_t l = 0; l < kChunk; ++l) part[l] += next[l];
        }
        std::memcpy(acc + e, part, sizeof(part));
      }
      for (; e < used; ++e) {
        float total = i0 == 0 ? rows[e] : acc[e] + rows[e];
        for (int32_t i = 1; i < i1 - i0; ++i) total += rows[i * line + e];
        acc[e] = total;
      }
    }
    float* out_row = o + task * out_line;
    if (channels == 1) {
      block_sums<1>(acc, out_width, kw, 1, scale, out_row);
    } else if (channels == 3) {
      block_sums<3>(acc, out_width, kw, 3, scale, out_row);
    } else {
      block_sums<0>(acc, out_width, kw, channels, scale, out_row);
    }
  });
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(resize_jax_banded_resize, BandedResize,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>());

XLA_FFI_DEFINE_HANDLER_SYMBOL(resize_jax_block_mean, BlockMean,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<int32_t>("kh")
                                  .Attr<int32_t>("kw")
                                  .Attr<int32_t>("top")
                                  .Attr<int32_t>("left"));
