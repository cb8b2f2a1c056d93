// WorkerSignal: how a worker with nothing to do sleeps, and how others wake it.

#ifndef WEIR_LIB_RUNTIME_WORKER_SIGNAL_H_
#define WEIR_LIB_RUNTIME_WORKER_SIGNAL_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>

namespace weir::internal {

// Notify() costs two atomic operations unless the worker sleeps; a Notify()
// racing with Sleep() is never lost (both sides use sequentially consistent
// operations on `pending_` and `sleeping_`).
class WorkerSignal {
 public:
  void Notify() {
    pending_.store(true, std::memory_order_seq_cst);
    if (sleeping_.load(std::memory_order_seq_cst)) {
      std::lock_guard<std::mutex> lock(mutex_);
      cv_.notify_one();
    }
  }

  // Sleeps until notified or `timeout` passes.
  void Sleep(std::chrono::microseconds timeout) {
    sleeping_.store(true, std::memory_order_seq_cst);
    if (!pending_.exchange(false, std::memory_order_seq_cst)) {
      std::unique_lock<std::mutex> lock(mutex_);
      cv_.wait_for(lock, timeout, [this] { return pending_.load(std::memory_order_seq_cst); });
      pending_.store(false, std::memory_order_seq_cst);
    }
    sleeping_.store(false, std::memory_order_seq_cst);
  }

 private:
  std::atomic<bool> pending_{false};
  std::atomic<bool> sleeping_{false};
  std::mutex mutex_;
  std::condition_variable cv_;
};

}  // namespace weir::internal

#endif  // WEIR_LIB_RUNTIME_WORKER_SIGNAL_H_
