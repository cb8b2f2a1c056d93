// weir: an embeddable stream processor. Include this header for the whole API.
//
// Example:
//
//   #include "weir/weir.h"
//
//   weir::Pipeline pipeline({.parallelism = 2});
//   pipeline.Source(weir::testing::VectorSource<int>({1, 2, 3}))
//       .KeyBy([](int x) { return x % 2; })
//       .Process(MyKeyedFunction{})
//       .Sink([](const Out& out) { ... });
//   absl::Status status = pipeline.Run();

#ifndef WEIR_WEIR_H_
#define WEIR_WEIR_H_

#include "weir/checkpoint.h"
#include "weir/codec.h"
#include "weir/functions.h"
#include "weir/join.h"
#include "weir/key.h"
#include "weir/metrics.h"
#include "weir/pipeline.h"
#include "weir/sink.h"
#include "weir/sink_handle.h"
#include "weir/source.h"
#include "weir/state.h"
#include "weir/stream.h"
#include "weir/time.h"
#include "weir/window.h"

#endif  // WEIR_WEIR_H_
