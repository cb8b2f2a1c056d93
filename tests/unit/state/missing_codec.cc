// Not part of any binary: the ctests state.missing_codec_is_a_compile_error
// and state.missing_codec_probe_compiles_with_a_codec compile this file (with
// -fsyntax-only). Keyed state of a type without a weir::Codec must not
// compile, and the error must be the WEIR_REQUIRE_CODEC message; with
// WEIR_PROBE_WITH_CODEC defined the same code compiles, so the failure is
// the missing codec and nothing else.

#include <cstdint>
#include <string>
#include <string_view>

#include "weir/testing.h"
#include "weir/weir.h"

struct NoCodec {
  int64_t value = 0;
};

#ifdef WEIR_PROBE_WITH_CODEC
template <>
struct weir::Codec<NoCodec> {
  static void Encode(const NoCodec& v, std::string& out) {
    weir::Codec<int64_t>::Encode(v.value, out);
  }
  static bool Decode(std::string_view& in, NoCodec& v) {
    return weir::Codec<int64_t>::Decode(in, v.value);
  }
};
#endif

class UsesState final : public weir::KeyedProcessFunction<int64_t, int64_t, int64_t> {
 public:
  absl::Status ProcessElement(const int64_t& v, Context& ctx, weir::Collector<int64_t>&) override {
    weir::ValueState<NoCodec> state = ctx.GetState(kState);
    state.Update(NoCodec{v});
    return absl::OkStatus();
  }

 private:
  static inline const weir::ValueStateDescriptor<NoCodec> kState{"state"};
};

int main() {
  weir::Pipeline pipeline;
  pipeline.Source(weir::testing::VectorSource<int64_t>::Create({1, 2, 3}))
      .KeyBy([](int64_t v) { return v; })
      .Process(UsesState{})
      .Sink([](const int64_t&) {});
  return pipeline.Run().ok() ? 0 : 1;
}
