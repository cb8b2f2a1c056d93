// Tests of weir/key.h: stable key hashes, key groups, the key group -> worker
// assignment, and keys of every supported shape routed through KeyBy.

#include <array>
#include <atomic>
#include <compare>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "weir/key.h"
#include "weir/testing.h"
#include "weir/weir.h"

// A user-defined key type with its own stable hash. The hash deliberately
// ignores the last decimal digit, so ids 10..19 share a key group: that lets
// the pipeline test below prove that KeyBy used this specialization.
namespace weir_test_keys {
struct UserId {
  uint64_t value = 0;
  auto operator<=>(const UserId& other) const = default;
  template <class H>
  friend H AbslHashValue(H h, const UserId& id) {
    return H::combine(std::move(h), id.value);
  }
};
}  // namespace weir_test_keys

template <>
struct weir::KeyTraits<weir_test_keys::UserId> {
  static uint64_t Hash(const weir_test_keys::UserId& id) {
    return weir::KeyTraits<uint64_t>::Hash(id.value / 10);
  }
};

namespace weir {
namespace {

using weir_test_keys::UserId;

using Uuid = std::array<uint8_t, 16>;

Uuid MakeUuid(uint8_t first) {
  Uuid uuid{};
  for (size_t idx = 0; idx < uuid.size(); ++idx) uuid[idx] = static_cast<uint8_t>(first + idx);
  return uuid;
}

// Keyed state is stored per key group, so the hash of a key must never change
// between builds: a different hash would silently orphan every key's state in
// existing checkpoints. These constants were computed once; if this test
// fails, the hash function changed and restoring old checkpoints breaks.
TEST(KeyTraitsTest, HashesAreStable) {
  EXPECT_EQ(KeyTraits<int64_t>::Hash(0), 0xb800bd6c02472607ULL);
  EXPECT_EQ(KeyTraits<int64_t>::Hash(1), 0xcb30a855101ade54ULL);
  EXPECT_EQ(KeyTraits<int64_t>::Hash(-1), 0xd92529b7dba27afaULL);
  EXPECT_EQ(KeyTraits<int32_t>::Hash(42), 0x6880cd9ebdbd6eb6ULL);
  EXPECT_EQ(KeyTraits<uint64_t>::Hash(123456789), 0xe79893f4e6383471ULL);
  EXPECT_EQ(KeyTraits<std::string>::Hash(""), 0x9ca066f1a4ab2eeaULL);
  EXPECT_EQ(KeyTraits<std::string>::Hash("a"), 0xe00e9b4c0df901d2ULL);
  EXPECT_EQ(KeyTraits<std::string>::Hash("user-42"), 0x3988e8cecebc6e2fULL);
  EXPECT_EQ(KeyTraits<std::string>::Hash("the quick brown fox jumps over the lazy dog"),
            0x3a19e76c52a8ad5eULL);
  Uuid uuid{};
  for (uint8_t idx = 0; idx < 16; ++idx) uuid[idx] = idx;
  EXPECT_EQ(KeyTraits<Uuid>::Hash(uuid), 0x31dea9b895a512f3ULL);
  EXPECT_EQ((KeyTraits<std::pair<int64_t, std::string>>::Hash({7, "x"})), 0xd4ca95608476ff52ULL);
  EXPECT_EQ((KeyTraits<std::tuple<int32_t, std::string, uint64_t>>::Hash({1, "y", 2})),
            0x82258ff0a79ecfb1ULL);
}

TEST(KeyTraitsTest, KeyGroupsAreStable) {
  EXPECT_EQ(KeyGroupOf<int64_t>(1, 1), 0);
  EXPECT_EQ(KeyGroupOf<int64_t>(1, 2), 1);
  EXPECT_EQ(KeyGroupOf<int64_t>(1, 7), 3);
  EXPECT_EQ(KeyGroupOf<int64_t>(1, 128), 57);
  EXPECT_EQ(KeyGroupOf<int64_t>(1, 1000), 281);
  EXPECT_EQ(KeyGroupOf<int64_t>(1, 32768), 13241);
  EXPECT_EQ(KeyGroupOf<int64_t>(-7, 128), 11);
  EXPECT_EQ(KeyGroupOf<int64_t>(-7, 32768), 21515);
  EXPECT_EQ(KeyGroupOf<std::string>("user-42", 7), 3);
  EXPECT_EQ(KeyGroupOf<std::string>("user-42", 128), 16);
  EXPECT_EQ(KeyGroupOf<std::string>("user-42", 32768), 8592);
}

TEST(KeyTraitsTest, IntegralKeysHashByValue) {
  // The hash depends on the value, not on the integer type it is held in, so
  // changing a key field from int32 to int64 keeps the state addressable.
  EXPECT_EQ(KeyTraits<int32_t>::Hash(42), KeyTraits<int64_t>::Hash(42));
  EXPECT_EQ(KeyTraits<uint16_t>::Hash(42), KeyTraits<uint64_t>::Hash(42));
  EXPECT_EQ(KeyTraits<int32_t>::Hash(-5), KeyTraits<int64_t>::Hash(-5));
  enum class Color : int { kRed = 3 };
  EXPECT_EQ(KeyTraits<Color>::Hash(Color::kRed), KeyTraits<int>::Hash(3));
}

TEST(KeyTraitsTest, CompositeKeysDependOnEveryPartAndItsPosition) {
  using Pair = std::pair<int, int>;
  EXPECT_EQ(KeyTraits<Pair>::Hash({1, 2}), KeyTraits<Pair>::Hash({1, 2}));
  EXPECT_NE(KeyTraits<Pair>::Hash({1, 2}), KeyTraits<Pair>::Hash({2, 1}));
  EXPECT_NE(KeyTraits<Pair>::Hash({1, 2}), KeyTraits<Pair>::Hash({1, 3}));

  using Tuple = std::tuple<std::string, int64_t, Uuid>;
  const Tuple base{"a", 1, MakeUuid(0)};
  EXPECT_EQ(KeyTraits<Tuple>::Hash(base), KeyTraits<Tuple>::Hash(Tuple{"a", 1, MakeUuid(0)}));
  EXPECT_NE(KeyTraits<Tuple>::Hash(base), KeyTraits<Tuple>::Hash(Tuple{"b", 1, MakeUuid(0)}));
  EXPECT_NE(KeyTraits<Tuple>::Hash(base), KeyTraits<Tuple>::Hash(Tuple{"a", 2, MakeUuid(0)}));
  EXPECT_NE(KeyTraits<Tuple>::Hash(base), KeyTraits<Tuple>::Hash(Tuple{"a", 1, MakeUuid(1)}));

  // Strings hash their bytes: the split between parts matters.
  using Strings = std::pair<std::string, std::string>;
  EXPECT_NE(KeyTraits<Strings>::Hash({"ab", "c"}), KeyTraits<Strings>::Hash({"a", "bc"}));

  EXPECT_NE(KeyTraits<Uuid>::Hash(MakeUuid(0)), KeyTraits<Uuid>::Hash(MakeUuid(1)));
  Uuid last_byte = MakeUuid(0);
  last_byte[15] ^= 1;
  EXPECT_NE(KeyTraits<Uuid>::Hash(MakeUuid(0)), KeyTraits<Uuid>::Hash(last_byte));

  static_assert(kHasKeyTraits<int>);
  static_assert(kHasKeyTraits<std::string>);
  static_assert(kHasKeyTraits<Uuid>);
  static_assert(kHasKeyTraits<std::pair<int, std::string>>);
  static_assert(kHasKeyTraits<std::tuple<int, std::string, Uuid>>);
  static_assert(kHasKeyTraits<UserId>);
  static_assert(!kHasKeyTraits<double>);
  static_assert(!kHasKeyTraits<std::vector<int>>);
}

TEST(KeyGroupTest, KeyGroupIsWithinRange) {
  for (int max_parallelism : {1, 2, 3, 7, 128, 1000, 32768}) {
    for (int64_t key = -5000; key < 5000; ++key) {
      const int group = KeyGroupOf(key, max_parallelism);
      ASSERT_GE(group, 0) << "key " << key << ", max_parallelism " << max_parallelism;
      ASSERT_LT(group, max_parallelism) << "key " << key << ", max_parallelism " << max_parallelism;
    }
    for (int idx = 0; idx < 2000; ++idx) {
      const int group = KeyGroupOf(std::string("k") + std::to_string(idx), max_parallelism);
      ASSERT_GE(group, 0);
      ASSERT_LT(group, max_parallelism);
    }
    // Extreme hashes.
    for (uint64_t hash : {uint64_t{0}, uint64_t{1}, ~uint64_t{0}, uint64_t{1} << 63}) {
      const int group = KeyGroupForHash(hash, max_parallelism);
      EXPECT_GE(group, 0);
      EXPECT_LT(group, max_parallelism);
    }
  }
}

// A power-of-two max_parallelism takes a mask and a shift instead of the
// divisions, and a KeyBy routes with KeyGroupRouter: the key groups and owners
// must be exactly those of the division formula, or state checkpointed before
// would land in other key groups.
TEST(KeyGroupTest, MaskAndShiftEqualTheDivisionFormula) {
  uint64_t hash = 0x9e3779b97f4a7c15ULL;
  for (int max_parallelism : {1, 2, 4, 64, 128, 1024, 32768, 3, 1000}) {
    for (int idx = 0; idx < 20000; ++idx) {
      hash = internal::Mix64(hash + static_cast<uint64_t>(idx));
      const int expected =
          static_cast<int>(internal::Mix64(hash) % static_cast<uint64_t>(max_parallelism));
      ASSERT_EQ(KeyGroupForHash(hash, max_parallelism), expected)
          << "hash " << hash << ", max_parallelism " << max_parallelism;
    }
    for (int parallelism : {1, 2, 3, 5, 7, 100}) {
      if (parallelism > max_parallelism) continue;
      const internal::KeyGroupRouter router(max_parallelism, parallelism);
      for (int idx = 0; idx < 2000; ++idx) {
        hash = internal::Mix64(hash + static_cast<uint64_t>(idx));
        const auto group =
            static_cast<int64_t>(internal::Mix64(hash) % static_cast<uint64_t>(max_parallelism));
        ASSERT_EQ(router.WorkerForHash(hash),
                  static_cast<int>(group * parallelism / max_parallelism))
            << "hash " << hash << ", max_parallelism " << max_parallelism << ", parallelism "
            << parallelism;
      }
      for (int group = 0; group < max_parallelism; ++group) {
        ASSERT_EQ(WorkerForKeyGroup(group, max_parallelism, parallelism),
                  static_cast<int>(static_cast<int64_t>(group) * parallelism / max_parallelism))
            << "group " << group << ", max_parallelism " << max_parallelism << ", parallelism "
            << parallelism;
      }
    }
  }
}

// Flink's assignment: worker w owns a contiguous range of key groups, the
// ranges are in worker order, cover every key group, every worker gets at
// least one and their sizes differ by at most one.
TEST(KeyGroupTest, WorkersOwnContiguousBalancedRanges) {
  const std::vector<std::pair<int, int>> cases = {
      {1, 1},     {2, 1},    {2, 2},     {7, 3},        {10, 3},        {128, 1},
      {128, 2},   {128, 3},  {128, 4},   {128, 7},      {128, 100},     {128, 127},
      {128, 128}, {1000, 6}, {32768, 5}, {32768, 1000}, {32768, 32768},
  };
  for (const auto& [max_parallelism, parallelism] : cases) {
    SCOPED_TRACE(::testing::Message()
                 << "max_parallelism " << max_parallelism << ", parallelism " << parallelism);
    std::vector<int> range_size(parallelism, 0);
    int previous = 0;
    for (int group = 0; group < max_parallelism; ++group) {
      const int worker = WorkerForKeyGroup(group, max_parallelism, parallelism);
      ASSERT_GE(worker, 0);
      ASSERT_LT(worker, parallelism);
      if (group == 0) {
        ASSERT_EQ(worker, 0);
      } else {
        // Non-decreasing in steps of at most one: contiguous, nothing skipped.
        ASSERT_TRUE(worker == previous || worker == previous + 1)
            << "group " << group << " -> worker " << worker << " after " << previous;
      }
      ++range_size[worker];
      previous = worker;
    }
    EXPECT_EQ(previous, parallelism - 1);
    const int floor_size = max_parallelism / parallelism;
    for (int worker = 0; worker < parallelism; ++worker) {
      EXPECT_GE(range_size[worker], floor_size) << "worker " << worker;
      EXPECT_LE(range_size[worker], floor_size + 1) << "worker " << worker;
    }
  }
}

// Sum over groups of (observed - expected)^2 / expected.
double ChiSquare(const std::vector<int>& counts, double expected) {
  double chi_square = 0;
  for (int count : counts) chi_square += (count - expected) * (count - expected) / expected;
  return chi_square;
}

// 100k keys over 128 key groups: a uniform hash gives a chi-square statistic
// around 127 (the degrees of freedom); 182 is the 99.9th percentile. The
// hash is deterministic, so this either always passes or always fails.
TEST(KeyGroupTest, IntKeysSpreadEvenly) {
  constexpr int kGroups = 128;
  constexpr int kKeys = 100'000;
  std::vector<int> counts(kGroups, 0);
  for (int key = 0; key < kKeys; ++key) ++counts[KeyGroupOf(key, kGroups)];
  const double expected = static_cast<double>(kKeys) / kGroups;
  EXPECT_LT(ChiSquare(counts, expected), 182.0);
  for (int group = 0; group < kGroups; ++group) {
    EXPECT_GT(counts[group], expected * 0.8) << "group " << group;
    EXPECT_LT(counts[group], expected * 1.2) << "group " << group;
  }
}

TEST(KeyGroupTest, StringKeysSpreadEvenly) {
  constexpr int kGroups = 128;
  constexpr int kKeys = 100'000;
  std::vector<int> counts(kGroups, 0);
  for (int key = 0; key < kKeys; ++key)
    ++counts[KeyGroupOf("user-" + std::to_string(key), kGroups)];
  const double expected = static_cast<double>(kKeys) / kGroups;
  EXPECT_LT(ChiSquare(counts, expected), 182.0);
  for (int group = 0; group < kGroups; ++group) {
    EXPECT_GT(counts[group], expected * 0.8) << "group " << group;
    EXPECT_LT(counts[group], expected * 1.2) << "group " << group;
  }
}

TEST(KeyGroupTest, KeysSpreadEvenlyOverWorkers) {
  constexpr int kKeys = 100'000;
  for (int parallelism : {2, 3, 4, 7}) {
    std::vector<int> counts(parallelism, 0);
    for (int key = 0; key < kKeys; ++key) {
      ++counts[WorkerForKeyGroup(KeyGroupOf(key, 128), 128, parallelism)];
    }
    for (int worker = 0; worker < parallelism; ++worker) {
      // A worker owns floor or ceil of 128 / parallelism key groups.
      const double share = static_cast<double>(kKeys) / 128.0;
      EXPECT_GT(counts[worker], share * (128 / parallelism) * 0.9)
          << "parallelism " << parallelism << ", worker " << worker;
      EXPECT_LT(counts[worker], share * (128 / parallelism + 1) * 1.1)
          << "parallelism " << parallelism << ", worker " << worker;
    }
  }
}

// ---------------------------------------------------------------------------
// Keys through a pipeline: every record of a key reaches the one worker that
// owns the key's group.

// Emits (key, worker) for every element.
template <class K>
class RecordWorker final : public KeyedProcessFunction<K, int, std::pair<K, int>> {
 public:
  using Base = KeyedProcessFunction<K, int, std::pair<K, int>>;
  absl::Status ProcessElement(const int&, typename Base::Context& ctx,
                              Collector<std::pair<K, int>>& out) override {
    out.Collect({ctx.current_key(), ctx.worker_index()});
    return absl::OkStatus();
  }
};

constexpr int kParallelism = 4;
constexpr int kMaxParallelism = 128;
constexpr int kRecords = 6000;

// Runs 0..kRecords-1 through KeyBy(key_fn) and returns, per key, the set of
// workers that saw it and how many records it had.
template <class KeyFn>
auto RunKeyBy(KeyFn key_fn) {
  using K = std::decay_t<std::invoke_result_t<KeyFn&, const int&>>;
  Pipeline pipeline(
      {.parallelism = kParallelism, .max_parallelism = kMaxParallelism, .batch_size = 64});
  std::vector<int> input(kRecords);
  for (int idx = 0; idx < kRecords; ++idx) input[idx] = idx;
  auto sink = testing::CollectingSink<std::pair<K, int>>::Create();
  pipeline.Source(testing::VectorSource<int>::Create(input))
      .KeyBy(key_fn)
      .Process(RecordWorker<K>{})
      .Sink(sink);
  testing::JobResult result = testing::RunToCompletion(pipeline, absl::Seconds(20));
  EXPECT_TRUE(result.status.ok()) << result.status;
  std::map<K, std::pair<std::set<int>, int>> seen;
  for (const auto& [key, worker] : sink->Values()) {
    seen[key].first.insert(worker);
    ++seen[key].second;
  }
  return seen;
}

template <class K, class Seen>
void ExpectEachKeyOnItsOwner(const Seen& seen, size_t expected_keys, int records_per_key) {
  EXPECT_EQ(seen.size(), expected_keys);
  std::set<int> workers_used;
  for (const auto& [key, workers_and_count] : seen) {
    const auto& [workers, count] = workers_and_count;
    ASSERT_EQ(workers.size(), 1u) << "a key was processed by several workers";
    const int owner =
        WorkerForKeyGroup(KeyGroupOf<K>(key, kMaxParallelism), kMaxParallelism, kParallelism);
    EXPECT_EQ(*workers.begin(), owner);
    EXPECT_EQ(count, records_per_key);
    workers_used.insert(owner);
  }
  EXPECT_EQ(workers_used.size(), static_cast<size_t>(kParallelism));
}

TEST(KeyByTest, IntKeys) {
  auto seen = RunKeyBy([](const int& x) { return x % 100; });
  ExpectEachKeyOnItsOwner<int>(seen, 100, kRecords / 100);
}

TEST(KeyByTest, StringKeys) {
  auto seen = RunKeyBy([](const int& x) { return "k" + std::to_string(x % 50); });
  ExpectEachKeyOnItsOwner<std::string>(seen, 50, kRecords / 50);
}

TEST(KeyByTest, PairKeys) {
  auto seen = RunKeyBy(
      [](const int& x) { return std::pair<int, std::string>(x % 10, std::to_string(x % 4)); });
  // x % 10 and x % 4 together repeat every 20: 20 distinct keys.
  ExpectEachKeyOnItsOwner<std::pair<int, std::string>>(seen, 20, kRecords / 20);
}

TEST(KeyByTest, TupleKeys) {
  auto seen = RunKeyBy([](const int& x) {
    return std::tuple<int64_t, std::string, uint8_t>(x % 5, x % 2 == 0 ? "even" : "odd",
                                                     static_cast<uint8_t>(x % 3));
  });
  ExpectEachKeyOnItsOwner<std::tuple<int64_t, std::string, uint8_t>>(seen, 30, kRecords / 30);
}

TEST(KeyByTest, ArrayKeys) {
  auto seen = RunKeyBy([](const int& x) { return MakeUuid(static_cast<uint8_t>(x % 40)); });
  ExpectEachKeyOnItsOwner<Uuid>(seen, 40, kRecords / 40);
}

TEST(KeyByTest, CustomKeyTypeUsesItsKeyTraits) {
  auto seen = RunKeyBy([](const int& x) { return UserId{static_cast<uint64_t>(x % 200)}; });
  ExpectEachKeyOnItsOwner<UserId>(seen, 200, kRecords / 200);
  // The specialization hashes id / 10: ids of the same decade share a worker.
  // (With a hash of the whole id, 20 decades of 10 ids would all stay
  // together only by a vanishingly unlikely accident.)
  for (uint64_t decade = 0; decade < 20; ++decade) {
    std::set<int> workers;
    for (uint64_t id = decade * 10; id < decade * 10 + 10; ++id) {
      const auto it = seen.find(UserId{id});
      ASSERT_NE(it, seen.end());
      workers.insert(*it->second.first.begin());
    }
    EXPECT_EQ(workers.size(), 1u) << "decade " << decade;
  }
}

// A record whose key is one of its members.
struct Keyed {
  std::string id;
  int value = 0;
};

// Emits, per record, whether the key the function sees is the record's own
// member (the same object) and whether it holds the same text.
class KeyIdentity final : public KeyedProcessFunction<std::string, Keyed, std::pair<bool, bool>> {
 public:
  absl::Status ProcessElement(const Keyed& record, Context& ctx,
                              Collector<std::pair<bool, bool>>& out) override {
    out.Collect({&ctx.current_key() == &record.id, ctx.current_key() == record.id});
    return absl::OkStatus();
  }
};

std::vector<std::pair<bool, bool>> RunKeyIdentity(bool by_reference) {
  Pipeline pipeline({.parallelism = 2, .batch_size = 16});
  std::vector<Keyed> input;
  for (int idx = 0; idx < 500; ++idx) {
    input.push_back({"content-" + std::to_string(idx % 37) + "-with-a-long-id", idx});
  }
  auto sink = testing::CollectingSink<std::pair<bool, bool>>::Create();
  auto source = pipeline.Source(testing::VectorSource<Keyed>::Create(input));
  if (by_reference) {
    source.KeyBy([](const Keyed& k) -> const std::string& { return k.id; })
        .Process(KeyIdentity{})
        .Sink(sink);
  } else {
    source.KeyBy([](const Keyed& k) { return k.id; }).Process(KeyIdentity{}).Sink(sink);
  }
  testing::JobResult result = testing::RunToCompletion(pipeline, absl::Seconds(20));
  EXPECT_TRUE(result.status.ok()) << result.status;
  return sink->Values();
}

// A key function that returns a reference to the record's member hands the
// keyed function that member itself, not a copy; one that returns a value
// hands it the value it returned.
TEST(KeyByTest, KeyFunctionReturningAReferenceIsNotCopied) {
  const std::vector<std::pair<bool, bool>> by_reference = RunKeyIdentity(true);
  ASSERT_EQ(by_reference.size(), 500u);
  for (const auto& [same_object, same_text] : by_reference) {
    EXPECT_TRUE(same_object);
    EXPECT_TRUE(same_text);
  }
  const std::vector<std::pair<bool, bool>> by_value = RunKeyIdentity(false);
  ASSERT_EQ(by_value.size(), 500u);
  for (const auto& [same_object, same_text] : by_value) {
    EXPECT_FALSE(same_object);
    EXPECT_TRUE(same_text);
  }
}

// What the functions taking their elements emit: (the key the function
// sees, the id moved out of the element or "timer", the key's sum).
using TakerOut = std::tuple<std::string, std::string, int>;
const ValueStateDescriptor<int> kTakerSum{"sum"};

// Moves the key's member out of `record` first, then adds its value to the
// key's sum: the state reached is the element's key's, not the emptied
// member's.
template <class Ctx>
TakerOut TakeElement(Keyed&& record, Ctx& ctx) {
  std::string id = std::move(record.id);
  ValueState<int> sum = ctx.GetState(kTakerSum);
  const int total = (sum.Get() != nullptr ? *sum.Get() : 0) + record.value;
  sum.Update(total);
  return TakerOut(ctx.current_key(), std::move(id), total);
}

// Takes its elements (the rvalue overload); its timers emit (the key,
// "timer", the sum). Counts which overload ran: calls[0] const&, calls[1] &&.
class KeyTaker final : public KeyedProcessFunction<std::string, Keyed, TakerOut> {
 public:
  explicit KeyTaker(std::shared_ptr<std::atomic<int>[]> calls) : calls_(std::move(calls)) {}
  absl::Status ProcessElement(const Keyed& record, Context& ctx,
                              Collector<TakerOut>& out) override {
    calls_[0].fetch_add(1);
    return ProcessElement(Keyed(record), ctx, out);
  }
  absl::Status ProcessElement(Keyed&& record, Context& ctx, Collector<TakerOut>& out) {
    calls_[1].fetch_add(1);
    out.Collect(TakeElement(std::move(record), ctx));
    ctx.timer_service().RegisterEventTimeTimer(ctx.timestamp());
    return absl::OkStatus();
  }
  absl::Status OnTimer(Timestamp, OnTimerContext& ctx, Collector<TakerOut>& out) override {
    const int* sum = ctx.GetState(kTakerSum).Get();
    out.Collect(TakerOut(ctx.current_key(), "timer", sum != nullptr ? *sum : -1));
    return absl::OkStatus();
  }

 private:
  std::shared_ptr<std::atomic<int>[]> calls_;
};

// The same with a broadcast input (ints, unused), and no timers.
class BroadcastKeyTaker final
    : public KeyedBroadcastProcessFunction<std::string, Keyed, int, TakerOut> {
 public:
  explicit BroadcastKeyTaker(std::shared_ptr<std::atomic<int>[]> calls)
      : calls_(std::move(calls)) {}
  absl::Status ProcessElement(const Keyed& record, ReadOnlyContext& ctx,
                              Collector<TakerOut>& out) override {
    calls_[0].fetch_add(1);
    return ProcessElement(Keyed(record), ctx, out);
  }
  absl::Status ProcessElement(Keyed&& record, ReadOnlyContext& ctx, Collector<TakerOut>& out) {
    calls_[1].fetch_add(1);
    out.Collect(TakeElement(std::move(record), ctx));
    return absl::OkStatus();
  }
  absl::Status ProcessBroadcastElement(const int&, Context&, Collector<TakerOut>&) override {
    return absl::OkStatus();
  }

 private:
  std::shared_ptr<std::atomic<int>[]> calls_;
};

// 500 elements over 37 long keys, a KeyBy by reference to the key's member,
// `process` applied to the keyed stream, and what a run must give.
struct TakerRun {
  std::vector<TakerOut> values;
  std::map<std::string, int> sums;  // expected, per key
  int const_calls = 0;
  int rvalue_calls = 0;
};
template <class Apply>
TakerRun RunTaker(Apply process) {
  Pipeline pipeline({.parallelism = 2, .batch_size = 16});
  TakerRun run;
  std::vector<Keyed> input;
  for (int idx = 0; idx < 500; ++idx) {
    Keyed record{"content-" + std::to_string(idx % 37) + "-with-a-long-id", idx};
    run.sums[record.id] += idx;
    input.push_back(std::move(record));
  }
  auto calls = std::shared_ptr<std::atomic<int>[]>(new std::atomic<int>[2] { 0, 0 });
  auto sink = testing::CollectingSink<TakerOut>::Create();
  auto keyed = pipeline.Source(testing::VectorSource<Keyed>::Create(input))
                   .KeyBy([](const Keyed& k) -> const std::string& { return k.id; });
  process(pipeline, keyed, calls).Sink(sink);
  testing::JobResult result = testing::RunToCompletion(pipeline, absl::Seconds(20));
  EXPECT_TRUE(result.status.ok()) << result.status;
  run.values = sink->Values();
  run.const_calls = calls[0].load();
  run.rvalue_calls = calls[1].load();
  return run;
}

// Every element was handed over as an rvalue, and each saw its own key (the
// id it moved out) and its key's running sum. Returns the timers' outputs.
std::vector<TakerOut> ExpectElementsKeptTheirKeys(const TakerRun& run) {
  EXPECT_EQ(run.const_calls, 0);
  EXPECT_EQ(run.rvalue_calls, 500);
  std::map<std::string, int> last_sum;
  std::vector<TakerOut> timers;
  int elements = 0;
  for (const TakerOut& value : run.values) {
    const auto& [key, id, sum] = value;
    EXPECT_TRUE(run.sums.contains(key)) << "key '" << key << "'";
    if (id == "timer") {
      timers.push_back(value);
      continue;
    }
    ++elements;
    EXPECT_EQ(key, id);
    EXPECT_GE(sum, last_sum[key]) << key;
    last_sum[key] = sum;
  }
  EXPECT_EQ(elements, 500);
  EXPECT_EQ(last_sum, run.sums);
  return timers;
}

// A keyed function that declares ProcessElement(In&&) is handed every
// element as an rvalue; moving the key's member out of it changes neither
// ctx.current_key() nor the state and timers the element reaches.
TEST(KeyByTest, AFunctionTakingElementsKeepsTheKeyAfterMovingIt) {
  const TakerRun run = RunTaker(
      [](Pipeline&, auto& keyed, auto calls) { return keyed.Process(KeyTaker(std::move(calls))); });
  const std::vector<TakerOut> timers = ExpectElementsKeptTheirKeys(run);
  EXPECT_EQ(timers.size(), 500u);  // one per element: each has its own timestamp
  for (const auto& [key, id, sum] : timers) {
    EXPECT_EQ(sum, run.sums.at(key)) << key;
  }
}

// The same for a keyed broadcast function.
TEST(KeyByTest, ABroadcastFunctionTakingElementsKeepsTheKeyAfterMovingIt) {
  const TakerRun run = RunTaker([](Pipeline& pipeline, auto& keyed, auto calls) {
    auto side = pipeline.Source(testing::VectorSource<int>::Create({1, 2, 3})).Broadcast();
    return keyed.Connect(side).Process(BroadcastKeyTaker(std::move(calls)));
  });
  EXPECT_TRUE(ExpectElementsKeptTheirKeys(run).empty());
}

}  // namespace
}  // namespace weir
