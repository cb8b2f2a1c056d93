// The Debezium decoder's JSON kernel is chosen at run time, for the CPU the
// binary runs on. The decoder's code is compiled for baseline x86-64, but the
// SIMD part of simdjson's On Demand parser (finding the structural
// characters, stage 1) comes from the implementation simdjson selects when
// the parser allocates: icelake or haswell on current x86, fallback on a CPU
// without AVX2. These tests prove each link of that chain: the selection is
// the best kernel this CPU runs; a decoder's parser takes its stage 1 from
// whatever implementation is active when it is created; and the decoder
// gives the same values on the fallback kernel, which is what a CPU without
// AVX2 gets from the same binary.

#include <simdjson.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "weir/formats/debezium.h"

namespace weir::debezium {
namespace {

struct Event {
  int64_t id = 0;
  std::string content_id;
  std::string device;
  std::optional<int32_t> duration_ms;
  std::optional<std::string> raw_payload;
  int64_t event_ts_ms = 0;

  friend bool operator==(const Event&, const Event&) = default;
};

Decoder<Event> MakeDecoder() {
  absl::StatusOr<Decoder<Event>> decoder =
      Decoder<Event>::Create(Fields<Event>()
                                 .Required("id", &Event::id)
                                 .Required("content_id", &Event::content_id, Uuid())
                                 .Required("device", &Event::device)
                                 .Optional("duration_ms", &Event::duration_ms)
                                 .Optional("raw_payload", &Event::raw_payload, Json())
                                 .Required("event_ts", &Event::event_ts_ms, EpochMillis()));
  EXPECT_TRUE(decoder.ok()) << decoder.status();
  return *std::move(decoder);
}

// Schemaless envelopes (JsonConverter with schemas.enable=false), long enough
// to fill several 64-byte SIMD blocks, with escapes, unicode and a nested
// JSON string so that stage 1's quote and backslash masks matter.
std::vector<std::string> Messages() {
  std::vector<std::string> messages;
  for (int idx = 0; idx < 50; ++idx) {
    std::string device = "tv-" + std::string(static_cast<size_t>(idx * 7), 'x');
    if (idx % 3 == 0) device += R"(\"quoted\" \\ back\tslash \u00e9\u4e2d)";
    const std::string payload = idx % 5 == 0 ? "null"
                                             : R"("{\"k\":[1,2,{\"n\":\")" + std::to_string(idx) +
                                                   R"(\"}],\"s\":\"\\\\\"}")";
    messages.push_back(R"({"before":null,"after":{"id":)" + std::to_string(1000 + idx) +
                       R"(,"content_id":"8c1f0b9e-5c1d-4a53-9f2e-0d6a1c2b3e4f","device":")" +
                       device + R"(","duration_ms":)" +
                       (idx % 4 == 0 ? std::string("null") : std::to_string(idx * 1500)) +
                       R"(,"raw_payload":)" + payload + R"(,"event_ts":"2026-12-07T04:00:00.)" +
                       std::to_string(100 + idx) +
                       R"(Z"},"source":{"version":"2.5.0.Final","connector":"postgresql",)"
                       R"("name":"engagement","ts_ms":1796702400000,"db":"app","schema":"public",)"
                       R"("table":"engagement_events","lsn":)" +
                       std::to_string(4000 + idx) + R"(},"op":"c","ts_ms":1796702400100})");
  }
  return messages;
}

std::vector<Change<Event>> DecodeAll(const std::vector<std::string>& messages) {
  Decoder<Event> decoder = MakeDecoder();
  std::vector<Change<Event>> changes;
  for (const std::string& message : messages) {
    absl::StatusOr<Change<Event>> change = decoder.Decode(message);
    EXPECT_TRUE(change.ok()) << change.status() << " in " << message;
    if (change.ok()) changes.push_back(*std::move(change));
  }
  return changes;
}

// Makes `implementation` simdjson's active one while it lives.
class ActiveImplementation {
 public:
  explicit ActiveImplementation(const simdjson::implementation* implementation)
      : previous_(simdjson::get_active_implementation()) {
    simdjson::get_active_implementation() = implementation;
  }
  ~ActiveImplementation() { simdjson::get_active_implementation() = previous_; }
  ActiveImplementation(const ActiveImplementation&) = delete;
  ActiveImplementation& operator=(const ActiveImplementation&) = delete;

 private:
  const simdjson::implementation* previous_;
};

// An implementation that hands out another one's stage 1 and counts how often
// a parser asked it for one.
class CountingImplementation final : public simdjson::implementation {
 public:
  explicit CountingImplementation(const simdjson::implementation* inner)
      : simdjson::implementation("counting", "counts parsers", inner->required_instruction_sets()),
        inner_(inner) {}

  simdjson::error_code create_dom_parser_implementation(
      size_t capacity, size_t max_depth,
      std::unique_ptr<simdjson::internal::dom_parser_implementation>& dst) const noexcept override {
    ++parsers_;
    return inner_->create_dom_parser_implementation(capacity, max_depth, dst);
  }
  simdjson::error_code minify(const uint8_t* buf, size_t len, uint8_t* dst,
                              size_t& dst_len) const noexcept override {
    return inner_->minify(buf, len, dst, dst_len);
  }
  bool validate_utf8(const char* buf, size_t len) const noexcept override {
    return inner_->validate_utf8(buf, len);
  }
  int parsers() const { return parsers_; }

 private:
  const simdjson::implementation* inner_;
  mutable int parsers_ = 0;
};

TEST(SimdDispatchTest, TheActiveKernelIsTheBestThisCpuRuns) {
  // simdjson lists its compiled-in kernels best first.
  const simdjson::implementation* best = nullptr;
  for (const simdjson::implementation* implementation : simdjson::get_available_implementations()) {
    if (implementation->supported_by_runtime_system()) {
      best = implementation;
      break;
    }
  }
  ASSERT_NE(best, nullptr);
  const simdjson::implementation* active = simdjson::get_active_implementation();
  EXPECT_EQ(active->name(), best->name()) << "active " << active->description();
  if (__builtin_cpu_supports("avx2")) {
    EXPECT_NE(active->name(), "fallback") << "this CPU has AVX2, yet simdjson runs its fallback";
  }
  // The binary carries the fallback kernel, for a CPU without AVX2.
  ASSERT_NE(simdjson::get_available_implementations()["fallback"], nullptr);
}

TEST(SimdDispatchTest, ADecodersParserTakesItsKernelFromTheActiveImplementation) {
  const CountingImplementation counting(simdjson::get_active_implementation());
  std::vector<Change<Event>> changes;
  {
    ActiveImplementation active(&counting);
    changes = DecodeAll(Messages());
  }
  EXPECT_GE(counting.parsers(), 1) << "the decoder's parser did not ask the active implementation";
  EXPECT_EQ(changes.size(), Messages().size());
}

TEST(SimdDispatchTest, TheFallbackKernelDecodesTheSameValues) {
  const std::vector<std::string> messages = Messages();
  const std::vector<Change<Event>> best = DecodeAll(messages);
  const simdjson::implementation* fallback = simdjson::get_available_implementations()["fallback"];
  ASSERT_NE(fallback, nullptr);
  std::vector<Change<Event>> on_fallback;
  {
    ActiveImplementation active(fallback);
    on_fallback = DecodeAll(messages);
  }
  ASSERT_EQ(best.size(), messages.size());
  ASSERT_EQ(on_fallback.size(), messages.size());
  for (size_t idx = 0; idx < messages.size(); ++idx) {
    ASSERT_TRUE(best[idx].after.has_value());
    ASSERT_TRUE(on_fallback[idx].after.has_value());
    EXPECT_EQ(*best[idx].after, *on_fallback[idx].after) << messages[idx];
    EXPECT_EQ(best[idx].source.lsn, on_fallback[idx].source.lsn);
  }
  // The escapes were decoded, not copied.
  const std::string unescaped = "tv-\"quoted\" \\ back\tslash \xc3\xa9\xe4\xb8\xad";
  EXPECT_EQ(best[0].after->device, unescaped);
  EXPECT_EQ(on_fallback[0].after->device, unescaped);
}

}  // namespace
}  // namespace weir::debezium
