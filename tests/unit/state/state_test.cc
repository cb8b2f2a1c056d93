// Keyed state through the public API (KeyBy + KeyedProcessFunction +
// ctx.GetState), one suite run against every backend at parallelism 1 and 2:
// Memory, RocksDb, and RocksDbTinyCache (see test_backends.h), whose cache is
// smaller than the tests' keys, so values are evicted (written back) and
// missed (read from RocksDB) all the time.
//
// Covered: ValueState / ListState / MapState operations against a reference
// model over random keys; value types (numbers, strings, optional, vector,
// vector<bool>, pair, a protobuf message, a user struct with a weir::Codec);
// MapState key order; several states per function; a state name used with two types;
// TTL; state larger than the RocksDB backend's memory limit (exact results,
// bounded RSS); checkpoint and restore of all three kinds, TTL'd state and
// timers through cancelled runs, at another parallelism and across backends;
// the byte-keyed and the typed (window pane) value tables over a KvStore
// directly: tombstones only for stored values, the same bytes in the store,
// key-ordered write-back, eviction within the limit.
//
// Not testable here: a state of a type without a weir::Codec does not
// compile; GetState's static_assert prints the WEIR_REQUIRE_CODEC message
// ("weir: no weir::Codec<T> for this type. ..."). The ctest
// state.missing_codec_is_a_compile_error compiles state/missing_codec.cc and
// expects exactly that message (see tests/unit/CMakeLists.txt).

#include <google/protobuf/timestamp.pb.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <numeric>
#include <optional>
#include <ostream>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/state/test_backends.h"
#include "weir/testing.h"
#include "weir/weir.h"

namespace weir {
namespace {

// A ValueState's value as an optional (copied), for comparisons.
template <class T>
std::optional<T> Read(const ValueState<T>& state) {
  const T* value = state.Get();
  return value != nullptr ? std::optional<T>(*value) : std::nullopt;
}

using ::testing::HasSubstr;

constexpr absl::Duration kDeadline = absl::Seconds(60);

using test::Backend;
using test::BackendName;
using test::MakeBackend;

// A fresh directory per test, for RocksDB and checkpoints.
class TempDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = absl::StrCat(info->test_suite_name(), "-", info->name());
    for (char& c : name) {
      if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
    }
    root_ = std::filesystem::temp_directory_path() /
            absl::StrCat("weir-state-test-", getpid(), "-", name);
    std::filesystem::remove_all(root_);
    std::filesystem::create_directories(root_);
  }
  void TearDown() override { std::filesystem::remove_all(root_); }

  std::filesystem::path root_;
};

struct StateCase {
  Backend backend = Backend::kMemory;
  int parallelism = 1;
};

void PrintTo(const StateCase& c, std::ostream* os) {
  *os << BackendName(c.backend) << " at parallelism " << c.parallelism;
}

std::vector<StateCase> AllStateCases() {
  std::vector<StateCase> cases;
  for (Backend backend : {Backend::kMemory, Backend::kRocksDb, Backend::kRocksDbTinyCache}) {
    for (int parallelism : {1, 2}) cases.push_back({backend, parallelism});
  }
  return cases;
}

std::string StateCaseName(const ::testing::TestParamInfo<StateCase>& info) {
  return absl::StrCat(BackendName(info.param.backend), "_p", info.param.parallelism);
}

class StateTest : public TempDirTest, public ::testing::WithParamInterface<StateCase> {
 public:
  PipelineOptions Options() const {
    PipelineOptions options;
    options.parallelism = GetParam().parallelism;
    options.job_name = "state";
    options.state_backend = MakeBackend(GetParam().backend, root_ / "rocksdb");
    return options;
  }

  // Runs `input` through KeyBy(key_fn).Process(fn) and returns what it
  // emitted. The source has one split, so each key's records arrive in input
  // order.
  template <class Out, class In, class KeyFn, class Fn>
  absl::StatusOr<std::vector<Out>> RunKeyed(std::vector<In> input, KeyFn key_fn, Fn fn) {
    Pipeline pipeline(Options());
    auto sink = testing::CollectingSink<Out>::Create();
    pipeline
        .Source(testing::VectorSource<In>::Create(std::move(input),
                                                  {.splits = 1, .records_per_poll = 256}))
        .KeyBy(std::move(key_fn))
        .Process(std::move(fn))
        .Name("keyed")
        .Sink(sink);
    testing::JobResult result = testing::RunToCompletion(pipeline, kDeadline);
    if (!result.status.ok()) return result.status;
    return sink->Values();
  }
};

// ---------------------------------------------------------------------------
// ValueState operations against a reference map.

enum class ValueOp : uint8_t { kUpdate, kAddInPlace, kClear, kRead };

struct ValueCommand {
  int64_t key = 0;
  ValueOp op = ValueOp::kRead;
  int64_t arg = 0;
  int64_t seq = 0;
};

struct ValueSeen {
  int64_t seq = 0;
  std::optional<int64_t> before;  // value()
  bool get_agrees = false;        // Get() pointed at the same value (or was null)
  bool mutable_found = false;     // Mutable() returned a value (kAddInPlace)
  std::optional<int64_t> after;   // value() after the operation, through a new handle
};

class ValueOps final : public KeyedProcessFunction<int64_t, ValueCommand, ValueSeen> {
 public:
  absl::Status ProcessElement(const ValueCommand& c, Context& ctx,
                              Collector<ValueSeen>& out) override {
    ValueState<int64_t> state = ctx.GetState(kState);
    ValueSeen seen{c.seq};
    seen.before = Read(state);
    const int64_t* get = state.Get();
    seen.get_agrees = get == nullptr ? !seen.before : seen.before && *get == *seen.before;
    switch (c.op) {
      case ValueOp::kUpdate:
        state.Update(c.arg);
        break;
      case ValueOp::kAddInPlace:
        if (int64_t* value = state.Mutable()) {
          *value += c.arg;
          seen.mutable_found = true;
        }
        break;
      case ValueOp::kClear:
        state.Clear();
        break;
      case ValueOp::kRead:
        break;
    }
    seen.after = Read(ctx.GetState(kState));
    out.Collect(seen);
    return absl::OkStatus();
  }

 private:
  static inline const ValueStateDescriptor<int64_t> kState{"value"};
};

TEST_P(StateTest, ValueStateMatchesAReferenceMapOverRandomKeys) {
  std::mt19937_64 rng(11);
  constexpr int kKeys = 3000;  // more than the tiny cache holds per worker
  constexpr int kCommands = 8000;
  std::vector<ValueCommand> input;
  for (int seq = 0; seq < kCommands; ++seq) {
    const uint64_t dice = rng() % 100;
    const ValueOp op = dice < 35   ? ValueOp::kUpdate
                       : dice < 65 ? ValueOp::kAddInPlace
                       : dice < 75 ? ValueOp::kClear
                                   : ValueOp::kRead;
    input.push_back({static_cast<int64_t>(rng() % kKeys) - kKeys / 2, op,
                     static_cast<int64_t>(rng() % 2001) - 1000, seq});
  }

  absl::StatusOr<std::vector<ValueSeen>> seen = RunKeyed<ValueSeen>(
      input, [](const ValueCommand& c) { return c.key; }, ValueOps{});
  ASSERT_TRUE(seen.ok()) << seen.status();
  ASSERT_EQ(seen->size(), input.size());
  std::sort(seen->begin(), seen->end(),
            [](const ValueSeen& a, const ValueSeen& b) { return a.seq < b.seq; });

  std::map<int64_t, int64_t> model;
  for (const ValueCommand& c : input) {
    const ValueSeen& s = (*seen)[c.seq];
    ASSERT_EQ(s.seq, c.seq);
    auto it = model.find(c.key);
    const std::optional<int64_t> before =
        it == model.end() ? std::nullopt : std::optional<int64_t>(it->second);
    switch (c.op) {
      case ValueOp::kUpdate:
        model[c.key] = c.arg;
        break;
      case ValueOp::kAddInPlace:
        if (before) model[c.key] += c.arg;
        break;
      case ValueOp::kClear:
        model.erase(c.key);
        break;
      case ValueOp::kRead:
        break;
    }
    it = model.find(c.key);
    const std::optional<int64_t> after =
        it == model.end() ? std::nullopt : std::optional<int64_t>(it->second);
    ASSERT_EQ(s.before, before) << "command " << c.seq << " on key " << c.key;
    ASSERT_TRUE(s.get_agrees) << "command " << c.seq;
    if (c.op == ValueOp::kAddInPlace) {
      ASSERT_EQ(s.mutable_found, before.has_value());
    }
    ASSERT_EQ(s.after, after) << "command " << c.seq << " on key " << c.key;
  }
}

// ---------------------------------------------------------------------------
// Value types.

// A user type with its own codec.
struct Point {
  double x = 0;
  double y = 0;
  bool operator==(const Point&) const = default;
};

}  // namespace

template <>
struct Codec<Point> : MemberCodec<Point, &Point::x, &Point::y> {};

namespace {

// A distinct value of T for each n.
template <class T>
T MakeValue(int64_t n);
template <>
int64_t MakeValue(int64_t n) {
  return n * 1'000'003 - 500'000'000;
}
template <>
double MakeValue(int64_t n) {
  return static_cast<double>(n) * -0.25;
}
template <>
std::string MakeValue(int64_t n) {
  // Zero bytes, and now and then a long one.
  std::string value = absl::StrCat("v", n, std::string(1, '\0'), "z");
  if (n % 5 == 0) value.append(300, static_cast<char>('a' + n % 26));
  return value;
}
template <>
std::optional<std::string> MakeValue(int64_t n) {
  // Present-but-empty must stay distinguishable from absent state.
  if (n % 3 == 0) return std::nullopt;
  return MakeValue<std::string>(n);
}
template <>
std::vector<int32_t> MakeValue(int64_t n) {
  std::vector<int32_t> value;
  for (int64_t idx = 0; idx < n % 4; ++idx) value.push_back(static_cast<int32_t>(n - idx * 7));
  return value;
}
template <>
std::vector<bool> MakeValue(int64_t n) {
  std::vector<bool> value;
  for (int64_t bit = 0; bit < n % 9; ++bit) value.push_back((n >> bit) & 1);
  return value;
}
template <>
std::pair<int64_t, std::string> MakeValue(int64_t n) {
  return {-n, absl::StrCat("p", n)};
}
template <>
google::protobuf::Timestamp MakeValue(int64_t n) {
  google::protobuf::Timestamp value;
  value.set_seconds(1'700'000'000 + n);
  value.set_nanos(static_cast<int32_t>(n % 1'000'000'000));
  return value;
}
template <>
Point MakeValue(int64_t n) {
  return Point{static_cast<double>(n) / 3, -static_cast<double>(n)};
}

template <class T>
bool Same(const T& a, const T& b) {
  return a == b;
}
bool Same(const google::protobuf::Timestamp& a, const google::protobuf::Timestamp& b) {
  return a.SerializeAsString() == b.SerializeAsString();
}
template <class T>
bool Same(const std::optional<T>& a, const std::optional<T>& b) {
  return a.has_value() == b.has_value() && (!a || Same(*a, *b));
}

template <class T>
const char* TypeName();
template <>
const char* TypeName<int64_t>() {
  return "int64";
}
template <>
const char* TypeName<double>() {
  return "double";
}
template <>
const char* TypeName<std::string>() {
  return "string";
}
template <>
const char* TypeName<std::optional<std::string>>() {
  return "optional";
}
template <>
const char* TypeName<std::vector<int32_t>>() {
  return "vector";
}
template <>
const char* TypeName<std::vector<bool>>() {
  return "bits";
}
template <>
const char* TypeName<std::pair<int64_t, std::string>>() {
  return "pair";
}
template <>
const char* TypeName<google::protobuf::Timestamp>() {
  return "protobuf";
}
template <>
const char* TypeName<Point>() {
  return "point";
}

struct Write {
  int64_t key = 0;
  int64_t n = 0;
  int64_t previous_n = -1;  // n of the key's previous record (-1: none)
  int64_t seq = 0;
};

// One ValueState per type in Ts (named after the type). Per record, each
// must hold MakeValue(previous_n) (or nothing), and then holds MakeValue(n).
template <class... Ts>
class LastValues final : public KeyedProcessFunction<int64_t, Write, int64_t> {
 public:
  absl::Status ProcessElement(const Write& w, Context& ctx, Collector<int64_t>& out) override {
    absl::Status status;
    (Check<Ts>(w, ctx, status), ...);
    out.Collect(w.seq);
    return status;
  }

 private:
  template <class T>
  struct Slot {
    static inline const ValueStateDescriptor<T> kState{TypeName<T>()};
  };

  template <class T>
  static void Check(const Write& w, Context& ctx, absl::Status& status) {
    ValueState<T> state = ctx.GetState(Slot<T>::kState);
    const std::optional<T> expected =
        w.previous_n < 0 ? std::nullopt : std::optional<T>(MakeValue<T>(w.previous_n));
    if (!Same(Read(state), expected) && status.ok()) {
      status = absl::InternalError(absl::StrCat(TypeName<T>(), " state of key ", w.key,
                                                " at record ", w.seq, ": not the last value"));
    }
    state.Update(MakeValue<T>(w.n));
    if (!Same(Read(state), std::optional<T>(MakeValue<T>(w.n))) && status.ok()) {
      status = absl::InternalError(absl::StrCat(TypeName<T>(), " state of key ", w.key,
                                                " at record ", w.seq, ": not what was stored"));
    }
  }
};

TEST_P(StateTest, ValueStatesOfManyTypesKeepTheirValues) {
  std::mt19937_64 rng(17);
  constexpr int kKeys = 2500;
  std::vector<Write> input;
  std::map<int64_t, int64_t> last_n;
  for (int seq = 0; seq < 4000; ++seq) {
    Write w{static_cast<int64_t>(rng() % kKeys), static_cast<int64_t>(rng() % 100'000), -1, seq};
    auto [it, inserted] = last_n.try_emplace(w.key, w.n);
    if (!inserted) {
      w.previous_n = it->second;
      it->second = w.n;
    }
    input.push_back(w);
  }
  absl::StatusOr<std::vector<int64_t>> out = RunKeyed<int64_t>(
      input, [](const Write& w) { return w.key; },
      LastValues<int64_t, double, std::string, std::optional<std::string>, std::vector<int32_t>,
                 std::vector<bool>, std::pair<int64_t, std::string>, google::protobuf::Timestamp,
                 Point>{});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->size(), input.size());
}

// ---------------------------------------------------------------------------
// ListState operations against a reference map.

enum class ListOp : uint8_t { kAdd, kUpdate, kClear, kRead };

struct ListCommand {
  int64_t key = 0;
  ListOp op = ListOp::kRead;
  int64_t arg = 0;
  int64_t seq = 0;
};

struct ListSeen {
  int64_t seq = 0;
  std::vector<std::string> before;
  std::vector<std::string> after;
};

std::string ListItem(int64_t n) { return n % 7 == 0 ? std::string(1, '\0') : absl::StrCat("i", n); }
std::vector<std::string> ListItems(int64_t n) {
  std::vector<std::string> items;
  for (int64_t idx = 0; idx < n % 4; ++idx) items.push_back(ListItem(n + idx));
  return items;
}

class ListOps final : public KeyedProcessFunction<int64_t, ListCommand, ListSeen> {
 public:
  absl::Status ProcessElement(const ListCommand& c, Context& ctx,
                              Collector<ListSeen>& out) override {
    ListState<std::string> list = ctx.GetState(kList);
    ListSeen seen{c.seq, list.Get(), {}};
    switch (c.op) {
      case ListOp::kAdd:
        list.Add(ListItem(c.arg));
        break;
      case ListOp::kUpdate:
        list.Update(ListItems(c.arg));  // sometimes empty
        break;
      case ListOp::kClear:
        list.Clear();
        break;
      case ListOp::kRead:
        break;
    }
    seen.after = ctx.GetState(kList).Get();
    out.Collect(std::move(seen));
    return absl::OkStatus();
  }

 private:
  static inline const ListStateDescriptor<std::string> kList{"list"};
};

TEST_P(StateTest, ListStateMatchesAReferenceMapOverRandomKeys) {
  std::mt19937_64 rng(23);
  constexpr int kKeys = 3000;
  std::vector<ListCommand> input;
  for (int seq = 0; seq < 8000; ++seq) {
    const uint64_t dice = rng() % 100;
    const ListOp op = dice < 55   ? ListOp::kAdd
                      : dice < 70 ? ListOp::kUpdate
                      : dice < 78 ? ListOp::kClear
                                  : ListOp::kRead;
    input.push_back(
        {static_cast<int64_t>(rng() % kKeys), op, static_cast<int64_t>(rng() % 1000), seq});
  }
  absl::StatusOr<std::vector<ListSeen>> seen = RunKeyed<ListSeen>(
      input, [](const ListCommand& c) { return c.key; }, ListOps{});
  ASSERT_TRUE(seen.ok()) << seen.status();
  ASSERT_EQ(seen->size(), input.size());
  std::sort(seen->begin(), seen->end(),
            [](const ListSeen& a, const ListSeen& b) { return a.seq < b.seq; });
  std::map<int64_t, std::vector<std::string>> model;
  for (const ListCommand& c : input) {
    const ListSeen& s = (*seen)[c.seq];
    std::vector<std::string>& list = model[c.key];
    ASSERT_EQ(s.before, list) << "command " << c.seq << " on key " << c.key;
    switch (c.op) {
      case ListOp::kAdd:
        list.push_back(ListItem(c.arg));
        break;
      case ListOp::kUpdate:
        list = ListItems(c.arg);
        break;
      case ListOp::kClear:
        list.clear();
        break;
      case ListOp::kRead:
        break;
    }
    ASSERT_EQ(s.after, list) << "command " << c.seq << " on key " << c.key;
  }
}

// ---------------------------------------------------------------------------
// MapState operations against a reference map, with integer and string user
// keys: ForEach and Keys go in key order (numeric, lexicographic).

enum class MapOp : uint8_t { kPut, kAddInPlace, kRemove, kClear, kRead };

template <class UK>
struct MapCommand {
  int64_t key = 0;
  MapOp op = MapOp::kRead;
  UK user_key{};
  int64_t value = 0;
  int64_t seq = 0;
};

template <class UK>
struct MapSeen {
  int64_t seq = 0;
  std::optional<int64_t> get;  // Get(user_key) after the operation
  bool find_agrees = false;    // Find(user_key) and Contains(user_key) agree with Get
  std::vector<std::pair<UK, int64_t>> entries;  // ForEach, in its order
  std::vector<UK> keys;                         // Keys()
  bool empty = false;                           // IsEmpty()
};

template <class UK>
class MapOps final : public KeyedProcessFunction<int64_t, MapCommand<UK>, MapSeen<UK>> {
 public:
  using Base = KeyedProcessFunction<int64_t, MapCommand<UK>, MapSeen<UK>>;
  absl::Status ProcessElement(const MapCommand<UK>& c, typename Base::Context& ctx,
                              Collector<MapSeen<UK>>& out) override {
    MapState<UK, int64_t> map = ctx.GetState(kMap);
    switch (c.op) {
      case MapOp::kPut:
        map.Put(c.user_key, c.value);
        break;
      case MapOp::kAddInPlace:
        if (int64_t* value = map.Mutable(c.user_key)) *value += c.value;
        break;
      case MapOp::kRemove:
        map.Remove(c.user_key);
        break;
      case MapOp::kClear:
        map.Clear();
        break;
      case MapOp::kRead:
        break;
    }
    MapSeen<UK> seen{c.seq};
    seen.get = map.Get(c.user_key);
    const int64_t* found = map.Find(c.user_key);
    seen.find_agrees = (found != nullptr) == seen.get.has_value() &&
                       (found == nullptr || *found == *seen.get) &&
                       map.Contains(c.user_key) == seen.get.has_value();
    map.ForEach(
        [&seen](const UK& key, const int64_t& value) { seen.entries.emplace_back(key, value); });
    seen.keys = map.Keys();
    seen.empty = map.IsEmpty();
    out.Collect(std::move(seen));
    return absl::OkStatus();
  }

 private:
  static inline const MapStateDescriptor<UK, int64_t> kMap{"map"};
};

template <class UK>
void CheckMapState(StateTest& test, const std::vector<UK>& user_keys) {
  std::mt19937_64 rng(29);
  constexpr int kKeys = 2500;
  std::vector<MapCommand<UK>> input;
  for (int seq = 0; seq < 6000; ++seq) {
    const uint64_t dice = rng() % 100;
    const MapOp op = dice < 45   ? MapOp::kPut
                     : dice < 60 ? MapOp::kAddInPlace
                     : dice < 75 ? MapOp::kRemove
                     : dice < 80 ? MapOp::kClear
                                 : MapOp::kRead;
    input.push_back({static_cast<int64_t>(rng() % kKeys), op, user_keys[rng() % user_keys.size()],
                     static_cast<int64_t>(rng() % 1'000'000) - 500'000, seq});
  }
  absl::StatusOr<std::vector<MapSeen<UK>>> seen = test.template RunKeyed<MapSeen<UK>>(
      input, [](const MapCommand<UK>& c) { return c.key; }, MapOps<UK>{});
  ASSERT_TRUE(seen.ok()) << seen.status();
  ASSERT_EQ(seen->size(), input.size());
  std::sort(seen->begin(), seen->end(),
            [](const MapSeen<UK>& a, const MapSeen<UK>& b) { return a.seq < b.seq; });
  // std::map<std::string> orders like unsigned bytes, as the codec does.
  std::map<int64_t, std::map<UK, int64_t>> model;
  size_t largest = 0;
  for (const MapCommand<UK>& c : input) {
    const MapSeen<UK>& s = (*seen)[c.seq];
    std::map<UK, int64_t>& map = model[c.key];
    switch (c.op) {
      case MapOp::kPut:
        map[c.user_key] = c.value;
        break;
      case MapOp::kAddInPlace:
        if (auto it = map.find(c.user_key); it != map.end()) it->second += c.value;
        break;
      case MapOp::kRemove:
        map.erase(c.user_key);
        break;
      case MapOp::kClear:
        map.clear();
        break;
      case MapOp::kRead:
        break;
    }
    largest = std::max(largest, map.size());
    auto it = map.find(c.user_key);
    ASSERT_EQ(s.get, it == map.end() ? std::nullopt : std::optional<int64_t>(it->second))
        << "command " << c.seq << " on key " << c.key;
    ASSERT_TRUE(s.find_agrees) << "command " << c.seq;
    const std::vector<std::pair<UK, int64_t>> entries(map.begin(), map.end());
    ASSERT_EQ(s.entries, entries) << "ForEach, command " << c.seq << " on key " << c.key;
    std::vector<UK> keys;
    for (const auto& [key, value] : map) keys.push_back(key);
    ASSERT_EQ(s.keys, keys) << "Keys(), command " << c.seq;
    ASSERT_EQ(s.empty, map.empty()) << "IsEmpty(), command " << c.seq;
  }
  EXPECT_GE(largest, 4u) << "the maps never grew enough to test their order";
}

TEST_P(StateTest, MapStateWithIntegerKeysIteratesInNumericOrder) {
  std::vector<int32_t> user_keys;
  for (int32_t key = -6; key <= 6; ++key) user_keys.push_back(key * 1000);
  user_keys.push_back(std::numeric_limits<int32_t>::min());
  user_keys.push_back(std::numeric_limits<int32_t>::max());
  CheckMapState<int32_t>(*this, user_keys);
}

TEST_P(StateTest, MapStateWithStringKeysIteratesInLexicographicOrder) {
  CheckMapState<std::string>(
      *this, {"", "a", "aa", "ab", "b", "B", "ba", "zz", "\xff", std::string(1, '\0'),
              std::string("a\0", 2), std::string(200, 'x'), "x", std::string(130, 'b')});
}

// ---------------------------------------------------------------------------
// Several states in one function; one state reached through two descriptors.

struct Purchase {
  int64_t user = 0;
  std::string item;
  double price = 0;
};

struct UserSummary {
  int64_t user = 0;
  int64_t count = 0;
  double total = 0;
  std::vector<std::string> items;                       // in arrival order
  std::vector<std::pair<std::string, int64_t>> counts;  // per item, in item order
  bool operator==(const UserSummary&) const = default;
};

constexpr Timestamp kEndOfTime = 1'000'000'000'000;

// Keeps four states per user and reports them when the input ends (an
// event-time timer, which fires at end of input).
class Summaries final : public KeyedProcessFunction<int64_t, Purchase, UserSummary> {
 public:
  absl::Status ProcessElement(const Purchase& p, Context& ctx, Collector<UserSummary>&) override {
    ValueState<int64_t> count = ctx.GetState(kCount);
    ValueState<double> total = ctx.GetState(kTotal);
    ListState<std::string> items = ctx.GetState(kItems);
    MapState<std::string, int64_t> counts = ctx.GetState(kCounts);
    count.Update((count.Get() != nullptr ? *count.Get() : 0) + 1);
    if (double* t = total.Mutable()) {
      *t += p.price;
    } else {
      total.Update(p.price);
    }
    items.Add(p.item);
    counts.Put(p.item, counts.Get(p.item).value_or(0) + 1);
    // Another descriptor with the same name and type is the same state.
    if (Read(ctx.GetState(kCountAgain)) != Read(count))
      return absl::InternalError("two descriptors of one state disagree");
    ctx.timer_service().RegisterEventTimeTimer(kEndOfTime);
    return absl::OkStatus();
  }

  absl::Status OnTimer(Timestamp, OnTimerContext& ctx, Collector<UserSummary>& out) override {
    UserSummary summary{ctx.current_key()};
    summary.count = (ctx.GetState(kCount).Get() != nullptr ? *ctx.GetState(kCount).Get() : -1);
    summary.total = (ctx.GetState(kTotal).Get() != nullptr ? *ctx.GetState(kTotal).Get() : -1);
    summary.items = ctx.GetState(kItems).Get();
    ctx.GetState(kCounts).ForEach([&summary](const std::string& item, const int64_t& n) {
      summary.counts.emplace_back(item, n);
    });
    out.Collect(std::move(summary));
    return absl::OkStatus();
  }

 private:
  static inline const ValueStateDescriptor<int64_t> kCount{"count"};
  static inline const ValueStateDescriptor<int64_t> kCountAgain{"count"};
  static inline const ValueStateDescriptor<double> kTotal{"total"};
  static inline const ListStateDescriptor<std::string> kItems{"items"};
  static inline const MapStateDescriptor<std::string, int64_t> kCounts{"counts"};
};

TEST_P(StateTest, SeveralStatesPerFunctionStayIndependent) {
  const std::vector<std::string> catalog = {"pear", "apple", "fig", "banana", "kiwi", "date"};
  std::mt19937_64 rng(31);
  std::vector<Purchase> input;
  std::map<int64_t, UserSummary> expected;
  for (int seq = 0; seq < 5000; ++seq) {
    Purchase p{static_cast<int64_t>(rng() % 1500), catalog[rng() % catalog.size()],
               static_cast<double>(rng() % 1000) / 4};
    UserSummary& s = expected[p.user];
    s.user = p.user;
    ++s.count;
    s.total += p.price;
    s.items.push_back(p.item);
    input.push_back(p);
  }
  for (auto& [user, s] : expected) {
    std::map<std::string, int64_t> counts;
    for (const std::string& item : s.items) ++counts[item];
    s.counts.assign(counts.begin(), counts.end());
  }

  absl::StatusOr<std::vector<UserSummary>> out = RunKeyed<UserSummary>(
      input, [](const Purchase& p) { return p.user; }, Summaries{});
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_EQ(out->size(), expected.size());
  for (const UserSummary& s : *out) {
    ASSERT_TRUE(expected.contains(s.user)) << s.user;
    EXPECT_EQ(s, expected[s.user]) << "user " << s.user;
  }
}

// ---------------------------------------------------------------------------
// One state name, two types: the job fails and says which state.

template <class A, class B>
class TwoTypesOneName final : public KeyedProcessFunction<int64_t, int64_t, int64_t> {
 public:
  TwoTypesOneName(A a, B b) : a_(std::move(a)), b_(std::move(b)) {}
  absl::Status ProcessElement(const int64_t&, Context& ctx, Collector<int64_t>&) override {
    (void)ctx.GetState(a_);
    (void)ctx.GetState(b_);
    return absl::OkStatus();
  }

 private:
  A a_;
  B b_;
};

template <class A, class B>
void ExpectTwoTypesFail(StateTest& test, A a, B b) {
  absl::StatusOr<std::vector<int64_t>> out = test.template RunKeyed<int64_t>(
      std::vector<int64_t>{1, 2, 3}, [](int64_t v) { return v; },
      TwoTypesOneName<A, B>(std::move(a), std::move(b)));
  ASSERT_FALSE(out.ok());
  EXPECT_THAT(out.status().message(), HasSubstr("state 'shared'"));
  EXPECT_THAT(out.status().message(), HasSubstr("two different kinds or types"));
  EXPECT_THAT(out.status().message(), HasSubstr("keyed"));  // the operator
}

TEST_P(StateTest, OneNameWithTwoTypesFailsTheJobWithAClearError) {
  ExpectTwoTypesFail(*this, ValueStateDescriptor<int64_t>{"shared"},
                     ValueStateDescriptor<std::string>{"shared"});
  ExpectTwoTypesFail(*this, ValueStateDescriptor<int64_t>{"shared"},
                     ListStateDescriptor<int64_t>{"shared"});
  ExpectTwoTypesFail(*this, MapStateDescriptor<int32_t, int64_t>{"shared"},
                     MapStateDescriptor<int64_t, int64_t>{"shared"});
}

// ---------------------------------------------------------------------------
// TTL: entries not written for `ttl` read as absent; writes (Update,
// Mutable, Add, Put) restart the clock, reads do not; MapState entries expire
// one by one.
//
// The checks that an entry *expired* are exact: state is stamped with the
// processing time of the batch or timer that wrote it, which is no later than
// ctx.current_processing_time() there, and a processing-time timer at T runs
// with a time >= T. The checks that an entry is *still alive* hold only if
// the timer did not fire too late, so they run only when it did not (and are
// counted); reads right after a write are always checked.

constexpr int64_t kTtlMs = 100;

struct TtlReport {
  int64_t key = 0;
  std::vector<std::string> violations;
  int64_t alive_checks = 0;  // timing-dependent checks that could run
};

class TtlProbe final : public KeyedProcessFunction<int64_t, int64_t, TtlReport> {
 public:
  absl::Status ProcessElement(const int64_t&, Context& ctx, Collector<TtlReport>&) override {
    // Everything happens in timers, whose time is known; spread over 50 ms
    // so that each firing is short (and the timing-dependent checks can run).
    ctx.timer_service().RegisterProcessingTimeTimer(ctx.current_processing_time() + 1 +
                                                    ctx.current_key() % 50);
    return absl::OkStatus();
  }

  absl::Status OnTimer(Timestamp ts, OnTimerContext& ctx, Collector<TtlReport>& out) override {
    const Timestamp now = ctx.current_processing_time();
    ValueState<int64_t> value = ctx.GetState(kValue);
    ListState<std::string> list = ctx.GetState(kList);
    MapState<int32_t, int64_t> map = ctx.GetState(kMap);
    // The probe's own bookkeeping, in one state without TTL.
    ValueState<Notes> notes_state = ctx.GetState(kNotes);
    Notes notes = (notes_state.Get() != nullptr ? *notes_state.Get()
                                                : Notes(std::vector<int64_t>(kNoteCount, 0), {}));
    std::vector<int64_t>& note = notes.first;
    auto expect = [&](bool ok, const std::string& what) {
      if (!ok) notes.second.push_back(absl::StrCat("step ", note[kStep], ": ", what));
    };
    switch (note[kStep]) {
      case 0: {  // write all three, read them back at once
        value.Update(10);
        list.Add("a");
        map.Put(1, 1);
        expect(Read(value) == 10 && value.Get() != nullptr, "value right after Update");
        expect(list.Get() == std::vector<std::string>{"a"}, "list right after Add");
        expect(map.Get(1) == 1 && map.Contains(1) && !map.IsEmpty(), "map right after Put");
        note[kWrittenAt] = ts;
        ctx.timer_service().RegisterProcessingTimeTimer(ctx.current_processing_time() + 60);
        break;
      }
      case 1: {  // alive if in time; then refresh value and list, add a second map entry
        note[kListWasAlive] = list.Get() == std::vector<std::string>{"a"};
        if (now < note[kWrittenAt] + kTtlMs) {
          ++note[kAliveChecks];
          expect(Read(value) == 10, "value alive before its ttl");
          expect(note[kListWasAlive], "list alive before its ttl");
          expect(map.Get(1) == 1, "map entry alive before its ttl");
        }
        if (int64_t* v = value.Mutable()) {
          *v += 1;
        } else {
          value.Update(11);
        }
        list.Add("b");
        map.Put(2, 2);
        note[kRefreshedAt] = ts;
        note[kRefreshDone] = ctx.current_processing_time();
        ctx.timer_service().RegisterProcessingTimeTimer(note[kRefreshDone] + 50);
        break;
      }
      case 2: {  // the first map entry expired; the refreshed state lives on (if in time)
        expect(!map.Contains(1) && !map.Get(1), "first map entry expired on its own");
        if (now < note[kRefreshedAt] + kTtlMs) {
          ++note[kAliveChecks];
          expect(Read(value) == 11, "value refreshed by Mutable");
          expect(list.Get() == (note[kListWasAlive] ? std::vector<std::string>{"a", "b"}
                                                    : std::vector<std::string>{"b"}),
                 "list refreshed by Add");
          expect(map.Get(2) == 2 && map.Keys() == std::vector<int32_t>{2},
                 "second map entry alive");
        }
        // Due when the writes of step 1 expired: the reads just now must not
        // have extended them.
        ctx.timer_service().RegisterProcessingTimeTimer(note[kRefreshDone] + kTtlMs);
        break;
      }
      case 3: {  // everything expired
        expect(!Read(value) && value.Get() == nullptr && value.Mutable() == nullptr,
               "value expired");
        expect(list.Get().empty(), "list expired");
        expect(map.IsEmpty() && map.Keys().empty() && !map.Contains(2) && !map.Get(2),
               "map expired");
        out.Collect(TtlReport{ctx.current_key(), notes.second, note[kAliveChecks]});
        break;
      }
      default:
        return absl::InternalError(absl::StrCat("unexpected timer ", ts));
    }
    ++note[kStep];
    notes_state.Update(std::move(notes));
    return absl::OkStatus();
  }

 private:
  // (numbers indexed below, violations found so far)
  using Notes = std::pair<std::vector<int64_t>, std::vector<std::string>>;
  enum Note {
    kStep,
    kWrittenAt,
    kRefreshedAt,
    kRefreshDone,
    kListWasAlive,
    kAliveChecks,
    kNoteCount
  };

  static inline const ValueStateDescriptor<int64_t> kValue{"value", absl::Milliseconds(kTtlMs)};
  static inline const ListStateDescriptor<std::string> kList{"list", absl::Milliseconds(kTtlMs)};
  static inline const MapStateDescriptor<int32_t, int64_t> kMap{"map", absl::Milliseconds(kTtlMs)};
  static inline const ValueStateDescriptor<Notes> kNotes{"notes"};
};

TEST_P(StateTest, TtlExpiresEntriesNotWrittenForTtl) {
  constexpr int kKeys = 2500;  // more than the tiny cache holds per worker
  std::vector<int64_t> input(kKeys);
  std::iota(input.begin(), input.end(), 0);
  Pipeline pipeline(Options());
  auto sink = testing::CollectingSink<TtlReport>::Create();
  // Unbounded: processing-time timers fire only while the job runs.
  pipeline.Source(testing::VectorSource<int64_t>::Create(input, {.unbounded = true}))
      .KeyBy([](int64_t v) { return v; })
      .Process(TtlProbe{})
      .Name("ttl")
      .Sink(sink);
  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_TRUE(job.ok()) << job.status();
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (sink->size() < kKeys && !job->done() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  job->Stop();
  absl::Status status = job->Wait();
  ASSERT_TRUE(status.ok()) << status;

  const std::vector<TtlReport> reports = sink->Values();
  ASSERT_EQ(reports.size(), static_cast<size_t>(kKeys));
  int64_t alive_checks = 0;
  for (const TtlReport& report : reports) {
    EXPECT_THAT(report.violations, ::testing::IsEmpty()) << "key " << report.key;
    alive_checks += report.alive_checks;
  }
  // Timing-dependent; on a loaded machine some (or all) may be skipped.
  std::printf("alive checks that ran in time: %lld of %d\n", static_cast<long long>(alive_checks),
              2 * kKeys);
}

INSTANTIATE_TEST_SUITE_P(Backends, StateTest, ::testing::ValuesIn(AllStateCases()), StateCaseName);

// ---------------------------------------------------------------------------
// State larger than the write-back cache and the memory limit.

// The process's resident set, in bytes (VmRSS of /proc/self/status).
int64_t ResidentBytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) != 0) continue;
    int64_t kb = 0;
    std::string number = line.substr(6);
    number.erase(
        std::remove_if(number.begin(), number.end(),
                       [](char c) { return !std::isdigit(static_cast<unsigned char>(c)); }),
        number.end());
    if (absl::SimpleAtoi(number, &kb)) return kb * 1024;
  }
  return -1;
}

constexpr int64_t kBigKeys = 300'000;
constexpr size_t kBigValueSize = 100;

// Bytes that do not compress (RocksDB keeps blocks compressed on disk and
// uncompressed in its cache), different for every key.
std::string BigValue(int64_t key) {
  std::string value(kBigValueSize, '\0');
  uint64_t x = static_cast<uint64_t>(key) * 0x9E3779B97F4A7C15ull + 1;
  for (size_t pos = 0; pos < value.size(); pos += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    std::memcpy(&value[pos], &x, std::min<size_t>(8, value.size() - pos));
  }
  return value;
}

struct BigCounts {
  std::atomic<int64_t> written{0};
  std::atomic<int64_t> verified{0};
};

// The first record of a key writes its value, the second checks it.
// Records k < kBigKeys write key k's value (without reading it), records
// kBigKeys + k read it back and check it.
class WriteThenVerify final : public KeyedProcessFunction<int64_t, int64_t, int64_t> {
 public:
  explicit WriteThenVerify(std::shared_ptr<BigCounts> counts) : counts_(std::move(counts)) {}
  absl::Status ProcessElement(const int64_t& v, Context& ctx, Collector<int64_t>&) override {
    ValueState<std::string> state = ctx.GetState(kValue);
    if (v < kBigKeys) {
      state.Update(BigValue(ctx.current_key()));
      counts_->written.fetch_add(1, std::memory_order_relaxed);
      return absl::OkStatus();
    }
    const std::string* value = state.Get();
    if (value == nullptr || *value != BigValue(ctx.current_key())) {
      return absl::InternalError(
          absl::StrCat("key ", ctx.current_key(), ": ", value ? "wrong value" : "value lost"));
    }
    counts_->verified.fetch_add(1, std::memory_order_relaxed);
    return absl::OkStatus();
  }

 private:
  static inline const ValueStateDescriptor<std::string> kValue{"big"};
  std::shared_ptr<BigCounts> counts_;
};

class StateLargerThanMemoryTest : public TempDirTest {};

// 300k keys with 100-byte values, written once and then all read back (in
// key order: random order exercises nothing more and costs 2x the time in
// block decompression), with a 16 MiB limit for all keyed state: the
// write-back cache holds about 8k entries, so nearly every read misses it and
// is served by RocksDB, from data that was evicted, written back and flushed.
//
// RSS bound: growth while the job runs stays under 48 MiB = the 16 MiB limit
// (block cache, memtables charged to it, write-back cache) + about 4 MiB a
// job with RocksDB state takes anyway (threads, rings, instances; measured
// with 1000 keys) + slack for what the limit does not cover: RocksDB's
// allocations outside the block cache (table readers, iterators, compaction),
// allocator fragmentation from the cache's churn. Measured: about 32 MiB.
// The same job with StateBackend::Memory() grows by about 85 MiB, so a
// cache that ignored its bound would fail this.
TEST_F(StateLargerThanMemoryTest, RocksDbStaysExactAndBounded) {
  std::vector<int64_t> input(2 * kBigKeys);
  std::iota(input.begin(), input.begin() + kBigKeys, 0);
  std::iota(input.begin() + kBigKeys, input.end(), kBigKeys);

  PipelineOptions options;
  options.parallelism = 2;
  options.job_name = "big";
  options.state_backend =
      StateBackend::RocksDb((root_ / "rocksdb").string(), {.state_memory_limit = size_t{16} << 20});
  Pipeline pipeline(options);
  auto counts = std::make_shared<BigCounts>();
  pipeline
      .Source(testing::VectorSource<int64_t>::Create(std::move(input),
                                                     {.splits = 1, .records_per_poll = 4096}))
      .KeyBy([](int64_t v) { return v % kBigKeys; })
      .Process(WriteThenVerify(counts))
      .Name("big")
      .Sink([](const int64_t&) {});

  const int64_t before = ResidentBytes();
  ASSERT_GT(before, 0);
  std::atomic<int64_t> peak{before};
  std::atomic<bool> sampling{true};
  std::thread sampler([&] {
    while (sampling.load()) {
      peak.store(std::max(peak.load(), ResidentBytes()));
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });
  testing::JobResult result = testing::RunToCompletion(pipeline, kDeadline);
  sampling.store(false);
  sampler.join();
  const int64_t after = ResidentBytes();
  ASSERT_TRUE(result.status.ok()) << result.status;

  EXPECT_EQ(counts->written.load(), kBigKeys);
  EXPECT_EQ(counts->verified.load(), kBigKeys);
  const int64_t growth = std::max(peak.load(), after) - before;
  std::printf("RSS before %lld MiB, peak growth %lld MiB\n", static_cast<long long>(before >> 20),
              static_cast<long long>(growth >> 20));
  EXPECT_LT(growth, int64_t{48} << 20) << "RSS grew by " << (growth >> 20) << " MiB";
}

// ---------------------------------------------------------------------------
// Checkpoint and restore.

constexpr int64_t kRestoreKeys = 97;
constexpr absl::Duration kShortTtl = absl::Milliseconds(50);
constexpr absl::Duration kLongTtl = absl::Hours(1);

std::vector<int64_t> RestoreInput(int n) {
  std::vector<int64_t> values(n);
  std::iota(values.begin(), values.end(), 0);
  return values;
}
int32_t MapKeyOf(int64_t v) { return static_cast<int32_t>(v % 5) - 2; }

struct KeySummary {
  int64_t key = 0;
  int64_t count = 0;
  std::vector<int64_t> values;                        // sorted
  std::vector<std::pair<int32_t, int64_t>> sums;      // ForEach order
  int64_t ttl_count = 0;                              // the same, in state with a long TTL
  std::vector<int64_t> ttl_values;                    // sorted
  std::vector<std::pair<int32_t, int64_t>> ttl_sums;  // ForEach order
  bool short_ttl_seen = false;                        // any short-TTL state still there
  bool operator==(const KeySummary&) const = default;
};

// Accumulates every record of a key in a ValueState, a ListState and a
// MapState, with and without a long TTL; in the first run only, also in
// short-TTL states (which must have expired by the last run). Reports the
// state when the input ends, from an event-time timer registered with the
// key's records: summaries of keys whose records all came before the
// restored checkpoint need the restored timer.
class Accumulate final : public KeyedProcessFunction<int64_t, int64_t, KeySummary> {
 public:
  explicit Accumulate(int run) : run_(run) {}

  absl::Status ProcessElement(const int64_t& v, Context& ctx, Collector<KeySummary>&) override {
    ValueState<int64_t> count = ctx.GetState(kCount);
    count.Update((count.Get() != nullptr ? *count.Get() : 0) + 1);
    ctx.GetState(kValues).Add(v);
    MapState<int32_t, int64_t> sums = ctx.GetState(kSums);
    sums.Put(MapKeyOf(v), sums.Get(MapKeyOf(v)).value_or(0) + v);

    ValueState<int64_t> ttl_count = ctx.GetState(kTtlCount);
    if (int64_t* n = ttl_count.Mutable()) {
      ++*n;
    } else {
      ttl_count.Update(1);
    }
    ctx.GetState(kTtlValues).Add(v);
    MapState<int32_t, int64_t> ttl_sums = ctx.GetState(kTtlSums);
    ttl_sums.Put(MapKeyOf(v), ttl_sums.Get(MapKeyOf(v)).value_or(0) + v);

    if (run_ == 1) {
      ctx.GetState(kShortValue).Update(v);
      ctx.GetState(kShortList).Add(v);
      ctx.GetState(kShortMap).Put(MapKeyOf(v), v);
    }
    ctx.timer_service().RegisterEventTimeTimer(kEndOfTime);
    return absl::OkStatus();
  }

  absl::Status OnTimer(Timestamp, OnTimerContext& ctx, Collector<KeySummary>& out) override {
    KeySummary s{ctx.current_key()};
    s.count = (ctx.GetState(kCount).Get() != nullptr ? *ctx.GetState(kCount).Get() : -1);
    s.values = ctx.GetState(kValues).Get();
    std::sort(s.values.begin(), s.values.end());
    ctx.GetState(kSums).ForEach(
        [&s](const int32_t& k, const int64_t& sum) { s.sums.emplace_back(k, sum); });
    s.ttl_count = (ctx.GetState(kTtlCount).Get() != nullptr ? *ctx.GetState(kTtlCount).Get() : -1);
    s.ttl_values = ctx.GetState(kTtlValues).Get();
    std::sort(s.ttl_values.begin(), s.ttl_values.end());
    ctx.GetState(kTtlSums).ForEach(
        [&s](const int32_t& k, const int64_t& sum) { s.ttl_sums.emplace_back(k, sum); });
    s.short_ttl_seen = ctx.GetState(kShortValue).Get() != nullptr ||
                       !ctx.GetState(kShortList).Get().empty() ||
                       !ctx.GetState(kShortMap).IsEmpty();
    out.Collect(std::move(s));
    return absl::OkStatus();
  }

 private:
  static inline const ValueStateDescriptor<int64_t> kCount{"count"};
  static inline const ListStateDescriptor<int64_t> kValues{"values"};
  static inline const MapStateDescriptor<int32_t, int64_t> kSums{"sums"};
  static inline const ValueStateDescriptor<int64_t> kTtlCount{"ttl_count", kLongTtl};
  static inline const ListStateDescriptor<int64_t> kTtlValues{"ttl_values", kLongTtl};
  static inline const MapStateDescriptor<int32_t, int64_t> kTtlSums{"ttl_sums", kLongTtl};
  static inline const ValueStateDescriptor<int64_t> kShortValue{"short_value", kShortTtl};
  static inline const ListStateDescriptor<int64_t> kShortList{"short_list", kShortTtl};
  static inline const MapStateDescriptor<int32_t, int64_t> kShortMap{"short_map", kShortTtl};
  int run_;
};

std::map<int64_t, KeySummary> ExpectedSummaries(int n) {
  std::map<int64_t, KeySummary> expected;
  std::map<int64_t, std::map<int32_t, int64_t>> sums;
  for (int64_t v : RestoreInput(n)) {
    KeySummary& s = expected[v % kRestoreKeys];
    s.key = v % kRestoreKeys;
    ++s.count;
    s.values.push_back(v);
    sums[s.key][MapKeyOf(v)] += v;
  }
  for (auto& [key, s] : expected) {
    std::sort(s.values.begin(), s.values.end());
    s.sums.assign(sums[key].begin(), sums[key].end());
    s.ttl_count = s.count;
    s.ttl_values = s.values;
    s.ttl_sums = s.sums;
  }
  return expected;
}

class CheckpointedStateTest : public TempDirTest {
 protected:
  // The accumulating job over `n` records, throttled to `rate` records/s per
  // split (0: unthrottled), checkpointing every 30 ms.
  std::unique_ptr<Pipeline> Build(Backend backend, int parallelism, int run, int n, double rate,
                                  std::shared_ptr<testing::CollectingSink<KeySummary>> sink) {
    PipelineOptions options;
    options.parallelism = parallelism;
    options.job_name = "accumulate";
    options.checkpoints.interval = absl::Milliseconds(30);
    options.checkpoints.storage_uri = "file://" + (root_ / "checkpoints").string();
    options.state_backend = MakeBackend(backend, root_ / "rocksdb");
    auto pipeline = std::make_unique<Pipeline>(options);
    pipeline
        ->Source(testing::VectorSource<int64_t>::Create(
            RestoreInput(n), {.splits = 4, .records_per_poll = 16, .records_per_second = rate}))
        .Uid("numbers")
        .KeyBy([](int64_t v) { return v % kRestoreKeys; })
        .Process(Accumulate(run))
        .Uid("accumulate")
        .Sink(std::move(sink))
        .Uid("out");
    return pipeline;
  }

  // Starts `pipeline` and cancels it (like a crash: no final checkpoint)
  // after `checkpoints` more checkpoints completed.
  static void RunAndCrash(Pipeline& pipeline, int checkpoints) {
    absl::StatusOr<JobHandle> job = pipeline.Start();
    ASSERT_TRUE(job.ok()) << job.status();
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    int64_t last = job->last_completed_checkpoint();
    int completed = 0;
    while (completed < checkpoints && !job->done() && absl::Now() < deadline) {
      const int64_t now = job->last_completed_checkpoint();
      if (now != last) {
        ++completed;
        last = now;
      }
      absl::SleepFor(absl::Milliseconds(1));
    }
    ASSERT_FALSE(job->done()) << "the job ended before it could be interrupted: " << job->Wait();
    job->Cancel();
    EXPECT_EQ(job->Wait().code(), absl::StatusCode::kCancelled);
  }

  static void ExpectSummaries(const std::vector<KeySummary>& out, int n) {
    std::map<int64_t, KeySummary> expected = ExpectedSummaries(n);
    ASSERT_EQ(out.size(), expected.size()) << "one summary per key";
    for (const KeySummary& s : out) {
      ASSERT_TRUE(expected.contains(s.key)) << s.key;
      EXPECT_EQ(s, expected[s.key])
          << "key " << s.key << ": count " << s.count << " (expected " << expected[s.key].count
          << "), short-TTL state seen " << s.short_ttl_seen;
    }
  }
};

struct RestoreCase {
  Backend backend = Backend::kMemory;
  std::vector<int> parallelism;  // of each run; all but the last are cancelled
};

void PrintTo(const RestoreCase& c, std::ostream* os) {
  *os << BackendName(c.backend) << " at parallelism " << absl::StrJoin(c.parallelism, ", then ");
}

class CheckpointRestoreTest : public CheckpointedStateTest,
                              public ::testing::WithParamInterface<RestoreCase> {};

// Runs that crash mid-stream and a last one that finishes: the summaries
// count every record exactly once, TTL'd state comes back with its TTL
// (long: still there; short: expired during the pause), and timers are
// restored, also at other parallelisms.
TEST_P(CheckpointRestoreTest, StateAndTimersSurviveCancelledRunsAndRescaling) {
  constexpr int kRecords = 4000;
  const std::vector<int>& runs = GetParam().parallelism;
  for (size_t run = 0; run + 1 < runs.size(); ++run) {
    auto sink = testing::CollectingSink<KeySummary>::Create();
    auto pipeline =
        Build(GetParam().backend, runs[run], static_cast<int>(run) + 1, kRecords, 250, sink);
    ASSERT_NO_FATAL_FAILURE(RunAndCrash(*pipeline, 2));
    EXPECT_EQ(sink->size(), 0u) << "summaries come only at the end of the input";
  }
  absl::SleepFor(kShortTtl + absl::Milliseconds(10));  // the short-TTL state expires

  auto sink = testing::CollectingSink<KeySummary>::Create();
  auto pipeline =
      Build(GetParam().backend, runs.back(), static_cast<int>(runs.size()), kRecords, 0, sink);
  testing::JobResult result = testing::RunToCompletion(*pipeline, kDeadline);
  ASSERT_TRUE(result.status.ok()) << result.status;
  ExpectSummaries(sink->Values(), kRecords);
}

INSTANTIATE_TEST_SUITE_P(Backends, CheckpointRestoreTest,
                         ::testing::Values(RestoreCase{Backend::kMemory, {1, 2}},
                                           RestoreCase{Backend::kMemory, {2, 2, 1}},
                                           RestoreCase{Backend::kRocksDb, {1, 2}},
                                           RestoreCase{Backend::kRocksDb, {2, 2, 2}},
                                           RestoreCase{Backend::kRocksDbTinyCache, {2, 1, 2}}),
                         [](const ::testing::TestParamInfo<RestoreCase>& param_info) {
                           return absl::StrCat(BackendName(param_info.param.backend), "_",
                                               absl::StrJoin(param_info.param.parallelism, "to"));
                         });

// A checkpoint of the memory backend restores into RocksDB; a RocksDB
// checkpoint cannot be restored into memory, and the job says why. (No run
// is the first, so none writes short-TTL state: it would still be alive.)
TEST_F(CheckpointedStateTest, MemoryCheckpointRestoresIntoRocksDbButNotBack) {
  constexpr int kRecords = 1000;
  {
    auto sink = testing::CollectingSink<KeySummary>::Create();
    auto pipeline = Build(Backend::kMemory, 2, /*run=*/2, kRecords, 0, sink);
    ASSERT_TRUE(testing::RunToCompletion(*pipeline, kDeadline).status.ok());
    ExpectSummaries(sink->Values(), kRecords);
  }
  {
    // Longer input: the sources resume where the first run ended and add
    // 500 records to the restored state.
    auto sink = testing::CollectingSink<KeySummary>::Create();
    auto pipeline = Build(Backend::kRocksDbTinyCache, 1, /*run=*/2, kRecords + 500, 0, sink);
    testing::JobResult result = testing::RunToCompletion(*pipeline, kDeadline);
    ASSERT_TRUE(result.status.ok()) << result.status;
    ExpectSummaries(sink->Values(), kRecords + 500);
  }
  {
    auto sink = testing::CollectingSink<KeySummary>::Create();
    auto pipeline = Build(Backend::kMemory, 1, /*run=*/3, kRecords + 500, 0, sink);
    absl::Status status = testing::RunToCompletion(*pipeline, kDeadline).status;
    EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
    EXPECT_THAT(status.message(), HasSubstr("StateBackend::RocksDb"));
  }
}

// Processing-time timers are checkpointed too: registered in a run that is
// cancelled before they are due, they fire in the next one (at another
// parallelism), with the state they were registered with, once.
struct Fired {
  int64_t key = 0;
  Timestamp timer = 0;
  Timestamp due = 0;  // what the key's state says the timer was registered for
  int64_t count = 0;  // records of the key
  Timestamp fired_at = 0;
};

constexpr int64_t kTimerDelayMs = 400;

class DelayedReport final : public KeyedProcessFunction<int64_t, int64_t, Fired> {
 public:
  absl::Status ProcessElement(const int64_t&, Context& ctx, Collector<Fired>&) override {
    ValueState<int64_t> count = ctx.GetState(kCount);
    count.Update((count.Get() != nullptr ? *count.Get() : 0) + 1);
    if (*count.Get() == 1) {
      const Timestamp due = ctx.current_processing_time() + kTimerDelayMs;
      ctx.GetState(kDue).Update(due);
      ctx.timer_service().RegisterProcessingTimeTimer(due);
    }
    return absl::OkStatus();
  }
  absl::Status OnTimer(Timestamp ts, OnTimerContext& ctx, Collector<Fired>& out) override {
    if (ctx.time_domain() != TimeDomain::kProcessingTime)
      return absl::InternalError("not a processing-time timer");
    ValueState<bool> fired = ctx.GetState(kFired);
    if ((fired.Get() != nullptr ? *fired.Get() : false))
      return absl::InternalError(absl::StrCat("key ", ctx.current_key(), ": timer fired twice"));
    fired.Update(true);
    out.Collect(Fired{ctx.current_key(), ts,
                      (ctx.GetState(kDue).Get() != nullptr ? *ctx.GetState(kDue).Get() : -1),
                      (ctx.GetState(kCount).Get() != nullptr ? *ctx.GetState(kCount).Get() : -1),
                      ctx.current_processing_time()});
    return absl::OkStatus();
  }

 private:
  static inline const ValueStateDescriptor<int64_t> kCount{"count"};
  static inline const ValueStateDescriptor<int64_t> kDue{"due"};
  static inline const ValueStateDescriptor<bool> kFired{"fired"};
};

class ProcessingTimerRestoreTest
    : public TempDirTest,
      public ::testing::WithParamInterface<std::tuple<Backend, int, int>> {
 protected:
  std::unique_ptr<Pipeline> Build(int parallelism, std::shared_ptr<Sink<Fired>> sink) {
    PipelineOptions options;
    options.parallelism = parallelism;
    options.job_name = "delayed";
    options.checkpoints.interval = absl::Milliseconds(20);
    options.checkpoints.storage_uri = "file://" + (root_ / "checkpoints").string();
    options.state_backend = MakeBackend(std::get<0>(GetParam()), root_ / "rocksdb");
    auto pipeline = std::make_unique<Pipeline>(options);
    pipeline
        ->Source(
            testing::VectorSource<int64_t>::Create(RestoreInput(kRecords), {.unbounded = true}))
        .Uid("numbers")
        .KeyBy([](int64_t v) { return v % kRestoreKeys; })
        .Process(DelayedReport{})
        .Uid("delayed")
        .Sink(std::move(sink))
        .Uid("out");
    return pipeline;
  }
  static constexpr int kRecords = 2000;
};

// The first run processes everything, completes two checkpoints and is
// cancelled, normally before any timer is due. (On a slow machine some may
// fire first: those fired before the last checkpoint stay fired, the others
// fire again after the restart, as their state was not checkpointed.)
TEST_P(ProcessingTimerRestoreTest, TimersRegisteredBeforeACrashFireAfterTheRestart) {
  const auto [backend, before, after] = GetParam();
  std::set<int64_t> fired_first;
  {
    auto sink = testing::CollectingSink<Fired>::Create();
    auto pipeline = Build(before, sink);
    absl::StatusOr<JobHandle> job = pipeline->Start();
    ASSERT_TRUE(job.ok()) << job.status();
    const absl::Time deadline = absl::Now() + absl::Seconds(20);
    auto processed = [&job] {
      int64_t in = 0;
      for (const auto& m : testing::OperatorMetricsOf(job->Metrics())) {
        if (m.name == "delayed") in += m.records_in;
      }
      return in;
    };
    while (processed() < kRecords && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(1));
    int64_t last = job->last_completed_checkpoint();
    for (int completed = 0; completed < 2 && absl::Now() < deadline;) {
      absl::SleepFor(absl::Milliseconds(1));
      if (job->last_completed_checkpoint() != last) {
        ++completed;
        last = job->last_completed_checkpoint();
      }
    }
    job->Cancel();
    EXPECT_EQ(job->Wait().code(), absl::StatusCode::kCancelled);
    ASSERT_EQ(processed(), kRecords);
    for (const Fired& f : sink->Values()) fired_first.insert(f.key);
  }

  auto sink = testing::CollectingSink<Fired>::Create();
  auto pipeline = Build(after, sink);
  absl::StatusOr<JobHandle> job = pipeline->Start();
  ASSERT_TRUE(job.ok()) << job.status();
  auto all_fired = [&] {
    std::set<int64_t> keys = fired_first;
    for (const Fired& f : sink->Values()) keys.insert(f.key);
    return keys.size() == static_cast<size_t>(kRestoreKeys);
  };
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (!all_fired() && !job->done() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(2));
  }
  absl::SleepFor(absl::Milliseconds(20));  // anything that would fire twice
  job->Stop();
  absl::Status status = job->Wait();
  ASSERT_TRUE(status.ok()) << status;  // also: no timer fired twice for its restored state

  EXPECT_TRUE(all_fired()) << "timers were lost";
  std::set<int64_t> fired_second;
  for (const Fired& f : sink->Values()) {
    EXPECT_TRUE(fired_second.insert(f.key).second) << "key " << f.key << " fired twice";
    EXPECT_EQ(f.timer, f.due) << "key " << f.key;
    EXPECT_GE(f.fired_at, f.timer) << "key " << f.key;
    EXPECT_EQ(f.count, (kRecords - f.key + kRestoreKeys - 1) / kRestoreKeys) << "key " << f.key;
  }
  if (!fired_first.empty()) {
    std::printf("%zu of %lld timers fired before the crash (slow machine)\n", fired_first.size(),
                static_cast<long long>(kRestoreKeys));
  }
  if (fired_second.empty()) GTEST_SKIP() << "every timer fired before the crash";
}

INSTANTIATE_TEST_SUITE_P(Backends, ProcessingTimerRestoreTest,
                         ::testing::Values(std::tuple{Backend::kMemory, 1, 2},
                                           std::tuple{Backend::kRocksDb, 2, 1},
                                           std::tuple{Backend::kRocksDbTinyCache, 2, 2}),
                         [](const auto& param_info) {
                           return absl::StrCat(BackendName(std::get<0>(param_info.param)), "_",
                                               std::get<1>(param_info.param), "to",
                                               std::get<2>(param_info.param));
                         });

// ---------------------------------------------------------------------------
// The typed value table over a KvStore (as with RocksDB), with a std::map as
// the store. Windows keep a value per (key, pane) and remove it when the pane
// ends: one the store never held must leave no tombstone in the cache.

// Like RocksDB: writes are buffered until Commit, and a failed Commit drops
// them.
class MapKvStore final : public internal::KvStore {
 public:
  absl::Status Snapshot(const std::string&, std::vector<internal::SnapshotFile>&) override {
    return absl::UnimplementedError("snapshot");
  }
  absl::StatusOr<int> OpenTable(const std::string&) override { return 0; }
  absl::StatusOr<std::optional<std::string>> Get(int, std::string_view key) override {
    auto it = data.find(std::string(key));
    if (it == data.end()) return std::optional<std::string>();
    return std::optional<std::string>(it->second);
  }
  absl::Status Scan(int, std::string_view prefix,
                    const std::function<void(std::string_view, std::string_view)>& fn) override {
    for (auto it = data.lower_bound(std::string(prefix));
         it != data.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
      fn(it->first, it->second);
    }
    return absl::OkStatus();
  }
  void Put(int, std::string_view key, std::string_view value) override {
    put_keys.emplace_back(key);
    batch_.emplace_back(std::string(key), std::string(value));
  }
  void Delete(int, std::string_view key) override {
    ++deletes;
    batch_.emplace_back(std::string(key), std::nullopt);
  }
  absl::Status Commit() override {
    std::vector<std::pair<std::string, std::optional<std::string>>> batch;
    batch.swap(batch_);
    if (failing_commits > 0) {
      --failing_commits;
      return absl::ResourceExhaustedError("no space left on device");
    }
    for (auto& [key, value] : batch) {
      if (value) {
        data[key] = *std::move(value);
      } else {
        data.erase(key);
      }
    }
    return absl::OkStatus();
  }

  std::map<std::string, std::string> data;  // committed
  std::vector<std::string> put_keys;        // in the order of the Put calls
  int deletes = 0;
  // The next this many commits fail.
  int failing_commits = 0;

 private:
  std::vector<std::pair<std::string, std::optional<std::string>>> batch_;
};

TEST(StateTableTest, ValueTableForgetsRemovedValuesAndKeepsTombstonesOnlyForStoredOnes) {
  MapKvStore store;
  internal::ValueTable<int64_t> table("panes", 0, &store, 0, 1000);
  internal::KeyScope scope;
  scope.SetKey(3, "key");
  const std::string key_only = scope.composite;
  // Namespaces of one key are separate values; clearing goes back to the key.
  scope.SetNamespaceTo<int64_t>(100);
  EXPECT_EQ(table.Get(scope), nullptr);  // a miss: read from the store, absent
  table.Put(scope, 7);
  scope.SetNamespaceTo<int64_t>(200);
  EXPECT_EQ(table.Get(scope), nullptr);
  table.Put(scope, 8);
  scope.SetNamespaceTo<int64_t>(100);
  ASSERT_NE(table.Get(scope), nullptr);
  EXPECT_EQ(*table.Get(scope), 7);
  scope.ClearNamespace();
  EXPECT_EQ(scope.composite, key_only);

  // Never written back: removing forgets it at once, no delete reaches the store.
  scope.SetNamespaceTo<int64_t>(100);
  table.Remove(scope);
  EXPECT_EQ(table.Get(scope), nullptr);
  ASSERT_TRUE(table.WriteBack().ok());
  EXPECT_EQ(store.deletes, 0);
  EXPECT_EQ(store.data.size(), 1u);  // namespace 200

  // Written back, then removed: one delete, then the cache forgets it.
  scope.SetNamespaceTo<int64_t>(200);
  table.Remove(scope);
  ASSERT_TRUE(table.WriteBack().ok());
  EXPECT_EQ(store.deletes, 1);
  EXPECT_TRUE(store.data.empty());
  EXPECT_EQ(table.size(), 1u);  // only the known-absent namespace 100
  EXPECT_EQ(table.Get(scope), nullptr);

  // A value only the store holds (a fresh cache) is deleted too.
  table.Put(scope, 9);
  ASSERT_TRUE(table.WriteBack().ok());
  internal::ValueTable<int64_t> fresh("panes", 0, &store, 0, 1000);
  fresh.Remove(scope);
  ASSERT_TRUE(fresh.WriteBack().ok());
  EXPECT_EQ(store.deletes, 2);
  EXPECT_TRUE(store.data.empty());
}

// ---------------------------------------------------------------------------
// The typed (key, namespace) table of window panes over a KvStore.

constexpr int kTestMaxParallelism = 128;

// `scope` set to (key, ns) as a keyed operator and a window set it.
void ScopeTo(internal::KeyScope& scope, uint64_t key, int64_t ns) {
  std::string key_bytes;
  Codec<uint64_t>::Encode(key, key_bytes);
  scope.SetKey(KeyGroupOf(key, kTestMaxParallelism), key_bytes);
  scope.SetNamespaceTo<int64_t>(ns);
}

// The typed table reads and writes the composite keys and values of the
// byte-keyed ValueTable, so either reads what the other wrote (RocksDB
// files and snapshots do not depend on which table wrote them), writes back
// in composite key order, and a memory table exports the same pairs.
TEST(StateTableTest, NamespacedValueTableSharesValueTableBytesAndWritesBackInKeyOrder) {
  MapKvStore store;
  internal::KeyScope scope;
  const std::vector<int64_t> namespaces = {-60'000, 0, 60'000};
  internal::ValueTable<int64_t> bytes("panes", 0, &store, 0, 1000);
  for (uint64_t key = 0; key < 10; ++key) {
    for (int64_t ns : namespaces) {
      ScopeTo(scope, key, ns);
      bytes.Put(scope, static_cast<int64_t>(key) * 1000 + ns);
    }
  }
  ASSERT_TRUE(bytes.WriteBack().ok());

  internal::NamespacedValueTable<uint64_t, int64_t, true> typed("panes", 0, &store, 0, 1000);
  typed.set_max_parallelism(kTestMaxParallelism);
  for (uint64_t key = 0; key < 10; ++key) {
    for (int64_t ns : namespaces) {
      const int64_t* value = typed.Get(key, ns);
      ASSERT_NE(value, nullptr) << key << "/" << ns;
      EXPECT_EQ(*value, static_cast<int64_t>(key) * 1000 + ns);
      ++*typed.Mutable(key, ns);
    }
  }
  EXPECT_EQ(typed.Get(42, 0), nullptr);
  EXPECT_EQ(typed.Mutable(42, 0), nullptr);
  typed.Put(42, 0, 7);
  store.put_keys.clear();
  ASSERT_TRUE(typed.WriteBack().ok());
  EXPECT_EQ(store.put_keys.size(), 31u);
  EXPECT_TRUE(std::is_sorted(store.put_keys.begin(), store.put_keys.end()));
  store.put_keys.clear();
  ASSERT_TRUE(typed.WriteBack().ok());
  EXPECT_TRUE(store.put_keys.empty()) << "clean values are not written again";

  internal::ValueTable<int64_t> reread("panes", 0, &store, 0, 1000);
  for (uint64_t key = 0; key < 10; ++key) {
    for (int64_t ns : namespaces) {
      ScopeTo(scope, key, ns);
      const int64_t* value = reread.Get(scope);
      ASSERT_NE(value, nullptr) << key << "/" << ns;
      EXPECT_EQ(*value, static_cast<int64_t>(key) * 1000 + ns + 1);
    }
  }
  ScopeTo(scope, 42, 0);
  ASSERT_NE(reread.Get(scope), nullptr);
  EXPECT_EQ(*reread.Get(scope), 7);

  internal::NamespacedValueTable<uint64_t, int64_t, false> memory("panes", 0, nullptr, -1, 0);
  memory.set_max_parallelism(kTestMaxParallelism);
  for (const auto& [key, value] : store.data) ASSERT_TRUE(memory.Import(key, value).ok());
  std::vector<internal::KvPair> exported;
  memory.Export(exported, 0);
  std::sort(exported.begin(), exported.end());
  EXPECT_EQ(exported, std::vector<internal::KvPair>(store.data.begin(), store.data.end()));
}

// Panes come and go: one the store never held leaves no tombstone.
TEST(StateTableTest, NamespacedValueTableKeepsTombstonesOnlyForStoredValues) {
  MapKvStore store;
  internal::NamespacedValueTable<uint64_t, int64_t, true> table("panes", 0, &store, 0, 1000);
  table.set_max_parallelism(kTestMaxParallelism);
  EXPECT_EQ(table.Mutable(3, 100), nullptr);  // a miss: read from the store, absent
  table.Put(3, 100, 7);
  EXPECT_EQ(table.Mutable(3, 200), nullptr);
  table.Put(3, 200, 8);
  ASSERT_NE(table.Get(3, 100), nullptr);
  EXPECT_EQ(*table.Get(3, 100), 7);

  // Never written back: removing forgets it at once, no delete reaches the store.
  table.Remove(3, 100);
  EXPECT_EQ(table.size(), 1u);
  EXPECT_EQ(table.Get(3, 100), nullptr);
  ASSERT_TRUE(table.WriteBack().ok());
  EXPECT_EQ(store.deletes, 0);
  EXPECT_EQ(store.data.size(), 1u);  // namespace 200

  // Written back, then removed: absent at once, one delete at the next
  // write-back, then the cache forgets it.
  table.Remove(3, 200);
  EXPECT_EQ(table.Get(3, 200), nullptr);
  ASSERT_TRUE(table.WriteBack().ok());
  EXPECT_EQ(store.deletes, 1);
  EXPECT_TRUE(store.data.empty());
  EXPECT_EQ(table.size(), 1u);  // only the known-absent namespace 100

  // A value only the store holds (a fresh cache) is deleted too.
  table.Put(3, 200, 9);
  ASSERT_TRUE(table.WriteBack().ok());
  internal::NamespacedValueTable<uint64_t, int64_t, true> fresh("panes", 0, &store, 0, 1000);
  fresh.set_max_parallelism(kTestMaxParallelism);
  fresh.Remove(3, 200);
  ASSERT_TRUE(fresh.WriteBack().ok());
  EXPECT_EQ(store.deletes, 2);
  EXPECT_TRUE(store.data.empty());
}

// More (key, namespace) values than the cache holds: it never exceeds its
// limit, and evicted values are read back from the store, updates included.
TEST(StateTableTest, NamespacedValueTableStaysWithinItsLimitAndReadsEvictedValuesBack) {
  MapKvStore store;
  constexpr size_t kLimit = 64;
  constexpr int kValues = 500;
  // String keys (longer than the inline buffer) and vector values.
  internal::NamespacedValueTable<std::string, std::vector<int64_t>, true> table("panes", 0, &store,
                                                                                0, kLimit);
  table.set_max_parallelism(kTestMaxParallelism);
  const auto key_of = [](int idx) {
    return "a key longer than twenty-four bytes #" + std::to_string(idx % 100);
  };
  const auto ns_of = [](int idx) { return static_cast<int64_t>(idx / 100) * 60'000; };
  for (int round = 0; round < 3; ++round) {
    for (int idx = 0; idx < kValues; ++idx) {
      if (std::vector<int64_t>* items = table.Mutable(key_of(idx), ns_of(idx))) {
        items->push_back(round);
      } else {
        ASSERT_EQ(round, 0) << idx;
        table.Put(key_of(idx), ns_of(idx), {round});
      }
      ASSERT_LE(table.size(), kLimit);
    }
  }
  for (int idx = 0; idx < kValues; idx += 2) table.Remove(key_of(idx), ns_of(idx));
  for (int idx = 0; idx < kValues; ++idx) {
    const std::vector<int64_t>* items = table.Get(key_of(idx), ns_of(idx));
    if (idx % 2 == 0) {
      EXPECT_EQ(items, nullptr) << idx;
    } else {
      ASSERT_NE(items, nullptr) << idx;
      EXPECT_EQ(*items, (std::vector<int64_t>{0, 1, 2})) << idx;
    }
    ASSERT_LE(table.size(), kLimit);
  }
  ASSERT_TRUE(table.WriteBack().ok());
  EXPECT_EQ(store.data.size(), static_cast<size_t>(kValues / 2));
}

// A RocksDB commit that fails (say, a full disk) fails that checkpoint, and
// the job goes on. What that write-back held must stay dirty: marked clean,
// the next checkpoint would snapshot the store's older values, and a full
// cache would drop values the store never got, so deleted ones come back.
TEST(StateTableTest, WhatAFailedCommitHeldIsWrittenBackAgain) {
  MapKvStore store;
  internal::KeyedStateBackend backend("op", &store, 1000);
  backend.set_max_parallelism(kTestMaxParallelism);
  auto* values = backend.GetOrCreate<internal::ValueTable<int64_t>>("values", 0);
  auto* panes =
      backend.GetOrCreate<internal::NamespacedValueTable<uint64_t, int64_t, true>>("panes", 0);
  auto* lists = backend.GetOrCreate<internal::ListTable<int64_t>>("lists", 0);
  auto* maps = backend.GetOrCreate<internal::MapTable<int64_t, int64_t>>("maps", 0);
  const auto scope_of = [](std::string_view key) {
    internal::KeyScope scope;
    scope.SetKey(1, key);
    return scope;
  };
  const auto user_key = [](int64_t key) {
    std::string bytes;
    Codec<int64_t>::Encode(key, bytes);
    return bytes;
  };
  const auto map_put = [&](internal::MapTable<int64_t, int64_t>& table, int64_t key,
                           int64_t value) {
    auto& entry = (*table.Get(scope_of("map"), true))[user_key(key)];
    entry.value = value;
    entry.dirty = true;
  };

  values->Put(scope_of("kept"), 1);
  values->Put(scope_of("removed"), 1);
  panes->Put(1, 0, 1);
  panes->Put(2, 0, 1);
  lists->Get(scope_of("appended"), true)->push_back(1);
  lists->Get(scope_of("cleared"), true)->push_back(1);
  map_put(*maps, 1, 1);
  map_put(*maps, 2, 1);
  ASSERT_TRUE(backend.WriteBack().ok());

  values->Put(scope_of("kept"), 2);
  values->Remove(scope_of("removed"));
  panes->Put(1, 0, 2);
  panes->Remove(2, 0);
  lists->Get(scope_of("appended"), true)->push_back(2);
  lists->Get(scope_of("cleared"), true)->clear();
  map_put(*maps, 1, 2);
  auto& removed_entry = maps->Get(scope_of("map"), false)->at(user_key(2));
  removed_entry.value.reset();
  removed_entry.dirty = true;
  store.failing_commits = 1;
  EXPECT_EQ(backend.WriteBack().code(), absl::StatusCode::kResourceExhausted);

  // The next barrier writes everything back.
  ASSERT_TRUE(backend.WriteBack().ok());
  internal::KeyedStateBackend reread("op", &store, 1000);
  reread.set_max_parallelism(kTestMaxParallelism);
  auto* values_read = reread.GetOrCreate<internal::ValueTable<int64_t>>("values", 0);
  ASSERT_NE(values_read->Get(scope_of("kept")), nullptr);
  EXPECT_EQ(*values_read->Get(scope_of("kept")), 2);
  EXPECT_EQ(values_read->Get(scope_of("removed")), nullptr) << "a deleted value came back";
  auto* panes_read =
      reread.GetOrCreate<internal::NamespacedValueTable<uint64_t, int64_t, true>>("panes", 0);
  ASSERT_NE(panes_read->Get(1, 0), nullptr);
  EXPECT_EQ(*panes_read->Get(1, 0), 2);
  EXPECT_EQ(panes_read->Get(2, 0), nullptr) << "a deleted pane came back";
  auto* lists_read = reread.GetOrCreate<internal::ListTable<int64_t>>("lists", 0);
  ASSERT_NE(lists_read->Get(scope_of("appended"), false), nullptr);
  EXPECT_EQ(*lists_read->Get(scope_of("appended"), false), (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(lists_read->Get(scope_of("cleared"), false), nullptr) << "a cleared list came back";
  auto* maps_read = reread.GetOrCreate<internal::MapTable<int64_t, int64_t>>("maps", 0);
  auto* entries = maps_read->Get(scope_of("map"), false);
  ASSERT_NE(entries, nullptr);
  ASSERT_EQ(entries->size(), 1u) << "a deleted map entry came back";
  EXPECT_EQ(entries->begin()->first, user_key(1));
  EXPECT_EQ(entries->begin()->second.value, std::optional<int64_t>(2));
}

}  // namespace
}  // namespace weir
