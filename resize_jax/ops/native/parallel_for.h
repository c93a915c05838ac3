// Shared by the native kernels: a parallel loop over XLA's intra-op thread pool.

#ifndef RESIZE_JAX_OPS_NATIVE_PARALLEL_FOR_H_
#define RESIZE_JAX_OPS_NATIVE_PARALLEL_FOR_H_

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>

#include "xla/ffi/api/ffi.h"

namespace resize_jax {

// Runs fn(task) for task in [0, num_tasks) on the pool's threads and the caller's, and
// returns when all are done. The caller never waits for a scheduled task to *start*: XLA may
// run several custom calls at once on the same pool, and each blocking on queued work would
// deadlock it. Workers that start late find nothing left and return; the state they touch is
// shared-owned so it outlives this call.
inline void parallel_for(xla::ffi::ThreadPool& pool, int64_t num_tasks,
                  const std::function<void(int64_t)>& fn) {
  const int64_t workers = std::min<int64_t>(pool.num_threads(), num_tasks - 1);
  if (workers <= 0) {
    for (int64_t t = 0; t < num_tasks; ++t) fn(t);
    return;
  }
  struct State {
    std::atomic<int64_t> next{0};
    std::atomic<int64_t> completed{0};
    std::mutex mu;
    std::condition_variable cv;
  };
  auto state = std::make_shared<State>();
  // Only ever called while some task is unfinished, so `fn` is still alive.
  auto run_one = [state, &fn, num_tasks]() -> bool {
    const int64_t t = state->next++;
    if (t >= num_tasks) return false;
    fn(t);
    // The lock only for the last task: taken after the count, it orders the notification
    // after the waiter's check of the count (no lost wake-up), and small tasks do not
    // serialise on it.
    if (state->completed.fetch_add(1) + 1 == num_tasks) {
      std::lock_guard<std::mutex> lock(state->mu);
      state->cv.notify_all();
    }
    return true;
  };
  for (int64_t i = 0; i < workers; ++i) {
    pool.Schedule([state, run_one] {
      while (run_one()) {
      }
    });
  }
  while (run_one()) {
  }
  std::unique_lock<std::mutex> lock(state->mu);
  state->cv.wait(lock, [&] { return state->completed.load() == num_tasks; });
}

}  // namespace resize_jax

#endif  // RESIZE_JAX_OPS_NATIVE_PARALLEL_FOR_H_
