// Separable resize of NHWC images by banded interpolation matrices (resize_jax.ops.resize),
// as an XLA FFI custom call on CPU.
//
// Why hand-written: a resize by an irregular factor (the saliency sampler's 266 -> 224 copy of
// an 800-pixel image) has no regular band, so XLA runs it as two dense matrix products, each
// behind a transposing copy of the images: `in` multiply-adds per output instead of the
// band's K, and two passes that move the batch around. Here each output row is the K rows it
// reads mixed as contiguous vectors, then resized along the row by its band.
//
//   x: f32[B, H, W, C]   starts_y: s32[h], weights_y: f32[h, Ky]   starts_x: s32[w],
//   weights_x: f32[w, Kx]   out: f32[B, h, w, C]
//   out[b, o, p, c] = sum_{i < Ky} weights_y[o, i] *
//                     sum_{j < Kx} weights_x[p, j] * x[b, starts_y[o] + i, starts_x[p] + j, c]
// Every band lies inside the image (0 <= start, start + K <= size): the caller shifts bands
// that would run past a border and gives the shifted-in taps zero weight.
// Work is split over (batch, output row) across XLA's intra-op thread pool.

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

// One output row: `mixed` = the band's rows of the image mixed (contiguous, vectorised), then
// each output pixel the band's pixels of `mixed`.
template <int kChannels>
void resize_row(const float* image, const Band& by, const Band& bx, int64_t width,
                int64_t channels_rt, int64_t o, float* mixed, float* out_row) {
  const int64_t channels = kChannels > 0 ? kChannels : channels_rt;
  const int64_t line = width * channels;
  const float* first = image + int64_t{by.starts[o]} * line;
  const float* wy = by.weights + o * by.taps;
  for (int64_t e = 0; e < line; ++e) mixed[e] = wy[0] * first[e];
  for (int64_t i = 1; i < by.taps; ++i) {
    const float* row = first + i * line;
    const float weight = wy[i];
    for (int64_t e = 0; e < line; ++e) mixed[e] += weight * row[e];
  }
  for (int64_t p = 0; p < bx.out; ++p) {
    const float* wx = bx.weights + p * bx.taps;
    const float* pixel = mixed + int64_t{bx.starts[p]} * channels;
    float acc[kChannels > 0 ? kChannels : 1];
    if constexpr (kChannels > 0) {
      for (int c = 0; c < kChannels; ++c) acc[c] = wx[0] * pixel[c];
      for (int64_t j = 1; j < bx.taps; ++j) {
        for (int c = 0; c < kChannels; ++c) acc[c] += wx[j] * pixel[j * kChannels + c];
      }
      std::memcpy(out_row + p * kChannels, acc, sizeof(acc));
    } else {
      for (int64_t c = 0; c < channels; ++c) {
        float sum = wx[0] * pixel[c];
        for (int64_t j = 1; j < bx.taps; ++j) sum += wx[j] * pixel[j * channels + c];
        out_row[p * channels + c] = sum;
      }
    }
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
  parallel_for(pool, batch * by.out, [&](int64_t task) {
    thread_local std::vector<float> mixed;
    mixed.resize(width * channels);
    const int64_t b = task / by.out, row = task % by.out;
    const float* image = images + b * height * width * channels;
    float* out_row = o + task * out_line;
    switch (channels) {
      case 1: return resize_row<1>(image, by, bx, width, 1, row, mixed.data(), out_row);
      case 3: return resize_row<3>(image, by, bx, width, 3, row, mixed.data(), out_row);
      default:
        return resize_row<0>(image, by, bx, width, channels, row, mixed.data(), out_row);
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
