// Batch<T>: the unit in which records move between operators and workers.
// Internal: users never see a Batch.

#ifndef WEIR_INTERNAL_BATCH_H_
#define WEIR_INTERNAL_BATCH_H_

#include <cstddef>
#include <utility>
#include <vector>

#include "weir/time.h"

namespace weir::internal {

// Values and their event timestamps, in two parallel vectors. A consumer may
// move values out; the producer clears and reuses the vectors.
template <class T>
struct Batch {
  std::vector<T> values;
  std::vector<Timestamp> timestamps;

  size_t size() const { return values.size(); }
  bool empty() const { return values.empty(); }
  void clear() {
    values.clear();
    timestamps.clear();
  }
  void reserve(size_t n) {
    values.reserve(n);
    timestamps.reserve(n);
  }
  // An rvalue is moved once, straight into the batch (a by-value parameter
  // cost a second move: nine strings' worth for a record of nine).
  void Push(T&& value, Timestamp ts) {
    values.push_back(std::move(value));
    timestamps.push_back(ts);
  }
  void Push(const T& value, Timestamp ts) {
    values.push_back(value);
    timestamps.push_back(ts);
  }
};

// What travels in an exchange ring: data or an in-band control element.
enum class EnvelopeKind : uint8_t {
  kBatch,
  kWatermark,  // `watermark` holds the sender's new watermark
  kIdle,       // the sender is idle until its next batch or watermark
  kEnd,        // the sender will send nothing more
  kBarrier,    // checkpoint barrier `checkpoint_id`
};

template <class T>
struct Envelope {
  EnvelopeKind kind = EnvelopeKind::kBatch;
  Timestamp watermark = kMinTimestamp;
  int64_t checkpoint_id = 0;
  Batch<T> batch;
};

}  // namespace weir::internal

#endif  // WEIR_INTERNAL_BATCH_H_
